//! inotify: watches on files and the event queues of inotify file descriptions.
//!
//! A watch names a file by its identity `(st_dev, st_ino)`, so every filesystem has watches
//! without code of its own. The system calls that use or change files report what they did
//! through the hooks at the end of this module (one per kind of operation: [`file_event`],
//! [`created`], [`removed`], [`moved`], [`linked`], [`attr_changed`], [`inode_changed`], [`closed`]); the hooks
//! deliver Linux's events to the watches of the file and of its parent directory (with the
//! file's name), in Linux's order. The watches belong to the kernel ([`FsNotify`], one per
//! kernel, reached from every mount as `Mount::notify`).
//!
//! Only changes made through the sentry are seen: a host process changing a host-backed file
//! produces no event. A file whose last name goes while open descriptions hold it reports `IN_DELETE_SELF`/`IN_IGNORED` at the last close, as Linux
//! does when the inode goes; until then its events reach its old directory's watches unless
//! they asked for `IN_EXCL_UNLINK`. The per-user limits (`max_user_instances`, `max_user_watches`) are
//! counted for the whole sandbox.
//!
//! # Lock order
//! `Inotify::state` → `FsNotify::registry` → `WaitQueue` locks. Event delivery takes the registry alone
//! (to find the targets), then each instance's state.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::inode::{FileType, SetAttr};
use super::{Dentry, FileOps, OpenFile, Stat};
use crate::abi::{Errno, SysResult};
use crate::vfs::Context;
use crate::vfs::IoDst;
use crate::waiter::{WaitQueue, Wake};

pub const IN_ACCESS: u32 = 0x1;
pub const IN_MODIFY: u32 = 0x2;
pub const IN_ATTRIB: u32 = 0x4;
pub const IN_CLOSE_WRITE: u32 = 0x8;
pub const IN_CLOSE_NOWRITE: u32 = 0x10;
pub const IN_OPEN: u32 = 0x20;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_MOVE_SELF: u32 = 0x800;
pub const IN_UNMOUNT: u32 = 0x2000;
pub const IN_Q_OVERFLOW: u32 = 0x4000;
pub const IN_IGNORED: u32 = 0x8000;
pub const IN_ONLYDIR: u32 = 0x0100_0000;
pub const IN_DONT_FOLLOW: u32 = 0x0200_0000;
pub const IN_EXCL_UNLINK: u32 = 0x0400_0000;
pub const IN_MASK_CREATE: u32 = 0x1000_0000;
pub const IN_MASK_ADD: u32 = 0x2000_0000;
pub const IN_ISDIR: u32 = 0x4000_0000;
pub const IN_ONESHOT: u32 = 0x8000_0000;
/// Every event a watch can ask for.
pub const IN_ALL_EVENTS: u32 = 0xfff;
/// Every bit `inotify_add_watch` knows (a mask with none of them is EINVAL).
pub const IN_ALL_BITS: u32 = IN_ALL_EVENTS
    | IN_UNMOUNT
    | IN_Q_OVERFLOW
    | IN_IGNORED
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
    | IN_MASK_CREATE
    | IN_MASK_ADD
    | IN_ISDIR
    | IN_ONESHOT;

/// `/proc/sys/fs/inotify/max_queued_events`'s default.
pub const MAX_QUEUED_EVENTS: usize = 16384;
/// `max_user_instances`' default, counted for the whole sandbox.
pub const MAX_INSTANCES: usize = 128;
/// The top of Linux's range for `max_user_watches`, counted for the whole sandbox.
pub const MAX_WATCHES: usize = 1 << 20;
/// `sizeof(struct inotify_event)`.
const EVENT_HEADER: usize = 16;

/// A watched file's identity.
type Key = (u64, u64);

/// One queued `struct inotify_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// The name field's length: the name, its NUL and padding to a multiple of the header.
    fn name_len(&self) -> usize {
        if self.name.is_empty() {
            0
        } else {
            (self.name.len() + 1).next_multiple_of(EVENT_HEADER)
        }
    }

    fn size(&self) -> usize {
        EVENT_HEADER + self.name_len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.wd.to_ne_bytes());
        out.extend_from_slice(&self.mask.to_ne_bytes());
        out.extend_from_slice(&self.cookie.to_ne_bytes());
        out.extend_from_slice(&(self.name_len() as u32).to_ne_bytes());
        let start = out.len();
        out.extend_from_slice(&self.name);
        out.resize(start + self.name_len(), 0);
    }
}

struct Watch {
    key: Key,
    mask: u32,
    /// The path it was added by (empty: none), for a checkpoint to find the file again.
    path: Vec<u8>,
}

/// An inotify instance in a checkpoint image: its watches by the path they were added by,
/// the next watch descriptor, and the events not read yet.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InotifyImage {
    pub watches: Vec<WatchImage>,
    pub next_wd: i32,
    /// (wd, mask, cookie, name), oldest first.
    pub events: Vec<(i32, u32, u32, Vec<u8>)>,
}

/// One watch: its descriptor, mask, the path it was added by and the identity the file had.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WatchImage {
    pub wd: i32,
    pub mask: u32,
    pub path: Vec<u8>,
    pub dev: u64,
    pub ino: u64,
}

#[derive(Default)]
struct State {
    watches: BTreeMap<i32, Watch>,
    by_key: BTreeMap<Key, i32>,
    next_wd: i32,
    events: VecDeque<Event>,
    bytes: usize,
}

/// An inotify instance (the file behind an inotify fd).
pub struct Inotify {
    /// The kernel's watches this instance registers in.
    hub: Arc<FsNotify>,
    id: u64,
    me: Weak<Inotify>,
    state: Mutex<State>,
    queue: WaitQueue,
}

/// Watched identities → the instances and watch descriptors watching them.
type Registry = BTreeMap<Key, Vec<(u64, Weak<Inotify>, i32)>>;

/// The inotify watches of one kernel: which instances watch which files, and the limits
/// counted for the whole sandbox. Linux hangs watches on inodes; here they are keyed by file
/// identity. Every mount of a kernel's namespaces holds the kernel's one (`Mount::notify`), so
/// a change made through any mount reaches every watch on the file, and two kernels in one
/// process (tests, a restore beside a running sandbox) never see each other's watches.
#[derive(Default)]
pub struct FsNotify {
    registry: Mutex<Registry>,
    /// Watches in the registry: the hooks do nothing (not even a stat) while it is zero.
    watches: AtomicUsize,
    /// Live instances (for [`MAX_INSTANCES`]).
    instances: AtomicUsize,
    next_id: AtomicU64,
    next_cookie: AtomicU32,
    /// Files opened while watches existed: how many open descriptions hold each, and
    /// whether its last name is gone (its IN_DELETE_SELF waits for the last close).
    open: Mutex<BTreeMap<Key, (usize, bool)>>,
}

impl std::fmt::Debug for FsNotify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsNotify")
            .field("watches", &self.watches.load(Ordering::Relaxed))
            .field("instances", &self.instances.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FsNotify {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, key: Key, id: u64, me: Weak<Inotify>, wd: i32) {
        self.registry().entry(key).or_default().push((id, me, wd));
        self.watches.fetch_add(1, Ordering::Relaxed);
    }

    fn unregister(&self, key: Key, id: u64, wd: i32) {
        let mut r = self.registry();
        if let Some(v) = r.get_mut(&key) {
            let before = v.len();
            v.retain(|(i, _, w)| !(*i == id && *w == wd));
            self.watches.fetch_sub(before - v.len(), Ordering::Relaxed);
            if v.is_empty() {
                r.remove(&key);
            }
        }
    }

    /// Sends an event to every watch on `key`; one-shot watches that fire are removed.
    fn notify_key(&self, key: Key, mask: u32, cookie: u32, name: &[u8]) {
        self.notify_key_from(key, mask, cookie, name, &|| false);
    }

    /// [`FsNotify::notify_key`]; `unlinked_child`: whether the event came through a name
    /// that no longer leads to the file, which watches with IN_EXCL_UNLINK do not take
    /// (asked only when such a watch is there: it may cost a lookup).
    fn notify_key_from(
        &self,
        key: Key,
        mask: u32,
        cookie: u32,
        name: &[u8],
        unlinked_child: &dyn Fn() -> bool,
    ) {
        let targets: Vec<(Arc<Inotify>, i32)> = match self.registry().get(&key) {
            Some(v) => v
                .iter()
                .filter_map(|(_, w, wd)| Some((w.upgrade()?, *wd)))
                .collect(),
            None => return,
        };
        for (inst, wd) in targets {
            if let Some(k) = inst.deliver(wd, mask, cookie, name, unlinked_child) {
                self.unregister(k, inst.id, wd);
            }
        }
    }

    /// Removes every watch on `key` (its file is gone), queueing IN_IGNORED.
    fn forget_key(&self, key: Key) {
        let targets = self.registry().remove(&key).unwrap_or_default();
        self.watches.fetch_sub(targets.len(), Ordering::Relaxed);
        for (_, w, wd) in targets {
            if let Some(inst) = w.upgrade() {
                inst.forget(wd);
            }
        }
    }

    fn active(&self) -> bool {
        self.watches.load(Ordering::Relaxed) > 0
    }

    /// An event on the file only, not its parent (link-count changes, IN_MOVE_SELF).
    fn inode_event(&self, st: &Stat, mask: u32) {
        self.notify_key((st.dev, st.ino), mask | isdir_bit(st), 0, &[]);
    }

    /// The last name of the file went: IN_DELETE_SELF now, or at the last close of the
    /// open descriptions that hold it.
    fn last_name_gone(&self, st: &Stat) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = open.get_mut(&(st.dev, st.ino)) {
            o.1 = true;
            return;
        }
        drop(open);
        self.delete_self(st);
    }

    /// The file is gone: IN_DELETE_SELF (never with IN_ISDIR, as Linux reports it), then
    /// its watches end with IN_IGNORED.
    fn delete_self(&self, st: &Stat) {
        let key = (st.dev, st.ino);
        self.notify_key(key, IN_DELETE_SELF, 0, &[]);
        self.forget_key(key);
    }

    /// An event about `name` in the directory `dir`.
    fn dir_event(&self, dir: &Dentry, mask: u32, cookie: u32, name: &[u8]) {
        if let Ok(ds) = dir.inode.stat() {
            self.notify_key((ds.dev, ds.ino), mask, cookie, name);
        }
    }

    /// A file the kernel changed by itself, not through a file description (cgroup event
    /// files): IN_MODIFY to the file's watches and, with its name, to its directory's.
    pub fn kernel_modified(&self, dev: u64, ino: u64, dir_ino: u64, name: &[u8]) {
        if !self.active() {
            return;
        }
        self.notify_key((dev, dir_ino), IN_MODIFY, 0, name);
        self.notify_key((dev, ino), IN_MODIFY, 0, &[]);
    }

    /// A cookie tying an IN_MOVED_FROM to its IN_MOVED_TO (never 0).
    fn cookie(&self) -> u32 {
        self.next_cookie
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .max(1)
    }
}

impl Inotify {
    /// A new instance.
    ///
    /// # Errors
    /// EMFILE when [`MAX_INSTANCES`] are alive.
    pub fn new(hub: &Arc<FsNotify>) -> Result<Arc<Inotify>, Errno> {
        hub.instances
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_INSTANCES).then_some(n + 1)
            })
            .map_err(|_| Errno::EMFILE)?;
        Ok(Arc::new_cyclic(|me| Inotify {
            hub: hub.clone(),
            id: hub.next_id.fetch_add(1, Ordering::Relaxed),
            me: me.clone(),
            state: Mutex::new(State {
                next_wd: 1,
                ..State::default()
            }),
            queue: WaitQueue::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `inotify_add_watch` on the file with `st`; returns the watch descriptor.
    ///
    /// # Errors
    /// EINVAL for a mask without events or with both IN_MASK_ADD and IN_MASK_CREATE,
    /// ENOTDIR for IN_ONLYDIR on a non-directory, EEXIST for IN_MASK_CREATE on a watched file,
    /// ENOSPC beyond [`MAX_WATCHES`].
    pub fn add_watch(&self, st: &Stat, mask: u32) -> Result<i32, Errno> {
        self.add_watch_at(st, mask, &[])
    }

    /// [`Inotify::add_watch`] by `path` (resolved to `st`), which a checkpoint saves.
    ///
    /// # Errors
    /// As [`Inotify::add_watch`].
    pub fn add_watch_at(&self, st: &Stat, mask: u32, path: &[u8]) -> Result<i32, Errno> {
        check_mask(mask)?;
        if mask & IN_ONLYDIR != 0 && FileType::from_mode(st.mode) != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let key = (st.dev, st.ino);
        let mut s = self.lock();
        if let Some(&wd) = s.by_key.get(&key) {
            if mask & IN_MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            let w = s.watches.get_mut(&wd).expect("by_key and watches agree");
            w.mask = if mask & IN_MASK_ADD != 0 {
                w.mask | mask
            } else {
                mask
            };
            if !path.is_empty() {
                w.path = path.to_vec();
            }
            return Ok(wd);
        }
        if self.hub.watches.load(Ordering::Relaxed) >= MAX_WATCHES {
            return Err(Errno::ENOSPC);
        }
        let wd = s.next_wd;
        s.next_wd = s.next_wd.checked_add(1).ok_or(Errno::ENOSPC)?;
        s.watches.insert(
            wd,
            Watch {
                key,
                mask,
                path: path.to_vec(),
            },
        );
        s.by_key.insert(key, wd);
        self.hub.register(key, self.id, self.me.clone(), wd);
        Ok(wd)
    }

    /// `inotify_rm_watch`: removes the watch and queues IN_IGNORED.
    ///
    /// # Errors
    /// EINVAL for an unknown watch descriptor.
    pub fn rm_watch(&self, wd: i32) -> Result<(), Errno> {
        let mut s = self.lock();
        let w = s.watches.remove(&wd).ok_or(Errno::EINVAL)?;
        s.by_key.remove(&w.key);
        self.hub.unregister(w.key, self.id, wd);
        self.push(&mut s, wd, IN_IGNORED, 0, &[]);
        drop(s);
        self.queue.notify(Wake::Readable);
        Ok(())
    }

    /// Queues an event: IN_Q_OVERFLOW (once) when the queue is full, else nothing when it
    /// equals the last queued event (Linux checks in that order), else the event.
    fn push(&self, s: &mut State, wd: i32, mask: u32, cookie: u32, name: &[u8]) {
        let ev = Event {
            wd,
            mask,
            cookie,
            name: name.to_vec(),
        };
        if s.events.len() >= MAX_QUEUED_EVENTS {
            let overflow = Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: Vec::new(),
            };
            if s.events.back() != Some(&overflow) {
                s.bytes += overflow.size();
                s.events.push_back(overflow);
            }
            return;
        }
        if s.events.back() == Some(&ev) {
            return;
        }
        s.bytes += ev.size();
        s.events.push_back(ev);
    }

    /// Delivers an event to watch `wd` if it asked for it. Returns the key of a one-shot
    /// watch that fired (to be unregistered by the caller).
    fn deliver(
        &self,
        wd: i32,
        mask: u32,
        cookie: u32,
        name: &[u8],
        unlinked_child: &dyn Fn() -> bool,
    ) -> Option<Key> {
        let mut s = self.lock();
        let w = s.watches.get(&wd)?;
        if w.mask & IN_EXCL_UNLINK != 0 && unlinked_child() {
            return None;
        }
        let wanted = w.mask & mask & IN_ALL_EVENTS;
        if wanted == 0 {
            return None;
        }
        let (key, oneshot) = (w.key, w.mask & IN_ONESHOT != 0);
        self.push(&mut s, wd, wanted | (mask & IN_ISDIR), cookie, name);
        let mut fired = None;
        if oneshot {
            s.watches.remove(&wd);
            s.by_key.remove(&key);
            self.push(&mut s, wd, IN_IGNORED, 0, &[]);
            fired = Some(key);
        }
        drop(s);
        self.queue.notify(Wake::Readable);
        fired
    }

    /// Drops watch `wd` because its file is gone, queueing IN_IGNORED.
    fn forget(&self, wd: i32) {
        let mut s = self.lock();
        if let Some(w) = s.watches.remove(&wd) {
            s.by_key.remove(&w.key);
            self.push(&mut s, wd, IN_IGNORED, 0, &[]);
            drop(s);
            self.queue.notify(Wake::Readable);
        }
    }

    /// The instance for a checkpoint.
    ///
    /// # Errors
    /// A watch added without a path (none is, by the system calls).
    pub fn saved(&self) -> Result<InotifyImage, String> {
        let s = self.lock();
        let watches = s
            .watches
            .iter()
            .map(|(&wd, w)| {
                if w.path.is_empty() {
                    return Err(format!("inotify watch {wd} was added without a path"));
                }
                Ok(WatchImage {
                    wd,
                    mask: w.mask,
                    path: w.path.clone(),
                    dev: w.key.0,
                    ino: w.key.1,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(InotifyImage {
            watches,
            next_wd: s.next_wd,
            events: s
                .events
                .iter()
                .map(|e| (e.wd, e.mask, e.cookie, e.name.clone()))
                .collect(),
        })
    }

    /// An instance as [`Inotify::saved`] described it: each watch on the file `find` gives
    /// for its path and old identity (the stat of that file in the new sandbox), its events
    /// queued again.
    ///
    /// # Errors
    /// EMFILE beyond [`MAX_INSTANCES`], or `find`'s error.
    pub fn restored(
        hub: &Arc<FsNotify>,
        image: &InotifyImage,
        find: &mut dyn FnMut(&WatchImage) -> Result<Stat, String>,
    ) -> Result<Arc<Inotify>, String> {
        let inst = Inotify::new(hub).map_err(|e| format!("an inotify instance ({e:?})"))?;
        {
            let mut s = inst.lock();
            for w in &image.watches {
                let st = find(w)?;
                let key = (st.dev, st.ino);
                if w.wd <= 0 || s.watches.contains_key(&w.wd) || s.by_key.contains_key(&key) {
                    return Err(format!("inotify watch {} twice or on one file twice", w.wd));
                }
                s.watches.insert(
                    w.wd,
                    Watch {
                        key,
                        mask: w.mask,
                        path: w.path.clone(),
                    },
                );
                s.by_key.insert(key, w.wd);
                hub.register(key, inst.id, inst.me.clone(), w.wd);
            }
            s.next_wd = image.next_wd.max(1);
            for (wd, mask, cookie, name) in &image.events {
                let ev = Event {
                    wd: *wd,
                    mask: *mask,
                    cookie: *cookie,
                    name: name.clone(),
                };
                s.bytes += ev.size();
                s.events.push_back(ev);
            }
        }
        Ok(inst)
    }

    /// Bytes of queued events (FIONREAD).
    pub fn pending_bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        self.hub.instances.fetch_sub(1, Ordering::Relaxed);
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<(Key, i32)> = s.watches.iter().map(|(wd, w)| (w.key, *wd)).collect();
        for (key, wd) in keys {
            self.hub.unregister(key, self.id, wd);
        }
    }
}

/// Validates an `inotify_add_watch` mask.
///
/// # Errors
/// EINVAL.
pub fn check_mask(mask: u32) -> Result<(), Errno> {
    if mask & IN_ALL_BITS == 0 || (mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl FileOps for Inotify {
    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        let nb = file.flags() & libc::O_NONBLOCK as u32 != 0;
        let max = dst.remaining();
        let out = t.block_on(&[&self.queue], None, || {
            let mut s = self.lock();
            let Some(first) = s.events.front() else {
                return if nb { Some(Err(Errno::EAGAIN)) } else { None };
            };
            if first.size() > max {
                return Some(Err(Errno::EINVAL));
            }
            let mut out = Vec::new();
            while let Some(ev) = s.events.front() {
                if out.len() + ev.size() > max {
                    break;
                }
                ev.encode(&mut out);
                let ev = s.events.pop_front().expect("just seen");
                s.bytes -= ev.size();
            }
            Some(Ok(out))
        })?;
        dst.copy_from(&out)
    }

    fn ioctl(&self, t: &mut dyn Context, _file: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        if cmd as u64 == libc::FIONREAD {
            let n = self.pending_bytes() as i32;
            t.mm().write_obj(crate::mm::usermem::UserAddr(arg), &n)?;
            return Ok(0);
        }
        Err(Errno::ENOTTY)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
        if self.lock().events.is_empty() {
            0
        } else {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
}

fn isdir_bit(st: &Stat) -> u32 {
    if FileType::from_mode(st.mode) == FileType::Directory {
        IN_ISDIR
    } else {
        0
    }
}

/// The dentry's parent in the same mount (Linux reports to a parent only within one
/// filesystem: a mount's root is its own parent).
fn parent_of(d: &Dentry) -> Option<&Arc<Dentry>> {
    d.parent
        .as_ref()
        .filter(|p| Arc::ptr_eq(&p.mount, &d.mount))
}

/// An event on the file `d` itself through an open file or a path (IN_ACCESS, IN_MODIFY of a
/// write, IN_OPEN, IN_CLOSE_*): to its parent's watches with its name, then to its own.
/// Watches with IN_EXCL_UNLINK (the file's own or its old directory's) take none once the
/// name `d` came through no longer leads to the file.
pub fn file_event(d: &Dentry, mask: u32) {
    notify_file(d, mask, true);
}

/// An event on the inode `d` names (a change of attributes, size or extended attributes):
/// as [`file_event`], but IN_EXCL_UNLINK does not hold it back, as Linux sends inode events
/// whatever became of the name.
pub fn inode_changed(d: &Dentry, mask: u32) {
    notify_file(d, mask, false);
}

fn notify_file(d: &Dentry, mask: u32, through_name: bool) {
    let hub = &d.mount.notify;
    if !hub.active() {
        return;
    }
    let Ok(st) = d.inode.stat() else { return };
    let mask = mask | isdir_bit(&st);
    let gone = std::cell::OnceCell::new();
    let unlinked = || through_name && *gone.get_or_init(|| name_gone(d, &st));
    if let Some(p) = parent_of(d) {
        if let Ok(ps) = p.inode.stat() {
            hub.notify_key_from((ps.dev, ps.ino), mask, 0, &d.name, &unlinked);
        }
    }
    hub.notify_key_from((st.dev, st.ino), mask, 0, &[], &unlinked);
}

/// Whether `d`'s name (the file `st`) no longer leads to the file: its last link went, or
/// its directory holds no such name or another file under it (a hard link's other names
/// may live on).
fn name_gone(d: &Dentry, st: &Stat) -> bool {
    if isdir_bit(st) == 0 && st.nlink == 0 {
        return true;
    }
    parent_of(d).is_some_and(|p| {
        p.inode
            .lookup(&super::Caller::kernel(), &d.name)
            .and_then(|c| c.stat())
            .map_or(true, |c| (c.dev, c.ino) != (st.dev, st.ino))
    })
}

/// `name` was created in `dir` (open O_CREAT, mkdir, mknod, symlink).
pub fn created(dir: &Dentry, name: &[u8], is_dir: bool) {
    let hub = &dir.mount.notify;
    if hub.active() {
        hub.dir_event(dir, IN_CREATE | if is_dir { IN_ISDIR } else { 0 }, 0, name);
    }
}

/// The file `target` got a new name `name` in `dir` (link, linkat).
pub fn linked(target: &Dentry, dir: &Dentry, name: &[u8]) {
    let hub = &dir.mount.notify;
    if !hub.active() {
        return;
    }
    if let Ok(st) = target.inode.stat() {
        hub.inode_event(&st, IN_ATTRIB);
    }
    hub.dir_event(dir, IN_CREATE, 0, name);
}

/// What the hooks need to know about a file before an operation removes or replaces it.
#[derive(Debug, Clone, Copy)]
pub struct Before(Option<Stat>);

/// Takes the file's identity before an unlink or a rename replaces it (nothing when no
/// watch exists).
pub fn before(d: Option<&Dentry>) -> Before {
    Before(
        d.filter(|d| d.mount.notify.active())
            .and_then(|d| d.inode.stat().ok()),
    )
}

/// The last link of a file went away: IN_DELETE_SELF now, IN_IGNORED after `then`.
fn last_link_gone(st: &Stat) -> bool {
    FileType::from_mode(st.mode) == FileType::Directory || st.nlink <= 1
}

/// `name` (stat'ed into `child` before) was removed from `dir` (unlink, rmdir).
pub fn removed(dir: &Dentry, name: &[u8], child: Before) {
    let Some(st) = child.0 else { return };
    let hub = &dir.mount.notify;
    let is_dir = FileType::from_mode(st.mode) == FileType::Directory;
    if !is_dir {
        hub.inode_event(&st, IN_ATTRIB);
    }
    // As Linux when nothing else holds the file: the file's own IN_DELETE_SELF and
    // IN_IGNORED come before its directory's IN_DELETE.
    if last_link_gone(&st) {
        hub.last_name_gone(&st);
    }
    hub.dir_event(dir, IN_DELETE | isdir_bit(&st), 0, name);
}

/// `old_name` in `old_dir` was renamed to `new_name` in `new_dir`; `src` and `replaced` were
/// taken before (`replaced` the file the rename overwrote, if any). With `exchange`, the two
/// swapped places.
pub fn moved(
    old_dir: &Dentry,
    old_name: &[u8],
    new_dir: &Dentry,
    new_name: &[u8],
    src: Before,
    replaced: Before,
    exchange: bool,
) {
    let Some(ss) = src.0 else { return };
    let hub = &old_dir.mount.notify;
    let one = |from_dir: &Dentry, from: &[u8], to_dir: &Dentry, to: &[u8], st: &Stat| {
        let cookie = hub.cookie();
        let isdir = isdir_bit(st);
        hub.dir_event(from_dir, IN_MOVED_FROM | isdir, cookie, from);
        hub.dir_event(to_dir, IN_MOVED_TO | isdir, cookie, to);
    };
    one(old_dir, old_name, new_dir, new_name, &ss);
    if exchange {
        if let Some(rs) = replaced.0 {
            one(new_dir, new_name, old_dir, old_name, &rs);
            hub.inode_event(&rs, IN_MOVE_SELF);
        }
        hub.inode_event(&ss, IN_MOVE_SELF);
        return;
    }
    if let Some(rs) = replaced.0 {
        if FileType::from_mode(rs.mode) != FileType::Directory {
            hub.inode_event(&rs, IN_ATTRIB);
        }
    }
    hub.inode_event(&ss, IN_MOVE_SELF);
    if let Some(rs) = replaced.0 {
        if last_link_gone(&rs) {
            hub.last_name_gone(&rs);
        }
    }
}

/// Attributes of `d` changed as `a` says (Linux's mapping: size → IN_MODIFY, owner, mode
/// or both times → IN_ATTRIB, the access time alone → IN_ACCESS, the modification time
/// alone → IN_MODIFY).
pub fn attr_changed(d: &Dentry, a: &SetAttr) {
    let mut mask = 0;
    if a.uid.is_some() || a.gid.is_some() || a.mode.is_some() {
        mask |= IN_ATTRIB;
    }
    if a.size.is_some() {
        mask |= IN_MODIFY;
    }
    match (a.atime.is_some(), a.mtime.is_some()) {
        (true, true) => mask |= IN_ATTRIB,
        (true, false) => mask |= IN_ACCESS,
        (false, true) => mask |= IN_MODIFY,
        (false, false) => {}
    }
    if mask != 0 {
        inode_changed(d, mask);
    }
}

/// The file at `d` was opened (not O_PATH): the description is counted against the file
/// (returned: the key [`closed`] is given back), so that an IN_DELETE_SELF can wait for
/// the last close (a watch may be added after the open).
pub fn opened(d: &Dentry) -> Option<(u64, u64)> {
    let hub = &d.mount.notify;
    let key = d.inode.ident().ok()?;
    let mut open = hub.open.lock().unwrap_or_else(|e| e.into_inner());
    open.entry(key).or_insert((0, false)).0 += 1;
    Some(key)
}

/// The last reference to an open file description went away (`key`: what [`opened`]
/// returned for it).
pub fn closed(d: &Dentry, wrote: bool, key: Option<(u64, u64)>) {
    file_event(
        d,
        if wrote {
            IN_CLOSE_WRITE
        } else {
            IN_CLOSE_NOWRITE
        },
    );
    let Some(key) = key else { return };
    let hub = &d.mount.notify;
    let mut open = hub.open.lock().unwrap_or_else(|e| e.into_inner());
    let Some(o) = open.get_mut(&key) else { return };
    o.0 -= 1;
    if o.0 > 0 {
        return;
    }
    let deleted = o.1;
    open.remove(&key);
    drop(open);
    if deleted {
        hub.notify_key(key, IN_DELETE_SELF, 0, &[]);
        hub.forget_key(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(ino: u64, dir: bool) -> Stat {
        Stat {
            dev: 0xfeed,
            ino,
            nlink: 1,
            mode: if dir {
                libc::S_IFDIR | 0o755
            } else {
                libc::S_IFREG | 0o644
            },
            ..Stat::default()
        }
    }

    fn drain(i: &Inotify) -> Vec<(i32, u32, u32, Vec<u8>)> {
        let mut s = i.lock();
        s.bytes = 0;
        s.events
            .drain(..)
            .map(|e| (e.wd, e.mask, e.cookie, e.name))
            .collect()
    }

    #[test]
    fn records_are_padded_like_linux() {
        let e = Event {
            wd: 1,
            mask: IN_CREATE,
            cookie: 0,
            name: b"abc".to_vec(),
        };
        assert_eq!(e.size(), 32);
        let mut out = Vec::new();
        e.encode(&mut out);
        assert_eq!(out.len(), 32);
        assert_eq!(&out[12..16], &16u32.to_ne_bytes());
        let name15 = Event {
            name: vec![b'x'; 15],
            ..e.clone()
        };
        assert_eq!(name15.size(), 32);
        let name16 = Event {
            name: vec![b'x'; 16],
            ..e
        };
        assert_eq!(name16.size(), 48);
    }

    #[test]
    fn watches_masks_oneshot_and_coalescing() {
        let hub = Arc::new(FsNotify::default());
        let i = Inotify::new(&hub).unwrap();
        let f = st(9_000_001, false);
        assert_eq!(i.add_watch(&f, 0), Err(Errno::EINVAL));
        assert_eq!(i.add_watch(&f, IN_ONLYDIR | IN_MODIFY), Err(Errno::ENOTDIR));
        let wd = i.add_watch(&f, IN_MODIFY).unwrap();
        assert_eq!(i.add_watch(&f, IN_ATTRIB | IN_MASK_ADD).unwrap(), wd);
        assert_eq!(
            i.add_watch(&f, IN_ATTRIB | IN_MASK_CREATE),
            Err(Errno::EEXIST)
        );
        hub.inode_event(&f, IN_MODIFY);
        hub.inode_event(&f, IN_MODIFY);
        hub.inode_event(&f, IN_ATTRIB);
        hub.inode_event(&f, IN_ACCESS);
        assert_eq!(
            drain(&i),
            vec![(wd, IN_MODIFY, 0, vec![]), (wd, IN_ATTRIB, 0, vec![])]
        );
        // Replacing the mask (no IN_MASK_ADD), one-shot.
        i.add_watch(&f, IN_ACCESS | IN_ONESHOT).unwrap();
        hub.inode_event(&f, IN_ACCESS);
        hub.inode_event(&f, IN_ACCESS);
        assert_eq!(
            drain(&i),
            vec![(wd, IN_ACCESS, 0, vec![]), (wd, IN_IGNORED, 0, vec![])]
        );
        assert_eq!(i.rm_watch(wd), Err(Errno::EINVAL));
        let wd2 = i.add_watch(&f, IN_DELETE_SELF).unwrap();
        assert_ne!(wd2, wd);
        i.rm_watch(wd2).unwrap();
        assert_eq!(drain(&i), vec![(wd2, IN_IGNORED, 0, vec![])]);
    }

    #[test]
    fn the_queue_overflows_once() {
        let hub = Arc::new(FsNotify::default());
        let i = Inotify::new(&hub).unwrap();
        let d = st(9_000_002, true);
        let wd = i.add_watch(&d, IN_CREATE).unwrap();
        for n in 0..MAX_QUEUED_EVENTS + 10 {
            hub.notify_key((d.dev, d.ino), IN_CREATE, 0, format!("f{n}").as_bytes());
        }
        let ev = drain(&i);
        assert_eq!(ev.len(), MAX_QUEUED_EVENTS + 1);
        assert_eq!(ev.last().unwrap(), &(-1, IN_Q_OVERFLOW, 0, vec![]));
        assert_eq!(ev[0], (wd, IN_CREATE, 0, b"f0".to_vec()));
    }

    #[test]
    fn dropping_the_instance_unregisters() {
        let f = st(9_000_003, false);
        let hub = Arc::new(FsNotify::default());
        let i = Inotify::new(&hub).unwrap();
        i.add_watch(&f, IN_MODIFY).unwrap();
        assert!(hub.registry().contains_key(&(f.dev, f.ino)));
        drop(i);
        assert!(!hub.registry().contains_key(&(f.dev, f.ino)));
    }

    #[test]
    fn a_saved_instance_comes_back_with_its_watches_and_events() {
        let hub = Arc::new(FsNotify::default());
        let i = Inotify::new(&hub).unwrap();
        let dir = st(1, true);
        let wd = i.add_watch_at(&dir, IN_CREATE, b"/d").unwrap();
        hub.notify_key((dir.dev, dir.ino), IN_CREATE, 0, b"x");
        assert!(i.add_watch(&st(2, false), IN_MODIFY).is_ok());
        assert!(i.saved().is_err(), "a watch without a path");
        i.rm_watch(wd + 1).unwrap();
        let image = i.saved().unwrap();
        drop(i);
        assert!(!hub.active(), "the old instance's watches are gone");
        // The directory has another identity in the new sandbox.
        let moved = st(7, true);
        let mut find = |w: &WatchImage| {
            assert_eq!((w.path.as_slice(), w.ino), (&b"/d"[..], 1));
            Ok(moved)
        };
        let j = Inotify::restored(&hub, &image, &mut find).unwrap();
        hub.notify_key((moved.dev, moved.ino), IN_CREATE, 0, b"y");
        hub.notify_key((dir.dev, dir.ino), IN_CREATE, 0, b"z");
        assert_eq!(
            drain(&j),
            vec![
                (wd, IN_CREATE, 0, b"x".to_vec()),
                (wd + 1, IN_IGNORED, 0, Vec::new()),
                (wd, IN_CREATE, 0, b"y".to_vec()),
            ]
        );
        assert_eq!(j.add_watch(&st(3, false), IN_MODIFY), Ok(wd + 2));
    }
}
