//! System V IPC (issue 12): `tests/programs/sysv_ipc.c` runs natively and in the sandbox and
//! both must print the same. Natively the program's objects live in the host's IPC namespace
//! (it uses private or fresh keys and removes what it creates); in the sandbox they live in
//! the sandbox kernel's own.

use runsc_rs_tests::{assert_same, program_str};

/// Runs one part of the program on both sides; returns the native output.
fn same(part: &str) -> String {
    let Some(prog) = program_str("sysv_ipc") else {
        return String::new();
    };
    let (native, _) = assert_same(&[&prog, part]);
    native.stdout_text()
}

/// shmget key and size rules, shmat (hint, SHM_RND, SHM_REMAP, SHM_RDONLY), sharing with a
/// fork child, detach and re-attach, attachment counts, IPC_SET/IPC_STAT, permissions of
/// another user, IPC_RMID while attached and the free at the last detach.
#[test]
fn shared_memory_matches_native() {
    let out = same("shm");
    if out.is_empty() {
        return;
    }
    // The run reached its end with the segment really shared.
    assert!(out.contains("parent sees: 'child wrote'"), "{out}");
    assert!(out.contains("shminfo: shmmin 1"), "{out}");
}

/// Semaphore values, atomic semop, blocking with semncnt/semzcnt, timeouts, EINTR without
/// restart, SEM_UNDO at exit and EIDRM for waiters of a removed set.
#[test]
fn semaphores_match_native() {
    let out = same("sem");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("ncnt waiting: 1"), "{out}");
    assert!(out.contains("after undo: 1 0"), "{out}");
}

/// Message types and selection, truncation, MSG_COPY, blocking receive and send, EINTR and
/// EIDRM.
#[test]
fn message_queues_match_native() {
    let out = same("msg");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("sent late: 8 type 2 'blocked'"), "{out}");
}

/// The IPC sysctls and /proc/sysvipc.
#[test]
fn proc_files_match_native() {
    let out = same("proc");
    if out.is_empty() {
        return;
    }
    assert!(out.contains("own segment found: 1"), "{out}");
}
