//! Files backed by a host file descriptor: the sandbox's stdio, a host tty, and the files
//! hostfs opens (volumes, the overlay's lower layer).
//!
//! Only data transfer and a few read-only terminal queries reach the host; everything else is
//! answered by the sentry.
//!
//! # Mappings of host regular files
//! Host files map through the page cache ([`crate::mm::pagecache`]): pages filled by
//! `pread` and shared by every mapping of the file. A mapping made from an open for reading
//! and writing goes through a [`SharedFile`], one per host file (device, inode) while any
//! such mapping lives, whose cache entry is private to it (a version no `fstat` gives) and
//! which every later mapping of the file joins, whatever its open: so every shared mapping
//! of the file (SQLite's `-shm` in each process) shares one set of pages, and
//! MAP_SHARED|PROT_WRITE stores go to those pages. The stores are written back to the host
//! file with `pwrite` on the fd of the open the last writable mapping was made from, at
//! msync (MS_SYNC or MS_ASYNC), fsync and fdatasync, the end of the last writable mapping's
//! last VMA (munmap, exit, exec) and every close of an open file of the file. Every cached
//! page below the file's end goes, stored to or not (no dirty tracking). A write-back error
//! at munmap shows at the next msync or fsync.
//!
//! While a writable shared mapping lives, read(2) through the sentry first writes the
//! cached pages back, then reads the host file (so it sees the stores); write(2) reads the
//! bytes it wrote back from the host into the cached pages and grows the file's cached
//! size, and a truncation through the sentry sets that size (hostfs calls [`truncated`]),
//! so existing mappings see both at once. Every host operation is on an fd; nothing
//! follows a name.
//!
//! Not coherent with the host: a host process writing the file meanwhile does not see the
//! sandbox's stores until a write-back, and the sandbox does not see the host's writes in
//! pages already cached (nor a host truncation); a write-back may overwrite them. A second
//! process on the host sharing the same SQLite WAL database concurrently is not supported.
//! Mappings made before the first writable-open mapping keep the pages they had and do not
//! see later stores.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::abi::{Errno, SysResult, Termios, Winsize};
use crate::memory::{FileRange, MemoryFile};
use crate::mm::filemap::Mappable;
use crate::mm::pagecache::{CachedMapping, HostFileId, Version};
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
    /// The host file's identity, asked once when a shared mapping may need it.
    ident: OnceLock<Option<HostFileId>>,
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
            ident: OnceLock::new(),
        }
    }

    /// [`HostFile::shared`] for an fd whose file type (`S_IFMT` bits of `kind`) the caller
    /// knows already (hostfs checked the inode when it opened it), without asking the host.
    pub fn with_kind(fd: Arc<OwnedFd>, kind: u32) -> HostFile {
        HostFile {
            fd,
            seekable: kind == libc::S_IFREG,
            waits: !matches!(kind, libc::S_IFREG | libc::S_IFBLK),
            ident: OnceLock::new(),
        }
    }

    /// A host fd donated to the sandbox (stdio): data moves at the host fd's own offset.
    pub fn donated(fd: OwnedFd) -> HostFile {
        let waits = can_wait(&fd);
        HostFile {
            fd: Arc::new(fd),
            seekable: false,
            waits,
            ident: OnceLock::new(),
        }
    }

    fn errno() -> Errno {
        Errno::last()
    }

    /// The live [`SharedFile`]s of this host regular file (none for other files).
    fn shared_files(&self) -> Vec<Arc<SharedFile>> {
        if !self.seekable || !any_shared() {
            return Vec::new();
        }
        match *self.ident.get_or_init(|| ident_of(self.fd.as_fd())) {
            Some(id) => shared_of(id),
            None => Vec::new(),
        }
    }

    /// A write(2) of `n` bytes at `off` reached the host file: the cached pages of its
    /// shared mappings take the bytes (read back from the host), and their size grows to
    /// the write's end.
    fn written(&self, off: u64, n: usize) {
        let shared = self.shared_files();
        if shared.is_empty() || n == 0 {
            return;
        }
        let mut buf = vec![0u8; n];
        let mut got = 0usize;
        while got < n {
            match rustix::io::pread(&*self.fd, &mut buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    log::warn!("host file: reading back a write for its mappings: {e}");
                    break;
                }
            }
        }
        buf.truncate(got);
        let end = off + n as u64;
        for s in shared {
            if end > s.cached.size() {
                s.cached.set_size(end);
            }
            s.cached.write_cached(off, &buf);
        }
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

impl Drop for HostFile {
    /// A close writes a shared mapping's stores back to the host file (a failure shows at
    /// the next msync or fsync).
    fn drop(&mut self) {
        for s in self.shared_files() {
            if let Err(e) = s.write_back_if_writable() {
                s.error.store(e as i32, Ordering::Release);
            }
        }
    }
}

/// The live [`SharedFile`]s: (memory file, entry). Few (files mapped from a writable open
/// now), so a list.
static SHARED: Mutex<Vec<(usize, Weak<SharedFile>)>> = Mutex::new(Vec::new());

/// Counts [`SharedFile`]s ever made, for their cache versions.
static SHARED_MADE: AtomicU64 = AtomicU64::new(0);

/// Whether any [`SharedFile`] may be alive (the fast path of every read and write).
fn any_shared() -> bool {
    !SHARED.lock().unwrap().is_empty()
}

/// The identity of the host file `fd`.
fn ident_of(fd: BorrowedFd<'_>) -> Option<HostFileId> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some(HostFileId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// The live [`SharedFile`]s of host file `id` (one per memory file).
fn shared_of(id: HostFileId) -> Vec<Arc<SharedFile>> {
    let mut list = SHARED.lock().unwrap();
    list.retain(|(_, w)| w.strong_count() > 0);
    list.iter()
        .filter_map(|(_, w)| w.upgrade())
        .filter(|s| s.id == id)
        .collect()
}

/// hostfs truncated the host file `fd` to `size` (ftruncate, truncate, O_TRUNC): the
/// file's shared mappings see the new size (bytes past it zero, a fault past it SIGBUS).
pub fn truncated(fd: BorrowedFd<'_>, size: u64) {
    if !any_shared() {
        return;
    }
    if let Some(id) = ident_of(fd) {
        for s in shared_of(id) {
            s.cached.set_size(size);
        }
    }
}

/// The page-cache pages every mapping of a host file shares while one made from an open
/// for writing lives (see the module documentation).
struct SharedFile {
    id: HostFileId,
    /// The pages, in a cache entry of their own (a version no host file has).
    cached: CachedMapping,
    /// The fd of the open the last writable shared mapping was made from: write-backs
    /// `pwrite` on it. None before the first.
    writer: Mutex<Option<Arc<OwnedFd>>>,
    /// Writable shared mappings alive.
    writers: AtomicU64,
    /// A write-back error nobody has been told of yet (at munmap or close), for the next
    /// msync or fsync.
    error: AtomicI32,
}

impl SharedFile {
    /// The live entry for `id` in `mf`; made (filled from `fd`, size `size`) when there is
    /// none and `make` (the mapping's open is for reading and writing).
    fn get(
        mf: &Arc<MemoryFile>,
        id: HostFileId,
        fd: &Arc<OwnedFd>,
        size: u64,
        make: bool,
    ) -> Option<Arc<SharedFile>> {
        let key = Arc::as_ptr(mf) as usize;
        let mut list = SHARED.lock().unwrap();
        list.retain(|(_, w)| w.strong_count() > 0);
        for (k, w) in list.iter() {
            if *k == key {
                if let Some(s) = w.upgrade().filter(|s| s.id == id) {
                    return Some(s);
                }
            }
        }
        if !make {
            return None;
        }
        // A version no fstat gives: this entry is private, and once it goes the next
        // mapping of the file fills afresh from the host (which has the stores).
        let version = Version {
            size,
            mtime: (i64::MIN, SHARED_MADE.fetch_add(1, Ordering::Relaxed) as i64),
        };
        let s = Arc::new(SharedFile {
            id,
            cached: CachedMapping::new(mf, fd.clone(), id, version),
            writer: Mutex::new(None),
            writers: AtomicU64::new(0),
            error: AtomicI32::new(0),
        });
        list.push((key, Arc::downgrade(&s)));
        Some(s)
    }

    /// Writes back when a writable shared mapping lives.
    fn write_back_if_writable(&self) -> Result<(), Errno> {
        if self.writers.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        self.write_back()
    }

    /// msync, fsync: writes back, and reports this or an earlier untold failure.
    fn sync(&self) -> Result<(), Errno> {
        let result = self.write_back();
        match self.error.swap(0, Ordering::AcqRel) {
            0 => result,
            e => Err(Errno::from_raw(e)),
        }
    }

    /// Writes the cached pages below the file's size to the host file with `pwrite` on the
    /// writer's fd.
    fn write_back(&self) -> Result<(), Errno> {
        let Some(fd) = self.writer.lock().unwrap().clone() else {
            return Ok(());
        };
        self.cached.write_back_with(WRITE_BACK_CHUNK, |pos, buf| {
            let mut done = 0usize;
            while done < buf.len() {
                match rustix::io::pwrite(&*fd, &buf[done..], pos + done as u64) {
                    Ok(0) => return Err(Errno::EIO),
                    Ok(k) => done += k,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        log::debug!("host file: write-back at {pos}: {e}");
                        return Err(Errno::from_raw(e.raw_os_error()));
                    }
                }
            }
            Ok(())
        })
    }
}

/// Bytes a write-back copies out of the memory file per `pwrite`.
const WRITE_BACK_CHUNK: u64 = 1 << 20;

/// One open file's mapping of a [`SharedFile`]: a writable shared mapping of it makes that
/// open's fd the one write-backs use.
struct HostMapping {
    shared: Arc<SharedFile>,
    fd: Arc<OwnedFd>,
}

impl Mappable for HostMapping {
    fn size(&self) -> u64 {
        self.shared.cached.size()
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.shared.cached.pages(first, count)
    }

    fn fault_pages(&self, first: u64, count: u64, at: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        self.shared.cached.fault_pages(first, count, at)
    }

    /// Shared mappings store into the cached pages; write-backs bring the stores to the
    /// host file. (A writable one needs an open for writing: mmap checks the open.)
    fn shared_writable(&self) -> bool {
        true
    }

    fn sync(&self) -> Result<(), Errno> {
        self.shared.sync()
    }

    /// The last VMA of the last writable shared mapping going writes the pages back; a
    /// failure shows at the next msync or fsync.
    fn count_writable_mapping(&self, up: bool) {
        let s = &self.shared;
        if up {
            *s.writer.lock().unwrap() = Some(self.fd.clone());
            s.writers.fetch_add(1, Ordering::AcqRel);
            return;
        }
        if s.writers.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Err(e) = s.write_back() {
                s.error.store(e as i32, Ordering::Release);
            }
        }
    }

    fn cached_pages(&self, first: u64, last: u64) -> u64 {
        self.shared.cached.cached_pages(first, last)
    }
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
            // A writable shared mapping's stores are the file's data: they reach the host
            // file before it is read.
            for s in self.shared_files() {
                s.write_back_if_writable()?;
            }
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
            let r = retry_eintr(|| src.write_host(self.fd.as_fd(), offset, false));
            if let (Ok(n), Some(off)) = (&r, offset) {
                self.written(off, *n);
            }
            return r;
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

    /// Regular files hostfs opened map through the page cache (donated stdio does not map);
    /// a file open for writing, or one a [`SharedFile`] exists for, through that (see the
    /// module documentation).
    fn mappable(&self, mf: &Arc<MemoryFile>) -> Option<Arc<dyn Mappable>> {
        if !self.seekable {
            return None;
        }
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd()).ok()?;
        let id = HostFileId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let _ = self.ident.set(Some(id));
        let writable = rustix::fs::fcntl_getfl(&*self.fd)
            .is_ok_and(|fl| fl & rustix::fs::OFlags::ACCMODE == rustix::fs::OFlags::RDWR);
        if let Some(shared) = SharedFile::get(mf, id, &self.fd, st.st_size.max(0) as u64, writable)
        {
            return Some(Arc::new(HostMapping {
                shared,
                fd: self.fd.clone(),
            }));
        }
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

    /// Writes a shared mapping's stores back to the host file.
    fn fsync(&self) -> Result<(), Errno> {
        let mut result = Ok(());
        for s in self.shared_files() {
            if let Err(e) = s.sync() {
                result = Err(e);
            }
        }
        result
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
