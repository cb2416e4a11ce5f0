//! hostfs (directfs): a host directory tree reached only through directory fds.
//!
//! Every host call is fd-relative with a single path component: `openat(dirfd, name,
//! O_PATH|O_NOFOLLOW)`, `fstat`, `readlinkat(fd, "")`, `getdents64` on a directory fd opened
//! from `"."`. The host never follows a symlink for us (the sentry's walk resolves them), and
//! no multi-component path ever reaches the host, so nothing outside the root is reachable.
//! Only regular files and directories are opened for I/O on the host as files; host device
//! nodes are never opened. Host FIFOs and sockets of a volume are the host's: opening a FIFO
//! or connecting to a socket there reaches the host ([`special`]).
//!
//! A name is resolved by the host once, at lookup; what the sentry then does to the node acts
//! on the inode its `O_PATH` fd holds, never on the name again, because the guest can swap
//! the name (`renameat2(RENAME_EXCHANGE)`) for a symlink to a host file outside the tree
//! between the lookup and the change (issue 15):
//! - chmod: `fchmodat2(fd, "", AT_EMPTY_PATH)` (Linux 6.6); before 6.6, regular files and
//!   directories are reopened ([`HostNode::reopen`]) and changed with `fchmod`, other kinds
//!   are refused with EOPNOTSUPP. A symbolic link is EOPNOTSUPP, as Linux's `fchmodat2`
//!   answers for `AT_SYMLINK_NOFOLLOW`.
//! - chown, utimes: `fchownat`/`utimensat(fd, "", AT_EMPTY_PATH)`.
//! - truncate and opens for I/O: a reopen by name with `O_NOFOLLOW`, used only after
//!   `fstat` shows it is the same inode as the node's fd (else ESTALE). A regular file is
//!   reopened for reading once: every read-only open of the node shares that fd (the sentry
//!   keeps each open's offset and reads are positional, and hostfs passes the host no
//!   status flags, so one fd serves them all), so an open and close of a cached file costs
//!   no host open, `fstat` or close, and never uses the name again.
//! - link: `linkat(fd, "", dir, name, AT_EMPTY_PATH)` links the node's own inode (before
//!   Linux 6.10 that needs CAP_DAC_READ_SEARCH on the host: ENOENT without it).
//! - unlink, rename, mkdir, symlink, open O_CREAT|O_EXCL act on one name in a directory fd
//!   and never follow a final symlink; a node made by create is checked to be the one made.
//!
//! A filesystem is read-only unless created writable (`--volume` without `:ro`).
//!
//! # Dentry cache
//! A directory keeps the nodes it looked up ([`Children`]), so a walk does not open every
//! component again. The host may change the tree behind the sandbox's back (a shared volume,
//! or the host's own `/` under `runsc-rs do`), so a cached child must still be the inode its
//! name leads to, and cached attributes must still be the host's, whenever a system call uses
//! them: a change the host finished before a sandboxed call started is seen by that call.
//! Every operation still acts on the node's own fd, so the cache adds no second resolution of
//! a name. Changes made through the sentry drop the entries and attributes they touch. How
//! many children all trees keep is bounded ([`cache_budget`]); over the bound every cache
//! starts afresh (a generation count, cleared lazily as directories are next used).
//!
//! **Revalidation by host notification** ([`watch`]). The sentry has one inotify instance
//! (made at boot, or by the process that spawned the sandbox). A directory gets a watch,
//! through `{HOST_PROC}/self/fd/N` of its own `O_PATH` fd, before a system call first looks
//! in it (walks outside any call, the boot's to mount points, add none); a directory or
//! regular file also gets one when its attributes are asked for in a second system call.
//! The first use of a watch in a system call reads the queued events once (a nonblocking
//! `read` that usually says EAGAIN) under a lock, and applies them before the lock is
//! released:
//! - a name made, removed or moved in a directory (`IN_CREATE`, `IN_DELETE`,
//!   `IN_MOVED_FROM`, `IN_MOVED_TO`) drops that child and the directory's attributes;
//! - attribute, data or atime changes (`IN_ATTRIB`, `IN_MODIFY`, `IN_CLOSE_WRITE`,
//!   `IN_ACCESS`, `IN_MOVE_SELF`) drop the attributes of the node they are about (a named
//!   event in a directory, the child's);
//! - `IN_DELETE_SELF`, `IN_IGNORED`, `IN_UNMOUNT` drop the node's watch (and a directory's
//!   cache);
//! - `IN_Q_OVERFLOW` (events were lost) drops every cache and every kept attribute.
//!
//! A child of a watched directory that no event named since it was last checked is then used
//! with no host call, and the attributes of a node with its own watch are kept across system
//! calls. A regular file's own watch gets every change of the inode, whichever of its names
//! (hard links included) made it, and the link count changes that its directory's watch is
//! not told of; a symbolic link has no watch of its own (reading it changes its atime without
//! an event), so its attributes serve one call. A lookup or revalidation that overlapped an
//! event of its directory is not trusted beyond its call ([`Children::events`]); attributes
//! are valid while the node's [`watch::Watched::seq`] is what it was before they were fetched.
//!
//! Watching is on unless `RUNSC_RS_HOSTFS_WATCH=0` ([`WATCH_ENV`]). Closing an instance with
//! watches waits for the host's SRCU grace period, so under `runsc-rs do` the last reference
//! is a holder process's, not the sandbox's (see [`WATCH_ENV`]).
//!
//! **Without a watch** (watching off, no inotify instance, the
//! host's watch limit, more watches than the cache budget, a filesystem that does not report
//! every change through inotify: network, FUSE, virtiofs, 9p, procfs-like ones), a cached child
//! is *revalidated* at each use: one `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`, which must
//! find the inode the cached `O_PATH` fd holds (same device and inode number; the fd pins the
//! inode, so its number cannot be reused); anything else drops the entry and looks the name up
//! afresh; its attributes serve the rest of the system call ([`crate::vfs::dcache`]) and no
//! longer.
//!
//! **What the watches do not see** (changes that make no inotify event on the host): writes
//! through a shared mapping of a host file (mtime, size stay as last seen until another
//! event names the file, e.g. the writer's close, `IN_CLOSE_WRITE`), reads through a mapping
//! (atime); mounts made or removed on the host over a cached directory (the cache keeps what
//! was there); a change made directly to the layers under a host overlayfs. Each sandbox
//! takes one of its host user's inotify instances (`fs.inotify.max_user_instances`, 128 by
//! default), and only when at least 16 more are left to the rest of that user at boot; and at
//! most a 64th of the user's watches (`fs.inotify.max_user_watches`) and the cache budget.
//!
//! A bind mount of a single host file is a one-node tree ([`HostNode::new_file`]): the sandbox
//! cannot reopen a file by name (it has no host filesystem and no host `/proc`), so the file
//! arrives as an fd already open for I/O (`O_RDWR` for a writable mount, `O_RDONLY` for a
//! read-only one) and every open of it in the sandbox shares that fd, at the sentry's own
//! offsets (`pread`/`pwrite`); attribute changes are `fchmod`/`fchownat(AT_EMPTY_PATH)`/
//! `futimens`/`ftruncate` on it.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::abi::Errno;
use crate::vfs::dcache;
use crate::vfs::host::HostFile;
use crate::vfs::inode::{now, RenameFlags, TimeSet};
use crate::vfs::{
    Caller, DirEntry, FileOps, FileType, FsStats, HostSpecial, Inode, NewAttrs, NewNode, SetAttr,
    Stat,
};

mod special;
mod watch;
pub use special::HOST_PROC;
pub use watch::{
    adopt as adopt_watch_instance, for_sandbox as watch_instance_for_sandbox,
    read_host_limits as read_watch_limits, start as start_watching, HostInstance,
    DIR_FLAGS as WATCH_DIR_FLAGS, FILE_FLAGS as WATCH_FILE_FLAGS, WATCH_ENV,
};

/// The sentry's inotify fd, for the host seccomp rules (None when watching is off).
pub fn watch_fd() -> Option<i32> {
    watch::fd()
}

fn herr(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// Rejects anything but one plain component (defence in depth; the walk never passes one).
fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::ENOENT);
    }
    Ok(())
}

/// Settings shared by every node of one host tree.
#[derive(Debug)]
struct HostFs {
    writable: bool,
    /// The tree is a volume the operator gave (a bind mount): its host FIFOs and sockets are
    /// the host's ([`special`]). In the root and the host filesystems `runsc-rs do` shows
    /// (the host's `/`), they are not: a sandbox must not reach every host daemon
    /// (`/run/docker.sock`) because it can read the host's files.
    host_objects: bool,
}

/// Children kept by all host trees together (counted since the last generation began).
static CACHED: AtomicUsize = AtomicUsize::new(0);
/// Bumped when [`CACHED`] reaches the budget: every directory's cache of an older generation
/// is dropped when next used.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many children the caches may keep ([`set_cache_budget`]).
static BUDGET: OnceLock<usize> = OnceLock::new();
/// The budget when boot did not set one (unit tests).
const DEFAULT_BUDGET: usize = 256;

/// Sizes the dentry caches from the sentry's own fd limit: each cached child holds a host
/// `O_PATH` fd and, once a regular file was opened for reading, its shared read fd, so they
/// may keep at most a sixteenth of the limit (an eighth in fds), and never more than 4096.
/// Boot calls it before the host seccomp filter goes on (which refuses `prlimit64`).
pub fn set_cache_budget() {
    let _ = BUDGET.set(crate::vfs::dcache::fd_share(4096));
}

fn cache_budget() -> usize {
    BUDGET.get().copied().unwrap_or(DEFAULT_BUDGET)
}

/// Starts a new generation: every directory's cache is dropped when next used.
fn new_generation() {
    CACHED.store(0, Ordering::Relaxed);
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// A cached child and whether its name is known to still lead to it without asking the
/// host: set only while the directory's watch is live and when no event for the directory
/// was applied while the child was looked up or revalidated.
struct Entry {
    node: Arc<HostNode>,
    fresh: bool,
}

/// A directory's looked-up children, by name, and its watch.
#[derive(Default)]
struct Children {
    /// The [`GENERATION`] the entries belong to.
    generation: u64,
    map: HashMap<Vec<u8>, Entry>,
    watch: watch::WatchState,
    /// Named events applied to this directory so far: a lookup that saw another count
    /// before it asked the host may have missed an event about its name.
    events: u64,
}

impl Children {
    /// The entries, emptied first if they are of an older generation.
    fn current(&mut self) -> &mut HashMap<Vec<u8>, Entry> {
        let generation = GENERATION.load(Ordering::Acquire);
        if self.generation != generation {
            self.drop_all();
            self.generation = generation;
        }
        &mut self.map
    }

    fn drop_all(&mut self) {
        self.map.clear();
    }
}

/// When a node's attributes were fetched, which decides how long they may be used.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    /// The node's [`watch::Watched::seq`] before the host was asked.
    seq: u64,
    /// Its [`watch::Watched::aseq`] then (the atime's validity).
    aseq: u64,
    /// The watch overflow count then.
    overflows: u64,
    /// Whether the watch that reports the node's changes was live then.
    anchored: bool,
}

/// Attributes fetched from the host.
#[derive(Debug, Clone, Copy)]
struct Kept {
    stat: Stat,
    /// The system call ([`dcache::current`]) that fetched them: used for the rest of it.
    call: u64,
    stamp: Stamp,
}

/// What identifies a host inode while an fd holds it, and its (unchangeable) file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
    /// `S_IFMT` bits.
    kind: u32,
}

impl Ident {
    fn of(st: &rustix::fs::Stat) -> Ident {
        Ident {
            dev: st.st_dev,
            ino: st.st_ino,
            kind: st.st_mode & libc::S_IFMT,
        }
    }

    fn same_inode(&self, st: &rustix::fs::Stat) -> bool {
        self.dev == st.st_dev && self.ino == st.st_ino
    }
}

/// How a node was reached, which decides how it is opened and changed.
enum Origin {
    /// The root directory of a tree; `fd` is a directory fd (O_PATH is enough).
    TreeRoot,
    /// Found by name in a directory of the tree; `fd` is `O_PATH|O_NOFOLLOW`. The directory
    /// and the name are kept for reopening it for I/O ([`HostNode::reopen`], which checks
    /// the name still leads to `fd`'s inode); nothing else uses the name.
    Child { dir: Arc<OwnedFd>, name: Vec<u8> },
    /// A single regular file mounted on its own; `fd` is open for I/O (`O_RDWR` when the
    /// filesystem is writable, else `O_RDONLY`) and is the only handle there is. A single
    /// host socket mounted on its own is one too, with an `O_PATH` fd (only connected to).
    File,
}

/// A host file, held as an fd (see [`Origin`] for which kind).
pub struct HostNode {
    fs: Arc<HostFs>,
    fd: Arc<OwnedFd>,
    origin: Origin,
    ident: Ident,
    /// The attributes last fetched from the host (see the module doc for how long they are
    /// used).
    attr: Mutex<Option<Kept>>,
    /// The events' view of the node: its attribute sequence, its watch and, for a
    /// directory, its cached children.
    w: Arc<watch::Watched>,
    /// Regular files of a tree only: one fd open for reading, shared by every read-only
    /// open of the node (see the module doc).
    read_fd: OnceLock<Arc<OwnedFd>>,
}

impl std::fmt::Debug for HostNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNode").finish_non_exhaustive()
    }
}

impl Drop for HostNode {
    fn drop(&mut self) {
        let mut c = self.w.children();
        if let watch::WatchState::Live(wd) = c.watch {
            c.watch = watch::WatchState::Off;
            self.w.live.store(false, Ordering::Release);
            watch::release(wd);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Host lookups and stats made by this thread (unit tests count them).
    static HOST_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a host lookup or stat (unit tests only).
fn counted() {
    #[cfg(test)]
    HOST_CALLS.with(|c| c.set(c.get() + 1));
}

fn to_stat(st: &rustix::fs::Stat) -> Stat {
    Stat {
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
        atime_nsec: st.st_atime_nsec as i64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as i64,
        ctime: st.st_ctime,
        ctime_nsec: st.st_ctime_nsec as i64,
        ..Stat::default()
    }
}

impl HostNode {
    /// The root of a host tree: `dir` must be a directory fd (any open mode, O_PATH is
    /// enough) that the operator chose as the root.
    ///
    /// # Errors
    /// ENOTDIR when `dir` is not a directory.
    pub fn new_root(dir: OwnedFd, writable: bool) -> Result<Arc<HostNode>, Errno> {
        HostNode::tree_root(dir, writable, false)
    }

    fn tree_root(dir: OwnedFd, writable: bool, host_objects: bool) -> Result<Arc<HostNode>, Errno> {
        let st = rustix::fs::fstat(&dir).map_err(herr)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        Ok(HostNode::with_ident(
            Arc::new(HostFs {
                writable,
                host_objects,
            }),
            Arc::new(dir),
            Origin::TreeRoot,
            &st,
        ))
    }

    /// A single host file as the root of a mount (a file bind mount): `file` must be a
    /// regular file open for I/O, or the `O_PATH` fd of a host Unix socket (a bind-mounted
    /// `/run/docker.sock`: the sandbox connects to it through that fd, and the node itself is
    /// read-only). A regular file's node is writable only when `writable` is asked for and
    /// `file` is open `O_RDWR` (an fd the host only let be opened read-only makes a
    /// read-only node, logged).
    ///
    /// # Errors
    /// EISDIR for a directory, ENXIO for other non-regular files, EBADF for an `O_PATH` or
    /// write-only fd of a regular file.
    pub fn new_file(file: OwnedFd, writable: bool) -> Result<Arc<HostNode>, Errno> {
        let st = rustix::fs::fstat(&file).map_err(herr)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {}
            libc::S_IFSOCK => {
                return Ok(HostNode::with_ident(
                    Arc::new(HostFs {
                        writable: false,
                        host_objects: true,
                    }),
                    Arc::new(file),
                    Origin::File,
                    &st,
                ))
            }
            libc::S_IFDIR => return Err(Errno::EISDIR),
            _ => return Err(Errno::ENXIO),
        }
        let fl = rustix::fs::fcntl_getfl(&file).map_err(herr)?;
        if fl.contains(OFlags::PATH) {
            return Err(Errno::EBADF);
        }
        let mode = fl & (OFlags::RDONLY | OFlags::WRONLY | OFlags::RDWR);
        let writable = match mode {
            m if m == OFlags::RDWR => writable,
            m if m == OFlags::RDONLY => {
                if writable {
                    log::info!("bind-mounted file open read-only on the host: mounted read-only");
                }
                false
            }
            _ => return Err(Errno::EBADF),
        };
        Ok(HostNode::with_ident(
            Arc::new(HostFs {
                writable,
                host_objects: false,
            }),
            Arc::new(file),
            Origin::File,
            &st,
        ))
    }

    /// The root of a bind mount: a directory tree ([`HostNode::new_root`], whose host FIFOs
    /// and sockets are the host's) or a single file ([`HostNode::new_file`]), whichever `fd`
    /// is.
    ///
    /// # Errors
    /// As those two.
    pub fn new_bind_root(fd: OwnedFd, writable: bool) -> Result<Arc<HostNode>, Errno> {
        let st = rustix::fs::fstat(&fd).map_err(herr)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            HostNode::tree_root(fd, writable, true)
        } else {
            HostNode::new_file(fd, writable)
        }
    }

    /// Whether changes through this node reach the host (false for a read-only filesystem).
    pub fn writable(&self) -> bool {
        self.fs.writable
    }

    /// Opens the host directory `path` (chosen by the operator) as a tree root.
    ///
    /// # Errors
    /// The host's open errors.
    pub fn open_root(path: &std::path::Path, writable: bool) -> Result<Arc<HostNode>, Errno> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(herr)?;
        HostNode::new_root(fd, writable)
    }

    /// A node for `fd`, whose host attributes are `st` (a new node has no watch, so they
    /// serve the current system call only).
    fn with_ident(
        fs: Arc<HostFs>,
        fd: Arc<OwnedFd>,
        origin: Origin,
        st: &rustix::fs::Stat,
    ) -> Arc<HostNode> {
        Arc::new(HostNode {
            fs,
            fd,
            origin,
            ident: Ident::of(st),
            attr: Mutex::new(Some(Kept {
                stat: to_stat(st),
                call: dcache::current(),
                stamp: Stamp {
                    seq: 0,
                    aseq: 0,
                    overflows: 0,
                    anchored: false,
                },
            })),
            w: Arc::default(),
            read_fd: OnceLock::new(),
        })
    }

    fn children(&self) -> std::sync::MutexGuard<'_, Children> {
        self.w.children()
    }

    /// Whether the node's own watch is live.
    fn watched(&self) -> bool {
        self.w.live.load(Ordering::Acquire)
    }

    /// Taken before asking the host for the node's attributes.
    fn stamp(&self) -> Stamp {
        Stamp {
            seq: self.w.seq.load(Ordering::Acquire),
            aseq: self.w.aseq.load(Ordering::Acquire),
            overflows: watch::overflows(),
            anchored: self.watched(),
        }
    }

    fn attr(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        self.attr.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep_attrs(&self, stat: Stat, stamp: Stamp) {
        *self.attr() = Some(Kept {
            stat,
            call: dcache::current(),
            stamp,
        });
    }

    /// Forgets the attributes (the file was changed through the sentry).
    fn forget_attrs(&self) {
        self.w.touch();
        *self.attr() = None;
    }

    /// The attributes fetched earlier, if they still hold: in the same system call, or in
    /// any later one when the node's own watch was live before they were fetched and no
    /// event says they changed since (an access counts only when `atime` is asked for).
    fn kept_attrs(&self, atime: bool) -> Option<Stat> {
        let kept = (*self.attr())?;
        let now = dcache::current();
        if now != dcache::NO_EPOCH && kept.call == now {
            return Some(kept.stat);
        }
        if !kept.stamp.anchored || !watch::sync() {
            return None;
        }
        let valid = self.watched()
            && self.w.seq.load(Ordering::Acquire) == kept.stamp.seq
            && (!atime || self.w.aseq.load(Ordering::Acquire) == kept.stamp.aseq)
            && watch::overflows() == kept.stamp.overflows;
        valid.then_some(kept.stat)
    }

    /// Adds the node's watch (directories and regular files) if it has none yet; true while
    /// it has a live one.
    fn ensure_watch(&self) -> bool {
        if self.watched() {
            return true;
        }
        // Watching off (the default): no lock taken, no state to record.
        if !watch::on() {
            return false;
        }
        let flags = match self.ident.kind {
            libc::S_IFDIR => watch::DIR_FLAGS,
            libc::S_IFREG => watch::FILE_FLAGS,
            _ => return false,
        };
        let mut c = self.children();
        if c.watch != watch::WatchState::Untried {
            return false;
        }
        c.watch = match watch::add(&self.fd, self.ident.dev, &self.w, flags) {
            Some(wd) => {
                self.w.live.store(true, Ordering::Release);
                watch::WatchState::Live(wd)
            }
            None => watch::WatchState::Off,
        };
        self.watched()
    }

    /// The child `name`: the cached node if the host still has that inode under the name,
    /// else a fresh lookup (see the module doc).
    fn child(&self, name: &[u8]) -> Result<Arc<HostNode>, Errno> {
        check_name(name)?;
        if matches!(self.origin, Origin::File) {
            return Err(Errno::ENOTDIR);
        }
        // The watch first, so what the host answers below is covered by its events. Only a
        // system call adds one: a walk outside any (the boot's to mount points, a control
        // request's) keeps the revalidation by host calls unless a call added it before, so a
        // directory only walked through then costs no watch. (Adding one marks every child
        // dentry the host has cached: milliseconds in a large /tmp.)
        let watched = if dcache::current() == dcache::NO_EPOCH {
            self.watched()
        } else {
            self.ensure_watch()
        } && watch::sync();
        let (cached, events) = {
            let mut c = self.children();
            let cached = c.current().get(name).map(|e| (e.node.clone(), e.fresh));
            (cached, c.events)
        };
        if let Some((node, fresh)) = cached {
            if fresh && watched && self.watched() {
                return Ok(node);
            }
            let stamp = node.stamp();
            counted();
            match rustix::fs::statat(self.fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if node.ident.same_inode(&st) => {
                    node.keep_attrs(to_stat(&st), stamp);
                    self.mark_fresh(name, &node, events, watched);
                    return Ok(node);
                }
                _ => self.forget(name),
            }
        }
        let events = self.children().events;
        let node = self.lookup_uncached(name)?;
        self.remember(name, &node, events, watched);
        Ok(node)
    }

    /// Opens `name` in this directory on the host (`O_PATH|O_NOFOLLOW`).
    fn lookup_uncached(&self, name: &[u8]) -> Result<Arc<HostNode>, Errno> {
        counted();
        let fd = rustix::fs::openat(
            self.fd.as_fd(),
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(herr)?;
        let st = rustix::fs::fstat(&fd).map_err(herr)?;
        Ok(HostNode::with_ident(
            self.fs.clone(),
            Arc::new(fd),
            Origin::Child {
                dir: self.fd.clone(),
                name: name.to_vec(),
            },
            &st,
        ))
    }

    /// Whether a child looked up or revalidated while `events` was this directory's event
    /// count, and `watched` said whether its watch was live before the host was asked, may be
    /// trusted without asking the host again.
    fn fresh_since(&self, c: &Children, events: u64, watched: bool) -> bool {
        watched && c.events == events && self.watched()
    }

    /// The cached `node` was just revalidated by name: fresh if no event came meanwhile.
    fn mark_fresh(&self, name: &[u8], node: &Arc<HostNode>, events: u64, watched: bool) {
        let mut c = self.children();
        let fresh = self.fresh_since(&c, events, watched);
        if let Some(e) = c.current().get_mut(name) {
            if Arc::ptr_eq(&e.node, node) {
                e.fresh = fresh;
            }
        }
    }

    /// Caches `node` as the child `name`, within the budget; `events` is the directory's
    /// event count before the host was asked (and `watched` whether its watch was live).
    fn remember(&self, name: &[u8], node: &Arc<HostNode>, events: u64, watched: bool) {
        let mut children = self.children();
        let fresh = self.fresh_since(&children, events, watched);
        let entry = || Entry {
            node: node.clone(),
            fresh,
        };
        let map = children.current();
        if map.insert(name.to_vec(), entry()).is_some() {
            return;
        }
        if CACHED.fetch_add(1, Ordering::Relaxed) >= cache_budget() {
            // Over budget: start a new generation, in which this is the first entry.
            new_generation();
            CACHED.store(1, Ordering::Relaxed);
            children.current().insert(name.to_vec(), entry());
        }
    }

    /// Drops the cached child `name` (it changed, or was changed through the sentry).
    fn forget(&self, name: &[u8]) {
        self.children().map.remove(name);
    }

    fn host_stat(&self) -> Result<rustix::fs::Stat, Errno> {
        counted();
        rustix::fs::fstat(self.fd.as_fd()).map_err(herr)
    }

    /// An fd of the file for I/O with `flags`: a fresh open ([`HostNode::reopen`]), or, for
    /// a single-file mount, its own fd (open for writing exactly when the filesystem is
    /// writable).
    fn io_fd(&self, flags: OFlags) -> Result<Arc<OwnedFd>, Errno> {
        let reads_only = (flags & (OFlags::WRONLY | OFlags::RDWR)).is_empty();
        if matches!(self.origin, Origin::File) {
            if !reads_only {
                self.check_writable()?;
            }
            return Ok(self.fd.clone());
        }
        if reads_only && self.ident.kind == libc::S_IFREG {
            return self.read_fd();
        }
        Ok(Arc::new(self.reopen(flags)?))
    }

    /// The regular file's shared read-only fd (the module doc says why): opened and checked
    /// by the first read-only open, reused by every later one.
    fn read_fd(&self) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(fd) = self.read_fd.get() {
            return Ok(fd.clone());
        }
        let fd = Arc::new(self.reopen(OFlags::RDONLY)?);
        // Two first opens may race: one fd wins, the other is closed with its open file.
        Ok(self.read_fd.get_or_init(|| fd).clone())
    }

    /// Opens the file itself for I/O with `flags` (regular files and directories of a tree
    /// only), checking it is still the file the O_PATH fd refers to.
    fn reopen(&self, flags: OFlags) -> Result<OwnedFd, Errno> {
        let want = self.ident;
        let fd = match (&self.origin, want.kind) {
            (Origin::File, _) => return Err(Errno::ENXIO),
            (_, libc::S_IFDIR) => rustix::fs::openat(
                self.fd.as_fd(),
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ),
            (Origin::Child { dir, name }, libc::S_IFREG) => rustix::fs::openat(
                dir.as_fd(),
                name,
                flags | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            ),
            _ => return Err(Errno::ENXIO),
        }
        .map_err(herr)?;
        let got = rustix::fs::fstat(&fd).map_err(herr)?;
        if !want.same_inode(&got) {
            return Err(Errno::ESTALE);
        }
        Ok(fd)
    }

    fn check_writable(&self) -> Result<(), Errno> {
        if self.fs.writable {
            Ok(())
        } else {
            Err(Errno::EROFS)
        }
    }

    /// The child `name` just made in this directory, checked to be what was made: a guest
    /// may rename another entry over the new name before the lookup, and the caller trusts
    /// the node (an open of a file it created skips the permission check).
    fn created_child(
        &self,
        name: &[u8],
        kind: libc::mode_t,
        made: Option<&rustix::fs::Stat>,
    ) -> Result<Arc<HostNode>, Errno> {
        self.forget(name);
        self.forget_attrs();
        let node = self.child(name)?;
        let same = match made {
            Some(m) => node.ident.same_inode(m),
            None => node.ident.kind == kind,
        };
        if same {
            Ok(node)
        } else {
            Err(Errno::ESTALE)
        }
    }

    /// chmod of exactly this node's inode (see the module doc).
    fn chmod(&self, mode: Mode) -> Result<(), Errno> {
        match platform::fchmod_inode(self.fd.as_fd(), mode.bits()) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => self.chmod_by_reopen(mode),
            r => r.map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }

    /// chmod for hosts without `fchmodat2` (before Linux 6.6): `fchmod` on the bind-mounted
    /// file's own fd, or on a verified reopen of a regular file or directory. Other kinds have
    /// no fd to `fchmod` that the sandbox may open, so they are refused rather than changed
    /// by name.
    fn chmod_by_reopen(&self, mode: Mode) -> Result<(), Errno> {
        if matches!(self.origin, Origin::File) {
            return rustix::fs::fchmod(self.fd.as_fd(), mode).map_err(herr);
        }
        match self.ident.kind {
            libc::S_IFREG | libc::S_IFDIR => {
                let fd = self.reopen(OFlags::RDONLY)?;
                rustix::fs::fchmod(&fd, mode).map_err(herr)
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// truncate of exactly this node's inode: the bind-mounted file's own fd, else a
    /// verified reopen for writing.
    fn truncate(&self, size: u64) -> Result<(), Errno> {
        match self.origin {
            Origin::File => rustix::fs::ftruncate(self.fd.as_fd(), size).map_err(herr)?,
            _ => {
                let fd = self.reopen(OFlags::WRONLY)?;
                rustix::fs::ftruncate(&fd, size).map_err(herr)?
            }
        }
        // Shared mappings of the file see the new size.
        crate::vfs::host::truncated(self.fd.as_fd(), size);
        Ok(())
    }

    fn same_fs(&self, other: &Arc<dyn Inode>) -> Result<Arc<HostNode>, Errno> {
        let o = other
            .clone()
            .as_any()
            .downcast::<HostNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&o.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        Ok(o)
    }
}

impl Inode for HostNode {
    fn stat(&self) -> Result<Stat, Errno> {
        if let Some(st) = self.kept_attrs(true) {
            return Ok(st);
        }
        // A file whose attributes are asked for again in another call is worth a watch.
        let asked_before = (*self.attr()).is_some_and(|k| k.call != dcache::current());
        if asked_before {
            self.ensure_watch();
        }
        let stamp = self.stamp();
        let st = to_stat(&self.host_stat()?);
        self.keep_attrs(st, stamp);
        Ok(st)
    }

    /// Attributes an access left valid serve a walk or an open (reads, the sandbox's own
    /// included, make `IN_ACCESS` events that would otherwise cost an `fstat` per open).
    fn walk_attrs(&self) -> Result<Stat, Errno> {
        match self.kept_attrs(false) {
            Some(st) => Ok(st),
            None => self.stat(),
        }
    }

    fn file_type(&self) -> Result<FileType, Errno> {
        Ok(FileType::from_mode(self.ident.kind))
    }

    fn ident(&self) -> Result<(u64, u64), Errno> {
        Ok((self.ident.dev, self.ident.ino))
    }

    fn bind_host_socket(
        &self,
        name: &[u8],
        ty: i32,
        mode: u32,
    ) -> Result<(Arc<dyn Inode>, OwnedFd), Errno> {
        let (node, sock) = self.bind_socket(name, ty, mode)?;
        Ok((node, sock))
    }

    fn host_special(&self) -> Option<&dyn HostSpecial> {
        let special = matches!(self.ident.kind, libc::S_IFIFO | libc::S_IFSOCK);
        (special && self.fs.host_objects).then_some(self as _)
    }

    fn lookup(&self, _cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.child(name)?)
    }

    fn readdir(&self, _cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        if matches!(self.origin, Origin::File) {
            return Err(Errno::ENOTDIR);
        }
        let fd = self.reopen(OFlags::RDONLY)?;
        let dir = rustix::fs::Dir::new(fd).map_err(herr)?;
        let mut out = Vec::new();
        for e in dir {
            let e = e.map_err(herr)?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match e.file_type() {
                rustix::fs::FileType::Directory => FileType::Directory,
                rustix::fs::FileType::Symlink => FileType::Symlink,
                rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
                rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
                rustix::fs::FileType::Fifo => FileType::Fifo,
                rustix::fs::FileType::Socket => FileType::Socket,
                _ => FileType::Regular,
            };
            out.push(DirEntry {
                name: name.to_vec(),
                ino: e.ino(),
                kind,
            });
        }
        Ok(out)
    }

    fn readlink(&self, _cx: &Caller) -> Result<Vec<u8>, Errno> {
        if self.ident.kind != libc::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        rustix::fs::readlinkat(self.fd.as_fd(), "", Vec::new())
            .map(|c| c.into_bytes())
            .map_err(herr)
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        let fd = self.io_fd(OFlags::RDONLY)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match rustix::io::pread(&*fd, &mut buf, out.len() as u64) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(herr(e)),
            }
        }
    }

    fn open(&self, _cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        if self.ident.kind == libc::S_IFSOCK {
            // As Linux: a socket is connected to, never opened.
            return Err(Errno::ENXIO);
        }
        let acc = flags & libc::O_ACCMODE as u32;
        let host_flags = if acc == libc::O_RDONLY as u32 {
            OFlags::RDONLY
        } else {
            self.check_writable()?;
            if acc == libc::O_WRONLY as u32 {
                OFlags::WRONLY
            } else {
                OFlags::RDWR
            }
        };
        Ok(Arc::new(HostFile::with_kind(
            self.io_fd(host_flags)?,
            self.ident.kind,
        )))
    }

    fn create(
        &self,
        _cx: &Caller,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        self.check_writable()?;
        check_name(name)?;
        if matches!(self.origin, Origin::File) {
            return Err(Errno::ENOTDIR);
        }
        let mode = Mode::from_bits_truncate(attrs.mode & 0o7777);
        let dir = self.fd.as_fd();
        let node = match &node {
            NewNode::Regular => {
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(herr)?;
                let made = rustix::fs::fstat(&fd).map_err(herr)?;
                self.created_child(name, libc::S_IFREG, Some(&made))?
            }
            NewNode::Directory => {
                rustix::fs::mkdirat(dir, name, mode).map_err(herr)?;
                self.created_child(name, libc::S_IFDIR, None)?
            }
            NewNode::Symlink(target) => {
                rustix::fs::symlinkat(target.as_slice(), dir, name).map_err(herr)?;
                self.created_child(name, libc::S_IFLNK, None)?
            }
            NewNode::Fifo | NewNode::Socket | NewNode::Device { .. } => return Err(Errno::EPERM),
        };
        Ok(node)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> Result<(), Errno> {
        self.check_writable()?;
        check_name(name)?;
        let t = self.same_fs(target)?;
        if !matches!(t.origin, Origin::Child { .. }) {
            return Err(Errno::EPERM);
        }
        self.forget_attrs();
        t.forget_attrs();
        // The target's own inode, not whatever its name leads to by now.
        rustix::fs::linkat(t.fd.as_fd(), "", self.fd.as_fd(), name, AtFlags::EMPTY_PATH)
            .map_err(herr)
    }

    fn unlink(&self, _cx: &Caller, name: &[u8], dir: bool) -> Result<(), Errno> {
        self.check_writable()?;
        check_name(name)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        self.forget(name);
        self.forget_attrs();
        rustix::fs::unlinkat(self.fd.as_fd(), name, flags).map_err(herr)
    }

    fn rename(
        &self,
        _cx: &Caller,
        name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        check_name(name)?;
        check_name(new_name)?;
        let nd = self.same_fs(new_dir)?;
        let mut f = rustix::fs::RenameFlags::empty();
        if flags.noreplace {
            f |= rustix::fs::RenameFlags::NOREPLACE;
        }
        if flags.exchange {
            f |= rustix::fs::RenameFlags::EXCHANGE;
        }
        self.forget(name);
        nd.forget(new_name);
        self.forget_attrs();
        nd.forget_attrs();
        rustix::fs::renameat_with(self.fd.as_fd(), name, nd.fd.as_fd(), new_name, f).map_err(herr)
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        self.check_writable()?;
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        };
        let conv = |t: Option<TimeSet>| match t {
            None => omit,
            Some(TimeSet::Now) => {
                let (s, ns) = now();
                Timespec {
                    tv_sec: s,
                    tv_nsec: ns,
                }
            }
            Some(TimeSet::At(s, ns)) => Timespec {
                tv_sec: s,
                tv_nsec: ns,
            },
        };
        let times = (a.atime.is_some() || a.mtime.is_some()).then(|| Timestamps {
            last_access: conv(a.atime),
            last_modification: conv(a.mtime),
        });
        let mode = a.mode.map(Mode::from_bits_truncate);
        let owner = (a.uid.is_some() || a.gid.is_some()).then(|| {
            (
                a.uid.map(rustix::fs::Uid::from_raw),
                a.gid.map(rustix::fs::Gid::from_raw),
            )
        });
        if matches!(self.origin, Origin::TreeRoot) {
            return Err(Errno::EPERM);
        }
        self.forget_attrs();
        // Every change acts on the node's own fd (the module doc says how), never its name.
        let fd = self.fd.as_fd();
        if let Some(size) = a.size {
            self.truncate(size)?;
        }
        if let Some(m) = mode {
            self.chmod(m)?;
        }
        if let Some((uid, gid)) = owner {
            rustix::fs::chownat(fd, "", uid, gid, AtFlags::EMPTY_PATH).map_err(herr)?;
        }
        if let Some(ts) = times {
            rustix::fs::utimensat(fd, "", &ts, AtFlags::EMPTY_PATH).map_err(herr)?;
        }
        self.forget_attrs();
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        let s = rustix::fs::fstatfs(self.fd.as_fd()).map_err(herr)?;
        Ok(FsStats {
            fs_type: s.f_type as i64,
            block_size: s.f_bsize as i64,
            blocks: s.f_blocks as u64,
            blocks_free: s.f_bfree as u64,
            blocks_avail: s.f_bavail as u64,
            files: s.f_files as u64,
            files_free: s.f_ffree as u64,
            name_max: s.f_namelen as i64,
        })
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{MountNamespace, Resolver};

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let base = std::env::temp_dir().join(format!("runsc-rs-hostfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(base.join("secret"), b"host secret").unwrap();
        std::fs::write(root.join("secret"), b"sandbox file").unwrap();
        std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("dotdot")).unwrap();
        std::os::unix::fs::symlink("/../../secret", root.join("abs")).unwrap();

        let node = HostNode::open_root(&root, false).unwrap();
        let ns = MountNamespace::new(node, "hostfs", "test", &Arc::default());
        let r = Resolver::new(Caller::kernel(), ns.root(), &ns);
        let read = |p: &str| {
            r.resolve(ns.root(), p.as_bytes(), true)
                .and_then(|d| d.inode.contents())
        };
        assert_eq!(read("/slash/secret").unwrap(), b"sandbox file");
        assert_eq!(read("/dotdot").unwrap(), b"sandbox file");
        assert_eq!(read("/abs").unwrap(), b"sandbox file");
        assert_eq!(read("/../secret").unwrap(), b"sandbox file");
        // Read-only: no change reaches the host.
        let cx = Caller::kernel();
        let attrs = NewAttrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        assert_eq!(
            ns.root()
                .inode
                .create(&cx, b"x", NewNode::Regular, attrs)
                .err(),
            Some(Errno::EROFS)
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let base =
            std::env::temp_dir().join(format!("runsc-rs-hostfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        base
    }

    fn open_file(path: &std::path::Path, flags: OFlags) -> OwnedFd {
        rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn a_single_file_is_a_mount_root_with_its_own_fd() {
        use std::os::unix::fs::MetadataExt;
        let base = scratch("file");
        let path = base.join("data");
        std::fs::write(&path, b"hello host\n").unwrap();
        let node = HostNode::new_file(open_file(&path, OFlags::RDWR), true).unwrap();
        assert!(node.writable());
        let st = node.stat().unwrap();
        assert_eq!(st.size, 11);
        assert_eq!(FileType::from_mode(st.mode), FileType::Regular);
        assert_eq!(node.contents().unwrap(), b"hello host\n");
        // Not a directory: nothing below it.
        let cx = Caller::kernel();
        assert_eq!(node.lookup(&cx, b"x").err(), Some(Errno::ENOTDIR));
        assert_eq!(node.readdir(&cx).err(), Some(Errno::ENOTDIR));
        // Opens share the donated fd, which is the file's.
        let f = node.open(&cx, libc::O_RDWR as u32).unwrap();
        assert_eq!(f.stat().unwrap().ino, st.ino);
        assert!(f.seekable());

        // Attribute changes reach the host file through the fd.
        node.setattr(&SetAttr {
            size: Some(5),
            mode: Some(0o600),
            uid: Some(1234),
            mtime: Some(TimeSet::At(1_000_000, 0)),
            ..SetAttr::default()
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.uid(), 1234);
        assert_eq!(meta.mtime(), 1_000_000);
        assert_eq!(node.stat().unwrap().size, 5);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_read_only_file_mount_refuses_changes() {
        let base = scratch("rofile");
        let path = base.join("data");
        std::fs::write(&path, b"keep").unwrap();
        let cx = Caller::kernel();
        // Asked writable but open O_RDONLY on the host (the host refused writing): read-only.
        for (fd_flags, asked) in [(OFlags::RDONLY, true), (OFlags::RDWR, false)] {
            let node = HostNode::new_file(open_file(&path, fd_flags), asked).unwrap();
            assert!(!node.writable());
            assert!(node.open(&cx, libc::O_RDONLY as u32).is_ok());
            for acc in [libc::O_WRONLY, libc::O_RDWR] {
                assert_eq!(node.open(&cx, acc as u32).err(), Some(Errno::EROFS));
            }
            let truncate = SetAttr {
                size: Some(0),
                ..SetAttr::default()
            };
            assert_eq!(node.setattr(&truncate), Err(Errno::EROFS));
            assert_eq!(node.contents().unwrap(), b"keep");
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn file_roots_need_a_regular_file_open_for_io() {
        let base = scratch("kinds");
        let path = base.join("data");
        std::fs::write(&path, b"x").unwrap();
        let dir = open_file(&base, OFlags::RDONLY | OFlags::DIRECTORY);
        assert_eq!(HostNode::new_file(dir, false).err(), Some(Errno::EISDIR));
        let o_path = open_file(&path, OFlags::PATH);
        assert_eq!(HostNode::new_file(o_path, false).err(), Some(Errno::EBADF));
        let wronly = open_file(&path, OFlags::WRONLY);
        assert_eq!(HostNode::new_file(wronly, true).err(), Some(Errno::EBADF));
        let null = open_file(std::path::Path::new("/dev/null"), OFlags::RDWR);
        assert_eq!(HostNode::new_file(null, true).err(), Some(Errno::ENXIO));
        // new_bind_root picks the kind.
        let dir = open_file(&base, OFlags::PATH | OFlags::DIRECTORY);
        let tree = HostNode::new_bind_root(dir, false).unwrap();
        assert_eq!(tree.file_type(), Ok(FileType::Directory));
        let file = HostNode::new_bind_root(open_file(&path, OFlags::RDONLY), false).unwrap();
        assert_eq!(file.file_type(), Ok(FileType::Regular));
        let _ = std::fs::remove_dir_all(&base);
    }

    /// The dentry cache: a cached child is reused while the host still has its inode under
    /// the name, and looked up afresh when the host replaced or removed it; attributes are
    /// fetched once per system call.
    #[test]
    fn cached_children_are_revalidated_against_the_host() {
        use crate::vfs::dcache;
        let base = scratch("dcache");
        std::fs::write(base.join("f"), b"one").unwrap();
        let tree = HostNode::open_root(&base, false).unwrap();
        let a = tree.child(b"f").unwrap();
        assert!(
            Arc::ptr_eq(&a, &tree.child(b"f").unwrap()),
            "the cached node"
        );
        std::fs::write(base.join("g"), b"two!").unwrap();
        std::fs::rename(base.join("g"), base.join("f")).unwrap();
        let c = tree.child(b"f").unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "replaced on the host");
        assert_eq!(c.contents().unwrap(), b"two!");
        std::fs::remove_file(base.join("f")).unwrap();
        assert_eq!(tree.child(b"f").err(), Some(Errno::ENOENT));
        // A name swapped for a symlink is the symlink, not the cached file.
        std::fs::write(base.join("s"), b"file").unwrap();
        tree.child(b"s").unwrap();
        std::fs::remove_file(base.join("s")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.join("s")).unwrap();
        assert_eq!(tree.child(b"s").unwrap().file_type(), Ok(FileType::Symlink));

        std::fs::write(base.join("h"), b"x").unwrap();
        dcache::begin_call();
        let h = tree.child(b"h").unwrap();
        assert_eq!(h.stat().unwrap().size, 1);
        std::fs::write(base.join("h"), b"xyz").unwrap();
        assert_eq!(h.stat().unwrap().size, 1, "one call, one answer");
        dcache::begin_call();
        assert_eq!(h.stat().unwrap().size, 3, "the next call asks again");
        dcache::end_call();
        std::fs::write(base.join("h"), b"xyzw").unwrap();
        assert_eq!(h.stat().unwrap().size, 4, "outside a call nothing is kept");

        // More children than the budget: every one still resolves.
        for i in 0..DEFAULT_BUDGET + 10 {
            std::fs::write(base.join(format!("n{i}")), b"").unwrap();
        }
        for i in 0..DEFAULT_BUDGET + 10 {
            assert!(tree.child(format!("n{i}").as_bytes()).is_ok());
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A regular file is reopened by name for reading once; later read-only opens share that
    /// fd, so they read the looked-up inode even after another file took its name, while an
    /// open for writing reopens by name and finds the swap.
    #[test]
    fn read_only_opens_share_one_checked_fd() {
        let base = scratch("readfd");
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f"), b"file").unwrap();
        std::fs::write(root.join("other"), b"other").unwrap();
        let tree = HostNode::open_root(&root, true).unwrap();
        let cx = Caller::kernel();
        let file = tree.lookup(&cx, b"f").unwrap();
        assert_eq!(file.contents().unwrap(), b"file");
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            root.join("f"),
            rustix::fs::CWD,
            root.join("other"),
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .unwrap();
        assert_eq!(file.contents().unwrap(), b"file");
        assert!(file.open(&cx, libc::O_RDONLY as u32).is_ok());
        assert_eq!(
            file.open(&cx, libc::O_WRONLY as u32).err(),
            Some(Errno::ESTALE)
        );
        // In-place changes are seen through the shared fd.
        std::fs::write(root.join("other"), b"changed").unwrap();
        assert_eq!(file.contents().unwrap(), b"changed");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Issue 15: after the lookup, the guest swaps the name for a symlink to a host file
    /// outside the tree; every change still reaches the looked-up inode, never the target.
    #[test]
    fn changes_act_on_the_looked_up_inode_not_its_name() {
        use std::os::unix::fs::MetadataExt;
        let base = scratch("swap");
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(base.join("canary"), b"canary").unwrap();
        std::fs::write(root.join("f"), b"file").unwrap();
        std::fs::write(root.join("other"), b"other").unwrap();
        std::os::unix::fs::symlink("../canary", root.join("s")).unwrap();
        let canary_before = std::fs::metadata(base.join("canary")).unwrap();
        let tree = HostNode::open_root(&root, true).unwrap();
        let cx = Caller::kernel();
        let file = tree.lookup(&cx, b"f").unwrap();
        let link = tree.lookup(&cx, b"s").unwrap();
        let swap = |a: &str, b: &str| {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                root.join(a),
                rustix::fs::CWD,
                root.join(b),
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .unwrap()
        };
        swap("f", "s");
        // Owner first: a chown clears the set-user-ID bit, as on Linux.
        file.setattr(&SetAttr {
            uid: Some(4321),
            mtime: Some(TimeSet::At(7, 0)),
            ..SetAttr::default()
        })
        .unwrap();
        file.setattr(&SetAttr {
            mode: Some(0o4777),
            ..SetAttr::default()
        })
        .unwrap();
        let moved = std::fs::metadata(root.join("s")).unwrap();
        assert_eq!(
            (moved.mode() & 0o7777, moved.uid(), moved.mtime()),
            (0o4777, 4321, 7)
        );
        // A reopen by name finds the symlink now: refused, nothing truncated.
        let truncate = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        assert_eq!(file.setattr(&truncate), Err(Errno::ELOOP));
        // Another regular file under the name: refused as stale, for chmod before Linux 6.6
        // too.
        swap("f", "other");
        assert_eq!(file.setattr(&truncate), Err(Errno::ESTALE));
        let node = file.clone().as_any().downcast::<HostNode>().unwrap();
        assert_eq!(
            node.chmod_by_reopen(Mode::from_bits_truncate(0o600)),
            Err(Errno::ESTALE)
        );
        // A hard link is of the looked-up inode, wherever its name went.
        tree.link(b"l", &file).unwrap();
        assert_eq!(
            std::fs::metadata(root.join("l")).unwrap().ino(),
            moved.ino()
        );
        // chmod of a symlink itself is EOPNOTSUPP, as Linux's fchmodat2 with
        // AT_SYMLINK_NOFOLLOW.
        let chmod = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        assert_eq!(link.setattr(&chmod), Err(Errno::EOPNOTSUPP));
        let canary = std::fs::metadata(base.join("canary")).unwrap();
        assert_eq!(
            (
                canary.mode(),
                canary.uid(),
                canary.mtime(),
                canary.ctime(),
                canary.size()
            ),
            (
                canary_before.mode(),
                canary_before.uid(),
                canary_before.mtime(),
                canary_before.ctime(),
                canary_before.size()
            )
        );
        assert_eq!(std::fs::read(base.join("canary")).unwrap(), b"canary");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Host calls this thread made since `start` (lookups and stats).
    fn host_calls() -> u64 {
        HOST_CALLS.with(std::cell::Cell::get)
    }

    /// One system call: `f` in its own epoch, and the host calls it made.
    fn call<T>(f: impl FnOnce() -> T) -> (T, u64) {
        use crate::vfs::dcache;
        dcache::begin_call();
        let before = host_calls();
        let r = f();
        let made = host_calls() - before;
        dcache::end_call();
        (r, made)
    }

    /// A walk outside any system call (the boot's, to mount points) adds no watch, and what it
    /// cached is revalidated by the first call, which watches the directory; later calls then
    /// trust it without asking the host.
    #[test]
    fn only_system_calls_add_watches() {
        use std::os::unix::fs::MetadataExt;
        watch::make();
        let base = scratch("watch-outside");
        std::fs::create_dir(base.join("d")).unwrap();
        std::fs::write(base.join("d/g"), b"old").unwrap();
        let tree = HostNode::open_root(&base, false).unwrap();
        let d = tree.child(b"d").unwrap();
        let old = d.child(b"g").unwrap();
        assert!(
            !tree.watched() && !d.watched(),
            "a watch added outside a call"
        );
        // Replaced on the host after that walk: the cached entry must not be trusted.
        std::fs::write(base.join("new"), b"new").unwrap();
        std::fs::rename(base.join("new"), base.join("d/g")).unwrap();
        let (g, _) = call(|| d.child(b"g").unwrap());
        if !d.w.live.load(Ordering::Acquire) {
            eprintln!("SKIPPED: no inotify watch here (no instance, or a remote filesystem)");
            return;
        }
        let ino = std::fs::metadata(base.join("d/g")).unwrap().ino();
        assert_eq!(
            g.ident.ino, ino,
            "the replaced file, not the one cached before"
        );
        assert_ne!(old.ident.ino, ino);
        let (again, made) = call(|| d.child(b"g").unwrap());
        assert!(
            Arc::ptr_eq(&again, &g) && made == 0,
            "watched: no host call"
        );
    }

    /// Revalidation by notification: a watched directory answers a later call without a host
    /// call, and every host change made before a call is seen by it, as a native stat sees it.
    #[test]
    fn watched_directories_see_host_changes_without_asking() {
        use std::os::unix::fs::MetadataExt;
        watch::make();
        let base = scratch("watch");
        std::fs::create_dir(base.join("d")).unwrap();
        std::fs::write(base.join("f"), b"one").unwrap();
        std::fs::write(base.join("d/g"), b"g").unwrap();
        let tree = HostNode::open_root(&base, false).unwrap();
        let (f, _) = call(|| tree.child(b"f").unwrap());
        if !tree.w.live.load(Ordering::Acquire) {
            eprintln!("SKIPPED: no inotify watch here (no instance, or a remote filesystem)");
            return;
        }
        let native = |name: &str| std::fs::symlink_metadata(base.join(name)).unwrap();
        let same = |st: &Stat, name: &str| {
            let m = native(name);
            assert_eq!(
                (st.ino, st.mode, st.size, st.nlink, st.mtime, st.mtime_nsec),
                (
                    m.ino(),
                    m.mode(),
                    m.size() as i64,
                    m.nlink(),
                    m.mtime(),
                    m.mtime_nsec()
                ),
                "{name}"
            );
        };
        let stat_of = |name: &[u8]| call(|| tree.child(name).and_then(|n| n.stat()));

        let (st, made) = stat_of(b"f");
        same(&st.unwrap(), "f");
        assert_eq!(made, 1, "asked again: the file's own watch, then one fstat");
        let (st, made) = stat_of(b"f");
        same(&st.unwrap(), "f");
        assert_eq!(made, 0, "a cached, unchanged file costs no host call");
        let (st, made) = call(|| tree.stat().unwrap());
        same(&st, ".");
        let (_, again) = call(|| tree.stat().unwrap());
        assert!(made <= 1 && again == 0, "the root's attributes are kept");

        std::fs::set_permissions(
            base.join("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        same(&stat_of(b"f").0.unwrap(), "f");
        std::fs::OpenOptions::new()
            .append(true)
            .open(base.join("f"))
            .and_then(|mut h| std::io::Write::write_all(&mut h, b" two"))
            .unwrap();
        same(&stat_of(b"f").0.unwrap(), "f");
        assert_eq!(f.contents().unwrap(), b"one two");

        // A name renamed over, removed, made again, as a directory, as a symlink.
        std::fs::write(base.join("n"), b"new").unwrap();
        std::fs::rename(base.join("n"), base.join("f")).unwrap();
        let (g, _) = call(|| tree.child(b"f").unwrap());
        assert!(!Arc::ptr_eq(&f, &g));
        assert_eq!(g.contents().unwrap(), b"new");
        same(&call(|| tree.stat().unwrap()).0, ".");
        std::fs::remove_file(base.join("f")).unwrap();
        assert_eq!(stat_of(b"f").0.err(), Some(Errno::ENOENT));
        std::fs::create_dir(base.join("f")).unwrap();
        assert_eq!(
            call(|| tree.child(b"f").unwrap().file_type()).0,
            Ok(FileType::Directory)
        );
        std::fs::remove_dir(base.join("f")).unwrap();
        std::os::unix::fs::symlink("d", base.join("f")).unwrap();
        assert_eq!(
            call(|| tree.child(b"f").unwrap().file_type()).0,
            Ok(FileType::Symlink)
        );
        same(&call(|| tree.stat().unwrap()).0, ".");

        // A directory renamed away and another put in its place.
        let (d, _) = call(|| tree.child(b"d").unwrap());
        call(|| d.child(b"g").unwrap());
        std::fs::rename(base.join("d"), base.join("d.old")).unwrap();
        std::fs::create_dir(base.join("d")).unwrap();
        assert_eq!(
            call(|| tree.child(b"d").unwrap().child(b"g").err()).0,
            Some(Errno::ENOENT)
        );

        // A file with a second link in another directory, changed through that name: its
        // own watch (added the second call its attributes are asked for) reports it.
        std::fs::write(base.join("h"), b"h").unwrap();
        stat_of(b"h").0.unwrap();
        stat_of(b"h").0.unwrap();
        let (st, made) = stat_of(b"h");
        same(&st.unwrap(), "h");
        assert_eq!(made, 0, "kept once the file has its own watch");
        std::fs::hard_link(base.join("h"), base.join("d.old/h2")).unwrap();
        same(&stat_of(b"h").0.unwrap(), "h");
        std::fs::write(base.join("d.old/h2"), b"longer").unwrap();
        same(&stat_of(b"h").0.unwrap(), "h");

        // Lost events drop everything.
        let (_, made) = stat_of(b"h");
        assert!(made <= 1);
        let overflow = [
            (-1i32).to_ne_bytes(),
            libc::IN_Q_OVERFLOW.to_ne_bytes(),
            0u32.to_ne_bytes(),
            0u32.to_ne_bytes(),
        ]
        .concat();
        {
            let watcher = watch::watcher_for_tests();
            watch::apply_all_for_tests(watcher, &overflow);
        }
        let (_, made) = call(|| tree.stat().unwrap());
        assert_eq!(made, 1, "the root's kept attributes are gone");
        let _ = std::fs::remove_dir_all(&base);
    }
}
