//! PID namespaces: the numbers processes and threads are known by.
//!
//! Namespaces form a tree under the kernel's root namespace. A task has an ID in its own
//! namespace and in every ancestor of it; it is invisible from any other namespace. IDs are
//! handed out per namespace, lowest first, and never reused. The root namespace's IDs are the
//! *global* IDs: the keys of the process table ([`super::Tree`]) and every ID the kernel keeps
//! internally. Whatever a guest passes in or reads back goes through [`PidNamespace::lookup`]
//! and [`PidNamespace::id_of`] of the caller's namespace (see `Task::lookup_pid` and
//! `Task::vpid_of`).
//!
//! The first process of a namespace (ID 1 in it) is its init: orphans of the namespace are
//! reparented to it, and when it exits the namespace dies (its other processes are killed and
//! no new ID is handed out in it).
//!
//! # Lock order
//! `PidNamespace::ids` is a leaf: it is taken under `Kernel::tree` and `ThreadGroup::sig`,
//! never the other way round, and one namespace's at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::Errno;

/// One PID namespace; see the module documentation.
#[derive(Debug)]
pub struct PidNamespace {
    /// The number `/proc/[pid]/ns/pid` shows.
    inode: u64,
    parent: Option<Arc<PidNamespace>>,
    /// Depth under the root (0 for the root).
    level: usize,
    /// Guarded by its own mutex (a leaf).
    ids: Mutex<Ids>,
}

/// The ID maps of a namespace. The root keeps no maps: its IDs are the global ones.
#[derive(Debug)]
struct Ids {
    /// The next ID to hand out here.
    next: i32,
    /// Global ID → ID here.
    local: HashMap<i32, i32>,
    /// ID here → global ID.
    global: HashMap<i32, i32>,
    /// The global PID of the namespace's init, once it exists.
    init: Option<i32>,
    /// Init has exited: nothing new may enter.
    dead: bool,
}

/// Linux's inode number of the initial PID namespace (PROC_PID_INIT_INO).
const ROOT_INODE: u64 = 0xEFFF_FFFC;

/// Numbers of child namespaces, clear of the other namespaces' fixed ones.
static NEXT_INODE: AtomicU64 = AtomicU64::new(0xF000_1000);

impl PidNamespace {
    /// A new root namespace (one per kernel).
    pub fn new_root() -> Arc<PidNamespace> {
        Arc::new(PidNamespace {
            inode: ROOT_INODE,
            parent: None,
            level: 0,
            ids: Mutex::new(Ids {
                next: 1,
                local: HashMap::new(),
                global: HashMap::new(),
                init: None,
                dead: false,
            }),
        })
    }

    /// A new namespace under `self`.
    pub fn new_child(self: &Arc<Self>) -> Arc<PidNamespace> {
        Arc::new(PidNamespace {
            inode: NEXT_INODE.fetch_add(1, Ordering::Relaxed),
            parent: Some(self.clone()),
            level: self.level + 1,
            ids: Mutex::new(Ids {
                next: 1,
                local: HashMap::new(),
                global: HashMap::new(),
                init: None,
                dead: false,
            }),
        })
    }

    fn ids(&self) -> MutexGuard<'_, Ids> {
        self.ids.lock().unwrap()
    }

    /// The namespace's number in `/proc/[pid]/ns/pid` (the same for everyone in it).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Depth under the root namespace.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The parent namespace (None for the root).
    pub fn parent(&self) -> Option<&Arc<PidNamespace>> {
        self.parent.as_ref()
    }

    fn root(&self) -> &PidNamespace {
        let mut ns = self;
        while let Some(p) = &ns.parent {
            ns = p;
        }
        ns
    }

    /// Hands out an ID for a new task in this namespace and in each of its ancestors;
    /// returns the global one. The first ID of a namespace (1) makes the task's process its
    /// init when `process` is set.
    ///
    /// # Errors
    /// ENOMEM when this namespace or an ancestor is dead (its init has exited), as Linux's
    /// fork fails then.
    pub fn alloc(self: &Arc<Self>, process: bool) -> Result<i32, Errno> {
        let mut ns = Some(self.as_ref());
        while let Some(n) = ns {
            if n.ids().dead {
                return Err(Errno::ENOMEM);
            }
            ns = n.parent.as_deref();
        }
        let global = {
            let mut root = self.root().ids();
            let g = root.next;
            root.next += 1;
            if self.level == 0 && process && g == 1 {
                root.init = Some(g);
            }
            g
        };
        let mut ns = Some(self.as_ref());
        while let Some(n) = ns.filter(|n| n.level > 0) {
            let mut ids = n.ids();
            let local = ids.next;
            ids.next += 1;
            ids.local.insert(global, local);
            ids.global.insert(local, global);
            if local == 1 && process && std::ptr::eq(n, self.as_ref()) {
                ids.init = Some(global);
            }
            drop(ids);
            ns = n.parent.as_deref();
        }
        Ok(global)
    }

    /// Takes the IDs a checkpointed task had: `global`, and `local` in this namespace (a
    /// child of the root, or the root itself where the two are equal); a process with local
    /// ID 1 becomes the namespace's init. Later allocations continue above them.
    ///
    /// # Errors
    /// EINVAL for a namespace deeper than one level, or IDs already taken.
    pub fn claim(self: &Arc<Self>, global: i32, local: i32, process: bool) -> Result<(), Errno> {
        if self.level > 1 || global <= 0 || local <= 0 || (self.level == 0 && global != local) {
            return Err(Errno::EINVAL);
        }
        {
            let mut root = self.root().ids();
            if self.level == 0 && process && global == 1 {
                root.init = Some(global);
            }
            root.next = root.next.max(global + 1);
        }
        if self.level == 1 {
            let mut ids = self.ids();
            if ids.global.contains_key(&local) || ids.local.contains_key(&global) {
                return Err(Errno::EINVAL);
            }
            ids.local.insert(global, local);
            ids.global.insert(local, global);
            ids.next = ids.next.max(local + 1);
            if local == 1 && process {
                ids.init = Some(global);
            }
        }
        Ok(())
    }

    /// Forgets the global ID `global` in this namespace and its ancestors (the task and
    /// every process group and session it named are gone).
    pub fn release(&self, global: i32) {
        let mut ns = Some(self);
        while let Some(n) = ns.filter(|n| n.level > 0) {
            let mut ids = n.ids();
            if let Some(local) = ids.local.remove(&global) {
                ids.global.remove(&local);
            }
            drop(ids);
            ns = n.parent.as_deref();
        }
    }

    /// The ID here of the task (or group, session) whose global ID is `global`; None when it
    /// is not visible here.
    pub fn id_of(&self, global: i32) -> Option<i32> {
        if self.level == 0 {
            return Some(global);
        }
        self.ids().local.get(&global).copied()
    }

    /// The global ID of what is called `local` here; None when nothing is.
    pub fn lookup(&self, local: i32) -> Option<i32> {
        if self.level == 0 {
            return Some(local);
        }
        self.ids().global.get(&local).copied()
    }

    /// The global PID of this namespace's init, if it has one.
    pub fn init(&self) -> Option<i32> {
        self.ids().init
    }

    /// The namespace's init has exited: no new task may enter it.
    pub fn kill(&self) {
        self.ids().dead = true;
    }

    /// True when `other` is this namespace or a descendant of it (everything in `other` is
    /// visible here).
    pub fn contains(&self, other: &PidNamespace) -> bool {
        let mut ns = Some(other);
        while let Some(n) = ns {
            if std::ptr::eq(n, self) {
                return true;
            }
            ns = n.parent.as_deref();
        }
        false
    }

    /// The IDs of `global` (a member of namespace `own`) from this namespace down to `own`,
    /// as `/proc/[pid]/status` lists them in `NSpid:`. Empty when `own` is not inside this
    /// namespace.
    pub fn ids_down_to(&self, own: &PidNamespace, global: i32) -> Vec<i32> {
        if !self.contains(own) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut ns = Some(own);
        while let Some(n) = ns {
            out.push(n.id_of(global).unwrap_or(0));
            if std::ptr::eq(n, self) {
                break;
            }
            ns = n.parent.as_deref();
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_allocated_per_level() {
        let root = PidNamespace::new_root();
        assert_eq!(root.alloc(true), Ok(1));
        let a = root.new_child();
        let b = root.new_child();
        let a1 = a.alloc(true).unwrap();
        let b1 = b.alloc(true).unwrap();
        let a2 = a.alloc(true).unwrap();
        assert_eq!((a1, b1, a2), (2, 3, 4));
        assert_eq!(a.id_of(a1), Some(1));
        assert_eq!(a.id_of(a2), Some(2));
        assert_eq!(b.id_of(b1), Some(1));
        assert_eq!(root.id_of(b1), Some(3));
        assert_eq!(a.lookup(2), Some(a2));
        assert_eq!(b.lookup(2), None);
        assert_eq!(a.id_of(b1), None, "a sibling's process is invisible");
        assert_eq!(a.init(), Some(a1));
        assert_eq!(b.init(), Some(b1));
        assert_eq!(root.init(), Some(1));
    }

    #[test]
    fn nested_namespaces_list_every_level() {
        let root = PidNamespace::new_root();
        let a = root.new_child();
        let _ = a.alloc(true).unwrap();
        let inner = a.new_child();
        let g = inner.alloc(true).unwrap();
        assert_eq!(inner.level(), 2);
        assert_eq!(root.ids_down_to(&inner, g), vec![g, 2, 1]);
        assert_eq!(a.ids_down_to(&inner, g), vec![2, 1]);
        assert_eq!(inner.ids_down_to(&a, g), Vec::<i32>::new());
        assert!(root.contains(&inner) && a.contains(&inner) && !inner.contains(&a));
        assert_ne!(a.inode(), inner.inode());
        assert_ne!(a.inode(), root.inode());
    }

    #[test]
    fn threads_do_not_become_init_and_released_ids_vanish() {
        let root = PidNamespace::new_root();
        let a = root.new_child();
        let t = a.alloc(false).unwrap();
        assert_eq!(a.init(), None);
        assert_eq!(a.id_of(t), Some(1));
        a.release(t);
        assert_eq!(a.id_of(t), None);
        assert_eq!(a.lookup(1), None);
        assert_eq!(
            a.alloc(true).map(|g| a.id_of(g)),
            Ok(Some(2)),
            "never reused"
        );
    }

    #[test]
    fn a_dead_namespace_refuses_new_tasks() {
        let root = PidNamespace::new_root();
        let a = root.new_child();
        let inner = a.new_child();
        a.alloc(true).unwrap();
        a.kill();
        assert_eq!(a.alloc(true), Err(Errno::ENOMEM));
        assert_eq!(inner.alloc(true), Err(Errno::ENOMEM));
        assert!(root.alloc(true).is_ok());
    }
}
