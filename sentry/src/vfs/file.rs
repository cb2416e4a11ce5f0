//! Open file descriptions: what an fd points to (offset, status flags, the file's operations).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{Errno, SysResult};
use crate::mm::usermem::{IoDst, IoSrc};
use crate::vfs::epoll::Epoll;
use crate::vfs::inotify::Inotify;
use crate::vfs::lock::Locks;
use crate::vfs::socket::{IoFlags, OutMessage, Socket};
use crate::vfs::Context;
use crate::vfs::Dentry;
use crate::waiter::{WaitQueue, WakeHook};

/// `struct stat` (x86-64 layout).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub pad0: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: i64,
    pub atime_nsec: i64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub reserved: [i64; 3],
}

impl Stat {
    /// What `fstat` shows for a file with no inode of its own (epoll, eventfd, timerfd,
    /// signalfd, inotify: Linux's anonymous inodes): mode 0600 and no file type.
    pub fn anonymous() -> Stat {
        Stat {
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
    }
}

/// What a kind of file does. Defaults are the Linux answers for a file that lacks the
/// operation.
pub trait FileOps: Send + Sync {
    /// The file as `Any`, for a checkpoint to recognise the kinds it can save (eventfds,
    /// AF_UNIX sockets); None for the rest.
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The file as `Any`, for the code of the device that made it to recognise its own
    /// files among an application's fds (a FUSE mount's `fd=`, `FUSE_DEV_IOC_CLONE`).
    fn device_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Whether `FIOASYNC` may turn signal-driven I/O on (a `/dev/fuse` file not yet
    /// serving a mount refuses with EPERM, as Linux's `fuse_dev_fasync`).
    ///
    /// # Errors
    /// The refusal.
    fn async_allowed(&self) -> Result<(), Errno> {
        Ok(())
    }

    /// For a namespace file (`/proc/[pid]/ns/*`): the inode number of the namespace it
    /// holds, which setns(2) looks up in the kernel's table of such files.
    fn namespace_inode(&self) -> Option<u64> {
        None
    }

    /// Reads at `offset` (None: the file has no offset, e.g. a pipe or tty) into `dst`,
    /// at most `dst.remaining()` bytes. Data leaves a stream (pipe, socket) only as far as
    /// `dst` took it: a destination that faults leaves the rest for the next read.
    ///
    /// # Errors
    /// As read(2).
    fn read(
        &self,
        _t: &mut dyn Context,
        _file: &OpenFile,
        _dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// Writes from `src` at `offset` (None: no offset; O_APPEND is resolved by the caller);
    /// a source that faults part-way writes what came before the fault.
    ///
    /// # Errors
    /// As write(2).
    fn write(
        &self,
        _t: &mut dyn Context,
        _file: &OpenFile,
        _src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// `ioctl(2)`.
    ///
    /// # Errors
    /// ENOTTY for commands the file does not know.
    fn ioctl(&self, _t: &mut dyn Context, _file: &OpenFile, _cmd: u32, _arg: u64) -> SysResult {
        Err(Errno::ENOTTY)
    }

    /// `fstat(2)`.
    ///
    /// # Errors
    /// Backend failures.
    fn stat(&self) -> Result<Stat, Errno>;

    /// Whether the file has an offset (regular files, directories) or not (pipes, ttys).
    fn seekable(&self) -> bool {
        false
    }

    /// Whether the offset stays at 0 whatever `lseek` asks (Linux's memory devices:
    /// null, zero, full, random and urandom answer every seek with 0).
    fn offset_pinned(&self) -> bool {
        false
    }

    /// Whether epoll may watch the file (Linux: it has a poll method). By default the files
    /// without an offset: a regular file is always ready, so watching it is EPERM.
    fn pollable(&self) -> bool {
        !self.seekable()
    }

    /// Readiness for poll/select/epoll as `POLL*` bits. The default is a file that never
    /// blocks.
    fn readiness(&self) -> u32 {
        (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32
    }

    /// The queue notified when [`FileOps::readiness`] may change. None: the file is polled.
    fn wait_queue(&self) -> Option<&WaitQueue> {
        None
    }

    /// Whether `O_ASYNC` makes the file signal its owner when [`FileOps::wait_queue`]
    /// announces readiness (Linux's `fasync` operation, which terminals, sockets, tun
    /// devices, pipes and inotify have and eventfd lacks).
    fn signals_io(&self) -> bool {
        self.wait_queue().is_some()
    }

    /// Directory entries from position `pos` (an index; `.` and `..` are 0 and 1) as
    /// `linux_dirent64` records filling at most `max` bytes; returns the bytes and the new
    /// position.
    ///
    /// # Errors
    /// ENOTDIR for files that are not directories, EINVAL when the first entry does not fit.
    fn getdents(&self, _t: &dyn Context, _pos: u64, _max: usize) -> Result<(Vec<u8>, u64), Errno> {
        Err(Errno::ENOTDIR)
    }

    /// `lseek(2)` for files whose offset lives outside the open file description (a host fd
    /// donated to the sandbox keeps using the host's offset, so output appended by the
    /// sandbox and by the host around it interleaves as it would natively).
    ///
    /// # Errors
    /// ESPIPE for files without an offset.
    fn seek(&self, _offset: i64, _whence: i32) -> Result<u64, Errno> {
        Err(Errno::ESPIPE)
    }

    /// `fsync(2)`/`fdatasync(2)`: brings data kept elsewhere (a FUSE file's stores through
    /// shared mappings) to where the file lives. Most sandbox files live in memory: nothing
    /// to do.
    ///
    /// # Errors
    /// EIO when the data could not be written.
    fn fsync(&self) -> Result<(), Errno> {
        Ok(())
    }

    /// The file's pages for `mmap` (None: the file cannot be mapped, ENODEV). `mf` is the
    /// memory file of the mapping address space (host files cache their pages there).
    fn mappable(
        &self,
        _mf: &Arc<crate::memory::MemoryFile>,
    ) -> Option<Arc<dyn crate::mm::filemap::Mappable>> {
        None
    }

    /// For a file whose mapping shows a buffer of the kernel rather than file pages (a
    /// packet socket's rings): that buffer for a mapping of `len` bytes (page aligned) at
    /// file offset `offset`, or the error Linux's `mmap` file operation gives (EINVAL for a
    /// size or offset it refuses). None: the file maps as [`FileOps::mappable`] says.
    fn mmap_buffer(
        &self,
        _len: u64,
        _offset: u64,
    ) -> Option<Result<Arc<dyn crate::mm::filemap::Mappable>, Errno>> {
        None
    }

    /// Current size, for SEEK_END.
    ///
    /// # Errors
    /// Backend failures.
    fn size(&self) -> Result<u64, Errno> {
        Ok(self.stat()?.size.max(0) as u64)
    }

    /// The file's `F_SEAL_*` seals (`F_GET_SEALS`); None for files that cannot be sealed
    /// (only tmpfs and memfd files can).
    fn seals(&self) -> Option<u32> {
        None
    }

    /// Called by open(2) right after a path open, with the caller: a terminal opened
    /// without `O_NOCTTY` by a session leader becomes its controlling terminal; `/dev/tty`
    /// answers with the caller's controlling terminal, which replaces it (Some).
    ///
    /// # Errors
    /// ENXIO (`/dev/tty` without a controlling terminal), EIO.
    fn opened(&self, _t: &mut dyn Context, _flags: u32) -> Result<Option<Arc<dyn FileOps>>, Errno> {
        Ok(None)
    }

    /// `TIOCGPTPEER`: a new open of the other end of a pty pair, and the name of its node
    /// in the directory of this end's.
    ///
    /// # Errors
    /// ENOTTY for files that are not a pty master, EIO when the slave cannot be opened.
    fn open_peer(&self, _flags: u32) -> Result<(Arc<dyn FileOps>, Vec<u8>), Errno> {
        Err(Errno::ENOTTY)
    }

    /// `F_ADD_SEALS`.
    ///
    /// # Errors
    /// EINVAL for files that cannot be sealed or unknown seals, EPERM once F_SEAL_SEAL is set.
    fn add_seals(&self, _seals: u32) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
}

/// A timerfd (implemented by the kernel's timer service).
pub trait TimerFdFile: FileOps {
    /// The clock it was created on (`CLOCK_*`).
    fn clock(&self) -> i32;

    /// `timerfd_settime`: arms (or with None disarms) the timer; returns the previous
    /// (value, interval). Expirations not yet read are discarded.
    fn set(
        &self,
        value: Option<Duration>,
        interval: Option<Duration>,
    ) -> (Option<Duration>, Option<Duration>);

    /// `timerfd_gettime`: the time to the next expiration and the interval.
    fn get(&self) -> (Option<Duration>, Option<Duration>);
}

/// A signalfd (implemented by the kernel's signal code).
pub trait SignalFdFile: FileOps {
    /// `signalfd4` on an existing signalfd: replaces the mask.
    fn set_mask(&self, mask: u64);
}

/// A pidfd (implemented by the kernel's process table).
pub trait PidFdFile: FileOps {
    /// The process it names: its global PID and an identity token that tells it apart from
    /// a later process given the same PID.
    fn target(&self) -> (i32, usize);

    /// Of a `PIDFD_THREAD` pidfd, the thread it names: its global TID and an identity token
    /// (0 for the group's leader, whichever thread holds the group's ID). None for a
    /// process pidfd.
    fn thread(&self) -> Option<(i32, usize)> {
        None
    }
}

/// A signal `mq_timedsend` owes the process that registered with `mq_notify` (signo 0:
/// SIGEV_NONE, the registration is only used up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqNotification {
    pub tgid: i32,
    pub signo: i32,
    pub value: u64,
}

/// A POSIX message queue open through `mq_open` (implemented by the kernel's IPC
/// namespace).
pub trait MqueueFile: FileOps {
    /// `mq_timedsend`: queues `msg` at priority `prio`, waiting for room until `deadline`
    /// unless `nonblock`; returns the notification the arrival triggers.
    ///
    /// # Errors
    /// EINVAL (priority), EMSGSIZE, EAGAIN, ETIMEDOUT, EINTR.
    fn send(
        &self,
        t: &mut dyn Context,
        msg: Vec<u8>,
        prio: u32,
        nonblock: bool,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<MqNotification>, Errno>;

    /// `mq_timedreceive`: the oldest message of the highest priority and that priority,
    /// for a buffer of `max` bytes.
    ///
    /// # Errors
    /// EMSGSIZE (buffer below mq_msgsize), EAGAIN, ETIMEDOUT, EINTR.
    fn receive(
        &self,
        t: &mut dyn Context,
        max: usize,
        nonblock: bool,
        deadline: Option<std::time::Instant>,
    ) -> Result<(Vec<u8>, u32), Errno>;

    /// (mq_maxmsg, mq_msgsize, mq_curmsgs).
    fn attr(&self) -> [i64; 3];

    /// `mq_notify`: registers process `tgid` for (sigev_notify, signo, value), or with None
    /// removes its registration.
    ///
    /// # Errors
    /// EBUSY when another registration exists.
    fn notify(&self, tgid: i32, request: Option<(i32, i32, u64)>) -> Result<(), Errno>;
}

/// A pipe end or an opened FIFO (implemented by the kernel's pipes): what splice, tee,
/// vmsplice and fcntl's pipe-size commands need beyond read and write. The pipe's lock is
/// taken and released inside each call, so callers never hold it across a wait.
pub trait PipeFile: FileOps {
    /// The pipe's identity: equal for both ends and for every opener of one FIFO.
    fn pipe_id(&self) -> usize;

    /// Gives an anonymous pipe's pipefs inode a new owner (its creator at pipe(2), or
    /// fchown(2), whose rules the caller has checked).
    fn set_owner(&self, uid: u32, gid: u32);

    /// A copy of the bytes the pipe holds, left in place (for a checkpoint).
    fn buffered(&self) -> Vec<u8>;

    /// Waits until the pipe holds data or has no writer left; returns the bytes it holds
    /// (0: end of file).
    ///
    /// # Errors
    /// EAGAIN when `nonblock` and it would wait, EINTR.
    fn wait_data(&self, t: &mut dyn Context, nonblock: bool) -> Result<usize, Errno>;

    /// Waits until the pipe has a free page; returns the bytes of its free pages.
    ///
    /// # Errors
    /// EPIPE (SIGPIPE raised) without readers, EAGAIN when `nonblock` and it would wait,
    /// EINTR.
    fn wait_room(&self, t: &mut dyn Context, nonblock: bool) -> Result<usize, Errno>;

    /// Copies up to `max` bytes from the front; `consume` takes them out of the pipe.
    fn take(&self, max: usize, consume: bool) -> Vec<u8>;

    /// Puts bytes back at the front (a splice whose destination took fewer than it read).
    fn unread(&self, data: &[u8]);

    /// Appends bytes (the caller checked the room with [`PipeFile::wait_room`]).
    fn push(&self, data: &[u8]);

    /// The capacity in bytes (`F_GETPIPE_SZ`).
    fn capacity(&self) -> usize;

    /// `F_SETPIPE_SZ`: sets the capacity to `size` rounded up to a power-of-two number of
    /// pages; returns the new capacity.
    ///
    /// # Errors
    /// EPERM growing beyond `max`, EINVAL past 2 GiB, EBUSY when the pipe's data needs more
    /// pages than the new size has.
    fn set_capacity(&self, size: usize, max: usize) -> Result<usize, Errno>;
}

/// What kind of file an open file description is. The system calls that work on one kind
/// only (`epoll_ctl`, `timerfd_settime`, `signalfd4` on an existing fd,
/// `inotify_add_watch`, the socket calls) match on it and answer the other kinds as Linux
/// does (EINVAL, ENOTSOCK...). Kinds implemented above the vfs carry a trait object whose
/// trait is declared here.
#[derive(Clone)]
pub enum FileKind {
    /// Any other file: only the [`FileOps`] operations.
    Plain(Arc<dyn FileOps>),
    Epoll(Arc<Epoll>),
    Inotify(Arc<Inotify>),
    Socket(Arc<dyn Socket>),
    TimerFd(Arc<dyn TimerFdFile>),
    SignalFd(Arc<dyn SignalFdFile>),
    /// A pipe end or an opened FIFO.
    Pipe(Arc<dyn PipeFile>),
    /// A process file descriptor (pidfd_open, CLONE_PIDFD).
    PidFd(Arc<dyn PidFdFile>),
    /// A POSIX message queue opened with mq_open.
    Mqueue(Arc<dyn MqueueFile>),
}

impl FileKind {
    /// The operations every kind has.
    pub fn ops(&self) -> &dyn FileOps {
        match self {
            FileKind::Plain(f) => &**f,
            FileKind::Epoll(f) => &**f,
            FileKind::Inotify(f) => &**f,
            FileKind::Socket(f) => &**f,
            FileKind::TimerFd(f) => &**f,
            FileKind::SignalFd(f) => &**f,
            FileKind::Pipe(f) => &**f,
            FileKind::PidFd(f) => &**f,
            FileKind::Mqueue(f) => &**f,
        }
    }

    /// The operations as a shared handle (reopening a file through a magic link).
    pub fn shared_ops(&self) -> Arc<dyn FileOps> {
        match self {
            FileKind::Plain(f) => f.clone(),
            FileKind::Epoll(f) => f.clone(),
            FileKind::Inotify(f) => f.clone(),
            FileKind::Socket(f) => f.clone(),
            FileKind::TimerFd(f) => f.clone(),
            FileKind::SignalFd(f) => f.clone(),
            FileKind::Pipe(f) => f.clone(),
            FileKind::PidFd(f) => f.clone(),
            FileKind::Mqueue(f) => f.clone(),
        }
    }
}

/// Who gets a description's I/O signal (`F_SETOWN_EX`'s `F_OWNER_TID`, `F_OWNER_PID`,
/// `F_OWNER_PGRP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OwnerKind {
    /// Also what a description without an owner reports, as Linux's.
    #[default]
    Thread,
    Process,
    ProcessGroup,
}

/// The owner of a description's signal-driven I/O (`F_SETOWN`), resolved by the kernel each
/// time it sends the signal.
#[derive(Clone)]
pub struct FileOwner {
    /// The thread's, process's or process group's global ID.
    pub id: i32,
    /// The owning thread's or process's identity (its address, which `pin` keeps from
    /// being reused), so that a later one given the same ID is not the owner; 0 for a
    /// group, which Linux too names by its ID.
    pub token: usize,
    /// Keeps `token` unique while the owner is set (a weak reference to the owner).
    pub pin: Option<Arc<dyn Send + Sync>>,
    /// The real and effective user IDs of whoever set the owner (Linux's `f_owner.uid` and
    /// `euid`): the signal reaches only a target they may signal.
    pub uid: u32,
    pub euid: u32,
}

/// `fcntl`'s signal-driven I/O settings of a description (Linux's `f_owner`).
#[derive(Clone, Default)]
pub struct IoSignal {
    /// What [`IoSignal::owner`] names; kept when the owner is cleared (`F_GETOWN_EX`
    /// reports it).
    pub kind: OwnerKind,
    /// None: no owner, no signal.
    pub owner: Option<FileOwner>,
    /// `F_SETSIG`: 0 sends SIGIO without details; another signal is queued with
    /// `si_code` `POLL_*`, `si_band` and `si_fd`.
    pub signal: i32,
}

/// A description's `O_ASYNC` state, made on first use.
struct AsyncState {
    /// Shared with the hook that sends the signal.
    settings: Arc<Mutex<IoSignal>>,
    /// The hook on the file's wait queue while `O_ASYNC` is on.
    hook: Mutex<Option<Arc<dyn WakeHook>>>,
}

/// An open file description. Shared by dup'd fds and across fork.
/// The extended attribute that holds a file's capabilities.
pub const SECURITY_CAPABILITY: &[u8] = b"security.capability";

/// How many times some file got a `security.capability` attribute: a description whose
/// file had none need not look again until this moves (the part of Linux's S_NOSEC that a
/// write would otherwise pay an attribute lookup for).
static FILE_CAPS_SET: AtomicU64 = AtomicU64::new(1);

/// Some file got file capabilities (a setxattr of [`SECURITY_CAPABILITY`]).
pub fn file_caps_set() {
    FILE_CAPS_SET.fetch_add(1, Ordering::Relaxed);
}

pub struct OpenFile {
    kind: FileKind,
    /// [`FILE_CAPS_SET`] when a write through this description last found its file without
    /// file capabilities (0: never looked).
    no_file_caps: AtomicU64,
    /// `O_*` status flags (access mode, O_APPEND, O_NONBLOCK...).
    flags: AtomicU32,
    /// The file offset; also serialises reads and writes that use it, as Linux's f_pos_lock.
    pub offset: Mutex<u64>,
    /// The path it was opened by (None for pipes, sockets, donated host fds).
    pub dentry: Option<Arc<Dentry>>,
    /// The lock table a lock was taken in through this description, if ever (its locks
    /// are released there on drop).
    locks: OnceLock<Arc<Locks>>,
    /// The file's identity as inotify counted its open descriptions ([`OpenFile::opened`]).
    watched: OnceLock<(u64, u64)>,
    /// Signal-driven I/O (`O_ASYNC`, `F_SETOWN`, `F_SETSIG`), if ever asked for.
    sigio: OnceLock<AsyncState>,
    /// An open for writing's write access to its file (ETXTBSY for an execve meanwhile).
    write_access: OnceLock<super::write_access::Access>,
    /// The Landlock rights (truncate, ioctl on a device) the opener's domain denied at open
    /// time, which later calls on this description check ([`super::landlock`]).
    landlock_denied: OnceLock<u64>,
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.set_async_hook(None);
        if let Some(locks) = self.locks.get() {
            locks.release_file(self.lock_id());
        }
        // The last reference to the description: inotify's IN_CLOSE_*.
        if let Some(d) = &self.dentry {
            if !self.is_path_only() {
                super::inotify::closed(d, self.writable(), self.watched.get().copied());
            }
        }
    }
}

impl std::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFile")
            .field("flags", &self.flags())
            .finish_non_exhaustive()
    }
}

/// Status flags `fcntl(F_SETFL)` may change.
pub const SETFL_MASK: u32 =
    (libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME) as u32;

impl OpenFile {
    /// A plain file without a path.
    pub fn new(ops: Arc<dyn FileOps>, flags: u32) -> Arc<OpenFile> {
        OpenFile::of_kind(FileKind::Plain(ops), flags)
    }

    /// A file of `kind` without a path (sockets, epoll, inotify, timerfd, signalfd).
    pub fn of_kind(kind: FileKind, flags: u32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            kind,
            no_file_caps: AtomicU64::new(0),
            flags: AtomicU32::new(flags & !(libc::O_CLOEXEC as u32)),
            offset: Mutex::new(0),
            dentry: None,
            locks: OnceLock::new(),
            watched: OnceLock::new(),
            sigio: OnceLock::new(),
            write_access: OnceLock::new(),
            landlock_denied: OnceLock::new(),
        })
    }

    /// A file opened by path.
    pub fn with_dentry(ops: Arc<dyn FileOps>, flags: u32, dentry: Arc<Dentry>) -> Arc<OpenFile> {
        OpenFile::of_kind_with_dentry(FileKind::Plain(ops), flags, dentry)
    }

    /// A file of `kind` opened by path (a FIFO).
    pub fn of_kind_with_dentry(kind: FileKind, flags: u32, dentry: Arc<Dentry>) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            kind,
            no_file_caps: AtomicU64::new(0),
            flags: AtomicU32::new(flags & !(libc::O_CLOEXEC as u32)),
            offset: Mutex::new(0),
            dentry: Some(dentry),
            locks: OnceLock::new(),
            watched: OnceLock::new(),
            sigio: OnceLock::new(),
            write_access: OnceLock::new(),
            landlock_denied: OnceLock::new(),
        })
    }

    /// The file was just opened by path: inotify's IN_OPEN, and its count of the open
    /// descriptions of a watched file.
    pub fn opened(&self) {
        if let Some(d) = &self.dentry {
            super::inotify::file_event(d, super::inotify::IN_OPEN);
            if !self.is_path_only() {
                if let Some(key) = super::inotify::opened(d) {
                    let _ = self.watched.set(key);
                }
            }
        }
    }

    /// Keeps `access` (an open for writing's write access) while the description lives.
    pub fn hold_write_access(&self, access: super::write_access::Access) {
        let _ = self.write_access.set(access);
    }

    /// Records the Landlock rights denied to this description at open time.
    pub fn set_landlock_denied(&self, denied: u64) {
        let _ = self.landlock_denied.set(denied);
    }

    /// The Landlock rights denied to this description at open time.
    pub fn landlock_denied(&self) -> u64 {
        self.landlock_denied.get().copied().unwrap_or(0)
    }

    /// The file's operations.
    pub fn ops(&self) -> &dyn FileOps {
        self.kind.ops()
    }

    /// What kind of file this is.
    pub fn kind(&self) -> &FileKind {
        &self.kind
    }

    /// This description's identity as a lock owner (flock and OFD locks).
    pub fn lock_id(&self) -> usize {
        self as *const OpenFile as usize
    }

    /// Records that a lock was taken through this description in `table` (a file belongs
    /// to one kernel, so to one table).
    pub fn note_locked(&self, table: &Arc<Locks>) {
        let _ = self.locks.set(table.clone());
    }

    /// Opened with O_PATH: usable only as a location, not for I/O.
    pub fn is_path_only(&self) -> bool {
        self.flags() & libc::O_PATH as u32 != 0
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Whether the description is `O_NONBLOCK`.
    pub fn nonblocking(&self) -> bool {
        self.flags() & libc::O_NONBLOCK as u32 != 0
    }

    /// `F_SETFL`: changes only the settable status flags.
    pub fn set_flags(&self, flags: u32) {
        let old = self.flags();
        self.flags.store(
            (old & !SETFL_MASK) | (flags & SETFL_MASK),
            Ordering::Relaxed,
        );
    }

    pub fn readable(&self) -> bool {
        if self.is_path_only() {
            return false;
        }
        let acc = self.flags() & libc::O_ACCMODE as u32;
        acc == libc::O_RDONLY as u32 || acc == libc::O_RDWR as u32
    }

    pub fn writable(&self) -> bool {
        if self.is_path_only() {
            return false;
        }
        let acc = self.flags() & libc::O_ACCMODE as u32;
        acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32
    }

    /// The queue whose wake-ups send the description's `O_ASYNC` signal; None for files
    /// without signal-driven I/O (Linux's files without `fasync`: epoll, eventfd, timerfd,
    /// signalfd, pidfd, message queues, regular files).
    fn async_queue(&self) -> Option<&WaitQueue> {
        match &self.kind {
            FileKind::Plain(_) | FileKind::Socket(_) | FileKind::Pipe(_) | FileKind::Inotify(_)
                if self.ops().signals_io() =>
            {
                self.ops().wait_queue()
            }
            _ => None,
        }
    }

    /// Whether `O_ASYNC` can make this description signal (`FIOASYNC` is ENOTTY if not;
    /// `F_SETFL` still records the flag, as Linux's).
    pub fn can_signal_io(&self) -> bool {
        self.async_queue().is_some()
    }

    fn async_state(&self) -> &AsyncState {
        self.sigio.get_or_init(|| AsyncState {
            settings: Arc::default(),
            hook: Mutex::new(None),
        })
    }

    /// The owner and signal of the description's signal-driven I/O.
    pub fn io_signal(&self) -> IoSignal {
        self.sigio
            .get()
            .map(|a| a.settings.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Changes the owner or signal of the description's signal-driven I/O.
    pub fn update_io_signal(&self, change: impl FnOnce(&mut IoSignal)) {
        change(&mut self.async_state().settings.lock().unwrap());
    }

    /// The settings a hook made for [`OpenFile::set_async_hook`] reads when it fires.
    pub fn io_signal_settings(&self) -> Arc<Mutex<IoSignal>> {
        self.async_state().settings.clone()
    }

    /// Puts `hook` (`O_ASYNC` on) or nothing (off) on the file's wait queue in place of the
    /// previous one. Does nothing for files that cannot signal ([`OpenFile::can_signal_io`]).
    pub fn set_async_hook(&self, hook: Option<Arc<dyn WakeHook>>) {
        if hook.is_none() && self.sigio.get().is_none() {
            return;
        }
        let Some(q) = self.async_queue() else {
            return;
        };
        let mut cur = self.async_state().hook.lock().unwrap();
        if let Some(old) = cur.take() {
            q.remove_hook(&old);
        }
        if let Some(h) = hook {
            q.add_hook(&h);
            *cur = Some(h);
        }
    }

    /// The flags of a read or write on a socket file: O_NONBLOCK only.
    fn socket_flags(&self) -> IoFlags {
        IoFlags {
            nonblocking: self.flags() & libc::O_NONBLOCK as u32 != 0,
            ..IoFlags::default()
        }
    }

    /// Reads at the file offset (advancing it) or without one.
    ///
    /// # Errors
    /// EBADF when not open for reading, and the file's errors.
    pub fn read(&self, t: &mut dyn Context, dst: &mut dyn IoDst) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        if let FileKind::Socket(s) = &self.kind {
            // A read on a socket is a receive without flags.
            return Ok(s.recv(t, dst, self.socket_flags())?.len);
        }
        let wanted = dst.remaining();
        let n = if self.ops().seekable() {
            let mut off = self.offset.lock().unwrap();
            let n = self.ops().read(t, self, dst, Some(*off))?;
            *off += n as u64;
            n
        } else {
            self.ops().read(t, self, dst, None)?
        };
        self.accessed(wanted, n);
        Ok(n)
    }

    /// Reads at `offset` without using the file offset (pread).
    ///
    /// # Errors
    /// The file's errors.
    pub fn read_at(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        offset: u64,
    ) -> Result<usize, Errno> {
        let wanted = dst.remaining();
        let n = self.ops().read(t, self, dst, Some(offset))?;
        self.accessed(wanted, n);
        Ok(n)
    }

    /// Writes at `offset` without using the file offset (pwrite).
    ///
    /// # Errors
    /// The file's errors.
    pub fn write_at(
        &self,
        t: &mut dyn Context,
        src: &mut dyn IoSrc,
        offset: u64,
    ) -> Result<usize, Errno> {
        self.remove_privs(t, src)?;
        let n = self.ops().write(t, self, src, Some(offset))?;
        self.modified(n);
        Ok(n)
    }

    /// What a write of something does first, as Linux's file_remove_privs: a regular file
    /// loses its set-user-ID bit, and its set-group-ID bit when group-executable or when the
    /// writer is not in its group, unless the writer holds CAP_FSETID; and its file
    /// capabilities, whoever writes.
    ///
    /// # Errors
    /// The filesystem's, from changing the mode or removing the attribute.
    fn remove_privs(&self, t: &dyn Context, src: &dyn IoSrc) -> Result<(), Errno> {
        let Some(d) = self.dentry.as_ref().filter(|_| src.remaining() > 0) else {
            return Ok(());
        };
        let Ok(st) = d.inode.stat() else {
            return Ok(());
        };
        if st.mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(());
        }
        if st.mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            let creds = t.creds();
            let mut kill = st.mode & libc::S_ISUID;
            if st.mode & libc::S_ISGID != 0
                && (st.mode & libc::S_IXGRP != 0 || !creds.in_group(st.gid))
            {
                kill |= libc::S_ISGID;
            }
            if kill != 0 && !creds.has_cap(crate::auth::cap::FSETID) {
                let a = super::SetAttr {
                    mode: Some(st.mode & 0o7777 & !kill),
                    ..super::SetAttr::default()
                };
                d.inode.setattr(&a)?;
                super::inotify::attr_changed(d, &a);
            }
        }
        let caps_set = FILE_CAPS_SET.load(Ordering::Relaxed);
        if self.no_file_caps.load(Ordering::Relaxed) != caps_set {
            if d.inode.getxattr(SECURITY_CAPABILITY).is_ok() {
                d.inode.removexattr(SECURITY_CAPABILITY)?;
            }
            self.no_file_caps.store(caps_set, Ordering::Relaxed);
        }
        Ok(())
    }

    /// After a read of `wanted` bytes that returned `n`: the access time (even at the end
    /// of the file, as Linux's), and inotify's IN_ACCESS when it returned data.
    fn accessed(&self, wanted: usize, n: usize) {
        if let (Some(d), true) = (&self.dentry, wanted > 0) {
            self.touch_atime(d);
        }
        if let (Some(d), true) = (&self.dentry, n > 0) {
            super::inotify::file_event(d, super::inotify::IN_ACCESS);
        }
    }

    /// Records an access to the file at `d` (a read, a directory listing) in its access
    /// time as the mount's access-time mode says: never on a read-only or `noatime` mount,
    /// for `O_NOATIME` descriptions or (`nodiratime`) directories; with `strictatime`
    /// always; else by relatime's rule.
    pub fn touch_atime(&self, d: &Dentry) {
        let m = &d.mount;
        if m.readonly
            || m.flags & libc::MS_NOATIME != 0
            || self.flags() & libc::O_NOATIME as u32 != 0
        {
            return;
        }
        if m.flags & libc::MS_NODIRATIME != 0
            && d.inode.file_type() == Ok(super::FileType::Directory)
        {
            return;
        }
        d.inode.touch_atime(m.flags & libc::MS_STRICTATIME == 0);
    }

    /// inotify's IN_MODIFY after a write that wrote something.
    fn modified(&self, n: usize) {
        if let (Some(d), true) = (&self.dentry, n > 0) {
            super::inotify::file_event(d, super::inotify::IN_MODIFY);
        }
    }

    /// Writes at the file offset (or the end with O_APPEND), advancing it.
    ///
    /// # Errors
    /// EBADF when not open for writing, and the file's errors.
    pub fn write(&self, t: &mut dyn Context, src: &mut dyn IoSrc) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if let FileKind::Socket(s) = &self.kind {
            // A send without flags, which raises SIGPIPE on EPIPE as send(2) without
            // MSG_NOSIGNAL does.
            let r = s.send(t, OutMessage::default(), src, self.socket_flags());
            if r == Err(Errno::EPIPE) {
                t.raise_sigpipe();
            }
            return r;
        }
        self.remove_privs(t, src)?;
        if self.ops().seekable() {
            let mut off = self.offset.lock().unwrap();
            if self.flags() & libc::O_APPEND as u32 != 0 {
                *off = self.ops().size()?;
            }
            let n = self.ops().write(t, self, src, Some(*off))?;
            *off += n as u64;
            drop(off);
            self.modified(n);
            Ok(n)
        } else {
            let n = self.ops().write(t, self, src, None)?;
            self.modified(n);
            Ok(n)
        }
    }
}
