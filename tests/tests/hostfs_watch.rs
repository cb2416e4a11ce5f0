//! Revalidation of the host dentry cache by inotify (`sentry::fs::hostfs`, "Dentry cache"):
//! a sandboxed `watch_probe` (tests/programs/watch_probe.c) over a volume of a fresh temp
//! directory answers questions about it step by step, while the test changes the tree on the
//! host between steps (rename over, a file replaced by a directory, chmod, append, unlink,
//! create, a directory renamed, a symlink swapped, a file with two links written through its
//! other name, explicit times, enough events to overflow the host's queue). After each change
//! the sandboxed answers must be those of a native `watch_probe` over the same directory at
//! that moment, with watching on (the default). The same steps run with it off
//! (`RUNSC_RS_HOSTFS_WATCH=0`), where every cached entry is revalidated with `fstatat`.
//!
//! Under `runsc-rs do` the inotify instance is made by the monitor and its last reference is
//! a holder process's (`sentry::boot::sandbox::WatchHolder`): the sandbox's watches must show
//! on the holder's descriptor, and the holder must be gone (reaped) soon after `runsc-rs`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use runsc_rs_tests::{program_str, runsc_rs_bin, test_platform, timeout, Scratch};

/// A running `watch_probe`, asked one question at a time.
struct Probe {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Dropped (so the watchdog stops) when the probe is done.
    _done: mpsc::Sender<()>,
}

impl Probe {
    fn start(mut cmd: Command) -> Probe {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().expect("starting watch_probe");
        let pid = child.id() as libc::pid_t;
        let (done, stop) = mpsc::channel::<()>();
        thread::spawn(move || {
            // A hung sandbox must fail the test, not hang it: kill the probe's group.
            if let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(timeout() * 2) {
                kill_group(pid);
            }
        });
        Probe {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            _done: done,
        }
    }

    fn ask(&mut self, question: &str) -> String {
        writeln!(self.stdin, "{question}").expect("probe gone");
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "probe exited while asked {question:?}; so far: {answer}"
            );
            if line == ".\n" {
                return answer;
            }
            answer.push_str(&line);
        }
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "probe: {status}");
    }
}

/// Kills the probe's own process group (it may be gone already).
fn kill_group(pid: libc::pid_t) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// What is asked after every change.
const QUESTIONS: &[&str] = &[
    "lstat .",
    "lstat f",
    "stat f",
    "read f",
    "lstat d",
    "list d",
    "lstat d/g",
    "read d/g",
    "lstat d/g2",
    "lstat e",
    "list e",
    "lstat e/g2",
    "lstat s",
    "stat s",
    "readlink s",
    "read s/inner",
    "lstat m",
    "lstat m/x",
    "lstat x",
    "lstat x/h",
    "read x/h",
    "list .",
];

fn write(dir: &Path, name: &str, data: &str) {
    std::fs::write(dir.join(name), data).unwrap();
}

/// The host's changes, one per step (step 0 builds the tree).
fn change(dir: &Path, step: usize) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |name: &str, m: u32| {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(m)).unwrap()
    };
    match step {
        0 => {
            write(dir, "f", "first f");
            std::fs::create_dir(dir.join("d")).unwrap();
            write(dir, "d/g", "g");
            std::fs::create_dir(dir.join("m")).unwrap();
            write(dir, "m/x", "x");
            std::fs::create_dir(dir.join("x")).unwrap();
            std::os::unix::fs::symlink("f", dir.join("s")).unwrap();
        }
        // A file renamed over another.
        1 => {
            write(dir, "n", "replacing f");
            std::fs::rename(dir.join("n"), dir.join("f")).unwrap();
        }
        // A file replaced by a directory.
        2 => {
            std::fs::remove_file(dir.join("f")).unwrap();
            std::fs::create_dir(dir.join("f")).unwrap();
            write(dir, "f/inner", "inside f");
        }
        3 => {
            mode("d", 0o700);
            mode("d/g", 0o600);
        }
        // Size and mtime, same inode.
        4 => {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join("d/g"))
                .unwrap();
            f.write_all(b" and more").unwrap();
        }
        5 => std::fs::remove_file(dir.join("d/g")).unwrap(),
        6 => write(dir, "d/g2", "created"),
        // A directory renamed, and another made under its old name.
        7 => {
            std::fs::rename(dir.join("d"), dir.join("e")).unwrap();
            std::fs::create_dir(dir.join("d")).unwrap();
        }
        // A symlink swapped atomically for one to elsewhere.
        8 => {
            std::os::unix::fs::symlink("e", dir.join("s.new")).unwrap();
            std::fs::rename(dir.join("s.new"), dir.join("s")).unwrap();
        }
        // Explicit times (atime too).
        9 => {
            let times = std::fs::FileTimes::new()
                .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000))
                .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000));
            std::fs::File::options()
                .write(true)
                .open(dir.join("e/g2"))
                .unwrap()
                .set_times(times)
                .unwrap();
        }
        // A second link in another directory, written through that name.
        10 => {
            std::fs::hard_link(dir.join("e/g2"), dir.join("x/h")).unwrap();
            std::fs::write(dir.join("x/h"), b"written through x/h").unwrap();
        }
        // More events than the host's queue holds, then a change whose event is lost.
        11 => {
            let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(16384);
            for i in 0..max + 16 {
                std::fs::File::create(dir.join(format!("m/many{i}"))).unwrap();
            }
            mode("e/g2", 0o640);
            write(dir, "m/x", "x after the overflow");
        }
        _ => return false,
    }
    true
}

/// `runsc-rs do` running a `watch_probe` over `vol` (mounted at /mnt/vol), with
/// `RUNSC_RS_HOSTFS_WATCH` set to `watch` (None: the default).
fn sandboxed_probe(probe: &str, vol: &Path, watch: Option<&str>) -> Probe {
    let mut cmd = Command::new(runsc_rs_bin());
    cmd.arg("do");
    if let Some(p) = test_platform() {
        cmd.args(["--platform", &p]);
    }
    cmd.args(["--volume", &format!("{}:/mnt/vol", vol.display())])
        .args(["--", probe, "/mnt/vol"]);
    match watch {
        Some(w) => cmd.env("RUNSC_RS_HOSTFS_WATCH", w),
        None => cmd.env_remove("RUNSC_RS_HOSTFS_WATCH"),
    };
    Probe::start(cmd)
}

fn steps_match_native(watch: Option<&str>) {
    let Some(probe) = program_str("watch_probe") else {
        return;
    };
    let s = Scratch::new("hostfs-watch");
    let vol = s.join("vol");
    std::fs::create_dir(&vol).unwrap();
    let mut sandboxed = sandboxed_probe(&probe, &vol, watch);
    let mut native_cmd = Command::new(&probe);
    native_cmd.arg(&vol);
    let mut native = Probe::start(native_cmd);
    let mut step = 0;
    while change(&vol, step) {
        for q in QUESTIONS {
            // The sandbox first: a read it makes changes atime the native stat then sees.
            let got = sandboxed.ask(q);
            let want = native.ask(q);
            assert_eq!(
                got, want,
                "step {step}, {q:?} (RUNSC_RS_HOSTFS_WATCH={watch:?})"
            );
        }
        step += 1;
    }
    sandboxed.finish();
    native.finish();
}

#[test]
fn host_changes_are_seen_with_watches() {
    steps_match_native(None);
}

#[test]
fn host_changes_are_seen_without_watches() {
    steps_match_native(Some("0"));
}

/// The processes of process group `pgid` (zombies included) and their command lines.
fn group(pgid: i32) -> Vec<(i32, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command's ")": state, ppid, pgrp.
        let pgrp: i32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (pgrp == pgid).then_some((pid, argv))
    })
    .collect()
}

/// The inotify watches process `pid`'s descriptors hold (`inotify wd:` lines of fdinfo).
fn inotify_watches(pid: i32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    fds.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

/// With watching on, the sandbox's watches are on the instance a holder process holds (so the
/// last close, which waits for the host's SRCU grace period, is not in the sandbox's exit),
/// and the holder ends and is reaped by itself once `runsc-rs` is gone; with it off there is
/// no holder.
fn holder(watch: Option<&str>) {
    let Some(probe) = program_str("watch_probe") else {
        return;
    };
    let s = Scratch::new("hostfs-watch-holder");
    let vol = s.join("vol");
    std::fs::create_dir(&vol).unwrap();
    assert!(change(&vol, 0));
    let mut sandboxed = sandboxed_probe(&probe, &vol, watch);
    // The probe's group is the one `runsc-rs do` leads (Probe::start).
    let pgid = sandboxed.child.id() as i32;
    for q in ["lstat f", "stat f", "list d", "lstat d/g"] {
        sandboxed.ask(q);
    }
    // The holder is a fork of the monitor that names itself (its `comm`).
    let holders: Vec<i32> = group(pgid)
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "watch-holder")
        })
        .collect();
    if watch == Some("0") {
        assert_eq!(holders, Vec::<i32>::new(), "a holder with watching off");
        sandboxed.finish();
        return;
    }
    assert_eq!(holders.len(), 1, "one holder: {:?}", group(pgid));
    assert!(
        inotify_watches(holders[0]) > 0,
        "the holder's instance has no watch: the sandbox watches with another one"
    );
    sandboxed.finish();
    let deadline = std::time::Instant::now() + timeout();
    while !group(pgid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left behind by runsc-rs do: {:?}",
            group(pgid)
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_instance_is_held_outside_the_sandbox() {
    holder(None);
}

#[test]
fn no_holder_without_watches() {
    holder(Some("0"));
}
