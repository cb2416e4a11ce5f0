// The volume swap race (issue 15): threads exchange DIR/f (a regular file) with DIR/s (a
// symlink to ../canary, outside the volume on the host) with renameat2(RENAME_EXCHANGE),
// while other threads apply one operation to DIR/f. A sentry that hands the host the name
// again after its own lookup lets the host follow the swapped-in symlink to the canary.
//
//   hostfs_race race OP DIR MS   run the race for MS milliseconds; prints the counts
//   hostfs_race prepare PATH     (natively) give PATH a user xattr to watch
//   hostfs_race snapshot PATH    (natively) print what the race must not change of PATH
//
// OP: chmod chown utimes truncate setxattr open_trunc open_creat rename link unlink
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define SWAPPERS 2
#define WORKERS 2

static const char *op;
static char file[4096], link_path[4096], aside[4096];
static atomic_int stop;
static atomic_long swaps, attempts, successes;

static void *swapper(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        if (syscall(SYS_renameat2, AT_FDCWD, file, AT_FDCWD, link_path, RENAME_EXCHANGE) == 0)
            atomic_fetch_add(&swaps, 1);
    }
    return NULL;
}

// One attempt of OP on DIR/f; 0 when the call succeeded.
static int attempt(void) {
    if (!strcmp(op, "chmod"))
        return chmod(file, 04777);
    if (!strcmp(op, "chown"))
        return chown(file, 4321, 4321);
    if (!strcmp(op, "utimes")) {
        struct timespec ts[2] = {{1, 0}, {1, 0}};
        return utimensat(AT_FDCWD, file, ts, 0);
    }
    if (!strcmp(op, "truncate"))
        return truncate(file, 0);
    if (!strcmp(op, "setxattr"))
        return setxattr(file, "user.raced", "x", 1, 0);
    if (!strcmp(op, "open_trunc") || !strcmp(op, "open_creat")) {
        int flags = O_WRONLY | O_TRUNC | (!strcmp(op, "open_creat") ? O_CREAT : 0);
        int fd = open(file, flags, 0666);
        if (fd < 0)
            return -1;
        int r = write(fd, "X", 1) == 1 ? 0 : -1;
        close(fd);
        return r;
    }
    if (!strcmp(op, "rename")) {
        if (rename(file, aside) != 0)
            return -1;
        return rename(aside, file);
    }
    if (!strcmp(op, "link")) {
        if (link(file, aside) != 0)
            return -1;
        return unlink(aside);
    }
    if (!strcmp(op, "unlink")) {
        if (unlink(file) != 0)
            return -1;
        int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    fprintf(stderr, "unknown op %s\n", op);
    exit(2);
}

static void *worker(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        atomic_fetch_add(&attempts, 1);
        if (attempt() == 0)
            atomic_fetch_add(&successes, 1);
    }
    return NULL;
}

static int race(const char *dir, long ms) {
    snprintf(file, sizeof file, "%s/f", dir);
    snprintf(link_path, sizeof link_path, "%s/s", dir);
    snprintf(aside, sizeof aside, "%s/aside", dir);
    pthread_t th[SWAPPERS + WORKERS];
    for (int i = 0; i < SWAPPERS + WORKERS; i++)
        pthread_create(&th[i], NULL, i < SWAPPERS ? swapper : worker, NULL);
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < SWAPPERS + WORKERS; i++)
        pthread_join(th[i], NULL);
    printf("op=%s swaps=%ld attempts=%ld successes=%ld\n", op, atomic_load(&swaps),
           atomic_load(&attempts), atomic_load(&successes));
    return 0;
}

static int snapshot(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        printf("missing errno=%d\n", errno);
        return 0;
    }
    printf("ino=%lu mode=%o uid=%u gid=%u size=%ld nlink=%lu mtime=%ld.%09ld ctime=%ld.%09ld\n",
           (unsigned long)st.st_ino, st.st_mode, st.st_uid, st.st_gid, (long)st.st_size,
           (unsigned long)st.st_nlink, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
           (long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    char names[4096];
    ssize_t n = llistxattr(path, names, sizeof names);
    printf("xattrs:");
    for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
        char value[256];
        ssize_t v = lgetxattr(path, names + i, value, sizeof value - 1);
        value[v > 0 ? v : 0] = 0;
        printf(" %s=%s", names + i, value);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "race")) {
        op = argv[2];
        return race(argv[3], atol(argv[4]));
    }
    if (argc == 3 && !strcmp(argv[1], "prepare"))
        return setxattr(argv[2], "user.canary", "kept", 4, 0) == 0 || errno == ENOTSUP ? 0 : 1;
    if (argc == 3 && !strcmp(argv[1], "snapshot"))
        return snapshot(argv[2]);
    fprintf(stderr, "usage: hostfs_race race OP DIR MS | prepare PATH | snapshot PATH\n");
    return 2;
}
