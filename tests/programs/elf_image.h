/*
 * elf_image.h: the ELF test programs' hand-made executables. A program lays out its image as
 * a struct starting with an Elf64_Ehdr and its program headers, fills the header with
 * elf_header(), and writes the image to a fresh executable file with elf_write().
 */
#ifndef ELF_IMAGE_H
#define ELF_IMAGE_H

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* An x86-64 little-endian header of `type` (ET_EXEC or ET_DYN) whose `phnum` program headers
   start at `phoff` and whose execution starts at `entry`. */
static inline void elf_header(Elf64_Ehdr *eh, int type, Elf64_Addr entry, Elf64_Off phoff,
                              int phnum) {
    memset(eh, 0, sizeof *eh);
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_type = type;
    eh->e_machine = EM_X86_64;
    eh->e_version = EV_CURRENT;
    eh->e_entry = entry;
    eh->e_phoff = phoff;
    eh->e_ehsize = sizeof *eh;
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = phnum;
}

/* Writes `len` bytes of `image` to /tmp/NAME.PID (mode 0755), whose path goes to `path`
   (`size` bytes). Returns 0, or -1 after printing a FAIL line. */
static inline int elf_write(const char *name, const void *image, size_t len, char *path,
                            size_t size) {
    snprintf(path, size, "/tmp/%s.%d", name, getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (fd < 0 || write(fd, image, len) != (ssize_t)len || close(fd) != 0) {
        printf("FAIL writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

#endif
