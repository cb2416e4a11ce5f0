/* Permission rules on names and modes, printed so a native run (as root) and a sandboxed
 * run compare line by line: removing or renaming a name needs write access to its
 * directory, and in a sticky directory ownership; chmod by another user is EPERM and drops
 * a set-group-ID bit the caller's groups do not allow; chown clears set-user-ID (and a
 * group-executable set-group-ID) and the file's capabilities; mknod makes device nodes
 * with CAP_MKNOD, which open as their device, or ENXIO for a number without one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static char dir[64];

static void report(const char *what, long n) {
    if (n < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, n);
    fflush(stdout);
}

static char *at(const char *name) {
    static char bufs[4][128];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, 128, "%s/%s", dir, name);
    return b;
}

static void touch(const char *p, mode_t mode) {
    int fd = open(p, O_CREAT | O_WRONLY, mode);
    if (fd < 0) {
        perror(p);
        exit(1);
    }
    close(fd);
    chmod(p, mode);
}

static unsigned mode_of(const char *p) {
    struct stat st;
    if (stat(p, &st) != 0)
        return 0;
    return st.st_mode & 07777;
}

/* As uid and gid 1000 without supplementary groups (and so without capabilities). */
static void as_user(void) {
    if (setgroups(0, NULL) || setresgid(-1, 1000, -1) || setresuid(-1, 1000, -1)) {
        perror("dropping to 1000");
        exit(1);
    }
}

static void names(void) {
    mkdir(at("closed"), 0755);
    touch(at("closed/f"), 0644);
    mkdir(at("sticky"), 0777);
    chmod(at("sticky"), 01777);
    touch(at("sticky/root"), 0644);
    touch(at("sticky/theirs"), 0644);
    chown(at("sticky/theirs"), 1000, 1000);
    touch(at("sticky/theirs2"), 0644);
    chown(at("sticky/theirs2"), 1000, 1000);
    touch(at("owned"), 0644);
    chown(at("owned"), 1000, 0);
    pid_t pid = fork();
    if (pid == 0) {
        as_user();
        report("unlink in a closed dir", unlink(at("closed/f")));
        report("rename out of a closed dir", rename(at("closed/f"), at("sticky/f")));
        report("rename into a closed dir", rename(at("sticky/theirs2"), at("closed/g")));
        report("unlink another's file in a sticky dir", unlink(at("sticky/root")));
        report("rename another's file in a sticky dir",
               rename(at("sticky/root"), at("sticky/root2")));
        report("rename over another's file in a sticky dir",
               rename(at("sticky/theirs2"), at("sticky/root")));
        report("rename own file in a sticky dir", rename(at("sticky/theirs"), at("sticky/mine")));
        report("unlink own file in a sticky dir", unlink(at("sticky/mine")));
        report("chmod another's file", chmod(at("closed/f"), 0600));
        report("chmod own file g+s outside its group", chmod(at("owned"), 02755));
        printf("mode after: %o\n", mode_of(at("owned")));
        report("mknod a device without CAP_MKNOD",
               mknod(at("sticky/dev"), S_IFCHR | 0666, makedev(1, 3)));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    report("root unlinks in the sticky dir", unlink(at("sticky/theirs2")));
    unlink(at("sticky/root"));
    unlink(at("closed/f"));
    unlink(at("owned"));
    rmdir(at("sticky"));
    rmdir(at("closed"));
}

static void owners(void) {
    const char *f = at("chowned");
    touch(f, 0644);
    chmod(f, 06755);
    report("chown to the same owner", chown(f, -1, -1));
    printf("mode of 6755 after: %o\n", mode_of(f));
    chmod(f, 06745);
    report("chown to another owner", chown(f, 1, -1));
    printf("mode of 6745 after: %o\n", mode_of(f));
    chmod(f, 02745);
    report("chown back", chown(f, 0, 0));
    printf("mode of 2745 after: %o\n", mode_of(f));
    /* VFS_CAP_REVISION_2 with no capabilities. */
    unsigned char cap[20] = {0, 0, 0, 2};
    report("set security.capability", setxattr(f, "security.capability", cap, sizeof cap, 0));
    report("chown", chown(f, 1, -1));
    report("security.capability after", getxattr(f, "security.capability", cap, sizeof cap));
    unlink(f);
}

static void devices(void) {
    const char *null = at("null"), *none = at("none"), *blk = at("blk");
    report("mknod char 1:3", mknod(null, S_IFCHR | 0666, makedev(1, 3)));
    struct stat st;
    stat(null, &st);
    printf("type chr: %d, rdev %u:%u\n", S_ISCHR(st.st_mode), major(st.st_rdev),
           minor(st.st_rdev));
    int fd = open(null, O_RDWR);
    report("write to it", write(fd, "x", 1));
    char c;
    report("read from it", read(fd, &c, 1));
    close(fd);
    report("mknod char 240:77", mknod(none, S_IFCHR | 0666, makedev(240, 77)));
    report("open it", open(none, O_RDONLY));
    report("mknod block 240:77", mknod(blk, S_IFBLK | 0600, makedev(240, 77)));
    stat(blk, &st);
    printf("type blk: %d\n", S_ISBLK(st.st_mode));
    report("open it", open(blk, O_RDONLY));
    report("mknod a directory", mknod(at("d"), S_IFDIR | 0755, 0));
    report("mknod a bad type", mknod(at("d"), 0170000 | 0755, 0));
    unlink(null);
    unlink(none);
    unlink(blk);
}

int main(int argc, char **argv) {
    strcpy(dir, "/tmp/file_perms.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    chmod(dir, 0755);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "names"))
        names();
    else if (!strcmp(what, "owners"))
        owners();
    else if (!strcmp(what, "devices"))
        devices();
    rmdir(dir);
    printf("done\n");
    return 0;
}
