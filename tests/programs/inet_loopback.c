#define _GNU_SOURCE
/* TCP and UDP over 127.0.0.1: a listener on an ephemeral port and a forked client that
 * sends 64 KiB and half-closes, the server answering with a checksum; a UDP ping-pong;
 * connect to a closed port; a non-blocking connect completed through poll and SO_ERROR;
 * EOF after the peer's FIN; EPIPE after the peer is gone; bind errors. Prints only what
 * must equal native Linux (no port numbers). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOTAL (64 * 1024)

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

#include "inet_util.h"

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void tcp_echo_checksum(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0)
        die("socket");
    int one = 1;
    if (setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("SO_REUSEADDR");
    struct sockaddr_in a = loopback(0);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
    if (listen(l, 4) < 0)
        die("listen");
    unsigned short port = port_of(l);
    printf("listening port-nonzero %d\n", port != 0);
    int acc = 0;
    socklen_t alen = sizeof acc;
    getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen);
    printf("acceptconn %d\n", acc);

    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in to = loopback(port);
        if (connect(c, (struct sockaddr *)&to, sizeof to) < 0)
            die("connect");
        int nd = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd);
        static unsigned char buf[TOTAL];
        for (int i = 0; i < TOTAL; i++)
            buf[i] = (unsigned char)(i * 7 + 3);
        if (write_all(c, buf, TOTAL) < 0)
            die("client write");
        if (shutdown(c, SHUT_WR) < 0)
            die("shutdown");
        char reply[64];
        size_t got = 0;
        for (;;) {
            ssize_t r = read(c, reply + got, sizeof reply - 1 - got);
            if (r < 0)
                die("client read");
            if (r == 0)
                break;
            got += (size_t)r;
        }
        reply[got] = 0;
        printf("client got: %s", reply);
        close(c);
        _exit(0);
    }
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int s = accept(l, (struct sockaddr *)&peer, &plen);
    if (s < 0)
        die("accept");
    printf("peer is loopback %d, family %d, len %u\n",
           peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK), peer.sin_family, plen);
    struct sockaddr_in pn;
    socklen_t pnl = sizeof pn;
    getpeername(s, (struct sockaddr *)&pn, &pnl);
    printf("getpeername matches accept %d\n", pn.sin_port == peer.sin_port);
    unsigned long sum = 0, n = 0;
    unsigned char buf[4096];
    for (;;) {
        ssize_t r = read(s, buf, sizeof buf);
        if (r < 0)
            die("server read");
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            sum = sum * 31 + buf[i];
        n += (unsigned long)r;
    }
    char reply[64];
    int len = snprintf(reply, sizeof reply, "%lu bytes sum %lu\n", n, sum);
    if (write_all(s, (unsigned char *)reply, (size_t)len) < 0)
        die("server write");
    close(s);
    int status;
    waitpid(pid, &status, 0);
    fflush(stdout);
    printf("client exit %d\n", WEXITSTATUS(status));
    close(l);
}

static void udp_ping_pong(void) {
    int srv = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = loopback(0);
    if (bind(srv, (struct sockaddr *)&a, sizeof a) < 0)
        die("udp bind");
    unsigned short port = port_of(srv);
    int cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = loopback(port);
    for (int i = 0; i < 3; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "ping %d", i);
        if (sendto(cli, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof to) != len)
            die("sendto");
        char buf[64];
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t r = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (r < 0)
            die("recvfrom");
        printf("server got %.*s from-client %d\n", (int)r, buf, from.sin_port == htons(port_of(cli)));
        buf[1] = 'o';
        if (sendto(srv, buf, (size_t)r, 0, (struct sockaddr *)&from, flen) != r)
            die("reply");
        r = recv(cli, buf, sizeof buf, 0);
        printf("client got %.*s\n", (int)r, buf);
    }
    /* Truncation and MSG_PEEK. */
    sendto(cli, "0123456789", 10, 0, (struct sockaddr *)&to, sizeof to);
    char small[4];
    ssize_t r = recv(srv, small, sizeof small, MSG_PEEK);
    printf("peek %zd %.4s\n", r, small);
    r = recv(srv, small, sizeof small, MSG_TRUNC);
    printf("trunc %zd\n", r);
    r = recv(srv, small, sizeof small, MSG_DONTWAIT);
    printf("empty %zd %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    /* A connected UDP socket. */
    if (connect(cli, (struct sockaddr *)&to, sizeof to) < 0)
        die("udp connect");
    printf("send connected %zd\n", send(cli, "hey", 3, 0));
    r = recv(srv, small, sizeof small, 0);
    printf("server got %zd\n", r);
    close(cli);
    close(srv);
}

static void refused(void) {
    /* A port nobody listens on: take one and give it back. */
    int t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    bind(t, (struct sockaddr *)&a, sizeof a);
    unsigned short port = port_of(t);
    close(t);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = loopback(port);
    int r = connect(c, (struct sockaddr *)&to, sizeof to);
    printf("connect closed port %d %s\n", r, r < 0 && errno == ECONNREFUSED ? "ECONNREFUSED" : strerror(errno));
    close(c);
    c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in far = loopback(80);
    far.sin_addr.s_addr = inet_addr("192.0.2.1");
    struct sockaddr_in bad = far;
    bad.sin_port = 0;
    r = bind(c, (struct sockaddr *)&bad, sizeof bad);
    printf("bind foreign %d %s\n", r, r < 0 && errno == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : strerror(errno));
    close(c);
}

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig) {
    (void)sig;
    sigpipes++;
}

static void nonblocking_connect(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    unsigned short port = port_of(l);
    int dup = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in same = loopback(port);
    int r = bind(dup, (struct sockaddr *)&same, sizeof same);
    printf("bind in use %d %s\n", r, r < 0 && errno == EADDRINUSE ? "EADDRINUSE" : strerror(errno));
    close(dup);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in to = loopback(port);
    r = connect(c, (struct sockaddr *)&to, sizeof to);
    printf("nonblocking connect %d %s\n", r, r < 0 && errno == EINPROGRESS ? "EINPROGRESS" : strerror(errno));
    struct pollfd p = {.fd = c, .events = POLLOUT};
    r = poll(&p, 1, 5000);
    printf("poll %d out %d\n", r, (p.revents & POLLOUT) != 0);
    int err = -1;
    socklen_t elen = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &elen);
    printf("SO_ERROR %d\n", err);
    int s = accept(l, NULL, NULL);
    printf("accepted %d\n", s >= 0);
    char b[8];
    r = (int)read(c, b, sizeof b);
    printf("read empty %d %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    struct pollfd ps = {.fd = s, .events = POLLIN};
    printf("server poll before data %d\n", poll(&ps, 1, 0));
    write(c, "abc", 3);
    r = poll(&ps, 1, 5000);
    printf("server poll after data %d in %d\n", r, (ps.revents & POLLIN) != 0);
    r = (int)recv(s, b, sizeof b, MSG_PEEK);
    printf("peek %d\n", r);
    r = (int)read(s, b, sizeof b);
    printf("read %d %.3s\n", r, b);
    close(c);
    r = poll(&ps, 1, 5000);
    printf("after peer close poll %d in %d rdhup %d\n", r, (ps.revents & POLLIN) != 0,
           (ps.revents & POLLRDHUP) != 0);
    printf("eof %zd\n", read(s, b, sizeof b));
    /* Writing to a connection whose peer is gone: first write may succeed (it draws a
     * reset), then EPIPE and SIGPIPE. */
    signal(SIGPIPE, on_sigpipe);
    int saw_epipe = 0;
    for (int i = 0; i < 50 && !saw_epipe; i++) {
        if (write(s, "x", 1) < 0 && errno == EPIPE)
            saw_epipe = 1;
        usleep(10000);
    }
    printf("epipe %d sigpipe %d\n", saw_epipe, sigpipes > 0);
    /* send(2) with MSG_NOSIGNAL: EPIPE without a signal. */
    int before = sigpipes;
    ssize_t w = send(s, "y", 1, MSG_NOSIGNAL);
    printf("nosignal %zd %s new-signals %d\n", w, w < 0 && errno == EPIPE ? "EPIPE" : "?",
           sigpipes - before);
    close(s);
    close(l);
}

/* The server closes with unread data: a reset, which the client sees as ECONNRESET once,
 * with POLLERR, then end of file. */
static void reset_by_peer(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = loopback(port_of(l));
    if (connect(c, (struct sockaddr *)&to, sizeof to) < 0)
        die("connect for reset");
    int s = accept(l, NULL, NULL);
    write(c, "unread", 6);
    usleep(20000);
    close(s);
    struct pollfd p = {.fd = c, .events = POLLIN};
    int r = poll(&p, 1, 5000);
    printf("reset poll %d in %d err %d\n", r, (p.revents & POLLIN) != 0, (p.revents & POLLERR) != 0);
    char b[8];
    ssize_t n = read(c, b, sizeof b);
    printf("reset read %zd %s\n", n, n < 0 && errno == ECONNRESET ? "ECONNRESET" : "?");
    printf("then read %zd\n", read(c, b, sizeof b));
    close(c);
    close(l);
}

/* Edge-triggered epoll on a TCP connection: one report per arrival of data. */
static void epoll_edge(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = loopback(port_of(l));
    if (connect(c, (struct sockaddr *)&to, sizeof to) < 0)
        die("connect for epoll");
    int s = accept(l, NULL, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    struct epoll_event out;
    printf("et empty %d\n", epoll_wait(ep, &out, 1, 0));
    write(c, "a", 1);
    printf("et first %d\n", epoll_wait(ep, &out, 1, 5000));
    printf("et again %d\n", epoll_wait(ep, &out, 1, 0));
    write(c, "b", 1);
    printf("et second %d\n", epoll_wait(ep, &out, 1, 5000));
    char b[4];
    printf("et read %zd\n", read(s, b, sizeof b));
    close(ep);
    close(s);
    close(c);
    close(l);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    tcp_echo_checksum();
    udp_ping_pong();
    refused();
    nonblocking_connect();
    reset_by_peer();
    epoll_edge();
    printf("done\n");
    return 0;
}
