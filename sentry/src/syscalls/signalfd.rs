//! signalfd and signalfd4: signals read from a file descriptor.

use std::sync::Arc;

use super::fd::nofile_limit;
use super::{Fd, Flags};
use crate::abi::{Errno, SysResult};
use crate::kernel::signal::UNBLOCKABLE;
use crate::kernel::signalfd::SignalFd;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::{FileKind, OpenFile};

/// signalfd4(2)
pub fn signalfd4(t: &mut Task, fd: Fd, mask: UserAddr, size: usize, flags: Flags) -> SysResult {
    let allowed = (libc::O_NONBLOCK | libc::O_CLOEXEC) as u64;
    if flags.0 & !allowed != 0 || size != 8 {
        return Err(Errno::EINVAL);
    }
    let set: u64 = t.mm.read_obj(mask)?;
    let set = set & !UNBLOCKABLE;
    if fd.0 != -1 {
        let f = t.fds.get(fd.0)?;
        let FileKind::SignalFd(sfd) = f.kind() else {
            return Err(Errno::EINVAL);
        };
        sfd.set_mask(set);
        return Ok(fd.0 as u64);
    }
    let ops = Arc::new(SignalFd::new(&t.kernel, t.tg.clone(), set));
    let f = OpenFile::of_kind(
        FileKind::SignalFd(ops),
        libc::O_RDWR as u32 | (flags.0 as u32 & libc::O_NONBLOCK as u32),
    );
    let cloexec = flags.0 & libc::O_CLOEXEC as u64 != 0;
    Ok(t.fds.install(f, 0, cloexec, nofile_limit(t))? as u64)
}

/// signalfd(2)
pub fn signalfd(t: &mut Task, fd: Fd, mask: UserAddr, size: usize) -> SysResult {
    signalfd4(t, fd, mask, size, Flags(0))
}
