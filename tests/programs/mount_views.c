/* What a process sees of mounts, printed so the output compares between native Linux and
 * the sandbox: /proc/self/mountinfo, /proc/self/fd links and /proc/self/maps relative to a
 * chroot (mounts outside it left out), POLLPRI|POLLERR on an open mountinfo after each mount
 * change, MNT_LOCKED mounts in a new user and mount namespace (no umount alone, no plain
 * bind revealing them, no clearing of their flags, a recursive bind taking them along), and
 * pivot_root refusing a locked new root. Natively it runs in a private mount namespace of
 * its own. Usage: mount_views */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

/* How many lines `path` (under the directory fd `base`) has (`lines_too`), how many name
 * `dir`, and (else) whether a line ends in " /file". */
static void show_file(int base, const char *path, const char *label, int lines_too) {
    char buf[65536];
    int fd = openat(base, path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        result(label, -1);
        return;
    }
    buf[n] = 0;
    int lines = 0, leaks = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    for (char *p = buf; (p = strstr(p, dir)); p++)
        leaks++;
    if (lines_too)
        printf("%s: %d lines, %d naming the chroot's path\n", label, lines, leaks);
    else
        printf("%s: %d naming the chroot's path, /file shown: %d\n", label, leaks,
               strstr(buf, " /file\n") != NULL);
}

/* How many lines of mountinfo (under `base`) have `field` as their mount point. */
static int mountinfo_has(int base, const char *field) {
    char buf[65536];
    int fd = openat(base, "self/mountinfo", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    int count = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char mp[512];
        if (sscanf(line, "%*s %*s %*s %*s %511s", mp) == 1 && strcmp(mp, field) == 0)
            count++;
    }
    return count;
}

static void chroot_views(void) {
    int proc = open("/proc", O_RDONLY | O_DIRECTORY);
    pid_t pid = fork();
    if (pid == 0) {
        if (chroot(at("a")) != 0)
            _exit(2);
        show_file(proc, "self/mountinfo", "chroot mountinfo", 1);
        show_file(proc, "self/mounts", "chroot mounts", 1);
        printf("chroot mountinfo has /sub: %d\n", mountinfo_has(proc, "/sub"));
        int fd = open("/file", O_CREAT | O_RDWR, 0644);
        char link[64], target[256] = "";
        snprintf(link, sizeof link, "self/fd/%d", fd);
        ssize_t n = readlinkat(proc, link, target, sizeof target - 1);
        if (n > 0)
            target[n] = 0;
        printf("fd link in chroot: %s\n", target);
        if (ftruncate(fd, 4096) != 0)
            _exit(3);
        void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            _exit(4);
        show_file(proc, "self/maps", "chroot maps", 0);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("chroot child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    close(proc);
}

static int poll_prio(int fd) {
    struct pollfd p = {fd, POLLPRI, 0};
    int n = poll(&p, 1, 0);
    return n <= 0 ? n : p.revents & (POLLPRI | POLLERR);
}

static void poll_mountinfo(void) {
    int fd = open("/proc/self/mountinfo", O_RDONLY);
    printf("poll at open: %d\n", poll_prio(fd));
    mkdir(at("p"), 0755);
    mount("none", at("p"), "tmpfs", 0, NULL);
    printf("poll after mount: %#x\n", poll_prio(fd));
    printf("poll again: %d\n", poll_prio(fd));
    mount(NULL, at("p"), NULL, MS_REMOUNT | MS_RDONLY, NULL);
    printf("poll after remount: %#x\n", poll_prio(fd));
    umount2(at("p"), 0);
    printf("poll after umount: %#x\n", poll_prio(fd));
    close(fd);
}

static void write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        if (write(fd, s, strlen(s)) < 0)
            perror(path);
        close(fd);
    }
}

static void locked_mounts(void) {
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            _exit(2);
        snprintf(map, sizeof map, "0 %u 1", uid);
        write_file("/proc/self/uid_map", map);
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "0 %u 1", gid);
        write_file("/proc/self/gid_map", map);
        result("umount a locked mount", umount2(at("a/sub"), MNT_DETACH));
        result("clear its read-only flag",
               mount("", at("a"), NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     NULL));
        result("keep its flags", mount("", at("a"), NULL,
                                        MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
                                            MS_NOEXEC,
                                        NULL));
        result("plain bind over locked mounts", mount(at("a"), at("b"), NULL, MS_BIND, NULL));
        result("recursive bind", mount(at("a"), at("b"), NULL, MS_BIND | MS_REC, NULL));
        struct stat b, sub;
        stat(at("b"), &b);
        stat(at("b/sub"), &sub);
        printf("b/sub is a mount: %d\n", b.st_dev != sub.st_dev);
        result("clear the bind's read-only flag",
               mount("", at("b"), NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     NULL));
        result("umount the bind", umount2(at("b"), MNT_DETACH));
        if (chroot(at("a")) != 0 || chdir("/") != 0)
            _exit(3);
        result("pivot_root onto a locked mount", syscall(SYS_pivot_root, "/sub", "/sub/old"));
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("user namespace child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/mount_views.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    mkdir(at("a"), 0755);
    mkdir(at("b"), 0755);
    result("mount a", mount("none", at("a"), "tmpfs", 0, "mode=0755"));
    mkdir(at("a/sub"), 0755);
    result("mount a/sub", mount("none", at("a/sub"), "tmpfs", 0, "mode=0755"));
    mkdir(at("a/sub/old"), 0755);
    chroot_views();
    poll_mountinfo();
    result("lock-worthy flags on a",
           mount("", at("a"), NULL,
                 MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    locked_mounts();
    umount2(at("a"), MNT_DETACH);
    rmdir(at("p"));
    rmdir(at("a"));
    rmdir(at("b"));
    rmdir(dir);
    printf("done\n");
    return 0;
}
