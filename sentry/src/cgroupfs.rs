//! `cgroup2`: the kernel's cgroup hierarchy ([`crate::kernel::cgroup`]) as a filesystem,
//! mounted at `/sys/fs/cgroup` and by `mount -t cgroup2`.
//!
//! Layer: beside `procfs`, above `kernel` (it reads the process table and the hierarchy);
//! below `syscalls` and `boot`, which mount it. Every mount shows the same hierarchy.
//!
//! Each directory is a cgroup: `mkdir` creates one, `rmdir` removes an empty one. The
//! interface files are generated on each read and parsed on each write, as Linux's; the files
//! of a controller exist in a cgroup whose parent enables it in `cgroup.subtree_control`. A file
//! left open after its cgroup was removed, or after its controller was disabled, answers
//! ENODEV. Owners and modes can be changed (delegation); moving a process needs write access
//! to `cgroup.procs` of the common ancestor of its old and new cgroup, with the credentials
//! the file was opened with.
//!
//! A mount made inside a cgroup namespace is rooted at the namespace's cgroup.
//!
//! `nsdelegate` (one flag for the hierarchy, set or cleared by every mount from the initial
//! cgroup namespace, shown on mounts made while it is set) makes cgroup namespaces
//! delegation boundaries: from inside one, as the file was opened, the namespace root's
//! files other than `cgroup.procs`, `cgroup.threads` and `cgroup.subtree_control` are
//! EPERM, and processes move (and CLONE_INTO_CGROUP starts them) only between cgroups of
//! the namespace (ENOENT).
//!
//! Not offered: threaded cgroups (`cgroup.threads` is read-only, `cgroup.type` stays
//! `domain`), cgroup v1 hierarchies, the freezer, io/cpuset controllers; memory and CPU limits are
//! recorded, not enforced. The event files (`cgroup.events`, `pids.events[.local]`) announce
//! changes as Linux's: POLLPRI|POLLERR until read again, and IN_MODIFY.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use crate::abi::Errno;
use crate::auth::Creds;
use crate::kernel::cgroup::{
    self, Cgroup, CpuMax, EventFile, FileAttr, CONTROLLERS, CPU, MEMORY, PIDS,
};
use crate::kernel::ns::CgroupNs;
use crate::kernel::signal::SigInfo;
use crate::kernel::Kernel;
use crate::mm::usermem::IoSrc;
use crate::vfs::inode::{may_access, now, NewAttrs, NewNode, RenameFlags, SetAttr};
use crate::vfs::inode::{XATTR_CREATE, XATTR_REPLACE};
use crate::vfs::Stat;
use crate::vfs::{Caller, Context, DirEntry, FileOps, FileType, FsStats, Inode, IoDst, OpenFile};

/// CGROUP2_SUPER_MAGIC.
pub const CGROUP2_MAGIC: i64 = 0x6367_7270;

/// The largest write a control file takes (Linux's kernfs buffer is a page).
const WRITE_MAX: usize = 4096;

/// Where an interface file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Everywhere,
    NotRoot,
}

/// One kind of interface file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Procs,
    Threads,
    Controllers,
    SubtreeControl,
    MaxDepth,
    MaxDescendants,
    Stat,
    Type,
    Events,
    Kill,
    CpuStat,
    CpuMax,
    CpuWeight,
    MemoryCurrent,
    MemoryMax,
    MemoryHigh,
    MemoryEvents,
    PidsMax,
    PidsCurrent,
    PidsPeak,
    PidsEvents,
    PidsEventsLocal,
}

impl Kind {
    /// The event file this is, for the files whose changes are announced.
    fn event(self) -> Option<EventFile> {
        match self {
            Kind::Events => Some(EventFile::Events),
            Kind::PidsEvents => Some(EventFile::PidsEvents),
            Kind::PidsEventsLocal => Some(EventFile::PidsEventsLocal),
            _ => None,
        }
    }
}

/// An interface file: name, controller (0: the core files), where it exists, default mode.
struct FileDef {
    name: &'static str,
    kind: Kind,
    controller: u8,
    place: Where,
    mode: u32,
}

const RW: u32 = 0o644;
const RO: u32 = 0o444;

const FILES: &[FileDef] = &[
    FileDef {
        name: "cgroup.controllers",
        kind: Kind::Controllers,
        controller: 0,
        place: Where::Everywhere,
        mode: RO,
    },
    FileDef {
        name: "cgroup.events",
        kind: Kind::Events,
        controller: 0,
        place: Where::NotRoot,
        mode: RO,
    },
    FileDef {
        name: "cgroup.kill",
        kind: Kind::Kill,
        controller: 0,
        place: Where::NotRoot,
        mode: 0o200,
    },
    FileDef {
        name: "cgroup.max.depth",
        kind: Kind::MaxDepth,
        controller: 0,
        place: Where::Everywhere,
        mode: RW,
    },
    FileDef {
        name: "cgroup.max.descendants",
        kind: Kind::MaxDescendants,
        controller: 0,
        place: Where::Everywhere,
        mode: RW,
    },
    FileDef {
        name: "cgroup.procs",
        kind: Kind::Procs,
        controller: 0,
        place: Where::Everywhere,
        mode: RW,
    },
    FileDef {
        name: "cgroup.stat",
        kind: Kind::Stat,
        controller: 0,
        place: Where::Everywhere,
        mode: RO,
    },
    FileDef {
        name: "cgroup.subtree_control",
        kind: Kind::SubtreeControl,
        controller: 0,
        place: Where::Everywhere,
        mode: RW,
    },
    FileDef {
        name: "cgroup.threads",
        kind: Kind::Threads,
        controller: 0,
        place: Where::Everywhere,
        mode: RW,
    },
    FileDef {
        name: "cgroup.type",
        kind: Kind::Type,
        controller: 0,
        place: Where::NotRoot,
        mode: RW,
    },
    FileDef {
        name: "cpu.max",
        kind: Kind::CpuMax,
        controller: CPU,
        place: Where::NotRoot,
        mode: RW,
    },
    FileDef {
        name: "cpu.stat",
        kind: Kind::CpuStat,
        controller: 0,
        place: Where::Everywhere,
        mode: RO,
    },
    FileDef {
        name: "cpu.weight",
        kind: Kind::CpuWeight,
        controller: CPU,
        place: Where::NotRoot,
        mode: RW,
    },
    FileDef {
        name: "memory.current",
        kind: Kind::MemoryCurrent,
        controller: MEMORY,
        place: Where::NotRoot,
        mode: RO,
    },
    FileDef {
        name: "memory.events",
        kind: Kind::MemoryEvents,
        controller: MEMORY,
        place: Where::NotRoot,
        mode: RO,
    },
    FileDef {
        name: "memory.high",
        kind: Kind::MemoryHigh,
        controller: MEMORY,
        place: Where::NotRoot,
        mode: RW,
    },
    FileDef {
        name: "memory.max",
        kind: Kind::MemoryMax,
        controller: MEMORY,
        place: Where::NotRoot,
        mode: RW,
    },
    FileDef {
        name: "pids.current",
        kind: Kind::PidsCurrent,
        controller: PIDS,
        place: Where::NotRoot,
        mode: RO,
    },
    FileDef {
        name: "pids.events",
        kind: Kind::PidsEvents,
        controller: PIDS,
        place: Where::NotRoot,
        mode: RO,
    },
    FileDef {
        name: "pids.events.local",
        kind: Kind::PidsEventsLocal,
        controller: PIDS,
        place: Where::NotRoot,
        mode: RO,
    },
    FileDef {
        name: "pids.max",
        kind: Kind::PidsMax,
        controller: PIDS,
        place: Where::NotRoot,
        mode: RW,
    },
    FileDef {
        name: "pids.peak",
        kind: Kind::PidsPeak,
        controller: PIDS,
        place: Where::NotRoot,
        mode: RO,
    },
];

/// One mount's view: the kernel and the device number its files show (the hierarchy's, the
/// same for every mount).
struct CgroupFs {
    kernel: Weak<Kernel>,
    dev: u64,
}

impl CgroupFs {
    fn kernel(&self) -> Result<Arc<Kernel>, Errno> {
        self.kernel.upgrade().ok_or(Errno::ENODEV)
    }

    fn statfs(&self) -> FsStats {
        FsStats {
            fs_type: CGROUP2_MAGIC,
            block_size: 4096,
            name_max: 255,
            ..FsStats::default()
        }
    }

    fn stat(&self, ino: u64, attr: FileAttr, dir: bool, nlink: u64) -> Stat {
        let (s, ns) = now();
        Stat {
            dev: self.dev,
            ino,
            nlink,
            mode: if dir { libc::S_IFDIR } else { libc::S_IFREG } | attr.mode,
            uid: attr.uid,
            gid: attr.gid,
            blksize: 4096,
            atime: s,
            atime_nsec: ns,
            mtime: s,
            mtime_nsec: ns,
            ctime: s,
            ctime_nsec: ns,
            ..Stat::default()
        }
    }
}

/// The root directory of a new `cgroup2` mount: `root`, the hierarchy's root or that of
/// the mounter's cgroup namespace.
pub fn new_root(kernel: &Arc<Kernel>, root: Arc<Cgroup>) -> Arc<dyn Inode> {
    let fs = Arc::new(CgroupFs {
        kernel: Arc::downgrade(kernel),
        dev: kernel.cgroups.dev,
    });
    Arc::new(CgDir { fs, cg: root })
}

/// The cgroup a directory of a `cgroup2` mount is (clone3's CLONE_INTO_CGROUP takes one by
/// fd); None for any other file.
pub fn cgroup_of(inode: &Arc<dyn Inode>) -> Option<Arc<Cgroup>> {
    inode
        .clone()
        .as_any()
        .downcast::<CgDir>()
        .ok()
        .map(|d| d.cg.clone())
}

/// Whether `creds`, in the cgroup namespace `ns`, may move a process from `from` to `to`:
/// EACCES without write access to `cgroup.procs` of their nearest common ancestor (Linux's
/// rule for delegated subtrees), ENOENT under nsdelegate when either is outside `ns`.
pub fn may_migrate(
    kernel: &Kernel,
    creds: &Creds,
    ns: &CgroupNs,
    from: &Cgroup,
    to: &Cgroup,
) -> Result<(), Errno> {
    if !may_write_procs(kernel, creds, from, to) {
        return Err(Errno::EACCES);
    }
    let root: &Cgroup = ns;
    if kernel.cgroups.nsdelegate.load(Ordering::Relaxed)
        && !(root.contains(from) && root.contains(to))
    {
        return Err(Errno::ENOENT);
    }
    Ok(())
}

/// Write access to `cgroup.procs` of the nearest common ancestor of `from` and `to`.
fn may_write_procs(kernel: &Kernel, creds: &Creds, from: &Cgroup, to: &Cgroup) -> bool {
    let mut common = kernel.cgroups.root().id;
    let mut from_chain = from.ancestors.clone();
    from_chain.push(from.id);
    let mut to_chain = to.ancestors.clone();
    to_chain.push(to.id);
    for (a, b) in from_chain.iter().zip(to_chain.iter()) {
        if a != b {
            break;
        }
        common = *a;
    }
    let s = kernel.cgroups.lock();
    let Some(node) = s.node(common) else {
        return false;
    };
    let attr = file_attr(node, "cgroup.procs", RW);
    let st = Stat {
        mode: libc::S_IFREG | attr.mode,
        uid: attr.uid,
        gid: attr.gid,
        ..Stat::default()
    };
    may_access(&st, creds, 2, false)
}

/// A file's owner and mode: as changed, else the default mode and the cgroup's creator.
fn file_attr(node: &cgroup::Node, name: &str, default_mode: u32) -> FileAttr {
    node.attrs.get(name).copied().unwrap_or(FileAttr {
        mode: default_mode,
        uid: node.cg.owner.0,
        gid: node.cg.owner.1,
    })
}

/// Inode numbers: 64 per cgroup, the directory first, then its files in table order; the
/// event files have the kernel's fixed slots (it announces their changes).
fn ino_of(cg: &Cgroup, index: usize) -> u64 {
    let slot = match FILES
        .get(index.wrapping_sub(1))
        .and_then(|d| d.kind.event())
    {
        Some(e) => e as u64,
        None => index as u64,
    };
    cgroup::ino(cg.id, slot)
}

/// A cgroup's directory.
struct CgDir {
    fs: Arc<CgroupFs>,
    cg: Arc<Cgroup>,
}

impl CgDir {
    /// The interface files `cg` has now.
    fn files(&self, s: &cgroup::State) -> Vec<(usize, &'static FileDef)> {
        FILES
            .iter()
            .enumerate()
            .filter(|(_, d)| d.place == Where::Everywhere || !self.cg.is_root())
            .filter(|(_, d)| d.controller == 0 || s.enabled(self.cg.id, d.controller))
            .map(|(i, d)| (i + 1, d))
            .collect()
    }

    fn node_attr(&self, node: &cgroup::Node) -> FileAttr {
        file_attr(node, "", 0o755)
    }
}

impl Inode for CgDir {
    fn stat(&self) -> Result<Stat, Errno> {
        let k = self.fs.kernel()?;
        let s = k.cgroups.lock();
        let (attr, nlink) = match s.node(self.cg.id) {
            Some(n) => (self.node_attr(n), 2 + n.children.len() as u64),
            None => (
                FileAttr {
                    mode: 0o755,
                    uid: self.cg.owner.0,
                    gid: self.cg.owner.1,
                },
                0,
            ),
        };
        Ok(self.fs.stat(ino_of(&self.cg, 0), attr, true, nlink))
    }

    fn lookup(&self, _cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let k = self.fs.kernel()?;
        let s = k.cgroups.lock();
        let node = s.node(self.cg.id).ok_or(Errno::ENOENT)?;
        if let Some(id) = node.children.get(name) {
            let child = s.node(*id).ok_or(Errno::ENOENT)?;
            return Ok(Arc::new(CgDir {
                fs: self.fs.clone(),
                cg: child.cg.clone(),
            }));
        }
        let (index, def) = self
            .files(&s)
            .into_iter()
            .find(|(_, d)| d.name.as_bytes() == name)
            .ok_or(Errno::ENOENT)?;
        Ok(Arc::new(CgFile {
            fs: self.fs.clone(),
            cg: self.cg.clone(),
            def,
            ino: ino_of(&self.cg, index),
        }))
    }

    fn readdir(&self, _cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        let k = self.fs.kernel()?;
        let s = k.cgroups.lock();
        let node = s.node(self.cg.id).ok_or(Errno::ENOENT)?;
        let mut out: Vec<DirEntry> = self
            .files(&s)
            .into_iter()
            .map(|(i, d)| DirEntry {
                name: d.name.as_bytes().to_vec(),
                ino: ino_of(&self.cg, i),
                kind: FileType::Regular,
            })
            .collect();
        for (name, id) in &node.children {
            if let Some(c) = s.node(*id) {
                out.push(DirEntry {
                    name: name.clone(),
                    ino: ino_of(&c.cg, 0),
                    kind: FileType::Directory,
                });
            }
        }
        Ok(out)
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        // Directories are opened by the vfs (`vfs::DirFile` over the dentry), never here.
        Err(Errno::EISDIR)
    }

    fn create(
        &self,
        _cx: &Caller,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        if node != NewNode::Directory {
            return Err(Errno::EPERM);
        }
        let k = self.fs.kernel()?;
        if FILES.iter().any(|d| d.name.as_bytes() == name) {
            return Err(Errno::EEXIST);
        }
        k.cgroups.mkdir(&self.cg, name, (attrs.uid, attrs.gid))?;
        let mut s = k.cgroups.lock();
        let id = *s
            .node(self.cg.id)
            .and_then(|n| n.children.get(name))
            .ok_or(Errno::ENOENT)?;
        let child = s.node_mut(id).ok_or(Errno::ENOENT)?;
        child.attrs.insert(
            String::new(),
            FileAttr {
                mode: attrs.mode & 0o7777,
                uid: attrs.uid,
                gid: attrs.gid,
            },
        );
        Ok(Arc::new(CgDir {
            fs: self.fs.clone(),
            cg: child.cg.clone(),
        }))
    }

    fn unlink(&self, _cx: &Caller, name: &[u8], dir: bool) -> Result<(), Errno> {
        let k = self.fs.kernel()?;
        if !dir {
            return Err(Errno::EPERM);
        }
        k.cgroups.rmdir(&self.cg, name)
    }

    fn rename(
        &self,
        _cx: &Caller,
        _name: &[u8],
        _new_dir: &Arc<dyn Inode>,
        _new_name: &[u8],
        _flags: RenameFlags,
    ) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let k = self.fs.kernel()?;
        let mut s = k.cgroups.lock();
        let node = s.node_mut(self.cg.id).ok_or(Errno::ENOENT)?;
        let cur = file_attr(node, "", 0o755);
        node.attrs.insert(String::new(), changed(cur, attr));
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.fs.statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let k = self.fs.kernel()?;
        let s = k.cgroups.lock();
        let node = s.node(self.cg.id).ok_or(Errno::ENOENT)?;
        xattr_namespace_ok(name)?;
        node.xattrs.get(name).cloned().ok_or(Errno::ENODATA)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        xattr_namespace_ok(name)?;
        let k = self.fs.kernel()?;
        let mut s = k.cgroups.lock();
        let node = s.node_mut(self.cg.id).ok_or(Errno::ENOENT)?;
        let exists = node.xattrs.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(Errno::EEXIST);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(Errno::ENODATA);
        }
        node.xattrs.insert(name.to_vec(), value.to_vec());
        Ok(())
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        xattr_namespace_ok(name)?;
        let k = self.fs.kernel()?;
        let mut s = k.cgroups.lock();
        let node = s.node_mut(self.cg.id).ok_or(Errno::ENOENT)?;
        node.xattrs.remove(name).map(|_| ()).ok_or(Errno::ENODATA)
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        let k = self.fs.kernel()?;
        let s = k.cgroups.lock();
        let node = s.node(self.cg.id).ok_or(Errno::ENOENT)?;
        Ok(node.xattrs.keys().cloned().collect())
    }
}

/// cgroupfs keeps `trusted.` and `security.` attributes, as Linux's kernfs (the `user.`
/// namespace needs a mount option the sandbox does not offer).
fn xattr_namespace_ok(name: &[u8]) -> Result<(), Errno> {
    if name.starts_with(b"trusted.") || name.starts_with(b"security.") {
        Ok(())
    } else {
        Err(Errno::EOPNOTSUPP)
    }
}

/// `cur` with `attr`'s owner and mode changes (sizes and times of the files are not kept).
fn changed(cur: FileAttr, attr: &SetAttr) -> FileAttr {
    FileAttr {
        mode: attr.mode.map_or(cur.mode, |m| m & 0o7777),
        uid: attr.uid.unwrap_or(cur.uid),
        gid: attr.gid.unwrap_or(cur.gid),
    }
}

/// One interface file of one cgroup.
struct CgFile {
    fs: Arc<CgroupFs>,
    cg: Arc<Cgroup>,
    def: &'static FileDef,
    ino: u64,
}

impl Inode for CgFile {
    fn stat(&self) -> Result<Stat, Errno> {
        let k = self.fs.kernel()?;
        let s = k.cgroups.lock();
        let attr = match s.node(self.cg.id) {
            Some(n) => file_attr(n, self.def.name, self.def.mode),
            None => FileAttr {
                mode: self.def.mode,
                uid: self.cg.owner.0,
                gid: self.cg.owner.1,
            },
        };
        Ok(self.fs.stat(self.ino, attr, false, 1))
    }

    fn open(&self, cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let k = self.fs.kernel()?;
        Ok(Arc::new(CgOpen {
            fs: self.fs.clone(),
            cg: self.cg.clone(),
            def: self.def,
            ino: self.ino,
            opener: cx.creds.clone(),
            opener_ns: cgroup_ns_of(&k, cx),
            seen: Mutex::new(None),
        }))
    }

    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let k = self.fs.kernel()?;
        let mut s = k.cgroups.lock();
        let node = s.node_mut(self.cg.id).ok_or(Errno::ENOENT)?;
        let cur = file_attr(node, self.def.name, self.def.mode);
        node.attrs.insert(self.def.name.into(), changed(cur, attr));
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.fs.statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// An open interface file: reads generate the contents, writes act on the hierarchy.
struct CgOpen {
    fs: Arc<CgroupFs>,
    cg: Arc<Cgroup>,
    def: &'static FileDef,
    ino: u64,
    /// Moving processes is checked with the credentials of the opener, not the writer.
    opener: Creds,
    /// The opener's cgroup namespace, which nsdelegate's checks use.
    opener_ns: Arc<CgroupNs>,
    /// For an event file: the change count its last read saw (None: never read, so a new
    /// file is ready at once).
    seen: Mutex<Option<u64>>,
}

impl CgOpen {
    /// The kernel, when the file still has its cgroup and controller.
    fn live(&self) -> Result<Arc<Kernel>, Errno> {
        let k = self.fs.kernel()?;
        if self.cg.is_deleted() {
            return Err(Errno::ENODEV);
        }
        if self.def.controller != 0 && !k.cgroups.lock().enabled(self.cg.id, self.def.controller) {
            return Err(Errno::ENODEV);
        }
        Ok(k)
    }

    /// The change count of the event file this is (None for other files).
    fn generation(&self) -> Option<u64> {
        let e = self.def.kind.event()?;
        let k = self.fs.kernel().ok()?;
        let s = k.cgroups.lock();
        Some(s.node(self.cg.id).map_or(0, |n| n.events_gen[e.index()]))
    }

    fn contents(&self, t: &dyn Context) -> Result<String, Errno> {
        let k = self.live()?;
        let h = &k.cgroups;
        let max = |v: Option<u64>| v.map_or_else(|| "max\n".to_string(), |v| format!("{v}\n"));
        let id = self.cg.id;
        Ok(match self.def.kind {
            Kind::Procs => {
                let mut pids: Vec<i32> = h
                    .procs(&k, &self.cg)
                    .iter()
                    .map(|tg| t.vpid_of(tg.tgid))
                    .filter(|&p| p > 0)
                    .collect();
                pids.sort_unstable();
                pids.iter().map(|p| format!("{p}\n")).collect()
            }
            Kind::Threads => {
                let mut tids: Vec<i32> = h
                    .procs(&k, &self.cg)
                    .iter()
                    .flat_map(|tg| tg.sig().threads.keys().copied().collect::<Vec<_>>())
                    .map(|tid| t.vpid_of(tid))
                    .filter(|&p| p > 0)
                    .collect();
                tids.sort_unstable();
                tids.iter().map(|p| format!("{p}\n")).collect()
            }
            Kind::Controllers => mask_list(h.lock().controllers(id)),
            Kind::SubtreeControl => mask_list(h.lock().node(id).map_or(0, |n| n.subtree_control)),
            Kind::MaxDepth => max(h.lock().node(id).and_then(|n| n.max_depth)),
            Kind::MaxDescendants => max(h.lock().node(id).and_then(|n| n.max_descendants)),
            Kind::Stat => {
                let n = h.lock().subtree(id).len() - 1;
                format!("nr_descendants {n}\nnr_dying_descendants 0\n")
            }
            Kind::Type => "domain\n".into(),
            Kind::Events => {
                let populated = u8::from(h.lock().populated(id));
                format!("populated {populated}\nfrozen 0\n")
            }
            Kind::Kill => return Err(Errno::EINVAL),
            Kind::CpuStat => {
                let usage = h.cpu_usage(&k, &self.cg);
                let mut out = format!(
                    "usage_usec {}\nuser_usec {}\nsystem_usec {}\n",
                    usage.total().as_micros(),
                    usage.user.as_micros(),
                    usage.sys.as_micros()
                );
                if !self.cg.is_root() && h.lock().enabled(id, CPU) {
                    // The sandbox never throttles: these counts are truly zero.
                    out.push_str(
                        "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
                    );
                }
                out
            }
            Kind::CpuMax => {
                let c = h.lock().node(id).map(|n| n.cpu_max).ok_or(Errno::ENODEV)?;
                match c.quota {
                    Some(q) => format!("{q} {}\n", c.period),
                    None => format!("max {}\n", c.period),
                }
            }
            Kind::CpuWeight => {
                format!("{}\n", h.lock().node(id).map_or(0, |n| n.cpu_weight))
            }
            Kind::MemoryCurrent => format!("{}\n", h.memory_usage(&k, &self.cg)),
            Kind::MemoryMax => max(h.lock().node(id).and_then(|n| n.memory_max)),
            Kind::MemoryHigh => max(h.lock().node(id).and_then(|n| n.memory_high)),
            // Limits are not enforced, so none of these events ever happens.
            Kind::MemoryEvents => {
                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".into()
            }
            Kind::PidsMax => max(h.lock().node(id).and_then(|n| n.pids_max)),
            Kind::PidsCurrent => format!("{}\n", h.lock().node(id).map_or(0, |n| n.pids_current)),
            Kind::PidsPeak => format!("{}\n", h.lock().node(id).map_or(0, |n| n.pids_peak)),
            Kind::PidsEvents => format!("max {}\n", h.lock().node(id).map_or(0, |n| n.pids_events)),
            Kind::PidsEventsLocal => {
                format!(
                    "max {}\n",
                    h.lock().node(id).map_or(0, |n| n.pids_events_local)
                )
            }
        })
    }

    fn apply(&self, t: &mut dyn Context, text: &str) -> Result<(), Errno> {
        let k = self.live()?;
        // Under nsdelegate, a namespace's root cgroup is the delegation boundary: from
        // inside (as opened), only the delegatable files are written there.
        let delegatable = matches!(
            self.def.kind,
            Kind::Procs | Kind::Threads | Kind::SubtreeControl
        );
        if k.cgroups.nsdelegate.load(Ordering::Relaxed)
            && !delegatable
            && !Arc::ptr_eq(&self.opener_ns, k.cgroups.initial_ns())
            && self.opener_ns.id == self.cg.id
        {
            return Err(Errno::EPERM);
        }
        let h = &k.cgroups;
        let id = self.cg.id;
        let word = text.trim();
        let set = |f: &dyn Fn(&mut cgroup::Node)| -> Result<(), Errno> {
            let mut s = h.lock();
            f(s.node_mut(id).ok_or(Errno::ENODEV)?);
            Ok(())
        };
        match self.def.kind {
            Kind::Procs => self.move_process(&k, t, word),
            // Only threaded cgroups take single threads, and the sandbox has none.
            Kind::Threads => Err(Errno::EOPNOTSUPP),
            Kind::SubtreeControl => {
                let (mut enable, mut disable) = (0u8, 0u8);
                for tok in word.split_whitespace() {
                    let (on, name) = match tok.split_at(1) {
                        ("+", n) => (true, n),
                        ("-", n) => (false, n),
                        _ => return Err(Errno::EINVAL),
                    };
                    let bit = CONTROLLERS
                        .iter()
                        .find(|(_, n)| *n == name)
                        .map(|(b, _)| *b)
                        .ok_or(Errno::EINVAL)?;
                    if on {
                        enable |= bit;
                        disable &= !bit;
                    } else {
                        disable |= bit;
                        enable &= !bit;
                    }
                }
                h.lock().set_subtree_control(id, enable, disable)
            }
            Kind::MaxDepth => {
                let v = parse_max(word)?;
                set(&|n| n.max_depth = v)
            }
            Kind::MaxDescendants => {
                let v = parse_max(word)?;
                set(&|n| n.max_descendants = v)
            }
            Kind::Type => match word {
                "threaded" => Err(Errno::EOPNOTSUPP),
                _ => Err(Errno::EINVAL),
            },
            Kind::Kill => {
                let v: i64 = word.parse().map_err(|_| Errno::EINVAL)?;
                if v != 1 {
                    return Err(Errno::ERANGE);
                }
                let victims = h.procs_below(&k, &self.cg);
                let tree = k.tree();
                for tg in &victims {
                    tree.send_group(tg, SigInfo::kernel(libc::SIGKILL), true);
                }
                Ok(())
            }
            Kind::CpuMax => {
                let mut parts = word.split_whitespace();
                let quota = match parts.next().ok_or(Errno::EINVAL)? {
                    "max" => None,
                    q => Some(q.parse::<u64>().map_err(|_| Errno::EINVAL)?),
                };
                let period = parts
                    .next()
                    .map(|p| p.parse::<u64>().map_err(|_| Errno::EINVAL))
                    .transpose()?;
                if parts.next().is_some() {
                    return Err(Errno::EINVAL);
                }
                let mut s = h.lock();
                let n = s.node_mut(id).ok_or(Errno::ENODEV)?;
                let period = period.unwrap_or(n.cpu_max.period);
                // Linux's bounds: periods of 1 ms to 1 s, quotas of at least 1 ms.
                if !(1000..=1_000_000).contains(&period) || quota.is_some_and(|q| q < 1000) {
                    return Err(Errno::EINVAL);
                }
                n.cpu_max = CpuMax { quota, period };
                Ok(())
            }
            Kind::CpuWeight => {
                let v: u64 = word.parse().map_err(|_| Errno::EINVAL)?;
                if !(1..=10_000).contains(&v) {
                    return Err(Errno::ERANGE);
                }
                set(&|n| n.cpu_weight = v)
            }
            Kind::MemoryMax => {
                let v = parse_memory(word)?;
                set(&|n| n.memory_max = v)
            }
            Kind::MemoryHigh => {
                let v = parse_memory(word)?;
                set(&|n| n.memory_high = v)
            }
            Kind::PidsMax => {
                let v = parse_max(word)?;
                set(&|n| n.pids_max = v)
            }
            Kind::Controllers
            | Kind::Stat
            | Kind::Events
            | Kind::CpuStat
            | Kind::MemoryCurrent
            | Kind::MemoryEvents
            | Kind::PidsCurrent
            | Kind::PidsPeak
            | Kind::PidsEvents
            | Kind::PidsEventsLocal => Err(Errno::EINVAL),
        }
    }

    /// A write to `cgroup.procs`: the PID (0: the writer's own process) moves here.
    fn move_process(&self, k: &Arc<Kernel>, t: &mut dyn Context, word: &str) -> Result<(), Errno> {
        let pid: i32 = word.parse().map_err(|_| Errno::EINVAL)?;
        let global = match pid {
            0 => t.tgid(),
            p if p < 0 => return Err(Errno::EINVAL),
            p => t.lookup_pid(p).ok_or(Errno::ESRCH)?,
        };
        let tg = {
            let tree = k.tree();
            if tree.procs.get(&global).is_some_and(|p| p.zombie.is_some()) {
                // A zombie is in no cgroup's list and stays where it was.
                return Ok(());
            }
            tree.group_of(global).ok_or(Errno::ESRCH)?
        };
        let from = k.cgroups.of(&tg);
        may_migrate(k, &self.opener, &self.opener_ns, &from, &self.cg)?;
        let cpu = tg.cpu_times();
        k.cgroups.migrate(&tg, &self.cg, cpu)
    }
}

/// The cgroup namespace of the task `cx` is (the initial one for the sentry itself).
fn cgroup_ns_of(k: &Kernel, cx: &Caller) -> Arc<CgroupNs> {
    cx.task
        .and_then(|ids| {
            let h = k.tree().tasks.get(&ids.tid).cloned()?;
            let view = h.view.lock().unwrap().clone()?;
            Some(view.ns.cgroup.clone())
        })
        .unwrap_or_else(|| k.cgroups.initial_ns().clone())
}

/// Controller names of `mask`, space-separated, with a newline; empty for none.
fn mask_list(mask: u8) -> String {
    let names: Vec<&str> = CONTROLLERS
        .iter()
        .filter(|(b, _)| mask & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("{}\n", names.join(" "))
    }
}

/// "max" or a non-negative integer.
fn parse_max(word: &str) -> Result<Option<u64>, Errno> {
    if word == "max" {
        return Ok(None);
    }
    word.parse::<u64>().map(Some).map_err(|_| Errno::EINVAL)
}

/// A memory size as Linux's memparse reads it ("max", or bytes with an optional K, M, G, T,
/// P or E suffix), rounded down to whole pages.
fn parse_memory(word: &str) -> Result<Option<u64>, Errno> {
    if word == "max" {
        return Ok(None);
    }
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, suffix) = word.split_at(split);
    let base: u64 = digits.parse().map_err(|_| Errno::EINVAL)?;
    let shift = match suffix {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return Err(Errno::EINVAL),
    };
    let bytes = base.checked_shl(shift).filter(|b| b >> shift == base);
    let bytes = bytes.ok_or(Errno::EINVAL)?;
    Ok(Some(bytes & !4095))
}

impl FileOps for CgOpen {
    fn read(
        &self,
        t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        let gen = self.generation();
        let data = self.contents(t)?.into_bytes();
        if gen.is_some() {
            *self.seen.lock().unwrap() = gen;
        }
        dst.copy_from_offset(&data, off.unwrap_or(0))
    }

    fn write(
        &self,
        t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        let count = src.remaining();
        if count > WRITE_MAX {
            return Err(Errno::E2BIG);
        }
        let mut buf = vec![0u8; count];
        let n = src.copy_to(&mut buf)?;
        buf.truncate(n);
        let text = std::str::from_utf8(&buf).map_err(|_| Errno::EINVAL)?;
        self.apply(t, text)?;
        Ok(n)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        CgFile {
            fs: self.fs.clone(),
            cg: self.cg.clone(),
            def: self.def,
            ino: self.ino,
        }
        .stat()
    }

    fn seekable(&self) -> bool {
        true
    }

    /// Always readable and writable; an event file that changed since it was last read is
    /// also POLLPRI|POLLERR (what waiters for `populated` poll for).
    fn readiness(&self) -> u32 {
        let base = (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
        match self.generation() {
            Some(g) if *self.seen.lock().unwrap() != Some(g) => {
                base | (libc::POLLPRI | libc::POLLERR) as u32
            }
            _ => base,
        }
    }
}

/// Whether `name` is a controller bound to the v2 hierarchy: enabled in some cgroup's
/// `cgroup.subtree_control` (a cgroup v1 mount of it is refused with EBUSY then).
pub fn controller_in_use(kernel: &Kernel, name: &str) -> bool {
    let Some(bit) = CONTROLLERS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(b, _)| *b)
    else {
        return false;
    };
    let s = kernel.cgroups.lock();
    s.subtree(kernel.cgroups.root().id)
        .iter()
        .any(|id| s.node(*id).is_some_and(|n| n.subtree_control & bit != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_as_memparse() {
        assert_eq!(parse_memory("max"), Ok(None));
        assert_eq!(parse_memory("100M"), Ok(Some(104_857_600)));
        assert_eq!(parse_memory("256k"), Ok(Some(262_144)));
        assert_eq!(parse_memory("5000"), Ok(Some(4096)));
        for bad in ["-1", "abc", "100xyz", "abc100", ""] {
            assert_eq!(parse_memory(bad), Err(Errno::EINVAL), "{bad}");
        }
    }

    #[test]
    fn controller_lists() {
        assert_eq!(mask_list(0), "");
        assert_eq!(mask_list(CPU | PIDS), "cpu pids\n");
        assert_eq!(parse_max("max"), Ok(None));
        assert_eq!(parse_max("-1"), Err(Errno::EINVAL));
    }

    #[test]
    fn files_are_unique_and_fit_their_inode_range() {
        let names: std::collections::BTreeSet<_> = FILES.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), FILES.len());
        assert!(FILES.len() < 64);
    }
}
