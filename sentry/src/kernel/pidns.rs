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

/// How deep PID namespaces may nest (Linux's MAX_PID_NS_LEVEL).
pub const MAX_LEVEL: usize = 32;

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

    /// The image of this namespace (below the container's), `parent` naming its parent as
    /// [`PidNsImage::parent`] does.
    pub fn saved(&self, parent: usize) -> PidNsImage {
        let ids = self.ids();
        let mut map: Vec<[i32; 2]> = ids.local.iter().map(|(&g, &l)| [g, l]).collect();
        map.sort_unstable();
        PidNsImage {
            parent,
            inode: self.inode,
            next: ids.next,
            ids: map,
            init: ids.init,
            dead: ids.dead,
        }
    }

    /// A namespace under `self` rebuilt from its image: its inode number, every ID it had
    /// (the global ones are claimed in the container's namespace by the restore), its init
    /// and whether that init had exited.
    ///
    /// # Errors
    /// An inconsistent image: an ID twice, one not below `next`, or not positive.
    pub fn restored_child(
        self: &Arc<Self>,
        image: &PidNsImage,
    ) -> Result<Arc<PidNamespace>, String> {
        let mut local = HashMap::new();
        let mut global = HashMap::new();
        for &[g, l] in &image.ids {
            if g <= 0 || l <= 0 || l >= image.next {
                return Err(format!(
                    "PID namespace {:#x}: bad ID {l} of {g}",
                    image.inode
                ));
            }
            if local.insert(g, l).is_some() || global.insert(l, g).is_some() {
                return Err(format!(
                    "PID namespace {:#x}: ID {l} of {g} twice",
                    image.inode
                ));
            }
        }
        if image.init.is_some_and(|g| local.get(&g) != Some(&1)) {
            return Err(format!(
                "PID namespace {:#x}: its init is not its 1",
                image.inode
            ));
        }
        NEXT_INODE.fetch_max(image.inode + 1, Ordering::Relaxed);
        Ok(Arc::new(PidNamespace {
            inode: image.inode,
            parent: Some(self.clone()),
            level: self.level + 1,
            ids: Mutex::new(Ids {
                next: image.next,
                local,
                global,
                init: image.init,
                dead: image.dead,
            }),
        }))
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

/// A PID namespace of a checkpoint image below the container's (whose IDs are the tasks'
/// own, [`super::checkpoint::TaskImage::container_vtid`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PidNsImage {
    /// Its parent: 0 for the container's namespace, `i` for the image's namespace `i - 1`
    /// (a parent comes before its children).
    pub parent: usize,
    /// The number `/proc/[pid]/ns/pid` shows, kept.
    pub inode: u64,
    /// The next ID it hands out.
    pub next: i32,
    /// `[global, here]` for every task, process group and session it numbers.
    pub ids: Vec<[i32; 2]>,
    /// The global PID of its init (its child reaper).
    pub init: Option<i32>,
    /// Its init has exited: it takes no new task.
    pub dead: bool,
}

/// Collects the PID namespaces below the container's for a checkpoint, each once, a parent
/// before its children. The container's namespaces are those at `base_level` (the level of
/// the container's processes).
#[derive(Debug)]
pub struct PidNsSaver {
    base_level: usize,
    list: Vec<Arc<PidNamespace>>,
}

impl PidNsSaver {
    pub fn new(base_level: usize) -> PidNsSaver {
        PidNsSaver {
            base_level,
            list: Vec::new(),
        }
    }

    /// The index of `ns` as [`PidNsImage::parent`] counts (0: a namespace of the
    /// container's level), its ancestors added first.
    ///
    /// # Errors
    /// `ns` lies above the container's level.
    pub fn intern(&mut self, ns: &Arc<PidNamespace>) -> Result<usize, String> {
        if ns.level < self.base_level {
            return Err("a PID namespace above the container's".into());
        }
        if ns.level == self.base_level {
            return Ok(0);
        }
        if let Some(i) = self.list.iter().position(|n| Arc::ptr_eq(n, ns)) {
            return Ok(i + 1);
        }
        if let Some(parent) = &ns.parent {
            self.intern(parent)?;
        }
        self.list.push(ns.clone());
        Ok(self.list.len())
    }

    /// The namespace at the container's level that `ns` lies in.
    pub fn container_of<'a>(&self, ns: &'a PidNamespace) -> &'a PidNamespace {
        let mut n = ns;
        while n.level > self.base_level {
            match &n.parent {
                Some(p) => n = p,
                None => break,
            }
        }
        n
    }

    /// The images of the namespaces interned, in their index order.
    pub fn finish(self) -> Vec<PidNsImage> {
        self.list
            .iter()
            .map(|ns| {
                let parent = ns
                    .parent
                    .as_ref()
                    .and_then(|p| self.list.iter().position(|n| Arc::ptr_eq(n, p)))
                    .map_or(0, |i| i + 1);
                ns.saved(parent)
            })
            .collect()
    }
}

/// Rebuilds the PID namespaces of an image under the container's `base`: index 0 is `base`,
/// index `i` the image's namespace `i - 1`.
///
/// # Errors
/// An inconsistent image.
pub fn restore_tree(
    base: &Arc<PidNamespace>,
    images: &[PidNsImage],
) -> Result<Vec<Arc<PidNamespace>>, String> {
    let mut out = vec![base.clone()];
    for image in images {
        let parent = out
            .get(image.parent)
            .ok_or_else(|| format!("PID namespace {} is not before its child", image.parent))?
            .clone();
        out.push(parent.restored_child(image)?);
    }
    Ok(out)
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
    fn a_saved_tree_comes_back_with_every_id() {
        let root = PidNamespace::new_root();
        let a = root.new_child();
        let outer = a.alloc(true).unwrap();
        let inner = a.new_child();
        let i1 = inner.alloc(true).unwrap();
        let i2 = inner.alloc(true).unwrap();
        let deeper = inner.new_child();
        let mut saver = PidNsSaver::new(1);
        assert_eq!(saver.intern(&deeper), Ok(2), "its parent first");
        assert_eq!(saver.intern(&inner), Ok(1));
        assert_eq!(saver.intern(&a), Ok(0));
        assert!(std::ptr::eq(saver.container_of(&deeper), a.as_ref()));
        let images = saver.finish();
        assert_eq!((images[0].parent, images[1].parent), (0, 1));

        let root2 = PidNamespace::new_root();
        let a2 = root2.new_child();
        a2.claim(outer, 1, true).unwrap();
        a2.claim(i1, 2, true).unwrap();
        a2.claim(i2, 3, true).unwrap();
        let tree = restore_tree(&a2, &images).unwrap();
        let inner2 = &tree[1];
        assert_eq!(inner2.inode(), inner.inode());
        assert_eq!(inner2.level(), 2);
        assert_eq!(inner2.init(), Some(i1));
        assert_eq!((inner2.id_of(i1), inner2.id_of(i2)), (Some(1), Some(2)));
        assert_eq!(root2.ids_down_to(inner2, i2), vec![i2, 3, 2]);
        assert_eq!(tree[2].level(), 3);
        let next = inner2.alloc(true).unwrap();
        assert_eq!(inner2.id_of(next), Some(3), "numbering continues");
        assert!(a2.id_of(next).is_some_and(|l| l > 3));
    }

    #[test]
    fn a_bad_saved_namespace_is_refused() {
        let root = PidNamespace::new_root();
        let image = PidNsImage {
            parent: 0,
            inode: 0xF000_2000,
            next: 2,
            ids: vec![[5, 1], [6, 1]],
            init: Some(5),
            dead: false,
        };
        assert!(
            restore_tree(&root, std::slice::from_ref(&image)).is_err(),
            "ID twice"
        );
        let image = PidNsImage {
            ids: vec![[5, 1]],
            parent: 3,
            ..image
        };
        assert!(restore_tree(&root, &[image]).is_err(), "no such parent");
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
