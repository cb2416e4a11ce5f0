//! Path resolution: absolute and relative paths, `.`/`..` (never above the task's root),
//! symlinks (resolved by the sentry, at most [`MAX_SYMLINKS`] per resolution), trailing
//! slashes and mount crossings.
//!
//! Every component is looked up by the filesystem of the directory it is in, one name at a
//! time; no filesystem ever receives a multi-component path, so nothing can resolve outside
//! the sandbox root, host symlinks included (their targets are walked here, from the sandbox
//! root for absolute targets).
//!
//! The dentries a walk builds are kept in its namespace's [`DentryCache`], keyed by
//! (parent dentry, name), so the next walk of the same names builds none. A cached dentry is
//! never trusted on its own: each step still asks the parent's filesystem to look the name
//! up (hostfs revalidates against the host there) and checks the mount table, and reuses
//! the cached dentry only when both give back what it already holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::inode::{may_access_inode, Caller, FileType, MagicTarget, OpenFileInode};
use super::mount::{Dentry, Mount, MountNamespace};
use crate::abi::Errno;

/// Linux's limit on symlinks followed in one resolution (MAXSYMLINKS).
pub const MAX_SYMLINKS: u32 = 40;
/// Longest path component (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// One resolution's settings: who resolves, and where `/` is.
pub struct Resolver<'a> {
    pub cx: Caller,
    pub root: Arc<Dentry>,
    pub ns: &'a MountNamespace,
    /// RESOLVE_NO_SYMLINKS: any symlink is ELOOP.
    pub no_symlinks: bool,
    /// RESOLVE_BENEATH / RESOLVE_IN_ROOT style: `..` above `beneath` and absolute paths fail
    /// (None: ordinary resolution).
    pub beneath: Option<Vec<u8>>,
}

/// Most dentries a [`DentryCache`] keeps ([`set_dentry_cache_budget`]); past this it starts
/// again from empty (the walks that follow rebuild what they use).
static BUDGET: OnceLock<usize> = OnceLock::new();
/// The budget when boot did not set one (unit tests).
const DEFAULT_BUDGET: usize = 256;

/// Sizes the dentry caches from the sentry's own fd limit: a kept dentry may keep host fds
/// open (a hostfs file's `O_PATH` fd and read fd), so, as hostfs's own cache
/// (`fs::hostfs::set_cache_budget`), they keep at most a sixteenth of the limit, and never
/// more than 1024. Boot calls it before the host seccomp filter (which refuses `prlimit64`)
/// goes on.
pub fn set_dentry_cache_budget() {
    let _ = BUDGET.set(crate::vfs::dcache::fd_share(1024).max(16));
}

fn dentry_cache_max() -> usize {
    BUDGET.get().copied().unwrap_or(DEFAULT_BUDGET)
}

/// The dentries walks built, by parent dentry and name (see the module doc).
///
/// A parent is named by its address: every cached child holds its parent, so the address
/// is not reused while entries under it exist. Its lock is a leaf: nothing else is locked,
/// and no dentry dropped, while it is held. Nothing a dentry reaches holds the cache,
/// so the cache makes no reference cycle; it only keeps what it holds alive until it
/// evicts it.
pub struct DentryCache {
    inner: Mutex<CacheInner>,
    /// [`dentry_cache_max`], read when the cache is made.
    max: usize,
}

impl Default for DentryCache {
    fn default() -> DentryCache {
        DentryCache {
            inner: Mutex::default(),
            max: dentry_cache_max(),
        }
    }
}

#[derive(Default)]
struct CacheInner {
    by_parent: HashMap<usize, HashMap<Vec<u8>, Arc<Dentry>>>,
    len: usize,
}

/// Whether dentries of `m` are worth keeping: its filesystem gives back the same inode for
/// the same file (so a kept dentry can match again), and its inodes hold nothing that must
/// go with the last use of a path (proc's hold tasks and open files; FUSE's are forgotten
/// when unused).
fn caches_dentries(m: &Mount) -> bool {
    matches!(m.fs_type, "overlay" | "tmpfs" | "hostfs")
}

fn parent_key(parent: &Arc<Dentry>) -> usize {
    Arc::as_ptr(parent) as usize
}

impl DentryCache {
    /// The cached child `name` of `parent`, if any (to be checked before use).
    fn get(&self, parent: &Arc<Dentry>, name: &[u8]) -> Option<Arc<Dentry>> {
        let inner = self.inner.lock().unwrap();
        inner.by_parent.get(&parent_key(parent))?.get(name).cloned()
    }

    /// Caches `child` (a child of `parent`), replacing what was cached under its name.
    fn put(&self, parent: &Arc<Dentry>, child: &Arc<Dentry>) {
        // Whatever leaves the cache is dropped after the lock is released: the last
        // reference to an inode may close host files.
        let _evicted;
        let mut inner = self.inner.lock().unwrap();
        if inner.len >= self.max {
            _evicted = std::mem::take(&mut inner.by_parent);
            inner.len = 0;
        }
        let old = inner
            .by_parent
            .entry(parent_key(parent))
            .or_default()
            .insert(child.name.clone(), child.clone());
        if old.is_none() {
            inner.len += 1;
        }
        drop(inner);
        drop(old);
    }

    /// Forgets the child `name` of `parent` (it is gone, or now names another file).
    pub fn forget(&self, parent: &Arc<Dentry>, name: &[u8]) {
        let mut inner = self.inner.lock().unwrap();
        let key = parent_key(parent);
        let Some(children) = inner.by_parent.get_mut(&key) else {
            return;
        };
        let old = children.remove(name);
        if children.is_empty() {
            inner.by_parent.remove(&key);
        }
        if old.is_some() {
            inner.len -= 1;
        }
        drop(inner);
        drop(old);
    }
}

/// The dentry a magic link `child` (in `parent`) leads to.
pub fn magic_dentry(parent: Arc<Dentry>, child: &Dentry, target: MagicTarget) -> Arc<Dentry> {
    match target {
        MagicTarget::Path(d) => d,
        MagicTarget::File(f) => Arc::new(Dentry {
            inode: Arc::new(OpenFileInode(f)),
            parent: Some(parent),
            name: child.name.clone(),
            path: child.path.clone(),
            mount: child.mount.clone(),
        }),
    }
}

/// The parent directory of a path plus its last component.
#[derive(Debug)]
pub struct ParentAndName {
    pub parent: Arc<Dentry>,
    /// The last component; `.` or `..` when the path ends that way (or `.` for `/`).
    pub name: Vec<u8>,
    /// The path ended in `/`.
    pub trailing_slash: bool,
}

impl<'a> Resolver<'a> {
    pub fn new(cx: Caller, root: Arc<Dentry>, ns: &'a MountNamespace) -> Resolver<'a> {
        Resolver {
            cx,
            root,
            ns,
            no_symlinks: false,
            beneath: None,
        }
    }

    /// Resolves `path` from `start`; the last component's symlink is followed if `follow`.
    ///
    /// # Errors
    /// ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, EACCES, backend failures.
    pub fn resolve(
        &self,
        start: Arc<Dentry>,
        path: &[u8],
        follow: bool,
    ) -> Result<Arc<Dentry>, Errno> {
        let mut links = 0;
        self.walk(start, path, follow, &mut links)
    }

    /// Resolves everything but the last component of `path`.
    ///
    /// # Errors
    /// As [`Resolver::resolve`] for the directory part.
    pub fn resolve_parent(&self, start: Arc<Dentry>, path: &[u8]) -> Result<ParentAndName, Errno> {
        let mut links = 0;
        self.walk_parent(start, path, &mut links)
    }

    /// [`Resolver::resolve_parent`] sharing a symlink budget with an enclosing resolution.
    ///
    /// # Errors
    /// As [`Resolver::resolve_parent`].
    pub fn walk_parent(
        &self,
        start: Arc<Dentry>,
        path: &[u8],
        links: &mut u32,
    ) -> Result<ParentAndName, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        let trimmed_len = path.iter().rposition(|&b| b != b'/').map_or(0, |p| p + 1);
        let trailing_slash = trimmed_len < path.len();
        if trimmed_len == 0 {
            // "/" (or "///"): the root itself.
            return Ok(ParentAndName {
                parent: self.start_of(start, path)?,
                name: b".".to_vec(),
                trailing_slash,
            });
        }
        let trimmed = &path[..trimmed_len];
        let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(pos) => (&trimmed[..=pos], &trimmed[pos + 1..]),
            None => (&b""[..], trimmed),
        };
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let parent = if dir.is_empty() {
            start
        } else {
            self.walk(start, dir, true, links)?
        };
        if FileType::from_mode(parent.inode.walk_attrs()?.mode) != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(ParentAndName {
            parent,
            name: name.to_vec(),
            trailing_slash,
        })
    }

    fn start_of(&self, start: Arc<Dentry>, path: &[u8]) -> Result<Arc<Dentry>, Errno> {
        if path.first() == Some(&b'/') {
            if self.beneath.is_some() {
                return Err(Errno::EXDEV);
            }
            Ok(self.root.clone())
        } else {
            Ok(start)
        }
    }

    /// Walks `path` from `start`, sharing the symlink budget `links`.
    ///
    /// # Errors
    /// As [`Resolver::resolve`].
    pub fn walk(
        &self,
        start: Arc<Dentry>,
        path: &[u8],
        follow_last: bool,
        links: &mut u32,
    ) -> Result<Arc<Dentry>, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut cur = self.start_of(start, path)?;
        let trailing = path.ends_with(b"/");
        let mut comps = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .peekable();
        while let Some(c) = comps.next() {
            let last = comps.peek().is_none();
            cur = self.step(cur, c, !last || follow_last || trailing, links)?;
        }
        if trailing && cur.inode.file_type()? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    fn is_root(&self, d: &Dentry) -> bool {
        d.parent.is_none() || d.path == self.root.path
    }

    /// One component from the directory `cur`.
    fn step(
        &self,
        cur: Arc<Dentry>,
        name: &[u8],
        follow: bool,
        links: &mut u32,
    ) -> Result<Arc<Dentry>, Errno> {
        let st = cur.inode.walk_attrs()?;
        if FileType::from_mode(st.mode) != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if !may_access_inode(cur.inode.as_ref(), &st, &self.cx.creds, 1, false) {
            return Err(Errno::EACCES);
        }
        match name {
            b"." => return Ok(cur),
            b".." => {
                if let Some(b) = &self.beneath {
                    if cur.path == *b {
                        return Err(Errno::EXDEV);
                    }
                }
                return Ok(if self.is_root(&cur) {
                    cur
                } else {
                    cur.parent.clone().unwrap_or(cur)
                });
            }
            _ => {}
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let child = self.child(&cur, name)?;
        if follow && child.inode.file_type()? == FileType::Symlink {
            if self.no_symlinks {
                return Err(Errno::ELOOP);
            }
            *links += 1;
            if *links > MAX_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            if let Some(m) = child.inode.magic_link(&self.cx) {
                return Ok(magic_dentry(cur, &child, m?));
            }
            let target = child.inode.readlink(&self.cx)?;
            return self.walk(cur, &target, true, links);
        }
        Ok(child)
    }

    /// The dentry for `name` in the directory `parent` (crossing onto a mount if one is
    /// there), without following a final symlink.
    ///
    /// # Errors
    /// ENOENT and backend failures.
    pub fn child(&self, parent: &Arc<Dentry>, name: &[u8]) -> Result<Arc<Dentry>, Errno> {
        let cache = self.ns.dentries();
        let cached = cache.get(parent, name);
        // A mount a lazy umount took away still crosses onto the locked mounts that stayed
        // connected to it; a mounted one, onto what the namespace has mounted there. The
        // cell is shared with the copies of a namespace its owner made, where the mount may
        // still be mounted: it counts only where the mount is no longer in the namespace.
        let on = |p: &[u8]| {
            parent
                .mount
                .connected_at(p)
                .filter(|_| self.ns.find(parent.mount.id).is_none())
                .or_else(|| self.ns.mount_at(p))
        };
        let (inode, mount) = match parent.with_child_path(name, on) {
            Some(m) => (m.root.clone(), m),
            None => match parent.inode.lookup(&self.cx, name) {
                Ok(inode) => (inode, parent.mount.clone()),
                Err(e) => {
                    if cached.is_some() {
                        cache.forget(parent, name);
                    }
                    return Err(e);
                }
            },
        };
        if let Some(c) = cached {
            if Arc::ptr_eq(&c.inode, &inode) && Arc::ptr_eq(&c.mount, &mount) {
                return Ok(c);
            }
        }
        let keep = caches_dentries(&mount);
        let child = Arc::new(Dentry {
            inode,
            parent: Some(parent.clone()),
            name: name.to_vec(),
            path: parent.child_path(name),
            mount,
        });
        if keep {
            cache.put(parent, &child);
        }
        Ok(child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tmpfs::TmpFs;
    use crate::vfs::{Inode, NewAttrs, NewNode};

    fn attrs() -> NewAttrs {
        NewAttrs {
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    /// / { a/ { b/ { f } , up -> .., abs -> /a/b/f, loop -> loop }, rel -> a/b }
    fn tree() -> Arc<MountNamespace> {
        let root = TmpFs::new_root(&Arc::new(crate::memory::MemoryFile::new().unwrap()), 0o755);
        let cx = Caller::kernel();
        let a = root.create(&cx, b"a", NewNode::Directory, attrs()).unwrap();
        let b = a.create(&cx, b"b", NewNode::Directory, attrs()).unwrap();
        b.create(&cx, b"f", NewNode::Regular, attrs()).unwrap();
        let link = |dir: &Arc<dyn Inode>, name: &[u8], t: &[u8]| {
            dir.create(&cx, name, NewNode::Symlink(t.to_vec()), attrs())
                .unwrap();
        };
        link(&a, b"up", b"..");
        link(&a, b"abs", b"/a/b/f");
        link(&a, b"loop", b"loop");
        link(&a, b"escape", b"../../../../a");
        let r: Arc<dyn Inode> = root;
        link(&r, b"rel", b"a/b");
        MountNamespace::new(r, "tmpfs", "none", &Arc::default())
    }

    fn resolve(ns: &MountNamespace, path: &str, follow: bool) -> Result<Vec<u8>, Errno> {
        let r = Resolver::new(Caller::kernel(), ns.root(), ns);
        r.resolve(ns.root(), path.as_bytes(), follow)
            .map(|d| d.path.clone())
    }

    #[test]
    fn absolute_relative_dots() {
        let ns = tree();
        assert_eq!(resolve(&ns, "/a/b/f", true).unwrap(), b"/a/b/f");
        assert_eq!(resolve(&ns, "a/./b/../b/f", true).unwrap(), b"/a/b/f");
        assert_eq!(resolve(&ns, "/../../a", true).unwrap(), b"/a");
        assert_eq!(resolve(&ns, "/a/nope", true), Err(Errno::ENOENT));
        assert_eq!(resolve(&ns, "/a/b/f/x", true), Err(Errno::ENOTDIR));
        assert_eq!(resolve(&ns, "/a/b/f/", true), Err(Errno::ENOTDIR));
        assert_eq!(resolve(&ns, "/a/b/", true).unwrap(), b"/a/b");
        assert_eq!(resolve(&ns, "", true), Err(Errno::ENOENT));
    }

    #[test]
    fn symlinks() {
        let ns = tree();
        assert_eq!(resolve(&ns, "/rel/f", true).unwrap(), b"/a/b/f");
        assert_eq!(resolve(&ns, "/a/abs", true).unwrap(), b"/a/b/f");
        assert_eq!(resolve(&ns, "/a/abs", false).unwrap(), b"/a/abs");
        assert_eq!(resolve(&ns, "/a/up/a/b", true).unwrap(), b"/a/b");
        assert_eq!(resolve(&ns, "/a/loop", true), Err(Errno::ELOOP));
        assert_eq!(resolve(&ns, "/a/loop", false).unwrap(), b"/a/loop");
        // `..` never climbs above the root, through symlinks either.
        assert_eq!(resolve(&ns, "/a/escape", true).unwrap(), b"/a");
        // A trailing slash follows the last symlink.
        assert_eq!(resolve(&ns, "/rel/", false).unwrap(), b"/a/b");
    }

    #[test]
    fn a_detached_tree_is_walked_from_its_fd_and_attached_whole() {
        let ns = tree();
        let mf = Arc::new(crate::memory::MemoryFile::new().unwrap());
        let top = TmpFs::new_root(&mf, 0o1777);
        top.create(&Caller::kernel(), b"sub", NewNode::Directory, attrs())
            .unwrap();
        let inner = TmpFs::new_root(&mf, 0o1777);
        inner
            .create(&Caller::kernel(), b"f", NewNode::Regular, attrs())
            .unwrap();
        let (m, hold) = ns.mount_detached(top, "tmpfs", "none", Default::default());
        let (m2, hold2) = ns.mount_detached(inner, "tmpfs", "none", Default::default());
        ns.move_mount(&m2, &[&m.path[..], b"/sub"].concat());
        drop(hold2);
        let root = Arc::new(Dentry {
            inode: m.root.clone(),
            parent: None,
            name: Vec::new(),
            path: m.path.clone(),
            mount: m.clone(),
        });
        let r = Resolver::new(Caller::kernel(), ns.root(), &ns);
        let d = r.resolve(root.clone(), b"sub/f", true).unwrap();
        assert_eq!(d.mount.id, m2.id);
        // `..` stops at the detached root; the namespace never lists the tree.
        assert_eq!(r.resolve(root, b"../..", true).unwrap().mount.id, m.id);
        assert!(ns.mounts().iter().all(|x| x.id != m.id && x.id != m2.id));
        ns.move_mount(&m, b"/a");
        drop(hold);
        assert_eq!(resolve(&ns, "/a/sub/f", true).unwrap(), b"/a/sub/f");
        assert_eq!(ns.find(m2.id).unwrap().parent, m.id);
    }

    #[test]
    fn a_detached_tree_goes_with_its_last_fd() {
        let ns = tree();
        let t = TmpFs::new_root(&Arc::new(crate::memory::MemoryFile::new().unwrap()), 0o1777);
        let (m, hold) = ns.mount_detached(t, "tmpfs", "none", Default::default());
        assert!(ns.find(m.id).is_some());
        drop(hold);
        assert!(ns.find(m.id).is_none());
    }

    #[test]
    fn mounts_are_crossed_both_ways() {
        let ns = tree();
        let t = TmpFs::new_root(&Arc::new(crate::memory::MemoryFile::new().unwrap()), 0o1777);
        t.create(&Caller::kernel(), b"inside", NewNode::Regular, attrs())
            .unwrap();
        ns.mount(b"/a/b", t, "tmpfs", "tmpfs", false);
        assert_eq!(resolve(&ns, "/a/b/inside", true).unwrap(), b"/a/b/inside");
        assert_eq!(resolve(&ns, "/a/b/f", true), Err(Errno::ENOENT));
        assert_eq!(
            resolve(&ns, "/a/b/../b/inside", true).unwrap(),
            b"/a/b/inside"
        );
        let r = Resolver::new(Caller::kernel(), ns.root(), &ns);
        let d = r.resolve(ns.root(), b"/a/b/inside/..", true);
        assert_eq!(d.unwrap_err(), Errno::ENOTDIR);
        let d = r.resolve(ns.root(), b"/a/b", true).unwrap();
        assert_eq!(d.mount.fs_type, "tmpfs");
        assert_eq!(d.parent.as_ref().unwrap().path, b"/a");
    }

    #[test]
    fn a_file_mount_is_crossed_at_the_last_component() {
        let ns = tree();
        let cx = Caller::kernel();
        let other = TmpFs::new_root(&Arc::new(crate::memory::MemoryFile::new().unwrap()), 0o755);
        let file = other
            .create(&cx, b"data", NewNode::Regular, attrs())
            .unwrap();
        ns.mount(b"/a/b/f", file.clone(), "tmpfs", "tmpfs", true);
        let r = Resolver::new(cx.clone(), ns.root(), &ns);
        let d = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        assert!(Arc::ptr_eq(&d.inode, &file));
        assert!(d.mount.readonly);
        assert_eq!(d.parent.as_ref().unwrap().path, b"/a/b");
        // Through a symlink to it, and relative: the same file.
        let d = r.resolve(ns.root(), b"/a/abs", true).unwrap();
        assert!(Arc::ptr_eq(&d.inode, &file));
        let d = r.resolve(ns.root(), b"rel/f", false).unwrap();
        assert!(Arc::ptr_eq(&d.inode, &file));
        // A file has no children and no trailing slash.
        assert_eq!(resolve(&ns, "/a/b/f/", true), Err(Errno::ENOTDIR));
        assert_eq!(resolve(&ns, "/a/b/f/..", true), Err(Errno::ENOTDIR));
        // The parent's listing still names the mountpoint once.
        let b = r.resolve(ns.root(), b"/a/b", true).unwrap();
        let names: Vec<_> = b.inode.readdir(&cx).unwrap();
        assert_eq!(names.iter().filter(|e| e.name == b"f").count(), 1);
        // The covered file is back after an unmount.
        let m = ns.mount_at(b"/a/b/f").unwrap();
        ns.unmount_tree(&m, &[]);
        let d = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        assert!(!Arc::ptr_eq(&d.inode, &file));
    }

    /// A second walk of a path gives back the dentries the first built, unless the name
    /// now names another file or a mount covers it.
    #[test]
    fn walks_reuse_dentries_while_they_still_match() {
        let ns = tree();
        let cx = Caller::kernel();
        let r = Resolver::new(cx.clone(), ns.root(), &ns);
        let first = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        let again = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(Arc::ptr_eq(
            first.parent.as_ref().unwrap(),
            again.parent.as_ref().unwrap()
        ));
        // The name now names another file: a new dentry for it.
        let b = r.resolve(ns.root(), b"/a/b", true).unwrap();
        b.inode.unlink(&cx, b"f", false).unwrap();
        assert_eq!(resolve(&ns, "/a/b/f", true), Err(Errno::ENOENT));
        b.inode
            .create(&cx, b"f", NewNode::Regular, attrs())
            .unwrap();
        let new = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        assert!(!Arc::ptr_eq(&new.inode, &first.inode));
        assert_eq!(new.path, b"/a/b/f");
        // A mount over the cached name is crossed; after the unmount the file is back.
        let t = TmpFs::new_root(&Arc::new(crate::memory::MemoryFile::new().unwrap()), 0o755);
        ns.mount(b"/a/b/f", t.clone(), "tmpfs", "tmpfs", false);
        let on = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        let t: Arc<dyn Inode> = t;
        assert!(Arc::ptr_eq(&on.inode, &t));
        let m = ns.mount_at(b"/a/b/f").unwrap();
        ns.unmount_tree(&m, &[]);
        let back = r.resolve(ns.root(), b"/a/b/f", true).unwrap();
        assert!(Arc::ptr_eq(&back.inode, &new.inode));
        assert!(Arc::ptr_eq(&back.mount, &b.mount));
    }

    /// The cache holds at most [`dentry_cache_max`] dentries; walks past that still work.
    #[test]
    fn the_dentry_cache_is_bounded() {
        let ns = tree();
        let cx = Caller::kernel();
        let r = Resolver::new(cx.clone(), ns.root(), &ns);
        let dir = r.resolve(ns.root(), b"/a", true).unwrap();
        let max = ns.dentries().max;
        for i in 0..max + 10 {
            let name = format!("n{i}");
            dir.inode
                .create(&cx, name.as_bytes(), NewNode::Regular, attrs())
                .unwrap();
            let d = r.resolve(dir.clone(), name.as_bytes(), true).unwrap();
            assert_eq!(d.path, format!("/a/{name}").as_bytes());
            assert!(ns.dentries().inner.lock().unwrap().len <= max);
        }
        ns.dentries().forget(&dir, b"n0");
        assert!(r.resolve(dir, b"n0", true).is_ok());
    }

    #[test]
    fn parent_and_name() {
        let ns = tree();
        let r = Resolver::new(Caller::kernel(), ns.root(), &ns);
        let pn = r.resolve_parent(ns.root(), b"/rel/new/").unwrap();
        assert_eq!(pn.parent.path, b"/a/b");
        assert_eq!(pn.name, b"new");
        assert!(pn.trailing_slash);
        let pn = r.resolve_parent(ns.root(), b"x").unwrap();
        assert_eq!(pn.parent.path, b"/");
        let pn = r.resolve_parent(ns.root(), b"/").unwrap();
        assert_eq!(pn.name, b".");
        let long = "x".repeat(256);
        assert_eq!(
            r.resolve_parent(ns.root(), long.as_bytes()).unwrap_err(),
            Errno::ENAMETOOLONG
        );
    }
}
