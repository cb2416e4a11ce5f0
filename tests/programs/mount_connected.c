/* A lazy umount in one mount namespace must not change path walks in a copy of it made
 * earlier by the same user namespace: locked mounts stay connected to the unmounted mount
 * in the namespace that unmounted it (a descriptor open there still crosses onto them),
 * while the copy, where the mount is still mounted, crosses onto whatever it mounts there
 * later. Printed so the output compares between native Linux and the sandbox. Natively it
 * runs in a private mount namespace of its own. Usage: mount_connected */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

static void write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, s, strlen(s)) < 0)
        perror(path);
    if (fd >= 0)
        close(fd);
}

static void wait_byte(int fd) {
    char c;
    if (read(fd, &c, 1) != 1)
        _exit(4);
}

static void put_byte(int fd) {
    if (write(fd, "x", 1) != 1)
        _exit(4);
}

static void exists(const char *what, int dirfd, const char *path) {
    result(what, faccessat(dirfd, path, F_OK, 0));
}

/* In a new user and mount namespace (a and a/sub locked): b is a recursive bind of a (b
   unlocked, b/sub locked); a same-owner copy of the namespace is made, then b is lazily
   unmounted here and something else is mounted over b/sub in the copy. */
static void user_namespace(void) {
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        _exit(2);
    snprintf(map, sizeof map, "0 %u 1", uid);
    write_file("/proc/self/uid_map", map);
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %u 1", gid);
    write_file("/proc/self/gid_map", map);
    result("recursive bind of a on b", mount(at("a"), at("b"), NULL, MS_BIND | MS_REC, NULL));
    exists("b/sub/locked visible", AT_FDCWD, at("b/sub/locked"));

    int copied[2], unmounted[2], done[2];
    if (pipe(copied) || pipe(unmounted) || pipe(done))
        _exit(4);
    pid_t pid = fork();
    if (pid == 0) {
        result("copy: unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
        put_byte(copied[1]);
        wait_byte(unmounted[0]);
        exists("copy: b/sub/locked before mounting over", AT_FDCWD, at("b/sub/locked"));
        result("copy: mount over b/sub", mount("none", at("b/sub"), "tmpfs", 0, "mode=0755"));
        int fd = open(at("b/sub/new"), O_CREAT | O_WRONLY, 0644);
        result("copy: create b/sub/new", fd >= 0 ? 0 : -1);
        if (fd >= 0)
            close(fd);
        exists("copy: b/sub/locked after mounting over", AT_FDCWD, at("b/sub/locked"));
        exists("copy: b/sub/new", AT_FDCWD, at("b/sub/new"));
        put_byte(done[1]);
        _exit(0);
    }
    wait_byte(copied[0]);
    int b = open(at("b"), O_RDONLY | O_DIRECTORY);
    result("lazy umount of b", umount2(at("b"), MNT_DETACH));
    put_byte(unmounted[1]);
    wait_byte(done[0]);
    exists("through the open b: sub/locked", b, "sub/locked");
    exists("through the open b: sub/new", b, "sub/new");
    exists("b/sub/locked by path after umount", AT_FDCWD, at("b/sub/locked"));
    close(b);
    int status;
    waitpid(pid, &status, 0);
    printf("copy child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    _exit(0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/mount_connected.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    mkdir(at("a"), 0755);
    mkdir(at("b"), 0755);
    result("mount a", mount("none", at("a"), "tmpfs", 0, "mode=0755"));
    mkdir(at("a/sub"), 0755);
    result("mount a/sub", mount("none", at("a/sub"), "tmpfs", 0, "mode=0755"));
    close(open(at("a/sub/locked"), O_CREAT | O_WRONLY, 0644));
    pid_t pid = fork();
    if (pid == 0)
        user_namespace();
    int status;
    waitpid(pid, &status, 0);
    printf("user namespace child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    umount2(at("a"), MNT_DETACH);
    rmdir(at("a"));
    rmdir(at("b"));
    rmdir(dir);
    printf("done\n");
    return 0;
}
