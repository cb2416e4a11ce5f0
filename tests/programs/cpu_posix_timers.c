/* POSIX timers on CPU-time clocks (timer_create on CLOCK_PROCESS_CPUTIME_ID,
 * CLOCK_THREAD_CPUTIME_ID, clock_getcpuclockid and pthread_getcpuclockid clocks): they
 * expire by CPU time, not while the process sleeps; timer_gettime counts down CPU time;
 * a periodic timer whose signal stays queued reports the missed periods as overruns; an
 * absolute time already past expires at once; bad settings are EINVAL. Busy loops are
 * bounded by wall time, and each check prints a fixed line (stdout must equal native). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spins until `signo` is pending (it is blocked) or 10 s of wall time pass; returns
 * whether it came, with its siginfo in *si. */
static int spin_until(int signo, siginfo_t *si) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    struct timespec zero = {0, 0};
    double end = now(CLOCK_MONOTONIC) + 10;
    volatile unsigned long x = 0;
    while (now(CLOCK_MONOTONIC) < end) {
        for (int i = 0; i < 100000; i++) x++;
        if (sigtimedwait(&set, si, &zero) == signo) return 1;
    }
    return 0;
}

static timer_t make(clockid_t clock, int signo) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = signo;
    ev.sigev_value.sival_int = 77;
    timer_t id;
    if (timer_create(clock, &ev, &id)) {
        fprintf(stderr, "timer_create(%d): %s\n", (int)clock, strerror(errno));
        _exit(1);
    }
    return id;
}

static void arm(timer_t id, int flags, long value_ns, long interval_ns) {
    struct itimerspec its = {{0, interval_ns}, {value_ns / 1000000000, value_ns % 1000000000}};
    if (timer_settime(id, flags, &its, NULL)) {
        fprintf(stderr, "timer_settime: %s\n", strerror(errno));
        _exit(1);
    }
}

/* One-shot timer on `clock`: fires after `ms` of that clock, with the siginfo Linux gives. */
static void one_shot(const char *name, clockid_t clock) {
    timer_t id = make(clock, SIGUSR1);
    double start = now(clock);
    arm(id, 0, 50 * 1000000L, 0);
    struct itimerspec cur;
    timer_gettime(id, &cur);
    printf("%s: armed value_0_to_50ms=%d\n", name,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 &&
               cur.it_value.tv_nsec <= 50000000);
    siginfo_t si;
    int fired = spin_until(SIGUSR1, &si);
    double used = now(clock) - start;
    printf("%s: fired=%d code_timer=%d value=%d after_50ms_cpu=%d\n", name, fired,
           si.si_code == SI_TIMER, si.si_value.sival_int, used >= 0.05);
    timer_gettime(id, &cur);
    printf("%s: disarmed after=%d\n", name, cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    timer_delete(id);
}

static void *thread_clock_timer(void *arg) {
    (void)arg;
    clockid_t c;
    pthread_getcpuclockid(pthread_self(), &c);
    one_shot("pthread clock", c);
    return NULL;
}

int main(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);

    one_shot("process", CLOCK_PROCESS_CPUTIME_ID);
    one_shot("thread", CLOCK_THREAD_CPUTIME_ID);
    clockid_t own;
    clock_getcpuclockid(0, &own);
    one_shot("clock_getcpuclockid", own);
    pthread_t th;
    pthread_create(&th, NULL, thread_clock_timer, NULL);
    pthread_join(th, NULL);

    /* Sleeping uses no CPU time. */
    timer_t id = make(CLOCK_PROCESS_CPUTIME_ID, SIGUSR2);
    arm(id, 0, 100 * 1000000L, 0);
    usleep(300000);
    struct timespec zero = {0, 0};
    siginfo_t si;
    printf("asleep: fired=%d\n", sigtimedwait(&set, &si, &zero) == SIGUSR2);

    /* Periodic, signal blocked: the periods missed while it stays queued are overruns. */
    arm(id, 0, 1000000L, 1000000L);
    int fired = spin_until(SIGUSR2, &si);
    double end = now(CLOCK_PROCESS_CPUTIME_ID) + 0.1;
    volatile unsigned long x = 0;
    while (now(CLOCK_PROCESS_CPUTIME_ID) < end) x++;
    sigtimedwait(&set, &si, &zero);
    printf("periodic: fired=%d overrun_10_or_more=%d\n", fired, si.si_overrun >= 10);
    struct itimerspec cur;
    timer_gettime(id, &cur);
    printf("periodic: interval=%ld\n", cur.it_interval.tv_nsec);
    arm(id, 0, 0, 0);
    timer_gettime(id, &cur);
    printf("disarmed: value=%ld\n", (long)cur.it_value.tv_nsec);

    /* An absolute time already past. */
    struct itimerspec past = {{0, 0}, {0, 1}};
    timer_settime(id, TIMER_ABSTIME, &past, NULL);
    printf("absolute past: fired=%d\n", spin_until(SIGUSR2, &si));

    /* Bad settings. */
    struct itimerspec bad = {{0, -2}, {0, 1000000}};
    int r = timer_settime(id, 0, &bad, NULL);
    printf("negative interval: %d %s\n", r, strerror(errno));
    struct itimerspec big = {{0, 0}, {0, 1000000000}};
    r = timer_settime(id, 0, &big, NULL);
    printf("nsec 1e9: %d %s\n", r, strerror(errno));
    timer_delete(id);
    timer_t t2;
    /* The process CPU clock of a PID nobody has. */
    r = timer_create((clockid_t)((~4000000 << 3) | 2), NULL, &t2);
    printf("no such process: %d %s\n", r, strerror(errno));
    printf("done\n");
    return 0;
}
