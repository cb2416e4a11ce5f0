// cgroup v2 as a program sees it: the hierarchy at /sys/fs/cgroup and a second mount of it,
// a child cgroup with the pids controller, pids.max enforced on fork (EAGAIN), moving a process
// through cgroup.procs, /proc/self/cgroup, memory.max parsing, rmdir rules. Prints one line
// per fact; the caller compares with Linux's answers.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup_files.h"

static void show(const char *rel) {
    char buf[256] = {0};
    int fd = open(path(rel), O_RDONLY);
    if (fd < 0) {
        printf("%s: open errno %d\n", rel, errno);
        return;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
        printf("%s: read errno %d\n", rel, errno);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\n') buf[i] = '|';
    printf("%s: %s\n", rel, buf);
}

static void self_cgroup(void) {
    char buf[256] = {0};
    int fd = open("/proc/self/cgroup", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    printf("/proc/self/cgroup: %.*s", (int)(n > 0 ? n : 0), buf);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct statfs sf;
    if (statfs("/sys/fs/cgroup", &sf) == 0)
        printf("/sys/fs/cgroup is cgroup2: %d\n", sf.f_type == 0x63677270);
    strcpy(root, "/tmp/cgroup2-test-XXXXXX");
    if (!mkdtemp(root) || mount("none", root, "cgroup2", 0, NULL) != 0) {
        printf("mount failed: errno %d\n", errno);
        return 1;
    }
    printf("same mount again: errno %d\n",
           mount("none", root, "cgroup2", 0, NULL) == 0 ? 0 : errno);
    show("cgroup.controllers");
    printf("enable pids memory: %d %d\n", put("cgroup.subtree_control", "+pids"),
           put("cgroup.subtree_control", "+memory"));
    printf("enable bogus: %d\n", put("cgroup.subtree_control", "+bogus"));
    printf("mkdir: %d\n", mkdir(path("t"), 0755) == 0 ? 0 : errno);
    show("t/cgroup.type");
    show("t/cgroup.events");
    show("t/pids.max");
    show("cgroup.stat");
    printf("memory.max 100M: %d\n", put("t/memory.max", "100M"));
    show("t/memory.max");
    printf("memory.max abc: %d\n", put("t/memory.max", "abc"));
    printf("pids.max 1: %d\n", put("t/pids.max", "1"));

    int go[2];
    pipe(go);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        read(go[0], &c, 1);
        self_cgroup();
        pid_t g = fork();
        if (g == 0) _exit(0);
        if (g > 0) {
            waitpid(g, NULL, 0);
            _exit(3);
        }
        printf("fork in t: errno %d\n", errno);
        fflush(stdout);
        _exit(0);
    }
    char pidbuf[16];
    snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
    printf("move child: %d\n", put("t/cgroup.procs", pidbuf));
    show("t/cgroup.events");
    printf("rmdir busy: %d\n", rmdir(path("t")) == 0 ? 0 : errno);
    close(go[0]);
    write(go[1], "x", 1);
    int status;
    waitpid(pid, &status, 0);
    printf("child exit: %d\n", WEXITSTATUS(status));
    show("t/pids.events");
    show("t/pids.current");
    show("t/cgroup.procs");
    printf("rmdir: %d\n", rmdir(path("t")) == 0 ? 0 : errno);
    printf("umount: %d\n", umount2(root, 0) == 0 ? 0 : errno);
    rmdir(root);
    printf("done\n");
    return 0;
}
