// Control messages of ping sockets (icmp(7), ip(7), ipv6(7)): an echo to the loopback comes
// back with the reply's TTL (hop limit), the request's TOS (traffic class), and the
// packet info (interface, addresses) when the socket asked for them with IP_RECVTTL,
// IP_RECVTOS, IP_PKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS and IPV6_RECVPKTINFO. Natively
// the program runs in a network namespace of its own (exits 77 when it cannot), where it
// lets its group open ping sockets.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

#include "inet_util.h"

static void set(int s, int level, int name, int value) {
    if (setsockopt(s, level, name, &value, sizeof value) != 0) die("setsockopt");
}

// One receive, the reply's type and each control message printed.
static void receive(const char *what, int s) {
    unsigned char data[64];
    char control[512];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(s, &m, 0);
    if (n < 0) {
        printf("%s: %s\n", what, strerrorname_np(errno));
        return;
    }
    printf("%s: %zd bytes type %u code %u\n", what, n, data[0], data[1]);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        printf("  cmsg %d/%d len %zu:", c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len);
        void *v = CMSG_DATA(c);
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo *p = v;
            inet_ntop(AF_INET, &p->ipi_spec_dst, a, sizeof a);
            inet_ntop(AF_INET, &p->ipi_addr, b, sizeof b);
            printf(" lo %d spec_dst %s addr %s", p->ipi_ifindex == 1, a, b);
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_TOS) {
            printf(" %u", *(unsigned char *)v);
        } else if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo *p = v;
            inet_ntop(AF_INET6, &p->ipi6_addr, a, sizeof a);
            printf(" lo %d addr %s", p->ipi6_ifindex == 1, a);
        } else {
            int i;
            memcpy(&i, v, sizeof i);
            printf(" %d", i);
        }
        printf("\n");
    }
}

int main(void) {
    own_network_namespace();
    loopback_up();
    // Natively only the groups of ping_group_range open ping sockets; the sandbox's
    // kernel lets everyone.
    FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "w");
    if (f) {
        fprintf(f, "0 0\n");
        fclose(f);
    }

    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (s < 0) die("ping socket");
    struct sockaddr_in lo = loopback(0);
    if (bind(s, (struct sockaddr *)&lo, sizeof lo) != 0) die("bind");
    set(s, SOL_IP, IP_TOS, 42);
    struct icmphdr echo = {.type = ICMP_ECHO, .un.echo.sequence = htons(1)};
    if (sendto(s, &echo, sizeof echo, 0, (struct sockaddr *)&lo, sizeof lo) != sizeof echo)
        die("sendto");
    set(s, SOL_IP, IP_RECVTTL, 1);
    set(s, SOL_IP, IP_RECVTOS, 1);
    set(s, SOL_IP, IP_PKTINFO, 1);
    receive("v4 reply", s);
    // Without the options: no control messages.
    set(s, SOL_IP, IP_RECVTTL, 0);
    set(s, SOL_IP, IP_RECVTOS, 0);
    set(s, SOL_IP, IP_PKTINFO, 0);
    if (sendto(s, &echo, sizeof echo, 0, (struct sockaddr *)&lo, sizeof lo) != sizeof echo)
        die("sendto");
    receive("v4 plain", s);
    close(s);

    s = socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
    if (s < 0) die("ping6 socket");
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    if (bind(s, (struct sockaddr *)&lo6, sizeof lo6) != 0) die("bind6");
    set(s, SOL_IPV6, IPV6_TCLASS, 42);
    struct icmp6_hdr echo6 = {.icmp6_type = ICMP6_ECHO_REQUEST};
    if (sendto(s, &echo6, sizeof echo6, 0, (struct sockaddr *)&lo6, sizeof lo6) != sizeof echo6)
        die("sendto6");
    set(s, SOL_IPV6, IPV6_RECVHOPLIMIT, 1);
    set(s, SOL_IPV6, IPV6_RECVTCLASS, 1);
    set(s, SOL_IPV6, IPV6_RECVPKTINFO, 1);
    receive("v6 reply", s);
    close(s);
    printf("done\n");
    return 0;
}
