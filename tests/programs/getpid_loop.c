/*
 * getpid_loop: makes N raw getpid system calls (default 100000) and prints
 * the mean cost per call in nanoseconds, measured with CLOCK_MONOTONIC.
 *
 *   getpid_loop [N]   -> "calls=N ns_per_call=123.4"
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 100000;
    if (n <= 0)
        n = 1;
    struct timespec start, end;
    syscall(SYS_getpid);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < n; i++)
        syscall(SYS_getpid);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ns = (double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec);
    printf("calls=%ld ns_per_call=%.1f\n", n, ns / (double)n);
    return 0;
}
