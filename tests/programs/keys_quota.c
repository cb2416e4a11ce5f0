// /proc/sys/kernel/keys/maxkeys: root reads 200, may lower it (a negative value is EINVAL),
// and then a user other than root cannot own more live keyrings than that (EDQUOT); root
// is not held to it. It changes a system-wide setting, so it runs only in the sandbox
// (argument "sandbox").
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEYCTL_JOIN_SESSION_KEYRING 1

static long join(void) { return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0); }
static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

static long put(const char *v) {
    int fd = open("/proc/sys/kernel/keys/maxkeys", O_WRONLY);
    if (fd < 0) return -1;
    long r = write(fd, v, strlen(v));
    close(fd);
    return r;
}

static void show_max(void) {
    char buf[32] = {0};
    int fd = open("/proc/sys/kernel/keys/maxkeys", O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0) printf("maxkeys: %s\n", strerror(errno));
    else printf("maxkeys: %s", buf);
    if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2 || strcmp(argv[1], "sandbox") != 0) return 2;
    show_max();
    printf("write -1: %s\n", err(put("-1")));
    printf("write 2: %s\n", err(put("2")));
    show_max();
    pid_t p = fork();
    if (p == 0) {
        if (setuid(1000) != 0) _exit(3);
        printf("user join 1: %s\n", err(join()));
        // A child keeps the first keyring alive (it inherited it) while it joins more.
        pid_t c = fork();
        if (c == 0) {
            printf("user join 2: %s\n", err(join()));
            pid_t g = fork();
            if (g == 0) {
                printf("user join 3: %s\n", err(join()));
                _exit(0);
            }
            waitpid(g, NULL, 0);
            _exit(0);
        }
        waitpid(c, NULL, 0);
        _exit(0);
    }
    waitpid(p, NULL, 0);
    printf("root join past it: %s\n", err(join()));
    printf("done\n");
    return 0;
}
