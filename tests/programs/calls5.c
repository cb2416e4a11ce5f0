/*
 * calls5: futex_waitv, FUTEX_WAKE on a PI futex, process_madvise, ustat and a traced
 * subthread's wait status, compared line by line with native Linux.
 *   waitv            futex_waitv(2): argument checks, EAGAIN, timeout, a FUTEX_WAKE from a
 *                    thread (private) and from another process (shared), a signal
 *   pi_wake          FUTEX_WAKE and FUTEX_WAKE_OP on a word a FUTEX_LOCK_PI waiter sleeps on
 *   process_madvise  process_madvise(2) on itself and on a child, its permission checks
 *   ustat            ustat(2) of the root filesystem's device and of an unknown one
 *   ptrace_thread    waitpid(tid, __WALL) of a traced non-leader thread reports its tid
 *   cachestat        cachestat(2) of tmpfs files (memfd, /dev/shm) and of files without pages
 *   vhangup          vhangup(2) of a session leader's pty: SIGHUP, the terminal given up
 * (run as root)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "outcome.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define FUTEX2_SIZE_U8 0x00
#define FUTEX2_SIZE_U32 0x02
#define FUTEX2_PRIVATE 128

struct waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

static long waitv(struct waitv *w, unsigned n, unsigned flags, struct timespec *ts, int clk) {
    return syscall(SYS_futex_waitv, w, n, flags, ts, clk);
}

static long futex(uint32_t *uaddr, int op, uint32_t val, void *timeout, uint32_t *uaddr2,
                  uint32_t val3) {
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

/* An absolute CLOCK_MONOTONIC time `ms` from now. */
static struct timespec in_ms(long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (ms % 1000) * 1000000;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    return ts;
}

static void fill(struct waitv *w, uint32_t *words, unsigned n, unsigned flags) {
    for (unsigned i = 0; i < n; i++)
        w[i] = (struct waitv){.val = words[i], .uaddr = (uintptr_t)&words[i], .flags = flags};
}

static uint32_t words[128];
static struct waitv vec[129];
static atomic_long waitv_ret;
static atomic_int waitv_errno;

static void *waitv_thread(void *arg) {
    unsigned n = (unsigned)(uintptr_t)arg;
    long r = waitv(vec, n, 0, NULL, 0);
    atomic_store(&waitv_errno, errno);
    atomic_store(&waitv_ret, r);
    return NULL;
}

/* Wakes futex `word` (private or not) until one waiter is woken; gives up after 10 s. */
static int wake_until_woken(uint32_t *word, int op) {
    for (int i = 0; i < 10000; i++) {
        long r = futex(word, op, 1, NULL, NULL, 0);
        if (r != 0)
            return (int)r;
        usleep(1000);
    }
    return 0;
}

static void on_alarm(int sig) { (void)sig; }

static void section_waitv(void) {
    struct timespec ts = in_ms(10);
    fill(vec, words, 4, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    result("flags 1", waitv(vec, 4, 1, NULL, 0));
    result("no futexes", waitv(vec, 0, 0, NULL, 0));
    fill(vec, words, 128, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    vec[128] = vec[0];
    result("129 futexes", waitv(vec, 129, 0, NULL, 0));
    result("NULL vector", waitv(NULL, 1, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    vec[1].reserved = 1;
    result("reserved field set", waitv(vec, 2, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U8 | FUTEX2_PRIVATE);
    result("8-bit size", waitv(vec, 2, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U32 | 0x10);
    result("unknown futex flag", waitv(vec, 2, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U32);
    vec[1].val = 1ull << 32;
    result("value wider than 32 bits", waitv(vec, 2, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U32);
    vec[1].uaddr += 1;
    result("misaligned futex", waitv(vec, 2, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U32);
    result("bad clock", waitv(vec, 2, 0, &ts, CLOCK_BOOTTIME));
    struct timespec bad = {.tv_sec = 0, .tv_nsec = 1000000000};
    result("bad timespec", waitv(vec, 2, 0, &bad, CLOCK_MONOTONIC));
    result("timespec at a bad address", waitv(vec, 2, 0, (void *)8, CLOCK_MONOTONIC));
    result("vector at a bad address", waitv((void *)8, 2, 0, NULL, 0));
    fill(vec, words, 2, FUTEX2_SIZE_U32);
    vec[1].uaddr = 8;
    result("futex at a bad address", waitv(vec, 2, 0, &ts, CLOCK_MONOTONIC));

    fill(vec, words, 3, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    vec[2].val = 7;
    result("a value differs", waitv(vec, 3, 0, NULL, 0));

    fill(vec, words, 3, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    ts = in_ms(50);
    result("monotonic timeout", waitv(vec, 3, 0, &ts, CLOCK_MONOTONIC));
    clock_gettime(CLOCK_REALTIME, &ts);
    result("realtime timeout already past", waitv(vec, 3, 0, &ts, CLOCK_REALTIME));

    /* A thread waits on three private futexes; FUTEX_WAKE of the third wakes it. */
    fill(vec, words, 3, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    pthread_t th;
    pthread_create(&th, NULL, waitv_thread, (void *)3);
    result("FUTEX_WAKE_PRIVATE woke", wake_until_woken(&words[2], FUTEX_WAKE_PRIVATE));
    pthread_join(th, NULL);
    result("waitv returned index", atomic_load(&waitv_ret));

    /* Shared futexes in a shared mapping: a child process's FUTEX_WAKE wakes index 1. */
    uint32_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    fill(vec, shared, 2, FUTEX2_SIZE_U32);
    pid_t child = fork();
    if (child == 0)
        _exit(wake_until_woken(&shared[1], FUTEX_WAKE) == 1 ? 0 : 1);
    result("shared futex, woken index", waitv(vec, 2, 0, NULL, 0));
    int status;
    waitpid(child, &status, 0);
    result("waker's status", WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));

    /* A signal whose handler has no SA_RESTART interrupts the wait. */
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {.tv_usec = 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    fill(vec, words, 2, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE);
    result("interrupted by a signal", waitv(vec, 2, 0, NULL, 0));
}

static uint32_t pi_word;
static atomic_long pi_locked;

static void *pi_locker(void *arg) {
    (void)arg;
    long r = futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    atomic_store(&pi_locked, r == 0 && (pi_word & FUTEX_TID_MASK) == (uint32_t)gettid());
    if (r == 0)
        futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static void section_pi_wake(void) {
    static uint32_t other;
    result("lock", futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0));
    result("FUTEX_WAKE without waiters", futex(&pi_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    pthread_t th;
    pthread_create(&th, NULL, pi_locker, NULL);
    while (!(atomic_load((_Atomic uint32_t *)&pi_word) & FUTEX_WAITERS))
        usleep(1000);
    /* The waiters bit is set just before the waiter queues. */
    usleep(100000);
    result("FUTEX_WAKE with a PI waiter", futex(&pi_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    result("FUTEX_WAKE_OP with a PI waiter",
           futex(&pi_word, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &other,
                 FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0)));
    result("unlock", futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0));
    pthread_join(th, NULL);
    result("the waiter took the lock", atomic_load(&pi_locked));
}

static long pmadvise(int pidfd, struct iovec *iov, size_t n, int advice, unsigned flags) {
    return syscall(SYS_process_madvise, pidfd, iov, n, advice, flags);
}

/* Drops `cap` from the caller's effective and permitted sets. */
static void drop_cap(int cap) {
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    syscall(SYS_capget, &h, d);
    d[cap / 32].effective &= ~(1u << (cap % 32));
    d[cap / 32].permitted &= ~(1u << (cap % 32));
    if (syscall(SYS_capset, &h, d) != 0)
        perror("capset");
}

/* Runs `f(pidfd)` in a forked process and prints its outcome under `what`. */
static void in_child(const char *what, int pidfd, struct iovec *iov, int advice,
                     void (*prepare)(void)) {
    int pipefd[2];
    pipe(pipefd);
    pid_t p = fork();
    if (p == 0) {
        prepare();
        long r = pmadvise(pidfd, iov, 1, advice, 0);
        long out[2] = {r, errno};
        write(pipefd[1], out, sizeof out);
        _exit(0);
    }
    long out[2] = {0, 0};
    read(pipefd[0], out, sizeof out);
    waitpid(p, NULL, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    errno = (int)out[1];
    result(what, out[0]);
}

static void no_sys_nice(void) { drop_cap(CAP_SYS_NICE); }
static void other_user(void) {
    if (setresuid(1000, 1000, 1000) != 0)
        perror("setresuid");
}

static void section_process_madvise(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + 4 * page, page);
    memset(m, 'x', 4 * page);
    int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
    struct iovec iov[2] = {{m, 4 * page}, {m + 5 * page, 2 * page}};
    result("flags 1", pmadvise(self, iov, 1, MADV_COLD, 1));
    result("1025 ranges", pmadvise(self, iov, 1025, MADV_COLD, 0));
    result("ranges at a bad address", pmadvise(self, (void *)8, 1, MADV_COLD, 0));
    int file = open("/proc/self/status", O_RDONLY);
    result("not a pidfd", pmadvise(file, iov, 1, MADV_COLD, 0));
    close(file);
    result("self, MADV_COLD, two ranges (bytes)", pmadvise(self, iov, 2, MADV_COLD, 0));
    result("self, MADV_PAGEOUT", pmadvise(self, iov, 1, MADV_PAGEOUT, 0));
    result("self, MADV_WILLNEED", pmadvise(self, iov, 1, MADV_WILLNEED, 0));
    result("contents kept", m[0] == 'x' && m[4 * page - 1] == 'x');
    struct iovec holed[2] = {{m, 2 * page}, {m + 3 * page, 2 * page}};
    result("second range has a hole (bytes)", pmadvise(self, holed, 2, MADV_COLD, 0));
    result("first range has a hole", pmadvise(self, holed + 1, 1, MADV_COLD, 0));
    struct iovec unaligned = {m + 1, page};
    result("unaligned range", pmadvise(self, &unaligned, 1, MADV_COLD, 0));
    struct iovec empty = {m + 1, 0};
    result("no ranges", pmadvise(self, &empty, 0, MADV_COLD, 0));
    result("self, advice 1000", pmadvise(self, iov, 1, 1000, 0));
    result("self, MADV_DONTNEED", pmadvise(self, iov, 1, MADV_DONTNEED, 0));
    result("contents dropped", m[0] == 0 && m[4 * page - 1] == 0);

    int gate[2];
    pipe(gate);
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(gate[1]);
        read(gate[0], &c, 1);
        _exit(0);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    result("child, MADV_WILLNEED", pmadvise(pidfd, iov, 1, MADV_WILLNEED, 0));
    result("child, MADV_COLD, two ranges", pmadvise(pidfd, iov, 2, MADV_COLD, 0));
    result("child, MADV_DONTNEED", pmadvise(pidfd, iov, 1, MADV_DONTNEED, 0));
    result("child, MADV_NORMAL", pmadvise(pidfd, iov, 1, MADV_NORMAL, 0));
    in_child("child, without CAP_SYS_NICE", pidfd, iov, MADV_COLD, no_sys_nice);
    in_child("child, from another user", pidfd, iov, MADV_COLD, other_user);
    close(gate[1]);
    siginfo_t si;
    waitid(P_PID, child, &si, WEXITED | WNOWAIT);
    result("zombie child", pmadvise(pidfd, iov, 1, MADV_COLD, 0));
    waitpid(child, NULL, 0);
    result("reaped child", pmadvise(pidfd, iov, 1, MADV_COLD, 0));
}

struct ustat_buf {
    int f_tfree;
    unsigned long f_tinode;
    char f_fname[6];
    char f_fpack[6];
};

static void section_ustat(void) {
    struct stat st;
    struct statfs sf;
    struct ustat_buf u;
    memset(&u, 0xff, sizeof u);
    stat("/", &st);
    statfs("/", &sf);
    result("ustat of /'s device", syscall(SYS_ustat, (unsigned)st.st_dev, &u));
    result("f_tinode at most f_files", u.f_tinode <= sf.f_files);
    result("names empty", u.f_fname[0] == 0 && u.f_fpack[5] == 0);
    result("unknown device", syscall(SYS_ustat, (unsigned)makedev(0xfff, 0xff), &u));
    result("bad buffer", syscall(SYS_ustat, (unsigned)st.st_dev, (void *)8));
}

struct cachestat_range {
    uint64_t off, len;
};
struct cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* cachestat of `fd`'s [off, off + len) as "what: cache N dirty N writeback N evicted N
   recently N", or the error. */
static void cstat(const char *what, int fd, uint64_t off, uint64_t len) {
    struct cachestat_range r = {off, len};
    struct cachestat c;
    memset(&c, 0xff, sizeof c);
    if (syscall(451, fd, &r, &c, 0) != 0) {
        result(what, -1);
        return;
    }
    printf("%s: cache %llu dirty %llu writeback %llu evicted %llu recently %llu\n", what,
           (unsigned long long)c.nr_cache, (unsigned long long)c.nr_dirty,
           (unsigned long long)c.nr_writeback, (unsigned long long)c.nr_evicted,
           (unsigned long long)c.nr_recently_evicted);
    fflush(stdout);
}

static void section_cachestat(void) {
    long page = sysconf(_SC_PAGESIZE);
    char buf[3 * 4096];
    memset(buf, 1, sizeof buf);
    int m = memfd_create("cachestat", 0);
    cstat("empty memfd", m, 0, 0);
    ftruncate(m, 8 * page);
    cstat("memfd sized, never written", m, 0, 0);
    pwrite(m, buf, sizeof buf, 2 * page);
    cstat("three pages written", m, 0, 0);
    cstat("page 3 only", m, 3 * page, page);
    cstat("from the last byte of page 1 on", m, 2 * page - 1, 2);
    cstat("past the end", m, 100 * page, page);
    /* (No fault through a mapping: the sentry fills the pages around a faulting one.) */
    ftruncate(m, 3 * page);
    cstat("truncated to three pages", m, 0, 0);
    int pipefd[2];
    pipe(pipefd);
    cstat("pipe", pipefd[0], 0, 0);
    cstat("bad fd", 999, 0, 0);
    struct cachestat c;
    result("range at a bad address", syscall(451, m, (void *)8, &c, 0));
    struct cachestat_range r = {0, 0};
    result("result at a bad address", syscall(451, m, &r, (void *)8, 0));
    result("flags 1", syscall(451, m, &r, &c, 1));
    int opath = open("/proc/self/exe", O_PATH);
    cstat("O_PATH", opath, 0, 0);
    char shm[64];
    snprintf(shm, sizeof shm, "/dev/shm/calls5.%d", getpid());
    int f = open(shm, O_RDWR | O_CREAT | O_EXCL, 0644);
    pwrite(f, buf, page, 0);
    int ro = open(shm, O_RDONLY);
    cstat("read-only open by the owner", ro, 0, 0);
    pid_t child = fork();
    if (child == 0) {
        if (setresuid(1000, 1000, 1000) != 0)
            perror("setresuid");
        cstat("read-only open by another user, no write permission", ro, 0, 0);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    unlink(shm);
}

static volatile sig_atomic_t hups;
static void on_hup(int sig) {
    (void)sig;
    hups++;
}

/* A new session leader with a pty as its controlling terminal hangs it up. */
static void section_vhangup(void) {
    /* Every vhangup runs in a new session, so that a run from a terminal never hangs it up. */
    pid_t child = fork();
    if (child == 0) {
        setsid();
        result("vhangup without a controlling terminal", syscall(SYS_vhangup));
        drop_cap(CAP_SYS_TTY_CONFIG);
        result("vhangup without CAP_SYS_TTY_CONFIG", syscall(SYS_vhangup));
        _exit(0);
    }
    waitpid(child, NULL, 0);
    child = fork();
    if (child == 0) {
        setsid();
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        grantpt(master);
        unlockpt(master);
        int slave = open(ptsname(master), O_RDWR);
        result("TIOCSCTTY", ioctl(slave, TIOCSCTTY, 0));
        struct sigaction sa = {.sa_handler = on_hup};
        sigaction(SIGHUP, &sa, NULL);
        result("vhangup", syscall(SYS_vhangup));
        result("SIGHUPs taken", hups);
        result("open /dev/tty after", open("/dev/tty", O_RDWR) >= 0);
        result("TIOCSCTTY again", ioctl(open(ptsname(master), O_RDWR), TIOCSCTTY, 0));
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    result("session leader's status", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static atomic_int sub_tid;

static void *traced_thread(void *arg) {
    (void)arg;
    atomic_store(&sub_tid, (int)gettid());
    for (;;)
        pause();
    return NULL;
}

/* A tracer attaches to a non-leader thread of another process and waits for it by tid. */
static void section_ptrace_thread(void) {
    int tidpipe[2], leaderpipe[2];
    pipe(tidpipe);
    pipe(leaderpipe);
    pid_t tracee = fork();
    if (tracee == 0) {
        pthread_t th;
        pthread_create(&th, NULL, traced_thread, NULL);
        while (!atomic_load(&sub_tid))
            usleep(1000);
        int tid = atomic_load(&sub_tid);
        write(tidpipe[1], &tid, sizeof tid);
        /* The leader thread exits alone once told to (the process lives on). */
        char c;
        read(leaderpipe[0], &c, 1);
        syscall(SYS_exit, 0);
    }
    int tid = 0;
    read(tidpipe[0], &tid, sizeof tid);
    result("PTRACE_ATTACH to the thread", ptrace(PTRACE_ATTACH, tid, 0, 0));
    int status = 0;
    pid_t got = waitpid(tid, &status, __WALL);
    result("waitpid(tid) returns the tid", got == tid);
    result("stopped by SIGSTOP", WIFSTOPPED(status) ? WSTOPSIG(status) : -1);
    /* Once the leader thread has exited, the thread still reports under its own ID. */
    write(leaderpipe[1], "x", 1);
    char state[64];
    snprintf(state, sizeof state, "/proc/%d/stat", tracee);
    for (int i = 0; i < 10000; i++) {
        char buf[512] = {0};
        int fd = open(state, O_RDONLY);
        read(fd, buf, sizeof buf - 1);
        close(fd);
        char *paren = strrchr(buf, ')');
        if (paren && paren[2] == 'Z')
            break;
        usleep(1000);
    }
    result("PTRACE_CONT", ptrace(PTRACE_CONT, tid, 0, 0));
    syscall(SYS_tgkill, tracee, tid, SIGUSR1);
    got = waitpid(tid, &status, __WALL);
    result("after the leader's exit, waitpid(tid) returns the tid", got == tid);
    result("stopped by SIGUSR1", WIFSTOPPED(status) ? WSTOPSIG(status) : -1);
    result("PTRACE_DETACH", ptrace(PTRACE_DETACH, tid, 0, 0));
    kill(tracee, SIGKILL);
    waitpid(tracee, &status, 0);
    result("tracee killed by", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: calls5 waitv|pi_wake|process_madvise|ustat|ptrace_thread|cachestat|vhangup\n");
        return 2;
    }
    if (!strcmp(argv[1], "waitv"))
        section_waitv();
    else if (!strcmp(argv[1], "pi_wake"))
        section_pi_wake();
    else if (!strcmp(argv[1], "process_madvise"))
        section_process_madvise();
    else if (!strcmp(argv[1], "ustat"))
        section_ustat();
    else if (!strcmp(argv[1], "ptrace_thread"))
        section_ptrace_thread();
    else if (!strcmp(argv[1], "cachestat"))
        section_cachestat();
    else if (!strcmp(argv[1], "vhangup"))
        section_vhangup();
    else
        return 2;
    printf("done\n");
    return 0;
}
