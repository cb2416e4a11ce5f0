// A checkpoint workload (tests/tests/checkpoint.rs): System V shared memory. A child
// attaches a keyed segment at an address of its own and counts in it; the parent reads the
// count through its attachment, and a segment removed (IPC_RMID) while attached by both is
// written by one and read by the other. It prints "ready", sleeps ARGV[1] seconds (the
// checkpoint is taken then), and checks that both processes still share the same pages:
// restored, the lines after "ready" show what came back; natively (a short sleep, no
// checkpoint) it prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
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

int main(int argc, char **argv) {
  double window = argc > 1 ? atof(argv[1]) : 6;
  key_t key = 0x5ead0000 + (getpid() & 0xffff);

  int id = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0640);
  if (id < 0) die("shmget");
  volatile long *p = shmat(id, NULL, 0);
  if (p == (void *)-1) die("shmat");
  int priv = shmget(IPC_PRIVATE, 4096, 0600);
  if (priv < 0) die("shmget private");
  char *q = shmat(priv, NULL, 0);
  if (q == (void *)-1) die("shmat private");
  strcpy(q, "private-data");
  if (shmctl(priv, IPC_RMID, NULL)) die("IPC_RMID");

  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    // An attachment of its own, at another address than the inherited one.
    if (shmdt((void *)p)) _exit(2);
    volatile long *c = shmat(id, NULL, 0);
    if (c == (void *)-1) _exit(3);
    c[5] = 1;
    while (!c[1]) {
      c[0]++;
      sleep_for(0.001);
    }
    c[3] = c[2] + 1;
    // The removed segment, through the mapping inherited from the parent.
    c[4] = strcmp(q, "private-data!") == 0;
    _exit(0);
  }
  while (!p[5]) sleep_for(0.001);

  printf("ready\n");
  fflush(stdout);
  sleep_for(window);

  long a = p[0];
  sleep_for(0.1);
  long b = p[0];
  printf("counter=%s ", b > a ? "moving" : "stuck");
  strcat(q, "!");
  p[2] = 41;
  __sync_synchronize();
  p[1] = 1;
  int status;
  waitpid(child, &status, 0);
  printf("child=%d echo=%ld private=%s ", WIFEXITED(status) ? WEXITSTATUS(status) : -1, p[3],
         p[4] ? "shared" : "lost");
  struct shmid_ds ds;
  if (shmctl(id, IPC_STAT, &ds)) die("IPC_STAT");
  printf("nattch=%lu size=%zu mode=%o by_key=%s ", (unsigned long)ds.shm_nattch, ds.shm_segsz,
         ds.shm_perm.mode & 0777, shmget(key, 0, 0) == id ? "same" : "lost");
  if (shmctl(priv, IPC_STAT, &ds)) die("IPC_STAT private");
  printf("removed=%s nattch=%lu\n", ds.shm_perm.mode & SHM_DEST ? "dest" : "live",
         (unsigned long)ds.shm_nattch);
  shmctl(id, IPC_RMID, NULL);
  printf("done\n");
  return 0;
}
