// inotify compared with native Linux: events of a watched directory (create, open, write,
// close, read, chmod, rename with cookies, mkdir/rmdir, unlink), coalescing, poll/epoll
// readiness, FIONREAD, IN_ONESHOT, a watch on a file (IN_DELETE_SELF then IN_IGNORED),
// inotify_rm_watch, and the errors of add_watch and of a read with a too-small buffer.
// Prints "wd mask name cookie-is-nonzero" lines.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[65536] __attribute__((aligned(8)));
static char dir[64];

static void die(const char *what) {
  printf("FAIL %s: %s\n", what, strerror(errno));
  exit(1);
}

static const char *path(const char *name) {
  static char p[2][128];
  static int i;
  i ^= 1;
  snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
  return p[i];
}

static void drain(int fd, const char *label) {
  printf("== %s\n", label);
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN)
        break;
      die("read");
    }
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      printf("%d 0x%x %s %d\n", e->wd, e->mask, e->len ? e->name : "-", e->cookie != 0);
      p += sizeof *e + e->len;
    }
  }
}

// Prints a result and, when it failed, its errno's name.
static void show(const char *what, long r) {
  printf("%s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "-");
  errno = 0;
}

static int readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void put(const char *name, const char *data, int flags) {
  int f = open(path(name), O_WRONLY | flags, 0644);
  if (f < 0)
    die("open");
  if (data && write(f, data, strlen(data)) < 0)
    die("write");
  close(f);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  strcpy(dir, "/tmp/inotify.XXXXXX");
  if (!mkdtemp(dir))
    die("mkdtemp");
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0)
    die("inotify_init1");
  int wd = inotify_add_watch(fd, dir, IN_ALL_EVENTS);
  if (wd < 0)
    die("add_watch");
  printf("wd %d readable %d\n", wd, readable(fd));

  // Create, write twice (one coalesced IN_MODIFY), close.
  int f = open(path("f"), O_CREAT | O_WRONLY, 0644);
  if (f < 0 || write(f, "ab", 2) != 2 || write(f, "cd", 2) != 2)
    die("create f");
  close(f);
  int avail = 0;
  ioctl(fd, FIONREAD, &avail);
  printf("readable %d fionread>0 %d\n", readable(fd), avail > 0);
  drain(fd, "create write close");

  f = open(path("f"), O_RDONLY);
  if (f < 0 || read(f, buf, 4) != 4)
    die("read f");
  close(f);
  chmod(path("f"), 0600);
  drain(fd, "open read close chmod");

  rename(path("f"), path("g"));
  mkdir(path("sub"), 0755);
  rename(path("sub"), path("sub2"));
  rmdir(path("sub2"));
  unlink(path("g"));
  drain(fd, "rename mkdir rmdir unlink");
  printf("readable-after-drain %d\n", readable(fd));

  // A too-small buffer.
  put("a-long-name", NULL, O_CREAT);
  errno = 0;
  ssize_t n = read(fd, buf, sizeof(struct inotify_event));
  printf("small read %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "-");
  drain(fd, "after small read");

  // Edge-triggered epoll.
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 7};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  printf("epoll empty %d\n", epoll_wait(ep, &ev, 1, 0));
  unlink(path("a-long-name"));
  int r = epoll_wait(ep, &ev, 1, 0);
  printf("epoll event %d 0x%x %u\n", r, r == 1 ? ev.events : 0, r == 1 ? ev.data.u32 : 0);
  printf("epoll again %d\n", epoll_wait(ep, &ev, 1, 0));
  put("x", NULL, O_CREAT);
  printf("epoll new event %d\n", epoll_wait(ep, &ev, 1, 0));
  drain(fd, "epoll");
  close(ep);

  // A one-shot watch on a file.
  int wd2 = inotify_add_watch(fd, path("x"), IN_MODIFY | IN_ONESHOT);
  put("x", "1", 0);
  put("x", "2", 0);
  printf("oneshot wd %d\n", wd2);
  drain(fd, "oneshot");
  show("rm after oneshot", inotify_rm_watch(fd, wd2));

  // rm_watch.
  printf("rm_watch %d\n", inotify_rm_watch(fd, wd));
  put("y", NULL, O_CREAT);
  drain(fd, "rm_watch");
  close(fd);

  // A watch on a file: its deletion.
  fd = inotify_init1(IN_NONBLOCK);
  int wf = inotify_add_watch(fd, path("x"), IN_DELETE_SELF | IN_ATTRIB | IN_MOVE_SELF);
  rename(path("x"), path("z"));
  unlink(path("z"));
  printf("file wd %d\n", wf);
  drain(fd, "delete self");

  // A blocking read wakes when a child creates a file.
  int bfd = inotify_init1(0);
  inotify_add_watch(bfd, dir, IN_CREATE);
  pid_t pid = fork();
  if (pid == 0) {
    usleep(100000);
    put("from-child", NULL, O_CREAT);
    _exit(0);
  }
  n = read(bfd, buf, sizeof buf);
  struct inotify_event *be = (struct inotify_event *)buf;
  printf("blocking read %d 0x%x %s\n", n > 0, n > 0 ? be->mask : 0, n > 0 ? be->name : "-");
  waitpid(pid, NULL, 0);
  close(bfd);
  unlink(path("from-child"));

  // The queue overflows: IN_Q_OVERFLOW once, after max_queued_events events.
  int ofd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(ofd, dir, IN_ATTRIB);
  put("w", NULL, O_CREAT);
  for (int i = 0; i < 16500; i++) // alternating names: no two consecutive events coalesce
    chmod(path(i & 1 ? "y" : "w"), 0644);
  long events = 0, overflows = 0, last_wd = 0;
  unsigned last_mask = 0;
  for (;;) {
    ssize_t m = read(ofd, buf, sizeof buf);
    if (m <= 0)
      break;
    for (char *p = buf; p < buf + m;) {
      struct inotify_event *e = (struct inotify_event *)p;
      events++;
      overflows += (e->mask & IN_Q_OVERFLOW) != 0;
      last_wd = e->wd;
      last_mask = e->mask;
      p += sizeof *e + e->len;
    }
  }
  printf("overflow events %ld overflows %ld last %ld 0x%x\n", events, overflows, last_wd,
         last_mask);
  close(ofd);
  unlink(path("w"));

  // Errors.
  show("onlydir", inotify_add_watch(fd, path("y"), IN_ONLYDIR | IN_OPEN));
  show("mask0", inotify_add_watch(fd, path("y"), 0));
  show("missing", inotify_add_watch(fd, path("nope"), IN_OPEN));
  show("not-inotify", inotify_add_watch(1, path("y"), IN_OPEN));
  show("rm-unknown", inotify_rm_watch(fd, 99));
  show("init1-bad-flags", inotify_init1(1));
  int w1 = inotify_add_watch(fd, path("y"), IN_OPEN);
  int w2 = inotify_add_watch(fd, path("y"), IN_CLOSE | IN_MASK_ADD);
  printf("same wd %d\n", w1 == w2);
  show("mask_create", inotify_add_watch(fd, path("y"), IN_OPEN | IN_MASK_CREATE));
  put("y", NULL, 0);
  drain(fd, "mask add");
  show("pwrite on inotify", pwrite(fd, "x", 1, 0));
  show("pread on inotify", pread(fd, buf, 1, 0));
  close(fd);
  unlink(path("y"));

  // rmdir of a watched directory nothing else holds: the directory's IN_DELETE_SELF
  // (without IN_ISDIR) and IN_IGNORED come before its parent's IN_DELETE|IN_ISDIR.
  fd = inotify_init1(IN_NONBLOCK);
  if (mkdir(path("gone"), 0755) != 0)
    die("mkdir gone");
  inotify_add_watch(fd, dir, IN_ALL_EVENTS);
  inotify_add_watch(fd, path("gone"), IN_ALL_EVENTS);
  rmdir(path("gone"));
  drain(fd, "rmdir watched");
  close(fd);

  // Files that lose their last name while open (opened before the watches were added):
  // IN_DELETE_SELF and IN_IGNORED wait for the last close; fstat shows no link; a watch
  // with IN_EXCL_UNLINK takes no events about the unlinked file, one without it does.
  fd = inotify_init1(IN_NONBLOCK);
  put("held", "data", O_CREAT);
  put("held2", "data", O_CREAT);
  if (mkdir(path("helddir"), 0755) != 0)
    die("mkdir helddir");
  int held = open(path("held"), O_RDWR), held2 = open(path("held2"), O_RDWR);
  int helddir = open(path("helddir"), O_RDONLY | O_DIRECTORY);
  inotify_add_watch(fd, dir, IN_ALL_EVENTS | IN_EXCL_UNLINK);
  inotify_add_watch(fd, path("held"), IN_ALL_EVENTS | IN_EXCL_UNLINK);
  inotify_add_watch(fd, path("held2"), IN_ALL_EVENTS);
  inotify_add_watch(fd, path("helddir"), IN_ALL_EVENTS);
  unlink(path("held"));
  unlink(path("held2"));
  rmdir(path("helddir"));
  struct stat hs;
  fstat(held, &hs);
  printf("unlinked open file nlink %ld\n", (long)hs.st_nlink);
  show("write unlinked", write(held, "x", 1));
  show("write unlinked without exclusion", write(held2, "x", 1));
  drain(fd, "unlinked while open");
  close(held);
  drain(fd, "closed excluded");
  close(held2);
  drain(fd, "closed not excluded");
  close(helddir);
  drain(fd, "closed directory");
  close(fd);
  rmdir(dir);
  printf("done\n");
  return 0;
}
