/*
 * enosys: calls the given syscall numbers (default: numbers no Linux kernel
 * assigns) with all-zero arguments and prints the result or the errno name,
 * then shows that the program is still alive.
 *
 *   enosys            -> syscalls 500, 1000, 100000 and -1
 *   enosys 206 ...    -> the given numbers
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *errno_name(int e) {
    switch (e) {
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return NULL;
    }
}

static void call(long nr) {
    errno = 0;
    long ret = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
    if (ret == -1) {
        int e = errno;
        const char *name = errno_name(e);
        if (name != NULL)
            printf("syscall %ld: %s\n", nr, name);
        else
            printf("syscall %ld: errno %d\n", nr, e);
    } else {
        printf("syscall %ld: returned %ld\n", nr, ret);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            call(strtol(argv[i], NULL, 0));
    } else {
        call(500);
        call(1000);
        call(100000);
        call(-1);
    }
    printf("still alive\n");
    return 0;
}
