//! futex_waitv, FUTEX_WAKE on a PI futex, process_madvise, ustat, cachestat, vhangup and a
//! traced subthread's wait status, compared with native Linux. The program (`tests/programs/calls5.c`) prints
//! one line per step; both runs must match.

use runsc_rs_tests::assert_same_program;

/// Runs one section natively and in the sandbox; checks the native run itself shows
/// `expect` (so a broken program cannot hide a sandbox bug).
fn section(name: &str, expect: &[&str]) {
    assert_same_program("calls5", &[name], expect);
}

/// futex_waitv: the argument checks, EAGAIN for a changed word, absolute timeouts on both
/// clocks, the woken index for a FUTEX_WAKE from a thread (private futexes) and from another
/// process (shared ones), and EINTR for a handler without SA_RESTART.
#[test]
fn futex_waitv_matches_native() {
    section(
        "waitv",
        &[
            "flags 1: -1 EINVAL\n",
            "129 futexes: -1 EINVAL\n",
            "reserved field set: -1 EINVAL\n",
            "8-bit size: -1 EINVAL\n",
            "bad clock: -1 EINVAL\n",
            "futex at a bad address: -1 EFAULT\n",
            "a value differs: -1 EAGAIN\n",
            "monotonic timeout: -1 ETIMEDOUT\n",
            "realtime timeout already past: -1 ETIMEDOUT\n",
            "FUTEX_WAKE_PRIVATE woke: 1\n",
            "waitv returned index: 2\n",
            "shared futex, woken index: 1\n",
            "waker's status: 0\n",
            "interrupted by a signal: -1 EINTR\n",
        ],
    );
}

/// FUTEX_WAKE and FUTEX_WAKE_OP refuse a word a FUTEX_LOCK_PI waiter sleeps on (EINVAL);
/// the waiter still gets the lock from FUTEX_UNLOCK_PI.
#[test]
fn futex_wake_on_a_pi_waiter_is_einval_as_natively() {
    section(
        "pi_wake",
        &[
            "FUTEX_WAKE without waiters: 0\n",
            "FUTEX_WAKE with a PI waiter: -1 EINVAL\n",
            "FUTEX_WAKE_OP with a PI waiter: -1 EINVAL\n",
            "the waiter took the lock: 1\n",
        ],
    );
}

/// process_madvise: argument checks, bytes advised up to the first failing range, any
/// advice on the caller itself, only the non-destructive ones on another process, and
/// EPERM without CAP_SYS_NICE, EACCES without ptrace access, ESRCH for a zombie.
#[test]
fn process_madvise_matches_native() {
    section(
        "process_madvise",
        &[
            "not a pidfd: -1 EBADF\n",
            "self, MADV_COLD, two ranges (bytes): 24576\n",
            "second range has a hole (bytes): 8192\n",
            "first range has a hole: -1 ENOMEM\n",
            "self, MADV_DONTNEED: 16384\n",
            "contents dropped: 1\n",
            "child, MADV_WILLNEED: 16384\n",
            "child, MADV_DONTNEED: -1 EINVAL\n",
            "child, without CAP_SYS_NICE: -1 EPERM\n",
            "child, from another user: -1 EACCES\n",
            "zombie child: -1 ESRCH\n",
        ],
    );
}

/// ustat of the root filesystem's device succeeds with sane counts; an unknown device is
/// EINVAL, a bad buffer EFAULT.
#[test]
fn ustat_matches_native() {
    section(
        "ustat",
        &[
            "ustat of /'s device: 0\n",
            "f_tinode at most f_files: 1\n",
            "unknown device: -1 EINVAL\n",
            "bad buffer: -1 EFAULT\n",
        ],
    );
}

/// A tracer attached to a non-leader thread gets that thread's TID back from
/// waitpid(tid, __WALL), also after the leader thread has exited alone (the sandbox
/// returned the process's PID then).
#[test]
fn traced_subthread_waits_report_its_tid() {
    section(
        "ptrace_thread",
        &[
            "waitpid(tid) returns the tid: 1\n",
            "stopped by SIGSTOP: 19\n",
            "after the leader's exit, waitpid(tid) returns the tid: 1\n",
            "stopped by SIGUSR1: 10\n",
        ],
    );
}

/// cachestat: a tmpfs file's written pages (a range, holes, truncation), zeros for a file
/// without pages, and the checks: EBADF (also O_PATH), EFAULT, EINVAL, EPERM for a
/// read-only open of another user's file without write permission.
#[test]
fn cachestat_matches_native() {
    section(
        "cachestat",
        &[
            "memfd sized, never written: cache 0 dirty 0 writeback 0 evicted 0 recently 0\n",
            "three pages written: cache 3 dirty 0 writeback 0 evicted 0 recently 0\n",
            "page 3 only: cache 1 dirty 0 writeback 0 evicted 0 recently 0\n",
            "truncated to three pages: cache 1 dirty 0 writeback 0 evicted 0 recently 0\n",
            "pipe: cache 0 dirty 0 writeback 0 evicted 0 recently 0\n",
            "bad fd: -1 EBADF\n",
            "range at a bad address: -1 EFAULT\n",
            "flags 1: -1 EINVAL\n",
            "O_PATH: -1 EBADF\n",
            "read-only open by another user, no write permission: -1 EPERM\n",
        ],
    );
}

/// vhangup: EPERM without CAP_SYS_TTY_CONFIG, 0 without a controlling terminal; a session
/// leader hanging up its pty takes SIGHUP and loses the terminal (no /dev/tty), which it may
/// then take again. (Every call runs in a new session: a run from a terminal keeps it.)
#[test]
fn vhangup_matches_native() {
    section(
        "vhangup",
        &[
            "vhangup without a controlling terminal: 0\n",
            "vhangup without CAP_SYS_TTY_CONFIG: -1 EPERM\n",
            "vhangup: 0\n",
            "SIGHUPs taken: 1\n",
            "open /dev/tty after: 0\n",
            "TIOCSCTTY again: 0\n",
        ],
    );
}
