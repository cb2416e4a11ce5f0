//! Flushing file data: fsync, fdatasync, syncfs, sync.

use super::Fd;
use crate::abi::SysResult;
use crate::kernel::Task;

/// fsync(2): sandbox files live in memory or on a read-only layer; nothing to flush.
pub fn fsync(t: &mut Task, fd: Fd) -> SysResult {
    t.fds.get(fd.0)?;
    Ok(0)
}

/// fdatasync(2)
pub fn fdatasync(t: &mut Task, fd: Fd) -> SysResult {
    fsync(t, fd)
}

/// syncfs(2)
pub fn syncfs(t: &mut Task, fd: Fd) -> SysResult {
    fsync(t, fd)
}

/// sync(2)
pub fn sync(_t: &mut Task) -> SysResult {
    Ok(0)
}
