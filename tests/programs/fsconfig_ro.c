/* fsconfig(2)'s read-only flag on a tmpfs: set before FSCONFIG_CMD_CREATE it makes the
 * mounted filesystem read-only (statfs ST_RDONLY), as on Linux; set after fsmount and
 * applied with FSCONFIG_CMD_RECONFIGURE, Linux makes the mounted filesystem read-only, and
 * the sandbox, whose read-only state lives in its mounts, refuses the change (EOPNOTSUPP)
 * rather than report a success it did not make. Prints one line per case. Run as root. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FSCONFIG_SET_FLAG_ 0
#define FSCONFIG_CMD_CREATE_ 6
#define FSCONFIG_CMD_RECONFIGURE_ 7

static int fsconfig_(int fd, unsigned cmd, const char *key) {
    return syscall(SYS_fsconfig, fd, cmd, key, NULL, 0);
}

static const char *readonly(int mnt) {
    struct statfs st;
    if (fstatfs(mnt, &st) != 0) return strerror(errno);
    return st.f_flags & ST_RDONLY ? "yes" : "no";
}

int main(void) {
    int fs = syscall(SYS_fsopen, "tmpfs", 0);
    if (fs < 0 || fsconfig_(fs, FSCONFIG_SET_FLAG_, "ro") != 0 ||
        fsconfig_(fs, FSCONFIG_CMD_CREATE_, NULL) != 0) {
        printf("setup: %s\n", strerror(errno));
        return 1;
    }
    int mnt = syscall(SYS_fsmount, fs, 0, 0);
    if (mnt < 0) {
        printf("fsmount: %s\n", strerror(errno));
        return 1;
    }
    printf("ro before create: read-only %s\n", readonly(mnt));
    close(mnt);
    close(fs);

    fs = syscall(SYS_fsopen, "tmpfs", 0);
    if (fs < 0 || fsconfig_(fs, FSCONFIG_CMD_CREATE_, NULL) != 0) {
        printf("setup: %s\n", strerror(errno));
        return 1;
    }
    mnt = syscall(SYS_fsmount, fs, 0, 0);
    if (mnt < 0 || fsconfig_(fs, FSCONFIG_SET_FLAG_, "ro") != 0) {
        printf("setup: %s\n", strerror(errno));
        return 1;
    }
    int rc = fsconfig_(fs, FSCONFIG_CMD_RECONFIGURE_, NULL);
    printf("reconfigure ro after fsmount: %s, read-only %s\n", rc ? strerror(errno) : "ok",
           readonly(mnt));
    return 0;
}
