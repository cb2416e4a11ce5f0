/* seccomp filters installed by the application: each case runs in a child and prints what it
 * saw, so the output is the same natively and in the sandbox (tests/tests/seccomp_app.rs).
 * `seccomp check` is what the exec case runs: it reports the state it inherited. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Prints a call's result and errno (read after the call, not in the same printf). */
#define SHOW(label, expr)                                                                   \
    do {                                                                                    \
        errno = 0;                                                                          \
        long r_ = (long)(expr);                                                             \
        int e_ = errno;                                                                     \
        printf("%s: %ld errno %d\n", label, r_, e_);                                        \
    } while (0)

static long sys_seccomp(unsigned op, unsigned flags, void *args) {
    return syscall(SYS_seccomp, op, flags, args);
}

/* A filter that answers `action` for system call `nr` and allows everything else. */
static long deny(int nr, unsigned action, unsigned flags) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
    return sys_seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static void report(const char *name, int status) {
    if (WIFEXITED(status))
        printf("[%s] exit %d\n", name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("[%s] killed by signal %d\n", name, WTERMSIG(status));
    fflush(stdout);
}

static void run(const char *name, void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    report(name, status);
}

static void nnp(void) {
    printf("nnp before: %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    SHOW("set bad arg", prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0));
    printf("set: %d\n", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    printf("nnp after: %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    SHOW("get with an argument", prctl(PR_GET_NO_NEW_PRIVS, 1, 0, 0, 0));
    printf("mode: %d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
}

static void errno_action(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    printf("install: %ld\n", deny(SYS_getppid, SECCOMP_RET_ERRNO | 42, 0));
    errno = 0;
    long r = syscall(SYS_getppid);
    printf("getppid: %ld errno %d\n", r, errno);
    deny(SYS_getuid, SECCOMP_RET_ERRNO | 4000, 0);
    r = syscall(SYS_getuid);
    printf("getuid: %ld errno %d\n", r, errno);
    printf("mode: %d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    /* A second, more permissive filter does not win over the first. */
    deny(SYS_getppid, SECCOMP_RET_ALLOW, 0);
    r = syscall(SYS_getppid);
    printf("getppid after an allow: %ld errno %d\n", r, errno);
    /* A less permissive one does. */
    deny(SYS_getppid, SECCOMP_RET_ERRNO | 7, 0);
    deny(SYS_getppid, SECCOMP_RET_ERRNO | 9, 0);
    r = syscall(SYS_getppid);
    printf("getppid with three errno filters: %ld errno %d\n", r, errno);
}

static volatile int trap_code, trap_errno, trap_syscall, trap_addr_set;
static volatile unsigned trap_arch;

static void on_sigsys(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    trap_code = si->si_code;
    trap_errno = si->si_errno;
    trap_syscall = si->si_syscall;
    trap_arch = si->si_arch;
    trap_addr_set = si->si_call_addr != NULL;
}

static void trap_action(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    deny(SYS_getppid, SECCOMP_RET_TRAP | 0x123, 0);
    long r = syscall(SYS_getppid);
    printf("getppid returned %ld (the call number: %d)\n", r, r == SYS_getppid);
    printf("sigsys: code %d errno %#x syscall %d arch %#x addr %d\n", trap_code, trap_errno,
           trap_syscall, trap_arch, trap_addr_set);
}

static void kill_process_action(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    /* A handler does not save the process from KILL_PROCESS. */
    signal(SIGSYS, SIG_IGN);
    deny(SYS_getppid, SECCOMP_RET_KILL_PROCESS, 0);
    syscall(SYS_getppid);
    printf("still alive\n");
}

static void *thread_killed(void *arg) {
    (void)arg;
    syscall(SYS_getppid);
    printf("thread still alive\n");
    return NULL;
}

static void kill_thread_action(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    deny(SYS_getppid, SECCOMP_RET_KILL_THREAD, 0);
    pthread_t th;
    pthread_create(&th, NULL, thread_killed, NULL);
    sleep(1);
    printf("main thread goes on\n");
    fflush(stdout);
    /* The last thread takes the process with it. */
    syscall(SYS_getppid);
    printf("still alive\n");
}

static void strict_mode(void) {
    static const char ok[] = "strict: write allowed\n";
    fflush(stdout);
    printf("install: %ld\n", sys_seccomp(SECCOMP_SET_MODE_STRICT, 0, NULL));
    fflush(stdout);
    syscall(SYS_write, 1, ok, sizeof(ok) - 1);
    syscall(SYS_getpid);
    syscall(SYS_write, 1, "not reached\n", 12);
}

static void *sibling(void *arg) {
    (void)arg;
    sleep(1);
    errno = 0;
    long r = syscall(SYS_getppid);
    printf("sibling getppid: %ld errno %d\n", r, errno);
    return NULL;
}

static void tsync(void) {
    pthread_t th;
    pthread_create(&th, NULL, sibling, NULL);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    printf("install with tsync: %ld\n", deny(SYS_getppid, SECCOMP_RET_ERRNO | 5, SECCOMP_FILTER_FLAG_TSYNC));
    fflush(stdout);
    pthread_join(th, NULL);
}

static void refusals(void) {
    struct sock_filter ret_allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog empty = {0, &ret_allow};
    struct sock_filter bad_jump[] = {
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog jump = {2, bad_jump};
    struct sock_filter unaligned[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog load = {2, unaligned};
    struct sock_fprog ok = {1, &ret_allow};
    unsigned action;

    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    SHOW("empty", sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, &empty));
    SHOW("bad jump", sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, &jump));
    SHOW("unaligned load", sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, &load));
    SHOW("unknown flag", sys_seccomp(SECCOMP_SET_MODE_FILTER, 1u << 20, &ok));
    SHOW("bad pointer", sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, (void *)8));
    SHOW("unknown op", sys_seccomp(99, 0, &ok));
    action = SECCOMP_RET_ALLOW;
    printf("allow available: %ld\n", sys_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action));
    action = SECCOMP_RET_KILL_PROCESS;
    printf("kill_process available: %ld\n", sys_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action));
    action = 0x12340000;
    SHOW("unknown action", sys_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action));
    sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, &ok);
    SHOW("strict after a filter", sys_seccomp(SECCOMP_SET_MODE_STRICT, 0, NULL));
}

static const char *self_exe;

static void inherited(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    deny(SYS_getppid, SECCOMP_RET_ERRNO | 11, 0);
    deny(SYS_getuid, SECCOMP_RET_ERRNO | 12, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self_exe, self_exe, "check", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    report("exec'd child", status);
}

static void check(void) {
    errno = 0;
    long r = syscall(SYS_getppid);
    printf("after fork and exec: getppid %ld errno %d\n", r, errno);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "NoNewPrivs:", 11) || !strncmp(line, "Seccomp:", 8) ||
            !strncmp(line, "Seccomp_filters:", 16))
            fputs(line, stdout);
    }
    printf("mode: %d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
}

int main(int argc, char **argv) {
    self_exe = "/proc/self/exe";
    if (argc > 1 && !strcmp(argv[1], "check")) {
        check();
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    run("nnp", nnp);
    run("errno", errno_action);
    run("trap", trap_action);
    run("kill_process", kill_process_action);
    run("kill_thread", kill_thread_action);
    run("strict", strict_mode);
    run("tsync", tsync);
    run("refusals", refusals);
    run("inherited", inherited);
    return 0;
}
