#define _GNU_SOURCE
/* shutdown(2) of a UDP socket that is not connected, as Linux does it: the call fails with
 * ENOTCONN but shuts the socket down all the same, so a thread blocked in recvfrom on it
 * wakes and reads end of file (gVisor's UdpPortReuseMultiThread relies on this to stop its
 * receiver threads). Then a blocking read returns 0 at once, a nonblocking one EAGAIN; an
 * unbound socket behaves the same. alarm(10) turns a reader that never wakes into a
 * SIGALRM death instead of a hang. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd;

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "-"; }

static void *reader(void *arg) {
    char b[4];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    long n = recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len);
    printf("blocked recvfrom woke: %ld %s\n", n, err(n));
    return arg;
}

int main(void) {
    alarm(10);
    setvbuf(stdout, NULL, _IONBF, 0);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("bind");
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    /* Give the reader time to block; were it not blocked yet it would read end of file
     * all the same, so the output does not depend on the timing. */
    usleep(200 * 1000);
    int r = shutdown(fd, SHUT_RD);
    pthread_join(t, NULL);
    printf("bound shutdown(SHUT_RD): %d %s\n", r, err(r));
    char b[4];
    long n = recv(fd, b, sizeof b, 0);
    printf("blocking recv after: %ld %s\n", n, err(n));
    n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    printf("nonblocking recv after: %ld %s\n", n, err(n));

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    r = shutdown(u, SHUT_RDWR);
    printf("unbound shutdown(SHUT_RDWR): %d %s\n", r, err(r));
    n = recv(u, b, sizeof b, 0);
    printf("unbound blocking recv after: %ld %s\n", n, err(n));
    printf("done\n");
    return 0;
}
