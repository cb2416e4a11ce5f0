// A checkpoint workload (tests/tests/checkpoint.rs): an interactive shell with job
// control on a pty. The program drives `ARGV[2] -i` (busybox sh) on the slave of a pty of
// its own: the shell runs `cat` in the foreground, which echoes a typed line. It prints
// "ready", sleeps ARGV[1] seconds (the checkpoint is taken then), then types another line
// (cat echoes it), ^C (SIGINT to the foreground job: the shell reports status 130) and
// `exit`. Restored, the lines after "ready" show that the terminal, the session and its
// foreground job came back; natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

static char shown[65536];
static size_t shown_len;

// Reads what the terminal shows until `what` appears after `from` (30 s at most).
static int wait_for(int m, size_t from, const char *what) {
  for (int i = 0; i < 300; i++) {
    shown[shown_len] = 0;
    if (strstr(shown + from, what)) return 1;
    struct pollfd p = {.fd = m, .events = POLLIN};
    if (poll(&p, 1, 100) > 0) {
      ssize_t n = read(m, shown + shown_len, sizeof shown - 1 - shown_len);
      if (n > 0) shown_len += (size_t)n;
    }
  }
  return 0;
}

static void type(int m, const char *s) {
  if (write(m, s, strlen(s)) != (ssize_t)strlen(s)) die("write");
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  // A shell that never exits ends the run (SIGALRM) instead of hanging it.
  alarm((unsigned)window + 60);
  const char *sh = argc > 2 ? argv[2] : "/bin/sh";
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) die("posix_openpt");
  char *name = ptsname(m);
  pid_t shell = fork();
  if (shell == 0) {
    // The shell's foreground job must get ^C's SIGINT whatever its launcher ignored (a
    // background job of a non-interactive shell starts with SIGINT and SIGQUIT ignored, and
    // an ignored signal stays ignored across exec).
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    if (setsid() < 0) die("setsid");
    int s = open(name, O_RDWR);  // a session leader's open: its controlling terminal
    if (s < 0) die("open slave");
    dup2(s, 0);
    dup2(s, 1);
    dup2(s, 2);
    if (s > 2) close(s);
    close(m);
    setenv("PS1", "$ ", 1);
    setenv("HOME", "/", 1);
    setenv("TERM", "dumb", 1);
    unsetenv("ENV");
    execl(sh, "sh", "-i", (char *)NULL);
    die("execl");
  }
  if (!wait_for(m, 0, "$ ")) die("no prompt");
  size_t at = shown_len;
  type(m, "cat\n");
  // The shell's line editor reads raw: type the line once cat reads the terminal.
  if (!wait_for(m, at, "cat\r\n")) die("no cat");
  sleep_for(0.5);
  at = shown_len;
  type(m, "typed-before\n");
  // The echo, then cat's copy.
  if (!wait_for(m, at, "typed-before\r\ntyped-before\r\n")) {
    fprintf(stderr, "shown: %s\n", shown);
    die("cat before");
  }
  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  at = shown_len;
  type(m, "typed-after\n");
  printf("cat_after=%s ", wait_for(m, at, "typed-after\r\ntyped-after\r\n") ? "echoes" : "silent");
  at = shown_len;
  type(m, "\x03");
  printf("prompt_after_intr=%s ", wait_for(m, at, "$ ") ? "yes" : "no");
  at = shown_len;
  type(m, "echo status=$?\n");
  printf("%s ", wait_for(m, at, "status=130") ? "status=130" : "status=other");
  type(m, "exit\n");
  int status;
  if (waitpid(shell, &status, 0) != shell) die("waitpid");
  printf("shell_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  printf("done\n");
  return 0;
}
