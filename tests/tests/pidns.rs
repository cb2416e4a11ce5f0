//! PID namespaces made by the guest: `clone(CLONE_NEWPID)` natively and in the sandbox must
//! print the same (the new init is PID 1 with parent 0, its children count from 2, the parent
//! sees it under its own number). Needs root natively (CAP_SYS_ADMIN for CLONE_NEWPID).

use runsc_rs_tests::{assert_same, program_str, skip};

#[test]
fn clone_newpid_makes_the_child_an_init() {
    if !nix::unistd::geteuid().is_root() {
        return skip("CLONE_NEWPID needs root natively");
    }
    let Some(p) = program_str("pidns") else {
        return;
    };
    let (native, _) = assert_same(&[&p]);
    let out = native.stdout_text();
    assert!(out.contains("init: pid=1 ppid=0\n"), "{out}");
    assert!(out.contains("child: pid=2 ppid=1\n"), "{out}");
    assert!(
        out.contains("init: fork returned 2, waited 2, status 3\n"),
        "{out}"
    );
}
