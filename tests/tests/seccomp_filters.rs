//! seccomp filters the application installs (seccomp(2), `prctl(PR_SET_SECCOMP)`,
//! `PR_SET_NO_NEW_PRIVS`): `tests/programs/seccomp.c` runs each action (ERRNO, TRAP with its
//! siginfo, KILL_PROCESS, KILL_THREAD, strict mode), TSYNC, the refusals of bad programs and
//! flags, and the inheritance across fork and exec (with /proc/self/status), natively and in
//! the sandbox, compared on stdout and exit status.

use runsc_rs_tests::{assert_same, program_str};

#[test]
fn seccomp_filters_match_native() {
    let Some(prog) = program_str("seccomp") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    // Every case ran to its end, on both sides alike.
    let out = native.stdout_text();
    for case in [
        "[nnp] exit 0",
        "[errno] exit 0",
        "[trap] exit 0",
        "[kill_process] killed by signal 31",
        "[kill_thread] killed by signal 31",
        "[strict] killed by signal 9",
        "[tsync] exit 0",
        "[refusals] exit 0",
        "[exec'd child] exit 0",
    ] {
        assert!(out.contains(case), "missing `{case}`:\n{out}");
    }
}
