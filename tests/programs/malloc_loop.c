/*
 * malloc_loop: allocates 64 MiB, fills and checksums it, frees it; several
 * rounds. glibc serves the first round with mmap; after the first free its
 * dynamic mmap threshold rises, so later rounds come from brk. A final round
 * grows a block with realloc (mremap). Prints one checksum per round.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE (64u << 20)
#define ROUNDS 6

static uint64_t fill_and_sum(unsigned char *p, size_t len, unsigned round) {
    memset(p, (int)(round * 37 + 1), len);
    for (size_t i = 0; i < len; i += 4096)
        p[i] = (unsigned char)(i / 4096 * 7 + round);
    uint64_t sum = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        sum = (sum ^ p[i]) * 1099511628211ull;
    return sum;
}

int main(void) {
    for (unsigned round = 0; round < ROUNDS; round++) {
        unsigned char *p = malloc(SIZE);
        if (p == NULL) {
            printf("round %u: malloc failed\n", round);
            return 1;
        }
        printf("round %u: checksum %016llx\n", round,
               (unsigned long long)fill_and_sum(p, SIZE, round));
        free(p);
    }

    unsigned char *p = malloc(1u << 20);
    if (p == NULL)
        return 1;
    memset(p, 0x5a, 1u << 20);
    unsigned char *q = realloc(p, SIZE);
    if (q == NULL) {
        printf("realloc failed\n");
        return 1;
    }
    int kept = 1;
    for (size_t i = 0; i < (1u << 20); i++)
        kept &= q[i] == 0x5a;
    printf("realloc kept contents: %s\n", kept ? "yes" : "no");
    printf("realloc checksum %016llx\n", (unsigned long long)fill_and_sum(q, SIZE, ROUNDS));
    free(q);
    printf("done\n");
    return 0;
}
