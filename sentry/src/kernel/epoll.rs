//! epoll instances (level- and edge-triggered, EPOLLONESHOT), eventfd counters, and the
//! readiness wait that poll/select/epoll share.
//!
//! Edge-triggered items follow Linux's shape: an item is re-armed whenever the watched
//! file's wait queue is woken about the kind of readiness the item watches ([`Wake`]: data
//! and hang-ups for the reading events, room for EPOLLOUT), and an armed item is reported
//! (and disarmed) when the file's current readiness intersects its events. A file without a
//! wait queue (a host fd, re-polled on a tick) re-arms when a watched readiness bit newly
//! appears instead, so more data on an already readable host fd is not reported again.
//!
//! # Lock order
//! `Epoll::interests` → the watched file's internal locks (readiness) → `WaitQueue`.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::Task;
use crate::abi::{Errno, SysResult};
use crate::vfs::{Context, FileOps, OpenFile, Stat};
use crate::waiter::{WaitQueue, Wake, WakeCount};

pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;
/// Always reported, whether asked for or not.
const ALWAYS: u32 = (libc::POLLERR | libc::POLLHUP) as u32;
/// The events a [`Wake::Readable`] wake-up re-arms.
const READ_EVENTS: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLRDHUP
    | libc::EPOLLMSG) as u32;
/// The events a [`Wake::Writable`] wake-up re-arms.
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLWRNORM | libc::EPOLLWRBAND) as u32;

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
    let queues: Vec<&WaitQueue> = files.iter().filter_map(|f| f.ops.wait_queue()).collect();
    let polled = files.iter().any(|f| f.ops.wait_queue().is_none());
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

#[derive(Debug)]
struct Interest {
    fd: i32,
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
    /// EPOLLONESHOT fired: nothing reported until re-armed with EPOLL_CTL_MOD.
    disarmed: bool,
    /// EPOLLET: where the item was last consumed; see [`Edge`].
    edge: Edge,
}

/// The state of an edge-triggered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Just added or modified: reported if ready (Linux polls the file at EPOLL_CTL_ADD/MOD).
    Fresh,
    /// Consumed when the file's wait queue had these wake-up counts; re-armed by a later
    /// wake-up of a kind the item watches.
    Seen(WakeCount),
    /// Consumed when a file without a wait queue had this readiness; re-armed by a bit
    /// that was not set then.
    SeenReadiness(u32),
}

/// What [`Interest::poll`] found: the events to report (0: none) and the item's next edge
/// state if they are reported or found not ready.
struct Polled {
    ready: u32,
    edge: Edge,
}

impl Interest {
    /// Polls the watched file for this item without changing the item.
    fn poll(&self) -> Option<Polled> {
        if self.disarmed {
            return None;
        }
        let f = self.file.upgrade()?;
        let mask = self.events | ALWAYS;
        if self.events & EPOLLET == 0 {
            return Some(Polled {
                ready: f.ops.readiness() & mask,
                edge: self.edge,
            });
        }
        match f.ops.wait_queue() {
            Some(q) => {
                // Counts before readiness: a wake-up after the poll re-arms the item.
                let now = q.wakes();
                let armed = match self.edge {
                    Edge::Seen(seen) => {
                        let any = self.events & (READ_EVENTS | WRITE_EVENTS) == 0;
                        let read = now.readable != seen.readable;
                        let write = now.writable != seen.writable;
                        (read && (any || self.events & READ_EVENTS != 0))
                            || (write && (any || self.events & WRITE_EVENTS != 0))
                    }
                    Edge::Fresh | Edge::SeenReadiness(_) => true,
                };
                let ready = if armed { f.ops.readiness() & mask } else { 0 };
                Some(Polled {
                    ready,
                    edge: Edge::Seen(now),
                })
            }
            None => {
                let cur = f.ops.readiness() & mask;
                let before = match self.edge {
                    Edge::SeenReadiness(r) => r,
                    Edge::Fresh | Edge::Seen(_) => 0,
                };
                Some(Polled {
                    ready: if cur & !before != 0 { cur } else { 0 },
                    edge: Edge::SeenReadiness(cur),
                })
            }
        }
    }
}

/// An epoll instance.
#[derive(Debug, Default)]
pub struct Epoll {
    interests: Mutex<Vec<Interest>>,
}

impl Epoll {
    /// EPOLL_CTL_ADD/MOD/DEL.
    ///
    /// # Errors
    /// EEXIST, ENOENT, EINVAL as Linux.
    pub fn ctl(
        &self,
        op: i32,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> Result<(), Errno> {
        let mut v = self.interests.lock().unwrap();
        v.retain(|i| i.file.strong_count() > 0);
        let pos = v
            .iter()
            .position(|i| i.fd == fd && Weak::ptr_eq(&i.file, &Arc::downgrade(file)));
        match (op, pos) {
            (libc::EPOLL_CTL_ADD, Some(_)) => Err(Errno::EEXIST),
            (libc::EPOLL_CTL_ADD, None) => {
                v.push(Interest {
                    fd,
                    file: Arc::downgrade(file),
                    events,
                    data,
                    disarmed: false,
                    edge: Edge::Fresh,
                });
                Ok(())
            }
            (libc::EPOLL_CTL_MOD, Some(i)) => {
                v[i].events = events;
                v[i].data = data;
                v[i].disarmed = false;
                v[i].edge = Edge::Fresh;
                Ok(())
            }
            (libc::EPOLL_CTL_DEL, Some(i)) => {
                v.remove(i);
                Ok(())
            }
            (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, None) => Err(Errno::ENOENT),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The files currently watched (for their wait queues).
    pub fn files(&self) -> Vec<Arc<OpenFile>> {
        self.interests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|i| i.file.upgrade())
            .collect()
    }

    /// Ready events, at most `max`, as (events, data). Reported edge-triggered items are
    /// consumed until re-armed, one-shot items until EPOLL_CTL_MOD.
    pub fn collect(&self, max: usize) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut v = self.interests.lock().unwrap();
        for i in v.iter_mut() {
            if out.len() >= max {
                break;
            }
            let Some(p) = i.poll() else { continue };
            i.edge = p.edge;
            if p.ready != 0 {
                out.push((p.ready, i.data));
                if i.events & EPOLLONESHOT != 0 {
                    i.disarmed = true;
                }
            }
        }
        out
    }
}

impl FileOps for Epoll {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
        let v = self.interests.lock().unwrap();
        let any = v.iter().any(|i| i.poll().is_some_and(|p| p.ready != 0));
        if any {
            libc::POLLIN as u32
        } else {
            0
        }
    }

    fn as_epoll(&self) -> Option<&Epoll> {
        Some(self)
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
    pub fn new(initval: u64, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(initval),
            semaphore,
            queue: WaitQueue::new(),
        }
    }
}

impl FileOps for EventFd {
    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        buf: &mut [u8],
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if buf.len() < 8 {
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
        buf[..8].copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        buf: &[u8],
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        let add = u64::from_ne_bytes(
            buf.get(..8)
                .ok_or(Errno::EINVAL)?
                .try_into()
                .expect("8 bytes"),
        );
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
