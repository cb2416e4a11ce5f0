#define _GNU_SOURCE
/* TCP connection states over 127.0.0.1 as Linux shows them: a connection in TIME_WAIT
 * (and one still open, accepted from a closed listener) keeps its port bound; the passive
 * closer's port is free once closed; shutdown in TIME_WAIT is ENOTCONN; a listen backlog
 * of 0 takes one connection and leaves the next one's SYN unanswered until accept makes
 * room; a refused nonblocking connect reports its error once, then reads EOF, and the next
 * connect is ECONNABORTED; a connect to port 0 is refused; MSG_TRUNC on a stream drops
 * bytes without copying them; TCP_INFO's RTO and congestion window are set. Prints only
 * what must equal native Linux (no port numbers). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static const char *err(int r) {
    return r == 0 ? "0" : strerrorname_np(errno);
}

#include "inet_util.h"

static int tcp(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        die("socket");
    return s;
}

static void reuse(int s) {
    int on = 1;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("SO_REUSEADDR");
}

/* A listener on an ephemeral loopback port with `backlog`. */
static int listener(int backlog, int with_reuse) {
    int l = tcp();
    if (with_reuse)
        reuse(l);
    struct sockaddr_in a = loopback(0);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, backlog) < 0)
        die("listen");
    return l;
}

static int connect_to(int l) {
    int c = tcp();
    struct sockaddr_in a = loopback(port_of(l));
    if (connect(c, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    return c;
}

static int try_bind(unsigned short port, int with_reuse) {
    int s = tcp();
    if (with_reuse)
        reuse(s);
    struct sockaddr_in a = loopback(port);
    int r = bind(s, (struct sockaddr *)&a, sizeof a);
    printf("%s\n", err(r));
    close(s);
    return r;
}

/* Both sides close in order, `first` before `second`: `first` ends in TIME_WAIT. */
static void orderly_close(int first, int second) {
    char c;
    if (shutdown(first, SHUT_WR) < 0)
        die("shutdown first");
    if (read(second, &c, 1) != 0)
        die("eof at second");
    if (shutdown(second, SHUT_WR) < 0)
        die("shutdown second");
    if (read(first, &c, 1) != 0)
        die("eof at first");
    usleep(100 * 1000);
}

static void time_wait(void) {
    int l = listener(16, 0);
    int c = connect_to(l);
    int a = accept(l, NULL, NULL);
    if (a < 0)
        die("accept");
    unsigned short cport = port_of(c), lport = port_of(l);
    orderly_close(c, a);
    int r = shutdown(c, SHUT_WR);
    printf("shutdown in TIME_WAIT %d %s\n", r, err(r));
    close(c);
    printf("bind TIME_WAIT port: ");
    try_bind(cport, 0);
    printf("bind TIME_WAIT port with SO_REUSEADDR: ");
    try_bind(cport, 1);
    close(a);
    close(l);
    usleep(100 * 1000);
    printf("bind passive closer's port: ");
    try_bind(lport, 0);
}

static void accepted_holds_port(void) {
    int l = listener(16, 1);
    int c = connect_to(l);
    int a = accept(l, NULL, NULL);
    if (a < 0)
        die("accept");
    unsigned short lport = port_of(l);
    close(l);
    printf("bind port of an open accepted connection: ");
    try_bind(lport, 0);
    printf("same with SO_REUSEADDR on both: ");
    try_bind(lport, 1);
    close(c);
    close(a);
}

static int poll_out(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    return poll(&p, 1, ms);
}

static void backlog(void) {
    int l = listener(0, 0);
    int first = connect_to(l);
    int second = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = loopback(port_of(l));
    int r = connect(second, (struct sockaddr *)&a, sizeof a);
    printf("backlog 0: second connect %d %s\n", r, err(r));
    printf("second connected within 200 ms: %d\n", poll_out(second, 200));
    int acc = accept(l, NULL, NULL);
    if (acc < 0)
        die("accept");
    /* The second SYN's retransmission (after 1 s) finds room now. */
    printf("second connected after an accept: %d\n", poll_out(second, 5000));
    int e = -1;
    socklen_t len = sizeof e;
    getsockopt(second, SOL_SOCKET, SO_ERROR, &e, &len);
    printf("second SO_ERROR %d\n", e);
    close(acc);
    close(first);
    close(second);
    close(l);
}

static void refused(void) {
    int l = listener(1, 0);
    unsigned short port = port_of(l);
    close(l);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = loopback(port);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno == EINPROGRESS)
        poll_out(s, 5000);
    char c;
    r = read(s, &c, 1);
    printf("refused read %d %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    r = read(s, &c, 1);
    printf("then read %d\n", r);
    r = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect again %d %s\n", r, err(r));
    close(s);

    s = tcp();
    a = loopback(0);
    r = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect port 0 %d %s\n", r, err(r));
    close(s);
}

static void trunc_and_info(void) {
    int l = listener(1, 0);
    int c = connect_to(l);
    int a = accept(l, NULL, NULL);
    if (a < 0 || write(c, "abcdefghij", 10) != 10)
        die("accept/write");
    usleep(50 * 1000);
    char buf[16] = {0};
    ssize_t n = recv(a, buf, 4, MSG_TRUNC);
    printf("MSG_TRUNC %zd untouched %d\n", n, buf[0] == 0);
    n = recv(a, buf, 4, MSG_TRUNC | MSG_PEEK);
    printf("MSG_TRUNC|MSG_PEEK %zd untouched %d\n", n, buf[0] == 0);
    n = recv(a, buf, sizeof buf - 1, 0);
    printf("rest %zd %.*s\n", n, (int)n, buf);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        die("TCP_INFO");
    printf("TCP_INFO len %d state %d rto>0 %d cwnd>0 %d\n", len == sizeof ti, ti.tcpi_state,
           ti.tcpi_rto > 0, ti.tcpi_snd_cwnd > 0);
    close(a);
    close(c);
    close(l);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    time_wait();
    accepted_holds_port();
    backlog();
    refused();
    trunc_and_info();
    printf("done\n");
    return 0;
}
