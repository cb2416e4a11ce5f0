//! Host files mapped through the page cache: [`CachedMapping`] is the [`Mappable`] view of
//! one cached host file. The cache itself (which memory-file pages hold which host-file
//! pages) belongs to the memory file: [`crate::memory::page_cache`].

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::filemap::Mappable;
use crate::abi::Errno;
pub(crate) use crate::memory::page_cache::runs;
use crate::memory::page_cache::CachedFile;
pub use crate::memory::page_cache::{HostFileId, Version};
use crate::memory::{FileRange, MemoryFile};

/// Pages a fault fills from the host file at most: an aligned window of 128 KiB around the
/// faulting page, Linux's default readahead (`read_ahead_kb`).
pub const READAHEAD_PAGES: u64 = 32;

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

impl CachedMapping {
    /// The pages `[first, first + count)`, filling the missing ones in `fill` from the host
    /// file (see [`CachedFile::pages`]).
    fn pages_filling(
        &self,
        first: u64,
        count: u64,
        fill: std::ops::Range<u64>,
    ) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.file
            .pages(&self.mf, first, count, fill, |off, file_off, len| {
                self.mf
                    .fill_from(self.fd.as_fd(), file_off, off, len as usize)
                    .map(drop)
                    .map_err(|e| {
                        log::warn!("page cache: reading a host file: {e}");
                        Errno::EIO
                    })
            })
    }
}

impl Mappable for CachedMapping {
    fn size(&self) -> u64 {
        self.file.version.size
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
