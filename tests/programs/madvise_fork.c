/* madvise(2) advice for fork: MADV_DONTFORK leaves a mapping out of the child (private and
 * shared), MADV_WIPEONFORK gives the child zeroed private anonymous memory (and is EINVAL for
 * shared mappings), MADV_DOFORK/KEEPONFORK undo them; plus the argument checks (alignment, a
 * length that wraps when rounded up, an empty range, unmapped parts). Prints one line per
 * check; the output is compared with native Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

#define PAGE 4096L

static void check(const char *what, int r) {
    printf("%s: %s\n", what, r == 0 ? "ok" : strerror(errno));
}

/* In a child: for each of `pages` pages, '-' when unmapped, else its first byte as a digit. */
static void child_view(const char *what, char *m, int pages) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char buf[16];
        for (int i = 0; i < pages; i++)
            buf[i] = msync(m + i * PAGE, PAGE, MS_ASYNC) == 0 ? '0' + m[i * PAGE] : '-';
        buf[pages] = 0;
        /* Writes in the child must not reach the parent's private pages. */
        for (int i = 0; i < pages; i++)
            if (msync(m + i * PAGE, PAGE, MS_ASYNC) == 0) m[i * PAGE + 1] = 7;
        printf("%s: child sees %s\n", what, buf);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    char buf[16];
    for (int i = 0; i < pages; i++)
        buf[i] = msync(m + i * PAGE, PAGE, MS_ASYNC) == 0 ? '0' + m[i * PAGE] + m[i * PAGE + 1]
                                                        : '-';
    buf[pages] = 0;
    printf("%s: parent keeps %s\n", what, buf);
}

static char *map(int pages, int flags) {
    char *m = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        printf("FAIL mmap: %s\n", strerror(errno));
        exit(1);
    }
    for (int i = 0; i < pages; i++) m[i * PAGE] = i + 1;
    return m;
}

int main(void) {
    char *m = map(3, MAP_PRIVATE);
    check("unaligned", madvise(m + 1, PAGE, MADV_DONTFORK));
    check("empty", madvise(m, 0, MADV_DONTFORK));
    check("wrapping length", madvise(0, SIZE_MAX - PAGE / 2, MADV_DONTFORK));
    check("unknown advice", madvise(m, PAGE, 12345));
    check("dontfork middle", madvise(m + PAGE, 1, MADV_DONTFORK));
    child_view("private dontfork", m, 3);
    check("dofork", madvise(m, 3 * PAGE, MADV_DOFORK));
    child_view("private dofork", m, 3);
    check("wipeonfork last", madvise(m + 2 * PAGE, PAGE, MADV_WIPEONFORK));
    child_view("private wipeonfork", m, 3);
    check("keeponfork", madvise(m + 2 * PAGE, PAGE, MADV_KEEPONFORK));
    child_view("private keeponfork", m, 3);
    munmap(m + PAGE, PAGE);
    check("dontfork over a hole", madvise(m, 3 * PAGE, MADV_DONTFORK));
    child_view("after the hole", m, 3);
    munmap(m, 3 * PAGE);

    char *s = map(2, MAP_SHARED);
    check("shared wipeonfork", madvise(s, PAGE, MADV_WIPEONFORK));
    check("shared dontfork", madvise(s + PAGE, PAGE, MADV_DONTFORK));
    child_view("shared", s, 2);
    printf("done\n");
    return 0;
}
