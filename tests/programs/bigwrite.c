/*
 * bigwrite: writes 1 MiB of a pseudo-random pattern to stdout in a single
 * write(2), then the same amount in chunks of varying sizes with write(2),
 * then with writev(2). Any reordering, loss or short write shows up either
 * in stdout or in the exit status (a short write on a blocking pipe is a bug:
 * the program finishes the data and exits 3). Diagnostics go to stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define MIB (1u << 20)

static unsigned char buf[MIB];
static int short_writes;

static void write_all(const unsigned char *p, size_t len, const char *what) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(1, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: write failed: %s\n", what, strerror(errno));
            _exit(2);
        }
        if ((size_t)n != len - done) {
            fprintf(stderr, "%s: short write %zd of %zu\n", what, n, len - done);
            short_writes++;
        }
        done += (size_t)n;
    }
}

int main(void) {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < MIB; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }

    write_all(buf, MIB, "single write");

    static const size_t chunks[] = {1, 4095, 4096, 4097, 65535, 65536, 100000, 7};
    size_t off = 0;
    for (unsigned i = 0; off < MIB; i++) {
        size_t len = chunks[i % (sizeof chunks / sizeof chunks[0])];
        if (len > MIB - off)
            len = MIB - off;
        write_all(buf + off, len, "chunked write");
        off += len;
    }

    struct iovec iov[4] = {
        {buf, 1},
        {buf + 1, 0},
        {buf + 1, MIB / 2 - 1},
        {buf + MIB / 2, MIB / 2},
    };
    ssize_t n = writev(1, iov, 4);
    if (n != (ssize_t)MIB) {
        fprintf(stderr, "writev returned %zd, want %u\n", n, MIB);
        return 4;
    }
    return short_writes ? 3 : 0;
}
