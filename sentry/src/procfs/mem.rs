//! `/proc/[pid]/mem`: another process's (or the caller's own) memory as a file whose offsets
//! are addresses.
//!
//! As Linux: opening needs ptrace-attach access with the filesystem IDs (the same process,
//! the same user and group in every ID, or CAP_SYS_PTRACE); the file holds the address
//! space it was opened on, not the process, so after the process exits or execs a read gives
//! 0 bytes. Reads and writes ignore page protections (a debugger's peek and poke) and stop
//! at the first unmapped page: EIO when nothing was transferred, the count so far otherwise.
//! `SEEK_END` is EINVAL (the file has no size).

use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::mm::usermem::IoSrc;
use crate::mm::MemoryManager;
use crate::vfs::{Context, FileOps, IoDst, OpenFile, Stat};

/// The most bytes staged in the sentry at a time (Linux bounces through one page).
const CHUNK: usize = 4096;

/// An open `/proc/[pid]/mem`.
pub(super) struct MemFile {
    /// The address space at open; gone once no task uses it (None: opened on a zombie).
    mm: Option<Weak<MemoryManager>>,
    st: Stat,
}

impl MemFile {
    pub(super) fn new(mm: Option<&Arc<MemoryManager>>, st: Stat) -> MemFile {
        MemFile {
            mm: mm.map(Arc::downgrade),
            st,
        }
    }

    fn mm(&self) -> Option<Arc<MemoryManager>> {
        self.mm.as_ref().and_then(Weak::upgrade)
    }
}

/// What a transfer that stopped early answers: the count so far, or `err` when nothing moved.
fn progress(done: usize, err: Errno) -> Result<usize, Errno> {
    if done == 0 {
        Err(err)
    } else {
        Ok(done)
    }
}

/// Moves up to `len` bytes starting at address `addr`, a chunk at a time through a buffer:
/// `stage` fills the buffer from the source (given the chunk's address), `deliver` hands
/// what was staged to the destination. The source is staged in full before the destination
/// is written: the two may be one address space, whose lock is not held across both. Stops
/// after the first short delivery; an error ends the transfer as [`progress`] says.
fn transfer(
    addr: u64,
    len: usize,
    mut stage: impl FnMut(u64, &mut [u8]) -> Result<usize, Errno>,
    mut deliver: impl FnMut(u64, &[u8]) -> Result<usize, Errno>,
) -> Result<usize, Errno> {
    let mut buf = [0u8; CHUNK];
    let mut done = 0usize;
    while done < len {
        let want = (len - done).min(CHUNK);
        let Some(at) = addr.checked_add(done as u64) else {
            return progress(done, Errno::EIO);
        };
        let got = match stage(at, &mut buf[..want]) {
            Ok(n) => n,
            Err(e) => return progress(done, e),
        };
        let put = match deliver(at, &buf[..got]) {
            Ok(n) => n,
            Err(e) => return progress(done, e),
        };
        done += put;
        if put < want {
            break;
        }
    }
    Ok(done)
}

impl FileOps for MemFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        let Some(mm) = self.mm() else {
            return Ok(0);
        };
        transfer(
            off.unwrap_or(0),
            dst.remaining(),
            |at, buf| mm.copy_in_force(at, buf).map_err(|_| Errno::EIO),
            |_, buf| dst.copy_from(buf),
        )
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        let Some(mm) = self.mm() else {
            return Ok(0);
        };
        transfer(
            off.unwrap_or(0),
            src.remaining(),
            |_, buf| src.copy_to(buf),
            |at, buf| mm.copy_out_force(at, buf).map_err(|_| Errno::EIO),
        )
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.st)
    }

    fn seekable(&self) -> bool {
        true
    }

    /// No size: `SEEK_END` is EINVAL, as Linux's `mem_lseek`.
    fn size(&self) -> Result<u64, Errno> {
        Err(Errno::EINVAL)
    }
}
