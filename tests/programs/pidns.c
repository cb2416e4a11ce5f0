// clone(CLONE_NEWPID): the child is the init of a new PID namespace (PID 1, parent 0), its
// own children count from 2, it cannot see its parent, and the parent knows it by a number
// of the parent's namespace. When the init exits, the rest of its namespace is killed.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t clone_newpid(void) {
    return (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
}

static int init(pid_t parent) {
    printf("init: pid=%d ppid=%d\n", getpid(), getppid());
    errno = 0;
    int r = kill(parent, 0);
    printf("init: parent invisible=%d\n", r == -1 && errno == ESRCH);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        printf("child: pid=%d ppid=%d\n", getpid(), getppid());
        exit(3);
    }
    int st = 0;
    pid_t w = waitpid(-1, &st, 0);
    printf("init: fork returned %d, waited %d, status %d\n", c, w, WEXITSTATUS(st));
    fflush(stdout);
    // Left running: killed when init exits.
    if (fork() == 0) {
        pause();
        _exit(0);
    }
    return 7;
}

static int run(void) {
    pid_t me = getpid();
    pid_t c = clone_newpid();
    if (c < 0) {
        perror("clone");
        return 1;
    }
    if (c == 0) exit(init(me));
    int st = 0;
    pid_t w = waitpid(c, &st, 0);
    printf("parent: child numbered in our namespace=%d, waited it=%d, status %d\n",
           c > 1 && c != me, w == c, WEXITSTATUS(st));
    errno = 0;
    int r = kill(c, 0);
    printf("parent: reaped child gone=%d\n", r == -1 && errno == ESRCH);
    return 0;
}

int main(void) {
    // From a child, so that the parent's number is not 1 (which the new namespace's init
    // also has) when the test itself runs as an init.
    pid_t p = fork();
    if (p == 0) exit(run());
    int st = 0;
    waitpid(p, &st, 0);
    return WEXITSTATUS(st);
}
