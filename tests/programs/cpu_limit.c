/*
 * cpu_limit: RLIMIT_CPU as Linux enforces it.
 *   soft      a child with soft limit 1 s (hard 3 s) and SIGXCPU's default action burns CPU
 *             and is killed by SIGXCPU after about one CPU second (rusage, which Linux
 *             estimates from ticks, may show a little less: 0.5 s to 2.9 s passes)
 *   hard      a child that handles SIGXCPU (soft 1 s, hard 2 s) sees SIGXCPU at least once,
 *             sees the soft limit moved on by one second in its handler (Linux raises it
 *             after each SIGXCPU), and is killed by SIGKILL at the hard limit
 *   prlimit   prlimit(2) on another process: the parent lowers a child's RLIMIT_CPU and
 *             reads it back, and the child sees the new value
 *   blocked   a child whose soft limit is already passed, blocked in waitpid on a
 *             grandchild that sleeps, is not interrupted by SIGXCPU while it waits
 *             (the limit is checked only while it runs)
 * Prints one line per case and "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t xcpu;
static volatile rlim_t cur_in_handler;

static void on_xcpu(int sig) {
    (void)sig;
    struct rlimit r;
    getrlimit(RLIMIT_CPU, &r);
    if (xcpu == 0)
        cur_in_handler = r.rlim_cur;
    xcpu++;
}

static double cpu_seconds(pid_t who) {
    struct rusage ru;
    (void)who;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void burn(void) {
    volatile unsigned long x = 0;
    for (;;)
        x++;
}

static int wait_child(pid_t c) {
    int st;
    if (waitpid(c, &st, 0) != c)
        exit(2);
    return st;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t c = fork();
    if (c == 0) {
        struct rlimit r = {1, 3};
        if (setrlimit(RLIMIT_CPU, &r) != 0)
            _exit(2);
        burn();
    }
    int st = wait_child(c);
    double used = cpu_seconds(c);
    fprintf(stderr, "soft: child used %.3f s of CPU\n", used);
    printf("soft: %s, CPU %s\n",
           WIFSIGNALED(st) && WTERMSIG(st) == SIGXCPU ? "killed by SIGXCPU" : "WRONG END",
           used >= 0.5 && used < 2.9 ? "about 1 s" : "out of range");

    c = fork();
    if (c == 0) {
        signal(SIGXCPU, on_xcpu);
        struct rlimit r = {1, 2};
        if (setrlimit(RLIMIT_CPU, &r) != 0)
            _exit(2);
        int reported = 0;
        for (;;) {
            if (xcpu && !reported) {
                /* Report from outside the handler, then keep burning. */
                printf("hard: SIGXCPU handled, soft limit in the handler %lu\n",
                       (unsigned long)cur_in_handler);
                reported = 1;
            }
        }
    }
    st = wait_child(c);
    printf("hard: %s\n",
           WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "killed by SIGKILL" : "WRONG END");

    c = fork();
    if (c == 0) {
        signal(SIGXCPU, on_xcpu);
        struct rlimit r = {0, RLIM_INFINITY};
        pid_t g = fork();
        if (g == 0) {
            struct timespec ts = {0, 300 * 1000 * 1000};
            nanosleep(&ts, NULL);
            _exit(0);
        }
        if (setrlimit(RLIMIT_CPU, &r) != 0)
            _exit(2);
        int gst;
        pid_t w = waitpid(g, &gst, 0);
        printf("blocked: waitpid %s\n", w == g ? "returned the child" : "was interrupted");
        _exit(0);
    }
    wait_child(c);
    int p[2];
    if (pipe(p) != 0)
        return 2;
    c = fork();
    if (c == 0) {
        char ch;
        close(p[1]);
        if (read(p[0], &ch, 1) != 0) /* until the parent closes its end */
            _exit(3);
        struct rlimit r;
        getrlimit(RLIMIT_CPU, &r);
        _exit(r.rlim_cur == 50 && r.rlim_max == 60 ? 0 : 1);
    }
    close(p[0]);
    struct rlimit set = {50, 60}, got = {0, 0};
    int ok = prlimit(c, RLIMIT_CPU, &set, NULL) == 0 && prlimit(c, RLIMIT_CPU, NULL, &got) == 0 &&
             got.rlim_cur == 50 && got.rlim_max == 60;
    close(p[1]);
    st = wait_child(c);
    printf("prlimit: %s, the child %s\n", ok ? "set and read back" : "FAILED",
           WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "sees it" : "does not see it");
    printf("done\n");
    return 0;
}
