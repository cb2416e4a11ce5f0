/* proc_escape_probe: tries to leave the sandbox root through /proc magic links and through a
 * directory fd received over SCM_RIGHTS. A file SECRET_NAME sits on the host next to (outside)
 * the sandbox's root; every attempt prints "<name> <result>", where result is "blocked <errno>",
 * "inside" (opened a file, not the secret) or "ESCAPE" (read the secret).
 * Usage: proc_escape_probe HOST_PID   Build: gcc -static -O2 -o proc_escape_probe proc_escape_probe.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECRET_NAME "host_secret"
#define SECRET_TEXT "HOSTSECRET"

static void verdict(const char *name, int fd) {
    if (fd < 0) {
        printf("%s blocked %d\n", name, errno);
        return;
    }
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("%s %s\n", name, n > 0 && strstr(buf, SECRET_TEXT) ? "ESCAPE" : "inside");
}

static void try_open(const char *name, const char *path) {
    verdict(name, open(path, O_RDONLY));
}

static void try_openat(const char *name, int dir, const char *path) {
    verdict(name, openat(dir, path, O_RDONLY));
}

static int send_fd(int sock, int fd) {
    char data = 'x';
    struct iovec iov = {.iov_base = &data, .iov_len = 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
    char data;
    struct iovec iov = {.iov_base = &data, .iov_len = 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    if (recvmsg(sock, &msg, 0) != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

int main(int argc, char **argv) {
    const char *host_pid = argc > 1 ? argv[1] : "1";
    char path[256];

    try_open("control_exe", "/proc/self/exe");
    try_open("self_root_dotdot", "/proc/self/root/../" SECRET_NAME);
    try_open("self_root_dotdot_deep", "/proc/self/root/../../../../" SECRET_NAME);
    try_open("init_cwd_dotdot", "/proc/1/cwd/../../../../../" SECRET_NAME);
    try_open("init_root_dotdot", "/proc/1/root/../" SECRET_NAME);
    try_open("nested_root", "/proc/self/root/proc/1/root/proc/self/root/../" SECRET_NAME);
    try_open("thread_self_root", "/proc/thread-self/root/../" SECRET_NAME);

    char link[256] = {0};
    ssize_t n = readlink("/proc/self/root", link, sizeof link - 1);
    printf("readlink_root %s\n", n == 1 && link[0] == '/' ? "inside" : "ESCAPE");

    snprintf(path, sizeof path, "/proc/%s/root/" SECRET_NAME, host_pid);
    try_open("host_pid_root", path);
    snprintf(path, sizeof path, "/proc/%s", host_pid);
    struct stat st;
    if (strcmp(host_pid, "1") != 0)
        printf("host_pid_visible %s\n", stat(path, &st) == 0 ? "ESCAPE" : "blocked 2");

    /* A directory fd of "/" opened by a child and passed over SCM_RIGHTS. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { perror("socketpair"); return 1; }
    pid_t child = fork();
    if (child == 0) {
        int d = open("/", O_RDONLY | O_DIRECTORY);
        if (chdir("/tmp") != 0) _exit(3);
        _exit(send_fd(sv[1], d) == 0 ? 0 : 2);
    }
    close(sv[1]); /* a child that fails to send then means EOF here, not a hang */
    int dir = recv_fd(sv[0]);
    waitpid(child, NULL, 0);
    if (dir < 0) { printf("scm_rights_recv blocked %d\n", errno); return 1; }
    try_openat("scm_openat_dotdot", dir, "../" SECRET_NAME);
    try_openat("scm_openat_deep", dir, "../../../../../" SECRET_NAME);
    snprintf(path, sizeof path, "/proc/self/fd/%d/../" SECRET_NAME, dir);
    try_open("scm_proc_fd_dotdot", path);
    snprintf(path, sizeof path, "/proc/self/fd/%d/../../../" SECRET_NAME, dir);
    try_open("scm_proc_fd_deep", path);
    if (fchdir(dir) == 0) {
        try_open("scm_fchdir_dotdot", "../../../" SECRET_NAME);
    } else {
        printf("scm_fchdir_dotdot blocked %d\n", errno);
    }
    /* The fd's ".." must be the root itself. */
    struct stat root_st, up_st;
    if (stat("/", &root_st) == 0 && fstatat(dir, "..", &up_st, 0) == 0)
        printf("scm_dotdot_is_root %s\n",
               root_st.st_ino == up_st.st_ino && root_st.st_dev == up_st.st_dev ? "inside"
                                                                                  : "ESCAPE");
    fflush(stdout);
    return 0;
}
