//! Revalidation by host notification: one inotify instance per sentry process, one watch per
//! host directory that caches children (see the module doc of `hostfs`, "Dentry cache").
//!
//! The instance is made at boot ([`start`], before the host seccomp filter goes on, which
//! allows only [`DIR_FLAGS`] and [`FILE_FLAGS`] watches and their removal on this one fd), or
//! made by the process that spawned the sandbox and inherited ([`for_sandbox`], [`adopt`];
//! see [`WATCH_ENV`] for why). A directory or regular file is watched through
//! `{HOST_PROC}/self/fd/N` of its own `O_PATH` fd, so the host resolves the inode the sentry
//! holds and never a name. Events are read only by [`sync`], once per system call epoch per
//! thread, under [`Watcher::drain`], and applied before that lock is released: a caller that
//! finds the lock taken waits until the events another thread read
//! are applied, so no cache is trusted between a read and its application.
//!
//! # Lock order
//! `Watcher::drain` -> a directory's `Watched::children` -> `Watcher::table` (a leaf: nothing
//! is taken or dropped while it is held, so a node dropped anywhere may take it to release
//! its watch).

use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

use super::{cache_budget, new_generation, Children, HOST_PROC};
use crate::vfs::dcache;

/// Environment variable read at boot: `0` turns watching off (every cached host entry is
/// then revalidated with one `fstatat` per use). On otherwise.
///
/// The last close of an inotify instance holding watches waits for the host's fsnotify SRCU
/// grace period (6-20 ms), and an exiting process's files are closed before its parent's
/// `wait4` returns. So the last reference must not be the sandbox's: `runsc-rs do` (and the
/// OCI CLI's monitor) makes the instance ([`for_sandbox`]), hands it to the sandbox
/// ([`adopt`]) and to a holder process (`WatchHolder`, a fork of the monitor), which nobody
/// waits for and which closes it after the monitor exited. The containerd shim makes its
/// sandbox's too, keeps a reference and closes it off-thread once the sandbox is gone
/// (`KeptWatch`).
pub const WATCH_ENV: &str = "RUNSC_RS_HOSTFS_WATCH";

/// What a directory's watch reports: names made, removed or moved in it, and its own
/// attributes and atime (a listing), and the directory itself going. (`IN_ATTRIB` and
/// `IN_ACCESS` also come for its entries, named; data changes of its files are left to the
/// files' own watches.)
pub const DIR_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_ACCESS
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// What a regular file's own watch reports: its attributes (link count included, which
/// changes only on the file's own watches), data (size, mtime), atime, and the file going.
pub const FILE_MASK: u32 = libc::IN_ATTRIB
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_ACCESS
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// What `inotify_add_watch` is called with for a directory (the seccomp rule allows exactly
/// this and [`FILE_FLAGS`]): never a second watch on an inode some node already watches
/// (`IN_MASK_CREATE`: EEXIST, and that node keeps the revalidation by host calls).
pub const DIR_FLAGS: u32 = DIR_MASK | libc::IN_ONLYDIR | libc::IN_MASK_CREATE;
/// What `inotify_add_watch` is called with for a regular file.
pub const FILE_FLAGS: u32 = FILE_MASK | libc::IN_MASK_CREATE;

/// Events that change which inode a name leads to.
const NAME_EVENTS: u32 =
    libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;
/// Events after which a watch reports nothing more.
const GONE_EVENTS: u32 = libc::IN_DELETE_SELF | libc::IN_IGNORED | libc::IN_UNMOUNT;

/// Size of an event's fixed part (`struct inotify_event` without its name).
const EVENT_HEADER: usize = 16;
/// The largest event: header and a name of NAME_MAX bytes with its NUL.
const MAX_EVENT: usize = EVENT_HEADER + 256;

/// What events change: a node's attributes (`seq`), its watch and, for a directory, its
/// cached children (`children`). A node owns one; the watch table names it weakly.
#[derive(Default)]
pub(super) struct Watched {
    /// Bumped by every event (or change through the sentry) that may change the node's
    /// attributes; an attribute kept across calls is valid only while it is unchanged.
    pub seq: AtomicU64,
    /// Bumped by an `IN_ACCESS` event alone, which changes at most the atime: attributes
    /// kept for a path walk or an open (type, mode, owners) stay valid across it.
    pub aseq: AtomicU64,
    /// True while the node has a live watch: its attributes and, for a directory, its
    /// children's names are then kept across calls.
    pub live: Arc<AtomicBool>,
    pub children: Mutex<Children>,
}

impl Watched {
    pub fn children(&self) -> MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's attributes may have changed.
    pub fn touch(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// An event of `mask` happened to the node: an access changes at most its atime.
    fn touch_for(&self, mask: u32) {
        if mask & !(libc::IN_ACCESS | libc::IN_ISDIR) == 0 {
            self.aseq.fetch_add(1, Ordering::AcqRel);
        } else {
            self.touch();
        }
    }
}

/// A node's watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum WatchState {
    /// Not tried yet.
    #[default]
    Untried,
    /// Watched with this descriptor.
    Live(i32),
    /// No watch (none could be added, or it went): revalidation by `fstatat`.
    Off,
}

struct Table {
    by_wd: HashMap<i32, Weak<Watched>>,
    /// Whether a host filesystem (by device number) reports every change through inotify.
    local_fs: HashMap<u64, bool>,
}

pub(super) struct Watcher {
    fd: OwnedFd,
    /// Held while events are read and applied ([`sync`]).
    drain: Mutex<()>,
    table: Mutex<Table>,
}

impl Watcher {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

static WATCHER: OnceLock<Watcher> = OnceLock::new();
/// Set when reading events failed: nothing is trusted from then on.
static BROKEN: AtomicBool = AtomicBool::new(false);
/// Bumped on `IN_Q_OVERFLOW` (events were lost): every attribute kept before is stale.
static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The epoch in which this thread last read the events.
    static SYNCED: Cell<u64> = const { Cell::new(dcache::NO_EPOCH) };
}

/// Inotify instances a sandbox leaves to the rest of its host user at least: watching is off
/// when fewer than this many more could be made at boot (`fs.inotify.max_user_instances` is
/// 128 by default, and host daemons of the same user, containerd's or the kubelet's, need
/// theirs).
const INSTANCE_RESERVE: usize = 16;
/// A sandbox takes at most this share of its host user's watches
/// (`fs.inotify.max_user_watches`).
const WATCH_SHARE: usize = 64;
/// `fs.inotify.max_user_watches` when the host's /proc does not say (the kernel's floor).
const DEFAULT_MAX_USER_WATCHES: usize = 8192;
/// Watches this sandbox may hold ([`read_host_limits`]).
static WATCH_LIMIT: OnceLock<usize> = OnceLock::new();

/// Reads the host user's watch limit while the host's /proc is still there (boot calls it
/// before isolation): this sandbox holds at most 1/[`WATCH_SHARE`] of it.
pub fn read_host_limits() {
    let max = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAX_USER_WATCHES);
    let _ = WATCH_LIMIT.set(max / WATCH_SHARE);
}

/// How many watches this sandbox may hold: its share of the host user's and at most the
/// cache budget.
fn watch_limit() -> usize {
    let share = WATCH_LIMIT
        .get()
        .copied()
        .unwrap_or(DEFAULT_MAX_USER_WATCHES / WATCH_SHARE);
    share.min(cache_budget())
}

/// Whether [`WATCH_ENV`] leaves watching on.
pub fn enabled() -> bool {
    !std::env::var(WATCH_ENV).is_ok_and(|v| v == "0")
}

/// An instance made for a sandbox by the process that spawns it ([`for_sandbox`]).
pub struct HostInstance {
    /// The instance (nonblocking and, for the sandbox to inherit it, not close-on-exec).
    pub fd: OwnedFd,
    /// [`INSTANCE_RESERVE`] empty instances: proof that the host user keeps that many more.
    /// Closing any instance waits for the host's mark reaper while it is at work (another
    /// instance's marks going, such as the previous sandbox's), so these go to the holder
    /// with the instance and are closed by a process nobody waits for.
    pub reserve: Vec<OwnedFd>,
}

/// Makes an instance (close-on-exec unless `inherited`) and its reserve.
fn instance(inherited: bool) -> rustix::io::Result<HostInstance> {
    let cloexec = if inherited {
        CreateFlags::empty()
    } else {
        CreateFlags::CLOEXEC
    };
    let fd = inotify::init(cloexec | CreateFlags::NONBLOCK)?;
    let reserve = (0..INSTANCE_RESERVE)
        .map(|_| inotify::init(CreateFlags::CLOEXEC))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HostInstance { fd, reserve })
}

/// Monitor side: the instance a sandbox will [`adopt`], made before it is spawned; None when
/// watching is off or the host user has too few instances left.
pub fn for_sandbox() -> Option<HostInstance> {
    if !enabled() {
        return None;
    }
    instance(true)
        .inspect_err(|e| log::info!("hostfs: no inotify instance for the sandbox ({e})"))
        .ok()
}

/// The instance the monitor passed (see [`WATCH_ENV`]), taken by [`adopt`] for [`start`].
static ADOPTED: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Sandbox side: takes the inherited descriptor `raw` (named by the monitor on the command
/// line) as the instance [`start`] uses. Call before the process forks (the platform's
/// factories close what they inherit, but only what exists when they are made) and while the
/// host's /proc is there. `raw` is moved to a close-on-exec descriptor this process owns
/// (an eventfd made for it, replaced by `dup3`), and is ignored unless it is an inotify
/// instance.
pub fn adopt(raw: i32) {
    let link = std::fs::read_link(format!("/proc/self/fd/{raw}"));
    if !link.is_ok_and(|l| l.as_os_str() == "anon_inode:inotify") {
        log::warn!("hostfs: descriptor {raw} is not an inotify instance: not watching with it");
        return;
    }
    let owned = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .and_then(|slot| {
            nix::unistd::dup3(raw, slot.as_raw_fd(), nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(std::io::Error::from)?;
            Ok(slot)
        });
    let _ = nix::unistd::close(raw);
    match owned {
        Ok(fd) => *ADOPTED.lock().unwrap_or_else(|p| p.into_inner()) = Some(fd),
        Err(e) => log::warn!("hostfs: taking the inherited inotify instance failed ({e})"),
    }
}

/// Makes the sentry's instance, or takes the one [`adopt`] took, unless [`WATCH_ENV`] is
/// `0`. Boot calls it before the host seccomp filter goes on (which refuses
/// `inotify_init1`). Without an instance (turned off, the host's
/// `fs.inotify.max_user_instances` reached, or fewer than [`INSTANCE_RESERVE`] left after
/// it) every directory keeps the `fstatat` revalidation.
pub fn start() {
    let adopted = ADOPTED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if !enabled() {
        log::info!("hostfs: watching host directories is off ({WATCH_ENV}=0)");
        return;
    }
    match adopted {
        Some(fd) => install(fd),
        None => make(),
    }
}

/// Makes the instance whatever [`WATCH_ENV`] says (boot through [`start`]; unit tests).
pub(super) fn make() {
    if WATCHER.get().is_some() {
        return;
    }
    // The reserve is made and closed again at once (closing instances without marks).
    match instance(false) {
        Ok(made) => install(made.fd),
        Err(e) => {
            log::info!("hostfs: no inotify instance ({e}): host entries revalidated by fstatat")
        }
    }
}

fn install(fd: OwnedFd) {
    let _ = WATCHER.set(Watcher {
        fd,
        drain: Mutex::new(()),
        table: Mutex::new(Table {
            by_wd: HashMap::new(),
            local_fs: HashMap::new(),
        }),
    });
}

/// Whether the sentry watches host files at all (an instance was made at boot).
pub(super) fn on() -> bool {
    WATCHER.get().is_some()
}

/// The inotify fd, for the seccomp rules of `inotify_add_watch`/`inotify_rm_watch`.
pub fn fd() -> Option<i32> {
    WATCHER.get().map(|w| w.fd.as_raw_fd())
}

/// The overflow count, which an attribute kept across calls records.
pub(super) fn overflows() -> u64 {
    OVERFLOWS.load(Ordering::Acquire)
}

/// Filesystems whose every change makes an inotify event on the host: local disks and
/// memory filesystems. Network and FUSE filesystems (another client's change makes none),
/// virtiofs and 9p, and kernel filesystems (procfs, sysfs, cgroupfs) do not.
fn reports_changes(fs_type: i64) -> bool {
    const LOCAL: [i64; 9] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0xCA45_1A4E, // bcachefs
        0x794C_7630, // overlayfs (its layers are not changed under a mounted overlay)
    ];
    LOCAL.contains(&fs_type)
}

/// Adds a watch with `flags` ([`DIR_FLAGS`] or [`FILE_FLAGS`]) on `fd` (device `dev`),
/// whose events go to `w`; None when watching is off, the budget of watches is used up, its
/// filesystem does not report every change, or the host refuses (limits, no read
/// permission, EEXIST).
pub(super) fn add(fd: &OwnedFd, dev: u64, w: &Arc<Watched>, flags: u32) -> Option<i32> {
    let watcher = WATCHER.get()?;
    if BROKEN.load(Ordering::Acquire) {
        return None;
    }
    let local = {
        let known = watcher.table().local_fs.get(&dev).copied();
        match known {
            Some(l) => l,
            None => {
                let l = rustix::fs::fstatfs(fd).is_ok_and(|s| reports_changes(s.f_type));
                watcher.table().local_fs.insert(dev, l);
                l
            }
        }
    };
    if !local || watcher.table().by_wd.len() >= watch_limit() {
        return None;
    }
    let path = format!("{HOST_PROC}/self/fd/{}", fd.as_raw_fd());
    match inotify::add_watch(
        &watcher.fd,
        path.as_str(),
        WatchFlags::from_bits_retain(flags),
    ) {
        Ok(wd) => {
            watcher.table().by_wd.insert(wd, Arc::downgrade(w));
            Some(wd)
        }
        Err(e) => {
            log::debug!("hostfs: no watch on a host file ({e}): revalidation by host calls");
            None
        }
    }
}

/// Removes the watch `wd` of a node that goes away.
pub(super) fn release(wd: i32) {
    let Some(watcher) = WATCHER.get() else {
        return;
    };
    watcher.table().by_wd.remove(&wd);
    // EINVAL when the host removed it already (the directory was deleted): nothing to do.
    let _ = inotify::remove_watch(&watcher.fd, wd);
}

/// Reads and applies the events queued so far, once per system call epoch of this thread
/// (outside a call, every time). True when watches can be trusted.
///
/// Every change the host finished before the current call started made its event before
/// this read (inotify queues it inside the host call), so one read that returns EAGAIN or
/// fewer bytes than could hold one more event is enough.
pub(super) fn sync() -> bool {
    let Some(watcher) = WATCHER.get() else {
        return false;
    };
    let now = dcache::current();
    if now != dcache::NO_EPOCH && SYNCED.with(Cell::get) == now {
        return !BROKEN.load(Ordering::Acquire);
    }
    let _drain = watcher.drain.lock().unwrap_or_else(|p| p.into_inner());
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&watcher.fd, &mut buf) {
            Ok(n) => {
                apply_all(watcher, &buf[..n]);
                if n + MAX_EVENT <= buf.len() {
                    break;
                }
            }
            Err(rustix::io::Errno::AGAIN) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                log::warn!("hostfs: reading inotify events failed ({e}): watching stops");
                BROKEN.store(true, Ordering::Release);
                OVERFLOWS.fetch_add(1, Ordering::AcqRel);
                new_generation();
                break;
            }
        }
    }
    SYNCED.with(|s| s.set(now));
    !BROKEN.load(Ordering::Acquire)
}

fn apply_all(watcher: &Watcher, mut bytes: &[u8]) {
    let word = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    while bytes.len() >= EVENT_HEADER {
        let wd = word(bytes, 0) as i32;
        let mask = word(bytes, 4);
        let len = word(bytes, 12) as usize;
        let end = (EVENT_HEADER + len).min(bytes.len());
        let raw = &bytes[EVENT_HEADER..end];
        let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        apply(watcher, wd, mask, name);
        bytes = &bytes[end..];
    }
}

/// Applies one event (see the module doc of `hostfs` for what each kind drops).
fn apply(watcher: &Watcher, wd: i32, mask: u32, name: &[u8]) {
    if mask & libc::IN_Q_OVERFLOW != 0 {
        OVERFLOWS.fetch_add(1, Ordering::AcqRel);
        new_generation();
        return;
    }
    let w = watcher.table().by_wd.get(&wd).and_then(Weak::upgrade);
    let Some(w) = w else {
        return;
    };
    if !name.is_empty() {
        let mut c = w.children();
        c.events += 1;
        if mask & NAME_EVENTS != 0 {
            // The directory's mtime, ctime (and link count) change with its names.
            w.touch();
            c.map.remove(name);
        } else if let Some(e) = c.map.get(name) {
            e.node.w.touch_for(mask);
        }
    } else if mask & GONE_EVENTS != 0 {
        let mut c = w.children();
        c.watch = WatchState::Off;
        w.live.store(false, Ordering::Release);
        w.touch();
        c.drop_all();
        drop(c);
        watcher.table().by_wd.remove(&wd);
    } else {
        w.touch_for(mask);
    }
}

#[cfg(test)]
pub(super) fn watcher_for_tests() -> &'static Watcher {
    WATCHER.get().expect("started")
}

#[cfg(test)]
pub(super) fn apply_all_for_tests(watcher: &Watcher, bytes: &[u8]) {
    apply_all(watcher, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seccomp_mask_is_what_add_uses() {
        assert_eq!(NAME_EVENTS & !DIR_MASK, 0);
        assert_eq!(DIR_FLAGS & libc::IN_ONLYDIR, libc::IN_ONLYDIR);
        assert_eq!(FILE_FLAGS & libc::IN_ONLYDIR, 0);
        assert!(reports_changes(0xEF53));
        assert!(!reports_changes(0x6969), "NFS");
        assert!(!reports_changes(0x6573_5546), "FUSE");
    }
}
