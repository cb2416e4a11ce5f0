/* Small system-call families, printed so a native run and a sandboxed run compare line by
 * line. Each section works in a fresh directory of its own under /tmp.
 *
 *   misc_calls personality   personality(2): query, set, inheritance by fork, refused bits
 *   misc_calls vectored      preadv/pwritev/preadv2/pwritev2, readahead, sync_file_range
 *   misc_calls opath         what an O_PATH descriptor may and may not be used for
 *   misc_calls memory        mincore and the NUMA policy calls (one-node machines)
 *   misc_calls keys          keyctl's session keyrings: join, describe, setperm, by name
 *   misc_calls syslog        syslog(2) (sandbox only: the host's log differs)
 *   misc_calls waits         select/pselect/ppoll write back the time left; kill of a zombie
 *   misc_calls dumpable      prctl's dumpable flag: set, fork, seteuid and exec
 *   misc_calls seals         F_SEAL_WRITE while shared mappings (a fork child's too) may write
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static const char *self_path;

static void report(const char *what, long n) {
    if (n < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, n);
    fflush(stdout);
}

static void path(char *out, const char *name) {
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

/* Runs `fn` in a child and reports how it ended. */
static void in_child(const char *what, void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("%s child status %d\n", what, status);
}

static void grandchild_reads_bsd(void) {
    report("grandchild personality", personality(0xffffffff));
}

static void child_sets_bsd(void) {
    report("child set PER_BSD", personality(PER_BSD));
    report("child query", personality(0xffffffff));
    in_child("grandchild", grandchild_reads_bsd);
    report("child set SHORT_INODE|WHOLE_SECONDS", personality(SHORT_INODE | WHOLE_SECONDS));
    report("child set ADDR_NO_RANDOMIZE", personality(ADDR_NO_RANDOMIZE));
    report("child query again", personality(0xffffffff));
}

static void section_personality(void) {
    report("query", personality(0xffffffff));
    report("set PER_LINUX", personality(PER_LINUX));
    in_child("setter", child_sets_bsd);
    report("parent unchanged", personality(0xffffffff));
}

static void section_vectored(void) {
    char file[PATH_MAX];
    path(file, "data");
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    report("open", fd);
    char a[] = "hello ", b[] = "vectored world";
    struct iovec wv[2] = {{a, 6}, {b, 14}};
    report("pwritev at 4", pwritev(fd, wv, 2, 4));
    report("offset after pwritev", lseek(fd, 0, SEEK_CUR));
    char r1[8] = {0}, r2[32] = {0};
    struct iovec rv[2] = {{r1, 5}, {r2, sizeof r2 - 1}};
    long n = preadv(fd, rv, 2, 0);
    report("preadv at 0", n);
    printf("read: [%.*s][%s]\n", 4, r1 + 1, r2);
    report("preadv negative offset", preadv(fd, rv, 2, -5));
    report("pwritev2 at -1 (file offset)", pwritev2(fd, wv, 1, -1, 0));
    report("offset after pwritev2 -1", lseek(fd, 0, SEEK_CUR));
    report("pwritev2 RWF_DSYNC", pwritev2(fd, wv, 1, 30, RWF_DSYNC));
    report("preadv2 bad flag", preadv2(fd, rv, 2, 0, 0x1000000));
    report("preadv2 offset -2", preadv2(fd, rv, 2, -2, 0));
    memset(r1, 0, sizeof r1);
    report("preadv2 HIPRI at 10", preadv2(fd, rv, 1, 10, RWF_HIPRI));
    printf("read: [%s]\n", r1);
    int p[2];
    report("pipe", pipe(p));
    report("pwritev on pipe", pwritev(p[1], wv, 2, 0));
    report("pwritev2 -1 on pipe", pwritev2(p[1], wv, 2, -1, 0));
    memset(r1, 0, sizeof r1);
    report("preadv2 -1 on pipe", preadv2(p[0], rv, 1, -1, 0));
    printf("read: [%s]\n", r1);
    report("preadv on pipe", preadv(p[0], rv, 1, 0));
    int wo = open(file, O_WRONLY);
    report("preadv write-only", preadv(wo, rv, 1, 0));
    report("readahead", readahead(fd, 0, 4096));
    report("readahead write-only", readahead(wo, 0, 4096));
    report("readahead pipe", readahead(p[0], 0, 4096));
    report("readahead bad fd", readahead(-1, 0, 1));
    report("sync_file_range", sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE));
    report("sync_file_range all flags",
           sync_file_range(fd, 0, 10,
                           SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                               SYNC_FILE_RANGE_WAIT_AFTER));
    report("sync_file_range bad flag", sync_file_range(fd, 0, 0, 8));
    report("sync_file_range negative", sync_file_range(fd, -1, 0, 0));
    report("sync_file_range overflow", sync_file_range(fd, 8192, INT64_MAX - 4096, 0));
    report("sync_file_range pipe", sync_file_range(p[0], 0, 0, 0));
    report("sync_file_range bad fd", sync_file_range(-1, 0, 0, 0));
}

static void section_opath(void) {
    char file[PATH_MAX];
    path(file, "f");
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    report("write", write(fd, "abc", 3));
    close(fd);
    int op = open(file, O_PATH);
    report("open O_PATH", op >= 0 ? 0 : -1);
    char buf[4];
    struct iovec iov = {buf, sizeof buf};
    report("read", read(op, buf, sizeof buf));
    report("preadv", preadv(op, &iov, 1, 0));
    report("pwritev2", pwritev2(op, &iov, 1, 0, 0));
    report("fchmod", fchmod(op, 0600));
    report("fchown", fchown(op, getuid(), getgid()));
    report("fsync", fsync(op));
    report("syncfs", syncfs(op));
    report("fdatasync", fdatasync(op));
    report("ftruncate", ftruncate(op, 0));
    report("fallocate", fallocate(op, 0, 0, 10));
    report("posix_fadvise", syscall(SYS_fadvise64, op, 0, 10, POSIX_FADV_NORMAL));
    report("readahead", readahead(op, 0, 10));
    report("sync_file_range", sync_file_range(op, 0, 0, 0));
    int arg = 0;
    report("ioctl FIONBIO", ioctl(op, FIONBIO, &arg));
    report("mmap", mmap(NULL, 4096, PROT_READ, MAP_SHARED, op, 0) == MAP_FAILED ? -1 : 0);
    report("futimens", futimens(op, NULL));
    report("fcntl F_GETFL has O_PATH", (fcntl(op, F_GETFL) & O_PATH) != 0);
    report("fcntl F_SETFL", fcntl(op, F_SETFL, O_NONBLOCK));
    report("fcntl F_GETLK", ({
               struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
               fcntl(op, F_GETLK, &fl);
           }));
    int d = dup(op);
    report("dup", d >= 0 ? 0 : -1);
    struct stat st;
    report("fstat", fstat(op, &st));
    report("fstat size", st.st_size);
    report("close", close(op));
}

static int count_resident(const unsigned char *vec, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += vec[i] & 1;
    return c;
}

#define MPOL_F_NODE (1 << 0)
#define MPOL_F_ADDR (1 << 1)
#define MPOL_F_MEMS_ALLOWED (1 << 2)
#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_INTERLEAVE 3
#define MPOL_LOCAL 4
#define MPOL_F_STATIC_NODES (1 << 15)
#define MPOL_F_RELATIVE_NODES (1 << 14)

static long get_mempolicy(int *mode, unsigned long *mask, unsigned long maxnode, void *addr,
                          unsigned long flags) {
    return syscall(SYS_get_mempolicy, mode, mask, maxnode, addr, flags);
}
static long set_mempolicy(int mode, const unsigned long *mask, unsigned long maxnode) {
    return syscall(SYS_set_mempolicy, mode, mask, maxnode);
}
static long mbind(void *addr, unsigned long len, int mode, const unsigned long *mask,
                  unsigned long maxnode, unsigned flags) {
    return syscall(SYS_mbind, addr, len, mode, mask, maxnode, flags);
}

static void show_policy(const char *what, void *addr, unsigned long flags) {
    int mode = -1;
    unsigned long mask = 0xdead;
    long r = get_mempolicy(&mode, &mask, 64, addr, flags);
    if (r < 0)
        report(what, r);
    else
        printf("%s: mode %d mask %#lx\n", what, mode, mask);
}

static void child_shows_policy(void) {
    show_policy("child inherits", NULL, 0);
}

static void section_memory(void) {
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[8];
    char *m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 1, 4 * page);
    report("mincore touched", mincore(m, 4 * page, vec));
    report("resident of 4", count_resident(vec, 4));
    report("mincore unaligned address", mincore(m + 1, page, vec));
    report("mincore rounds length up", mincore(m, page + 1, vec));
    report("resident of 2", count_resident(vec, 2));
    report("mincore zero length", mincore(NULL, 0, NULL));
    report("mincore huge length", mincore(NULL, (size_t)-1, NULL));
    munmap(m + 2 * page, page);
    report("mincore over a hole", mincore(m, 4 * page, vec));
    report("mincore bad vector", mincore(m, page, (unsigned char *)1));

    show_policy("default", NULL, 0);
    unsigned long one = 1, four = 4, none = 0;
    report("set BIND node 0", set_mempolicy(MPOL_BIND, &one, 64));
    show_policy("after BIND", NULL, 0);
    in_child("policy", child_shows_policy);
    report("set INTERLEAVE|STATIC", set_mempolicy(MPOL_INTERLEAVE | MPOL_F_STATIC_NODES, &one, 64));
    show_policy("after INTERLEAVE|STATIC", NULL, 0);
    show_policy("next interleave node", NULL, MPOL_F_NODE);
    report("set BIND node 2 only", set_mempolicy(MPOL_BIND, &four, 64));
    report("set BIND empty", set_mempolicy(MPOL_BIND, &none, 64));
    report("set BIND null mask", set_mempolicy(MPOL_BIND, NULL, 64));
    report("set bad mode", set_mempolicy(77, &one, 64));
    report("set STATIC|RELATIVE", set_mempolicy(MPOL_BIND | MPOL_F_STATIC_NODES |
                                                    MPOL_F_RELATIVE_NODES, &one, 64));
    report("set DEFAULT with a mask", set_mempolicy(MPOL_DEFAULT, &one, 64));
    report("set mask size 0", set_mempolicy(MPOL_PREFERRED, &one, 0));
    report("set PREFERRED empty", set_mempolicy(MPOL_PREFERRED, NULL, 0));
    show_policy("after PREFERRED empty", NULL, 0);
    show_policy("not interleaving: node", NULL, MPOL_F_NODE);
    report("set DEFAULT", set_mempolicy(MPOL_DEFAULT, NULL, 0));
    show_policy("mems allowed", NULL, MPOL_F_MEMS_ALLOWED);
    show_policy("mems allowed with F_ADDR", NULL, MPOL_F_MEMS_ALLOWED | MPOL_F_ADDR);
    show_policy("address without F_ADDR", m, 0);
    show_policy("bad flag", NULL, 64);
    report("mask too small", get_mempolicy(NULL, &one, 0, NULL, 0));
    report("omit both pointers", get_mempolicy(NULL, NULL, 0, NULL, 0));

    char *v = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    v[0] = 1;
    show_policy("vma default", v, MPOL_F_ADDR);
    show_policy("node of page", v, MPOL_F_ADDR | MPOL_F_NODE);
    report("mbind PREFERRED", mbind(v, page, MPOL_PREFERRED, &one, 64, 0));
    show_policy("vma after mbind", v, MPOL_F_ADDR);
    show_policy("rest of vma", v + page, MPOL_F_ADDR);
    report("mbind unaligned", mbind(v + 1, page, MPOL_BIND, &one, 64, 0));
    report("mbind bad flags", mbind(v, page, MPOL_BIND, &one, 64, 0x100));
    report("mbind over a hole", mbind(m, 4 * page, MPOL_BIND, &one, 64, 0));
    report("mbind DEFAULT", mbind(v, page, MPOL_DEFAULT, NULL, 0, 0));
    show_policy("vma after DEFAULT", v, MPOL_F_ADDR);
    show_policy("unmapped address", (void *)-1, MPOL_F_ADDR);
}

#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEYCTL_SETPERM 5
#define KEYCTL_DESCRIBE 6
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_USR_SEARCH 0x00080000

static long keyctl(int op, unsigned long a2, unsigned long a3, unsigned long a4) {
    return syscall(SYS_keyctl, op, a2, a3, a4, 0);
}

/* The session keyring's description without its serial; records the serial in *id. */
static void describe(const char *what, long key, long *id) {
    char buf[256];
    long n = keyctl(KEYCTL_DESCRIBE, key, (unsigned long)buf, sizeof buf);
    if (n < 0) {
        report(what, n);
        return;
    }
    long serial = keyctl(KEYCTL_GET_KEYRING_ID, key, 0, 0);
    if (id) *id = serial;
    printf("%s: %s (length %ld, serial positive %d)\n", what, buf, n, serial > 0);
}

static long joined_serial;

static void child_joins_unsearchable(void) {
    long other = keyctl(KEYCTL_JOIN_SESSION_KEYRING, (unsigned long)"misc_calls_ring", 0, 0);
    printf("child: unsearchable name makes a new ring: %d\n", other > 0 && other != joined_serial);
    describe("child's new ring", KEY_SPEC_SESSION_KEYRING, NULL);
}

static void child_rejoins(void) {
    long inherited = 0;
    describe("child inherits", KEY_SPEC_SESSION_KEYRING, &inherited);
    printf("child inherited parent's: %d\n", inherited == joined_serial);
    long anon = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0);
    printf("child left for a new anonymous ring: %d\n", anon > 0 && anon != joined_serial);
    describe("parent's ring by serial", joined_serial, NULL);
    long again = keyctl(KEYCTL_JOIN_SESSION_KEYRING, (unsigned long)"misc_calls_ring", 0, 0);
    printf("child rejoined the searchable ring: %d\n", again == joined_serial);
}

static void child_locked_out(void) {
    describe("child describes locked ring", KEY_SPEC_SESSION_KEYRING, NULL);
    report("child setperm locked ring", keyctl(KEYCTL_SETPERM, KEY_SPEC_SESSION_KEYRING, 0, 0));
}

static void section_keys(void) {
    long anon = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0);
    printf("join anonymous positive: %d\n", anon > 0);
    describe("anonymous", KEY_SPEC_SESSION_KEYRING, NULL);
    describe("anonymous by serial", anon, NULL);
    char small[4];
    report("describe length only", keyctl(KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, 0, 0));
    report("describe small buffer",
           keyctl(KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, (unsigned long)small, sizeof small));
    long named = keyctl(KEYCTL_JOIN_SESSION_KEYRING, (unsigned long)"misc_calls_ring", 0, 0);
    describe("named", KEY_SPEC_SESSION_KEYRING, &joined_serial);
    printf("join returned the serial: %d\n", named == joined_serial);
    in_child("unsearchable", child_joins_unsearchable);
    report("setperm bad bits", keyctl(KEYCTL_SETPERM, KEY_SPEC_SESSION_KEYRING, 0x40, 0));
    report("setperm +usr search",
           keyctl(KEYCTL_SETPERM, KEY_SPEC_SESSION_KEYRING, 0x3f130000 | KEY_USR_SEARCH, 0));
    describe("searchable ring", named, NULL);
    in_child("rejoin", child_rejoins);
    report("setperm none", keyctl(KEYCTL_SETPERM, KEY_SPEC_SESSION_KEYRING, 0, 0));
    describe("locked ring", KEY_SPEC_SESSION_KEYRING, NULL);
    report("setperm locked ring", keyctl(KEYCTL_SETPERM, KEY_SPEC_SESSION_KEYRING, 0x3f000000, 0));
    in_child("locked", child_locked_out);
    report("get id of serial 0", keyctl(KEYCTL_GET_KEYRING_ID, 0, 0, 0));
    report("unknown operation", keyctl(9999, 0, 0, 0));
}

static void section_syslog(void) {
    char buf[64];
    report("SIZE_BUFFER", syscall(SYS_syslog, 10, NULL, 0));
    report("READ_ALL", syscall(SYS_syslog, 3, buf, sizeof buf));
    report("READ_ALL null", syscall(SYS_syslog, 3, NULL, 10));
    report("READ_ALL negative", syscall(SYS_syslog, 3, buf, -1));
}

static void section_waits(void) {
    struct timeval tv = {0, 10000};
    report("select no fds", select(0, NULL, NULL, NULL, &tv));
    printf("select left: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
    struct timespec ts = {0, 10000000};
    report("pselect no fds", syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, NULL));
    printf("pselect left: %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    ts.tv_sec = 0;
    ts.tv_nsec = 10000000;
    report("ppoll no fds", syscall(SYS_ppoll, NULL, 0, &ts, NULL, 8));
    printf("ppoll left: %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    int p[2];
    if (pipe(p) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        syscall(SYS_exit, 3);
    }
    close(p[1]);
    char c;
    report("read until the child is gone", read(p[0], &c, 1));
    /* The child may still be finishing its exit; give it a moment to become a zombie. */
    usleep(100000);
    report("kill zombie", kill(pid, SIGKILL));
    int status = 0;
    waitpid(pid, &status, 0);
    printf("zombie exit status kept: %d\n", WIFEXITED(status) && WEXITSTATUS(status) == 3);
    report("kill reaped", kill(pid, SIGKILL));
}

static void child_reads_dumpable(void) {
    report("child dumpable", prctl(PR_GET_DUMPABLE));
}

static void child_execs_undumpable(void) {
    report("child set dumpable 0", prctl(PR_SET_DUMPABLE, 0));
    fflush(stdout);
    execl(self_path, self_path, "dumpable_after_exec", (char *)NULL);
    report("exec", -1);
}

static void section_dumpable(void) {
    report("dumpable", prctl(PR_GET_DUMPABLE));
    report("set dumpable 0", prctl(PR_SET_DUMPABLE, 0));
    report("dumpable now", prctl(PR_GET_DUMPABLE));
    in_child("undumpable", child_reads_dumpable);
    report("set dumpable 1", prctl(PR_SET_DUMPABLE, 1));
    report("dumpable again", prctl(PR_GET_DUMPABLE));
    report("set dumpable 2", prctl(PR_SET_DUMPABLE, 2));
    report("set dumpable 3", prctl(PR_SET_DUMPABLE, 3));
    in_child("exec", child_execs_undumpable);
    /* A change of the effective user ID makes the process undumpable. */
    report("seteuid 65534", seteuid(65534));
    report("dumpable after seteuid", prctl(PR_GET_DUMPABLE));
    report("seteuid 0", seteuid(0));
    report("dumpable after seteuid back", prctl(PR_GET_DUMPABLE));
    report("setuid to the same", setuid(getuid()));
    report("set dumpable 1 again", prctl(PR_SET_DUMPABLE, 1));
    report("setuid to the same again", setuid(getuid()));
    report("dumpable after setuid to the same", prctl(PR_GET_DUMPABLE));
}

static int sealed_fd;

static void child_tries_seal(void) {
    report("child seal write", fcntl(sealed_fd, F_ADD_SEALS, F_SEAL_WRITE));
}

static void section_seals(void) {
    int fd = memfd_create("seals", MFD_ALLOW_SEALING);
    sealed_fd = fd;
    report("write", write(fd, dir, 4096 > sizeof dir ? sizeof dir : 4096));
    report("ftruncate", ftruncate(fd, 4096));
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    report("seal write, read-only shared mapping",
           fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW));
    report("seals after refusal", fcntl(fd, F_GET_SEALS));
    /* Split into two VMAs: both must go before the seal is allowed. */
    char *rw = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    mprotect(rw, 4096, PROT_READ);
    munmap(ro, 4096);
    report("seal write, split rw mapping", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    munmap(rw, 4096);
    report("seal write, half of it left", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    /* A fork child's copy keeps the mapping alive after the parent unmaps. */
    fflush(stdout);
    int pipefd[2];
    pipe(pipefd);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        read(pipefd[0], &c, 1);
        child_tries_seal();
        munmap(rw + 4096, 4096);
        report("child seal write after munmap", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
        fflush(stdout);
        _exit(0);
    }
    munmap(rw + 4096, 4096);
    report("parent seal write, child still maps", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    write(pipefd[1], "x", 1);
    int status;
    waitpid(pid, &status, 0);
    report("seals", fcntl(fd, F_GET_SEALS));
    char *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    report("private mapping after seal", priv == MAP_FAILED ? -1 : 0);
    report("shared read-only mapping after seal",
           mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED ? -1 : 0);
    report("shared writable mapping after seal",
           mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ? -1 : 0);
    close(fd);
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 2 && !strcmp(argv[1], "dumpable_after_exec")) {
        report("dumpable after exec", prctl(PR_GET_DUMPABLE));
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: misc_calls personality|vectored|opath|memory|keys|waits|syslog|"
                        "dumpable|seals\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "/tmp/misc_calls.%d", getpid());
    if (mkdir(dir, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    if (!strcmp(argv[1], "personality"))
        section_personality();
    else if (!strcmp(argv[1], "vectored"))
        section_vectored();
    else if (!strcmp(argv[1], "opath"))
        section_opath();
    else if (!strcmp(argv[1], "memory"))
        section_memory();
    else if (!strcmp(argv[1], "keys"))
        section_keys();
    else if (!strcmp(argv[1], "waits"))
        section_waits();
    else if (!strcmp(argv[1], "syslog"))
        section_syslog();
    else if (!strcmp(argv[1], "dumpable"))
        section_dumpable();
    else if (!strcmp(argv[1], "seals"))
        section_seals();
    else
        return 2;
    char file[PATH_MAX];
    path(file, "data");
    unlink(file);
    path(file, "f");
    unlink(file);
    if (rmdir(dir) != 0) {
        perror("rmdir");
        return 1;
    }
    printf("done\n");
    return 0;
}
