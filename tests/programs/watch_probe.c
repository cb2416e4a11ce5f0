/* watch_probe DIR: answers questions about the files under DIR, one per line of stdin, so a
 * test can change the tree between questions and compare the answers of a sandboxed run with
 * a native one (tests/tests/hostfs_watch.rs). Each answer ends with a line ".".
 *
 *   lstat NAME   type, mode, size, links, owner, inode, atime, mtime, ctime (or the errno)
 *   stat NAME    the same, following symbolic links
 *   read NAME    the length and (up to 64 bytes of) the contents
 *   list NAME    the number of entries and, for up to 64 of them, their sorted names
 *   readlink NAME
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show_stat(const char *name, int flags) {
    struct stat st;
    if (fstatat(AT_FDCWD, name, &st, flags) != 0) {
        printf("%s errno=%d\n", name, errno);
        return;
    }
    printf("%s mode=%o size=%lld nlink=%lu uid=%u gid=%u ino=%llu a=%lld.%09ld m=%lld.%09ld "
           "c=%lld.%09ld\n",
           name, st.st_mode, (long long)st.st_size, (unsigned long)st.st_nlink, st.st_uid,
           st.st_gid, (unsigned long long)st.st_ino, (long long)st.st_atim.tv_sec,
           st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
           (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

static void show_contents(const char *name) {
    int fd = open(name, O_RDONLY);
    if (fd < 0) {
        printf("%s errno=%d\n", name, errno);
        return;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) {
        printf("%s read errno=%d\n", name, errno);
        return;
    }
    int shown = n < 64 ? (int)n : 64;
    for (int i = 0; i < shown; i++)
        if (buf[i] < ' ' || buf[i] > '~')
            buf[i] = '?';
    printf("%s len=%zd data=%.*s\n", name, n, shown, buf);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void show_list(const char *name) {
    DIR *d = opendir(name);
    if (!d) {
        printf("%s errno=%d\n", name, errno);
        return;
    }
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    printf("%s entries=%zu\n", name, n);
    for (size_t i = 0; i < n; i++) {
        if (i < 64)
            printf("  %s\n", names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: watch_probe DIR\n");
        return 2;
    }
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *name = strchr(line, ' ');
        if (!name) {
            printf("bad question\n.\n");
            fflush(stdout);
            continue;
        }
        *name++ = 0;
        if (!strcmp(line, "lstat")) {
            show_stat(name, AT_SYMLINK_NOFOLLOW);
        } else if (!strcmp(line, "stat")) {
            show_stat(name, 0);
        } else if (!strcmp(line, "read")) {
            show_contents(name);
        } else if (!strcmp(line, "list")) {
            show_list(name);
        } else if (!strcmp(line, "readlink")) {
            char target[4096];
            ssize_t n = readlink(name, target, sizeof target - 1);
            if (n < 0)
                printf("%s errno=%d\n", name, errno);
            else
                printf("%s -> %.*s\n", name, (int)n, target);
        } else {
            printf("unknown question %s\n", line);
        }
        printf(".\n");
        fflush(stdout);
    }
    return 0;
}
