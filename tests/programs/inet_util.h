/*
 * inet_util.h: helpers the IPv4 test programs share. The including program defines
 * `static void die(const char *what)` (print and exit) before including this.
 */
#ifndef INET_UTIL_H
#define INET_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* 127.0.0.1:port. */
static inline struct sockaddr_in loopback(unsigned short port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* The local port a socket is bound to. */
static inline unsigned short port_of(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("getsockname");
    return ntohs(a.sin_port);
}

#endif
