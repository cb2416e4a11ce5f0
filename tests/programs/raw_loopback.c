/* Raw IP sockets over the loopback (run as root): every raw socket of a protocol gets a
 * copy of each packet, IPv4 raw sockets read the IP header and IPv6 ones do not,
 * ICMP_FILTER, IP_HDRINCL, getsockname, and EPERM without CAP_NET_RAW. The machine's own
 * loopback may carry other traffic when run natively, so reads skip packets that are not
 * the test's (by port or echo identifier). */
#include <errno.h>
#include <linux/capability.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define IDENT 0x5a17

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned short csum(const void *p, size_t n) {
    const unsigned char *b = p;
    unsigned long s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) s += (b[i] << 8) | b[i + 1];
    if (n & 1) s += b[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons(~s & 0xffff);
}

static struct sockaddr_in lo4(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* Reads from `fd` until a packet `match` accepts comes (2 s at most); its length or -1. */
static int recv_match(int fd, unsigned char *buf, size_t len,
                      int (*match)(const unsigned char *, int)) {
    for (int tries = 0; tries < 200; tries++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) != 1) return -1;
        int n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n < 0) return -1;
        if (match(buf, n)) return n;
    }
    return -1;
}

static int udp_port;
static int is_our_udp(const unsigned char *b, int n) {
    int ihl = (b[0] & 0xf) * 4;
    if (n < ihl + 8) return 0;
    const struct udphdr *u = (const void *)(b + ihl);
    return ntohs(u->dest) == udp_port;
}

static int is_our_echo(const unsigned char *b, int n) {
    int ihl = (b[0] & 0xf) * 4;
    if (n < ihl + 8) return 0;
    const struct icmphdr *i = (const void *)(b + ihl);
    return ntohs(i->un.echo.id) == IDENT;
}

static int is_our_echo6(const unsigned char *b, int n) {
    if (n < 8) return 0;
    const struct icmp6_hdr *i = (const void *)b;
    return ntohs(i->icmp6_id) == IDENT;
}

static void udp_copies(void) {
    int r1 = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    int r2 = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    if (r1 < 0 || r2 < 0 || rx < 0 || tx < 0) die("socket");
    struct sockaddr_in a = lo4(0);
    socklen_t al = sizeof a;
    if (bind(rx, (void *)&a, sizeof a) || getsockname(rx, (void *)&a, &al)) die("bind");
    udp_port = ntohs(a.sin_port);
    if (sendto(tx, "hello", 5, 0, (void *)&a, sizeof a) != 5) die("sendto");
    int raws[2] = {r1, r2};
    for (int i = 0; i < 2; i++) {
        unsigned char buf[256];
        int n = recv_match(raws[i], buf, sizeof buf, is_our_udp);
        if (n < 0) {
            printf("raw udp %d: no copy\n", i);
            continue;
        }
        const struct iphdr *ip = (const void *)buf;
        printf("raw udp %d: len %d version %d ihl %d proto %d total %d payload %.5s\n", i, n,
               ip->version, ip->ihl, ip->protocol, ntohs(ip->tot_len), buf + 28);
    }
    char got[16] = {0};
    printf("udp socket got %zd %s\n", recv(rx, got, sizeof got, 0), got);
    struct sockaddr_in name;
    socklen_t nl = sizeof name;
    getsockname(r1, (void *)&name, &nl);
    printf("raw getsockname port %d\n", ntohs(name.sin_port));
    int r = getpeername(r1, (void *)&name, &nl);
    printf("raw getpeername %d %s\n", r, strerror(errno));
    close(r1), close(r2), close(rx), close(tx);
}

static void icmp_filter(void) {
    int all = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    int replies = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (all < 0 || replies < 0) die("socket icmp");
    struct icmp_filter f = {.data = 1u << ICMP_ECHO};
    if (setsockopt(replies, SOL_RAW, ICMP_FILTER, &f, sizeof f)) die("ICMP_FILTER");
    struct icmphdr req = {.type = ICMP_ECHO};
    req.un.echo.id = htons(IDENT);
    req.un.echo.sequence = htons(1);
    req.checksum = csum(&req, sizeof req);
    struct sockaddr_in a = lo4(0);
    if (sendto(all, &req, sizeof req, 0, (void *)&a, sizeof a) != sizeof req) die("send");
    unsigned char buf[256];
    for (int i = 0; i < 2; i++) {
        int n = recv_match(all, buf, sizeof buf, is_our_echo);
        const struct icmphdr *h = (const void *)(buf + 20);
        printf("unfiltered %d: len %d type %d checksum-ok %d\n", i, n, n < 0 ? -1 : h->type,
               n < 0 ? -1 : csum(h, n - 20) == 0);
    }
    int n = recv_match(replies, buf, sizeof buf, is_our_echo);
    printf("filtered: len %d type %d\n", n, n < 0 ? -1 : buf[20]);
    socklen_t fl = sizeof f;
    getsockopt(replies, SOL_RAW, ICMP_FILTER, &f, &fl);
    printf("ICMP_FILTER reads %#x (%u bytes)\n", f.data, fl);
    close(all), close(replies);
}

static void hdrincl(void) {
    int raw = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    if (raw < 0 || rx < 0) die("socket raw");
    struct sockaddr_in a = lo4(0);
    socklen_t al = sizeof a;
    if (bind(rx, (void *)&a, sizeof a) || getsockname(rx, (void *)&a, &al)) die("bind");
    int on = 0;
    socklen_t ol = sizeof on;
    getsockopt(raw, IPPROTO_IP, IP_HDRINCL, &on, &ol);
    printf("IPPROTO_RAW has IP_HDRINCL %d\n", on);
    struct {
        struct iphdr ip;
        struct udphdr udp;
        char data[4];
    } __attribute__((packed)) p = {0};
    p.ip.version = 4, p.ip.ihl = 5, p.ip.ttl = 64, p.ip.protocol = IPPROTO_UDP;
    p.ip.daddr = htonl(INADDR_LOOPBACK); /* source 0: the kernel fills it in */
    p.udp.source = htons(9), p.udp.dest = a.sin_port, p.udp.len = htons(12);
    memcpy(p.data, "rawd", 4);
    printf("hdrincl sent %zd\n", sendto(raw, &p, sizeof p, 0, (void *)&a, sizeof a));
    ssize_t short_sent = sendto(raw, &p, 10, 0, (void *)&a, sizeof a);
    printf("short header: %zd %s\n", short_sent, strerror(errno));
    char got[16] = {0};
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    struct pollfd pf = {.fd = rx, .events = POLLIN};
    poll(&pf, 1, 2000);
    ssize_t n = recvfrom(rx, got, sizeof got, MSG_DONTWAIT, (void *)&from, &fl);
    printf("udp got %zd %s from port %d\n", n, got, ntohs(from.sin_port));
    close(raw), close(rx);
}

static void icmpv6(void) {
    int s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    if (s < 0) die("socket icmpv6");
    struct icmp6_filter f;
    ICMP6_FILTER_SETBLOCKALL(&f);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
    if (setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f)) die("ICMP6_FILTER");
    struct icmp6_hdr req = {.icmp6_type = ICMP6_ECHO_REQUEST};
    req.icmp6_id = htons(IDENT);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    /* The kernel computes the ICMPv6 checksum. */
    printf("icmpv6 sent %zd\n", sendto(s, &req, sizeof req, 0, (void *)&a, sizeof a));
    unsigned char buf[256];
    int n = recv_match(s, buf, sizeof buf, is_our_echo6);
    printf("icmpv6 got len %d type %d (no IPv6 header)\n", n, n < 0 ? -1 : buf[0]);
    int off = 0;
    socklen_t ol = sizeof off;
    getsockopt(s, IPPROTO_IPV6, IPV6_CHECKSUM, &off, &ol);
    int r = setsockopt(s, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof off);
    printf("IPV6_CHECKSUM %d, set: %d %s\n", off, r, strerror(errno));
    close(s);
}

static void no_cap(void) {
    pid_t pid = fork();
    if (pid == 0) {
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2];
        if (syscall(SYS_capget, &h, d)) _exit(2);
        d[0].effective &= ~(1u << CAP_NET_RAW);
        if (syscall(SYS_capset, &h, d)) _exit(3);
        int s = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
        printf("without CAP_NET_RAW: %d %s\n", s, strerror(errno));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    int zero = socket(AF_INET, SOCK_RAW, 0);
    printf("protocol 0: %d %s\n", zero, strerror(errno));
    int big = socket(AF_INET, SOCK_RAW, 300);
    printf("protocol 300: %d %s\n", big, strerror(errno));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    udp_copies();
    icmp_filter();
    hdrincl();
    icmpv6();
    no_cap();
    printf("done\n");
    return 0;
}
