/* AF_PACKET sockets on the loopback (run as root): getsockname before and after bind, an
 * ETH_P_ALL SOCK_RAW socket sees a UDP datagram leave (PACKET_OUTGOING) and arrive
 * (PACKET_HOST) with a zero-address Ethernet header, an ETH_P_IP SOCK_DGRAM socket sees it
 * arrive only and without the header, a frame sent on a SOCK_RAW socket reaches a UDP
 * socket, and the errors Linux gives (ENXIO, ENODEV, EINVAL, ENOENT, EPERM). The machine's
 * own loopback may carry other traffic when run natively, so reads skip frames that are
 * not the test's (by UDP port). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
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

#define PORT 47123

/* Prints the result of a call and, when it failed, its error. */
#define TRY(what, expr)                                                              \
    do {                                                                             \
        errno = 0;                                                                   \
        long r_ = (expr);                                                            \
        printf("%s: %ld %s\n", what, r_, r_ < 0 ? strerror(errno) : "ok");         \
    } while (0)

/* Sets a loopback sysctl, returning its old value (natively, Linux drops frames from
 * 127.0.0.1 that a packet socket injects on lo unless accept_local and route_localnet are
 * on; the gVisor suite sets them the same way). */
static char set_conf(const char *name, char v) {
    char path[128], old = '0';
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/lo/%s", name);
    FILE *f = fopen(path, "r+");
    if (!f) {
        printf("open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    old = fgetc(f);
    rewind(f);
    fputc(v, f);
    fclose(f);
    return old;
}

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned short csum(const void *p, size_t n, unsigned long s) {
    const unsigned char *b = p;
    for (size_t i = 0; i + 1 < n; i += 2) s += (b[i] << 8) | b[i + 1];
    if (n & 1) s += b[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons(~s & 0xffff);
}

static void show_name(const char *what, int fd, int lo) {
    struct sockaddr_ll a;
    memset(&a, 0x55, sizeof(a));
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) die("getsockname");
    printf("%s: len %u family %d lo %d proto 0x%x hatype %d halen %d\n", what, len,
           a.sll_family, a.sll_ifindex == lo, ntohs(a.sll_protocol), a.sll_hatype,
           a.sll_halen);
}

/* Reads frames until one carries UDP to PORT (within a second); returns its length or -1.
 * `eth` says whether the frame starts with an Ethernet header. */
static int next_frame(int fd, int eth, unsigned char *buf, size_t size, struct sockaddr_ll *from) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) != 1) return -1;
        socklen_t len = sizeof(*from);
        int n = recvfrom(fd, buf, size, 0, (struct sockaddr *)from, &len);
        if (n < 0) die("recvfrom");
        const unsigned char *ip = buf + (eth ? ETH_HLEN : 0);
        int off = eth ? ETH_HLEN : 0;
        if (n < off + 28 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP) continue;
        const struct udphdr *u = (const void *)(ip + (ip[0] & 15) * 4);
        if (ntohs(u->dest) != PORT) continue;
        if (len != sizeof(*from)) printf("namelen %u\n", len);
        return n;
    }
}

static void show_frame(const char *what, int n, int eth, const unsigned char *buf,
                       const struct sockaddr_ll *from, int lo) {
    const unsigned char *ip = buf + (eth ? ETH_HLEN : 0);
    int zero_macs = 1;
    if (eth)
        for (int i = 0; i < 12; i++) zero_macs &= buf[i] == 0;
    const char *payload = (const char *)ip + (ip[0] & 15) * 4 + 8;
    printf("%s: len %d pkttype %d proto 0x%x lo %d hatype %d halen %d", what, n,
           from->sll_pkttype, ntohs(from->sll_protocol), from->sll_ifindex == lo,
           from->sll_hatype, from->sll_halen);
    if (eth) printf(" ethproto 0x%x zero-macs %d", (buf[12] << 8) | buf[13], zero_macs);
    printf(" payload %.5s\n", payload);
}

static void send_udp(const char *msg) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to)) < 0) die("sendto udp");
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int lo = if_nametoindex("lo");
    if (lo <= 0) die("if_nametoindex");

    int rcv = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in here = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    here.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(rcv, (struct sockaddr *)&here, sizeof(here)) != 0) die("bind udp");

    int all = socket(AF_PACKET, SOCK_RAW, 0);
    if (all < 0) die("socket raw");
    show_name("unbound", all, lo);
    struct sockaddr_ll b = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = lo};
    if (bind(all, (struct sockaddr *)&b, sizeof(b)) != 0) die("bind all");
    show_name("bound", all, lo);
    int cooked = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    if (cooked < 0) die("socket dgram");

    send_udp("hello");
    unsigned char buf[256];
    struct sockaddr_ll from;
    int n = next_frame(all, 1, buf, sizeof(buf), &from);
    if (n < 0) die("first copy");
    show_frame("raw 1", n, 1, buf, &from, lo);
    n = next_frame(all, 1, buf, sizeof(buf), &from);
    if (n < 0) die("second copy");
    show_frame("raw 2", n, 1, buf, &from, lo);
    n = next_frame(cooked, 0, buf, sizeof(buf), &from);
    if (n < 0) die("cooked copy");
    show_frame("cooked 1", n, 0, buf, &from, lo);
    char got[16] = {0};
    printf("udp got %zd\n", recv(rcv, got, sizeof(got), 0));

    /* A frame sent on the loopback: IPv4 + UDP to PORT from port 9. */
    char old_local = set_conf("accept_local", '1');
    char old_localnet = set_conf("route_localnet", '1');
    unsigned char frame[ETH_HLEN + 20 + 8 + 5] = {0};
    frame[12] = 0x08;
    struct iphdr *ip = (void *)(frame + ETH_HLEN);
    ip->ihl = 5;
    ip->version = 4;
    ip->tot_len = htons(33);
    ip->frag_off = htons(IP_DF);
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->saddr = ip->daddr = htonl(INADDR_LOOPBACK);
    ip->check = csum(ip, 20, 0);
    struct udphdr *u = (void *)(ip + 1);
    u->source = htons(9);
    u->dest = htons(PORT);
    u->len = htons(13);
    memcpy(u + 1, "rawfr", 5);
    unsigned long pseudo = 0x7f00 + 0x0001 + 0x7f00 + 0x0001 + IPPROTO_UDP + 13;
    u->check = csum(u, 13, pseudo);
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
                             .sll_ifindex = lo, .sll_halen = ETH_ALEN};
    TRY("send frame", sendto(all, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)));
    struct sockaddr_in src = {0};
    socklen_t slen = sizeof(src);
    struct pollfd p = {.fd = rcv, .events = POLLIN};
    poll(&p, 1, 1000);
    memset(got, 0, sizeof(got));
    ssize_t m = recvfrom(rcv, got, sizeof(got), MSG_DONTWAIT, (struct sockaddr *)&src, &slen);
    printf("udp got %zd %s from port %d\n", m, got, ntohs(src.sin_port));
    set_conf("accept_local", old_local);
    set_conf("route_localnet", old_localnet);
    n = next_frame(all, 1, buf, sizeof(buf), &from);
    show_frame("raw sent", n, 1, buf, &from, lo);
    n = next_frame(cooked, 0, buf, sizeof(buf), &from);
    show_frame("cooked sent", n, 0, buf, &from, lo);

    to.sll_ifindex = 0;
    TRY("no device", sendto(all, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)));
    b.sll_ifindex = 0xffff;
    TRY("bad index", bind(all, (struct sockaddr *)&b, sizeof(b)));
    TRY("short", bind(all, (struct sockaddr *)&b, 8));
    int zero = 0;
    TRY("detach", setsockopt(all, SOL_SOCKET, SO_DETACH_FILTER, &zero, 4));
    int type = 0;
    socklen_t tl = sizeof(type);
    getsockopt(cooked, SOL_SOCKET, SO_TYPE, &type, &tl);
    printf("type %d\n", type);

    pid_t pid = fork();
    if (pid == 0) {
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {{0}};
        if (syscall(SYS_capset, &h, d) != 0) die("capset");
        TRY("without CAP_NET_RAW", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("done\n");
    return 0;
}
