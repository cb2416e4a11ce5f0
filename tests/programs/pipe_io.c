/* Pipe transfers against bad user buffers (Linux keeps what the reader did not take), and
 * blocking reads of stdin ended by SIGKILL or by a signal handler (EINTR).
 *
 *   pipe_io efault   reads/writes through partly unmapped or PROT_NONE buffers
 *   pipe_io kill     a child reads stdin; its parent SIGKILLs it
 *   pipe_io alarm    reads stdin; SIGALRM (no SA_RESTART) interrupts the read
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, ssize_t n) {
    if (n < 0)
        printf("%s: -1 %s\n", what, strerror(errno));
    else
        printf("%s: %zd\n", what, n);
}

static void drain(int fd, const char *what) {
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
        report(what, n);
        return;
    }
    printf("%s: %zd '%.*s'\n", what, n, (int)(n < 40 ? n : 40), buf);
}

/* Two pages; the second made inaccessible by `unmap` (munmap) or PROT_NONE. */
static char *two_pages(int unmap) {
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (unmap ? munmap(p + 4096, 4096) : mprotect(p + 4096, 4096, PROT_NONE)) {
        perror("protect");
        exit(1);
    }
    return p;
}

static int efault(void) {
    for (int unmap = 0; unmap < 2; unmap++) {
        printf("-- second page %s\n", unmap ? "unmapped" : "PROT_NONE");
        int p[2];
        if (pipe(p)) {
            perror("pipe");
            return 1;
        }
        char *buf = two_pages(unmap);
        write(p[1], "0123456789", 10);
        report("read into bad page", read(p[0], buf + 4096, 10));
        report("read straddling", read(p[0], buf + 4090, 10));
        printf("got '%.6s'\n", buf + 4090);
        struct iovec iov[2] = {{buf, 2}, {buf + 4096, 4}};
        report("readv good+bad", readv(p[0], iov, 2));
        printf("got '%.2s'\n", buf);
        drain(p[0], "rest");

        memset(buf, 'a', 4096);
        report("write from bad page", write(p[1], buf + 4096, 10));
        report("write straddling (page-aligned)", write(p[1], buf, 8192));
        struct iovec wiov[2] = {{buf, 3}, {buf + 4096, 5}};
        report("writev good+bad", writev(p[1], wiov, 2));
        drain(p[0], "pipe holds");
        close(p[0]);
        close(p[1]);
    }
    return 0;
}

/* The reader is a child: PID 1 of a PID namespace (the sandbox's first process) ignores
 * SIGKILL sent from inside it, as Linux's init does. */
static int kill_reader(void) {
    pid_t reader = fork();
    if (reader == 0) {
        char buf[64];
        ssize_t n = read(0, buf, sizeof buf);
        report("reader read stdin", n);
        _exit(0);
    }
    usleep(300000);
    if (kill(reader, SIGKILL))
        perror("kill");
    int status;
    waitpid(reader, &status, 0);
    if (WIFSIGNALED(status))
        printf("reader killed by signal %d\n", WTERMSIG(status));
    else
        printf("reader exited %d\n", WEXITSTATUS(status));
    return 0;
}

static void on_alarm(int sig) { (void)sig; }

static int alarm_read(void) {
    char buf[64];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
    report("read stdin", read(0, buf, sizeof buf));
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "efault";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(mode, "efault"))
        return efault();
    if (!strcmp(mode, "kill"))
        return kill_reader();
    if (!strcmp(mode, "alarm"))
        return alarm_read();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
