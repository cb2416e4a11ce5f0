/* open(O_CREAT) without O_EXCL racing unlink of the same name: three processes open
 * DIR/f with O_RDWR|O_CREAT in a loop while a fourth unlinks it; Linux's open always ends
 * with a file, so every open succeeds. Usage: creat_race DIR. Prints, in order, how many opens
 * of each opener failed ("opener K failed N of M", N capped at 255; the first error goes to
 * stderr) and "done". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { OPENERS = 3, ROUNDS = 10000 };

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: creat_race DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/f", argv[1]);
    pid_t pids[OPENERS + 1];
    for (int k = 0; k <= OPENERS; k++) {
        pids[k] = fork();
        if (pids[k] != 0) {
            continue;
        }
        int failed = 0;
        for (int i = 0; i < ROUNDS; i++) {
            if (k == 0) {
                unlink(path);
                continue;
            }
            int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd < 0) {
                if (failed++ == 0) {
                    fprintf(stderr, "opener %d: open: %s\n", k, strerror(errno));
                }
            } else {
                close(fd);
            }
        }
        _exit(failed > 255 ? 255 : failed);
    }
    for (int k = 0; k <= OPENERS; k++) {
        int status = 0;
        waitpid(pids[k], &status, 0);
        if (k != 0) {
            printf("opener %d failed %d of %d\n", k, WEXITSTATUS(status), ROUNDS);
        }
    }
    printf("done\n");
    return 0;
}
