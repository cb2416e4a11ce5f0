/* Priority-inheritance futexes: a PTHREAD_PRIO_INHERIT mutex contended by several threads,
 * trylock, EDEADLK from an error-checking PI mutex, a robust PI mutex whose owner thread
 * dies (EOWNERDEAD, then ENOTRECOVERABLE when left inconsistent), a timed lock that times
 * out on both clocks, a process-shared PI mutex across fork, and raw futex(2) calls for
 * the protocol's words and errors. Prints one line per check (never TIDs or times); the
 * output is compared with native Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "outcome.h"

#ifndef FUTEX_LOCK_PI2
#define FUTEX_LOCK_PI2 13
#endif

#define THREADS 6
#define ROUNDS 20000

static pthread_mutex_t shared_lock;
static long counter;

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts) {
    return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void init_pi(pthread_mutex_t *m, int type, int robust, int pshared) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    pthread_mutexattr_settype(&a, type);
    if (robust)
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pshared)
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    int e = pthread_mutex_init(m, &a);
    if (e != 0) {
        printf("FAIL pthread_mutex_init: %s\n", strerrorname_np(e));
        exit(1);
    }
    pthread_mutexattr_destroy(&a);
}

static void *contend(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&shared_lock);
        long v = counter;
        if ((i & 63) == 0)
            sched_yield(); /* hold the lock across a yield: others block in LOCK_PI */
        counter = v + 1;
        pthread_mutex_unlock(&shared_lock);
    }
    return NULL;
}

static void named(const char *what, int e) {
    printf("%s: %s\n", what, e == 0 ? "0" : strerrorname_np(e));
    fflush(stdout);
}

static void *try_other(void *arg) {
    named("trylock from another thread", pthread_mutex_trylock(arg));
    return NULL;
}

static void *die_holding(void *arg) {
    named("robust: owner locks", pthread_mutex_lock(arg));
    return NULL; /* exits holding it */
}

static volatile int held, release;

/* Takes the lock, then holds it until main sets `release`. */
static void *hold_until_released(void *arg) {
    pthread_mutex_lock(arg);
    held = 1;
    while (!release)
        usleep(1000);
    pthread_mutex_unlock(arg);
    return NULL;
}

/* Takes the lock, then exits holding it once a waiter is blocked on it. */
static void *die_when_waited(void *arg) {
    pthread_mutex_t *m = arg;
    pthread_mutex_lock(m);
    held = 1;
    while (!(__atomic_load_n(&m->__data.__lock, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        usleep(1000);
    return NULL;
}

static void wait_held(void) {
    while (!held)
        usleep(1000);
    held = 0;
}

static uint32_t word;

static long raw_lock, raw_unlock;
static int raw_errno[2], raw_own, raw_waiters;

/* Blocks in FUTEX_LOCK_PI until main's unlock hands the word over, then unlocks; the results
   are printed by main after the join (one order of lines). */
static void *lock_raw(void *arg) {
    (void)arg;
    raw_lock = futex(&word, FUTEX_LOCK_PI, 0, NULL);
    raw_errno[0] = errno;
    raw_own = (word & FUTEX_TID_MASK) == (uint32_t)gettid();
    raw_waiters = (word & FUTEX_WAITERS) != 0;
    raw_unlock = futex(&word, FUTEX_UNLOCK_PI, 0, NULL);
    raw_errno[1] = errno;
    return NULL;
}

/* Takes the raw lock and exits holding it once a waiter is blocked on it (no robust list
   names it). */
static void *lock_raw_and_exit(void *arg) {
    (void)arg;
    futex(&word, FUTEX_LOCK_PI, 0, NULL);
    while (!(__atomic_load_n(&word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        usleep(1000);
    return NULL;
}

static volatile int handled;

static void on_usr1(int sig) {
    (void)sig;
    handled++;
}

/* Sends SIGUSR1 (a handler without SA_RESTART) to main while it is blocked in LOCK_PI, then
   unlocks: LOCK_PI is restarted after the handler, never EINTR. */
static void *signal_then_unlock(void *arg) {
    pthread_t main_thread = *(pthread_t *)arg;
    futex(&word, FUTEX_LOCK_PI, 0, NULL);
    held = 1;
    while (!(__atomic_load_n(&word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        usleep(1000);
    pthread_kill(main_thread, SIGUSR1);
    while (!handled)
        usleep(1000);
    usleep(20 * 1000);
    futex(&word, FUTEX_UNLOCK_PI, 0, NULL);
    return NULL;
}

static struct timespec in_ms(clockid_t clock, long ms) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_nsec += ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    return ts;
}

int main(void) {
    /* Contention: the count comes out exact. */
    init_pi(&shared_lock, PTHREAD_MUTEX_NORMAL, 0, 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, contend, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    printf("contended count: %ld (want %d)\n", counter, THREADS * ROUNDS);

    /* trylock, and the error-checking type's EDEADLK and EPERM. */
    pthread_mutex_t m;
    init_pi(&m, PTHREAD_MUTEX_ERRORCHECK, 0, 0);
    named("errorcheck: lock", pthread_mutex_lock(&m));
    named("errorcheck: relock", pthread_mutex_lock(&m));
    pthread_t t;
    pthread_create(&t, NULL, try_other, &m);
    pthread_join(t, NULL);
    named("errorcheck: unlock", pthread_mutex_unlock(&m));
    named("errorcheck: unlock again", pthread_mutex_unlock(&m));
    named("trylock free", pthread_mutex_trylock(&m));
    named("unlock", pthread_mutex_unlock(&m));

    /* Timed locks time out while another thread holds the lock. */
    init_pi(&m, PTHREAD_MUTEX_NORMAL, 0, 0);
    pthread_create(&t, NULL, hold_until_released, &m);
    wait_held();
    struct timespec ts = in_ms(CLOCK_REALTIME, 30);
    named("timedlock (realtime) while held", pthread_mutex_timedlock(&m, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 30);
    named("clocklock (monotonic) while held", pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts));
    named("trylock while held", pthread_mutex_trylock(&m));
    release = 1;
    pthread_join(t, NULL);
    release = 0;
    named("lock after release", pthread_mutex_lock(&m));
    named("unlock", pthread_mutex_unlock(&m));

    /* A robust PI mutex whose owner thread dies: EOWNERDEAD, then unusable unless made
       consistent. */
    pthread_mutex_t r;
    init_pi(&r, PTHREAD_MUTEX_NORMAL, 1, 0);
    pthread_create(&t, NULL, die_holding, &r);
    pthread_join(t, NULL);
    named("robust: lock after owner died", pthread_mutex_lock(&r));
    named("robust: unlock without consistent", pthread_mutex_unlock(&r));
    named("robust: lock again", pthread_mutex_lock(&r));
    init_pi(&r, PTHREAD_MUTEX_NORMAL, 1, 0);
    pthread_create(&t, NULL, die_when_waited, &r);
    wait_held();
    named("robust: waiter when owner dies", pthread_mutex_lock(&r));
    named("robust: consistent", pthread_mutex_consistent(&r));
    named("robust: unlock", pthread_mutex_unlock(&r));
    named("robust: relock", pthread_mutex_lock(&r));
    named("robust: unlock again", pthread_mutex_unlock(&r));
    pthread_join(t, NULL);

    /* A process-shared robust PI mutex: the child dies holding it, the parent waits in it. */
    struct shared {
        pthread_mutex_t m;
        volatile int held;
    } *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    init_pi(&sh->m, PTHREAD_MUTEX_NORMAL, 1, 1);
    pid_t child = fork();
    if (child == 0) {
        pthread_mutex_lock(&sh->m);
        sh->held = 1;
        while (!(__atomic_load_n(&sh->m.__data.__lock, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
            usleep(1000);
        _exit(0);
    }
    while (!sh->held)
        usleep(1000);
    named("pshared: lock while the child holds it", pthread_mutex_lock(&sh->m));
    named("pshared: consistent", pthread_mutex_consistent(&sh->m));
    named("pshared: unlock", pthread_mutex_unlock(&sh->m));
    waitpid(child, NULL, 0);

    /* Raw calls. */
    uint32_t tid = gettid();
    word = 0;
    result("raw: lock free", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    printf("raw: word is own tid %d\n", word == tid);
    result("raw: lock again", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    result("raw: trylock own", futex(&word, FUTEX_TRYLOCK_PI, 0, NULL));
    result("raw: unlock", futex(&word, FUTEX_UNLOCK_PI, 0, NULL));
    printf("raw: word after unlock %u\n", word);
    result("raw: unlock not owner", futex(&word, FUTEX_UNLOCK_PI, 0, NULL));
    result("raw: trylock free", futex(&word, FUTEX_TRYLOCK_PI | FUTEX_PRIVATE_FLAG, 0, NULL));
    result("raw: unlock private", futex(&word, FUTEX_UNLOCK_PI | FUTEX_PRIVATE_FLAG, 0, NULL));
    word = 0x3ffffff0; /* a TID no thread has */
    result("raw: lock with a dead owner", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    result("raw: trylock with a dead owner", futex(&word, FUTEX_TRYLOCK_PI, 0, NULL));
    result("raw: unlock a dead owner's lock", futex(&word, FUTEX_UNLOCK_PI, 0, NULL));
    word = FUTEX_OWNER_DIED;
    result("raw: lock an owner-died word", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    printf("raw: owner-died kept %d, own tid %d\n", (word & FUTEX_OWNER_DIED) != 0,
           (word & FUTEX_TID_MASK) == tid);
    word = 0;
    result("raw: unaligned", futex((uint32_t *)((char *)&word + 1), FUTEX_LOCK_PI, 0, NULL));
    result("raw: bad address", futex((uint32_t *)8, FUTEX_LOCK_PI, 0, NULL));
    result("raw: unlock bad address", futex((uint32_t *)8, FUTEX_UNLOCK_PI, 0, NULL));
    uint32_t *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    result("raw: lock in read-only memory", futex(ro, FUTEX_LOCK_PI, 0, NULL));
    result("raw: trylock in read-only memory", futex(ro, FUTEX_TRYLOCK_PI, 0, NULL));
    result("raw: unlock in read-only memory", futex(ro, FUTEX_UNLOCK_PI, 0, NULL));
    munmap(ro, 4096);
    struct timespec bad = {0, 2000000000L};
    word = tid;
    result("raw: lock with a bad timeout", futex(&word, FUTEX_LOCK_PI, 0, &bad));
    word = 0;
    result("raw: lock_pi with CLOCK_REALTIME flag",
           futex(&word, FUTEX_LOCK_PI | FUTEX_CLOCK_REALTIME, 0, NULL));
    result("raw: lock_pi2 with CLOCK_REALTIME flag",
           futex(&word, FUTEX_LOCK_PI2 | FUTEX_CLOCK_REALTIME, 0, NULL));
    result("raw: unlock", futex(&word, FUTEX_UNLOCK_PI, 0, NULL));
    /* Handoff: another thread blocks, the owner's unlock writes the waiter's TID. */
    result("raw: lock for handoff", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    pthread_create(&t, NULL, lock_raw, NULL);
    while (!(__atomic_load_n(&word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        usleep(1000);
    result("raw: unlock to the waiter", futex(&word, FUTEX_UNLOCK_PI, 0, NULL));
    pthread_join(t, NULL);
    errno = raw_errno[0];
    result("raw: lock by the other thread", raw_lock);
    printf("raw: handed over: own tid %d, waiters bit %d\n", raw_own, raw_waiters);
    errno = raw_errno[1];
    result("raw: the other thread unlocks", raw_unlock);
    printf("raw: word after the waiter's unlock %u\n", word);
    /* The owner exits holding a lock no robust list names: its waiter gets it, with
       FUTEX_OWNER_DIED. */
    word = 0;
    pthread_create(&t, NULL, lock_raw_and_exit, NULL);
    while (!__atomic_load_n(&word, __ATOMIC_SEQ_CST))
        usleep(1000);
    result("raw: lock while the owner exits", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    printf("raw: own tid %d, waiters %d, owner died %d\n", (word & FUTEX_TID_MASK) == tid,
           (word & FUTEX_WAITERS) != 0, (word & FUTEX_OWNER_DIED) != 0);
    pthread_join(t, NULL);
    /* A signal handler runs while LOCK_PI blocks; the call goes on afterwards. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    word = 0;
    pthread_t self = pthread_self();
    pthread_create(&t, NULL, signal_then_unlock, &self);
    wait_held();
    result("raw: lock across a signal handler", futex(&word, FUTEX_LOCK_PI, 0, NULL));
    printf("raw: handler ran %d, own tid %d\n", handled, (word & FUTEX_TID_MASK) == tid);
    pthread_join(t, NULL);
    printf("done\n");
    return 0;
}
