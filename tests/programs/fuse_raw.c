/* A FUSE daemon speaking the protocol by hand on /dev/fuse, so that a run under runsc-rs and
 * a native run compare request by request: a mount named by fd=, INIT, a file looked up,
 * opened for direct I/O and read (the device mounted a second time too); the daemon holds the READ, signals the reader and
 * expects FUSE_INTERRUPT naming it, then answers EINTR; the reader sees EINTR. Closing the
 * daemon's device then makes the mount answer ENOTCONN, and it can still be unmounted.
 * Natively it runs in a private mount namespace of its own.
 * Usage: fuse_raw */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

static int dev;
static char buf[(1 << 20) + 4096];

static void reply(uint64_t unique, int error, const void *body, size_t len) {
    struct fuse_out_header h = {sizeof h + len, error, unique};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)body, len}};
    if (writev(dev, iov, body ? 2 : 1) < 0)
        result("reply", -1);
}

static void fill_attr(struct fuse_attr *a, uint64_t ino) {
    memset(a, 0, sizeof *a);
    a->ino = ino;
    a->mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0644;
    a->nlink = ino == FUSE_ROOT_ID ? 2 : 1;
    a->size = 5;
}

static void on_usr1(int sig) { (void)sig; }

/* Opens dir/f and reads it; prints what the read returned. */
static int reader(void) {
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open(at("mnt/f"), O_RDONLY);
    result("reader open", fd < 0 ? -1 : 0);
    char b[5];
    result("reader read", read(fd, b, sizeof b));
    close(fd);
    return 0;
}

/* Serves requests until the reader's file is released; returns 0 when every expectation
   held. */
static int serve(pid_t child) {
    uint64_t held = 0;
    for (;;) {
        ssize_t n = read(dev, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < (ssize_t)sizeof(struct fuse_in_header)) {
            result("daemon read", n < 0 ? -1 : n);
            return 1;
        }
        struct fuse_in_header *h = (void *)buf;
        void *arg = buf + sizeof *h;
        switch (h->opcode) {
        case FUSE_INIT: {
            struct fuse_init_out o = {.major = 7, .minor = 31, .max_write = 65536};
            printf("init: major %u\n", ((struct fuse_init_in *)arg)->major);
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
            struct fuse_open_out o = {.fh = 7, .open_flags = FOPEN_DIRECT_IO};
            reply(h->unique, 0, &o, sizeof o);
            break;
        }
        case FUSE_READ:
            printf("read request: fh %lu\n", (unsigned long)((struct fuse_read_in *)arg)->fh);
            fflush(stdout);
            held = h->unique;
            kill(child, SIGUSR1);
            break;
        case FUSE_INTERRUPT: {
            uint64_t target = ((struct fuse_interrupt_in *)arg)->unique;
            printf("interrupt names the read: %d\n", held != 0 && target == held);
            fflush(stdout);
            reply(held, -EINTR, NULL, 0);
            break;
        }
        case FUSE_RELEASE:
            reply(h->unique, 0, NULL, 0);
            return 0;
        default:
            reply(h->unique, -ENOSYS, NULL, 0);
        }
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/fuse_raw.XXXXXX");
    if (!mkdtemp(dir) || mkdir(at("mnt"), 0755) != 0 || mkdir(at("mnt2"), 0755) != 0) {
        perror("mkdtemp");
        return 1;
    }
    dev = open("/dev/fuse", O_RDWR);
    result("open /dev/fuse", dev < 0 ? -1 : 0);
    char opts[128];
    snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", dev);
    result("mount without fd", mount("x", at("mnt"), "fuse", 0, "rootmode=40000,user_id=0,group_id=0"));
    result("mount", mount("x", at("mnt"), "fuse.raw", MS_NODEV | MS_NOSUID, opts));
    result("second mount of the connection", mount("x", at("mnt2"), "fuse", 0, opts));
    pid_t child = fork();
    if (child == 0)
        _exit(reader());
    int failed = serve(child);
    int status;
    waitpid(child, &status, 0);
    result("reader exit", WEXITSTATUS(status));
    close(dev);
    struct stat st;
    result("stat after the daemon closed", stat(at("mnt"), &st));
    result("stat of the second mount", stat(at("mnt2"), &st));
    result("umount", umount2(at("mnt"), 0));
    result("umount second", umount2(at("mnt2"), 0));
    rmdir(at("mnt"));
    rmdir(at("mnt2"));
    rmdir(dir);
    printf(failed ? "failed\n" : "done\n");
    return failed;
}
