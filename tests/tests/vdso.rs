//! The vDSO (`tests/programs/vdso.c`): found through AT_SYSINFO_EHDR, its symbols looked up
//! by version as Go and musl look them up, every function agreeing with its system call as
//! natively, [vvar] and [vdso] in /proc/self/maps, [vvar] read-only, bad pointers giving
//! SIGSEGV; and clock_gettime no longer trapping into the sentry. The legacy vsyscall page
//! (`tests/programs/vsyscall.c`) on both platforms.

use runsc_rs_tests::{
    assert_same_program, assert_same_run, program_str, run_sandbox, skip, test_platform, Run,
};

#[test]
fn vdso_functions_agree_with_their_system_calls_as_natively() {
    assert_same_program(
        "vdso",
        &[],
        &[
            "AT_SYSINFO_EHDR: an ELF object with symbols, hashes and versions\n",
            "__vdso_clock_gettime@LINUX_2.6: found\n",
            "__vdso_getcpu@LINUX_2.6: found\n",
            "maps: [vvar] r--p, [vdso] r-xp at AT_SYSINFO_EHDR\n",
            "[vvar]: read-only\n",
            "CLOCK_MONOTONIC: agrees with the system call\n",
            "CLOCK_BOOTTIME: agrees with the system call\n",
            "getcpu: agrees with the system call\n",
            "bad pointers: SIGSEGV\n",
            "unknown clock: -EINVAL\n",
        ],
    );
}

/// Whether the host keeps time with an invariant TSC, which the sandbox's vDSO needs to
/// answer without a system call (elsewhere it makes the system call, as it should).
fn host_tsc_usable() -> Result<(), String> {
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    if source.trim() != "tsc" {
        return Err(format!(
            "the host clocksource is {:?}, not tsc",
            source.trim()
        ));
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for flag in ["constant_tsc", "nonstop_tsc"] {
        if !cpuinfo.split_whitespace().any(|w| w == flag) {
            return Err(format!("the host CPU lacks {flag}"));
        }
    }
    Ok(())
}

#[test]
fn clock_gettime_through_libc_does_not_trap() {
    if let Err(reason) = host_tsc_usable() {
        skip(&reason);
        return;
    }
    let Some(prog) = program_str("vdso") else {
        return;
    };
    let log = std::env::temp_dir().join(format!("runsc-rs-vdso-strace-{}.log", std::process::id()));
    let log_arg = log.to_str().expect("UTF-8 temp dir").to_owned();
    // The program sleeps 300 ms first: the sentry calibrates the TSC 20 ms after boot, and
    // until then the vDSO makes the system call.
    let sandbox = run_sandbox(
        &[&prog, "quiet", "1000"],
        &["--strace", "--debug-log", &log_arg],
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(sandbox.status, 0, "stderr:\n{}", sandbox.stderr_text());
    assert_eq!(sandbox.stdout_text(), "quiet: 1000 calls\n");
    let trace = format!("{}{logged}", sandbox.stderr_text());
    // strace works: the sleep and the write are there.
    for name in ["clock_nanosleep", "write", "exit_group"] {
        assert!(
            trace.contains(&format!("] {name}(")),
            "no strace line for {name}:\n{trace}"
        );
    }
    // Strace lines name the call followed by its arguments (the log also lists the host
    // calls the sentry may make, clock_gettime among them).
    let trapped = trace
        .lines()
        .filter(|l| l.contains("] clock_gettime("))
        .count();
    assert_eq!(
        trapped, 0,
        "clock_gettime trapped {trapped} times:\n{trace}"
    );
}

/// Calls of the legacy vsyscall page (time, gettimeofday, getcpu) answer as natively, and a
/// bad pointer or a jump into the middle of an entry is a SIGSEGV, on each platform (ptrace
/// once killed its stub with SIGSYS).
#[test]
fn vsyscall_page_calls_behave_as_natively_on_each_platform() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    if !maps.contains("[vsyscall]") {
        skip("the host has no vsyscall page (vsyscall=none)");
        return;
    }
    let Some(prog) = program_str("vsyscall") else {
        return;
    };
    let run = Run::new(&[&prog]);
    // `$RUNSC_RS_TEST_PLATFORM` chooses one; otherwise both.
    let platforms: &[&str] = if test_platform().is_some() {
        &[""]
    } else {
        &["ptrace", "systrap"]
    };
    for platform in platforms {
        let flags: &[&str] = if platform.is_empty() {
            &[]
        } else {
            &["--platform", platform]
        };
        let (native, _) = assert_same_run(&run, flags);
        let text = native.stdout_text();
        assert!(
            text.contains("time: agrees with the system call\n")
                && text.contains("time, bad pointer: killed by signal 11\n")
                && text.ends_with("done\n"),
            "{text}"
        );
    }
}
