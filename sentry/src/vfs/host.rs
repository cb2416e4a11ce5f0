//! Files backed by a host file descriptor the sandbox was given (stdio, a host tty).
//!
//! Only data transfer and a few read-only terminal queries reach the host; everything else is
//! answered by the sentry.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::abi::{Errno, SysResult, Termios, Winsize};
use crate::vfs::Context;
use crate::vfs::{FileOps, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};

/// A file backed by a host fd.
pub struct HostFile {
    /// Shared with page-cache mappings of the file, which fill pages from it.
    fd: Arc<OwnedFd>,
    /// The sentry keeps the offset (files hostfs opened) rather than the host fd (donated
    /// stdio, whose offset is shared with the caller: a redirected stdout must append exactly
    /// as a native process's would).
    seekable: bool,
    /// Transfers wait for host readiness in the caller's interruptible block instead of in
    /// a host call a signal cannot end (see [`HostFile::when_ready`]).
    waits: bool,
}

impl HostFile {
    /// A file hostfs opened: regular files keep their offset in the sentry.
    pub fn new(fd: OwnedFd) -> HostFile {
        HostFile::shared(Arc::new(fd))
    }

    /// A file hostfs opened on an fd other opens share (a bind-mounted single file, whose
    /// fd cannot be reopened): I/O is positional, so each open keeps its own offset.
    pub fn shared(fd: Arc<OwnedFd>) -> HostFile {
        let seekable = nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            .unwrap_or(false);
        let waits = can_wait(&fd);
        HostFile {
            fd,
            seekable,
            waits,
        }
    }

    /// [`HostFile::shared`] for an fd whose file type (`S_IFMT` bits of `kind`) the caller
    /// knows already (hostfs checked the inode when it opened it), without asking the host.
    pub fn with_kind(fd: Arc<OwnedFd>, kind: u32) -> HostFile {
        HostFile {
            fd,
            seekable: kind == libc::S_IFREG,
            waits: !matches!(kind, libc::S_IFREG | libc::S_IFBLK),
        }
    }

    /// A host fd donated to the sandbox (stdio): data moves at the host fd's own offset.
    pub fn donated(fd: OwnedFd) -> HostFile {
        let waits = can_wait(&fd);
        HostFile {
            fd: Arc::new(fd),
            seekable: false,
            waits,
        }
    }

    fn errno() -> Errno {
        Errno::last()
    }

    /// [`when_ready`] on this file's fd, nonblocking as the open file is.
    fn when_ready(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        events: PollFlags,
        io: &mut dyn FnMut(bool) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        let nonblocking = f.flags() & libc::O_NONBLOCK as u32 != 0;
        when_ready(t, self.fd.as_fd(), events, nonblocking, io)
    }
}

/// The host's poll(2) answer for `events` on `fd` now (its revents, with what the host adds:
/// POLLHUP, POLLERR).
fn poll_now(fd: BorrowedFd<'_>, events: PollFlags) -> nix::Result<u32> {
    let mut fds = [PollFd::new(fd, events)];
    nix::poll::poll(&mut fds, PollTimeout::ZERO)?;
    Ok(fds[0].revents().map_or(0, |r| r.bits() as u32))
}

/// The poll(2) events of the host fd now (POLLIN, POLLOUT and what the host adds: POLLHUP,
/// POLLERR), for poll, select and epoll of the application.
pub fn readiness(fd: BorrowedFd<'_>) -> u32 {
    poll_now(fd, PollFlags::POLLIN | PollFlags::POLLOUT).unwrap_or(libc::POLLERR as u32)
}

/// Whether the host fd is ready for `events` now (an error or hang-up counts as ready: the
/// transfer then reports it).
fn ready(fd: BorrowedFd<'_>, events: PollFlags) -> bool {
    poll_now(fd, events) != Ok(0)
}

/// Runs `io` once the host fd is ready for `events`, waiting in the caller's interruptible
/// block between readiness checks (host pipes, FIFOs, sockets and terminals have no sentry
/// wait queue), so a signal ends the wait. `io(true)` must not block on the host; files that
/// cannot promise that (EOPNOTSUPP, terminals) get `io(false)` after readiness, which returns
/// at once unless another reader took the data meanwhile. With `nonblocking` the first
/// EAGAIN is the answer.
///
/// # Errors
/// EAGAIN (nonblocking), EINTR, and `io`'s own.
pub fn when_ready(
    t: &mut dyn Context,
    fd: BorrowedFd<'_>,
    events: PollFlags,
    nonblocking: bool,
    io: &mut dyn FnMut(bool) -> Result<usize, Errno>,
) -> Result<usize, Errno> {
    let mut period = FIRST_POLL_PERIOD;
    loop {
        if ready(fd, events) {
            match io(true) {
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) if !nonblocking => {}
                Err(Errno::EOPNOTSUPP) => return retry_eintr(|| io(false)),
                r => return r,
            }
        } else if nonblocking {
            return Err(Errno::EAGAIN);
        }
        backoff(t, &mut period, MAX_POLL_PERIOD)?;
    }
}

/// Waits `period` in the caller's interruptible block, then doubles it up to `max`: the
/// pause between nonblocking attempts on a host object, which has no sentry wait queue.
///
/// # Errors
/// EINTR (or the stop or exit that ended the wait).
pub fn backoff(t: &mut dyn Context, period: &mut Duration, max: Duration) -> Result<(), Errno> {
    match t.block(&[], Some(Instant::now() + *period), &mut || false) {
        Ok(()) | Err(Errno::ETIMEDOUT) => {}
        Err(e) => return Err(e),
    }
    *period = (*period * 2).min(max);
    Ok(())
}

/// First wait between readiness checks of a host fd; it doubles up to [`MAX_POLL_PERIOD`].
const FIRST_POLL_PERIOD: Duration = Duration::from_micros(500);
/// Longest wait between readiness checks: the latency a blocked reader sees for new data
/// after a long idle period.
const MAX_POLL_PERIOD: Duration = Duration::from_millis(20);

/// Runs a host transfer again while the host interrupts it.
fn retry_eintr(mut io: impl FnMut() -> Result<usize, Errno>) -> Result<usize, Errno> {
    loop {
        match io() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Whether host I/O on `fd` can wait indefinitely (pipes, FIFOs, sockets, terminals) rather
/// than completing promptly (regular files, block devices).
fn can_wait(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd()).map_or(true, |st| {
        !matches!(st.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFBLK)
    })
}

impl AsFd for HostFile {
    /// The host fd, for the terminal layer's host calls (the `tty` module).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FileOps for HostFile {
    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if dst.remaining() == 0 {
            return Ok(0);
        }
        if !self.waits {
            return retry_eintr(|| dst.read_host(self.fd.as_fd(), offset, false));
        }
        self.when_ready(t, f, PollFlags::POLLIN, &mut |nowait| {
            dst.read_host(self.fd.as_fd(), offset, nowait)
        })
    }

    fn write(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        src: &mut dyn IoSrc,
        offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if src.remaining() == 0 {
            return Ok(0);
        }
        if !self.waits {
            return retry_eintr(|| src.write_host(self.fd.as_fd(), offset, false));
        }
        // A blocking write to a pipe or terminal completes unless a signal interrupts it;
        // the host took only what fitted each time it was ready.
        let nonblocking = f.flags() & libc::O_NONBLOCK as u32 != 0;
        let mut written = 0usize;
        loop {
            let r = self.when_ready(t, f, PollFlags::POLLOUT, &mut |nowait| {
                src.write_host(self.fd.as_fd(), offset, nowait)
            });
            match r {
                Ok(n) => {
                    written += n;
                    if n == 0 || nonblocking || src.remaining() == 0 {
                        return Ok(written);
                    }
                }
                Err(e) if written > 0 => {
                    if e == Errno::EINTR {
                        t.clear_restart();
                    }
                    return Ok(written);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn ioctl(&self, t: &mut dyn Context, _f: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        use crate::mm::usermem::UserAddr;
        match cmd as u64 {
            libc::TCGETS => {
                let tio = nix::sys::termios::tcgetattr(&self.fd).map_err(|_| Errno::ENOTTY)?;
                let raw: libc::termios = tio.into();
                t.mm().write_obj(UserAddr(arg), &Termios::from(&raw))?;
                Ok(0)
            }
            libc::TIOCGWINSZ => {
                let ws = rustix::termios::tcgetwinsize(&self.fd).map_err(|_| Errno::ENOTTY)?;
                let out = Winsize {
                    row: ws.ws_row,
                    col: ws.ws_col,
                    xpixel: ws.ws_xpixel,
                    ypixel: ws.ws_ypixel,
                };
                t.mm().write_obj(UserAddr(arg), &out)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd()).map_err(|_| Self::errno())?;
        Ok(Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: st.st_size,
            blksize: st.st_blksize,
            blocks: st.st_blocks,
            atime: st.st_atime,
            atime_nsec: st.st_atime_nsec,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            ctime: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec,
            ..Stat::default()
        })
    }

    fn readiness(&self) -> u32 {
        readiness(self.fd.as_fd())
    }

    fn seekable(&self) -> bool {
        self.seekable
    }

    /// Regular files hostfs opened map through the page cache (donated stdio does not map).
    fn mappable(
        &self,
        mf: &Arc<crate::memory::MemoryFile>,
    ) -> Option<Arc<dyn crate::mm::filemap::Mappable>> {
        use crate::mm::pagecache::{CachedMapping, HostFileId, Version};
        if !self.seekable {
            return None;
        }
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd()).ok()?;
        let id = HostFileId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let version = Version {
            size: st.st_size.max(0) as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
        };
        Some(Arc::new(CachedMapping::new(
            mf,
            self.fd.clone(),
            id,
            version,
        )))
    }

    fn seek(&self, offset: i64, whence: i32) -> Result<u64, Errno> {
        let whence = match whence {
            libc::SEEK_SET => nix::unistd::Whence::SeekSet,
            libc::SEEK_CUR => nix::unistd::Whence::SeekCur,
            libc::SEEK_END => nix::unistd::Whence::SeekEnd,
            _ => return Err(Errno::EINVAL),
        };
        nix::unistd::lseek(self.fd.as_raw_fd(), offset, whence).map(|o| o as u64)
    }
}
