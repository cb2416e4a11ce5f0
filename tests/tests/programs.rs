//! Static C programs from tests/programs, run natively and under `runsc-rs do`: argv, envp,
//! exit codes, memory, large writes, unimplemented syscalls, faults.
//!
//! Each test first checks the native run against what Linux must print (so a broken test
//! program cannot hide a sandbox bug), then requires the sandbox to match it.

use runsc_rs_tests::{
    assert_same, assert_same_run, program_str, run_native, run_sandbox, syscall_table, Run,
    SupportLevel,
};

#[test]
fn hello_argv_envp_and_exit_codes() {
    let Some(hello) = program_str("hello") else {
        return;
    };
    for (args, status) in [
        (vec![], 0),
        (vec!["42", "a", "b c", ""], 42),
        (vec!["1"], 1),
        (vec!["255", "--flag=value"], 255),
    ] {
        let argv: Vec<&str> = std::iter::once(hello.as_str())
            .chain(args.iter().copied())
            .collect();
        let run = Run::new(&argv).env("HELLO_EXTRA", "x=y");
        let (native, _) = assert_same_run(&run, &[]);
        assert_eq!(native.status, status);
        let text = native.stdout_text();
        assert!(
            text.starts_with(&format!("argc={}\nargv[0]={hello}\n", argv.len())),
            "{text}"
        );
        for line in [
            "env HELLO_GREETING=hi there\n",
            "env HELLO_EMPTY=\n",
            "env HELLO_EXTRA=x=y\n",
            "pagesz=4096\n",
            "secure=0\n",
        ] {
            assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
        }
    }
}

#[test]
fn malloc_loop_64_mib() {
    let Some(prog) = program_str("malloc_loop") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    assert_eq!(native.status, 0);
    let text = native.stdout_text();
    assert!(
        text.contains("realloc kept contents: yes\n") && text.ends_with("done\n"),
        "{text}"
    );
}

#[test]
fn bigwrite_one_mib_at_once_and_in_chunks() {
    let Some(prog) = program_str("bigwrite") else {
        return;
    };
    let (native, sandbox) = assert_same(&[&prog]);
    assert_eq!(native.stdout.len(), 3 << 20);
    assert_eq!(native.status, 0, "{}", native.stderr_text());
    assert!(sandbox
        .stderr_text()
        .lines()
        .all(|l| !l.contains("short write")));
}

#[test]
fn null_dereference_is_sigsegv_exit_139() {
    let Some(prog) = program_str("nullderef") else {
        return;
    };
    for mode in ["read", "write", "jump"] {
        let (native, sandbox) = assert_same(&[&prog, mode]);
        assert_eq!(native.status, 139, "native {mode}");
        assert_eq!(native.stdout_text(), format!("before fault ({mode})\n"));
        assert_eq!(
            sandbox.status,
            139,
            "sandbox {mode}: {}",
            sandbox.stderr_text()
        );
        assert_eq!(
            sandbox.killed_by, None,
            "runsc-rs itself died instead of reporting 139"
        );
    }
}

#[test]
fn unknown_syscall_numbers_get_enosys() {
    let Some(prog) = program_str("enosys") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    assert_eq!(
        native.stdout_text(),
        "syscall 500: ENOSYS\nsyscall 1000: ENOSYS\nsyscall 100000: ENOSYS\nsyscall -1: ENOSYS\nstill alive\n"
    );
}

/// Real Linux syscalls that are harmless with all-zero arguments (natively they fail with
/// EFAULT or EINVAL, so a sandbox that passed them through would be caught).
const HARMLESS_WITH_ZERO_ARGS: &[&str] = &[
    "io_setup",
    "io_destroy",
    "io_getevents",
    "lookup_dcookie",
    "request_key",
    "add_key",
    "mq_notify",
    "kcmp",
];

#[test]
fn unsupported_real_syscall_gets_enosys_and_program_continues() {
    let Some(prog) = program_str("enosys") else {
        return;
    };
    let table = syscall_table();
    let Some(entry) = HARMLESS_WITH_ZERO_ARGS.iter().find_map(|name| {
        table
            .iter()
            .find(|e| e.name == *name && e.level == SupportLevel::Unsupported)
    }) else {
        runsc_rs_tests::skip(&format!(
            "none of {HARMLESS_WITH_ZERO_ARGS:?} is unsupported any more; pick another"
        ));
        return;
    };
    let nr = entry.number.to_string();
    let sandbox = run_sandbox(&[&prog, &nr], &[]);
    assert_eq!(
        sandbox.stdout_text(),
        format!("syscall {nr}: ENOSYS\nstill alive\n"),
        "{} ({nr}) is listed unsupported; stderr:\n{}",
        entry.name,
        sandbox.stderr_text()
    );
    assert_eq!(sandbox.status, 0);
}

fn parse_getpid_loop(text: &str, calls: u32) -> f64 {
    let rest = text
        .strip_prefix(&format!("calls={calls} ns_per_call="))
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected getpid_loop output {text:?}"));
    let ns: f64 = rest.parse().unwrap_or_else(|e| panic!("{rest:?}: {e}"));
    assert!(ns > 0.0 && ns.is_finite(), "{ns}");
    ns
}

#[test]
fn getpid_loop_runs_natively_and_in_sandbox() {
    let Some(prog) = program_str("getpid_loop") else {
        return;
    };
    let native = run_native(&[&prog, "1000"]);
    assert_eq!(native.status, 0);
    parse_getpid_loop(&native.stdout_text(), 1000);
    let sandbox = run_sandbox(&[&prog, "1000"], &[]);
    assert_eq!(sandbox.status, 0, "stderr:\n{}", sandbox.stderr_text());
    parse_getpid_loop(&sandbox.stdout_text(), 1000);
}

#[test]
fn strace_reports_syscalls_without_touching_stdout() {
    let Some(prog) = program_str("getpid_loop") else {
        return;
    };
    let log = std::env::temp_dir().join(format!("runsc-rs-strace-{}.log", std::process::id()));
    let log_arg = log.to_str().expect("UTF-8 temp dir").to_owned();
    let sandbox = run_sandbox(&[&prog, "3"], &["--strace", "--debug-log", &log_arg]);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(sandbox.status, 0, "stderr:\n{}", sandbox.stderr_text());
    parse_getpid_loop(&sandbox.stdout_text(), 3);
    // Wherever strace lines go (stderr or the debug log), they name the calls made.
    let trace = format!("{}{logged}", sandbox.stderr_text());
    for name in ["getpid", "write", "exit_group"] {
        assert!(
            trace.contains(name),
            "no strace line for {name} on stderr or in the debug log:\n{trace}"
        );
    }
    assert!(
        trace.lines().filter(|l| l.contains("getpid")).count() >= 4,
        "expected a line per getpid call (4):\n{trace}"
    );
}
