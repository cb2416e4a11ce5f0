/* Mount propagation across mount namespaces and down propagation trees, printed so the
 * output compares between native Linux and the sandbox: peers in a namespace made by
 * unshare(CLONE_NEWNS) (mounts and unmounts reach both ways), a namespace of a new user
 * namespace (its mounts are slaves: they receive, and send nothing back), a slave that is
 * shared passing what it receives to its own peers and slaves, stacked peers at one place
 * doubling, a recursive bind onto a shared mount reaching the peers with its submounts,
 * a tree propagated into a user namespace's mount namespace unmounted there (only whole;
 * lazily, its locked submounts stay connected to it, so a descriptor on it does not see
 * what they covered, while the namespace's own mounts in it are disconnected), and
 * mprotect(PROT_EXEC) of a file on a noexec mount.
 * Natively it runs in a private mount namespace of its own.
 * Usage: mount_propagation_ns */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

/* How many mounts are at `dir`/`name`, and whether the topmost is shared / a slave. */
static void show(const char *who, const char *name) {
    char line[1024];
    int count = 0, shared = 0, slave = 0;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    while (fgets(line, sizeof line, f)) {
        char mp[512];
        if (sscanf(line, "%*s %*s %*s %*s %511s", mp) != 1 || strcmp(mp, at(name)) != 0)
            continue;
        count++;
        shared = strstr(line, " shared:") != NULL;
        slave = strstr(line, " master:") != NULL;
    }
    fclose(f);
    printf("%s %s: %d mounts%s%s\n", who, name, count, shared ? " shared" : "",
           slave ? " slave" : "");
    fflush(stdout);
}

static void tmpfs(const char *name) { mount("none", at(name), "tmpfs", 0, "mode=0755"); }

static void touch(const char *name) { close(open(at(name), O_CREAT | O_WRONLY, 0644)); }

/* A child in a new mount namespace (and a new user namespace with `userns`), stepping
 * with the parent through two pipes: each side runs its steps in turn. */
static int to_child[2], to_parent[2];
static void wait_for(int fd) {
    char c;
    if (read(fd, &c, 1) != 1)
        _exit(3);
}
static void go(int fd) {
    if (write(fd, "x", 1) != 1)
        _exit(3);
}

static void child_steps(int userns) {
    if (unshare(CLONE_NEWNS | (userns ? CLONE_NEWUSER : 0)) != 0) {
        perror("unshare");
        _exit(2);
    }
    const char *me = userns ? "userns child" : "child";
    go(to_parent[1]);
    wait_for(to_child[0]);
    /* The parent mounted a/x. */
    show(me, "a/x");
    printf("%s sees the parent's file: %d\n", me, access(at("a/x/pf"), F_OK));
    tmpfs("a/y");
    touch("a/y/cf");
    show(me, "a/y");
    printf("%s umount a/x: %d\n", me, umount2(at("a/x"), MNT_DETACH));
    fflush(stdout);
    go(to_parent[1]);
    wait_for(to_child[0]);
    _exit(0);
}

static void parent_steps(const char *child) {
    pipe(to_child);
    pipe(to_parent);
    int userns = strcmp(child, "userns child") == 0;
    pid_t pid = fork();
    if (pid == 0)
        child_steps(userns);
    wait_for(to_parent[0]);
    tmpfs("a/x");
    touch("a/x/pf");
    go(to_child[1]);
    wait_for(to_parent[0]);
    show("parent", "a/x");
    show("parent", "a/y");
    result("parent sees the child's file", access(at("a/y/cf"), F_OK));
    go(to_child[1]);
    int status;
    waitpid(pid, &status, 0);
    printf("%s exit %d\n", child, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fflush(stdout);
    umount2(at("a/x"), MNT_DETACH);
    umount2(at("a/y"), MNT_DETACH);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
}

/* A tree the parent binds onto a shared mount reaches a user namespace's mount namespace
 * locked below its top: there it is unmounted only whole, and after a lazy umount a
 * descriptor on its top still crosses onto the locked submount (the file that mount covers
 * stays hidden), while a mount the namespace made itself in the tree is disconnected. */
static void locked_tree(void) {
    tmpfs("h");
    mount(NULL, at("h"), NULL, MS_SHARED, NULL);
    mkdir(at("h/src"), 0755);
    mkdir(at("h/dst"), 0755);
    tmpfs("h/src");
    mount(NULL, at("h/src"), NULL, MS_PRIVATE, NULL);
    mkdir(at("h/src/gc"), 0755);
    touch("h/src/gc/covered");
    mkdir(at("h/src/own"), 0755);
    touch("h/src/own/covered");
    tmpfs("h/src/gc");
    mount(NULL, at("h/src/gc"), NULL, MS_PRIVATE, NULL);
    pipe(to_child);
    pipe(to_parent);
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNS | CLONE_NEWUSER) != 0)
            _exit(2);
        go(to_parent[1]);
        wait_for(to_child[0]);
        show("locked", "h/dst/gc");
        result("locked: umount the locked submount alone", umount2(at("h/dst/gc"), MNT_DETACH));
        result("locked: own mount in the tree", mount("none", at("h/dst/own"), "tmpfs", 0, NULL));
        int fd = open(at("h/dst"), O_RDONLY | O_DIRECTORY);
        result("locked: umount the tree", umount2(at("h/dst"), MNT_DETACH));
        show("locked", "h/dst/gc");
        result("locked: file the locked submount covers",
               openat(fd, "gc/covered", O_RDONLY) == -1 ? -1 : 0);
        result("locked: file the own mount covered",
               openat(fd, "own/covered", O_RDONLY) == -1 ? -1 : 0);
        _exit(0);
    }
    wait_for(to_parent[0]);
    result("bind the tree into the shared mount",
           mount(at("h/src"), at("h/dst"), NULL, MS_BIND | MS_REC, NULL));
    result("make it private", mount(NULL, at("h/dst"), NULL, MS_PRIVATE | MS_REC, NULL));
    go(to_child[1]);
    int status;
    waitpid(pid, &status, 0);
    printf("locked child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fflush(stdout);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
}

int main(void) {
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/mount_prop_ns.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    mount("none", dir, "tmpfs", 0, "mode=0755");
    for (const char *d = "a\0b\0c\0d\0e\0f\0g\0h\0"; *d; d += strlen(d) + 1)
        mkdir(at(d), 0755);

    /* Peers across namespaces. */
    tmpfs("a");
    result("make a shared", mount(NULL, at("a"), NULL, MS_SHARED, NULL));
    mkdir(at("a/x"), 0755);
    mkdir(at("a/y"), 0755);
    parent_steps("child");
    parent_steps("userns child");

    /* A slave that is shared passes mounts on to its peers and slaves. */
    result("bind a to b", mount(at("a"), at("b"), NULL, MS_BIND, NULL));
    result("make b a slave", mount(NULL, at("b"), NULL, MS_SLAVE, NULL));
    result("make b shared", mount(NULL, at("b"), NULL, MS_SHARED, NULL));
    result("bind b to c", mount(at("b"), at("c"), NULL, MS_BIND, NULL));
    result("bind b to d", mount(at("b"), at("d"), NULL, MS_BIND, NULL));
    result("make d a slave", mount(NULL, at("d"), NULL, MS_SLAVE, NULL));
    mkdir(at("a/z"), 0755);
    tmpfs("a/z");
    show("tree", "b/z");
    show("tree", "c/z");
    show("tree", "d/z");
    result("umount a/z", umount2(at("a/z"), 0));
    show("tree", "c/z");
    show("tree", "d/z");

    /* Peers stacked at one place: each bind there doubles them. */
    mkdir(at("e/s"), 0755);
    result("bind e/s to itself", mount(at("e/s"), at("e/s"), NULL, MS_BIND, NULL));
    result("make e/s shared", mount(NULL, at("e/s"), NULL, MS_SHARED, NULL));
    for (int i = 0; i < 3; i++) {
        result("bind e/s again", mount(at("e/s"), at("e/s"), NULL, MS_BIND, NULL));
        show("stack", "e/s");
    }
    result("umount e/s detached", umount2(at("e/s"), MNT_DETACH));
    show("stack", "e/s");

    /* A recursive bind onto a shared mount reaches its peers with its submounts. */
    mkdir(at("a/r"), 0755);
    mkdir(at("f/sub"), 0755);
    result("bind f to itself", mount(at("f"), at("f"), NULL, MS_BIND, NULL));
    tmpfs("f/sub");
    touch("f/sub/file");
    result("rbind f to a/r", mount(at("f"), at("a/r"), NULL, MS_BIND | MS_REC, NULL));
    show("rbind", "b/r");
    show("rbind", "b/r/sub");
    show("rbind", "c/r/sub");
    result("file under the peer's copy", access(at("c/r/sub/file"), F_OK));

    locked_tree();

    /* A private mapping of a file on a noexec mount cannot be made executable. */
    tmpfs("g");
    mount(NULL, at("g"), NULL, MS_REMOUNT | MS_NOEXEC, "mode=0755");
    int fd = open(at("g/file"), O_CREAT | O_RDWR, 0755);
    ftruncate(fd, 4096);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    result("mmap rw", p == MAP_FAILED ? -1 : 0);
    result("mprotect exec on noexec", mprotect(p, 4096, PROT_READ | PROT_EXEC));
    result("mmap exec on noexec",
           mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED ? -1 : 0);
    close(fd);

    umount2(dir, MNT_DETACH);
    rmdir(dir);
    printf("done\n");
    return 0;
}
