/* A system call through the 32-bit ABI (`int $0x80`) from 64-bit code. The sentry implements
 * only the 64-bit ABI, so it must refuse the call as Linux without IA-32 emulation does
 * (SIGSEGV, SI_KERNEL, the instruction not executed), never run it as the 64-bit call with
 * the same number. rax = 60 is exit(rdi = 0) in the 64-bit table: running it that way would
 * end the program with status 0 and print nothing. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    printf("signal %d code %d addr %p\n", sig, si->si_code, si->si_addr);
    fflush(stdout);
    _exit(3);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(60L), "D"(0L) : "memory");
    printf("int 0x80 returned %ld\n", r);
    return 0;
}
