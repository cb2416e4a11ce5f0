//! epoll instances (level- and edge-triggered, EPOLLONESHOT): a kind of open file, so it
//! lives in the vfs as in gVisor. The blocking wait that poll/select/epoll_wait share is the
//! kernel's (`kernel::epoll::wait_ready`).
//!
//! Edge-triggered items follow Linux's shape: an item is re-armed whenever the watched
//! file's wait queue is woken about the kind of readiness the item watches ([`crate::waiter::Wake`]: data
//! and hang-ups for the reading events, room for EPOLLOUT), and an armed item is reported
//! (and disarmed) when the file's current readiness intersects its events. A file without a
//! wait queue (a host fd, re-polled on a tick) re-arms when a watched readiness bit newly
//! appears instead, so more data on an already readable host fd is not reported again.
//!
//! # Lock order
//! `Epoll::interests` → the watched file's internal locks (readiness) → `WaitQueue`.

use std::sync::{Arc, Mutex, Weak};

use crate::abi::Errno;
use crate::vfs::{FileOps, OpenFile, Stat};
use crate::waiter::WakeCount;

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
                ready: f.ops().readiness() & mask,
                edge: self.edge,
            });
        }
        match f.ops().wait_queue() {
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
                let ready = if armed { f.ops().readiness() & mask } else { 0 };
                Some(Polled {
                    ready,
                    edge: Edge::Seen(now),
                })
            }
            None => {
                let cur = f.ops().readiness() & mask;
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

    /// For a checkpoint: the interest list, each item as (fd, watched file, events, data,
    /// whether EPOLLONESHOT disarmed it). Items of closed files are left out.
    pub fn saved(&self) -> Vec<(i32, Arc<OpenFile>, u32, u64, bool)> {
        self.interests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|i| {
                let f = i.file.upgrade()?;
                Some((i.fd, f, i.events, i.data, i.disarmed))
            })
            .collect()
    }

    /// For a restore: adds an item as [`Epoll::saved`] gave it. Its readiness is polled
    /// afresh (an edge-triggered item reports a ready file once more).
    pub fn restore_interest(
        &self,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
        disarmed: bool,
    ) {
        self.interests.lock().unwrap().push(Interest {
            fd,
            file: Arc::downgrade(file),
            events,
            data,
            disarmed,
            edge: Edge::Fresh,
        });
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
}
