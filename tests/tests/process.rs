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
            runsc_rs_tests::skip(&format!("cannot build {name}.c with cc -static"));
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
fn sixty_four_threads_hammer_one_futex_mutex() {
    if let Some(p) = program("threads") {
        assert_same(&[&p, "64", "50"]);
    }
}

/// 1,000 sequential fork+exec+wait finish (fork is not quadratic in the sandbox).
#[test]
fn thousand_fork_exec_wait() {
    let Some(p) = program("syscall_bench") else {
        return;
    };
    let bin = runsc_rs_tests::runsc_rs_bin();
    let out = Command::new(&bin)
        .args(["do", "--", &p, "forkexec", "1000"])
        .output()
        .expect("spawn");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("op=forkexec n=1000"),
        "{out:?}"
    );
}

/// PIDs of live processes running the runsc-rs binary (the sentry and its stub processes,
/// which are forked from it).
fn runsc_processes(bin: &Path) -> Vec<u32> {
    let Ok(want) = std::fs::canonicalize(bin) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == want)
                // Zombies already reaped by their parent are gone; a zombie left behind counts.
                && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok()
        })
        .collect()
}

/// Nothing of a sandbox (sentry threads, stub processes) outlives `runsc-rs do`, even when
/// the program leaves background children and threads running.
#[test]
fn nothing_is_left_behind_after_exit() {
    let bin = runsc_rs_tests::runsc_rs_bin();
    let before = runsc_processes(&bin);
    let out = Command::new(&bin)
        .args([
            "do",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox sleep 30 & /bin/busybox sleep 30 & (/bin/busybox sleep 30 &); echo started",
        ])
        .output()
        .expect("spawn");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n", "{out:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<u32> = runsc_processes(&bin)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left behind by the sandbox: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
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
