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
}
