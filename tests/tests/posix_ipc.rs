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
/// access modes and unlink while open, and the queue's mode checked at open without
/// CAP_DAC_OVERRIDE.
#[test]
fn message_queues_match_native() {
    let out = same("mq");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("received 4 prio 5 'five'"), "{out}");
    assert!(out.contains("notified: sig 10 code -3 value 77"), "{out}");
    assert!(
        out.contains("unprivileged open mode 0 read-write: -1 EACCES"),
        "{out}"
    );
    assert!(
        out.contains("unprivileged open 0444 read-only: ok"),
        "{out}"
    );
}

/// The mqueue file system (`tests/programs/mqueue_fs.c`, root natively: it mounts in a
/// private mount namespace): queues as files with their mode and status line, listed,
/// MQUEUE_MAGIC, unlink(2) as mq_unlink.
#[test]
fn mqueue_file_system_matches_native() {
    if !nix::unistd::geteuid().is_root() {
        return runsc_rs_tests::skip("mounting mqueue natively needs root");
    }
    runsc_rs_tests::assert_same_program(
        "mqueue_fs",
        &[],
        &[
            "mount: ok\n",
            "mode: 100640\n",
            "root mode: 41777\n",
            "magic: 19800202\n",
            "listed as a regular file: 1\n",
            "read 60: [QSIZE:5          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n]\n",
            "stat missing: ENOENT\n",
            "unlink file: ok\n",
            "mq_unlink after: ENOENT\n",
            "umount: ok\n",
        ],
    );
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
