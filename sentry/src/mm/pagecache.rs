//! The page cache: pages of host files (the overlay's read-only lower layer, volumes) copied
//! into the memory file on first use and shared by every mapping of the file.
//!
//! Files are keyed by their host identity (device, inode) and remember the version (size,
//! mtime) they were cached at; mapping a file whose version changed drops the old pages from
//! the cache (mappings that hold them keep them). Cached pages are only ever mapped
//! copy-on-write or read-only: nothing writes them after the fill, so the cache always
//! shows the host file's contents, and nothing is ever written back to the host.
//!
//! The cache holds one reference to each page it has. Nothing evicts pages yet: the cache
//! grows with the parts of host files the sandbox has mapped and touched.
//!
//! # Lock order
//! `PageCache::files` → `CachedFile::pages` → `MemoryFile` allocator. Fills (host `pread`)
//! run under `CachedFile::pages`, so two faults on one file never fill a page twice.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::filemap::Mappable;
use crate::abi::{Errno, PAGE_SIZE};
use crate::memory::{FileRange, MemoryFile};

/// A host file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostFileId {
    pub dev: u64,
    pub ino: u64,
}

/// What the host file looked like when it was cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub mtime: (i64, i64),
}

/// The cache of one memory file. See the module documentation.
#[derive(Default)]
pub struct PageCache {
    files: Mutex<HashMap<HostFileId, Arc<CachedFile>>>,
}

/// The cached pages of one version of one host file.
pub struct CachedFile {
    version: Version,
    /// Page index → memory-file offset of the page (the cache's reference). None once this
    /// version has left the cache: later fills are private to their caller.
    pages: Mutex<Option<BTreeMap<u64, u64>>>,
}

impl PageCache {
    /// The cache entry for `id` at `version`, replacing a stale one.
    pub fn file(&self, mf: &MemoryFile, id: HostFileId, version: Version) -> Arc<CachedFile> {
        let mut files = self.files.lock().unwrap();
        if let Some(f) = files.get(&id) {
            if f.version == version {
                return f.clone();
            }
            log::debug!("page cache: {id:?} changed on the host; dropping its pages");
            let old = files.remove(&id).expect("present");
            old.release(mf);
        }
        let f = Arc::new(CachedFile {
            version,
            pages: Mutex::new(Some(BTreeMap::new())),
        });
        files.insert(id, f.clone());
        f
    }

    /// Bytes of memory-file pages the cache holds.
    pub fn cached_bytes(&self) -> u64 {
        let files = self.files.lock().unwrap();
        files
            .values()
            .map(|f| {
                f.pages
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map_or(0, |p| p.len() as u64 * PAGE_SIZE)
            })
            .sum()
    }
}

impl CachedFile {
    fn release(&self, mf: &MemoryFile) {
        if let Some(pages) = self.pages.lock().unwrap().take() {
            for off in pages.into_values() {
                mf.dec_ref(FileRange {
                    offset: off,
                    len: PAGE_SIZE,
                });
            }
        }
    }

    /// The pages `[first, first+count)` (clamped to the file's end), filling missing ones
    /// with `fill(memory-file offset, file offset, len)`. See [`Mappable::pages`].
    fn pages(
        &self,
        mf: &MemoryFile,
        first: u64,
        count: u64,
        mut fill: impl FnMut(u64, u64, u64) -> Result<(), Errno>,
    ) -> Result<Vec<(u64, FileRange)>, Errno> {
        let end = (first + count).min(self.version.size.div_ceil(PAGE_SIZE));
        if first >= end {
            return Ok(Vec::new());
        }
        let mut guard = self.pages.lock().unwrap();
        let Some(pages) = guard.as_mut() else {
            // Stale: fill a private copy for this caller only.
            let n = end - first;
            let r = mf.allocate(n * PAGE_SIZE).map_err(|_| Errno::ENOMEM)?;
            if let Err(e) = fill(r.offset, first * PAGE_SIZE, n * PAGE_SIZE) {
                mf.dec_ref(r);
                return Err(e);
            }
            return Ok(vec![(first, r)]);
        };
        // Fill the missing runs, each into one contiguous allocation.
        let mut idx = first;
        while idx < end {
            if pages.contains_key(&idx) {
                idx += 1;
                continue;
            }
            let run_end = pages.range(idx..end).next().map_or(end, |(&k, _)| k);
            let n = run_end - idx;
            let r = mf.allocate(n * PAGE_SIZE).map_err(|_| Errno::ENOMEM)?;
            if let Err(e) = fill(r.offset, idx * PAGE_SIZE, n * PAGE_SIZE) {
                mf.dec_ref(r);
                return Err(e);
            }
            for k in 0..n {
                pages.insert(idx + k, r.offset + k * PAGE_SIZE);
            }
            idx = run_end;
        }
        Ok(runs(pages, first, end, mf))
    }
}

/// The runs of contiguous memory-file pages behind page indices `[first, end)` (all present
/// in `pages`), each with a new reference.
pub(crate) fn runs(
    pages: &BTreeMap<u64, u64>,
    first: u64,
    end: u64,
    mf: &MemoryFile,
) -> Vec<(u64, FileRange)> {
    let mut out: Vec<(u64, FileRange)> = Vec::new();
    for (&idx, &off) in pages.range(first..end) {
        match out.last_mut() {
            Some((start, r)) if *start + r.len / PAGE_SIZE == idx && r.offset + r.len == off => {
                r.len += PAGE_SIZE;
            }
            _ => out.push((
                idx,
                FileRange {
                    offset: off,
                    len: PAGE_SIZE,
                },
            )),
        }
    }
    for (_, r) in &out {
        mf.inc_ref(*r);
    }
    out
}

/// A mapping's view of a cached host file: the host fd to fill from and the cache entry.
pub struct CachedMapping {
    mf: Arc<MemoryFile>,
    fd: Arc<OwnedFd>,
    file: Arc<CachedFile>,
}

impl CachedMapping {
    /// The cached view of the host regular file `fd` (open for reading) with `id` at
    /// `version`.
    pub fn new(
        mf: &Arc<MemoryFile>,
        fd: Arc<OwnedFd>,
        id: HostFileId,
        version: Version,
    ) -> CachedMapping {
        CachedMapping {
            mf: mf.clone(),
            fd,
            file: mf.page_cache().file(mf, id, version),
        }
    }
}

impl Mappable for CachedMapping {
    fn size(&self) -> u64 {
        self.file.version.size
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.file
            .pages(&self.mf, first, count, |off, file_off, len| {
                self.mf
                    .fill_from(self.fd.as_fd(), file_off, off, len as usize)
                    .map(drop)
                    .map_err(|e| {
                        log::warn!("page cache: reading a host file: {e}");
                        Errno::EIO
                    })
            })
    }

    fn shared_writable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fills_once_and_shares_pages() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let path = std::env::temp_dir().join(format!("runsc-rs-pc-{}", std::process::id()));
        let mut data = vec![7u8; 3 * PAGE_SIZE as usize];
        data.extend_from_slice(b"tail");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let fd: OwnedFd = std::fs::File::open(&path).unwrap().into();
        let _ = std::fs::remove_file(&path);
        let fd = Arc::new(fd);
        let id = HostFileId { dev: 1, ino: 2 };
        let version = Version {
            size: data.len() as u64,
            mtime: (0, 0),
        };
        let a = CachedMapping::new(&mf, fd.clone(), id, version);
        let b = CachedMapping::new(&mf, fd.clone(), id, version);
        // Past the end nothing is returned; the last page is partial and zero-padded.
        let ra = a.pages(2, 10).unwrap();
        assert_eq!(ra.len(), 1);
        assert_eq!(ra[0].0, 2);
        assert_eq!(ra[0].1.len, 2 * PAGE_SIZE);
        let mut buf = [0u8; 8];
        mf.read(ra[0].1.offset + PAGE_SIZE, &mut buf);
        assert_eq!(&buf, b"tail\0\0\0\0");
        let rb = b.pages(3, 1).unwrap();
        assert_eq!(rb[0].1.offset, ra[0].1.offset + PAGE_SIZE);
        // The cache and both callers hold the shared page.
        assert_eq!(mf.refs(rb[0].1.offset), 3);
        assert_eq!(mf.page_cache().cached_bytes(), 2 * PAGE_SIZE);
        // A new version drops the cached pages; holders keep theirs.
        let changed = Version {
            size: 1,
            mtime: (1, 0),
        };
        let c = CachedMapping::new(&mf, fd, id, changed);
        assert_eq!(mf.refs(rb[0].1.offset), 2);
        assert_eq!(c.pages(0, 4).unwrap()[0].1.len, PAGE_SIZE);
        assert!(a.pages(0, 1).is_ok());
        for (_, r) in ra.into_iter().chain(rb) {
            mf.dec_ref(r);
        }
    }
}
