//! Mounts inside the sandbox (issue 12): programs in `tests/programs/` run natively (as root,
//! in a private mount namespace of their own) and in the sandbox, and both must print the
//! same.

use runsc_rs_tests::assert_same_program;

/// tmpfs `size=`, `nr_blocks=`, `nr_inodes=`, `mode=`, `uid=`, `gid=`: pages and inodes
/// counted against the limits (holes, short symlinks and directories take no pages, hard
/// links take inodes), partial writes and ENOSPC at the limit, all-or-nothing fallocate,
/// SIGBUS for a mapping's page past the limit, remounts changing limits, statfs and
/// mountinfo, bad options EINVAL.
#[test]
fn tmpfs_limits_match_native() {
    assert_same_program(
        "tmpfs_limits",
        &[],
        &[
            "pwrite at 3 pages - 3: 3",
            "mapping child: signal 7",
            "symlink 128 when full: -1 ENOSPC",
            "mountinfo: tmpfs rw,size=16k,nr_inodes=4,mode=750,uid=12,gid=34",
        ],
    );
}
