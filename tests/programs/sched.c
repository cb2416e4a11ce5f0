/* Scheduler calls, priorities and resource limits, printed so that a native run and a sandbox
 * run can be compared line by line. Run as root (with CAP_SYS_NICE, CAP_SETUID); the
 * unprivileged checks happen in a child that drops to uid 12345 (12346 for the limits).
 *
 *   sched sched        get/setpriority, sched_* calls, affinity, ioprio, /proc/self/stat
 *   sched limits       RLIMIT_NOFILE (EMFILE, dup2 EBADF), hard-limit raise, RLIMIT_NPROC
 *   sched stack KIB    recurses through KIB KiB of stack, then prints "stack ok"
 *   sched wait         waitid with WSTOPPED or WCONTINUED only (no WEXITED)
 *   sched clock        clock_settime, settimeofday, adjtimex (sandbox only: root natively
 *                      could set the host's clock)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHOW(label, expr)                                                        \
    do {                                                                         \
        errno = 0;                                                               \
        long r_ = (long)(expr);                                                  \
        printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "",                   \
               r_ < 0 ? strerrorname_np(errno) : "");                            \
    } while (0)

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
    uint32_t util_min, util_max;
};

static long getprio_raw(int which, int who) { return syscall(SYS_getpriority, which, who); }

/* Fields 18, 19, 40 and 41 of a stat file: priority, nice, rt_priority, policy. */
static void show_stat(const char *path) {
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        printf("%s unreadable\n", path);
        if (f) fclose(f);
        return;
    }
    fclose(f);
    char *p = strrchr(buf, ')');
    int field = 2;
    long vals[64] = {0};
    for (char *tok = strtok(p + 1, " "); tok && field < 63; tok = strtok(NULL, " "))
        vals[++field] = strtol(tok, NULL, 10);
    printf("stat prio=%ld nice=%ld rt_priority=%ld policy=%ld\n", vals[18], vals[19], vals[40],
           vals[41]);
}

static void *thread_main(void *arg) {
    (void)arg;
    int tid = (int)syscall(SYS_gettid);
    SHOW("thread inherits getpriority", getprio_raw(PRIO_PROCESS, tid));
    SHOW("thread setpriority 14", setpriority(PRIO_PROCESS, tid, 14));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    show_stat(path);
    return NULL;
}

static void show_affinity(const char *label) {
    cpu_set_t s;
    CPU_ZERO(&s);
    if (sched_getaffinity(0, sizeof s, &s)) {
        printf("%s: getaffinity %s\n", label, strerrorname_np(errno));
        return;
    }
    printf("%s: count=%d cpu0=%d\n", label, CPU_COUNT(&s), CPU_ISSET(0, &s));
}

static void unprivileged_child(pid_t parent) {
    if (setresuid(12345, 12345, 12345)) {
        perror("setresuid");
        _exit(2);
    }
    SHOW("child setpriority 10", setpriority(PRIO_PROCESS, 0, 10));
    SHOW("child setpriority 5 (raise)", setpriority(PRIO_PROCESS, 0, 5));
    SHOW("child getpriority", getprio_raw(PRIO_PROCESS, 0));
    SHOW("child getpriority PRIO_USER", getprio_raw(PRIO_USER, 12345));
    SHOW("child setpriority parent", setpriority(PRIO_PROCESS, parent, 10));
    SHOW("child setpriority PRIO_USER", setpriority(PRIO_USER, 0, 12));
    SHOW("child getpriority after PRIO_USER", getprio_raw(PRIO_PROCESS, 0));
    struct sched_param p = {.sched_priority = 1};
    SHOW("child setscheduler FIFO", sched_setscheduler(0, SCHED_FIFO, &p));
    p.sched_priority = 0;
    SHOW("child setscheduler BATCH", sched_setscheduler(0, SCHED_BATCH, &p));
    SHOW("child setscheduler IDLE", sched_setscheduler(0, SCHED_IDLE, &p));
    SHOW("child leave IDLE", sched_setscheduler(0, SCHED_OTHER, &p));
    SHOW("child getscheduler", sched_getscheduler(0));
    SHOW("child setscheduler parent", sched_setscheduler(parent, SCHED_BATCH, &p));
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(0, &s);
    SHOW("child setaffinity parent", sched_setaffinity(parent, sizeof s, &s));
    SHOW("child ioprio_set RT", syscall(SYS_ioprio_set, 1, 0, (1 << 13) | 4));
    SHOW("child ioprio_set IDLE", syscall(SYS_ioprio_set, 1, 0, 3 << 13));
    SHOW("child ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    SHOW("child ioprio_set parent", syscall(SYS_ioprio_set, 1, parent, 3 << 13));
    fflush(stdout);
    _exit(0);
}

static int sched_checks(void) {
    /* Its own process group: PRIO_PGRP must not reach whoever started the program. */
    setpgid(0, 0);
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, 0));
    SHOW("getpriority bad which", getprio_raw(3, 0));
    SHOW("getpriority no such pid", getprio_raw(PRIO_PROCESS, (1 << 29) + 1));
    SHOW("getpriority pid -1", getprio_raw(PRIO_PROCESS, -1));
    SHOW("getpriority pgrp", getprio_raw(PRIO_PGRP, 0));
    SHOW("setpriority 5", setpriority(PRIO_PROCESS, 0, 5));
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, getpid()));
    show_stat("/proc/self/stat");
    SHOW("setpriority 100", setpriority(PRIO_PROCESS, 0, 100));
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, 0));
    SHOW("setpriority -100", setpriority(PRIO_PROCESS, 0, -100));
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, 0));
    SHOW("setpriority pgrp 3", setpriority(PRIO_PGRP, 0, 3));
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, 0));
    SHOW("nice(2)", nice(2));
    SHOW("setpriority bad which", setpriority(7, 0, 1));

    SHOW("setpriority 16", setpriority(PRIO_PROCESS, 0, 16));
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    pthread_join(th, NULL);
    SHOW("main after thread", getprio_raw(PRIO_PROCESS, 0));
    SHOW("setpriority 0", setpriority(PRIO_PROCESS, 0, 0));

    struct sched_param p = {0};
    SHOW("getscheduler", sched_getscheduler(0));
    SHOW("getscheduler -1", sched_getscheduler(-1));
    SHOW("getscheduler no such pid", sched_getscheduler((1 << 29) + 1));
    SHOW("getparam", sched_getparam(0, &p));
    printf("param %d\n", p.sched_priority);
    SHOW("getparam NULL", syscall(SYS_sched_getparam, 0, NULL));
    SHOW("priority max FIFO", sched_get_priority_max(SCHED_FIFO));
    SHOW("priority min RR", sched_get_priority_min(SCHED_RR));
    SHOW("priority max OTHER", sched_get_priority_max(SCHED_OTHER));
    SHOW("priority min IDLE", sched_get_priority_min(SCHED_IDLE));
    SHOW("priority max 4", sched_get_priority_max(4));
    p.sched_priority = 0;
    SHOW("setscheduler FIFO 0", sched_setscheduler(0, SCHED_FIFO, &p));
    p.sched_priority = 100;
    SHOW("setscheduler FIFO 100", sched_setscheduler(0, SCHED_FIFO, &p));
    p.sched_priority = 5;
    SHOW("setscheduler BATCH 5", sched_setscheduler(0, SCHED_BATCH, &p));
    SHOW("setscheduler 4", sched_setscheduler(0, 4, &p));
    SHOW("setscheduler RR 5", sched_setscheduler(0, SCHED_RR, &p));
    SHOW("getscheduler", sched_getscheduler(0));
    struct timespec ts = {9, 9};
    SHOW("rr_get_interval", sched_rr_get_interval(0, &ts));
    printf("interval %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    show_stat("/proc/self/stat");
    p.sched_priority = 7;
    SHOW("setparam 7", sched_setparam(0, &p));
    SHOW("getparam", sched_getparam(0, &p));
    printf("param %d\n", p.sched_priority);
    p.sched_priority = 0;
    SHOW("setscheduler IDLE|RESET_ON_FORK",
         sched_setscheduler(0, SCHED_IDLE | SCHED_RESET_ON_FORK, &p));
    SHOW("getscheduler", sched_getscheduler(0));
    SHOW("rr_get_interval", sched_rr_get_interval(0, &ts));
    printf("interval %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    pid_t kid = fork();
    if (kid == 0) {
        printf("forked child getscheduler = %d\n", sched_getscheduler(0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(kid, NULL, 0);
    SHOW("setscheduler OTHER", sched_setscheduler(0, SCHED_OTHER, &p));

    struct attr a;
    memset(&a, 0, sizeof a);
    SHOW("getattr", syscall(SYS_sched_getattr, 0, &a, sizeof a, 0));
    printf("attr size=%u policy=%u nice=%d priority=%u\n", a.size, a.policy, a.nice, a.priority);
    SHOW("getattr small", syscall(SYS_sched_getattr, 0, &a, 40, 0));
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.policy = SCHED_BATCH;
    a.nice = 6;
    SHOW("setattr BATCH nice 6", syscall(SYS_sched_setattr, 0, &a, 0));
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, 0));
    SHOW("getscheduler", sched_getscheduler(0));
    SHOW("setattr flags arg", syscall(SYS_sched_setattr, 0, &a, 1));
    a.size = 12;
    SHOW("setattr size 12", syscall(SYS_sched_setattr, 0, &a, 0));
    printf("size written back %u\n", a.size);
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    SHOW("setattr OTHER", syscall(SYS_sched_setattr, 0, &a, 0));
    SHOW("getpriority", getprio_raw(PRIO_PROCESS, 0));

    show_affinity("initial");
    cpu_set_t s;
    CPU_ZERO(&s);
    SHOW("setaffinity empty", sched_setaffinity(0, sizeof s, &s));
    CPU_SET(0, &s);
    SHOW("setaffinity cpu0", sched_setaffinity(0, sizeof s, &s));
    show_affinity("after");
    {
        char line[256];
        FILE *f = fopen("/proc/self/status", "r");
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "Cpus_allowed", 12)) fputs(line, stdout);
        if (f) fclose(f);
    }
    unsigned cpu = 99;
    SHOW("getcpu", syscall(SYS_getcpu, &cpu, NULL, NULL));
    printf("cpu %u\n", cpu);
    SHOW("getaffinity len 4", syscall(SYS_sched_getaffinity, 0, 4, &s));
    SHOW("setaffinity len 0", syscall(SYS_sched_setaffinity, 0, 0, &s));

    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    SHOW("ioprio_set BE 4", syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 4));
    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, getpid()));
    SHOW("ioprio_set class 5", syscall(SYS_ioprio_set, 1, 0, 5 << 13));
    SHOW("ioprio_set NONE 1", syscall(SYS_ioprio_set, 1, 0, 1));
    SHOW("ioprio_get bad which", syscall(SYS_ioprio_get, 9, 0));
    SHOW("sched_yield", sched_yield());

    fflush(stdout);
    pid_t parent = getpid();
    kid = fork();
    if (kid == 0)
        unprivileged_child(parent);
    int status = 0;
    waitpid(kid, &status, 0);
    printf("child status %d\n", status);
    return 0;
}

static int limit_checks(void) {
    struct rlimit r = {10, 10};
    SHOW("setrlimit NOFILE 10", setrlimit(RLIMIT_NOFILE, &r));
    int opened = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            printf("open failed after %d: %s\n", opened, strerrorname_np(errno));
            break;
        }
        opened++;
    }
    SHOW("dup2 to 10", dup2(0, 10));
    SHOW("dup2 to 9", dup2(0, 9) >= 0 ? 0 : -1);
    SHOW("dup", dup(0));
    SHOW("fcntl F_DUPFD 10", fcntl(0, F_DUPFD, 10));
    struct rlimit cur;
    getrlimit(RLIMIT_NOFILE, &cur);
    printf("nofile %lu %lu\n", (unsigned long)cur.rlim_cur, (unsigned long)cur.rlim_max);
    r.rlim_cur = 20;
    SHOW("soft above hard", setrlimit(RLIMIT_NOFILE, &r));
    SHOW("bad resource", syscall(SYS_prlimit64, 0, 99, NULL, &cur));
    fflush(stdout);

    pid_t kid = fork();
    if (kid == 0) {
        /* Not 12345: the scheduler checks' child may run at the same time, and PRIO_USER and
         * RLIMIT_NPROC count every task of a user. */
        if (setresuid(12346, 12346, 12346)) _exit(2);
        r.rlim_cur = r.rlim_max = 9;
        SHOW("lower hard unprivileged", setrlimit(RLIMIT_NOFILE, &r));
        r.rlim_max = 10;
        SHOW("raise hard unprivileged", setrlimit(RLIMIT_NOFILE, &r));
        r.rlim_cur = r.rlim_max = 1;
        SHOW("NPROC 1", setrlimit(RLIMIT_NPROC, &r));
        pid_t g = fork();
        if (g == 0) _exit(0);
        printf("fork at NPROC limit: %s\n", g < 0 ? strerrorname_np(errno) : "succeeded");
        if (g > 0) waitpid(g, NULL, 0);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(kid, &status, 0);
    printf("child status %d\n", status);
    return 0;
}

/* Uses about `kib` KiB of stack, touching every page, without the compiler folding it away. */
static int recurse(int kib) {
    volatile char frame[1024];
    frame[0] = (char)kib;
    frame[1023] = 0;
    if (kib <= 1) return frame[0];
    return recurse(kib - 1) + frame[1023];
}

static int clock_checks(void) {
    struct timespec ts = {1000, 0};
    SHOW("clock_settime REALTIME", clock_settime(CLOCK_REALTIME, &ts));
    SHOW("clock_settime MONOTONIC", clock_settime(CLOCK_MONOTONIC, &ts));
    ts.tv_nsec = -1;
    SHOW("clock_settime bad nsec", clock_settime(CLOCK_REALTIME, &ts));
    struct timeval tv = {1000, 0};
    SHOW("settimeofday", settimeofday(&tv, NULL));
    tv.tv_usec = 2000000;
    SHOW("settimeofday bad usec", settimeofday(&tv, NULL));
    struct timex tx = {0};
    int state = adjtimex(&tx);
    printf("adjtimex read: %s, unsync=%d\n", state >= 0 ? "ok" : strerrorname_np(errno),
           (tx.status & STA_UNSYNC) != 0);
    tx.modes = ADJ_FREQUENCY;
    SHOW("adjtimex set frequency", adjtimex(&tx));
    return 0;
}

static void show_waitid(const char *label, idtype_t type, pid_t pid, int options) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    errno = 0;
    int r = waitid(type, pid, &si, options);
    printf("%s = %d%s%s code=%d status=%d\n", label, r, r < 0 ? " " : "",
           r < 0 ? strerrorname_np(errno) : "", si.si_code, si.si_status);
}

static int wait_checks(void) {
    int go[2];
    if (pipe(go)) return 1;
    pid_t c = fork();
    if (c == 0) {
        char b;
        close(go[1]);
        raise(SIGSTOP);
        /* Continued: stay alive until the parent has seen it, then exit. */
        if (read(go[0], &b, 1) != 1) _exit(4);
        _exit(3);
    }
    close(go[0]);
    show_waitid("waitid WSTOPPED", P_PID, c, WSTOPPED);
    show_waitid("waitid WCONTINUED|WNOHANG while stopped", P_PID, c, WCONTINUED | WNOHANG);
    kill(c, SIGCONT);
    show_waitid("waitid WCONTINUED", P_PID, c, WCONTINUED);
    if (write(go[1], "x", 1) != 1) return 1;
    /* The exit is reported only with WEXITED: once it is a zombie, WSTOPPED alone is ECHILD. */
    show_waitid("waitid WEXITED|WNOWAIT", P_PID, c, WEXITED | WNOWAIT);
    show_waitid("waitid WSTOPPED|WCONTINUED|WNOHANG", P_PID, c, WSTOPPED | WCONTINUED | WNOHANG);
    show_waitid("waitid WEXITED", P_PID, c, WEXITED);
    show_waitid("waitid no event", P_ALL, 0, WNOHANG);
    return 0;
}

/* get/setpriority on a child that exited but is not reaped yet: Linux still finds it, with
 * its last nice value and owner; once reaped, ESRCH. The child drops to uid 12345 first. */
static int zombie_checks(void) {
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t c = fork();
    if (c == 0) {
        setpriority(PRIO_PROCESS, 0, 5);
        if (setresuid(12345, 12345, 12345) != 0)
            _exit(2);
        _exit(write(ready[1], "r", 1) == 1 ? 0 : 3);
    }
    char r;
    if (read(ready[0], &r, 1) != 1)
        return 1;
    /* The child exits right after its write: wait until it is a zombie (waitid WNOWAIT). */
    siginfo_t si;
    if (waitid(P_PID, c, &si, WEXITED | WNOWAIT) != 0)
        return 1;
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, c);
    printf("zombie getpriority %d errno %d\n", prio, errno);
    printf("zombie setpriority as root %d\n", setpriority(PRIO_PROCESS, c, 6));
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0)
        return 1;
    int arc = sched_setaffinity(c, sizeof mask, &mask);
    printf("zombie setaffinity as root %d errno %s\n", arc, arc ? strerror(errno) : "-");
    if (setresuid(-1, 23456, -1) == 0) { /* no longer its owner, and no CAP_SYS_NICE */
        int rc = setpriority(PRIO_PROCESS, c, 6);
        printf("zombie setpriority as another user %d errno %s\n", rc, rc ? strerror(errno) : "-");
        rc = sched_setaffinity(c, sizeof mask, &mask);
        printf("zombie setaffinity as another user %d errno %s\n", rc, rc ? strerror(errno) : "-");
        if (setresuid(-1, 0, -1) != 0)
            return 1;
    }
    int status;
    if (waitpid(c, &status, 0) != c)
        return 1;
    errno = 0;
    int rc = setpriority(PRIO_PROCESS, c, 6);
    printf("reaped setpriority %d errno %s status %d\n", rc, strerror(errno), status);
    rc = sched_setaffinity(c, sizeof mask, &mask);
    printf("reaped setaffinity %d errno %s\n", rc, rc ? strerror(errno) : "-");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "sched")) return sched_checks();
    if (argc >= 2 && !strcmp(argv[1], "limits")) return limit_checks();
    if (argc >= 3 && !strcmp(argv[1], "stack")) {
        recurse(atoi(argv[2]));
        printf("stack ok\n");
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "clock")) return clock_checks();
    if (argc >= 2 && !strcmp(argv[1], "wait")) return wait_checks();
    if (argc >= 2 && !strcmp(argv[1], "zombie")) return zombie_checks();
    fprintf(stderr, "usage: sched sched|limits|stack KIB|clock|wait|zombie\n");
    return 2;
}
