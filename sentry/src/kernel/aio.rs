//! Linux native AIO contexts (`io_setup(2)`): each context is a ring of completion events
//! in a mapping of the process (`/[aio] (deleted)`), laid out as Linux lays it out (header
//! with `AIO_RING_MAGIC`, then `struct io_event` slots), so libaio can read completions
//! from user space. Requests are done synchronously at submission; their events go into the
//! ring at once.
//!
//! The context is named by the ring's address. Its mapping carries the context's ID as its
//! inode number, so a context follows its ring through `mremap` and is gone with it.
//!
//! # Lock order
//! [`Contexts::by_id`] and one [`Context::ring`] lock are leaves; the ring's memory-file
//! pages are written under the ring lock (the memory file's own locks come after it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{Errno, PAGE_SIZE};
use crate::memory::{FileRange, MemoryFile};
use crate::mm::filemap::Mappable;
use crate::waiter::{WaitQueue, Wake};

/// `AIO_RING_MAGIC`.
const RING_MAGIC: u32 = 0xa10a_10a1;
/// Size of the ring header and of one event.
const HEADER_LEN: u64 = 32;
const EVENT_LEN: u64 = 32;
/// `/proc/sys/fs/aio-max-nr`.
pub const MAX_EVENTS: u32 = 65536;
/// The name Linux gives the ring's mapping.
pub const RING_NAME: &str = "/[aio] (deleted)";

/// `struct io_event`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IoEvent {
    pub data: u64,
    pub obj: u64,
    pub res: i64,
    pub res2: i64,
}

/// The ring header (`struct aio_ring` without its events).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RingHeader {
    id: u32,
    nr: u32,
    head: u32,
    tail: u32,
    magic: u32,
    compat_features: u32,
    incompat_features: u32,
    header_length: u32,
}

/// The kernel's AIO contexts, by ID. The ring's mapping holds its context; the table
/// holds it weakly, so a process that exits without io_destroy leaves nothing behind.
#[derive(Default)]
pub struct Contexts {
    by_id: Mutex<HashMap<u64, Weak<Context>>>,
    next_id: AtomicU64,
}

impl Contexts {
    /// A new context of at least `nr` events, its ring allocated in `mf`.
    ///
    /// # Errors
    /// EINVAL (nr 0 or past aio-max-nr), EAGAIN when memory runs out.
    pub fn create(&self, mf: &Arc<MemoryFile>, nr: u32, cpus: u32) -> Result<Arc<Context>, Errno> {
        if nr == 0 || nr > MAX_EVENTS {
            return Err(Errno::EINVAL);
        }
        // As Linux: room for twice the larger of `nr` and four per CPU, then every slot the
        // ring's last page can hold.
        let wanted = u64::from(nr.max(cpus.saturating_mul(4))) * 2;
        let size = (HEADER_LEN + wanted * EVENT_LEN).next_multiple_of(PAGE_SIZE);
        let slots = ((size - HEADER_LEN) / EVENT_LEN) as u32;
        let pages = mf.allocate(size).map_err(|_| Errno::EAGAIN)?;
        mf.zero(pages.offset, size);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let header = RingHeader {
            id: id as u32,
            nr: slots,
            magic: RING_MAGIC,
            compat_features: 1,
            header_length: HEADER_LEN as u32,
            ..RingHeader::default()
        };
        mf.write(pages.offset, header.as_bytes());
        let ctx = Arc::new(Context {
            id,
            ring: Mutex::new(Ring {
                mf: mf.clone(),
                pages,
                slots,
            }),
            events: WaitQueue::new(),
        });
        let mut by_id = self.by_id.lock().unwrap();
        by_id.retain(|_, c| c.strong_count() > 0);
        by_id.insert(id, Arc::downgrade(&ctx));
        Ok(ctx)
    }

    /// The context with `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Context>> {
        self.by_id.lock().unwrap().get(&id).and_then(Weak::upgrade)
    }

    /// io_destroy: forgets the context.
    pub fn remove(&self, id: u64) {
        self.by_id.lock().unwrap().remove(&id);
    }
}

struct Ring {
    mf: Arc<MemoryFile>,
    pages: FileRange,
    slots: u32,
}

impl Ring {
    fn header(&self) -> RingHeader {
        let mut h = RingHeader::default();
        self.mf.read(self.pages.offset, h.as_mut_bytes());
        h
    }

    fn set_head_tail(&self, head: u32, tail: u32) {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&head.to_ne_bytes());
        b[4..].copy_from_slice(&tail.to_ne_bytes());
        self.mf.write(self.pages.offset + 8, &b);
    }

    fn slot_offset(&self, i: u32) -> u64 {
        self.pages.offset + HEADER_LEN + u64::from(i) * EVENT_LEN
    }
}

/// One AIO context.
pub struct Context {
    pub id: u64,
    ring: Mutex<Ring>,
    /// Notified when an event is added.
    pub events: WaitQueue,
}

impl Context {
    /// Bytes of the ring mapping.
    pub fn ring_len(&self) -> u64 {
        self.ring.lock().unwrap().pages.len
    }

    /// The ring as a mappable file (what io_setup maps).
    pub fn mappable(self: &Arc<Self>) -> Arc<dyn Mappable> {
        Arc::new(RingFile(self.clone()))
    }

    /// Whether the ring has room for one more event (the caller's head and tail are what
    /// the application left in the ring; a corrupt head is treated as an empty ring).
    ///
    /// # Errors
    /// EAGAIN when full.
    pub fn reserve(&self) -> Result<(), Errno> {
        let r = self.ring.lock().unwrap();
        let h = r.header();
        let (head, tail) = (h.head % r.slots, h.tail % r.slots);
        if (tail + 1) % r.slots == head {
            return Err(Errno::EAGAIN);
        }
        Ok(())
    }

    /// Adds a completion event.
    pub fn complete(&self, ev: IoEvent) {
        {
            let r = self.ring.lock().unwrap();
            let h = r.header();
            let (head, tail) = (h.head % r.slots, h.tail % r.slots);
            if (tail + 1) % r.slots == head {
                // Full: only possible when the application moved head itself; the event is
                // dropped as Linux would overwrite nothing either.
                return;
            }
            r.mf.write(r.slot_offset(tail), ev.as_bytes());
            r.set_head_tail(head, (tail + 1) % r.slots);
        }
        self.events.notify(Wake::Readable);
    }

    /// Takes up to `max` events.
    pub fn take(&self, max: usize) -> Vec<IoEvent> {
        let r = self.ring.lock().unwrap();
        let h = r.header();
        let (mut head, tail) = (h.head % r.slots, h.tail % r.slots);
        let mut out = Vec::new();
        while head != tail && out.len() < max {
            let mut ev = IoEvent::default();
            r.mf.read(r.slot_offset(head), ev.as_mut_bytes());
            out.push(ev);
            head = (head + 1) % r.slots;
        }
        r.set_head_tail(head, tail);
        out
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.mf.dec_ref(self.pages);
    }
}

/// The ring's pages as a file to map.
struct RingFile(Arc<Context>);

impl Mappable for RingFile {
    fn size(&self) -> u64 {
        self.0.ring_len()
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let r = self.0.ring.lock().unwrap();
        let total = r.pages.len / PAGE_SIZE;
        let end = first.saturating_add(count).min(total);
        if first >= end {
            return Ok(Vec::new());
        }
        let range = FileRange {
            offset: r.pages.offset + first * PAGE_SIZE,
            len: (end - first) * PAGE_SIZE,
        };
        r.mf.inc_ref(range);
        Ok(vec![(first, range)])
    }

    fn shared_writable(&self) -> bool {
        true
    }

    fn fixed_size_mapping(&self) -> bool {
        true
    }
}
