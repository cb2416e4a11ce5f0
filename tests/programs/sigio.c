/* Signal-driven I/O: O_ASYNC armed through fcntl (F_SETFL, F_SETOWN, F_SETOWN_EX, F_SETSIG)
 * and ioctl (FIOASYNC, FIOSETOWN) on a pipe, a socketpair, a TCP connection on 127.0.0.1
 * and a pty master; the other end writes and the signal that arrives (signal, si_code,
 * si_band, whether si_fd names the armed fd) is printed. The output must equal native
 * Linux's. Signals are blocked and collected with sigtimedwait, never by a handler. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static sigset_t all;

/* Collects the queued `sig`s (waiting up to 10 s for the first) and prints the first with
 * si_code `code` (or any, with code 0). */
static void expect(const char *label, int sig, int code, int fd) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    struct timespec wait = {10, 0}, none = {0, 0};
    siginfo_t si, found;
    int got = 0;
    while (sigtimedwait(&one, &si, got ? &none : &wait) == sig) {
        if (!got && (code == 0 || si.si_code == code)) {
            found = si;
            got = 1;
        }
    }
    if (!got) {
        printf("%s: no signal\n", label);
        return;
    }
    printf("%s: signo %s code %d band %#lx fd_ok %d\n", label,
           found.si_signo == SIGIO ? "SIGIO" : "rt", found.si_code,
           found.si_code > 0 ? (unsigned long)found.si_band : 0UL,
           found.si_code > 0 ? found.si_fd == fd : -1);
}

/* Whether `sig` is pending right now (for synchronous notifications). */
static int pending(int sig) {
    sigset_t p;
    sigpending(&p);
    int r = sigismember(&p, sig);
    if (r) {
        sigset_t one;
        siginfo_t si;
        struct timespec none = {0, 0};
        sigemptyset(&one);
        sigaddset(&one, sig);
        while (sigtimedwait(&one, &si, &none) == sig) {
        }
    }
    return r;
}

static void pipe_case(void) {
    int p[2];
    if (pipe(p)) perror("pipe");
    int sig = SIGRTMIN + 1;
    if (fcntl(p[0], F_SETOWN, getpid())) perror("F_SETOWN");
    if (fcntl(p[0], F_SETSIG, sig)) perror("F_SETSIG");
    if (fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC)) perror("F_SETFL");
    printf("pipe: getown self %d getsig %d async %d\n", fcntl(p[0], F_GETOWN) == getpid(),
           fcntl(p[0], F_GETSIG) == sig, (fcntl(p[0], F_GETFL) & O_ASYNC) != 0);
    if (write(p[1], "x", 1) != 1) perror("write");
    expect("pipe read end", sig, POLL_IN, p[0]);
    /* O_ASYNC off: silent. */
    fcntl(p[0], F_SETFL, 0);
    if (write(p[1], "z", 1) != 1) perror("write");
    printf("pipe after O_ASYNC off: pending %d\n", pending(sig));
    /* The write end is not told about data it wrote, but hears the reader go. */
    if (fcntl(p[1], F_SETOWN, getpid()) || fcntl(p[1], F_SETFL, O_ASYNC)) perror("arm write end");
    if (write(p[1], "y", 1) != 1) perror("write");
    printf("pipe write end after write: SIGIO pending %d\n", pending(SIGIO));
    close(p[0]);
    printf("pipe write end after the reader closed: SIGIO pending %d\n", pending(SIGIO));
    close(p[1]);
}

static void socketpair_case(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) perror("socketpair");
    int on = 1;
    printf("socketpair: FIOASYNC %d\n", ioctl(sv[1], FIOASYNC, &on));
    /* No owner yet: no signal. */
    if (write(sv[0], "a", 1) != 1) perror("write");
    printf("socketpair without owner: SIGIO pending %d\n", pending(SIGIO));
    pid_t me = getpid(), got = -1;
    printf("socketpair: FIOSETOWN %d\n", ioctl(sv[1], FIOSETOWN, &me));
    ioctl(sv[1], FIOGETOWN, &got);
    printf("socketpair: FIOGETOWN self %d\n", got == me);
    if (write(sv[0], "b", 1) != 1) perror("write");
    expect("socketpair (plain SIGIO)", SIGIO, 0, sv[1]);
    /* The owner cleared: silent again. */
    pid_t zero = 0;
    ioctl(sv[1], FIOSETOWN, &zero);
    if (write(sv[0], "c", 1) != 1) perror("write");
    printf("socketpair owner cleared: SIGIO pending %d getown %d\n", pending(SIGIO),
           fcntl(sv[1], F_GETOWN));
    /* A process group owner (this process's group). */
    if (fcntl(sv[1], F_SETOWN, -getpgrp())) perror("F_SETOWN pgrp");
    struct f_owner_ex ex;
    fcntl(sv[1], F_GETOWN_EX, &ex);
    printf("socketpair pgrp owner: getown %d type %d\n", fcntl(sv[1], F_GETOWN) == -getpgrp(),
           ex.type);
    if (write(sv[0], "d", 1) != 1) perror("write");
    printf("socketpair pgrp owner: SIGIO pending %d\n", pending(SIGIO));
    close(sv[0]);
    close(sv[1]);
}

static void tcp_case(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        perror("listen");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a)) perror("connect");
    int s = accept(l, NULL, NULL);
    int sig = SIGRTMIN + 2;
    struct f_owner_ex ex = {.type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid)}, back;
    if (fcntl(s, F_SETOWN_EX, &ex)) perror("F_SETOWN_EX");
    fcntl(s, F_GETOWN_EX, &back);
    printf("tcp: owner_ex type %d self %d\n", back.type, back.pid == ex.pid);
    if (fcntl(s, F_SETSIG, sig) || fcntl(s, F_SETFL, O_ASYNC)) perror("arm");
    if (write(c, "hello", 5) != 5) perror("write");
    expect("tcp", sig, POLL_IN, s);
    close(s);
    close(c);
    close(l);
}

static void pty_case(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) {
        perror("posix_openpt");
        return;
    }
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    int sig = SIGRTMIN + 3;
    if (fcntl(m, F_SETOWN, getpid()) || fcntl(m, F_SETSIG, sig)) perror("arm");
    int on = 1;
    printf("pty master: FIOASYNC %d\n", ioctl(m, FIOASYNC, &on));
    if (write(s, "x\n", 2) != 2) perror("write");
    expect("pty master", sig, POLL_IN, m);
    close(s);
    close(m);
}

static void errors_case(void) {
    int e = eventfd(0, 0);
    int on = 1;
    errno = 0;
    int r = ioctl(e, FIOASYNC, &on);
    printf("eventfd FIOASYNC %d errno %s\n", r, strerror(errno));
    int p[2];
    if (pipe(p)) perror("pipe");
    errno = 0;
    r = ioctl(p[0], FIOSETOWN, &on);
    printf("pipe FIOSETOWN %d errno %s\n", r, strerror(errno));
    errno = 0;
    r = fcntl(p[0], F_SETSIG, 65);
    printf("F_SETSIG 65 %d errno %s\n", r, strerror(errno));
    struct f_owner_ex ex = {.type = 7, .pid = getpid()};
    errno = 0;
    r = fcntl(p[0], F_SETOWN_EX, &ex);
    printf("F_SETOWN_EX type 7 %d errno %s\n", r, strerror(errno));
    errno = 0;
    r = ioctl(p[0], FIOASYNC, NULL);
    printf("FIOASYNC NULL %d errno %s\n", r, strerror(errno));
    close(e);
    close(p[0]);
    close(p[1]);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    pipe_case();
    socketpair_case();
    tcp_case();
    pty_case();
    errors_case();
    printf("done\n");
    return 0;
}
