/* Edge- and level-triggered epoll, EPOLLONESHOT: a pipe and an AF_UNIX socketpair. Prints
 * what each epoll_wait returned; the output must equal native Linux. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* epoll_wait with timeout 0; prints "label n events" (events of the first item). */
static int check(int ep, const char *label) {
    struct epoll_event ev[4];
    memset(ev, 0, sizeof ev);
    int n = epoll_wait(ep, ev, 4, 0);
    printf("%s %d", label, n);
    if (n > 0) printf(" %#x data %lu", ev[0].events, (unsigned long)ev[0].data.u64);
    printf("\n");
    return n;
}

static void watch(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    if (epoll_ctl(ep, op, fd, &ev)) perror("epoll_ctl");
}

/* One fd pair (rd readable when wr writes) in mode `events`. */
static void readable(const char *name, int rd, int wr, uint32_t mode) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char buf[16], label[64];
    printf("== %s\n", name);
    watch(ep, EPOLL_CTL_ADD, rd, EPOLLIN | mode, 7);
    check(ep, "empty");
    if (write(wr, "a", 1) != 1) perror("write");
    check(ep, "after-write");
    check(ep, "again-no-read");
    if (write(wr, "b", 1) != 1) perror("write");
    check(ep, "second-write");
    check(ep, "again");
    if (read(rd, buf, 1) != 1) perror("read");
    check(ep, "after-partial-read");
    if (read(rd, buf, sizeof buf) != 1) perror("read");
    check(ep, "drained");
    if (mode & EPOLLONESHOT) {
        if (write(wr, "c", 1) != 1) perror("write");
        check(ep, "oneshot-disarmed");
        watch(ep, EPOLL_CTL_MOD, rd, EPOLLIN | mode, 8);
        check(ep, "after-mod");
        check(ep, "after-mod-again");
        if (read(rd, buf, sizeof buf) != 1) perror("read");
    }
    for (int i = 0; i < 3; i++) {
        if (write(wr, "d", 1) != 1) perror("write");
        snprintf(label, sizeof label, "loop%d", i);
        check(ep, label);
    }
    if (read(rd, buf, sizeof buf) != 3) perror("read");
    close(ep);
}

/* The write side: EPOLLOUT edges when the reader frees room. */
static void writable(const char *name, int rd, int wr, uint32_t mode) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char buf[65536];
    printf("== %s\n", name);
    memset(buf, 'x', sizeof buf);
    watch(ep, EPOLL_CTL_ADD, wr, EPOLLOUT | mode, 9);
    check(ep, "out-initial");
    check(ep, "out-again");
    if (write(wr, "a", 1) != 1) perror("write");
    check(ep, "out-after-own-write");
    if (read(rd, buf, 1) != 1) perror("read");
    check(ep, "out-after-peer-read");
    close(ep);
}

/* Peer close: EPOLLHUP/EPOLLRDHUP edge. */
static void hangup(const char *name, int rd, int wr, uint32_t mode) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("== %s\n", name);
    watch(ep, EPOLL_CTL_ADD, rd, EPOLLIN | EPOLLRDHUP | mode, 10);
    check(ep, "before-close");
    close(wr);
    check(ep, "after-close");
    check(ep, "after-close-again");
    close(ep);
    close(rd);
}

/* An eventfd counter: each write is a new edge for the reading side. */
static void counter(const char *name, uint32_t mode) {
    int ep = epoll_create1(EPOLL_CLOEXEC), efd = eventfd(0, EFD_NONBLOCK);
    uint64_t one = 1, got;
    printf("== %s\n", name);
    watch(ep, EPOLL_CTL_ADD, efd, EPOLLIN | mode, 11);
    check(ep, "empty");
    if (write(efd, &one, 8) != 8) perror("write");
    check(ep, "after-write");
    check(ep, "again");
    if (write(efd, &one, 8) != 8) perror("write");
    check(ep, "second-write");
    if (read(efd, &got, 8) != 8) perror("read");
    printf("count %lu\n", (unsigned long)got);
    check(ep, "drained");
    close(ep);
    close(efd);
}

int main(void) {
    static const struct { const char *name; uint32_t mode; } modes[] = {
        {"level", 0}, {"edge", EPOLLET}, {"oneshot", EPOLLONESHOT},
        {"edge-oneshot", EPOLLET | EPOLLONESHOT},
    };
    for (unsigned m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char name[64];
        int p[2], s[2];
        if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s)) { perror("pipe"); return 1; }
        snprintf(name, sizeof name, "pipe %s", modes[m].name);
        readable(name, p[0], p[1], modes[m].mode);
        snprintf(name, sizeof name, "socketpair %s", modes[m].name);
        readable(name, s[0], s[1], modes[m].mode);
        snprintf(name, sizeof name, "pipe-out %s", modes[m].name);
        writable(name, p[0], p[1], modes[m].mode);
        snprintf(name, sizeof name, "socketpair-out %s", modes[m].name);
        writable(name, s[0], s[1], modes[m].mode);
        snprintf(name, sizeof name, "pipe-hup %s", modes[m].name);
        hangup(name, p[0], p[1], modes[m].mode);
        snprintf(name, sizeof name, "socketpair-hup %s", modes[m].name);
        hangup(name, s[0], s[1], modes[m].mode);
        snprintf(name, sizeof name, "eventfd %s", modes[m].name);
        counter(name, modes[m].mode);
    }
    printf("done\n");
    return 0;
}
