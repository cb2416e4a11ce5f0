/* System calls added after the first table, printed so a native run and a sandboxed run
 * compare line by line. Each section works in a fresh directory of its own under /tmp.
 *
 *   new_calls fchmodat2      fchmodat2(2): flags, a symlink's own mode, AT_EMPTY_PATH
 *   new_calls epoll_pwait2   epoll_pwait2(2): timespec timeouts, NULL, bad ones, sigmask
 *   new_calls getdents       getdents(2): the old dirent layout, d_type in the last byte
 *   new_calls utime          utime(2): given times, NULL (now), errors
 *   new_calls futex2         futex_wait, futex_wake, futex_requeue: flags, masks, timeouts, waking
 *   new_calls kcmp           kcmp(2): each type between a process, its thread and a fork child
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "outcome.h"

/* Numbers newer than the C library's headers on some build hosts. */
#define NR_epoll_pwait2 441
#define NR_fchmodat2 452

/* dir/name into `out` (PATH_MAX bytes), which outlives at()'s rotating buffers. */
static void path(char *out, const char *name) {
    snprintf(out, PATH_MAX, "%s", at(name));
}

/* Forks a child that runs as user and group 65534 (an unprivileged caller): returns 0 in
   it, its PID in the parent. Output is flushed first, so lines keep their order; a child
   that cannot drop its privileges says so and exits 1. */
static pid_t fork_as_nobody(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
        printf("cannot drop privileges\n");
        fflush(stdout);
        _exit(1);
    }
    return pid;
}

/* Waits for child `pid` and prints "WHAT status N". */
static void reap(pid_t pid, const char *what) {
    int status;
    waitpid(pid, &status, 0);
    printf("%s status %d\n", what, status);
}

static long sys_fchmodat2(int dirfd, const char *p, mode_t mode, int flags) {
    return syscall(NR_fchmodat2, dirfd, p, mode, flags);
}

static void print_mode(const char *what, const char *p, int flags) {
    struct stat st;
    if (fstatat(AT_FDCWD, p, &st, flags) != 0)
        result(what, -1);
    else
        printf("%s: %o\n", what, st.st_mode & 07777);
}

static void section_fchmodat2(void) {
    char file[PATH_MAX], link[PATH_MAX], missing[PATH_MAX];
    path(file, "f");
    path(link, "l");
    path(missing, "nothing");
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    close(fd);
    symlink(file, link);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);

    result("plain", sys_fchmodat2(AT_FDCWD, file, 0640, 0));
    print_mode("mode", file, 0);
    result("relative to dirfd", sys_fchmodat2(dfd, "f", 0604, 0));
    print_mode("mode", file, 0);
    result("through the symlink", sys_fchmodat2(AT_FDCWD, link, 0611, 0));
    print_mode("target mode", file, 0);
    result("symlink itself", sys_fchmodat2(AT_FDCWD, link, 0600, AT_SYMLINK_NOFOLLOW));
    print_mode("target mode after", file, 0);
    print_mode("link mode after", link, AT_SYMLINK_NOFOLLOW);
    result("NOFOLLOW on a file", sys_fchmodat2(AT_FDCWD, file, 0644, AT_SYMLINK_NOFOLLOW));
    print_mode("mode", file, 0);
    result("bad flag", sys_fchmodat2(AT_FDCWD, file, 0600, 0x1));
    result("AT_REMOVEDIR is bad", sys_fchmodat2(AT_FDCWD, file, 0600, AT_REMOVEDIR));
    result("missing", sys_fchmodat2(AT_FDCWD, missing, 0600, 0));
    result("empty path without flag", sys_fchmodat2(AT_FDCWD, "", 0600, 0));

    int ffd = open(file, O_RDONLY);
    result("AT_EMPTY_PATH on fd", sys_fchmodat2(ffd, "", 0620, AT_EMPTY_PATH));
    print_mode("mode", file, 0);
    close(ffd);
    int pfd = open(file, O_PATH);
    result("AT_EMPTY_PATH on O_PATH fd", sys_fchmodat2(pfd, "", 0602, AT_EMPTY_PATH));
    print_mode("mode", file, 0);
    close(pfd);
    int lfd = open(link, O_PATH | O_NOFOLLOW);
    result("AT_EMPTY_PATH on O_PATH symlink fd",
           sys_fchmodat2(lfd, "", 0600, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
    close(lfd);
    result("bad dirfd", sys_fchmodat2(12345, "f", 0600, 0));
    result("dirfd not a directory", sys_fchmodat2(dfd + 100 > 0 ? open(file, O_RDONLY) : -1, "x", 0600, 0));
    result("setuid bits kept", sys_fchmodat2(AT_FDCWD, file, 04755, 0));
    print_mode("mode", file, 0);

    /* An unprivileged caller may not change another user's file. */
    pid_t pid = fork_as_nobody();
    if (pid == 0) {
        result("other's file", sys_fchmodat2(AT_FDCWD, file, 0777, 0));
        result("other's symlink itself", sys_fchmodat2(AT_FDCWD, link, 0777, AT_SYMLINK_NOFOLLOW));
        fflush(stdout);
        _exit(0);
    }
    reap(pid, "child");
    print_mode("mode", file, 0);
    close(dfd);
    unlink(link);
    unlink(file);
}

static long sys_epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts,
                         const sigset_t *mask) {
    return syscall(NR_epoll_pwait2, epfd, ev, max, ts, mask, 8);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) {
    (void)sig;
    got_usr1 = 1;
}

static void section_epoll_pwait2(void) {
    int ep = epoll_create1(0);
    int p[2];
    pipe(p);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    struct epoll_event out[4];
    struct timespec zero = {0, 0}, short_ts = {0, 20 * 1000 * 1000};
    result("zero timeout, nothing ready", sys_epoll_pwait2(ep, out, 4, &zero, NULL));
    result("short timeout, nothing ready", sys_epoll_pwait2(ep, out, 4, &short_ts, NULL));
    printf("timeout unchanged: %ld %ld\n", (long)short_ts.tv_sec, short_ts.tv_nsec);
    write(p[1], "x", 1);
    memset(out, 0, sizeof out);
    result("ready, NULL timeout", sys_epoll_pwait2(ep, out, 4, NULL, NULL));
    printf("event: %x data %llu\n", out[0].events, (unsigned long long)out[0].data.u64);
    struct timespec bad_ns = {0, 1000000000}, neg = {-1, 0};
    result("tv_nsec too big", sys_epoll_pwait2(ep, out, 4, &bad_ns, NULL));
    result("negative tv_sec", sys_epoll_pwait2(ep, out, 4, &neg, NULL));
    result("bad timeout address", sys_epoll_pwait2(ep, out, 4, (void *)8, NULL));
    result("maxevents 0", sys_epoll_pwait2(ep, out, 0, &zero, NULL));
    result("not an epoll fd", sys_epoll_pwait2(p[0], out, 4, &zero, NULL));
    result("bad fd", sys_epoll_pwait2(12345, out, 4, &zero, NULL));
    result("bad sigsetsize",
           syscall(NR_epoll_pwait2, ep, out, 4, &zero, (sigset_t[]){{{0}}}, 4));

    /* The temporary mask: SIGUSR1 blocked outside, let through while waiting. */
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, wait_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    char c;
    read(p[0], &c, 1);
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec d = {0, 50 * 1000 * 1000};
        nanosleep(&d, NULL);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    sigemptyset(&wait_mask);
    result("interrupted by SIGUSR1", sys_epoll_pwait2(ep, out, 4, NULL, &wait_mask));
    printf("handler ran: %d\n", got_usr1);
    waitpid(pid, NULL, 0);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("mask restored: %d\n", sigismember(&now, SIGUSR1));
    close(p[0]);
    close(p[1]);
    close(ep);
}

/* One record of the old layout, as the program sees it. */
struct old_dirent {
    unsigned long d_ino;
    unsigned long d_off;
    unsigned short d_reclen;
    char d_name[];
};

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists `fd` with getdents reading at most `bufsize` bytes a call; prints the entries
 * sorted by name with their type, whether the inode number is stat's, and the calls made. */
static void list_old(int fd, size_t bufsize) {
    char buf[4096];
    char *lines[64];
    int n = 0, calls = 0, bad = 0;
    for (;;) {
        long got = syscall(SYS_getdents, fd, buf, bufsize);
        calls++;
        if (got <= 0) {
            if (got < 0)
                result("getdents", -1);
            break;
        }
        for (long at = 0; at < got;) {
            struct old_dirent *d = (struct old_dirent *)(buf + at);
            unsigned char type = buf[at + d->d_reclen - 1];
            if (d->d_reclen % 8 != 0 || d->d_reclen < strlen(d->d_name) + 20)
                bad++;
            struct stat st;
            int same = fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                       st.st_ino == d->d_ino;
            if (n < 64) {
                lines[n] = malloc(PATH_MAX + 64);
                snprintf(lines[n], PATH_MAX + 64, "%s type %u ino matches %d", d->d_name, type,
                         same);
                n++;
            }
            at += d->d_reclen;
        }
    }
    qsort(lines, n, sizeof lines[0], by_name);
    for (int i = 0; i < n; i++) {
        printf("  %s\n", lines[i]);
        free(lines[i]);
    }
    printf("entries %d, bad records %d, more than one call %d\n", n, bad, calls > 2);
}

static void section_getdents(void) {
    char p[PATH_MAX];
    path(p, "regular");
    close(open(p, O_CREAT | O_WRONLY, 0600));
    path(p, "a_directory");
    mkdir(p, 0700);
    path(p, "symlink");
    symlink("regular", p);
    path(p, "fifo");
    mkfifo(p, 0600);
    path(p, "a_name_long_enough_to_need_more_than_one_word_of_padding_xyz");
    close(open(p, O_CREAT | O_WRONLY, 0600));

    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    printf("whole directory at once:\n");
    list_old(fd, 4096);
    lseek(fd, 0, SEEK_SET);
    printf("a few entries a call:\n");
    list_old(fd, 100);
    lseek(fd, 0, SEEK_SET);
    char buf[64];
    result("buffer too small", syscall(SYS_getdents, fd, buf, 8));
    result("bad buffer", syscall(SYS_getdents, fd, (void *)8, 4096));
    close(fd);
    path(p, "regular");
    fd = open(p, O_RDONLY);
    result("not a directory", syscall(SYS_getdents, fd, buf, sizeof buf));
    close(fd);
    fd = open(dir, O_PATH);
    result("O_PATH fd", syscall(SYS_getdents, fd, buf, sizeof buf));
    close(fd);
    result("bad fd", syscall(SYS_getdents, 12345, buf, sizeof buf));

    path(p, "regular");
    unlink(p);
    path(p, "a_directory");
    rmdir(p);
    path(p, "symlink");
    unlink(p);
    path(p, "fifo");
    unlink(p);
    path(p, "a_name_long_enough_to_need_more_than_one_word_of_padding_xyz");
    unlink(p);
}

static void print_times(const char *what, const char *p) {
    struct stat st;
    if (stat(p, &st) != 0)
        result(what, -1);
    else
        printf("%s: atime %ld.%09ld mtime %ld.%09ld\n", what, (long)st.st_atim.tv_sec,
               st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static void section_utime(void) {
    char file[PATH_MAX], missing[PATH_MAX];
    path(file, "f");
    path(missing, "nothing");
    close(open(file, O_CREAT | O_WRONLY, 0644));
    struct utimbuf ub = {.actime = 1000000, .modtime = 2000000};
    result("set times", syscall(SYS_utime, file, &ub));
    print_times("times", file);
    result("NULL: now", syscall(SYS_utime, file, NULL));
    struct stat st;
    stat(file, &st);
    printf("mtime moved from the given one: %d\n", st.st_mtim.tv_sec != 2000000);
    result("missing", syscall(SYS_utime, missing, &ub));
    result("bad times", syscall(SYS_utime, file, (void *)8));
    result("bad path", syscall(SYS_utime, (void *)8, &ub));
    result("NULL path", syscall(SYS_utime, NULL, &ub));
    ub.actime = -1;
    result("negative seconds", syscall(SYS_utime, file, &ub));
    print_times("times", file);

    pid_t pid = fork_as_nobody();
    if (pid == 0) {
        result("other's file, given times", syscall(SYS_utime, file, &ub));
        result("other's file, now", syscall(SYS_utime, file, NULL));
        fflush(stdout);
        _exit(0);
    }
    reap(pid, "child");
    chmod(file, 0666);
    pid = fork_as_nobody();
    if (pid == 0) {
        result("writable file, now", syscall(SYS_utime, file, NULL));
        result("writable file, given times", syscall(SYS_utime, file, &ub));
        fflush(stdout);
        _exit(0);
    }
    reap(pid, "child");
    unlink(file);
}

#define NR_kcmp 312
enum { K_FILE, K_VM, K_FILES, K_FS, K_SIGHAND, K_IO, K_SYSVSEM, K_EPOLL_TFD };

static long kcmp(pid_t a, pid_t b, int type, unsigned long i1, unsigned long i2) {
    return syscall(NR_kcmp, a, b, type, i1, i2);
}

/* "equal" for 0, "unequal" for a consistent 1 or 2 (checked against the reversed call),
 * else the error. */
static void compare(const char *what, pid_t a, pid_t b, int type, unsigned long i1,
                    unsigned long i2) {
    long r = kcmp(a, b, type, i1, i2);
    if (r < 0) {
        result(what, -1);
        return;
    }
    long back = type == K_EPOLL_TFD ? (r ? 3 - r : 0) : kcmp(b, a, type, i2, i1);
    if (r == 0)
        printf("%s: equal%s\n", what, back == 0 ? "" : " (reversed differs)");
    else
        printf("%s: unequal%s\n", what, (r == 1 || r == 2) && back == 3 - r ? "" : " (inconsistent)");
    fflush(stdout);
}

static int thread_pipe[2];
static pid_t thread_tid;
static void *thread_main(void *arg) {
    (void)arg;
    thread_tid = gettid();
    char c;
    read(thread_pipe[0], &c, 1);
    return NULL;
}

static void section_kcmp(void) {
    pid_t me = getpid();
    char file[PATH_MAX];
    path(file, "f");
    int fd1 = open(file, O_CREAT | O_RDWR, 0600);
    int fd2 = dup(fd1);
    int fd3 = open(file, O_RDONLY);
    compare("same fd", me, me, K_FILE, fd1, fd1);
    compare("dup", me, me, K_FILE, fd1, fd2);
    compare("opened twice", me, me, K_FILE, fd1, fd3);
    compare("closed fd", me, me, K_FILE, fd1, 999);
    compare("self VM", me, me, K_VM, 0, 0);
    compare("self IO", me, me, K_IO, 0, 0);
    compare("self SYSVSEM", me, me, K_SYSVSEM, 0, 0);
    compare("bad type", me, me, 8, 0, 0);
    compare("negative type", me, me, -1, 0, 0);
    compare("no such pid", me, 999999, K_VM, 0, 0);

    /* A thread shares everything of these with its process. */
    pipe(thread_pipe);
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    while (__atomic_load_n(&thread_tid, __ATOMIC_SEQ_CST) == 0)
        usleep(1000);
    compare("thread VM", me, thread_tid, K_VM, 0, 0);
    compare("thread FILES", me, thread_tid, K_FILES, 0, 0);
    compare("thread FS", me, thread_tid, K_FS, 0, 0);
    compare("thread SIGHAND", me, thread_tid, K_SIGHAND, 0, 0);
    compare("thread's fd", me, thread_tid, K_FILE, fd1, fd1);
    write(thread_pipe[1], "x", 1);
    pthread_join(th, NULL);

    /* A fork child has copies: its own of each table, the same open files. */
    int ready[2], go[2];
    pipe(ready);
    pipe(go);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(fd2);
        write(ready[1], "r", 1);
        char c;
        read(go[0], &c, 1);
        _exit(0);
    }
    char c;
    read(ready[0], &c, 1);
    compare("child VM", me, child, K_VM, 0, 0);
    compare("child FILES", me, child, K_FILES, 0, 0);
    compare("child FS", me, child, K_FS, 0, 0);
    compare("child SIGHAND", me, child, K_SIGHAND, 0, 0);
    compare("child's inherited fd", me, child, K_FILE, fd1, fd1);
    compare("child's closed fd", me, child, K_FILE, fd2, fd2);
    compare("child's fd against another", me, child, K_FILE, fd1, fd3);

    /* epoll targets. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    result("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, ready[0], &ev));
    struct { unsigned efd, tfd, toff; } slot = {ep, ready[0], 0};
    compare("epoll target", me, me, K_EPOLL_TFD, ready[0], (unsigned long)&slot);
    compare("epoll target against another file", me, me, K_EPOLL_TFD, fd3, (unsigned long)&slot);
    compare("epoll target in the child's view", child, me, K_EPOLL_TFD, ready[0],
            (unsigned long)&slot);
    slot.toff = 1;
    compare("epoll second registration", me, me, K_EPOLL_TFD, ready[0], (unsigned long)&slot);
    slot.toff = 0;
    slot.tfd = ready[1];
    compare("epoll unregistered fd", me, me, K_EPOLL_TFD, ready[0], (unsigned long)&slot);
    slot.efd = fd3;
    compare("epoll fd not an epoll", me, me, K_EPOLL_TFD, fd1, (unsigned long)&slot);
    slot.efd = 999;
    compare("epoll fd closed", me, me, K_EPOLL_TFD, fd1, (unsigned long)&slot);
    compare("epoll slot unreadable", me, me, K_EPOLL_TFD, fd1, 8);

    /* An unprivileged process may not inspect root's. */
    pid_t probe = fork_as_nobody();
    if (probe == 0) {
        compare("unprivileged against root's", getpid(), child, K_VM, 0, 0);
        compare("unprivileged self", getpid(), getpid(), K_VM, 0, 0);
        fflush(stdout);
        _exit(0);
    }
    reap(probe, "probe");
    write(go[1], "g", 1);
    waitpid(child, NULL, 0);
    close(ep);
    close(fd1);
    close(fd2);
    close(fd3);
    unlink(file);
}

#define NR_futex_wake 454
#define NR_futex_wait 455
#define NR_futex_requeue 456
#define F2_U32 0x02
#define F2_PRIVATE 128

static long futex_wake2(uint32_t *f, unsigned long mask, int nr, unsigned flags) {
    return syscall(NR_futex_wake, f, mask, nr, flags);
}

static long futex_wait2(uint32_t *f, unsigned long val, unsigned long mask, unsigned flags,
                        const struct timespec *ts, int clock) {
    return syscall(NR_futex_wait, f, val, mask, flags, ts, clock);
}

static uint32_t futex_word;
static volatile long waiter_result = 99;
static unsigned long waiter_mask;

static void *futex_waiter(void *arg) {
    (void)arg;
    waiter_result = futex_wait2(&futex_word, 0, waiter_mask, F2_U32 | F2_PRIVATE, NULL, 0);
    if (waiter_result < 0)
        waiter_result = -errno;
    return NULL;
}

/* Wakes the waiter with `mask` until one is woken (it may not be asleep yet); the count of
 * the waking call, or 0 when `tries` calls woke nobody. */
static long wake_until(unsigned long mask, int tries) {
    for (int i = 0; i < tries; i++) {
        long n = futex_wake2(&futex_word, mask, 1, F2_U32 | F2_PRIVATE);
        if (n != 0)
            return n;
        usleep(2000);
    }
    return 0;
}

static void section_futex2(void) {
    static uint32_t word[2];
    struct timespec now, later;
    result("wait, value differs", futex_wait2(&word[0], 1, 0xffffffffUL, F2_U32, NULL, 0));
    clock_gettime(CLOCK_MONOTONIC, &now);
    later = now;
    later.tv_nsec += 20 * 1000 * 1000;
    if (later.tv_nsec >= 1000000000) {
        later.tv_sec++;
        later.tv_nsec -= 1000000000;
    }
    result("wait until a monotonic time", futex_wait2(&word[0], 0, 0xffffffffUL, F2_U32, &later,
                                                      CLOCK_MONOTONIC));
    clock_gettime(CLOCK_REALTIME, &now);
    result("wait until a past realtime", futex_wait2(&word[0], 0, 0xffffffffUL, F2_U32 | F2_PRIVATE,
                                                     &now, CLOCK_REALTIME));
    result("wait, CLOCK_BOOTTIME", futex_wait2(&word[0], 0, 0xffffffffUL, F2_U32, &now,
                                               CLOCK_BOOTTIME));
    result("wait, bad clock without timeout", futex_wait2(&word[0], 1, 0xffffffffUL, F2_U32, NULL, 99));
    struct timespec bad = {0, 1000000000};
    result("wait, bad timespec", futex_wait2(&word[0], 0, 0xffffffffUL, F2_U32, &bad, CLOCK_MONOTONIC));
    result("wait, 8-bit size", futex_wait2(&word[0], 1, 0xffffffffUL, 0, NULL, 0));
    result("wait, 64-bit size", futex_wait2(&word[0], 1, 0xffffffffUL, 3, NULL, 0));
    result("wait, unknown flag", futex_wait2(&word[0], 1, 0xffffffffUL, F2_U32 | 0x10, NULL, 0));
    result("wait, value past 32 bits", futex_wait2(&word[0], 1UL << 32, 0xffffffffUL, F2_U32, NULL, 0));
    result("wait, mask past 32 bits", futex_wait2(&word[0], 1, 1UL << 32, F2_U32, NULL, 0));
    result("wait, mask 0", futex_wait2(&word[0], 1, 0, F2_U32, NULL, 0));
    result("wait, unaligned", futex_wait2((uint32_t *)((char *)word + 1), 1, 0xffffffffUL, F2_U32,
                                          NULL, 0));
    result("wait, NULL", futex_wait2(NULL, 0, 0xffffffffUL, F2_U32, NULL, 0));
    result("wake, nobody waits", futex_wake2(&word[0], 0xffffffffUL, 1, F2_U32));
    result("wake, nr 0", futex_wake2(&word[0], 0xffffffffUL, 0, F2_U32));
    result("wake, mask 0", futex_wake2(&word[0], 0, 1, F2_U32));
    result("wake, bad size", futex_wake2(&word[0], 0xffffffffUL, 1, 0));
    result("wake, unaligned", futex_wake2((uint32_t *)((char *)word + 2), 0xffffffffUL, 1, F2_U32));

    pthread_t th;
    waiter_mask = 1;
    pthread_create(&th, NULL, futex_waiter, NULL);
    usleep(20000);
    result("wake with a disjoint mask", futex_wake2(&futex_word, 2, 1, F2_U32 | F2_PRIVATE));
    result("wake with a matching mask", wake_until(3, 2500));
    pthread_join(th, NULL);
    printf("waiter returned %ld\n", waiter_result);

    /* futex_wake wakes a FUTEX_WAIT_BITSET waiter of the same futex, and the reverse. */
    waiter_mask = 0xffffffffUL;
    pthread_create(&th, NULL, futex_waiter, NULL);
    long n = 0;
    for (int i = 0; i < 2500 && n == 0; i++) {
        n = syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        if (n == 0)
            usleep(2000);
    }
    result("FUTEX_WAKE wakes a futex_wait waiter", n);
    pthread_join(th, NULL);
    printf("waiter returned %ld\n", waiter_result);

    /* FUTEX_WAKE with a count of 0 still wakes one waiter; futex_wake with 0 wakes none. */
    pthread_create(&th, NULL, futex_waiter, NULL);
    n = 0;
    for (int i = 0; i < 2500 && n == 0; i++) {
        n = syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 0, NULL, NULL, 0);
        if (n == 0)
            usleep(2000);
    }
    result("FUTEX_WAKE with count 0", n);
    if (n == 0) /* do not leave the waiter behind */
        futex_wake2(&futex_word, 0xffffffffUL, 1, F2_U32 | F2_PRIVATE);
    pthread_join(th, NULL);
    printf("waiter returned %ld\n", waiter_result);

    /* futex_requeue: the waiter moves from futex_word to word[1], where a wake finds it. */
    struct waitv {
        uint64_t val, uaddr;
        uint32_t flags, reserved;
    } v[2] = {{0, (uintptr_t)&futex_word, F2_U32 | F2_PRIVATE, 0},
              {0, (uintptr_t)&word[1], F2_U32 | F2_PRIVATE, 0}};
    result("requeue flags", syscall(NR_futex_requeue, v, 1, 1, 1));
    result("requeue NULL", syscall(NR_futex_requeue, NULL, 0, 1, 1));
    result("requeue unreadable", syscall(NR_futex_requeue, (void *)8, 0, 1, 1));
    result("requeue negative nr_wake", syscall(NR_futex_requeue, v, 0, -1, 1));
    result("requeue negative nr_requeue", syscall(NR_futex_requeue, v, 0, 1, -1));
    v[1].reserved = 1;
    result("requeue reserved", syscall(NR_futex_requeue, v, 0, 1, 1));
    v[1].reserved = 0;
    v[1].flags = 3;
    result("requeue 64-bit target", syscall(NR_futex_requeue, v, 0, 1, 1));
    v[1].flags = F2_U32 | F2_PRIVATE;
    v[0].val = 7;
    result("requeue value differs", syscall(NR_futex_requeue, v, 0, 1, 1));
    v[0].val = 1UL << 32;
    result("requeue value past 32 bits", syscall(NR_futex_requeue, v, 0, 1, 1));
    v[0].val = 0;
    v[1].uaddr += 1;
    result("requeue unaligned target", syscall(NR_futex_requeue, v, 0, 1, 1));
    v[1].uaddr -= 1;
    result("requeue, nobody waits", syscall(NR_futex_requeue, v, 0, 1, 1));
    pthread_create(&th, NULL, futex_waiter, NULL);
    n = 0;
    for (int i = 0; i < 2500 && n == 0; i++) {
        n = syscall(NR_futex_requeue, v, 0, 0, 1);
        if (n == 0)
            usleep(2000);
    }
    result("requeue moves the waiter", n);
    result("wake the first futex", futex_wake2(&futex_word, 0xffffffffUL, 1, F2_U32 | F2_PRIVATE));
    n = futex_wake2(&word[1], 0xffffffffUL, 1, F2_U32 | F2_PRIVATE);
    result("wake the second futex", n);
    if (n == 0)
        futex_wake2(&futex_word, 0xffffffffUL, 1, F2_U32 | F2_PRIVATE);
    pthread_join(th, NULL);
    printf("waiter returned %ld\n", waiter_result);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: new_calls fchmodat2|epoll_pwait2|getdents|utime|kcmp|futex2\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "/tmp/new_calls.%d", getpid());
    if (mkdir(dir, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    if (!strcmp(argv[1], "fchmodat2"))
        section_fchmodat2();
    else if (!strcmp(argv[1], "epoll_pwait2"))
        section_epoll_pwait2();
    else if (!strcmp(argv[1], "getdents"))
        section_getdents();
    else if (!strcmp(argv[1], "utime"))
        section_utime();
    else if (!strcmp(argv[1], "kcmp"))
        section_kcmp();
    else if (!strcmp(argv[1], "futex2"))
        section_futex2();
    else
        return 2;
    rmdir(dir);
    printf("done\n");
    return 0;
}
