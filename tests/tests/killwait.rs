//! SIGKILL always wins, and a sentry panic never hangs the sandbox (issue 15, items 2 and 5).
//!
//! tests/programs/killwait.c puts a process in each blocking state (a vfork wait whose child
//! blocks every signal and leaves the session, a futex, a pipe, a sleep, a group stop,
//! sigsuspend with everything blocked, wait4) and kills it from inside the sandbox; the
//! sandbox must print what Linux prints, bound included. From the host, `runsc-rs do` is
//! killed while its program is held by such a vfork child. There is no ptrace stop to test:
//! the sentry does not implement ptrace.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use runsc_rs_tests::{assert_same, program_str, runsc_rs_bin, test_platform};

/// How long the sandbox may take to be gone once killed: generous for a loaded 2-core CI
/// machine, far below the 30 s the held vfork child sleeps.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// The syscall number the panic hook is armed with: no x86-64 kernel assigns it.
const PANIC_NR: &str = "1000";

#[test]
fn sigkill_ends_every_blocking_state() {
    let Some(prog) = program_str("killwait") else {
        return;
    };
    let states = [
        "vfork",
        "vfork-term",
        "futex",
        "pipe",
        "sleep",
        "stop",
        "sigsuspend",
        "wait",
    ];
    let argv: Vec<&str> = std::iter::once(prog.as_str()).chain(states).collect();
    let (native, _) = assert_same(&argv);
    assert_eq!(native.status, 0, "native:\n{}", native.stderr_text());
    let text = native.stdout_text();
    for state in states {
        assert!(
            text.contains(&format!("{state}: killed by signal")),
            "{text}"
        );
    }
}

/// `runsc-rs do -- killwait hold MARKER`, with stdout piped.
fn start_held(marker: &str) -> Child {
    let prog = program_str("killwait").expect("built above");
    let mut cmd = Command::new(runsc_rs_bin());
    cmd.arg("do");
    if let Some(p) = test_platform() {
        cmd.args(["--platform", &p]);
    }
    cmd.args(["--", &prog, "hold", marker])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    cmd.spawn().expect("start runsc-rs do")
}

/// Waits for `child` to print `line`, or fails after a timeout.
fn expect_line(child: &mut Child, line: &str) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let _ = tx.send(l.unwrap_or_default());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l == line => return,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("no {line:?} from the sandbox");
            }
        }
    }
}

fn wait_within(child: &mut Child, bound: Duration) -> Option<(ExitStatus, Duration)> {
    let start = Instant::now();
    while start.elapsed() < bound {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some((st, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Host processes whose command line contains `marker`: the sandbox and its stubs.
fn processes_with(marker: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == marker.as_bytes()))
        })
        .collect()
}

/// Waits for every process with `marker` to be gone; kills and names the survivors.
fn assert_all_gone(marker: &str) {
    let start = Instant::now();
    let mut left = processes_with(marker);
    while !left.is_empty() && start.elapsed() < GONE_WITHIN {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_with(marker);
    }
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    assert!(
        left.is_empty(),
        "host processes of the killed sandbox survived {GONE_WITHIN:?}: {left:?}"
    );
}

#[test]
fn host_signals_end_a_sandbox_held_by_a_vfork_child() {
    if program_str("killwait").is_none() {
        return;
    }
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        let marker = format!("killwait-hold-{}-{sig}", std::process::id());
        let mut child = start_held(&marker);
        expect_line(&mut child, "ready");
        kill(Pid::from_raw(child.id() as i32), sig).expect("kill runsc-rs do");
        let Some((status, took)) = wait_within(&mut child, GONE_WITHIN) else {
            let _ = child.kill();
            panic!("runsc-rs do survived {sig} for {GONE_WITHIN:?}");
        };
        eprintln!("{sig}: runsc-rs do gone after {took:?}");
        match sig {
            // The monitor kills the sandbox and reports the signal, shell style.
            Signal::SIGTERM => assert_eq!(status.code(), Some(128 + sig as i32), "{status:?}"),
            _ => assert_eq!(status.signal(), Some(sig as i32), "{status:?}"),
        }
        assert_all_gone(&marker);
    }
}

#[test]
fn a_panicking_task_ends_the_sandbox_as_if_sigkilled() {
    let Some(prog) = program_str("killwait") else {
        return;
    };
    // Without the hook the call is an unknown syscall: the same as Linux.
    let (native, _) = assert_same(&[&prog, "panic", PANIC_NR]);
    assert_eq!(native.stdout_text(), "child status 0\n");

    // With it, the child's task panics while its parent waits for it: the sandbox must end
    // (not hang), with a SIGKILLed program's status and one error line naming the task.
    let mut cmd = Command::new(runsc_rs_bin());
    cmd.arg("do");
    if let Some(p) = test_platform() {
        cmd.args(["--platform", &p]);
    }
    cmd.args(["--", &prog, "panic", PANIC_NR])
        .env("RUNSC_RS_TEST_ONLY_PANIC_SYSCALL", PANIC_NR)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("start runsc-rs do");
    let Some((status, took)) = wait_within(&mut child, GONE_WITHIN) else {
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        panic!("the sandbox hung after a task panicked");
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("panicked sandbox gone after {took:?}:\n{stderr}");
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ending the sandbox as if SIGKILLed"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("(killwait)") && lines[0].contains("test hook: system call 1000"),
        "{stderr}"
    );
}
