/*
 * syscall_bench: times N repetitions of one operation and prints the mean cost in
 * nanoseconds, measured with CLOCK_MONOTONIC (for the benchmark, never asserted).
 *
 *   syscall_bench getpid N      raw getpid system calls
 *   syscall_bench clock N       clock_gettime(CLOCK_MONOTONIC) through libc (the vDSO's
 *                               when the kernel gives one)
 *   syscall_bench stat N        stat("/etc/passwd")
 *   syscall_bench openrc N      open + read 4 KiB + close of /etc/passwd
 *   syscall_bench forkexec N    fork + execve("/bin/busybox", "true") + waitpid
 *
 * Output: "op=NAME n=N ns_per_op=123.4"
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int once(const char *op) {
    if (strcmp(op, "getpid") == 0) {
        syscall(SYS_getpid);
    } else if (strcmp(op, "clock") == 0) {
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
            return -1;
    } else if (strcmp(op, "stat") == 0) {
        struct stat st;
        if (stat("/etc/passwd", &st) != 0)
            return -1;
    } else if (strcmp(op, "openrc") == 0) {
        char buf[4096];
        int fd = open("/etc/passwd", O_RDONLY);
        if (fd < 0 || read(fd, buf, sizeof buf) < 0)
            return -1;
        close(fd);
    } else if (strcmp(op, "forkexec") == 0) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            char *argv[] = {"busybox", "true", NULL};
            execv("/bin/busybox", argv);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return -1;
    } else {
        return -2;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: syscall_bench getpid|clock|stat|openrc|forkexec [N]\n");
        return 2;
    }
    const char *op = argv[1];
    long n = argc > 2 ? strtol(argv[2], NULL, 0) : 10000;
    if (n <= 0)
        n = 1;
    int r = once(op); /* warm up; also validates the operation */
    if (strcmp(op, "clock") == 0)
        usleep(100000); /* runsc-rs calibrates its vDSO clock 20 ms after boot */
    if (r != 0) {
        fprintf(stderr, "syscall_bench: %s failed (%d)\n", op, r);
        return 1;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < n; i++) {
        if (once(op) != 0) {
            fprintf(stderr, "syscall_bench: %s failed at %ld\n", op, i);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ns = (double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec);
    printf("op=%s n=%ld ns_per_op=%.1f\n", op, n, ns / (double)n);
    return 0;
}
