/*
 * vsyscall: calls through the legacy vsyscall page (time, gettimeofday, getcpu at
 * 0xffffffffff600000 + 0x000/0x400/0x800) agree with their system calls, a NULL pointer
 * argument means "no result", and a bad pointer kills with SIGSEGV (Linux's
 * emulate_vsyscall), not EFAULT. Each call runs in a child so a kill is seen as a status.
 * Needs a host with the page (not vsyscall=none). Prints the same lines natively and in the
 * sandbox (on every platform).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VSYSCALL 0xffffffffff600000UL

typedef long (*gettimeofday_fn)(struct timeval *, struct timezone *);
typedef long (*time_fn)(time_t *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

static const gettimeofday_fn v_gettimeofday = (gettimeofday_fn)(VSYSCALL);
static const time_fn v_time = (time_fn)(VSYSCALL + 0x400);
static const getcpu_fn v_getcpu = (getcpu_fn)(VSYSCALL + 0x800);

/* Runs `fn` in a child; prints how the child ended. */
static void in_child(const char *name, int (*fn)(void)) {
    printf("%s:", name);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int r = fn();
        fflush(stdout);
        _exit(r);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf(" killed by signal %d\n", WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        printf(" exit %d\n", WEXITSTATUS(status));
}

static int time_agrees(void) {
    time_t before = syscall(SYS_time, NULL), stored = 0;
    time_t got = v_time(&stored);
    time_t after = syscall(SYS_time, NULL);
    int ok = got >= before && got <= after && stored == got && v_time(NULL) >= got;
    printf(" %s\n", ok ? "agrees with the system call" : "disagrees");
    return 0;
}

static int gettimeofday_agrees(void) {
    struct timeval before, got, after;
    struct timezone tz;
    syscall(SYS_gettimeofday, &before, NULL);
    long r = v_gettimeofday(&got, &tz);
    syscall(SYS_gettimeofday, &after, NULL);
    long r_null = v_gettimeofday(NULL, NULL);
    int ok = r == 0 && r_null == 0 && timercmp(&before, &got, <=) && timercmp(&got, &after, <=);
    printf(" %s\n", ok ? "agrees with the system call" : "disagrees");
    return 0;
}

static int getcpu_agrees(void) {
    unsigned cpu = ~0u, node = ~0u, cpu2 = ~0u;
    long r = v_getcpu(&cpu, &node, NULL);
    syscall(SYS_getcpu, &cpu2, NULL, NULL);
    long r_null = v_getcpu(NULL, NULL, NULL);
    printf(" %s\n", r == 0 && r_null == 0 && cpu != ~0u && node != ~0u
                        ? "answers like the system call"
                        : "disagrees");
    return 0;
}

static int time_bad_pointer(void) {
    v_time((time_t *)8);
    printf(" returned\n");
    return 0;
}

static int gettimeofday_bad_pointer(void) {
    v_gettimeofday((struct timeval *)8, NULL);
    printf(" returned\n");
    return 0;
}

static int inside_an_entry(void) {
    ((time_fn)(VSYSCALL + 0x404))(NULL);
    printf(" returned\n");
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    in_child("time", time_agrees);
    in_child("gettimeofday", gettimeofday_agrees);
    in_child("getcpu", getcpu_agrees);
    in_child("time, bad pointer", time_bad_pointer);
    in_child("gettimeofday, bad pointer", gettimeofday_bad_pointer);
    in_child("inside an entry", inside_an_entry);
    printf("done\n");
    return 0;
}
