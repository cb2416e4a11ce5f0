/* TCP figures for runsc-rs-bench, between two network namespaces:
 *   net_bench serve PORT                 accept forever; each connection either sinks
 *                                        everything ('S' first byte) or answers each 64-byte
 *                                        request with 64 bytes ('R') until EOF
 *   net_bench send ADDR PORT MIB         one connection sending MIB MiB; prints ns elapsed
 *                                        (until the server's close confirms it read it all)
 *   net_bench rr ADDR PORT N             N times: connect, one 64-byte request and answer,
 *                                        close; prints ns per iteration */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int full(int fd, char *buf, size_t len, int writing) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

static int dial(const char *addr, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) die("inet_pton");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    return fd;
}

static void serve(int port) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (listen(ls, 128) < 0) die("listen");
    printf("listening\n");
    fflush(stdout);
    static char buf[1 << 16];
    for (;;) {
        int c = accept(ls, 0, 0);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char mode;
        if (read(c, &mode, 1) == 1 && mode == 'S') {
            while (read(c, buf, sizeof buf) > 0) {
            }
        } else if (mode == 'R') {
            while (full(c, buf, 64, 0) == 0 && full(c, buf, 64, 1) == 0) {
            }
        }
        close(c);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) serve(atoi(argv[2]));
    if (argc != 5) {
        fprintf(stderr, "usage: net_bench serve PORT | send ADDR PORT MIB | rr ADDR PORT N\n");
        return 2;
    }
    const char *addr = argv[2];
    int port = atoi(argv[3]);
    long n = atol(argv[4]);
    static char buf[1 << 16];
    memset(buf, 'x', sizeof buf);
    if (!strcmp(argv[1], "send")) {
        long long t0 = now_ns();
        int fd = dial(addr, port);
        if (full(fd, "S", 1, 1)) die("write");
        for (long i = 0; i < n * 16; i++)
            if (full(fd, buf, sizeof buf, 1)) die("write");
        shutdown(fd, SHUT_WR);
        /* The server closes after reading everything: EOF here means all of it arrived. */
        while (read(fd, buf, sizeof buf) > 0) {
        }
        printf("%lld\n", now_ns() - t0);
        return 0;
    }
    if (!strcmp(argv[1], "rr")) {
        long long t0 = now_ns();
        for (long i = 0; i < n; i++) {
            int fd = dial(addr, port);
            if (full(fd, "R", 1, 1) || full(fd, buf, 64, 1) || full(fd, buf, 64, 0)) die("request");
            close(fd);
        }
        printf("%lld\n", (now_ns() - t0) / n);
        return 0;
    }
    return 2;
}
