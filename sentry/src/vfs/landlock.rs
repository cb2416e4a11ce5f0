//! Landlock's filesystem checks (landlock(7)) on the sentry's own paths: the hooks that
//! open, exec, truncate, ioctl and the directory operations call with the caller's
//! credentials. The domain itself is [`crate::auth::landlock`]; this module gathers the
//! identities of a file and its ancestors (crossing mounts, up to the root) that its rules
//! are checked against.
//!
//! Every check returns at once for credentials without a domain: one branch.

use crate::abi::Errno;
use crate::auth::landlock::{fs, Domain};
use crate::auth::Creds;

use super::{Dentry, FileType, NewNode, OpenFile};

/// The identities of `d` and its ancestors, nearest first.
fn ancestry(d: &Dentry) -> Vec<(u64, u64)> {
    std::iter::successors(Some(d), |d| d.parent.as_deref())
        .filter_map(|d| d.inode.ident().ok())
        .collect()
}

/// The domain that restricts filesystem access, if any.
fn fs_domain(creds: &Creds) -> Option<&Domain> {
    creds.landlock.as_deref().filter(|d| d.handled_fs() != 0)
}

/// EACCES unless the caller's domain grants `access` on `d`.
///
/// # Errors
/// EACCES.
pub fn check(creds: &Creds, d: &Dentry, access: u64) -> Result<(), Errno> {
    match fs_domain(creds) {
        Some(dom) if dom.denied_fs(access, &ancestry(d)) != 0 => Err(Errno::EACCES),
        _ => Ok(()),
    }
}

/// The right that making a node of kind `node` in a directory takes.
pub fn make_right(node: &NewNode) -> u64 {
    match node {
        NewNode::Regular => fs::MAKE_REG,
        NewNode::Directory => fs::MAKE_DIR,
        NewNode::Symlink(_) => fs::MAKE_SYM,
        NewNode::Fifo => fs::MAKE_FIFO,
        NewNode::Socket => fs::MAKE_SOCK,
        NewNode::Device { block: false, .. } => fs::MAKE_CHAR,
        NewNode::Device { block: true, .. } => fs::MAKE_BLOCK,
    }
}

/// EACCES unless the domain lets the caller make a node of kind `node` in `dir`.
///
/// # Errors
/// EACCES.
pub fn check_make(creds: &Creds, dir: &Dentry, node: &NewNode) -> Result<(), Errno> {
    check(creds, dir, make_right(node))
}

/// The rights that making or removing a file of type `kind` takes in its directory.
fn type_rights(kind: FileType) -> (u64, u64) {
    match kind {
        FileType::Directory => (fs::MAKE_DIR, fs::REMOVE_DIR),
        FileType::Symlink => (fs::MAKE_SYM, fs::REMOVE_FILE),
        FileType::Fifo => (fs::MAKE_FIFO, fs::REMOVE_FILE),
        FileType::Socket => (fs::MAKE_SOCK, fs::REMOVE_FILE),
        FileType::CharDevice => (fs::MAKE_CHAR, fs::REMOVE_FILE),
        FileType::BlockDevice => (fs::MAKE_BLOCK, fs::REMOVE_FILE),
        _ => (fs::MAKE_REG, fs::REMOVE_FILE),
    }
}

/// EACCES unless the domain lets the caller remove `victim` from `dir`.
///
/// # Errors
/// EACCES; the victim's type lookup errors.
pub fn check_remove(creds: &Creds, dir: &Dentry, victim: &Dentry) -> Result<(), Errno> {
    if fs_domain(creds).is_none() {
        return Ok(());
    }
    check(creds, dir, type_rights(victim.inode.file_type()?).1)
}

/// Checks an open of `d` (of type `kind`) with `flags`, as Linux's `hook_file_open`: the
/// read, write and directory-read rights the open asks for (and truncate for O_TRUNC).
///
/// # Errors
/// EACCES.
pub fn check_open(creds: &Creds, d: &Dentry, kind: FileType, flags: u32) -> Result<(), Errno> {
    if fs_domain(creds).is_none() {
        return Ok(());
    }
    let acc = flags & libc::O_ACCMODE as u32;
    let reads = acc != libc::O_WRONLY as u32;
    let writes = acc != libc::O_RDONLY as u32;
    let mut access = 0;
    if kind == FileType::Directory {
        if reads {
            access |= fs::READ_DIR;
        }
    } else {
        if reads {
            access |= fs::READ_FILE;
        }
        if writes {
            access |= fs::WRITE_FILE;
        }
    }
    if flags & libc::O_TRUNC as u32 != 0 && kind == FileType::Regular {
        access |= fs::TRUNCATE;
    }
    check(creds, d, access)
}

/// Records on a description just opened by path the rights its later calls need and the
/// opener's domain denies (truncate of a regular file, ioctl on a device), as Linux keeps
/// them on the file at open time.
pub fn keep_denied(creds: &Creds, f: &OpenFile) {
    let (Some(dom), Some(d)) = (fs_domain(creds), f.dentry.as_deref()) else {
        return;
    };
    let kept = match d.inode.file_type() {
        Ok(FileType::Regular) => fs::TRUNCATE,
        Ok(FileType::CharDevice | FileType::BlockDevice) => fs::IOCTL_DEV,
        _ => return,
    };
    f.set_landlock_denied(dom.denied_fs(kept, &ancestry(d)));
}

/// EACCES if the description's opener was denied truncating it.
///
/// # Errors
/// EACCES.
pub fn check_ftruncate(f: &OpenFile) -> Result<(), Errno> {
    if f.landlock_denied() & fs::TRUNCATE != 0 {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// The ioctl commands Landlock never restricts (those the VFS answers for every file).
const ALWAYS_ALLOWED_IOCTLS: &[u64] = &[
    libc::FIOCLEX,
    libc::FIONCLEX,
    libc::FIONBIO,
    libc::FIOASYNC,
    0x5460,      // FIOQSIZE
    0xC004_5877, // FIFREEZE
    0xC004_5878, // FITHAW
    0xC020_660B, // FS_IOC_FIEMAP
    2,           // FIGETBSZ
    0x4004_9409, // FICLONE
    0x4020_940D, // FICLONERANGE
    0xC018_9436, // FIDEDUPERANGE
    0x8011_1500, // FS_IOC_GETFSUUID
    0x8081_1501, // FS_IOC_GETFSSYSFSPATH
];

/// EACCES for an ioctl `cmd` on a device whose opener was denied `LANDLOCK_ACCESS_FS_IOCTL_DEV`.
///
/// # Errors
/// EACCES.
pub fn check_ioctl(f: &OpenFile, cmd: u64) -> Result<(), Errno> {
    if f.landlock_denied() & fs::IOCTL_DEV != 0 && !ALWAYS_ALLOWED_IOCTLS.contains(&cmd) {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// Checks a rename (`removable`) or link of `old` in `old_dir` to `new_name` in `new_dir`
/// (`target`: the file it replaces or, with `exchange`, swaps with), as Linux's
/// `current_check_refer_path`: the remove and make rights in each directory; moving to
/// another directory also takes [`fs::REFER`] on both sides and must not give the file
/// rights it did not have where it was.
///
/// # Errors
/// EACCES for a missing make or remove right; EXDEV for a refused reparenting.
pub fn check_refer(
    creds: &Creds,
    old_dir: &Dentry,
    old: &Dentry,
    new_dir: &Dentry,
    target: Option<&Dentry>,
    removable: bool,
    exchange: bool,
) -> Result<(), Errno> {
    let Some(dom) = fs_domain(creds) else {
        return Ok(());
    };
    let (old_make, old_remove) = type_rights(old.inode.file_type()?);
    let target_rights = match target {
        Some(t) => Some(type_rights(t.inode.file_type()?)),
        None => None,
    };
    let mut to_old_dir = match (exchange, target_rights) {
        (true, Some((make, _))) => make,
        _ => 0,
    };
    let mut to_new_dir = old_make;
    if removable {
        to_old_dir |= old_remove;
        to_new_dir |= target_rights.map_or(0, |(_, remove)| remove);
    }
    let old_path = ancestry(old_dir);
    let new_path = ancestry(new_dir);
    if old_path.first() == new_path.first() {
        return match dom.denied_fs(to_old_dir | to_new_dir, &new_path) {
            0 => Ok(()),
            _ => Err(Errno::EACCES),
        };
    }
    let denied = dom.denied_fs(to_old_dir | fs::REFER, &old_path)
        | dom.denied_fs(to_new_dir | fs::REFER, &new_path);
    if denied & !fs::REFER != 0 {
        return Err(Errno::EACCES);
    }
    let with_self = |d: &Dentry, dir_path: &[(u64, u64)]| {
        let mut p: Vec<(u64, u64)> = d.inode.ident().ok().into_iter().collect();
        p.extend_from_slice(dir_path);
        p
    };
    let gains = dom.reparent_gains(&with_self(old, &old_path), &new_path)
        || (exchange
            && target.is_some_and(|t| dom.reparent_gains(&with_self(t, &new_path), &old_path)));
    if denied != 0 || gains {
        return Err(Errno::EXDEV);
    }
    Ok(())
}
