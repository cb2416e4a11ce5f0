/*
 * killwait: a process blocked in STATE is sent SIGKILL (or SIGTERM, whose
 * default action also ends it) and must be gone within a bound, whatever it
 * is blocked in.
 *
 *   killwait STATE...   STATE: vfork vfork-term futex pipe sleep stop
 *                       sigsuspend wait
 *   killwait panic NR   fork a child that makes system call NR (which the
 *                       sandbox's test hook turns into a sentry panic) and
 *                       report how it ended
 *   killwait hold       vfork a child that blocks every signal, calls setsid
 *                       and sleeps; print "ready" and wait for it (the caller
 *                       kills us from outside)
 *
 * For each STATE a child (the victim) enters it, the parent sends the signal
 * and times how long waitpid takes to report the death. stdout is the same
 * wherever the bound holds: "STATE: killed by signal N, within bound"; the
 * measured time goes to stderr. In the vfork states the victim's vfork child
 * blocks every signal, leaves the session and sleeps, and must not keep its
 * parent alive; the parent then kills it too (SIGKILL cannot be blocked).
 */
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOUND_MS 2000
#define HOLD_SECONDS 30

static int ready_pipe[2];
static int holding; /* "hold": readiness goes to stdout for the caller */

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what) {
    fprintf(stderr, "killwait: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void tell_ready(pid_t pid) {
    if (write(ready_pipe[1], &pid, sizeof pid) != sizeof pid)
        _exit(3);
}

/* The vfork child: no signal reaches it except SIGKILL, and it is in a session
 * of its own, so nothing of its parent's group or session reaches it either. */
static void vfork_child_holds(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    setsid();
    if (holding) {
        if (write(1, "ready\n", 6) != 6)
            _exit(3);
    } else {
        tell_ready(getpid());
    }
    struct timespec hold = {HOLD_SECONDS, 0};
    while (nanosleep(&hold, &hold) != 0 && errno == EINTR)
        ;
    _exit(0);
}

/* The victim: enters `state` and never leaves it on its own. */
static void victim(const char *state) {
    if (strncmp(state, "vfork", 5) == 0) {
        pid_t c = vfork();
        if (c == 0)
            vfork_child_holds();
        _exit(4); /* the vfork child sleeps for HOLD_SECONDS: we must be killed before */
    }
    if (strcmp(state, "futex") == 0) {
        static uint32_t word;
        tell_ready(0);
        for (;;)
            syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    }
    if (strcmp(state, "pipe") == 0) {
        int p[2];
        if (pipe(p) != 0)
            _exit(5);
        char c;
        tell_ready(0);
        for (;;)
            read(p[0], &c, 1);
    }
    if (strcmp(state, "sleep") == 0) {
        tell_ready(0);
        for (;;)
            sleep(HOLD_SECONDS);
    }
    if (strcmp(state, "stop") == 0) {
        tell_ready(0);
        raise(SIGSTOP);
        for (;;)
            pause();
    }
    if (strcmp(state, "sigsuspend") == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        tell_ready(0);
        for (;;)
            sigsuspend(&all);
    }
    if (strcmp(state, "wait") == 0) {
        pid_t g = fork();
        if (g == 0) {
            sleep(HOLD_SECONDS);
            _exit(0);
        }
        tell_ready(g);
        for (;;)
            waitpid(g, NULL, 0);
    }
    _exit(6);
}

/* Waits for `pid` to be gone (reaped by us or, once orphaned, by someone). */
static int is_zombie(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *end = strrchr(buf, ')');
    return end && end[1] == ' ' && end[2] == 'Z';
}

static int gone_within(pid_t pid, long bound_ms) {
    long until = now_ms() + bound_ms;
    while (now_ms() < until) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return 1;
        /* Dead but not yet reaped by whoever it was reparented to (natively the host's
           init, slow under load): SIGKILL has ended it all the same. */
        if (is_zombie(pid))
            return 1;
        struct timespec tick = {0, 2000000};
        nanosleep(&tick, NULL);
    }
    return 0;
}

static int run_state(const char *state) {
    int sig = strcmp(state, "vfork-term") == 0 ? SIGTERM : SIGKILL;
    if (pipe(ready_pipe) != 0)
        die("pipe");
    pid_t v = fork();
    if (v < 0)
        die("fork");
    if (v == 0) {
        close(ready_pipe[0]);
        victim(state);
    }
    close(ready_pipe[1]);
    pid_t other = 0;
    if (read(ready_pipe[0], &other, sizeof other) != sizeof other) {
        printf("%s: the victim never got ready\n", state);
        return 1;
    }
    close(ready_pipe[0]);
    if (strcmp(state, "stop") == 0) {
        int st;
        if (waitpid(v, &st, WUNTRACED) != v || !WIFSTOPPED(st)) {
            printf("%s: the victim did not stop\n", state);
            return 1;
        }
    } else {
        /* Long enough for the victim to be asleep in its call. */
        struct timespec settle = {0, 100000000};
        nanosleep(&settle, NULL);
    }
    long start = now_ms();
    kill(v, sig);
    int st;
    pid_t w;
    while ((w = waitpid(v, &st, 0)) < 0 && errno == EINTR)
        ;
    long took = now_ms() - start;
    fprintf(stderr, "killwait: %s: %ld ms\n", state, took);
    int failed = 0;
    if (w != v) {
        printf("%s: waitpid failed: %s\n", state, strerror(errno));
        failed = 1;
    } else if (WIFSIGNALED(st)) {
        printf("%s: killed by signal %d, %s\n", state, WTERMSIG(st),
               took <= BOUND_MS ? "within bound" : "TOO SLOW");
        failed = WTERMSIG(st) != sig || took > BOUND_MS;
    } else {
        printf("%s: not killed: status %#x\n", state, st);
        failed = 1;
    }
    /* The vfork child or the grandchild of "wait": SIGKILL ends it despite its mask. */
    if (other > 0) {
        kill(other, SIGKILL);
        int ok = gone_within(other, BOUND_MS);
        printf("%s: its child %s\n", state, ok ? "killed" : "SURVIVED SIGKILL");
        failed |= !ok;
    }
    fflush(stdout);
    return failed;
}

static int hold(void) {
    holding = 1;
    pid_t c = vfork();
    if (c == 0)
        vfork_child_holds();
    /* Only reached once the vfork child is gone. */
    printf("vfork child ended: unexpected\n");
    return 1;
}

static int panic_child(long nr) {
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        syscall(nr);
        _exit(0);
    }
    int st;
    if (waitpid(c, &st, 0) != c)
        die("waitpid");
    printf("child status %#x\n", st);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: killwait STATE... | killwait hold\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "hold") == 0)
        return hold();
    if (strcmp(argv[1], "panic") == 0 && argc == 3)
        return panic_child(strtol(argv[2], NULL, 0));
    int failed = 0;
    for (int i = 1; i < argc; i++)
        failed |= run_state(argv[i]);
    return failed;
}
