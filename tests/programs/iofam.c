/* Data-moving system calls and FIFOs, printed so a native run and a sandboxed run compare
 * line by line. Each section works in a fresh directory of its own under /tmp.
 *
 *   iofam fifo     mkfifo, then open's blocking and O_NONBLOCK rules, data, EOF, SIGPIPE
 *   iofam splice   sendfile, splice, tee, vmsplice, copy_file_range and their errors
 *   iofam memfd    memfd_create, seals, /proc/self/fd naming, F_GETPIPE_SZ/F_SETPIPE_SZ
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

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

static void make_dir(void) {
    strcpy(dir, "/tmp/iofam.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* The section directories are flat: their files, then the directory. */
static void remove_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            path(p, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void on_alarm(int sig) {
    (void)sig;
}

/* Arms a one-shot SIGALRM after `ms` whose handler interrupts (no SA_RESTART). */
static void alarm_ms(int ms) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void read_report(const char *what, int fd) {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
        report(what, n);
        return;
    }
    printf("%s: %zd '%.*s'\n", what, n, (int)n, buf);
    fflush(stdout);
}

static void fifo(void) {
    char p[PATH_MAX];
    path(p, "fifo");
    report("mkfifo", mkfifo(p, 0600));
    struct stat st;
    stat(p, &st);
    printf("is fifo: %d\n", S_ISFIFO(st.st_mode));

    /* O_RDONLY|O_NONBLOCK succeeds alone: read is EOF, poll shows no hang-up yet. */
    int r = open(p, O_RDONLY | O_NONBLOCK);
    report("open rdonly nonblock", r >= 0 ? 0 : -1);
    read_report("read without writers", r);
    struct pollfd pfd = {r, POLLIN, 0};
    report("poll before any writer", poll(&pfd, 1, 0));
    /* With a reader, a non-blocking writer opens; data flows; closing it is a hang-up. */
    int w = open(p, O_WRONLY | O_NONBLOCK);
    report("open wronly nonblock with reader", w >= 0 ? 0 : -1);
    report("write", write(w, "hello", 5));
    read_report("read", r);
    close(w);
    pfd.revents = 0;
    report("poll after writer closed", poll(&pfd, 1, 0));
    printf("revents hup: %d\n", !!(pfd.revents & POLLHUP));
    close(r);

    /* O_WRONLY|O_NONBLOCK without a reader is ENXIO. */
    report("open wronly nonblock alone", open(p, O_WRONLY | O_NONBLOCK));

    /* O_RDWR never blocks; every opener shares the one pipe. */
    int rw = open(p, O_RDWR | O_TRUNC);
    report("open rdwr", rw >= 0 ? 0 : -1);
    int w2 = open(p, O_WRONLY | O_NONBLOCK);
    report("write via second opener", write(w2, "shared", 6));
    read_report("read via rdwr", rw);
    report("fstat", fstat(w2, &st));
    printf("fstat is fifo: %d\n", S_ISFIFO(st.st_mode));
    /* Data left in the pipe goes when the last opener closes. */
    report("write left behind", write(w2, "lost", 4));
    close(w2);
    close(rw);
    rw = open(p, O_RDWR | O_NONBLOCK);
    read_report("read after reopen", rw);
    close(rw);

    /* A blocking reader waits for a writer. */
    pid_t child = fork();
    if (child == 0) {
        usleep(100000);
        int cw = open(p, O_WRONLY);
        if (write(cw, "from child", 10) != 10)
            _exit(1);
        _exit(0);
    }
    r = open(p, O_RDONLY);
    report("blocking open rdonly", r >= 0 ? 0 : -1);
    waitpid(child, NULL, 0);
    read_report("read child data", r);
    read_report("read after writer exit", r);
    close(r);

    /* A blocking writer waits for a reader; SIGPIPE once the reader is gone. */
    child = fork();
    if (child == 0) {
        usleep(100000);
        int cr = open(p, O_RDONLY);
        char buf[16];
        ssize_t n = read(cr, buf, sizeof buf);
        _exit(n == 3 ? 0 : 1);
    }
    w = open(p, O_WRONLY);
    report("blocking open wronly", w >= 0 ? 0 : -1);
    report("write to child", write(w, "abc", 3));
    int status;
    waitpid(child, &status, 0);
    printf("child read: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    signal(SIGPIPE, SIG_IGN);
    report("write without reader", write(w, "x", 1));
    signal(SIGPIPE, SIG_DFL);
    close(w);

    /* Opening is interruptible: a signal without SA_RESTART ends it with EINTR. */
    alarm_ms(100);
    report("open rdonly interrupted", open(p, O_RDONLY));
    alarm_ms(100);
    report("open wronly interrupted", open(p, O_WRONLY));

    /* A writer that opens and closes again still releases a blocked reader. */
    child = fork();
    if (child == 0) {
        usleep(100000);
        int cw = open(p, O_WRONLY | O_NONBLOCK);
        close(cw);
        _exit(cw >= 0 ? 0 : 1);
    }
    r = open(p, O_RDONLY);
    report("open released by a passing writer", r >= 0 ? 0 : -1);
    waitpid(child, &status, 0);
    printf("passing writer opened: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    read_report("read after passing writer", r);
    close(r);

    /* /proc/self/fd/N of a pipe opens that same pipe, as a FIFO. */
    int pp[2];
    pipe(pp);
    char l[64];
    snprintf(l, sizeof l, "/proc/self/fd/%d", pp[0]);
    int again = open(l, O_RDONLY);
    snprintf(l, sizeof l, "/proc/self/fd/%d", pp[1]);
    int wagain = open(l, O_WRONLY);
    report("write via reopened write end", write(wagain, "reopened", 8));
    read_report("read via reopened read end", again);
    close(again);
    close(wagain);
    close(pp[0]);
    close(pp[1]);
}

static unsigned sum(const unsigned char *b, size_t n) {
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s = s * 31 + b[i];
    return s;
}

/* Prints the length and checksum of a file's contents. */
static void show_file(const char *what, const char *p) {
    static unsigned char buf[300000];
    int fd = open(p, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    printf("%s: %zd bytes sum %u\n", what, n, n > 0 ? sum(buf, n) : 0);
    fflush(stdout);
}

static void show_offset(const char *what, int fd, loff_t off) {
    printf("%s: offset %lld pos %lld\n", what, (long long)off, (long long)lseek(fd, 0, SEEK_CUR));
    fflush(stdout);
}

static void read_sum(const char *what, int fd, size_t n) {
    static unsigned char buf[300000];
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += r;
    }
    printf("%s: %zu bytes sum %u\n", what, got, sum(buf, got));
    fflush(stdout);
}

static void splices(void) {
    char src[PATH_MAX], dst[PATH_MAX], app[PATH_MAX];
    path(src, "src");
    path(dst, "dst");
    path(app, "append");
    static unsigned char data[100000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = i % 251;
    int in = open(src, O_RDWR | O_CREAT, 0600);
    report("write source", write(in, data, sizeof data));
    lseek(in, 0, SEEK_SET);
    int out = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int ap = open(app, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int rdonly = open(src, O_RDONLY);
    int wronly = open(src, O_WRONLY);

    /* sendfile between files, with and without an offset. */
    loff_t off = 10;
    report("sendfile with offset", sendfile(out, in, &off, 70000));
    show_offset("sendfile source", in, off);
    lseek(in, 99990, SEEK_SET);
    report("sendfile at file offset", sendfile(out, in, NULL, 100));
    show_offset("sendfile source", in, 0);
    show_file("sendfile result", dst);
    report("sendfile at end", sendfile(out, in, NULL, 100));
    off = -1;
    report("sendfile negative offset", sendfile(out, in, &off, 10));
    report("sendfile to read-only", sendfile(rdonly, in, NULL, 10));
    report("sendfile from write-only", sendfile(out, wronly, NULL, 10));
    report("sendfile to append", sendfile(ap, in, NULL, 10));
    report("sendfile bad fd", sendfile(out, 999, NULL, 10));
    int p[2];
    pipe(p);
    write(p[1], "abc", 3);
    report("sendfile from pipe", sendfile(out, p[0], NULL, 3));
    off = 0;
    report("sendfile from pipe with offset", sendfile(out, p[0], &off, 3));
    close(p[0]);
    close(p[1]);

    /* sendfile to a socket and to a pipe. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    off = 500;
    report("sendfile to socket", sendfile(sv[0], in, &off, 20000));
    read_sum("socket received", sv[1], 20000);
    close(sv[0]);
    close(sv[1]);
    pipe(p);
    off = 0;
    report("sendfile to pipe", sendfile(p[1], in, &off, 100000));
    read_sum("pipe received", p[0], 65536);
    close(p[0]);
    close(p[1]);

    /* splice file -> pipe -> file. */
    pipe(p);
    off = 5;
    report("splice file to pipe", splice(in, &off, p[1], NULL, 5000, 0));
    show_offset("splice source", in, off);
    ftruncate(out, 0);
    off = 0;
    report("splice pipe to file", splice(p[0], NULL, out, &off, 3000, 0));
    show_offset("splice destination", out, off);
    lseek(out, 0, SEEK_END);
    report("splice pipe to file at file offset", splice(p[0], NULL, out, NULL, 70000, 0));
    lseek(in, 0, SEEK_SET);
    report("splice file to pipe at file offset", splice(in, NULL, p[1], NULL, 100000, 0));
    show_offset("splice source", in, 0);
    report("splice pipe to file again", splice(p[0], NULL, out, NULL, 100000, 0));
    show_file("splice result", dst);
    report("splice empty pipe nonblock", splice(p[0], NULL, out, NULL, 10, SPLICE_F_NONBLOCK));
    alarm_ms(100);
    report("splice empty pipe interrupted", splice(p[0], NULL, out, NULL, 10, 0));

    /* splice's errors. */
    report("splice no pipe", splice(in, NULL, out, NULL, 10, 0));
    off = 0;
    report("splice offset on pipe", splice(p[0], &off, out, NULL, 10, 0));
    report("splice same pipe", splice(p[0], NULL, p[1], NULL, 10, 0));
    report("splice bad flags", splice(in, NULL, p[1], NULL, 10, 0x100));
    report("splice zero length", splice(in, NULL, out, NULL, 0, 0));
    report("splice to append", splice(p[0], NULL, ap, NULL, 10, 0));
    report("splice from write-only", splice(wronly, NULL, p[1], NULL, 10, 0));
    report("splice to read end", splice(in, NULL, p[0], NULL, 10, 0));
    off = -5;
    report("splice negative offset", splice(in, &off, p[1], NULL, 10, 0));

    /* pipe -> pipe, EOF, SIGPIPE. */
    int q[2];
    pipe(q);
    write(p[1], "pipe2pipe", 9);
    report("splice pipe to pipe", splice(p[0], NULL, q[1], NULL, 100, 0));
    read_report("read spliced", q[0]);
    close(p[1]);
    report("splice at EOF", splice(p[0], NULL, q[1], NULL, 100, 0));
    close(p[0]);
    close(q[0]);
    signal(SIGPIPE, SIG_IGN);
    report("splice to pipe without reader", splice(in, NULL, q[1], NULL, 10, 0));
    signal(SIGPIPE, SIG_DFL);
    close(q[1]);

    /* tee copies without consuming. */
    pipe(p);
    pipe(q);
    write(p[1], "teedata", 7);
    report("tee", tee(p[0], q[1], 100, 0));
    read_report("read tee output", q[0]);
    read_report("read tee input", p[0]);
    report("tee same pipe", tee(p[0], p[1], 10, 0));
    report("tee not a pipe", tee(in, q[1], 10, 0));
    report("tee bad flags", tee(p[0], q[1], 10, 0x100));
    report("tee empty nonblock", tee(p[0], q[1], 10, SPLICE_F_NONBLOCK));
    alarm_ms(100);
    report("tee empty interrupted", tee(p[0], q[1], 10, 0));
    report("tee wrong ends", tee(p[1], q[0], 10, 0));

    /* vmsplice into and out of a pipe. */
    char a[] = "ab", b[] = "cde";
    struct iovec iov[2] = {{a, 2}, {b, 3}};
    report("vmsplice to pipe", vmsplice(p[1], iov, 2, 0));
    read_report("read vmspliced", p[0]);
    write(p[1], "xyz", 3);
    char back[10] = {0};
    struct iovec riov = {back, sizeof back};
    report("vmsplice from pipe", vmsplice(p[0], &riov, 1, 0));
    printf("vmspliced out: %s\n", back);
    report("vmsplice on a file", vmsplice(in, iov, 2, 0));
    report("vmsplice bad flags", vmsplice(p[1], iov, 2, 0x100));
    report("vmsplice empty nonblock", vmsplice(p[0], &riov, 1, SPLICE_F_NONBLOCK));
    static char fill[65536];
    write(p[1], fill, sizeof fill);
    report("vmsplice full nonblock", vmsplice(p[1], iov, 2, SPLICE_F_NONBLOCK));
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);

    /* copy_file_range between regular files of one filesystem. */
    ftruncate(out, 0);
    loff_t oin = 100, oout = 0;
    report("copy_file_range", copy_file_range(in, &oin, out, &oout, 20000, 0));
    printf("copy_file_range offsets: %lld %lld\n", (long long)oin, (long long)oout);
    show_file("copy_file_range result", dst);
    lseek(in, 99000, SEEK_SET);
    lseek(out, 0, SEEK_SET);
    report("copy_file_range at file offsets", copy_file_range(in, NULL, out, NULL, 5000, 0));
    show_offset("copy_file_range source", in, 0);
    show_offset("copy_file_range destination", out, 0);
    oin = 200000;
    report("copy_file_range past end", copy_file_range(in, &oin, out, NULL, 10, 0));
    report("copy_file_range flags", copy_file_range(in, NULL, out, NULL, 10, 1));
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    report("copy_file_range directory", copy_file_range(d, NULL, out, NULL, 10, 0));
    close(d);
    pipe(p);
    report("copy_file_range pipe", copy_file_range(p[0], NULL, out, NULL, 10, 0));
    close(p[0]);
    close(p[1]);
    report("copy_file_range to append", copy_file_range(in, NULL, ap, NULL, 10, 0));
    report("copy_file_range to read-only", copy_file_range(in, NULL, rdonly, NULL, 10, 0));
    oin = 0;
    oout = 10;
    report("copy_file_range overlapping", copy_file_range(in, &oin, in, &oout, 100, 0));
    oout = 200;
    report("copy_file_range same file", copy_file_range(in, &oin, in, &oout, 100, 0));
    close(in);
    close(out);
    close(ap);
    close(rdonly);
    close(wronly);
}

static void show_link(const char *what, int fd) {
    char l[64], target[PATH_MAX];
    snprintf(l, sizeof l, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(l, target, sizeof target - 1);
    if (n < 0) {
        report(what, -1);
        return;
    }
    target[n] = 0;
    printf("%s: %s\n", what, target);
    fflush(stdout);
}

static int maps_has(const char *needle) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void memfds(void) {
    int fd = memfd_create("test", MFD_CLOEXEC);
    report("memfd_create", fd >= 0 ? 0 : -1);
    printf("cloexec: %d\n", fcntl(fd, F_GETFD));
    show_link("link", fd);
    struct stat st;
    fstat(fd, &st);
    printf("mode: %o\n", st.st_mode);
    /* Without O_LARGEFILE, which x86-64 Linux adds and glibc calls 0. */
    printf("flags: %o\n", fcntl(fd, F_GETFL) & ~0100000);
    report("write", write(fd, "hello", 5));
    char buf[16] = {0};
    report("pread", pread(fd, buf, sizeof buf, 0));
    printf("data: %s\n", buf);
    report("ftruncate", ftruncate(fd, 4096));
    fstat(fd, &st);
    printf("size: %lld\n", (long long)st.st_size);
    report("seals without sealing", fcntl(fd, F_GET_SEALS));
    report("add seal without sealing", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    report("bad flags", memfd_create("x", 0x100));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    report("long name", memfd_create(longname, 0));
    longname[249] = 0;
    int ok = memfd_create(longname, 0);
    report("longest name", ok >= 0 ? 0 : -1);
    close(ok);

    /* Seals: shrink, grow, write, seal. */
    int s = memfd_create("sealed", MFD_ALLOW_SEALING);
    report("seals with sealing", fcntl(s, F_GET_SEALS));
    report("write", write(s, "12345678", 8));
    report("add bad seal", fcntl(s, F_ADD_SEALS, 0x100));
    report("add shrink", fcntl(s, F_ADD_SEALS, F_SEAL_SHRINK));
    report("shrink", ftruncate(s, 4));
    report("grow", ftruncate(s, 100));
    report("add grow", fcntl(s, F_ADD_SEALS, F_SEAL_GROW));
    report("grow sealed", ftruncate(s, 200));
    report("write past end", pwrite(s, "x", 1, 100));
    report("write inside", pwrite(s, "x", 1, 10));
    char *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s, 0);
    report("mmap shared writable", rw == MAP_FAILED ? -1 : 0);
    munmap(rw, 4096);
    report("add write", fcntl(s, F_ADD_SEALS, F_SEAL_WRITE));
    report("write sealed", pwrite(s, "x", 1, 10));
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s, 0);
    report("mmap shared writable sealed", m == MAP_FAILED ? -1 : 0);
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, s, 0);
    report("mmap shared read-only", ro == MAP_FAILED ? -1 : 0);
    printf("mapped: %.8s\n", ro);
    printf("maps name: %d\n", maps_has("/memfd:sealed (deleted)"));
    report("mprotect writable", mprotect(ro, 4096, PROT_READ | PROT_WRITE));
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, s, 0);
    report("mmap private writable", m == MAP_FAILED ? -1 : 0);
    report("add seal", fcntl(s, F_ADD_SEALS, F_SEAL_SEAL));
    report("seals", fcntl(s, F_GET_SEALS));
    report("add after seal", fcntl(s, F_ADD_SEALS, F_SEAL_SHRINK));

    /* F_SEAL_FUTURE_WRITE: existing writable mappings keep writing. */
    int fw = memfd_create("future", MFD_ALLOW_SEALING);
    ftruncate(fw, 4096);
    char *old = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fw, 0);
    report("add future write", fcntl(fw, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
    report("write future sealed", write(fw, "x", 1));
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fw, 0);
    report("new mmap future sealed", m == MAP_FAILED ? -1 : 0);
    memcpy(old, "still", 5);
    memset(buf, 0, sizeof buf);
    pread(fw, buf, 5, 0);
    printf("old mapping wrote: %s\n", buf);

    /* copy_file_range: within the memfd filesystem, not across filesystems. */
    int c = memfd_create("copy", 0);
    loff_t zero = 0;
    report("copy_file_range memfd to memfd", copy_file_range(fd, &zero, c, NULL, 5, 0));
    char f[PATH_MAX];
    path(f, "file");
    int reg = open(f, O_RDWR | O_CREAT, 0600);
    zero = 0;
    report("copy_file_range memfd to file", copy_file_range(fd, &zero, reg, NULL, 5, 0));
    report("seals of a file elsewhere", fcntl(reg, F_GET_SEALS) >= 0 || errno == EINVAL ? 0 : -1);
    close(reg);

    /* Pipe capacity. */
    int p[2];
    pipe2(p, O_NONBLOCK);
    report("pipe size", fcntl(p[1], F_GETPIPE_SZ));
    report("set 4096", fcntl(p[1], F_SETPIPE_SZ, 4096));
    report("set 5000", fcntl(p[0], F_SETPIPE_SZ, 5000));
    report("set 0", fcntl(p[0], F_SETPIPE_SZ, 0));
    report("pipe size", fcntl(p[0], F_GETPIPE_SZ));
    static char fill[8192];
    report("write to full", write(p[1], fill, sizeof fill));
    report("write more", write(p[1], fill, 1));
    struct pollfd pfd = {p[1], POLLOUT, 0};
    report("poll full", poll(&pfd, 1, 0));
    report("set 8192", fcntl(p[0], F_SETPIPE_SZ, 8192));
    report("write after growing", write(p[1], fill, sizeof fill));
    report("shrink below data", fcntl(p[0], F_SETPIPE_SZ, 4096));
    report("size of a file", fcntl(fd, F_GETPIPE_SZ));
    char fp[PATH_MAX];
    path(fp, "fifo");
    mkfifo(fp, 0600);
    int ff = open(fp, O_RDWR);
    report("fifo size", fcntl(ff, F_GETPIPE_SZ));
    close(ff);
    close(p[0]);
    close(p[1]);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: iofam fifo|splice|memfd\n");
        return 2;
    }
    make_dir();
    if (strcmp(argv[1], "fifo") == 0)
        fifo();
    else if (strcmp(argv[1], "splice") == 0)
        splices();
    else if (strcmp(argv[1], "memfd") == 0)
        memfds();
    else {
        fprintf(stderr, "unknown section %s\n", argv[1]);
        remove_dir();
        return 2;
    }
    remove_dir();
    printf("done\n");
    return 0;
}
