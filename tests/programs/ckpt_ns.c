// A checkpoint workload (tests/tests/checkpoint.rs): a process in UTS, IPC, network and
// user namespaces of its own, beside a child left in the caller's. The child is forked
// first and only looks (the caller's namespaces are never changed); the parent then
// unshares, maps itself to root, sets a host and domain name, makes a System V semaphore
// set and message queue and a POSIX message queue (closed: only its name holds it), binds
// an abstract AF_UNIX datagram socket and a UDP port in its network namespace. It prints
// "ready", sleeps ARGV[1] seconds (the checkpoint is taken then) and checks that all of it
// is there and still its own: restored, the lines after "ready" show what came back;
// natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die(path);
  close(fd);
}

static socklen_t abstract_addr(struct sockaddr_un *a, int pid) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "ckpt-ns-%d", pid);
  return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static struct sockaddr_in udp_addr(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  return a;
}

// What the child, in the caller's namespaces, sees of the parent's (all must be absent).
static void child(int go, int report, key_t key, int pid, int port) {
  char c;
  if (read(go, &c, 1) != 1) _exit(1);
  char host[65] = "";
  gethostname(host, sizeof host);
  int sem = semget(key, 0, 0);
  int sem_err = errno;
  mqd_t mq = mq_open("/ckpt-ns", O_RDONLY);
  int mq_err = errno;
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un a;
  socklen_t len = abstract_addr(&a, pid);
  int sent = sendto(s, "x", 1, 0, (struct sockaddr *)&a, len);
  int send_err = errno;
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in ua = udp_addr(port);
  int bound = bind(u, (struct sockaddr *)&ua, sizeof ua);
  char line[256];
  int n = snprintf(line, sizeof line,
                   "outside: host=%s sem=%s mq=%s abstract=%s udp_port=%s\n",
                   strcmp(host, "ckpt-ns") ? "other" : "same",
                   sem < 0 && sem_err == ENOENT ? "absent" : "visible",
                   mq == (mqd_t)-1 && mq_err == ENOENT ? "absent" : "visible",
                   sent < 0 && send_err == ECONNREFUSED ? "absent" : "visible",
                   bound == 0 ? "free" : "taken");
  if (write(report, line, n) != n) _exit(1);
  _exit(0);
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  int pid = getpid();
  key_t key = 0x5eed1000 + (pid & 0xfff);
  int port = 20000 + (pid % 20000);
  int go[2], report[2];
  if (pipe(go) || pipe(report)) die("pipe");
  pid_t kid = fork();
  if (kid < 0) die("fork");
  if (kid == 0) child(go[0], report[1], key, pid, port);

  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)) die("unshare");
  char map[64];
  write_file("/proc/self/setgroups", "deny");
  snprintf(map, sizeof map, "0 %u 1\n", uid);
  write_file("/proc/self/uid_map", map);
  snprintf(map, sizeof map, "0 %u 1\n", gid);
  write_file("/proc/self/gid_map", map);
  if (sethostname("ckpt-ns", 7) || setdomainname("ckpt-dom", 8)) die("sethostname");
  struct stat uts_before;
  if (stat("/proc/self/ns/uts", &uts_before)) die("stat ns/uts");

  int sem = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
  if (sem < 0 || semctl(sem, 0, SETVAL, 5)) die("semget");
  int q = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
  struct {
    long type;
    char text[16];
  } m = {3, "in-the-ns"};
  if (q < 0 || msgsnd(q, &m, sizeof m.text, 0)) die("msgget");
  struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 16};
  mqd_t mq = mq_open("/ckpt-ns", O_CREAT | O_EXCL | O_WRONLY, 0600, &attr);
  if (mq == (mqd_t)-1 || mq_send(mq, "posix-in-ns", 11, 2)) die("mq_open");
  mq_close(mq);

  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un a;
  socklen_t len = abstract_addr(&a, pid);
  if (s < 0 || bind(s, (struct sockaddr *)&a, len)) die("bind abstract");
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in ua = udp_addr(port);
  if (u < 0 || bind(u, (struct sockaddr *)&ua, sizeof ua)) die("bind udp");

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  char host[65] = "", dom[65] = "";
  gethostname(host, sizeof host);
  getdomainname(dom, sizeof dom);
  struct stat uts_after;
  stat("/proc/self/ns/uts", &uts_after);
  printf("inside: host=%s domain=%s uid=%d gid=%d uts_ino=%s\n", host, dom, (int)geteuid(),
         (int)getegid(), uts_after.st_ino == uts_before.st_ino ? "same" : "changed");
  int val = semctl(semget(key, 0, 0), 0, GETVAL);
  m.text[0] = 0;
  long got = msgrcv(msgget(key, 0), &m, sizeof m.text, 0, IPC_NOWAIT);
  char pm[16] = "";
  unsigned prio = 0;
  mq = mq_open("/ckpt-ns", O_RDONLY | O_NONBLOCK);
  ssize_t pn = mq == (mqd_t)-1 ? -1 : mq_receive(mq, pm, sizeof pm, &prio);
  printf("ipc: sem=%d msg=%ld:%s mq=%.*s:%u\n", val, got > 0 ? m.type : -1, m.text,
         (int)(pn > 0 ? pn : 0), pm, prio);
  int c = socket(AF_UNIX, SOCK_DGRAM, 0);
  int sent = sendto(c, "hello", 5, 0, (struct sockaddr *)&a, len);
  char buf[8] = "";
  ssize_t rn = recv(s, buf, sizeof buf, MSG_DONTWAIT);
  struct sockaddr_in got_addr;
  socklen_t alen = sizeof got_addr;
  getsockname(u, (struct sockaddr *)&got_addr, &alen);
  int u2 = socket(AF_INET, SOCK_DGRAM, 0);
  int again = bind(u2, (struct sockaddr *)&ua, sizeof ua);
  printf("net: abstract=%s udp_port=%s rebind=%s\n",
         sent == 5 && rn == 5 && !memcmp(buf, "hello", 5) ? "delivered" : "lost",
         ntohs(got_addr.sin_port) == port ? "kept" : "lost",
         again < 0 && errno == EADDRINUSE ? "EADDRINUSE" : "free");
  fflush(stdout);

  if (write(go[1], "g", 1) != 1) die("go");
  char line[256];
  ssize_t n = read(report[0], line, sizeof line - 1);
  if (n > 0) fwrite(line, 1, n, stdout);
  int status;
  waitpid(kid, &status, 0);
  printf("done\n");
  return 0;
}
