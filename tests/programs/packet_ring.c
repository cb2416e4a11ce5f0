/* A TPACKET_V2 PACKET_RX_RING on the loopback (run as root, in a network namespace of its
 * own): the ring's size rules for mmap, EBUSY for changes while it is set or mapped, a UDP
 * datagram to 127.0.0.1 read from the mapped ring (header, sockaddr_ll, IP and UDP headers,
 * payload), a full ring dropping what comes next (PACKET_STATISTICS, TP_STATUS_LOSING), and
 * frames handed back to the kernel being filled again; and PACKET_HDRLEN of each TPACKET
 * version. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

#include "inet_util.h"

#define PORT 47124
#define FRAME 2048
#define BLOCK 4096
#define BLOCKS 2
#define FRAMES (BLOCK / FRAME * BLOCKS)

/* Prints the result of a call and, when it failed, its error. */
#define TRY(what, expr)                                                              \
    do {                                                                             \
        errno = 0;                                                                   \
        long r_ = (long)(expr);                                                      \
        printf("%s: %ld %s\n", what, r_ < 0 ? -1L : r_, r_ < 0 ? strerror(errno) : "ok"); \
    } while (0)

static char *ring;

static struct tpacket2_hdr *frame(int i) {
    return (struct tpacket2_hdr *)(ring + (size_t)i * FRAME);
}

static void send_udp(int fd, const char *msg) {
    struct sockaddr_in to = loopback(PORT);
    if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to) < 0)
        die("sendto");
}

/* Waits until the ring has a frame for the application. */
static void wait_ring(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 5000);
    printf("poll: %d revents %#x\n", n, p.revents);
}

/* Frame `i` as the application sees it. */
static void show(int i) {
    struct tpacket2_hdr *h = frame(i);
    /* The ownership bits only: Linux adds checksum hints (TP_STATUS_CSUMNOTREADY for what
       its own stack sent on lo) that say how the NIC handled the checksum. */
    unsigned status = h->tp_status & (TP_STATUS_USER | TP_STATUS_COPY | TP_STATUS_LOSING);
    printf("frame %d: status %#x len %u snaplen %u mac %u net %u", i, status, h->tp_len,
           h->tp_snaplen, h->tp_mac, h->tp_net);
    if (!(h->tp_status & TP_STATUS_USER)) {
        printf("\n");
        return;
    }
    struct sockaddr_ll *sll =
        (struct sockaddr_ll *)((char *)h + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)));
    printf(" family %d proto %#x lo %d hatype %d pkttype %d halen %d", sll->sll_family,
           ntohs(sll->sll_protocol), sll->sll_ifindex == (int)if_nametoindex("lo"),
           sll->sll_hatype, sll->sll_pkttype, sll->sll_halen);
    struct iphdr ip;
    struct udphdr udp;
    memcpy(&ip, (char *)h + h->tp_net, sizeof ip);
    memcpy(&udp, (char *)h + h->tp_net + sizeof ip, sizeof udp);
    const char *payload = (char *)h + h->tp_net + sizeof ip + sizeof udp;
    int n = (int)h->tp_snaplen - (int)(sizeof ip + sizeof udp);
    printf(" ip proto %d to-lo %d udp port %d payload %.*s\n", ip.protocol,
           ip.daddr == htonl(INADDR_LOOPBACK), ntohs(udp.dest), n < 0 ? 0 : n, payload);
}

static void stats(int fd) {
    struct tpacket_stats st;
    socklen_t len = sizeof st;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        die("PACKET_STATISTICS");
    printf("stats: packets %u drops %u\n", st.tp_packets, st.tp_drops);
}

int main(void) {
    own_network_namespace();
    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0)
        die("SIOCGIFFLAGS");
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0)
            die("SIOCSIFFLAGS");
    }

    int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    if (fd < 0)
        die("socket(AF_PACKET)");
    /* PACKET_HDRLEN: each version's frame header size, EINVAL for an unknown version. */
    for (int v = TPACKET_V1; v <= TPACKET_V3 + 1; v++) {
        int len = v;
        socklen_t optlen = sizeof len;
        int r = getsockopt(fd, SOL_PACKET, PACKET_HDRLEN, &len, &optlen);
        printf("hdrlen of version %d: %d %s (optlen %u)\n", v, r ? -1 : len,
               r ? strerror(errno) : "ok", optlen);
    }
    int version = TPACKET_V2;
    TRY("version", setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version));
    TRY("mmap without a ring",
        mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ? -1 : 0);
    struct tpacket_req bad = {.tp_block_size = BLOCK, .tp_block_nr = BLOCKS,
                              .tp_frame_size = FRAME, .tp_frame_nr = FRAMES + 1};
    TRY("bad ring", setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &bad, sizeof bad));
    struct tpacket_req req = {.tp_block_size = BLOCK, .tp_block_nr = BLOCKS,
                              .tp_frame_size = FRAME, .tp_frame_nr = FRAMES};
    TRY("ring", setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req));
    TRY("ring again", setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req));
    TRY("version with a ring",
        setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version));
    int reserve = 8;
    TRY("reserve with a ring",
        setsockopt(fd, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve));
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
                             .sll_ifindex = (int)if_nametoindex("lo")};
    if (bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0)
        die("bind(AF_PACKET)");
    size_t size = (size_t)BLOCK * BLOCKS;
    TRY("mmap short",
        mmap(NULL, size - BLOCK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ? -1 : 0);
    TRY("mmap at an offset",
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, BLOCK) == MAP_FAILED ? -1 : 0);
    ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ring == MAP_FAILED)
        die("mmap");
    TRY("ring while mapped", setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req));

    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in at = loopback(PORT);
    if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&at, sizeof at) < 0)
        die("udp");
    struct pollfd none = {.fd = fd, .events = POLLIN};
    TRY("poll empty", poll(&none, 1, 0));

    send_udp(tx, "ring-hello");
    wait_ring(fd);
    show(0);
    show(1);
    char buf[64];
    TRY("recv with a ring", recv(fd, buf, sizeof buf, MSG_DONTWAIT));

    /* Fill the other frames, then one more than the ring holds. */
    const char *more[] = {"one", "two", "three", "dropped"};
    for (int i = 0; i < 4; i++)
        send_udp(tx, more[i]);
    for (int i = 1; i < FRAMES; i++)
        show(i);
    /* Hand frame 0 back: the next datagram goes there, marked as following a loss. */
    frame(0)->tp_status = TP_STATUS_KERNEL;
    __sync_synchronize();
    send_udp(tx, "again");
    wait_ring(fd);
    show(0);
    stats(fd);
    stats(fd);
    /* Every frame back to the kernel: nothing for the application. */
    for (int i = 0; i < FRAMES; i++)
        frame(i)->tp_status = TP_STATUS_KERNEL;
    __sync_synchronize();
    TRY("poll all released", poll(&none, 1, 0));
    send_udp(tx, "next");
    wait_ring(fd);
    show(1);
    TRY("munmap", munmap(ring, size));
    struct tpacket_req off = {0};
    TRY("ring off", setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &off, sizeof off));
    send_udp(tx, "queued");
    TRY("recv without a ring", recv(fd, buf, sizeof buf, 0));
    printf("done\n");
    return 0;
}
