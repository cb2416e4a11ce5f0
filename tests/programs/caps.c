// Capabilities, securebits and supplementary groups: capget/capset, prctl's capability
// options, setgroups/getgroups, the capability changes of set*id calls and execve, and
// permission checks that depend on them. Runs as root; prints what it sees so that native
// Linux and the sandbox can be compared line by line.
//
// Usage: caps BOUNDING_HEX   (the bounding set to narrow to first, so that both sides start
//                             from the same sets)
//        caps BOUNDING_HEX PROGRAM ARGS...   (narrows, then runs PROGRAM with the same sets
//                                             on both sides)
//        caps exec-report    (internal: prints the sets after an execve)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

static int capget_raw(uint32_t *version, int pid, struct __user_cap_data_struct *d) {
    struct __user_cap_header_struct h = {.version = *version, .pid = pid};
    int r = syscall(SYS_capget, &h, d);
    *version = h.version;
    return r;
}

static int capset_raw(uint32_t version, int pid, uint64_t e, uint64_t p, uint64_t i) {
    struct __user_cap_header_struct h = {.version = version, .pid = pid};
    struct __user_cap_data_struct d[2] = {
        {.effective = (uint32_t)e, .permitted = (uint32_t)p, .inheritable = (uint32_t)i},
        {.effective = e >> 32, .permitted = p >> 32, .inheritable = i >> 32},
    };
    return syscall(SYS_capset, &h, d);
}

struct sets { uint64_t e, p, i; };

static struct sets get_sets(void) {
    struct __user_cap_data_struct d[2] = {0};
    uint32_t v = _LINUX_CAPABILITY_VERSION_3;
    if (capget_raw(&v, 0, d) != 0) {
        perror("capget");
        exit(1);
    }
    return (struct sets){
        .e = d[0].effective | (uint64_t)d[1].effective << 32,
        .p = d[0].permitted | (uint64_t)d[1].permitted << 32,
        .i = d[0].inheritable | (uint64_t)d[1].inheritable << 32,
    };
}

static void print_sets(const char *what) {
    struct sets s = get_sets();
    printf("%s: e=%016llx p=%016llx i=%016llx amb(net_bind)=%d keepcaps=%d securebits=%#x\n",
           what, (unsigned long long)s.e, (unsigned long long)s.p, (unsigned long long)s.i,
           prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0),
           prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0), prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
}

static void print_status(const char *what) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    printf("%s /proc/self/status:\n", what);
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "Groups:", 7) ||
            !strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4))
            printf("  %s", line);
    }
    if (f) fclose(f);
}

static void print_ids(const char *what) {
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    printf("%s: uid=%u/%u/%u gid=%u/%u/%u\n", what, r, e, s, gr, ge, gs);
}

// Runs fn in a child and waits, so each scenario starts from the parent's credentials.
static void in_child(const char *name, void (*fn)(const char *self)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn(name);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("[%s] exit %d\n", name, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void reexec(void) {
    fflush(stdout);
    char *argv[] = {"caps", "exec-report", NULL};
    execv("/proc/self/exe", argv);
    printf("execv: %s\n", strerrorname_np(errno));
}

static void setuid_drops_everything(const char *n) {
    printf("[%s] setuid(1000): %s\n", n, err(setuid(1000)));
    print_ids(n);
    print_sets(n);
    print_status(n);
    gid_t g = 7;
    printf("[%s] setgroups: %s\n", n, err(setgroups(1, &g)));
    printf("[%s] capset raise: %s\n", n,
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, 1, 1, 0)));
    printf("[%s] capbset_drop: %s\n", n, err(prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0)));
    printf("[%s] setuid(0): %s\n", n, err(setuid(0)));
    printf("[%s] setreuid(0,-1): %s\n", n, err(setreuid(0, -1)));
}

static void keepcaps_then_exec(const char *n) {
    printf("[%s] set_keepcaps(1): %s\n", n, err(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)));
    printf("[%s] setresuid(1000): %s\n", n, err(setresuid(1000, 1000, 1000)));
    print_sets(n);
    struct sets s = get_sets();
    printf("[%s] capset e=p: %s\n", n,
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.p, s.p, s.i)));
    printf("[%s] ambient raise: %s\n", n,
           err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0)));
    print_sets(n);
    print_status(n);
    reexec();
}

static void seteuid_round_trip(const char *n) {
    printf("[%s] seteuid(1000): %s\n", n, err(seteuid(1000)));
    print_ids(n);
    print_sets(n);
    printf("[%s] seteuid(0): %s\n", n, err(seteuid(0)));
    print_sets(n);
    printf("[%s] setreuid(1000,2000): %s\n", n, err(setreuid(1000, 2000)));
    print_ids(n);
    print_sets(n);
}

static void no_setuid_fixup(const char *n) {
    printf("[%s] set_securebits: %s\n", n,
           err(prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0)));
    printf("[%s] setuid(1000): %s\n", n, err(setuid(1000)));
    print_sets(n);
    printf("[%s] clear the bits: %s\n", n, err(prctl(PR_SET_SECUREBITS, 0, 0, 0, 0)));
}

static void locked_securebits(const char *n) {
    printf("[%s] lock keepcaps: %s\n", n,
           err(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0)));
    printf("[%s] set_keepcaps(1): %s\n", n, err(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)));
    printf("[%s] change locked bit: %s\n", n,
           err(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_LOCKED | SECBIT_KEEP_CAPS, 0, 0, 0)));
    printf("[%s] unknown bit: %s\n", n,
           err(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_LOCKED | (1 << 12), 0, 0, 0)));
}

static void root_exec_regains_effective(const char *n) {
    struct sets s = get_sets();
    printf("[%s] capset e=0 i=chown: %s\n", n,
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, 0, s.p, 1)));
    printf("[%s] set_keepcaps(1): %s\n", n, err(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)));
    print_sets(n);
    reexec();
}

static char dir[] = "/tmp/caps-XXXXXX";

static void group_and_dac(const char *n) {
    char path[64];
    snprintf(path, sizeof path, "%s/secret", dir);
    // Still root, but without the DAC capabilities the mode bits decide.
    struct sets s = get_sets();
    uint64_t dac = 1ull << CAP_DAC_OVERRIDE | 1ull << CAP_DAC_READ_SEARCH;
    printf("[%s] open as root: %s\n", n, err(open(path, O_RDONLY)));
    printf("[%s] drop dac caps: %s\n", n,
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.e & ~dac, s.p, s.i)));
    printf("[%s] open without dac: %s\n", n, err(open(path, O_RDONLY)));
    printf("[%s] access(R_OK) with real root: %s\n", n, err(access(path, R_OK)));
    gid_t g[] = {4242, 10};
    printf("[%s] setgroups(4242,10): %s\n", n, err(setgroups(2, g)));
    printf("[%s] open via supplementary group: %s\n", n, err(open(path, O_RDONLY)));
    printf("[%s] setresuid(2000): %s\n", n, err(setresuid(2000, 2000, 2000)));
    printf("[%s] open as 2000 in group: %s\n", n, err(open(path, O_RDONLY)));
    printf("[%s] access(R_OK) as 2000 in group: %s\n", n, err(access(path, R_OK)));
    print_status(n);
}

static void chown_rules(const char *n) {
    char path[64];
    snprintf(path, sizeof path, "%s/secret", dir);
    gid_t g[] = {4242, 10};
    printf("[%s] setgroups(4242,10): %s\n", n, err(setgroups(2, g)));
    printf("[%s] setresuid(1000,1000,2000): %s\n", n, err(setresuid(1000, 1000, 2000)));
    printf("[%s] owner chgrp to own group: %s\n", n, err(chown(path, -1, 10)));
    printf("[%s] owner chgrp to other group: %s\n", n, err(chown(path, -1, 11)));
    printf("[%s] owner chown to self: %s\n", n, err(chown(path, 1000, -1)));
    printf("[%s] owner chown to root: %s\n", n, err(chown(path, 0, -1)));
    printf("[%s] setresuid(2000,2000,-1): %s\n", n, err(setresuid(2000, 2000, -1)));
    printf("[%s] other chgrp: %s\n", n, err(chown(path, -1, 4242)));
    printf("[%s] other chown -1 -1: %s\n", n, err(chown(path, -1, -1)));
    struct stat st;
    stat(path, &st);
    printf("[%s] now %u:%u\n", n, st.st_uid, st.st_gid);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "exec-report")) {
        print_ids("after exec");
        print_sets("after exec");
        print_status("after exec");
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: caps BOUNDING_HEX [PROGRAM ARGS...]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    uint64_t bound = strtoull(argv[1], NULL, 16);
    for (int c = 0; c <= CAP_LAST_CAP; c++)
        if (!(bound & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
            printf("drop %d: %s\n", c, strerrorname_np(errno));
    struct sets s = get_sets();
    if (capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.e & bound, s.p & bound, 0) != 0)
        printf("narrowing: %s\n", strerrorname_np(errno));
    if (setgroups(0, NULL) != 0)
        printf("clearing groups: %s\n", strerrorname_np(errno));
    if (argc > 2) {
        fflush(stdout);
        execv(argv[2], argv + 2);
        printf("execv %s: %s\n", argv[2], strerrorname_np(errno));
        return 127;
    }

    // The version probe: an unknown version is EINVAL and reports the preferred one; with a
    // NULL data pointer it is not an error.
    struct __user_cap_data_struct d[2] = {0};
    uint32_t v = 0x12345678;
    const char *e = err(capget_raw(&v, 0, d));
    printf("capget bad version: %s version=%#x\n", e, v);
    v = 0x12345678;
    e = err(capget_raw(&v, 0, NULL));
    printf("capget bad version, NULL data: %s version=%#x\n", e, v);
    v = _LINUX_CAPABILITY_VERSION_3;
    printf("capget pid -1: %s\n", err(capget_raw(&v, -1, d)));
    printf("capget absent pid: %s\n", err(capget_raw(&v, 0x3ffff000, d)));
    memset(d, 0, sizeof d);
    v = _LINUX_CAPABILITY_VERSION_1;
    e = err(capget_raw(&v, 0, d));
    printf("capget v1: %s version=%#x e=%08x p=%08x i=%08x next=%08x\n", e, v, d[0].effective, d[0].permitted, d[0].inheritable, d[1].effective);
    for (uint32_t ver = _LINUX_CAPABILITY_VERSION_2; ver; ver = ver == _LINUX_CAPABILITY_VERSION_2 ? _LINUX_CAPABILITY_VERSION_3 : 0) {
        memset(d, 0, sizeof d);
        v = ver;
        e = err(capget_raw(&v, 0, d));
        printf("capget %#x: %s e=%08x%08x p=%08x%08x i=%08x%08x\n", ver, e, d[1].effective, d[0].effective, d[1].permitted,
               d[0].permitted, d[1].inheritable, d[0].inheritable);
    }
    v = _LINUX_CAPABILITY_VERSION_3;
    printf("capget own pid: %s\n", err(capget_raw(&v, getpid(), d)));

    long caps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_SYS_ADMIN, CAP_SYS_RESOURCE, CAP_LAST_CAP,
                   CAP_LAST_CAP + 1, -1};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        int r = prctl(PR_CAPBSET_READ, caps[k], 0, 0, 0);
        printf("capbset_read(%ld): %d %s\n", caps[k], r, err(r));
    }
    // Another thread's sets (here one that does not exist) are never settable.
    printf("capset other pid: %s\n",
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0x3ffff000, 0, 0, 0)));
    s = get_sets();
    printf("capset e beyond p: %s\n",
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.p | 1ull << 40, s.p & ~(1ull << 40), 0)));
    printf("capset bad version: %s\n", err(capset_raw(0, 0, s.e, s.p, 0)));
    printf("keepcaps: %d\n", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
    printf("set keepcaps 2: %s\n", err(prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0)));
    printf("ambient raise without inheritable: %s\n",
           err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0)));
    printf("ambient bad op: %s\n", err(prctl(PR_CAP_AMBIENT, 9, CAP_NET_BIND_SERVICE, 0, 0)));
    printf("ambient bad cap: %s\n", err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 99, 0, 0)));
    printf("ambient clear_all with arg: %s\n",
           err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0)));
    printf("capset i=net_bind: %s\n",
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.e, s.p, 1ull << CAP_NET_BIND_SERVICE)));
    printf("ambient raise: %s\n",
           err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0)));
    print_sets("parent");
    printf("capset i=0 drops ambient: %s\n",
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.e, s.p, 0)));
    print_sets("parent");
    printf("capset i back: %s\n",
           err(capset_raw(_LINUX_CAPABILITY_VERSION_3, 0, s.e, s.p, 1ull << CAP_NET_BIND_SERVICE)));
    printf("ambient raise: %s\n",
           err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0)));

    gid_t set[] = {100, 5, 3, 5}, got[8];
    printf("setgroups: %s\n", err(setgroups(4, set)));
    int count = getgroups(0, NULL);
    printf("getgroups(0): %d\n", count);
    printf("getgroups(1): %s\n", err(getgroups(1, got)));
    count = getgroups(8, got);
    printf("getgroups(8): %d:", count);
    for (int k = 0; k < count; k++) printf(" %u", got[k]);
    printf("\n");
    printf("setgroups(65537): %s\n", err(syscall(SYS_setgroups, 65537, got)));
    printf("setgroups(-1): %s\n", err(syscall(SYS_setgroups, -1, got)));
    printf("setgroups bad pointer: %s\n", err(syscall(SYS_setgroups, 2, (void *)8)));
    print_status("parent");

    in_child("setuid", setuid_drops_everything);
    in_child("keepcaps", keepcaps_then_exec);
    in_child("seteuid", seteuid_round_trip);
    in_child("no_setuid_fixup", no_setuid_fixup);
    in_child("locked", locked_securebits);
    in_child("root-exec", root_exec_regains_effective);

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "%s/secret", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0);
    close(fd);
    chmod(dir, 0755);
    chown(path, 1000, 4242);
    chmod(path, 0040);
    in_child("dac", group_and_dac);
    in_child("chown", chown_rules);
    unlink(path);
    rmdir(dir);
    return 0;
}
