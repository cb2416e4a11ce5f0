//! Processes, threads, signals, futexes and pipes: real programs natively and in the
//! sandbox, compared on stdout and exit status.
//!
//! Needs a built `runsc-rs` (`cargo build --release -p sentry`; found through RUNSC_RS_BIN,
//! CARGO_TARGET_DIR or `<workspace>/target/release`), `/bin/busybox` and `cc` for the C
//! programs in `tests/programs`. A missing piece prints `SKIPPED: reason`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runsc() -> Option<PathBuf> {
    // The harness's lookup: a runsc-rs that was not built fails the test, it is not skipped.
    Some(runsc_rs_tests::runsc_rs_bin())
}

/// (stdout, exit code) of `argv`, through `runsc-rs do` when `sandbox` is set.
fn run(bin: Option<&Path>, argv: &[&str]) -> (String, i32) {
    let mut cmd = match bin {
        Some(b) => {
            let mut c = Command::new(b);
            c.arg("do").arg("--").args(argv);
            c
        }
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let out = cmd.output().expect("spawn");
    let code = out.status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
    });
    (String::from_utf8_lossy(&out.stdout).into_owned(), code)
}

fn assert_same(argv: &[&str]) {
    let Some(bin) = runsc() else {
        runsc_rs_tests::skip("runsc-rs is not built (cargo build --release -p sentry)");
        return;
    };
    if !Path::new(argv[0]).exists() {
        runsc_rs_tests::skip(&format!("{} is not installed", argv[0]));
        return;
    }
    let native = run(None, argv);
    let sandbox = run(Some(&bin), argv);
    assert_eq!(native, sandbox, "native vs sandbox for {argv:?}");
}

/// Compiles `tests/programs/<name>.c` statically; None (after printing SKIPPED) without cc.
fn program(name: &str) -> Option<String> {
    let src = workspace().join(format!("tests/programs/{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    match Command::new("cc")
        .args(["-O1", "-static", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(out.to_string_lossy().into_owned()),
        _ => {
            runsc_rs_tests::skip("cannot build {name}.c with cc -static");
            None
        }
    }
}

#[test]
fn shell_pipeline_subshell_background_trap() {
    assert_same(&[
        "/bin/busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; done | /bin/busybox sort -r; (exit 3); echo $?; \
         /bin/busybox sleep 0.2 & wait; trap \"echo trapped\" USR1; kill -USR1 $$",
    ]);
}

#[test]
fn shell_kill_9_self() {
    assert_same(&["/bin/busybox", "sh", "-c", "kill -9 $$"]);
}

#[test]
fn shell_exit_codes_and_command_substitution() {
    assert_same(&[
        "/bin/busybox",
        "sh",
        "-c",
        "x=$(echo inner; exit 0); echo \"got $x\"; /bin/busybox false; echo $?; \
         echo a | /bin/busybox cat | /bin/busybox cat | /bin/busybox tr a b | /bin/busybox cat; exit 5",
    ]);
}

#[test]
fn pthreads_mutex_condvar() {
    if let Some(p) = program("threads") {
        assert_same(&[&p]);
    }
}

#[test]
fn fork_wait_exit_codes() {
    if let Some(p) = program("forkwait") {
        assert_same(&[&p]);
    }
}

#[test]
fn signal_handler_restores_registers() {
    if let Some(p) = program("sighandler") {
        assert_same(&[&p]);
    }
}
