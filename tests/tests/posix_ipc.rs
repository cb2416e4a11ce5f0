//! POSIX message queues, pidfds, memory locks and native AIO (issue 12): `tests/programs/posix_ipc.c`
//! runs natively and in the sandbox and both must print the same. Natively its queues live
//! in the host's IPC namespace under names that carry the pid, and are unlinked at the end.

use runsc_rs_tests::{assert_same, program_str};

/// Runs one part of the program on both sides; returns the native output.
fn same(part: &str) -> String {
    let Some(prog) = program_str("posix_ipc") else {
        return String::new();
    };
    let (native, _) = assert_same(&[&prog, part]);
    native.stdout_text()
}

/// mq_open name and attribute rules, priorities, the status line read(2) shows, poll,
/// timeouts, O_NONBLOCK through mq_setattr, SIGEV_SIGNAL notification from another process,
/// access modes and unlink while open.
#[test]
fn message_queues_match_native() {
    let out = same("mq");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("received 4 prio 5 'five'"), "{out}");
    assert!(out.contains("notified: sig 10 code -3 value 77"), "{out}");
}

/// pidfd_open, clone3(CLONE_PIDFD), pidfd_send_signal (siginfo checks, zombies, reaped
/// processes), pidfd_getfd, poll on a pidfd and waitid(P_PIDFD), blocking and not.
#[test]
fn pidfds_match_native() {
    let out = same("pidfd");
    if out.is_empty() {
        return;
    }
    assert!(
        out.contains("waited: code 1 status 7 pid matches 1"),
        "{out}"
    );
    assert!(out.contains("killed: 9"), "{out}");
}

/// mlock/munlock/mlock2/mlockall/munlockall and MAP_LOCKED, seen through msync's EBUSY and
/// MADV_DONTNEED's EINVAL on locked pages; fork children do not inherit locks;
/// RLIMIT_MEMLOCK without CAP_IPC_LOCK.
#[test]
fn memory_locks_match_native() {
    let out = same("mlock");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("locked: 0 1 0"), "{out}");
    assert!(
        out.contains("unprivileged: ENOMEM ok EAGAIN EPERM"),
        "{out}"
    );
}

/// io_setup's ring (Linux's layout and magic), a write and a read through io_submit and
/// io_getevents, timeouts, the checks at submission, io_destroy.
#[test]
fn native_aio_matches_native() {
    let out = same("aio");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("ring magic: a10a10a1"), "{out}");
    assert!(out.contains("file: hello aio"), "{out}");
}
