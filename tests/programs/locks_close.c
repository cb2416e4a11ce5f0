/* A process's POSIX record locks on a file go whenever it closes any fd of that file, by any
 * path: close(2) of another open of it, dup2/dup3 over an fd of it, close_range(2), and the
 * close-on-exec fds an execve closes; close_range's CLOSE_RANGE_CLOEXEC alone and an execve
 * that closes no fd of it keep them, and OFD locks stay until their own description goes.
 * After each step a forked child asks F_GETLK what it sees; printed so a native run and a
 * sandboxed run compare line by line.
 *
 * Usage: locks_close            (the whole sequence; re-executes itself twice)
 *        locks_close exec1 DIR  (after an execve that closed no fd of the file)
 *        locks_close exec2 DIR  (after an execve that closed a close-on-exec fd of it)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

/* Forks a child that reports whether someone else holds a lock over the whole file. */
static void probe(const char *what) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(at("file"), O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fd < 0 || fcntl(fd, F_GETLK, &fl) != 0) {
            result(what, -1);
            _exit(0);
        }
        printf("%s: %s\n", what,
               fl.l_type == F_UNLCK ? "unlocked" : fl.l_type == F_WRLCK ? "write-locked"
                                                                        : "read-locked");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

static void posix_lock(int fd, const char *what) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    result(what, fcntl(fd, F_SETLK, &fl));
}

static void reexec(const char *self, const char *step) {
    execl(self, self, step, dir, (char *)NULL);
    perror("execl");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "exec1")) {
        strcpy(dir, argv[2]);
        probe("after an execve closing no fd of it");
        /* The lock fd (3) survives; a close-on-exec open of the file goes at the next. */
        int fd = open(at("file"), O_RDONLY | O_CLOEXEC);
        result("open close-on-exec", fd >= 0 ? 0 : -1);
        reexec(argv[0], "exec2");
    }
    if (argc == 3 && !strcmp(argv[1], "exec2")) {
        strcpy(dir, argv[2]);
        probe("after an execve closing a close-on-exec fd of it");
        unlink(at("file"));
        rmdir(dir);
        printf("done\n");
        return 0;
    }
    strcpy(dir, "/tmp/locks_close.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int fd = open(at("file"), O_CREAT | O_RDWR, 0644);
    if (fd != 3) {
        fprintf(stderr, "lock fd is %d, not 3\n", fd);
        return 1;
    }
    probe("before locking");
    posix_lock(fd, "lock");
    probe("locked");

    int other = open(at("file"), O_RDONLY);
    result("close another open of it", close(other));
    probe("after close");

    posix_lock(fd, "lock again");
    int copy = dup(fd);
    int unrelated = open("/dev/null", O_RDONLY);
    result("dup2 over a copy of it", dup2(unrelated, copy) == copy ? 0 : -1);
    probe("after dup2");

    posix_lock(fd, "lock again");
    copy = dup(fd);
    result("dup3 over a copy of it", dup3(unrelated, copy, O_CLOEXEC) == copy ? 0 : -1);
    probe("after dup3");

    posix_lock(fd, "lock again");
    copy = dup2(fd, 40);
    result("close_range CLOEXEC of a copy", syscall(SYS_close_range, 40, 40, CLOSE_RANGE_CLOEXEC));
    probe("after close_range CLOEXEC");
    result("close_range of the copy", syscall(SYS_close_range, 40, 50, 0));
    probe("after close_range");

    struct flock ofd = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int ofd_fd = open(at("file"), O_RDWR);
    result("OFD read lock", fcntl(ofd_fd, F_OFD_SETLK, &ofd));
    other = open(at("file"), O_RDONLY);
    close(other);
    probe("OFD lock after closing another open");
    close(ofd_fd);
    close(unrelated);

    posix_lock(fd, "lock before execve");
    fflush(stdout);
    reexec("/proc/self/exe", "exec1");
}
