// TUN devices and SO_BINDTODEVICE, run natively (in a network namespace of the test's own,
// with lo up) and in the sandbox; the outputs must match.
//
// Makes a TUN link (IFF_TUN | IFF_NO_PI, from the "tun%d" template), reads its name and
// flags back, gives it 10.77.0.1/24 over NETLINK_ROUTE and brings it up with SIOCSIFFLAGS;
// sends a UDP datagram to 10.77.0.2 and reads the IP packet off the TUN file; writes an
// ICMP echo request from 10.77.0.2 and reads the echo reply; checks that a raw socket's
// TOS goes out and comes in with its packets; checks SO_BINDTODEVICE on
// the link (names, lengths, port sharing between devices); closes the file and checks the
// link is gone.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

// Prints what `expr` returned, and errno when it failed.
#define SHOW(label, expr)                                            \
  do {                                                               \
    errno = 0;                                                       \
    long r_ = (long)(expr);                                          \
    printf("%s: %ld errno %d\n", label, r_, r_ < 0 ? errno : 0);     \
  } while (0)

static uint16_t csum(const void *data, size_t len) {
  const uint8_t *p = data;
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += (uint32_t)(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

// Reads one packet within a second; -1 (and a line) when none comes.
static ssize_t read_packet(int fd, void *buf, size_t len) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, 1000) != 1) {
    printf("no packet within a second\n");
    return -1;
  }
  return read(fd, buf, len);
}

static int add_addr(int index, const char *ip, int prefix) {
  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) return -1;
  struct {
    struct nlmsghdr h;
    struct ifaddrmsg a;
    struct rtattr rta;
    struct in_addr addr;
  } req = {0};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = RTM_NEWADDR;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  req.h.nlmsg_seq = 1;
  req.a.ifa_family = AF_INET;
  req.a.ifa_prefixlen = prefix;
  req.a.ifa_index = index;
  req.rta.rta_type = IFA_LOCAL;
  req.rta.rta_len = RTA_LENGTH(sizeof(struct in_addr));
  inet_pton(AF_INET, ip, &req.addr);
  if (send(nl, &req, sizeof(req), 0) < 0) return -1;
  char buf[4096];
  ssize_t n = recv(nl, buf, sizeof(buf), 0);
  close(nl);
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  if (n < (ssize_t)sizeof(*h) || h->nlmsg_type != NLMSG_ERROR) return -1;
  return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
}

static void bindtodevice(const char *name) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  char got[32];
  socklen_t len = sizeof(got);
  SHOW("get unbound", getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, got, &len));
  printf("unbound len %u\n", len);
  SHOW("set link", setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, name, strlen(name) + 1));
  SHOW("set unknown", setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "nosuch0", 8));
  SHOW("set without NUL", setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, name, strlen(name)));
  len = sizeof(got);
  memset(got, 0, sizeof(got));
  SHOW("get", getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, got, &len));
  printf("got %s len %u\n", got, len);
  len = 8;
  SHOW("get short", getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, got, &len));
  int index = 0;
  len = sizeof(index);
  getsockopt(s, SOL_SOCKET, SO_BINDTOIFINDEX, &index, &len);
  printf("ifindex matches: %d\n", index == (int)if_nametoindex(name));

  // Two sockets on one port, bound to different devices, share it; a third unbound one
  // may not.
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40123)};
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  int t = socket(AF_INET, SOCK_STREAM, 0);
  int u = socket(AF_INET, SOCK_STREAM, 0);
  int w = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(t, SOL_SOCKET, SO_BINDTODEVICE, name, strlen(name) + 1);
  setsockopt(u, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3);
  SHOW("bind on the link", bind(t, (struct sockaddr *)&a, sizeof(a)));
  SHOW("bind on lo", bind(u, (struct sockaddr *)&a, sizeof(a)));
  SHOW("bind unbound", bind(w, (struct sockaddr *)&a, sizeof(a)));
  close(s);
  close(t);
  close(u);
  close(w);
}

// A raw socket's IP_TOS leaves with its packet through the link, and a packet written into
// the link with a TOS reaches a raw socket with it: in the header it reads and in the
// IP_TOS control message IP_RECVTOS asks for.
static void raw_tos(int fd, const struct sockaddr_in *to) {
  char buf[256];
  int raw = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
  int tos = 0x28, one = 1;
  SHOW("raw IP_TOS", setsockopt(raw, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)));
  SHOW("raw IP_RECVTOS", setsockopt(raw, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)));
  SHOW("raw sendto", sendto(raw, "rawdata1", 8, 0, (const struct sockaddr *)to, sizeof(*to)));
  for (int i = 0; i < 20; i++) {
    ssize_t n = read_packet(fd, buf, sizeof(buf));
    if (n < 0) break;
    struct iphdr *ip = (struct iphdr *)buf;
    if (ip->version != 4 || ip->protocol != IPPROTO_UDP) continue;
    printf("raw packet out: %zd bytes tos %#x payload %.8s ip csum ok %d\n", n, ip->tos,
           buf + ip->ihl * 4, csum(buf, ip->ihl * 4) == 0);
    break;
  }

  struct {
    struct iphdr ip;
    char data[8];
  } __attribute__((packed)) in = {0};
  in.ip.version = 4;
  in.ip.ihl = 5;
  in.ip.tos = 0x2c;
  in.ip.ttl = 64;
  in.ip.protocol = IPPROTO_UDP;
  in.ip.tot_len = htons(sizeof(in));
  inet_pton(AF_INET, "10.77.0.2", &in.ip.saddr);
  inet_pton(AF_INET, "10.77.0.1", &in.ip.daddr);
  in.ip.check = csum(&in.ip, sizeof(in.ip));
  memcpy(in.data, "rawdata2", 8);
  SHOW("write raw packet", write(fd, &in, sizeof(in)));
  struct timeval tv = {.tv_sec = 2};
  setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char control[64];
  struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
  ssize_t n = recvmsg(raw, &msg, 0);
  struct iphdr *ip = (struct iphdr *)buf;
  int cmsg_tos = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) cmsg_tos = *CMSG_DATA(c);
  if (n < 0)
    printf("raw recvmsg: errno %d\n", errno);
  else
    printf("raw packet in: %zd bytes tos %#x payload %.8s IP_TOS %#x\n", n, ip->tos,
           buf + ip->ihl * 4, cmsg_tos);
  close(raw);
}

int main(void) {
  struct stat st;
  if (stat("/dev/net/tun", &st) == 0)
    printf("/dev/net/tun: chr %d %d:%d\n", S_ISCHR(st.st_mode), major(st.st_rdev),
           minor(st.st_rdev));
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    perror("open /dev/net/tun");
    return 1;
  }
  char buf[256];
  SHOW("read unattached", read(fd, buf, sizeof(buf)));
  SHOW("write unattached", write(fd, buf, 20));

  struct ifreq ifr = {0};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    perror("TUNSETIFF");
    return 1;
  }
  printf("made %s\n", ifr.ifr_name);
  struct ifreq got = {0};
  ioctl(fd, TUNGETIFF, &got);
  printf("TUNGETIFF %s flags %#x\n", got.ifr_name, got.ifr_flags & 0xffff);
  char name[IFNAMSIZ];
  strcpy(name, ifr.ifr_name);
  int index = if_nametoindex(name);
  printf("has an index: %d\n", index > 0);

  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq q = {0};
  strcpy(q.ifr_name, name);
  ioctl(s, SIOCGIFFLAGS, &q);
  printf("flags at first: up %d pointopoint %d noarp %d\n", !!(q.ifr_flags & IFF_UP),
         !!(q.ifr_flags & IFF_POINTOPOINT), !!(q.ifr_flags & IFF_NOARP));
  /* An IPv4 version nibble, so that the link's state decides (not stack garbage). */
  memset(buf, 0x45, 40);
  SHOW("write while down", write(fd, buf, 40));
  fcntl(fd, F_SETFL, O_NONBLOCK);
  SHOW("nonblocking read, nothing queued", read(fd, buf, sizeof(buf)));
  fcntl(fd, F_SETFL, 0);

  printf("RTM_NEWADDR: %d\n", add_addr(index, "10.77.0.1", 24));
  printf("RTM_NEWADDR again: %d\n", add_addr(index, "10.77.0.1", 24));
  q.ifr_flags |= IFF_UP;
  SHOW("SIOCSIFFLAGS up", ioctl(s, SIOCSIFFLAGS, &q));
  ioctl(s, SIOCGIFFLAGS, &q);
  printf("flags now: up %d running %d\n", !!(q.ifr_flags & IFF_UP),
         !!(q.ifr_flags & IFF_RUNNING));
  struct ifreq qa = {0};
  strcpy(qa.ifr_name, name);
  ioctl(s, SIOCGIFADDR, &qa);
  printf("address %s\n", inet_ntoa(((struct sockaddr_in *)&qa.ifr_addr)->sin_addr));

  // A datagram routed through the link comes out of the file as an IP packet. (Linux may
  // first send IPv6 router solicitations and the like: only IPv4 UDP counts.)
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9999)};
  inet_pton(AF_INET, "10.77.0.2", &to.sin_addr);
  SHOW("sendto", sendto(s, "hello", 5, 0, (struct sockaddr *)&to, sizeof(to)));
  for (int i = 0; i < 20; i++) {
    ssize_t n = read_packet(fd, buf, sizeof(buf));
    if (n < 0) break;
    struct iphdr *ip = (struct iphdr *)buf;
    if (ip->version != 4 || ip->protocol != IPPROTO_UDP) continue;
    struct udphdr *udp = (struct udphdr *)(buf + ip->ihl * 4);
    char src[16], dst[16];
    inet_ntop(AF_INET, &ip->saddr, src, sizeof(src));
    inet_ntop(AF_INET, &ip->daddr, dst, sizeof(dst));
    printf("packet: %zd bytes %s -> %s port %d payload %.5s ip csum ok %d\n", n, src, dst,
           ntohs(udp->dest), (char *)(udp + 1), csum(buf, ip->ihl * 4) == 0);
    break;
  }

  // An echo request written into the file is answered through it.
  struct {
    struct iphdr ip;
    struct icmphdr icmp;
    char data[8];
  } __attribute__((packed)) ping = {0};
  ping.ip.version = 4;
  ping.ip.ihl = 5;
  ping.ip.ttl = 64;
  ping.ip.protocol = IPPROTO_ICMP;
  ping.ip.tot_len = htons(sizeof(ping));
  inet_pton(AF_INET, "10.77.0.2", &ping.ip.saddr);
  inet_pton(AF_INET, "10.77.0.1", &ping.ip.daddr);
  ping.ip.check = csum(&ping.ip, sizeof(ping.ip));
  ping.icmp.type = ICMP_ECHO;
  ping.icmp.un.echo.id = htons(77);
  ping.icmp.un.echo.sequence = htons(1);
  memcpy(ping.data, "pingdata", 8);
  ping.icmp.checksum = csum(&ping.icmp, sizeof(ping.icmp) + sizeof(ping.data));
  SHOW("write ping", write(fd, &ping, sizeof(ping)));
  for (int i = 0; i < 20; i++) {
    ssize_t n = read_packet(fd, buf, sizeof(buf));
    if (n < 0) break;
    struct iphdr *ip = (struct iphdr *)buf;
    if (ip->version != 4 || ip->protocol != IPPROTO_ICMP) continue;
    struct icmphdr *icmp = (struct icmphdr *)(buf + ip->ihl * 4);
    char src[16], dst[16];
    inet_ntop(AF_INET, &ip->saddr, src, sizeof(src));
    inet_ntop(AF_INET, &ip->daddr, dst, sizeof(dst));
    printf("reply: %zd bytes %s -> %s type %d id %d seq %d data %.8s\n", n, src, dst,
           icmp->type, ntohs(icmp->un.echo.id), ntohs(icmp->un.echo.sequence),
           (char *)(icmp + 1));
    break;
  }

  raw_tos(fd, &to);

  bindtodevice(name);

  close(fd);
  printf("index after close: %u\n", if_nametoindex(name));
  close(s);
  return 0;
}
