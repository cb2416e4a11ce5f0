// cgroup v2 memory charging as a program sees it: memory is charged to the group the process
// is in when it first becomes resident (to the nearest ancestor with the memory controller),
// and stays charged there when the process moves on; a removed group's charges count in its
// parent. Prints one line per fact; the caller compares with Linux's answers
// (Documentation/admin-guide/cgroup-v2.rst, "Memory Ownership").
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_files.h"

#define MIB (1024L * 1024L)

static long current(const char *rel) {
    char buf[64] = {0};
    int fd = open(path(rel), O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 ? atol(buf) : -1;
}

static void touch_mib(long mib) {
    char *p = mmap(NULL, mib * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 1, mib * MIB);
}

/* Whether `v` bytes are `mib` MiB, give or take what Linux charges besides the pages. */
static int about(long v, long mib) { return v >= mib * MIB - MIB / 2 && v < mib * MIB + 2 * MIB; }

int main(void) {
    snprintf(root, sizeof(root), "/sys/fs/cgroup");
    printf("enable memory: %d\n", put("cgroup.subtree_control", "+memory"));
    mkdir(path("m"), 0755);
    printf("enable memory in m: %d\n", put("m/cgroup.subtree_control", "+memory"));
    mkdir(path("m/child"), 0755);
    mkdir(path("m/child/gc"), 0755);
    /* Resident before the move: charged where the process was, not to m/child. */
    touch_mib(4);
    char self[32];
    snprintf(self, sizeof self, "%d", getpid());
    printf("move to m/child/gc: %d\n", put("m/child/gc/cgroup.procs", self));
    printf("m/child empty at first: %d\n", current("m/child/memory.current") < MIB);
    touch_mib(8);
    long c = current("m/child/memory.current");
    printf("m/child charged 8 MiB from below (no memory controller in gc): %d\n", about(c, 8));
    printf("m charged the same: %d\n", about(current("m/memory.current"), 8));
    printf("move to m/child: %d\n", put("m/child/cgroup.procs", self));
    printf("rmdir m/child/gc: %d\n", rmdir(path("m/child/gc")) == 0 ? 0 : errno);
    printf("m/child keeps the charge: %d\n", about(current("m/child/memory.current"), 8));
    printf("move back to the root: %d\n", put("cgroup.procs", self));
    printf("m/child still charged after the process left: %d\n",
           about(current("m/child/memory.current"), 8));
    fflush(stdout);
    printf("done\n");
    return 0;
}
