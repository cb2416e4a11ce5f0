// A Unix stream socket server for tests of host sockets made by a sandbox's bind
// (`--host-uds=create`): binds argv[1], listens, accepts one connection, sends back what it
// reads upper-cased until the peer closes, then unlinks the name. Prints "bind: ERRNO-NAME"
// and exits 1 when the bind fails, "served N" and "done" otherwise.
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: uds_echo_server PATH\n");
        return 2;
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, argv[1]);
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        printf("bind: %s\n", errno == EPERM ? "EPERM" : strerror(errno));
        return 1;
    }
    if (listen(s, 1) != 0) {
        perror("listen");
        return 1;
    }
    int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
        perror("accept4");
        return 1;
    }
    char buf[256];
    ssize_t n;
    size_t total = 0;
    while ((n = read(c, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        if (write(c, buf, (size_t)n) != n) {
            perror("write");
            return 1;
        }
        total += (size_t)n;
    }
    close(c);
    close(s);
    unlink(argv[1]);
    printf("served %zu\ndone\n", total);
    return 0;
}
