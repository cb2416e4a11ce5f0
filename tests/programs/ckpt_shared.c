// A checkpoint workload (tests/tests/checkpoint.rs): writable MAP_SHARED mappings of a tmpfs
// file (in /dev/shm) and of a memfd, each written through the mapping and through its fd
// before the checkpoint. It prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken
// then), and checks that each side still shows what the other wrote, before and after:
// restored, the lines after "ready" show that the mapping and the file are still one;
// natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static char *map_file(int fd) {
  if (ftruncate(fd, 8192)) die("ftruncate");
  char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  strcpy(p, "before-map");
  if (pwrite(fd, "before-fd", 10, 4096) != 10) die("pwrite");
  return p;
}

static void check(const char *what, int fd, char *p) {
  char buf[16] = "";
  if (pread(fd, buf, 11, 0) < 0) die("pread");
  printf("%s: map->read=%s read->map=%s", what, buf, p + 4096);
  strcpy(p + 100, "after-map");
  if (pwrite(fd, "after-fd", 9, 4200) != 9) die("pwrite after");
  memset(buf, 0, sizeof buf);
  if (pread(fd, buf, 10, 100) < 0) die("pread after");
  printf(" after: map->read=%s read->map=%s\n", buf, p + 4200);
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  char path[64];
  snprintf(path, sizeof path, "/dev/shm/ckpt-shared-%d", getpid());
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) die("open");
  char *p = map_file(fd);
  int mfd = memfd_create("ckpt-shared", 0);
  if (mfd < 0) die("memfd_create");
  char *q = map_file(mfd);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  check("tmpfs", fd, p);
  check("memfd", mfd, q);
  unlink(path);
  printf("done\n");
  return 0;
}
