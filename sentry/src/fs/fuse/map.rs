//! Mappings of FUSE files: pages of the page cache ([`crate::mm::pagecache`]) filled by
//! READ requests on the handle of the open file the mapping was made from. The mapping
//! holds the handle, so its RELEASE waits for the mapping's end (FLUSH still goes at the
//! last close), as in Linux.
//!
//! The cache knows a FUSE file as (the filesystem's device number with bit 63 set, which
//! no host device number has; the node ID) at a version counting the opens that drop the
//! cached pages ([`FuseNode::changes`](super::node::FuseNode): an open without
//! FOPEN_KEEP_CACHE, a mapping of a FOPEN_DIRECT_IO file), as Linux without
//! `auto_inval_data`. Mappings made before such an open keep the pages they hold, where
//! Linux would show them the new data; an open while a shared mapping that may be written
//! exists writes the pages back and keeps them instead, so that every shared mapping of the
//! file (SQLite's `-shm` in each process) shares one set of pages.
//!
//! Changes made through the sentry update the cached pages in place, so existing
//! mappings see them: a write(2) copies its bytes into the pages cached (after the daemon
//! took them), a write(2) past the end or a truncation sets the file's size (a fault past
//! it is SIGBUS; the bytes past a smaller size become zero). Pages already mapped past a
//! smaller size stay mapped, where Linux unmaps them (SIGBUS there).
//!
//! Shared mappings of a file not opened with FOPEN_DIRECT_IO take stores in the cached
//! pages (a writable one needs a handle open for writing: EACCES otherwise). The stores go
//! to the daemon as WRITE requests on the mapping's handle (FUSE_WRITE_CACHE, without
//! O_APPEND) at msync (MS_SYNC or MS_ASYNC), fsync and fdatasync, the last close of an
//! open file of the node (before FLUSH) and the end of the last VMA of the mapping (munmap,
//! exit, exec). While such a mapping lives, read(2) through the sentry reads the cached
//! pages (filling missing ones by READ), so it sees the stores at once.
//! Every cached page below the file's end goes, stored to or not: the sentry does not
//! track which pages were written (no write-fault notification from the memory manager
//! yet). A failed write-back's error (the daemon's, ENOTCONN once it died; EIO for a short
//! WRITE) shows at msync or fsync, as Linux's; one at munmap at the next of those. Write-backs are not ordered against a concurrent write(2) of the same bytes: the
//! daemon may keep the older of the two until the next write-back.
//!
//! A file opened with FOPEN_DIRECT_IO maps only privately (MAP_SHARED is ENODEV) and each
//! mapping of it fills afresh, as Linux's `fuse_file_mmap` without
//! FUSE_DIRECT_IO_ALLOW_MMAP (which the sentry does not offer).
//!
//! A fill or a write-back waits for the daemon without a task (the memory manager's
//! faults have none), on the calling task's thread, killably
//! ([`crate::waiter::wait_killable`]): a daemon that dies or an unmount ends it (the fill
//! is EIO, the fault SIGBUS; the write-back ENOTCONN); the death of the waiting task (SIGKILL,
//! group exit) ends it with EINTR, which the fault turns into no signal at all (the task
//! exits at its next look at its signal state). Ordinary signals do not end it (a fault
//! cannot be restarted by a handler): a daemon that never answers keeps the faulting
//! thread, and other faults on its address space, waiting until it answers, its connection
//! ends or the task is killed. Other processes go on. A write-back at munmap waits the
//! same way, holding the address space's lock; one made by a dying task (the last VMA or
//! close of a killed process) queues its WRITEs without waiting, so the stores still
//! reach a daemon that answers, as Linux's page cache outlives the task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::node::{FuseNode, Handle};
use super::proto;
use crate::abi::{Errno, PAGE_SIZE};
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
    let generation = h.node.changes.load(Ordering::Relaxed);
    let version = Version {
        size: 0,
        mtime: (0, generation as i64),
    };
    let source: Arc<dyn PageSource> = Arc::new(Reader(h.clone()));
    let cached = CachedMapping::with_source(mf, source, id, version);
    cached.set_size(st.size.max(0) as u64);
    let m = Arc::new(FuseMapping {
        cached,
        direct_io,
        handle: h.clone(),
        writers: AtomicU64::new(0),
        generation,
    });
    let mut maps = h.node.maps.lock().unwrap();
    maps.retain(|w| w.strong_count() > 0);
    maps.push(Arc::downgrade(&m));
    Some(m)
}

/// The live mappings of `node`, each cache entry once.
fn live(node: &FuseNode) -> Vec<Arc<FuseMapping>> {
    let maps = node.maps.lock().unwrap();
    let mut out: Vec<Arc<FuseMapping>> = Vec::new();
    for m in maps.iter().filter_map(Weak::upgrade) {
        if !out.iter().any(|o| o.cached.same_entry(&m.cached)) {
            out.push(m);
        }
    }
    out
}

/// The live mappings of `node` that a shared mapping may write.
fn writable(node: &FuseNode) -> Vec<Arc<FuseMapping>> {
    let maps = node.maps.lock().unwrap();
    maps.iter()
        .filter_map(Weak::upgrade)
        .filter(|m| m.writers.load(Ordering::Acquire) > 0)
        .collect()
}

/// Whether a shared mapping that may be written exists for `node`.
pub(super) fn has_writers(node: &FuseNode) -> bool {
    !writable(node).is_empty()
}

/// Writes the cached pages of every mapping of `node` that a shared mapping may have
/// written back to the daemon; the error of this or of an earlier write-back nobody could
/// be told of (at munmap), as Linux's `file_check_and_advance_wb_err`.
pub(super) fn write_back(node: &FuseNode) -> Result<(), Errno> {
    let maps = writable(node);
    let mut result = Ok(());
    for (k, m) in maps.iter().enumerate() {
        if maps[..k].iter().any(|o| o.cached.same_entry(&m.cached)) {
            continue;
        }
        if let Err(e) = m.write_back() {
            result = Err(e);
        }
    }
    let earlier = node.writeback_error.swap(0, Ordering::AcqRel);
    if earlier != 0 {
        result = Err(Errno::from_raw(earlier));
    }
    result
}

/// Up to `len` bytes of the file at `off` from the cached pages of a mapping of `node`
/// that a shared mapping may write (filling the missing pages by READ): what a read(2)
/// returns while such a mapping lives, whose stores are the file's data at once. None
/// when there is no such mapping.
pub(super) fn read_cached(node: &FuseNode, off: u64, len: usize) -> Option<Result<Vec<u8>, Errno>> {
    let m = writable(node).into_iter().next()?;
    let end = off.saturating_add(len as u64).min(m.cached.size());
    if off >= end {
        return Some(Ok(Vec::new()));
    }
    let first = off / PAGE_SIZE;
    let runs = match m.cached.pages(first, end.div_ceil(PAGE_SIZE) - first) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    let mf = m.cached.memory_file();
    let mut out = vec![0u8; (end - off) as usize];
    for (idx, r) in &runs {
        let (start, stop) = (
            (idx * PAGE_SIZE).max(off),
            (idx * PAGE_SIZE + r.len).min(end),
        );
        if start < stop {
            let at = r.offset + (start - idx * PAGE_SIZE);
            mf.read(at, &mut out[(start - off) as usize..(stop - off) as usize]);
        }
    }
    for (_, r) in runs {
        mf.dec_ref(r);
    }
    Some(Ok(out))
}

/// A write(2) of `data` at `off` reached the daemon: the cached pages of every mapping of
/// `node` take it, and the file's size grows to its end.
pub(super) fn written(node: &FuseNode, off: u64, data: &[u8]) {
    let end = off + data.len() as u64;
    changed(node, |m| {
        if end > m.cached.size() {
            m.cached.set_size(end);
        }
        m.cached.write_cached(off, data);
    });
}

/// A truncation to `size` reached the daemon: every mapping of `node` sees the new size.
pub(super) fn resized(node: &FuseNode, size: u64) {
    changed(node, |m| m.cached.set_size(size));
}

/// Applies a change of the file's data made through the sentry to the cached pages of
/// every live mapping of `node`. When none of them holds the current version (the cache
/// may still hold pages no mapping holds, which nothing would update), later mappings fill
/// afresh.
fn changed(node: &FuseNode, apply: impl Fn(&FuseMapping)) {
    let current = node.changes.load(Ordering::Relaxed);
    let mut updated = false;
    for m in live(node) {
        apply(&m);
        updated |= m.generation == current;
    }
    if !updated {
        node.drop_cached_pages();
    }
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
pub(super) struct FuseMapping {
    cached: CachedMapping,
    /// Opened with FOPEN_DIRECT_IO: no shared mappings.
    direct_io: bool,
    /// The handle of the open file mapped: write-backs WRITE on it.
    handle: Arc<Handle>,
    /// The shared mappings that may be written (VMAs' [`WritableMapping`]s) alive.
    ///
    /// [`WritableMapping`]: crate::mm::filemap::WritableMapping
    writers: AtomicU64,
    /// The node's [`FuseNode::changes`] when the mapping was made: its cache entry's
    /// version.
    generation: u64,
}

impl FuseMapping {
    /// Sends the cached pages below the file's end to the daemon as WRITE requests on the
    /// mapping's handle (open for writing, or no shared mapping could have written them).
    fn write_back(&self) -> Result<(), Errno> {
        let h = &self.handle;
        let chunk = u64::from(h.node.max_write()).max(PAGE_SIZE);
        let flags = h.flags & !(libc::O_APPEND as u32);
        let result = self.cached.write_back_with(chunk, |pos, buf| {
            if crate::waiter::thread_owner_dying() {
                // A killed task's last VMA or close: nobody can wait, and the stores
                // must not be lost (Linux's page cache outlives the task). The WRITE
                // goes to the daemon's queue without a waiter; its reply is dropped.
                h.node.write_background(h.who, h.fh, pos, buf, flags);
                return Ok(());
            }
            match h.node.write_chunk(None, h.who, h.fh, pos, buf, flags, true) {
                Ok(w) if w == buf.len() => Ok(()),
                r => {
                    log::debug!("fuse: write-back of {} bytes at {pos}: {r:?}", buf.len());
                    // The daemon's error as it is (a dead one's ENOTCONN), as Linux's
                    // errseq gives it to msync and fsync; a short WRITE is EIO.
                    Err(r.err().unwrap_or(Errno::EIO))
                }
            }
        });
        h.node.written_back();
        result
    }
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

    /// Shared mappings store into the cached pages; write-backs bring the stores to the
    /// daemon.
    fn shared_writable(&self) -> bool {
        !self.direct_io
    }

    fn shared_mappable(&self) -> bool {
        !self.direct_io
    }

    fn sync(&self) -> Result<(), Errno> {
        write_back(&self.handle.node)
    }

    /// The last VMA of a writable shared mapping going (munmap, exit, exec) writes its
    /// pages back; a failure shows at the file's next msync or fsync.
    fn count_writable_mapping(&self, up: bool) {
        if up {
            self.writers.fetch_add(1, Ordering::AcqRel);
            return;
        }
        if self.writers.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Err(e) = self.write_back() {
                self.handle
                    .node
                    .writeback_error
                    .store(e as i32, Ordering::Release);
            }
        }
    }
}
