//! Pseudo-terminals made by the sentry (devpts, `/dev/ptmx`, its line discipline, job
//! control): real programs natively and in the sandbox, compared on stdout and exit status.
//!
//! Needs a built `runsc-rs` (`cargo build --release -p sentry`), python3 and, for the
//! `script` case, util-linux's `script`. A missing piece prints `SKIPPED: reason`.

use std::path::Path;
use std::time::Duration;

use runsc_rs_tests::{assert_same_run, skip, Run};

fn python() -> Option<&'static str> {
    ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

fn script(name: &str) -> String {
    runsc_rs_tests::workspace_dir()
        .join("tests/scripts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs `tests/scripts/NAME` with `args` natively and in the sandbox; stdout must agree.
fn same_python(name: &str, args: &[&str]) -> Option<String> {
    let Some(py) = python() else {
        skip("python3 is not installed");
        return None;
    };
    let path = script(name);
    let mut argv = vec![py, path.as_str()];
    argv.extend_from_slice(args);
    let run = Run::new(&argv).timeout(Duration::from_secs(60));
    let (native, _) = assert_same_run(&run, &[]);
    Some(native.stdout_text())
}

#[test]
fn openpty_termios_echo_eof_raw_poll_hangup() {
    if let Some(out) = same_python("pty_basic.py", &[]) {
        // The comparison is the test; these make sure it compared something.
        assert!(out.contains("name True"), "{out}");
        assert!(out.contains("slave read b'abd\\n'"), "{out}");
        assert!(out.contains("after hangup read b''"), "{out}");
    }
}

#[test]
fn shell_job_control_on_a_pty() {
    if let Some(out) = same_python("pty_session.py", &["jobs"]) {
        assert!(out.contains("running listed True"), "{out}");
        assert!(out.contains("waited [b'143']"), "{out}");
        assert!(out.contains("status 3"), "{out}");
    }
}

#[test]
fn ctrl_c_ends_cat_with_sigint() {
    if let Some(out) = same_python("pty_session.py", &["intr"]) {
        assert!(out.contains("signaled True"), "{out}");
    }
}

#[test]
fn canonical_line_editing() {
    if let Some(out) = same_python("pty_session.py", &["erase"]) {
        assert!(out.contains("b'good line'"), "{out}");
    }
}

#[test]
fn master_close_hangs_up_the_session() {
    if let Some(out) = same_python("pty_session.py", &["hangup"]) {
        assert!(out.contains("hup True"), "{out}");
    }
}

#[test]
fn script_runs_a_command_on_a_new_pty() {
    let prog = "/usr/bin/script";
    if !Path::new(prog).is_file() {
        skip("script (bsdutils) is not installed");
        return;
    }
    // The pty's number depends on how many the host has open (the sandbox has its own
    // devpts): compare the path without it.
    let cmd = "tty | sed 's|[0-9]*$|N|'; stty size; echo hi";
    let run = Run::new(&[prog, "-qc", cmd, "/dev/null"]).timeout(Duration::from_secs(60));
    let (native, _) = assert_same_run(&run, &[]);
    assert!(
        native.stdout_text().contains("/dev/pts/"),
        "{}",
        native.stdout_text()
    );
}

/// The job-control rules of a pty: the master is a terminal of its own for TIOCNOTTY, a
/// background tcsetpgrp stops with SIGTTOU, a reaped group is ESRCH, and a session leader's
/// exit frees its terminal for the next session, and a privileged session leader steals
/// the terminal from another session only with TIOCSCTTY's argument 1.
#[test]
fn job_control_rules_match_linux() {
    runsc_rs_tests::assert_same_program(
        "pty_jobs",
        &[],
        &[
            "release-master: ok\n",
            "sigttou: ok\n",
            "gone-group: ok\n",
            "reuse: ok\nreuse: ok\n",
            "steal: ok\n",
        ],
    );
}
