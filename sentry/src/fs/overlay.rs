//! overlay: a writable tmpfs upper layer over a read-only lower layer (usually hostfs).
//!
//! Reads go to the upper file if there is one, else to the lower. The first change to a
//! lower file copies it (and its ancestor directories) up; deleting a name the lower layer
//! has leaves a whiteout in the upper directory; a directory created where a lower one was
//! deleted is opaque (hides the lower one). Nothing is ever written to the lower layer.
//! Renaming a directory that exists in the lower layer is EXDEV, as Linux overlayfs without
//! `redirect_dir` (`mv` then copies and deletes).
//!
//! A lookup gives back the node the last lookup of the name built while that node lives
//! (the VFS's dentry cache keeps recent ones alive) and both layers still hold what it was
//! built from: the lower layer is asked every time (hostfs decides there whether its file is
//! still the host's), and an upper file created, removed or renamed in between makes a new
//! node. A node that has not seen its own copy-up (another node of the same path did it)
//! finds the upper file through its parent's upper directory.
//!
//! # Lock order
//! `OvlFs::copy_lock` → `OvlNode::children` → (a child's) `OvlNode::upper` → tmpfs locks.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::tmpfs::{TmpFs, TmpNode};
use crate::abi::Errno;
use crate::memory::MemoryFile;
use crate::vfs::acl;
use crate::vfs::dcache;
use crate::vfs::inode::RenameFlags;
use crate::vfs::{
    Caller, DirEntry, FileOps, FileType, FsStats, HostSpecial, Inode, NewAttrs, NewNode, SetAttr,
    Stat,
};

/// OVERLAYFS_SUPER_MAGIC.
pub const OVERLAYFS_MAGIC: i64 = 0x794c_7630;
/// Upper-layer inode numbers are shifted above the lower layer's so the two never collide.
const UPPER_INO_BASE: u64 = 1 << 48;

struct OvlFs {
    dev: u64,
    copy_lock: Mutex<()>,
}

/// A file of the merged tree.
pub struct OvlNode {
    fs: Arc<OvlFs>,
    me: Weak<OvlNode>,
    parent: Option<Arc<OvlNode>>,
    name: Vec<u8>,
    lower: Option<Arc<dyn Inode>>,
    upper: Mutex<Option<Arc<TmpNode>>>,
    /// The system call ([`dcache::current`]) in which [`OvlNode::upper`] last found no
    /// upper file: a walk asks each node several times, and each answer climbs to the root.
    no_upper_in: AtomicU64,
    /// The children lookups built, by name, to be given back while they live and match.
    children: Mutex<HashMap<Vec<u8>, Weak<OvlNode>>>,
}

impl std::fmt::Debug for OvlNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvlNode")
            .field("name", &String::from_utf8_lossy(&self.name))
            .finish_non_exhaustive()
    }
}

/// An overlay over `lower` with a fresh, empty tmpfs upper layer (its file data in `mf`);
/// returns its root.
///
/// # Errors
/// The lower root's stat errors.
pub fn new_overlay(mf: &Arc<MemoryFile>, lower: Arc<dyn Inode>) -> Result<Arc<OvlNode>, Errno> {
    let st = lower.stat()?;
    let upper = TmpFs::new_root(mf, st.mode & 0o7777);
    upper.setattr(&SetAttr {
        uid: Some(st.uid),
        gid: Some(st.gid),
        ..SetAttr::default()
    })?;
    upper.set_times_from(&st);
    Ok(new_overlay_on(lower, upper))
}

/// An overlay of the directory `upper` of a tmpfs over `lower` (`mount -t overlay` with
/// `upperdir=` a tmpfs directory); returns its root.
pub fn new_overlay_on(lower: Arc<dyn Inode>, upper: Arc<TmpNode>) -> Arc<OvlNode> {
    let fs = Arc::new(OvlFs {
        dev: super::anon_dev(),
        copy_lock: Mutex::new(()),
    });
    Arc::new_cyclic(|me| OvlNode {
        fs,
        me: me.clone(),
        parent: None,
        name: Vec::new(),
        lower: Some(lower),
        upper: Mutex::new(Some(upper)),
        no_upper_in: AtomicU64::new(dcache::NO_EPOCH),
        children: Mutex::default(),
    })
}

impl OvlNode {
    fn arc(&self) -> Arc<OvlNode> {
        self.me
            .upgrade()
            .expect("a node is alive while its methods run")
    }

    fn new_child(
        &self,
        name: &[u8],
        lower: Option<Arc<dyn Inode>>,
        upper: Option<Arc<TmpNode>>,
    ) -> Arc<OvlNode> {
        Arc::new_cyclic(|me| OvlNode {
            fs: self.fs.clone(),
            me: me.clone(),
            parent: Some(self.arc()),
            name: name.to_vec(),
            lower,
            upper: Mutex::new(upper),
            no_upper_in: AtomicU64::new(dcache::NO_EPOCH),
            children: Mutex::default(),
        })
    }

    /// The child `name` made of `lower` and `upper`: the node the last lookup built if it
    /// is alive and holds the same layers (an upper file it has not seen yet is its own
    /// copy-up, made through another node), else a new one that later lookups get back.
    fn child_node(
        &self,
        name: &[u8],
        lower: Option<Arc<dyn Inode>>,
        upper: Option<Arc<TmpNode>>,
    ) -> Arc<OvlNode> {
        let mut children = self.children.lock().unwrap();
        if let Some(node) = children.get(name).and_then(Weak::upgrade) {
            let same_lower = match (&node.lower, &lower) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            let mut have = node.upper.lock().unwrap();
            let reuse = match (&*have, &upper) {
                // Under an upper file that is not a directory the lower one does not show
                // (lookups stop asking for it once the file is copied up).
                (Some(a), Some(b)) => {
                    Arc::ptr_eq(a, b)
                        && (same_lower || b.file_type().is_ok_and(|t| t != FileType::Directory))
                }
                (None, _) => same_lower,
                (Some(_), None) => false,
            };
            if reuse {
                if have.is_none() {
                    *have = upper;
                }
                drop(have);
                return node;
            }
        }
        let node = self.new_child(name, lower, upper);
        // Forget the dead before the map doubles: names looked up once do not pile up.
        if children.len() >= 16 && children.len().is_power_of_two() {
            children.retain(|_, w| w.strong_count() > 0);
        }
        children.insert(name.to_vec(), Arc::downgrade(&node));
        node
    }

    /// The upper file, if this path has one (found through the parent when another node
    /// copied it up). Within one system call a "none" is remembered: another node of the
    /// same path copying it up meanwhile is then seen from the next call on, as if it had
    /// come after this one (a copy-up through this node is always seen; it sets `upper`).
    fn upper(&self) -> Option<Arc<TmpNode>> {
        let call = dcache::current();
        if call != dcache::NO_EPOCH && self.no_upper_in.load(Ordering::Relaxed) == call {
            return self.upper.lock().unwrap().clone();
        }
        let found = self.upper_fresh();
        if found.is_none() {
            self.no_upper_in.store(call, Ordering::Relaxed);
        }
        found
    }

    /// [`OvlNode::upper`] asking the upper layer again (what copy-up decides on).
    fn upper_fresh(&self) -> Option<Arc<TmpNode>> {
        if let Some(u) = self.upper.lock().unwrap().clone() {
            return Some(u);
        }
        let pu = self.parent.as_ref()?.upper()?;
        let c = pu.child(&self.name).filter(|c| !c.is_whiteout())?;
        *self.upper.lock().unwrap() = Some(c.clone());
        Some(c)
    }

    /// The upper layer's directory of this node (the whole upper layer at the overlay's
    /// root), for a checkpoint to save and a restore to refill.
    pub fn upper_layer(&self) -> Option<Arc<TmpNode>> {
        self.upper()
    }

    /// The layer that currently answers for this file.
    fn top(&self) -> Result<Arc<dyn Inode>, Errno> {
        match self.upper() {
            Some(u) => Ok(u),
            None => self.lower.clone().ok_or(Errno::ENOENT),
        }
    }

    /// Whether the lower layer has `name` in this directory (and it is not hidden by an
    /// opaque upper directory).
    fn lower_has(&self, cx: &Caller, name: &[u8]) -> bool {
        if self.upper().is_some_and(|u| u.is_opaque()) {
            return false;
        }
        self.lower
            .as_ref()
            .is_some_and(|l| l.lookup(cx, name).is_ok())
    }

    fn lookup_node(&self, cx: &Caller, name: &[u8]) -> Result<Arc<OvlNode>, Errno> {
        let upper = self.upper();
        let up_child = match upper.as_ref().and_then(|u| u.child(name)) {
            Some(c) if c.is_whiteout() => return Err(Errno::ENOENT),
            other => other,
        };
        let opaque = upper.as_ref().is_some_and(|u| u.is_opaque());
        let want_lower = match &up_child {
            None => !opaque,
            Some(c) => !opaque && !c.is_opaque() && c.file_type()? == FileType::Directory,
        };
        let mut low_child = None;
        if want_lower {
            if let Some(l) = &self.lower {
                match l.lookup(cx, name) {
                    Ok(c) => low_child = Some(c),
                    Err(Errno::ENOENT) => {}
                    Err(e) if up_child.is_none() => return Err(e),
                    Err(_) => {}
                }
            }
        }
        if let (Some(_), Some(l)) = (&up_child, &low_child) {
            if l.file_type()? != FileType::Directory {
                low_child = None;
            }
        }
        if up_child.is_none() && low_child.is_none() {
            return Err(Errno::ENOENT);
        }
        Ok(self.child_node(name, low_child, up_child))
    }

    /// Makes sure this file exists in the upper layer (copying it and its ancestors up);
    /// with `with_data` false a regular file is copied up empty (it is about to be
    /// truncated).
    fn copy_up(&self, with_data: bool) -> Result<Arc<TmpNode>, Errno> {
        if let Some(u) = self.upper() {
            return Ok(u);
        }
        let parent = self.parent.as_ref().ok_or(Errno::EIO)?;
        let pu = parent.copy_up(true)?;
        let _g = self.fs.copy_lock.lock().unwrap();
        if let Some(u) = self.upper_fresh() {
            return Ok(u);
        }
        let lower = self.lower.as_ref().ok_or(Errno::ENOENT)?;
        let st = lower.stat()?;
        let attrs = NewAttrs {
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
        };
        if pu.child(&self.name).is_some_and(|c| c.is_whiteout()) {
            pu.remove_entry(&self.name);
        }
        let node = match FileType::from_mode(st.mode) {
            FileType::Directory => pu.create_node(&self.name, NewNode::Directory, attrs)?,
            FileType::Regular => {
                let data = if with_data {
                    lower.contents()?
                } else {
                    Vec::new()
                };
                pu.create_file_with(&self.name, &data, attrs)?
            }
            FileType::Symlink => {
                let target = lower.readlink(&Caller::kernel())?;
                pu.create_node(&self.name, NewNode::Symlink(target), attrs)?
            }
            FileType::Fifo => pu.create_node(&self.name, NewNode::Fifo, attrs)?,
            FileType::Socket => pu.create_node(&self.name, NewNode::Socket, attrs)?,
            kind @ (FileType::CharDevice | FileType::BlockDevice) => pu.create_node(
                &self.name,
                NewNode::Device {
                    block: kind == FileType::BlockDevice,
                    rdev: st.rdev,
                },
                attrs,
            )?,
        };
        // Extended attributes (and so ACLs) come up with the file, as overlayfs's
        // ovl_copy_xattr.
        for name in lower.listxattr().unwrap_or_default() {
            if let Ok(value) = lower.getxattr(&name) {
                match node.setxattr(&name, &value, 0) {
                    Ok(()) | Err(Errno::EOPNOTSUPP) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        node.set_times_from(&st);
        *self.upper.lock().unwrap() = Some(node.clone());
        Ok(node)
    }

    fn same_fs(&self, other: &Arc<dyn Inode>) -> Result<Arc<OvlNode>, Errno> {
        let o = other
            .clone()
            .as_any()
            .downcast::<OvlNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&o.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        Ok(o)
    }

    fn is_empty_dir(&self, cx: &Caller) -> Result<bool, Errno> {
        Ok(self.readdir(cx)?.is_empty())
    }
}

impl Inode for OvlNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let mut st = match (self.upper(), &self.lower) {
            (Some(u), Some(l)) if u.file_type()? == FileType::Directory => {
                // A merged directory keeps the lower directory's identity and link count.
                let ls = l.stat()?;
                let mut s = u.stat()?;
                s.ino = ls.ino;
                s.nlink = ls.nlink;
                s
            }
            (Some(u), _) => {
                let mut s = u.stat()?;
                s.ino += UPPER_INO_BASE;
                s
            }
            (None, l) => l.as_ref().ok_or(Errno::ENOENT)?.stat()?,
        };
        st.dev = self.fs.dev;
        Ok(st)
    }

    /// The type [`Inode::stat`] would give (the upper file's, else the lower's), without
    /// asking a layer for all its attributes: a walk asks it of every component.
    fn file_type(&self) -> Result<FileType, Errno> {
        match (self.upper(), &self.lower) {
            (Some(u), _) => u.file_type(),
            (None, Some(l)) => l.file_type(),
            (None, None) => Err(Errno::ENOENT),
        }
    }

    /// The identity [`Inode::stat`] gives (see there), from the layers' own identities.
    fn ident(&self) -> Result<(u64, u64), Errno> {
        let ino = match (self.upper(), &self.lower) {
            (Some(u), Some(l)) if u.file_type()? == FileType::Directory => l.ident()?.1,
            (Some(u), _) => u.ident()?.1 + UPPER_INO_BASE,
            (None, l) => l.as_ref().ok_or(Errno::ENOENT)?.ident()?.1,
        };
        Ok((self.fs.dev, ino))
    }

    /// A merged directory's mode and owners are its upper directory's: the walk need not
    /// ask the lower layer (a host call for hostfs) for the inode number it does not check.
    fn walk_attrs(&self) -> Result<Stat, Errno> {
        if let Some(u) = self.upper() {
            let mut st = u.stat()?;
            if FileType::from_mode(st.mode) == FileType::Directory {
                st.dev = self.fs.dev;
                return Ok(st);
            }
            return self.stat();
        }
        // Only in the lower layer: its own walk attributes.
        match &self.lower {
            Some(l) => {
                let mut st = l.walk_attrs()?;
                st.dev = self.fs.dev;
                Ok(st)
            }
            None => self.stat(),
        }
    }

    fn lookup(&self, cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.lookup_node(cx, name)?)
    }

    fn readdir(&self, cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        let upper = self.upper();
        let up: BTreeMap<Vec<u8>, Arc<TmpNode>> = upper
            .as_ref()
            .map(|u| u.children())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let opaque = upper.as_ref().is_some_and(|u| u.is_opaque());
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let upper_entry = |name: &[u8], n: &Arc<TmpNode>| -> Result<DirEntry, Errno> {
            Ok(DirEntry {
                name: name.to_vec(),
                ino: n.ino() + UPPER_INO_BASE,
                kind: n.file_type()?,
            })
        };
        if !opaque {
            if let Some(l) = &self.lower {
                for e in l.readdir(cx)? {
                    seen.insert(e.name.clone());
                    match up.get(&e.name) {
                        Some(u) if u.is_whiteout() => {}
                        Some(u)
                            if e.kind == FileType::Directory
                                && !u.is_opaque()
                                && u.file_type()? == FileType::Directory =>
                        {
                            out.push(e)
                        }
                        Some(u) => out.push(upper_entry(&e.name, u)?),
                        None => out.push(e),
                    }
                }
            }
        }
        for (name, u) in &up {
            if !seen.contains(name) && !u.is_whiteout() {
                out.push(upper_entry(name, u)?);
            }
        }
        Ok(out)
    }

    fn readlink(&self, cx: &Caller) -> Result<Vec<u8>, Errno> {
        self.top()?.readlink(cx)
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        self.top()?.contents()
    }

    /// A host FIFO or socket of the lower layer stays the host's until the path is copied
    /// up (chmod of it, say): the upper layer's node is the sandbox's own.
    fn host_special(&self) -> Option<&dyn HostSpecial> {
        if self.upper().is_some() {
            return None;
        }
        self.lower.as_ref()?.host_special()
    }

    fn open(&self, cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let acc = flags & libc::O_ACCMODE as u32;
        let writes = acc != libc::O_RDONLY as u32 || flags & libc::O_TRUNC as u32 != 0;
        if writes {
            let u = self.copy_up(flags & libc::O_TRUNC as u32 == 0)?;
            return u.open(cx, flags);
        }
        self.top()?.open(cx, flags)
    }

    fn create(
        &self,
        cx: &Caller,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        if self.lookup_node(cx, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let u = self.copy_up(true)?;
        let hides_lower = self.lower_has(cx, name);
        if u.child(name).is_some_and(|c| c.is_whiteout()) {
            u.remove_entry(name);
        }
        let is_dir = node == NewNode::Directory;
        let n = u.create_node(name, node, attrs)?;
        if is_dir && hides_lower {
            n.set_opaque();
        }
        Ok(self.child_node(name, None, Some(n)))
    }

    /// The unnamed file lives in the upper layer (this directory is copied up first, as
    /// overlayfs does).
    fn create_tmpfile(
        &self,
        _cx: &Caller,
        attrs: NewAttrs,
        linkable: bool,
    ) -> Result<Arc<dyn Inode>, Errno> {
        if self.file_type()? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let u = self.copy_up(true)?;
        let n = u.new_tmpfile(attrs, linkable)?;
        Ok(self.new_child(b"", None, Some(n)))
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> Result<(), Errno> {
        let t = self.same_fs(target)?;
        let cx = Caller::kernel();
        if self.lookup_node(&cx, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let tu: Arc<dyn Inode> = t.copy_up(true)?;
        let u = self.copy_up(true)?;
        if u.child(name).is_some_and(|c| c.is_whiteout()) {
            u.remove_entry(name);
        }
        u.link(name, &tu)
    }

    fn unlink(&self, cx: &Caller, name: &[u8], dir: bool) -> Result<(), Errno> {
        let child = self.lookup_node(cx, name)?;
        let is_dir = child.file_type()? == FileType::Directory;
        match (dir, is_dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !child.is_empty_dir(cx)? => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let u = self.copy_up(true)?;
        let lower_has = self.lower_has(cx, name);
        if let Some(gone) = u.take_entry(name) {
            gone.drop_link();
        }
        if lower_has {
            u.put_whiteout(name);
        }
        Ok(())
    }

    fn rename(
        &self,
        cx: &Caller,
        name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let nd = self.same_fs(new_dir)?;
        if flags.exchange {
            return Err(Errno::EINVAL);
        }
        let src = self.lookup_node(cx, name)?;
        let src_dir = src.file_type()? == FileType::Directory;
        if src_dir && src.lower.is_some() {
            return Err(Errno::EXDEV);
        }
        if Arc::ptr_eq(&self.arc(), &nd) && name == new_name {
            return Ok(());
        }
        if let Ok(d) = nd.lookup_node(cx, new_name) {
            if flags.noreplace {
                return Err(Errno::EEXIST);
            }
            let dst_dir = d.file_type()? == FileType::Directory;
            match (src_dir, dst_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !d.is_empty_dir(cx)? => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let su = src.copy_up(true)?;
        let ou = self.copy_up(true)?;
        let nu = nd.copy_up(true)?;
        let src_lower_has = self.lower_has(cx, name);
        let dst_lower_has = nd.lower_has(cx, new_name);
        nu.take_entry(new_name);
        ou.take_entry(name);
        nu.replace_entry(new_name, su.clone());
        su.touch_ctime();
        if src_dir && dst_lower_has {
            su.set_opaque();
        }
        if src_lower_has {
            ou.put_whiteout(name);
        }
        Ok(())
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        let u = self.copy_up(a.size != Some(0))?;
        u.setattr(a)
    }

    /// A file only the lower layer has keeps the lower layer's times (the host's).
    fn touch_atime(&self, relatime: bool) {
        if let Some(u) = self.upper() {
            u.touch_atime(relatime);
        }
    }

    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.upper() {
            Some(u) => u.getxattr(name),
            // A lower filesystem without attributes shows none through the overlay.
            None => match self.top()?.getxattr(name) {
                Err(Errno::EOPNOTSUPP)
                    if !(acl::is_acl_name(name)
                        && self.file_type().ok() == Some(FileType::Symlink)) =>
                {
                    Err(Errno::ENODATA)
                }
                r => r,
            },
        }
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        self.copy_up(true)?.setxattr(name, value, flags)
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        // Removing what the lower file does not have copies nothing up.
        if self.upper().is_none() {
            self.getxattr(name)?;
        }
        self.copy_up(true)?.removexattr(name)
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        match self.top()?.listxattr() {
            Err(Errno::EOPNOTSUPP) => Ok(Vec::new()),
            r => r,
        }
    }

    fn access_acl(&self) -> Option<acl::Acl> {
        self.top().ok()?.access_acl()
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        // Space is reported for the layer the sandbox's files come from.
        let layer = match &self.lower {
            Some(l) => l.clone(),
            None => self.top()?,
        };
        let mut s = layer.statfs()?;
        s.fs_type = OVERLAYFS_MAGIC;
        Ok(s)
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::hostfs::HostNode;

    /// A scratch host directory removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "runsc-rs-ovl-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join("dir/sub")).unwrap();
            std::fs::write(p.join("file"), b"lower data").unwrap();
            std::fs::write(p.join("dir/inner"), b"inner").unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn attrs() -> NewAttrs {
        NewAttrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn names(n: &dyn Inode) -> Vec<String> {
        let mut v: Vec<String> = n
            .readdir(&Caller::kernel())
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .collect();
        v.sort();
        v
    }

    fn setup(tag: &str) -> (Scratch, Arc<OvlNode>) {
        let s = Scratch::new(tag);
        let lower = HostNode::open_root(&s.0, false).unwrap();
        let mf = Arc::new(MemoryFile::new().unwrap());
        (s, new_overlay(&mf, lower).unwrap())
    }

    /// Within one system call a node remembers that it has no upper file; a copy-up by
    /// another node of the same path is seen from the next call, and a copy-up through the
    /// remembering node in the same call takes the existing copy instead of making another.
    #[test]
    fn a_missing_upper_file_is_remembered_for_one_call() {
        let (_s, root) = setup("nocopy");
        let cx = Caller::kernel();
        dcache::begin_call();
        let a = root.lookup(&cx, b"dir").unwrap();
        let a_inner = a.lookup(&cx, b"inner").unwrap();
        assert_eq!(a_inner.stat().unwrap().mode & 0o777, 0o644);
        let b = root.lookup(&cx, b"dir").unwrap();
        let b_inner = b.lookup(&cx, b"inner").unwrap();
        b_inner
            .setattr(&SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            })
            .unwrap();
        a_inner
            .setattr(&SetAttr {
                uid: Some(7),
                ..SetAttr::default()
            })
            .unwrap();
        let st = b_inner.stat().unwrap();
        assert_eq!(
            (st.mode & 0o777, st.uid),
            (0o600, 7),
            "one copy, changed twice"
        );
        dcache::begin_call();
        assert_eq!(a.lookup(&cx, b"inner").unwrap().stat().unwrap().uid, 7);
        dcache::end_call();
    }

    /// A lookup gives back the node the last one built while its layers are unchanged; a
    /// copy-up keeps it, an unlink and re-create (or a changed host file) makes a new one.
    #[test]
    fn lookups_give_back_the_same_node_while_the_layers_match() {
        let (s, root) = setup("reuse");
        let cx = Caller::kernel();
        let node = |name: &[u8]| root.lookup_node(&cx, name).unwrap();
        let f = node(b"file");
        assert!(Arc::ptr_eq(&f, &node(b"file")));
        let d = node(b"dir");
        let inner = d.lookup_node(&cx, b"inner").unwrap();
        assert!(Arc::ptr_eq(&inner, &d.lookup_node(&cx, b"inner").unwrap()));
        // Copy-up through the node: still the same node, now with its upper file.
        f.setattr(&SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        })
        .unwrap();
        assert!(Arc::ptr_eq(&f, &node(b"file")));
        assert_eq!(node(b"file").stat().unwrap().mode & 0o777, 0o600);
        // Unlinked and created again: another file, another node.
        root.unlink(&cx, b"file", false).unwrap();
        root.create(&cx, b"file", NewNode::Regular, attrs())
            .unwrap();
        let g = node(b"file");
        assert!(!Arc::ptr_eq(&f, &g));
        assert_eq!(g.contents().unwrap(), b"");
        // The host replaced a lower file: the lower layer says so, and the node is new.
        std::fs::write(s.0.join("dir/inner.new"), b"new").unwrap();
        std::fs::rename(s.0.join("dir/inner.new"), s.0.join("dir/inner")).unwrap();
        let again = d.lookup_node(&cx, b"inner").unwrap();
        assert!(!Arc::ptr_eq(&inner, &again));
        assert_eq!(again.contents().unwrap(), b"new");
        // Nodes nobody holds are not kept.
        drop((inner, again));
        let weak = Arc::downgrade(&d.lookup_node(&cx, b"sub").unwrap());
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn ident_is_the_identity_stat_gives() {
        let (_s, root) = setup("ident");
        let cx = Caller::kernel();
        let same = |n: &dyn Inode| {
            let st = n.stat().unwrap();
            assert_eq!(n.ident().unwrap(), (st.dev, st.ino));
        };
        let f = root.lookup(&cx, b"file").unwrap();
        let d = root.lookup(&cx, b"dir").unwrap();
        // Lower only, then a merged directory and a copied-up file.
        same(f.as_ref());
        same(d.as_ref());
        d.lookup(&cx, b"inner").unwrap();
        f.setattr(&SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        })
        .unwrap();
        d.setattr(&SetAttr {
            mode: Some(0o700),
            ..SetAttr::default()
        })
        .unwrap();
        same(f.as_ref());
        same(d.as_ref());
        same(root.as_ref());
    }

    #[test]
    fn copy_up_on_write_leaves_host_alone() {
        let (s, root) = setup("copyup");
        let cx = Caller::kernel();
        let f = root.lookup(&cx, b"file").unwrap();
        assert_eq!(f.contents().unwrap(), b"lower data");
        f.setattr(&SetAttr {
            size: Some(5),
            ..SetAttr::default()
        })
        .unwrap();
        assert_eq!(f.contents().unwrap(), b"lower");
        // A fresh lookup sees the copy; the host file is unchanged.
        let again = root.lookup(&cx, b"file").unwrap();
        assert_eq!(again.contents().unwrap(), b"lower");
        assert_eq!(std::fs::read(s.0.join("file")).unwrap(), b"lower data");
        // A node looked up before the copy-up finds the upper file through its parent.
        let dir = root.lookup(&cx, b"dir").unwrap();
        let inner_early = dir.lookup(&cx, b"inner").unwrap();
        let inner = dir.lookup(&cx, b"inner").unwrap();
        inner
            .setattr(&SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            })
            .unwrap();
        assert_eq!(inner_early.stat().unwrap().mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(s.0.join("dir/inner")).unwrap().len(), 5);
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let (s, root) = setup("whiteout");
        let cx = Caller::kernel();
        assert_eq!(names(root.as_ref()), ["dir", "file"]);
        root.unlink(&cx, b"file", false).unwrap();
        assert_eq!(root.lookup(&cx, b"file").err(), Some(Errno::ENOENT));
        assert_eq!(names(root.as_ref()), ["dir"]);
        assert!(s.0.join("file").exists());
        // Recreating the name gives a new, empty file.
        let f = root
            .create(&cx, b"file", NewNode::Regular, attrs())
            .unwrap();
        assert_eq!(f.contents().unwrap(), b"");
        // rmdir of a non-empty merged dir fails; emptied, it succeeds.
        assert_eq!(root.unlink(&cx, b"dir", true), Err(Errno::ENOTEMPTY));
        let dir = root.lookup(&cx, b"dir").unwrap();
        dir.unlink(&cx, b"inner", false).unwrap();
        dir.unlink(&cx, b"sub", true).unwrap();
        assert!(names(dir.as_ref()).is_empty());
        root.unlink(&cx, b"dir", true).unwrap();
        // A directory made where a lower one was deleted is opaque.
        let d = root
            .create(&cx, b"dir", NewNode::Directory, attrs())
            .unwrap();
        assert!(names(d.as_ref()).is_empty());
        assert!(s.0.join("dir/inner").exists());
    }

    #[test]
    fn renames() {
        let (s, root) = setup("rename");
        let cx = Caller::kernel();
        let r: Arc<dyn Inode> = root.clone();
        root.rename(&cx, b"file", &r, b"moved", RenameFlags::default())
            .unwrap();
        assert_eq!(names(root.as_ref()), ["dir", "moved"]);
        let m = root.lookup(&cx, b"moved").unwrap();
        assert_eq!(m.contents().unwrap(), b"lower data");
        assert!(s.0.join("file").exists());
        assert_eq!(
            root.rename(&cx, b"dir", &r, b"dir2", RenameFlags::default()),
            Err(Errno::EXDEV)
        );
        root.create(&cx, b"newdir", NewNode::Directory, attrs())
            .unwrap();
        root.rename(&cx, b"newdir", &r, b"nd", RenameFlags::default())
            .unwrap();
        assert_eq!(names(root.as_ref()), ["dir", "moved", "nd"]);
    }
}
