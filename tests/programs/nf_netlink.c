/* NETLINK_NETFILTER (nftables) in a new network namespace, whose ruleset starts empty: the
 * socket's options, a flush of the whole ruleset in a batch, a delete of a table that does
 * not exist, a dump of the tables, and a change outside a batch. Prints the outcome of each
 * request (the NLMSG_ERROR code answering its sequence number, or the dump's entry count);
 * the output is compared with native Linux. Run as root. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char req[4096];
static size_t req_len;

static void add(unsigned short type, unsigned short flags, unsigned seq, unsigned short res_id,
                int family, const char *table) {
    struct nlmsghdr *h = (struct nlmsghdr *)(req + req_len);
    memset(h, 0, NLMSG_SPACE(sizeof(struct nfgenmsg)) + 64);
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = seq;
    struct nfgenmsg *g = NLMSG_DATA(h);
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = htons(res_id);
    h->nlmsg_len = NLMSG_LENGTH(sizeof *g);
    if (table) {
        struct nlattr *a = (struct nlattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
        a->nla_type = NFTA_TABLE_NAME;
        a->nla_len = NLA_HDRLEN + strlen(table) + 1;
        strcpy((char *)a + NLA_HDRLEN, table);
        h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(a->nla_len);
    }
    req_len += NLMSG_ALIGN(h->nlmsg_len);
}

static void add_batch(unsigned short type, unsigned seq) {
    add(type, 0, seq, NFNL_SUBSYS_NFTABLES, AF_UNSPEC, NULL);
}

/* Sends the request built so far; prints what answers sequence number `seq`. */
static void exchange(int fd, const char *what, unsigned seq) {
    if (send(fd, req, req_len, 0) != (ssize_t)req_len) {
        printf("%s: send errno %s\n", what, strerror(errno));
        req_len = 0;
        return;
    }
    req_len = 0;
    int entries = 0, answered = 0;
    char buf[16384];
    ssize_t n;
    while (!answered && (n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != seq)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                printf("%s: error %d\n", what, ((struct nlmsgerr *)NLMSG_DATA(h))->error);
                answered = 1;
            } else if (h->nlmsg_type == NLMSG_DONE) {
                printf("%s: %d entries\n", what, entries);
                answered = 1;
            } else {
                entries++;
            }
        }
    }
    if (!answered) printf("%s: no answer\n", what);
}

int main(void) {
    if (unshare(CLONE_NEWNET) != 0) {
        printf("unshare: %s\n", strerror(errno));
        return 1;
    }
    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (fd < 0) {
        printf("socket: %s\n", strerror(errno));
        return 1;
    }
    int v;
    socklen_t len = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len);
    printf("SO_PROTOCOL %d\n", v);
    len = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("SO_DOMAIN %d\n", v);

    const unsigned short deltable = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELTABLE;
    const unsigned short gettable = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE;
    add_batch(NFNL_MSG_BATCH_BEGIN, 1);
    add(deltable, NLM_F_ACK, 2, 0, AF_UNSPEC, NULL);
    add_batch(NFNL_MSG_BATCH_END, 3);
    exchange(fd, "flush ruleset", 2);

    add_batch(NFNL_MSG_BATCH_BEGIN, 11);
    add(deltable, NLM_F_ACK, 12, 0, NFPROTO_INET, "no_such_table");
    add_batch(NFNL_MSG_BATCH_END, 13);
    exchange(fd, "delete missing inet table", 12);

    add_batch(NFNL_MSG_BATCH_BEGIN, 14);
    add(deltable, NLM_F_ACK, 15, 0, AF_UNSPEC, "no_such_table");
    add_batch(NFNL_MSG_BATCH_END, 16);
    exchange(fd, "flush tables of that name", 15);

    add(gettable, NLM_F_DUMP, 21, 0, AF_UNSPEC, NULL);
    exchange(fd, "dump tables", 21);

    add(gettable, NLM_F_ACK, 31, 0, NFPROTO_INET, "no_such_table");
    exchange(fd, "get missing table", 31);

    add(deltable, NLM_F_ACK, 41, 0, AF_UNSPEC, NULL);
    exchange(fd, "flush outside a batch", 41);
    return 0;
}
