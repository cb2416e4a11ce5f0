//! Control groups (cgroup v2): the kernel's one hierarchy, which process is in which group,
//! and the controllers' accounting.
//!
//! The hierarchy belongs to the [`Kernel`](super::Kernel) (`Kernel::cgroups`); the `cgroupfs`
//! module shows it as a filesystem. Three controllers exist: `cpu` (usage from the tasks' CPU
//! clocks; `cpu.max` and `cpu.weight` are recorded, not enforced), `memory` (usage is the
//! resident memory of the member processes, where it was charged: see [`Membership`]; limits
//! recorded, not enforced) and `pids` (the
//! number of tasks, enforced on fork and clone with EAGAIN, as Linux).
//!
//! A cgroup namespace ([`CgroupNs`]) is a cgroup taken as the root: `/proc/[pid]/cgroup`
//! and mountinfo show paths from the reader's namespace root ([`Cgroup::path_from`]), and
//! `mount -t cgroup2` inside it mounts that cgroup.
//!
//! Membership is per process (every cgroup is a domain cgroup; threaded cgroups are not
//! offered). A process records its group and how many of its threads it charged there
//! ([`Membership`]); a process created by the Loader starts in the root.
//!
//! # Lock order
//! `Kernel::tree` → `Hierarchy::inner` → `ThreadGroup::cgroup` (a leaf). CPU times and sizes
//! (`ThreadGroup::sig`, `usage`, the address space) are read before `Hierarchy::inner` is
//! taken, never under it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ns::{CgroupNs, Ns, INITIAL_CGROUP_INODE};
use super::usage::CpuTimes;
use super::{Kernel, ThreadGroup};
use crate::abi::Errno;
use crate::auth::UserNs;
use crate::vfs::inotify::FsNotify;

/// The `cpu` controller.
pub const CPU: u8 = 1;
/// The `memory` controller.
pub const MEMORY: u8 = 2;
/// The `pids` controller.
pub const PIDS: u8 = 4;
/// Every controller, each with its name, in the order Linux lists them.
pub const CONTROLLERS: [(u8, &str); 3] = [(CPU, "cpu"), (MEMORY, "memory"), (PIDS, "pids")];
/// The mask of every controller.
pub const ALL: u8 = CPU | MEMORY | PIDS;
/// `cpu.max`'s default period (µs).
pub const CPU_PERIOD_DEFAULT: u64 = 100_000;
/// `cpu.weight`'s default.
pub const CPU_WEIGHT_DEFAULT: u64 = 100;

/// The interface files whose changes are announced (poll wakes with POLLPRI, inotify sees
/// IN_MODIFY), each with its fixed inode slot (see [`ino`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFile {
    /// `cgroup.events`: populated changed.
    Events = 61,
    /// `pids.events`: a fork was refused here or below.
    PidsEvents = 62,
    /// `pids.events.local`: a fork was refused by this cgroup's own limit.
    PidsEventsLocal = 63,
}

impl EventFile {
    pub fn name(self) -> &'static [u8] {
        match self {
            EventFile::Events => b"cgroup.events",
            EventFile::PidsEvents => b"pids.events",
            EventFile::PidsEventsLocal => b"pids.events.local",
        }
    }

    /// Its index in [`Node::events_gen`].
    pub fn index(self) -> usize {
        self as usize - EventFile::Events as usize
    }
}

/// The inode number of slot `slot` (0: the directory; 1..61 its other files) of cgroup `id`.
pub fn ino(id: u64, slot: u64) -> u64 {
    id * 64 + slot
}

/// The cgroup path `path` as seen from a cgroup namespace rooted at the cgroup `root`
/// (Linux's `cgroup_path_ns`): below the root, the path from it; elsewhere one `/..` per
/// step up from the root to the common ancestor, then the way down (`/../sibling`).
pub fn path_from(path: &str, root: &str) -> String {
    let mine: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let theirs: Vec<&str> = root.split('/').filter(|c| !c.is_empty()).collect();
    let common = mine.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
    let mut out = String::new();
    for _ in common..theirs.len() {
        out.push_str("/..");
    }
    for c in &mine[common..] {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// One cgroup as its members and open files hold it: identity that never changes.
#[derive(Debug)]
pub struct Cgroup {
    pub id: u64,
    /// Path from the hierarchy's root ("/" for the root, "/a/b" below it).
    pub path: String,
    /// IDs of the ancestors, root first (empty for the root).
    pub ancestors: Vec<u64>,
    /// Who made it (its files' default owner).
    pub owner: (u32, u32),
    /// Set by rmdir: open files of it fail with ENODEV, members show " (deleted)".
    pub deleted: AtomicBool,
}

impl Cgroup {
    pub fn is_root(&self) -> bool {
        self.ancestors.is_empty()
    }

    /// Its path as seen from a cgroup namespace rooted at `root` ([`path_from`]).
    pub fn path_from(&self, root: &Cgroup) -> String {
        path_from(&self.path, &root.path)
    }

    /// Whether `other` is this cgroup or one of its descendants.
    pub fn contains(&self, other: &Cgroup) -> bool {
        other.id == self.id || other.ancestors.contains(&self.id)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
}

/// Where a process is, and what it charged there.
#[derive(Debug, Clone)]
pub struct Membership {
    pub cg: Arc<Cgroup>,
    /// Live threads charged to `cg`'s pids counters.
    threads: u64,
    /// The process's CPU time when it joined `cg` (usage before that is its old group's).
    cpu_base: CpuTimes,
    /// Memory charged to groups the process has left, oldest first, one entry per group:
    /// what it had resident beyond the earlier entries when it left. As on Linux, pages stay
    /// charged where they were first charged when their process moves (a removed group's
    /// charges count in its parent, whose subtree it was); only growth since the move is the
    /// new group's. When the process shrinks below these charges, the newest go first.
    mem_left: Vec<(Arc<Cgroup>, u64)>,
    /// False once the last thread has exited (a zombie is in no group's `cgroup.procs`).
    live: bool,
}

/// Owner and permissions of one file or directory of the hierarchy, once changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttr {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `cpu.max`: quota (None: "max") and period, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    pub quota: Option<u64>,
    pub period: u64,
}

/// The mutable state of one cgroup.
#[derive(Debug)]
pub struct Node {
    pub cg: Arc<Cgroup>,
    pub parent: Option<u64>,
    pub children: BTreeMap<Vec<u8>, u64>,
    /// Controllers enabled for the children (`cgroup.subtree_control`).
    pub subtree_control: u8,
    /// `cgroup.max.depth`, `cgroup.max.descendants` (None: "max").
    pub max_depth: Option<u64>,
    pub max_descendants: Option<u64>,
    pub pids_max: Option<u64>,
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub cpu_max: CpuMax,
    pub cpu_weight: u64,
    /// Tasks in this cgroup and below.
    pub pids_current: u64,
    pub pids_peak: u64,
    /// Forks refused by this cgroup's limit or one below it (`pids.events`), and by this
    /// cgroup's own limit (`pids.events.local`).
    pub pids_events: u64,
    pub pids_events_local: u64,
    /// Live processes directly in this cgroup, and in it and below it.
    pub nr_procs: u64,
    subtree_procs: u64,
    /// Change counts of the [`EventFile`]s (an open file that saw an older one is ready).
    pub events_gen: [u64; 3],
    /// CPU time of processes that left this cgroup (exited or moved) and of removed children.
    pub cpu_carried: CpuTimes,
    /// Files whose owner or mode was changed; the directory itself under "".
    pub attrs: BTreeMap<String, FileAttr>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Node {
    fn new(cg: Arc<Cgroup>, parent: Option<u64>) -> Node {
        Node {
            cg,
            parent,
            children: BTreeMap::new(),
            subtree_control: 0,
            max_depth: None,
            max_descendants: None,
            pids_max: None,
            memory_max: None,
            memory_high: None,
            cpu_max: CpuMax {
                quota: None,
                period: CPU_PERIOD_DEFAULT,
            },
            cpu_weight: CPU_WEIGHT_DEFAULT,
            pids_current: 0,
            pids_peak: 0,
            pids_events: 0,
            pids_events_local: 0,
            nr_procs: 0,
            subtree_procs: 0,
            events_gen: [0; 3],
            cpu_carried: CpuTimes::default(),
            attrs: BTreeMap::new(),
            xattrs: BTreeMap::new(),
        }
    }
}

/// The hierarchy's nodes by ID.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<u64, Node>,
    next_id: u64,
}

/// The kernel's cgroup hierarchy.
pub struct Hierarchy {
    root: Arc<Cgroup>,
    /// The initial cgroup namespace, rooted at `root`.
    initial_ns: Arc<CgroupNs>,
    inner: Mutex<State>,
    /// The device number of every mount of it (Linux's one superblock).
    pub dev: u64,
    /// Where changes of the event files are announced to inotify.
    notify: Arc<FsNotify>,
    /// cgroup2's `nsdelegate`, the one superblock's (set or cleared by each mount from the
    /// initial cgroup namespace): cgroup namespaces are delegation boundaries.
    pub nsdelegate: AtomicBool,
}

impl std::fmt::Debug for Hierarchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hierarchy")
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

impl Hierarchy {
    /// A hierarchy of only the root, announcing changes to `notify`.
    pub fn new(notify: Arc<FsNotify>) -> Self {
        let root = Arc::new(Cgroup {
            id: 1,
            path: "/".into(),
            ancestors: Vec::new(),
            owner: (0, 0),
            deleted: AtomicBool::new(false),
        });
        let mut nodes = HashMap::new();
        nodes.insert(1, Node::new(root.clone(), None));
        Hierarchy {
            initial_ns: Ns::with_inode(root.clone(), UserNs::initial(), INITIAL_CGROUP_INODE),
            root,
            inner: Mutex::new(State { nodes, next_id: 2 }),
            dev: crate::fs::anon_dev(),
            notify,
            nsdelegate: AtomicBool::new(false),
        }
    }
}

impl State {
    pub fn node(&self, id: u64) -> Option<&Node> {
        self.nodes.get(&id)
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut Node> {
        self.nodes.get_mut(&id)
    }

    /// The controllers available in `id` (`cgroup.controllers`): all of them at the root,
    /// else those its parent enables for its children.
    pub fn controllers(&self, id: u64) -> u8 {
        match self.nodes.get(&id).and_then(|n| n.parent) {
            None => ALL,
            Some(p) => self.nodes.get(&p).map_or(0, |p| p.subtree_control),
        }
    }

    /// Whether `controller` has interface files in `id` (enabled by its parent; the root
    /// has none).
    pub fn enabled(&self, id: u64, controller: u8) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.parent.is_some())
            && self.controllers(id) & controller != 0
    }

    /// The IDs of `id` and every cgroup below it.
    pub fn subtree(&self, id: u64) -> Vec<u64> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            if let Some(n) = self.nodes.get(&out[i]) {
                out.extend(n.children.values().copied());
            }
            i += 1;
        }
        out
    }

    /// Whether a live process is in `id` or below it (`populated` of `cgroup.events`).
    pub fn populated(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.subtree_procs > 0)
    }

    /// One more (`up`) or one fewer live process directly in `id`; the cgroups whose
    /// `populated` changed get an event.
    fn count_proc(&mut self, id: u64, up: bool, events: &mut Vec<(u64, EventFile)>) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.nr_procs = if up {
                n.nr_procs + 1
            } else {
                n.nr_procs.saturating_sub(1)
            };
        }
        let mut at = Some(id);
        while let Some(cur) = at {
            let Some(n) = self.nodes.get_mut(&cur) else {
                break;
            };
            let before = n.subtree_procs > 0;
            n.subtree_procs = if up {
                n.subtree_procs + 1
            } else {
                n.subtree_procs.saturating_sub(1)
            };
            if before != (n.subtree_procs > 0) && n.parent.is_some() {
                n.events_gen[EventFile::Events.index()] += 1;
                events.push((cur, EventFile::Events));
            }
            at = n.parent;
        }
    }

    /// Changes `cgroup.subtree_control` of `id`: `enable` and `disable` are masks.
    ///
    /// # Errors
    /// ENOENT for a controller `id` does not have, EBUSY for enabling one where processes
    /// live (no internal processes, except in the root) or disabling one a child still
    /// enables for its own children.
    pub fn set_subtree_control(&mut self, id: u64, enable: u8, disable: u8) -> Result<(), Errno> {
        let available = self.controllers(id);
        let node = self.nodes.get(&id).ok_or(Errno::ENODEV)?;
        if enable & !available != 0 {
            return Err(Errno::ENOENT);
        }
        let adding = enable & !node.subtree_control;
        if adding != 0 && node.parent.is_some() && node.nr_procs > 0 {
            return Err(Errno::EBUSY);
        }
        let removing = disable & node.subtree_control;
        let child_uses = node
            .children
            .values()
            .filter_map(|c| self.nodes.get(c))
            .any(|c| c.subtree_control & removing != 0);
        if child_uses {
            return Err(Errno::EBUSY);
        }
        let node = self.nodes.get_mut(&id).ok_or(Errno::ENODEV)?;
        node.subtree_control = (node.subtree_control | enable) & !disable;
        Ok(())
    }

    /// Charges one new task to `id` and its ancestors: the pids limit of each level where
    /// the controller is enabled is checked, from `id` up, as Linux charges.
    fn try_charge(&mut self, id: u64, events: &mut Vec<(u64, EventFile)>) -> Result<(), Errno> {
        let mut charged = Vec::new();
        let mut at = Some(id);
        while let Some(cur) = at {
            let enabled = self.enabled(cur, PIDS);
            let Some(n) = self.nodes.get_mut(&cur) else {
                break;
            };
            n.pids_current += 1;
            charged.push(cur);
            if enabled && n.pids_max.is_some_and(|max| n.pids_current > max) {
                n.pids_events_local += 1;
                n.events_gen[EventFile::PidsEventsLocal.index()] += 1;
                events.push((cur, EventFile::PidsEventsLocal));
                let mut up = Some(cur);
                while let Some(u) = up {
                    let Some(un) = self.nodes.get_mut(&u) else {
                        break;
                    };
                    un.pids_events += 1;
                    un.events_gen[EventFile::PidsEvents.index()] += 1;
                    events.push((u, EventFile::PidsEvents));
                    up = un.parent;
                }
                for c in charged {
                    if let Some(n) = self.nodes.get_mut(&c) {
                        n.pids_current -= 1;
                    }
                }
                return Err(Errno::EAGAIN);
            }
            if enabled {
                n.pids_peak = n.pids_peak.max(n.pids_current);
            }
            at = n.parent;
        }
        Ok(())
    }

    /// Adds `count` tasks to `id` and its ancestors without a limit check (migration).
    fn charge_unchecked(&mut self, id: u64, count: u64) {
        let mut at = Some(id);
        while let Some(cur) = at {
            let enabled = self.enabled(cur, PIDS);
            let Some(n) = self.nodes.get_mut(&cur) else {
                break;
            };
            n.pids_current += count;
            if enabled {
                n.pids_peak = n.pids_peak.max(n.pids_current);
            }
            at = n.parent;
        }
    }

    fn uncharge(&mut self, id: u64, count: u64) {
        let mut at = Some(id);
        while let Some(cur) = at {
            let Some(n) = self.nodes.get_mut(&cur) else {
                break;
            };
            n.pids_current = n.pids_current.saturating_sub(count);
            at = n.parent;
        }
    }
}

impl Hierarchy {
    pub fn root(&self) -> &Arc<Cgroup> {
        &self.root
    }

    /// The initial cgroup namespace (the hierarchy's root is its root).
    pub fn initial_ns(&self) -> &Arc<CgroupNs> {
        &self.initial_ns
    }

    /// Locks the hierarchy.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap()
    }

    /// The cgroup `tg` is in.
    pub fn of(&self, tg: &ThreadGroup) -> Arc<Cgroup> {
        tg.cgroup
            .lock()
            .unwrap()
            .as_ref()
            .map_or_else(|| self.root.clone(), |m| m.cg.clone())
    }

    /// Creates the child `name` of `parent` (mkdir), owned by `owner`.
    ///
    /// # Errors
    /// ENOENT when `parent` was removed, EEXIST, EAGAIN past a `cgroup.max.depth` or
    /// `cgroup.max.descendants` limit of an ancestor.
    pub fn mkdir(&self, parent: &Arc<Cgroup>, name: &[u8], owner: (u32, u32)) -> Result<(), Errno> {
        let mut s = self.lock();
        let p = s.nodes.get(&parent.id).ok_or(Errno::ENOENT)?;
        if p.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        // Every ancestor (and the parent) must allow one more descendant this deep.
        let mut chain = parent.ancestors.clone();
        chain.push(parent.id);
        let new_depth = chain.len() as u64;
        for (i, a) in chain.iter().enumerate() {
            let Some(n) = s.nodes.get(a) else { continue };
            let depth_below = new_depth - i as u64;
            let descendants = s.subtree(*a).len() as u64 - 1;
            if n.max_depth.is_some_and(|m| depth_below > m)
                || n.max_descendants.is_some_and(|m| descendants >= m)
            {
                return Err(Errno::EAGAIN);
            }
        }
        let id = s.next_id;
        s.next_id += 1;
        let path = if parent.is_root() {
            format!("/{}", String::from_utf8_lossy(name))
        } else {
            format!("{}/{}", parent.path, String::from_utf8_lossy(name))
        };
        let cg = Arc::new(Cgroup {
            id,
            path,
            ancestors: chain,
            owner,
            deleted: AtomicBool::new(false),
        });
        s.nodes.insert(id, Node::new(cg, Some(parent.id)));
        if let Some(p) = s.nodes.get_mut(&parent.id) {
            p.children.insert(name.to_vec(), id);
        }
        Ok(())
    }

    /// Removes the child `name` of `parent` (rmdir); its CPU usage stays counted in the
    /// parent.
    ///
    /// # Errors
    /// ENOENT, EBUSY while it has children or live processes.
    pub fn rmdir(&self, parent: &Arc<Cgroup>, name: &[u8]) -> Result<(), Errno> {
        let mut s = self.lock();
        let p = s.nodes.get(&parent.id).ok_or(Errno::ENOENT)?;
        let id = *p.children.get(name).ok_or(Errno::ENOENT)?;
        let n = s.nodes.get(&id).ok_or(Errno::ENOENT)?;
        if !n.children.is_empty() || n.nr_procs > 0 {
            return Err(Errno::EBUSY);
        }
        let n = s.nodes.remove(&id).ok_or(Errno::ENOENT)?;
        n.cg.deleted.store(true, Ordering::Release);
        if let Some(p) = s.nodes.get_mut(&parent.id) {
            p.children.remove(name);
            p.cpu_carried += n.cpu_carried;
        }
        Ok(())
    }

    /// A new task of `parent`'s process (a thread when `child` is None) or the first task
    /// of the new process `child`, placed in `into` (CLONE_INTO_CGROUP) or its parent's
    /// cgroup: charges the pids controllers.
    ///
    /// # Errors
    /// EAGAIN when a `pids.max` would be exceeded, ENOENT when `into` was removed, EBUSY
    /// when `into` enables controllers for its children.
    pub fn fork(
        &self,
        parent: &ThreadGroup,
        child: Option<&ThreadGroup>,
        into: Option<&Arc<Cgroup>>,
    ) -> Result<(), Errno> {
        let mut events = Vec::new();
        let result = self.fork_locked(parent, child, into, &mut events);
        self.announce(&events);
        result
    }

    fn fork_locked(
        &self,
        parent: &ThreadGroup,
        child: Option<&ThreadGroup>,
        into: Option<&Arc<Cgroup>>,
        events: &mut Vec<(u64, EventFile)>,
    ) -> Result<(), Errno> {
        let mut s = self.lock();
        let mut pm = parent.cgroup.lock().unwrap();
        let Some(child) = child else {
            // A thread: charged where its process is, when the process is accounted.
            if let Some(m) = pm.as_mut() {
                s.try_charge(m.cg.id, events)?;
                m.threads += 1;
            }
            return Ok(());
        };
        let cg = match into {
            Some(cg) => {
                let n = s.nodes.get(&cg.id).ok_or(Errno::ENOENT)?;
                if n.parent.is_some() && n.subtree_control != 0 {
                    return Err(Errno::EBUSY);
                }
                cg.clone()
            }
            None => pm
                .as_ref()
                .map_or_else(|| self.root.clone(), |m| m.cg.clone()),
        };
        s.try_charge(cg.id, events)?;
        s.count_proc(cg.id, true, events);
        drop(pm);
        *child.cgroup.lock().unwrap() = Some(Membership {
            cg,
            threads: 1,
            cpu_base: CpuTimes::default(),
            mem_left: Vec::new(),
            live: true,
        });
        Ok(())
    }

    /// A process the Loader started: it joins the root with its first thread.
    pub fn enter_root(&self, tg: &ThreadGroup) {
        let mut s = self.lock();
        s.charge_unchecked(self.root.id, 1);
        s.count_proc(self.root.id, true, &mut Vec::new());
        *tg.cgroup.lock().unwrap() = Some(Membership {
            cg: self.root.clone(),
            threads: 1,
            cpu_base: CpuTimes::default(),
            mem_left: Vec::new(),
            live: true,
        });
    }

    /// Undoes [`Hierarchy::fork`] for a task that could not be started.
    pub fn fork_failed(&self, tg: &ThreadGroup, whole_process: bool) {
        let cpu = whole_process.then(CpuTimes::default);
        self.thread_exited(tg, cpu);
    }

    /// A thread of `tg` exited; `last` carries the process's final CPU time when it was the
    /// last one (the process leaves its cgroup's live members).
    pub fn thread_exited(&self, tg: &ThreadGroup, last: Option<CpuTimes>) {
        let mut events = Vec::new();
        {
            let mut s = self.lock();
            let mut m = tg.cgroup.lock().unwrap();
            let Some(m) = m.as_mut() else {
                return;
            };
            if m.threads > 0 {
                m.threads -= 1;
                s.uncharge(m.cg.id, 1);
            }
            if let Some(total) = last {
                if m.live {
                    m.live = false;
                    s.count_proc(m.cg.id, false, &mut events);
                    if let Some(n) = s.nodes.get_mut(&m.cg.id) {
                        n.cpu_carried += since(total, m.cpu_base);
                    }
                }
            }
        }
        self.announce(&events);
    }

    /// Moves the live process `tg` into `to` (a write to `cgroup.procs`); `cpu` is its CPU
    /// time now. A zombie stays where it is. Limits do not stop a migration.
    ///
    /// # Errors
    /// ENODEV when `to` was removed, EBUSY when `to` enables controllers for its children.
    pub fn migrate(&self, tg: &ThreadGroup, to: &Arc<Cgroup>, cpu: CpuTimes) -> Result<(), Errno> {
        let mut events = Vec::new();
        // Read before the hierarchy's lock, as CPU times are.
        let resident = resident_of(tg);
        {
            let mut s = self.lock();
            let n = s.nodes.get(&to.id).ok_or(Errno::ENODEV)?;
            if n.parent.is_some() && n.subtree_control != 0 {
                return Err(Errno::EBUSY);
            }
            let mut slot = tg.cgroup.lock().unwrap();
            let mut mem_left = Vec::new();
            let threads = match slot.as_mut() {
                Some(m) if !m.live || m.cg.id == to.id => return Ok(()),
                Some(m) => {
                    mem_left = m.left_behind(resident);
                    s.uncharge(m.cg.id, m.threads);
                    s.count_proc(m.cg.id, false, &mut events);
                    if let Some(n) = s.nodes.get_mut(&m.cg.id) {
                        n.cpu_carried += since(cpu, m.cpu_base);
                    }
                    m.threads
                }
                // A process never placed (restored) was not counted anywhere: it starts being
                // counted, without its threads.
                None => 0,
            };
            s.charge_unchecked(to.id, threads);
            s.count_proc(to.id, true, &mut events);
            *slot = Some(Membership {
                cg: to.clone(),
                threads,
                cpu_base: cpu,
                mem_left,
                live: true,
            });
        }
        self.announce(&events);
        Ok(())
    }

    /// Tells inotify about changed event files (after the hierarchy's lock is dropped).
    fn announce(&self, events: &[(u64, EventFile)]) {
        for &(id, file) in events {
            self.notify
                .kernel_modified(self.dev, ino(id, file as u64), ino(id, 0), file.name());
        }
    }

    /// The live processes in `cg` itself (`cgroup.procs`), by global PID, with their groups.
    pub fn procs(&self, kernel: &Kernel, cg: &Cgroup) -> Vec<Arc<ThreadGroup>> {
        let tree = kernel.tree();
        tree.procs
            .values()
            .filter(|p| p.zombie.is_none())
            .filter(|p| self.of(&p.tg).id == cg.id)
            .map(|p| p.tg.clone())
            .collect()
    }

    /// The live processes in `cg` and below it.
    pub fn procs_below(&self, kernel: &Kernel, cg: &Cgroup) -> Vec<Arc<ThreadGroup>> {
        let tree = kernel.tree();
        tree.procs
            .values()
            .filter(|p| p.zombie.is_none())
            .filter(|p| cg.contains(&self.of(&p.tg)))
            .map(|p| p.tg.clone())
            .collect()
    }

    /// `cpu.stat`'s usage of `cg` and below it: what departed processes left plus what the
    /// live ones used since they joined.
    pub fn cpu_usage(&self, kernel: &Kernel, cg: &Cgroup) -> CpuTimes {
        let live: Vec<(Arc<ThreadGroup>, CpuTimes)> = self
            .procs_below(kernel, cg)
            .into_iter()
            .map(|tg| {
                let total = tg.cpu_times();
                (tg, total)
            })
            .collect();
        let s = self.lock();
        let mut sum = CpuTimes::default();
        for id in s.subtree(cg.id) {
            if let Some(n) = s.nodes.get(&id) {
                sum += n.cpu_carried;
            }
        }
        for (tg, total) in live {
            let m = tg.cgroup.lock().unwrap();
            let base = m.as_ref().map_or(CpuTimes::default(), |m| m.cpu_base);
            sum += since(total, base);
        }
        sum
    }

    /// `memory.current` of `cg`: the resident memory of the live processes charged to it
    /// and below it (see [`Membership::mem_left`]).
    pub fn memory_usage(&self, kernel: &Kernel, cg: &Cgroup) -> u64 {
        let procs: Vec<Arc<ThreadGroup>> = kernel
            .tree()
            .procs
            .values()
            .filter(|p| p.zombie.is_none())
            .map(|p| p.tg.clone())
            .collect();
        procs
            .iter()
            .map(|tg| {
                let resident = resident_of(tg);
                tg.cgroup
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map_or(0, |m| m.charged_in(cg, resident))
            })
            .sum()
    }
}

impl Membership {
    /// The charges of [`Self::mem_left`] as they stand with `resident` bytes resident (the
    /// newest give way first when the process has shrunk), and what is beyond them: the
    /// current group's.
    fn charges(&self, resident: u64) -> (Vec<(&Arc<Cgroup>, u64)>, u64) {
        let left: u64 = self.mem_left.iter().map(|(_, b)| b).sum();
        let mut deficit = left.saturating_sub(resident);
        let mut out: Vec<(&Arc<Cgroup>, u64)> = Vec::with_capacity(self.mem_left.len());
        for (cg, bytes) in self.mem_left.iter().rev() {
            let cut = deficit.min(*bytes);
            deficit -= cut;
            out.push((cg, bytes - cut));
        }
        out.reverse();
        (out, resident.saturating_sub(left))
    }

    /// What of `resident` bytes is charged to `cg` or below it.
    fn charged_in(&self, cg: &Cgroup, resident: u64) -> u64 {
        let (left, current) = self.charges(resident);
        let old: u64 = left
            .iter()
            .filter(|(c, _)| cg.contains(c))
            .map(|(_, b)| b)
            .sum();
        old + if cg.contains(&self.cg) { current } else { 0 }
    }

    /// [`Self::mem_left`] once the process, with `resident` bytes resident, leaves `cg`.
    fn left_behind(&self, resident: u64) -> Vec<(Arc<Cgroup>, u64)> {
        let (left, current) = self.charges(resident);
        let mut out: Vec<(Arc<Cgroup>, u64)> = left
            .into_iter()
            .filter(|(_, b)| *b > 0)
            .map(|(c, b)| (c.clone(), b))
            .collect();
        if current > 0 {
            match out.iter_mut().find(|(c, _)| c.id == self.cg.id) {
                Some((_, b)) => *b += current,
                None => out.push((self.cg.clone(), current)),
            }
        }
        out
    }
}

/// The resident memory of `tg`'s address space (0 before it has one).
fn resident_of(tg: &ThreadGroup) -> u64 {
    let threads: Vec<_> = tg
        .sig()
        .threads
        .values()
        .map(|t| t.handle.clone())
        .collect();
    threads
        .iter()
        .find_map(|h| h.view.lock().unwrap().as_ref().map(|v| v.mm.resident()))
        .unwrap_or(0)
}

/// CPU time used between `base` and `now`.
fn since(now: CpuTimes, base: CpuTimes) -> CpuTimes {
    CpuTimes {
        user: now.user.saturating_sub(base.user),
        sys: now.sys.saturating_sub(base.sys),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(h: &Hierarchy, parent: &Arc<Cgroup>, name: &str) -> Arc<Cgroup> {
        h.mkdir(parent, name.as_bytes(), (0, 0)).unwrap();
        let s = h.lock();
        let id = s.node(parent.id).unwrap().children[name.as_bytes()];
        s.node(id).unwrap().cg.clone()
    }

    #[test]
    fn memory_stays_charged_where_it_was_when_a_process_moves() {
        let h = Hierarchy::new(Arc::default());
        let root = h.root().clone();
        let a = child(&h, &root, "a");
        let b = child(&h, &a, "b");
        let c = child(&h, &root, "c");
        let m = Membership {
            cg: b.clone(),
            threads: 1,
            cpu_base: CpuTimes::default(),
            mem_left: Vec::new(),
            live: true,
        };
        // 8 bytes resident in b; the process moves to c and grows by 4 there.
        let m = Membership {
            cg: c.clone(),
            mem_left: m.left_behind(8),
            ..m
        };
        assert_eq!(m.charged_in(&b, 12), 8);
        assert_eq!(m.charged_in(&a, 12), 8);
        assert_eq!(m.charged_in(&c, 12), 4);
        assert_eq!(m.charged_in(&root, 12), 12);
        // Shrinking gives back the newest charges first.
        assert_eq!(m.charged_in(&c, 6), 0);
        assert_eq!(m.charged_in(&b, 6), 6);
        // Back in b: one entry for b, the growth in c kept there.
        let m = Membership {
            cg: b.clone(),
            mem_left: m.left_behind(12),
            ..m
        };
        assert_eq!(m.mem_left.len(), 2);
        assert_eq!(m.charged_in(&b, 20), 16);
        assert_eq!(m.charged_in(&c, 20), 4);
    }

    #[test]
    fn paths_and_limits_on_depth_and_descendants() {
        let h = Hierarchy::new(Arc::default());
        let a = child(&h, &h.root().clone(), "a");
        let b = child(&h, &a, "b");
        assert_eq!(b.path, "/a/b");
        assert!(a.contains(&b) && !b.contains(&a));
        h.lock().node_mut(a.id).unwrap().max_depth = Some(1);
        assert_eq!(h.mkdir(&b, b"c", (0, 0)), Err(Errno::EAGAIN));
        h.lock().node_mut(a.id).unwrap().max_depth = None;
        h.lock().node_mut(a.id).unwrap().max_descendants = Some(1);
        assert_eq!(h.mkdir(&a, b"d", (0, 0)), Err(Errno::EAGAIN));
        assert_eq!(h.rmdir(h.root(), b"a"), Err(Errno::EBUSY));
        h.rmdir(&a, b"b").unwrap();
        assert!(b.is_deleted());
    }

    #[test]
    fn paths_from_a_namespace_root_climb_to_the_common_ancestor() {
        let h = Hierarchy::new(Arc::default());
        let t = child(&h, &h.root().clone(), "test");
        let a = child(&h, &t, "ns_a");
        let b = child(&h, &t, "ns_b");
        let sub = child(&h, &b, "sub");
        assert_eq!(b.path_from(&b), "/");
        assert_eq!(sub.path_from(&b), "/sub");
        assert_eq!(a.path_from(&b), "/../ns_a");
        assert_eq!(h.root().path_from(&b), "/../..");
        assert_eq!(sub.path_from(h.root()), "/test/ns_b/sub");
    }

    #[test]
    fn subtree_control_rules() {
        let h = Hierarchy::new(Arc::default());
        let a = child(&h, &h.root().clone(), "a");
        let b = child(&h, &a, "b");
        let mut s = h.lock();
        assert_eq!(s.set_subtree_control(a.id, PIDS, 0), Err(Errno::ENOENT));
        s.set_subtree_control(1, PIDS, 0).unwrap();
        s.set_subtree_control(a.id, PIDS, 0).unwrap();
        s.set_subtree_control(b.id, PIDS, 0).unwrap();
        assert_eq!(s.set_subtree_control(a.id, 0, PIDS), Err(Errno::EBUSY));
        assert!(s.enabled(b.id, PIDS) && !s.enabled(1, PIDS));
    }

    #[test]
    fn pids_charge_checks_each_enabled_level() {
        let h = Hierarchy::new(Arc::default());
        let a = child(&h, &h.root().clone(), "a");
        let b = child(&h, &a, "b");
        let mut s = h.lock();
        s.set_subtree_control(1, PIDS, 0).unwrap();
        s.set_subtree_control(a.id, PIDS, 0).unwrap();
        s.node_mut(a.id).unwrap().pids_max = Some(2);
        s.try_charge(b.id, &mut Vec::new()).unwrap();
        s.try_charge(b.id, &mut Vec::new()).unwrap();
        assert_eq!(s.try_charge(b.id, &mut Vec::new()), Err(Errno::EAGAIN));
        let (na, nb) = (s.node(a.id).unwrap(), s.node(b.id).unwrap());
        assert_eq!((na.pids_current, na.pids_peak), (2, 2));
        // The level below the refusing one saw the third task for a moment.
        assert_eq!((nb.pids_current, nb.pids_peak), (2, 3));
        assert_eq!((na.pids_events, na.pids_events_local), (1, 1));
        assert_eq!((nb.pids_events, nb.pids_events_local), (0, 0));
        assert_eq!(s.node(1).unwrap().pids_events, 1);
    }
}
