// A checkpoint workload (tests/tests/checkpoint.rs): a UDP socket connect()ed to another on
// 127.0.0.1, and a ping socket bound to an echo identifier and connected to 127.0.0.1. It
// prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken then), and checks that
// the connections are as they were: send() without an address reaches the peer from the
// same port, getpeername names the peer, and a datagram from a third socket is not
// delivered to it (a connected UDP socket takes datagrams from its peer only); the ping
// socket keeps its identifier and peer and gets the reply to an echo request; a
// NETLINK_ROUTE socket keeps its port id and the reply to a link dump it had not read,
// and answers a new request.
// Natively ping sockets need net.ipv4.ping_group_range to hold the caller's group.
// Restored, the lines after "ready" show what came back; natively (a short sleep, no
// checkpoint) it prints the same.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static int udp_on_loopback(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) die("bind");
  return s;
}

static struct sockaddr_in name_of(int s) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  if (getsockname(s, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  return a;
}

static const char *same(const struct sockaddr_in *x, const struct sockaddr_in *y) {
  return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr ? "same"
                                                                               : "other";
}

static const char *got(int fd, char *buf, size_t size) {
  ssize_t n = recv(fd, buf, size - 1, MSG_DONTWAIT);
  if (n < 0) return strerror(errno);
  buf[n] = 0;
  return buf;
}

// Sends a dump request of `type` with sequence number `seq`.
static void nl_request(int nl, int type, int seq) {
  struct {
    struct nlmsghdr h;
    struct rtgenmsg g;
  } req = {.h = {.nlmsg_len = sizeof(req), .nlmsg_type = type,
                 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = seq},
           .g = {.rtgen_family = AF_UNSPEC}};
  if (send(nl, &req, sizeof(req), 0) != sizeof(req)) die("netlink send");
}

// The type of the first message of the next reply and whether its sequence is `seq`.
static const char *nl_reply(int nl, int seq) {
  static char buf[16384];
  ssize_t n = recv(nl, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < (ssize_t)sizeof(struct nlmsghdr)) return n < 0 ? strerror(errno) : "short";
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  if (h->nlmsg_seq != (unsigned)seq) return "other-seq";
  switch (h->nlmsg_type) {
    case RTM_NEWLINK: return "newlink";
    case RTM_NEWADDR: return "newaddr";
    case NLMSG_DONE: return "done";
    default: return "other";
  }
}

// Reads the rest of a dump, through its NLMSG_DONE.
static void nl_drain(int nl) {
  static char buf[16384];
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) die("netlink drain");
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return;
    }
  }
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 0.1;
  int srv = udp_on_loopback();
  struct sockaddr_in srv_addr = name_of(srv);
  int cli = socket(AF_INET, SOCK_DGRAM, 0);
  if (cli < 0) die("socket");
  if (connect(cli, (struct sockaddr *)&srv_addr, sizeof(srv_addr)) != 0) die("connect");
  struct sockaddr_in cli_addr = name_of(cli);
  int stray = udp_on_loopback();
  int ping = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
  if (ping < 0) die("ping socket");
  struct sockaddr_in ping_addr = {.sin_family = AF_INET, .sin_port = htons(4242),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ping, (struct sockaddr *)&ping_addr, sizeof(ping_addr)) != 0) die("bind ping");
  struct sockaddr_in ping_peer = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(ping, (struct sockaddr *)&ping_peer, sizeof(ping_peer)) != 0)
    die("connect ping");

  int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  if (nl < 0) die("netlink socket");
  struct sockaddr_nl nla = {.nl_family = AF_NETLINK};
  if (bind(nl, (struct sockaddr *)&nla, sizeof(nla)) != 0) die("bind netlink");
  nl_request(nl, RTM_GETLINK, 1);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  char buf[64];
  if (send(cli, "udp-after", 9, 0) != 9) die("send");
  struct sockaddr_in from;
  socklen_t fromlen = sizeof(from);
  sleep_for(0.1);
  ssize_t n = recvfrom(srv, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)&from,
                       &fromlen);
  if (n < 0) die("recvfrom");
  buf[n] = 0;
  printf("udp=%s from=%s", buf, same(&from, &cli_addr));
  struct sockaddr_in now = name_of(cli), peer;
  socklen_t plen = sizeof(peer);
  if (getpeername(cli, (struct sockaddr *)&peer, &plen) != 0) die("getpeername");
  printf(" name=%s peer=%s", same(&now, &cli_addr), same(&peer, &srv_addr));
  if (sendto(stray, "stray", 5, 0, (struct sockaddr *)&cli_addr, sizeof(cli_addr)) != 5)
    die("sendto stray");
  if (sendto(srv, "udp-back", 8, 0, (struct sockaddr *)&cli_addr, sizeof(cli_addr)) != 8)
    die("sendto back");
  sleep_for(0.1);
  printf(" back=%s", got(cli, buf, sizeof(buf)));
  printf(" then=%s", got(cli, buf, sizeof(buf)));

  struct sockaddr_in ping_now = name_of(ping);
  plen = sizeof(peer);
  // Connected without a port, a ping socket has no peer name.
  int r = getpeername(ping, (struct sockaddr *)&peer, &plen);
  printf(" ping_ident=%d ping_peer=%s", ntohs(ping_now.sin_port),
         r != 0 ? strerror(errno) : "named");
  struct icmphdr req = {.type = ICMP_ECHO, .un.echo.sequence = htons(7)};
  if (send(ping, &req, sizeof(req), 0) != sizeof(req)) die("send ping");
  struct icmphdr reply;
  n = recv(ping, &reply, sizeof(reply), 0);
  printf(" ping=%s", n == sizeof(reply) && reply.type == ICMP_ECHOREPLY &&
                                ntohs(reply.un.echo.sequence) == 7
                            ? "reply"
                            : "none");
  struct sockaddr_nl nl_now;
  socklen_t nllen = sizeof(nl_now);
  if (getsockname(nl, (struct sockaddr *)&nl_now, &nllen) != 0) die("getsockname netlink");
  printf(" nl_port=%s nl_queued=%s", nl_now.nl_pid == (unsigned)getpid() ? "pid" : "other",
         nl_reply(nl, 1));
  nl_drain(nl);
  nl_request(nl, RTM_GETADDR, 2);
  printf(" nl_after=%s\n", nl_reply(nl, 2));
  printf("done\n");
  return 0;
}
