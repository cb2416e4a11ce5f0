/*
 * hello: prints its argv, the environment variables whose names start with
 * HELLO_ (in envp order) and the page size from the aux vector, then exits
 * with the status given as argv[1] (0 when absent).
 *
 *   hello 42 a b   -> prints argc, argv[0..3], HELLO_* vars; exit status 42
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

int main(int argc, char **argv, char **envp) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = envp; *e != NULL; e++)
        if (strncmp(*e, "HELLO_", 6) == 0)
            printf("env %s\n", *e);
    printf("pagesz=%lu\n", getauxval(AT_PAGESZ));
    printf("secure=%lu\n", getauxval(AT_SECURE));
    int status = argc > 1 ? atoi(argv[1]) : 0;
    printf("exit=%d\n", status);
    return status;
}
