//! Small system-call families compared with native Linux (issue 12): personality, the
//! vectored positional calls (preadv/pwritev and their *2 forms) with readahead and
//! sync_file_range, what an O_PATH descriptor refuses, mincore and the NUMA policy calls,
//! keyctl's session keyrings, the time left that select/pselect6/ppoll write back, kill of
//! a zombie, syslog, prctl's dumpable flag and memfd's F_SEAL_WRITE against shared mappings.
//! The program (`tests/programs/misc_calls.c`) prints one line per step; both runs must match.

use runsc_rs_tests::{assert_same_program, program_str, run_sandbox, skip};

/// Runs one section natively and in the sandbox; checks the native run itself shows
/// `expect` (so a broken program cannot hide a sandbox bug).
fn section(name: &str, expect: &[&str]) {
    assert_same_program("misc_calls", &[name], expect);
}

#[test]
fn personality_is_per_process_inherited_and_checked_as_natively() {
    section(
        "personality",
        &[
            "child set PER_BSD: 0\n",
            "grandchild personality: 6\n",
            "child query again: 262144\n",
            "parent unchanged: 0\n",
        ],
    );
}

#[test]
fn dumpable_flag_is_kept_inherited_and_reset_as_natively() {
    section(
        "dumpable",
        &[
            "dumpable now: 0\n",
            "child dumpable: 0\n",
            "dumpable again: 1\n",
            "set dumpable 2: -1 EINVAL\n",
            "dumpable after exec: 1\n",
            "dumpable after seteuid: 0\n",
            "dumpable after setuid to the same: 1\n",
        ],
    );
}

#[test]
fn write_seal_waits_for_every_writable_shared_mapping_as_natively() {
    section(
        "seals",
        &[
            "seal write, read-only shared mapping: -1 EBUSY\n",
            "seals after refusal: 0\n",
            "parent seal write, child still maps: -1 EBUSY\n",
            "child seal write after munmap: 0\n",
            "seals: 8\n",
            "shared writable mapping after seal: -1 EPERM\n",
        ],
    );
}

#[test]
fn vectored_positional_io_readahead_and_sync_file_range_match_native() {
    section(
        "vectored",
        &[
            "pwritev at 4: 20\n",
            "read: [][ello vectored world]\n",
            "offset after pwritev2 -1: 6\n",
            "preadv2 bad flag: -1 EOPNOTSUPP\n",
            "preadv2 -1 on pipe: 5\n",
            "readahead pipe: -1 EINVAL\n",
            "sync_file_range overflow: -1 EINVAL\n",
            "sync_file_range pipe: -1 ESPIPE\n",
        ],
    );
}

#[test]
fn o_path_descriptors_refuse_io_as_natively() {
    section(
        "opath",
        &[
            "preadv: -1 EBADF\n",
            "fchmod: -1 EBADF\n",
            "fsync: -1 EBADF\n",
            "ioctl FIONBIO: -1 EBADF\n",
            "fcntl F_SETFL: -1 EBADF\n",
            "fcntl F_GETFL has O_PATH: 1\n",
            "fstat size: 3\n",
        ],
    );
}

/// mincore and the NUMA calls; the policy checks assume one memory node, as the sandbox
/// has, so a multi-node host skips.
#[test]
fn mincore_and_numa_policies_match_native() {
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("node") && name[4..].parse::<u32>().is_ok()
                })
                .count()
        })
        .unwrap_or(1);
    if nodes > 1 {
        skip("the host has several NUMA nodes; the sandbox presents one");
        return;
    }
    section(
        "memory",
        &[
            "resident of 4: 4\n",
            "mincore huge length: -1 ENOMEM\n",
            "mincore over a hole: -1 ENOMEM\n",
            "after INTERLEAVE|STATIC: mode 32771 mask 0x1\n",
            "child inherits: mode 2 mask 0x1\n",
            "after PREFERRED empty: mode 4 mask 0\n",
            "vma after mbind: mode 1 mask 0x1\n",
            "rest of vma: mode 0 mask 0\n",
            "mbind over a hole: -1 EFAULT\n",
        ],
    );
}

#[test]
fn session_keyrings_match_native() {
    section(
        "keys",
        &[
            ";3f030000;_ses (length ",
            "child: unsearchable name makes a new ring: 1\n",
            ";3f1b0000;misc_calls_ring (length ",
            "child rejoined the searchable ring: 1\n",
            "child describes locked ring: -1 EACCES\n",
        ],
    );
}

/// The sandbox's kernel log is empty; the host's is not comparable, so this runs in the
/// sandbox only.
#[test]
fn syslog_reads_an_empty_log() {
    let Some(prog) = program_str("misc_calls") else {
        return;
    };
    let out = run_sandbox(&[prog.as_str(), "syslog"], &[]);
    assert_eq!(out.status, 0, "{}", out.stderr_text());
    assert_eq!(
        out.stdout_text(),
        "SIZE_BUFFER: 131072\nREAD_ALL: 0\nREAD_ALL null: -1 EINVAL\n\
         READ_ALL negative: -1 EINVAL\ndone\n"
    );
}

/// select, pselect6 and ppoll write the time left back (0 after a full timeout), and a
/// zombie can still be signalled without its exit status changing.
#[test]
fn wait_timeouts_and_zombie_kills_match_native() {
    section(
        "waits",
        &[
            "select left: 0.000000\n",
            "pselect left: 0.000000000\n",
            "ppoll left: 0.000000000\n",
            "kill zombie: 0\n",
            "zombie exit status kept: 1\n",
        ],
    );
}

/// `/proc/sys/kernel/keys/maxkeys` (`tests/programs/keys_quota.c`): 200 at boot, root may
/// lower it (not below 0), and a user other than root then owns at most that many live
/// keyrings (EDQUOT past it) while root is not held to it. Sandbox only: natively it would
/// change the host's setting.
#[test]
fn maxkeys_limits_the_keyrings_a_user_owns() {
    let Some(prog) = program_str("keys_quota") else {
        return;
    };
    let out = run_sandbox(&[prog.as_str(), "sandbox"], &[]);
    assert_eq!(out.status, 0, "{}", out.stderr_text());
    assert_eq!(
        out.stdout_text(),
        "maxkeys: 200\nwrite -1: EINVAL\nwrite 2: ok\nmaxkeys: 2\nuser join 1: ok\n\
         user join 2: ok\nuser join 3: EDQUOT\nroot join past it: ok\ndone\n"
    );
}
