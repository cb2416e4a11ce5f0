/*
 * pty_jobs: job control on a pty as Linux does it. Each case runs in a child that makes
 * itself a session leader and the pty's replica its controlling terminal:
 *   release-master  TIOCNOTTY on the master end of a replica-controlled pty is ENOTTY
 *                   (the ends are separate terminals) and leaves the session alone
 *   sigttou         a background group's tcsetpgrp stops it with SIGTTOU and does not take
 *                   effect
 *   gone-group      TIOCSPGRP to a group whose only process was reaped is ESRCH
 *   reuse           once a session leader has exited, another session can take the
 *                   terminal (twice in a row)
 *   steal           a leader of another session cannot take the terminal with TIOCSCTTY 0
 *                   (EPERM); with 1 and CAP_SYS_ADMIN it steals it: the terminal names
 *                   the new session, and the old one has no controlling terminal left
 *
 * Prints "CASE: ok" or "CASE: FAILED at line N (errno E)" per case, then "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int master, replica;

#define CHECK(x)                                                                           \
    do {                                                                                   \
        if (!(x)) {                                                                        \
            printf("FAILED at line %d (errno %d)\n", __LINE__, errno);                       \
            fflush(stdout);                                                                \
            _exit(1);                                                                      \
        }                                                                                  \
    } while (0)

static void take_terminal(void) {
    CHECK(setsid() >= 0);
    CHECK(ioctl(replica, TIOCSCTTY, 0) == 0);
}

static void release_master(void) {
    take_terminal();
    CHECK(ioctl(master, TIOCNOTTY) < 0 && errno == ENOTTY);
    CHECK(tcgetsid(replica) == getpid());
}

static void sigttou(void) {
    take_terminal();
    pid_t g = fork();
    if (g == 0) {
        CHECK(setpgid(0, 0) == 0);
        tcsetpgrp(replica, getpgid(0));
        _exit(3); /* not reached: SIGTTOU stops the call */
    }
    int st;
    CHECK(waitpid(g, &st, WSTOPPED) == g);
    CHECK(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTTOU);
    CHECK(tcgetpgrp(replica) == getpid());
    CHECK(kill(g, SIGKILL) == 0);
    CHECK(waitpid(g, &st, 0) == g);
}

static void gone_group(void) {
    take_terminal();
    pid_t g = fork();
    if (g == 0) {
        setpgid(0, 0);
        _exit(0);
    }
    int st;
    CHECK(waitpid(g, &st, 0) == g);
    CHECK(ioctl(replica, TIOCSPGRP, &g) != 0 && errno == ESRCH);
}

static void steal(void) {
    take_terminal();
    int stolen[2], looked[2];
    CHECK(pipe(stolen) == 0 && pipe(looked) == 0);
    pid_t g = fork();
    if (g == 0) {
        /* Whatever fails here, the old leader must not wait for a byte forever. */
        close(stolen[0]);
        CHECK(setsid() >= 0);
        CHECK(ioctl(replica, TIOCSCTTY, 0) < 0 && errno == EPERM);
        CHECK(ioctl(replica, TIOCSCTTY, 1) == 0);
        CHECK(tcgetsid(replica) == getpid());
        /* Stay the terminal's session leader until the old leader has looked. */
        char c = 's';
        CHECK(write(stolen[1], &c, 1) == 1);
        CHECK(read(looked[0], &c, 1) == 1);
        _exit(0);
    }
    close(stolen[1]);
    char c;
    CHECK(read(stolen[0], &c, 1) == 1);
    CHECK(open("/dev/tty", O_RDWR) < 0 && errno == ENXIO);
    pid_t sid;
    CHECK(ioctl(replica, TIOCGSID, &sid) < 0 && errno == ENOTTY);
    CHECK(write(looked[1], &c, 1) == 1);
    int st;
    CHECK(waitpid(g, &st, 0) == g && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void run(const char *name, void (*f)(void)) {
    printf("%s: ", name);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        f();
        printf("ok\n");
        fflush(stdout);
        _exit(0);
    }
    int st;
    if (waitpid(c, &st, 0) != c)
        exit(2);
    if (!WIFEXITED(st))
        printf("killed by signal %d\n", WTERMSIG(st));
}

int main(void) {
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
        return 2;
    replica = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (replica < 0)
        return 2;
    run("release-master", release_master);
    run("sigttou", sigttou);
    run("gone-group", gone_group);
    run("reuse", take_terminal);
    run("reuse", take_terminal);
    run("steal", steal);
    printf("done\n");
    return 0;
}
