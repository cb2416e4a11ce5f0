/* The new mount API, printed so the output compares between native Linux and the sandbox:
 * fsopen/fsconfig/fsmount making a detached tmpfs (its errors, its options, statfs of the
 * mount fd, files made through it before it is attached), move_mount attaching it and a
 * second detached mount onto it, open_tree (plain, cloned, cloned recursively, of an
 * unmounted mount), mount_setattr flags and their errors, and what mountinfo shows.
 * Natively it runs in a private mount namespace of its own.
 * Usage: mount_api */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef FSCONFIG_SET_FLAG
#define FSCONFIG_SET_FLAG 0
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x4
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#define MOUNT_ATTR__ATIME 0x70
#define MOUNT_ATTR_NOATIME 0x10
#endif

struct attr {
    uint64_t set, clr, propagation, userns_fd;
};

static void result(const char *what, long r) {
    if (r == -1)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %s\n", what, r >= 0 ? "ok" : "?");
}

static int fsopen_(const char *fs, unsigned flags) { return syscall(SYS_fsopen, fs, flags); }
static int fsconfig_(int fd, unsigned cmd, const char *key, const void *val, int aux) {
    return syscall(SYS_fsconfig, fd, cmd, key, val, aux);
}
static int fsmount_(int fd, unsigned flags, unsigned attr) {
    return syscall(SYS_fsmount, fd, flags, attr);
}
static int move_mount_(int fd1, const char *p1, int fd2, const char *p2, unsigned flags) {
    return syscall(SYS_move_mount, fd1, p1, fd2, p2, flags);
}
static int open_tree_(int fd, const char *p, unsigned flags) {
    return syscall(SYS_open_tree, fd, p, flags);
}
static int setattr(int fd, const char *p, unsigned flags, struct attr *a, size_t size) {
    return syscall(SYS_mount_setattr, fd, p, flags, a, size);
}

static char dir[64];

/* A detached tmpfs with source `src` and the parameters `params` (key=value or flag). */
static int new_tmpfs(const char *src, const char *params, unsigned attr) {
    int fs = fsopen_("tmpfs", FSOPEN_CLOEXEC);
    fsconfig_(fs, FSCONFIG_SET_STRING, "source", src, 0);
    char buf[128];
    snprintf(buf, sizeof buf, "%s", params);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (eq) {
            *eq = 0;
            fsconfig_(fs, FSCONFIG_SET_STRING, tok, eq + 1, 0);
        } else {
            fsconfig_(fs, FSCONFIG_SET_FLAG, tok, NULL, 0);
        }
    }
    fsconfig_(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int m = fsmount_(fs, FSMOUNT_CLOEXEC, attr);
    close(fs);
    return m;
}

/* Type, source and options of the mounts under `dir`, in mountinfo order (TMP for dir). */
static void mountinfo(void) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    size_t k = strlen(dir);
    while (fgets(line, sizeof line, f)) {
        char mp[512], opts[256], rest[512];
        if (sscanf(line, "%*s %*s %*s %*s %511s %255s %511[^\n]", mp, opts, rest) != 3)
            continue;
        if (strncmp(mp, dir, k) != 0)
            continue;
        char *sep = strstr(rest, "- ");
        printf("mountinfo TMP%s %s %s\n", mp + k, opts, sep ? sep + 2 : "");
    }
    fclose(f);
}

static void exists(const char *what, int fd, const char *p) {
    result(what, faccessat(fd, p, F_OK, 0));
}

int main(void) {
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/mount_api.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char a[128], b[128], p[256];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    mkdir(a, 0755);
    mkdir(b, 0755);

    /* fsopen and fsconfig's checks. */
    result("fsopen bad flags", fsopen_("tmpfs", 2));
    result("fsopen unknown type", fsopen_("nosuchfs", 0));
    int fs = fsopen_("tmpfs", 0);
    result("fsopen tmpfs", fs);
    result("fsconfig on a non-context", fsconfig_(0, FSCONFIG_SET_FLAG, "ro", NULL, 0));
    result("fsmount before create", fsmount_(fs, 0, 0));
    result("source", fsconfig_(fs, FSCONFIG_SET_STRING, "source", "src1", 0));
    result("source again", fsconfig_(fs, FSCONFIG_SET_STRING, "source", "src2", 0));
    result("bad size", fsconfig_(fs, FSCONFIG_SET_STRING, "size", "lots", 0));
    result("unknown option", fsconfig_(fs, FSCONFIG_SET_STRING, "colour", "red", 0));
    result("unknown flag", fsconfig_(fs, FSCONFIG_SET_FLAG, "shiny", NULL, 0));
    result("flag with a value", fsconfig_(fs, FSCONFIG_SET_FLAG, "ro", "1", 0));
    result("bad command", fsconfig_(fs, 99, NULL, NULL, 0));
    result("create after bad options", fsconfig_(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
    close(fs);
    fs = fsopen_("tmpfs", 0);
    fsconfig_(fs, FSCONFIG_SET_STRING, "nr_inodes", "321", 0);
    fsconfig_(fs, FSCONFIG_SET_STRING, "mode", "0750", 0);
    result("create", fsconfig_(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
    result("create again", fsconfig_(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
    result("fsmount bad flags", fsmount_(fs, 2, 0));
    result("fsmount bad attr", fsmount_(fs, 0, 1u << 30));
    int m = fsmount_(fs, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    result("fsmount", m);
    result("fsmount twice", fsmount_(fs, 0, 0));
    close(fs);
    struct statfs st;
    fstatfs(m, &st);
    printf("statfs files %ld nosuid %d nodev %d rdonly %d\n", (long)st.f_files,
           !!(st.f_flags & ST_NOSUID), !!(st.f_flags & ST_NODEV), !!(st.f_flags & ST_RDONLY));
    struct stat sb;
    fstat(m, &sb);
    printf("root mode %o\n", sb.st_mode & 07777);
    result("read on the mount fd", read(m, p, 1));
    result("mkdirat detached", mkdirat(m, "sub", 0755));
    int f = openat(m, "file", O_CREAT | O_RDWR, 0644);
    result("create a file detached", f);
    close(f);

    /* A second detached tmpfs onto the first's sub, then the whole tree onto a. */
    int m2 = new_tmpfs("src2", "mode=0700", 0);
    result("move_mount without F_EMPTY_PATH", move_mount_(m2, "", AT_FDCWD, b, 0));
    result("move_mount detached onto detached",
           move_mount_(m2, "", m, "sub", MOVE_MOUNT_F_EMPTY_PATH));
    close(m2);
    f = openat(m, "sub/inner", O_CREAT | O_RDWR, 0644);
    result("create a file on the detached submount", f);
    close(f);
    result("move a detached tree's submount", move_mount_(m, "sub", AT_FDCWD, b, 0));
    result("attach", move_mount_(m, "", AT_FDCWD, a, MOVE_MOUNT_F_EMPTY_PATH));
    close(m);
    snprintf(p, sizeof p, "%s/file", a);
    result("file after attach", access(p, F_OK));
    snprintf(p, sizeof p, "%s/sub/inner", a);
    result("submount file after attach", access(p, F_OK));
    mountinfo();
    snprintf(p, sizeof p, "%s/sub", a);
    result("move into its own tree", move_mount_(AT_FDCWD, a, AT_FDCWD, p, 0));

    /* open_tree: a plain O_PATH fd, clones with and without the submount. */
    result("open_tree recursive without clone", open_tree_(AT_FDCWD, a, AT_RECURSIVE));
    result("open_tree unknown flag", open_tree_(AT_FDCWD, a, 1u << 30));
    int t0 = open_tree_(AT_FDCWD, a, 0);
    result("open_tree", t0);
    result("read on an open_tree fd", read(t0, p, 1));
    exists("open_tree sub/inner", t0, "sub/inner");
    close(t0);
    int t1 = open_tree_(AT_FDCWD, a, OPEN_TREE_CLONE);
    exists("clone sub", t1, "sub");
    exists("clone sub/inner", t1, "sub/inner");
    int t2 = open_tree_(AT_FDCWD, a, OPEN_TREE_CLONE | AT_RECURSIVE);
    exists("recursive clone sub/inner", t2, "sub/inner");
    result("attach the recursive clone", move_mount_(t2, "", AT_FDCWD, b, MOVE_MOUNT_F_EMPTY_PATH));
    close(t2);
    close(t1);
    snprintf(p, sizeof p, "%s/sub/inner", b);
    result("clone's submount file after attach", access(p, F_OK));
    mountinfo();

    /* mount_setattr. */
    struct attr at = {.set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC};
    result("setattr small size", setattr(AT_FDCWD, a, 0, &at, 8));
    result("setattr bad flags", setattr(AT_FDCWD, a, 1u << 30, &at, sizeof at));
    struct attr both = {.set = MOUNT_ATTR_RDONLY, .clr = MOUNT_ATTR_RDONLY};
    result("setattr set and clear", setattr(AT_FDCWD, a, 0, &both, sizeof both));
    struct attr prop = {.propagation = MS_SHARED | MS_PRIVATE};
    result("setattr two propagations", setattr(AT_FDCWD, a, 0, &prop, sizeof prop));
    struct attr atime = {.set = MOUNT_ATTR_NOATIME};
    result("setattr atime without clearing", setattr(AT_FDCWD, a, 0, &atime, sizeof atime));
    result("setattr not a mount", setattr(AT_FDCWD, dir, 0, &at, sizeof at));
    result("setattr ro,noexec recursive", setattr(AT_FDCWD, a, AT_RECURSIVE, &at, sizeof at));
    snprintf(p, sizeof p, "%s/newfile", a);
    result("create on the read-only mount", open(p, O_CREAT | O_RDWR, 0644));
    snprintf(p, sizeof p, "%s/sub/newfile", a);
    result("create on the read-only submount", open(p, O_CREAT | O_RDWR, 0644));
    struct attr clr = {.clr = MOUNT_ATTR_RDONLY, .set = MOUNT_ATTR__ATIME & MOUNT_ATTR_NOATIME};
    clr.clr |= MOUNT_ATTR__ATIME;
    result("setattr rw,noatime", setattr(AT_FDCWD, a, 0, &clr, sizeof clr));
    snprintf(p, sizeof p, "%s/newfile", a);
    f = open(p, O_CREAT | O_RDWR, 0644);
    result("create on the mount made writable", f);
    close(f);
    mountinfo();

    /* open_tree's clone of a mount unmounted since. */
    int t3 = open_tree_(AT_FDCWD, b, 0);
    snprintf(p, sizeof p, "%s/sub", b);
    umount2(p, MNT_DETACH);
    umount2(b, MNT_DETACH);
    result("clone an unmounted mount", open_tree_(t3, "", AT_EMPTY_PATH | OPEN_TREE_CLONE));
    close(t3);

    umount2(a, MNT_DETACH);
    snprintf(p, sizeof p, "%s/sub", a);
    umount2(p, MNT_DETACH);
    umount2(a, MNT_DETACH);
    rmdir(a);
    rmdir(b);
    rmdir(dir);
    printf("done\n");
    return 0;
}
