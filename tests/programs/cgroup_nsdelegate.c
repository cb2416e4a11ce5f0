/* cgroup2's nsdelegate: a mount with it from the initial cgroup namespace makes cgroup
 * namespaces delegation boundaries (one flag for the hierarchy, cleared by a mount without
 * it). Inside a namespace, the namespace root's files other than cgroup.procs, cgroup.threads
 * and cgroup.subtree_control are EPERM (as opened: an fd opened outside still writes), and a
 * process moves only between cgroups of the namespace (ENOENT, for CLONE_INTO_CGROUP too).
 * Usage: cgroup_nsdelegate */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

/* 0, or the errno of writing `text` to the file `name`. */
static int put(const char *name, const char *text) {
    int fd = open(at(name), O_WRONLY);
    if (fd < 0)
        return errno;
    int r = write(fd, text, strlen(text)) < 0 ? errno : 0;
    close(fd);
    return r;
}

static int put_fd(int fd, const char *text) { return write(fd, text, strlen(text)) < 0 ? errno : 0; }

/* Whether /proc/self/mounts shows nsdelegate for the mount at `dir`/`name`. */
static int shows_nsdelegate(const char *name) {
    char line[1024], mp[512], opts[512];
    int on = -1;
    FILE *f = fopen("/proc/self/mounts", "r");
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%*s %511s %*s %511s", mp, opts) == 2 && strcmp(mp, at(name)) == 0)
            on = strstr(opts, "nsdelegate") != NULL;
    fclose(f);
    return on;
}

static int child_status(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void) {
    strcpy(dir, "/tmp/cg_nsdelegate.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    mkdir(at("m"), 0755);
    mkdir(at("m2"), 0755);
    printf("mount nsdelegate: %d\n", mount("none", at("m"), "cgroup2", 0, "nsdelegate"));
    printf("mounts show nsdelegate: %d\n", shows_nsdelegate("m"));
    mkdir(at("m/d"), 0755);
    mkdir(at("m/d/in"), 0755);
    mkdir(at("m/e"), 0755);
    int outside = open(at("m/e"), O_RDONLY | O_DIRECTORY);
    int inside = open(at("m/d/in"), O_RDONLY | O_DIRECTORY);
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        printf("enter d: %d\n", put("m/d/cgroup.procs", "0"));
        int early = open(at("m/d/cgroup.max.depth"), O_WRONLY);
        printf("unshare: %d\n", unshare(CLONE_NEWCGROUP));
        printf("ns root max.depth: %s\n", strerrorname_np(put("m/d/cgroup.max.depth", "max")));
        printf("ns root max.depth through an fd opened outside: %d\n", put_fd(early, "max"));
        printf("below the root max.depth: %d\n", put("m/d/in/cgroup.max.depth", "max"));
        printf("ns root cgroup.procs: %d\n", put("m/d/cgroup.procs", "0"));
        printf("move out of the ns: %s\n", strerrorname_np(put("m/e/cgroup.procs", "0")));
        printf("move within: %d\n", put("m/d/in/cgroup.procs", "0"));
        struct clone_args ca = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD};
        ca.cgroup = outside;
        long r = syscall(SYS_clone3, &ca, sizeof ca);
        printf("clone into a cgroup outside: %ld %s\n", r, strerrorname_np(errno));
        ca.cgroup = inside;
        r = syscall(SYS_clone3, &ca, sizeof ca);
        if (r == 0)
            _exit(7);
        printf("clone into a cgroup inside: exit %d\n", child_status(r));
        printf("back to d: %d\n", put("m/d/cgroup.procs", "0"));
        fflush(stdout);
        _exit(0);
    }
    printf("child: %d\n", child_status(pid));
    fflush(stdout);

    printf("mount without nsdelegate: %d\n", mount("none", at("m2"), "cgroup2", 0, ""));
    printf("mounts show nsdelegate: %d\n", shows_nsdelegate("m2"));
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        put("m/d/cgroup.procs", "0");
        unshare(CLONE_NEWCGROUP);
        printf("ns root max.depth without nsdelegate: %d\n", put("m/d/cgroup.max.depth", "max"));
        printf("move out of the ns without nsdelegate: %d\n", put("m/e/cgroup.procs", "0"));
        fflush(stdout);
        _exit(0);
    }
    printf("child: %d\n", child_status(pid));

    close(outside);
    close(inside);
    rmdir(at("m/d/in"));
    rmdir(at("m/d"));
    rmdir(at("m/e"));
    umount2(at("m2"), MNT_DETACH);
    umount2(at("m"), MNT_DETACH);
    rmdir(at("m2"));
    rmdir(at("m"));
    rmdir(dir);
    printf("done\n");
    return 0;
}
