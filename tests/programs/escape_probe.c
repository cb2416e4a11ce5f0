/* escape_probe: tries host-reaching system calls from inside the sandbox and prints, one line
 * each, "<name> <return value> <errno>". Used by tests/tests/security.rs.
 * Usage: escape_probe HOST_PID   (a pid that exists on the host, outside the sandbox)
 * Build: gcc -static -O2 -o escape_probe escape_probe.c */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PTRACE_ATTACH 16

static void report(const char *name, long rc) {
    printf("%s %ld %d\n", name, rc, rc < 0 ? errno : 0);
}

int main(int argc, char **argv) {
    long host_pid = argc > 1 ? atol(argv[1]) : 1;
    static char attr[128];
    errno = 0;
    report("mount", syscall(SYS_mount, "none", "/", "tmpfs", 0UL, NULL));
    report("ptrace", syscall(SYS_ptrace, PTRACE_ATTACH, host_pid, NULL, NULL));
    report("kexec_load", syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0UL));
    report("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr));
    report("perf_event_open", syscall(SYS_perf_event_open, attr, 0, -1, -1, 0UL));
    report("kill", syscall(SYS_kill, host_pid, 0));
    fflush(stdout);
    return 0;
}
