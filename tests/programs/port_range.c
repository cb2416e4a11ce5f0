// /proc/sys/net/ipv4/ip_local_port_range: root may narrow it, bad ranges are EINVAL, and
// bind(2) to port 0 then takes ports only from it (EADDRINUSE once they are all taken).
// connect(2)'s implicit bind shares a port among connections to different peers (Linux's
// inet_hash_connect), while bind(2) to port 0 takes only a port nobody holds (for UDP, or
// one it may share by SO_REUSEADDR).
// Natively the program first enters a new network namespace (the sysctl is per namespace),
// so the host's range is never touched; it exits 77 when it cannot (the sandbox, whose
// network stack is its own, goes on in it).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

#include "inet_util.h"

static const char *kRange = "/proc/sys/net/ipv4/ip_local_port_range";

static int put(const char *val) {
    int fd = open(kRange, O_WRONLY | O_TRUNC);
    if (fd < 0) return errno;
    int err = write(fd, val, strlen(val)) < 0 ? errno : 0;
    close(fd);
    return err;
}

static void show(void) {
    char buf[64] = {0};
    int fd = open(kRange, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    printf("range: %.*s", (int)(n > 0 ? n : 0), buf);
}

static int bind_any(int type, int *port) {
    int s = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) return -errno;
    socklen_t len = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return s;
}

int main(void) {
    // Never the host's range: a namespace of its own, or the sandbox's stack.
    own_network_namespace();
    printf("reversed: %d\n", put("2000 1999"));
    printf("below 1024: %d\n", put("80 2000"));
    printf("garbage: %d\n", put("abc"));
    printf("narrow: %d\n", put("40000 40001"));
    show();
    int p1 = 0, p2 = 0, p3 = 0;
    int a = bind_any(SOCK_DGRAM, &p1), b = bind_any(SOCK_DGRAM, &p2);
    printf("first two: %d %d\n", a >= 0 && p1 >= 40000 && p1 <= 40001,
           b >= 0 && p2 >= 40000 && p2 <= 40001 && p1 != p2);
    int c = bind_any(SOCK_DGRAM, &p3);
    printf("third: %s\n", c == -EADDRINUSE ? "EADDRINUSE" : "other");

    // TCP over a loopback that is up (a new namespace's is down): two ports for five
    // connections to two listeners outside the range.
    loopback_up();
    printf("tcp range: %d\n", put("40010 40011"));
    struct sockaddr_in peer = {.sin_family = AF_INET};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 2; i++) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        peer.sin_port = htons(5000 + i);
        bind(l, (struct sockaddr *)&peer, sizeof(peer));
        listen(l, 8);
    }
    for (int i = 0; i < 5; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        peer.sin_port = htons(5000 + i % 2);
        int r = connect(s, (struct sockaddr *)&peer, sizeof(peer));
        struct sockaddr_in me = {0};
        socklen_t len = sizeof(me);
        getsockname(s, (struct sockaddr *)&me, &len);
        int in_range = ntohs(me.sin_port) >= 40010 && ntohs(me.sin_port) <= 40011;
        printf("connect %d: %s\n", i,
               r == 0 && in_range ? "ok" : r == 0 ? "outside the range" : strerror(errno));
    }
    int d = bind_any(SOCK_STREAM, &p3);
    printf("tcp bind to port 0: %s\n", d == -EADDRINUSE ? "EADDRINUSE" : "other");

    // UDP's bind to port 0 shares a port with SO_REUSEADDR sockets once none is free.
    printf("udp range: %d\n", put("40020 40020"));
    int shared[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        int on = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof(a);
        if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &len) == 0)
            shared[i] = ntohs(a.sin_port);
    }
    printf("udp reuseaddr ports: %d %d\n", shared[0], shared[1]);
    printf("done\n");
    return 0;
}
