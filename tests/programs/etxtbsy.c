/* ETXTBSY both ways (Linux's deny_write_access): execve of a file open for writing fails,
 * and while a process runs a program, opening it for writing (O_WRONLY, O_RDWR, O_TRUNC)
 * and truncate(2) fail; reading it does not, and after the process is gone writing works.
 * Printed so a native run and a sandboxed run compare line by line.
 *
 * Usage: etxtbsy                (the checks, on a copy of itself in a scratch directory)
 *        etxtbsy run UP DOWN    (the copy running: says so on fd UP, waits on fd DOWN)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

static void copy_self(const char *to) {
    int in = open("/proc/self/exe", O_RDONLY);
    int out = open(to, O_CREAT | O_WRONLY | O_TRUNC, 0755);
    char buf[65536];
    ssize_t n;
    if (in < 0 || out < 0) {
        perror("copy");
        exit(1);
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) {
            perror("write");
            exit(1);
        }
    close(in);
    close(out);
}

/* Whether execve of `prog` works, in a child: "0" if the program ran, else its errno. */
static void try_exec(const char *what, const char *prog) {
    pid_t pid = fork();
    if (pid == 0) {
        execl(prog, prog, "exit", (char *)NULL);
        result(what, -1);
        _exit(1);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        result(what, 0);
}

static void try_open(const char *what, const char *prog, int flags) {
    int fd = open(prog, flags);
    result(what, fd >= 0 ? 0 : -1);
    if (fd >= 0)
        close(fd);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "exit"))
        return 0;
    if (argc == 4 && !strcmp(argv[1], "run")) {
        char c = 'r';
        if (write(atoi(argv[2]), &c, 1) != 1 || read(atoi(argv[3]), &c, 1) != 1)
            return 1;
        return 0;
    }
    strcpy(dir, "/tmp/etxtbsy.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char prog[256];
    strcpy(prog, at("prog"));
    copy_self(prog);

    try_exec("execve a closed copy", prog);
    int wfd = open(prog, O_WRONLY);
    try_exec("execve while open for writing", prog);
    close(wfd);
    int rfd = open(prog, O_RDONLY);
    try_exec("execve while open for reading", prog);
    close(rfd);

    int up[2], down[2];
    if (pipe(up) || pipe(down))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", up[1]);
        snprintf(b, sizeof b, "%d", down[0]);
        execl(prog, prog, "run", a, b, (char *)NULL);
        _exit(1);
    }
    char c;
    result("the copy runs", read(up[0], &c, 1) == 1 ? 0 : -1);
    try_open("open O_WRONLY while it runs", prog, O_WRONLY);
    try_open("open O_RDWR while it runs", prog, O_RDWR);
    try_open("open O_RDONLY|O_TRUNC while it runs", prog, O_RDONLY | O_TRUNC);
    try_open("open O_RDONLY while it runs", prog, O_RDONLY);
    result("truncate while it runs", truncate(prog, 0));
    struct stat st;
    stat(prog, &st);
    printf("size kept: %s\n", st.st_size > 0 ? "yes" : "no");
    try_exec("a second execve while it runs", prog);
    if (write(down[1], "x", 1) != 1)
        return 1;
    siginfo_t si;
    waitid(P_PID, pid, &si, WEXITED | WNOWAIT);
    try_open("open O_WRONLY once it exited, not yet reaped", prog, O_WRONLY);
    waitpid(pid, NULL, 0);
    try_open("open O_WRONLY after it exited", prog, O_WRONLY);

    unlink(prog);
    rmdir(dir);
    printf("done\n");
    return 0;
}
