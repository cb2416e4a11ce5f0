/* System V IPC (issue 12): shared memory, semaphores and message queues, printed so the
 * output compares between native Linux and the sandbox. Identifiers, keys and addresses
 * differ between runs, so only facts about them are printed. Every object is removed at
 * the end (natively they live in the host's IPC namespace). Usage: sysv_ipc shm|sem|msg|proc */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(what, expr)                                                        \
    do {                                                                         \
        long r_ = (long)(expr);                                                  \
        if (r_ == -1)                                                            \
            printf("%s: -1 %s\n", what, strerrorname_np(errno));                 \
        else                                                                     \
            printf("%s: ok\n", what);                                            \
    } while (0)

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A key nobody else uses: from the pid and the clock. */
static key_t fresh_key(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (key_t)(0x5a000000 ^ (getpid() << 8) ^ (ts.tv_nsec & 0xff00ff));
}

static int child_status(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void on_usr1(int sig) { (void)sig; }

/* Waits (up to 10 s) until `pid` sleeps: it reached its blocking call. */
static void wait_sleeping(pid_t pid) {
    for (int i = 0; i < 1000; i++) {
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        char *close_paren = NULL;
        if (f) {
            if (fgets(buf, sizeof buf, f))
                close_paren = strrchr(buf, ')');
            fclose(f);
        }
        if (close_paren && close_paren[2] == 'S')
            break;
        sleep_ms(10);
    }
    sleep_ms(50);
}

/* Waits (up to 10 s) until semaphore `num` of `id` has `want` waiters of one kind. */
static void wait_count(int id, int num, int cmd, int want) {
    for (int i = 0; i < 1000 && semctl(id, num, cmd) != want; i++)
        sleep_ms(10);
}

/* Sends SIGUSR1 to `pid`, which has its handler installed, until it exits (a signal that
 * lands before the child blocks only runs the handler); returns its exit status. */
static int interrupt_until_exit(pid_t pid) {
    for (int i = 0; i < 200; i++) {
        int st;
        kill(pid, SIGUSR1);
        sleep_ms(50);
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFSIGNALED(st) ? 1000 + WTERMSIG(st) : WEXITSTATUS(st);
    }
    kill(pid, SIGKILL);
    return child_status(pid);
}

static void handle_usr1_restart(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
}

static void test_shm(void) {
    long page = sysconf(_SC_PAGESIZE);
    key_t key = fresh_key();
    CHECK("shmget private size 0", shmget(IPC_PRIVATE, 0, 0600));
    CHECK("shmget absent key", shmget(key, 4096, 0600));
    int id = shmget(key, 10000, IPC_CREAT | 0640);
    printf("shmget create: %s\n", id >= 0 ? "ok" : strerrorname_np(errno));
    CHECK("shmget excl existing", shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600));
    CHECK("shmget bigger", shmget(key, 20000, 0));
    printf("shmget smaller is same: %d\n", shmget(key, 100, 0) == id);

    char *p = shmat(id, NULL, 0);
    printf("shmat: %s aligned %d\n", p == (void *)-1 ? strerrorname_np(errno) : "ok",
           ((uintptr_t)p % page) == 0);
    strcpy(p, "parent wrote");
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("stat: size %zu nattch %lu mode %o cpid_self %d lpid_self %d key_same %d\n",
           ds.shm_segsz, ds.shm_nattch, ds.shm_perm.mode, ds.shm_cpid == getpid(),
           ds.shm_lpid == getpid(), ds.shm_perm.__key == key);
    /* The last page beyond the size is mapped too (Linux maps whole pages). */
    p[3 * page - 1] = 'z';

    pid_t c = fork();
    if (c == 0) {
        /* Inherited attachment and a new one see the same pages. */
        char *q = shmat(id, NULL, 0);
        struct shmid_ds cds;
        shmctl(id, IPC_STAT, &cds);
        printf("child sees: '%s' '%s' nattch %lu\n", p, q, cds.shm_nattch);
        strcpy(q + 100, "child wrote");
        fflush(stdout);
        _exit(0);
    }
    printf("child: %d\n", child_status(c));
    printf("parent sees: '%s'\n", p + 100);
    shmctl(id, IPC_STAT, &ds);
    printf("nattch after child exit: %lu\n", ds.shm_nattch);

    /* Detach and attach again: the data survives. */
    CHECK("shmdt", shmdt(p));
    CHECK("shmdt again", shmdt(p));
    CHECK("shmdt unaligned", shmdt(p + 1));
    shmctl(id, IPC_STAT, &ds);
    printf("nattch detached: %lu dtime set %d\n", ds.shm_nattch, ds.shm_dtime != 0);

    /* Address hints: an unaligned one needs SHM_RND; a used range needs SHM_REMAP. */
    char *area = mmap(NULL, 8 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(area, 8 * page);
    char *want = area + page;
    CHECK("shmat unaligned", shmat(id, want + 7, 0));
    char *r = shmat(id, want + 7, SHM_RND);
    printf("shmat SHM_RND rounded: %d data '%s' %c\n", r == want, r, r[3 * page - 1]);
    CHECK("shmat over it", shmat(id, want, 0));
    printf("shmat SHM_REMAP: %d\n", shmat(id, want, SHM_REMAP) == want);
    CHECK("shmat SHM_REMAP without address", shmat(id, NULL, SHM_REMAP));
    shmctl(id, IPC_STAT, &ds);
    printf("nattch remapped: %lu\n", ds.shm_nattch);
    CHECK("shmdt remapped", shmdt(want));

    /* Read-only attachments: no stores, no mprotect to writable. */
    char *ro = shmat(id, NULL, SHM_RDONLY);
    printf("ro reads: '%s'\n", ro);
    CHECK("mprotect ro writable", mprotect(ro, page, PROT_READ | PROT_WRITE));
    c = fork();
    if (c == 0) {
        ro[0] = 'x';
        _exit(0);
    }
    printf("ro store: %d\n", child_status(c));

    /* IPC_SET: mode and owner. */
    ds.shm_perm.mode = 0604;
    CHECK("IPC_SET", shmctl(id, IPC_SET, &ds));
    shmctl(id, IPC_STAT, &ds);
    printf("mode after set: %o\n", ds.shm_perm.mode);

    if (geteuid() == 0) {
        c = fork();
        if (c == 0) {
            if (setgid(65534) || setuid(65534))
                _exit(2);
            CHECK("nobody shmget r", shmget(key, 0, 0400));
            CHECK("nobody shmget w", shmget(key, 0, 0200));
            CHECK("nobody shmget none", shmget(key, 0, 0));
            CHECK("nobody shmat ro", shmat(id, NULL, SHM_RDONLY));
            CHECK("nobody shmat rw", shmat(id, NULL, 0));
            CHECK("nobody IPC_STAT", shmctl(id, IPC_STAT, &ds));
            CHECK("nobody IPC_RMID", shmctl(id, IPC_RMID, NULL));
            fflush(stdout);
            _exit(0);
        }
        printf("nobody child: %d\n", child_status(c));
    }

    /* IPC_RMID while attached: marked, key gone, still usable until the last detach. */
    CHECK("IPC_RMID attached", shmctl(id, IPC_RMID, NULL));
    shmctl(id, IPC_STAT, &ds);
    printf("removed: dest %d key %d nattch %lu\n", (ds.shm_perm.mode & SHM_DEST) != 0,
           ds.shm_perm.__key, ds.shm_nattch);
    CHECK("shmget removed key", shmget(key, 0, 0));
    char *again = shmat(id, NULL, SHM_RDONLY);
    printf("attach removed: '%s'\n", again == (void *)-1 ? strerrorname_np(errno) : again);
    shmdt(again);
    CHECK("shmdt last", shmdt(ro));
    CHECK("IPC_STAT gone", shmctl(id, IPC_STAT, &ds));
    CHECK("shmat gone", shmat(id, NULL, 0));

    /* Without attachments IPC_RMID frees at once; munmap detaches too. */
    int id2 = shmget(IPC_PRIVATE, page, 0600);
    char *m = shmat(id2, NULL, 0);
    munmap(m, page);
    shmctl(id2, IPC_STAT, &ds);
    printf("nattch after munmap: %lu\n", ds.shm_nattch);
    CHECK("IPC_RMID unattached", shmctl(id2, IPC_RMID, NULL));
    CHECK("IPC_STAT freed", shmctl(id2, IPC_STAT, &ds));
    CHECK("bad command", shmctl(id2, 99, &ds));

    struct shminfo info;
    CHECK("IPC_INFO", shmctl(0, IPC_INFO, (struct shmid_ds *)&info));
    printf("shminfo: shmmin %lu shmmni %lu\n", info.shmmin, info.shmmni);
}

static void test_sem(void) {
    union semun arg;
    CHECK("semget 0 sems", semget(IPC_PRIVATE, 0, 0600));
    CHECK("semget too many", semget(IPC_PRIVATE, 32001, 0600));
    int id = semget(IPC_PRIVATE, 2, 0600);
    printf("semget: %s\n", id >= 0 ? "ok" : strerrorname_np(errno));
    arg.val = 3;
    CHECK("SETVAL", semctl(id, 0, SETVAL, arg));
    printf("GETVAL: %d pid_self %d\n", semctl(id, 0, GETVAL), semctl(id, 0, GETPID) == getpid());
    arg.val = 40000;
    CHECK("SETVAL range", semctl(id, 0, SETVAL, arg));
    CHECK("GETVAL bad num", semctl(id, 2, GETVAL));
    unsigned short vals[2] = {5, 7};
    arg.array = vals;
    CHECK("SETALL", semctl(id, 0, SETALL, arg));
    unsigned short got[2] = {0, 0};
    arg.array = got;
    semctl(id, 0, GETALL, arg);
    printf("GETALL: %u %u\n", got[0], got[1]);

    struct sembuf ops[2] = {{0, -5, 0}, {1, -8, IPC_NOWAIT}};
    CHECK("semop all or nothing", semop(id, ops, 2));
    printf("after failed semop: %d %d\n", semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));
    struct sembuf bad = {5, 1, 0};
    CHECK("semop bad num", semop(id, &bad, 1));
    CHECK("semop none", semop(id, ops, 0));
    struct sembuf up = {1, 32767, 0};
    CHECK("semop over max", semop(id, &up, 1));
    struct sembuf ok2[2] = {{0, -5, 0}, {1, 1, 0}};
    CHECK("semop two", semop(id, ok2, 2));
    printf("values: %d %d\n", semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));
    struct timespec ts = {0, 50 * 1000000L};
    struct sembuf down = {0, -1, 0};
    CHECK("semtimedop timeout", semtimedop(id, &down, 1, &ts));

    /* A waiter counts in semncnt until a post lets it through. */
    pid_t c = fork();
    if (c == 0) {
        struct sembuf d = {0, -2, 0};
        _exit(semop(id, &d, 1) == 0 ? 0 : 10 + errno);
    }
    wait_count(id, 0, GETNCNT, 1);
    printf("ncnt waiting: %d\n", semctl(id, 0, GETNCNT));
    struct sembuf post = {0, 2, 0};
    semop(id, &post, 1);
    printf("waiter: %d\n", child_status(c));
    printf("ncnt after: %d value %d pid_child %d\n", semctl(id, 0, GETNCNT),
           semctl(id, 0, GETVAL), semctl(id, 0, GETPID) == c);

    /* Wait for zero. */
    c = fork();
    if (c == 0) {
        struct sembuf z = {1, 0, 0};
        _exit(semop(id, &z, 1) == 0 ? 0 : 10 + errno);
    }
    wait_count(id, 1, GETZCNT, 1);
    printf("zcnt waiting: %d\n", semctl(id, 1, GETZCNT));
    arg.val = 0;
    semctl(id, 1, SETVAL, arg);
    printf("zero waiter: %d\n", child_status(c));

    /* A handler interrupts semop with EINTR even with SA_RESTART. */
    c = fork();
    if (c == 0) {
        handle_usr1_restart();
        struct sembuf d = {0, -1, 0};
        int r = semop(id, &d, 1);
        _exit(r == 0 ? 0 : 10 + errno);
    }
    /* The handler is installed once the child waits. */
    wait_count(id, 0, GETNCNT, 1);
    printf("interrupted: %d (EINTR=%d)\n", interrupt_until_exit(c), 10 + EINTR);

    /* SEM_UNDO is applied at exit. */
    arg.val = 1;
    semctl(id, 0, SETVAL, arg);
    c = fork();
    if (c == 0) {
        struct sembuf d = {0, -1, SEM_UNDO};
        semop(id, &d, 1);
        struct sembuf u = {1, 4, SEM_UNDO};
        semop(id, &u, 1);
        _exit(0);
    }
    child_status(c);
    printf("after undo: %d %d\n", semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));

    struct semid_ds ds;
    arg.buf = &ds;
    semctl(id, 0, IPC_STAT, arg);
    printf("stat: nsems %lu mode %o otime %d\n", ds.sem_nsems, ds.sem_perm.mode, ds.sem_otime != 0);

    /* Removal wakes waiters with EIDRM. */
    c = fork();
    if (c == 0) {
        arg.val = 0;
        semctl(id, 0, SETVAL, arg);
        struct sembuf d = {0, -1, 0};
        _exit(semop(id, &d, 1) == 0 ? 0 : 10 + errno);
    }
    wait_count(id, 0, GETNCNT, 1);
    CHECK("IPC_RMID", semctl(id, 0, IPC_RMID));
    printf("removed waiter: %d (EIDRM=%d)\n", child_status(c), 10 + EIDRM);
    CHECK("GETVAL removed", semctl(id, 0, GETVAL));

    key_t key = fresh_key();
    int k = semget(key, 3, IPC_CREAT | 0600);
    CHECK("semget key more sems", semget(key, 4, 0));
    printf("semget key fewer same: %d\n", semget(key, 2, 0) == k);
    CHECK("semget key excl", semget(key, 1, IPC_CREAT | IPC_EXCL));
    semctl(k, 0, IPC_RMID);
}

struct msg {
    long mtype;
    char mtext[64];
};

static void send_msg(int id, long type, const char *text) {
    struct msg m;
    m.mtype = type;
    strcpy(m.mtext, text);
    if (msgsnd(id, &m, strlen(text) + 1, 0) < 0)
        printf("msgsnd %ld: %s\n", type, strerrorname_np(errno));
}

static void recv_msg(const char *what, int id, size_t size, long type, int flags) {
    struct msg m;
    memset(&m, 0, sizeof m);
    ssize_t n = msgrcv(id, &m, size, type, flags);
    if (n < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %zd type %ld '%.*s'\n", what, n, m.mtype, (int)n, m.mtext);
}

static void test_msg(void) {
    int id = msgget(IPC_PRIVATE, 0600);
    printf("msgget: %s\n", id >= 0 ? "ok" : strerrorname_np(errno));
    struct msg m = {0, "x"};
    CHECK("msgsnd type 0", msgsnd(id, &m, 2, 0));
    m.mtype = 1;
    CHECK("msgsnd too big", msgsnd(id, &m, 8193, 0));
    send_msg(id, 3, "three");
    send_msg(id, 1, "one");
    send_msg(id, 2, "two");
    send_msg(id, 1, "one again");
    struct msqid_ds ds;
    msgctl(id, IPC_STAT, &ds);
    printf("stat: qnum %lu cbytes %lu qbytes %lu lspid_self %d\n", ds.msg_qnum,
           ds.__msg_cbytes, ds.msg_qbytes, ds.msg_lspid == getpid());
    recv_msg("too small", id, 2, 0, 0);
    recv_msg("noerror", id, 2, 0, MSG_NOERROR);
    recv_msg("type 2", id, 64, 2, 0);
    recv_msg("type -2", id, 64, -2, 0);
    recv_msg("except 1", id, 64, 1, MSG_EXCEPT | IPC_NOWAIT);
    recv_msg("type 5 nowait", id, 64, 5, IPC_NOWAIT);
    recv_msg("copy 0", id, 64, 0, MSG_COPY | IPC_NOWAIT);
    recv_msg("copy 3", id, 64, 3, MSG_COPY | IPC_NOWAIT);
    recv_msg("copy no nowait", id, 64, 0, MSG_COPY);
    recv_msg("any", id, 64, 0, 0);
    recv_msg("empty nowait", id, 64, 0, IPC_NOWAIT);
    recv_msg("negative size", id, -1, 0, 0);

    /* A receiver blocks until a message of its type arrives. */
    pid_t c = fork();
    if (c == 0) {
        recv_msg("child got", id, 64, 7, 0);
        fflush(stdout);
        _exit(0);
    }
    wait_sleeping(c);
    send_msg(id, 6, "six");
    send_msg(id, 7, "seven");
    printf("receiver: %d\n", child_status(c));

    /* A sender blocks on a full queue (qbytes lowered by IPC_SET). */
    msgctl(id, IPC_STAT, &ds);
    ds.msg_qbytes = 8;
    CHECK("IPC_SET qbytes", msgctl(id, IPC_SET, &ds));
    recv_msg("drain", id, 64, 0, 0);
    send_msg(id, 1, "1234567");
    m.mtype = 1;
    CHECK("msgsnd full nowait", msgsnd(id, &m, 2, IPC_NOWAIT));
    c = fork();
    if (c == 0) {
        send_msg(id, 2, "blocked");
        _exit(0);
    }
    wait_sleeping(c);
    recv_msg("make room", id, 64, 0, 0);
    printf("sender: %d\n", child_status(c));
    recv_msg("sent late", id, 64, 0, 0);

    /* EINTR despite SA_RESTART; removal wakes with EIDRM. */
    c = fork();
    if (c == 0) {
        handle_usr1_restart();
        recv_msg("child interrupted", id, 64, 0, 0);
        fflush(stdout);
        _exit(0);
    }
    wait_sleeping(c);
    interrupt_until_exit(c);
    c = fork();
    if (c == 0) {
        struct msg r;
        _exit(msgrcv(id, &r, sizeof r.mtext, 0, 0) < 0 ? 10 + errno : 0);
    }
    wait_sleeping(c);
    CHECK("IPC_RMID", msgctl(id, IPC_RMID, NULL));
    printf("removed receiver: %d (EIDRM=%d)\n", child_status(c), 10 + EIDRM);
    CHECK("msgsnd removed", msgsnd(id, &m, 2, 0));

    key_t key = fresh_key();
    int k = msgget(key, IPC_CREAT | 0600);
    printf("msgget key same: %d\n", msgget(key, 0) == k);
    CHECK("msgget key excl", msgget(key, IPC_CREAT | IPC_EXCL));
    msgctl(k, IPC_RMID, NULL);
    CHECK("msgget key removed", msgget(key, 0));
}

static void test_proc(void) {
    const char *names[] = {"shmmax", "shmall", "shmmni", "sem", "msgmax", "msgmnb", "msgmni"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[64], buf[128] = "";
        snprintf(path, sizeof path, "/proc/sys/kernel/%s", names[i]);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(buf, sizeof buf, f))
                buf[0] = 0;
            fclose(f);
        }
        printf("%s: %s", names[i], f ? buf : "missing\n");
    }
    /* Our own segment shows in /proc/sysvipc/shm with its size and creator. */
    int id = shmget(IPC_PRIVATE, 12345, 0640);
    const char *tables[] = {"/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg"};
    for (unsigned i = 0; i < 3; i++) {
        FILE *f = fopen(tables[i], "r");
        char line[512];
        int found = 0;
        if (f && fgets(line, sizeof line, f))
            printf("%s header: %s", tables[i], line);
        while (f && fgets(line, sizeof line, f)) {
            int key, sid;
            unsigned perms;
            unsigned long size;
            int cpid;
            if (i == 0 && sscanf(line, "%d %d %o %lu %d", &key, &sid, &perms, &size, &cpid) == 5 &&
                sid == id)
                found = printf("own segment: key %d perms %o size %lu cpid_self %d\n", key, perms,
                               size, cpid == getpid());
        }
        if (f)
            fclose(f);
        if (i == 0)
            printf("own segment found: %d\n", found > 0);
    }
    shmctl(id, IPC_RMID, NULL);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "shm"))
        test_shm();
    else if (!strcmp(what, "sem"))
        test_sem();
    else if (!strcmp(what, "msg"))
        test_msg();
    else if (!strcmp(what, "proc"))
        test_proc();
    else {
        fprintf(stderr, "usage: sysv_ipc shm|sem|msg|proc\n");
        return 2;
    }
    return 0;
}
