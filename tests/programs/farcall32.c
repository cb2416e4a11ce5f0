/* A far call from 64-bit code into the 32-bit user code segment (selector 0x23), to code that
 * then faults ("fault") or loops forever ("spin"). Linux runs the 32-bit code and delivers the
 * fault as SIGSEGV to the 64-bit handler; a sandbox must do the same or at least end the
 * process, never spin or let the process outlive SIGKILL.
 *   farcall32 fault  -> "signal 11 code 1 addr (nil)", exit 3
 *   farcall32 spin   -> a child spinning in 32-bit code is SIGKILLed: "child killed by 9" */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct far_ptr {
    uint32_t offset;
    uint16_t selector;
} __attribute__((packed));

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    printf("signal %d code %d addr %p\n", sig, si->si_code, si->si_addr);
    fflush(stdout);
    _exit(3);
}

static void far_call(const unsigned char *code, size_t len) {
    unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        _exit(1);
    }
    memcpy(page, code, len);
    static struct far_ptr target;
    target.offset = (uint32_t)(uintptr_t)page;
    target.selector = 0x23;
    __asm__ volatile("lcall *%0" : : "m"(target) : "memory");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "spin") == 0) {
        static const unsigned char spin[] = {0xeb, 0xfe}; /* jmp . */
        pid_t child = fork();
        if (child == 0) {
            far_call(spin, sizeof spin);
            _exit(0);
        }
        usleep(200 * 1000);
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        if (WIFSIGNALED(status))
            printf("child killed by %d\n", WTERMSIG(status));
        else
            printf("child exited %d\n", WEXITSTATUS(status));
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    static const unsigned char fault[] = {0xa1, 0, 0, 0, 0, 0x0f, 0x0b}; /* mov eax,[0]; ud2 */
    far_call(fault, sizeof fault);
    printf("far call returned\n");
    return 0;
}
