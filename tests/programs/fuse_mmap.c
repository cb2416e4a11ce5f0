/* Mappings of files on a FUSE mount, printed line by line so that a native run and one under
 * runsc-rs compare (tests/tests/fuse.rs runs it on a bindfs mount).
 * Usage: fuse_mmap DIR SRC   a file made in DIR mapped privately and shared, read and
 *                        written, mapped again after write(2) and truncate; a copy of this
 *                        program made in DIR and executed. The lines starting "shared
 *                        writable" come last: stores through a shared writable mapping seen
 *                        by read(2), write(2) seen by the mapping, and the stores in the
 *                        daemon's own file (SRC, the directory the daemon serves) after
 *                        msync, munmap, fsync and close.
 *        fuse_mmap hold FILE   maps FILE (at least 4 MiB), reads its first page, prints
 *                        "mapped", waits for a line on stdin, then reads its last page.
 *        fuse_mmap dirty FILE  maps FILE shared writable, stores into it, prints "stored",
 *                        waits for a line on stdin (the daemon is killed meanwhile), then
 *                        prints how msync and fsync end.
 *        fuse_mmap killed FILE maps FILE shared writable, stores "killed" at its start and
 *                        kills itself with SIGKILL.
 *        fuse_mmap child       what the executed copy runs: prints a line, exits 7. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

#define PAGE 4096
#define LEN (3 * PAGE + 100)

static char src[200];

/* Whether the daemon's own file (SRC/m) holds the n bytes s at off. */
static int in_source(off_t off, const char *s, size_t n) {
    char path[256], b[64];
    snprintf(path, sizeof path, "%s/m", src);
    int f = open(path, O_RDONLY);
    if (f < 0)
        return -1;
    ssize_t got = pread(f, b, n, off);
    close(f);
    return got == (ssize_t)n && memcmp(b, s, n) == 0;
}

static unsigned char pattern(size_t i) { return (unsigned char)(i % 251 + 1); }

/* Whether the LEN bytes at p hold the pattern. */
static int matches(const unsigned char *p) {
    for (size_t i = 0; i < LEN; i++)
        if (p[i] != pattern(i))
            return 0;
    return 1;
}

static int hold(const char *path) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (4 << 20)) {
        perror("hold: open");
        return 1;
    }
    volatile unsigned char *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        perror("hold: mmap");
        return 1;
    }
    printf("first byte: %d\n", p[0]);
    printf("mapped\n");
    fflush(stdout);
    char line[16];
    if (read(0, line, sizeof line) < 0)
        return 1;
    printf("last byte: %d\n", p[st.st_size - 1]);
    return 0;
}

static int dirty(const char *path) {
    int fd = open(path, O_RDWR);
    char *p = fd < 0 ? MAP_FAILED : mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("dirty: mmap");
        return 1;
    }
    memcpy(p, "dirty", 5);
    printf("stored\n");
    fflush(stdout);
    char line[16];
    if (read(0, line, sizeof line) < 0)
        return 1;
    result("msync after the daemon died", msync(p, PAGE, MS_SYNC));
    result("fsync after the daemon died", fsync(fd));
    return 0;
}

/* Copies this program to DIR/exe and runs it; prints how it ended. */
static void exec_copy(void) {
    int in = open("/proc/self/exe", O_RDONLY);
    int out = open(at("exe"), O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (in < 0 || out < 0) {
        result("copy open", -1);
        return;
    }
    static char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) {
            result("copy write", -1);
            return;
        }
    close(in);
    close(out);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"exe", "child", NULL};
        execv(at("exe"), argv);
        result("execv", -1);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("exec status: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "child") == 0) {
        printf("child: running from the mount\n");
        return 7;
    }
    if (argc == 3 && strcmp(argv[1], "hold") == 0)
        return hold(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dirty") == 0)
        return dirty(argv[2]);
    if (argc == 3 && strcmp(argv[1], "killed") == 0) {
        int fd = open(argv[2], O_RDWR);
        char *p = fd < 0 ? MAP_FAILED : mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return 1;
        memcpy(p, "killed", 6);
        kill(getpid(), SIGKILL);
        return 0;
    }
    if (argc != 3 || strlen(argv[1]) >= sizeof dir || strlen(argv[2]) >= sizeof src) {
        fprintf(stderr, "usage: fuse_mmap DIR SRC\n");
        return 2;
    }
    strcpy(dir, argv[1]);
    strcpy(src, argv[2]);

    static unsigned char data[LEN];
    for (size_t i = 0; i < LEN; i++)
        data[i] = pattern(i);
    int fd = open(at("m"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    result("write", write(fd, data, LEN));

    int ro = open(at("m"), O_RDONLY);
    unsigned char *p = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, ro, 0);
    result("private read mmap", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        printf("private read matches: %d\n", matches(p));
        int zero = 1;
        for (size_t i = LEN; i < 4 * PAGE; i++)
            zero &= p[i] == 0;
        printf("past the end of the file zero: %d\n", zero);
        munmap(p, LEN);
    }
    p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, ro, 0);
    result("shared read-only mmap", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        printf("shared read matches: %d\n", matches(p));
        munmap(p, LEN);
    }
    p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    result("writable shared mmap of a read-only open", p == MAP_FAILED ? -1 : 0);

    p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    result("private writable mmap", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        memcpy(p + 5, "XYZ", 3);
        printf("mapping sees its store: %d\n", memcmp(p + 5, "XYZ", 3) == 0);
        munmap(p, LEN);
        unsigned char b[3];
        result("pread", pread(fd, b, 3, 5));
        printf("file unchanged: %d\n", b[0] == pattern(5) && b[2] == pattern(7));
    }

    /* Changes through write(2) and truncate show in later mappings. */
    result("pwrite", pwrite(fd, "new", 3, PAGE));
    p = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, ro, 0);
    if (p != MAP_FAILED) {
        printf("new mapping sees the write: %d\n", memcmp(p + PAGE, "new", 3) == 0);
        munmap(p, LEN);
    }
    result("truncate", ftruncate(fd, 100));
    result("extend", ftruncate(fd, LEN));
    p = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, ro, 0);
    if (p != MAP_FAILED) {
        int zero = 1;
        for (size_t i = 100; i < LEN; i++)
            zero &= p[i] == 0;
        printf("new mapping sees the truncation: %d\n", zero && p[99] == pattern(99));
        munmap(p, LEN);
    }
    /* A mapping outlives its file's close. */
    p = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, ro, 0);
    close(ro);
    if (p != MAP_FAILED) {
        printf("read after close: %d\n", p[99] == pattern(99) && p[PAGE * 2] == 0);
        munmap(p, LEN);
    }

    exec_copy();

    p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    result("shared writable mmap", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        char b[8];
        memcpy(p, "shared", 6);
        result("shared writable pread", pread(fd, b, 6, 0));
        printf("shared writable store seen by read(2) at once: %d\n", memcmp(b, "shared", 6) == 0);
        result("shared writable pwrite", pwrite(fd, "WRIT", 4, PAGE + 10));
        printf("shared writable mapping sees the pwrite: %d\n", memcmp(p + PAGE + 10, "WRIT", 4) == 0);
        memcpy(p + 2 * PAGE, "third", 5);
        result("shared writable msync", msync(p, LEN, MS_SYNC));
        printf("shared writable msync reached the daemon: %d\n", in_source(2 * PAGE, "third", 5));
        memcpy(p + 100, "unmapped", 8);
        munmap(p, LEN);
        printf("shared writable munmap reached the daemon: %d\n", in_source(100, "unmapped", 8));
        result("shared writable pread after munmap", pread(fd, b, 8, 100));
        printf("shared writable store reached the file: %d\n", memcmp(b, "unmapped", 8) == 0);

        p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        memcpy(p + 200, "fsynced", 7);
        result("shared writable fsync", fsync(fd));
        printf("shared writable fsync reached the daemon: %d\n", in_source(200, "fsynced", 7));
        memcpy(p + 300, "closed", 6);
        result("shared writable close", close(fd));
        printf("shared writable close reached the daemon: %d\n", in_source(300, "closed", 6));
        printf("shared writable mapping keeps its bytes: %d\n",
               memcmp(p, "shared", 6) == 0 && memcmp(p + PAGE + 10, "WRIT", 4) == 0);
        munmap(p, LEN);
        fd = open(at("m"), O_RDONLY);
        struct stat st;
        fstat(fd, &st);
        printf("shared writable size unchanged: %d\n", st.st_size == LEN);
    }
    close(fd);
    unlink(at("m"));
    unlink(at("exe"));
    printf("done\n");
    return 0;
}
