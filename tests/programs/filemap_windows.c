/* A private mapping of a host file (the page cache in the sandbox), touched out of order
 * so its pages are filled window by window at different times, interleaved with other
 * allocations; then: every page reads as read(2) reads the file, the partial last page is
 * zero past the file's end, the page after it raises SIGBUS, a fork child sees the same
 * bytes and its writes stay private (and the parent's writes stay the parent's), and a
 * second mapping of the file sees none of either's writes.
 * usage: filemap_windows FILE   (FILE: a host file of several 128 KiB windows) */
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

#define PAGE 4096L
#define WINDOW (32 * PAGE)

static sigjmp_buf env;
static volatile int bus;

static void on_bus(int sig) {
    bus = sig;
    siglongjmp(env, 1);
}

/* 1 when the mapping's first `len` bytes equal the file's. */
static int same_as_file(int fd, const unsigned char *m, long len) {
    unsigned char *buf = malloc(len);
    if (!buf || pread(fd, buf, len, 0) != len)
        return 0;
    int same = memcmp(buf, m, len) == 0;
    free(buf);
    return same;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: filemap_windows FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 3 * WINDOW) {
        perror("open");
        return 2;
    }
    long size = st.st_size;
    long pages = (size + PAGE - 1) / PAGE;
    /* Two pages beyond the file's last page. */
    long maplen = (pages + 2) * PAGE;
    unsigned char *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* Windows touched last first, with other memory allocated between. */
    volatile unsigned char sink = 0;
    void *other[8];
    int n = 0;
    for (long w = (size - 1) / WINDOW; w >= 0; w -= 2) {
        sink += m[w * WINDOW + 5];
        if (n < 8) {
            other[n] = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (other[n] != MAP_FAILED)
                memset(other[n], 0x5a, 3 * PAGE);
            n++;
        }
    }
    for (long w = 0; w * WINDOW < size; w++)
        sink += m[w * WINDOW + 7];
    (void)sink;
    printf("contents match: %d\n", same_as_file(fd, m, size));
    int tail_zero = 1;
    for (long off = size; off < pages * PAGE; off++)
        tail_zero &= m[off] == 0;
    printf("tail of the last page zero: %d\n", tail_zero);

    struct sigaction sa = {0};
    sa.sa_handler = on_bus;
    sigaction(SIGBUS, &sa, NULL);
    if (sigsetjmp(env, 1) == 0)
        sink += m[pages * PAGE];
    printf("page past the end: %s\n", bus == SIGBUS ? "SIGBUS" : "no signal");

    /* Writes to the first and the last page of the file, and one in the middle. */
    long spots[3] = {3, size / 2, size - 1};
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        int ok = same_as_file(fd, m, size);
        for (int i = 0; i < 3; i++) {
            unsigned char was = m[spots[i]];
            m[spots[i]] ^= 0xff;
            ok &= m[spots[i]] == (unsigned char)(was ^ 0xff);
        }
        _exit(ok ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child saw the file: %d\n", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("child's writes private: %d\n", same_as_file(fd, m, size));
    for (int i = 0; i < 3; i++)
        m[spots[i]] ^= 0x0f;
    unsigned char *again = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("second mapping sees the file: %d\n",
           again != MAP_FAILED && same_as_file(fd, again, size));
    int mine = 1;
    for (int i = 0; i < 3; i++)
        mine &= m[spots[i]] == (again[spots[i]] ^ 0x0f);
    printf("parent keeps its writes: %d\n", mine);
    for (int i = 0; i < n; i++)
        if (other[i] != MAP_FAILED)
            munmap(other[i], 3 * PAGE);
    return 0;
}
