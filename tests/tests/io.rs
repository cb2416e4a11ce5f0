//! Data transfer between files and application memory: pipes keep what a faulting reader did
//! not take (Linux's EFAULT rule), and a task blocked reading a donated host pipe ends on
//! SIGKILL or returns EINTR to a signal handler, as natively.
//!
//! The blocking tests give the program a stdin pipe whose writer the test holds open for the
//! whole run, so the read can only end through a signal.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use runsc_rs_tests::{assert_same, program_str, runsc_rs_bin, test_platform, TEST_ENV};

#[test]
fn pipe_reads_and_writes_through_bad_buffers_match_native() {
    let Some(prog) = program_str("pipe_io") else {
        return;
    };
    let (native, _) = assert_same(&[&prog, "efault"]);
    let text = native.stdout_text();
    // The data a faulted read did not deliver is still in the pipe.
    assert!(text.contains("rest: 10 '0123456789'\n"), "{text}");
    assert!(
        text.contains("write straddling (page-aligned): 4096\n"),
        "{text}"
    );
}

/// Output, exit status and duration of `argv` run with a stdin pipe that stays open until the
/// run ends (or `limit` passes: the test then fails).
fn run_with_open_stdin(argv: &[String], limit: Duration) -> (String, i32, Duration) {
    let started = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(TEST_ENV.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    // Held (not written, not closed) until the child has exited.
    let writer = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send((out, child.wait()));
    });
    let Ok((out, status)) = rx.recv_timeout(limit) else {
        panic!("{argv:?} still blocked after {limit:?}: a signal did not end the host read");
    };
    drop(writer);
    let status = status.expect("wait");
    (out, status.code().unwrap_or(-1), started.elapsed())
}

fn sandbox_argv(prog: &str, mode: &str) -> Vec<String> {
    let mut argv = vec![runsc_rs_bin().display().to_string(), "do".to_owned()];
    if let Some(platform) = test_platform() {
        argv.extend(["--platform".to_owned(), platform]);
    }
    argv.extend(["--".to_owned(), prog.to_owned(), mode.to_owned()]);
    argv
}

#[test]
fn sigkill_ends_a_read_of_a_host_pipe_at_once() {
    let Some(prog) = program_str("pipe_io") else {
        return;
    };
    let limit = Duration::from_secs(20);
    let (native, native_status, _) = run_with_open_stdin(&[prog.clone(), "kill".to_owned()], limit);
    assert_eq!(native, "reader killed by signal 9\n");
    let (sandbox, status, took) = run_with_open_stdin(&sandbox_argv(&prog, "kill"), limit);
    assert_eq!(sandbox, native);
    assert_eq!(status, native_status);
    // The killer waits 0.3 s; the reader must be gone within a second after that (boot
    // included, on a loaded machine).
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn sigalrm_handler_interrupts_a_read_of_a_host_pipe_with_eintr() {
    let Some(prog) = program_str("pipe_io") else {
        return;
    };
    let limit = Duration::from_secs(20);
    let (native, native_status, _) =
        run_with_open_stdin(&[prog.clone(), "alarm".to_owned()], limit);
    assert_eq!(native, "read stdin: -1 Interrupted system call\n");
    let (sandbox, status, _) = run_with_open_stdin(&sandbox_argv(&prog, "alarm"), limit);
    assert_eq!(sandbox, native);
    assert_eq!(status, native_status);
}
