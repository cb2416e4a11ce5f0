// cgroup namespaces as a program sees them: unshare(CLONE_NEWCGROUP) roots the namespace at
// the caller's cgroup, /proc/PID/cgroup paths are relative to the reader's namespace root
// ("/.." up to a common ancestor for a sibling), a cgroup2 mount made inside is rooted there
// (mountinfo's root field "/" inside, the real path outside, "/../.." for the full hierarchy
// seen from inside), clone(CLONE_NEWCGROUP) and setns back to the initial namespace. Prints
// one line per fact; the caller compares with Linux's answers.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

static char full[64], nsmp[64];

static const char *at(const char *base, const char *rel) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 256, "%s/%s", base, rel);
    return b;
}

static int put(const char *p, const char *val) {
    int fd = open(p, O_WRONLY);
    if (fd < 0)
        return errno;
    int err = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : errno;
    close(fd);
    return err;
}

// The path of /proc/PID/cgroup's v2 line.
static void cgroup_of(const char *label, const char *file) {
    char buf[256] = {0};
    int fd = open(file, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = 0;
    printf("%s: %s\n", label, n > 3 ? buf + 3 : "?");
}

// The root field of the mountinfo line whose mount point is `mp`.
static void mountinfo_root(const char *label, const char *mp) {
    char line[1024], root[256] = "?", point[256];
    FILE *f = fopen("/proc/self/mountinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%*s %*s %*s %255s %255s", root, point) == 2 && !strcmp(point, mp))
            break;
    if (f)
        fclose(f);
    printf("%s: %s\n", label, root);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    strcpy(full, "/tmp/cgroup_ns.XXXXXX");
    strcpy(nsmp, "/tmp/cgroup_ns_mp.XXXXXX");
    if (!mkdtemp(full) || !mkdtemp(nsmp)) {
        perror("mkdtemp");
        return 1;
    }
    if (mount("none", full, "cgroup2", 0, NULL) != 0) {
        perror("mount cgroup2");
        return 1;
    }
    mkdir(at(full, "t"), 0755);
    mkdir(at(full, "t/a"), 0755);
    mkdir(at(full, "t/b"), 0755);
    mkdir(at(full, "t/b/sub"), 0755);
    int initns = open("/proc/self/ns/cgroup", O_RDONLY);

    pid_t parked = fork();
    if (parked == 0) {
        pause();
        _exit(0);
    }
    char parked_pid[16], parked_file[64];
    snprintf(parked_pid, sizeof parked_pid, "%d", parked);
    snprintf(parked_file, sizeof parked_file, "/proc/%d/cgroup", parked);
    printf("park in t/a: %d\n", put(at(full, "t/a/cgroup.procs"), parked_pid));

    pid_t pid = fork();
    if (pid == 0) {
        printf("enter t/b: %d\n", put(at(full, "t/b/cgroup.procs"), "0"));
        printf("unshare: %d\n", unshare(CLONE_NEWCGROUP) == 0 ? 0 : errno);
        cgroup_of("self inside", "/proc/self/cgroup");
        cgroup_of("sibling seen from inside", parked_file);
        printf("move to sub: %d\n", put(at(full, "t/b/sub/cgroup.procs"), "0"));
        cgroup_of("self in sub", "/proc/self/cgroup");
        printf("mount inside: %d\n", mount("none", nsmp, "cgroup2", 0, NULL) == 0 ? 0 : errno);
        printf("its root has cgroup.type: %d\n", access(at(nsmp, "cgroup.type"), F_OK) == 0);
        printf("its root has sub: %d\n", access(at(nsmp, "sub"), F_OK) == 0);
        mountinfo_root("mountinfo root inside", nsmp);
        mountinfo_root("full hierarchy seen from inside", full);
        printf("setns back: %d\n", setns(initns, CLONE_NEWCGROUP) == 0 ? 0 : errno);
        cgroup_of("self after setns", "/proc/self/cgroup");
        mountinfo_root("mountinfo root after setns", nsmp);
        umount2(nsmp, MNT_DETACH);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("unshare child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    pid = syscall(SYS_clone, CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        cgroup_of("clone child", "/proc/self/cgroup");
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("clone child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    kill(parked, SIGKILL);
    waitpid(parked, &status, 0);
    rmdir(at(full, "t/b/sub"));
    rmdir(at(full, "t/b"));
    rmdir(at(full, "t/a"));
    rmdir(at(full, "t"));
    umount2(full, 0);
    rmdir(full);
    rmdir(nsmp);
    printf("done\n");
    return 0;
}
