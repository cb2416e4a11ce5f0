// The interrupted code's AVX state survives asynchronous signals (issue 12's heap
// corruption: rt_sigreturn dropped the upper halves of the ymm registers, which glibc's
// memcpy and strlen keep data in). One thread keeps a pattern in ymm0-ymm3 and checks it
// in a tight loop while another thread sends it signals whose handler clobbers them.
#include <cpuid.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;
static volatile long handled;
static pid_t worker_tid;

static void handler(int sig) {
    (void)sig;
    handled++;
    __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vpcmpeqd %%ymm1, %%ymm1, %%ymm1\n\t"
                     "vzeroupper" ::: "xmm0", "xmm1", "xmm2", "xmm3");
}

static int have_avx(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AVX) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}

// Loads the pattern, then for `rounds` checks that ymm0-ymm3 still hold it. Returns the
// number of rounds where they did not.
static long check_rounds(long rounds) {
    static const uint64_t pattern[4] __attribute__((aligned(32))) = {
        0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x1122334455667788ULL, 0x99aabbccddeeff00ULL};
    long bad = 0;
    __asm__ volatile(
        "vmovdqa (%[p]), %%ymm0\n\t"
        "vmovdqa %%ymm0, %%ymm1\n\t"
        "vmovdqa %%ymm0, %%ymm2\n\t"
        "vmovdqa %%ymm0, %%ymm3\n\t"
        "1:\n\t"
        "vpcmpeqq (%[p]), %%ymm0, %%ymm4\n\t"
        "vpcmpeqq (%[p]), %%ymm1, %%ymm5\n\t"
        "vpand %%ymm4, %%ymm5, %%ymm4\n\t"
        "vpcmpeqq (%[p]), %%ymm2, %%ymm5\n\t"
        "vpand %%ymm4, %%ymm5, %%ymm4\n\t"
        "vpcmpeqq (%[p]), %%ymm3, %%ymm5\n\t"
        "vpand %%ymm4, %%ymm5, %%ymm4\n\t"
        "vpmovmskb %%ymm4, %%eax\n\t"
        "cmp $-1, %%eax\n\t"
        "je 2f\n\t"
        "inc %[bad]\n\t"
        "vmovdqa (%[p]), %%ymm0\n\t"
        "vmovdqa %%ymm0, %%ymm1\n\t"
        "vmovdqa %%ymm0, %%ymm2\n\t"
        "vmovdqa %%ymm0, %%ymm3\n\t"
        "2:\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vzeroupper"
        : [bad] "+r"(bad), [n] "+r"(rounds)
        : [p] "r"(pattern)
        : "rax", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "cc", "memory");
    return bad;
}

static void *sender(void *arg) {
    (void)arg;
    while (!stop) {
        syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1);
        usleep(200);
    }
    return NULL;
}

int main(void) {
    if (!have_avx()) {
        printf("SKIPPED: no AVX\n");
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    worker_tid = (pid_t)syscall(SYS_gettid);
    pthread_t th;
    pthread_create(&th, NULL, sender, NULL);
    long bad = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        bad += check_rounds(1000000);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (handled < 300 && now.tv_sec - start.tv_sec < 20);
    stop = 1;
    pthread_join(th, NULL);
    printf("signals handled: %s\n", handled >= 300 ? ">=300" : "too few");
    printf("rounds with ymm0-3 changed: %ld\n", bad);
    return bad != 0;
}
