//! signalfd: pending signals read as `struct signalfd_siginfo` records.
//!
//! A read dequeues signals in the file's mask from the reading thread's pending set and its
//! process's shared set (the signals are normally blocked, so nothing else takes them).
//! Readiness looks at the process that created the file, which is the reader in practice;
//! its [`ThreadGroup::signal_events`] queue is notified whenever a signal is queued there.

use std::sync::{Arc, Mutex, Weak};

use zerocopy::{FromZeros, Immutable, IntoBytes, KnownLayout};

use super::signal::{SigInfo, UNBLOCKABLE};
use super::{Kernel, ThreadGroup};
use crate::abi::Errno;
use crate::vfs::IoDst;
use crate::vfs::{Context, FileOps, OpenFile, SignalFdFile, Stat};
use crate::waiter::WaitQueue;

/// `struct signalfd_siginfo` (128 bytes).
#[derive(Debug, Clone, Copy, FromZeros, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SignalfdSiginfo {
    pub signo: u32,
    pub errno: i32,
    pub code: i32,
    pub pid: u32,
    pub uid: u32,
    pub fd: i32,
    pub tid: u32,
    pub band: u32,
    pub overrun: u32,
    pub trapno: u32,
    pub status: i32,
    pub int: i32,
    pub ptr: u64,
    pub utime: u64,
    pub stime: u64,
    pub addr: u64,
    pub addr_lsb: u16,
    pad2: u16,
    pub syscall: i32,
    pub call_addr: u64,
    pub arch: u32,
    pad: [u8; 28],
}

const SI_TIMER: i32 = -2;

impl SignalfdSiginfo {
    /// The record for `info`, laid out by the kind of signal as Linux's `signalfd_copyinfo`.
    pub fn from_info(info: &SigInfo) -> SignalfdSiginfo {
        let mut r = SignalfdSiginfo::new_zeroed();
        r.signo = info.signo as u32;
        r.errno = info.errno;
        r.code = info.code;
        let w0 = info.fields[0];
        let w1 = info.fields[1];
        let fault = matches!(
            info.signo,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        ) && info.code > 0;
        if fault {
            r.addr = w0;
        } else if info.code == SI_TIMER {
            r.tid = w0 as u32;
            r.overrun = (w0 >> 32) as u32;
            r.int = w1 as i32;
            r.ptr = w1;
        } else {
            r.pid = w0 as u32;
            r.uid = (w0 >> 32) as u32;
            if info.signo == libc::SIGCHLD {
                r.status = w1 as i32;
            } else {
                r.int = w1 as i32;
                r.ptr = w1;
            }
        }
        r
    }
}

/// A signalfd's file operations.
pub struct SignalFd {
    mask: Mutex<u64>,
    /// The creating process: polling reports its signals.
    tg: Arc<ThreadGroup>,
    /// Where a reader's own signal state is found (weakly: the kernel's tasks hold this
    /// file through their fd tables).
    kernel: Weak<Kernel>,
}

impl std::fmt::Debug for SignalFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalFd")
            .field("mask", &*self.mask.lock().unwrap())
            .finish_non_exhaustive()
    }
}

impl SignalFd {
    pub fn new(kernel: &Arc<Kernel>, tg: Arc<ThreadGroup>, mask: u64) -> SignalFd {
        SignalFd {
            mask: Mutex::new(mask & !UNBLOCKABLE),
            tg,
            kernel: Arc::downgrade(kernel),
        }
    }

    /// For a checkpoint: the mask and the PID of the process that created the file.
    pub fn saved(&self) -> (u64, i32) {
        (*self.mask.lock().unwrap(), self.tg.tgid)
    }

    /// Takes a signal of the mask pending for thread `tid` of `tg` (the reader).
    fn dequeue(&self, tg: &ThreadGroup, tid: i32) -> Option<SigInfo> {
        let others = !*self.mask.lock().unwrap();
        let mut s = tg.sig();
        s.threads
            .get_mut(&tid)
            .and_then(|th| th.pending.pop(others))
            .or_else(|| s.shared.pop(others))
    }
}

impl SignalFdFile for SignalFd {
    fn set_mask(&self, mask: u64) {
        *self.mask.lock().unwrap() = mask & !UNBLOCKABLE;
        self.tg.signal_events.notify_all();
    }
}

impl FileOps for SignalFd {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        const REC: usize = size_of::<SignalfdSiginfo>();
        let max = dst.remaining() / REC;
        if max == 0 {
            return Err(Errno::EINVAL);
        }
        let nb = file.flags() & libc::O_NONBLOCK as u32 != 0;
        // A read takes the reader's own signals, as Linux's signalfd does.
        let tid = t.tid();
        let kernel = self.kernel.upgrade().ok_or(Errno::ESRCH)?;
        let tg = kernel
            .tree()
            .tasks
            .get(&tid)
            .map(|h| h.tg.clone())
            .ok_or(Errno::ESRCH)?;
        let first = t.block_on(&[&tg.signal_events], None, || {
            match self.dequeue(&tg, tid) {
                Some(i) => Some(Ok(i)),
                None if nb => Some(Err(Errno::EAGAIN)),
                None => None,
            }
        })?;
        let mut out = Vec::with_capacity(REC);
        let mut n = 0;
        let mut next = Some(first);
        while let Some(info) = next {
            out.extend_from_slice(SignalfdSiginfo::from_info(&info).as_bytes());
            n += 1;
            next = if n < max {
                self.dequeue(&tg, tid)
            } else {
                None
            };
        }
        dst.copy_from(&out)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
        let mask = *self.mask.lock().unwrap();
        let s = self.tg.sig();
        let pending = s.shared.set() | s.threads.values().fold(0, |a, t| a | t.pending.set());
        if pending & mask != 0 {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.tg.signal_events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_128_bytes_and_carries_sender() {
        assert_eq!(size_of::<SignalfdSiginfo>(), 128);
        let info = SigInfo::from_user(libc::SIGUSR1, 0, 42, 7);
        let r = SignalfdSiginfo::from_info(&info);
        assert_eq!((r.signo, r.pid, r.uid), (libc::SIGUSR1 as u32, 42, 7));
    }
}
