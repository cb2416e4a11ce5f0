// A checkpoint workload (tests/tests/checkpoint.rs): a process that reads the clocks through
// libc (the vDSO, whose functions glibc found once at start-up and keeps pointers to). It
// notes where [vvar] and [vdso] are, prints "ready", then for ARGV[1] seconds (the
// checkpoint is taken then) reads CLOCK_MONOTONIC every 20 ms; afterwards it checks that
// the mappings are where they were, that CLOCK_MONOTONIC never went back, and that the
// vDSO's clocks agree with the system calls. Restored, the line after "ready" shows what
// came back; natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }

static int64_t libc_now(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ns(ts);
}

static int64_t sys_now(clockid_t c) {
  struct timespec ts;
  syscall(SYS_clock_gettime, c, &ts);
  return ns(ts);
}

// The [vvar] and [vdso] lines of /proc/self/maps, concatenated.
static void special_maps(char *out, size_t len) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  out[0] = 0;
  while (f && fgets(line, sizeof(line), f)) {
    if (strstr(line, "[vvar]") || strstr(line, "[vdso]")) strncat(out, line, len - strlen(out) - 1);
  }
  if (f) fclose(f);
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  setvbuf(stdout, NULL, _IONBF, 0);
  if (!getauxval(AT_SYSINFO_EHDR)) {
    printf("no vDSO\n");
    return 1;
  }
  char before[1024], after[1024];
  special_maps(before, sizeof(before));
  int64_t start = libc_now(CLOCK_MONOTONIC), prev = start;
  int back = 0;
  printf("ready\n");
  while (prev - start < (int64_t)(window * 1e9)) {
    struct timespec step = {0, 20000000};
    while (nanosleep(&step, &step) != 0 && errno == EINTR) {
    }
    int64_t now = libc_now(CLOCK_MONOTONIC);
    if (now < prev) back++;
    prev = now;
  }
  special_maps(after, sizeof(after));
  int agrees = 1;
  clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME};
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < 100; k++) {
      int64_t a = sys_now(clocks[i]), v = libc_now(clocks[i]), b = sys_now(clocks[i]);
      if (v < a - 1000000 || v > b + 1000000) agrees = 0;
    }
  }
  printf("maps=%s monotonic=%s agrees=%s\n", before[0] && !strcmp(before, after) ? "same" : "moved",
         back ? "went-back" : "yes", agrees ? "yes" : "no");
  printf("done\n");
  return 0;
}
