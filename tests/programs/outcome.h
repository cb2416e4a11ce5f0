/*
 * outcome.h: how the mount and cgroup test programs print a call's outcome, so that a run under
 * runsc-rs and a native run compare line by line, and how they name files in their
 * scratch directory `dir` (which the including program fills in before calling at()).
 */
#ifndef OUTCOME_H
#define OUTCOME_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

static char dir[64];

/* "what: value", or "what: -1 ENAME" for a failed call; flushed, so that the lines of
   processes the program forks keep their order. */
static inline void result(const char *what, long r) {
    if (r == -1)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
    fflush(stdout);
}

/* dir/name, in one of four rotating buffers (a call may name up to four paths). */
static inline char *at(const char *name) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

#endif
