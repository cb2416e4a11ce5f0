// The mqueue file system: a mount (in a private mount namespace) shows the IPC namespace's
// queues as files with the queue's mode, their status line as contents (QSIZE counts the
// bytes queued), MQUEUE_MAGIC in statfs, the queue in a directory listing; unlink(2) of the
// file removes the queue (mq_unlink then fails with ENOENT). Run as root natively and in the
// sandbox.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("private mount namespace: %s\n", strerror(errno));
        return 1;
    }
    char dir[] = "/tmp/mqfs.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("mount: %s\n", err(mount("none", dir, "mqueue", 0, NULL)));

    char name[64], path[128];
    snprintf(name, sizeof(name), "/rsmqfs-%d", getpid());
    snprintf(path, sizeof(path), "%s%s", dir, name);
    umask(0);
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0640, NULL);
    printf("mq_open: %s\n", err(q));
    printf("mq_send: %s\n", err(mq_send(q, "hello", 5, 1)));

    struct stat st;
    printf("stat: %s\n", err(stat(path, &st)));
    printf("mode: %o\n", st.st_mode);
    struct stat root;
    stat(dir, &root);
    printf("root mode: %o\n", root.st_mode);
    struct statfs sf;
    statfs(dir, &sf);
    printf("magic: %lx\n", (long)sf.f_type);

    int listed = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, name + 1) == 0) listed = e->d_type == DT_REG;
    if (d) closedir(d);
    printf("listed as a regular file: %d\n", listed);

    int fd = open(path, O_RDONLY);
    char buf[128] = {0};
    long n = read(fd, buf, sizeof(buf) - 1);
    printf("read %ld: [%s]\n", n, buf);
    close(fd);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no-such-queue", dir);
    printf("stat missing: %s\n", err(stat(missing, &st)));

    printf("unlink file: %s\n", err(unlink(path)));
    printf("mq_unlink after: %s\n", err(mq_unlink(name)));
    printf("mq_receive still: %s\n", err(mq_receive(q, buf, 8192, NULL)));
    mq_close(q);
    printf("umount: %s\n", err(umount(dir)));
    rmdir(dir);
    printf("done\n");
    return 0;
}
