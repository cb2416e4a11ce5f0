//! The page cache: pages of host files (the overlay's read-only lower layer, volumes) copied
//! into the memory file on first use and shared by every mapping of the file. A fault fills
//! only a window around the faulting page (`mm::pagecache::READAHEAD_PAGES`): each page
//! filled costs the host a page allocation, a clear and a copy, and programs touch a
//! fraction of their text.
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
//! A file of at most [`RESERVE_MAX`] bytes gets, at its first fill, a reserved range of the
//! memory file as long as the file ([`MemoryFile::reserve`]: no memory, only offsets), and
//! each page is filled at its place there: windows filled at different times lie side by
//! side, so a fault or a program's prefault maps the pages of a file in one host mapping
//! per run of cached pages, not one per fill (busybox's text: 11 mappings became 3). The
//! pages never filled go back to the free list when the version leaves the cache.
//!
//! # Lock order
//! `PageCache::files` → `CachedFile::pages` → `MemoryFile` allocator. Fills (host `pread`)
//! run under `CachedFile::pages`, so two faults on one file never fill a page twice.

#![deny(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{FileRange, MemoryFile};
use crate::abi::{Errno, PAGE_SIZE};

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

/// Files larger than this are filled into separate allocations (a reservation ties up as
/// much of the memory file's offsets as the file is long).
pub const RESERVE_MAX: u64 = 64 << 20;

/// The cache of one memory file. See the module documentation.
#[derive(Default)]
pub struct PageCache {
    files: Mutex<HashMap<HostFileId, Arc<CachedFile>>>,
}

/// The cached pages of one version of one host file.
pub struct CachedFile {
    pub(crate) version: Version,
    /// The file's size now: the version's, or what a source that changes the file in place
    /// set ([`CachedFile::set_size`]).
    size: AtomicU64,
    /// The cached pages. None once this version has left the cache: later fills are
    /// private to their caller.
    pages: Mutex<Option<Pages>>,
}

/// The cached pages of a [`CachedFile`].
#[derive(Default)]
struct Pages {
    /// Page index → memory-file offset of the page (the cache's reference).
    map: BTreeMap<u64, u64>,
    /// The file's reserved range (see the module documentation), page `n` at `n` pages
    /// from its start, once the first fill made it: then every page of `map` lies there.
    reserved: Option<FileRange>,
    /// The first fill has been made (a reservation is tried once).
    started: bool,
}

impl Pages {
    /// Where the missing pages `[idx, idx + n)` go: their place in the reservation
    /// (committed), or a new allocation.
    fn place(&mut self, mf: &MemoryFile, size: u64, idx: u64, n: u64) -> Result<FileRange, Errno> {
        if !self.started {
            self.started = true;
            let len = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
            if len <= RESERVE_MAX {
                self.reserved = mf.reserve(len).ok();
            }
        }
        match self.reserved.filter(|res| (idx + n) * PAGE_SIZE <= res.len) {
            Some(res) => {
                let r = FileRange {
                    offset: res.offset + idx * PAGE_SIZE,
                    len: n * PAGE_SIZE,
                };
                debug_assert!(r.offset + r.len <= res.offset + res.len);
                mf.commit(r);
                Ok(r)
            }
            None => mf.allocate(n * PAGE_SIZE).map_err(|_| Errno::ENOMEM),
        }
    }

    /// Gives back pages [`Pages::place`] returned that were not filled.
    fn unplace(&self, mf: &MemoryFile, r: FileRange) {
        if in_reservation(self.reserved, r.offset) {
            mf.uncommit(r);
        } else {
            mf.dec_ref(r);
        }
    }
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
            size: AtomicU64::new(version.size),
            pages: Mutex::new(Some(Pages::default())),
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
                    .map_or(0, |p| p.map.len() as u64 * PAGE_SIZE)
            })
            .sum()
    }
}

impl CachedFile {
    /// How many of the file pages `[first, last]` the cache holds (none once this version
    /// has left the cache).
    pub fn held_pages(&self, first: u64, last: u64) -> u64 {
        match &*self.pages.lock().unwrap() {
            Some(p) if first <= last => p.map.range(first..=last).count() as u64,
            _ => 0,
        }
    }

    fn release(&self, mf: &MemoryFile) {
        let Some(pages) = self.pages.lock().unwrap().take() else {
            return;
        };
        // The reserved pages never filled go back as runs between the filled ones. Pages
        // of a file grown past its reservation were allocated on their own.
        let mut unfilled = pages.reserved.map(|r| r.offset);
        for (&idx, &off) in &pages.map {
            let reserved = in_reservation(pages.reserved, off);
            if let Some(at) = unfilled.filter(|&at| reserved && at < off) {
                mf.unreserve(FileRange {
                    offset: at,
                    len: off - at,
                });
            }
            if reserved {
                debug_assert_eq!(
                    Some(off),
                    pages.reserved.map(|r| r.offset + idx * PAGE_SIZE)
                );
                unfilled = Some(off + PAGE_SIZE);
            }
            mf.dec_ref(FileRange {
                offset: off,
                len: PAGE_SIZE,
            });
        }
        if let (Some(at), Some(r)) = (unfilled, pages.reserved) {
            if at < r.offset + r.len {
                mf.unreserve(FileRange {
                    offset: at,
                    len: r.offset + r.len - at,
                });
            }
        }
    }

    /// The file's size now.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// The file's size changed in place (a write or truncation its source made): the bytes
    /// of cached pages past a smaller size become zero (what the file reads as if it grows
    /// again), as Linux's `truncate_pagecache` zeroes the partial page. Whole pages past
    /// the end stay cached, but no fault maps them while the file is shorter.
    pub fn set_size(&self, mf: &MemoryFile, size: u64) {
        let guard = self.pages.lock().unwrap();
        let old = self.size.swap(size, Ordering::AcqRel);
        let Some(pages) = guard.as_ref() else {
            return;
        };
        if size >= old {
            return;
        }
        for (&idx, &off) in pages.map.range(size / PAGE_SIZE..old.div_ceil(PAGE_SIZE)) {
            let skip = size.saturating_sub(idx * PAGE_SIZE).min(PAGE_SIZE);
            mf.zero(off + skip, PAGE_SIZE - skip);
        }
    }

    /// Copies `data`, the file's new bytes at `file_off` (written to the source), into the
    /// cached pages that hold them, so mappings of them see the write at once (pages not
    /// cached are filled from the source later).
    pub fn write_cached(&self, mf: &MemoryFile, file_off: u64, data: &[u8]) {
        let guard = self.pages.lock().unwrap();
        let Some(pages) = guard.as_ref() else {
            return;
        };
        let end = file_off + data.len() as u64;
        for (&idx, &off) in pages
            .map
            .range(file_off / PAGE_SIZE..end.div_ceil(PAGE_SIZE))
        {
            let start = (idx * PAGE_SIZE).max(file_off);
            let stop = ((idx + 1) * PAGE_SIZE).min(end);
            mf.write(
                off + (start - idx * PAGE_SIZE),
                &data[(start - file_off) as usize..(stop - file_off) as usize],
            );
        }
    }

    /// The cached pages holding the file's bytes below its size, as runs (first page
    /// index, memory-file range) each with a new reference: what a write-back sends.
    pub fn cached_runs(&self, mf: &MemoryFile) -> Vec<(u64, FileRange)> {
        let guard = self.pages.lock().unwrap();
        let Some(pages) = guard.as_ref() else {
            return Vec::new();
        };
        runs(&pages.map, 0, self.size().div_ceil(PAGE_SIZE), mf)
    }

    /// The pages `[first, first+count)` (clamped to the file's end), filling the missing
    /// ones that lie in `fill` with `fill_page(memory-file offset, file offset, len)`: what
    /// a mapping's `pages` returns (page index and range, each with a new reference), less
    /// the missing pages outside `fill`.
    pub(crate) fn pages(
        &self,
        mf: &MemoryFile,
        first: u64,
        count: u64,
        fill: Range<u64>,
        mut fill_pages: impl FnMut(u64, u64, u64) -> Result<(), Errno>,
    ) -> Result<Vec<(u64, FileRange)>, Errno> {
        let end = (first + count).min(self.size().div_ceil(PAGE_SIZE));
        if first >= end {
            return Ok(Vec::new());
        }
        let fill = fill.start.max(first)..fill.end.min(end);
        let mut guard = self.pages.lock().unwrap();
        let Some(pages) = guard.as_mut() else {
            // Stale: fill a private copy for this caller only.
            if fill.is_empty() {
                return Ok(Vec::new());
            }
            let n = fill.end - fill.start;
            let r = mf.allocate(n * PAGE_SIZE).map_err(|_| Errno::ENOMEM)?;
            if let Err(e) = fill_pages(r.offset, fill.start * PAGE_SIZE, n * PAGE_SIZE) {
                mf.dec_ref(r);
                return Err(e);
            }
            return Ok(vec![(fill.start, r)]);
        };
        // Fill the missing runs, each into one contiguous allocation (one host read).
        let mut idx = fill.start;
        while idx < fill.end {
            if pages.map.contains_key(&idx) {
                idx += 1;
                continue;
            }
            let run_end = pages
                .map
                .range(idx..fill.end)
                .next()
                .map_or(fill.end, |(&k, _)| k);
            let n = run_end - idx;
            let r = pages.place(mf, self.size(), idx, n)?;
            if let Err(e) = fill_pages(r.offset, idx * PAGE_SIZE, n * PAGE_SIZE) {
                pages.unplace(mf, r);
                return Err(e);
            }
            for k in 0..n {
                pages.map.insert(idx + k, r.offset + k * PAGE_SIZE);
            }
            idx = run_end;
        }
        Ok(runs(&pages.map, first, end, mf))
    }
}

/// Whether the memory-file offset `off` lies in the reservation `res`.
fn in_reservation(res: Option<FileRange>, off: u64) -> bool {
    res.is_some_and(|r| off >= r.offset && off < r.offset + r.len)
}

/// The runs of contiguous memory-file pages behind the page indices in `[first, end)` that
/// `pages` holds, each with a new reference.
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
