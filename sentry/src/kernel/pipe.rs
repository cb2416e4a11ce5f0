//! Pipes and FIFOs: a bounded byte buffer with readers and writers.
//!
//! Writes of at most [`PIPE_BUF`] bytes are atomic; larger ones may interleave. Reading an
//! empty pipe blocks until data arrives or the last writer closes (EOF); writing to a pipe
//! without readers fails with EPIPE and raises SIGPIPE. Blocking is interruptible.
//!
//! A FIFO is a pipe reached by path: every opener of one FIFO inode shares the pipe held in
//! the kernel's [`Fifos`] table, which lives while some opener has it open (as Linux, its
//! data is gone once the last one closes). Opening follows Linux's `fifo_open`: a reader
//! waits for a writer and a writer for a reader unless the other side already has it open
//! (or has opened it meanwhile, even if it closed again); O_NONBLOCK readers never wait and
//! O_NONBLOCK writers without a reader fail with ENXIO; O_RDWR is both and never waits.
//!
//! # Lock order
//! `Fifos::pipes` is released before a pipe's `state` is taken; `state` is a leaf.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::abi::{Errno, SysResult, PAGE_SIZE};
use crate::vfs::{Context, FileOps, OpenFile, PipeFile, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::{WaitQueue, Wake};

/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// Default capacity (16 pages, as Linux).
pub const PIPE_SIZE: usize = 65536;
/// The largest capacity an unprivileged `F_SETPIPE_SZ` may set (Linux's
/// `/proc/sys/fs/pipe-max-size` default).
pub const PIPE_MAX_SIZE: usize = 1 << 20;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct State {
    buf: VecDeque<u8>,
    capacity: usize,
    readers: usize,
    writers: usize,
    /// Opens for reading and for writing so far: a FIFO opener waits for the other count
    /// to change, so a partner that opened and closed again still releases it.
    read_opens: u64,
    write_opens: u64,
}

/// The shared pipe object.
#[derive(Debug)]
pub struct Pipe {
    state: Mutex<State>,
    /// Notified on every change (data, space, an end opening or closing).
    queue: WaitQueue,
    ino: u64,
    /// The pipefs inode's owner (uid, gid): its creator's, until fchown(2) changes it.
    owner: Mutex<(u32, u32)>,
}

impl Pipe {
    fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                capacity: PIPE_SIZE,
                readers: 0,
                writers: 0,
                read_opens: 0,
                write_opens: 0,
            }),
            queue: WaitQueue::new(),
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            owner: Mutex::new((0, 0)),
        })
    }
}

/// One opener of a pipe (a pipe end, or a FIFO opened for reading, writing or both): the
/// file operations of its open file.
#[derive(Debug)]
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    read: bool,
    write: bool,
    /// The writer-open count when a non-blocking FIFO reader opened without writers: as
    /// Linux, poll shows no hang-up until some writer has opened since.
    writes_seen: u64,
}

impl PipeEnd {
    /// Counts a new opener of `pipe`.
    fn open(pipe: Arc<Pipe>, read: bool, write: bool) -> PipeEnd {
        PipeEnd::open_seeing(pipe, read, write).0
    }

    /// [`PipeEnd::open`], also returning the other side's (openers, opens so far) as they
    /// were at this open, read under the same lock: a FIFO opener that must wait for a
    /// partner waits for the partner's open count to move from there (as Linux's
    /// `fifo_open`), so a partner that opens and closes between this open and the wait is
    /// not missed.
    fn open_seeing(pipe: Arc<Pipe>, read: bool, write: bool) -> (PipeEnd, (usize, u64)) {
        let mut s = pipe.state.lock().unwrap();
        if read {
            s.readers += 1;
            s.read_opens += 1;
        }
        if write {
            s.writers += 1;
            s.write_opens += 1;
        }
        let partner = if read {
            (s.writers, s.write_opens)
        } else {
            (s.readers, s.read_opens)
        };
        drop(s);
        pipe.queue.notify_all();
        let end = PipeEnd {
            pipe,
            read,
            write,
            writes_seen: 0,
        };
        (end, partner)
    }
}

/// A new pipe as (read end, write end) file operations.
pub fn new_pipe() -> (Arc<PipeEnd>, Arc<PipeEnd>) {
    let pipe = Pipe::new();
    (
        Arc::new(PipeEnd::open(pipe.clone(), true, false)),
        Arc::new(PipeEnd::open(pipe, false, true)),
    )
}

impl PipeEnd {
    /// Another end of this end's pipe with the access mode of `flags` (a restore: a pipe
    /// reopened through `/proc/[pid]/fd`).
    ///
    /// # Errors
    /// EINVAL for the access mode 3.
    pub(super) fn another(&self, flags: u32) -> Result<Arc<PipeEnd>, Errno> {
        let (read, write) = match (flags & libc::O_ACCMODE as u32) as i32 {
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            libc::O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        Ok(Arc::new(PipeEnd::open(self.pipe.clone(), read, write)))
    }

    /// Puts a checkpoint's buffered bytes back into this end's empty pipe.
    pub(super) fn refill(&self, bytes: &[u8]) {
        let mut s = self.pipe.state.lock().unwrap();
        s.buf.extend(bytes);
        s.capacity = s.capacity.max(bytes.len());
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.state.lock().unwrap();
        if self.read {
            s.readers -= 1;
        }
        if self.write {
            s.writers -= 1;
        }
        drop(s);
        self.pipe.queue.notify_all();
    }
}

/// The device number `fstat` shows for pipes (Linux's pipefs).
const PIPEFS_DEV: u64 = 0xc;

/// The pipes of the FIFOs some task has open, by the FIFO's (device, inode), and the
/// anonymous pipes, by their own: opening `/proc/[pid]/fd/N` of a pipe opens that pipe as
/// a FIFO, as Linux does.
#[derive(Debug, Default)]
pub struct Fifos {
    pipes: Mutex<FifoMap>,
}

#[derive(Debug, Default)]
struct FifoMap {
    by_key: HashMap<(u64, u64), Weak<Pipe>>,
    /// Entries after the last sweep of dead ones: sweeping when the map doubles keeps
    /// registering a pipe O(1) amortised.
    swept: usize,
}

impl FifoMap {
    fn insert(&mut self, key: (u64, u64), p: &Arc<Pipe>) {
        if self.by_key.len() >= 2 * self.swept + 64 {
            self.by_key.retain(|_, w| w.strong_count() > 0);
            self.swept = self.by_key.len();
        }
        self.by_key.insert(key, Arc::downgrade(p));
    }
}

impl Fifos {
    /// The pipe of FIFO `key`, made on its first open.
    fn pipe(&self, key: (u64, u64)) -> Arc<Pipe> {
        let mut m = self.pipes.lock().unwrap();
        if let Some(p) = m.by_key.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        let p = Pipe::new();
        m.insert(key, &p);
        p
    }

    /// A new anonymous pipe as (read end, write end), reachable again through
    /// `/proc/[pid]/fd`.
    pub fn new_pipe(&self) -> (Arc<PipeEnd>, Arc<PipeEnd>) {
        let (r, w) = new_pipe();
        let key = (PIPEFS_DEV, r.pipe.ino);
        self.pipes.lock().unwrap().insert(key, &r.pipe);
        (r, w)
    }

    /// An opener of FIFO `key` a restore puts back, with the access mode of `flags` (it
    /// does not wait: the other side is restored too).
    ///
    /// # Errors
    /// EINVAL for the access mode 3.
    pub fn restored(&self, key: &(u64, u64), flags: u32) -> Result<Arc<PipeEnd>, Errno> {
        let (read, write) = match (flags & libc::O_ACCMODE as u32) as i32 {
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            libc::O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        Ok(Arc::new(PipeEnd::open(self.pipe(*key), read, write)))
    }

    /// Opens FIFO `key` with the access mode and O_NONBLOCK of `flags`, waiting for the
    /// other side as Linux's `fifo_open` does.
    ///
    /// # Errors
    /// ENXIO for a non-blocking writer without readers, EINTR when a signal interrupts the
    /// wait (restarted), EINVAL for the access mode 3.
    pub fn open(
        &self,
        t: &mut dyn Context,
        key: (u64, u64),
        flags: u32,
    ) -> Result<Arc<PipeEnd>, Errno> {
        let nonblock = flags & libc::O_NONBLOCK as u32 != 0;
        let (read, write) = match (flags & libc::O_ACCMODE as u32) as i32 {
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            libc::O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let pipe = self.pipe(key);
        if write && !read && nonblock && pipe.state.lock().unwrap().readers == 0 {
            return Err(Errno::ENXIO);
        }
        let (mut end, (partners, opens)) = PipeEnd::open_seeing(pipe.clone(), read, write);
        if read && write {
            return Ok(Arc::new(end));
        }
        if partners == 0 {
            if read && nonblock {
                end.writes_seen = opens;
            } else {
                // Dropping `end` on EINTR undoes the open, as Linux's error path does.
                t.block_on(&[&pipe.queue], None, || {
                    let s = pipe.state.lock().unwrap();
                    let now = if read { s.write_opens } else { s.read_opens };
                    (now != opens).then_some(Ok(()))
                })?;
            }
        }
        Ok(Arc::new(end))
    }
}

impl PipeEnd {
    /// Bytes a read would return now (FIONREAD).
    pub fn available(&self) -> usize {
        self.pipe.state.lock().unwrap().buf.len()
    }
}

/// Copies the front of `buf` into `dst`, as much as `dst` wants; returns the count.
///
/// # Errors
/// EFAULT when `dst` faulted before taking all of it: as Linux does for the pipe buffer it
/// was copying, the pipe then keeps those bytes (whatever reached the reader's memory too).
fn copy_out(buf: &VecDeque<u8>, dst: &mut dyn IoDst) -> Result<usize, Errno> {
    let want = buf.len().min(dst.remaining());
    let (a, b) = buf.as_slices();
    let a = &a[..want.min(a.len())];
    let b = &b[..want - a.len()];
    let mut n = dst.copy_from(a)?;
    if n == a.len() && !b.is_empty() {
        n += dst.copy_from(b)?;
    }
    if n < want {
        return Err(Errno::EFAULT);
    }
    Ok(n)
}

impl PipeFile for PipeEnd {
    fn set_owner(&self, uid: u32, gid: u32) {
        *self.pipe.owner.lock().unwrap() = (uid, gid);
    }

    fn pipe_id(&self) -> usize {
        Arc::as_ptr(&self.pipe) as usize
    }

    fn buffered(&self) -> Vec<u8> {
        self.pipe
            .state
            .lock()
            .unwrap()
            .buf
            .iter()
            .copied()
            .collect()
    }

    fn wait_data(&self, t: &mut dyn Context, nonblock: bool) -> Result<usize, Errno> {
        let pipe = &self.pipe;
        t.block_on(&[&pipe.queue], None, || {
            let s = pipe.state.lock().unwrap();
            if !s.buf.is_empty() || s.writers == 0 {
                Some(Ok(s.buf.len()))
            } else if nonblock {
                Some(Err(Errno::EAGAIN))
            } else {
                None
            }
        })
    }

    /// Linux's pipe is a ring of page buffers and a splice fills whole free ones: the room
    /// counts the pages the data does not touch.
    fn wait_room(&self, t: &mut dyn Context, nonblock: bool) -> Result<usize, Errno> {
        let pipe = &self.pipe;
        let page = PAGE_SIZE as usize;
        let r = t.block_on(&[&pipe.queue], None, || {
            let s = pipe.state.lock().unwrap();
            let room = (s.capacity / page).saturating_sub(s.buf.len().div_ceil(page)) * page;
            if s.readers == 0 {
                Some(Err(Errno::EPIPE))
            } else if room > 0 {
                Some(Ok(room))
            } else if nonblock {
                Some(Err(Errno::EAGAIN))
            } else {
                None
            }
        });
        if r == Err(Errno::EPIPE) {
            t.raise_sigpipe();
        }
        r
    }

    fn take(&self, max: usize, consume: bool) -> Vec<u8> {
        let mut s = self.pipe.state.lock().unwrap();
        let n = max.min(s.buf.len());
        let was_full = s.capacity.saturating_sub(s.buf.len()) < PIPE_BUF;
        if !consume {
            return s.buf.iter().take(n).copied().collect();
        }
        let out: Vec<u8> = s.buf.drain(..n).collect();
        drop(s);
        if n > 0 {
            self.pipe.queue.notify(if was_full {
                Wake::Writable
            } else {
                Wake::Blocked
            });
        }
        out
    }

    fn unread(&self, data: &[u8]) {
        let mut s = self.pipe.state.lock().unwrap();
        for &b in data.iter().rev() {
            s.buf.push_front(b);
        }
        drop(s);
        if !data.is_empty() {
            self.pipe.queue.notify(Wake::Readable);
        }
    }

    fn push(&self, data: &[u8]) {
        self.pipe.state.lock().unwrap().buf.extend(data);
        if !data.is_empty() {
            self.pipe.queue.notify(Wake::Readable);
        }
    }

    fn capacity(&self) -> usize {
        self.pipe.state.lock().unwrap().capacity
    }

    fn set_capacity(&self, size: usize, max: usize) -> Result<usize, Errno> {
        let page = PAGE_SIZE as usize;
        if size > 1 << 31 {
            return Err(Errno::EINVAL);
        }
        let pages = size.max(1).div_ceil(page).next_power_of_two();
        let new = pages * page;
        let mut s = self.pipe.state.lock().unwrap();
        if new > max && new > s.capacity {
            return Err(Errno::EPERM);
        }
        // Linux counts the pages the data occupies.
        if s.buf.len().div_ceil(page) > pages {
            return Err(Errno::EBUSY);
        }
        s.capacity = new;
        drop(s);
        self.pipe.queue.notify_all();
        Ok(new)
    }
}

impl FileOps for PipeEnd {
    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if dst.remaining() == 0 {
            return Ok(0);
        }
        let nb = file.nonblocking();
        let pipe = &self.pipe;
        t.block_on(&[&pipe.queue], None, || {
            let mut s = pipe.state.lock().unwrap();
            if !s.buf.is_empty() {
                // Linux wakes pollers of the write end only when the pipe was full.
                let was_full = s.capacity.saturating_sub(s.buf.len()) < PIPE_BUF;
                // Only what reached the reader leaves the pipe (Linux's EFAULT rule).
                let n = match copy_out(&s.buf, dst) {
                    Ok(n) => n,
                    Err(e) => return Some(Err(e)),
                };
                s.buf.drain(..n);
                drop(s);
                pipe.queue.notify(if was_full {
                    Wake::Writable
                } else {
                    Wake::Blocked
                });
                Some(Ok(n))
            } else if s.writers == 0 {
                Some(Ok(0))
            } else if nb {
                Some(Err(Errno::EAGAIN))
            } else {
                None
            }
        })
    }

    fn write(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        let total = src.remaining();
        if total == 0 {
            return Ok(0);
        }
        let nb = file.nonblocking();
        let atomic = total <= PIPE_BUF;
        let pipe = &self.pipe;
        let mut written = 0usize;
        let mut chunk = [0u8; PIPE_BUF];
        let r = t.block_on(&[&pipe.queue], None, || {
            let mut s = pipe.state.lock().unwrap();
            if s.readers == 0 {
                return Some(Err(Errno::EPIPE));
            }
            let mut room = s.capacity.saturating_sub(s.buf.len());
            if atomic && room < total {
                room = 0;
            }
            let before = written;
            let mut fault = None;
            while room > 0 && written < total {
                let want = room.min(total - written).min(chunk.len());
                match src.copy_to(&mut chunk[..want]) {
                    // As Linux, a chunk that faulted part-way is not written.
                    Ok(c) if c < want => {
                        fault = Some(Errno::EFAULT);
                        break;
                    }
                    Ok(c) => {
                        s.buf.extend(&chunk[..c]);
                        written += c;
                        room -= c;
                    }
                    Err(e) => {
                        fault = Some(e);
                        break;
                    }
                }
            }
            drop(s);
            if written > before {
                pipe.queue.notify(Wake::Readable);
            }
            if let Some(e) = fault {
                // Bytes before the fault stay written and are the result.
                Some(if written > 0 { Ok(written) } else { Err(e) })
            } else if written == total {
                Some(Ok(written))
            } else if nb {
                Some(if written > 0 {
                    Ok(written)
                } else {
                    Err(Errno::EAGAIN)
                })
            } else {
                None
            }
        });
        match r {
            Err(Errno::EPIPE) => {
                t.raise_sigpipe();
                if written > 0 {
                    Ok(written)
                } else {
                    Err(Errno::EPIPE)
                }
            }
            Err(Errno::EINTR) if written > 0 => {
                t.clear_restart();
                Ok(written)
            }
            r => r,
        }
    }

    fn ioctl(&self, t: &mut dyn Context, _file: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        if cmd as u64 == libc::FIONREAD {
            let n = self.available() as i32;
            t.mm().write_obj(crate::mm::usermem::UserAddr(arg), &n)?;
            return Ok(0);
        }
        Err(Errno::ENOTTY)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let (uid, gid) = *self.pipe.owner.lock().unwrap();
        Ok(Stat {
            dev: PIPEFS_DEV,
            ino: self.pipe.ino,
            nlink: 1,
            uid,
            gid,
            mode: libc::S_IFIFO | 0o600,
            blksize: PIPE_BUF as i64,
            ..Stat::default()
        })
    }

    fn readiness(&self) -> u32 {
        let s = self.pipe.state.lock().unwrap();
        let mut r = 0;
        if self.write {
            if s.capacity.saturating_sub(s.buf.len()) >= PIPE_BUF {
                r |= libc::POLLOUT | libc::POLLWRNORM;
            }
            if s.readers == 0 {
                r |= libc::POLLERR;
            }
        }
        if self.read {
            if !s.buf.is_empty() {
                r |= libc::POLLIN | libc::POLLRDNORM;
            }
            if s.writers == 0 && s.write_opens != self.writes_seen {
                r |= libc::POLLHUP;
            }
        }
        r as u32
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO reader that must wait sees the writers' open count as it was at its own open:
    /// a writer that opens and closes before the reader starts waiting still ends the wait
    /// (gVisor's FifoTest.FifoOtrunc hung on this once in a few hundred runs).
    #[test]
    fn a_fifo_opener_sees_the_partner_count_of_its_own_open() {
        let pipe = Pipe::new();
        let (reader, (writers, opens)) = PipeEnd::open_seeing(pipe.clone(), true, false);
        assert_eq!((writers, opens), (0, 0));
        drop(PipeEnd::open(pipe.clone(), false, true));
        let s = pipe.state.lock().unwrap();
        assert_eq!(s.writers, 0);
        assert_ne!(
            s.write_opens, opens,
            "the reader's wait would miss the writer"
        );
        drop(s);
        drop(reader);
        let (_writer, (readers, _)) = PipeEnd::open_seeing(pipe, false, true);
        assert_eq!(readers, 0);
    }

    #[test]
    fn readiness_follows_data_and_ends() {
        let (r, w) = new_pipe();
        assert_eq!(r.readiness(), 0);
        assert_ne!(w.readiness() & libc::POLLOUT as u32, 0);
        w.pipe.state.lock().unwrap().buf.extend(b"abc");
        assert_ne!(r.readiness() & libc::POLLIN as u32, 0);
        assert_eq!(r.available(), 3);
        drop(w);
        assert_ne!(r.readiness() & libc::POLLHUP as u32, 0);
        let (r2, w2) = new_pipe();
        drop(r2);
        assert_ne!(w2.readiness() & libc::POLLERR as u32, 0);
    }

    #[test]
    fn capacity_rounds_to_pages_and_keeps_data() {
        let (r, w) = new_pipe();
        assert_eq!(w.capacity(), PIPE_SIZE);
        assert_eq!(w.set_capacity(0, PIPE_MAX_SIZE), Ok(4096));
        assert_eq!(w.set_capacity(5000, PIPE_MAX_SIZE), Ok(8192));
        assert_eq!(w.set_capacity(3 << 12, PIPE_MAX_SIZE), Ok(4 << 12));
        assert_eq!(
            w.set_capacity(PIPE_MAX_SIZE * 2, PIPE_MAX_SIZE),
            Err(Errno::EPERM)
        );
        assert_eq!(w.set_capacity(usize::MAX, usize::MAX), Err(Errno::EINVAL));
        w.push(&[7u8; 5000]);
        assert_eq!(r.set_capacity(4096, PIPE_MAX_SIZE), Err(Errno::EBUSY));
        // tee's copy leaves the data; a short splice puts the rest back in front.
        assert_eq!(r.take(3, false), vec![7, 7, 7]);
        let got = r.take(5000, true);
        r.unread(&got[10..]);
        assert_eq!(r.available(), 4990);
        assert_ne!(w.pipe_id(), new_pipe().0.pipe_id());
        assert_eq!(w.pipe_id(), r.pipe_id());
    }
}
