/* SCM_CREDENTIALS naming a child that is being reaped, from several threads at once, as
 * gVisor's UnixSocketPeerCredRaceTest: each send succeeds, fills the buffer (EAGAIN) or,
 * once the child is reaped, fails with ESRCH; never anything else, and the program ends.
 * Usage: unix_cred_race ITERATIONS. Prints the outcome counts that do not depend on timing. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SENDERS 4

static int sender_fd, pids_r;
static int bad_errno;
static long esrch;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int send_creds_for(pid_t pid) {
    static char data[4096];
    struct iovec iov = {data, sizeof data};
    char control[CMSG_SPACE(sizeof(struct ucred))];
    memset(control, 0, sizeof control);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred cred = {pid, getuid(), getgid()};
    memcpy(CMSG_DATA(c), &cred, sizeof cred);
    int r;
    do {
        r = sendmsg(sender_fd, &msg, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? errno : 0;
}

static void *sender(void *arg) {
    (void)arg;
    pid_t pid;
    while (read(pids_r, &pid, sizeof pid) == sizeof pid) {
        int err;
        do {
            err = send_creds_for(pid);
        } while (err == 0 || err == EAGAIN);
        pthread_mutex_lock(&mu);
        if (err == ESRCH)
            esrch++;
        else if (!bad_errno)
            bad_errno = err;
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    int sv[2], p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(p)) {
        perror("setup");
        return 1;
    }
    sender_fd = sv[0];
    pids_r = p[0];
    pthread_t th[SENDERS];
    for (int i = 0; i < SENDERS; i++)
        pthread_create(&th[i], NULL, sender, NULL);
    for (int i = 0; i < n && !bad_errno; i++) {
        pid_t child = fork();
        if (child == 0)
            _exit(0);
        if (child < 0) {
            perror("fork");
            return 1;
        }
        pid_t batch[SENDERS];
        for (int j = 0; j < SENDERS; j++)
            batch[j] = child;
        if (write(p[1], batch, sizeof batch) != sizeof batch) {
            perror("write");
            return 1;
        }
        if (waitpid(child, NULL, 0) != child) {
            perror("waitpid");
            return 1;
        }
    }
    close(p[1]);
    for (int i = 0; i < SENDERS; i++)
        pthread_join(th[i], NULL);
    /* Each sender ends its turn at a reaped child with ESRCH. */
    printf("senders ended %s, unexpected errno %s\n",
           esrch == (long)n * SENDERS ? "every turn on ESRCH" : "early",
           bad_errno ? strerror(bad_errno) : "none");
    return bad_errno != 0;
}
