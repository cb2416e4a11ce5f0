//! The typed user-memory API handlers use: objects, C strings, iovecs.
//!
//! Validation is lazy, as in Linux: a zero-length access never faults, and copies report
//! partial progress (EFAULT only when nothing was copied).

use std::os::fd::BorrowedFd;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::MemoryManager;
use crate::abi::{Errno, Iovec};
use crate::memory::MemoryFile;

/// A user-space address, as passed in a system-call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct UserAddr(pub u64);

impl UserAddr {
    pub const NULL: UserAddr = UserAddr(0);

    pub fn is_null(self) -> bool {
        self.0 == 0
    }

    /// `self + off`, or EFAULT on overflow.
    pub fn offset(self, off: u64) -> Result<UserAddr, Errno> {
        self.0.checked_add(off).map(UserAddr).ok_or(Errno::EFAULT)
    }
}

impl std::fmt::Display for UserAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Linux's TASK_SIZE on x86-64: user addresses lie below it.
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// Linux's `access_ok`: `[addr, addr+len)` is a range of user addresses (not that it is
/// mapped). read(2), write(2) and iovec imports fail with EFAULT before doing anything
/// when it is not.
///
/// # Errors
/// EFAULT.
pub fn access_ok(addr: UserAddr, len: u64) -> Result<(), Errno> {
    match addr.0.checked_add(len) {
        Some(end) if end <= TASK_SIZE => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}

/// Longest path Linux accepts, including the NUL.
pub const PATH_MAX: usize = 4096;

impl MemoryManager {
    /// Copies a `T` in from `addr`.
    ///
    /// # Errors
    /// EFAULT unless the whole object is readable.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, addr: UserAddr) -> Result<T, Errno> {
        let mut v = T::new_zeroed();
        if self.copy_in(addr.0, v.as_mut_bytes())? != size_of::<T>() {
            return Err(Errno::EFAULT);
        }
        Ok(v)
    }

    /// Copies `v` out to `addr`.
    ///
    /// # Errors
    /// EFAULT unless the whole object is writable.
    pub fn write_obj<T: IntoBytes + Immutable>(&self, addr: UserAddr, v: &T) -> Result<(), Errno> {
        if self.copy_out(addr.0, v.as_bytes())? != size_of::<T>() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// Atomically replaces the 32-bit word at `addr` with `new` if it holds `old` (a
    /// futex word: Linux's `futex_atomic_cmpxchg_inatomic`); returns the value it held.
    ///
    /// # Errors
    /// EINVAL for an unaligned address; EFAULT unless the word is writable.
    pub fn compare_exchange_u32(&self, addr: UserAddr, old: u32, new: u32) -> Result<u32, Errno> {
        if !addr.0.is_multiple_of(4) {
            return Err(Errno::EINVAL);
        }
        self.atomic_u32(addr.0, old, new)
    }

    /// Copies `n` `T`s in from `addr`.
    ///
    /// # Errors
    /// EFAULT unless all are readable.
    pub fn read_slice<T: FromBytes + IntoBytes + Clone>(
        &self,
        addr: UserAddr,
        n: usize,
    ) -> Result<Vec<T>, Errno> {
        let mut v = vec![T::new_zeroed(); n];
        let bytes = v.as_mut_bytes();
        if self.copy_in(addr.0, bytes)? != bytes.len() {
            return Err(Errno::EFAULT);
        }
        Ok(v)
    }

    /// Writes all of `src` to `addr`.
    ///
    /// # Errors
    /// EFAULT unless all of it is writable.
    pub fn write_bytes(&self, addr: UserAddr, src: &[u8]) -> Result<(), Errno> {
        if self.copy_out(addr.0, src)? != src.len() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// Reads all of `len` bytes at `addr`.
    ///
    /// # Errors
    /// EFAULT unless all of it is readable.
    pub fn read_bytes(&self, addr: UserAddr, len: usize) -> Result<Vec<u8>, Errno> {
        let mut v = vec![0u8; len];
        if self.copy_in(addr.0, &mut v)? != len {
            return Err(Errno::EFAULT);
        }
        Ok(v)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (NUL included).
    ///
    /// # Errors
    /// EFAULT on an unreadable address, ENAMETOOLONG when no NUL is found within `max`.
    pub fn read_cstring(&self, addr: UserAddr, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        self.read_cstring_into(addr, max, &mut out)?;
        Ok(out)
    }

    /// [`MemoryManager::read_cstring`] into `out` (emptied first), so that a caller that
    /// keeps a buffer reads strings without allocating.
    ///
    /// # Errors
    /// As [`MemoryManager::read_cstring`] (`out`'s contents are unspecified then).
    pub fn read_cstring_into(
        &self,
        addr: UserAddr,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Errno> {
        // Copied straight into the result, in steps that start small (most strings are short
        // paths: one translation) and double.
        out.clear();
        let mut step = 256;
        let mut at = addr.0;
        while out.len() < max {
            // Read up to the end of the page so we never fault on a readable prefix.
            let chunk = ((crate::abi::PAGE_SIZE - at % crate::abi::PAGE_SIZE) as usize)
                .min(max - out.len())
                .min(step);
            step *= 2;
            let start = out.len();
            out.resize(start + chunk, 0);
            let n = self.copy_in(at, &mut out[start..])?;
            if let Some(pos) = out[start..start + n].iter().position(|&b| b == 0) {
                out.truncate(start + pos);
                return Ok(());
            }
            out.truncate(start + n);
            if n < chunk {
                return Err(Errno::EFAULT);
            }
            at += n as u64;
        }
        Err(Errno::ENAMETOOLONG)
    }

    /// Reads a NULL-terminated array of string pointers (argv, envp).
    ///
    /// # Errors
    /// EFAULT, or E2BIG past `max_total` bytes.
    pub fn read_string_array(
        &self,
        addr: UserAddr,
        max_total: usize,
    ) -> Result<Vec<Vec<u8>>, Errno> {
        let mut out = Vec::new();
        if addr.is_null() {
            return Ok(out);
        }
        let mut total = 0usize;
        for idx in 0.. {
            let p: u64 = self.read_obj(addr.offset(idx * 8)?)?;
            if p == 0 {
                break;
            }
            let s = self.read_cstring(UserAddr(p), max_total.saturating_sub(total).max(1))?;
            total += s.len() + 1 + 8;
            if total > max_total {
                return Err(Errno::E2BIG);
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Reads an iovec array (at most `UIO_MAXIOV` = 1024 entries), checking lengths as Linux:
    /// each and the sum must fit in `isize`.
    ///
    /// # Errors
    /// EINVAL for too many entries or too-long totals, EFAULT for an unreadable array.
    pub fn read_iovecs(&self, addr: UserAddr, count: usize) -> Result<Vec<Iovec>, Errno> {
        if count > 1024 {
            return Err(Errno::EINVAL);
        }
        let v: Vec<Iovec> = self.read_slice(addr, count)?;
        let mut total: u64 = 0;
        for iov in &v {
            access_ok(UserAddr(iov.base), iov.len)?;
            total = total
                .checked_add(iov.len)
                .filter(|&t| t <= isize::MAX as u64)
                .ok_or(Errno::EINVAL)?;
        }
        Ok(v)
    }
}

/// Where a read's data goes: the caller's buffers, filled in order without a sentry-side copy
/// of the whole transfer. Every method moves as much as it can and reports how much moved;
/// a destination that faults before anything moved is EFAULT, one that faults later stops
/// short, so data sources (pipes, sockets) take out exactly what was delivered.
pub trait IoDst {
    /// Bytes the destination still wants.
    fn remaining(&self) -> usize;

    /// Copies from `src`; returns the bytes copied.
    ///
    /// # Errors
    /// EFAULT when `src` and the destination are non-empty and nothing could be copied.
    fn copy_from(&mut self, src: &[u8]) -> Result<usize, Errno>;

    /// Copies what a read at `off` of a file whose contents are `data` returns: the bytes
    /// from `off` on, as many as the destination wants (none at or past the end).
    ///
    /// # Errors
    /// As [`IoDst::copy_from`].
    fn copy_from_offset(&mut self, data: &[u8], off: u64) -> Result<usize, Errno> {
        let start = usize::try_from(off).map_or(data.len(), |o| o.min(data.len()));
        let n = self.remaining().min(data.len() - start);
        self.copy_from(&data[start..start + n])
    }

    /// Copies `len` bytes of the memory file `mf` at `off` (file pages held by the caller).
    ///
    /// # Errors
    /// As [`IoDst::copy_from`].
    fn copy_from_memory(&mut self, mf: &MemoryFile, off: u64, len: usize) -> Result<usize, Errno>;

    /// One host read of `fd` (at `file_off`, or at the fd's own offset) into the destination;
    /// returns the bytes read (0 at end of file). `nowait` as [`MemoryFile::read_host`].
    ///
    /// # Errors
    /// EFAULT as [`IoDst::copy_from`] (nothing is read from the host then), the host's errors.
    fn read_host(
        &mut self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        nowait: bool,
    ) -> Result<usize, Errno>;
}

/// Where a write's data comes from; the mirror of [`IoDst`].
pub trait IoSrc {
    /// Bytes still to be written.
    fn remaining(&self) -> usize;

    /// Copies into `dst`; returns the bytes copied.
    ///
    /// # Errors
    /// EFAULT when `dst` and the source are non-empty and nothing could be copied.
    fn copy_to(&mut self, dst: &mut [u8]) -> Result<usize, Errno>;

    /// Copies up to `len` bytes into the memory file `mf` at `off` (file pages held by the
    /// caller).
    ///
    /// # Errors
    /// As [`IoSrc::copy_to`].
    fn copy_to_memory(&mut self, mf: &MemoryFile, off: u64, len: usize) -> Result<usize, Errno>;

    /// One host write to `fd` (at `file_off`, or at the fd's own offset) from the source;
    /// returns the bytes written.
    ///
    /// # Errors
    /// EFAULT as [`IoSrc::copy_to`] (nothing is written then), the host's errors.
    fn write_host(
        &mut self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        nowait: bool,
    ) -> Result<usize, Errno>;
}

/// Most memory-file pieces one host transfer carries (Linux's UIO_MAXIOV).
const MAX_HOST_IOVECS: usize = 1024;

/// The caller's iovecs in its address space: the destination of a read or the source of a
/// write. Transfers translate user pages to memory-file pages under the address-space lock
/// and copy straight between them and the file, the host or a sentry slice.
pub struct UserIo<'a> {
    mm: &'a MemoryManager,
    iovs: Iovecs,
    /// Next iovec and the position in it.
    idx: usize,
    pos: u64,
    remaining: usize,
}

impl<'a> UserIo<'a> {
    /// The iovecs `iovs` (already checked with [`access_ok`]), at most `max` bytes in all.
    pub fn new(mm: &'a MemoryManager, iovs: Vec<Iovec>, max: usize) -> UserIo<'a> {
        UserIo::over(mm, Iovecs::Many(iovs), max)
    }

    /// One buffer of `len` bytes at `addr`, at most `max` (read, write: no iovec array).
    pub fn single(mm: &'a MemoryManager, addr: UserAddr, len: usize, max: usize) -> UserIo<'a> {
        let iov = Iovec {
            base: addr.0,
            len: len as u64,
        };
        UserIo::over(mm, Iovecs::One(iov), max)
    }

    fn over(mm: &'a MemoryManager, iovs: Iovecs, max: usize) -> UserIo<'a> {
        let total = iovs
            .as_slice()
            .iter()
            .map(|v| v.len as usize)
            .sum::<usize>();
        UserIo {
            mm,
            iovs,
            idx: 0,
            pos: 0,
            remaining: total.min(max),
        }
    }

    /// Bytes moved so far are `total - remaining`: advances by `n`.
    fn advance(&mut self, mut n: usize) {
        self.remaining -= n;
        while n > 0 {
            let left = (self.iovs.as_slice()[self.idx].len - self.pos) as usize;
            if n < left {
                self.pos += n as u64;
                return;
            }
            n -= left;
            self.idx += 1;
            self.pos = 0;
        }
    }

    /// Translates up to `max` bytes from the current position into memory-file pieces (up
    /// to the first unmapped or forbidden page, and at most `max_pieces` of them) and hands
    /// them to `f`, which returns how many bytes it moved; the position advances by that.
    /// Only a fault or `max_pieces` makes the pieces cover less than `max`.
    fn transfer(
        &mut self,
        max: usize,
        write: bool,
        max_pieces: usize,
        f: impl FnOnce(&MemoryFile, &[(u64, usize)]) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        let want = max.min(self.remaining);
        if want == 0 {
            return Ok(0);
        }
        let mut pieces = Pieces::default();
        let mut i = self.mm.lock();
        let (mut idx, mut pos, mut got) = (self.idx, self.pos, 0usize);
        let iovs = self.iovs.as_slice();
        'outer: while got < want && idx < iovs.len() && pieces.len() < max_pieces {
            let iov = iovs[idx];
            while pos < iov.len && got < want {
                let addr = iov.base + pos;
                let Ok((off, avail)) = self.mm.translate(&mut i, addr, write, false, None) else {
                    break 'outer;
                };
                let n = (avail as usize)
                    .min((iov.len - pos) as usize)
                    .min(want - got);
                pieces.add(off, n);
                pos += n as u64;
                got += n;
                if pieces.len() == max_pieces {
                    break 'outer;
                }
            }
            idx += 1;
            pos = 0;
        }
        if got == 0 {
            return Err(Errno::EFAULT);
        }
        let n = f(&self.mm.mf, pieces.as_slice())?;
        drop(i);
        self.advance(n);
        Ok(n)
    }
}

/// A transfer's iovecs: a single buffer (read, write) is held without an allocation.
enum Iovecs {
    One(Iovec),
    Many(Vec<Iovec>),
}

impl Iovecs {
    fn as_slice(&self) -> &[Iovec] {
        match self {
            Iovecs::One(v) => std::slice::from_ref(v),
            Iovecs::Many(v) => v,
        }
    }
}

/// Memory-file pieces a transfer gathers before one hand-off, the first few inline (a
/// transfer of a few pages allocates nothing).
struct Pieces {
    inline: [(u64, usize); INLINE_PIECES],
    len: usize,
    /// All pieces once there are more than fit inline.
    spilled: Vec<(u64, usize)>,
}

const INLINE_PIECES: usize = 8;

impl Default for Pieces {
    fn default() -> Pieces {
        Pieces {
            inline: [(0, 0); INLINE_PIECES],
            len: 0,
            spilled: Vec::new(),
        }
    }
}

impl Pieces {
    fn as_slice(&self) -> &[(u64, usize)] {
        if self.len <= INLINE_PIECES {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Adds `n` bytes at `off`, extending the last piece when they follow it.
    fn add(&mut self, off: u64, n: usize) {
        let last = match self.len {
            0 => None,
            l if l <= INLINE_PIECES => Some(&mut self.inline[l - 1]),
            _ => self.spilled.last_mut(),
        };
        if let Some((o, l)) = last {
            if *o + *l as u64 == off {
                *l += n;
                return;
            }
        }
        if self.len < INLINE_PIECES {
            self.inline[self.len] = (off, n);
        } else {
            if self.len == INLINE_PIECES {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push((off, n));
        }
        self.len += 1;
    }
}

/// Copies `len` bytes from `from` at `from_off` to `to` at `to_off`: inside one memory file
/// directly, across two through a page-sized stack buffer.
fn copy_between(from: &MemoryFile, from_off: u64, to: &MemoryFile, to_off: u64, len: usize) {
    if std::ptr::eq(from, to) {
        from.copy(from_off, to_off, len as u64);
        return;
    }
    let mut chunk = [0u8; crate::abi::PAGE_SIZE as usize];
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(chunk.len());
        from.read(from_off + done as u64, &mut chunk[..n]);
        to.write(to_off + done as u64, &chunk[..n]);
        done += n;
    }
}

fn host_err(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl IoDst for UserIo<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn copy_from(&mut self, src: &[u8]) -> Result<usize, Errno> {
        if src.is_empty() {
            return Ok(0);
        }
        self.transfer(src.len(), true, usize::MAX, |mf, pieces| {
            let mut done = 0usize;
            for &(off, len) in pieces {
                mf.write(off, &src[done..done + len]);
                done += len;
            }
            Ok(done)
        })
    }

    fn copy_from_memory(
        &mut self,
        from: &MemoryFile,
        off: u64,
        len: usize,
    ) -> Result<usize, Errno> {
        if len == 0 {
            return Ok(0);
        }
        self.transfer(len, true, usize::MAX, |mf, pieces| {
            let mut done = 0usize;
            for &(to, n) in pieces {
                copy_between(from, off + done as u64, mf, to, n);
                done += n;
            }
            Ok(done)
        })
    }

    fn read_host(
        &mut self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        nowait: bool,
    ) -> Result<usize, Errno> {
        self.transfer(usize::MAX, true, MAX_HOST_IOVECS, |mf, pieces| {
            mf.read_host(fd, file_off, pieces, nowait).map_err(host_err)
        })
    }
}

impl IoSrc for UserIo<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn copy_to(&mut self, dst: &mut [u8]) -> Result<usize, Errno> {
        if dst.is_empty() {
            return Ok(0);
        }
        self.transfer(dst.len(), false, usize::MAX, |mf, pieces| {
            let mut done = 0usize;
            for &(off, len) in pieces {
                mf.read(off, &mut dst[done..done + len]);
                done += len;
            }
            Ok(done)
        })
    }

    fn copy_to_memory(&mut self, to: &MemoryFile, off: u64, len: usize) -> Result<usize, Errno> {
        if len == 0 {
            return Ok(0);
        }
        self.transfer(len, false, usize::MAX, |mf, pieces| {
            let mut done = 0usize;
            for &(from, n) in pieces {
                copy_between(mf, from, to, off + done as u64, n);
                done += n;
            }
            Ok(done)
        })
    }

    fn write_host(
        &mut self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        nowait: bool,
    ) -> Result<usize, Errno> {
        self.transfer(usize::MAX, false, MAX_HOST_IOVECS, |mf, pieces| {
            mf.write_host(fd, file_off, pieces, nowait)
                .map_err(host_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::sync::Arc;

    use super::*;
    use crate::abi::PAGE_SIZE;
    use crate::mm::{MmapRequest, Perms, Placement, VmaKind};

    /// An address space that accepts every mapping (only the mm's bookkeeping matters).
    struct NullSpace;

    impl platform::AddressSpace for NullSpace {
        fn map(&self, _: u64, _: u64, _: u64, _: Perms) -> platform::Result<()> {
            Ok(())
        }
        fn unmap(&self, _: u64, _: u64) -> platform::Result<()> {
            Ok(())
        }
        fn protect(&self, _: u64, _: u64, _: Perms) -> platform::Result<()> {
            Ok(())
        }
        fn release(&self) {}
    }

    const ADDR: u64 = 0x40_0000;

    /// `pages` read-write anonymous pages at [`ADDR`].
    fn rw_pages(pages: u64) -> MemoryManager {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let mm = MemoryManager::new(mf, Arc::new(NullSpace));
        mm.mmap(MmapRequest {
            placement: Placement::Fixed(ADDR),
            len: pages * PAGE_SIZE,
            perms: Perms::RW,
            shared: false,
            kind: VmaKind::Anon,
            file: None,
        })
        .unwrap();
        mm
    }

    /// Two pages at [`ADDR`]: the first read-write, the second inaccessible.
    fn good_then_bad() -> MemoryManager {
        let mm = rw_pages(2);
        mm.mprotect(ADDR + PAGE_SIZE, PAGE_SIZE, Perms::NONE)
            .unwrap();
        mm
    }

    #[test]
    fn copies_stop_at_the_first_bad_page_and_fault_only_when_nothing_moved() {
        let mm = good_then_bad();
        let mut dst = UserIo::single(&mm, UserAddr(ADDR + PAGE_SIZE - 6), 10, usize::MAX);
        assert_eq!(dst.copy_from(b"0123456789"), Ok(6));
        assert_eq!(IoDst::remaining(&dst), 4);
        assert_eq!(dst.copy_from(b"6789"), Err(Errno::EFAULT));
        let mut back = [0u8; 6];
        mm.copy_in(ADDR + PAGE_SIZE - 6, &mut back).unwrap();
        assert_eq!(&back, b"012345");

        // Two iovecs: the second starts on the bad page.
        let iovs = vec![
            Iovec { base: ADDR, len: 3 },
            Iovec {
                base: ADDR + PAGE_SIZE,
                len: 3,
            },
        ];
        let mut src = UserIo::new(&mm, iovs, usize::MAX);
        let mut out = [0u8; 6];
        assert_eq!(src.copy_to(&mut out), Ok(3));
        assert_eq!(src.copy_to(&mut out), Err(Errno::EFAULT));
    }

    /// Pieces merge when they follow one another and go on past the inline ones in order.
    #[test]
    fn pieces_merge_and_spill_in_order() {
        let mut p = Pieces::default();
        p.add(0, 10);
        p.add(10, 5);
        assert_eq!(p.as_slice(), [(0, 15)]);
        let want: Vec<(u64, usize)> = (0..20u64).map(|i| (1000 * (i + 1), 7)).collect();
        for &(off, n) in &want {
            p.add(off, 3);
            p.add(off + 3, n - 3);
        }
        assert_eq!(p.len(), 21);
        assert_eq!(p.as_slice()[0], (0, 15));
        assert_eq!(&p.as_slice()[1..], want.as_slice());
    }

    /// Many iovecs over discontiguous pages (more pieces than fit inline) move every byte.
    #[test]
    fn a_transfer_of_many_pieces_moves_every_byte() {
        let mm = rw_pages(32);
        // Every other page, 100 bytes from the end of each: 16 iovecs, never adjacent.
        let iovs: Vec<Iovec> = (0..16)
            .map(|i| Iovec {
                base: ADDR + (2 * i + 1) * PAGE_SIZE - 100,
                len: 100,
            })
            .collect();
        let data: Vec<u8> = (0..1600u32).map(|i| (i % 251) as u8).collect();
        let mut dst = UserIo::new(&mm, iovs.clone(), usize::MAX);
        assert_eq!(dst.copy_from(&data), Ok(1600));
        let mut back = vec![0u8; 1600];
        let mut src = UserIo::new(&mm, iovs, usize::MAX);
        assert_eq!(src.copy_to(&mut back), Ok(1600));
        assert_eq!(back, data);
    }

    /// Strings of every length around the read steps (256, 512, ...) and up to the end of
    /// the readable page; one without a NUL before the bad page faults, one longer than `max`
    /// is ENAMETOOLONG.
    #[test]
    fn cstrings_read_whole_across_steps_and_stop_at_a_bad_page() {
        let mm = good_then_bad();
        for len in [
            0,
            1,
            255,
            256,
            257,
            767,
            768,
            769,
            2000,
            PAGE_SIZE as usize - 1,
        ] {
            let s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let at = ADDR + PAGE_SIZE - len as u64 - 1;
            mm.copy_out(at, &s).unwrap();
            mm.copy_out(at + len as u64, &[0]).unwrap();
            assert_eq!(
                mm.read_cstring(UserAddr(at), PATH_MAX),
                Ok(s.clone()),
                "{len}"
            );
            if len > 0 {
                assert_eq!(
                    mm.read_cstring(UserAddr(at), len),
                    Err(Errno::ENAMETOOLONG),
                    "{len}"
                );
            }
            // The NUL overwritten: the string runs into the bad page before `max`.
            mm.copy_out(at + len as u64, b"z").unwrap();
            assert_eq!(
                mm.read_cstring(UserAddr(at), 2 * PATH_MAX),
                Err(Errno::EFAULT),
                "{len}"
            );
        }
    }

    #[test]
    fn a_host_read_into_a_bad_buffer_leaves_the_data_in_the_host_pipe() {
        let mm = good_then_bad();
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"0123456789").unwrap();
        let mut bad = UserIo::single(&mm, UserAddr(ADDR + PAGE_SIZE), 10, usize::MAX);
        assert_eq!(bad.read_host(r.as_fd(), None, true), Err(Errno::EFAULT));
        let mut good = UserIo::single(&mm, UserAddr(ADDR), 64, usize::MAX);
        assert_eq!(good.read_host(r.as_fd(), None, true), Ok(10));
        let mut back = [0u8; 10];
        mm.copy_in(ADDR, &mut back).unwrap();
        assert_eq!(&back, b"0123456789");
        // Empty now: a no-wait read says so instead of blocking.
        assert_eq!(good.read_host(r.as_fd(), None, true), Err(Errno::EAGAIN));
    }
}
