//! The typed user-memory API handlers use: objects, C strings, iovecs.
//!
//! Validation is lazy, as in Linux: a zero-length access never faults, and copies report
//! partial progress (EFAULT only when nothing was copied).

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::MemoryManager;
use crate::abi::{Errno, Iovec};

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
        let mut at = addr.0;
        while out.len() < max {
            // Read up to the end of the page so we never fault on a readable prefix.
            let chunk = ((crate::abi::PAGE_SIZE - at % crate::abi::PAGE_SIZE) as usize)
                .min(max - out.len());
            let mut buf = vec![0u8; chunk];
            let n = self.copy_in(at, &mut buf)?;
            if let Some(pos) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..pos]);
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
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
