// A checkpoint workload (tests/tests/checkpoint.rs): pidfds and inotify. A pidfd of a
// running child and one of a child already reaped; an inotify instance watching a
// directory and a file in it, with two events queued. It prints "ready", sleeps ARGV[1]
// seconds (the checkpoint is taken then), and checks that everything is as it was:
// restored, the lines after "ready" show what came back; natively (a short sleep, no
// checkpoint) it prints the same. ARGV[2] is the directory to work in.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static int pidfd_send_signal(int fd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static const char *event_name(unsigned mask) {
  if (mask & IN_CREATE) return "CREATE";
  if (mask & IN_DELETE) return "DELETE";
  if (mask & IN_MODIFY) return "MODIFY";
  if (mask & IN_IGNORED) return "IGNORED";
  return "OTHER";
}

static void print_events(int in, const char *label) {
  char buf[4096] __attribute__((aligned(8)));
  ssize_t n = read(in, buf, sizeof buf);
  printf("%s=", label);
  if (n < 0) {
    printf("%s ", errno == EAGAIN ? "none" : strerror(errno));
    return;
  }
  for (char *p = buf; p < buf + n;) {
    struct inotify_event *e = (struct inotify_event *)p;
    printf("%s%d:%s:%s", p == buf ? "" : ",", e->wd, event_name(e->mask), e->len ? e->name : "");
    p += sizeof *e + e->len;
  }
  printf(" ");
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  const char *base = argc > 2 ? argv[2] : ".";

  pid_t running = fork();
  if (running == 0) {
    for (;;) pause();
  }
  int live = pidfd_open(running);
  if (live < 0) die("pidfd_open running");
  pid_t gone = fork();
  if (gone == 0) _exit(7);
  int reaped = pidfd_open(gone);
  if (reaped < 0) die("pidfd_open gone");
  if (waitpid(gone, NULL, 0) != gone) die("waitpid");

  char dir[256], file[300];
  snprintf(dir, sizeof dir, "%s/ckpt-watch-%d", base, (int)getpid());
  snprintf(file, sizeof file, "%s/a", dir);
  if (mkdir(dir, 0755)) die("mkdir");
  int in = inotify_init1(IN_NONBLOCK);
  if (in < 0) die("inotify_init1");
  int wd_dir = inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
  int fd = open(file, O_CREAT | O_WRONLY, 0644);
  if (fd < 0) die("open");
  int wd_file = inotify_add_watch(in, file, IN_MODIFY);
  if (write(fd, "x", 1) != 1) die("write");
  close(fd);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  struct pollfd pfd = {.fd = live, .events = POLLIN};
  printf("live_poll=%d ", poll(&pfd, 1, 0));
  pfd.fd = reaped;
  pfd.revents = 0;
  int r = poll(&pfd, 1, 0);
  printf("reaped_poll=%d,%s%s ", r, pfd.revents & POLLIN ? "in" : "",
         pfd.revents & POLLHUP ? "+hup" : "");
  errno = 0;
  r = pidfd_send_signal(reaped, 0);
  printf("reaped_signal=%s ", r == 0 ? "ok" : strerror(errno));
  if (pidfd_send_signal(live, SIGKILL)) die("pidfd_send_signal");
  siginfo_t si = {0};
  if (waitid(P_PIDFD, live, &si, WEXITED)) die("waitid");
  printf("live=%s pid=%s ", si.si_status == SIGKILL ? "killed" : "other",
         si.si_pid == running ? "same" : "other");

  printf("wds=%d,%d ", wd_dir, wd_file);
  print_events(in, "queued");
  // The watches are on the same files: a write to the file, a file made in the
  // directory, and a watch added now gets the next descriptor.
  fd = open(file, O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, "y", 1) != 1) die("append");
  close(fd);
  char other[310];
  snprintf(other, sizeof other, "%s/b", dir);
  fd = open(other, O_CREAT | O_WRONLY, 0644);
  if (fd < 0) die("open b");
  close(fd);
  print_events(in, "after");
  printf("new_wd=%d\n", inotify_add_watch(in, other, IN_MODIFY));
  unlink(file);
  unlink(other);
  rmdir(dir);
  printf("done\n");
  return 0;
}
