/* File owners seen and set through user namespaces, printed so that a native run (as root)
 * and a sandboxed run compare line by line: stat, fstat and statx show a file's owner and
 * group mapped into the caller's user namespace (65534 when unmapped); chown takes IDs of
 * the caller's namespace (EINVAL for an unmapped one); CAP_CHOWN, CAP_FOWNER and
 * CAP_DAC_OVERRIDE of a namespace count only over files whose owner and group it maps;
 * /proc/[pid]/status shows IDs through the reader's namespace.
 *
 * One child unshares a user namespace and gets no maps; another gets, written by the
 * parent (root of the initial namespace), "0 0 1" and "100 1000 10" for users and groups.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

static void touch(const char *name, uid_t uid, gid_t gid, mode_t mode) {
    int fd = open(at(name), O_CREAT | O_WRONLY | O_TRUNC, mode);
    if (fd < 0 || fchown(fd, uid, gid) || fchmod(fd, mode)) {
        perror(name);
        exit(1);
    }
    close(fd);
}

static void show_stat(const char *label, const char *name) {
    struct stat st;
    if (stat(at(name), &st) != 0) {
        result(label, -1);
        return;
    }
    printf("%s: %u %u %o\n", label, st.st_uid, st.st_gid, st.st_mode & 07777);
    fflush(stdout);
}

/* The Uid and Gid lines of /proc/<pid>/status. */
static void show_status(const char *label, const char *pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        result(label, -1);
        return;
    }
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4))
            printf("%s %s", label, line);
    fclose(f);
    fflush(stdout);
}

static void wait_byte(int fd) {
    char c;
    if (read(fd, &c, 1) != 1)
        exit(1);
}

static void put_byte(int fd) {
    if (write(fd, "x", 1) != 1)
        exit(1);
}

static void unmapped_child(void) {
    if (unshare(CLONE_NEWUSER)) {
        perror("unshare");
        _exit(1);
    }
    printf("unmapped: ids %u %u\n", getuid(), getgid());
    show_stat("unmapped: stat root's", "root");
    show_stat("unmapped: stat 1000's", "u1000");
    show_status("unmapped: self", "self");
    result("unmapped: chown to 0", chown(at("root"), 0, -1));
    result("unmapped: chown to -1 -1", chown(at("root"), -1, -1));
    result("unmapped: open 1000's 0600 file", open(at("u1000"), O_RDONLY) >= 0 ? 0 : -1);
    _exit(0);
}

static int write_map(pid_t pid, const char *which, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, which);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    int r = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
    close(fd);
    return r;
}

/* In the mapped namespace: to_parent says "unshared" and later "status read"; from_parent
   says "maps written" and later "read my status". */
static void mapped_child(int to_parent, int from_parent) {
    if (unshare(CLONE_NEWUSER)) {
        perror("unshare");
        _exit(1);
    }
    put_byte(to_parent);
    wait_byte(from_parent);
    printf("mapped: ids %u %u\n", getuid(), getgid());
    show_stat("mapped: stat root's", "root");
    show_stat("mapped: stat 1000's", "u1000");
    show_stat("mapped: stat 5000's", "u5000");
    int fd = open(at("u1000"), O_RDONLY);
    result("mapped: open 1000's 0600 file (DAC_OVERRIDE)", fd >= 0 ? 0 : -1);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        printf("mapped: fstat 1000's: %u %u\n", st.st_uid, st.st_gid);
        close(fd);
    }
    struct statx sx;
    if (statx(AT_FDCWD, at("u1000"), 0, STATX_BASIC_STATS, &sx) == 0)
        printf("mapped: statx 1000's: %u %u\n", sx.stx_uid, sx.stx_gid);
    result("mapped: open 5000's 0600 file", open(at("u5000"), O_RDONLY) >= 0 ? 0 : -1);
    result("mapped: chmod 1000's (FOWNER)", chmod(at("u1000"), 0640));
    result("mapped: chmod 5000's", chmod(at("u5000"), 0640));
    result("mapped: chown 1000's to 105:106", chown(at("u1000"), 105, 106));
    show_stat("mapped: stat 1000's after", "u1000");
    result("mapped: chown to unmapped 5000", chown(at("root"), 5000, -1));
    result("mapped: chown to unmapped group 50", chown(at("root"), -1, 50));
    result("mapped: chown 5000's to 0", chown(at("u5000"), 0, 0));
    result("mapped: lchown root's to 101:0", lchown(at("root"), 101, 0));
    fd = open(at("root"), O_RDONLY);
    result("mapped: fchown root's to 0:102", fchown(fd, 0, 102));
    result("mapped: fchownat root's to 0:0", fchownat(AT_FDCWD, at("root"), 0, 0, 0));
    close(fd);
    show_stat("mapped: stat root's after", "root");
    show_status("mapped: self", "self");
    /* Effective user 100 (kernel 1000), real and saved 0. */
    result("mapped: setresuid(-1, 100, -1)", setresuid(-1, 100, -1));
    show_status("mapped: self", "self");
    put_byte(to_parent);
    wait_byte(from_parent);
    _exit(0);
}

int main(void) {
    strcpy(dir, "/tmp/userns_ids.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    chmod(dir, 0755);
    touch("root", 0, 0, 0644);
    touch("u1000", 1000, 1000, 0600);
    touch("u5000", 5000, 5000, 0600);

    pid_t pid = fork();
    if (pid == 0)
        unmapped_child();
    waitpid(pid, NULL, 0);

    int up[2], down[2];
    if (pipe(up) || pipe(down))
        return 1;
    pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        mapped_child(up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    wait_byte(up[0]);
    result("write uid_map", write_map(pid, "uid_map", "0 0 1\n100 1000 10\n"));
    result("write gid_map", write_map(pid, "gid_map", "0 0 1\n100 1000 10\n"));
    put_byte(down[1]);
    wait_byte(up[0]);
    char spid[16];
    snprintf(spid, sizeof spid, "%d", pid);
    show_status("parent reads child:", spid);
    put_byte(down[1]);
    waitpid(pid, NULL, 0);
    show_stat("parent: stat 1000's", "u1000");
    show_stat("parent: stat root's", "root");

    unlink(at("root"));
    unlink(at("u1000"));
    unlink(at("u5000"));
    rmdir(dir);
    printf("done\n");
    return 0;
}
