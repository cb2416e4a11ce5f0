// A checkpoint workload (tests/tests/checkpoint.rs): pseudo-terminals. Pair A (opened by
// its /dev/pts path) in raw mode with a window size, its master in packet mode: input
// written to the slave and output to the master, nothing read, and a flush of the slave's
// output the master has not been told of. Pair B (slave through TIOCGPTPEER) in canonical mode
// with a complete line and a partial one typed (their echo waiting for the master), locked
// again; a child leads a new session that B controls, with a grandchild's group in the
// foreground. Pair C's master is closed: its slave is hung up. It prints "ready", sleeps
// ARGV[1] seconds (the checkpoint is taken then) and reads everything back: restored, the
// lines after "ready" show what came back; natively (a short sleep, no checkpoint) it
// prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
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

static int open_master(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0) die("posix_openpt");
  return m;
}

static void unlock(int m, int locked) {
  if (ioctl(m, TIOCSPTLCK, &locked)) die("TIOCSPTLCK");
}

// What a read of up to n bytes gives, printed with control bytes as \xNN.
static void show_read(const char *label, int fd, size_t n) {
  char buf[256];
  ssize_t r = read(fd, buf, n < sizeof buf ? n : sizeof buf);
  printf("%s=", label);
  if (r < 0) {
    printf("%s ", strerror(errno));
    return;
  }
  printf("%zd:", r);
  for (ssize_t i = 0; i < r; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      putchar(c);
    else
      printf("\\x%02x", c);
  }
  printf(" ");
}

static void put(int fd, const char *s) {
  if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) die("write");
}

static const char *who(pid_t id, pid_t self, pid_t gc) {
  if (id == self) return "self";
  if (id == gc) return "grandchild";
  return id < 0 ? strerror(errno) : "other";
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;

  // Pair A: raw slave, packet-mode master, data both ways, a flush not yet reported.
  int ma = open_master();
  unlock(ma, 0);
  int sa = open(ptsname(ma), O_RDWR | O_NOCTTY);
  if (sa < 0) die("open slave A");
  struct termios t;
  if (tcgetattr(sa, &t)) die("tcgetattr A");
  cfmakeraw(&t);
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(sa, TCSANOW, &t)) die("tcsetattr A");
  struct winsize ws = {.ws_row = 30, .ws_col = 100, .ws_xpixel = 7, .ws_ypixel = 9};
  if (ioctl(sa, TIOCSWINSZ, &ws)) die("TIOCSWINSZ");
  int one = 1;
  if (ioctl(ma, TIOCPKT, &one)) die("TIOCPKT");
  // The slave flushes its output: the master in packet mode is told.
  if (tcflush(sa, TCOFLUSH)) die("tcflush");
  put(sa, "to-master\n");
  put(ma, "to-slave\r\x03");

  // Pair B: canonical, a line and a partial one typed, the peer through TIOCGPTPEER.
  int mb = open_master();
  unlock(mb, 0);
  int sb = ioctl(mb, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (sb < 0) die("TIOCGPTPEER");
  put(mb, "line1\rpart");
  unlock(mb, 1);

  // A child leads a session B controls; its grandchild's group is in the foreground.
  int go[2], gc_go[2], gc_ready[2], child_ready[2];
  if (pipe(go) || pipe(gc_go) || pipe(gc_ready) || pipe(child_ready)) die("pipe");
  pid_t child = fork();
  if (child == 0) {
    if (setsid() < 0) die("setsid");
    if (ioctl(sb, TIOCSCTTY, 0)) die("TIOCSCTTY");
    pid_t gc = fork();
    if (gc == 0) {
      if (setpgid(0, 0)) die("setpgid");
      put(gc_ready[1], "x");
      char c;
      if (read(gc_go[0], &c, 1) != 1) die("grandchild read");
      _exit(0);
    }
    char c;
    if (read(gc_ready[0], &c, 1) != 1) die("child read ready");
    if (tcsetpgrp(sb, gc)) die("tcsetpgrp");
    signal(SIGTTIN, SIG_IGN);
    put(child_ready[1], "x");
    if (read(go[0], &c, 1) != 1) die("child read go");
    // After the restore: the session, the groups and the terminal's view of them.
    pid_t self = getpid();
    printf("child: sid=%s pgrp=%s ", who(getsid(0), self, gc), who(getpgrp(), self, gc));
    printf("tcgetsid=%s tcgetpgrp=%s ", who(tcgetsid(sb), self, gc), who(tcgetpgrp(sb), self, gc));
    int tty = open("/dev/tty", O_RDWR);
    printf("dev_tty=%s ", tty >= 0 ? "opens" : strerror(errno));
    // A background reader ignoring SIGTTIN gets EIO.
    char buf[8];
    errno = 0;
    printf("bg_read=%s\n", read(sb, buf, sizeof buf) < 0 ? strerror(errno) : "data");
    fflush(stdout);
    put(gc_go[1], "x");
    if (waitpid(gc, NULL, 0) != gc) die("waitpid grandchild");
    _exit(0);
  }
  char c;
  if (read(child_ready[0], &c, 1) != 1) die("read child ready");

  // Pair C: hung up (master closed, slave open).
  int mc = open_master();
  unlock(mc, 0);
  int sc = open(ptsname(mc), O_RDWR | O_NOCTTY);
  if (sc < 0) die("open slave C");
  close(mc);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  // Pair A.
  int v = -1;
  ioctl(ma, TIOCGPKT, &v);
  printf("a_pkt=%d ", v);
  v = -1;
  ioctl(ma, TIOCGPTLCK, &v);
  printf("a_lock=%d ", v);
  if (tcgetattr(sa, &t)) die("tcgetattr A after");
  printf("a_raw=%s vmin=%d ", (t.c_lflag & (ICANON | ECHO | ISIG)) ? "no" : "yes", t.c_cc[VMIN]);
  struct winsize w2 = {0};
  ioctl(ma, TIOCGWINSZ, &w2);
  printf("a_win=%dx%d,%d,%d ", w2.ws_row, w2.ws_col, w2.ws_xpixel, w2.ws_ypixel);
  v = -1;
  ioctl(sa, FIONREAD, &v);
  printf("a_slave_queued=%d ", v);
  show_read("a_master_status", ma, 100);
  show_read("a_master_data", ma, 100);
  show_read("a_slave", sa, 100);
  printf("\n");

  // Pair B.
  v = -1;
  ioctl(mb, TIOCGPTLCK, &v);
  printf("b_lock=%d ", v);
  if (tcgetattr(sb, &t)) die("tcgetattr B");
  printf("b_canon=%s ", (t.c_lflag & ICANON) ? "yes" : "no");
  show_read("b_echo", mb, 100);
  show_read("b_line", sb, 100);
  put(mb, "ial\n");
  show_read("b_rest", sb, 100);
  printf("b_sid_from_master=%s\n", tcgetsid(mb) == child ? "child" : "other");
  fflush(stdout);

  // The child and grandchild report and exit.
  put(go[1], "x");
  int status;
  if (waitpid(child, &status, 0) != child) die("waitpid child");
  printf("child_exit=%d ", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

  // Pair C.
  show_read("c_read", sc, 10);
  errno = 0;
  printf("c_write=%s ", write(sc, "x", 1) < 0 ? strerror(errno) : "ok");
  // Last: on Linux a failed open of a locked slave upsets the pair's open slaves.
  int again = open(ptsname(mb), O_RDWR | O_NOCTTY);
  printf("b_open_locked=%s\n", again >= 0 ? "opened" : strerror(errno));
  printf("done\n");
  return 0;
}
