// UDP's error queue (ip(7) IP_RECVERR, ipv6(7) IPV6_RECVERR): datagrams sent to a closed
// port on the loopback come back as ICMP port unreachable, which a socket that asked for
// errors reads with recvmsg(MSG_ERRQUEUE): the payload the ICMP message quoted, the failed
// destination as the name, and a sock_extended_err with the offender after it. Also what
// SO_ERROR and poll say meanwhile, the queue emptied when IP_RECVERR goes off, and the local
// EMSGSIZE error of an IPv6 datagram too long to send. The program runs in a network
// namespace of its own (natively; exits 77 when it cannot).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
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

static char payload[70000];

// A port on `family`'s loopback that nobody is bound to (it was, a moment ago).
static unsigned short closed_port(int family) {
    int s = socket(family, SOCK_DGRAM, 0);
    struct sockaddr_storage a = {0};
    socklen_t len = sizeof a;
    if (family == AF_INET) {
        struct sockaddr_in lo = loopback(0);
        if (bind(s, (struct sockaddr *)&lo, sizeof lo) != 0) die("bind");
    } else {
        struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
        if (bind(s, (struct sockaddr *)&lo, sizeof lo) != 0) die("bind6");
    }
    if (getsockname(s, (struct sockaddr *)&a, &len) != 0) die("getsockname");
    close(s);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static struct sockaddr_storage dest(int family, unsigned short port, socklen_t *len) {
    struct sockaddr_storage a = {0};
    if (family == AF_INET) {
        struct sockaddr_in lo = loopback(port);
        memcpy(&a, &lo, sizeof lo);
        *len = sizeof lo;
    } else {
        struct sockaddr_in6 *six = (struct sockaddr_in6 *)&a;
        six->sin6_family = AF_INET6;
        six->sin6_addr = in6addr_loopback;
        six->sin6_port = htons(port);
        *len = sizeof *six;
    }
    return a;
}

static void sent(const char *what, int s, int family, unsigned short port, size_t n) {
    socklen_t len;
    struct sockaddr_storage a = dest(family, port, &len);
    ssize_t r = sendto(s, payload, n, 0, (struct sockaddr *)&a, len);
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %zd\n", what, r);
}

static void so_error(const char *what, int s) {
    int err = -1;
    socklen_t len = sizeof err;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) die("SO_ERROR");
    printf("%s SO_ERROR: %s\n", what, err ? strerrorname_np(err) : "0");
}

static void polled(const char *what, int s) {
    struct pollfd p = {.fd = s, .events = POLLIN};
    int n = poll(&p, 1, 0);
    printf("%s poll: %d%s%s%s\n", what, n, p.revents & POLLIN ? " POLLIN" : "",
           p.revents & POLLOUT ? " POLLOUT" : "", p.revents & POLLERR ? " POLLERR" : "");
}

static void address(const char *what, const struct sockaddr *sa, unsigned short port) {
    char text[INET6_ADDRSTRLEN] = "";
    unsigned short p = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        p = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        p = ntohs(in6->sin6_port);
    }
    printf(" %s=%d/%s/%s", what, sa->sa_family, text,
           p == 0 ? "0" : (p == port ? "closed" : "other"));
}

// One read of the error queue, printed field by field.
static void errqueue(const char *what, int s, unsigned short port) {
    static char data[2048];
    char control[256];
    struct sockaddr_storage name = {0};
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr m = {.msg_name = &name,
                       .msg_namelen = sizeof name,
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control,
                       .msg_controllen = sizeof control};
    ssize_t n = recvmsg(s, &m, MSG_ERRQUEUE);
    if (n < 0) {
        printf("%s errqueue: %s\n", what, strerrorname_np(errno));
        return;
    }
    printf("%s errqueue: %zd same=%d flags=%s%s%s", what, n, memcmp(data, payload, n) == 0,
           m.msg_flags & MSG_ERRQUEUE ? "ERRQUEUE" : "-", m.msg_flags & MSG_TRUNC ? "|TRUNC" : "",
           m.msg_flags & MSG_CTRUNC ? "|CTRUNC" : "");
    address("name", (struct sockaddr *)&name, port);
    printf("\n");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        printf("  cmsg %d/%d len %zu", c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len);
        if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
            (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
            struct sock_extended_err *e = (void *)CMSG_DATA(c);
            printf(" errno=%s origin=%u type=%u code=%u pad=%u info=%u data=%u",
                   strerrorname_np(e->ee_errno), e->ee_origin, e->ee_type, e->ee_code, e->ee_pad,
                   e->ee_info, e->ee_data);
            address("offender", SO_EE_OFFENDER(e), port);
        }
        printf("\n");
    }
}

static void recverr(int s, int level, int name, int on) {
    if (setsockopt(s, level, name, &on, sizeof on) != 0) die("setsockopt RECVERR");
}

int main(void) {
    own_network_namespace();
    loopback_up();
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)(i * 7 + 3);

    // IPv4, unconnected, without IP_RECVERR: nothing is queued, nothing reported.
    unsigned short port = closed_port(AF_INET);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    sent("plain", s, AF_INET, port, 300);
    errqueue("plain", s, port);
    so_error("plain", s);

    // With IP_RECVERR: the error is queued, POLLERR and SO_ERROR say so.
    recverr(s, SOL_IP, IP_RECVERR, 1);
    int on = -1;
    socklen_t len = sizeof on;
    getsockopt(s, SOL_IP, IP_RECVERR, &on, &len);
    printf("IP_RECVERR: %d (%u bytes)\n", on, len);
    sent("v4", s, AF_INET, port, 300);
    polled("v4", s);
    errqueue("v4", s, port);
    so_error("v4 after read", s);
    polled("v4 after read", s);
    errqueue("v4 again", s, port);

    // A long datagram: the ICMP message quotes only its start.
    sent("v4 long", s, AF_INET, port, 1000);
    errqueue("v4 long", s, port);

    // A pending SO_ERROR fails the next send (and is gone then).
    sent("v4 first", s, AF_INET, port, 10);
    sent("v4 refused", s, AF_INET, port, 20);
    so_error("v4 refused", s);
    // Two errors: reading the first makes the second SO_ERROR.
    sent("v4 second", s, AF_INET, port, 20);
    so_error("v4 two", s);
    errqueue("v4 first", s, port);
    so_error("v4 one left", s);
    errqueue("v4 second", s, port);
    so_error("v4 none left", s);

    // IP_RECVERR off: what was queued goes.
    sent("v4 dropped", s, AF_INET, port, 30);
    recverr(s, SOL_IP, IP_RECVERR, 0);
    errqueue("v4 off", s, port);
    so_error("v4 off", s);
    close(s);

    // Connected, without IP_RECVERR: the next call fails.
    s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = loopback(port);
    if (connect(s, (struct sockaddr *)&to, sizeof to) != 0) die("connect");
    printf("connected send: %zd\n", send(s, payload, 5, 0));
    ssize_t r = send(s, payload, 5, 0);
    printf("connected send again: %s\n", r < 0 ? strerrorname_np(errno) : "sent");
    errqueue("connected", s, port);
    close(s);

    // IPv6 errors take IPV6_RECVERR; IP_RECVERR alone queues none of them.
    port = closed_port(AF_INET6);
    s = socket(AF_INET6, SOCK_DGRAM, 0);
    recverr(s, SOL_IP, IP_RECVERR, 1);
    sent("v6 with IP_RECVERR", s, AF_INET6, port, 40);
    errqueue("v6 with IP_RECVERR", s, port);
    so_error("v6 with IP_RECVERR", s);
    recverr(s, SOL_IPV6, IPV6_RECVERR, 1);
    sent("v6", s, AF_INET6, port, 300);
    polled("v6", s);
    errqueue("v6", s, port);
    so_error("v6 after read", s);
    sent("v6 long", s, AF_INET6, port, 1500);
    errqueue("v6 long", s, port);

    // An IPv6 datagram too long for any packet: a local error, SO_ERROR untouched.
    sent("v6 too big", s, AF_INET6, port, 65536);
    errqueue("v6 too big", s, port);
    so_error("v6 too big", s);
    close(s);

    // The same for IPv4 queues nothing.
    s = socket(AF_INET, SOCK_DGRAM, 0);
    recverr(s, SOL_IP, IP_RECVERR, 1);
    sent("v4 too big", s, AF_INET, port, 65536);
    errqueue("v4 too big", s, port);
    close(s);
    printf("done\n");
    return 0;
}
