/* How a child killed by a core-action signal is reported when no core file is written
 * (RLIMIT_CORE 0, a file core_pattern): no WCOREDUMP in the wait status and CLD_KILLED,
 * not CLD_DUMPED, in waitid's si_code. Prints one line per child, then "done". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void child_dies_of(int sig) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    raise(sig);
    _exit(99);
}

int main(void) {
    int sigs[] = {SIGABRT, SIGSEGV, SIGQUIT, SIGTERM};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        pid_t p = fork();
        if (p == 0)
            child_dies_of(sigs[i]);
        int st;
        waitpid(p, &st, 0);
        p = fork();
        if (p == 0)
            child_dies_of(sigs[i]);
        siginfo_t si;
        waitid(P_PID, p, &si, WEXITED);
        printf("signal %d: termsig=%d coredump=%d si_code=%s si_status=%d\n", sigs[i],
               WIFSIGNALED(st) ? WTERMSIG(st) : -1, WCOREDUMP(st) ? 1 : 0,
               si.si_code == CLD_DUMPED ? "CLD_DUMPED"
               : si.si_code == CLD_KILLED ? "CLD_KILLED"
                                          : "other",
               si.si_status);
    }
    printf("done\n");
    return 0;
}
