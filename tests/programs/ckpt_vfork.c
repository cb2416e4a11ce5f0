// A checkpoint workload (tests/tests/checkpoint.rs): the parent vforks; the child (still
// in the vfork window, sharing the parent's memory) stores its PID, prints "ready", sleeps
// ARGV[1] seconds (the checkpoint is taken then, with the parent blocked in vfork) and
// calls _exit(7). The parent, resumed once the child exits, checks that vfork returned
// the child's PID and that waitpid reports exit status 7, then vforks once more (a child
// that exits at once) to show the restored process still vforks.
// Natively (a short sleep, no checkpoint) it prints the same lines.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child_pid;

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int reap(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) != pid) {
    perror("waitpid");
    exit(1);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 0.1;
  pid_t pid = vfork();
  if (pid < 0) {
    perror("vfork");
    return 1;
  }
  if (pid == 0) {
    static const char ready[] = "ready\n";
    child_pid = getpid();
    if (write(1, ready, sizeof ready - 1) < 0) _exit(2);
    sleep_for(secs);
    _exit(7);
  }
  printf("vfork returned the child: %s\n", pid == child_pid ? "yes" : "no");
  printf("child status %d\n", reap(pid));
  pid = vfork();
  if (pid == 0) _exit(3);
  printf("second vfork: %s, status %d\n", pid > 0 ? "ok" : strerror(errno),
         pid > 0 ? reap(pid) : -1);
  printf("done\n");
  return 0;
}
