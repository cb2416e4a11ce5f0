//! File attributes: mode (chmod family, umask), owner (chown family), timestamps (utimensat,
//! futimesat, utimes) and size (truncate, ftruncate, fallocate).

use std::sync::Arc;

use super::path::{
    check_writable_mount, path_at, Target, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW,
};
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult, Timespec, Timeval};
use crate::auth::cap;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::file::SECURITY_CAPABILITY;
use crate::vfs::inode::{capable_wrt_owner, may_access_inode, may_chown, TimeSet};
use crate::vfs::inotify;
use crate::vfs::{Dentry, FileType, SetAttr, Stat};

fn setattr(d: &Dentry, a: SetAttr) -> SysResult {
    check_writable_mount(d)?;
    d.inode.setattr(&a)?;
    inotify::attr_changed(d, &a);
    Ok(0)
}

fn fd_dentry(t: &Task, fd: Fd) -> Result<Arc<Dentry>, Errno> {
    t.fds.get_io(fd.0)?.dentry.clone().ok_or(Errno::EPERM)
}

/// chmod(2)
pub fn chmod(t: &mut Task, path: PathArg, mode: u32) -> SysResult {
    fchmodat(t, Fd(AT_FDCWD), path, mode)
}

/// fchmod(2)
pub fn fchmod(t: &mut Task, fd: Fd, mode: u32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    if let (None, crate::vfs::FileKind::Socket(s)) = (&f.dentry, f.kind()) {
        // A socket's inode (sockfs): its owner, or CAP_FOWNER, may change its mode.
        let st = s.stat()?;
        if t.creds.fsuid != st.uid && !capable_wrt_owner(&t.creds, &st, cap::FOWNER) {
            return Err(Errno::EPERM);
        }
        s.set_mode(mode & 0o7777)?;
        return Ok(0);
    }
    let d = fd_dentry(t, fd)?;
    setattr(&d, new_mode(t, &d, mode)?)
}

/// fchmodat(2)
pub fn fchmodat(t: &mut Task, dirfd: Fd, path: PathArg, mode: u32) -> SysResult {
    let d = path_at(t, dirfd, path, 0)?.dentry()?;
    setattr(&d, new_mode(t, &d, mode)?)
}

/// fchmodat2(2): fchmodat with flags. AT_SYMLINK_NOFOLLOW on a symlink reaches the link
/// itself, whose mode Linux never changes (EOPNOTSUPP, after the read-only mount check as
/// chmod_common does it); AT_EMPTY_PATH changes the file `dirfd` refers to.
pub fn fchmodat2(t: &mut Task, dirfd: Fd, path: PathArg, mode: u32, flags: Flags) -> SysResult {
    if flags.0 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = match path_at(t, dirfd, path, flags.0)? {
        Target::Path(d) => d,
        // An fd without a dentry (a socket): its own inode, as fchmod(2).
        Target::File(_) => return fchmod(t, dirfd, mode),
    };
    if FileType::from_mode(d.inode.stat()?.mode) == FileType::Symlink {
        check_writable_mount(&d)?;
        return Err(Errno::EOPNOTSUPP);
    }
    setattr(&d, new_mode(t, &d, mode)?)
}

/// The change of mode chmod(2) asks for on `d`, as setattr_prepare allows it: only the
/// owner or a holder of CAP_FOWNER (else EPERM), and the set-group-ID bit only for a
/// member of the file's group or a holder of CAP_FSETID (else it is dropped silently).
fn new_mode(t: &Task, d: &Dentry, mode: u32) -> Result<SetAttr, Errno> {
    let st = d.inode.stat()?;
    if t.creds.fsuid != st.uid && !capable_wrt_owner(&t.creds, &st, cap::FOWNER) {
        return Err(Errno::EPERM);
    }
    let mut mode = mode & 0o7777;
    if mode & libc::S_ISGID != 0
        && !t.creds.in_group(st.gid)
        && !capable_wrt_owner(&t.creds, &st, cap::FSETID)
    {
        mode &= !libc::S_ISGID;
    }
    Ok(SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    })
}

/// The kernel ID of chown(2)'s `id` in the caller's user namespace (None: -1, unchanged).
///
/// # Errors
/// EINVAL when the caller's namespace does not map `id` (chown_common's make_kuid).
fn kernel_owner(t: &Task, id: u32, gid: bool) -> Result<Option<u32>, Errno> {
    if id == u32::MAX {
        return Ok(None);
    }
    t.creds
        .user_ns
        .to_kernel(id, gid)
        .map(Some)
        .ok_or(Errno::EINVAL)
}

/// The change of owner chown(2) asks for on `d` (`uid` and `gid` as the caller's user
/// namespace names them); EINVAL for an ID it does not map, EPERM unless the caller may
/// make the change.
fn owner(t: &Task, st: &Stat, uid: u32, gid: u32) -> Result<SetAttr, Errno> {
    let uid = kernel_owner(t, uid, false)?;
    let gid = kernel_owner(t, gid, true)?;
    if !may_chown(st, &t.creds, uid, gid) {
        return Err(Errno::EPERM);
    }
    // chown_common: a file that is not a directory loses its set-user-ID bit, and its
    // set-group-ID bit when group-executable (or when the caller is neither in its group
    // nor holds CAP_FSETID), whoever changes the owner.
    let mut mode = None;
    if FileType::from_mode(st.mode) != FileType::Directory {
        let mut m = st.mode & 0o7777;
        m &= !libc::S_ISUID;
        if m & libc::S_ISGID != 0
            && (m & libc::S_IXGRP != 0
                || (!t.creds.in_group(st.gid) && !capable_wrt_owner(&t.creds, st, cap::FSETID)))
        {
            m &= !libc::S_ISGID;
        }
        mode = (m != st.mode & 0o7777).then_some(m);
    }
    Ok(SetAttr {
        uid,
        gid,
        mode,
        ..SetAttr::default()
    })
}

/// chown(2) of `d`: the new owner, then (for a file that is not a directory) the file
/// capabilities go, as the security module's inode_killpriv removes them.
fn change_owner(t: &Task, d: &Dentry, uid: u32, gid: u32) -> SysResult {
    let a = owner(t, &d.inode.stat()?, uid, gid)?;
    setattr(d, a)?;
    if d.inode.file_type()? != FileType::Directory && d.inode.getxattr(SECURITY_CAPABILITY).is_ok()
    {
        d.inode.removexattr(SECURITY_CAPABILITY)?;
    }
    Ok(0)
}

/// chown(2)
pub fn chown(t: &mut Task, path: PathArg, uid: u32, gid: u32) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    change_owner(t, &d, uid, gid)
}

/// lchown(2)
pub fn lchown(t: &mut Task, path: PathArg, uid: u32, gid: u32) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, AT_SYMLINK_NOFOLLOW)?.dentry()?;
    change_owner(t, &d, uid, gid)
}

/// fchown(2)
pub fn fchown(t: &mut Task, fd: Fd, uid: u32, gid: u32) -> SysResult {
    let f = t.fds.get_io(fd.0)?;
    if let (None, crate::vfs::FileKind::Pipe(p)) = (&f.dentry, f.kind()) {
        // An anonymous pipe's pipefs inode has an owner too, with the same rules.
        let st = p.stat()?;
        let a = owner(t, &st, uid, gid)?;
        p.set_owner(a.uid.unwrap_or(st.uid), a.gid.unwrap_or(st.gid));
        return Ok(0);
    }
    let d = fd_dentry(t, fd)?;
    change_owner(t, &d, uid, gid)
}

/// fchownat(2)
pub fn fchownat(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    uid: u32,
    gid: u32,
    flags: Flags,
) -> SysResult {
    if flags.0 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = path_at(t, dirfd, path, flags.0)?.dentry()?;
    change_owner(t, &d, uid, gid)
}

fn time_of(ts: Timespec) -> Result<Option<TimeSet>, Errno> {
    match ts.tv_nsec {
        libc::UTIME_OMIT => Ok(None),
        libc::UTIME_NOW => Ok(Some(TimeSet::Now)),
        n if (0..1_000_000_000).contains(&n) => Ok(Some(TimeSet::At(ts.tv_sec, n))),
        _ => Err(Errno::EINVAL),
    }
}

fn set_times(
    t: &Task,
    dirfd: Fd,
    path: Option<PathArg>,
    times: [Option<TimeSet>; 2],
    flags: u64,
) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = match path {
        None => {
            if dirfd.0 == AT_FDCWD {
                return Err(Errno::EFAULT);
            }
            fd_dentry(t, dirfd)?
        }
        Some(p) => path_at(t, dirfd, p, flags)?.dentry()?,
    };
    check_writable_mount(&d)?;
    may_set_times(t, &d, times)?;
    setattr(
        &d,
        SetAttr {
            atime: times[0],
            mtime: times[1],
            ..SetAttr::default()
        },
    )
}

/// Whether the caller may change `d`'s times so (Linux's may_setattr and setattr_prepare):
/// setting both to now takes ownership, CAP_FOWNER or write permission (else EACCES); giving
/// a time takes ownership or CAP_FOWNER (else EPERM).
fn may_set_times(t: &Task, d: &Dentry, times: [Option<TimeSet>; 2]) -> Result<(), Errno> {
    let st = d.inode.stat()?;
    if t.creds.fsuid == st.uid || capable_wrt_owner(&t.creds, &st, cap::FOWNER) {
        return Ok(());
    }
    if times.iter().any(|x| matches!(x, Some(TimeSet::At(..)))) {
        return Err(Errno::EPERM);
    }
    let touch = times.iter().all(|x| matches!(x, Some(TimeSet::Now)));
    if touch && !may_access_inode(d.inode.as_ref(), &st, &t.creds, 2, false) {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// utimensat(2)
pub fn utimensat(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    times: UserAddr,
    flags: Flags,
) -> SysResult {
    let ts = if times.is_null() {
        [Some(TimeSet::Now); 2]
    } else {
        let v: Vec<Timespec> = t.mm.read_slice(times, 2)?;
        if v.iter().all(|ts| ts.tv_nsec == libc::UTIME_OMIT) {
            // Nothing to change: Linux looks at neither the path nor the flags.
            return Ok(0);
        }
        [time_of(v[0])?, time_of(v[1])?]
    };
    let path = (!path.0.is_null()).then_some(path);
    set_times(t, dirfd, path, ts, flags.0)
}

/// futimesat(2)
pub fn futimesat(t: &mut Task, dirfd: Fd, path: PathArg, times: UserAddr) -> SysResult {
    let ts = if times.is_null() {
        [Some(TimeSet::Now); 2]
    } else {
        let v: Vec<Timeval> = t.mm.read_slice(times, 2)?;
        let conv = |tv: Timeval| {
            if !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(Errno::EINVAL);
            }
            Ok(Some(TimeSet::At(tv.tv_sec, tv.tv_usec * 1000)))
        };
        [conv(v[0])?, conv(v[1])?]
    };
    let path = (!path.0.is_null()).then_some(path);
    set_times(t, dirfd, path, ts, 0)
}

/// utime(2): `struct utimbuf` holds whole seconds (access, then modification); NULL sets
/// both to now.
pub fn utime(t: &mut Task, path: PathArg, times: UserAddr) -> SysResult {
    let ts = if times.is_null() {
        [Some(TimeSet::Now); 2]
    } else {
        let v: Vec<i64> = t.mm.read_slice(times, 2)?;
        [Some(TimeSet::At(v[0], 0)), Some(TimeSet::At(v[1], 0))]
    };
    set_times(t, Fd(AT_FDCWD), Some(path), ts, 0)
}

/// utimes(2)
pub fn utimes(t: &mut Task, path: PathArg, times: UserAddr) -> SysResult {
    futimesat(t, Fd(AT_FDCWD), path, times)
}

/// RLIMIT_FSIZE for growing a file of `size` bytes to `new` (Linux's inode_newsize_ok):
/// EFBIG after SIGXFSZ past the limit; shrinking is always allowed.
fn newsize_ok(t: &mut Task, size: u64, new: u64) -> Result<(), Errno> {
    let limit = t.tg.limits.lock().unwrap()[libc::RLIMIT_FSIZE as usize].cur;
    if new > size && limit != libc::RLIM_INFINITY && new > limit {
        crate::vfs::Context::raise_signal(t, libc::SIGXFSZ);
        return Err(Errno::EFBIG);
    }
    Ok(())
}

/// truncate(2)
pub fn truncate(t: &mut Task, path: PathArg, len: i64) -> SysResult {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    match d.inode.file_type()? {
        FileType::Directory => return Err(Errno::EISDIR),
        FileType::Regular => {}
        _ => return Err(Errno::EINVAL),
    }
    // As Linux's do_sys_truncate: the caller needs write permission on the file.
    let st = d.inode.stat()?;
    if !crate::vfs::inode::may_access_inode(d.inode.as_ref(), &st, &t.creds, 2, false) {
        return Err(Errno::EACCES);
    }
    crate::vfs::landlock::check(&t.creds, &d, crate::auth::landlock::fs::TRUNCATE)?;
    // ETXTBSY while a process runs the file (vfs_truncate's get_write_access).
    let _write_access = t.kernel.write_access.get_write((st.dev, st.ino))?;
    newsize_ok(t, st.size as u64, len as u64)?;
    setattr(
        &d,
        SetAttr {
            size: Some(len as u64),
            ..SetAttr::default()
        },
    )
}

/// ftruncate(2)
pub fn ftruncate(t: &mut Task, fd: Fd, len: i64) -> SysResult {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get_io(fd.0)?;
    if !f.writable() {
        return Err(Errno::EINVAL);
    }
    let d = f.dentry.clone().ok_or(Errno::EINVAL)?;
    if d.inode.file_type()? != FileType::Regular {
        return Err(Errno::EINVAL);
    }
    crate::vfs::landlock::check_ftruncate(&f)?;
    newsize_ok(t, d.inode.stat()?.size as u64, len as u64)?;
    let a = SetAttr {
        size: Some(len as u64),
        ..SetAttr::default()
    };
    d.inode.setattr(&a)?;
    inotify::attr_changed(&d, &a);
    Ok(0)
}

/// fallocate(2): mode 0 extends the file; other modes are EOPNOTSUPP.
pub fn fallocate(t: &mut Task, fd: Fd, mode: i32, offset: i64, len: i64) -> SysResult {
    if offset < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get_io(fd.0)?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    if mode != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    // Linux's vfs_fallocate: ESPIPE for a pipe, EISDIR for a directory, ENODEV for the rest
    // that is not a regular file (sockets, devices, anonymous inodes such as eventfds).
    let st = match &f.dentry {
        Some(d) => d.inode.stat()?,
        None => f.ops().stat()?,
    };
    match st.mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFIFO => return Err(Errno::ESPIPE),
        libc::S_IFDIR => return Err(Errno::EISDIR),
        _ => return Err(Errno::ENODEV),
    }
    let d = f.dentry.clone().ok_or(Errno::ENODEV)?;
    let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
    newsize_ok(t, st.size as u64, end as u64)?;
    d.inode.allocate(offset as u64, end as u64)?;
    inotify::file_event(&d, inotify::IN_MODIFY);
    Ok(0)
}

/// umask(2)
pub fn umask(t: &mut Task, mask: u32) -> SysResult {
    Ok(t.fs.swap_umask(mask) as u64)
}
