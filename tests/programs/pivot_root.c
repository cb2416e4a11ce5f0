/* pivot_root(2) (issue 12), printed so the output compares between native Linux and the
 * sandbox: the argument checks, pivot_root onto a mount from a chroot (the old root moved to
 * put_old, the cwd of another process that was at the old root following), and the
 * pivot_root(".", ".") idiom followed by umount2(".", MNT_DETACH); and mount(2)'s MS_MOVE,
 * which shares pivot_root's machinery. Natively it runs in a
 * private mount namespace of its own, so the host's mount table never sees its mounts.
 * Usage: pivot_root */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

static long pivot(const char *new_root, const char *put_old) {
    return syscall(SYS_pivot_root, new_root, put_old);
}

static char new_dir[128];

/* The names in `path`, sorted, on one line (the temporary directory shown as TMP). */
static void list(const char *path) {
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    size_t k = strlen(dir);
    if (strncmp(path, dir, k) == 0)
        printf("ls TMP%s:", path + k);
    else
        printf("ls %s:", path);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            printf(" %s", names[i]->d_name);
        free(names[i]);
    }
    if (n < 0)
        printf(" %s", strerrorname_np(errno));
    free(names);
    printf("\n");
}

/* A tmpfs at `dir`, and one at `dir`/new holding a file and a directory "old". */
static void setup(void) {
    mount("none", dir, "tmpfs", 0, "mode=0755");
    snprintf(new_dir, sizeof new_dir, "%s/new", dir);
    mkdir(new_dir, 0755);
    mkdir(strcat(strcpy((char[160]){0}, dir), "/plain"), 0755);
    mount("none", new_dir, "tmpfs", 0, "mode=0755");
    char p[160];
    snprintf(p, sizeof p, "%s/file", new_dir);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    snprintf(p, sizeof p, "%s/old", new_dir);
    mkdir(p, 0755);
}

static int run_child(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return status;
}

static void checks(void) {
    result("chroot", chroot(dir));
    result("not a directory", pivot("/new/file", "/new/old"));
    result("put_old not a directory", pivot("/new", "/new/file"));
    result("missing", pivot("/nowhere", "/new/old"));
    result("new root on the root's mount", pivot("/plain", "/plain"));
    result("put_old on the root's mount", pivot("/new", "/plain"));
    result("new root not a mount", pivot("/new/old", "/new/old"));
}

static void with_put_old(void) {
    result("chroot", chroot(dir));
    result("pivot_root /new /new/old", pivot("/new", "/new/old"));
    result("chdir /", chdir("/"));
    list("/");
    list("/old");
    struct stat st;
    result("stat /new/file", stat("/new/file", &st));
    result("stat /file", stat("/file", &st));
    char cwd[256];
    printf("getcwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerrorname_np(errno));
    result("umount2 /old", umount2("/old", MNT_DETACH));
    list("/");
}

static void dot_dot(void) {
    result("chroot", chroot(dir));
    result("chdir /new", chdir("/new"));
    result("pivot_root . .", pivot(".", "."));
    list(".");
    result("umount2 . detach", umount2(".", MNT_DETACH));
    list(".");
    list("/");
    struct stat st;
    result("stat file", stat("file", &st));
    result("stat /..", stat("/..", &st));
}

int main(void) {
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/pivot_root.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setup();
    result("pivot_root from / (no parent mount)", pivot(new_dir, "/tmp"));
    run_child(checks);

    /* Another process whose cwd is the old root follows it to the new one. */
    struct stat before, after;
    stat(new_dir, &before);
    chdir(dir);
    run_child(with_put_old);
    stat(".", &after);
    printf("cwd followed to the new root: %d\n",
           before.st_dev == after.st_dev && before.st_ino == after.st_ino);
    chdir("/");
    umount2(dir, MNT_DETACH);

    setup();
    run_child(dot_dot);
    umount2(dir, MNT_DETACH);

    /* MS_MOVE: a mount (with what is mounted on it) moves; not a non-mount, not into its
     * own tree, not out of a shared mount. */
    setup();
    char plain[160], dest[160], sub[200], p[240];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    snprintf(dest, sizeof dest, "%s/dest", dir);
    mkdir(dest, 0755);
    mount("none", plain, "tmpfs", 0, "mode=0755");
    snprintf(sub, sizeof sub, "%s/sub", plain);
    mkdir(sub, 0755);
    mount("none", sub, "tmpfs", 0, "mode=0755");
    snprintf(p, sizeof p, "%s/subfile", sub);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    result("move a plain directory", mount(dest, plain, NULL, MS_MOVE, NULL));
    result("move into its own tree", mount(plain, sub, NULL, MS_MOVE, NULL));
    result("move plain to dest", mount(plain, dest, NULL, MS_MOVE, NULL));
    list(plain);
    snprintf(p, sizeof p, "%s/sub", dest);
    list(p);
    result("make the parent shared", mount(NULL, dir, NULL, MS_SHARED, NULL));
    result("move out of a shared mount", mount(dest, plain, NULL, MS_MOVE, NULL));
    result("make it private", mount(NULL, dir, NULL, MS_PRIVATE, NULL));
    result("move back", mount(dest, plain, NULL, MS_MOVE, NULL));
    snprintf(p, sizeof p, "%s/sub", plain);
    list(p);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    printf("done\n");
    return 0;
}
