// /proc facts programs rely on: MAP_POPULATE of writable memory shows in the resident set
// at once (statm), /proc/cpuinfo has every x86 field Linux prints (apicid, initial apicid,
// power management), and a read-only /proc file can be neither truncated by a user without
// access (EACCES) nor written by root (open succeeds, write fails); a user cannot list a
// directory without read permission (root's 0700 directory, another user's /proc/PID/fd).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static long resident_pages(void) {
    long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &rss) != 2) return -1;
    fclose(f);
    return rss;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const size_t len = 32 << 20;
    long before = resident_pages();
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    long after = resident_pages();
    long pages = (long)(len / 4096);
    printf("populate counted: %d\n", m != MAP_FAILED && after - before >= pages * 9 / 10);

    static char info[1 << 20];
    int fd = open("/proc/cpuinfo", O_RDONLY);
    ssize_t n = read(fd, info, sizeof(info) - 1);
    close(fd);
    info[n > 0 ? n : 0] = 0;
    printf("apicid: %d\n", strstr(info, "\napicid\t\t: ") != NULL);
    printf("initial apicid: %d\n", strstr(info, "\ninitial apicid\t: ") != NULL);
    printf("power management: %d\n", strstr(info, "\npower management:") != NULL);

    fd = open("/proc/cpuinfo", O_WRONLY);
    printf("root opens for writing: %d\n", fd >= 0);
    printf("root write fails: %d\n", fd >= 0 && write(fd, "x", 1) < 0);
    char private_dir[] = "/tmp/proc_facts.XXXXXX";
    if (!mkdtemp(private_dir)) return 1;
    char parent_fd_dir[64];
    snprintf(parent_fd_dir, sizeof(parent_fd_dir), "/proc/%d/fd", getpid());
    pid_t pid = fork();
    if (pid == 0) {
        if (setuid(65534) != 0) _exit(2);
        int d = open(private_dir, O_RDONLY | O_DIRECTORY);
        printf("user lists root's 0700 directory: %s\n", d >= 0 ? "ok" : strerrorname_np(errno));
        d = open(parent_fd_dir, O_RDONLY | O_DIRECTORY);
        printf("user lists root's fd directory: %s\n", d >= 0 ? "ok" : strerrorname_np(errno));
        printf("user truncate: %s\n", truncate("/proc/cpuinfo", 1) == 0 ? "ok"
                                      : errno == EACCES              ? "EACCES"
                                                                     : strerror(errno));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    rmdir(private_dir);
    printf("done\n");
    return 0;
}
