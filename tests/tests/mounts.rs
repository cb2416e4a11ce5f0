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

/// pivot_root(2) from a chroot onto a tmpfs: ENOTDIR, ENOENT, EBUSY and EINVAL checks, the
/// old root moved to put_old (and unmountable there), another process's cwd at the old root
/// following to the new one, and `pivot_root(".", ".")` then `umount2(".", MNT_DETACH)`;
/// MS_MOVE of a mount tree (EINVAL for a non-mount or out of a shared mount, ELOOP into
/// itself).
#[test]
fn pivot_root_matches_native() {
    assert_same_program(
        "pivot_root",
        &[],
        &[
            "pivot_root /new /new/old: 0",
            "ls /old: new plain",
            "cwd followed to the new root: 1",
            "pivot_root . .: 0",
            "umount2 . detach: 0",
            "stat file: 0",
            "move into its own tree: -1 ELOOP",
            "ls TMP/dest/sub: subfile",
            "move out of a shared mount: -1 EINVAL",
        ],
    );
}
