// NETLINK_ROUTE as programs use it: getifaddrs, if_nameindex, and raw requests (dumps,
// single links, acks, errors, MSG_PEEK|MSG_TRUNC, nonblocking reads, poll, port ids), and
// SIOCETHTOOL's link state and timestamping on loopback.
// Prints only what native Linux and the sandbox must agree on for loopback.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void show_addr(const char *what, struct sockaddr *sa) {
    char buf[INET6_ADDRSTRLEN] = "-";
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, buf, sizeof buf);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof buf);
    printf(" %s %s", what, buf);
}

static void ifaddrs(void) {
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) {
        printf("getifaddrs: %s\n", strerror(errno));
        return;
    }
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        int fam = i->ifa_addr ? i->ifa_addr->sa_family : -1;
        printf("ifaddr %s family %d flags %#x", i->ifa_name, fam, i->ifa_flags);
        if (fam == AF_INET || fam == AF_INET6) {
            show_addr("addr", i->ifa_addr);
            show_addr("mask", i->ifa_netmask);
        }
        printf("\n");
    }
    freeifaddrs(list);
    struct if_nameindex *ni = if_nameindex();
    for (struct if_nameindex *p = ni; p && p->if_index; p++)
        printf("nameindex %u %s\n", p->if_index, p->if_name);
    if_freenameindex(ni);
    printf("if_nametoindex lo %u\n", if_nametoindex("lo"));
}

struct req {
    struct nlmsghdr h;
    struct ifinfomsg i;
    char attrs[64];
};

static int send_req(int fd, int type, int flags, int index, int seq) {
    struct req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.h.nlmsg_type = type;
    r.h.nlmsg_flags = NLM_F_REQUEST | flags;
    r.h.nlmsg_seq = seq;
    r.i.ifi_family = AF_UNSPEC;
    r.i.ifi_index = index;
    return send(fd, &r, r.h.nlmsg_len, 0);
}

/// Reads datagrams until NLMSG_DONE or an NLMSG_ERROR; prints each message's type.
static void read_reply(int fd, const char *what) {
    char buf[65536];
    printf("%s:", what);
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            printf(" recv %s\n", strerror(errno));
            return;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                printf(" DONE(len %u)\n", h->nlmsg_len);
                return;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(h);
                printf(" ERROR %d len %u seq %u\n", e->error, h->nlmsg_len, h->nlmsg_seq);
                return;
            }
            if (h->nlmsg_type == RTM_NEWLINK) {
                struct ifinfomsg *i = NLMSG_DATA(h);
                printf(" NEWLINK(%d multi %d)", i->ifi_index, !!(h->nlmsg_flags & NLM_F_MULTI));
            } else if (h->nlmsg_type == RTM_NEWADDR) {
                struct ifaddrmsg *a = NLMSG_DATA(h);
                printf(" NEWADDR(%d/%d)", a->ifa_family, a->ifa_prefixlen);
            } else {
                printf(" type %d", h->nlmsg_type);
            }
        }
    }
}

static void raw(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    printf("unbound family %d pid %u len %u\n", sa.nl_family, sa.nl_pid, len);
    memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    printf("bind %d\n", bind(fd, (struct sockaddr *)&sa, sizeof sa));
    len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    printf("bound pid is getpid %d\n", sa.nl_pid == (unsigned)getpid());
    int fd2 = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE);
    send_req(fd2, RTM_GETLINK, 0, 1, 1);
    len = sizeof sa;
    getsockname(fd2, (struct sockaddr *)&sa, &len);
    printf("second autobound pid is getpid %d nonzero %d\n", sa.nl_pid == (unsigned)getpid(),
           sa.nl_pid != 0);
    read_reply(fd2, "second");
    close(fd2);

    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    int ready = poll(&p, 1, 0);
    printf("poll idle %d revents %#x\n", ready, p.revents);
    send_req(fd, RTM_GETLINK, NLM_F_DUMP, 0, 10);
    ready = poll(&p, 1, 0);
    printf("poll ready %d revents %#x\n", ready, p.revents);
    char tiny[4];
    ssize_t full = recv(fd, tiny, 0, MSG_PEEK | MSG_TRUNC);
    struct msghdr mh = {0};
    struct iovec iov = {.iov_base = tiny, .iov_len = sizeof tiny};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t got = recvmsg(fd, &mh, MSG_PEEK);
    printf("peek trunc positive %d, small read %zd flags trunc %d\n", full > 0, got,
           !!(mh.msg_flags & MSG_TRUNC));
    read_reply(fd, "link dump");

    send_req(fd, RTM_GETADDR, NLM_F_DUMP, 0, 11);
    read_reply(fd, "addr dump");
    send_req(fd, RTM_GETLINK, NLM_F_ACK, 1, 12);
    read_reply(fd, "link 1 ack");
    read_reply(fd, "link 1 ack, then");
    send_req(fd, RTM_GETLINK, 0, 99, 13);
    read_reply(fd, "link 99");
    send_req(fd, RTM_GETLINK, 0, 0, 14);
    read_reply(fd, "link without index");
    send_req(fd, RTM_GETADDR, 0, 0, 15);
    read_reply(fd, "getaddr without dump");
    read_reply(fd, "empty");
    char rbuf[16];
    ssize_t n = recv(fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
    printf("read %zd %s\n", n, strerror(errno));
    int s = socket(AF_NETLINK, SOCK_STREAM, NETLINK_ROUTE);
    printf("stream %d %s\n", s, strerror(errno));
    close(fd);
}

/* SIOCETHTOOL on `name` with the command struct `data` (cmd first). */
static void ethtool(int fd, const char *what, const char *name, void *data) {
    struct ifreq r;
    memset(&r, 0, sizeof r);
    strcpy(r.ifr_name, name);
    r.ifr_data = data;
    errno = 0;
    int rc = ioctl(fd, SIOCETHTOOL, &r);
    printf("ethtool %s %d %s", what, rc, rc ? strerror(errno) : "");
}

static void ethtools(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ethtool_ts_info ts = {.cmd = ETHTOOL_GET_TS_INFO};
    ethtool(fd, "ts", "lo", &ts);
    printf(" so 0x%x phc %d tx %u rx %u\n", ts.so_timestamping, ts.phc_index, ts.tx_types,
           ts.rx_filters);
    struct ethtool_value link = {.cmd = ETHTOOL_GLINK};
    ethtool(fd, "glink", "lo", &link);
    printf(" up %u\n", link.data);
    struct ethtool_value unknown = {.cmd = 0x7fff};
    ethtool(fd, "unknown", "lo", &unknown);
    printf("\n");
    ethtool(fd, "nodev", "nosuch0", &ts);
    printf("\n");
    ethtool(fd, "fault", "lo", (void *)8);
    printf("\n");
    close(fd);
    int ux = socket(AF_UNIX, SOCK_STREAM, 0);
    ethtool(ux, "unix", "lo", &ts);
    printf("\n");
    close(ux);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    ethtools();
    ifaddrs();
    raw();
    struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG, .ai_socktype = SOCK_STREAM}, *res;
    int r = getaddrinfo("localhost", "80", &hints, &res);
    printf("getaddrinfo AI_ADDRCONFIG %d", r);
    for (struct addrinfo *a = r == 0 ? res : NULL; a; a = a->ai_next)
        printf(" family %d", a->ai_family);
    printf("\ndone\n");
    return 0;
}
