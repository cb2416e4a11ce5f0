// /proc/[pid]/mem as debuggers use it: pread/pwrite at an address of the caller's own
// memory (writes reach read-only pages), read(2) after lseek, SEEK_END refused, EIO at an
// unmapped address and a short read where a mapping ends; a child's memory read by its
// parent (same user), 0 bytes once the child has exited; open refused (EACCES) to another
// user without CAP_SYS_PTRACE. Run as root natively and in the sandbox.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int fd = open("/proc/self/mem", O_RDWR);
    printf("open self: %s\n", err(fd));

    char secret[] = "hello-world";
    char out[sizeof(secret)] = {0};
    long n = pread(fd, out, sizeof(out), (off_t)secret);
    printf("pread: %ld %s\n", n, out);

    char target[sizeof(secret)] = {0};
    n = pwrite(fd, "written-now", sizeof(target), (off_t)target);
    printf("pwrite: %ld %s\n", n, target);

    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    n = pwrite(fd, "poke", 4, (off_t)ro);
    printf("write read-only page: %ld %.4s\n", n, ro);

    char seq[] = "0123456789";
    printf("lseek set ok: %d\n", lseek(fd, (off_t)seq, SEEK_SET) == (off_t)seq);
    char part[4] = {0};
    n = read(fd, part, 3);
    printf("read after seek: %ld %s\n", n, part);
    n = read(fd, part, 3);
    printf("read advances: %ld %s\n", n, part);
    printf("seek end: %s\n", err(lseek(fd, 0, SEEK_END)));

    char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(two, 'x', 8192);
    munmap(two + 4096, 4096);
    static char big[8192];
    n = pread(fd, big, sizeof(big), (off_t)(two + 4096 - 2));
    printf("read across the end of a mapping: %ld %c\n", n, big[0]);
    n = pread(fd, big, 1, (off_t)(two + 4096));
    printf("read unmapped: %s\n", err(n));
    close(fd);

    int up[2], down[2];
    pipe(up);
    pipe(down);
    static char child_text[] = "child-text";
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(child_text, "child-own!");
        write(up[1], "r", 1);
        char c;
        read(down[0], &c, 1);
        _exit(0);
    }
    char c;
    read(up[0], &c, 1);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    fd = open(path, O_RDONLY);
    printf("open child: %s\n", err(fd));
    memset(out, 0, sizeof(out));
    n = pread(fd, out, 11, (off_t)child_text);
    printf("read child: %ld %s\n", n, out);

    pid_t other = fork();
    if (other == 0) {
        if (setuid(65534) != 0) _exit(2);
        printf("other user opens: %s\n", err(open(path, O_RDONLY)));
        _exit(0);
    }
    waitpid(other, NULL, 0);

    write(down[1], "x", 1);
    waitpid(pid, NULL, 0);
    n = pread(fd, out, 11, (off_t)child_text);
    printf("read after exit: %ld\n", n);
    printf("done\n");
    return 0;
}
