/* CPU-time accounting: getrusage (SELF, THREAD, CHILDREN), wait4's rusage, times(),
 * CLOCK_PROCESS_CPUTIME_ID / CLOCK_THREAD_CPUTIME_ID and clock_getcpuclockid clocks,
 * /proc/self/stat utime/cutime. Busy loops do a fixed amount of work, and every check is
 * a wide band that holds natively and in the sandbox; each prints "name ok" or
 * "name BAD <value>" (stdout must equal native), with the measured values on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double ts_sec(struct timespec t) { return t.tv_sec + t.tv_nsec / 1e9; }
static double tv_sec(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

static double clock_sec(clockid_t c) {
    struct timespec t;
    if (clock_gettime(c, &t)) { perror("clock_gettime"); exit(2); }
    return ts_sec(t);
}

/* A fixed amount of work without system calls: about `ms` milliseconds of CPU on a
 * current x86-64 core, however long the host scheduler stretches it in wall time. */
static void busy(int ms) {
    volatile unsigned long x = 0;
    for (long i = 0; i < (long)ms * 2500000L; i++) x += (unsigned long)i;
}

static void band(const char *name, double v, double lo, double hi) {
    fprintf(stderr, "%s = %.3f (want %.3f..%.3f)\n", name, v, lo, hi);
    if (v >= lo && v <= hi) printf("%s ok\n", name);
    else printf("%s BAD %.3f\n", name, v);
}

static void expect(const char *name, int cond) { printf("%s %s\n", name, cond ? "ok" : "BAD"); }

static double self_utime(int who) {
    struct rusage r;
    if (getrusage(who, &r)) { perror("getrusage"); exit(2); }
    return tv_sec(r.ru_utime);
}

static double total(int who) {
    struct rusage r;
    getrusage(who, &r);
    return tv_sec(r.ru_utime) + tv_sec(r.ru_stime);
}

/* Field `n` (1-based, n > 2) of /proc/self/stat. */
static long stat_field(int n) {
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f || !fgets(buf, sizeof buf, f)) { perror("/proc/self/stat"); exit(2); }
    fclose(f);
    char *p = strrchr(buf, ')') + 2; /* field 3 */
    for (int i = 3; i < n; i++) p = strchr(p, ' ') + 1;
    return strtol(p, NULL, 10);
}

static void *thread_busy(void *arg) { (void)arg; busy(300); return NULL; }

int main(void) {
    long hz = sysconf(_SC_CLK_TCK);
    printf("clk_tck %ld\n", hz);

    /* Own time: getrusage, times, the CPU clocks, /proc. */
    struct tms t0, t1;
    times(&t0);
    double u0 = self_utime(RUSAGE_SELF);
    double p0 = clock_sec(CLOCK_PROCESS_CPUTIME_ID);
    double th0 = clock_sec(CLOCK_THREAD_CPUTIME_ID);
    clockid_t pclk;
    if (clock_getcpuclockid(getpid(), &pclk)) { printf("getcpuclockid BAD\n"); return 1; }
    double c0 = clock_sec(pclk);
    busy(400);
    double u1 = self_utime(RUSAGE_SELF);
    double p1 = clock_sec(CLOCK_PROCESS_CPUTIME_ID);
    double th1 = clock_sec(CLOCK_THREAD_CPUTIME_ID);
    double c1 = clock_sec(pclk);
    times(&t1);
    band("rusage-self-utime", u1 - u0, 0.05, 30.0);
    band("rusage-thread-utime", self_utime(RUSAGE_THREAD), 0.05, 30.0);
    band("process-cputime-busy", p1 - p0, 0.05, 30.0);
    band("thread-cputime-busy", th1 - th0, 0.05, 30.0);
    band("getcpuclockid-busy", c1 - c0, 0.05, 30.0);
    band("times-utime-ticks", (double)(t1.tms_utime - t0.tms_utime) / hz, 0.05, 30.0);
    band("proc-stat-utime", (double)stat_field(14) / hz, 0.05, 30.0);
    struct timespec nap = {0, 300000000};
    nanosleep(&nap, NULL);
    band("process-cputime-sleep", clock_sec(CLOCK_PROCESS_CPUTIME_ID) - p1, 0.0, 0.1);
    double a = clock_sec(CLOCK_PROCESS_CPUTIME_ID), b = clock_sec(CLOCK_PROCESS_CPUTIME_ID);
    expect("process-cputime-monotonic", b >= a);
    struct timespec res;
    clock_getres(CLOCK_PROCESS_CPUTIME_ID, &res);
    printf("res-process %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);
    clock_getres(CLOCK_THREAD_CPUTIME_ID, &res);
    printf("res-thread %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);
    struct timespec junk;
    errno = 0;
    int r = clock_gettime((clockid_t)(~0u << 3 | 3u), &junk); /* which = 3: invalid */
    printf("bad-clock %d %s\n", r, r ? strerror(errno) : "");

    /* Threads: the process total includes a thread's time, the main thread's does not. */
    double main0 = clock_sec(CLOCK_THREAD_CPUTIME_ID), proc0 = total(RUSAGE_SELF);
    pthread_t th;
    pthread_create(&th, NULL, thread_busy, NULL);
    clockid_t tclk;
    expect("pthread-getcpuclockid", pthread_getcpuclockid(th, &tclk) == 0);
    pthread_join(th, NULL);
    band("rusage-self-with-thread", total(RUSAGE_SELF) - proc0, 0.05, 30.0);
    band("main-thread-while-joining", clock_sec(CLOCK_THREAD_CPUTIME_ID) - main0, 0.0, 0.1);

    /* Children: nothing until waited for; then wait4's rusage, RUSAGE_CHILDREN, times. */
    expect("children-before", total(RUSAGE_CHILDREN) == 0.0);
    pid_t kid = fork();
    if (kid == 0) { busy(300); _exit(0); }
    usleep(500000);
    band("children-unwaited-zombie", total(RUSAGE_CHILDREN), 0.0, 0.0);
    int st;
    siginfo_t si;
    struct rusage peek;
    memset(&peek, 0, sizeof peek);
    syscall(SYS_waitid, P_PID, kid, &si, WEXITED | WNOWAIT, &peek);
    band("waitid-nowait-rusage", tv_sec(peek.ru_utime), 0.05, 30.0);
    band("children-after-nowait", total(RUSAGE_CHILDREN), 0.0, 0.0);
    struct rusage kr;
    memset(&kr, 0, sizeof kr);
    expect("wait4", wait4(kid, &st, 0, &kr) == kid && WIFEXITED(st));
    band("wait4-rusage-utime", tv_sec(kr.ru_utime), 0.05, 30.0);
    band("rusage-children-utime", self_utime(RUSAGE_CHILDREN), 0.05, 30.0);
    struct tms t2;
    times(&t2);
    band("times-cutime", (double)t2.tms_cutime / hz, 0.05, 30.0);
    band("proc-stat-cutime", (double)stat_field(16) / hz, 0.05, 30.0);

    /* A grandchild's time reaches the grandparent through the child's wait. */
    double before = self_utime(RUSAGE_CHILDREN);
    kid = fork();
    if (kid == 0) {
        pid_t g = fork();
        if (g == 0) { busy(300); _exit(0); }
        waitpid(g, NULL, 0);
        _exit(0);
    }
    memset(&kr, 0, sizeof kr);
    wait4(kid, &st, 0, &kr);
    band("wait4-includes-grandchild", tv_sec(kr.ru_utime), 0.05, 30.0);
    band("children-include-grandchild", self_utime(RUSAGE_CHILDREN) - before, 0.05, 30.0);

    /* A child reaped without a wait (SIGCHLD ignored) is not counted. */
    before = total(RUSAGE_CHILDREN);
    signal(SIGCHLD, SIG_IGN);
    kid = fork();
    if (kid == 0) { busy(200); _exit(0); }
    errno = 0;
    r = waitpid(kid, NULL, 0);
    printf("autoreaped %d %s\n", r, strerror(errno));
    band("autoreaped-not-counted", total(RUSAGE_CHILDREN) - before, 0.0, 0.0);

    struct rusage me;
    getrusage(RUSAGE_SELF, &me);
    expect("maxrss-nonzero", me.ru_maxrss > 0);
    printf("done\n");
    return 0;
}
