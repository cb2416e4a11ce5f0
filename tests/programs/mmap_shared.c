/* File mappings: MAP_SHARED across fork (seen through the mapping and read(2)), MAP_PRIVATE
 * copy-on-write, msync, mremap and MADV_DONTNEED on a private file mapping, and SIGBUS past
 * the end of a file. argv[1]: a directory to create files in (a tmpfs one); /dev/shm is used
 * too. Prints one line per check; the output is compared with native Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static void shared_across_fork(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open");
    if (ftruncate(fd, 2 * PAGE) < 0) die("ftruncate");
    char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) die("mmap shared");
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(m + PAGE + 100, "written by the child");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("mapping: %s\n", m + PAGE + 100);
    char buf[32] = {0};
    if (pread(fd, buf, 20, PAGE + 100) != 20) die("pread");
    printf("read(2): %s\n", buf);
    /* write(2) shows through the mapping too. */
    if (pwrite(fd, "via write", 9, 0) != 9) die("pwrite");
    printf("after write: %.9s\n", m);
    if (msync(m, 2 * PAGE, MS_SYNC) < 0) die("msync");
    printf("msync unaligned: %d\n", msync(m + 1, PAGE, MS_SYNC) < 0 ? errno : 0);
    /* A second, independent mapping of the same file sees the same pages. */
    char *m2 = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, PAGE);
    if (m2 == MAP_FAILED) die("mmap second");
    printf("second mapping: %s\n", m2 + 100);
    /* Grow the file and the mapping with mremap. */
    if (ftruncate(fd, 4 * PAGE) < 0) die("ftruncate grow");
    char *g = mremap(m, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE);
    if (g == MAP_FAILED) die("mremap");
    strcpy(g + 3 * PAGE, "grown");
    if (pread(fd, buf, 5, 3 * PAGE) != 5) die("pread grown");
    printf("grown: %.5s still: %s\n", buf, g + PAGE + 100);
    munmap(g, 4 * PAGE);
    munmap(m2, PAGE);
    close(fd);
    unlink(path);
}

static void private_cow(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open");
    if (write(fd, "original contents", 17) != 17) die("write");
    char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) die("mmap private");
    /* Before a write, the private mapping shows the file (and changes to it). */
    if (pwrite(fd, "O", 1, 0) != 1) die("pwrite");
    printf("private sees file: %.17s\n", p);
    memcpy(p, "PRIVATE", 7);
    char buf[18] = {0};
    if (pread(fd, buf, 17, 0) != 17) die("pread");
    printf("file after private write: %s\n", buf);
    printf("mapping: %.17s\n", p);
    /* MADV_DONTNEED drops the private copy: the file shows again. */
    if (madvise(p, PAGE, MADV_DONTNEED) < 0) die("madvise");
    printf("after DONTNEED: %.17s\n", p);
    /* A fork child's copy-on-write write is invisible to the parent. */
    p[0] = 'X';
    pid_t pid = fork();
    if (pid == 0) {
        p[0] = 'C';
        _exit(p[0] == 'C' ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent after child write: %c (child %d)\n", p[0], WEXITSTATUS(status));
    munmap(p, PAGE);
    close(fd);
    unlink(path);
}

static sigjmp_buf jump;

static void on_bus(int sig) {
    siglongjmp(jump, sig);
}

static void past_eof(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open");
    if (write(fd, "x", 1) != 1) die("write");
    char *m = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) die("mmap");
    signal(SIGBUS, on_bus);
    volatile char c = m[PAGE - 1];
    printf("last page tail: %d\n", c);
    int sig = sigsetjmp(jump, 1);
    if (sig == 0) {
        c = m[PAGE];
        printf("no SIGBUS past EOF\n");
    } else {
        printf("past EOF: signal %d\n", sig);
    }
    /* A read-only fd cannot give a writable shared mapping, now or by mprotect. */
    int ro = open(path, O_RDONLY);
    printf("shared writable from O_RDONLY: %s\n",
           mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED
               ? strerror(errno)
               : "mapped");
    char *r = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    printf("mprotect write: %s\n",
           mprotect(r, PAGE, PROT_READ | PROT_WRITE) < 0 ? strerror(errno) : "ok");
    close(ro);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(path, sizeof path, "%s/mmap_shared.dat", dir);
    shared_across_fork(path);
    shared_across_fork("/dev/shm/mmap_shared_test");
    private_cow(path);
    past_eof(path);
    /* A read-only host file (the binary itself): private writes never reach it. */
    int fd = open(argv[0], O_RDONLY);
    if (fd < 0) die("open self");
    char *self = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (self == MAP_FAILED) die("mmap self");
    char magic[4];
    memcpy(magic, self + 1, 3);
    magic[3] = 0;
    self[1] = 'Z';
    char again[4] = {0};
    pread(fd, again, 3, 1);
    printf("self: %s, after private write file has: %s\n", magic, again);
    printf("shared writable of O_RDONLY host file: %s\n",
           mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED
               ? strerror(errno)
               : "mapped");
    printf("done\n");
    return 0;
}
