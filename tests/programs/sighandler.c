// SIGUSR1 handler with SA_SIGINFO; sigreturn must restore registers including xmm state.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int got_sig, got_pid_ok, got_code;

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_pid_ok = si->si_pid == getpid();
    got_code = si->si_code;
    // Clobber xmm registers inside the handler.
    __asm__ volatile("pxor %%xmm0, %%xmm0\n\tpxor %%xmm7, %%xmm7" ::: "xmm0", "xmm7");
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);

    double before = 3.25, after;
    unsigned long long r12_before = 0x1122334455667788ULL, r12_after;
    __asm__ volatile(
        "movsd %2, %%xmm7\n\t"
        "mov %3, %%r12\n\t"
        "mov $62, %%eax\n\t"   // kill(getpid(), SIGUSR1) via raw syscall
        "mov %4, %%edi\n\t"
        "mov $10, %%esi\n\t"
        "syscall\n\t"
        "movsd %%xmm7, %0\n\t"
        "mov %%r12, %1\n\t"
        : "=m"(after), "=r"(r12_after)
        : "m"(before), "r"(r12_before), "r"(getpid())
        : "rax", "rdi", "rsi", "rcx", "r11", "r12", "xmm7", "memory");
    printf("sig=%d pid_ok=%d code=%d xmm7=%.2f r12_ok=%d\n", got_sig, got_pid_ok, got_code, after,
           r12_after == r12_before);

    // Blocked signals stay pending until unblocked.
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    got_sig = 0;
    raise(SIGUSR1);
    sigset_t pend;
    sigpending(&pend);
    printf("pending=%d delivered_while_blocked=%d\n", sigismember(&pend, SIGUSR1), got_sig);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("delivered_after_unblock=%d\n", got_sig);
    return 0;
}
