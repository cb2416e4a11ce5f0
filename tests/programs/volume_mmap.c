/* Shared writable mappings of a file in DIR (a volume in the sandbox): stores reach the
 * file (read(2) while mapped, after msync, fsync, munmap, close and a reopen); write(2) and
 * ftruncate show through existing mappings; two mappings share their pages.
 * Usage: volume_mmap DIR. Prints what it sees, then "done". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

static void show(const char *label, const char *p, size_t n) {
    printf("%s: ", label);
    for (size_t i = 0; i < n; i++)
        putchar(p[i] >= 32 && p[i] < 127 ? p[i] : '.');
    putchar('\n');
}

static void pread_show(int fd, const char *label, off_t off, size_t n) {
    char buf[64];
    ssize_t r = pread(fd, buf, n, off);
    if (r < 0)
        die("pread");
    show(label, buf, (size_t)r);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        printf("usage: volume_mmap DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/f", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open");
    char a[100];
    memset(a, 'A', sizeof a);
    if (write(fd, a, sizeof a) != sizeof a)
        die("write");
    if (ftruncate(fd, 8192))
        die("ftruncate");

    /* A read-only open may map shared read-only, not shared writable. */
    int ro = open(path, O_RDONLY);
    if (ro < 0)
        die("open ro");
    void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    printf("ro shared writable: %s\n", w == MAP_FAILED ? strerror(errno) : "mapped");

    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        die("mmap");
    memcpy(m, "hello", 5);
    memcpy(m + 5000, "world", 5);
    /* read(2) sees the stores while the mapping lives (natively at once). */
    pread_show(fd, "read while mapped", 0, 10);
    if (msync(m, 8192, MS_SYNC))
        die("msync");
    pread_show(fd, "read after msync", 4998, 9);
    pread_show(ro, "read ro after msync", 0, 8);

    /* write(2) shows through the mapping. */
    if (pwrite(fd, "XYZ", 3, 100) != 3)
        die("pwrite");
    show("mapping after pwrite", m + 98, 7);

    /* Growth by a write past the end (as SQLite grows -shm), then a second mapping of
     * the longer file shares the pages of the first. */
    if (pwrite(fd, "", 1, 3 * 4096 - 1) != 1)
        die("pwrite grow");
    char *m2 = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m2 == MAP_FAILED)
        die("mmap 2");
    show("second mapping", m2 + 5000, 5);
    memcpy(m2 + 10, "Q", 1);
    memcpy(m2 + 9000, "third", 5);
    show("first mapping sees", m + 8, 4);
    if (fsync(fd))
        die("fsync");
    pread_show(fd, "read after fsync", 8998, 9);

    /* A truncation shows through the mapping: bytes past the end of the partial page read
     * zero. */
    if (ftruncate(fd, 5002))
        die("ftruncate shrink");
    show("mapping after shrink", m + 4998, 8);
    struct stat st;
    fstat(fd, &st);
    printf("size after shrink: %lld\n", (long long)st.st_size);
    if (ftruncate(fd, 3 * 4096))
        die("ftruncate grow");
    show("mapping after regrow", m + 4998, 8);

    /* Stores not synced reach the file at munmap and close. */
    memcpy(m + 200, "late", 4);
    memcpy(m2 + 9500, "later", 5);
    munmap(m, 8192);
    munmap(m2, 3 * 4096);
    close(fd);
    close(ro);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        die("reopen");
    pread_show(fd, "reopened 0", 0, 12);
    pread_show(fd, "reopened 98", 98, 8);
    pread_show(fd, "reopened 200", 198, 8);
    pread_show(fd, "reopened 4998", 4998, 8);
    pread_show(fd, "reopened 9500", 9498, 9);
    fstat(fd, &st);
    printf("final size: %lld\n", (long long)st.st_size);
    /* A fresh read-only mapping after reopening sees it all. */
    char *r = mmap(NULL, 3 * 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (r == MAP_FAILED)
        die("mmap ro");
    show("remapped", r + 9500, 5);
    show("remapped 0", r, 5);
    printf("done\n");
    return 0;
}
