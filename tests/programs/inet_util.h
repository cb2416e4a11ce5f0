/*
 * inet_util.h: helpers the IPv4 test programs share. The including program defines
 * `static void die(const char *what)` (print and exit) before including this.
 */
#ifndef INET_UTIL_H
#define INET_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

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

/* A network namespace of its own, so the host's settings and counters are never touched:
   natively a new one; under runsc-rs, where unshare may be refused, the sandbox's stack is
   its own already. Anywhere else the program exits 77 (skipped). */
static inline void own_network_namespace(void) {
    if (unshare(CLONE_NEWNET) == 0)
        return;
    struct utsname u;
    if (uname(&u) != 0 || !strstr(u.version, "runsc-rs")) {
        fprintf(stderr, "no network namespace of its own: %s\n", strerror(errno));
        exit(77);
    }
}

/* Brings the loopback up (a new namespace's is down); says so when it cannot. */
static inline void loopback_up(void) {
    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    ioctl(ctl, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0) printf("lo up: %s\n", strerror(errno));
    close(ctl);
}

#endif
