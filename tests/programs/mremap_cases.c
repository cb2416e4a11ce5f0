/* mremap(2) corner cases: shrinking and growing across and into mappings (private and shared
 * anonymous memory), MREMAP_FIXED's side effects when it fails, a second mapping of shared
 * pages (an old size of 0), MREMAP_DONTUNMAP and the flag checks. Prints one line per check
 * (results, errnos and which pages are mapped, never addresses); the output is compared with
 * native Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define PAGE 4096L

static char *map(long pages, int prot, int flags) {
    char *m = mmap(NULL, pages * PAGE, prot, flags | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        printf("FAIL mmap: %s\n", strerror(errno));
        exit(1);
    }
    return m;
}

static char *remap(char *old, long old_len, long new_len, int flags, char *new_addr) {
    return (char *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

/* "m" for each mapped page of [p, p + pages*PAGE), "-" for each unmapped one (in one of
 * four buffers, so one printf can show several). */
static const char *mapped(char *p, int pages) {
    static char bufs[4][16];
    static int next;
    char *buf = bufs[next++ % 4];
    for (int i = 0; i < pages; i++)
        buf[i] = msync(p + i * PAGE, PAGE, MS_ASYNC) == 0 ? 'm' : '-';
    buf[pages] = 0;
    return buf;
}

static void result(const char *what, char *got, char *want) {
    if (got == MAP_FAILED)
        printf("%s: %s\n", what, strerror(errno));
    else
        printf("%s: %s\n", what, got == want ? "ok at the expected address" : "ok elsewhere");
}

static void kinds(int flags, const char *kind) {
    printf("-- %s\n", kind);
    /* Shrinking across two VMAs (the first page has other permissions). */
    char *m = map(3, PROT_READ, flags);
    mprotect(m, PAGE, PROT_NONE);
    result("shrink across vmas", remap(m, 3 * PAGE, 2 * PAGE, 0, NULL), m);
    printf("  pages %s\n", mapped(m, 3));
    munmap(m, 3 * PAGE);

    /* Growing in place into a hole. */
    m = map(2, PROT_READ | PROT_WRITE, flags);
    m[0] = 'a';
    munmap(m + PAGE, PAGE);
    result("grow in place", remap(m, PAGE, 2 * PAGE, 0, NULL), m);
    printf("  pages %s, first byte %c\n", mapped(m, 2), m[0]);
    munmap(m, 2 * PAGE);

    /* Growing where the next page is taken: ENOMEM in place, a move with MAYMOVE. */
    m = map(3, PROT_READ | PROT_WRITE, flags);
    m[0] = 'b';
    munmap(m + PAGE, PAGE);
    result("grow blocked", remap(m, PAGE, 3 * PAGE, 0, NULL), m);
    char *n = remap(m, PAGE, 3 * PAGE, MREMAP_MAYMOVE, NULL);
    result("grow moving", n, m);
    printf("  old pages %s, new pages %s, first byte %c\n", mapped(m, 3), mapped(n, 3), n[0]);
    munmap(m, 3 * PAGE);
    munmap(n, 3 * PAGE);

    /* MREMAP_FIXED of a range spanning two VMAs fails before it unmaps anything (Linux 6.17
     * on); shrinking, only the part that moves must lie in one VMA. */
    char *src = map(3, PROT_READ, flags);
    mprotect(src, PAGE, PROT_NONE);
    char *dst = map(2, PROT_NONE, flags);
    result("fixed across vmas", remap(src, 3 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst),
           dst);
    printf("  src pages %s, dst pages %s\n", mapped(src, 3), mapped(dst, 2));
    munmap(src, 3 * PAGE);
    src = map(3, PROT_READ, flags);
    mprotect(src + 2 * PAGE, PAGE, PROT_NONE);
    result("fixed shrink across vmas",
           remap(src, 3 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
    printf("  src pages %s, dst pages %s\n", mapped(src, 3), mapped(dst, 2));
    munmap(dst, 2 * PAGE);

    /* MREMAP_FIXED moving and growing onto an existing mapping, data kept. */
    src = map(1, PROT_READ | PROT_WRITE, flags);
    dst = map(2, PROT_READ, flags);
    src[10] = 'c';
    n = remap(src, PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    result("fixed grow", n, dst);
    printf("  src pages %s, dst pages %s, byte %c\n", mapped(src, 1), mapped(dst, 2), dst[10]);
    munmap(dst, 2 * PAGE);

    /* Source and destination may not overlap. */
    m = map(2, PROT_READ, flags);
    result("fixed overlap",
           remap(m, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, m + PAGE), m);
    munmap(m, 2 * PAGE);

    /* An old size of 0: a second mapping of a shared mapping's pages. */
    m = map(1, PROT_READ | PROT_WRITE, flags);
    m[5] = 'd';
    result("dup in place", remap(m, 0, PAGE, 0, NULL), m);
    n = remap(m, 0, PAGE, MREMAP_MAYMOVE, NULL);
    result("dup moving", n, m);
    if (n != MAP_FAILED) {
        n[6] = 'e';
        printf("  old pages %s, new pages %s, bytes %c%c\n", mapped(m, 1), mapped(n, 1), n[5],
               m[6]);
        munmap(n, PAGE);
    }
    munmap(m, PAGE);

    /* MREMAP_DONTUNMAP: the pages move, the old range stays mapped. */
    m = map(2, PROT_READ | PROT_WRITE, flags);
    m[0] = 'f';
    n = remap(m, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
    result("dontunmap", n, m);
    if (n != MAP_FAILED) {
        printf("  old pages %s, new pages %s, new byte %c, old byte %d\n", mapped(m, 2),
               mapped(n, 2), n[0], m[0]);
        munmap(n, 2 * PAGE);
    }
    result("dontunmap resizing", remap(m, 2 * PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL),
           m);
    result("dontunmap without maymove", remap(m, 2 * PAGE, 2 * PAGE, MREMAP_DONTUNMAP, NULL), m);
    munmap(m, 2 * PAGE);
}

int main(void) {
    kinds(MAP_PRIVATE, "private");
    kinds(MAP_SHARED, "shared");
    result("unaligned", remap((char *)PAGE + 1, PAGE, PAGE, 0, NULL), NULL);
    result("fixed without maymove", remap((char *)PAGE, PAGE, PAGE, MREMAP_FIXED, NULL), NULL);
    result("unknown flag", remap((char *)PAGE, PAGE, PAGE, 8, NULL), NULL);
    result("zero new size", remap((char *)PAGE, PAGE, 0, 0, NULL), NULL);
    result("nothing mapped", remap((char *)PAGE, PAGE, 2 * PAGE, 0, NULL), NULL);
    /* Shrinking from an old size that runs past the address space: EINVAL, and the
     * mapping is still whole (the sentry used to drop it and fail on the host). */
    char *g = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g[0] = 'g';
    result("shrinking a huge old size", remap(g, 1ul << 62, PAGE, 0, NULL), g);
    result("moving with a huge old size",
           remap(g, 1ul << 62, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, g + 64 * PAGE), g + 64 * PAGE);
    printf("  pages %s, first byte %c\n", mapped(g, 2), g[0]);
    munmap(g, 2 * PAGE);
    munmap(g + 64 * PAGE, PAGE);
    printf("done\n");
    return 0;
}
