//! POSIX message queue system calls: mq_open, mq_unlink, mq_timedsend, mq_timedreceive,
//! mq_notify, mq_getsetattr. The queues live in the kernel's IPC namespace
//! ([`crate::kernel::ipc::mq`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::fd::nofile_limit;
use super::{Fd, Flags};
use crate::abi::{Errno, SysResult, Timespec};
use crate::kernel::ipc::mq::{OpenRequest, QueueFile, SIGEV_NONE, SIGEV_SIGNAL};
use crate::kernel::signal::SigInfo;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::{FileKind, MqueueFile, OpenFile};

/// `si_code` of a message-queue notification.
const SI_MESGQ: i32 = -3;

/// `struct mq_attr`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct MqAttr {
    flags: i64,
    maxmsg: i64,
    msgsize: i64,
    curmsgs: i64,
    reserved: [i64; 4],
}

/// The head of `struct sigevent` that mq_notify reads.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SigEvent {
    value: u64,
    signo: i32,
    notify: i32,
    rest: [u64; 6],
}

/// The queue an fd opened with mq_open names, and the open file.
///
/// # Errors
/// EBADF when `fd` is not one.
fn queue(t: &Task, fd: Fd) -> Result<(Arc<OpenFile>, Arc<dyn MqueueFile>), Errno> {
    let f = t.fds.get(fd.0)?;
    let FileKind::Mqueue(q) = f.kind() else {
        return Err(Errno::EBADF);
    };
    let q = q.clone();
    Ok((f, q))
}

/// An absolute CLOCK_REALTIME timeout as a deadline (None: wait for ever).
///
/// # Errors
/// EFAULT, EINVAL for an invalid timespec.
fn deadline(t: &Task, timeout: UserAddr) -> Result<Option<Instant>, Errno> {
    if timeout.is_null() {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(timeout)?;
    let at = Duration::from_nanos(u64::try_from(ts.to_nanos()?).unwrap_or(u64::MAX));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = at.saturating_sub(now);
    Ok(Some(Instant::now().checked_add(left).unwrap_or_else(
        || Instant::now() + Duration::from_secs(1 << 32),
    )))
}

/// mq_open(2)
pub fn mq_open(t: &mut Task, name: UserAddr, oflag: Flags, mode: u32, attr: UserAddr) -> SysResult {
    let oflag = oflag.0 as i32;
    let name = t.mm.read_cstring(name, libc::PATH_MAX as usize)?;
    let (read, write) = match oflag & libc::O_ACCMODE {
        libc::O_RDONLY => (true, false),
        libc::O_WRONLY => (false, true),
        libc::O_RDWR => (true, true),
        _ => return Err(Errno::EINVAL),
    };
    let create = oflag & libc::O_CREAT != 0;
    let attr = if create && !attr.is_null() {
        let a: MqAttr = t.mm.read_obj(attr)?;
        Some((a.maxmsg, a.msgsize))
    } else {
        None
    };
    let req = OpenRequest {
        create,
        exclusive: oflag & libc::O_EXCL != 0,
        read,
        write,
        mode: mode & 0o777 & !t.fs.umask(),
        attr,
    };
    let q = t.ns.ipc.mq.open(&t.creds, &name, req)?;
    let flags = (oflag & (libc::O_ACCMODE | libc::O_NONBLOCK)) as u32;
    let f = OpenFile::of_kind(FileKind::Mqueue(Arc::new(QueueFile(q))), flags);
    let limit = nofile_limit(t);
    // Queue descriptors are always close-on-exec, as Linux makes them.
    Ok(t.fds.install(f, 0, true, limit)? as u64)
}

/// mq_unlink(2)
pub fn mq_unlink(t: &mut Task, name: UserAddr) -> SysResult {
    let name = t.mm.read_cstring(name, libc::PATH_MAX as usize)?;
    t.ns.ipc.mq.unlink(&t.creds, &name).map(|()| 0)
}

/// mq_timedsend(2)
pub fn mq_timedsend(
    t: &mut Task,
    fd: Fd,
    msg: UserAddr,
    len: usize,
    prio: u32,
    timeout: UserAddr,
) -> SysResult {
    let deadline = deadline(t, timeout)?;
    let (f, q) = queue(t, fd)?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let [_, msgsize, _] = q.attr();
    if len as i64 > msgsize {
        return Err(Errno::EMSGSIZE);
    }
    let bytes = t.mm.read_bytes(msg, len)?;
    let nonblock = f.nonblocking();
    let notification = q.send(t, bytes, prio, nonblock, deadline)?;
    if let Some(n) = notification.filter(|n| n.signo != 0) {
        let tree = t.kernel.tree();
        if let Some(tg) = tree.group_of(n.tgid) {
            let mut info = SigInfo::from_user(n.signo, SI_MESGQ, t.vpid_of(t.tg.tgid), t.creds.uid);
            info.fields[1] = n.value;
            tree.send_group(&tg, info, false);
        }
    }
    Ok(0)
}

/// mq_timedreceive(2)
pub fn mq_timedreceive(
    t: &mut Task,
    fd: Fd,
    msg: UserAddr,
    len: usize,
    prio: UserAddr,
    timeout: UserAddr,
) -> SysResult {
    let deadline = deadline(t, timeout)?;
    let (f, q) = queue(t, fd)?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let nonblock = f.nonblocking();
    let (m, p) = q.receive(t, len, nonblock, deadline)?;
    t.mm.write_bytes(msg, &m)?;
    if !prio.is_null() {
        t.mm.write_obj(prio, &p)?;
    }
    Ok(m.len() as u64)
}

/// mq_notify(2)
pub fn mq_notify(t: &mut Task, fd: Fd, sevp: UserAddr) -> SysResult {
    let (_, q) = queue(t, fd)?;
    let tgid = t.tg.tgid;
    if sevp.is_null() {
        return q.notify(tgid, None).map(|()| 0);
    }
    let ev: SigEvent = t.mm.read_obj(sevp)?;
    match ev.notify {
        SIGEV_NONE => {}
        SIGEV_SIGNAL if (1..=64).contains(&ev.signo) => {}
        // SIGEV_THREAD (glibc's netlink helper thread) is not offered.
        _ => return Err(Errno::EINVAL),
    }
    q.notify(tgid, Some((ev.notify, ev.signo, ev.value)))
        .map(|()| 0)
}

/// mq_getsetattr(2): only O_NONBLOCK of mq_flags can be changed.
pub fn mq_getsetattr(t: &mut Task, fd: Fd, new: UserAddr, old: UserAddr) -> SysResult {
    let (f, q) = queue(t, fd)?;
    let set = if new.is_null() {
        None
    } else {
        let a: MqAttr = t.mm.read_obj(new)?;
        if a.flags & !(libc::O_NONBLOCK as i64) != 0 {
            return Err(Errno::EINVAL);
        }
        Some(a.flags)
    };
    if !old.is_null() {
        let [maxmsg, msgsize, curmsgs] = q.attr();
        let a = MqAttr {
            flags: (f.flags() & libc::O_NONBLOCK as u32) as i64,
            maxmsg,
            msgsize,
            curmsgs,
            reserved: [0; 4],
        };
        t.mm.write_obj(old, &a)?;
    }
    if let Some(flags) = set {
        let keep = f.flags() & !(libc::O_NONBLOCK as u32);
        f.set_flags(keep | flags as u32);
    }
    Ok(0)
}
