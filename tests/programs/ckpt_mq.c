// A checkpoint workload (tests/tests/checkpoint.rs): POSIX message queues. One held open
// with messages of two priorities, one no fd holds (found by name), one unlinked but still
// open, one with an mq_notify registration, and one a child waits on in mq_receive. It
// prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken then), and checks that
// every queue is as it was: restored, the lines after "ready" show what came back;
// natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static volatile sig_atomic_t notified;
static volatile int notified_value;

static void on_usr1(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  notified = 1;
  notified_value = info->si_value.sival_int;
}

static char names[5][64];

static mqd_t open_queue(int which, const char *tag, int flags, long maxmsg) {
  snprintf(names[which], sizeof names[which], "/ckpt-%s-%d", tag, (int)getpid());
  struct mq_attr attr = {.mq_maxmsg = maxmsg, .mq_msgsize = 64};
  mqd_t q = mq_open(names[which], flags | O_CREAT | O_EXCL, 0640, &attr);
  if (q == (mqd_t)-1) die(names[which]);
  return q;
}

static void receive(mqd_t q, const char *label) {
  char buf[64] = {0};
  unsigned prio = 0;
  ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
  if (n < 0)
    printf("%s=%s ", label, strerror(errno));
  else
    printf("%s=%.*s/%u ", label, (int)n, buf, prio);
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;

  mqd_t held = open_queue(0, "held", O_RDWR | O_NONBLOCK, 4);
  if (mq_send(held, "low", 3, 1) || mq_send(held, "high", 4, 7) || mq_send(held, "low-2", 5, 1))
    die("mq_send held");
  mqd_t idle = open_queue(1, "idle", O_WRONLY, 2);
  if (mq_send(idle, "idle", 4, 3)) die("mq_send idle");
  mq_close(idle);
  mqd_t anon = open_queue(2, "anon", O_RDWR, 2);
  if (mq_send(anon, "anon", 4, 0)) die("mq_send anon");
  if (mq_unlink(names[2])) die("mq_unlink");
  mqd_t noted = open_queue(3, "noted", O_RDWR | O_NONBLOCK, 2);
  struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO | SA_RESTART};
  sigaction(SIGUSR1, &sa, NULL);
  struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
  ev.sigev_value.sival_int = 77;
  if (mq_notify(noted, &ev)) die("mq_notify");
  mqd_t waited = open_queue(4, "waited", O_RDWR, 2);
  pid_t child = fork();
  if (child == 0) {
    char buf[64] = {0};
    unsigned prio = 0;
    ssize_t n = mq_receive(waited, buf, sizeof buf, &prio);
    _exit(n == 6 && prio == 9 && memcmp(buf, "wakeup", 6) == 0 ? 0 : 1);
  }

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  struct mq_attr attr;
  mq_getattr(held, &attr);
  printf("held=%ld,%ld,%ld,%s ", attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs,
         attr.mq_flags & O_NONBLOCK ? "nonblock" : "block");
  receive(held, "first");
  receive(held, "second");
  receive(held, "third");
  receive(held, "fourth");
  idle = mq_open(names[1], O_RDONLY | O_NONBLOCK);
  if (idle == (mqd_t)-1) {
    printf("idle=%s ", strerror(errno));
  } else {
    mq_getattr(idle, &attr);
    printf("idle_max=%ld ", attr.mq_maxmsg);
    receive(idle, "idle");
  }
  receive(anon, "anon");
  printf("anon_name=%s ", mq_open(names[2], O_RDONLY) == (mqd_t)-1 && errno == ENOENT
                              ? "gone" : "found");
  if (mq_send(noted, "ping", 4, 0)) die("mq_send noted");
  for (int i = 0; i < 100 && !notified; i++) sleep_for(0.01);
  printf("notified=%s value=%d ", notified ? "yes" : "no", notified_value);
  if (mq_send(waited, "wakeup", 6, 9)) die("mq_send waited");
  int status;
  waitpid(child, &status, 0);
  printf("waiter=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "woke" : "failed");
  for (int i = 0; i < 5; i++) mq_unlink(names[i]);
  printf("done\n");
  return 0;
}
