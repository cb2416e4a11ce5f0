/*
 * fuzz: throws pseudo-random arguments at the given system calls and reports
 * that it survived. Deterministic for a given seed. The caller decides which
 * calls are safe to fuzz (nothing that ends, stops or blocks the program) and,
 * per argument, which class of values it may take, so that a call cannot
 * destroy the fuzzer itself (unmap its code, close its stdout).
 *
 *   fuzz [-s SEED] [-n ITERATIONS] NR[:SPEC] ...
 *   fuzz -r ROUNDS [-f FIRST] [-c CALLS] [-w SECONDS] [-s SEED] NR[:SPEC] ...
 *
 * The first form fuzzes each call in turn, ITERATIONS times, in this process.
 * The second (the mix) runs ROUNDS rounds, numbered from FIRST (default 0),
 * each in a fresh child that makes CALLS (default 2000) calls picked at random
 * from the list; round R of seed S is the same wherever it runs, so
 * "-s S -r 1 -f R" replays it. In the mix a SIGALRM with a handler (no
 * SA_RESTART) arrives every 10 ms and the signal mask is emptied before each
 * call, so a call that would wait forever (pause, a read of an empty pipe)
 * returns EINTR instead. The parent is a watchdog: a child that has not
 * finished its round within SECONDS (default 60) is reported as hung with the
 * call it is in (seed, round, index, number, arguments), then SIGKILLed; one
 * that SIGKILL does not end within 10 s, or that dies of a signal, is reported
 * too, and any of these makes the exit status 1.
 *
 * SPEC is a comma-separated list, one element per argument (missing ones are
 * "r"). An element that starts with a digit or '-' is a '|'-separated list of
 * integers to pick from (e.g. "0x1003|0x1004"); otherwise it is a string of
 * class letters to pick from (e.g. "zn"):
 *   r  anything: small and huge integers, bit patterns, -1, valid pointers
 *      into a scratch buffer, pointers that straddle a guard page, invalid
 *      and read-only pointers, file descriptors other than 1 and 2
 *   z  zero
 *   p  a valid pointer into the scratch buffer (random contents)
 *   n  an invalid pointer (NULL, unmapped, guard page, kernel, non-canonical)
 *   f  a file descriptor number that is never stdout or stderr
 *   a  an address inside a reserved sacrificial region (for mm calls)
 *   l  a length for mm calls that keeps a range inside that region, or garbage
 *      large enough to be rejected
 *   b  a program break value at or above the initial break, or garbage
 *   t  a pointer to a short or invalid timespec, or an invalid pointer (never
 *      NULL, which would mean "wait forever" to some calls)
 *
 * Progress ("fuzz: nr N") goes to stderr before each call number so a run
 * that dies names its culprit; the last stdout line is "survived ...".
 * Mappings that mmap/mremap create outside the region are unmapped again.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define SCRATCH_PAGES 16ul
#define SCRATCH_LEN (SCRATCH_PAGES * PAGE)
#define REGION_HINT 0x200000000000ul
#define REGION_LEN (256ul << 20)
#define REGION_USED (64ul << 20)
#define MM_LEN_MAX (128ul << 20)
#define MAX_SPECS 1024
#define MAX_ARGS 6
#define MAX_CHOICES 16

struct arg_spec {
    int nvalues;                    /* > 0: pick from values[] */
    uint64_t values[MAX_CHOICES];
    char classes[MAX_CHOICES + 1];  /* otherwise: pick a class letter */
};

struct call_spec {
    long nr;
    const char *text;
    struct arg_spec args[MAX_ARGS];
};

static uint64_t rng;
static unsigned char *scratch;      /* SCRATCH_LEN bytes rw, then a PROT_NONE page */
static unsigned char *ro_page;      /* one PROT_READ page */
static uint64_t region;
static uint64_t initial_brk;

static uint64_t next(void) {
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static uint64_t below(uint64_t n) { return n ? next() % n : 0; }

/* Writes all of s. Fuzzed calls may have made the file description non-blocking
 * (through a duplicate of the fd), so EAGAIN waits and retries. */
static void out(int fd, const char *s) {
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            continue;
        }
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

static void die(const char *what) {
    char line[256];
    snprintf(line, sizeof line, "fuzz: %s failed: errno %d\n", what, errno);
    out(2, line);
    exit(2);
}

static uint64_t scratch_ptr(void) { return (uint64_t)scratch + below(SCRATCH_LEN); }

static uint64_t invalid_ptr(void) {
    static const uint64_t bad[] = {
        0, 1, 8, 4095, 4096, 0x10000,
        0x7ffffffff000ul,           /* top of user space, unmapped */
        0x800000000000ul,           /* first non-canonical */
        0xffff800000000000ul,       /* kernel */
        0xffffffffff600000ul,       /* vsyscall page */
        0xfffffffffffff000ul,
        0xdead000000000000ul,
    };
    switch (below(3)) {
    case 0: return bad[below(sizeof bad / sizeof bad[0])];
    case 1: return (uint64_t)scratch + SCRATCH_LEN + below(PAGE); /* guard page */
    default: return (uint64_t)scratch + SCRATCH_LEN - 1 - below(7); /* < 8 bytes before it */
    }
}

/* Never 1 or 2 in the low 32 bits: the kernel reads fds as unsigned int, so
 * 0x100000001 is stdout. 0x100000003 checks that truncation. */
static uint64_t fd_value(void) {
    static const uint64_t fds[] = {
        (uint64_t)-1, 0, 3, 4, 5, 6, 7, 8, 9, 10, 31, 63, 64, 100, 1023, 1024, 65535,
        0x7fffffff, 0x80000000, (uint64_t)-100 /* AT_FDCWD */, 0xffffffff, 0x100000003ul,
    };
    return fds[below(sizeof fds / sizeof fds[0])];
}

static uint64_t timespec_ptr(void) {
    static const int64_t nsecs[] = {0, 1, 1000, 1000000, 1000000000, -1};
    if (below(8) == 0)
        return invalid_ptr() | 1; /* never NULL */
    int64_t *ts = (int64_t *)(scratch + (below(SCRATCH_LEN / 16 - 1) * 16));
    ts[0] = below(4) == 0 ? -1 : 0;
    ts[1] = nsecs[below(sizeof nsecs / sizeof nsecs[0])];
    return (uint64_t)ts;
}

static uint64_t random_value(void) {
    static const uint64_t interesting[] = {
        0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ul, 0xffffffff80000000ul,
        0x7fffffffffffffffull, 0x8000000000000000ull, 0xfffffffffffff000ull,
        4095, 4096, 4097, 65536, 1ul << 20, 1ul << 30, 0x7fffffffffffull,
    };
    switch (below(14)) {
    case 0: return 0;
    case 1:
    case 2: return below(64);
    case 3: return below(4097);
    case 4: return (uint64_t)-1;
    case 5: return next() & 0xffffffff;
    case 6: return next();
    case 7: return interesting[below(sizeof interesting / sizeof interesting[0])];
    case 8: return 1ull << below(64);
    case 9:
    case 10: return scratch_ptr();
    case 11: return invalid_ptr();
    case 12: return (uint64_t)ro_page + below(PAGE);
    default: return fd_value();
    }
}

static uint64_t class_value(char c) {
    switch (c) {
    case 'z': return 0;
    case 'p': return scratch_ptr();
    case 'n': return invalid_ptr();
    case 'f': return fd_value();
    case 'a':
        return region + (below(4) == 0 ? below(REGION_USED) : below(REGION_USED / PAGE) * PAGE);
    case 'l':
        switch (below(6)) {
        case 0: return 0;
        case 1: return below(MM_LEN_MAX);
        case 2: return (uint64_t)-1 - below(PAGE);
        case 3: return 1ull << (60 + below(4));
        default: return (below(MM_LEN_MAX / PAGE) + 1) * PAGE;
        }
    case 'b':
        switch (below(4)) {
        case 0: return next();
        case 1: return 0;
        default: return initial_brk + below(64ul << 20);
        }
    case 't': return timespec_ptr();
    default: return random_value();
    }
}

static uint64_t arg_value(const struct arg_spec *a) {
    if (a->nvalues > 0)
        return a->values[below((uint64_t)a->nvalues)];
    size_t n = strlen(a->classes);
    return class_value(n ? a->classes[below(n)] : 'r');
}

/* Scratch contents: a mix of random bytes, pointers back into the scratch
 * buffer (so nested pointers such as iovecs are sometimes valid) and small
 * integers (so strings end and lengths are sane). */
static void fill(unsigned char *p, size_t len) {
    uint64_t *q = (uint64_t *)p;
    for (size_t i = 0; i < len / 8; i++) {
        switch (below(4)) {
        case 0: q[i] = scratch_ptr(); break;
        case 1: q[i] = below(256); break;
        default: q[i] = next(); break;
        }
    }
}

static int parse_spec(const char *text, struct call_spec *c) {
    memset(c, 0, sizeof *c);
    c->text = text;
    char *end;
    c->nr = strtol(text, &end, 0);
    if (end == text)
        return -1;
    if (*end == '\0')
        return 0;
    if (*end != ':')
        return -1;
    const char *s = end + 1;
    for (int i = 0; i < MAX_ARGS && *s != '\0'; i++) {
        struct arg_spec *a = &c->args[i];
        if ((*s >= '0' && *s <= '9') || *s == '-') {
            for (;;) {
                if (a->nvalues == MAX_CHOICES)
                    return -1;
                a->values[a->nvalues++] = (uint64_t)strtoll(s, &end, 0);
                if (end == s)
                    return -1;
                s = end;
                if (*s != '|')
                    break;
                s++;
            }
        } else {
            int n = 0;
            while (*s != '\0' && *s != ',') {
                if (n == MAX_CHOICES || strchr("rzpnfalbt", *s) == NULL)
                    return -1;
                a->classes[n++] = *s++;
            }
        }
        if (*s == ',')
            s++;
        else if (*s != '\0')
            return -1;
    }
    return 0;
}

static int is_error(long ret) { return ret == -1 && errno != 0; }

static int in_region(uint64_t addr) { return addr >= region && addr < region + REGION_LEN; }

/* Fresh arguments for a call of `c`. */
static void draw_args(const struct call_spec *c, uint64_t *a) {
    /* Refresh part of the scratch first: the arguments may point into it
     * (timespecs written by arg_value must survive until the call). */
    fill(scratch + below(SCRATCH_LEN / 256) * 256, 256);
    for (int k = 0; k < MAX_ARGS; k++)
        a[k] = arg_value(&c->args[k]);
}

/* Calls `c` with `a`; unmaps what mmap/mremap mapped outside the region. */
static void make_call(const struct call_spec *c, const uint64_t *a) {
    errno = 0;
    long ret = syscall(c->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    uint64_t mapped_len = c->nr == SYS_mmap ? a[1] : c->nr == SYS_mremap ? a[2] : 0;
    if (mapped_len != 0 && !is_error(ret) && !in_region((uint64_t)ret))
        munmap((void *)ret, mapped_len);
}

/* What a mix child is doing, in memory its parent shares: how the watchdog
 * names the call a child hung or died in. */
struct progress {
    volatile long index;
    volatile long nr;
    volatile uint64_t args[MAX_ARGS];
};

static void on_alarm(int sig) { (void)sig; }

/* A mix child: `calls` random calls from `specs`, interrupted every 10 ms. */
static void mix_child(const struct call_spec *specs, int nspecs, long calls, uint64_t round_seed,
                      struct progress *p) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 10000}, {0, 10000}};
    setitimer(ITIMER_REAL, &every, NULL);
    sigset_t none;
    sigemptyset(&none);
    rng = round_seed;
    fill(scratch, SCRATCH_LEN);
    for (long i = 0; i < calls; i++) {
        const struct call_spec *c = &specs[below((uint64_t)nspecs)];
        sigprocmask(SIG_SETMASK, &none, NULL);
        p->index = i;
        p->nr = c->nr;
        uint64_t args[MAX_ARGS];
        draw_args(c, args);
        for (int k = 0; k < MAX_ARGS; k++)
            p->args[k] = args[k];
        make_call(c, args);
    }
    _exit(0);
}

static void report(const char *what, uint64_t seed, long round, const struct progress *p) {
    char line[512];
    snprintf(line, sizeof line,
             "fuzz: %s: seed %#llx round %ld (replay: -s %#llx -r 1 -f %ld), call %ld: nr %ld, "
             "args %#llx %#llx %#llx %#llx %#llx %#llx\n",
             what, (unsigned long long)seed, round, (unsigned long long)seed, round, p->index,
             p->nr, (unsigned long long)p->args[0], (unsigned long long)p->args[1],
             (unsigned long long)p->args[2], (unsigned long long)p->args[3],
             (unsigned long long)p->args[4], (unsigned long long)p->args[5]);
    out(2, line);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to `ms` for `pid`; returns its status, or -1 if it is still there. */
static int wait_for(pid_t pid, long ms) {
    long until = now_ms() + ms;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        if (w < 0 && errno != EINTR)
            die("waitpid");
        if (now_ms() >= until)
            return -1;
        struct timespec tick = {0, 5000000};
        nanosleep(&tick, NULL);
    }
}

/* The mix (see the top of the file); returns the exit status. */
static int mix(const struct call_spec *specs, int nspecs, uint64_t seed, long first, long rounds,
               long calls, long watchdog_s) {
    struct progress *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap progress");
    char line[256];
    int failed = 0;
    for (long r = first; r < first + rounds; r++) {
        uint64_t round_seed = seed ^ ((uint64_t)(r + 1) * 0x9e3779b97f4a7c15ull);
        memset((void *)p, 0, sizeof *p);
        p->nr = -1;
        pid_t c = fork();
        if (c < 0)
            die("fork");
        if (c == 0)
            mix_child(specs, nspecs, calls, round_seed, p);
        int st = wait_for(c, watchdog_s * 1000);
        if (st == -1) {
            report("hung", seed, r, p);
            kill(c, SIGKILL);
            st = wait_for(c, 10000);
            if (st == -1) {
                report("SIGKILL did not end the child within 10 s", seed, r, p);
                return 1;
            }
            failed = 1;
            continue;
        }
        if (WIFSIGNALED(st)) {
            snprintf(line, sizeof line, "died of signal %d", WTERMSIG(st));
            report(line, seed, r, p);
            failed = 1;
        } else if (WEXITSTATUS(st) != 0) {
            snprintf(line, sizeof line, "exited with %d", WEXITSTATUS(st));
            report(line, seed, r, p);
            failed = 1;
        }
    }
    snprintf(line, sizeof line, "%s: %ld rounds of %ld calls, seed %#llx\n",
             failed ? "failed" : "survived", rounds, calls, (unsigned long long)seed);
    out(1, line);
    return failed;
}

int main(int argc, char **argv) {
    uint64_t seed = 0x5eed;
    long iterations = 200, rounds = 0, first_round = 0, calls_per_child = 2000, watchdog = 60;
    int opt;
    while ((opt = getopt(argc, argv, "s:n:r:f:c:w:")) != -1) {
        switch (opt) {
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'n': iterations = strtol(optarg, NULL, 0); break;
        case 'r': rounds = strtol(optarg, NULL, 0); break;
        case 'f': first_round = strtol(optarg, NULL, 0); break;
        case 'c': calls_per_child = strtol(optarg, NULL, 0); break;
        case 'w': watchdog = strtol(optarg, NULL, 0); break;
        default:
            out(2, "usage: fuzz [-s SEED] [-n ITERATIONS] NR[:SPEC] ...\n"
                   "       fuzz -r ROUNDS [-f FIRST] [-c CALLS] [-w SECONDS] [-s SEED] NR[:SPEC] ...\n");
            return 2;
        }
    }
    static struct call_spec specs[MAX_SPECS];
    int nspecs = 0;
    for (int i = optind; i < argc; i++) {
        if (nspecs == MAX_SPECS || parse_spec(argv[i], &specs[nspecs]) != 0) {
            out(2, "fuzz: bad spec: ");
            out(2, argv[i]);
            out(2, "\n");
            return 2;
        }
        nspecs++;
    }

    /* Best effort: signals that fuzzed calls may raise at us must not end
     * the run (the sandbox may not implement rt_sigaction yet). */
    static const int ignored[] = {SIGPIPE, SIGXFSZ, SIGXCPU, SIGALRM, SIGVTALRM, SIGPROF,
                                  SIGUSR1, SIGUSR2, SIGHUP, SIGTTIN, SIGTTOU, SIGTSTP};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);

    scratch = mmap(NULL, SCRATCH_LEN + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED)
        die("mmap scratch");
    if (mprotect(scratch + SCRATCH_LEN, PAGE, PROT_NONE) != 0)
        die("mprotect guard");
    ro_page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro_page == MAP_FAILED)
        die("mmap read-only page");
    void *r = mmap((void *)REGION_HINT, REGION_LEN, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        die("mmap region");
    region = (uint64_t)r;
    initial_brk = (uint64_t)syscall(SYS_brk, 0L);

    char line[256];
    if (rounds > 0)
        return mix(specs, nspecs, seed, first_round, rounds, calls_per_child, watchdog);
    long calls = 0;
    for (int i = 0; i < nspecs; i++) {
        struct call_spec *c = &specs[i];
        snprintf(line, sizeof line, "fuzz: nr %s\n", c->text);
        out(2, line);
        rng = seed ^ ((uint64_t)c->nr * 0x9e3779b97f4a7c15ull) ^ 0x2545f4914f6cdd1dull;
        fill(scratch, SCRATCH_LEN);
        for (long it = 0; it < iterations; it++) {
            uint64_t a[MAX_ARGS];
            draw_args(c, a);
            make_call(c, a);
            calls++;
        }
    }
    snprintf(line, sizeof line, "survived: %d syscall numbers, %ld calls\n", nspecs, calls);
    out(1, line);
    return 0;
}
