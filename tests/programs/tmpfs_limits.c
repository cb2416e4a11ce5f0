/* tmpfs mount options (issue 12): size=, nr_blocks=, nr_inodes=, mode=, uid=, gid= and their
 * limits, printed so the output compares between native Linux and the sandbox. Natively it
 * runs in a private mount namespace of its own (unshare + MS_PRIVATE), so the host's mount
 * table never sees its mounts; the temporary directory is removed at the end.
 * Usage: tmpfs_limits */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

#define PG 4096

/* The super options mountinfo shows for the mount on `dir`. */
static void show_mountinfo(void) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        char mp[256];
        if (sscanf(line, "%*s %*s %*s %*s %255s", mp) == 1 && strcmp(mp, dir) == 0) {
            char *dash = strstr(line, " - ");
            char fstype[64], source[64], opts[512];
            if (dash && sscanf(dash, " - %63s %63s %511s", fstype, source, opts) == 3)
                printf("mountinfo: %s %s\n", fstype, opts);
        }
    }
    if (f)
        fclose(f);
}

static void show_statfs(const char *what) {
    struct statfs s;
    if (statfs(dir, &s) != 0) {
        result(what, -1);
        return;
    }
    printf("%s: blocks %ld free %ld files %ld ffree %ld\n", what, (long)s.f_blocks,
           (long)s.f_bfree, (long)s.f_files, (long)s.f_ffree);
}

static long file_size(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long)st.st_size : -1;
}

int main(void) {
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/tmpfs_limits.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }

    /* Options that tmpfs refuses. */
    const char *bad[] = {"size", "size=1q", "mode=9", "uid=x", "bogus", "nr_inodes=abc"};
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        printf("option %s: ", bad[i]);
        result("mount", mount("none", dir, "tmpfs", 0, bad[i]));
    }

    /* Two pages, four inodes (the root is one), the root's mode and owner. */
    result("mount", mount("none", dir, "tmpfs", 0,
                          "size=5000,nr_inodes=4,mode=0750,uid=12,gid=34"));
    show_mountinfo();
    show_statfs("statfs");
    struct stat st;
    stat(dir, &st);
    printf("root: mode %o uid %d gid %d\n", st.st_mode & 07777, st.st_uid, st.st_gid);

    /* A write that crosses the limit stops at the last page; the next one is ENOSPC. */
    int fd = open(at("a"), O_CREAT | O_RDWR, 0600);
    char buf[2 * PG];
    memset(buf, 'x', sizeof buf);
    result("pwrite at 2 pages - 3", pwrite(fd, buf, 8, 2 * PG - 3));
    result("pwrite at 3 pages - 3", pwrite(fd, buf, 8, 3 * PG - 3));
    result("pwrite at 3 pages", pwrite(fd, buf, 8, 3 * PG));
    printf("size: %ld\n", file_size(fd));
    show_statfs("statfs full");
    /* fallocate is all or nothing; ftruncate allocates nothing. */
    result("fallocate 3 pages", fallocate(fd, 0, 0, 3 * PG));
    printf("size: %ld\n", file_size(fd));
    result("ftruncate 5 pages", ftruncate(fd, 5 * PG));
    result("ftruncate 0", ftruncate(fd, 0));
    result("fallocate 2 pages", fallocate(fd, 0, 0, 2 * PG));
    printf("size: %ld\n", file_size(fd));
    result("fallocate 1 byte more", fallocate(fd, 0, 0, 2 * PG + 1));
    result("ftruncate 1 page", ftruncate(fd, PG));

    /* A mapping past what the limit leaves: the first page is there, the next is SIGBUS. */
    result("ftruncate 3 pages", ftruncate(fd, 3 * PG));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        volatile char *p = mmap(NULL, 3 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            _exit(2);
        (void)p[0];
        (void)p[PG];
        (void)p[2 * PG];
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("mapping child: signal %d\n", WTERMSIG(status));
    else
        printf("mapping child: exit %d\n", WEXITSTATUS(status));
    result("ftruncate 0", ftruncate(fd, 0));

    /* Short symlink targets live in the inode; a long one takes a page. */
    char target[200];
    memset(target, 't', sizeof target);
    target[127] = 0;
    result("symlink 127", symlink(target, at("s127")));
    unlink(at("s127"));
    target[127] = 't';
    target[128] = 0;
    result("fallocate 2 pages again", fallocate(fd, 0, 0, 2 * PG));
    result("symlink 128 when full", symlink(target, at("s128")));
    result("ftruncate 0", ftruncate(fd, 0));
    result("symlink 128", symlink(target, at("s128")));
    show_statfs("statfs symlink");
    unlink(at("s128"));

    /* The inode limit: the root, "a" and two more. */
    result("mkdir d", mkdir(at("d"), 0700));
    result("mknod f", mknod(at("f"), S_IFREG | 0600, 0));
    result("mkdir e", mkdir(at("e"), 0700));
    result("link to a", link(at("a"), at("a2")));
    show_statfs("statfs inodes");
    unlink(at("f"));
    result("mkdir e again", mkdir(at("e"), 0700));
    rmdir(at("e"));
    rmdir(at("d"));
    unlink(at("a2"));

    /* Remounting: not below what is in use; a bigger limit takes effect. */
    result("fallocate 2 pages", fallocate(fd, 0, 0, 2 * PG));
    result("remount size=4k", mount(NULL, dir, NULL, MS_REMOUNT, "size=4k"));
    result("remount nr_inodes=1", mount(NULL, dir, NULL, MS_REMOUNT, "nr_inodes=1"));
    result("remount size=16k", mount(NULL, dir, NULL, MS_REMOUNT, "size=16k"));
    show_mountinfo();
    result("fallocate 4 pages", fallocate(fd, 0, 0, 4 * PG));
    show_statfs("statfs remounted");
    close(fd);

    result("umount", umount2(dir, 0));

    /* nr_blocks= and a size given in k; no limit with size=0. */
    result("mount nr_blocks=1", mount("none", dir, "tmpfs", 0, "nr_blocks=1"));
    show_mountinfo();
    fd = open(at("b"), O_CREAT | O_RDWR, 0600);
    result("fallocate 1 page", fallocate(fd, 0, 0, PG));
    result("fallocate 2 pages", fallocate(fd, 0, 0, 2 * PG));
    close(fd);
    result("umount", umount2(dir, 0));
    result("mount size=0", mount("none", dir, "tmpfs", 0, "size=0,nr_inodes=0"));
    fd = open(at("b"), O_CREAT | O_RDWR, 0600);
    result("fallocate 64 pages", fallocate(fd, 0, 0, 64 * PG));
    close(fd);
    result("umount", umount2(dir, 0));
    rmdir(dir);
    printf("done\n");
    return 0;
}
