/* ELF images whose loadable segments cannot be mapped: a file offset that disagrees with the
 * address within the page, a position-independent image placed so its end overflows, and a
 * segment reaching past the end of the file. Linux finds these only after exec's point of no
 * return, so execve does not return and the process dies of SIGSEGV. Prints how each child
 * ended; the output is compared with native Linux. */
#define _GNU_SOURCE
#include "elf_image.h"
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct image {
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    unsigned char code[16];
};

static void try(const char *what, int type, Elf64_Addr vaddr, Elf64_Off offset,
                Elf64_Xword filesz) {
    struct image im;
    memset(&im, 0, sizeof im);
    elf_header(&im.eh, type, vaddr + offsetof(struct image, code), offsetof(struct image, ph),
               1);
    im.ph.p_type = PT_LOAD;
    im.ph.p_flags = PF_R | PF_X;
    im.ph.p_offset = offset;
    im.ph.p_vaddr = vaddr;
    im.ph.p_paddr = vaddr;
    im.ph.p_filesz = filesz;
    im.ph.p_memsz = filesz;
    im.ph.p_align = 4096;
    /* exit_group(7): what runs if the image loads after all. */
    static const unsigned char code[] = {0xb8, 0xe7, 0, 0, 0, 0xbf, 7, 0, 0, 0, 0x0f, 0x05};
    memcpy(im.code, code, sizeof code);

    char path[64];
    if (elf_write("elf_late_fail", &im, sizeof im, path, sizeof path) != 0)
        exit(1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {path, NULL};
        execve(path, argv, (char *[]){NULL});
        printf("%s: execve returned %s\n", what, strerror(errno));
        fflush(stdout);
        _exit(100);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s: killed by %s\n", what, strsignal(WTERMSIG(status)));
    else
        printf("%s: exit %d\n", what, WEXITSTATUS(status));
    unlink(path);
}

int main(void) {
    try("well formed", ET_EXEC, 0x400000, 0, sizeof(struct image));
    try("unaligned offset", ET_EXEC, 0x400000, 1, sizeof(struct image) - 1);
    try("pie overflow", ET_DYN, 0xfffffffffffff000UL - sizeof(struct image), 0,
        sizeof(struct image));
    try("past the end of the file", ET_EXEC, 0x400000, 0, 0x3000);
    printf("done\n");
    return 0;
}
