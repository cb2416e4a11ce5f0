//! Mounts inside the sandbox (issue 12): programs in `tests/programs/` run natively (as root,
//! in a private mount namespace of their own) and in the sandbox, and both must print the
//! same.

use std::sync::{Mutex, MutexGuard, PoisonError};

use runsc_rs_tests::assert_same_program;

/// Held by every test here for its whole run: the native runs share the host's peer group ids
/// (one allocator for every mount namespace, which hands out the lowest free id), and
/// `mount_propagation` checks which group a new slave's master is by its id, so another
/// test's native mounts made meanwhile would change what Linux prints.
static NATIVE_MOUNTS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    NATIVE_MOUNTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// tmpfs `size=`, `nr_blocks=`, `nr_inodes=`, `mode=`, `uid=`, `gid=`: pages and inodes
/// counted against the limits (holes, short symlinks and directories take no pages, hard
/// links take inodes), partial writes and ENOSPC at the limit, all-or-nothing fallocate,
/// SIGBUS for a mapping's page past the limit, remounts changing limits, statfs and
/// mountinfo, bad options EINVAL.
#[test]
fn tmpfs_limits_match_native() {
    let _serial = one_at_a_time();
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
    let _serial = one_at_a_time();
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

/// The new mount API: fsopen/fsconfig/fsmount (parameter errors at set time, EBUSY twice,
/// options and statfs of a detached tmpfs, files made through its fd), move_mount attaching
/// a detached tree and a detached mount onto another (only a tree's root leaves it, ELOOP
/// into itself), open_tree plain and cloned with and without AT_RECURSIVE (EINVAL for an
/// unmounted mount), mount_setattr's checks, read-only and atime changes, and mountinfo.
#[test]
fn mount_api_matches_native() {
    let _serial = one_at_a_time();
    assert_same_program(
        "mount_api",
        &[],
        &[
            "bad size: -1 EINVAL",
            "statfs files 321 nosuid 1 nodev 1 rdonly 0",
            "move a detached tree's submount: -1 EINVAL",
            "submount file after attach: ok",
            "clone sub/inner: -1 ENOENT",
            "clone's submount file after attach: ok",
            "create on the read-only submount: -1 EROFS",
            "mountinfo TMP/a/sub ro,noexec,relatime tmpfs src2 rw,mode=700",
            "clone an unmounted mount: -1 EINVAL",
        ],
    );
}

/// Mount propagation: MS_SHARED peer groups (distinct `shared:N`, the same for a bind's
/// peer), mounts and unmounts reaching peers, MS_SLAVE (`master:N`, mounts reach the slave
/// and not back), a bind of a slave, MS_PRIVATE, and the EINVAL checks.
#[test]
fn mount_propagation_matches_native() {
    let _serial = one_at_a_time();
    assert_same_program(
        "mount_propagation",
        &[],
        &[
            "b: 1 mounts, shared:B",
            "c: 1 mounts, shared:A",
            "c/x: 1 mounts, shared:C",
            "c/x: 0 mounts, -",
            "d/x: 1 mounts, master:C",
            "a/y: 0 mounts, -",
            "e: 1 mounts, master:A",
            "propagation of a non-mount: -1 EINVAL",
        ],
    );
}

/// What a process sees of mounts: mountinfo, mounts, fd links and maps relative to its chroot
/// (mounts outside it left out), POLLPRI|POLLERR on an open mountinfo after a mount, remount
/// and umount (consumed by the poll), and MNT_LOCKED mounts in a new user and mount
/// namespace: EINVAL for an umount alone and a plain bind over them, EPERM for clearing a
/// locked flag (of a bind of them too), a recursive bind taking them along, and pivot_root
/// refusing a locked new root.
#[test]
fn mount_views_match_native() {
    let _serial = one_at_a_time();
    assert_same_program(
        "mount_views",
        &[],
        &[
            "chroot mountinfo: 2 lines, 0 naming the chroot's path",
            "fd link in chroot: /file",
            "chroot maps: 0 naming the chroot's path, /file shown: 1",
            "poll after mount: 0xa",
            "poll again: 0",
            "umount a locked mount: -1 EINVAL",
            "clear its read-only flag: -1 EPERM",
            "plain bind over locked mounts: -1 EINVAL",
            "b/sub is a mount: 1",
            "clear the bind's read-only flag: -1 EPERM",
            "pivot_root onto a locked mount: -1 EINVAL",
        ],
    );
}

/// Propagation across mount namespaces and down propagation trees: peers in a namespace
/// made by unshare(CLONE_NEWNS) (mounts and unmounts reach both ways), slaves in the
/// namespace of a new user namespace (mounts reach it and not back), a shared slave passing
/// mounts on to its peers and slaves (and their unmount), peers stacked at one place doubling
/// with each bind there and going together, a recursive bind onto a shared mount reaching its
/// peers with its submounts, a propagated tree's locked submounts staying connected after a
/// lazy umount in the user namespace, and EACCES for mprotect(PROT_EXEC) of a file on a noexec
/// mount.
#[test]
fn mount_propagation_across_namespaces_matches_native() {
    let _serial = one_at_a_time();
    assert_same_program(
        "mount_propagation_ns",
        &[],
        &[
            "child a/x: 1 mounts shared",
            "parent a/x: 0 mounts",
            "parent sees the child's file: 0",
            "userns child a/x: 1 mounts slave",
            "parent sees the child's file: -1 ENOENT",
            "tree c/z: 1 mounts shared slave",
            "tree d/z: 1 mounts slave",
            "stack e/s: 8 mounts shared",
            "stack e/s: 1 mounts shared",
            "rbind c/r/sub: 1 mounts shared slave",
            // A tree made private after propagating into a user namespace leaves no slaves
            // there; lazily unmounted whole, its locked submount stays connected.
            "locked h/dst/gc: 1 mounts\n",
            "locked: umount the locked submount alone: -1 EINVAL",
            "locked: umount the tree: 0",
            "locked: file the locked submount covers: -1 ENOENT",
            "locked: file the own mount covered: 0",
            "mprotect exec on noexec: -1 EACCES",
        ],
    );
}

/// fsconfig's read-only flag: before FSCONFIG_CMD_CREATE it makes the mount read-only as
/// natively; after fsmount, FSCONFIG_CMD_RECONFIGURE makes it read-only natively and the
/// sandbox refuses it (EOPNOTSUPP) rather than succeed without doing it.
#[test]
fn fsconfig_read_only_is_applied_or_refused() {
    let _serial = one_at_a_time();
    if !nix::unistd::geteuid().is_root() {
        return runsc_rs_tests::skip("needs root (fsopen)");
    }
    let Some(prog) = runsc_rs_tests::program_str("fsconfig_ro") else {
        return;
    };
    let native = runsc_rs_tests::run_native(&[&prog]);
    assert_eq!(
        native.stdout_text(),
        "ro before create: read-only yes\nreconfigure ro after fsmount: ok, read-only yes\n"
    );
    let sandbox = runsc_rs_tests::run_sandbox(&[&prog], &[]);
    assert_eq!(
        sandbox.stdout_text(),
        "ro before create: read-only yes\n\
         reconfigure ro after fsmount: Operation not supported, read-only no\n"
    );
    assert_eq!(sandbox.status, 0);
}

/// A lazy umount in a user namespace's mount namespace leaves the locked submounts of a
/// recursive bind connected to the unmounted bind there (reached through a descriptor open
/// on it), and changes nothing in a copy of that namespace made earlier by the same user
/// namespace, which mounts over the locked submount and sees only its own mount there.
#[test]
fn lazy_umount_connects_locked_mounts_only_where_unmounted() {
    let _serial = one_at_a_time();
    assert_same_program(
        "mount_connected",
        &[],
        &[
            "lazy umount of b: 0\n",
            "copy: b/sub/locked before mounting over: 0\n",
            "copy: mount over b/sub: 0\n",
            "copy: b/sub/locked after mounting over: -1 ENOENT\n",
            "copy: b/sub/new: 0\n",
            "through the open b: sub/locked: 0\n",
            "through the open b: sub/new: -1 ENOENT\n",
            "copy child: 0\n",
            "user namespace child: 0\n",
        ],
    );
}
