//! ptrace(2) between tasks of the sandbox. `tests/programs/ptrace_trace.c` is a tracer that
//! counts a child's system calls with PTRACE_SYSCALL, peeks and pokes its memory (a read-only
//! page too), follows fork, exec and exit event stops, attaches and detaches (TracerPid in
//! /proc) and seizes and interrupts; it runs natively and in the sandbox, compared on stdout and
//! exit status. Then the real `strace -f` traces a shell and its child inside the sandbox.

use runsc_rs_tests::{assert_same, program_str, skip, static_busybox, Run};

#[test]
fn ptrace_tracer_matches_native() {
    let Some(prog) = program_str("ptrace_trace") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let out = native.stdout_text();
    for line in [
        "[syscalls] enter 102 rax -38",
        "[syscalls] exit 3 = -9",
        "[syscalls] 7 stops",
        "[peekpoke] exited 0",
        "[events grandchild] stopped sig 0x5 event 4",
        "[events] exit message: exited 1 code 5",
        "[attach] TracerPid is me: 1",
        "[seize] stopped sig 0x5 event 128",
        "failures: 0",
    ] {
        assert!(out.contains(line), "missing `{line}`:\n{out}");
    }
}

/// strace's lines of the traced calls, with the PIDs (which differ between the two runs)
/// taken out.
fn without_pids(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains("exit_group("))
        .map(|l| match l.strip_prefix("[pid ") {
            Some(rest) => format!(
                "[pid] {}",
                rest.split_once(']').map_or(rest, |r| r.1).trim()
            ),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn strace_follows_a_shell_and_its_child() {
    const STRACE: &str = "/usr/bin/strace";
    if !std::path::Path::new(STRACE).exists() {
        skip("strace is not installed");
        return;
    }
    let Some(busybox) = static_busybox() else {
        return;
    };
    let script = format!("{busybox} true; exit 3");
    let run = Run::new(&[
        STRACE,
        "-f",
        "-qq",
        "-e",
        "trace=exit_group",
        "-e",
        "signal=none",
        busybox,
        "sh",
        "-c",
        &script,
    ]);
    let native = run.native();
    let sandbox = run.sandbox(&[]);
    assert_eq!(native.status, sandbox.status, "{}", sandbox.stderr_text());
    let want = without_pids(&native.stderr_text());
    assert!(want.contains("[pid] exit_group(0)"), "{want}");
    assert!(want.contains("exit_group(3)"), "{want}");
    assert_eq!(want, without_pids(&sandbox.stderr_text()));
}
