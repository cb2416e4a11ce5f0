//! Flushing file data: fsync, fdatasync, syncfs, sync, sync_file_range.

use std::sync::Arc;

use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::vfs::{FileType, OpenFile};

/// The open file `fd` for a flush (O_PATH descriptors are EBADF).
fn file(t: &Task, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
    t.fds.get_io(fd.0)
}

/// fsync(2): sandbox files live in memory or on a read-only layer; only a file whose data
/// lives elsewhere (FUSE: stores through shared mappings) has something to write.
pub fn fsync(t: &mut Task, fd: Fd) -> SysResult {
    file(t, fd)?.ops().fsync()?;
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

const SYNC_FILE_RANGE_WAIT_BEFORE: u32 = 1;
const SYNC_FILE_RANGE_WRITE: u32 = 2;
const SYNC_FILE_RANGE_WAIT_AFTER: u32 = 4;

/// sync_file_range(2): the checks Linux makes; the writeback it starts or waits for is what
/// fsync does, which has nothing to flush.
pub fn sync_file_range(t: &mut Task, fd: Fd, offset: i64, nbytes: i64, flags: u32) -> SysResult {
    let f = file(t, fd)?;
    let valid = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if flags & !valid != 0 || offset < 0 {
        return Err(Errno::EINVAL);
    }
    // The end must not overflow a signed offset.
    match offset.checked_add(nbytes) {
        Some(end) if end >= 0 && end >= offset => {}
        _ => return Err(Errno::EINVAL),
    }
    let kind = f.dentry.as_ref().map(|d| d.inode.file_type()).transpose()?;
    match kind {
        Some(
            FileType::Regular | FileType::Directory | FileType::Symlink | FileType::BlockDevice,
        ) => Ok(0),
        _ => Err(Errno::ESPIPE),
    }
}
