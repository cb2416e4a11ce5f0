/*
 * exec_fresh: what a program left in its address space is gone after execve, and what a
 * vfork parent has is still there after its child's execve.
 *
 *   exec_fresh [single|threads|vfork]   (default: all three, in turn, each in its own process)
 *
 * single:  maps and fills a page at a fixed address, then execs itself; the new image must
 *          fault reading that address, and a new anonymous page there must read as zero.
 * threads: the same, while a second thread keeps writing the page.
 * vfork:   fills a page, vforks a child that execs itself (which exits at once), then
 *          checks the page still holds what it wrote.
 * Prints one line per check; the same lines natively and in the sandbox.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPOT ((void *)0x200000000UL)
#define MARK 0x5a5a5a5aU

static sigjmp_buf env;

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(env, 1);
}

static volatile unsigned *fill(void) {
    volatile unsigned *p = mmap(SPOT, 4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != SPOT) {
        perror("mmap");
        exit(1);
    }
    for (int i = 0; i < 1024; i++)
        p[i] = MARK;
    return p;
}

/* The new image: nothing may be left at SPOT. */
static int after(const char *how) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    volatile unsigned *p = SPOT;
    if (sigsetjmp(env, 1) == 0) {
        unsigned v = p[7];
        printf("%s: old page still readable (%#x)\n", how, v);
    } else {
        printf("%s: reading the old page faults\n", how);
    }
    volatile unsigned *q = mmap(SPOT, 4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (q != SPOT) {
        printf("%s: address still taken\n", how);
        return 0;
    }
    printf("%s: new page reads %#x\n", how, q[7]);
    return 0;
}

static void *writer(void *arg) {
    volatile unsigned *p = arg;
    for (;;)
        p[1] = MARK;
    return NULL;
}

static int run(const char *self, const char *mode) {
    if (strcmp(mode, "single") == 0) {
        fill();
        execl(self, self, "after-single", (char *)NULL);
        perror("execl");
        return 1;
    }
    if (strcmp(mode, "threads") == 0) {
        volatile unsigned *p = fill();
        pthread_t t;
        pthread_create(&t, NULL, writer, (void *)p);
        usleep(10000);
        execl(self, self, "after-threads", (char *)NULL);
        perror("execl");
        return 1;
    }
    if (strcmp(mode, "vfork") == 0) {
        volatile unsigned *p = fill();
        pid_t pid = vfork();
        if (pid == 0) {
            execl(self, self, "child", (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        int same = 1;
        for (int i = 0; i < 1024; i++)
            same &= p[i] == MARK;
        printf("vfork: child exited %d, parent's page %s\n", WEXITSTATUS(status),
               same ? "intact" : "changed");
        p[3] = 1;
        printf("vfork: parent's page still writable (%u)\n", p[3]);
        return 0;
    }
    return 2;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *self = "/proc/self/exe";
    if (argc > 1 && strncmp(argv[1], "after-", 6) == 0)
        return after(argv[1] + 6);
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return 0;
    if (argc > 1)
        return run(self, argv[1]);
    const char *modes[] = {"single", "threads", "vfork"};
    for (int i = 0; i < 3; i++) {
        pid_t pid = fork();
        if (pid == 0)
            return run(self, modes[i]);
        int status;
        waitpid(pid, &status, 0);
        printf("%s: exit %d\n", modes[i], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return 0;
}
