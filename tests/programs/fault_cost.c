/* Cost of one application page fault: touches one byte in each of N fresh anonymous
 * regions spaced `stride` bytes apart (default 1 MiB, beyond any fault-around), so that
 * every touch is its own fault, and prints the time per touch (compare with native).
 * usage: fault_cost [N] [stride] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 1000;
    long stride = argc > 2 ? strtol(argv[2], NULL, 0) : 1 << 20;
    if (n <= 0 || stride < 4096) {
        fprintf(stderr, "usage: fault_cost [N > 0] [stride >= 4096]\n");
        return 2;
    }
    size_t len = (size_t)n * (size_t)stride;
    volatile char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* Natively, no transparent huge page per touch: one 4 KiB page each, as in the sandbox. */
    madvise((void *)mem, len, MADV_NOHUGEPAGE);
    double start = now_ns();
    for (long i = 0; i < n; i++)
        mem[(size_t)i * (size_t)stride] = 1;
    double ns = now_ns() - start;
    for (long i = 0; i < n; i++)
        if (mem[(size_t)i * (size_t)stride] != 1) {
            fprintf(stderr, "fault_cost: lost a write at %ld\n", i);
            return 1;
        }
    printf("op=fault n=%ld ns_per_op=%.1f\n", n, ns / (double)n);
    return 0;
}
