/* membarrier(2) outcomes, printed so a native run and a sandboxed run compare line by line:
 * QUERY (only whether the five basic commands are offered: the host may offer more), the
 * global barrier, private expedited before and after registering, in a thread, in a fork
 * child and after an exec, bad flags and an unknown command. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outcome.h"

static long mb(int cmd, unsigned flags) {
    return syscall(SYS_membarrier, cmd, flags, 0);
}

static void *in_thread(void *arg) {
    (void)arg;
    result("thread: private expedited", mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "after-exec") == 0) {
        result("after exec: private expedited", mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
        return 0;
    }
    const long basic = MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_GLOBAL_EXPEDITED |
                       MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED |
                       MEMBARRIER_CMD_PRIVATE_EXPEDITED |
                       MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
    long mask = mb(MEMBARRIER_CMD_QUERY, 0);
    printf("query: basic commands offered: %s\n",
           mask >= 0 && (mask & basic) == basic ? "yes" : "no");
    result("query with flags", mb(MEMBARRIER_CMD_QUERY, 1));
    result("global", mb(MEMBARRIER_CMD_GLOBAL, 0));
    result("global with flags", mb(MEMBARRIER_CMD_GLOBAL, 1));
    result("global expedited, unregistered", mb(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0));
    result("private expedited, unregistered", mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
    result("register global expedited", mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0));
    result("register private expedited", mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0));
    result("private expedited", mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
    result("global expedited", mb(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0));
    result("unknown command", mb(1 << 20, 0));
    pthread_t th;
    pthread_create(&th, NULL, in_thread, NULL);
    pthread_join(th, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        result("fork child: private expedited", mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "after-exec", (char *)NULL);
        printf("exec failed: %s\n", strerror(errno));
        _exit(1);
    }
    waitpid(pid, NULL, 0);
    printf("done\n");
    return 0;
}
