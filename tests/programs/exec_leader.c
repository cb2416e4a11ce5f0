/*
 * exec_leader: execve from a thread that is not the thread-group leader. Linux kills the
 * other threads and gives the execing thread the leader's ID (man 2 execve).
 *
 *   exec_leader          forks a child with three threads; the third execs this program
 *   exec_leader after PID TID RD WR   (the new image, run by that exec)
 *
 * The parent opens a pidfd on the child before the exec and checks it still names the
 * process after it; the child's new image checks getpid() == gettid() == the old PID, that
 * it is alone and that its former thread ID is gone; the parent's waitpid must return the
 * PID it forked. Prints one line per check; the same lines natively and in the sandbox.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yes(int ok) { return ok ? "yes" : "NO"; }

static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The new image: the process it runs in is the one that forked, under the same ID. */
static int after(char **argv) {
    pid_t old_pid = atoi(argv[2]), old_tid = atoi(argv[3]);
    int rd = atoi(argv[4]), wr = atoi(argv[5]);
    pid_t pid = getpid(), tid = syscall(SYS_gettid);
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", old_tid);
    printf("exec came from a thread other than the leader: %s\n", yes(old_tid != old_pid));
    printf("getpid() is the PID from before the exec: %s\n", yes(pid == old_pid));
    printf("gettid() == getpid(): %s\n", yes(tid == pid));
    printf("one thread left: %s\n", yes(count_threads() == 1));
    printf("the former thread ID is gone from /proc: %s\n",
           yes(stat(path, &st) < 0 && errno == ENOENT));
    fflush(stdout);
    char c = 'r';
    if (write(wr, &c, 1) != 1 || read(rd, &c, 1) != 1)
        return 1;
    return 42;
}

static char *self_path;
static int to_parent[2], to_child[2];
static pid_t leader_pid;

static void *sleeper(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static void *execer(void *arg) {
    (void)arg;
    char pid[16], tid[16], rd[16], wr[16];
    snprintf(pid, sizeof pid, "%d", leader_pid);
    snprintf(tid, sizeof tid, "%ld", (long)syscall(SYS_gettid));
    snprintf(rd, sizeof rd, "%d", to_child[0]);
    snprintf(wr, sizeof wr, "%d", to_parent[1]);
    char *args[] = {self_path, "after", pid, tid, rd, wr, NULL};
    execv(self_path, args);
    perror("execv");
    exit(1);
}

static int child(void) {
    leader_pid = getpid();
    char c;
    if (read(to_child[0], &c, 1) != 1) /* the parent has its pidfd */
        return 1;
    pthread_t a, b;
    if (pthread_create(&a, NULL, sleeper, NULL) || pthread_create(&b, NULL, execer, NULL))
        return 1;
    for (;;)
        pause();
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "after") == 0)
        return after(argv);
    self_path = argv[0];
    if (pipe(to_parent) || pipe(to_child)) {
        perror("pipe");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        _exit(child());
    int pidfd = syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        perror("pidfd_open");
        return 1;
    }
    char c = 'g';
    if (write(to_child[1], &c, 1) != 1 || read(to_parent[0], &c, 1) != 1) {
        printf("the new image did not report\n");
        return 1;
    }
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    printf("pidfd after the exec: process alive (not readable): %s\n",
           yes(poll(&pfd, 1, 0) == 0));
    printf("pidfd after the exec: signal 0 reaches the process: %s\n",
           yes(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0));
    if (write(to_child[1], &c, 1) != 1)
        return 1;
    pfd.revents = 0;
    printf("pidfd readable once the process exits: %s\n",
           yes(poll(&pfd, 1, 10000) == 1 && (pfd.revents & POLLIN)));
    int status;
    pid_t got = waitpid(pid, &status, 0);
    printf("waitpid returns the PID that was forked: %s\n", yes(got == pid));
    printf("exit status 42: %s\n", yes(WIFEXITED(status) && WEXITSTATUS(status) == 42));
    return 0;
}
