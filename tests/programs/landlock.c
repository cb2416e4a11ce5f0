/* Landlock (landlock(7)) with a small policy: /usr readable and executable, a scratch
 * directory of our own fully writable, everything else denied. Each step prints what it saw
 * (0 or the errno name), so the output is the same natively and in the sandbox
 * (tests/tests/landlock.rs). `landlock probe DIR` is what the fork+exec case runs: it reports
 * what the restrictions it inherited allow. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_REFER (1ULL << 13)
#define FS_TRUNCATE (1ULL << 14)
#define FS_V3 ((1ULL << 15) - 1)

struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct __attribute__((packed)) path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
};

static const char *res(long r) {
    if (r >= 0)
        return "0";
    switch (errno) {
    case EACCES: return "EACCES";
    case EXDEV: return "EXDEV";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case ENOMSG: return "ENOMSG";
    case EBADF: return "EBADF";
    case EBADFD: return "EBADFD";
    case E2BIG: return "E2BIG";
    default: return strerror(errno);
    }
}

#define SHOW(label, expr)                    \
    do {                                     \
        errno = 0;                           \
        long r_ = (long)(expr);              \
        printf("%s: %s\n", label, res(r_));  \
    } while (0)

static int create_ruleset(uint64_t handled) {
    struct ruleset_attr a = {.handled_access_fs = handled};
    return syscall(SYS_landlock_create_ruleset, &a, sizeof(a), 0);
}

static int add_path(int rs, const char *path, uint64_t access) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct path_beneath pb = {.allowed_access = access, .parent_fd = fd};
    int r = syscall(SYS_landlock_add_rule, rs, 1, &pb, 0);
    close(fd);
    return r;
}

static long open_close(const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static char scratch[64], outside[64];
/* A regular file under /usr (opened for writing only to see it refused; nothing is
 * written). */
static char usr_file[300];

static void find_usr_file(void) {
    DIR *d = opendir("/usr/bin");
    struct dirent *e;
    struct stat st;
    while (d && (e = readdir(d))) {
        snprintf(usr_file, sizeof usr_file, "/usr/bin/%s", e->d_name);
        if (lstat(usr_file, &st) == 0 && S_ISREG(st.st_mode))
            break;
    }
    if (d)
        closedir(d);
}

static void path(char *buf, const char *dir, const char *name) {
    snprintf(buf, 128, "%s/%s", dir, name);
}

/* What a restricted task may do; run in the restricted child, a forked grandchild and an
 * exec'd program alike. */
static void probe(const char *who) {
    char p[128];
    printf("-- %s\n", who);
    SHOW("usr readdir", open_close("/usr", O_RDONLY | O_DIRECTORY));
    SHOW("usr write", open_close(usr_file, O_WRONLY | O_APPEND));
    path(p, outside, "file");
    SHOW("outside read", open_close(p, O_RDONLY));
    SHOW("outside write", open_close(p, O_WRONLY));
    SHOW("outside readdir", open_close(outside, O_RDONLY | O_DIRECTORY));
    path(p, outside, "new");
    SHOW("outside create", open_close(p, O_WRONLY | O_CREAT));
    path(p, outside, "dir");
    SHOW("outside mkdir", mkdir(p, 0755));
    path(p, scratch, "file");
    SHOW("scratch read", open_close(p, O_RDONLY));
    SHOW("scratch readdir", open_close(scratch, O_RDONLY | O_DIRECTORY));
}

static int run_restricted(const char *self) {
    char p[128], q[128], prog[128];
    int rs = create_ruleset(FS_V3);
    SHOW("create_ruleset", rs);
    SHOW("add /usr", add_path(rs, "/usr", FS_READ_FILE | FS_READ_DIR | FS_EXECUTE));
    SHOW("add scratch", add_path(rs, scratch, FS_V3));
    path(p, scratch, "file");
    SHOW("add file with dir rights", add_path(rs, p, FS_READ_DIR));
    SHOW("add file with file rights", add_path(rs, p, FS_READ_FILE));
    SHOW("add no rights", add_path(rs, scratch, 0));
    SHOW("add unhandled", add_path(rs, scratch, 1ULL << 15));
    SHOW("no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    SHOW("restrict_self", syscall(SYS_landlock_restrict_self, rs, 0));
    close(rs);
    probe("restricted");
    path(p, scratch, "new");
    SHOW("scratch create", open_close(p, O_WRONLY | O_CREAT));
    SHOW("scratch truncate", truncate(p, 0));
    path(q, scratch, "sub");
    SHOW("scratch mkdir", mkdir(q, 0755));
    path(q, scratch, "sub/moved");
    SHOW("scratch rename into subdir", rename(p, q));
    path(p, outside, "moved");
    SHOW("rename out of scratch", rename(q, p));
    SHOW("scratch unlink", unlink(q));
    path(q, scratch, "sub");
    SHOW("scratch rmdir", rmdir(q));
    path(p, outside, "file");
    SHOW("outside unlink", unlink(p));

    pid_t c = fork();
    if (c == 0) {
        probe("forked child");
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("forked child exit %d\n", WEXITSTATUS(st));

    path(prog, scratch, "prog");
    fflush(stdout);
    c = fork();
    if (c == 0) {
        execl(prog, prog, "probe", scratch, outside, (char *)NULL);
        printf("exec: %s\n", res(-1));
        fflush(stdout);
        _exit(1);
    }
    waitpid(c, &st, 0);
    printf("exec'd child exit %d\n", WEXITSTATUS(st));
    /* The program outside the scratch directory and /usr is not executable. */
    c = fork();
    if (c == 0) {
        execl(self, self, "probe", scratch, outside, (char *)NULL);
        printf("exec outside: %s\n", res(-1));
        fflush(stdout);
        _exit(1);
    }
    waitpid(c, &st, 0);
    printf("exec outside exit %d\n", WEXITSTATUS(st));

    /* A second layer that takes writing away in the scratch directory too. */
    rs = create_ruleset(FS_WRITE_FILE);
    path(p, scratch, "file");
    SHOW("layer 2 add /usr", add_path(rs, "/usr", FS_WRITE_FILE));
    SHOW("layer 2 restrict_self", syscall(SYS_landlock_restrict_self, rs, 0));
    SHOW("layer 2 scratch write", open_close(p, O_WRONLY));
    SHOW("layer 2 scratch read", open_close(p, O_RDONLY));
    return 0;
}

/* Copies the running program into the scratch directory (the exec case runs the copy). */
static int copy_self(const char *dst) {
    int in = open("/proc/self/exe", O_RDONLY);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (in < 0 || out < 0)
        return -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            return -1;
    close(in);
    close(out);
    return 0;
}

static void cleanup(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[128];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        path(p, dir, e->d_name);
        if (unlink(p) < 0) {
            cleanup(p);
            rmdir(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    find_usr_file();
    if (argc == 4 && !strcmp(argv[1], "probe")) {
        snprintf(scratch, sizeof scratch, "%s", argv[2]);
        snprintf(outside, sizeof outside, "%s", argv[3]);
        probe("exec'd program");
        return 0;
    }
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1);
    printf("abi >= 3: %d\n", abi >= 3);
    if (abi < 3)
        return 0;
    strcpy(scratch, "/tmp/landlock-scratch-XXXXXX");
    strcpy(outside, "/tmp/landlock-outside-XXXXXX");
    if (!mkdtemp(scratch) || !mkdtemp(outside)) {
        perror("mkdtemp");
        return 2;
    }
    char p[128], self[128];
    path(p, scratch, "file");
    close(open(p, O_WRONLY | O_CREAT, 0644));
    path(p, outside, "file");
    close(open(p, O_WRONLY | O_CREAT, 0644));
    path(p, scratch, "prog");
    if (copy_self(p) < 0) {
        perror("copy");
        return 2;
    }
    /* The original program, for the exec that must fail. */
    path(self, outside, "prog");
    if (copy_self(self) < 0) {
        perror("copy");
        return 2;
    }
    pid_t c = fork();
    if (c == 0)
        _exit(run_restricted(self));
    int st;
    waitpid(c, &st, 0);
    printf("restricted child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* The parent was never restricted. */
    SHOW("parent outside read", open_close(p, O_RDONLY));
    cleanup(scratch);
    cleanup(outside);
    return 0;
}
