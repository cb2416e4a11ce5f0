// A checkpoint workload (tests/tests/checkpoint.rs): System V semaphores (values, a
// SEM_UNDO adjustment, a child blocked in semop), a message queue holding messages of
// two types, and a sealed memfd. It prints "ready", sleeps ARGV[1] seconds (the checkpoint is taken then), and
// checks that everything is as it was: restored, the lines after "ready" show what came
// back; natively (a short sleep, no checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

union semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

struct msg {
  long type;
  char text[32];
};

static void sleep_for(double secs) {
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  key_t key = 0x5eed0000 + (getpid() & 0xffff);

  int sem = semget(key, 3, IPC_CREAT | IPC_EXCL | 0640);
  if (sem < 0) die("semget");
  unsigned short vals[3] = {7, 0, 3};
  if (semctl(sem, 0, SETALL, (union semun){.array = vals})) die("SETALL");
  // An adjustment undone when the process exits... after the restore.
  struct sembuf undo = {2, 2, SEM_UNDO};
  if (semop(sem, &undo, 1)) die("semop undo");

  int q = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
  if (q < 0) die("msgget");
  struct msg m = {1, "first-of-type-1"};
  if (msgsnd(q, &m, sizeof m.text, 0)) die("msgsnd 1");
  m.type = 2;
  strcpy(m.text, "then-type-2");
  if (msgsnd(q, &m, sizeof m.text, 0)) die("msgsnd 2");

  int mfd = memfd_create("ckpt", MFD_ALLOW_SEALING);
  if (mfd < 0 || write(mfd, "memfd-data", 10) != 10) die("memfd");
  if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)) die("F_ADD_SEALS");

  pid_t child = fork();
  if (child == 0) {
    // Blocks until the parent raises semaphore 1.
    struct sembuf take = {1, -1, 0};
    _exit(semop(sem, &take, 1) == 0 ? 0 : 1);
  }

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  unsigned short now[3];
  semctl(sem, 0, GETALL, (union semun){.array = now});
  printf("sem=%d,%d,%d ", now[0], now[1], now[2]);
  printf("sem_by_key=%s ", semget(key, 0, 0) == sem ? "same" : "lost");
  struct sembuf give = {1, 1, 0};
  if (semop(sem, &give, 1)) die("semop give");
  int status;
  waitpid(child, &status, 0);
  printf("waiter=%s ", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "woke" : "failed");

  struct msqid_ds ds;
  msgctl(q, IPC_STAT, &ds);
  printf("queued=%lu ", (unsigned long)ds.msg_qnum);
  printf("msg_by_key=%s ", msgget(key, 0) == q ? "same" : "lost");
  struct msg got;
  if (msgrcv(q, &got, sizeof got.text, 2, IPC_NOWAIT) < 0) die("msgrcv 2");
  printf("type2=%s ", got.text);
  if (msgrcv(q, &got, sizeof got.text, 0, IPC_NOWAIT) < 0) die("msgrcv any");
  printf("then=%s ", got.text);

  char buf[32] = {0};
  char link[64];
  char path[64] = {0};
  snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
  if (readlink(link, path, sizeof path - 1) < 0) strcpy(path, "?");
  int seals = fcntl(mfd, F_GET_SEALS);
  ssize_t n = pread(mfd, buf, sizeof buf - 1, 0);
  errno = 0;
  ssize_t grow = pwrite(mfd, "x", 1, 10);
  printf("memfd=%.*s name=%s seals=%s grow=%s\n", (int)(n > 0 ? n : 0), buf, path,
         seals == (F_SEAL_SHRINK | F_SEAL_GROW) ? "shrink,grow" : "other",
         grow < 0 && errno == EPERM ? "EPERM" : "allowed");
  semctl(sem, 0, IPC_RMID);
  msgctl(q, IPC_RMID, NULL);
  printf("done\n");
  return 0;
}
