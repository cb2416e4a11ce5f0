/* /proc/[pid]/io and /proc/[pid]/task/[tid]/io: a thread's read and write calls and the
 * bytes they moved (rchar, wchar, syscr, syscw), and the process's sum over its threads,
 * printed so a native run and a sandboxed run compare line by line.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char text[1024];

/* One read(2) of `path` into `text` (so the counts it shows are those before it). */
static int read_io(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0)
        return -1;
    text[n] = 0;
    return 0;
}

static unsigned long long field(const char *name) {
    const char *p = strstr(text, name);
    return p ? strtoull(p + strlen(name) + 1, NULL, 10) : ~0ULL;
}

static void *worker(void *arg) {
    (void)arg;
    int out = open("/dev/null", O_WRONLY), in = open("/dev/zero", O_RDONLY);
    char buf[4];
    for (int i = 0; i < 7; i++)
        if (write(out, "abc", 3) != 3)
            exit(1);
    for (int i = 0; i < 5; i++)
        if (read(in, buf, 2) != 2)
            exit(1);
    close(out);
    close(in);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/io", gettid());
    if (read_io(path) != 0) {
        perror(path);
        exit(1);
    }
    return NULL;
}

int main(void) {
    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    pthread_join(th, NULL);
    printf("thread: rchar %llu wchar %llu syscr %llu syscw %llu\n", field("rchar:"),
           field("wchar:"), field("syscr:"), field("syscw:"));
    printf("thread read_bytes line: %s\n", strstr(text, "\nread_bytes: ") ? "yes" : "no");
    struct stat st;
    printf("mode: %o\n", stat("/proc/self/io", &st) == 0 ? st.st_mode & 0777 : 0);
    if (read_io("/proc/self/io") != 0) {
        perror("/proc/self/io");
        return 1;
    }
    /* The exited thread's calls stay in the process's counts. */
    printf("process counts the thread: %s\n",
           field("syscw:") >= 7 && field("syscr:") >= 5 && field("wchar:") >= 21 ? "yes" : "no");
    printf("done\n");
    return 0;
}
