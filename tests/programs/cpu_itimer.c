// ITIMER_VIRTUAL and ITIMER_PROF fire on the process's CPU time: a busy loop gets
// SIGVTALRM and SIGPROF, a sleeping process gets neither; getitimer counts down CPU time;
// a one-shot timer fires once and reads as disarmed after.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int vt, prof;
static void on_vt(int s) { (void)s; vt++; }
static void on_prof(int s) { (void)s; prof++; }

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void spin(double secs) {
    double end = cpu_now() + secs;
    volatile unsigned long x = 0;
    while (cpu_now() < end)
        for (int i = 0; i < 100000; i++) x++;
}

int main(void) {
    signal(SIGVTALRM, on_vt);
    signal(SIGPROF, on_prof);
    struct itimerval it = {.it_interval = {0, 20000}, .it_value = {0, 20000}};
    setitimer(ITIMER_VIRTUAL, &it, NULL);
    setitimer(ITIMER_PROF, &it, NULL);
    struct itimerval cur;
    getitimer(ITIMER_VIRTUAL, &cur);
    long left = cur.it_value.tv_sec * 1000000 + cur.it_value.tv_usec;
    // Linux may round to its clock's tick: a little above 20 ms is fine.
    printf("armed: interval=%ld value_0_to_30ms=%d\n", cur.it_interval.tv_usec,
           (int)(left > 0 && left <= 30000));
    spin(0.5);
    printf("busy 0.5s: SIGVTALRM %s, SIGPROF %s\n", vt >= 5 ? ">=5" : "few",
           prof >= 5 ? ">=5" : "few");
    // Sleeping uses no CPU time: no signals.
    int v0 = vt, p0 = prof;
    usleep(300000);
    printf("asleep 0.3s: SIGVTALRM %s, SIGPROF %s\n", vt - v0 <= 1 ? "<=1" : "many",
           prof - p0 <= 1 ? "<=1" : "many");
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_VIRTUAL, &off, &cur);
    printf("old interval=%ld\n", cur.it_interval.tv_usec);
    setitimer(ITIMER_PROF, &off, NULL);
    // One shot.
    vt = 0;
    struct itimerval once = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_VIRTUAL, &once, NULL);
    spin(0.3);
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("one-shot: fired=%d disarmed=%d\n", vt,
           (int)(cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0));
    errno = 0;
    printf("bad which: %d\n", setitimer(7, &once, NULL));
    return 0;
}
