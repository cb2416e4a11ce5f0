/* A process that is its own FUSE daemon faults on a mapping of its own mount while its
 * daemon thread no longer reads requests (stopped by a signal, it pauses): the fault waits
 * for a READ nobody reads, and SIGKILL must still end the process (natively the unread
 * request is withdrawn; the daemon holding a read one would leave Linux's faulting thread
 * unkillable in request_wait_answer). The mount is made by the parent, which hands the device to the child and
 * keeps none of it; the child's death then ends the connection.
 * Natively it runs in a private mount namespace of its own.
 * Usage: fuse_selfkill */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "outcome.h"

#define SIZE 8192

static int dev;
static volatile sig_atomic_t stop;
static int ack[2];
static char buf[(1 << 20) + 4096];

static void reply(uint64_t unique, int error, const void *body, size_t len) {
    struct fuse_out_header h = {sizeof h + len, error, unique};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)body, len}};
    writev(dev, iov, body ? 2 : 1);
}

static void fill_attr(struct fuse_attr *a, uint64_t ino) {
    memset(a, 0, sizeof *a);
    a->ino = ino;
    a->mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0644;
    a->nlink = ino == FUSE_ROOT_ID ? 2 : 1;
    a->size = ino == FUSE_ROOT_ID ? 0 : SIZE;
}

static void on_usr1(int sig) {
    (void)sig;
    stop = 1;
}

/* The daemon thread: answers requests until SIGUSR1, then says so on `ack` and pauses for
   good. */
static void *serve(void *unused) {
    (void)unused;
    for (;;) {
        ssize_t n = stop ? -1 : read(dev, buf, sizeof buf);
        if (stop) {
            if (write(ack[1], "s", 1) != 1)
                return NULL;
            for (;;)
                pause();
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < (ssize_t)sizeof(struct fuse_in_header))
            return NULL;
        struct fuse_in_header *h = (void *)buf;
        void *arg = buf + sizeof *h;
        switch (h->opcode) {
        case FUSE_INIT: {
            struct fuse_init_out o = {
                .major = 7,
                .minor = 31,
                .max_readahead = 128 << 10,
                .flags = FUSE_ASYNC_READ,
                .max_write = 65536,
            };
            reply(h->unique, 0, &o, sizeof o);
            break;
        }
        case FUSE_LOOKUP: {
            struct fuse_entry_out e = {.nodeid = 2};
            if (strcmp(arg, "f") != 0) {
                reply(h->unique, -ENOENT, NULL, 0);
                break;
            }
            fill_attr(&e.attr, 2);
            reply(h->unique, 0, &e, sizeof e);
            break;
        }
        case FUSE_GETATTR: {
            struct fuse_attr_out a = {0};
            fill_attr(&a.attr, h->nodeid);
            reply(h->unique, 0, &a, sizeof a);
            break;
        }
        case FUSE_OPEN: {
            struct fuse_open_out o = {.fh = 7};
            reply(h->unique, 0, &o, sizeof o);
            break;
        }
        default:
            reply(h->unique, -ENOSYS, NULL, 0);
        }
    }
}

/* The child: starts its daemon thread, maps the mount's file, stops the daemon thread and
   touches the mapping. */
static int child(int ready) {
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    if (pipe(ack) != 0 || pthread_create(&t, NULL, serve, NULL) != 0)
        return 1;
    /* A first open and close: the daemon answers FLUSH with ENOSYS, so that none is sent
       again (the exit's close must not wait for the paused daemon). */
    int fd = open(at("mnt/f"), O_RDONLY);
    if (fd < 0 || close(fd) != 0 || (fd = open(at("mnt/f"), O_RDONLY)) < 0) {
        perror("child: open");
        return 2;
    }
    volatile unsigned char *p = mmap(NULL, SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        perror("child: mmap");
        return 3;
    }
    /* Signalled again until it answers: a signal between its check and its read is lost. */
    struct pollfd pfd = {.fd = ack[0], .events = POLLIN};
    do {
        if (pthread_kill(t, SIGUSR1) != 0)
            return 4;
    } while (poll(&pfd, 1, 50) == 0);
    char c;
    if (read(ack[0], &c, 1) != 1) {
        perror("child: stopping the daemon thread");
        return 4;
    }
    if (write(ready, "t", 1) != 1)
        return 5;
    return p[0] == 0xff ? 6 : 7;
}

/* Waits up to 20 s for pid; prints how it ended. */
static void reap(pid_t pid) {
    int status;
    for (int i = 0; i < 2000; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFSIGNALED(status))
                printf("faulting process: killed by signal %d\n", WTERMSIG(status));
            else
                printf("faulting process: exit %d\n", WEXITSTATUS(status));
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("faulting process: still there after SIGKILL\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/fuse_selfkill.XXXXXX");
    if (!mkdtemp(dir) || mkdir(at("mnt"), 0755) != 0) {
        perror("mkdtemp");
        return 1;
    }
    dev = open("/dev/fuse", O_RDWR);
    result("open /dev/fuse", dev < 0 ? -1 : 0);
    char opts[128];
    snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", dev);
    result("mount", mount("x", at("mnt"), "fuse.selfkill", MS_NODEV | MS_NOSUID, opts));
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        _exit(child(pipefd[1]));
    }
    close(dev);
    close(pipefd[1]);
    char c;
    result("child mapped the file", read(pipefd[0], &c, 1));
    /* Let the touch reach the fault's wait. */
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int status;
    result("faulting process waits", waitpid(pid, &status, WNOHANG) == 0);
    result("kill", kill(pid, SIGKILL));
    reap(pid);
    struct stat st;
    result("stat after the daemon died", stat(at("mnt"), &st));
    result("umount", umount2(at("mnt"), 0));
    rmdir(at("mnt"));
    rmdir(dir);
    printf("done\n");
    return 0;
}
