//! SCM_CREDENTIALS naming a child that is being reaped, sent from four threads at once
//! (gVisor's `UnixSocketPeerCredRaceTest.SendCredsRacesWithPeerReap`): every send succeeds,
//! finds the buffer full (EAGAIN) or, once the child is reaped, fails with ESRCH. The
//! senders loop until ESRCH, so a sandbox that accepted a reaped pid kept them spinning
//! forever; the run must finish within its timeout and print what Linux prints.
//!
//! Needs a built `runsc-rs`, `cc`, and root (naming another process takes CAP_SYS_ADMIN);
//! a missing piece prints `SKIPPED: reason`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use runsc_rs_tests::{assert_same_run, skip, Run};

/// Compiles `tests/programs/<name>.c` with threads; None (after printing SKIPPED) without cc.
fn program(name: &str) -> Option<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("programs/{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    match Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(out.to_string_lossy().into_owned()),
        _ => {
            skip(&format!("cannot build {name}.c with cc"));
            None
        }
    }
}

#[test]
fn scm_credentials_of_a_reaped_child_fail_with_esrch() {
    if !nix::unistd::geteuid().is_root() {
        return skip("naming another process in SCM_CREDENTIALS takes CAP_SYS_ADMIN (root)");
    }
    let Some(prog) = program("unix_cred_race") else {
        return;
    };
    let run = Run::new(&[prog.as_str(), "40"]).timeout(Duration::from_secs(90));
    let (_, sandbox) = assert_same_run(&run, &[]);
    assert_eq!(
        sandbox.stdout_text(),
        "senders ended every turn on ESRCH, unexpected errno none\n"
    );
}
