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
 *   syscall_bench pipe N        N one-byte round trips with a child over two pipes
 *   syscall_bench pipebulk MIB  MIB MiB written by a child into a pipe in 64 KiB writes and
 *                               read here (the op is the whole transfer: n=1)
 *   syscall_bench fault MIB     mmap MIB MiB of private anonymous memory, write one byte per
 *                               4 KiB page, munmap (the op is the whole run: n=1)
 *
 * Output: "op=NAME n=N ns_per_op=123.4"
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Waits for child `pid` and fails unless it exited 0. */
static int reap(pid_t pid) {
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

/* `n` round trips of one byte: this process writes it to the child, the child echoes it. */
static int pipe_pingpong(long n, double *ns) {
    int to_child[2], to_parent[2];
    if (pipe(to_child) != 0 || pipe(to_parent) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char c;
        close(to_child[1]);
        close(to_parent[0]);
        while (read(to_child[0], &c, 1) == 1)
            if (write(to_parent[1], &c, 1) != 1)
                _exit(1);
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    char c = 'x';
    double start = 0;
    for (long i = -1; i < n; i++) { /* round trip -1 is the warm-up */
        if (i == 0)
            start = now_ns();
        if (write(to_child[1], &c, 1) != 1 || read(to_parent[0], &c, 1) != 1)
            return -1;
    }
    *ns = now_ns() - start;
    close(to_child[1]);
    close(to_parent[0]);
    return reap(pid);
}

#define BULK_CHUNK 65536

/* `mib` MiB from a child through one pipe, timed from the first byte read to the last. */
static int pipe_bulk(long mib, double *ns) {
    static char buf[BULK_CHUNK];
    int p[2];
    if (pipe(p) != 0)
        return -1;
    long total = mib << 20;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        memset(buf, 'x', sizeof buf);
        for (long sent = 0; sent < total;) {
            ssize_t w = write(p[1], buf, sizeof buf);
            if (w <= 0)
                _exit(1);
            sent += w;
        }
        _exit(0);
    }
    close(p[1]);
    long got = 0;
    ssize_t r = read(p[0], buf, sizeof buf);
    double start = now_ns();
    while (r > 0) {
        got += r;
        r = read(p[0], buf, sizeof buf);
    }
    *ns = now_ns() - start;
    close(p[0]);
    return got == total && r == 0 ? reap(pid) : -1;
}

/* Maps `mib` MiB, faults every page in by writing it, and unmaps it again. */
static int fault_in(long mib, double *ns) {
    size_t len = (size_t)mib << 20;
    double start = now_ns();
    volatile char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    for (size_t off = 0; off < len; off += 4096)
        mem[off] = 1;
    if (munmap((void *)mem, len) != 0)
        return -1;
    *ns = now_ns() - start;
    return 0;
}

/* The operations that time themselves (their own set-up kept out of the time). */
static int timed(const char *op, long n, double *ns, long *ops) {
    *ops = 1;
    if (strcmp(op, "pipe") == 0) {
        *ops = n;
        return pipe_pingpong(n, ns);
    }
    if (strcmp(op, "pipebulk") == 0)
        return pipe_bulk(n, ns);
    if (strcmp(op, "fault") == 0)
        return fault_in(n, ns);
    return -2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: syscall_bench getpid|clock|stat|openrc|forkexec|pipe|pipebulk|fault [N]\n");
        return 2;
    }
    const char *op = argv[1];
    long n = argc > 2 ? strtol(argv[2], NULL, 0) : 10000;
    if (n <= 0)
        n = 1;
    double total;
    long ops;
    int t = timed(op, n, &total, &ops);
    if (t != -2) {
        if (t != 0) {
            fprintf(stderr, "syscall_bench: %s failed\n", op);
            return 1;
        }
        printf("op=%s n=%ld ns_per_op=%.1f\n", op, ops, total / (double)ops);
        return 0;
    }
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
