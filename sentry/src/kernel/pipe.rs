//! Pipes: a bounded byte buffer with a read end and a write end.
//!
//! Writes of at most [`PIPE_BUF`] bytes are atomic; larger ones may interleave. Reading an
//! empty pipe blocks until data arrives or the last writer closes (EOF); writing to a pipe
//! without readers fails with EPIPE and raises SIGPIPE. Blocking is interruptible.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::abi::{Errno, SysResult};
use crate::vfs::{Context, FileOps, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::{WaitQueue, Wake};

/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// Default capacity (16 pages, as Linux).
pub const PIPE_SIZE: usize = 65536;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct State {
    buf: VecDeque<u8>,
    capacity: usize,
    readers: usize,
    writers: usize,
}

/// The shared pipe object.
#[derive(Debug)]
pub struct Pipe {
    state: Mutex<State>,
    /// Notified on every change (data, space, an end closing).
    queue: WaitQueue,
    ino: u64,
}

/// One end of a pipe: the file operations of its open file.
#[derive(Debug)]
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
}

/// A new pipe as (read end, write end) file operations.
pub fn new_pipe() -> (Arc<PipeEnd>, Arc<PipeEnd>) {
    let pipe = Arc::new(Pipe {
        state: Mutex::new(State {
            buf: VecDeque::new(),
            capacity: PIPE_SIZE,
            readers: 1,
            writers: 1,
        }),
        queue: WaitQueue::new(),
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
    });
    (
        Arc::new(PipeEnd {
            pipe: pipe.clone(),
            write: false,
        }),
        Arc::new(PipeEnd { pipe, write: true }),
    )
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.state.lock().unwrap();
        if self.write {
            s.writers -= 1;
        } else {
            s.readers -= 1;
        }
        drop(s);
        self.pipe.queue.notify_all();
    }
}

fn nonblocking(f: &OpenFile) -> bool {
    f.flags() & libc::O_NONBLOCK as u32 != 0
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
        let nb = nonblocking(file);
        let pipe = &self.pipe;
        t.block_on(&[&pipe.queue], None, || {
            let mut s = pipe.state.lock().unwrap();
            if !s.buf.is_empty() {
                // Linux wakes pollers of the write end only when the pipe was full.
                let was_full = s.capacity - s.buf.len() < PIPE_BUF;
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
        let nb = nonblocking(file);
        let atomic = total <= PIPE_BUF;
        let pipe = &self.pipe;
        let mut written = 0usize;
        let mut chunk = [0u8; PIPE_BUF];
        let r = t.block_on(&[&pipe.queue], None, || {
            let mut s = pipe.state.lock().unwrap();
            if s.readers == 0 {
                return Some(Err(Errno::EPIPE));
            }
            let mut room = s.capacity - s.buf.len();
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
        Ok(Stat {
            dev: 0xc,
            ino: self.pipe.ino,
            nlink: 1,
            mode: libc::S_IFIFO | 0o600,
            blksize: PIPE_BUF as i64,
            ..Stat::default()
        })
    }

    fn readiness(&self) -> u32 {
        let s = self.pipe.state.lock().unwrap();
        let mut r = 0;
        if self.write {
            if s.capacity - s.buf.len() >= PIPE_BUF {
                r |= libc::POLLOUT | libc::POLLWRNORM;
            }
            if s.readers == 0 {
                r |= libc::POLLERR;
            }
        } else {
            if !s.buf.is_empty() {
                r |= libc::POLLIN | libc::POLLRDNORM;
            }
            if s.writers == 0 {
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
}
