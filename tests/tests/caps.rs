//! Capabilities, securebits and supplementary groups (issue 12): `tests/programs/caps.c`,
//! util-linux's `setpriv` and `su` run as root natively and in the sandbox, compared on
//! stdout and exit status.
//!
//! Both sides must start from the same capability sets, but a sandbox's root starts with
//! every capability while the host's root may lack some (containers drop a few). So every
//! run goes through `caps BOUNDING`, which first narrows the bounding, permitted and
//! effective sets to the bounding set the test process itself has natively, then runs its
//! checks or execs the program under test.
//!
//! Needs root with CAP_SETPCAP, CAP_SETUID, CAP_SETGID and the DAC capabilities, `cc`, and a
//! built `runsc-rs`; a missing piece prints `SKIPPED: reason`.

use std::path::Path;

use runsc_rs_tests::{assert_same, program_str, skip, Run};

/// A `/proc/self/status` field of the test process, parsed as hex (the capability sets).
fn own_caps(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The `caps` program and the native bounding set in hex; None after a skip.
fn setup() -> Option<(String, String)> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        skip("needs root: the checks compare what root may do natively and in the sandbox");
        return None;
    }
    let (Some(bounding), Some(effective)) = (own_caps("CapBnd:"), own_caps("CapEff:")) else {
        skip("cannot read the capability sets from /proc/self/status");
        return None;
    };
    // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_SETGID, CAP_SETUID, CAP_SETPCAP.
    let needed = (1 << 1) | (1 << 2) | (1 << 6) | (1 << 7) | (1 << 8);
    if effective & needed != needed {
        skip("root here lacks CAP_SETPCAP, CAP_SETUID, CAP_SETGID or the DAC capabilities");
        return None;
    }
    let caps = program_str("caps")?;
    Some((caps, format!("{bounding:016x}")))
}

#[test]
fn capget_capset_prctl_groups_and_setuid_transitions_match_native() {
    let Some((caps, bounding)) = setup() else {
        return;
    };
    let (native, _) = assert_same(&[&caps, &bounding]);
    // The run must have reached its end, not stopped early on both sides alike.
    let out = native.stdout_text();
    assert!(out.contains("[dac] exit 0"), "caps stopped early:\n{out}");
    assert!(out.contains("after exec: e=0000000000000400"), "{out}");
}

/// Runs `argv` after narrowing to the native bounding set, natively and in the sandbox.
fn assert_same_narrowed(argv: &[&str]) {
    let Some((caps, bounding)) = setup() else {
        return;
    };
    if !Path::new(argv[0]).is_file() {
        skip(&format!("{} is not installed", argv[0]));
        return;
    }
    let mut full = vec![caps.as_str(), bounding.as_str()];
    full.extend_from_slice(argv);
    runsc_rs_tests::assert_same_run(&Run::new(&full), &[]);
}

#[test]
fn setpriv_dump_matches_native() {
    assert_same_narrowed(&["/usr/bin/setpriv", "--dump"]);
}

#[test]
fn setpriv_to_nobody_matches_native() {
    assert_same_narrowed(&[
        "/usr/bin/setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/usr/bin/id",
    ]);
}

#[test]
fn setpriv_ambient_capability_survives_exec_as_nobody() {
    assert_same_narrowed(&[
        "/usr/bin/setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--init-groups",
        "--inh-caps=+net_bind_service",
        "--ambient-caps=+net_bind_service",
        "/usr/bin/setpriv",
        "--dump",
    ]);
}

/// Set-user-ID and set-group-ID programs (execve's effective IDs, AT_SECURE: the dynamic
/// loader drops `LD_LIBRARY_PATH`), a `nosuid`-free temp directory assumed on both sides, and
/// what a write does to such a file: another user's write clears both bits, root's (with
/// CAP_FSETID) keeps them.
const SETID_SCRIPT: &str = r#"
d=$(mktemp -d) || exit 9
chmod 755 "$d"
cp /usr/bin/id "$d/id"; chown 65534:65534 "$d/id"; chmod 6755 "$d/id"
setpriv --reuid=1000 --regid=1000 --clear-groups "$d/id"
cp /usr/bin/env "$d/env"; chmod 4755 "$d/env"
LD_LIBRARY_PATH=/nonexistent setpriv --reuid=1000 --regid=1000 --clear-groups "$d/env" | grep -c '^LD_LIBRARY_PATH='
LD_LIBRARY_PATH=/nonexistent "$d/env" | grep -c '^LD_LIBRARY_PATH='
echo x > "$d/f"; chmod 6777 "$d/f"
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo y >> '$d/f'"
stat -c %a "$d/f"
echo x > "$d/g"; chmod 6775 "$d/g"; echo y >> "$d/g"
stat -c %a "$d/g"
rm -rf "$d"
"#;

#[test]
fn set_id_exec_and_writes_that_clear_set_id_bits_match_native() {
    assert_same_narrowed(&["/bin/sh", "-c", SETID_SCRIPT]);
}

/// An anonymous pipe belongs to the user who made it (its pipefs inode's owner), as
/// `fstat` shows.
#[test]
fn a_pipe_belongs_to_its_creator_as_natively() {
    assert_same_narrowed(&[
        "/usr/bin/setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "/bin/sh",
        "-c",
        "echo | stat -L -c '%u %g %a %F' /proc/self/fd/0",
    ]);
}
