//! Mappings of FUSE files: pages of the page cache ([`crate::mm::pagecache`]) filled by
//! READ requests on the handle of the open file the mapping was made from. The mapping
//! holds the handle, so its RELEASE waits for the mapping's end (FLUSH still goes at the
//! last close), as in Linux.
//!
//! The cache knows a FUSE file as (the filesystem's device number with bit 63 set, which
//! no host device number has; the node ID) at a version of (size, mtime,
//! [`FuseNode::changes`](super::node::FuseNode)): a write or truncation through the
//! sentry, an open without FOPEN_KEEP_CACHE, and a new size or mtime the daemon reports
//! all make later mappings fill afresh. Mappings made before keep the pages they hold (as
//! the page cache's host files do), where Linux would show them the new data in pages
//! not yet copied on write.
//!
//! Stores through a MAP_SHARED mapping are never written back: shared mappings stay
//! read-only (`shared_writable` is false, so a writable one is ENODEV, as before mapping
//! was supported) and private ones copy on write. A file opened with FOPEN_DIRECT_IO maps
//! only privately (MAP_SHARED is ENODEV) and each mapping of it fills afresh, as Linux's
//! `fuse_file_mmap` without FUSE_DIRECT_IO_ALLOW_MMAP (which the sentry does not offer).
//!
//! A fill waits for the daemon without a task (the memory manager's faults have none), on
//! the faulting task's thread, killably ([`crate::waiter::wait_killable`]): a daemon that
//! dies or an unmount ends it (the fill is EIO, the fault SIGBUS); the death of the
//! faulting task (SIGKILL, group exit) ends it with EINTR, which the fault turns into no
//! signal at all (the task exits at its next look at its signal state). Ordinary signals
//! do not end it (a fault cannot be restarted by a handler): a daemon that never answers
//! keeps the faulting thread, and other faults on its address space, waiting until it
//! answers, its connection ends or the task is killed. Other processes go on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::node::Handle;
use super::proto;
use crate::abi::Errno;
use crate::memory::FileRange;
use crate::memory::MemoryFile;
use crate::mm::filemap::Mappable;
use crate::mm::pagecache::{CachedMapping, HostFileId, PageSource, Version};

/// The mapping of the open file with handle `h` and `FOPEN_*` flags `open_flags`; None
/// when its attributes cannot be had.
pub(super) fn mapping(
    mf: &Arc<MemoryFile>,
    h: &Arc<Handle>,
    open_flags: u32,
) -> Option<Arc<dyn Mappable>> {
    let direct_io = open_flags & proto::FOPEN_DIRECT_IO != 0;
    if direct_io {
        // Linux's `fuse_file_mmap` drops the cached pages of a direct_io file at each mmap.
        h.node.drop_cached_pages();
    }
    let st = crate::vfs::Inode::stat(&*h.node).ok()?;
    let id = HostFileId {
        dev: 1 << 63 | h.node.fs_dev(),
        ino: h.node.nodeid(),
    };
    let changes = h.node.changes.load(Ordering::Relaxed) as i64;
    let version = Version {
        size: st.size.max(0) as u64,
        mtime: (st.mtime, changed_nsec(st.mtime_nsec, changes)),
    };
    let source: Arc<dyn PageSource> = Arc::new(Reader(h.clone()));
    Some(Arc::new(FuseMapping {
        cached: CachedMapping::with_source(mf, source, id, version),
        direct_io,
    }))
}

/// The second half of a version's mtime: the nanoseconds plus 10^9 for each change made
/// through the sentry, so that a change shows even where the daemon's mtime does not move
/// (two writes in one clock tick).
fn changed_nsec(nsec: i64, changes: i64) -> i64 {
    nsec.wrapping_add(changes.wrapping_mul(1_000_000_000))
}

/// Fills cached pages with READ on a handle.
struct Reader(Arc<Handle>);

impl PageSource for Reader {
    fn fill(&self, mf: &MemoryFile, off: u64, file_off: u64, len: u64) -> Result<(), Errno> {
        let h = &self.0;
        let chunk = h.node.read_size();
        let mut done = 0u64;
        while done < len {
            let want = ((len - done) as usize).min(chunk);
            let data = h
                .node
                .read_chunk(None, h.who, h.fh, file_off + done, want, h.flags)
                .map_err(|e| {
                    if e == Errno::EINTR && crate::waiter::thread_owner_dying() {
                        // The faulting task is dying; the daemon's own EINTR is an EIO.
                        return e;
                    }
                    log::debug!("fuse: filling mapped pages: READ failed: {e:?}");
                    Errno::EIO
                })?;
            mf.write(off + done, &data);
            done += data.len() as u64;
            if data.len() < want {
                // The end of the file (Linux's `fuse_short_read`): the rest is zero.
                break;
            }
        }
        if done < len {
            mf.zero(off + done, len - done);
        }
        Ok(())
    }
}

/// A FUSE file's pages in the page cache.
struct FuseMapping {
    cached: CachedMapping,
    /// Opened with FOPEN_DIRECT_IO: no shared mappings.
    direct_io: bool,
}

impl Mappable for FuseMapping {
    fn size(&self) -> u64 {
        self.cached.size()
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.cached.pages(first, count)
    }

    fn fault_pages(&self, first: u64, count: u64, at: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.cached.fault_pages(first, count, at)
    }

    fn shared_writable(&self) -> bool {
        false
    }

    fn shared_mappable(&self) -> bool {
        !self.direct_io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_gives_another_version() {
        let mut seen = std::collections::HashSet::new();
        for nsec in [0, 1, 999_999_999] {
            for changes in 0..4 {
                assert!(seen.insert(changed_nsec(nsec, changes)), "{nsec} {changes}");
            }
        }
    }
}
