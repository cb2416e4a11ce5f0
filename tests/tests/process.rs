//! Processes, threads, signals, futexes and pipes: real programs natively and in the
//! sandbox, compared on stdout and exit status.
//!
//! Needs a built `runsc-rs` (`cargo build --release -p sentry`; found through RUNSC_RS_BIN,
//! CARGO_TARGET_DIR or `<workspace>/target/release`), `/bin/busybox` and `cc` for the C
//! programs in `tests/programs`. A missing piece prints `SKIPPED: reason`.

use std::path::Path;
use std::process::Command;

/// Runs `argv` natively and in the sandbox through the harness (stdout and exit status must
/// match); skips when the program is not installed.
fn assert_same(argv: &[&str]) {
    if !Path::new(argv[0]).exists() {
        runsc_rs_tests::skip(&format!("{} is not installed", argv[0]));
        return;
    }
    runsc_rs_tests::assert_same(argv);
}

/// The harness's static build of `tests/programs/<name>.c`; None (after a skip) without cc.
fn program(name: &str) -> Option<String> {
    runsc_rs_tests::program_str(name)
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

#[test]
fn exec_from_a_non_leader_thread_takes_the_leader_id() {
    if let Some(p) = program("exec_leader") {
        assert_same(&[&p]);
    }
}
