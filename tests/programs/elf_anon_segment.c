/* An ELF image with a read-only PT_LOAD segment that has no file part (p_filesz 0, p_memsz a
 * page): Linux maps only its bss, an anonymous page that is readable and writable whatever
 * the segment's flags and is named by no file. The image's code writes to that page, stops
 * itself, then exits 7; the parent prints the page's /proc/PID/maps permissions and name
 * while the child is stopped, and how the child ended. The output is compared with native
 * Linux. */
#define _GNU_SOURCE
#include "elf_image.h"
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEXT 0x40000ul
#define ANON 0x41000ul

struct image {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[2];
    unsigned char code[48];
};

/* movb $1, ANON; kill(getpid(), SIGSTOP); exit_group(7) */
static const unsigned char code[] = {
    0xc6, 0x04, 0x25, 0x00, 0x10, 0x04, 0x00, 0x01, /* movb $1, 0x41000 */
    0xb8, 0x27, 0, 0, 0, 0x0f, 0x05,                /* getpid */
    0x89, 0xc7,                                     /* mov %eax, %edi */
    0xbe, 0x13, 0, 0, 0,                            /* mov $SIGSTOP, %esi */
    0xb8, 0x3e, 0, 0, 0, 0x0f, 0x05,                /* kill */
    0xb8, 0xe7, 0, 0, 0, 0xbf, 7, 0, 0, 0, 0x0f, 0x05, /* exit_group(7) */
};

int main(void) {
    struct image im;
    memset(&im, 0, sizeof im);
    elf_header(&im.eh, ET_EXEC, TEXT + offsetof(struct image, code), offsetof(struct image, ph),
               2);
    im.ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0,
                            .p_vaddr = TEXT, .p_paddr = TEXT, .p_filesz = sizeof im,
                            .p_memsz = sizeof im, .p_align = 4096};
    im.ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R, .p_offset = 0,
                            .p_vaddr = ANON, .p_paddr = ANON, .p_filesz = 0,
                            .p_memsz = 4096, .p_align = 4096};
    memcpy(im.code, code, sizeof code);

    char path[64];
    if (elf_write("elf_anon_segment", &im, sizeof im, path, sizeof path) != 0)
        return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, WUNTRACED) != pid) {
        printf("FAIL waitpid: %s\n", strerror(errno));
        return 1;
    }
    if (WIFSTOPPED(st)) {
        char mp[64], line[512];
        snprintf(mp, sizeof mp, "/proc/%d/maps", pid);
        FILE *f = fopen(mp, "r");
        int seen = 0;
        while (f && fgets(line, sizeof line, f)) {
            unsigned long lo, hi;
            char perms[8];
            int name = 0;
            if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &name) < 3)
                continue;
            if (lo <= ANON && ANON < hi) {
                line[strcspn(line, "\n")] = 0;
                printf("anon page: %s, %s\n", perms, name && line[name] ? "named" : "no name");
                seen = 1;
            }
        }
        if (f) fclose(f);
        if (!seen) printf("anon page: not mapped\n");
        kill(pid, SIGCONT);
        waitpid(pid, &st, 0);
    }
    if (WIFEXITED(st))
        printf("child: exit %d\n", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("child: killed by %s\n", strsignal(WTERMSIG(st)));
    unlink(path);
    return 0;
}
