/*
 * execveat: execveat(2)'s lookups, flags and errors, and what the new program is told.
 *
 *   execveat            runs every case, each in a child, printing one line per case
 *   execveat child      (the exec'd image) prints its argv[0], AT_EXECFN, /proc/self/exe
 *                       and comm, with the test directory written as $T
 *
 * The test directory (mkdtemp under /tmp) holds a copy of this program (`prog`), a symlink
 * to it (`link`), a symlink to the directory (`dirlink`) and a shell script (`script`).
 * Cases: AT_FDCWD and absolute paths (an absolute path ignores even a bad fd), a directory
 * fd with a relative path, AT_EMPTY_PATH on O_PATH, O_RDONLY and close-on-exec fds and on
 * memfds holding the program and a script (and glibc's fexecve), AT_SYMLINK_NOFOLLOW on a
 * final symlink (ELOOP) and on a symlink higher up (followed), unknown flags (EINVAL), an
 * empty path without AT_EMPTY_PATH (ENOENT), a directory as the file (EACCES), a file as the
 * directory (ENOTDIR), a bad fd (EBADF), and scripts run through fds: /dev/fd/N as their
 * $0, ENOENT when that fd is close-on-exec.
 * Prints the same lines natively and in the sandbox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static const char *errname(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ELOOP: return "ELOOP";
    case EINVAL: return "EINVAL";
    case ENOTDIR: return "ENOTDIR";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case ENOEXEC: return "ENOEXEC";
    case ETXTBSY: return "ETXTBSY";
    default: return "other";
    }
}

/* Prints `s` with the test directory written as $T. */
static void show(const char *what, const char *s) {
    const char *t = getenv("T");
    size_t n = t ? strlen(t) : 0;
    if (n && strncmp(s, t, n) == 0)
        printf(" %s=$T%s", what, s + n);
    else
        printf(" %s=%s", what, s);
}

static int child(char **argv) {
    char exe[256] = "", comm[64] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n >= 0)
        exe[n] = 0;
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
    }
    printf("ran:");
    show("argv0", argv[0]);
    show("execfn", (const char *)getauxval(AT_EXECFN));
    show("exe", exe);
    show("comm", comm);
    printf("\n");
    return 0;
}

static char *child_argv[] = {"argv0", "child", NULL};
static char env_t[96];
static char *child_envp[] = {env_t, NULL};

/* Runs execveat(fd, path, .., flags) in a child: prints the new program's line or the errno. */
static void run(const char *name, int fd, const char *path, int flags) {
    printf("%s:", name);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        syscall(SYS_execveat, fd, path, child_argv, child_envp, flags);
        printf(" %s\n", errname(errno));
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf(" status %#x\n", status);
    fflush(stdout);
}

static void copy_self(int out) {
    int in = open("/proc/self/exe", O_RDONLY);
    char buf[65536];
    ssize_t n;
    if (in < 0) {
        perror("open /proc/self/exe");
        exit(1);
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) {
            perror("write");
            exit(1);
        }
    close(in);
}

static char *at(const char *name) {
    static char buf[8][128];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child(argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Whatever the caller left open would shift the fd numbers the lines show. */
    syscall(SYS_close_range, 3, ~0U, 0);
    strcpy(dir, "/tmp/execveat.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(env_t, sizeof env_t, "T=%s", dir);
    int out = open(at("prog"), O_WRONLY | O_CREAT | O_EXCL, 0755);
    copy_self(out);
    close(out);
    int script = open(at("script"), O_WRONLY | O_CREAT | O_EXCL, 0755);
    const char text[] = "#!/bin/sh\necho \" script \\$0=$0\"\n";
    if (write(script, text, strlen(text)) != (ssize_t)strlen(text))
        return 1;
    close(script);
    if (symlink(at("prog"), at("link")) || symlink(dir, at("dirlink"))) {
        perror("symlink");
        return 1;
    }

    int dirfd = open(dir, O_DIRECTORY | O_RDONLY);               /* 3 */
    int pathfd = open(at("prog"), O_PATH);                       /* 4 */
    int rdfd = open(at("prog"), O_RDONLY);                       /* 5 */
    int cloexecfd = open(at("prog"), O_RDONLY | O_CLOEXEC);      /* 6 */
    int linkfd = open(at("link"), O_PATH | O_NOFOLLOW);          /* 7 */
    int scriptfd = open(at("script"), O_RDONLY);                 /* 8 */
    int scriptcloexec = open(at("script"), O_RDONLY | O_CLOEXEC); /* 9 */
    int dircloexec = open(dir, O_DIRECTORY | O_CLOEXEC);         /* 10 */
    printf("fds: %d %d %d %d %d %d %d %d\n", dirfd, pathfd, rdfd, cloexecfd, linkfd, scriptfd,
           scriptcloexec, dircloexec);
    if (dircloexec != 10)
        return 1;

    run("absolute, AT_FDCWD", AT_FDCWD, at("prog"), 0);
    run("absolute, bad fd", 99, at("prog"), 0);
    run("absolute, AT_EMPTY_PATH", pathfd, at("prog"), AT_EMPTY_PATH);
    if (chdir(dir) == 0)
        run("relative, AT_FDCWD", AT_FDCWD, "prog", 0);
    if (chdir("/") != 0)
        return 1;
    run("relative to dirfd", dirfd, "prog", 0);
    run("relative to dirfd, AT_EMPTY_PATH", dirfd, "prog", AT_EMPTY_PATH);
    run("relative to close-on-exec dirfd", dircloexec, "prog", 0);
    run("O_PATH fd, AT_EMPTY_PATH", pathfd, "", AT_EMPTY_PATH);
    run("O_RDONLY fd, AT_EMPTY_PATH", rdfd, "", AT_EMPTY_PATH);
    run("close-on-exec fd, AT_EMPTY_PATH", cloexecfd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    run("O_PATH fd, empty path, no AT_EMPTY_PATH", pathfd, "", 0);
    run("dirfd, AT_EMPTY_PATH", dirfd, "", AT_EMPTY_PATH);
    run("cwd, AT_EMPTY_PATH", AT_FDCWD, "", AT_EMPTY_PATH);
    run("file fd as the directory", rdfd, "prog", 0);
    run("bad fd", 99, "prog", 0);
    run("bad fd, AT_EMPTY_PATH", 99, "", AT_EMPTY_PATH);
    run("unknown flags", -1, "", 0xffff);
    run("unknown flag 0x8000", AT_FDCWD, at("prog"), 0x8000);
    run("symlink, followed", dirfd, "link", 0);
    run("symlink, AT_SYMLINK_NOFOLLOW", dirfd, "link", AT_SYMLINK_NOFOLLOW);
    run("absolute symlink, AT_SYMLINK_NOFOLLOW", AT_FDCWD, at("link"), AT_SYMLINK_NOFOLLOW);
    run("symlinked directory, AT_SYMLINK_NOFOLLOW", AT_FDCWD, at("dirlink/prog"),
        AT_SYMLINK_NOFOLLOW);
    run("O_PATH|O_NOFOLLOW symlink fd, AT_EMPTY_PATH", linkfd, "", AT_EMPTY_PATH);
    run("script fd, AT_EMPTY_PATH", scriptfd, "", AT_EMPTY_PATH);
    run("script relative to dirfd", dirfd, "script", 0);
    run("close-on-exec script fd, AT_EMPTY_PATH", scriptcloexec, "", AT_EMPTY_PATH);
    run("script relative to close-on-exec dirfd", dircloexec, "script", 0);

    int memfd = syscall(SYS_memfd_create, "image", 0);
    copy_self(memfd);
    printf("memfd: %d\n", memfd);
    run("memfd, AT_EMPTY_PATH", memfd, "", AT_EMPTY_PATH);
    int memscript = syscall(SYS_memfd_create, "script", 0);
    if (write(memscript, text, strlen(text)) != (ssize_t)strlen(text))
        return 1;
    run("memfd script, AT_EMPTY_PATH", memscript, "", AT_EMPTY_PATH);

    printf("fexecve:");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fexecve(rdfd, child_argv, child_envp);
        printf(" %s\n", errname(errno));
        _exit(0);
    }
    waitpid(pid, NULL, 0);

    unlink(at("prog"));
    unlink(at("script"));
    unlink(at("link"));
    unlink(at("dirlink"));
    rmdir(dir);
    printf("done\n");
    return 0;
}
