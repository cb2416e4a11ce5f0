// A checkpoint workload (tests/tests/checkpoint.rs): periodic timers of every kind, a
// signalfd with a pending signal, and an epoll instance watching a timerfd and a pipe. It
// prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken then), and checks that
// each timer still ticks, that the signalfd still reports its signal and that the epoll
// instance still reports both files. Restored, the lines after "ready" show what came back;
// natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static volatile long alarms, posix_ticks, bad_value;

static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void on_rt(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  posix_ticks++;
  if (info->si_value.sival_int != 42 || info->si_code != SI_TIMER) bad_value++;
}

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  struct itimerspec period = {{0, 50000000}, {0, 50000000}};

  signal(SIGALRM, on_alarm);
  struct itimerval real = {{0, 50000}, {0, 50000}};
  if (setitimer(ITIMER_REAL, &real, NULL)) die("setitimer real");
  // A CPU-time timer far away: it must still be armed, with its period, after a restore.
  struct itimerval virt = {{1000, 0}, {1000, 0}};
  if (setitimer(ITIMER_VIRTUAL, &virt, NULL)) die("setitimer virtual");

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_rt;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGRTMIN + 1, &sa, NULL);
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGRTMIN + 1;
  ev.sigev_value.sival_int = 42;
  timer_t posix;
  if (timer_create(CLOCK_MONOTONIC, &ev, &posix)) die("timer_create");
  if (timer_settime(posix, 0, &period, NULL)) die("timer_settime");
  // A one-shot POSIX timer far away: still armed, no period.
  timer_t far;
  if (timer_create(CLOCK_MONOTONIC, &ev, &far)) die("timer_create far");
  struct itimerspec once = {{0, 0}, {3600, 0}};
  if (timer_settime(far, 0, &once, NULL)) die("timer_settime far");

  // A POSIX timer on the process's CPU clock, far away: still armed, with its period.
  timer_t cpu;
  if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &cpu)) die("timer_create cpu");
  struct itimerspec cpu_far = {{1000, 0}, {1000, 0}};
  if (timer_settime(cpu, 0, &cpu_far, NULL)) die("timer_settime cpu");

  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  if (tfd < 0 || timerfd_settime(tfd, 0, &period, NULL)) die("timerfd");

  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, NULL);
  int sfd = signalfd(-1, &usr1, SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");
  kill(getpid(), SIGUSR1);

  int p[2];
  if (pipe(p)) die("pipe");
  if (write(p[1], "x", 1) != 1) die("write");
  int ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = 1};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e)) die("epoll_ctl timerfd");
  e.data.u64 = 2;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e)) die("epoll_ctl pipe");
  // An item that must not come back ready: the pipe's write end watched for input.
  e.data.u64 = 3;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &e)) die("epoll_ctl pipe write end");

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  long a0 = alarms, p0 = posix_ticks;
  uint64_t t0 = 0;
  sleep_for(0.6);
  // Ticks kept from before the window and new ones since; the timerfd's expirations are
  // read after epoll_wait (which must find it ready).
  printf("alarm=%s posix=%s si_value=%s ", alarms >= a0 + 3 && a0 >= 1 ? "moving" : "stopped",
         posix_ticks >= p0 + 3 && p0 >= 1 ? "moving" : "stopped", bad_value ? "bad" : "42");
  struct itimerval v;
  getitimer(ITIMER_VIRTUAL, &v);
  printf("virtual=%s ", v.it_value.tv_sec > 900 && v.it_interval.tv_sec == 1000 ? "armed" : "lost");
  struct itimerspec f;
  timer_gettime(far, &f);
  printf("far=%s ", f.it_value.tv_sec > 3000 && f.it_interval.tv_sec == 0 ? "armed" : "lost");
  timer_gettime(cpu, &f);
  printf("cpu=%s ", f.it_value.tv_sec > 900 && f.it_interval.tv_sec == 1000 ? "armed" : "lost");

  struct epoll_event got[4];
  int n = epoll_wait(ep, got, 4, 1000);
  int seen_timer = 0, seen_pipe = 0, seen_other = 0;
  for (int i = 0; i < n; i++) {
    if (got[i].data.u64 == 1) seen_timer = 1;
    else if (got[i].data.u64 == 2) seen_pipe = 1;
    else seen_other = 1;
  }
  printf("epoll=%s%s%s ", seen_timer ? "timer," : "", seen_pipe ? "pipe" : "",
         seen_other ? ",other" : "");

  if (read(tfd, &t0, 8) != 8) die("read timerfd");
  printf("timerfd=%s ", t0 >= 3 ? "moving" : "stopped");

  struct signalfd_siginfo si;
  ssize_t r = read(sfd, &si, sizeof si);
  printf("signalfd=%s\n", r == sizeof si && si.ssi_signo == SIGUSR1 ? "SIGUSR1" : "nothing");
  printf("done\n");
  return 0;
}
