/* ELF segments mapped from the file: initialized data intact, a .bss that begins in the middle
 * of the last data page reads as zero (the file has other bytes there), and a write to a
 * global stays private to the process that made it: neither the file nor another process
 * running the same binary sees it.
 *
 * No argument: the checks in this process, then fork + exec of itself twice ("write", then
 * "check") and a look at the file's bytes behind the global. Prints one line per check; the
 * output is compared with native Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define DATA_WORDS 3001 /* 12004 bytes: .data does not end on a page boundary */
#define MAGIC 0x5a17c0deu

/* Initialized data spanning several pages, each word different. */
static uint32_t data_arr[DATA_WORDS] = {[0 ... DATA_WORDS - 1] = MAGIC};
/* The bss after it, large enough to cover the rest of the last data page. */
static unsigned char bss_arr[3 * PAGE];

extern char _edata[];

static int data_intact(void) {
    for (int i = 0; i < DATA_WORDS; i++)
        if (data_arr[i] != MAGIC) return 0;
    return 1;
}

static int bss_zero(void) {
    for (size_t i = 0; i < sizeof(bss_arr); i++)
        if (bss_arr[i] != 0) {
            printf("bss byte %zu is %#x\n", i, bss_arr[i]);
            return 0;
        }
    return 1;
}

/* The file offset behind `addr`, from /proc/self/maps. */
static long file_offset_of(const void *addr) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    long off = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end, o;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx", &start, &end, perms, &o) != 4) continue;
        if ((uintptr_t)addr >= start && (uintptr_t)addr < end) {
            off = (long)(o + ((uintptr_t)addr - start));
            break;
        }
    }
    fclose(f);
    return off;
}

static int run_child(const char *self, const char *mode) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "write") == 0) {
        int ok = data_intact() && bss_zero();
        data_arr[5] = 12345;
        bss_arr[7] = 9;
        return ok && data_arr[5] == 12345 ? 0 : 1;
    }
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return data_intact() && bss_zero() ? 0 : 1;

    uintptr_t edata = (uintptr_t)_edata;
    uintptr_t bss = (uintptr_t)bss_arr;
    printf("data ends mid-page: %s\n", edata % PAGE ? "yes" : "no");
    printf("bss array covers the rest of that page: %s\n",
           bss < (edata | (PAGE - 1)) + 1 && bss + sizeof(bss_arr) > (edata | (PAGE - 1)) + 1
               ? "yes"
               : "no");
    printf("data intact: %s\n", data_intact() ? "yes" : "no");
    printf("bss zero: %s\n", bss_zero() ? "yes" : "no");

    /* The bytes the file has where the bss begins are not zero (else the check above shows
     * nothing). */
    long edata_off = file_offset_of(_edata);
    int fd = open(argv[0], O_RDONLY);
    unsigned char tail[64] = {0};
    int nonzero = 0;
    if (fd >= 0 && edata_off >= 0 && pread(fd, tail, sizeof(tail), edata_off) > 0)
        for (size_t i = 0; i < sizeof(tail); i++) nonzero |= tail[i] != 0;
    printf("file has data after .data: %s\n", nonzero ? "yes" : "no");

    data_arr[5] = 777;
    printf("child that writes: %d\n", run_child(argv[0], "write"));
    printf("own write kept: %s\n", data_arr[5] == 777 ? "yes" : "no");
    printf("second child sees the file's data: %d\n", run_child(argv[0], "check"));

    long off = file_offset_of(&data_arr[5]);
    uint32_t word = 0;
    if (fd < 0 || off < 0 || pread(fd, &word, sizeof(word), off) != sizeof(word))
        printf("reading the file: %s\n", strerror(errno));
    else
        printf("file unchanged: %s\n", word == MAGIC ? "yes" : "no");
    return 0;
}
