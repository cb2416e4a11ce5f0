//! CPU-time accounting compared with native Linux: getrusage (self, thread, children),
//! wait4/waitid rusage, times(), the CPU-time clocks, `/proc/self/stat` utime/cutime, and the
//! user time that bash's `time` and `/usr/bin/time` report. Busy loops spin on wall time, so
//! the checks are bands (the sandbox's user time is wall time in the application, native's is
//! scheduled CPU time), never exact values.

use std::path::Path;

use runsc_rs_tests::{assert_same, program_str, skip, Run};

#[test]
fn rusage_times_and_cpu_clocks_match_native() {
    let Some(prog) = program_str("cputime") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    assert_eq!(native.status, 0, "{}", native.stderr_text());
    let text = native.stdout_text();
    assert!(
        !text.contains("BAD"),
        "the native run fails its own bands:\n{text}"
    );
    for line in [
        "clk_tck 100\n",
        "rusage-self-utime ok\n",
        "wait4-rusage-utime ok\n",
        "children-include-grandchild ok\n",
        "res-process 0.000000001\n",
        "bad-clock -1 Invalid argument\n",
    ] {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}

/// The user time a timing tool printed on the last line of stderr, in seconds.
fn reported_user_time(stderr: &str) -> f64 {
    let last = stderr.lines().last().unwrap_or_default().trim();
    last.parse()
        .unwrap_or_else(|e| panic!("no time in {last:?} ({e}); stderr:\n{stderr}"))
}

/// A shell loop that runs about 0.3 s without system calls.
const BUSY_LOOP: &str = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";

#[test]
fn bash_time_builtin_reports_user_time() {
    if !Path::new("/bin/bash").exists() {
        skip("/bin/bash is not installed");
        return;
    }
    let script = format!("TIMEFORMAT=%U; time {{ {BUSY_LOOP}; }}");
    let run = Run::new(&["/bin/bash", "-c", &script]);
    for (name, out) in [("native", run.native()), ("sandbox", run.sandbox(&[]))] {
        assert_eq!(out.status, 0, "{name}: {}", out.stderr_text());
        let user = reported_user_time(&out.stderr_text());
        assert!((0.02..5.0).contains(&user), "{name}: user time {user}");
    }
}

#[test]
fn usr_bin_time_reports_the_childs_user_time() {
    if !Path::new("/usr/bin/time").exists() {
        skip("/usr/bin/time is not installed");
        return;
    }
    let run = Run::new(&["/usr/bin/time", "-f", "%U", "/bin/bash", "-c", BUSY_LOOP]);
    for (name, out) in [("native", run.native()), ("sandbox", run.sandbox(&[]))] {
        assert_eq!(out.status, 0, "{name}: {}", out.stderr_text());
        let user = reported_user_time(&out.stderr_text());
        assert!((0.02..5.0).contains(&user), "{name}: user time {user}");
    }
}
