// /proc/net/snmp and /proc/net/netstat of a fresh network namespace: the TCP and UDP lines'
// fields, and how the counters move after a refused TCP connect, an accepted connection
// reset on close, a UDP datagram to a closed port and one that is received. The program
// first enters a new network namespace (the counters are per namespace) with its loopback
// up; it exits 77 when it cannot natively (the sandbox, whose stack is its own, goes on).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

#include "inet_util.h"

static char snmp[16384];

static void load(const char *path) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(snmp, 1, sizeof(snmp) - 1, f) : 0;
    snmp[n] = 0;
    if (f) fclose(f);
}

// The value of field `name` of line `type` ("Tcp") in the last file loaded; -1 if absent.
static long field(const char *type, const char *name) {
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%s: ", type);
    for (char *line = snmp; line && *line;) {
        char *next = strchr(line, '\n');
        if (!strncmp(line, prefix, strlen(prefix)) && next) {
            char names[8192], values[8192];
            char *vend = strchr(next + 1, '\n');
            snprintf(names, sizeof(names), "%.*s", (int)(next - line), line);
            snprintf(values, sizeof(values), "%.*s", vend ? (int)(vend - next - 1) : 0, next + 1);
            char *ns, *vs;
            char *n = strtok_r(names, " ", &ns), *v = strtok_r(values, " ", &vs);
            while (n && v) {
                if (!strcmp(n, name)) return strtol(v, NULL, 10);
                n = strtok_r(NULL, " ", &ns);
                v = strtok_r(NULL, " ", &vs);
            }
            return -1;
        }
        line = next ? next + 1 : NULL;
    }
    return -1;
}

static void header(const char *type) {
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%s: ", type);
    char *line = strstr(snmp, prefix);
    if (!line) {
        printf("%s: absent\n", type);
        return;
    }
    printf("%.*s\n", (int)(strchr(line, '\n') - line), line);
}

static const char *kTcp[] = {"ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets",
                             "CurrEstab", "OutRsts"};
static const char *kUdp[] = {"InDatagrams", "NoPorts", "OutDatagrams"};
static long before[16];

static void mark(void) {
    load("/proc/net/snmp");
    for (int i = 0; i < 6; i++) before[i] = field("Tcp", kTcp[i]);
    for (int i = 0; i < 3; i++) before[6 + i] = field("Udp", kUdp[i]);
}

static void moved(const char *what) {
    load("/proc/net/snmp");
    printf("%s:", what);
    for (int i = 0; i < 6; i++) printf(" %s%+ld", kTcp[i], field("Tcp", kTcp[i]) - before[i]);
    for (int i = 0; i < 3; i++)
        printf(" %s%+ld", kUdp[i], field("Udp", kUdp[i]) - before[6 + i]);
    printf("\n");
}

int main(void) {
    own_network_namespace();
    loopback_up();

    load("/proc/net/snmp");
    header("Tcp");
    header("Udp");
    header("UdpLite");
    printf("fresh: ActiveOpens %ld InSegs %ld InDatagrams %ld\n", field("Tcp", "ActiveOpens"),
           field("Tcp", "InSegs"), field("Udp", "InDatagrams"));
    load("/proc/net/netstat");
    printf("netstat: TCPOrigDataSent %d TCPSynRetrans %d InOctets %d\n",
           field("TcpExt", "TCPOrigDataSent") >= 0, field("TcpExt", "TCPSynRetrans") >= 0,
           field("IpExt", "InOctets") >= 0);

    // A connect to a port nobody listens on: the SYN is answered with a reset.
    mark();
    long in_segs = field("Tcp", "InSegs"), out_segs = field("Tcp", "OutSegs");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in closed = loopback(1234);
    int r = connect(s, (struct sockaddr *)&closed, sizeof(closed));
    printf("refused: %s\n", r == -1 && errno == ECONNREFUSED ? "ECONNREFUSED" : "other");
    close(s);
    moved("refused");
    printf("refused segments: in %+ld out %+ld\n", field("Tcp", "InSegs") - in_segs,
           field("Tcp", "OutSegs") - out_segs);

    // A connection accepted, then reset by closing the accepted end with data unread.
    mark();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la = loopback(0);
    socklen_t len = sizeof(la);
    bind(l, (struct sockaddr *)&la, sizeof(la));
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&la, &len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&la, sizeof(la)) != 0) printf("connect: %s\n", strerror(errno));
    int a = accept(l, NULL, NULL);
    moved("accepted");
    mark();
    send(c, "a", 1, 0);
    struct pollfd pa = {.fd = a, .events = POLLIN};
    poll(&pa, 1, 20000);
    close(a);
    struct pollfd pc = {.fd = c, .events = POLLIN};
    poll(&pc, 1, 20000);
    char byte;
    printf("client read: %s\n", read(c, &byte, 1) < 0 && errno == ECONNRESET ? "ECONNRESET" : "other");
    close(c);
    close(l);
    moved("reset");

    // UDP: a datagram to a closed port, then one to a bound socket.
    mark();
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    printf("sendto closed: %zd\n", sendto(u, "a", 1, 0, (struct sockaddr *)&closed, sizeof(closed)));
    moved("udp closed port");
    mark();
    int srv = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = loopback(0);
    len = sizeof(sa);
    bind(srv, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(srv, (struct sockaddr *)&sa, &len);
    sendto(u, "a", 1, 0, (struct sockaddr *)&sa, sizeof(sa));
    printf("received: %zd\n", recv(srv, &byte, 1, 0));
    moved("udp received");
    printf("done\n");
    return 0;
}
