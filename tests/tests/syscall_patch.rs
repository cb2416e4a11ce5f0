//! System-call patching on the systrap platform (`platform::patch`): `mov $NR,%eax; syscall`
//! sites rewritten into jumps to the stub's fast entry must behave exactly as trapped ones,
//! from many threads at once, with signals arriving all the time, across fork and exec; the
//! kill switch and the ptrace platform must leave code alone.
//!
//! `tests/programs/patch_getpid.c` checks every answer itself and prints deterministic lines;
//! each run is compared with the same program on the host.

use runsc_rs_tests::{
    assert_same_run, effective_platform, program_str, skip, test_platform, Outcome, Run,
};

/// A debug log file of its own for one sandbox run, removed when dropped.
struct Log(std::path::PathBuf);

impl Log {
    fn new(tag: &str) -> Log {
        let dir = std::env::temp_dir().join(format!(
            "runsc-rs-syscall-patch-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Log(dir.join("sentry.log"))
    }

    fn arg(&self) -> String {
        self.0.to_str().expect("UTF-8 temp dir").to_owned()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `patch_getpid ARGS` natively and in the sandbox (with `flags`), requires the same
/// output and status, and returns the sandbox's debug log.
fn same_as_native(run: &Run, flags: &[&str], tag: &str) -> (Outcome, String) {
    let log = Log::new(tag);
    let arg = log.arg();
    let mut all: Vec<&str> = vec!["--debug-log", &arg];
    all.extend(flags);
    let (native, _) = assert_same_run(run, &all);
    assert_eq!(native.status, 0, "{}", native.stdout_text());
    (native, log.text())
}

/// Whether this run's platform patches (systrap with fsgsbase and xsave), from its log.
fn patching_on(log: &str) -> bool {
    log.contains("syscall patching on")
}

#[test]
fn patched_getpid_loop_keeps_registers_and_fp_and_is_patched() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    let (_, log) = same_as_native(&Run::new(&[&prog, "loop", "20000"]), &[], "loop");
    if !patching_on(&log) {
        skip(&format!(
            "platform {} does not patch system calls here",
            effective_platform()
        ));
        return;
    }
    // The program's own site (mov $39,%eax) and its kill(pid, 0) site (mov $62,%eax).
    assert!(log.contains("patched system call 39 at"), "{log}");
    assert!(log.contains("patched system call 62 at"), "{log}");
}

#[test]
fn one_site_from_many_threads_at_once() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    for _ in 0..3 {
        same_as_native(&Run::new(&[&prog, "threads", "8", "5000"]), &[], "threads");
    }
}

#[test]
fn signals_arriving_during_patched_calls() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    same_as_native(&Run::new(&[&prog, "signals", "20000"]), &[], "signals");
}

#[test]
fn fork_shares_the_patched_page_and_exec_starts_clean() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    same_as_native(&Run::new(&[&prog, "fork", "5000"]), &[], "fork");
    let (_, log) = same_as_native(&Run::new(&[&prog, "exec", "5000"]), &[], "exec");
    if patching_on(&log) {
        // The site is patched again in the new image: exec dropped the old table.
        assert!(
            log.matches("patched system call 39 at").count() >= 2,
            "{log}"
        );
    }
}

#[test]
fn the_kill_switch_leaves_code_alone() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    let run = Run::new(&[&prog, "loop", "2000"]).env("RUNSC_RS_SYSCALL_PATCH", "0");
    let (_, log) = same_as_native(&run, &[], "off");
    assert!(!log.contains("patched system call"), "{log}");
}

#[test]
fn the_ptrace_platform_never_patches() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    if test_platform().is_some() {
        skip("RUNSC_RS_TEST_PLATFORM chooses the platform of this run");
        return;
    }
    let (_, log) = same_as_native(
        &Run::new(&[&prog, "loop", "2000"]),
        &["--platform", "ptrace"],
        "ptrace",
    );
    assert!(!log.contains("patched system call"), "{log}");
}

#[test]
fn restarted_calls_rewind_onto_the_rewritten_site() {
    let Some(prog) = program_str("patch_getpid") else {
        return;
    };
    // A read restarted after an SA_RESTART handler (rewound onto the site's 0x06 byte), and
    // a nanosleep stopped and continued (`restart_syscall` from the same place).
    let (_, log) = same_as_native(&Run::new(&[&prog, "restart", "1"]), &[], "restart");
    if patching_on(&log) {
        assert!(log.contains("patched system call 0 at"), "{log}");
        assert!(log.contains("patched system call 35 at"), "{log}");
    }
}
