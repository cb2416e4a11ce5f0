//! Scheduler calls, priorities, clock setting and resource limits (issue 12):
//! `tests/programs/sched.c`, `nice` and the shell's `ulimit` run natively and in the sandbox,
//! compared on stdout and exit status. Setting the clock is checked in the sandbox only: root
//! natively could set the host's clock.
//!
//! The scheduler checks need root with CAP_SYS_NICE and CAP_SETUID (the unprivileged checks
//! run in a child that drops to uid 12345); a missing piece prints `SKIPPED: reason`.

use runsc_rs_tests::{assert_same, assert_same_run, program_str, run_sandbox, skip, Run};

/// A `/proc/self/status` capability set of the test process.
fn own_caps(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The `sched` program, when this process is root with CAP_SYS_NICE and CAP_SETUID; None
/// after a skip.
fn privileged_program() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        skip("needs root: the checks compare what root and an unprivileged child may do");
        return None;
    }
    const CAP_SETUID: u64 = 1 << 7;
    const CAP_SYS_NICE: u64 = 1 << 23;
    let needed = CAP_SETUID | CAP_SYS_NICE;
    if own_caps("CapEff:").is_none_or(|e| e & needed != needed) {
        skip("root here lacks CAP_SYS_NICE or CAP_SETUID");
        return None;
    }
    program_str("sched")
}

#[test]
fn scheduler_calls_match_native() {
    let Some(sched) = privileged_program() else {
        return;
    };
    let (native, _) = assert_same(&[&sched, "sched"]);
    let out = native.stdout_text();
    // Both sides must have reached the unprivileged child's end, not stopped alike early.
    assert!(
        out.contains("child ioprio_set parent"),
        "stopped early:\n{out}"
    );
    assert!(out.contains("child status 0"), "{out}");
}

/// get/setpriority and sched_setaffinity on an exited child not yet reaped find it as Linux
/// does (its last nice value, its owner's permission), and ESRCH once reaped.
#[test]
fn priority_of_an_unreaped_child_as_natively() {
    let Some(sched) = privileged_program() else {
        return;
    };
    let (native, _) = assert_same(&[&sched, "zombie"]);
    let out = native.stdout_text();
    assert!(out.contains("zombie getpriority 5 errno 0"), "{out}");
    assert!(
        out.contains("as another user -1 errno Operation not permitted"),
        "{out}"
    );
    assert!(
        out.contains("zombie setaffinity as root 0 errno -"),
        "{out}"
    );
    assert!(
        out.contains("zombie setaffinity as another user -1 errno Operation not permitted"),
        "{out}"
    );
    assert!(
        out.contains("reaped setaffinity -1 errno No such process"),
        "{out}"
    );
}

#[test]
fn resource_limits_are_enforced_as_natively() {
    let Some(sched) = privileged_program() else {
        return;
    };
    let (native, _) = assert_same(&[&sched, "limits"]);
    let out = native.stdout_text();
    assert!(out.contains("dup2 to 10 = -1 EBADF"), "{out}");
    assert!(out.contains("fork at NPROC limit: EAGAIN"), "{out}");
}

/// `runsc-rs do` gives the command the caller's limits: `ulimit` and /proc/self/limits read
/// inside what they read outside (the defaults would say 1024 open files).
#[test]
fn do_takes_the_callers_limits() {
    assert_same(&[
        "/bin/sh",
        "-c",
        "cat /proc/self/limits; ulimit -n; ulimit -Hn; ulimit -s",
    ]);
    // A limit the caller changed just before is the one inside.
    let runsc_rs = runsc_rs_tests::runsc_rs_bin();
    let runsc_rs = runsc_rs.to_string_lossy();
    let run = Run::new(&[
        "/bin/sh",
        "-c",
        "ulimit -Sn 321 && ulimit -Ss 16384 && exec \"$@\"",
        "sh",
        &runsc_rs,
        "do",
        "--",
        "/bin/sh",
        "-c",
        "ulimit -Sn; ulimit -Ss",
    ]);
    let out = run.native();
    assert_eq!(out.stdout_text(), "321\n16384\n", "{}", out.stderr_text());
}

/// `nice` (setpriority) shows in the nice and priority fields of /proc/[pid]/stat.
#[test]
fn nice_shows_in_proc_stat() {
    if !std::path::Path::new("/usr/bin/nice").is_file() {
        skip("/usr/bin/nice is not installed");
        return;
    }
    let (native, _) = assert_same(&[
        "/usr/bin/nice",
        "-n",
        "5",
        "/usr/bin/cut",
        "-d ",
        "-f18,19",
        "/proc/self/stat",
    ]);
    assert_eq!(native.stdout_text(), "25 5\n");
}

/// The stack is as large as RLIMIT_STACK at exec: 12 MiB of recursion fits in a 16 MiB
/// stack (more than the 8 MiB default) and 4 MiB overflows a 2 MiB one with SIGSEGV.
#[test]
fn stack_size_follows_rlimit_stack() {
    let Some(sched) = program_str("sched") else {
        return;
    };
    for (limit, depth) in [("16384", "12288"), ("2048", "4096")] {
        let script = format!("ulimit -s {limit} && exec \"$0\" stack {depth}");
        assert_same_run(&Run::new(&["/bin/sh", "-c", &script, &sched]), &[]);
    }
}

/// Setting the clock is refused with EPERM (after Linux's argument checks), never ENOSYS;
/// adjtimex still reads.
#[test]
fn setting_the_clock_is_eperm() {
    let Some(sched) = program_str("sched") else {
        return;
    };
    let out = run_sandbox(&[&sched, "clock"], &[]);
    assert_eq!(
        out.stdout_text(),
        "clock_settime REALTIME = -1 EPERM\n\
         clock_settime MONOTONIC = -1 EINVAL\n\
         clock_settime bad nsec = -1 EINVAL\n\
         settimeofday = -1 EPERM\n\
         settimeofday bad usec = -1 EINVAL\n\
         adjtimex read: ok, unsync=1\n\
         adjtimex set frequency = -1 EPERM\n",
        "{}",
        out.stderr_text()
    );
}

/// waitid with WSTOPPED or WCONTINUED alone reports stops and continues, never the exit; a
/// child that is only a zombie then is no child to wait for (ECHILD).
#[test]
fn waitid_without_wexited_matches_native() {
    let Some(sched) = program_str("sched") else {
        return;
    };
    let (native, _) = assert_same(&[&sched, "wait"]);
    let out = native.stdout_text();
    assert!(
        out.contains("waitid WSTOPPED|WCONTINUED|WNOHANG = -1 ECHILD"),
        "{out}"
    );
}
