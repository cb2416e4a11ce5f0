//! Pipes and eventfd: pipe, pipe2, eventfd, eventfd2.

use std::sync::Arc;

use super::fd::nofile_limit;
use super::Flags;
use crate::abi::{Errno, SysResult};
use crate::kernel::epoll::EventFd;
use crate::kernel::pipe::new_pipe;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::OpenFile;

/// pipe2(2)
pub fn pipe2(t: &mut Task, fds: UserAddr, flags: Flags) -> SysResult {
    let allowed = (libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) as u64;
    if flags.0 & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let status = (flags.0 as u32) & (libc::O_NONBLOCK | libc::O_DIRECT) as u32;
    let cloexec = flags.0 & libc::O_CLOEXEC as u64 != 0;
    let (r, w) = new_pipe();
    let rf = OpenFile::new(r, libc::O_RDONLY as u32 | status);
    let wf = OpenFile::new(w, libc::O_WRONLY as u32 | status);
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
