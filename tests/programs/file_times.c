/* File times a sentry filesystem keeps itself (the sandbox's /tmp is a tmpfs upper layer),
 * printed so a native run and a sandboxed run compare line by line: a read and a directory
 * listing set the access time (relatime: once while it is newer than the modification
 * time), a rename sets the renamed file's change time.
 *
 * Timestamps are compared with a clock read before the operation, less 50 ms: a host
 * filesystem stamps files with the coarse clock, which may lag by a tick.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static long long ns(struct timespec t) {
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct stat must_stat(const char *p) {
    struct stat st;
    if (stat(p, &st) != 0) {
        perror(p);
        exit(1);
    }
    return st;
}

static void sub(char *out, const char *name) {
    snprintf(out, 128, "%s/%s", dir, name);
}

static void write_file(const char *p) {
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "contents", 8) != 8) {
        perror(p);
        exit(1);
    }
    close(fd);
}

/* Whether `t` is at or after `before` (less the coarse clock's slack). */
static const char *after(struct timespec t, long long before) {
    return ns(t) >= before - 50000000LL ? "yes" : "no";
}

int main(void) {
    char file[128], listed[128], entry[128], renamed[128], moved[128];
    strcpy(dir, "/tmp/file_times.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    sub(file, "read");
    sub(listed, "listed");
    sub(entry, "listed/entry");
    sub(renamed, "renamed");
    sub(moved, "moved");
    write_file(file);
    write_file(renamed);
    if (mkdir(listed, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    write_file(entry);
    struct stat file0 = must_stat(file), listed0 = must_stat(listed);
    struct stat renamed0 = must_stat(renamed);

    /* Past the creation times by far more than the slack. */
    usleep(1100000);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long before = ns(now);

    int fd = open(file, O_RDONLY);
    char buf[32];
    printf("read: %zd\n", read(fd, buf, sizeof buf));
    struct stat file1 = must_stat(file);
    printf("read sets atime: %s, later than before: %s\n", after(file1.st_atim, before),
           ns(file1.st_atim) > ns(file0.st_atim) ? "yes" : "no");
    printf("read keeps mtime: %s, ctime: %s\n",
           ns(file1.st_mtim) == ns(file0.st_mtim) ? "yes" : "no",
           ns(file1.st_ctim) == ns(file0.st_ctim) ? "yes" : "no");
    usleep(20000);
    lseek(fd, 0, SEEK_SET);
    printf("read again: %zd\n", read(fd, buf, sizeof buf));
    struct stat file2 = must_stat(file);
    printf("relatime: second read keeps atime: %s\n",
           ns(file2.st_atim) == ns(file1.st_atim) ? "yes" : "no");
    close(fd);

    DIR *d = opendir(listed);
    int entries = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        entries++;
    if (d)
        closedir(d);
    printf("listed entries: %d\n", entries);
    struct stat listed1 = must_stat(listed);
    printf("listing sets atime: %s, keeps mtime: %s\n", after(listed1.st_atim, before),
           ns(listed1.st_mtim) == ns(listed0.st_mtim) ? "yes" : "no");

    printf("rename: %d\n", rename(renamed, moved));
    struct stat moved1 = must_stat(moved);
    printf("rename sets ctime: %s, keeps mtime: %s, keeps atime: %s\n",
           after(moved1.st_ctim, before),
           ns(moved1.st_mtim) == ns(renamed0.st_mtim) ? "yes" : "no",
           ns(moved1.st_atim) == ns(renamed0.st_atim) ? "yes" : "no");

    unlink(file);
    unlink(moved);
    unlink(entry);
    rmdir(listed);
    rmdir(dir);
    printf("done\n");
    return 0;
}
