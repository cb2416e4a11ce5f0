//! System calls added after `new_calls.rs`'s (PIDFD_THREAD pidfds and the PIDFD_SIGNAL_* scopes,
//! setfsuid/setfsgid, and rarely used calls), compared with native Linux. The program
//! (`tests/programs/more_calls.c`) prints one line per step; both runs must match.

use runsc_rs_tests::assert_same_program;

/// Runs one section natively and in the sandbox; checks the native run itself shows
/// `expect` (so a broken program cannot hide a sandbox bug).
fn section(name: &str, expect: &[&str]) {
    assert_same_program("more_calls", &[name], expect);
}

#[test]
fn thread_pidfds_poll_and_signal_as_natively() {
    section(
        "pidfd_thread",
        &[
            "thread pidfd opened: 1\n",
            "poll while the thread runs: 0\n",
            "two scopes: -1 EINVAL\n",
            "handled by the named thread: 1\n",
            "handled by the named thread again: 1\n",
            "waitid on a thread's pidfd: -1 ECHILD\n",
            "poll on the running leader: 0\n",
            "poll after the thread exited: 1\n",
            "signal to the exited thread: -1 ESRCH\n",
            "process group of a non-leader: -1 ESRCH\n",
            "group leader killed by: 15\n",
            "member killed by: 9\n",
        ],
    );
}

/// The host's vsyscall page: shown in maps and smaps as natively, and its three calls work
/// (a host booted with `vsyscall=none` shows no entry in either run).
#[test]
fn vsyscall_page_shows_and_works_as_natively() {
    section("vsyscall", &[]);
}

/// setfsuid/setfsgid: the old ID back, file access checks and new files' owners by the
/// filesystem IDs, the filesystem capabilities dropped and raised, the effective ID moving
/// the filesystem one, and unprivileged callers held to their own IDs.
#[test]
fn setfsuid_and_setfsgid_match_native() {
    section(
        "fsuid",
        &[
            "setfsuid(1000) returns the old one: 0\n",
            "status Uid fs column: 1000\n",
            "CAP_DAC_OVERRIDE effective: 0, CAP_CHOWN: 0, CAP_KILL: 1\n",
            "open root's 0600 file: -1 EACCES\n",
            "new file's owner: 1000\n",
            "chmod of root's file: -1 EPERM\n",
            "CAP_DAC_OVERRIDE effective again: 1\n",
            "new file's group: 1000\n",
            "an effective-ID change moves fsuid: 0\n",
            "unprivileged setfsuid(2000) returns: 1000\n",
            "unprivileged setfsgid(0) returns: 1000\n",
        ],
    );
}

/// sysfs(2) agrees with /proc/filesystems; io_pgetevents waits with its signal mask and
/// restores the caller's; process_mrelease refuses running and reaped processes.
#[test]
fn sysfs_io_pgetevents_and_process_mrelease_match_native() {
    section(
        "misc",
        &[
            "sysfs indexes, names and /proc/filesystems agree: 1\n",
            "sysfs unknown name: -1 EINVAL\n",
            "sysfs name at a bad address: -1 EFAULT\n",
            "io_pgetevents, nothing done, no mask: 0\n",
            "io_pgetevents, bad sigsetsize: -1 EINVAL\n",
            "io_pgetevents, mask unblocking a pending signal: -1 EINTR\n",
            "handler ran: 1\n",
            "mask restored: 1\n",
            "process_mrelease, running: -1 EINVAL\n",
            "process_mrelease, exited: -1 ESRCH\n",
        ],
    );
}
