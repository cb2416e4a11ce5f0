/* Timers: alarm, POSIX timers (SIGEV_SIGNAL, SIGEV_THREAD_ID), timerfd, signalfd. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static volatile int alarms, rts;
static void on_alrm(int s) { (void)s; alarms++; }
static void on_rt(int s, siginfo_t *si, void *u) { (void)s; (void)u; if (si->si_code == SI_TIMER && si->si_value.sival_int == 77) rts++; }

int main(void) {
    signal(SIGALRM, on_alrm);
    printf("alarm0 %u\n", alarm(5));
    printf("alarm1 %u\n", alarm(0));
    alarm(1);
    pause();
    printf("alarms %d\n", alarms);

    struct sigaction sa = {0};
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, NULL);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev._sigev_un._tid = (int)syscall(SYS_gettid);
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 77;
    timer_t tid;
    if (timer_create(CLOCK_MONOTONIC, &ev, &tid)) { perror("timer_create"); return 1; }
    struct itimerspec its = {{0, 20000000}, {0, 20000000}};
    timer_settime(tid, 0, &its, NULL);
    while (rts < 3) pause();
    struct itimerspec cur;
    timer_gettime(tid, &cur);
    printf("posix %d interval %ld\n", rts >= 3, cur.it_interval.tv_nsec);
    timer_delete(tid);
    printf("deleted-again %d\n", timer_delete(tid));

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec t2 = {{0, 10000000}, {0, 10000000}};
    timerfd_settime(tfd, 0, &t2, NULL);
    struct pollfd p = {tfd, POLLIN, 0};
    int pr = poll(&p, 1, 2000);
    uint64_t n = 0;
    read(tfd, &n, 8);
    printf("timerfd poll %d revents %d ticks>=1 %d\n", pr, p.revents, n >= 1);
    close(tfd);

    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    int sfd = signalfd(-1, &m, SFD_NONBLOCK);
    struct signalfd_siginfo si;
    printf("signalfd empty %zd\n", read(sfd, &si, sizeof si));
    kill(getpid(), SIGUSR2);
    p.fd = sfd;
    pr = poll(&p, 1, 2000);
    ssize_t r = read(sfd, &si, sizeof si);
    printf("signalfd poll %d read %zd signo %u pid-ok %d\n", pr, r, si.ssi_signo, si.ssi_pid == (uint32_t)getpid());
    return 0;
}
