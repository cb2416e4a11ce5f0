// fork + wait: exit codes, signals, WNOHANG, getppid, pipes between parent and child.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int fds[2];
    if (pipe(fds) != 0) return 90;
    pid_t me = getpid();
    pid_t c = fork();
    if (c == 0) {
        close(fds[0]);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child ppid-ok=%d", getppid() == me);
        write(fds[1], msg, n);
        _exit(42);
    }
    close(fds[1]);
    char buf[64] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    int st;
    pid_t w = waitpid(c, &st, 0);
    printf("%s read=%zd waited=%d exited=%d code=%d\n", buf, n, w == c, WIFEXITED(st), WEXITSTATUS(st));

    c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    printf("nohang=%d\n", waitpid(c, &st, WNOHANG));
    kill(c, SIGTERM);
    waitpid(c, &st, 0);
    printf("signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    printf("echild=%d\n", waitpid(-1, &st, 0) == -1);

    c = vfork();
    if (c == 0) _exit(7);
    waitpid(c, &st, 0);
    printf("vfork code=%d\n", WEXITSTATUS(st));
    return 3;
}
