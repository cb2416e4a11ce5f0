#define _GNU_SOURCE
/* UDP delivery rules over the loopback, as Linux applies them: a multicast datagram reaches
 * every socket of the port that joined the group (and not a socket when nobody joined);
 * a broadcast reaches the wildcard and broadcast-bound sockets but not one bound to
 * 127.0.0.1, and needs SO_BROADCAST; SO_REUSEADDR gives unicast to the most recently bound
 * socket, SO_REUSEPORT spreads sources over the group; the receive control messages
 * (IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR, SO_TIMESTAMP) and the send-side IP_TTL and
 * IP_TOS; a connected socket learns ECONNREFUSED from a closed port. Only loopback and
 * multicast over the loopback interface (IP_MULTICAST_IF 127.0.0.1). Prints only what
 * must equal native Linux (no port numbers). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define GROUP "239.255.77.1"

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in sin_of(const char *ip, unsigned short port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = inet_addr(ip);
    return a;
}

#include "inet_util.h"

static int udp(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    return fd;
}

static void set(int fd, int level, int name, int v) {
    if (setsockopt(fd, level, name, &v, sizeof v) < 0)
        die("setsockopt");
}

static void bind_to(int fd, const char *ip, unsigned short port) {
    struct sockaddr_in a = sin_of(ip, port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
}

/* Sends, then reports what each of `n` sockets received (in that order: C leaves the order
 * of a call's arguments open). */
static void sent_got(const char *what, long sent, int n, const int *fds);

static long send_to(int fd, const char *ip, unsigned short port, const char *msg) {
    struct sockaddr_in a = sin_of(ip, port);
    long n = sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof a);
    return n < 0 ? -errno : n;
}

/* What `fd` has queued: the number of datagrams (read and counted). */
static int drain(int fd) {
    char buf[256];
    int n = 0;
    usleep(20000);
    while (recv(fd, buf, sizeof buf, 0) >= 0)
        n++;
    return n;
}

static void sent_got(const char *what, long sent, int n, const int *fds) {
    printf("%s: sent %ld got", what, sent);
    for (int i = 0; i < n; i++)
        printf(" %d", drain(fds[i]));
    printf("\n");
}

static void join(int fd, const char *group) {
    struct ip_mreq m = {.imr_multiaddr.s_addr = inet_addr(group),
                        .imr_interface.s_addr = htonl(INADDR_LOOPBACK)};
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0)
        die("IP_ADD_MEMBERSHIP");
}

static void multicast(void) {
    int tx = udp();
    struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
    if (setsockopt(tx, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo) < 0)
        die("IP_MULTICAST_IF");
    int a = udp(), b = udp(), c = udp();
    set(a, SOL_SOCKET, SO_REUSEADDR, 1);
    set(b, SOL_SOCKET, SO_REUSEADDR, 1);
    set(c, SOL_SOCKET, SO_REUSEADDR, 1);
    bind_to(a, "0.0.0.0", 0);
    unsigned short port = port_of(a);
    bind_to(b, GROUP, port);
    bind_to(c, "127.0.0.1", port);
    int all[3] = {a, b, c};
    sent_got("mcast nobody joined", send_to(tx, GROUP, port, "m0"), 3, all);
    join(a, GROUP);
    set(b, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    sent_got("mcast a joined, b not all", send_to(tx, GROUP, port, "m1"), 3, all);
    set(b, IPPROTO_IP, IP_MULTICAST_ALL, 1);
    sent_got("mcast a joined, b all", send_to(tx, GROUP, port, "m2"), 3, all);
    set(b, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    join(b, GROUP);
    sent_got("mcast a b joined", send_to(tx, GROUP, port, "m3"), 3, all);
    close(a), close(b), close(c), close(tx);
}

static void broadcast(void) {
    int tx = udp();
    bind_to(tx, "127.0.0.1", 0);
    int a = udp(), b = udp(), c = udp();
    set(a, SOL_SOCKET, SO_REUSEADDR, 1);
    set(b, SOL_SOCKET, SO_REUSEADDR, 1);
    set(c, SOL_SOCKET, SO_REUSEADDR, 1);
    bind_to(a, "0.0.0.0", 0);
    unsigned short port = port_of(a);
    bind_to(b, "255.255.255.255", port);
    bind_to(c, "127.0.0.1", port);
    long r = send_to(tx, "255.255.255.255", port, "b0");
    printf("bcast without SO_BROADCAST: %s\n", r == -EACCES ? "EACCES" : "other");
    set(tx, SOL_SOCKET, SO_BROADCAST, 1);
    int all[3] = {a, b, c};
    sent_got("bcast", send_to(tx, "255.255.255.255", port, "b1"), 3, all);
    sent_got("subnet bcast", send_to(tx, "127.255.255.255", port, "b2"), 3, all);
    close(a), close(b), close(c), close(tx);
}

static void reuse(void) {
    int socks[4];
    unsigned short port = 0;
    printf("reuseaddr latest:");
    for (int i = 0; i < 4; i++) {
        socks[i] = udp();
        set(socks[i], SOL_SOCKET, SO_REUSEADDR, 1);
        bind_to(socks[i], "127.0.0.1", port);
        port = port_of(socks[i]);
        int tx = udp();
        send_to(tx, "127.0.0.1", port, "u");
        close(tx);
        printf(" %d", drain(socks[i]));
    }
    int others = 0;
    for (int i = 0; i < 4; i++)
        others += drain(socks[i]);
    printf(" others %d\n", others);
    for (int i = 0; i < 4; i++)
        close(socks[i]);

    int r1 = udp(), r2 = udp();
    set(r1, SOL_SOCKET, SO_REUSEPORT, 1);
    set(r2, SOL_SOCKET, SO_REUSEPORT, 1);
    bind_to(r1, "127.0.0.1", 0);
    port = port_of(r1);
    bind_to(r2, "127.0.0.1", port);
    for (int i = 0; i < 64; i++) {
        int tx = udp();
        send_to(tx, "127.0.0.1", port, "r");
        close(tx);
    }
    int n1 = drain(r1), n2 = drain(r2);
    printf("reuseport: total %d both %d\n", n1 + n2, n1 > 0 && n2 > 0);
    close(r1), close(r2);
}

static void control(void) {
    int rx = udp(), tx = udp();
    bind_to(rx, "127.0.0.1", 0);
    unsigned short port = port_of(rx);
    set(rx, IPPROTO_IP, IP_PKTINFO, 1);
    set(rx, IPPROTO_IP, IP_RECVTTL, 1);
    set(rx, IPPROTO_IP, IP_RECVTOS, 1);
    set(rx, IPPROTO_IP, IP_RECVORIGDSTADDR, 1);
    set(rx, SOL_SOCKET, SO_TIMESTAMP, 1);
    set(tx, IPPROTO_IP, IP_TOS, 0x20);
    socklen_t len = sizeof(int);
    int v = 0;
    getsockopt(rx, IPPROTO_IP, IP_RECVTTL, &v, &len);
    printf("IP_RECVTTL reads %d\n", v);
    /* One datagram with the socket's TTL and TOS, one with IP_TTL 7 and IP_TOS 4 in
     * sendmsg's control messages. */
    for (int round = 0; round < 2; round++) {
        struct sockaddr_in to = sin_of("127.0.0.1", port);
        char data[] = "ctl";
        struct iovec iov = {.iov_base = data, .iov_len = 3};
        union {
            char buf[CMSG_SPACE(sizeof(int)) * 2];
            struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof u);
        struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                           .msg_iovlen = 1};
        if (round == 1) {
            m.msg_control = u.buf;
            m.msg_controllen = sizeof u.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_TTL;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            *(int *)CMSG_DATA(c) = 7;
            c = CMSG_NXTHDR(&m, c);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_TOS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            *(int *)CMSG_DATA(c) = 4;
        }
        if (sendmsg(tx, &m, 0) != 3)
            die("sendmsg");
        usleep(20000);
        char in[16];
        char cbuf[512];
        struct iovec riov = {.iov_base = in, .iov_len = sizeof in};
        struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = cbuf,
                           .msg_controllen = sizeof cbuf};
        if (recvmsg(rx, &r, 0) != 3)
            die("recvmsg");
        printf("round %d:", round);
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&r); c; c = CMSG_NXTHDR(&r, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMP) {
                struct timeval tv;
                memcpy(&tv, CMSG_DATA(c), sizeof tv);
                printf(" timestamp %s", tv.tv_sec > 0 ? "set" : "zero");
            } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(c), sizeof pi);
                printf(" pktinfo if %d spec %s", pi.ipi_ifindex, inet_ntoa(pi.ipi_spec_dst));
                printf(" addr %s", inet_ntoa(pi.ipi_addr));
            } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
                printf(" ttl %d", *(int *)CMSG_DATA(c));
            } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
                printf(" tos %d len %d", *(unsigned char *)CMSG_DATA(c),
                       (int)(c->cmsg_len - CMSG_LEN(0)));
            } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_ORIGDSTADDR) {
                struct sockaddr_in o;
                memcpy(&o, CMSG_DATA(c), sizeof o);
                printf(" origdst %s port-ok %d", inet_ntoa(o.sin_addr), ntohs(o.sin_port) == port);
            } else {
                printf(" other %d/%d", c->cmsg_level, c->cmsg_type);
            }
        }
        printf("\n");
    }
    close(rx), close(tx);
}

static void refused(void) {
    int probe = udp();
    bind_to(probe, "127.0.0.1", 0);
    unsigned short port = port_of(probe);
    close(probe);
    int fd = udp();
    struct sockaddr_in to = sin_of("127.0.0.1", port);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0)
        die("connect");
    long n = send(fd, "x", 1, 0);
    usleep(20000);
    char c;
    long r = recv(fd, &c, 1, 0);
    printf("closed port: send %ld recv %ld %s\n", n, r, r < 0 && errno == ECONNREFUSED ? "ECONNREFUSED" : "other");
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    multicast();
    broadcast();
    reuse();
    control();
    refused();
    printf("done\n");
    return 0;
}
