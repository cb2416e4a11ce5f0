// O_TMPFILE compared with native Linux: an unnamed file in a /tmp directory, written,
// fstat'ed (nlink 0), linked with linkat(AT_EMPTY_PATH) and through /proc/self/fd
// (AT_SYMLINK_FOLLOW); O_EXCL refuses the link; O_RDONLY|O_TMPFILE and O_CREAT|O_TMPFILE
// are EINVAL; the mode applies.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static const char *path(const char *name) {
  static char p[2][128];
  static int i;
  i ^= 1;
  snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
  return p[i];
}

static void show(const char *what, long r) {
  printf("%s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "-");
  errno = 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  umask(022);
  strcpy(dir, "/tmp/otmpfile.XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  int fd = open(dir, O_TMPFILE | O_RDWR, 0666);
  show("open", fd < 0 ? -1 : 0);
  if (fd < 0)
    return 1;
  show("write", write(fd, "hello", 5));
  int fl = fcntl(fd, F_GETFL);
  printf("getfl tmpfile %d rdwr %d\n", (fl & O_TMPFILE) == O_TMPFILE, (fl & O_ACCMODE) == O_RDWR);
  struct stat st;
  fstat(fd, &st);
  printf("fstat nlink %lu size %ld mode %o\n", (unsigned long)st.st_nlink, (long)st.st_size,
         st.st_mode);
  show("linkat", linkat(fd, "", AT_FDCWD, path("named"), AT_EMPTY_PATH));
  struct stat sn;
  show("stat", stat(path("named"), &sn));
  printf("named nlink %lu size %ld mode %o same %d\n", (unsigned long)sn.st_nlink,
         (long)sn.st_size, sn.st_mode, sn.st_ino == st.st_ino);
  fstat(fd, &st);
  printf("fd nlink %lu\n", (unsigned long)st.st_nlink);
  char buf[16] = {0};
  int r = open(path("named"), O_RDONLY);
  show("read", read(r, buf, sizeof buf - 1));
  printf("content %s\n", buf);
  close(r);
  close(fd);

  fd = open(dir, O_TMPFILE | O_WRONLY, 0600);
  show("open2", fd < 0 ? -1 : 0);
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  show("linkat-proc", linkat(AT_FDCWD, proc, AT_FDCWD, path("viaproc"), AT_SYMLINK_FOLLOW));
  show("stat-proc", stat(path("viaproc"), &sn));
  printf("viaproc mode %o\n", sn.st_mode);
  close(fd);

  fd = open(dir, O_TMPFILE | O_WRONLY | O_EXCL, 0600);
  show("open-excl", fd < 0 ? -1 : 0);
  show("linkat-excl", linkat(fd, "", AT_FDCWD, path("excl"), AT_EMPTY_PATH));
  close(fd);

  show("rdonly", open(dir, O_TMPFILE | O_RDONLY, 0600));
  show("creat", open(dir, O_TMPFILE | O_CREAT | O_RDWR, 0600));
  show("notdir", open(path("named"), O_TMPFILE | O_RDWR, 0600));
  show("missing", open(path("nope"), O_TMPFILE | O_RDWR, 0600));

  unlink(path("named"));
  unlink(path("viaproc"));
  rmdir(dir);
  printf("done\n");
  return 0;
}
