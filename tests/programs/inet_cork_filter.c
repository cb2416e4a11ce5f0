/*
 * inet_cork_filter: TCP_CORK holding data back, TCP_INQ's control message, IP_MTU_DISCOVER
 * on a TCP socket, and classic BPF socket filters (SO_ATTACH_FILTER, SO_DETACH_FILTER)
 * on UDP and TCP sockets over 127.0.0.1. Prints what it sees; the test compares with
 * native Linux. No time is asserted: waits are generous upper bounds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

#include "inet_util.h"

#ifndef TCP_INQ
#define TCP_INQ 36
#endif

static const int on = 1, off = 0;

/* Whether fd becomes readable within ms milliseconds. */
static int readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, ms);
    if (n < 0)
        die("poll");
    return n;
}

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

/* A connected pair over 127.0.0.1: *client and *server. */
static void tcp_pair(int *client, int *server) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0)
        die("listen");
    a = loopback(port_of(l));
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*client, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    *server = accept(l, NULL, NULL);
    if (*server < 0)
        die("accept");
    close(l);
}

static void cork(void) {
    int c, s;
    char buf[16];
    tcp_pair(&c, &s);
    setsockopt(c, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    if (write(c, "abc", 3) != 3)
        die("write");
    /* Linux sends nothing while corked (for up to 200 ms): look at once. */
    long r = recv(s, buf, sizeof buf, MSG_DONTWAIT);
    printf("corked recv %ld %s\n", r, err(r));
    setsockopt(c, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    readable(s, 5000);
    r = recv(s, buf, sizeof buf, MSG_DONTWAIT);
    printf("uncorked recv %ld\n", r);
    /* The 200 ms ceiling: corked data goes out by itself. */
    setsockopt(c, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    if (write(c, "defg", 4) != 4)
        die("write");
    printf("ceiling readable %d\n", readable(s, 5000));
    r = recv(s, buf, sizeof buf, MSG_DONTWAIT);
    printf("ceiling recv %ld\n", r);
    /* Closing sends what was held before the FIN. */
    if (write(c, "hi", 2) != 2)
        die("write");
    close(c);
    int total = 0;
    while (readable(s, 5000) && (r = recv(s, buf, sizeof buf, 0)) > 0)
        total += r;
    printf("close flushed %d then %ld\n", total, r);
    close(s);
}

static void inq(void) {
    int c, s, v = -1;
    socklen_t len = sizeof v;
    tcp_pair(&c, &s);
    getsockopt(s, IPPROTO_TCP, TCP_INQ, &v, &len);
    printf("TCP_INQ default %d\n", v);
    long r = setsockopt(s, IPPROTO_TCP, TCP_INQ, &(int){2}, sizeof(int));
    printf("TCP_INQ 2: %ld %s\n", r, err(r));
    setsockopt(s, IPPROTO_TCP, TCP_INQ, &on, sizeof on);
    getsockopt(s, IPPROTO_TCP, TCP_INQ, &v, &len);
    printf("TCP_INQ set %d\n", v);
    if (write(c, "0123456789", 10) != 10)
        die("write");
    int queued = 0;
    for (int i = 0; i < 500 && queued < 10; i++) {
        readable(s, 10);
        ioctl(s, FIONREAD, &queued);
    }
    char buf[4];
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.b,
                       .msg_controllen = sizeof control.b};
    r = recvmsg(s, &m, 0);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    int left = -1;
    if (cm && cm->cmsg_level == IPPROTO_TCP && cm->cmsg_type == TCP_INQ)
        memcpy(&left, CMSG_DATA(cm), sizeof left);
    printf("recvmsg %ld inq cmsg %d\n", r, left);
    close(c);
    close(s);
}

static void pmtud(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0), v = -1;
    socklen_t len = sizeof v;
    getsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &v, &len);
    printf("tcp IP_MTU_DISCOVER default %d\n", v);
    setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &(int){IP_PMTUDISC_DO}, sizeof(int));
    getsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &v, &len);
    long r = setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &(int){99}, sizeof(int));
    printf("tcp IP_MTU_DISCOVER set %d, 99: %s\n", v, err(r));
    close(s);
}

static long attach(int fd, struct sock_filter *code, unsigned short n) {
    struct sock_fprog prog = {.len = n, .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

static void udp_filter(void) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = loopback(0);
    if (bind(rx, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
    a = loopback(port_of(rx));
    if (connect(tx, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    /* UDP filters see the UDP header first: pass datagrams whose payload starts with 'A'. */
    struct sock_filter only_a[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    long r = attach(rx, only_a, 4);
    printf("udp attach %ld\n", r);
    send(tx, "B1", 2, 0);
    send(tx, "A1", 2, 0);
    char buf[16] = {0};
    readable(rx, 5000);
    r = recv(rx, buf, sizeof buf, MSG_DONTWAIT);
    printf("udp first %ld %.2s\n", r, buf);
    r = recv(rx, buf, sizeof buf, MSG_DONTWAIT);
    printf("udp then %ld %s\n", r, err(r));
    /* A shorter length trims the datagram (never below the header). */
    struct sock_filter trim[] = {BPF_STMT(BPF_RET | BPF_K, 8 + 2)};
    attach(rx, trim, 1);
    send(tx, "Azzzz", 5, 0);
    readable(rx, 5000);
    r = recv(rx, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
    printf("udp trimmed %ld\n", r);
    r = setsockopt(rx, SOL_SOCKET, SO_DETACH_FILTER, &off, sizeof off);
    printf("udp detach %ld\n", r);
    send(tx, "B2", 2, 0);
    readable(rx, 5000);
    r = recv(rx, buf, sizeof buf, MSG_DONTWAIT);
    printf("udp unfiltered %ld %.2s\n", r, buf);
    r = setsockopt(rx, SOL_SOCKET, SO_DETACH_FILTER, &off, sizeof off);
    printf("udp detach again %ld %s\n", r, err(r));
    struct sock_filter bad[] = {
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    r = attach(rx, bad, 2);
    printf("bad program %ld %s\n", r, err(r));
    r = attach(rx, NULL, 1);
    printf("null program %ld %s\n", r, err(r));
    close(rx);
    close(tx);
}

static void tcp_filter(void) {
    int c, s;
    tcp_pair(&c, &s);
    /* TCP filters see the TCP header first: drop segments that carry data. */
    struct sock_filter no_data[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 12), /* the data offset, in words */
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 4),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
    };
    long r = attach(s, no_data, 8);
    printf("tcp attach %ld\n", r);
    if (write(c, "hi", 2) != 2)
        die("write");
    printf("tcp filtered readable %d\n", readable(s, 300));
    setsockopt(s, SOL_SOCKET, SO_DETACH_FILTER, &off, sizeof off);
    /* The sender retransmits; now it gets through. */
    char buf[4];
    printf("tcp after detach readable %d\n", readable(s, 10000));
    r = recv(s, buf, sizeof buf, MSG_DONTWAIT);
    printf("tcp after detach recv %ld\n", r);
    close(c);
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    cork();
    inq();
    pmtud();
    udp_filter();
    tcp_filter();
    printf("done\n");
    return 0;
}
