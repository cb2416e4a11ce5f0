//! eventfd counters, and the readiness wait that poll/select/epoll_wait share (epoll
//! instances themselves are a vfs file kind: `vfs::epoll`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Task;
use crate::abi::{Errno, SysResult};
use crate::vfs::{Context, FileOps, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::{WaitQueue, Wake};

/// How often files without a wait queue (host fds) are re-polled while blocking.
const HOST_POLL_TICK: Duration = Duration::from_millis(10);

/// Waits until `scan` finds something ready, sleeping on the wait queues of `files` (and
/// re-polling files that have none). Returns None when `deadline` passes.
///
/// # Errors
/// EINTR when interrupted.
pub fn wait_ready<T>(
    t: &mut Task,
    files: &[Arc<OpenFile>],
    deadline: Option<Instant>,
    mut scan: impl FnMut(&mut Task) -> Option<T>,
) -> Result<Option<T>, Errno> {
    let queues: Vec<&WaitQueue> = files.iter().filter_map(|f| f.ops().wait_queue()).collect();
    let polled = files.iter().any(|f| f.ops().wait_queue().is_none());
    loop {
        let tick = if polled {
            let next = Instant::now() + HOST_POLL_TICK;
            Some(deadline.map_or(next, |d| d.min(next)))
        } else {
            deadline
        };
        match t.block_on(&queues, tick, |t| scan(t).map(Ok)) {
            Ok(v) => return Ok(Some(v)),
            Err(Errno::ETIMEDOUT) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// An eventfd counter.
#[derive(Debug)]
pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    queue: WaitQueue,
}

impl EventFd {
    /// The counter and whether it is a semaphore (`EFD_SEMAPHORE`), for a checkpoint.
    pub fn saved(&self) -> (u64, bool) {
        (*self.count.lock().unwrap(), self.semaphore)
    }

    pub fn new(initval: u64, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(initval),
            semaphore,
            queue: WaitQueue::new(),
        }
    }
}

impl FileOps for EventFd {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// Linux's eventfd has no `fasync`: `O_ASYNC` is recorded but never signals.
    fn signals_io(&self) -> bool {
        false
    }

    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if dst.remaining() < 8 {
            return Err(Errno::EINVAL);
        }
        let nb = file.flags() & libc::O_NONBLOCK as u32 != 0;
        let v = t.block_on(&[&self.queue], None, || {
            let mut c = self.count.lock().unwrap();
            if *c == 0 {
                return if nb { Some(Err(Errno::EAGAIN)) } else { None };
            }
            let v = if self.semaphore { 1 } else { *c };
            *c -= v;
            Some(Ok(v))
        })?;
        // Reading makes room (Linux wakes with EPOLLOUT).
        self.queue.notify(Wake::Writable);
        dst.copy_from(&v.to_ne_bytes())
    }

    fn write(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if src.remaining() < 8 {
            return Err(Errno::EINVAL);
        }
        let mut raw = [0u8; 8];
        if src.copy_to(&mut raw)? < 8 {
            return Err(Errno::EFAULT);
        }
        let add = u64::from_ne_bytes(raw);
        if add == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let nb = file.flags() & libc::O_NONBLOCK as u32 != 0;
        t.block_on(&[&self.queue], None, || {
            let mut c = self.count.lock().unwrap();
            if u64::MAX - 1 - *c < add {
                return if nb { Some(Err(Errno::EAGAIN)) } else { None };
            }
            *c += add;
            Some(Ok(()))
        })?;
        self.queue.notify(Wake::Readable);
        Ok(8)
    }

    fn ioctl(&self, _t: &mut dyn Context, _file: &OpenFile, _cmd: u32, _arg: u64) -> SysResult {
        Err(Errno::ENOTTY)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
        let c = *self.count.lock().unwrap();
        let mut r = 0;
        if c > 0 {
            r |= libc::POLLIN | libc::POLLRDNORM;
        }
        if c < u64::MAX - 1 {
            r |= libc::POLLOUT | libc::POLLWRNORM;
        }
        r as u32
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
}
