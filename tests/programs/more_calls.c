/*
 * more_calls: system calls programs still hit, compared line by line with native Linux.
 *   pidfd_thread  PIDFD_THREAD pidfds: poll readiness when the thread exits, the
 *                 PIDFD_SIGNAL_* scopes of pidfd_send_signal
 *   vsyscall      the legacy vsyscall page: its calls, and its maps and smaps entries
 *   fsuid         setfsuid/setfsgid (run as root)
 *   misc          sysfs, io_pgetevents, process_mrelease
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

#define PIDFD_THREAD O_EXCL
#define SIGNAL_THREAD 1
#define SIGNAL_THREAD_GROUP 2
#define SIGNAL_PROCESS_GROUP 4

static long pidfd_open(int pid, unsigned flags) { return syscall(SYS_pidfd_open, pid, flags); }
static long send_sig(int fd, int sig, unsigned flags) {
    return syscall(SYS_pidfd_send_signal, fd, sig, NULL, flags);
}

static int gate[2];
static atomic_int thread_tid;
static atomic_int handled_by;

static void on_usr1(int sig) {
    (void)sig;
    atomic_store(&handled_by, (int)gettid());
}

static void *sibling(void *arg) {
    (void)arg;
    atomic_store(&thread_tid, (int)gettid());
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static int poll_in(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, ms);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return r;
    return (p.revents & POLLIN) != 0;
}

static void section_pidfd_thread(void) {
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
    sigaction(SIGUSR1, &sa, NULL);
    if (pipe(gate) != 0)
        return;
    pthread_t th;
    pthread_create(&th, NULL, sibling, NULL);
    while (atomic_load(&thread_tid) == 0)
        sched_yield();
    int tid = atomic_load(&thread_tid);

    int fd = (int)pidfd_open(tid, PIDFD_THREAD);
    result("thread pidfd opened", fd >= 0);
    long r = pidfd_open(tid, 0);
    /* EINVAL before Linux 6.15, ENOENT since: both refuse a thread as a process. */
    printf("process pidfd of a thread refused: %d\n", r == -1 && (errno == EINVAL || errno == ENOENT));
    result("poll while the thread runs", poll_in(fd, 0));
    result("signal 0 to the thread", send_sig(fd, 0, 0));
    result("two scopes", send_sig(fd, 0, SIGNAL_THREAD | SIGNAL_THREAD_GROUP));
    result("unknown flag", send_sig(fd, 0, 8));
    result("SIGUSR1 with the thread scope (default)", send_sig(fd, SIGUSR1, 0));
    for (int i = 0; i < 5000 && atomic_load(&handled_by) == 0; i++)
        usleep(1000);
    printf("handled by the named thread: %d\n", atomic_load(&handled_by) == tid);
    atomic_store(&handled_by, 0);
    result("SIGUSR1 with PIDFD_SIGNAL_THREAD", send_sig(fd, SIGUSR1, SIGNAL_THREAD));
    for (int i = 0; i < 5000 && atomic_load(&handled_by) == 0; i++)
        usleep(1000);
    printf("handled by the named thread again: %d\n", atomic_load(&handled_by) == tid);
    result("waitid on a thread's pidfd", syscall(SYS_waitid, 3 /* P_PIDFD */, fd, NULL, WEXITED | WNOHANG, NULL));

    int self = (int)pidfd_open(getpid(), PIDFD_THREAD);
    result("leader's thread pidfd opened", self >= 0);
    result("poll on the running leader", poll_in(self, 0));

    if (write(gate[1], "x", 1) != 1)
        return;
    pthread_join(th, NULL);
    result("poll after the thread exited", poll_in(fd, 5000));
    for (int i = 0; i < 1000 && send_sig(fd, 0, 0) == 0; i++)
        usleep(1000);
    result("signal to the exited thread", send_sig(fd, 0, 0));
    close(fd);
    close(self);

    /* PIDFD_SIGNAL_PROCESS_GROUP: the group whose ID is the target's PID. */
    int ready[2];
    if (pipe(ready) != 0)
        return;
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        close(ready[0]);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1)
        return;
    pid_t member = fork();
    if (member == 0) {
        for (;;)
            pause();
    }
    int lfd = (int)pidfd_open(leader, 0);
    int mfd = (int)pidfd_open(member, 0);
    result("process group of a non-leader", send_sig(mfd, SIGTERM, SIGNAL_PROCESS_GROUP));
    result("process group of its leader", send_sig(lfd, SIGTERM, SIGNAL_PROCESS_GROUP));
    int st = 0;
    waitpid(leader, &st, 0);
    printf("group leader killed by: %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    result("thread scope on a process pidfd", send_sig(mfd, SIGKILL, SIGNAL_THREAD));
    waitpid(member, &st, 0);
    printf("member killed by: %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    close(lfd);
    close(mfd);
}

#include <linux/capability.h>

/* Whether `cap` is in the caller's effective set. */
static int cap_effective(int cap) {
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    return (d[cap / 32].effective >> (cap % 32)) & 1;
}

/* The fourth (filesystem) column of /proc/self/status's "Uid:" or "Gid:" line. */
static long status_fs_id(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long a = -1, b, c, d = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            sscanf(line + strlen(key), "%ld %ld %ld %ld", &a, &b, &c, &d);
    if (f)
        fclose(f);
    return d;
}

static void section_fsuid(void) {
    if (getuid() != 0) {
        printf("SKIPPED: not root\n");
        return;
    }
    chmod(dir, 0777);
    int fd = open(at("secret"), O_CREAT | O_WRONLY, 0600);
    close(fd);
    printf("setfsuid(-1) queries: %d\n", setfsuid(-1));
    printf("setfsuid(1000) returns the old one: %d\n", setfsuid(1000));
    printf("now: %d\n", setfsuid(-1));
    printf("status Uid fs column: %ld\n", status_fs_id("Uid:"));
    printf("CAP_DAC_OVERRIDE effective: %d, CAP_CHOWN: %d, CAP_KILL: %d\n", cap_effective(CAP_DAC_OVERRIDE),
           cap_effective(CAP_CHOWN), cap_effective(CAP_KILL));
    result("open root's 0600 file", open(at("secret"), O_RDONLY));
    fd = open(at("mine"), O_CREAT | O_WRONLY, 0644);
    struct stat st;
    fstat(fd, &st);
    close(fd);
    printf("new file's owner: %u\n", st.st_uid);
    result("chmod of it", chmod(at("mine"), 0600));
    result("chmod of root's file", chmod(at("secret"), 0644));
    printf("back to 0 returns: %d\n", setfsuid(0));
    printf("CAP_DAC_OVERRIDE effective again: %d\n", cap_effective(CAP_DAC_OVERRIDE));
    int ok = open(at("secret"), O_RDONLY);
    printf("open root's 0600 file again: %d\n", ok >= 0);
    close(ok);

    printf("setfsgid(1000) returns: %d\n", setfsgid(1000));
    printf("status Gid fs column: %ld\n", status_fs_id("Gid:"));
    fd = open(at("grp"), O_CREAT | O_WRONLY, 0644);
    fstat(fd, &st);
    close(fd);
    printf("new file's group: %u\n", st.st_gid);
    setfsgid(0);

    setfsuid(1000);
    result("seteuid(0) again", seteuid(0));
    printf("an effective-ID change moves fsuid: %d\n", setfsuid(-1));

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
            _exit(1);
        printf("unprivileged setfsuid(2000) returns: %d\n", setfsuid(2000));
        printf("unchanged: %d\n", setfsuid(-1));
        printf("unprivileged setfsgid(0) returns: %d\n", setfsgid(0));
        printf("unchanged: %d\n", setfsgid(-1));
        fflush(stdout);
        _exit(0);
    }
    int wst;
    waitpid(child, &wst, 0);
    unlink(at("secret"));
    unlink(at("mine"));
    unlink(at("grp"));
}

#include <linux/aio_abi.h>

static atomic_int usr1_seen;
static void on_usr1_count(int sig) {
    (void)sig;
    atomic_fetch_add(&usr1_seen, 1);
}

static void section_misc(void) {
    /* sysfs(2): every index names a type /proc/filesystems lists, and back. */
    long count = syscall(SYS_sysfs, 3);
    printf("sysfs count positive: %d\n", count > 0);
    int consistent = 1;
    char listed[8192] = "";
    FILE *f = fopen("/proc/filesystems", "r");
    if (f) {
        size_t n = fread(listed, 1, sizeof listed - 1, f);
        listed[n] = 0;
        fclose(f);
    }
    for (long i = 0; i < count; i++) {
        char name[64] = "", want[80];
        if (syscall(SYS_sysfs, 2, i, name) != 0 || syscall(SYS_sysfs, 1, name) != i)
            consistent = 0;
        snprintf(want, sizeof want, "\t%s\n", name);
        if (!strstr(listed, want))
            consistent = 0;
    }
    printf("sysfs indexes, names and /proc/filesystems agree: %d\n", consistent);
    result("sysfs unknown name", syscall(SYS_sysfs, 1, "no-such-fs"));
    char buf[64];
    result("sysfs index past the end", syscall(SYS_sysfs, 2, count, buf));
    result("sysfs bad option", syscall(SYS_sysfs, 4));
    result("sysfs name at a bad address", syscall(SYS_sysfs, 1, (char *)1));

    /* io_pgetevents(2) */
    aio_context_t ctx = 0;
    result("io_setup", syscall(SYS_io_setup, 4, &ctx));
    struct io_event ev[4];
    struct timespec ts = {0, 10 * 1000 * 1000};
    result("io_pgetevents, nothing done, no mask", syscall(SYS_io_pgetevents, ctx, 1, 4, ev, &ts, NULL));
    struct {
        const sigset_t *sigmask;
        size_t sigsetsize;
    } usig;
    sigset_t empty, blocked, now;
    sigemptyset(&empty);
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    usig.sigmask = &empty;
    usig.sigsetsize = 7;
    result("io_pgetevents, bad sigsetsize", syscall(SYS_io_pgetevents, ctx, 1, 4, ev, &ts, &usig));
    struct sigaction sa = {.sa_handler = on_usr1_count};
    sigaction(SIGUSR1, &sa, NULL);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    raise(SIGUSR1);
    usig.sigsetsize = 8;
    result("io_pgetevents, mask unblocking a pending signal", syscall(SYS_io_pgetevents, ctx, 1, 4, ev, &ts, &usig));
    printf("handler ran: %d\n", atomic_load(&usr1_seen));
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("mask restored: %d\n", sigismember(&now, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &blocked, NULL);
    syscall(SYS_io_destroy, ctx);

    /* process_mrelease(2) */
    pid_t child = fork();
    if (child == 0) {
        for (;;)
            pause();
    }
    int pfd = (int)pidfd_open(child, 0);
    result("process_mrelease, flags", syscall(SYS_process_mrelease, pfd, 1));
    result("process_mrelease, running", syscall(SYS_process_mrelease, pfd, 0));
    kill(child, SIGKILL);
    siginfo_t si;
    waitid(P_PID, child, &si, WEXITED | WNOWAIT);
    result("process_mrelease, exited", syscall(SYS_process_mrelease, pfd, 0));
    waitpid(child, NULL, 0);
    result("process_mrelease, reaped", syscall(SYS_process_mrelease, pfd, 0));
    result("process_mrelease, not a pidfd", syscall(SYS_process_mrelease, 0, 0));
    close(pfd);
}

/* Prints the lines of `path` that belong to the [vsyscall] entry (for smaps: its header,
   Size, Rss and VmFlags, the fields every kernel version prints alike); returns how many
   entries there were. */
static int vsyscall_lines(const char *path, int smaps) {
    FILE *f = fopen(path, "r");
    char line[512];
    int in = 0, n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        int header = strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' ');
        if (header)
            in = strstr(line, "[vsyscall]") != NULL;
        if (!in)
            continue;
        if (header)
            n++;
        if (header || !strncmp(line, "Size:", 5) || !strncmp(line, "Rss:", 4) || !strncmp(line, "VmFlags:", 8))
            printf("%s%s", smaps ? "smaps " : "maps ", line);
    }
    fclose(f);
    return n;
}

static void section_vsyscall(void) {
    int n = vsyscall_lines("/proc/self/maps", 0);
    printf("vsyscall entries in maps: %d\n", n);
    printf("vsyscall entries in smaps: %d\n", vsyscall_lines("/proc/self/smaps", 1));
    if (n != 1)
        return; /* the host has vsyscall=none: nothing to call */
    time_t (*vtime)(time_t *) = (void *)0xffffffffff600400UL;
    int (*vgtod)(struct timeval *, void *) = (void *)0xffffffffff600000UL;
    long (*vgetcpu)(unsigned *, unsigned *, void *) = (void *)0xffffffffff600800UL;
    time_t t1 = time(NULL), t2 = vtime(NULL);
    printf("vsyscall time within 5 s of time(2): %d\n", t2 >= t1 && t2 <= t1 + 5);
    struct timeval tv;
    printf("vsyscall gettimeofday: %d\n", vgtod(&tv, NULL));
    printf("its seconds within 5 s of time(2): %d\n", tv.tv_sec >= t1 && tv.tv_sec <= t1 + 5);
    unsigned cpu = ~0u;
    printf("vsyscall getcpu: %ld, cpu set: %d\n", vgetcpu(&cpu, NULL, NULL), cpu != ~0u);
    pid_t child = fork();
    if (child == 0) {
        vtime((time_t *)1);
        _exit(0);
    }
    int st = 0;
    waitpid(child, &st, 0);
    printf("vsyscall time to a bad address killed by: %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: more_calls pidfd_thread|fsuid|misc\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "/tmp/more_calls.%d", getpid());
    if (mkdir(dir, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    if (!strcmp(argv[1], "pidfd_thread"))
        section_pidfd_thread();
    else if (!strcmp(argv[1], "vsyscall"))
        section_vsyscall();
    else if (!strcmp(argv[1], "fsuid"))
        section_fsuid();
    else if (!strcmp(argv[1], "misc"))
        section_misc();
    else
        return 2;
    rmdir(dir);
    printf("done\n");
    return 0;
}
