/*
 * nullderef: prints a line, then faults at address 0 and dies with SIGSEGV
 * (exit status 139 from a shell or runsc-rs). Mode in argv[1]:
 *   read (default)  load from NULL
 *   write           store to NULL
 *   jump            call a function at NULL
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "read";
    printf("before fault (%s)\n", mode);
    fflush(stdout);
    volatile int *volatile p = NULL;
    if (strcmp(mode, "write") == 0) {
        *p = 1;
    } else if (strcmp(mode, "jump") == 0) {
        void (*volatile f)(void) = NULL;
        f();
    } else {
        printf("read %d\n", *p);
    }
    printf("after fault: unreachable\n");
    return 0;
}
