//! Landlock (landlock(7)): `tests/programs/landlock.c` restricts a child to a small policy
//! (/usr readable and executable, a scratch directory of its own writable, the rest denied),
//! checks the refusals of bad rules, what the domain allows in the child, a forked
//! grandchild and an exec'd program, and a second layer; natively and in the sandbox,
//! compared on stdout and exit status.

use runsc_rs_tests::{assert_same, program_str};

#[test]
fn landlock_policy_matches_native() {
    let Some(prog) = program_str("landlock") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let out = native.stdout_text();
    if out.contains("abi >= 3: 0") {
        println!("SKIPPED: the host kernel offers no Landlock ABI 3");
        return;
    }
    for line in [
        "-- restricted\nusr readdir: 0\nusr write: EACCES\noutside read: EACCES",
        "-- forked child\nusr readdir: 0\nusr write: EACCES\noutside read: EACCES",
        "-- exec'd program\nusr readdir: 0\nusr write: EACCES\noutside read: EACCES",
        "scratch create: 0",
        "rename out of scratch: EACCES",
        "exec outside: EACCES",
        "layer 2 scratch write: EACCES",
        "restricted child exit 0",
        "parent outside read: 0",
    ] {
        assert!(out.contains(line), "missing `{line}`:\n{out}");
    }
}
