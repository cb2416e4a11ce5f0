//! Advisory file locks: flock(2) and the record-lock commands of fcntl(2) (POSIX and OFD).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::lock::{self, Lock};
use crate::vfs::OpenFile;

/// `struct flock`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct FlockBuf {
    l_type: i16,
    l_whence: i16,
    pad0: u32,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
    pad1: u32,
}

/// The identity of the file `f` in the lock table.
fn lock_key(f: &OpenFile) -> Result<(u64, u64), Errno> {
    let st = match &f.dentry {
        Some(d) => d.inode.stat()?,
        None => f.ops().stat()?,
    };
    Ok((st.dev, st.ino))
}

/// Takes `want` on `f`'s file, waiting (interruptibly) while it conflicts if `wait`.
fn set_lock(t: &mut Task, f: &OpenFile, want: Lock, unlock: bool, wait: bool) -> SysResult {
    let locks = t.kernel.locks.file(lock_key(f)?);
    f.note_locked(&t.kernel.locks);
    if let (lock::Owner::Process(tgid), false) = (want.owner, unlock) {
        t.kernel.locks.note_posix_owner(tgid);
    }
    if !wait {
        return match locks.try_set(want, unlock) {
            Ok(()) => Ok(0),
            Err(_) if want.family == lock::Family::Flock => Err(Errno::EWOULDBLOCK),
            Err(_) => Err(Errno::EAGAIN),
        };
    }
    t.block_on(&[&locks.queue], None, |_| {
        locks.try_set(want, unlock).ok().map(|()| Ok(0))
    })
}

/// The record-lock commands of fcntl(2): POSIX locks (owned by the process) and OFD locks
/// (owned by the open file description), over byte ranges.
pub fn fcntl_lock(t: &mut Task, fd: Fd, cmd: i32, arg: u64) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let addr = UserAddr(arg);
    let mut l: FlockBuf = t.mm.read_obj(addr)?;
    let ofd = matches!(
        cmd,
        libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    );
    if ofd && l.l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let base: i64 = match l.l_whence as i32 {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => *f.offset.lock().unwrap() as i64,
        libc::SEEK_END => f.ops().size()? as i64,
        _ => return Err(Errno::EINVAL),
    };
    let start = base.checked_add(l.l_start).ok_or(Errno::EOVERFLOW)?;
    let (start, end) = match l.l_len {
        0 => (start, None),
        n if n > 0 => (start, Some(start.checked_add(n).ok_or(Errno::EOVERFLOW)?)),
        n => (start + n, Some(start)),
    };
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    let kind = match l.l_type as i32 {
        libc::F_RDLCK => Some(lock::Kind::Read),
        libc::F_WRLCK => Some(lock::Kind::Write),
        libc::F_UNLCK => None,
        _ => return Err(Errno::EINVAL),
    };
    let owner = if ofd {
        lock::Owner::File(f.lock_id())
    } else {
        lock::Owner::Process(t.tg.tgid)
    };
    let want = Lock {
        owner,
        family: lock::Family::Record,
        kind: kind.unwrap_or(lock::Kind::Read),
        start: start as u64,
        end: end.map_or(u64::MAX, |e| e as u64),
        pid: if ofd { -1 } else { t.tg.tgid },
    };
    match cmd {
        libc::F_GETLK | libc::F_OFD_GETLK => {
            if kind.is_none() {
                return Err(Errno::EINVAL);
            }
            let held = t.kernel.locks.file(lock_key(&f)?).conflict(&want);
            match held {
                None => l.l_type = libc::F_UNLCK as i16,
                Some(h) => {
                    l.l_type = match h.kind {
                        lock::Kind::Read => libc::F_RDLCK,
                        lock::Kind::Write => libc::F_WRLCK,
                    } as i16;
                    l.l_whence = libc::SEEK_SET as i16;
                    l.l_start = h.start as i64;
                    l.l_len = if h.end == u64::MAX {
                        0
                    } else {
                        (h.end - h.start) as i64
                    };
                    // The holder as the caller's namespace sees it (-1 for OFD locks).
                    l.l_pid = if h.pid > 0 { t.vpid_of(h.pid) } else { h.pid };
                }
            }
            t.mm.write_obj(addr, &l)?;
            Ok(0)
        }
        _ => {
            match kind {
                Some(lock::Kind::Read) if !f.readable() => return Err(Errno::EBADF),
                Some(lock::Kind::Write) if !f.writable() => return Err(Errno::EBADF),
                _ => {}
            }
            let wait = matches!(cmd, libc::F_SETLKW | libc::F_OFD_SETLKW);
            set_lock(t, &f, want, kind.is_none(), wait)
        }
    }
}

/// flock(2): whole-file locks owned by the open file description.
pub fn flock(t: &mut Task, fd: Fd, op: i32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let kind = match op & !libc::LOCK_NB {
        libc::LOCK_SH => Some(lock::Kind::Read),
        libc::LOCK_EX => Some(lock::Kind::Write),
        libc::LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    let want = Lock {
        owner: lock::Owner::File(f.lock_id()),
        family: lock::Family::Flock,
        kind: kind.unwrap_or(lock::Kind::Read),
        start: 0,
        end: u64::MAX,
        pid: -1,
    };
    let wait = op & libc::LOCK_NB == 0 && kind.is_some();
    set_lock(t, &f, want, kind.is_none(), wait)
}
