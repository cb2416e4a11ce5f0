//! The memory file: one memfd that backs all application memory (anonymous memory, tmpfs file
//! data, the page cache of host files), its page allocator, and the sentry's own mapping of it.
//!
//! Platforms map ranges of the same memfd into application address spaces, so the sentry
//! reads and writes application memory through [`MemoryFile::read`] / [`MemoryFile::write`]
//! without ever dereferencing an application pointer.
//!
//! # Lock order
//! `MemoryFile::alloc` (the allocator state) is a leaf lock. The page cache's locks
//! ([`PageCache`]) come before it.
//!
//! # Freed pages
//! Pages whose last reference goes are given back to the host by punching a hole, which
//! costs the host a walk over every mapping of the file (several µs a call). Small freed
//! ranges (the page copies of a fork child, an exec'd program's data) are kept instead, up
//! to [`DIRTY_LIMIT`] bytes, and handed out again to small allocations zeroed by the
//! sentry (a memset of a few KiB costs well under a µs): a process's exec and exit free a
//! dozen such ranges each, and the next process allocates as many.
//!
//! # Safety model
//! The only `unsafe` of the sentry: the mapping of the whole file into the sentry
//! (`base`, `size`: byte copies, and the atomic compare-and-exchange of a futex word), and
//! the tuning of the sentry's own heap ([`settle_host_allocator`]).
//! Offsets handed out by the allocator are always within `size`, and every access is
//! bounds-checked against `size` before the pointer arithmetic.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use self::page_cache::PageCache;
use crate::abi::PAGE_SIZE;

pub mod page_cache;

/// Virtual size of the memory file. Sparse: host memory is used only for touched pages.
const FILE_SIZE: u64 = 64 << 30;
/// Largest freed range kept for reuse without a hole punch (and largest allocation served
/// from those ranges): bigger ones are often sparse (a 2 MiB chunk of anonymous memory with
/// a few pages touched), where zeroing would make every page resident.
const DIRTY_RANGE_MAX: u64 = 16 * PAGE_SIZE;
/// Bytes of freed, not yet zeroed ranges kept at most: host memory the file holds beyond
/// what is in use.
pub const DIRTY_LIMIT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the memory file: {0}")]
    Create(#[source] std::io::Error),
    #[error("mapping the memory file into the sentry: {0}")]
    Map(#[source] std::io::Error),
    #[error("memory file exhausted ({0} bytes requested)")]
    Exhausted(u64),
}

/// A page-aligned range of the memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRange {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Default)]
struct Allocator {
    /// Free ranges: offset -> length. Adjacent ranges are merged.
    free: BTreeMap<u64, u64>,
    /// Allocated ranges with their reference counts: offset -> (length, refs). Ranges are
    /// split when a sub-range's count changes.
    used: BTreeMap<u64, (u64, u32)>,
    /// Bytes of the file in use (counted once however many references).
    in_use: u64,
    /// Free ranges whose pages may still hold old data (see the module documentation):
    /// offset -> length, adjacent ones merged; not in `free`.
    dirty: BTreeMap<u64, u64>,
    /// Bytes in `dirty`, at most [`DIRTY_LIMIT`].
    dirty_bytes: u64,
    /// Bytes reserved and not committed (see [`MemoryFile::reserve`]), at most
    /// [`RESERVED_MAX`].
    reserved: u64,
}

/// Offsets [`MemoryFile::reserve`] may hold back at once: a quarter of the file, so that
/// reservations, which hold no memory, can never leave real allocations without offsets.
const RESERVED_MAX: u64 = FILE_SIZE / 4;

/// Which way a host vectored I/O moves data.
#[derive(Clone, Copy)]
enum HostIo {
    Read,
    Write,
}

/// The memory file. See the module documentation.
pub struct MemoryFile {
    fd: OwnedFd,
    base: *mut u8,
    size: u64,
    alloc: Mutex<Allocator>,
    /// Host file pages copied into this file, shared by every mapping of those files.
    page_cache: PageCache,
}

// SAFETY: `base` points to a MAP_SHARED mapping that lives as long as `self`; all accesses go
// through bounds-checked copies, and concurrent access to application memory is allowed to race
// exactly as it does between threads of a Linux process.
unsafe impl Send for MemoryFile {}
// SAFETY: as for Send; the allocator is behind a Mutex.
unsafe impl Sync for MemoryFile {}

impl MemoryFile {
    /// Creates the memfd (`runsc-rs-memory`) and maps it into the sentry.
    ///
    /// # Errors
    /// Host failures of memfd_create, ftruncate or mmap.
    pub fn new() -> Result<MemoryFile, Error> {
        // SAFETY: the name is a valid NUL-terminated string; the flags are valid.
        let raw = unsafe { libc::memfd_create(c"runsc-rs-memory".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(Error::Create(std::io::Error::last_os_error()));
        }
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: fd is a valid memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), FILE_SIZE as libc::off_t) } < 0 {
            return Err(Error::Create(std::io::Error::last_os_error()));
        }
        // SAFETY: mapping a fresh shared file mapping at a kernel-chosen address affects no
        // existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::Map(std::io::Error::last_os_error()));
        }
        let mut alloc = Allocator::default();
        alloc.free.insert(0, FILE_SIZE);
        Ok(MemoryFile {
            fd,
            base: base.cast(),
            size: FILE_SIZE,
            alloc: Mutex::new(alloc),
            page_cache: PageCache::default(),
        })
    }

    /// The memfd, for platforms to map.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The page cache of host files kept in this memory file.
    pub fn page_cache(&self) -> &PageCache {
        &self.page_cache
    }

    /// Allocates `len` bytes (rounded up to pages) of zeroed memory with one reference.
    ///
    /// # Errors
    /// The file is exhausted.
    pub fn allocate(&self, len: u64) -> Result<FileRange, Error> {
        let len = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mut a = self.alloc.lock().unwrap();
        let off = match a.take_dirty(len) {
            Some(off) => {
                self.fill_zero(off, len);
                off
            }
            None => self.take_free(&mut a, len)?,
        };
        a.used.insert(off, (len, 1));
        a.in_use += len;
        Ok(FileRange { offset: off, len })
    }

    /// Takes `len` bytes (rounded up to pages) of the file out of the free list without
    /// allocating them: a range whose pages [`MemoryFile::commit`] allocates later, one run at a
    /// time, at the offsets the caller chooses in it (the page cache keeps a host file's pages
    /// in file order, so the runs it fills at different times join into one host mapping).
    /// Reserved pages are neither free nor in use, hold no host memory and read as zero until
    /// committed; what is never committed goes back with [`MemoryFile::unreserve`].
    ///
    /// # Errors
    /// The file has no free range that large, or reservations already hold
    /// [`RESERVED_MAX`] bytes.
    pub fn reserve(&self, len: u64) -> Result<FileRange, Error> {
        let len = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mut a = self.alloc.lock().unwrap();
        if a.reserved + len > RESERVED_MAX {
            return Err(Error::Exhausted(len));
        }
        let off = self.take_free(&mut a, len)?;
        a.reserved += len;
        Ok(FileRange { offset: off, len })
    }

    /// Allocates the reserved, never committed pages `r` (of a [`MemoryFile::reserve`]
    /// range) with one reference each. They read as zero.
    pub fn commit(&self, r: FileRange) {
        let mut a = self.alloc.lock().unwrap();
        debug_assert!(
            a.used
                .range(..r.offset + r.len)
                .next_back()
                .is_none_or(|(&o, &(l, _))| o + l <= r.offset),
            "committing pages in use"
        );
        a.used.insert(r.offset, (r.len, 1));
        a.in_use += r.len;
        a.reserved -= r.len;
    }

    /// Takes back committed pages `r` that nothing but the committer refers to (a fill that
    /// failed): they are reserved again, zeroed (a hole punched).
    pub fn uncommit(&self, r: FileRange) {
        let mut a = self.alloc.lock().unwrap();
        let pieces: Vec<u64> = a.split_used(r).into_iter().map(|(o, _)| o).collect();
        for o in pieces {
            let (len, refs) = a.used.remove(&o).expect("split range present");
            debug_assert_eq!(refs, 1, "uncommitting shared pages");
            a.in_use -= len;
            a.reserved += len;
        }
        self.punch(r.offset, r.len);
    }

    /// Gives back reserved pages `r` that were never committed (see
    /// [`MemoryFile::reserve`]): they are free again.
    pub fn unreserve(&self, r: FileRange) {
        let mut a = self.alloc.lock().unwrap();
        a.reserved -= r.len;
        insert_merged(&mut a.free, r.offset, r.len);
    }

    /// Adds a reference to every page of `r` (copy-on-write sharing after fork).
    pub fn inc_ref(&self, r: FileRange) {
        let mut a = self.alloc.lock().unwrap();
        for (_, refs) in a.split_used(r) {
            *refs += 1;
        }
    }

    /// Drops a reference to every page of `r`; pages that reach zero go back to the host
    /// (hole punched) and to the free list.
    pub fn dec_ref(&self, r: FileRange) {
        let mut a = self.alloc.lock().unwrap();
        let mut freed = Vec::new();
        for (off, refs) in a.split_used(r) {
            *refs -= 1;
            if *refs == 0 {
                freed.push(off);
            }
        }
        for off in freed {
            let (len, _) = a.used.remove(&off).expect("split range present");
            a.in_use -= len;
            if len <= DIRTY_RANGE_MAX && a.dirty_bytes + len <= DIRTY_LIMIT {
                a.dirty_bytes += len;
                insert_merged(&mut a.dirty, off, len);
            } else {
                self.punch(off, len);
                insert_merged(&mut a.free, off, len);
            }
        }
    }

    /// Punches every kept dirty range and makes it free.
    /// Takes `len` bytes (pages) from the first free range that long, punching the dirty
    /// ranges into the free list first if none is: their pages read as zero.
    fn take_free(&self, a: &mut Allocator, len: u64) -> Result<u64, Error> {
        let find = |a: &Allocator| {
            a.free
                .iter()
                .find(|(_, &l)| l >= len)
                .map(|(&o, &l)| (o, l))
        };
        let (off, flen) = match find(a) {
            Some(found) => found,
            None => {
                self.punch_dirty(a);
                find(a).ok_or(Error::Exhausted(len))?
            }
        };
        a.free.remove(&off);
        if flen > len {
            a.free.insert(off + len, flen - len);
        }
        Ok(off)
    }

    fn punch_dirty(&self, a: &mut Allocator) {
        for (off, len) in std::mem::take(&mut a.dirty) {
            self.punch(off, len);
            insert_merged(&mut a.free, off, len);
        }
        a.dirty_bytes = 0;
    }

    /// Bytes of freed memory kept resident for reuse (at most [`DIRTY_LIMIT`]).
    pub fn dirty(&self) -> u64 {
        self.alloc.lock().unwrap().dirty_bytes
    }

    /// The reference count of the page at `offset` (0 if free).
    pub fn refs(&self, offset: u64) -> u32 {
        let a = self.alloc.lock().unwrap();
        match a.used.range(..=offset).next_back() {
            Some((&o, &(l, r))) if offset < o + l => r,
            _ => 0,
        }
    }

    /// Whether every page of `r` is allocated (a restore checks what an image names).
    pub fn is_used(&self, r: FileRange) -> bool {
        let a = self.alloc.lock().unwrap();
        let end = r.offset.saturating_add(r.len);
        let mut at = r.offset;
        if let Some((&o, &(l, _))) = a.used.range(..=at).next_back() {
            if at < o + l {
                at = o + l;
            }
        }
        for (&o, &(l, _)) in a.used.range(r.offset..end) {
            if o > at {
                return false;
            }
            at = at.max(o + l);
        }
        at >= end
    }

    /// The allocated ranges as (offset, length, references), in offset order (for a
    /// checkpoint).
    pub fn used_ranges(&self) -> Vec<(u64, u64, u32)> {
        let a = self.alloc.lock().unwrap();
        a.used.iter().map(|(&o, &(l, r))| (o, l, r)).collect()
    }

    /// Takes `[offset, offset + len)` (page aligned, free) with one reference: a restore
    /// puts a checkpoint's memory back at the offsets its page tables name.
    ///
    /// # Errors
    /// `Exhausted` when the range is not wholly free.
    pub fn claim(&self, offset: u64, len: u64) -> Result<(), Error> {
        let mut a = self.alloc.lock().unwrap();
        self.punch_dirty(&mut a);
        let end = offset.checked_add(len).ok_or(Error::Exhausted(len))?;
        let (&fo, &fl) = a
            .free
            .range(..=offset)
            .next_back()
            .filter(|(&fo, &fl)| {
                offset.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE) && end <= fo + fl
            })
            .ok_or(Error::Exhausted(len))?;
        a.free.remove(&fo);
        if fo < offset {
            a.free.insert(fo, offset - fo);
        }
        if end < fo + fl {
            a.free.insert(end, fo + fl - end);
        }
        a.used.insert(offset, (len, 1));
        a.in_use += len;
        Ok(())
    }

    /// Bytes of the file in use.
    pub fn in_use(&self) -> u64 {
        self.alloc.lock().unwrap().in_use
    }

    /// Releases the host pages of `[off, off+len)`; they read as zero afterwards.
    fn punch(&self, off: u64, len: u64) {
        // SAFETY: fd is a valid memfd; punching a hole only affects file contents.
        let r = unsafe {
            libc::fallocate(
                self.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as libc::off_t,
                len as libc::off_t,
            )
        };
        if r < 0 {
            log::warn!(
                "memory file: punching {len:#x}@{off:#x}: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Zeroes `[off, off+len)`, releasing whole pages to the host.
    pub fn zero(&self, off: u64, len: u64) {
        self.punch(off, len);
    }

    /// Zeroes `[off, off+len)` in place (the pages stay resident).
    fn fill_zero(&self, off: u64, len: u64) {
        self.check(off, len as usize);
        // SAFETY: `[off, off+len)` is within the mapping (checked above); the range was just
        // taken from the allocator, so no other sentry code writes it.
        unsafe { std::ptr::write_bytes(self.base.add(off as usize), 0, len as usize) }
    }

    fn check(&self, off: u64, len: usize) {
        assert!(
            off.checked_add(len as u64)
                .is_some_and(|end| end <= self.size),
            "memory file access {len:#x}@{off:#x} out of bounds"
        );
    }

    /// Copies from the file at `off` into `dst`.
    pub fn read(&self, off: u64, dst: &mut [u8]) {
        self.check(off, dst.len());
        // SAFETY: `[off, off+len)` is within the mapping (checked above); the source is
        // shared memory that may change concurrently, which a byte copy tolerates.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(off as usize), dst.as_mut_ptr(), dst.len())
        }
    }

    /// Copies `src` into the file at `off`.
    pub fn write(&self, off: u64, src: &[u8]) {
        self.check(off, src.len());
        // SAFETY: `[off, off+len)` is within the mapping (checked above) and does not overlap
        // `src`, which is sentry memory.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off as usize), src.len())
        }
    }

    /// Fills `[off, off+len)` from the host file `fd` at `file_off` (a page-cache fill) and
    /// returns the bytes read: fewer at the host file's end, the rest keeps its contents.
    ///
    /// The data goes through a small per-thread buffer and a `pwrite` to the memfd rather
    /// than a `pread` straight into the sentry's mapping: the host then allocates each new
    /// page in its write path, which skips the clear a whole-page write makes useless and
    /// the host page fault a store through the mapping takes per page (together a third of
    /// a fill's cost, and fills were half of a dynamic program's start-up in the sentry).
    ///
    /// # Errors
    /// The host's pread or pwrite errors (EINTR is retried).
    pub fn fill_from(
        &self,
        fd: BorrowedFd<'_>,
        file_off: u64,
        off: u64,
        len: usize,
    ) -> std::io::Result<usize> {
        /// Bytes each host read moves: below glibc's mmap threshold, so the buffer is an
        /// ordinary heap block that stays resident.
        const CHUNK: usize = 64 << 10;
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        self.check(off, len);
        BUF.with_borrow_mut(|buf| {
            buf.resize(CHUNK.min(len), 0);
            let mut done = 0usize;
            while done < len {
                let want = (len - done).min(buf.len());
                let got = match rustix::io::pread(fd, &mut buf[..want], file_off + done as u64) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                let mut put = 0usize;
                while put < got {
                    let at = off + (done + put) as u64;
                    match rustix::io::pwrite(&self.fd, &buf[put..got], at) {
                        Ok(n) => put += n,
                        Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                done += got;
            }
            Ok(done)
        })
    }

    /// Host iovecs over the memory-file `ranges` ((offset, length) pairs).
    fn host_iovecs(&self, ranges: &[(u64, usize)]) -> Vec<libc::iovec> {
        ranges
            .iter()
            .map(|&(off, len)| {
                self.check(off, len);
                libc::iovec {
                    // SAFETY: `[off, off+len)` is within the mapping (checked just above).
                    iov_base: unsafe { self.base.add(off as usize) }.cast(),
                    iov_len: len,
                }
            })
            .collect()
    }

    /// One host `preadv2` of `fd` (at `file_off`, or at the fd's own offset with None) straight
    /// into the memory-file `ranges`; returns the bytes read. With `nowait` the host returns
    /// EAGAIN instead of blocking (EOPNOTSUPP where the file cannot say).
    ///
    /// # Errors
    /// The host's errors (EINTR included: the caller decides whether to retry).
    pub fn read_host(
        &self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        ranges: &[(u64, usize)],
        nowait: bool,
    ) -> std::io::Result<usize> {
        self.host_io(HostIo::Read, fd, file_off, ranges, nowait)
    }

    /// One host `pwritev2` to `fd` (at `file_off`, or at the fd's own offset) straight from
    /// the memory-file `ranges`; returns the bytes written. `nowait` as for
    /// [`MemoryFile::read_host`].
    ///
    /// # Errors
    /// The host's errors (EINTR included).
    pub fn write_host(
        &self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        ranges: &[(u64, usize)],
        nowait: bool,
    ) -> std::io::Result<usize> {
        self.host_io(HostIo::Write, fd, file_off, ranges, nowait)
    }

    /// One host `preadv2` or `pwritev2` between `fd` and the memory-file `ranges`.
    fn host_io(
        &self,
        dir: HostIo,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        ranges: &[(u64, usize)],
        nowait: bool,
    ) -> std::io::Result<usize> {
        let iov = self.host_iovecs(ranges);
        let flags = if nowait { libc::RWF_NOWAIT } else { 0 };
        let off = file_off.map_or(-1, |o| o as libc::off_t);
        let (fd, count) = (fd.as_raw_fd(), iov.len() as libc::c_int);
        // SAFETY: every iovec lies in the shared mapping (checked by `host_iovecs`); the host
        // writes into it (a read) like any other writer of shared application memory, or
        // only reads from it (a write).
        let r = unsafe {
            match dir {
                HostIo::Read => libc::preadv2(fd, iov.as_ptr(), count, off, flags),
                HostIo::Write => libc::pwritev2(fd, iov.as_ptr(), count, off, flags),
            }
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Atomically replaces the 32-bit word at `off` (4-aligned) with `new` if it holds
    /// `old`; returns the value it held (a futex word the application updates with its own
    /// atomic instructions through its mapping of the same pages).
    pub fn compare_exchange_u32(&self, off: u64, old: u32, new: u32) -> u32 {
        self.check(off, 4);
        assert!(off.is_multiple_of(4), "unaligned atomic at {off:#x}");
        // SAFETY: `[off, off+4)` is within the mapping (checked above) and 4-aligned (the
        // mapping is page-aligned), so it is a valid `AtomicU32` for the mapping's lifetime;
        // every other access to it is either atomic or a byte copy, as between the threads
        // of a Linux process.
        let word =
            unsafe { std::sync::atomic::AtomicU32::from_ptr(self.base.add(off as usize).cast()) };
        match word.compare_exchange(
            old,
            new,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        ) {
            Ok(v) | Err(v) => v,
        }
    }

    /// Copies `len` bytes inside the file (copy-on-write breaks).
    pub fn copy(&self, from: u64, to: u64, len: u64) {
        self.check(from, len as usize);
        self.check(to, len as usize);
        // SAFETY: both ranges are within the mapping (checked above); `copy` tolerates overlap.
        unsafe {
            std::ptr::copy(
                self.base.add(from as usize),
                self.base.add(to as usize),
                len as usize,
            )
        }
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are exactly the mapping created in `new`, no longer used.
        unsafe { libc::munmap(self.base.cast(), self.size as usize) };
    }
}

impl Allocator {
    /// Splits used ranges so that `r` is covered by whole entries, returning those entries.
    fn split_used(&mut self, r: FileRange) -> Vec<(u64, &mut u32)> {
        let end = r.offset + r.len;
        for cut in [r.offset, end] {
            if let Some((&o, &(l, refs))) = self.used.range(..cut).next_back() {
                if o < cut && cut < o + l {
                    self.used.insert(o, (cut - o, refs));
                    self.used.insert(cut, (o + l - cut, refs));
                }
            }
        }
        self.used
            .range_mut(r.offset..end)
            .map(|(&o, (_, refs))| (o, refs))
            .collect()
    }

    /// Takes `len` bytes (at most [`DIRTY_RANGE_MAX`]) from the start of the first kept
    /// dirty range that holds them; the caller zeroes them.
    fn take_dirty(&mut self, len: u64) -> Option<u64> {
        if len > DIRTY_RANGE_MAX {
            return None;
        }
        let (&off, &dlen) = self.dirty.iter().find(|(_, &l)| l >= len)?;
        self.dirty.remove(&off);
        if dlen > len {
            self.dirty.insert(off + len, dlen - len);
        }
        self.dirty_bytes -= len;
        Some(off)
    }
}

/// Inserts `[off, off+len)` into `ranges` (offset -> length), merged with its neighbours.
fn insert_merged(ranges: &mut BTreeMap<u64, u64>, mut off: u64, mut len: u64) {
    if let Some((&po, &pl)) = ranges.range(..off).next_back() {
        if po + pl == off {
            ranges.remove(&po);
            off = po;
            len += pl;
        }
    }
    if let Some(&nl) = ranges.get(&(off + len)) {
        ranges.remove(&(off + len));
        len += nl;
    }
    ranges.insert(off, len);
}

/// Settles the tunables of the sentry's own heap (glibc malloc) that glibc would otherwise
/// look up on the host lazily,
/// with a plain `openat(AT_FDCWD, ...)` the allowlist rightly refuses (the sandbox was killed
/// by seccomp):
/// - the arena limit, computed the first time more than 8 threads allocate at once from
///   `/sys/devices/system/cpu/online` (a `multiprocessing.Pool(4)`); we set glibc's own
///   default, 8 arenas per CPU;
/// - whether thread heaps may shrink, read from `/proc/sys/vm/overcommit_memory` the first
///   time a thread heap's free top exceeds the trim threshold (an `execve` freeing the
///   image); a threshold above the largest thread heap (64 MiB) means they never shrink
///   (freed memory is reused; allocations of 128 KiB and more are unmapped when freed).
pub fn settle_host_allocator(cpus: usize) {
    let cpus = i32::try_from(cpus).unwrap_or(i32::MAX / 8);
    let settings = [
        (libc::M_ARENA_MAX, cpus.saturating_mul(8).max(8)),
        (libc::M_TRIM_THRESHOLD, 128 << 20),
    ];
    for (param, value) in settings {
        // SAFETY: mallopt only changes malloc's tuning; both parameters accept any positive
        // value at any time, from any thread.
        if unsafe { libc::mallopt(param, value) } != 1 {
            log::warn!("mallopt({param}) failed; glibc may trip the seccomp filter");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reservations hold offsets, not memory, and at most a quarter of the file: past that
    /// they fail (the page cache then allocates) and real allocations still find room.
    #[test]
    fn reservations_are_capped_and_give_their_offsets_back() {
        let mf = MemoryFile::new().unwrap();
        let big = mf.reserve(RESERVED_MAX - PAGE_SIZE).unwrap();
        let page = mf.reserve(PAGE_SIZE).unwrap();
        assert!(mf.reserve(PAGE_SIZE).is_err(), "past the cap");
        assert_eq!(mf.in_use(), 0, "reserved pages hold no memory");
        let first = FileRange {
            offset: page.offset,
            len: PAGE_SIZE,
        };
        mf.commit(first);
        assert_eq!(mf.in_use(), PAGE_SIZE);
        let again = mf.reserve(PAGE_SIZE).unwrap();
        mf.uncommit(first);
        assert!(
            mf.reserve(PAGE_SIZE).is_err(),
            "an uncommitted page is reserved again"
        );
        let r = mf.allocate(1 << 30).unwrap();
        mf.dec_ref(r);
        for r in [big, page, again] {
            mf.unreserve(r);
        }
        let all = mf.reserve(RESERVED_MAX).unwrap();
        mf.unreserve(all);
    }

    #[test]
    fn allocate_write_read_and_free() {
        let mf = MemoryFile::new().unwrap();
        let r = mf.allocate(10_000).unwrap();
        assert_eq!(r.len, 3 * PAGE_SIZE);
        mf.write(r.offset + 5, b"hello");
        let mut buf = [0u8; 5];
        mf.read(r.offset + 5, &mut buf);
        assert_eq!(&buf, b"hello");
        assert_eq!(mf.in_use(), 3 * PAGE_SIZE);
        mf.dec_ref(r);
        assert_eq!(mf.in_use(), 0);
        // Reallocation returns zeroed memory.
        let r2 = mf.allocate(PAGE_SIZE).unwrap();
        mf.read(r2.offset + 5, &mut buf);
        assert_eq!(buf, [0; 5]);
    }

    #[test]
    fn small_freed_ranges_come_back_zeroed() {
        let mf = MemoryFile::new().unwrap();
        let r = mf.allocate(2 * PAGE_SIZE).unwrap();
        mf.write(r.offset, &[0xa5; 2 * PAGE_SIZE as usize]);
        mf.dec_ref(r);
        assert_eq!(mf.dirty(), 2 * PAGE_SIZE, "kept, not punched");
        assert_eq!(mf.in_use(), 0);
        let again = mf.allocate(PAGE_SIZE).unwrap();
        assert_eq!(again.offset, r.offset, "reused first");
        assert_eq!(mf.dirty(), PAGE_SIZE);
        let mut buf = vec![0xffu8; PAGE_SIZE as usize];
        mf.read(again.offset, &mut buf);
        assert!(buf.iter().all(|&b| b == 0), "zeroed before reuse");
        // A restore claims exact offsets: kept ranges are punched and free for it.
        mf.claim(r.offset + PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(mf.dirty(), 0);
        mf.read(r.offset + PAGE_SIZE, &mut buf);
        assert!(buf.iter().all(|&b| b == 0), "punched before a claim");
    }

    #[test]
    fn large_ranges_are_punched_and_kept_memory_is_bounded() {
        let mf = MemoryFile::new().unwrap();
        let big = mf.allocate(DIRTY_RANGE_MAX + PAGE_SIZE).unwrap();
        mf.write(big.offset, b"old");
        mf.dec_ref(big);
        assert_eq!(mf.dirty(), 0, "a large range goes back to the host");
        let small: Vec<FileRange> = (0..2 * DIRTY_LIMIT / DIRTY_RANGE_MAX)
            .map(|_| mf.allocate(DIRTY_RANGE_MAX).unwrap())
            .collect();
        for r in small {
            mf.dec_ref(r);
        }
        assert_eq!(mf.dirty(), DIRTY_LIMIT);
        // A large allocation never takes kept pages, and finds the punched ones.
        let again = mf.allocate(DIRTY_RANGE_MAX + PAGE_SIZE).unwrap();
        let mut buf = [0xffu8; 3];
        mf.read(again.offset, &mut buf);
        assert_eq!(buf, [0; 3]);
        assert_eq!(mf.dirty(), DIRTY_LIMIT);
    }

    #[test]
    fn is_used_covers_allocated_pages_only() {
        let mf = MemoryFile::new().unwrap();
        let a = mf.allocate(2 * PAGE_SIZE).unwrap();
        let b = mf.allocate(PAGE_SIZE).unwrap();
        assert_eq!(b.offset, a.offset + a.len, "allocated back to back");
        let both = FileRange {
            offset: a.offset,
            len: 3 * PAGE_SIZE,
        };
        assert!(mf.is_used(both), "across two allocations");
        assert!(mf.is_used(FileRange {
            offset: a.offset + PAGE_SIZE,
            len: PAGE_SIZE,
        }));
        mf.dec_ref(FileRange {
            offset: a.offset + PAGE_SIZE,
            len: PAGE_SIZE,
        });
        assert!(!mf.is_used(both), "a freed page in the middle");
        assert!(!mf.is_used(FileRange {
            offset: b.offset + PAGE_SIZE,
            len: PAGE_SIZE,
        }));
    }

    #[test]
    fn partial_refcounts_split() {
        let mf = MemoryFile::new().unwrap();
        let r = mf.allocate(4 * PAGE_SIZE).unwrap();
        let mid = FileRange {
            offset: r.offset + PAGE_SIZE,
            len: 2 * PAGE_SIZE,
        };
        mf.inc_ref(mid);
        assert_eq!(mf.refs(r.offset), 1);
        assert_eq!(mf.refs(r.offset + PAGE_SIZE), 2);
        mf.dec_ref(r);
        assert_eq!(mf.refs(r.offset), 0);
        assert_eq!(mf.refs(r.offset + 2 * PAGE_SIZE), 1);
        assert_eq!(mf.in_use(), 2 * PAGE_SIZE);
        mf.dec_ref(mid);
        assert_eq!(mf.in_use(), 0);
    }
}
