//! File-backed mappings: files whose pages live in the memory file and can be mapped.
//!
//! A tmpfs file maps its own pages; a host file maps pages of the [page cache]. Private
//! mappings always map those pages copy-on-write; shared mappings of a file that is
//! [`Mappable::shared_writable`] map them writable, so stores are the file's data at once.
//!
//! [page cache]: super::pagecache

use std::sync::Arc;

use crate::abi::Errno;
use crate::memory::FileRange;

/// A file that can provide memory-file pages for its offsets.
pub trait Mappable: Send + Sync {
    /// The file's size in bytes: pages at or past `size.div_ceil(PAGE_SIZE)` are not mapped.
    fn size(&self) -> u64;

    /// The memory-file pages behind file pages `[first, first + count)`, allocated or filled
    /// on first use, as runs `(first page index of the run, memory-file range)` in order.
    /// Pages past the end of the file are left out. Each returned range carries one new
    /// reference, owned by the caller.
    ///
    /// # Errors
    /// ENOMEM when the memory file is exhausted, EIO when a host file cannot be read.
    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno>;

    /// The memory-file pages a fault at file page `at` maps, looked for in
    /// `[first, first + count)` (which holds `at`), as [`Mappable::pages`] returns them. By
    /// default all of them; a file whose pages are filled on first use (the page cache) may
    /// fill only some around `at` and leave out the others it does not hold yet.
    ///
    /// # Errors
    /// As for [`Mappable::pages`].
    fn fault_pages(&self, first: u64, count: u64, at: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let _ = at;
        self.pages(first, count)
    }

    /// Whether stores through a MAP_SHARED mapping may go to these pages (tmpfs files). When
    /// false (cached pages of a host file) shared mappings never get write access.
    fn shared_writable(&self) -> bool;

    /// Whether MAP_SHARED mappings are allowed at all (ENODEV when not): a FUSE file opened
    /// with FOPEN_DIRECT_IO maps only privately, as Linux's without
    /// FUSE_DIRECT_IO_ALLOW_MMAP.
    fn shared_mappable(&self) -> bool {
        true
    }

    /// Writes the stores made through shared mappings back to where the file's data lives
    /// (`msync`): a FUSE file's daemon. Files whose pages are their data have nothing to
    /// do.
    ///
    /// # Errors
    /// EIO when the write-back failed.
    fn sync(&self) -> Result<(), Errno> {
        Ok(())
    }

    /// Counts one more (`up`) or one fewer shared mapping that may be written (VM_MAYWRITE),
    /// for files that refuse F_SEAL_WRITE while one exists. [`WritableMapping`] calls it.
    fn count_writable_mapping(&self, _up: bool) {}

    /// Whether a mapping of the file keeps its size (Linux's VM_DONTEXPAND: an AIO ring):
    /// mremap may move it but not resize it (EFAULT), nor leave it behind with
    /// MREMAP_DONTUNMAP (EINVAL).
    fn fixed_size_mapping(&self) -> bool {
        false
    }

    /// How many of the file pages `[first, last]` the file's memory holds now, without
    /// filling any (cachestat(2)): 0 for a file that keeps no pages.
    fn cached_pages(&self, first: u64, last: u64) -> u64 {
        let _ = (first, last);
        0
    }
}

/// A shared mapping that may be written, held by every VMA of it (splits and fork children
/// clone it): the file counts it from creation until the last VMA goes.
pub struct WritableMapping {
    file: Arc<dyn Mappable>,
}

impl WritableMapping {
    /// Counts a new writable shared mapping of `file`.
    pub fn new(file: &Arc<dyn Mappable>) -> WritableMapping {
        file.count_writable_mapping(true);
        WritableMapping { file: file.clone() }
    }
}

impl Clone for WritableMapping {
    fn clone(&self) -> WritableMapping {
        WritableMapping::new(&self.file)
    }
}

impl Drop for WritableMapping {
    fn drop(&mut self) {
        self.file.count_writable_mapping(false);
    }
}

/// What a file VMA maps.
#[derive(Clone)]
pub struct FileMapping {
    pub file: Arc<dyn Mappable>,
    /// File offset of the mapping's first byte (page aligned).
    pub offset: u64,
    /// MAP_SHARED only: whether `mprotect` may add write access (the file was open for
    /// writing and writes reach it).
    pub may_write: bool,
    /// Whether `mprotect` may add execute access (VM_MAYEXEC: the file is not on a
    /// `noexec` mount).
    pub may_exec: bool,
    /// Device and inode as `stat` shows them, for `/proc/[pid]/maps`.
    pub dev: u64,
    pub ino: u64,
    /// Set for shared mappings that may be written (see [`WritableMapping`]).
    pub writer: Option<WritableMapping>,
}

impl std::fmt::Debug for FileMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMapping")
            .field("offset", &self.offset)
            .field("may_write", &self.may_write)
            .field("may_exec", &self.may_exec)
            .field("dev", &self.dev)
            .field("ino", &self.ino)
            .finish_non_exhaustive()
    }
}
