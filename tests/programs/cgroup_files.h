/*
 * cgroup_files.h: how the cgroup v2 test programs name and write the files of the hierarchy
 * they work in, at `root` (which the including program fills in before calling path()).
 */
#ifndef CGROUP_FILES_H
#define CGROUP_FILES_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char root[256];

/* root/rel, in a buffer the next call reuses. */
static const char *path(const char *rel) {
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s/%s", root, rel);
    return buf;
}

/* Writes `val` to root/rel: 0, or the errno of the open or the write. */
static int put(const char *rel, const char *val) {
    int fd = open(path(rel), O_WRONLY);
    if (fd < 0) return errno;
    int err = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : errno;
    close(fd);
    return err;
}

#endif
