// A checkpoint workload (tests/tests/checkpoint.rs): named AF_UNIX sockets. A stream
// listener bound to a path in /tmp (the root overlay's upper layer) with one connection
// accepted (data unread on it) and one waiting in its accept queue (with data); a
// listener on an abstract name with a connection waiting; a datagram socket on an
// abstract name holding a datagram from one bound to a path in /dev/shm (a tmpfs); and
// files in flight over SCM_RIGHTS (a pipe's read end and one end of a socket pair, which
// no fd holds any more). It prints "ready", sleeps ARGV[1] seconds (the checkpoint is
// taken then), and checks that everything is as it was, and that a new client can
// connect to the path: restored, the lines after "ready" show what came back; natively
// (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

// A sockaddr_un for `name` (a leading '@' makes it abstract); returns its length.
static socklen_t addr_of(struct sockaddr_un *a, const char *name) {
  memset(a, 0, sizeof(*a));
  a->sun_family = AF_UNIX;
  size_t n = strlen(name);
  memcpy(a->sun_path, name, n);
  if (name[0] == '@') {
    a->sun_path[0] = 0;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  }
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static int sock(int type) {
  int s = socket(AF_UNIX, type, 0);
  if (s < 0) die("socket");
  return s;
}

static void bind_to(int s, const char *name) {
  struct sockaddr_un a;
  socklen_t len = addr_of(&a, name);
  if (bind(s, (struct sockaddr *)&a, len) != 0) die(name);
}

static void connect_to(int s, const char *name) {
  struct sockaddr_un a;
  socklen_t len = addr_of(&a, name);
  if (connect(s, (struct sockaddr *)&a, len) != 0) die(name);
}

// "same" when `a` (as getsockname or getpeername filled it) names `name`, else what it is.
static const char *names(const struct sockaddr_un *a, socklen_t len, const char *name) {
  struct sockaddr_un want;
  socklen_t wlen = addr_of(&want, name);
  if (len == wlen && memcmp(a, &want, len) == 0) return "same";
  if (len == sizeof(sa_family_t)) return "unnamed";
  return "other";
}

static const char *peer_name(int s, const char *name) {
  struct sockaddr_un a;
  socklen_t len = sizeof(a);
  if (getpeername(s, (struct sockaddr *)&a, &len) != 0) return strerror(errno);
  return names(&a, len, name);
}

static const char *own_name(int s, const char *name) {
  struct sockaddr_un a;
  socklen_t len = sizeof(a);
  if (getsockname(s, (struct sockaddr *)&a, &len) != 0) return strerror(errno);
  return names(&a, len, name);
}

// Reads what is there (one read) as a string.
static const char *got(int fd, char *buf, size_t size) {
  ssize_t n = read(fd, buf, size - 1);
  if (n < 0) return strerror(errno);
  buf[n] = 0;
  return buf;
}

static void put(int fd, const char *s) {
  if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) die("write");
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 0.1;
  char path[64], dgram_path[64], abstract[64], dgram_abstract[64];
  snprintf(path, sizeof(path), "/tmp/ckpt-unix-%d.sock", getpid());
  snprintf(dgram_path, sizeof(dgram_path), "/dev/shm/ckpt-unix-%d.dgram", getpid());
  snprintf(abstract, sizeof(abstract), "@ckpt-unix-%d", getpid());
  snprintf(dgram_abstract, sizeof(dgram_abstract), "@ckpt-unix-dgram-%d", getpid());

  int srv = sock(SOCK_STREAM);
  bind_to(srv, path);
  if (listen(srv, 4) != 0) die("listen");
  int a = sock(SOCK_STREAM);
  connect_to(a, path);
  int as = accept(srv, NULL, NULL);
  if (as < 0) die("accept");
  put(a, "a-before");
  int b = sock(SOCK_STREAM);
  connect_to(b, path);
  put(b, "b-queued");

  int asrv = sock(SOCK_STREAM);
  bind_to(asrv, abstract);
  if (listen(asrv, 2) != 0) die("listen abstract");
  int c = sock(SOCK_STREAM);
  connect_to(c, abstract);

  int d1 = sock(SOCK_DGRAM), d2 = sock(SOCK_DGRAM);
  bind_to(d1, dgram_abstract);
  bind_to(d2, dgram_path);
  struct sockaddr_un to;
  socklen_t tolen = addr_of(&to, dgram_abstract);
  if (sendto(d2, "dgram-from-named", 16, 0, (struct sockaddr *)&to, tolen) != 16)
    die("sendto");

  // Files in flight: a pipe's read end and a socket, closed here once sent.
  int sp[2], p[2], q[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0 || pipe(p) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM, 0, q) != 0)
    die("pair");
  put(p[1], "in-pipe");
  put(q[1], "via-passed-socket");
  char cbuf[CMSG_SPACE(2 * sizeof(int))];
  memset(cbuf, 0, sizeof(cbuf));
  struct iovec iov = {.iov_base = "carry", .iov_len = 5};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof(cbuf)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
  int passed[2] = {p[0], q[0]};
  memcpy(CMSG_DATA(cm), passed, sizeof(passed));
  if (sendmsg(sp[0], &mh, 0) != 5) die("sendmsg");
  close(p[0]);
  close(q[0]);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  char buf[64], buf2[64];
  printf("accepted=%s", got(as, buf, sizeof(buf)));
  put(as, "reply");
  printf(" reply=%s", got(a, buf, sizeof(buf)));
  printf(" names=%s,%s,%s", own_name(srv, path), own_name(as, path), peer_name(a, path));
  int bs = accept(srv, NULL, NULL);
  if (bs < 0) die("accept queued");
  printf(" queued=%s peer=%s", got(bs, buf, sizeof(buf)), peer_name(bs, path));
  put(bs, "to-b");
  printf(" b=%s", got(b, buf, sizeof(buf)));
  int cs = accept(asrv, NULL, NULL);
  if (cs < 0) die("accept abstract");
  put(c, "c-after");
  printf(" abstract=%s peer=%s", got(cs, buf, sizeof(buf)), peer_name(c, abstract));

  int e = sock(SOCK_STREAM);
  connect_to(e, path);
  put(e, "new-client");
  int es = accept(srv, NULL, NULL);
  if (es < 0) die("accept new");
  printf(" new=%s", got(es, buf, sizeof(buf)));
  struct stat st;
  printf(" file=%s", stat(path, &st) == 0 && S_ISSOCK(st.st_mode) ? "socket" : "missing");

  struct sockaddr_un from;
  socklen_t fromlen = sizeof(from);
  ssize_t n = recvfrom(d1, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fromlen);
  if (n < 0) die("recvfrom");
  buf[n] = 0;
  printf(" dgram=%s from=%s", buf, names(&from, fromlen, dgram_path));
  tolen = addr_of(&to, dgram_path);
  if (sendto(d1, "back", 4, 0, (struct sockaddr *)&to, tolen) != 4) die("sendto back");
  printf(" back=%s", got(d2, buf, sizeof(buf)));

  memset(cbuf, 0, sizeof(cbuf));
  iov.iov_base = buf2;
  iov.iov_len = sizeof(buf2) - 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof(cbuf);
  n = recvmsg(sp[1], &mh, 0);
  if (n < 0) die("recvmsg");
  buf2[n] = 0;
  cm = CMSG_FIRSTHDR(&mh);
  if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(2 * sizeof(int))) {
    printf(" in_flight=%s:no-files\n", buf2);
  } else {
    memcpy(passed, CMSG_DATA(cm), sizeof(passed));
    printf(" in_flight=%s:%s", buf2, got(passed[0], buf, sizeof(buf)));
    printf(",%s", got(passed[1], buf, sizeof(buf)));
    put(passed[1], "echo");
    printf(",%s\n", got(q[1], buf, sizeof(buf)));
  }
  unlink(path);
  unlink(dgram_path);
  printf("done\n");
  return 0;
}
