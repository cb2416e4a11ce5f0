// Checkpoint of seccomp filters and no_new_privs: sets no_new_privs, installs two filters
// (getppid fails with ENOMSG, then getpgrp with EIDRM), starts a thread and forks a child
// (both wait on a pipe), prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken
// then), and then checks in each task that the filters still act, that PR_GET_NO_NEW_PRIVS
// is 1 and /proc/self/status says "Seccomp: 2", and that a filter can still be added: the
// main thread adds one with SECCOMP_FILTER_FLAG_TSYNC (getsid fails with ENOLINK; the
// thread, which shares its chain, takes it too), the child one of its own (getsid fails
// with EL2HLT). Restored, the lines after "ready" show what came back; natively (a short
// sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// A filter failing system call `nr` with `err` and allowing the rest.
static long deny(int nr, int err, unsigned flags) {
  struct sock_filter prog[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog fprog = {sizeof(prog) / sizeof(prog[0]), prog};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
}

// The errno system call `nr` fails with (0 when it succeeds).
static int err_of(long nr) {
  errno = 0;
  long r = syscall(nr, 0);
  return r == -1 ? errno : 0;
}

// The value of "Seccomp:" in /proc/self/status (-1 when missing).
static int status_seccomp(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int mode = -1;
  if (!f) return -1;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "Seccomp:", 8) == 0) mode = atoi(line + 8);
  }
  fclose(f);
  return mode;
}

static int thread_pipe[2], child_pipe[2];
static char thread_line[200];

static void *thread_main(void *arg) {
  (void)arg;
  char c;
  if (read(thread_pipe[0], &c, 1) != 1) return NULL;
  snprintf(thread_line, sizeof(thread_line),
           "thread: getppid=%d getpgrp=%d getsid=%d\n", err_of(SYS_getppid),
           err_of(SYS_getpgrp), err_of(SYS_getsid));
  return NULL;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 0.1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("PR_SET_NO_NEW_PRIVS");
    return 1;
  }
  if (deny(SYS_getppid, ENOMSG, 0) != 0 || deny(SYS_getpgrp, EIDRM, 0) != 0) {
    perror("seccomp");
    return 1;
  }
  if (pipe(thread_pipe) != 0 || pipe(child_pipe) != 0) return 1;
  pthread_t th;
  if (pthread_create(&th, NULL, thread_main, NULL) != 0) return 1;
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    char c;
    if (read(child_pipe[0], &c, 1) != 1) _exit(1);
    int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    int mode = status_seccomp();
    int ppid = err_of(SYS_getppid), pgrp = err_of(SYS_getpgrp);
    long added = deny(SYS_getsid, EL2HLT, 0);
    printf("child: nnp=%d seccomp=%d getppid=%d getpgrp=%d added=%ld getsid=%d\n", nnp,
           mode, ppid, pgrp, added, err_of(SYS_getsid));
    fflush(stdout);
    _exit(0);
  }
  printf("ready\n");
  fflush(stdout);
  sleep_for(secs);

  int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  int mode = status_seccomp();
  int ppid = err_of(SYS_getppid), pgrp = err_of(SYS_getpgrp);
  long tsync = deny(SYS_getsid, ENOLINK, SECCOMP_FILTER_FLAG_TSYNC);
  printf("main: nnp=%d seccomp=%d getppid=%d getpgrp=%d tsync=%ld getsid=%d\n", nnp, mode,
         ppid, pgrp, tsync, err_of(SYS_getsid));
  fflush(stdout);
  if (write(thread_pipe[1], "x", 1) != 1) return 1;
  pthread_join(th, NULL);
  fputs(thread_line, stdout);
  fflush(stdout);
  if (write(child_pipe[1], "x", 1) != 1) return 1;
  int status;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    printf("child failed: %#x\n", status);
  }
  printf("done\n");
  fflush(stdout);
  return 0;
}
