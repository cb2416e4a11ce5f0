//! Advisory locks (flock, fcntl record and OFD locks) in a real sandbox, compared with
//! native Linux: conflicts, byte ranges, interruptible waits, release on close and exit.
//!
//! Uses the runsc-rs binary at `RUNSC_RS_BIN`, else the one next to this test's target dir.

use std::path::Path;
use std::process::Command;

#[test]
fn locks_behave_as_on_linux() {
    let uid = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = uid
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0");
    if !root {
        println!("SKIPPED: the sandbox needs root here; not root");
        return;
    }
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        println!("SKIPPED: no python3");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/locks.py");
    let native_file = std::env::temp_dir().join(format!("runsc-rs-locks-{}", std::process::id()));
    let native = Command::new(python)
        .arg(&script)
        .env("LOCKFILE", &native_file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&native_file);
    let inside = Command::new(runsc_rs_tests::runsc_rs_bin())
        .args(["do", "--", python])
        .arg(&script)
        .env("LOCKFILE", "/tmp/lockfile")
        .output()
        .unwrap();
    assert!(native.status.success(), "{native:?}");
    assert!(inside.status.success(), "{inside:?}");
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout),
        String::from_utf8_lossy(&native.stdout)
    );
}

/// A process's POSIX locks on a file go when it closes any fd of the file by any path
/// (close of another open, dup2/dup3 over a copy, close_range, execve's close-on-exec), and
/// stay through CLOSE_RANGE_CLOEXEC and an execve closing no fd of it; an OFD lock stays.
/// `locks_close.c` natively and in the sandbox must print the same.
#[test]
fn posix_locks_go_on_every_close_path_as_natively() {
    if !nix::unistd::geteuid().is_root() {
        return runsc_rs_tests::skip("the sandbox needs root here");
    }
    runsc_rs_tests::assert_same_program(
        "locks_close",
        &[],
        &[
            "locked: write-locked\n",
            "after close: unlocked\n",
            "after dup2: unlocked\n",
            "after dup3: unlocked\n",
            "after close_range CLOEXEC: write-locked\n",
            "after close_range: unlocked\n",
            "OFD lock after closing another open: read-locked\n",
            "after an execve closing no fd of it: write-locked\n",
            "after an execve closing a close-on-exec fd of it: unlocked\n",
        ],
    );
}
