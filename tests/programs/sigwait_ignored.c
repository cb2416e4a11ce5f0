/*
 * sigwait_ignored: a child blocks a signal whose default action is to ignore it (SIGWINCH,
 * SIGCHLD, SIGURG; SIGUSR1 beside them) and waits for it in sigtimedwait; the parent sends it
 * once the child waits. Linux never drops a signal that is blocked, and while sigtimedwait
 * waits it counts as blocked even though the wait unblocks it to be woken. Then the same
 * through a pty: the child makes the pty its controlling terminal and the parent resizes the
 * master (SIGWINCH to the foreground process group).
 *
 * Prints one line per case ("SIG: got N") and "done".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Fork a child that blocks `sig` (after `setup`, if any), says it is ready and waits up to
 * three seconds; the parent lets it reach sigtimedwait, then runs `send`. Returns what the
 * child's sigtimedwait returned (its exit code: the signal number, or 0). */
static int wait_in_child(int sig, void (*setup)(void), void (*send)(pid_t, int)) {
    int p[2];
    if (pipe(p) != 0)
        exit(2);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        close(p[0]);
        if (setup)
            setup();
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_BLOCK, &set, NULL);
        if (write(p[1], "r", 1) != 1)
            _exit(100);
        struct timespec to = {3, 0};
        int got = sigtimedwait(&set, NULL, &to);
        _exit(got > 0 ? got : 0);
    }
    close(p[1]);
    char ch;
    if (read(p[0], &ch, 1) != 1)
        exit(2);
    close(p[0]);
    struct timespec settle = {0, 100 * 1000 * 1000};
    nanosleep(&settle, NULL);
    send(c, sig);
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
        exit(2);
    return WEXITSTATUS(st);
}

static void send_kill(pid_t c, int sig) { kill(c, sig); }

static int master = -1, replica = -1;

static void take_pty(void) {
    close(master);
    if (setsid() < 0 || ioctl(replica, TIOCSCTTY, 0) != 0)
        _exit(101);
}

static void resize(pid_t c, int sig) {
    (void)c;
    (void)sig;
    struct winsize ws = {33, 99, 0, 0};
    if (ioctl(master, TIOCSWINSZ, &ws) != 0)
        exit(2);
}

int main(void) {
    const int sigs[] = {SIGWINCH, SIGCHLD, SIGURG, SIGUSR1};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        printf("kill %s: got %d\n", strsignal(sigs[i]),
               wait_in_child(sigs[i], NULL, send_kill) == sigs[i]);
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
        return 2;
    replica = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (replica < 0)
        return 2;
    printf("pty resize: got %d\n", wait_in_child(SIGWINCH, take_pty, resize) == SIGWINCH);
    printf("done\n");
    return 0;
}
