// RLIMIT_FSIZE: writes that cross the limit are shortened, writes at or past it fail with
// EFBIG and raise SIGXFSZ; truncate/ftruncate/fallocate past it likewise; shrinking and
// non-regular files are not limited. Works in a fresh directory given as argv[1].
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

static volatile int xfsz;
static void on_xfsz(int s) { (void)s; xfsz++; }

#define SHOW(what, expr)                                                                   \
    do {                                                                                   \
        xfsz = 0;                                                                          \
        errno = 0;                                                                         \
        long r_ = (long)(expr);                                                            \
        printf("%s: %ld %s sigxfsz=%d\n", what, r_, r_ < 0 ? strerror(errno) : "", xfsz);  \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1])) {
        perror("chdir");
        return 2;
    }
    signal(SIGXFSZ, on_xfsz);
    struct rlimit rl = {1000, 1000};
    setrlimit(RLIMIT_FSIZE, &rl);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    int fd = open("f", O_CREAT | O_RDWR | O_TRUNC, 0644);
    SHOW("write 600", write(fd, buf, 600));
    SHOW("write 600 crossing", write(fd, buf, 600));
    SHOW("write at limit", write(fd, buf, 1));
    SHOW("write 0 at limit", write(fd, buf, 0));
    SHOW("pwrite crossing", pwrite(fd, buf, 100, 950));
    SHOW("pwrite past", pwrite(fd, buf, 10, 5000));
    struct iovec iov[2] = {{buf, 10}, {buf, 10}};
    lseek(fd, 990, SEEK_SET);
    SHOW("writev crossing", writev(fd, iov, 2));
    SHOW("writev at limit", writev(fd, iov, 2));
    int ap = open("f", O_WRONLY | O_APPEND);
    SHOW("append at limit", write(ap, buf, 5));
    close(ap);
    SHOW("ftruncate grow past", ftruncate(fd, 2000));
    SHOW("ftruncate grow to limit", ftruncate(fd, 1000));
    SHOW("ftruncate shrink", ftruncate(fd, 10));
    SHOW("truncate grow past", truncate("f", 1001));
    SHOW("fallocate past", fallocate(fd, 0, 900, 200));
    SHOW("fallocate within", fallocate(fd, 0, 0, 500));
    int p[2];
    pipe(p);
    SHOW("pipe not limited", write(p[1], buf, 2000));
    struct stat;
    printf("size=%ld\n", (long)lseek(fd, 0, SEEK_END));
    signal(SIGXFSZ, SIG_IGN);
    lseek(fd, 1000, SEEK_SET);
    SHOW("ignored: write at limit", write(fd, buf, 1));
    return 0;
}
