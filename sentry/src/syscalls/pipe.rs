//! Pipes and eventfd: pipe, pipe2, eventfd, eventfd2; the pipe-size fcntls; memfd_create
//! and the seal fcntls.

use std::sync::Arc;

use super::fd::nofile_limit;
use super::Flags;
use crate::abi::{Errno, SysResult};
use crate::auth::cap;
use crate::fs::tmpfs::SEAL_EXEC;
use crate::kernel::epoll::EventFd;
use crate::kernel::pipe::PIPE_MAX_SIZE;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::{Caller, FileKind, NewAttrs, OpenFile, PipeFile};

/// pipe2(2)
pub fn pipe2(t: &mut Task, fds: UserAddr, flags: Flags) -> SysResult {
    let allowed = (libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) as u64;
    if flags.0 & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let status = (flags.0 as u32) & (libc::O_NONBLOCK | libc::O_DIRECT) as u32;
    let cloexec = flags.0 & libc::O_CLOEXEC as u64 != 0;
    let (r, w) = t.kernel.fifos.new_pipe();
    r.set_owner(t.creds.euid, t.creds.egid);
    let rf = OpenFile::of_kind(FileKind::Pipe(r), libc::O_RDONLY as u32 | status);
    let wf = OpenFile::of_kind(FileKind::Pipe(w), libc::O_WRONLY as u32 | status);
    let limit = nofile_limit(t);
    let rfd = t.fds.install(rf, 0, cloexec, limit)?;
    let wfd = match t.fds.install(wf, 0, cloexec, limit) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.fds.remove(rfd);
            return Err(e);
        }
    };
    if let Err(e) = t.mm.write_obj(fds, &[rfd, wfd]) {
        let _ = t.fds.remove(rfd);
        let _ = t.fds.remove(wfd);
        return Err(e);
    }
    Ok(0)
}

/// pipe(2)
pub fn pipe(t: &mut Task, fds: UserAddr) -> SysResult {
    pipe2(t, fds, Flags(0))
}

/// eventfd2(2)
pub fn eventfd2(t: &mut Task, initval: u32, flags: Flags) -> SysResult {
    const EFD_SEMAPHORE: u64 = 1;
    let allowed = EFD_SEMAPHORE | (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
    if flags.0 & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let ops = Arc::new(EventFd::new(initval as u64, flags.0 & EFD_SEMAPHORE != 0));
    let f = OpenFile::new(
        ops,
        libc::O_RDWR as u32 | (flags.0 as u32 & libc::O_NONBLOCK as u32),
    );
    let limit = nofile_limit(t);
    Ok(t.fds
        .install(f, 0, flags.0 & libc::O_CLOEXEC as u64 != 0, limit)? as u64)
}

/// eventfd(2)
pub fn eventfd(t: &mut Task, initval: u32) -> SysResult {
    eventfd2(t, initval, Flags(0))
}

/// fcntl's F_GETPIPE_SZ and F_SETPIPE_SZ (pipes and FIFOs), F_ADD_SEALS and F_GET_SEALS
/// (memfd and tmpfs files).
pub(super) fn fcntl_pipe_or_seals(t: &mut Task, f: &OpenFile, cmd: i32, arg: u64) -> SysResult {
    match cmd {
        libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ => {
            let FileKind::Pipe(p) = f.kind() else {
                return Err(Errno::EBADF);
            };
            if cmd == libc::F_GETPIPE_SZ {
                return Ok(p.capacity() as u64);
            }
            // Only CAP_SYS_RESOURCE goes beyond /proc/sys/fs/pipe-max-size.
            let max = if t.creds.has_cap(cap::SYS_RESOURCE) {
                usize::MAX
            } else {
                PIPE_MAX_SIZE
            };
            let size = usize::try_from(arg).map_err(|_| Errno::EINVAL)?;
            Ok(p.set_capacity(size, max)? as u64)
        }
        libc::F_GET_SEALS => Ok(f.ops().seals().ok_or(Errno::EINVAL)? as u64),
        _ => {
            f.ops().seals().ok_or(Errno::EINVAL)?;
            if !f.writable() {
                return Err(Errno::EPERM);
            }
            f.ops().add_seals(arg as u32)?;
            Ok(0)
        }
    }
}

const MFD_CLOEXEC: u32 = 0x1;
const MFD_ALLOW_SEALING: u32 = 0x2;
const MFD_NOEXEC_SEAL: u32 = 0x8;
const MFD_EXEC: u32 = 0x10;
/// The longest name: NAME_MAX less the `memfd:` prefix.
const MFD_NAME_MAX: usize = 255 - 6;

/// memfd_create(2)
pub fn memfd_create(t: &mut Task, name: UserAddr, flags: u32) -> SysResult {
    // MFD_HUGETLB (and its page-size bits) among them: the sandbox's memory has one page
    // size, as a host without huge pages configured.
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_NOEXEC_SEAL != 0 && flags & MFD_EXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let name =
        t.mm.read_cstring(name, MFD_NAME_MAX + 1)
            .map_err(|e| match e {
                Errno::ENAMETOOLONG => Errno::EINVAL,
                e => e,
            })?;
    // MFD_NOEXEC_SEAL: not executable, sealed so, and sealable.
    let noexec = flags & MFD_NOEXEC_SEAL != 0;
    let attrs = NewAttrs {
        mode: if noexec { 0o666 } else { 0o777 },
        uid: t.creds.euid,
        gid: t.creds.egid,
    };
    let sealing = flags & MFD_ALLOW_SEALING != 0 || noexec;
    let seals = if noexec { SEAL_EXEC } else { 0 };
    let cx = Caller::of(t);
    let (ops, dentry) = t.kernel.memfds.create(&cx, &name, attrs, sealing, seals)?;
    let file = OpenFile::with_dentry(ops, (libc::O_RDWR | libc::O_LARGEFILE) as u32, dentry);
    let limit = nofile_limit(t);
    Ok(t.fds.install(file, 0, flags & MFD_CLOEXEC != 0, limit)? as u64)
}
