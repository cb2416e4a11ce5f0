/* POSIX message queues, pidfds and memory locks (issue 12), printed so the output compares
 * between native Linux and the sandbox. Queue names carry the pid so a native run never
 * meets another's queue, and every queue is unlinked at the end.
 * Usage: posix_ipc mq|pidfd|mlock|aio */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/sched.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(what, expr)                                                        \
    do {                                                                         \
        long r_ = (long)(expr);                                                  \
        if (r_ == -1)                                                            \
            printf("%s: -1 %s\n", what, strerrorname_np(errno));                 \
        else                                                                     \
            printf("%s: ok\n", what);                                            \
    } while (0)

static volatile sig_atomic_t got_signal;
static volatile int got_code;
static volatile int got_value;

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    got_signal = sig;
    got_code = info->si_code;
    got_value = info->si_value.sival_int;
}

static void mq(void) {
    char name[64];
    snprintf(name, sizeof name, "/runsc-rs-mq-%d", getpid());
    mq_unlink(name);

    CHECK("open missing", mq_open(name, O_RDWR));
    CHECK("open with a slash inside", mq_open("/a/b", O_RDWR));
    struct mq_attr bad = {.mq_maxmsg = 0, .mq_msgsize = 16};
    CHECK("open maxmsg 0", mq_open(name, O_RDWR | O_CREAT, 0600, &bad));
    bad.mq_maxmsg = 70000;
    CHECK("open maxmsg above the hard limit", mq_open(name, O_RDWR | O_CREAT, 0600, &bad));

    struct mq_attr attr = {.mq_maxmsg = 3, .mq_msgsize = 32};
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
    printf("created: %s\n", q == (mqd_t)-1 ? strerrorname_np(errno) : "ok");
    CHECK("create again exclusive", mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr));
    printf("cloexec: %d\n", (fcntl(q, F_GETFD) & FD_CLOEXEC) != 0);

    struct mq_attr got;
    mq_getattr(q, &got);
    printf("attr: flags %ld maxmsg %ld msgsize %ld curmsgs %ld\n", got.mq_flags,
           got.mq_maxmsg, got.mq_msgsize, got.mq_curmsgs);

    struct pollfd p = {.fd = q, .events = POLLIN | POLLOUT};
    poll(&p, 1, 0);
    printf("poll empty: in %d out %d\n", !!(p.revents & POLLIN), !!(p.revents & POLLOUT));

    char status[128] = {0};
    ssize_t n = read(q, status, sizeof status - 1);
    printf("status (%zd): %s", n, status);

    CHECK("send prio 1", mq_send(q, "one", 3, 1));
    CHECK("send prio 5", mq_send(q, "five", 4, 5));
    CHECK("send prio 1 again", mq_send(q, "uno", 3, 1));
    CHECK("send too long", mq_send(q, "0123456789012345678901234567890123", 33, 0));
    CHECK("send bad prio", mq_send(q, "x", 1, 40000));
    memset(status, 0, sizeof status);
    pread(q, status, sizeof status - 1, 0);
    printf("status: %s", status);

    p.revents = 0;
    poll(&p, 1, 0);
    printf("poll full: in %d out %d\n", !!(p.revents & POLLIN), !!(p.revents & POLLOUT));
    struct timespec past = {0, 0};
    CHECK("timed send on full queue", mq_timedsend(q, "x", 1, 0, &past));
    struct timespec badts = {0, 2000000000L};
    CHECK("timed send bad timeout", mq_timedsend(q, "x", 1, 0, &badts));

    char buf[64];
    CHECK("receive small buffer", mq_receive(q, buf, 8, NULL));
    for (int i = 0; i < 3; i++) {
        unsigned prio = 99;
        n = mq_receive(q, buf, sizeof buf, &prio);
        printf("received %zd prio %u '%.*s'\n", n, prio, n > 0 ? (int)n : 0, buf);
    }
    CHECK("timed receive on empty queue", mq_timedreceive(q, buf, sizeof buf, NULL, &past));

    struct mq_attr nb = {.mq_flags = O_NONBLOCK};
    mq_setattr(q, &nb, NULL);
    CHECK("non-blocking receive", mq_receive(q, buf, sizeof buf, NULL));
    mq_getattr(q, &got);
    printf("flags after setattr: %ld\n", got.mq_flags);

    /* A notification comes when a message reaches the empty queue. */
    struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &sa, NULL);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    ev.sigev_value.sival_int = 77;
    CHECK("notify", mq_notify(q, &ev));
    CHECK("notify again", mq_notify(q, &ev));
    pid_t child = fork();
    if (child == 0) {
        mqd_t c = mq_open(name, O_WRONLY);
        mq_send(c, "hi", 2, 0);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    for (int i = 0; i < 200 && !got_signal; i++)
        usleep(5000);
    printf("notified: sig %d code %d value %d\n", got_signal, got_code, got_value);
    CHECK("notify after it fired", mq_notify(q, &ev));
    CHECK("unregister", mq_notify(q, NULL));

    /* Read-only opens cannot send; the name goes, the queue lives while open. */
    mqd_t r = mq_open(name, O_RDONLY);
    CHECK("send on read-only", mq_send(r, "x", 1, 0));
    CHECK("receive on read-only", mq_receive(r, buf, sizeof buf, NULL));
    CHECK("unlink", mq_unlink(name));
    CHECK("unlink again", mq_unlink(name));
    CHECK("open after unlink", mq_open(name, O_RDWR));
    CHECK("send after unlink", mq_send(q, "x", 1, 0));
    CHECK("mq_send on a pipe", ({
              int fds[2];
              pipe(fds);
              mq_send(fds[1], "x", 1, 0);
          }));
    mq_close(r);
    mq_close(q);

    /* Opening checks the queue's mode against the access asked for (owner and others alike
     * here, so the answer does not depend on who runs it natively) unless the caller has
     * CAP_DAC_OVERRIDE: a child that gave up root sees EACCES. */
    char none[80], ro[80], wo[80];
    snprintf(none, sizeof none, "%s-none", name);
    snprintf(ro, sizeof ro, "%s-ro", name);
    snprintf(wo, sizeof wo, "%s-wo", name);
    mode_t old_umask = umask(0);
    mq_close(mq_open(none, O_RDWR | O_CREAT | O_EXCL, 0000, &attr));
    mq_close(mq_open(ro, O_RDWR | O_CREAT | O_EXCL, 0444, &attr));
    mq_close(mq_open(wo, O_RDWR | O_CREAT | O_EXCL, 0222, &attr));
    umask(old_umask);
    fflush(stdout);
    child = fork();
    if (child == 0) {
        if (setresuid(65534, 65534, 65534) != 0 && getuid() == 0)
            _exit(99);
        CHECK("unprivileged open mode 0 read-only", mq_open(none, O_RDONLY));
        CHECK("unprivileged open mode 0 write-only", mq_open(none, O_WRONLY));
        CHECK("unprivileged open mode 0 read-write", mq_open(none, O_RDWR));
        CHECK("unprivileged open 0444 write-only", mq_open(ro, O_WRONLY));
        CHECK("unprivileged open 0444 read-only", mq_open(ro, O_RDONLY));
        CHECK("unprivileged open 0222 read-only", mq_open(wo, O_RDONLY));
        CHECK("unprivileged open 0222 write-only", mq_open(wo, O_WRONLY));
        CHECK("unprivileged open existing with O_CREAT", mq_open(none, O_RDONLY | O_CREAT, 0600, &attr));
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    waitpid(child, &st, 0);
    printf("unprivileged child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    mq_unlink(none);
    mq_unlink(ro);
    mq_unlink(wo);
}

static int pidfd_open(pid_t pid, unsigned flags) {
    return syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags) {
    return syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}

static void pidfd(void) {
    CHECK("pidfd_open -1", pidfd_open(-1, 0));
    CHECK("pidfd_open bad flags", pidfd_open(getpid(), 1));
    int self = pidfd_open(getpid(), 0);
    printf("self cloexec: %d\n", (fcntl(self, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK("signal 0 to self", pidfd_send_signal(self, 0, NULL, 0));
    CHECK("thread-group scope", pidfd_send_signal(self, 0, NULL, 2));
    CHECK("unknown flag", pidfd_send_signal(self, 0, NULL, 8));
    CHECK("not a pidfd", pidfd_send_signal(0, SIGKILL, NULL, 0));

    /* clone3 with CLONE_PIDFD; the child waits on a pipe. */
    int pipefd[2];
    pipe(pipefd);
    int fd = -1;
    struct clone_args ca = {.flags = CLONE_PIDFD, .exit_signal = SIGCHLD};
    ca.pidfd = (uint64_t)(uintptr_t)&fd;
    pid_t child = syscall(SYS_clone3, &ca, sizeof ca);
    if (child == 0) {
        char c;
        close(pipefd[1]);
        read(pipefd[0], &c, 1);
        _exit(7);
    }
    close(pipefd[0]);
    printf("clone3 pidfd: %s\n", fd >= 0 ? "ok" : "none");

    struct pollfd p = {.fd = fd, .events = POLLIN};
    printf("poll while running: %d\n", poll(&p, 1, 50));

    /* pidfd_getfd takes a copy of the child's pipe read end (the parent closed its own). */
    int stolen = syscall(SYS_pidfd_getfd, fd, pipefd[0], 0);
    printf("getfd: %s cloexec %d\n", stolen >= 0 ? "ok" : strerrorname_np(errno),
           stolen >= 0 && (fcntl(stolen, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK("getfd bad flags", syscall(SYS_pidfd_getfd, fd, 0, 1));
    CHECK("getfd missing fd", syscall(SYS_pidfd_getfd, fd, 666, 0));

    siginfo_t info = {0};
    info.si_signo = SIGUSR1;
    CHECK("signo mismatch", pidfd_send_signal(fd, SIGUSR2, &info, 0));
    info.si_code = SI_TKILL;
    CHECK("spoofed code", pidfd_send_signal(fd, SIGUSR1, &info, 0));

    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    siginfo_t si = {0};
    CHECK("waitid non-blocking", waitid(P_PIDFD, fd, &si, WEXITED));
    fcntl(fd, F_SETFL, flags);

    write(pipefd[1], "x", 1);
    close(pipefd[1]);
    if (stolen >= 0)
        close(stolen);
    printf("poll after exit: %d\n", poll(&p, 1, 5000));
    CHECK("signal zombie", pidfd_send_signal(fd, 0, NULL, 0));
    memset(&si, 0, sizeof si);
    CHECK("waitid P_PIDFD", waitid(P_PIDFD, fd, &si, WEXITED));
    printf("waited: code %d status %d pid matches %d\n", si.si_code, si.si_status,
           si.si_pid == child);
    p.revents = 0;
    poll(&p, 1, 0);
    printf("after reap: in %d hup %d\n", !!(p.revents & POLLIN), !!(p.revents & POLLHUP));
    CHECK("signal reaped", pidfd_send_signal(fd, 0, NULL, 0));
    CHECK("waitid reaped", waitid(P_PIDFD, fd, &si, WEXITED));

    /* SIGKILL through a pidfd from pidfd_open. */
    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    int k = pidfd_open(child, 0);
    CHECK("kill via pidfd", pidfd_send_signal(k, SIGKILL, NULL, 0));
    int st = 0;
    waitpid(child, &st, 0);
    printf("killed: %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
}

/* msync(MS_INVALIDATE) refuses locked pages: the way the locked state shows. */
static int locked(void *addr) {
    return msync(addr, 4096, MS_ASYNC | MS_INVALIDATE) == -1 && errno == EBUSY;
}

static void mlock_part(void) {
    char *a = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("locked before: %d\n", locked(a));
    CHECK("mlock", mlock(a + 4096, 100));
    printf("locked: %d %d %d\n", locked(a), locked(a + 4096), locked(a + 8192));
    CHECK("dontneed on locked", madvise(a + 4096, 4096, MADV_DONTNEED));
    pid_t child = fork();
    if (child == 0)
        _exit(locked(a + 4096));
    int st = 0;
    waitpid(child, &st, 0);
    printf("locked in fork child: %d\n", WEXITSTATUS(st));
    CHECK("munlock", munlock(a, 3 * 4096));
    printf("locked after munlock: %d\n", locked(a + 4096));
    CHECK("mlock2 bad flags", syscall(SYS_mlock2, a, 4096, 8));
    CHECK("mlockall none", mlockall(0));
    CHECK("mlockall future", mlockall(MCL_FUTURE));
    char *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("new mapping locked: %d\n", locked(b));
    CHECK("munlockall", munlockall());
    printf("after munlockall: %d\n", locked(b));
    char *c = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    printf("MAP_LOCKED: %d\n", locked(c));
    CHECK("munlockall again", munlockall());

    /* Without CAP_IPC_LOCK, RLIMIT_MEMLOCK counts. */
    child = fork();
    if (child == 0) {
        if (setresuid(65534, 65534, 65534) != 0 && getuid() == 0)
            _exit(99);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_MEMLOCK, &rl);
        char *d = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int r1 = mlock(d, 2 * 4096) == -1 ? errno : 0;
        int r2 = mlock(d, 4096) == -1 ? errno : 0;
        void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        int r3 = m == MAP_FAILED ? errno : 0;
        rl.rlim_cur = 0;
        setrlimit(RLIMIT_MEMLOCK, &rl);
        int r4 = mlock(d + 4096, 4096) == -1 ? errno : 0;
        printf("unprivileged: %s %s %s %s\n", r1 ? strerrorname_np(r1) : "ok",
               r2 ? strerrorname_np(r2) : "ok", r3 ? strerrorname_np(r3) : "ok",
               r4 ? strerrorname_np(r4) : "ok");
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, &st, 0);
}

/* Native AIO: the ring Linux maps, a write and its completion, the checks at submission. */
static void aio(void) {
    char path[] = "/tmp/runsc-rs-aio-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    aio_context_t ctx = 0;
    CHECK("io_setup 0 events", syscall(SYS_io_setup, 0, &ctx));
    CHECK("io_setup", syscall(SYS_io_setup, 16, &ctx));
    aio_context_t other = 1;
    CHECK("io_setup non-zero ctx", syscall(SYS_io_setup, 16, &other));
    printf("ring magic: %x head %u tail %u\n", ((unsigned *)ctx)[4], ((unsigned *)ctx)[2],
           ((unsigned *)ctx)[3]);

    static const char data[] = "hello aio";
    struct iocb cb = {0};
    cb.aio_data = 0x123;
    cb.aio_fildes = fd;
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_buf = (uint64_t)(uintptr_t)data;
    cb.aio_nbytes = sizeof data - 1;
    struct iocb *cbs[1] = {&cb};
    printf("submit: %ld\n", syscall(SYS_io_submit, ctx, 1, cbs));
    struct io_event ev[2] = {0};
    long n = syscall(SYS_io_getevents, ctx, 1, 2, ev, NULL);
    printf("events: %ld data %llx obj ok %d res %lld\n", n, (unsigned long long)ev[0].data,
           ev[0].obj == (uint64_t)(uintptr_t)&cb, (long long)ev[0].res);
    char back[32] = {0};
    pread(fd, back, sizeof back - 1, 0);
    printf("file: %s\n", back);
    struct timespec zero = {0, 0};
    printf("nothing pending: %ld\n", syscall(SYS_io_getevents, ctx, 1, 1, ev, &zero));
    CHECK("getevents min above max", syscall(SYS_io_getevents, ctx, 2, 1, ev, &zero));

    cb.aio_offset = -1;
    CHECK("negative offset", syscall(SYS_io_submit, ctx, 1, cbs));
    cb.aio_offset = 0;
    cb.aio_fildes = 999;
    CHECK("bad fd", syscall(SYS_io_submit, ctx, 1, cbs));
    cb.aio_fildes = fd;
    cb.aio_lio_opcode = IOCB_CMD_PREAD;
    char buf[16] = {0};
    cb.aio_buf = (uint64_t)(uintptr_t)buf;
    cb.aio_nbytes = 5;
    printf("submit read: %ld\n", syscall(SYS_io_submit, ctx, 1, cbs));
    n = syscall(SYS_io_getevents, ctx, 1, 1, ev, NULL);
    printf("read: %ld res %lld '%s'\n", n, (long long)ev[0].res, buf);
    CHECK("submit on a bad ctx", syscall(SYS_io_submit, ctx + 4096, 1, cbs));
    CHECK("io_destroy", syscall(SYS_io_destroy, ctx));
    CHECK("io_destroy again", syscall(SYS_io_destroy, ctx));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "mq"))
        mq();
    else if (!strcmp(argv[1], "pidfd"))
        pidfd();
    else if (!strcmp(argv[1], "mlock"))
        mlock_part();
    else if (!strcmp(argv[1], "aio"))
        aio();
    else
        return 2;
    return 0;
}
