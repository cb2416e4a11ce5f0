/*
 * patch_getpid: system calls made from the sequence `mov $NR,%eax; syscall` (what glibc's
 * wrappers emit, and what the systrap platform rewrites into a direct jump to its stub), under
 * the conditions a rewrite must survive. Every mode checks results against the kernel's own
 * answers and prints only deterministic lines, so the output compares with native Linux.
 *
 *   patch_getpid loop N       N getpid calls from one site; registers and FP kept
 *   patch_getpid threads T N  T threads making N calls each from the same site at once
 *   patch_getpid signals N    N calls (and more until 100 signals arrived) while another
 *                             thread sends SIGUSR1 all the time
 *                             (the handler makes the same call)
 *   patch_getpid fork N       N calls, fork, N more in both (the child shares the page)
 *   patch_getpid exec N       N calls, then exec itself in loop mode
 *   patch_getpid restart N    a patched read(2) interrupted by an SA_RESTART handler and
 *                             restarted, and a patched nanosleep(2) stopped and continued
 *                             (restart_syscall): restarts rewind onto the rewritten site
 *   patch_getpid bench N      N calls, prints "op=site n=N ns_per_op=X" (for
 *                             runsc-rs-bench; not deterministic)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* getpid from one fixed `mov $39,%eax; syscall` site (b8 27 00 00 00 0f 05). */
static __attribute__((noinline)) long site_getpid(void) {
    long ret;
    __asm__ volatile("mov $39, %%eax\n\tsyscall" : "=a"(ret) : : "rcx", "r11", "memory");
    return ret;
}

/* kill(pid, 0) from its own site, checking that every register a system call keeps is
 * kept (rdi, rsi, rdx, r8, r9, r10 carry values the call does not use). */
static __attribute__((noinline)) int site_kill0(long pid) {
    long ret;
    register long r8 __asm__("r8") = 0x0808080808080808;
    register long r9 __asm__("r9") = 0x0909090909090909;
    register long r10 __asm__("r10") = 0x1010101010101010;
    long rdi = pid, rsi = 0, rdx = 0x0d0d0d0d0d0d0d0d;
    __asm__ volatile("mov $62, %%eax\n\tsyscall"
                     : "=a"(ret), "+D"(rdi), "+S"(rsi), "+d"(rdx), "+r"(r8), "+r"(r9), "+r"(r10)
                     :
                     : "rcx", "r11", "memory");
    return ret == 0 && rdi == pid && rsi == 0 && rdx == 0x0d0d0d0d0d0d0d0d &&
           r8 == 0x0808080808080808 && r9 == 0x0909090909090909 && r10 == 0x1010101010101010;
}

/* N calls; 0 when every answer was right and the FP value survived. */
static int run(long n) {
    long pid = getpid();
    volatile double step = 1.5;
    double sum = 0;
    for (long i = 0; i < n; i++) {
        sum += step;
        if (site_getpid() != pid)
            return 1;
        if ((i & 63) == 0 && !site_kill0(pid))
            return 2;
    }
    return sum == 1.5 * (double)n ? 0 : 3;
}

struct worker {
    pthread_t thread;
    long n;
    int result;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    w->result = run(w->n);
    return NULL;
}

static atomic_long handled;
static atomic_int handler_bad;
static atomic_int stop;

static void on_usr1(int sig) {
    (void)sig;
    if (site_getpid() != getpid())
        atomic_store(&handler_bad, 1);
    atomic_fetch_add(&handled, 1);
}

static void *sender_main(void *arg) {
    pthread_t target = *(pthread_t *)arg;
    while (!atomic_load(&stop)) {
        pthread_kill(target, SIGUSR1);
        for (volatile int i = 0; i < 2000; i++) {
        }
    }
    return NULL;
}

/* read(fd, buf, 1) from its own `mov $0,%eax; syscall` site. */
static __attribute__((noinline)) long site_read(long fd, char *buf) {
    long ret;
    __asm__ volatile("mov $0, %%eax\n\tsyscall"
                     : "=a"(ret)
                     : "D"(fd), "S"(buf), "d"(1L)
                     : "rcx", "r11", "memory");
    return ret;
}

/* nanosleep(ts, NULL) from its own `mov $35,%eax; syscall` site. */
static __attribute__((noinline)) long site_nanosleep(const struct timespec *ts) {
    long ret;
    __asm__ volatile("mov $35, %%eax\n\tsyscall"
                     : "=a"(ret)
                     : "D"(ts), "S"(0L)
                     : "rcx", "r11", "memory");
    return ret;
}

static int restart_pipe[2];

static void on_usr1_restart(int sig) {
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

static void *poke_main(void *arg) {
    pthread_t target = *(pthread_t *)arg;
    struct timespec ms50 = {0, 50 * 1000 * 1000};
    nanosleep(&ms50, NULL);
    pthread_kill(target, SIGUSR1);
    nanosleep(&ms50, NULL);
    if (write(restart_pipe[1], "x", 1) != 1)
        atomic_store(&handler_bad, 1);
    return NULL;
}

static int restart_mode(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_restart;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    if (pipe(restart_pipe) != 0)
        return 2;
    /* Patch the read site first (calls that do not block; a site is patched when it traps
     * for the second time). */
    if (write(restart_pipe[1], "yy", 2) != 2)
        return 2;
    char c = 0;
    for (int i = 0; i < 2; i++)
        if (site_read(restart_pipe[0], &c) != 1 || c != 'y')
            return 3;
    pthread_t self = pthread_self(), poker;
    pthread_create(&poker, NULL, poke_main, &self);
    long got = site_read(restart_pipe[0], &c);
    pthread_join(poker, NULL);
    int read_ok = got == 1 && c == 'x' && atomic_load(&handled) == 1 && !atomic_load(&handler_bad);
    printf("restart: read %s\n", read_ok ? "ok" : "FAILED");
    /* nanosleep stopped by SIGSTOP and continued: restart_syscall. */
    struct timespec short_ts = {0, 1000};
    site_nanosleep(&short_ts);
    site_nanosleep(&short_ts);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        struct timespec ms100 = {0, 100 * 1000 * 1000};
        nanosleep(&ms100, NULL);
        kill(parent, SIGSTOP);
        nanosleep(&ms100, NULL);
        kill(parent, SIGCONT);
        _exit(0);
    }
    struct timespec ts = {0, 400 * 1000 * 1000};
    long slept = site_nanosleep(&ts);
    waitpid(child, NULL, 0);
    printf("restart: nanosleep %s\n", slept == 0 ? "ok" : "FAILED");
    return read_ok && slept == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: patch_getpid loop|threads|signals|fork|exec|bench ARGS\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = strtol(argv[argc - 1], NULL, 0);
    if (n <= 0)
        n = 1;
    if (strcmp(mode, "loop") == 0) {
        int r = run(n);
        printf("loop: %s\n", r == 0 ? "ok" : "FAILED");
        return r;
    }
    if (strcmp(mode, "threads") == 0 && argc >= 4) {
        long t = strtol(argv[2], NULL, 0);
        if (t < 1 || t > 64)
            return 2;
        struct worker w[64];
        for (long i = 0; i < t; i++) {
            w[i].n = n;
            if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
                return 2;
        }
        int bad = 0;
        for (long i = 0; i < t; i++) {
            pthread_join(w[i].thread, NULL);
            bad |= w[i].result;
        }
        printf("threads: %ld %s\n", t, bad == 0 ? "ok" : "FAILED");
        return bad;
    }
    if (strcmp(mode, "signals") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
        pthread_t self = pthread_self(), sender;
        pthread_create(&sender, NULL, sender_main, &self);
        int r = run(n);
        /* Natively n calls can end before the sender thread has even started: keep
         * calling until a hundred signals have arrived (or ten seconds have passed). */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (r == 0 && atomic_load(&handled) < 100) {
            r = run(1000);
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec > 10)
                break;
        }
        atomic_store(&stop, 1);
        pthread_join(sender, NULL);
        int ok = r == 0 && !atomic_load(&handler_bad) && atomic_load(&handled) > 0;
        printf("signals: %s\n", ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
    }
    if (strcmp(mode, "fork") == 0) {
        int r = run(n);
        pid_t child = fork();
        if (child < 0)
            return 2;
        r |= run(n);
        if (child == 0)
            _exit(r);
        int status;
        if (waitpid(child, &status, 0) != child)
            return 2;
        int ok = r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        printf("fork: %s\n", ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
    }
    if (strcmp(mode, "exec") == 0) {
        int r = run(n);
        printf("exec: before %s\n", r == 0 ? "ok" : "FAILED");
        fflush(stdout);
        char count[32];
        snprintf(count, sizeof count, "%ld", n);
        char *args[] = {argv[0], "loop", count, NULL};
        execv("/proc/self/exe", args);
        perror("execv");
        return 1;
    }
    if (strcmp(mode, "restart") == 0)
        return restart_mode();
    if (strcmp(mode, "bench") == 0) {
        struct timespec a, b;
        site_getpid();
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++)
            site_getpid();
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
        printf("op=site n=%ld ns_per_op=%.1f\n", n, ns / (double)n);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
