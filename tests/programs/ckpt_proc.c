// A checkpoint workload (tests/tests/checkpoint.rs): /proc files held open across the
// checkpoint, read part-way (its own /proc/PID/status, a child's /proc/PID/stat), and a
// pipe reopened through /proc/self/fd (a second reader and a second writer of it). It
// prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken then) and reads on:
// restored, the lines after "ready" show that the files name the same processes at the
// same offsets and that the reopened ends are the same pipe; natively (a short sleep, no
// checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

static int reopen(int fd, int flags) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int r = open(path, flags);
  if (r < 0) die(path);
  return r;
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  pid_t kid = fork();
  if (kid < 0) die("fork");
  if (kid == 0) {
    for (;;) pause();
  }
  int status = open("/proc/self/status", O_RDONLY);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", kid);
  int stat = open(path, O_RDONLY);
  char buf[256];
  // "Name:\t" of the status file, and the PID field of the child's stat.
  if (status < 0 || read(status, buf, 6) != 6) die("status");
  int n = snprintf(path, sizeof path, "%d ", kid);
  if (stat < 0 || read(stat, buf, n) != n) die("stat");

  int p[2];
  if (pipe(p) || write(p[1], "abc", 3) != 3) die("pipe");
  int r2 = reopen(p[0], O_RDONLY);
  int w2 = reopen(p[1], O_WRONLY);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  memset(buf, 0, sizeof buf);
  ssize_t got = read(status, buf, sizeof buf - 1);
  char *nl = got > 0 ? strchr(buf, '\n') : NULL;
  if (nl) *nl = 0;
  const char *me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  // The name differs natively and in the test's bundle: whether it is its own is printed.
  printf("status at offset 6: %s\n", got <= 0 ? "(nothing)" : strcmp(buf, me) ? buf : "its name");
  memset(buf, 0, sizeof buf);
  got = read(stat, buf, sizeof buf - 1);
  char *close_paren = got > 0 ? strchr(buf, ')') : NULL;
  int named = close_paren && buf[0] == '(' && (size_t)(close_paren - buf - 1) == strlen(me) &&
              !strncmp(buf + 1, me, strlen(me));
  printf("child stat after its pid: %s\n", named ? "(its name)" : buf);

  if (write(p[1], "def", 3) != 3 || write(w2, "ghi", 3) != 3) die("write after");
  memset(buf, 0, sizeof buf);
  got = read(r2, buf, sizeof buf - 1);
  printf("reopened reader: %s\n", got > 0 ? buf : "(nothing)");
  close(p[1]);
  close(w2);
  got = read(p[0], buf, 1);
  printf("after closing both writers: %s\n", got == 0 ? "end of file" : "more");
  kill(kid, SIGKILL);
  waitpid(kid, NULL, 0);
  printf("done\n");
  return 0;
}
