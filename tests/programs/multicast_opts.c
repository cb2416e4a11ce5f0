/* IPv4 multicast socket options on a UDP socket, as Linux validates and reports them:
 * IP_MULTICAST_IF (in_addr, ip_mreq, ip_mreqn; bad address or index), IP_MULTICAST_TTL,
 * IP_MULTICAST_LOOP, IP_ADD_MEMBERSHIP and IP_DROP_MEMBERSHIP (twice, not a group, an
 * address that is not ours, a drop of what was never joined). Uses only the loopback
 * (index 1, 127.0.0.1). */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int s;

static void set(const char *what, int name, const void *v, socklen_t len) {
    int r = setsockopt(s, IPPROTO_IP, name, v, len);
    printf("%s: %d %s\n", what, r, r ? strerror(errno) : "");
}

static void get(const char *what, int name) {
    unsigned char v[16] = {0};
    socklen_t len = sizeof v;
    int r = getsockopt(s, IPPROTO_IP, name, v, &len);
    printf("%s: %d len %u:", what, r, len);
    if (r) printf(" %s", strerror(errno));
    else
        for (unsigned i = 0; i < len; i++) printf(" %d", v[i]);
    printf("\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    s = socket(AF_INET, SOCK_DGRAM, 0);
    struct in_addr lo = {htonl(INADDR_LOOPBACK)};
    struct in_addr other = {inet_addr("192.0.2.77")};
    get("IF default", IP_MULTICAST_IF);
    get("TTL default", IP_MULTICAST_TTL);
    get("LOOP default", IP_MULTICAST_LOOP);
    set("IF short", IP_MULTICAST_IF, &lo, 1);
    set("IF in_addr", IP_MULTICAST_IF, &lo, sizeof lo);
    get("IF", IP_MULTICAST_IF);
    set("IF not ours", IP_MULTICAST_IF, &other, sizeof other);
    struct ip_mreqn n = {.imr_ifindex = 1};
    set("IF ip_mreqn index", IP_MULTICAST_IF, &n, sizeof n);
    get("IF after index", IP_MULTICAST_IF);
    n.imr_ifindex = 12345;
    set("IF bad index", IP_MULTICAST_IF, &n, sizeof n);
    struct ip_mreq q = {.imr_interface = lo};
    set("IF ip_mreq", IP_MULTICAST_IF, &q, sizeof q);
    get("IF after ip_mreq", IP_MULTICAST_IF);
    int ttl = 7, loop = 0, minus = -1, big = 256;
    set("TTL 7", IP_MULTICAST_TTL, &ttl, sizeof ttl);
    get("TTL", IP_MULTICAST_TTL);
    set("TTL -1", IP_MULTICAST_TTL, &minus, sizeof minus);
    get("TTL after -1", IP_MULTICAST_TTL);
    set("TTL 256", IP_MULTICAST_TTL, &big, sizeof big);
    set("LOOP 0", IP_MULTICAST_LOOP, &loop, sizeof loop);
    get("LOOP", IP_MULTICAST_LOOP);
    struct ip_mreqn join = {.imr_multiaddr = {inet_addr("224.0.2.9")}, .imr_ifindex = 1};
    set("join", IP_ADD_MEMBERSHIP, &join, sizeof join);
    set("join again", IP_ADD_MEMBERSHIP, &join, sizeof join);
    set("join short", IP_ADD_MEMBERSHIP, &join, 4);
    struct ip_mreqn unicast = {.imr_multiaddr = lo, .imr_ifindex = 1};
    set("join unicast", IP_ADD_MEMBERSHIP, &unicast, sizeof unicast);
    struct ip_mreq bad_if = {.imr_multiaddr = {inet_addr("224.0.2.10")}, .imr_interface = other};
    set("join on foreign address", IP_ADD_MEMBERSHIP, &bad_if, sizeof bad_if);
    get("get ADD_MEMBERSHIP", IP_ADD_MEMBERSHIP);
    set("drop", IP_DROP_MEMBERSHIP, &join, sizeof join);
    set("drop again", IP_DROP_MEMBERSHIP, &join, sizeof join);
    printf("done\n");
    return 0;
}
