//! Files mapped through the page cache: [`CachedMapping`] is the [`Mappable`] view of one
//! cached file, a host file's (filled by `pread`) or another [`PageSource`]'s (a FUSE file,
//! filled by the daemon's READ). The cache itself (which memory-file pages hold which file
//! pages) belongs to the memory file: [`crate::memory::page_cache`].

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::filemap::Mappable;
use crate::abi::{Errno, PAGE_SIZE};
pub(crate) use crate::memory::page_cache::runs;
use crate::memory::page_cache::CachedFile;
pub use crate::memory::page_cache::{HostFileId, Version};
use crate::memory::{FileRange, MemoryFile};

/// Pages a fault fills from the host file at most: an aligned window of 128 KiB around the
/// faulting page, Linux's default readahead (`read_ahead_kb`).
pub const READAHEAD_PAGES: u64 = 32;

/// Where a cached file's pages are read from.
pub trait PageSource: Send + Sync {
    /// Fills the memory-file pages `[off, off + len)` of `mf` with the file's bytes at
    /// `file_off`; bytes past the file's end are zero. Runs under the cache entry's lock (two
    /// faults never fill a page twice), so it must end: on an error, not by waiting forever.
    ///
    /// # Errors
    /// EIO (or the source's own error) when the file cannot be read.
    fn fill(&self, mf: &MemoryFile, off: u64, file_off: u64, len: u64) -> Result<(), Errno>;
}

/// A host regular file open for reading, read with `pread`.
struct HostSource(Arc<OwnedFd>);

impl PageSource for HostSource {
    fn fill(&self, mf: &MemoryFile, off: u64, file_off: u64, len: u64) -> Result<(), Errno> {
        mf.fill_from(self.0.as_fd(), file_off, off, len as usize)
            .map(drop)
            .map_err(|e| {
                log::warn!("page cache: reading a host file: {e}");
                Errno::EIO
            })
    }
}

/// A mapping's view of a cached file: the source to fill from and the cache entry.
pub struct CachedMapping {
    mf: Arc<MemoryFile>,
    source: Arc<dyn PageSource>,
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
        CachedMapping::with_source(mf, Arc::new(HostSource(fd)), id, version)
    }

    /// The cached view of the file `source` reads, known to the cache as `id` (an identity
    /// no host file has) at `version`.
    pub fn with_source(
        mf: &Arc<MemoryFile>,
        source: Arc<dyn PageSource>,
        id: HostFileId,
        version: Version,
    ) -> CachedMapping {
        CachedMapping {
            mf: mf.clone(),
            source,
            file: mf.page_cache().file(mf, id, version),
        }
    }

    /// The memory file the pages are in.
    pub fn memory_file(&self) -> &Arc<MemoryFile> {
        &self.mf
    }

    /// Whether `other` views the same cache entry (the same version of the same file).
    pub fn same_entry(&self, other: &CachedMapping) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }

    /// The file's size changed in place (see [`CachedFile::set_size`]).
    pub fn set_size(&self, size: u64) {
        self.file.set_size(&self.mf, size);
    }

    /// The source's bytes at `file_off` became `data` (see [`CachedFile::write_cached`]).
    pub fn write_cached(&self, file_off: u64, data: &[u8]) {
        self.file.write_cached(&self.mf, file_off, data);
    }

    /// Hands the cached bytes below the file's size to `write` in order, as (file offset,
    /// at most `chunk` bytes), for a write-back of a shared writable mapping; stops at the
    /// first error `write` returns, which it returns.
    ///
    /// # Errors
    /// `write`'s.
    pub fn write_back_with(
        &self,
        chunk: u64,
        mut write: impl FnMut(u64, &[u8]) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let size = self.size();
        let runs = self.file.cached_runs(&self.mf);
        let mut result = Ok(());
        let mut buf = Vec::new();
        'runs: for (idx, r) in &runs {
            let start = idx * PAGE_SIZE;
            let end = (start + r.len).min(size);
            let mut pos = start;
            while pos < end {
                let n = (end - pos).min(chunk);
                buf.resize(n as usize, 0);
                self.mf.read(r.offset + (pos - start), &mut buf);
                if let Err(e) = write(pos, &buf) {
                    result = Err(e);
                    break 'runs;
                }
                pos += n;
            }
        }
        for (_, r) in runs {
            self.mf.dec_ref(r);
        }
        result
    }

    /// The pages `[first, first + count)`, filling the missing ones in `fill` from the
    /// source (see [`CachedFile::pages`]).
    fn pages_filling(
        &self,
        first: u64,
        count: u64,
        fill: std::ops::Range<u64>,
    ) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.file
            .pages(&self.mf, first, count, fill, |off, file_off, len| {
                self.source.fill(&self.mf, off, file_off, len)
            })
    }
}

impl Mappable for CachedMapping {
    fn size(&self) -> u64 {
        self.file.size()
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.pages_filling(first, count, first..first.saturating_add(count))
    }

    /// Fills only the [`READAHEAD_PAGES`]-aligned window around `at`: a program touches a
    /// fraction of its text and libraries, and every page filled costs a host page
    /// allocation, a clear and a copy (a 2 MiB fault chunk of python's text filled
    /// 512 pages where start-up touches about 100). Pages the cache already holds anywhere
    /// in the range are returned too, so a fault maps them along.
    fn fault_pages(&self, first: u64, count: u64, at: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let window = at & !(READAHEAD_PAGES - 1);
        self.pages_filling(first, count, window..window + READAHEAD_PAGES)
    }

    fn shared_writable(&self) -> bool {
        false
    }

    fn cached_pages(&self, first: u64, last: u64) -> u64 {
        self.file.held_pages(first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::PAGE_SIZE;
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

    #[test]
    fn windows_filled_at_different_times_join_into_one_run_and_a_new_version_frees_them() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let path = std::env::temp_dir().join(format!("runsc-rs-pcr-{}", std::process::id()));
        let total = 3 * READAHEAD_PAGES + 5;
        let mut data: Vec<u8> = (0..total)
            .flat_map(|p| vec![p as u8 + 1; PAGE_SIZE as usize])
            .collect();
        // The last page is partial.
        data.truncate(data.len() - 100);
        std::fs::write(&path, &data).unwrap();
        let fd: OwnedFd = std::fs::File::open(&path).unwrap().into();
        let _ = std::fs::remove_file(&path);
        let fd = Arc::new(fd);
        let id = HostFileId { dev: 1, ino: 4 };
        let version = Version {
            size: data.len() as u64,
            mtime: (0, 0),
        };
        let m = CachedMapping::new(&mf, fd.clone(), id, version);
        // The second window first, then other memory, then the first window.
        let second = m.fault_pages(0, total, READAHEAD_PAGES).unwrap();
        let other = mf.allocate(4 * PAGE_SIZE).unwrap();
        let first = m.fault_pages(0, total, 0).unwrap();
        assert_eq!(first.len(), 1, "one run: {first:?}");
        assert_eq!(first[0].0, 0);
        assert_eq!(first[0].1.len, 2 * READAHEAD_PAGES * PAGE_SIZE);
        assert_eq!(
            first[0].1.offset + READAHEAD_PAGES * PAGE_SIZE,
            second[0].1.offset
        );
        // Each page holds its own data.
        for page in [
            0,
            READAHEAD_PAGES - 1,
            READAHEAD_PAGES,
            2 * READAHEAD_PAGES - 1,
        ] {
            let mut b = [0u8];
            mf.read(first[0].1.offset + page * PAGE_SIZE, &mut b);
            assert_eq!(b[0], page as u8 + 1, "page {page}");
        }
        // The last window, partial, lands in its place too (the third is not filled yet);
        // the tail is zero-padded.
        let gap = m.fault_pages(0, total, total - 1).unwrap();
        assert_eq!(gap.len(), 2, "{gap:?}");
        assert_eq!(
            gap[1].1.offset,
            gap[0].1.offset + 3 * READAHEAD_PAGES * PAGE_SIZE
        );
        let last = m.fault_pages(0, total, 2 * READAHEAD_PAGES).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].1.len, total * PAGE_SIZE);
        let mut tail = [0xffu8; 8];
        mf.read(last[0].1.offset + total * PAGE_SIZE - 8, &mut tail);
        assert_eq!(tail, [0; 8]);
        // Only filled pages are in use.
        assert_eq!(mf.in_use(), (total + 4) * PAGE_SIZE);
        // A new version releases the cache's pages and the reservation; holders keep theirs.
        let base = first[0].1.offset;
        let _ = CachedMapping::new(
            &mf,
            fd,
            id,
            Version {
                size: 1,
                mtime: (1, 0),
            },
        );
        assert_eq!(mf.refs(base), 3, "the three holders keep theirs");
        for (_, r) in first.into_iter().chain(second).chain(gap).chain(last) {
            mf.dec_ref(r);
        }
        mf.dec_ref(other);
        assert_eq!(mf.in_use(), 0);
        // The whole reserved range (page-rounded file size) is free again.
        mf.claim(base, total * PAGE_SIZE)
            .expect("reservation given back");
    }

    #[test]
    fn a_failed_fill_leaves_its_reserved_pages_unused() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let file = mf.page_cache().file(
            &mf,
            HostFileId { dev: 1, ino: 5 },
            Version {
                size: 4 * PAGE_SIZE,
                mtime: (0, 0),
            },
        );
        let failed = file.pages(&mf, 0, 4, 0..2, |off, _, len| {
            mf.write(off, &vec![9u8; len as usize]);
            Err(Errno::EIO)
        });
        assert_eq!(failed, Err(Errno::EIO));
        assert_eq!(mf.in_use(), 0);
        // A later fill of the same pages succeeds and reads what it wrote, zero elsewhere.
        let ok = file
            .pages(&mf, 0, 4, 0..4, |off, _, _| {
                mf.write(off + 1, b"x");
                Ok(())
            })
            .unwrap();
        assert_eq!(ok.len(), 1);
        let mut b = [0xffu8; 2];
        mf.read(ok[0].1.offset, &mut b);
        assert_eq!(b, [0, b'x']);
        assert_eq!(mf.in_use(), 4 * PAGE_SIZE);
        mf.dec_ref(ok[0].1);
    }

    /// A source whose every byte is `b`.
    struct Fill(u8);

    impl PageSource for Fill {
        fn fill(&self, mf: &MemoryFile, off: u64, _: u64, len: u64) -> Result<(), Errno> {
            mf.write(off, &vec![self.0; len as usize]);
            Ok(())
        }
    }

    #[test]
    fn sizes_and_writes_change_the_cached_pages_in_place_and_growth_passes_the_reservation() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let version = Version {
            size: 0,
            mtime: (0, 0),
        };
        let id = HostFileId { dev: 1, ino: 6 };
        let m = CachedMapping::with_source(&mf, Arc::new(Fill(5)), id, version);
        m.set_size(2 * PAGE_SIZE);
        assert_eq!(m.size(), 2 * PAGE_SIZE);
        let two = m.pages(0, 4).unwrap();
        assert_eq!(two.len(), 1);
        assert_eq!(two[0].1.len, 2 * PAGE_SIZE);
        // A write lands in the cached pages, across the page boundary.
        m.write_cached(PAGE_SIZE - 2, b"abcd");
        let mut b = [0u8; 4];
        mf.read(two[0].1.offset + PAGE_SIZE - 2, &mut b);
        assert_eq!(&b, b"abcd");
        // Shrinking zeroes the bytes past the new end; nothing past it is returned.
        m.set_size(PAGE_SIZE - 1);
        mf.read(two[0].1.offset + PAGE_SIZE - 2, &mut b);
        assert_eq!(b, [b'a', 0, 0, 0]);
        assert!(m.pages(1, 1).unwrap().is_empty());
        // A write-back sees the bytes below the size only, in chunks of at most `chunk`.
        let mut seen = Vec::new();
        m.write_back_with(1000, |pos, data| {
            seen.push((pos, data.len()));
            Ok(())
        })
        .unwrap();
        let mut want: Vec<(u64, usize)> = (0..4).map(|k| (k * 1000, 1000)).collect();
        want.push((4000, (PAGE_SIZE - 1 - 4000) as usize));
        assert_eq!(seen, want);
        let failed = m.write_back_with(PAGE_SIZE, |_, _| Err(Errno::EIO));
        assert_eq!(failed, Err(Errno::EIO));
        // Growing past the reservation made at the first fill: new pages are allocated
        // apart, filled from the source, and given back with the rest.
        m.set_size(6 * PAGE_SIZE);
        let six = m.pages(0, 6).unwrap();
        let mut total = 0;
        for (idx, r) in &six {
            for k in 0..r.len / PAGE_SIZE {
                let mut c = [0u8];
                mf.read(r.offset + k * PAGE_SIZE + 10, &mut c);
                let want = if idx + k == 1 { 0 } else { 5 };
                assert_eq!(c[0], want, "page {}", idx + k);
            }
            total += r.len;
        }
        assert_eq!(total, 6 * PAGE_SIZE);
        for (_, r) in two.into_iter().chain(six) {
            mf.dec_ref(r);
        }
        let other = Version {
            size: 0,
            mtime: (0, 1),
        };
        drop(CachedMapping::with_source(
            &mf,
            Arc::new(Fill(1)),
            id,
            other,
        ));
        drop(m);
        assert_eq!(mf.in_use(), 0);
    }

    #[test]
    fn a_fault_fills_its_window_and_maps_what_is_cached_elsewhere() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let path = std::env::temp_dir().join(format!("runsc-rs-pcw-{}", std::process::id()));
        let total = 2 * READAHEAD_PAGES + 3;
        let data: Vec<u8> = (0..total)
            .flat_map(|p| vec![p as u8 + 1; PAGE_SIZE as usize])
            .collect();
        std::fs::write(&path, &data).unwrap();
        let fd: OwnedFd = std::fs::File::open(&path).unwrap().into();
        let _ = std::fs::remove_file(&path);
        let version = Version {
            size: data.len() as u64,
            mtime: (0, 0),
        };
        let m = CachedMapping::new(&mf, Arc::new(fd), HostFileId { dev: 1, ino: 3 }, version);
        let pages_of = |runs: &[(u64, FileRange)]| -> Vec<u64> {
            runs.iter()
                .flat_map(|(idx, r)| *idx..idx + r.len / PAGE_SIZE)
                .collect()
        };
        let first_byte = |runs: &[(u64, FileRange)], page: u64| -> u8 {
            let (idx, r) = runs
                .iter()
                .find(|(idx, r)| *idx <= page && page < idx + r.len / PAGE_SIZE)
                .expect("page returned");
            let mut b = [0u8];
            mf.read(r.offset + (page - idx) * PAGE_SIZE, &mut b);
            b[0]
        };
        // A fault in the second window fills that window alone.
        let at = READAHEAD_PAGES + 1;
        let second = m.fault_pages(0, total, at).unwrap();
        let window: Vec<u64> = (READAHEAD_PAGES..2 * READAHEAD_PAGES).collect();
        assert_eq!(pages_of(&second), window);
        assert_eq!(mf.page_cache().cached_bytes(), READAHEAD_PAGES * PAGE_SIZE);
        assert_eq!(first_byte(&second, at), at as u8 + 1);
        // A fault in the first fills it, and gets the cached second window along; the
        // partial last window is not read.
        let both = m.fault_pages(0, total, 2).unwrap();
        assert_eq!(
            pages_of(&both),
            (0..2 * READAHEAD_PAGES).collect::<Vec<_>>()
        );
        assert_eq!(first_byte(&both, 2), 3);
        assert_eq!(
            mf.page_cache().cached_bytes(),
            2 * READAHEAD_PAGES * PAGE_SIZE
        );
        // `pages` still fills everything asked, up to the file's end.
        let all = m.pages(0, total + 5).unwrap();
        assert_eq!(pages_of(&all), (0..total).collect::<Vec<_>>());
        assert_eq!(first_byte(&all, total - 1), total as u8);
        for (_, r) in second.into_iter().chain(both).chain(all) {
            mf.dec_ref(r);
        }
    }
}
