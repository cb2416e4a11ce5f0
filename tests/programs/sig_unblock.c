/*
 * sig_unblock: a pending signal reaches a thread that only makes system calls which never
 * block, as soon as it unblocks the signal (the sandbox looks for signals on its way back
 * from a system call only when something may be pending for the thread; unblocking a
 * pending signal must count). SIGUSR1 is sent to the process while every thread blocks it;
 * a second thread then unblocks it and spins in getpid(2): the handler runs in that thread.
 * The spin gives up after many calls; output compares with Linux.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPINS 200000L

static atomic_int phase;
static _Atomic pid_t handled_in;

static void on_usr1(int sig) {
    (void)sig;
    atomic_store(&handled_in, (pid_t)syscall(SYS_gettid));
}

static void *worker(void *arg) {
    (void)arg;
    while (atomic_load(&phase) < 1)
        syscall(SYS_getpid);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    for (long i = 0; i < SPINS && !atomic_load(&handled_in); i++)
        syscall(SYS_getpid);
    return (void *)(long)(atomic_load(&handled_in) == (pid_t)syscall(SYS_gettid));
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    sigset_t s, pending;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    kill(getpid(), SIGUSR1);
    sigpending(&pending);
    printf("pending while blocked everywhere: %d\n", sigismember(&pending, SIGUSR1));
    atomic_store(&phase, 1);
    void *in_worker;
    pthread_join(t, &in_worker);
    printf("delivered once unblocked: %s, in the unblocking thread: %s\n",
           atomic_load(&handled_in) ? "yes" : "no", in_worker ? "yes" : "no");
    printf("done\n");
    return 0;
}
