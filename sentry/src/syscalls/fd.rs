//! Calls on an open file descriptor: the read/write family (vectored and positional ones
//! included), close/close_range, dup/dup2/dup3,
//! fcntl, ioctl, lseek, fadvise64 and readahead.

use std::sync::Arc;

use super::{Fd, Flags};
use crate::abi::{Errno, SysResult};
use crate::kernel::fd_table::release_posix_locks;
use crate::kernel::{fasync, Task};
use crate::mm::usermem::{access_ok, UserAddr, UserIo};
use crate::vfs::OpenFile;

/// Largest single transfer, as Linux's MAX_RW_COUNT: larger requests complete short, which
/// read(2) and write(2) allow. Data moves straight between the file and the caller's pages,
/// so nothing of this size is ever allocated.
const MAX_RW: usize = 0x7fff_f000;

/// The open file `fd` for I/O and ioctl: O_PATH descriptors are EBADF.
fn file(t: &Task, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
    t.fds.get_io(fd.0)
}

/// RLIMIT_NOFILE's soft limit: every call that installs a file descriptor stays below it.
pub(super) fn nofile_limit(t: &Task) -> u64 {
    t.tg.limits.lock().unwrap()[libc::RLIMIT_NOFILE as usize].cur
}

/// RLIMIT_FSIZE for a write of up to `len` bytes to `f` at `off` (the file offset, or the
/// end with O_APPEND, when None): the most the write may move, as Linux's
/// generic_write_check_limits. Only regular files are limited.
///
/// # Errors
/// EFBIG (after SIGXFSZ) when the write starts at or past the limit.
fn fsize_allowance(
    t: &mut Task,
    f: &OpenFile,
    off: Option<u64>,
    len: usize,
) -> Result<usize, Errno> {
    let regular = f
        .dentry
        .as_ref()
        .is_some_and(|d| d.inode.file_type() == Ok(crate::vfs::FileType::Regular));
    if !regular {
        return Ok(len);
    }
    let pos = match off {
        Some(o) => o,
        None if f.flags() & libc::O_APPEND as u32 != 0 => f.ops().size()?,
        None => *f.offset.lock().unwrap(),
    };
    super::splice::fsize_limit(t, pos, len)
}

/// Counts a read call that reached the file in the task's I/O accounting
/// (`/proc/[pid]/io`: the call always, the bytes when it moved some).
fn counted_read(t: &Task, r: Result<usize, Errno>) -> SysResult {
    t.handle.io.read(*r.as_ref().unwrap_or(&0));
    Ok(r? as u64)
}

/// [`counted_read`] for a write call.
fn counted_write(t: &Task, r: Result<usize, Errno>) -> SysResult {
    t.handle.io.write(*r.as_ref().unwrap_or(&0));
    Ok(r? as u64)
}

/// read(2)
pub fn read(t: &mut Task, fd: Fd, buf: UserAddr, count: usize) -> SysResult {
    let f = file(t, fd)?;
    access_ok(buf, count as u64)?;
    let mm = t.mm.clone();
    let mut dst = UserIo::single(&mm, buf, count, MAX_RW);
    let r = f.read(t, &mut dst);
    counted_read(t, r)
}

/// write(2)
pub fn write(t: &mut Task, fd: Fd, buf: UserAddr, count: usize) -> SysResult {
    let f = file(t, fd)?;
    access_ok(buf, count as u64)?;
    let max = if f.writable() {
        fsize_allowance(t, &f, None, count.min(MAX_RW))?
    } else {
        MAX_RW
    };
    let mm = t.mm.clone();
    let mut src = UserIo::single(&mm, buf, count, max);
    let r = f.write(t, &mut src);
    counted_write(t, r)
}

/// Linux's `rw_verify_area` for a positioned read or write: a range that ends past the
/// largest file offset is EINVAL (checked after the buffer, before the file is touched).
fn range_ok(off: i64, count: usize) -> Result<(), Errno> {
    i64::try_from(count)
        .ok()
        .and_then(|c| off.checked_add(c))
        .map(|_| ())
        .ok_or(Errno::EINVAL)
}

/// Which way a positioned transfer goes.
enum Transfer {
    Read,
    Write,
}

/// The file of a positioned read or write (`pread64`, `pwrite64`) after Linux's checks, in
/// Linux's order: a negative offset, a file without positions (ESPIPE, before the access mode
/// is looked at), the access mode, then the buffer and the range.
fn positioned_file(
    t: &mut Task,
    fd: Fd,
    buf: UserAddr,
    count: usize,
    off: i64,
    transfer: Transfer,
) -> Result<Arc<OpenFile>, Errno> {
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    let f = file(t, fd)?;
    if !f.ops().seekable() {
        return Err(Errno::ESPIPE);
    }
    let permitted = match transfer {
        Transfer::Read => f.readable(),
        Transfer::Write => f.writable(),
    };
    if !permitted {
        return Err(Errno::EBADF);
    }
    access_ok(buf, count as u64)?;
    range_ok(off, count)?;
    Ok(f)
}

/// pread64(2)
pub fn pread64(t: &mut Task, fd: Fd, buf: UserAddr, count: usize, off: i64) -> SysResult {
    let f = positioned_file(t, fd, buf, count, off, Transfer::Read)?;
    let mm = t.mm.clone();
    let mut dst = UserIo::single(&mm, buf, count, MAX_RW);
    let r = f.read_at(t, &mut dst, off as u64);
    counted_read(t, r)
}

/// pwrite64(2)
pub fn pwrite64(t: &mut Task, fd: Fd, buf: UserAddr, count: usize, off: i64) -> SysResult {
    let f = positioned_file(t, fd, buf, count, off, Transfer::Write)?;
    let max = fsize_allowance(t, &f, Some(off as u64), count.min(MAX_RW))?;
    let mm = t.mm.clone();
    let mut src = UserIo::single(&mm, buf, count, max);
    let r = f.write_at(t, &mut src, off as u64);
    counted_write(t, r)
}

/// readv(2)
pub fn readv(t: &mut Task, fd: Fd, iov: UserAddr, iovcnt: i32) -> SysResult {
    let f = file(t, fd)?;
    let iovs =
        t.mm.read_iovecs(iov, usize::try_from(iovcnt).map_err(|_| Errno::EINVAL)?)?;
    let mm = t.mm.clone();
    let mut dst = UserIo::new(&mm, iovs, MAX_RW);
    let r = f.read(t, &mut dst);
    counted_read(t, r)
}

/// writev(2)
pub fn writev(t: &mut Task, fd: Fd, iov: UserAddr, iovcnt: i32) -> SysResult {
    let f = file(t, fd)?;
    let iovs =
        t.mm.read_iovecs(iov, usize::try_from(iovcnt).map_err(|_| Errno::EINVAL)?)?;
    let total = iovs
        .iter()
        .fold(0usize, |acc, v| acc.saturating_add(v.len as usize));
    let max = if f.writable() {
        fsize_allowance(t, &f, None, total.min(MAX_RW))?
    } else {
        MAX_RW
    };
    let mm = t.mm.clone();
    let mut src = UserIo::new(&mm, iovs, max);
    let r = f.write(t, &mut src);
    counted_write(t, r)
}

/// preadv2/pwritev2 flags (RWF_*).
const RWF_HIPRI: u32 = 0x01;
const RWF_DSYNC: u32 = 0x02;
const RWF_SYNC: u32 = 0x04;
const RWF_NOAPPEND: u32 = 0x20;
/// The flags the sentry honours: HIPRI is a polling hint; DSYNC and SYNC ask for what fsync
/// gives, which the sentry's files have once a write returns; NOAPPEND asks a positional
/// write to ignore O_APPEND, which positional writes here always do. RWF_NOWAIT, RWF_APPEND and the
/// newer flags are EOPNOTSUPP, as Linux answers for files that lack them.
const RWF_SUPPORTED: u32 = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOAPPEND;

/// The offset of preadv/pwritev and their *2 variants: on x86-64 the low word is the whole
/// offset (Linux's pos_from_hilo drops the high word).
fn hilo_offset(pos_l: u64) -> i64 {
    pos_l as i64
}

/// The common part of readv(2) and preadv(2)/preadv2(2): `off` None reads at the file
/// offset.
fn do_readv(t: &mut Task, fd: Fd, iov: UserAddr, iovcnt: i32, off: Option<i64>) -> SysResult {
    if off.is_some_and(|o| o < 0) {
        return Err(Errno::EINVAL);
    }
    let f = file(t, fd)?;
    if off.is_some() && !f.ops().seekable() {
        return Err(Errno::ESPIPE);
    }
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let iovs =
        t.mm.read_iovecs(iov, usize::try_from(iovcnt).map_err(|_| Errno::EINVAL)?)?;
    let mm = t.mm.clone();
    let mut dst = UserIo::new(&mm, iovs, MAX_RW);
    let n = match off {
        Some(o) => f.read_at(t, &mut dst, o as u64),
        None => f.read(t, &mut dst),
    };
    counted_read(t, n)
}

/// The common part of writev(2) and pwritev(2)/pwritev2(2).
fn do_writev(t: &mut Task, fd: Fd, iov: UserAddr, iovcnt: i32, off: Option<i64>) -> SysResult {
    let Some(o) = off else {
        return writev(t, fd, iov, iovcnt);
    };
    if o < 0 {
        return Err(Errno::EINVAL);
    }
    let f = file(t, fd)?;
    if !f.ops().seekable() {
        return Err(Errno::ESPIPE);
    }
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let iovs =
        t.mm.read_iovecs(iov, usize::try_from(iovcnt).map_err(|_| Errno::EINVAL)?)?;
    let total = iovs
        .iter()
        .fold(0usize, |acc, v| acc.saturating_add(v.len as usize));
    let max = fsize_allowance(t, &f, Some(o as u64), total.min(MAX_RW))?;
    let mm = t.mm.clone();
    let mut src = UserIo::new(&mm, iovs, max);
    let r = f.write_at(t, &mut src, o as u64);
    counted_write(t, r)
}

/// preadv(2)
pub fn preadv(t: &mut Task, fd: Fd, iov: UserAddr, iovcnt: i32, pos_l: u64) -> SysResult {
    do_readv(t, fd, iov, iovcnt, Some(hilo_offset(pos_l)))
}

/// pwritev(2)
pub fn pwritev(t: &mut Task, fd: Fd, iov: UserAddr, iovcnt: i32, pos_l: u64) -> SysResult {
    do_writev(t, fd, iov, iovcnt, Some(hilo_offset(pos_l)))
}

/// Checks preadv2/pwritev2 flags against an open `fd` (EBADF first, as Linux looks the file
/// up before its flags).
fn check_rwf(t: &Task, fd: Fd, flags: u32) -> Result<(), Errno> {
    file(t, fd)?;
    if flags & !RWF_SUPPORTED != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(())
}

/// The offset of preadv2/pwritev2 after checking it and the flags: -1 (None) means the file
/// offset, as readv/writev use.
fn v2_offset(t: &mut Task, fd: Fd, pos_l: u64, flags: u32) -> Result<Option<i64>, Errno> {
    let pos = hilo_offset(pos_l);
    if pos < -1 {
        return Err(Errno::EINVAL);
    }
    check_rwf(t, fd, flags)?;
    Ok((pos != -1).then_some(pos))
}

/// preadv2(2): an offset of -1 reads at the file offset (as readv).
pub fn preadv2(
    t: &mut Task,
    fd: Fd,
    iov: UserAddr,
    iovcnt: i32,
    pos_l: u64,
    _pos_h: u64,
    flags: u32,
) -> SysResult {
    let pos = v2_offset(t, fd, pos_l, flags)?;
    do_readv(t, fd, iov, iovcnt, pos)
}

/// pwritev2(2): an offset of -1 writes at the file offset (as writev).
pub fn pwritev2(
    t: &mut Task,
    fd: Fd,
    iov: UserAddr,
    iovcnt: i32,
    pos_l: u64,
    _pos_h: u64,
    flags: u32,
) -> SysResult {
    let pos = v2_offset(t, fd, pos_l, flags)?;
    do_writev(t, fd, iov, iovcnt, pos)
}

/// close(2)
pub fn close(t: &mut Task, fd: Fd) -> SysResult {
    let f = t.fds.remove(fd.0)?;
    release_posix_locks(&t.kernel.locks, t.tg.tgid, [f]);
    Ok(0)
}

/// close_range(2)
pub fn close_range(t: &mut Task, first: u32, last: u32, flags: Flags) -> SysResult {
    const CLOSE_RANGE_UNSHARE: u64 = 2;
    const CLOSE_RANGE_CLOEXEC: u64 = 4;
    if flags.0 & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    let last = last.min(i32::MAX as u32) as i32;
    if first as u64 <= last as u64 {
        let closed = t
            .fds
            .close_range(first as i32, last, flags.0 & CLOSE_RANGE_CLOEXEC != 0);
        release_posix_locks(&t.kernel.locks, t.tg.tgid, closed);
    }
    Ok(0)
}

/// dup(2)
pub fn dup(t: &mut Task, fd: Fd) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let limit = nofile_limit(t);
    Ok(t.fds.install(f, 0, false, limit)? as u64)
}

/// dup2(2)
pub fn dup2(t: &mut Task, old: Fd, new: Fd) -> SysResult {
    if old == new {
        t.fds.get(old.0)?;
        return Ok(new.0 as u64);
    }
    dup3(t, old, new, Flags(0))
}

/// dup3(2)
pub fn dup3(t: &mut Task, old: Fd, new: Fd, flags: Flags) -> SysResult {
    if flags.0 & !(libc::O_CLOEXEC as u64) != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get(old.0)?;
    if new.0 < 0 || new.0 as u64 >= nofile_limit(t) {
        return Err(Errno::EBADF);
    }
    let replaced = t
        .fds
        .install_at(new.0, f, flags.0 & libc::O_CLOEXEC as u64 != 0);
    release_posix_locks(&t.kernel.locks, t.tg.tgid, replaced);
    Ok(new.0 as u64)
}

/// fcntl(2)
pub fn fcntl(t: &mut Task, fd: Fd, cmd: i32, arg: u64) -> SysResult {
    let f = t.fds.get(fd.0)?;
    // An O_PATH descriptor answers only the descriptor-level commands (Linux's
    // check_fcntl_cmd).
    let descriptor_cmd = matches!(
        cmd,
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC | libc::F_GETFD | libc::F_SETFD | libc::F_GETFL
    );
    if f.is_path_only() && !descriptor_cmd {
        return Err(Errno::EBADF);
    }
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let min = i32::try_from(arg).map_err(|_| Errno::EINVAL)?;
            let limit = nofile_limit(t);
            if min < 0 || min as u64 >= limit {
                return Err(Errno::EINVAL);
            }
            Ok(t.fds.install(f, min, cmd == libc::F_DUPFD_CLOEXEC, limit)? as u64)
        }
        libc::F_GETFD => Ok(if t.fds.cloexec(fd.0)? {
            libc::FD_CLOEXEC as u64
        } else {
            0
        }),
        libc::F_SETFD => {
            t.fds
                .set_cloexec(fd.0, arg & libc::FD_CLOEXEC as u64 != 0)?;
            Ok(0)
        }
        libc::F_GETFL => Ok(f.flags() as u64),
        libc::F_SETFL => {
            // Turning O_ASYNC on or off arms or disarms the I/O signal; a file without
            // signal-driven I/O keeps the flag all the same, as Linux's.
            let on = arg as u32 & libc::O_ASYNC as u32 != 0;
            if on != (f.flags() & libc::O_ASYNC as u32 != 0) {
                fasync::set_async(t, &f, fd.0, on);
            }
            f.set_flags(arg as u32);
            Ok(0)
        }
        libc::F_SETOWN => fasync::setown(t, &f, arg as i32).map(|()| 0),
        libc::F_GETOWN => Ok(fasync::getown(t, &f) as u64),
        fasync::F_SETOWN_EX => {
            let [kind, pid]: [i32; 2] = t.mm.read_obj(UserAddr(arg))?;
            fasync::setown_ex(t, &f, kind, pid).map(|()| 0)
        }
        fasync::F_GETOWN_EX => {
            t.mm.write_obj(UserAddr(arg), &fasync::getown_ex(t, &f))?;
            Ok(0)
        }
        fasync::F_SETSIG => fasync::set_signal(&f, arg).map(|()| 0),
        fasync::F_GETSIG => Ok(f.io_signal().signal as u64),
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW => super::lock::fcntl_lock(t, fd, cmd, arg),
        libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ | libc::F_ADD_SEALS | libc::F_GET_SEALS => {
            super::pipe::fcntl_pipe_or_seals(t, &f, cmd, arg)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// ioctl(2)
pub fn ioctl(t: &mut Task, fd: Fd, cmd: Flags, arg: u64) -> SysResult {
    let f = file(t, fd)?;
    crate::vfs::landlock::check_ioctl(&f, cmd.0)?;
    match cmd.0 {
        libc::FIOCLEX => t.fds.set_cloexec(fd.0, true).map(|_| 0),
        libc::FIONCLEX => t.fds.set_cloexec(fd.0, false).map(|_| 0),
        libc::FIOASYNC => {
            let on = t.mm.read_obj::<i32>(UserAddr(arg))? != 0;
            let bit = libc::O_ASYNC as u32;
            let fl = f.flags();
            if on != (fl & bit != 0) {
                f.ops().async_allowed()?;
                if !fasync::set_async(t, &f, fd.0, on) {
                    return Err(Errno::ENOTTY);
                }
                f.set_flags(if on { fl | bit } else { fl & !bit });
            }
            Ok(0)
        }
        // The owner ioctls are socket ioctls in Linux (sock_ioctl); other files answer
        // ENOTTY.
        fasync::FIOSETOWN | fasync::SIOCSPGRP
            if matches!(f.kind(), crate::vfs::FileKind::Socket(_)) =>
        {
            let who: i32 = t.mm.read_obj(UserAddr(arg))?;
            fasync::setown(t, &f, who).map(|()| 0)
        }
        fasync::FIOGETOWN | fasync::SIOCGPGRP
            if matches!(f.kind(), crate::vfs::FileKind::Socket(_)) =>
        {
            t.mm.write_obj(UserAddr(arg), &fasync::getown(t, &f))?;
            Ok(0)
        }
        libc::FIONBIO => {
            let on: i32 = t.mm.read_obj(UserAddr(arg))?;
            let nb = libc::O_NONBLOCK as u32;
            let fl = f.flags();
            f.set_flags(if on != 0 { fl | nb } else { fl & !nb });
            Ok(0)
        }
        // FIONREAD (SIOCINQ) on a socket of any family: its queued bytes.
        c if c == libc::FIONREAD => match f.kind() {
            crate::vfs::FileKind::Socket(s) => {
                let n = i32::try_from(s.rx_queued()?).unwrap_or(i32::MAX);
                t.mm.write_obj(UserAddr(arg), &n)?;
                Ok(0)
            }
            _ => f.ops().ioctl(t, &f, c as u32, arg),
        },
        // Linux answers the netdevice ioctls on a socket of any family.
        c if matches!(f.kind(), crate::vfs::FileKind::Socket(_))
            && crate::net::netlink::is_netdevice_ioctl(c as u32) =>
        {
            let net = t.ns.net.clone();
            let net_admin = t.creds.has_cap_in(&net.owner, crate::auth::cap::NET_ADMIN);
            crate::net::netlink::netdevice_ioctl(&net, net_admin, t, c as u32, arg)
        }
        crate::fs::fuse::proto::DEV_IOC_CLONE => {
            let from: u32 = t.mm.read_obj(UserAddr(arg))?;
            let from = file(t, Fd(from as i32))?;
            crate::fs::fuse::clone_device(&f, &from).map(|()| 0)
        }
        crate::tty::pty::TIOCGPTPEER => {
            let flags = arg as u32;
            let allowed =
                (libc::O_ACCMODE | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC) as u32;
            if flags & !allowed != 0 {
                return Err(Errno::EINVAL);
            }
            let (peer, name) = f.ops().open_peer(flags)?;
            let keep =
                (flags & !((libc::O_NOCTTY | libc::O_CLOEXEC) as u32)) | libc::O_LARGEFILE as u32;
            // The slave's node next to the master's, so that fstat and /proc/self/fd name
            // /dev/pts/N (glibc's ttyname compares them).
            let dir = f.dentry.as_ref().and_then(|d| d.parent.clone());
            let node = dir.and_then(|dir| {
                let inode = dir.inode.lookup(&crate::vfs::Caller::of(t), &name).ok()?;
                Some(Arc::new(crate::vfs::Dentry {
                    inode,
                    path: dir.child_path(&name),
                    name,
                    mount: dir.mount.clone(),
                    parent: Some(dir),
                }))
            });
            let file = match node {
                Some(d) => OpenFile::with_dentry(peer, keep, d),
                None => OpenFile::new(peer, keep),
            };
            // As an open of the node: without O_NOCTTY a session leader acquires it.
            file.ops().opened(t, flags)?;
            let cloexec = flags & libc::O_CLOEXEC as u32 != 0;
            Ok(t.fds.install(file, 0, cloexec, nofile_limit(t))? as u64)
        }
        c => f.ops().ioctl(t, &f, c as u32, arg),
    }
}

/// lseek(2)
pub fn lseek(t: &mut Task, fd: Fd, offset: i64, whence: i32) -> SysResult {
    let f = file(t, fd)?;
    if !f.ops().seekable() {
        return f.ops().seek(offset, whence);
    }
    let mut off = f.offset.lock().unwrap();
    if f.ops().offset_pinned() {
        if !(libc::SEEK_SET..=libc::SEEK_HOLE).contains(&whence) {
            return Err(Errno::EINVAL);
        }
        *off = 0;
        return Ok(0);
    }
    let base = match whence {
        libc::SEEK_SET => 0i64,
        libc::SEEK_CUR => *off as i64,
        libc::SEEK_END => f.ops().size()? as i64,
        _ => return Err(Errno::EINVAL),
    };
    let new = base
        .checked_add(offset)
        .filter(|&n| n >= 0)
        .ok_or(Errno::EINVAL)?;
    *off = new as u64;
    Ok(new as u64)
}

/// fadvise64(2): advice about the page cache, which the sentry's files do not need.
pub fn fadvise64(t: &mut Task, fd: Fd, _offset: i64, len: i64, advice: i32) -> SysResult {
    let f = file(t, fd)?;
    if !f.ops().seekable() {
        return Err(Errno::ESPIPE);
    }
    if len < 0 || !(0..=5).contains(&advice) {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// readahead(2): a regular file opened for reading. Its pages come in when they are read
/// (the sentry's page cache fills on demand), so after the checks there is nothing to start.
pub fn readahead(t: &mut Task, fd: Fd, _offset: i64, _count: usize) -> SysResult {
    let f = file(t, fd)?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let regular = f
        .dentry
        .as_ref()
        .is_some_and(|d| d.inode.file_type() == Ok(crate::vfs::FileType::Regular));
    if !regular {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
