// UTS, IPC, network and user namespaces made by the guest, and the /proc/[pid]/ns files
// setns(2) takes. Prints facts (no inode numbers or host names), so that native Linux and
// the sandbox print the same. Everything that changes a namespace runs in a child that
// first left the caller's namespaces, so a native run changes nothing of the host's.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_GET_NSTYPE 0xb703

static void check(const char *what, int ok) {
    printf("%s: %s\n", what, ok ? "yes" : "no");
    fflush(stdout);
}

static void result(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok\n", what);
    fflush(stdout);
}

static unsigned long ino_of(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return st.st_ino;
}

static int run_child(void (*fn)(void)) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        fn();
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void uts_names(void) {
    struct utsname u;
    uname(&u);
    printf("uname: %s %s\n", u.nodename, u.domainname);
    char buf[128] = {0};
    int fd = open("/proc/sys/kernel/hostname", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        (void)n;
        close(fd);
    }
    printf("proc hostname: %s", buf);
}

static void uts_inner(void) {
    result("unshare(NEWUTS) again", unshare(CLONE_NEWUTS));
    result("sethostname inner", sethostname("inner", 5));
    uts_names();
}

// In a UTS namespace of its own: names are per namespace, and a namespace file taken
// before unsharing leads back.
static void uts(void) {
    unsigned long before = ino_of("/proc/self/ns/uts");
    int nsfd = open("/proc/self/ns/uts", O_RDONLY);
    check("uts ns file opens", nsfd >= 0);
    check("NS_GET_NSTYPE is CLONE_NEWUTS", ioctl(nsfd, NS_GET_NSTYPE) == CLONE_NEWUTS);
    char link[64] = {0};
    readlink("/proc/self/ns/uts", link, sizeof(link) - 1);
    char want[64];
    snprintf(want, sizeof(want), "uts:[%lu]", before);
    check("readlink names the inode", strcmp(link, want) == 0);
    result("unshare(NEWUTS)", unshare(CLONE_NEWUTS));
    check("new uts inode", ino_of("/proc/self/ns/uts") != before);
    result("sethostname", sethostname("ns-test", 7));
    result("setdomainname", setdomainname("dom", 3));
    char big[80];
    memset(big, 'x', sizeof(big));
    result("sethostname 65 bytes", sethostname(big, 65));
    uts_names();
    run_child(uts_inner);
    uts_names();
    result("setns(uts fd, NEWNET)", setns(nsfd, CLONE_NEWNET));
    result("setns(uts fd, NEWUTS)", setns(nsfd, CLONE_NEWUTS));
    check("back in the first uts namespace", ino_of("/proc/self/ns/uts") == before);
    struct utsname u;
    uname(&u);
    check("first hostname again", strcmp(u.nodename, "ns-test") != 0);
}

#define MQ_NAME "/runsc-rs-ns-test"

static void ipc_inner(void) {
    errno = 0;
    result("msgget existing key in new ns", msgget(0x4e53, 0));
    result("mq_open existing in new ns", mq_open(MQ_NAME, O_RDONLY));
    int id = msgget(0x4e53, IPC_CREAT | 0600);
    result("msgget create in new ns", id);
    msgctl(id, IPC_RMID, NULL);
}

static void ipc(void) {
    int id = msgget(0x4e53, IPC_CREAT | IPC_EXCL | 0600);
    result("msgget create", id);
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 16};
    mqd_t q = mq_open(MQ_NAME, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    result("mq_open create", q);
    pid_t c = fork();
    if (c == 0) {
        result("unshare(NEWIPC)", unshare(CLONE_NEWIPC));
        ipc_inner();
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    check("queue still here", msgget(0x4e53, 0) == id);
    msgctl(id, IPC_RMID, NULL);
    mq_unlink(MQ_NAME);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    a->sun_path[0] = 0;
    strcpy(a->sun_path + 1, name);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
}

static void net(void) {
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, "runsc-rs-ns-test");
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    result("bind abstract", bind(l, (struct sockaddr *)&a, len));
    result("listen", listen(l, 8));
    // Made before unsharing: belongs to the first namespace.
    int early = socket(AF_UNIX, SOCK_STREAM, 0);
    unsigned long before = ino_of("/proc/self/ns/net");
    int nsfd = open("/proc/self/ns/net", O_RDONLY);
    result("unshare(NEWNET)", unshare(CLONE_NEWNET));
    check("new net inode", ino_of("/proc/self/ns/net") != before);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    result("connect abstract from new ns", connect(s, (struct sockaddr *)&a, len));
    result("connect abstract with early socket", connect(early, (struct sockaddr *)&a, len));
    int l2 = socket(AF_UNIX, SOCK_STREAM, 0);
    result("bind same abstract name in new ns", bind(l2, (struct sockaddr *)&a, len));
    result("setns back (net)", setns(nsfd, 0));
    check("back in the first net namespace", ino_of("/proc/self/ns/net") == before);
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    result("connect abstract after setns", connect(s2, (struct sockaddr *)&a, len));
}

static void user(void) {
    int parent_user = open("/proc/self/ns/user", O_RDONLY);
    result("setns own user ns", setns(parent_user, CLONE_NEWUSER));
    result("unshare(NEWUSER)", unshare(CLONE_NEWUSER));
    printf("ids: %d %d %d %d\n", getuid(), geteuid(), getgid(), getegid());
    result("setns to parent user ns", setns(parent_user, CLONE_NEWUSER));
    result("sethostname in parent's uts ns", sethostname("no", 2));
    char buf[64] = {0};
    int fd = open("/proc/self/uid_map", O_RDONLY);
    check("empty uid_map", fd >= 0 && read(fd, buf, sizeof(buf)) == 0);
    close(fd);
    fd = open("/proc/self/uid_map", O_WRONLY);
    result("write uid_map", write(fd, "0 0 1\n", 6));
    close(fd);
    fd = open("/proc/self/uid_map", O_WRONLY);
    result("write uid_map twice", write(fd, "0 0 1\n", 6));
    close(fd);
    fd = open("/proc/self/setgroups", O_WRONLY);
    result("deny setgroups", write(fd, "deny", 4));
    close(fd);
    fd = open("/proc/self/gid_map", O_WRONLY);
    result("write gid_map", write(fd, "0 0 1\n", 6));
    close(fd);
    fd = open("/proc/self/uid_map", O_RDONLY);
    memset(buf, 0, sizeof(buf));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)n;
    printf("uid_map: %s", buf);
    printf("ids: %d %d %d %d\n", getuid(), geteuid(), getgid(), getegid());
    result("setgroups denied", setgroups(0, NULL));
    result("unshare(NEWUTS|NEWNET|NEWIPC) in own user ns",
           unshare(CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWIPC));
    result("sethostname in own uts ns", sethostname("mine", 4));
}

static void user_clone(void) {
    pid_t c = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
    if (c == 0) {
        result("child sethostname", sethostname("cloned", 6));
        struct utsname u;
        uname(&u);
        printf("child uname: %s\n", u.nodename);
        printf("child uid: %d\n", getuid());
        fflush(stdout);
        _exit(0);
    }
    int st = -1;
    waitpid(c, &st, 0);
    result("clone(NEWUSER|NEWUTS)", c);
    check("child exited 0", st == 0);
    struct utsname u;
    uname(&u);
    check("parent hostname unchanged", strcmp(u.nodename, "cloned") != 0);
    result("clone(NEWUSER|CLONE_FS)",
           syscall(SYS_clone, CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0));
}

// The whole program runs in fresh namespaces, so nothing it changes is the host's.
static void all(void) {
    if (unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) != 0) {
        perror("unshare");
        _exit(1);
    }
    run_child(uts);
    run_child(ipc);
    run_child(net);
    run_child(user);
    run_child(user_clone);
}

int main(void) {
    int r = run_child(all);
    if (r == 0) printf("done\n");
    return r;
}
