//! Dentries, mounts, the mount namespace and a task's filesystem context (root, cwd, umask).
//!
//! A [`Dentry`] is a walked path: an inode, the dentry it was reached from and the absolute
//! path that names it in the sandbox. Mounts are keyed by the absolute path of their
//! mountpoint; stepping onto a mountpoint replaces the inode with the mount's root, and `..`
//! follows the parent chain, so mount crossings need no separate stack.
//!
//! A detached mount (made by fsmount(2) or cloned by open_tree(2), not yet attached with
//! move_mount(2)) lives in the detached table every copy of a namespace shares, at a path
//! no application can name: a NUL byte and the mount's ID (`\0N`), with the mounts later
//! made on it below that (`\0N/sub`). Walks from its root cross its submounts as they cross
//! attached ones; attaching moves the whole tree into a namespace's own table.
//!
//! Namespaces copied from one another form a [`Family`]: a mount made on (or unmounted
//! from) a shared mount reaches its peers and slaves in every namespace of the family, and
//! the slaves that are shared pass it on to their own peers and slaves, as Linux's
//! propagation trees (Documentation/filesystems/sharedsubtree.rst).
//!
//! # Lock order
//! `FsContext::state` → `Family::members` → `MountNamespace::mounts` (the changing
//! namespace's own first, then the others') → `MountNamespace::detached`. Only a holder of
//! `Family::members` locks more than one namespace's `mounts`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockWriteGuard, Weak};

use super::inode::{Caller, Inode};
use super::inotify::FsNotify;
use super::walk::{DentryCache, Resolver};
use crate::abi::Errno;
use crate::auth::UserNs;

/// A mounted filesystem.
pub struct Mount {
    pub id: u64,
    pub root: Arc<dyn Inode>,
    /// Absolute path of the mountpoint in the sandbox.
    pub path: Vec<u8>,
    /// Filesystem type, as `/proc/mounts` shows it.
    pub fs_type: &'static str,
    /// Mount source, as `/proc/mounts` shows it.
    pub source: String,
    /// Mounted read-only: every change is EROFS.
    pub readonly: bool,
    /// The filesystem itself is read-only (mountinfo's super options): a new mount's
    /// read-only flag, or a remount's without MS_BIND; a bind mount or mount_setattr
    /// changes only the mount's.
    pub sb_readonly: bool,
    /// The kernel's inotify watches, which changes made through this mount reach.
    pub notify: Arc<FsNotify>,
    /// The other per-mount flags, as `MS_*` bits ([`MOUNT_FLAGS`]): `noexec` refuses execve
    /// and executable mappings of its files; all of them show in `statfs` and
    /// `/proc/[pid]/mountinfo`.
    pub flags: u64,
    /// The mount's root within its filesystem (`/` unless a bind mount of a subdirectory),
    /// the fourth field of `/proc/[pid]/mountinfo`.
    pub root_path: Vec<u8>,
    /// Options of the filesystem itself, shown after the mount's (tmpfs `mode=`), each
    /// with a leading comma.
    pub fs_options: String,
    /// The ID of the mount this one is mounted on (0 for a namespace's root).
    pub parent: u64,
    /// The peer group a shared mount is in (0: not shared), `shared:N` in mountinfo. A
    /// mount made on a shared one is shared in a group of its own, and copied onto the
    /// same place in the parent's peers (and slaves) of this namespace; a bind mount of a
    /// shared mount joins its group. Peers in other namespaces (after unshare) keep the
    /// number but see no propagation.
    pub group: u64,
    /// The peer group a slave mount receives mounts from (0: none), `master:N`.
    pub master: u64,
    /// MNT_LOCKED: copied into a mount namespace of a less privileged user namespace, it
    /// may not be unmounted alone (that would reveal what it covers), nor left out of a
    /// bind of its parent (only a recursive bind takes it along).
    pub locked: bool,
    /// The [`LOCKABLE_FLAGS`] (and `MS_RDONLY`) that were set when the mount was copied into
    /// such a namespace: a remount may not clear them, and a bind of it inherits them.
    pub locked_flags: u64,
    /// Set when a lazy umount(2) takes this mount away with the tree below it: the locked
    /// mounts of that tree that were mounted on it. They stay connected to it (as Linux's
    /// `disconnect_mount` keeps locked children of an unmounted parent), so a walk from a
    /// descriptor still open on this mount crosses onto them rather than revealing what
    /// they covered. Shared by every version of this mount ([`MountNamespace::set_flags`])
    /// and by the namespaces its owner copied, where the mount may still be mounted: a walk
    /// consults it only where the mount is no longer in the walker's namespace.
    pub connected: Arc<OnceLock<Vec<Arc<Mount>>>>,
}

/// The most mounts a namespace holds (Linux's default `fs.mount-max`): a mount beyond it
/// is ENOSPC.
pub const MOUNT_MAX: usize = 100_000;

/// The flags a copy into a less privileged namespace locks (with read-only).
pub const LOCKABLE_FLAGS: u64 = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// The flags of `m` a copy into a less privileged namespace locks.
fn lockable_flags(m: &Mount) -> u64 {
    let ro = if m.readonly { libc::MS_RDONLY } else { 0 };
    m.flags & LOCKABLE_FLAGS | ro
}

/// Propagation changes (mount(2)'s MS_SHARED, MS_PRIVATE, MS_SLAVE, MS_UNBINDABLE, and
/// mount_setattr's propagation field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Shared,
    Private,
    Slave,
    /// Private here: binds of it are not refused.
    Unbindable,
}

/// How a mount is made, besides what it mounts and where.
#[derive(Debug, Clone, Default)]
pub struct MountOpts {
    pub readonly: bool,
    /// [`Mount::sb_readonly`]; None: as `readonly`.
    pub sb_readonly: Option<bool>,
    /// [`MOUNT_FLAGS`] bits (others are dropped).
    pub flags: u64,
    /// [`Mount::root_path`]; empty means `/`.
    pub root_path: Vec<u8>,
    /// [`Mount::fs_options`].
    pub fs_options: String,
    /// The peer group to join (a bind mount of a shared mount); 0: none.
    pub group: u64,
    /// The peer group to be a slave of (a bind mount of a slave); 0: none.
    pub master: u64,
    /// [`Mount::locked_flags`] (a bind mount of a mount with locked flags).
    pub locked_flags: u64,
}

/// The per-mount `MS_*` flags a [`Mount`] keeps besides read-only.
pub const MOUNT_FLAGS: u64 = libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME;

/// The [`MOUNT_FLAGS`] of `flags` a mount keeps: `strictatime` overrides `noatime` and
/// `relatime`, as on Linux.
fn mount_flags(flags: u64) -> u64 {
    let f = flags & MOUNT_FLAGS;
    if f & libc::MS_STRICTATIME != 0 {
        f & !(libc::MS_NOATIME | libc::MS_RELATIME)
    } else {
        f
    }
}

impl Mount {
    /// In a peer group.
    pub fn shared(&self) -> bool {
        self.group != 0
    }

    /// mountinfo's optional fields: `shared:N`, `master:N`, each with a leading space.
    pub fn optional_fields(&self) -> String {
        let mut s = String::new();
        if self.group != 0 {
            s.push_str(&format!(" shared:{}", self.group));
        }
        if self.master != 0 {
            s.push_str(&format!(" master:{}", self.master));
        }
        s
    }

    /// Mounted `noexec`.
    pub fn noexec(&self) -> bool {
        self.flags & libc::MS_NOEXEC != 0
    }

    /// The mount options `/proc/[pid]/mounts` shows: `rw` or `ro`, then the flags in
    /// Linux's order; the access-time mode defaults to `relatime`.
    pub fn options(&self) -> String {
        let mut o = String::from(if self.readonly { "ro" } else { "rw" });
        for (bit, name) in [
            (libc::MS_NOSUID, ",nosuid"),
            (libc::MS_NODEV, ",nodev"),
            (libc::MS_NOEXEC, ",noexec"),
            (libc::MS_NOATIME, ",noatime"),
            (libc::MS_NODIRATIME, ",nodiratime"),
        ] {
            if self.flags & bit != 0 {
                o.push_str(name);
            }
        }
        if self.flags & (libc::MS_NOATIME | libc::MS_STRICTATIME) == 0 {
            o.push_str(",relatime");
        }
        o
    }

    /// The filesystem's options as mountinfo's last field shows them.
    pub fn super_options(&self) -> String {
        format!(
            "{}{}",
            if self.sb_readonly { "ro" } else { "rw" },
            self.fs_options
        )
    }
}

impl Mount {
    /// This mount at `path` on the mount `parent` (pivot_root, a propagation change); a copy
    /// that is another mount is [`Mount::copied`].
    fn relocated(&self, path: Vec<u8>, parent: u64) -> Mount {
        Mount {
            id: self.id,
            root: self.root.clone(),
            path,
            fs_type: self.fs_type,
            source: self.source.clone(),
            readonly: self.readonly,
            sb_readonly: self.sb_readonly,
            notify: self.notify.clone(),
            flags: self.flags,
            root_path: self.root_path.clone(),
            fs_options: self.fs_options.clone(),
            parent,
            group: self.group,
            master: self.master,
            locked: self.locked,
            locked_flags: self.locked_flags,
            connected: self.connected.clone(),
        }
    }

    /// Another mount made from this one: as [`Mount::relocated`], with ID `id` and a
    /// [`Mount::connected`] of its own.
    fn copied(&self, path: Vec<u8>, parent: u64, id: u64) -> Mount {
        Mount {
            id,
            connected: Arc::default(),
            ..self.relocated(path, parent)
        }
    }

    /// The mount at `path` that stayed connected to this one when a lazy umount took both
    /// away (see [`Mount::connected`]); None while this mount is mounted.
    pub fn connected_at(&self, path: &[u8]) -> Option<Arc<Mount>> {
        self.connected
            .get()?
            .iter()
            .rev()
            .find(|c| c.path == path)
            .cloned()
    }

    /// Whether a remount to `readonly` and `flags` would clear a locked flag.
    pub fn clears_locked_flags(&self, readonly: bool, flags: u64) -> bool {
        let mut wanted = flags & LOCKABLE_FLAGS;
        if readonly {
            wanted |= libc::MS_RDONLY;
        }
        self.locked_flags & !wanted != 0
    }

    /// The mount this one is mounted on, in namespace `ns`.
    pub fn parent_in(&self, ns: &MountNamespace) -> Option<Arc<Mount>> {
        ns.mounts().into_iter().find(|m| m.id == self.parent)
    }
}

/// `path` with its prefix `from` (a directory, or `path` itself) replaced by `to`; None when
/// `path` is not at or below `from`.
pub fn rebase(path: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let rest = if from == b"/" {
        path.strip_prefix(b"/")?
    } else {
        let r = path.strip_prefix(from)?;
        if r.is_empty() {
            r
        } else {
            r.strip_prefix(b"/")?
        }
    };
    let mut p = to.to_vec();
    if !rest.is_empty() {
        if p != b"/" {
            p.push(b'/');
        }
        p.extend_from_slice(rest);
    }
    Some(p)
}

/// Mounts by mountpoint, a stack per path (last is visible).
type MountTable = BTreeMap<Vec<u8>, Vec<Arc<Mount>>>;

/// Whether `path` is in a detached tree (`\0N...`).
pub fn is_detached_path(path: &[u8]) -> bool {
    path.first() == Some(&0)
}

/// The mountpoint path of the detached tree whose root mount has ID `id`.
fn detached_root_path(id: u64) -> Vec<u8> {
    let mut p = vec![0];
    p.extend_from_slice(id.to_string().as_bytes());
    p
}

/// The mount a walk to `path` ends in: the top of the deepest stack at or above it.
fn visible_mount(mounts: &MountTable, path: &[u8]) -> Option<Arc<Mount>> {
    let mut p = path.to_vec();
    loop {
        if let Some(m) = mounts.get(&p).and_then(|v| v.last()) {
            return Some(m.clone());
        }
        if p == b"/" {
            return None;
        }
        // A detached tree's root path has no slash: nothing is above it.
        let cut = p.iter().rposition(|&c| c == b'/')?;
        p.truncate(cut.max(1));
    }
}

/// Keeps a detached tree mounted while the descriptor returned for it is open: dropping the
/// last one unmounts whatever is still detached there (a tree attached since has left the
/// detached table and is not touched).
pub struct DetachedTree {
    table: std::sync::Weak<RwLock<MountTable>>,
    path: Vec<u8>,
}

impl Drop for DetachedTree {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            let mut t = table.write().unwrap();
            let p = &self.path;
            t.retain(|k, _| !(k == p || (k.starts_with(p) && k.get(p.len()) == Some(&b'/'))));
        }
    }
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("path", &String::from_utf8_lossy(&self.path))
            .field("fs_type", &self.fs_type)
            .finish_non_exhaustive()
    }
}

/// A walked path.
pub struct Dentry {
    pub inode: Arc<dyn Inode>,
    /// None for the namespace root.
    pub parent: Option<Arc<Dentry>>,
    /// The last component (empty for the root).
    pub name: Vec<u8>,
    /// Absolute path in the sandbox.
    pub path: Vec<u8>,
    pub mount: Arc<Mount>,
}

impl std::fmt::Debug for Dentry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dentry")
            .field("path", &String::from_utf8_lossy(&self.path))
            .finish_non_exhaustive()
    }
}

impl Dentry {
    /// The path of `name` under this dentry.
    pub fn child_path(&self, name: &[u8]) -> Vec<u8> {
        // One allocation of the final size: this runs for every new dentry.
        let mut p = Vec::with_capacity(self.path.len() + 1 + name.len());
        self.push_child_path(&mut p, name);
        p
    }

    /// Appends the path of `name` under this dentry to the empty `p`.
    fn push_child_path(&self, p: &mut Vec<u8>, name: &[u8]) {
        p.extend_from_slice(&self.path);
        if p.as_slice() != b"/" {
            p.push(b'/');
        }
        p.extend_from_slice(name);
    }

    /// Runs `f` on the path of `name` under this dentry, built in a buffer the thread
    /// reuses (a walk asks the mount table about every component; a hit builds no path).
    pub fn with_child_path<R>(&self, name: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|s| {
            // A nested use (none today) gets a buffer of its own rather than a panic.
            let Ok(mut p) = s.try_borrow_mut() else {
                return f(&self.child_path(name));
            };
            p.clear();
            self.push_child_path(&mut p, name);
            f(&p)
        })
    }
}

/// The numbers `/proc/[pid]/ns/mnt` shows, one per namespace.
static NEXT_NS_INODE: AtomicU64 = AtomicU64::new(0xF000_0000);

/// A mount namespace: the mounts tasks see. The sandbox starts with one; `unshare(CLONE_NEWNS)`
/// copies it, after which mounting and unmounting in one copy leaves the other alone (no
/// propagation between them).
pub struct MountNamespace {
    /// The user namespace that owns it.
    owner: Arc<UserNs>,
    /// Mounts by mountpoint; a later mount on the same path covers the earlier ones (last is
    /// visible) until it is unmounted.
    mounts: RwLock<MountTable>,
    /// Detached trees (paths `\0N...`), shared by every copy of a namespace: a tree's fd
    /// may be used from any of them.
    detached: Arc<RwLock<MountTable>>,
    /// Mount IDs, shared by every copy of a namespace so that IDs stay unique among them.
    next_id: Arc<AtomicU64>,
    root: Arc<Dentry>,
    /// The kernel's inotify watches, given to every mount made here.
    notify: Arc<FsNotify>,
    inode: u64,
    /// Counts changes of the attached mounts (mount, unmount, remount, move, pivot_root):
    /// an open `/proc/[pid]/mounts` or `mountinfo` polls POLLPRI|POLLERR once it moved.
    event: AtomicU64,
    /// The namespaces propagation reaches from this one.
    family: Arc<Family>,
    /// The dentries walks in this namespace built (a mount table of its own means paths
    /// of its own).
    dentries: DentryCache,
}

/// The namespaces copied from one boot namespace (unshare(CLONE_NEWNS)): peer groups and
/// masters are numbered alike in all of them, and propagation crosses between them. Its
/// lock is Linux's namespace_sem for changes that propagate.
#[derive(Default)]
struct Family {
    members: Mutex<Vec<Weak<MountNamespace>>>,
}

impl Family {
    /// Adds `ns`, forgetting the namespaces that are gone.
    fn join(&self, ns: Weak<MountNamespace>) {
        let mut members = self.members.lock().unwrap();
        members.retain(|w| w.strong_count() > 0);
        members.push(ns);
    }
}

/// One namespace's mount table, write-locked for a change that may propagate.
struct Table<'a> {
    ns: &'a MountNamespace,
    mounts: &'a mut MountTable,
}

/// The mounts of some [`Table`]s by peer group and by master, to walk propagation without
/// scanning every mount for every step.
#[derive(Default)]
struct Links {
    peers: HashMap<u64, Vec<(usize, Arc<Mount>)>>,
    slaves: HashMap<u64, Vec<(usize, Arc<Mount>)>>,
}

impl Links {
    fn new(tables: &[Table]) -> Links {
        let mut l = Links::default();
        for (ti, t) in tables.iter().enumerate() {
            for m in t.mounts.values().flatten() {
                if m.group != 0 {
                    l.peers.entry(m.group).or_default().push((ti, m.clone()));
                }
                if m.master != 0 {
                    l.slaves.entry(m.master).or_default().push((ti, m.clone()));
                }
            }
        }
        l
    }

    /// Every mount that receives what is mounted at `at` on the shared mount `under` (in
    /// table `table`): its peers and slaves, and in turn the peers and slaves of those slaves that
    /// are shared, in every table. Only a mount that shows that place receives (see
    /// [`shows`]). Mount IDs are unique within a table only (a namespace's copy keeps them).
    fn receivers(
        &self,
        tables: &[Table],
        table: usize,
        under: &Arc<Mount>,
        at: &[u8],
    ) -> Vec<Receiver> {
        let mut out: Vec<Receiver> = Vec::new();
        let mut seen = HashSet::from([(table, under.id)]);
        // The peer groups entered through one of their mounts as a slave: the others are
        // its peers, reached from it.
        let mut entered = HashSet::new();
        let mut todo = VecDeque::from([(under.clone(), at.to_vec(), None)]);
        while let Some((src, src_at, from)) = todo.pop_front() {
            if src.group == 0 {
                continue;
            }
            let peers = self.peers.get(&src.group).into_iter().flatten();
            let slaves = self.slaves.get(&src.group).into_iter().flatten();
            let all = peers.map(|x| (x, true)).chain(slaves.map(|x| (x, false)));
            for ((ti, x), peer) in all {
                let via_group = !peer && x.group != 0;
                if seen.contains(&(*ti, x.id)) || via_group && entered.contains(&x.group) {
                    continue;
                }
                let Some(place) = MountNamespace::corresponding(&src_at, &src, x) else {
                    continue;
                };
                if !shows(tables[*ti].mounts, x, &place) {
                    continue;
                }
                seen.insert((*ti, x.id));
                if via_group {
                    entered.insert(x.group);
                    todo.push_back((x.clone(), place.clone(), Some(out.len())));
                }
                out.push(Receiver {
                    table: *ti,
                    target: x.clone(),
                    at: place,
                    from,
                    peer,
                });
            }
        }
        out
    }
}

/// A mount that receives a copy of a mount by propagation.
struct Receiver {
    table: usize,
    target: Arc<Mount>,
    /// Where the copy goes.
    at: Vec<u8>,
    /// The receiver whose copy this one's is made from (None: the mount itself).
    from: Option<usize>,
    /// A peer of the mount it receives from, or else its slave.
    peer: bool,
}

/// Whether a mount made on `x` at `at` by propagation can be seen there: `x` is the mount
/// seen there, or is in the stack at `at`, or the stack at `at` stands on it (Linux tucks
/// a propagated mount beneath what is already mounted there). Not when a mount elsewhere
/// covers that place.
fn shows(mounts: &MountTable, x: &Mount, at: &[u8]) -> bool {
    x.path == at
        || mounts
            .get(at)
            .and_then(|s| s.first())
            .is_some_and(|b| b.parent == x.id)
        || visible_mount(mounts, at).is_some_and(|v| v.id == x.id)
}

/// Puts the copies `cs` (made by propagation at `at`) into the stack there: each right
/// above its parent when that is in the stack, under the stack when that stands on its
/// parent (the bottom mount moves onto the copy), else on top.
fn insert_copies(mounts: &mut MountTable, at: &[u8], cs: Vec<Arc<Mount>>) {
    let old = mounts.remove(at).unwrap_or_default();
    let mut on: HashMap<u64, Arc<Mount>> = cs.into_iter().map(|c| (c.parent, c)).collect();
    let mut stack = Vec::with_capacity(old.len() + on.len());
    // A copy on the mount the whole stack is on goes under it.
    if let Some(c) = old.first().and_then(|b| on.remove(&b.parent)) {
        stack.push(c);
    }
    let mut last_copy: HashMap<u64, u64> = HashMap::new();
    for c in &stack {
        last_copy.insert(c.parent, c.id);
    }
    for y in old {
        let y = match last_copy.get(&y.parent) {
            Some(&c) => Arc::new(y.relocated(y.path.clone(), c)),
            None => y,
        };
        let id = y.id;
        stack.push(y);
        if let Some(c) = on.remove(&id) {
            last_copy.insert(id, c.id);
            stack.push(c);
        }
    }
    // Copies on the mount seen there (nothing stacked at `at` yet).
    let mut rest: Vec<Arc<Mount>> = on.into_values().collect();
    rest.sort_by_key(|c| c.id);
    stack.extend(rest);
    mounts.insert(at.to_vec(), stack);
}

/// Hands out peer group numbers no mount of a family (or a detached one) uses, smallest
/// first, as Linux reuses the numbers of groups that are gone.
struct Groups {
    used: HashSet<u64>,
    next: u64,
}

impl Groups {
    fn new(tables: &[Table], detached: &RwLock<MountTable>) -> Groups {
        let mut used: HashSet<u64> = tables
            .iter()
            .flat_map(|t| t.mounts.values().flatten())
            .flat_map(|m| [m.group, m.master])
            .collect();
        if let Ok(d) = detached.try_read() {
            used.extend(d.values().flatten().flat_map(|m| [m.group, m.master]));
        }
        Groups { used, next: 1 }
    }

    fn take(&mut self) -> u64 {
        while self.used.contains(&self.next) {
            self.next += 1;
        }
        self.used.insert(self.next);
        self.next
    }
}

impl std::fmt::Debug for MountNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountNamespace").finish_non_exhaustive()
    }
}

impl MountNamespace {
    /// A namespace whose root filesystem is `root`, of the kernel whose inotify watches are
    /// `notify`.
    pub fn new(
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        source: &str,
        notify: &Arc<FsNotify>,
    ) -> Arc<MountNamespace> {
        let mount = Arc::new(Mount {
            id: 1,
            root: root.clone(),
            path: b"/".to_vec(),
            fs_type,
            source: source.to_string(),
            readonly: false,
            sb_readonly: false,
            notify: notify.clone(),
            flags: 0,
            root_path: b"/".to_vec(),
            fs_options: String::new(),
            parent: 0,
            group: 0,
            master: 0,
            locked: false,
            locked_flags: 0,
            connected: Arc::default(),
        });
        let dentry = Arc::new(Dentry {
            inode: root,
            parent: None,
            name: Vec::new(),
            path: b"/".to_vec(),
            mount: mount.clone(),
        });
        let mut mounts = BTreeMap::new();
        mounts.insert(b"/".to_vec(), vec![mount]);
        let family = Arc::new(Family::default());
        let ns = Arc::new(MountNamespace {
            owner: UserNs::initial(),
            mounts: RwLock::new(mounts),
            detached: Arc::default(),
            next_id: Arc::new(AtomicU64::new(2)),
            root: dentry,
            notify: notify.clone(),
            inode: NEXT_NS_INODE.fetch_add(1, Ordering::Relaxed),
            event: AtomicU64::new(0),
            family,
            dentries: DentryCache::default(),
        });
        ns.family.join(Arc::downgrade(&ns));
        ns
    }

    /// The user namespace that owns it (mounting takes CAP_SYS_ADMIN there).
    pub fn owner(&self) -> &Arc<UserNs> {
        &self.owner
    }

    /// The number of changes of the attached mounts so far.
    pub fn event(&self) -> u64 {
        self.event.load(Ordering::Acquire)
    }

    /// Records a change of the mounts at `path` (none for a detached tree).
    fn touch(&self, path: &[u8]) {
        if !is_detached_path(path) {
            self.event.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The kernel's inotify watches.
    pub fn notify(&self) -> &Arc<FsNotify> {
        &self.notify
    }

    /// The table holding `path`: the detached one for `\0N...` paths.
    fn table(&self, path: &[u8]) -> &RwLock<MountTable> {
        if is_detached_path(path) {
            &self.detached
        } else {
            &self.mounts
        }
    }

    /// A new namespace holding the same mounts (unshare(CLONE_NEWNS)), owned by `owner`.
    /// Its shared mounts are peers of this one's (propagation crosses between the two).
    /// When that is not this namespace's owner (a new user namespace), the copies are
    /// locked as Linux's: each is [`Mount::locked`] with its flags locked, and shared
    /// mounts become slaves of their peer groups.
    pub fn copy(&self, owner: &Arc<UserNs>) -> Arc<MountNamespace> {
        let mut mounts = self.mounts.read().unwrap().clone();
        if !Arc::ptr_eq(owner, &self.owner) {
            for m in mounts.values_mut().flatten() {
                let mut c = m.copied(m.path.clone(), m.parent, m.id);
                c.locked = true;
                c.locked_flags = lockable_flags(m);
                if m.group != 0 {
                    c.master = m.group;
                    c.group = 0;
                }
                *m = Arc::new(c);
            }
        }
        let ns = Arc::new(MountNamespace {
            owner: owner.clone(),
            mounts: RwLock::new(mounts),
            detached: self.detached.clone(),
            next_id: self.next_id.clone(),
            root: self.root.clone(),
            notify: self.notify.clone(),
            inode: NEXT_NS_INODE.fetch_add(1, Ordering::Relaxed),
            event: AtomicU64::new(0),
            family: self.family.clone(),
            dentries: DentryCache::default(),
        });
        self.family.join(Arc::downgrade(&ns));
        ns
    }

    /// The namespace's inode number (`mnt:[N]` in `/proc/[pid]/ns`).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The root dentry.
    pub fn root(&self) -> Arc<Dentry> {
        self.root.clone()
    }

    /// The dentries walks in this namespace built.
    pub fn dentries(&self) -> &DentryCache {
        &self.dentries
    }

    /// Mounts `root` at the absolute, normalised `path` (covering an earlier mount there).
    pub fn mount(
        &self,
        path: &[u8],
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        source: &str,
        readonly: bool,
    ) -> Arc<Mount> {
        let opts = MountOpts {
            readonly,
            ..MountOpts::default()
        };
        self.mount_with(path, root, fs_type, source, opts)
    }

    /// [`MountNamespace::mount`] with all of its options. On a shared mount the new one is
    /// shared, and copied onto the same place in the parent's peers and slaves, in every
    /// namespace of the family (see [`Links::receivers`]).
    pub fn mount_with(
        &self,
        path: &[u8],
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        source: &str,
        opts: MountOpts,
    ) -> Arc<Mount> {
        self.with_family(path, |tables| {
            let plan = Self::plan(tables, path);
            self.place(tables, path, root, fs_type, source, opts, &[], plan)
        })
    }

    /// mount(2): [`MountNamespace::mount_with`], and copies of the mounts `subs` (a recursive
    /// bind's: each with where it goes, below `path`) on the new mount and on every copy
    /// propagation makes of it. ENOSPC when a namespace would hold more than [`MOUNT_MAX`].
    #[allow(clippy::too_many_arguments)]
    pub fn mount_tree(
        &self,
        path: &[u8],
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        source: &str,
        opts: MountOpts,
        subs: &[(Vec<u8>, Arc<Mount>)],
    ) -> Result<Arc<Mount>, Errno> {
        self.with_family(path, |tables| {
            let plan = Self::plan(tables, path);
            for (ti, t) in tables.iter().enumerate() {
                let copies = plan.iter().filter(|r| r.table == ti).count() + usize::from(ti == 0);
                let now: usize = t.mounts.values().map(Vec::len).sum();
                if now + copies * (1 + subs.len()) > MOUNT_MAX {
                    return Err(Errno::ENOSPC);
                }
            }
            Ok(self.place(tables, path, root, fs_type, source, opts, subs, plan))
        })
    }

    /// Runs `f` on the table holding `path` (first) and, for an attached path, every other
    /// namespace's of the family, all write-locked under the family's lock.
    fn with_family<R>(&self, path: &[u8], f: impl FnOnce(&mut [Table]) -> R) -> R {
        if is_detached_path(path) {
            let mut own = self.detached.write().unwrap();
            return f(&mut [Table {
                ns: self,
                mounts: &mut own,
            }]);
        }
        let members = self.family.members.lock().unwrap();
        let others: Vec<Arc<MountNamespace>> = members
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|n| !std::ptr::eq(Arc::as_ptr(n), self))
            .collect();
        let mut own = self.mounts.write().unwrap();
        let mut guards: Vec<RwLockWriteGuard<MountTable>> =
            others.iter().map(|n| n.mounts.write().unwrap()).collect();
        let mut tables = vec![Table {
            ns: self,
            mounts: &mut own,
        }];
        tables.extend(
            others
                .iter()
                .zip(guards.iter_mut())
                .map(|(n, g)| Table { ns: n, mounts: g }),
        );
        let r = f(&mut tables);
        drop(tables);
        drop(guards);
        drop(own);
        drop(members);
        r
    }

    /// The mounts that receive copies of a mount made at `path` in table 0.
    fn plan(tables: &[Table], path: &[u8]) -> Vec<Receiver> {
        match visible_mount(tables[0].mounts, path) {
            Some(under) if under.group != 0 => {
                Links::new(tables).receivers(tables, 0, &under, path)
            }
            _ => Vec::new(),
        }
    }

    /// Makes the mount (on what is seen at `path` in table 0), its copies on the receivers
    /// of `plan`, and on each of those the copies of `subs`.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &self,
        tables: &mut [Table],
        path: &[u8],
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        source: &str,
        opts: MountOpts,
        subs: &[(Vec<u8>, Arc<Mount>)],
        plan: Vec<Receiver>,
    ) -> Arc<Mount> {
        let root_path = if opts.root_path.is_empty() {
            b"/".to_vec()
        } else {
            opts.root_path
        };
        let mut groups = Groups::new(tables, &self.detached);
        let under = visible_mount(tables[0].mounts, path);
        let parent = under.as_ref().map_or(0, |p| p.id);
        let group = if opts.group != 0 {
            opts.group
        } else if under.as_ref().is_some_and(|p| p.group != 0) {
            groups.take()
        } else {
            0
        };
        let m = Arc::new(Mount {
            id: self.new_id(),
            root,
            path: path.to_vec(),
            fs_type,
            source: source.to_string(),
            notify: self.notify.clone(),
            readonly: opts.readonly,
            sb_readonly: opts.sb_readonly.unwrap_or(opts.readonly),
            flags: mount_flags(opts.flags),
            root_path,
            fs_options: opts.fs_options,
            parent,
            group,
            master: opts.master,
            locked: false,
            locked_flags: opts.locked_flags,
            connected: Arc::default(),
        });
        tables[0]
            .mounts
            .entry(path.to_vec())
            .or_default()
            .push(m.clone());
        // The copies, each made from the copy (or mount) its receiver receives from.
        let mut copies: Vec<(usize, Arc<Mount>)> = Vec::with_capacity(plan.len());
        for r in &plan {
            let from = r.from.map_or(&m, |i| &copies[i].1);
            let mut c = from.copied(r.at.clone(), r.target.id, self.new_id());
            if !r.peer {
                c.master = from.group;
                c.group = if r.target.group != 0 {
                    groups.take()
                } else {
                    0
                };
            }
            if !Arc::ptr_eq(&tables[r.table].ns.owner, &self.owner) {
                c.locked_flags = lockable_flags(&c);
            }
            copies.push((r.table, Arc::new(c)));
        }
        let mut by_place: HashMap<(usize, Vec<u8>), Vec<Arc<Mount>>> = HashMap::new();
        for (ti, c) in &copies {
            by_place
                .entry((*ti, c.path.clone()))
                .or_default()
                .push(c.clone());
        }
        for ((ti, at), cs) in by_place {
            insert_copies(tables[ti].mounts, &at, cs);
            tables[ti].ns.touch(&at);
        }
        // A recursive bind's submounts: on the new mount, then on each copy of it, made
        // from the copies on the tree its receiver received from. Attached on a shared
        // mount, they are all shared.
        let tree_shared = under.is_some_and(|p| p.group != 0);
        let mut trees: Vec<Vec<Option<Arc<Mount>>>> = Vec::with_capacity(1 + copies.len());
        for (i, (ti, top)) in std::iter::once((0, m.clone()))
            .chain(copies.iter().cloned())
            .enumerate()
        {
            let less_privileged = !Arc::ptr_eq(&tables[ti].ns.owner, &self.owner);
            let step = i.checked_sub(1).map(|k| &plan[k]);
            let mut tree = Vec::with_capacity(subs.len());
            for (k, (at, s)) in subs.iter().enumerate() {
                // The receiver and the copy this one is made from (none: the first tree).
                let from = match step {
                    None => None,
                    Some(r) => match &trees[r.from.map_or(0, |j| j + 1)][k] {
                        Some(src) => Some((r, src.clone())),
                        None => {
                            tree.push(None);
                            continue;
                        }
                    },
                };
                let Some(at) = rebase(at, &m.path, &top.path) else {
                    tree.push(None);
                    continue;
                };
                let parent = visible_mount(tables[ti].mounts, &at).map_or(0, |p| p.id);
                // A submount keeps its lock (Linux's clone_mnt keeps MNT_LOCKED; only the
                // top of a bind loses it), so a locked mount stays covered in the copy.
                let mut c = s.copied(at.clone(), parent, self.new_id());
                match from {
                    None if tree_shared && c.group == 0 => c.group = groups.take(),
                    None => {}
                    Some((r, src)) => {
                        (c.group, c.master) = if r.peer {
                            (src.group, src.master)
                        } else if top.group != 0 {
                            (groups.take(), src.group)
                        } else {
                            (0, src.group)
                        };
                    }
                }
                if less_privileged {
                    // Propagated from a more privileged namespace: unmounted only with the
                    // tree it came in, flags as they came.
                    c.locked = true;
                    c.locked_flags = lockable_flags(&c);
                }
                let c = Arc::new(c);
                tables[ti].mounts.entry(at).or_default().push(c.clone());
                tree.push(Some(c));
            }
            trees.push(tree);
        }
        self.touch(path);
        m
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Where `path` (below the mountpoint of `from`) is in the mount `to` of the same
    /// filesystem; None when `to` does not show that part of it.
    fn corresponding(path: &[u8], from: &Mount, to: &Mount) -> Option<Vec<u8>> {
        let in_fs = rebase(path, &from.path, &from.root_path)?;
        rebase(&in_fs, &to.root_path, &to.path)
    }

    /// umount(2) of `m` and `below` (every mount on it): they go, and with them what
    /// propagation copied of each onto the peers and slaves of its parent, in every
    /// namespace of the family, where nothing else is mounted on the copy.
    pub fn unmount_tree(&self, m: &Arc<Mount>, below: &[Arc<Mount>]) {
        if m.path == b"/" {
            return;
        }
        // Only a lazy umount takes a tree (a plain one of a mount with submounts is EBUSY):
        // the locked mounts in it stay connected to the mount they were on.
        let tree: HashMap<u64, &Arc<Mount>> = below
            .iter()
            .chain(std::iter::once(m))
            .map(|x| (x.id, x))
            .collect();
        let mut kept: HashMap<u64, Vec<Arc<Mount>>> = HashMap::new();
        for x in below.iter().filter(|x| x.locked) {
            if tree.contains_key(&x.parent) {
                kept.entry(x.parent).or_default().push(x.clone());
            }
        }
        for (parent, children) in kept {
            // A mount is unmounted once: the cell is empty.
            let _ = tree[&parent].connected.set(children);
        }
        self.with_family(&m.path, |tables| {
            // (table, ID): IDs are unique within a table only.
            let mut gone: HashSet<(usize, u64)> = below.iter().map(|x| (0, x.id)).collect();
            gone.insert((0, m.id));
            let links = Links::new(tables);
            let mut by_id: HashMap<(usize, u64), Arc<Mount>> = HashMap::new();
            let mut children: HashMap<(usize, u64), Vec<u64>> = HashMap::new();
            for (ti, t) in tables.iter().enumerate() {
                for x in t.mounts.values().flatten() {
                    by_id.insert((ti, x.id), x.clone());
                    children.entry((ti, x.parent)).or_default().push(x.id);
                }
            }
            // Whether every mount of a group and its slaves goes anyway (a whole stack of
            // peers being unmounted): then there is nothing to look for.
            let mut all_gone: HashMap<u64, bool> = HashMap::new();
            // Each mount that goes takes its copies on its parent's receivers, where nothing
            // that stays is mounted on them; those take theirs in turn.
            let mut todo: Vec<(usize, Arc<Mount>)> = below
                .iter()
                .cloned()
                .chain(std::iter::once(m.clone()))
                .map(|x| (0, x))
                .collect();
            while let Some((ti, x)) = todo.pop() {
                let Some(parent) = by_id.get(&(ti, x.parent)).filter(|p| p.group != 0) else {
                    continue;
                };
                let done = *all_gone.entry(parent.group).or_insert_with(|| {
                    links
                        .peers
                        .get(&parent.group)
                        .into_iter()
                        .chain(links.slaves.get(&parent.group))
                        .flatten()
                        .all(|(ti, p)| gone.contains(&(*ti, p.id)))
                });
                if done {
                    continue;
                }
                for r in links.receivers(tables, ti, parent, &x.path) {
                    let Some(c) = tables[r.table].mounts.get(&r.at).and_then(|stack| {
                        stack.iter().find(|c| {
                            c.parent == r.target.id
                                && std::ptr::addr_eq(Arc::as_ptr(&c.root), Arc::as_ptr(&x.root))
                        })
                    }) else {
                        continue;
                    };
                    let bare = children
                        .get(&(r.table, c.id))
                        .is_none_or(|ch| ch.iter().all(|id| gone.contains(&(r.table, *id))));
                    if bare && gone.insert((r.table, c.id)) {
                        todo.push((r.table, c.clone()));
                    }
                }
            }
            for (ti, t) in tables.iter_mut().enumerate() {
                let mut changed = false;
                for stack in t.mounts.values_mut() {
                    let before = stack.len();
                    stack.retain(|x| !gone.contains(&(ti, x.id)));
                    changed |= stack.len() != before;
                }
                if changed {
                    t.mounts.retain(|_, v| !v.is_empty());
                    t.ns.event.fetch_add(1, Ordering::AcqRel);
                }
            }
        });
    }

    /// When mounts are stacked on `d` (it is the directory they cover or the root of one of
    /// them), the topmost: what umount(2) of that path reaches, as Linux's final component
    /// follows mounts (a cwd that mounts were stacked on afterwards).
    pub fn top_mount_over(&self, d: &Dentry) -> Option<Arc<Mount>> {
        let mounts = self.table(&d.path).read().unwrap();
        let stack = mounts.get(&d.path)?;
        let covers = stack.first().is_some_and(|m| m.parent == d.mount.id);
        let is_root = stack
            .iter()
            .any(|m| std::ptr::addr_eq(Arc::as_ptr(&m.root), Arc::as_ptr(&d.inode)));
        (covers || is_root).then(|| stack.last().cloned()).flatten()
    }

    /// The mounts mounted on `m`, and on those, ..., in mount order.
    pub fn submounts(&self, m: &Mount) -> Vec<Arc<Mount>> {
        let all: Vec<_> = self
            .table(&m.path)
            .read()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect();
        let mut children: HashMap<u64, Vec<Arc<Mount>>> = HashMap::new();
        for x in all {
            if x.id != m.id {
                children.entry(x.parent).or_default().push(x);
            }
        }
        // Down the parent links from `m` (pivot_root can reparent, so IDs are not enough).
        let mut out = Vec::new();
        let mut seen = HashSet::from([m.id]);
        let mut todo = vec![m.id];
        while let Some(id) = todo.pop() {
            for c in children.remove(&id).unwrap_or_default() {
                if seen.insert(c.id) {
                    todo.push(c.id);
                    out.push(c);
                }
            }
        }
        out.sort_by_key(|x| x.id);
        out
    }

    /// Changes the propagation of `m` (and with `recursive` of every mount on it). When the
    /// last mount of a peer group leaves it, the group's slaves become slaves of that mount's
    /// master (none if it had none), as Linux's.
    pub fn set_propagation(&self, m: &Mount, kind: Propagation, recursive: bool) {
        let mut ids = vec![m.id];
        if recursive {
            ids.extend(self.submounts(m).iter().map(|x| x.id));
        }
        self.with_family(&m.path, |tables| {
            let mut groups = Groups::new(tables, &self.detached);
            Self::set_propagation_of(tables, &mut groups, &ids, kind);
        });
    }

    /// [`Self::set_propagation`] of the mounts `ids` of `tables[0]`; a peer group's other
    /// members and slaves may be in any namespace of the family.
    fn set_propagation_of(
        tables: &mut [Table],
        groups: &mut Groups,
        ids: &[u64],
        kind: Propagation,
    ) {
        for &id in ids {
            let Some(x) = tables[0]
                .mounts
                .values()
                .flatten()
                .find(|x| x.id == id)
                .cloned()
            else {
                continue;
            };
            // Whether another mount, in any namespace of the family, is in x's group.
            let has_peers = x.group != 0
                && tables.iter().enumerate().any(|(ti, t)| {
                    t.mounts
                        .values()
                        .flatten()
                        .any(|p| (ti != 0 || p.id != x.id) && p.group == x.group)
                });
            let (group, master) = match kind {
                Propagation::Shared if x.group != 0 => continue,
                Propagation::Shared => (groups.take(), x.master),
                Propagation::Private | Propagation::Unbindable => (0, 0),
                Propagation::Slave => (0, if has_peers { x.group } else { x.master }),
            };
            let last_of_group = x.group != 0 && group != x.group && !has_peers;
            for (ti, t) in tables.iter_mut().enumerate() {
                for stack in t.mounts.values_mut() {
                    for slot in stack.iter_mut() {
                        if ti == 0 && slot.id == id {
                            let mut nx = x.relocated(x.path.clone(), x.parent);
                            nx.group = group;
                            nx.master = master;
                            *slot = Arc::new(nx);
                        } else if last_of_group && slot.master == x.group {
                            // The group is gone: its slaves, in whichever namespace, receive
                            // from its master instead.
                            let mut ny = slot.relocated(slot.path.clone(), slot.parent);
                            ny.master = x.master;
                            *slot = Arc::new(ny);
                        }
                    }
                }
            }
        }
    }

    /// Moves `m` and every mount on it so that `m` is mounted at `to` (MS_MOVE, move_mount),
    /// on top of what is there; either may be in a detached tree.
    pub fn move_mount(&self, m: &Mount, to: &[u8]) {
        let tree: Vec<u64> = std::iter::once(m.id)
            .chain(self.submounts(m).iter().map(|x| x.id))
            .collect();
        let mut attached = self.mounts.write().unwrap();
        let mut detached = self.detached.write().unwrap();
        let mut moving = Vec::new();
        {
            let src = if is_detached_path(&m.path) {
                &mut *detached
            } else {
                &mut *attached
            };
            for stack in src.values_mut() {
                stack.retain(|x| {
                    let go = tree.contains(&x.id);
                    if go {
                        moving.push(x.clone());
                    }
                    !go
                });
            }
            src.retain(|_, v| !v.is_empty());
        }
        let dst = if is_detached_path(to) {
            &mut *detached
        } else {
            &mut *attached
        };
        let parent = visible_mount(dst, to).map_or(0, |p| p.id);
        moving.sort_by_key(|x| x.id);
        for x in moving {
            let path = rebase(&x.path, &m.path, to).unwrap_or_else(|| x.path.clone());
            let nx = Arc::new(x.relocated(path, if x.id == m.id { parent } else { x.parent }));
            dst.entry(nx.path.clone()).or_default().push(nx);
        }
        self.touch(&m.path);
        self.touch(to);
    }

    /// A new detached mount of `root` (fsmount(2)), and what keeps it mounted.
    pub fn mount_detached(
        &self,
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        source: &str,
        opts: MountOpts,
    ) -> (Arc<Mount>, Arc<DetachedTree>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = detached_root_path(id);
        let m = Arc::new(Mount {
            id,
            root,
            path: path.clone(),
            fs_type,
            source: source.to_string(),
            readonly: opts.readonly,
            sb_readonly: opts.sb_readonly.unwrap_or(opts.readonly),
            notify: self.notify.clone(),
            flags: mount_flags(opts.flags),
            root_path: if opts.root_path.is_empty() {
                b"/".to_vec()
            } else {
                opts.root_path
            },
            fs_options: opts.fs_options,
            parent: 0,
            group: 0,
            master: 0,
            locked: false,
            locked_flags: opts.locked_flags,
            connected: Arc::default(),
        });
        self.detached
            .write()
            .unwrap()
            .insert(path.clone(), vec![m.clone()]);
        (m, self.hold(path))
    }

    fn hold(&self, path: Vec<u8>) -> Arc<DetachedTree> {
        Arc::new(DetachedTree {
            table: Arc::downgrade(&self.detached),
            path,
        })
    }

    /// open_tree(2)'s OPEN_TREE_CLONE: a detached copy of the mount `m` rooted at `root`
    /// (a directory of it at `at`, whose place in the filesystem is `root_path`), with
    /// `recursive` copies of the mounts below `at` too. Unshared, as Linux's clones.
    pub fn clone_tree(
        &self,
        m: &Mount,
        root: Arc<dyn Inode>,
        at: &[u8],
        root_path: Vec<u8>,
        recursive: bool,
    ) -> (Arc<Mount>, Arc<DetachedTree>) {
        let below: Vec<Arc<Mount>> = if recursive {
            self.submounts(m)
                .into_iter()
                .filter(|x| x.path != at && rebase(&x.path, at, b"/").is_some())
                .collect()
        } else {
            Vec::new()
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = detached_root_path(id);
        let mut top = m.copied(path.clone(), 0, id);
        top.root = root;
        top.root_path = root_path;
        top.group = 0;
        top.master = 0;
        let top = Arc::new(top);
        let mut ids = vec![(m.id, id)];
        let mut copies = vec![top.clone()];
        for x in below {
            let Some(&(_, parent)) = ids.iter().find(|(old, _)| *old == x.parent) else {
                // Mounted on a mount outside the copied part.
                continue;
            };
            let nid = self.next_id.fetch_add(1, Ordering::Relaxed);
            let p = rebase(&x.path, at, &path).unwrap_or_else(|| x.path.clone());
            let mut c = x.copied(p, parent, nid);
            c.group = 0;
            c.master = 0;
            ids.push((x.id, nid));
            copies.push(Arc::new(c));
        }
        let mut table = self.detached.write().unwrap();
        for c in copies {
            table.entry(c.path.clone()).or_default().push(c);
        }
        (top, self.hold(path))
    }

    /// The current copy of the mount with ID `id`, attached in this namespace or detached;
    /// None once unmounted.
    pub fn find(&self, id: u64) -> Option<Arc<Mount>> {
        let attached = self.mounts.read().unwrap();
        let detached = self.detached.read().unwrap();
        attached
            .values()
            .chain(detached.values())
            .flatten()
            .find(|m| m.id == id)
            .cloned()
    }

    /// pivot_root(2)'s move: `new_root` (mounted below `old_root`'s mountpoint) takes
    /// `old_root`'s place, and `old_root` goes to `put_old` (a path at or below `new_root`'s
    /// mountpoint, on the mount `put_old_mount`), on top of whatever is there. Every mount of
    /// either tree moves with it; a lock of `old_root` passes to `new_root`. Returns the moved
    /// `new_root` and `old_root`.
    pub fn pivot(
        &self,
        old_root: &Mount,
        new_root: &Mount,
        put_old: &[u8],
        put_old_mount: u64,
    ) -> (Arc<Mount>, Arc<Mount>) {
        let a = old_root.path.clone();
        let b = new_root.path.clone();
        let old_dest = rebase(put_old, &b, &a).unwrap_or_else(|| a.clone());
        let mut mounts = self.mounts.write().unwrap();
        let all: Vec<Arc<Mount>> = mounts.values().flatten().cloned().collect();
        let in_tree = |root: &Mount, m: &Mount| {
            let mut cur = m.parent;
            while cur != 0 {
                if cur == root.id {
                    return true;
                }
                cur = all.iter().find(|x| x.id == cur).map_or(0, |x| x.parent);
            }
            false
        };
        let mut moved = BTreeMap::new();
        for m in &all {
            let (path, parent) = if m.id == old_root.id {
                (old_dest.clone(), put_old_mount)
            } else if m.id == new_root.id {
                (a.clone(), old_root.parent)
            } else if in_tree(new_root, m) {
                (
                    rebase(&m.path, &b, &a).unwrap_or_else(|| m.path.clone()),
                    m.parent,
                )
            } else if in_tree(old_root, m) {
                (
                    rebase(&m.path, &a, &old_dest).unwrap_or_else(|| m.path.clone()),
                    m.parent,
                )
            } else {
                continue;
            };
            let mut c = m.relocated(path, parent);
            // The old root's lock passes to the new root, which takes its place.
            if m.id == old_root.id {
                c.locked = false;
            } else if m.id == new_root.id {
                c.locked |= old_root.locked;
            }
            moved.insert(m.id, Arc::new(c));
        }
        let old = std::mem::take(&mut *mounts);
        for m in old.into_values().flatten() {
            if m.id == old_root.id {
                continue;
            }
            let m = moved.get(&m.id).cloned().unwrap_or(m);
            mounts.entry(m.path.clone()).or_default().push(m);
        }
        // The old root goes on top of what is at put_old.
        let top = moved[&old_root.id].clone();
        mounts
            .entry(top.path.clone())
            .or_default()
            .push(top.clone());
        self.touch(b"/");
        (moved[&new_root.id].clone(), top)
    }

    /// The visible mount whose mountpoint is exactly `path`.
    pub fn mount_at(&self, path: &[u8]) -> Option<Arc<Mount>> {
        if path == b"/" {
            return None;
        }
        self.table(path)
            .read()
            .unwrap()
            .get(path)
            .and_then(|v| v.last())
            .cloned()
    }

    /// Every mount, covered ones included, in mount order (parents before children).
    pub fn mounts(&self) -> Vec<Arc<Mount>> {
        let mut v: Vec<_> = self
            .mounts
            .read()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect();
        v.sort_by_key(|m| m.id);
        v
    }

    /// Every attached mount in table order: by mountpoint, each stack from the bottom (what
    /// a checkpoint saves, [`MountNamespace::load`] takes back).
    pub fn saved_mounts(&self) -> Vec<Arc<Mount>> {
        self.mounts
            .read()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// Replaces every attached mount by `mounts` (a restore's: IDs, parents, peer groups
    /// and masters as they were saved), each put on the stack at its path in the order
    /// given; no propagation. IDs handed out later continue above theirs.
    pub fn load(&self, mounts: Vec<Mount>) {
        let top = mounts.iter().map(|m| m.id).max().unwrap_or(0);
        let mut table = MountTable::new();
        for m in mounts {
            table.entry(m.path.clone()).or_default().push(Arc::new(m));
        }
        self.next_id.fetch_max(top + 1, Ordering::Relaxed);
        *self.mounts.write().unwrap() = table;
        self.touch(b"/");
    }

    /// A namespace of this one's family (propagation crosses between them) owned by
    /// `owner`, holding `mounts` ([`MountNamespace::load`]).
    pub fn loaded_copy(&self, owner: &Arc<UserNs>, mounts: Vec<Mount>) -> Arc<MountNamespace> {
        let ns = self.copy(owner);
        ns.load(mounts);
        ns
    }

    /// Replaces `m` by a copy with `readonly` and `flags` (a remount), and the filesystem's
    /// options `fs_options` and read-only state `sb_readonly` when given; walks from now on
    /// see the change.
    pub fn set_flags(
        &self,
        m: &Mount,
        readonly: bool,
        flags: u64,
        fs_options: Option<String>,
        sb_readonly: Option<bool>,
    ) {
        let mut mounts = self.table(&m.path).write().unwrap();
        if let Some(slot) = mounts
            .get_mut(&m.path)
            .and_then(|v| v.iter_mut().find(|x| x.id == m.id))
        {
            *slot = Arc::new(Mount {
                id: m.id,
                root: m.root.clone(),
                path: m.path.clone(),
                fs_type: m.fs_type,
                source: m.source.clone(),
                readonly,
                sb_readonly: sb_readonly.unwrap_or(m.sb_readonly),
                notify: m.notify.clone(),
                flags: mount_flags(flags),
                root_path: m.root_path.clone(),
                fs_options: fs_options.unwrap_or_else(|| m.fs_options.clone()),
                parent: m.parent,
                group: m.group,
                master: m.master,
                locked: m.locked,
                locked_flags: m.locked_flags,
                connected: m.connected.clone(),
            });
        }
        self.touch(&m.path);
    }
}

#[derive(Debug, Clone)]
struct FsState {
    root: Arc<Dentry>,
    cwd: Arc<Dentry>,
    umask: u32,
}

/// A task's view of the filesystem (shared between threads and with CLONE_FS).
#[derive(Debug)]
pub struct FsContext {
    pub ns: Arc<MountNamespace>,
    state: Mutex<FsState>,
}

impl FsContext {
    /// Root and cwd at the namespace root.
    pub fn new(ns: Arc<MountNamespace>, umask: u32) -> Arc<FsContext> {
        let root = ns.root();
        Arc::new(FsContext {
            ns,
            state: Mutex::new(FsState {
                root: root.clone(),
                cwd: root,
                umask,
            }),
        })
    }

    /// A copy for a child that does not share it (fork without CLONE_FS).
    pub fn fork(&self) -> Arc<FsContext> {
        Arc::new(FsContext {
            ns: self.ns.clone(),
            state: Mutex::new(self.state.lock().unwrap().clone()),
        })
    }

    /// A context of its own in namespace `ns`: the same root, cwd and umask
    /// (unshare(CLONE_NEWNS)), or with `at_root` both at the namespace's root (setns).
    pub fn with_namespace(&self, ns: Arc<MountNamespace>, at_root: bool) -> Arc<FsContext> {
        let mut state = self.state.lock().unwrap().clone();
        if at_root {
            state.root = ns.root();
            state.cwd = ns.root();
        }
        Arc::new(FsContext {
            ns,
            state: Mutex::new(state),
        })
    }

    pub fn root(&self) -> Arc<Dentry> {
        self.state.lock().unwrap().root.clone()
    }

    pub fn cwd(&self) -> Arc<Dentry> {
        self.state.lock().unwrap().cwd.clone()
    }

    pub fn set_cwd(&self, d: Arc<Dentry>) {
        self.state.lock().unwrap().cwd = d;
    }

    pub fn set_root(&self, d: Arc<Dentry>) {
        self.state.lock().unwrap().root = d;
    }

    pub fn umask(&self) -> u32 {
        self.state.lock().unwrap().umask
    }

    /// Sets the umask; returns the old one.
    pub fn swap_umask(&self, mask: u32) -> u32 {
        std::mem::replace(&mut self.state.lock().unwrap().umask, mask & 0o777)
    }
}

impl FsContext {
    /// Resolves `path` from the cwd, following symlinks.
    ///
    /// # Errors
    /// The walk's errors.
    pub fn resolve(&self, cx: &Caller, path: &[u8]) -> Result<Arc<Dentry>, Errno> {
        Resolver::new(cx.clone(), self.root(), &self.ns).resolve(self.cwd(), path, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tmpfs::TmpFs;
    use crate::vfs::{NewAttrs, NewNode};

    /// A tmpfs root with a directory `name`.
    fn tmpfs_with(mf: &Arc<crate::memory::MemoryFile>, name: &[u8]) -> Arc<dyn Inode> {
        let root: Arc<dyn Inode> = TmpFs::new_root(mf, 0o755);
        let attrs = NewAttrs {
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        root.create(&Caller::kernel(), name, NewNode::Directory, attrs)
            .unwrap();
        root
    }

    /// What mountinfo shows of each mount but its root: ID, parent, place, groups.
    fn shape(ns: &MountNamespace) -> Vec<(u64, u64, Vec<u8>, u64, u64)> {
        ns.saved_mounts()
            .iter()
            .map(|m| (m.id, m.parent, m.path.clone(), m.group, m.master))
            .collect()
    }

    /// A saved tree loaded into a fresh namespace and a copy of it has the same IDs,
    /// parents and peer groups, propagation crosses between the two again, and new IDs
    /// continue above the loaded ones.
    #[test]
    fn loaded_namespaces_keep_ids_and_groups_and_propagate() {
        let mf = Arc::new(crate::memory::MemoryFile::new().unwrap());
        let ns = MountNamespace::new(tmpfs_with(&mf, b"mnt"), "tmpfs", "none", &Arc::default());
        ns.mount(b"/mnt", tmpfs_with(&mf, b"sub"), "tmpfs", "none", false);
        let mnt = ns.mount_at(b"/mnt").unwrap();
        ns.set_propagation(&mnt, Propagation::Shared, false);
        let copy = ns.copy(ns.owner());
        copy.mount(b"/mnt/sub", tmpfs_with(&mf, b"x"), "tmpfs", "none", false);
        assert!(ns.mount_at(b"/mnt/sub").is_some(), "propagated before");
        let saved = |n: &MountNamespace| -> Vec<Mount> {
            n.saved_mounts()
                .iter()
                .map(|m| m.relocated(m.path.clone(), m.parent))
                .collect()
        };

        let fresh = MountNamespace::new(tmpfs_with(&mf, b"mnt"), "tmpfs", "none", &Arc::default());
        fresh.load(saved(&ns));
        let other = fresh.loaded_copy(fresh.owner(), saved(&copy));
        assert_eq!(shape(&fresh), shape(&ns));
        assert_eq!(shape(&other), shape(&copy));
        let top = ns.mounts().iter().map(|m| m.id).max().unwrap();
        other.mount(b"/mnt/late", tmpfs_with(&mf, b"y"), "tmpfs", "none", false);
        let late = fresh
            .mount_at(b"/mnt/late")
            .expect("propagated after the load");
        assert!(late.id > top, "{} after {top}", late.id);
        assert!(
            ns.mount_at(b"/mnt/late").is_none(),
            "the saved family is apart"
        );
    }
}
