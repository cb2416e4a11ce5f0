// ptrace(2) between processes, printed so that native Linux and the sandbox can be compared
// line by line: a tracer counting a child's system calls with PTRACE_SYSCALL (numbers, results,
// TRACESYSGOOD), PEEKDATA/POKEDATA (also into a read-only page), the fork, exec and exit
// event stops with their messages, PTRACE_ATTACH/DETACH with TracerPid in /proc, and
// PTRACE_SEIZE + PTRACE_INTERRUPT. Each case prints "[name] ..." lines; exit 0 when all ran.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      printf("  FAILED %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
      failures++;                                                                \
    }                                                                            \
  } while (0)

static void describe(const char *tag, int status) {
  if (WIFEXITED(status)) {
    printf("[%s] exited %d\n", tag, WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    printf("[%s] killed by %d\n", tag, WTERMSIG(status));
  } else if (WIFSTOPPED(status)) {
    printf("[%s] stopped sig %#x event %d\n", tag, WSTOPSIG(status), status >> 16);
  } else {
    printf("[%s] status %#x\n", tag, status);
  }
}

static int wait_for(pid_t pid) {
  int status = 0;
  pid_t got = waitpid(pid, &status, __WALL);
  CHECK(got == pid);
  return status;
}

// The child stops itself so the tracer can set options before anything else happens.
static void traceme_and_stop(void) {
  if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) _exit(100);
  syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
}

static void case_syscalls(void) {
  pid_t pid = fork();
  if (pid == 0) {
    traceme_and_stop();
    syscall(SYS_getppid);
    syscall(SYS_getuid);
    syscall(SYS_close, -1);
    syscall(SYS_exit_group, 3);
    _exit(99);
  }
  describe("syscalls", wait_for(pid));
  CHECK(ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD) == 0);
  int entering = 1, stops = 0;
  CHECK(ptrace(PTRACE_SYSCALL, pid, 0, 0) == 0);
  for (;;) {
    int status = wait_for(pid);
    if (!WIFSTOPPED(status)) {
      describe("syscalls", status);
      break;
    }
    CHECK(WSTOPSIG(status) == (SIGTRAP | 0x80));
    struct user_regs_struct regs;
    CHECK(ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0);
    if (entering) {
      printf("[syscalls] enter %lld rax %lld\n", (long long)regs.orig_rax, (long long)regs.rax);
    } else if (regs.orig_rax == SYS_getppid) {
      printf("[syscalls] exit getppid = the tracer: %d\n", (pid_t)regs.rax == getpid());
    } else {
      printf("[syscalls] exit %lld = %lld\n", (long long)regs.orig_rax, (long long)regs.rax);
    }
    long word = ptrace(PTRACE_PEEKUSER, pid, offsetof(struct user_regs_struct, orig_rax), 0);
    CHECK(word == (long)regs.orig_rax);
    entering = !entering;
    stops++;
    CHECK(ptrace(PTRACE_SYSCALL, pid, 0, 0) == 0);
  }
  printf("[syscalls] %d stops\n", stops);
}

static volatile long anon_word = 10;
static const long ro_word = 7;

static void case_peekpoke(void) {
  pid_t pid = fork();
  if (pid == 0) {
    traceme_and_stop();
    _exit((anon_word == 20 ? 0 : 1) | (*(volatile const long *)&ro_word == 30 ? 0 : 2));
  }
  describe("peekpoke", wait_for(pid));
  errno = 0;
  long v = ptrace(PTRACE_PEEKDATA, pid, (void *)&anon_word, 0);
  printf("[peekpoke] peek %ld errno %d\n", v, errno);
  CHECK(ptrace(PTRACE_POKEDATA, pid, (void *)&anon_word, (void *)20L) == 0);
  // A read-only page is written as a debugger writes text.
  CHECK(ptrace(PTRACE_POKEDATA, pid, (void *)&ro_word, (void *)30L) == 0);
  errno = 0;
  v = ptrace(PTRACE_PEEKDATA, pid, (void *)8, 0);
  printf("[peekpoke] peek at 8: %ld errno %d\n", v, errno);
  siginfo_t si;
  CHECK(ptrace(PTRACE_GETSIGINFO, pid, 0, &si) == 0);
  printf("[peekpoke] siginfo signo %d code %d\n", si.si_signo, si.si_code);
  CHECK(ptrace(PTRACE_CONT, pid, 0, 0) == 0);
  describe("peekpoke", wait_for(pid));
  printf("[peekpoke] tracer's own word still %ld\n", anon_word);
}

static void case_events(const char *self) {
  pid_t pid = fork();
  if (pid == 0) {
    traceme_and_stop();
    pid_t gc = fork();
    if (gc == 0) {
      execl(self, self, "exec-child", (char *)NULL);
      _exit(98);
    }
    int status;
    if (waitpid(gc, &status, 0) != gc) _exit(97);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) + 10 : 96);
  }
  describe("events", wait_for(pid));
  CHECK(ptrace(PTRACE_SETOPTIONS, pid, 0,
               PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT) == 0);
  CHECK(ptrace(PTRACE_CONT, pid, 0, 0) == 0);
  describe("events", wait_for(pid));
  unsigned long msg = 0;
  CHECK(ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg) == 0);
  pid_t gc = (pid_t)msg;
  printf("[events] fork message is a new pid: %d\n", gc > 0 && gc != pid);
  // The new process starts traced, in a SIGSTOP stop.
  describe("events grandchild", wait_for(gc));
  CHECK(ptrace(PTRACE_CONT, gc, 0, 0) == 0);
  describe("events grandchild", wait_for(gc));
  CHECK(ptrace(PTRACE_GETEVENTMSG, gc, 0, &msg) == 0);
  printf("[events] exec message is its pid: %d\n", (pid_t)msg == gc);
  CHECK(ptrace(PTRACE_CONT, gc, 0, 0) == 0);
  describe("events grandchild", wait_for(gc));
  CHECK(ptrace(PTRACE_GETEVENTMSG, gc, 0, &msg) == 0);
  printf("[events] exit message: exited %d code %d\n", WIFEXITED((int)msg),
         WEXITSTATUS((int)msg));
  CHECK(ptrace(PTRACE_CONT, gc, 0, 0) == 0);
  // The tracer (not the parent) collects the exit first.
  describe("events grandchild", wait_for(gc));
  CHECK(ptrace(PTRACE_CONT, pid, 0, 0) == 0);
  describe("events", wait_for(pid));
  CHECK(ptrace(PTRACE_CONT, pid, 0, 0) == 0);
  describe("events", wait_for(pid));
}

static int tracer_pid_of(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int tracer = -1;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "TracerPid: %d", &tracer) == 1) break;
  }
  fclose(f);
  return tracer;
}

static void case_attach(void) {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  CHECK(ptrace(PTRACE_ATTACH, pid, 0, 0) == 0);
  describe("attach", wait_for(pid));
  printf("[attach] TracerPid is me: %d\n", tracer_pid_of(pid) == getpid());
  errno = 0;
  CHECK(ptrace(PTRACE_ATTACH, pid, 0, 0) == -1 && errno == EPERM);
  CHECK(ptrace(PTRACE_DETACH, pid, 0, 0) == 0);
  printf("[attach] TracerPid after detach: %d\n", tracer_pid_of(pid));
  errno = 0;
  CHECK(ptrace(PTRACE_CONT, pid, 0, 0) == -1 && errno == ESRCH);
  CHECK(kill(pid, SIGTERM) == 0);
  describe("attach", wait_for(pid));
}

static void case_seize(void) {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  CHECK(ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD) == 0);
  int status;
  printf("[seize] running after seize: %d\n", waitpid(pid, &status, WNOHANG) == 0);
  CHECK(ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0);
  describe("seize", wait_for(pid));
  CHECK(ptrace(PTRACE_SYSCALL, pid, 0, 0) == 0);
  describe("seize", wait_for(pid));
  CHECK(kill(pid, SIGKILL) == 0);
  describe("seize", wait_for(pid));
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc > 1 && strcmp(argv[1], "exec-child") == 0) return 5;
  case_syscalls();
  case_peekpoke();
  case_events("/proc/self/exe");
  case_attach();
  case_seize();
  printf("failures: %d\n", failures);
  return failures != 0;
}
