//! mount(2) and umount2(2) inside the sandbox: tmpfs, proc, devpts, overlay, cgroup2 and bind
//! mounts of sandbox paths, all in the sentry's mount namespace (nothing ever reaches the
//! host's mount table).

use std::sync::Arc;

use super::{Flags, PathArg};
use crate::abi::{Errno, SysResult};
use crate::cgroupfs;
use crate::fs::devpts::{DevPts, DevPtsOptions};
use crate::fs::overlay;
use crate::fs::tmpfs::{TmpFs, TmpNode, TmpfsOptions};
use crate::kernel::Task;
use crate::mm::usermem::{UserAddr, PATH_MAX};
use crate::procfs as proc;
use crate::vfs::inode::OpenFileInode;
use crate::vfs::{
    rebase, Caller, Dentry, FileType, Inode, Mount, MountNamespace, MountOpts, Propagation,
    Resolver,
};

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
/// Propagation changes (`mount --make-rprivate /`).
const MS_PROPAGATION: u64 =
    libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;
/// Per-mount flags recorded by Linux that do not change what the sandbox does.
const MS_IGNORED: u64 = libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_SYNCHRONOUS
    | libc::MS_MANDLOCK
    | libc::MS_DIRSYNC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_SILENT
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_LAZYTIME
    | MS_REC;
/// `MS_MGC_VAL`: the old magic in the top 16 bits of flags, ignored.
const MS_MGC_MSK: u64 = 0xffff_0000;

const MNT_FORCE: i32 = libc::MNT_FORCE;
const MNT_DETACH: i32 = libc::MNT_DETACH;
const MNT_EXPIRE: i32 = libc::MNT_EXPIRE;
const UMOUNT_NOFOLLOW: i32 = libc::UMOUNT_NOFOLLOW;

/// Mounting needs CAP_SYS_ADMIN over the caller's mount namespace (held in the user
/// namespace that owns it: root in the sandbox, or the creator of a user namespace that
/// unshared its mount namespace).
pub(super) fn check_admin(t: &Task) -> Result<(), Errno> {
    if t.creds
        .has_cap_in(t.fs.ns.owner(), crate::auth::cap::SYS_ADMIN)
    {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

fn read_opt_string(t: &Task, addr: UserAddr) -> Result<Option<String>, Errno> {
    if addr.is_null() {
        return Ok(None);
    }
    let raw = t.mm.read_cstring(addr, PATH_MAX)?;
    Ok(Some(String::from_utf8_lossy(&raw).into_owned()))
}

fn resolve(t: &Task, path: &[u8], follow: bool) -> Result<Arc<Dentry>, Errno> {
    Resolver::new(Caller::of(t), t.fs.root(), &t.fs.ns).resolve(t.fs.cwd(), path, follow)
}

/// The mount whose root `d` is, if `d` is a mount root.
fn mount_rooted_at(t: &Task, d: &Dentry) -> Option<Arc<Mount>> {
    let m = if d.path == b"/" {
        t.fs.ns.root().mount.clone()
    } else {
        t.fs.ns.mount_at(&d.path)?
    };
    let same = std::ptr::addr_eq(Arc::as_ptr(&m.root), Arc::as_ptr(&d.inode));
    same.then_some(m)
}

/// The sandbox's memory in bytes, which a tmpfs's default limits and `size=N%` are shares of.
pub(super) fn mem_bytes() -> u64 {
    proc::host_mem_total_kb() * 1024
}

/// mount(2)
pub fn mount(
    t: &mut Task,
    source: UserAddr,
    target: PathArg,
    fstype: UserAddr,
    flags: Flags,
    data: UserAddr,
) -> SysResult {
    check_admin(t)?;
    let flags = if flags.0 & MS_MGC_MSK == 0xc0ed_0000 {
        flags.0 & !MS_MGC_MSK
    } else {
        flags.0
    };
    let target_path = t.mm.read_cstring(target.0, PATH_MAX)?;
    let dir = resolve(t, &target_path, true)?;
    // A file with no path (an eventfd's /proc/self/fd link) is in no mount of the namespace.
    if dir
        .inode
        .clone()
        .as_any()
        .downcast::<OpenFileInode>()
        .is_ok()
    {
        return Err(Errno::ENOENT);
    }
    let readonly = flags & MS_RDONLY != 0;

    if flags & MS_REMOUNT != 0 {
        let m = mount_rooted_at(t, &dir).ok_or(Errno::EINVAL)?;
        if m.clears_locked_flags(readonly, flags) {
            return Err(Errno::EPERM);
        }
        // Without MS_BIND a remount reconfigures the filesystem too (a tmpfs's limits).
        let mut fs_options = None;
        if flags & MS_BIND == 0 {
            if let Ok(node) = m.root.clone().as_any().downcast::<TmpNode>() {
                if let Some(data) = read_opt_string(t, data)? {
                    node.reconfigure(&TmpfsOptions::parse(&data, mem_bytes())?)?;
                }
                fs_options = Some(node.fs_options());
            }
        }
        let sb_readonly = (flags & MS_BIND == 0).then_some(readonly);
        t.fs.ns
            .set_flags(&m, readonly, flags, fs_options, sb_readonly);
        return Ok(0);
    }
    if flags & libc::MS_MOVE != 0 && flags & (MS_BIND | MS_PROPAGATION) == 0 {
        return move_mount_old(t, source, &dir);
    }
    if flags & MS_PROPAGATION != 0 {
        // Exactly one propagation type per call.
        if flags & !(MS_PROPAGATION | MS_REC | libc::MS_SILENT) != 0
            || (flags & MS_PROPAGATION).count_ones() != 1
        {
            return Err(Errno::EINVAL);
        }
        let m = mount_rooted_at(t, &dir).ok_or(Errno::EINVAL)?;
        let kind = match flags & MS_PROPAGATION {
            libc::MS_SHARED => Propagation::Shared,
            libc::MS_SLAVE => Propagation::Slave,
            libc::MS_UNBINDABLE => Propagation::Unbindable,
            _ => Propagation::Private,
        };
        t.fs.ns.set_propagation(&m, kind, flags & MS_REC != 0);
        return Ok(0);
    }
    let unknown = flags & !(MS_RDONLY | MS_BIND | MS_IGNORED);
    if unknown != 0 {
        log::debug!("mount: unsupported flags {unknown:#x}");
        return Err(Errno::EINVAL);
    }
    if dir.path == b"/" {
        // The root mount cannot be covered in the sentry's namespace.
        return Err(Errno::EBUSY);
    }

    let mut opts = MountOpts {
        readonly,
        flags,
        ..MountOpts::default()
    };
    // The mounts a recursive bind copies along with its root.
    let mut subtree = Vec::new();
    let mut bound_from = Vec::new();
    let (root, fs_type, source): (Arc<dyn Inode>, &'static str, String) = if flags & MS_BIND != 0 {
        let src_path = t.mm.read_cstring(source, PATH_MAX)?;
        let src = resolve(t, &src_path, true)?;
        let src_dir = src.inode.file_type()? == FileType::Directory;
        // A directory goes only onto a directory, anything else only onto a non-directory.
        if src_dir != (dir.inode.file_type()? == FileType::Directory) {
            return Err(Errno::ENOTDIR);
        }
        opts.readonly |= src.mount.readonly;
        opts.sb_readonly = Some(src.mount.sb_readonly);
        opts.flags |= src.mount.flags;
        opts.root_path = bind_root_path(&src);
        opts.fs_options = src.mount.fs_options.clone();
        // A bind of a shared mount is its peer, of a slave a slave of the same master.
        // Nothing is bound out of a mount unmounted since (or of no namespace).
        let now = t.fs.ns.find(src.mount.id).ok_or(Errno::EINVAL)?;
        opts.group = now.group;
        opts.master = now.master;
        opts.locked_flags = now.locked_flags;
        let below: Vec<_> =
            t.fs.ns
                .submounts(&now)
                .into_iter()
                .filter(|s| rebase(&s.path, &src.path, b"/").is_some())
                .collect();
        if flags & MS_REC != 0 {
            subtree = below;
        } else if below.iter().any(|s| s.locked) {
            // A plain bind would reveal what the locked mounts cover.
            return Err(Errno::EINVAL);
        }
        bound_from = src.path.clone();
        (
            src.inode.clone(),
            src.mount.fs_type,
            src.mount.source.clone(),
        )
    } else {
        if dir.inode.file_type()? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let fstype = read_opt_string(t, fstype)?.ok_or(Errno::EINVAL)?;
        let source = read_opt_string(t, source)?.unwrap_or_else(|| "none".into());
        let data = read_opt_string(t, data)?.unwrap_or_default();
        let (root, fs_type, fs_options) = new_filesystem(t, &fstype, &data, Some(&dir))?;
        opts.fs_options = fs_options;
        opts.root_path = new_root_path(&root);
        (root, fs_type, source)
    };
    let subs: Vec<(Vec<u8>, Arc<Mount>)> = subtree
        .into_iter()
        .filter_map(|s| Some((rebase(&s.path, &bound_from, &dir.path)?, s)))
        .collect();
    let m =
        t.fs.ns
            .mount_tree(&dir.path, root, fs_type, &source, opts, &subs)?;
    log::debug!("mounted {m:?}");
    Ok(0)
}

/// A new filesystem of type `fstype` with the options `data` (mount(2)'s, or fsconfig(2)'s
/// joined): its root, its type's name and the options mountinfo shows for it. `at` is where
/// mount(2) puts it. An unknown type is ENODEV.
pub(super) fn new_filesystem(
    t: &Task,
    fstype: &str,
    data: &str,
    at: Option<&Dentry>,
) -> Result<(Arc<dyn Inode>, &'static str, String), Errno> {
    Ok(match fstype {
        "tmpfs" => {
            let tmp_opts = TmpfsOptions::parse(data, mem_bytes())?;
            let root = TmpFs::new_root_mounted(&t.kernel.memory, &tmp_opts, mem_bytes());
            let o = root.fs_options();
            (root, "tmpfs", o)
        }
        "devpts" => {
            let opts = DevPtsOptions::parse(data)?;
            let fs = DevPts::new(&t.kernel.memory, opts)?;
            (fs.root(), "devpts", String::new())
        }
        "proc" => (
            proc::new_proc(Arc::downgrade(&t.kernel), t.pidns().clone()),
            "proc",
            String::new(),
        ),
        "overlay" => (overlay_root(t, data)?, "overlay", String::new()),
        "cgroup2" => {
            cgroup2_options(data)?;
            // The one hierarchy again where it is already mounted.
            if at.is_some_and(|d| mount_rooted_at(t, d).is_some_and(|m| m.fs_type == "cgroup2")) {
                return Err(Errno::EBUSY);
            }
            // nsdelegate is the hierarchy's: a mount from the initial cgroup namespace sets
            // or clears it, one from another namespace leaves it (Linux ignores it there).
            let h = &t.kernel.cgroups;
            if Arc::ptr_eq(&t.ns.cgroup, h.initial_ns()) {
                let on = data.split(',').any(|o| o == "nsdelegate");
                h.nsdelegate.store(on, std::sync::atomic::Ordering::Relaxed);
            }
            let opts = if h.nsdelegate.load(std::sync::atomic::Ordering::Relaxed) {
                ",nsdelegate"
            } else {
                ""
            };
            // Rooted at the caller's cgroup namespace root.
            let root = (*t.ns.cgroup).clone();
            (
                cgroupfs::new_root(&t.kernel, root),
                "cgroup2",
                opts.to_string(),
            )
        }
        "mqueue" => (
            crate::kernel::ipc::mq::fs::new_root(&t.ns.ipc),
            "mqueue",
            String::new(),
        ),
        "cgroup" => {
            // cgroup v1 is not offered; a controller the v2 hierarchy uses could not
            // move to a v1 hierarchy anyway.
            let busy = data
                .split(',')
                .any(|c| cgroupfs::controller_in_use(&t.kernel, c));
            return Err(if busy { Errno::EBUSY } else { Errno::ENODEV });
        }
        // `fuse.NAME`: NAME is the daemon's name for itself (sshfs, bindfs...).
        s if s == "fuse" || s.starts_with("fuse.") => {
            let name = crate::fs::fuse::type_name(s);
            let (root, o) = crate::fs::fuse::mount(data, |fd| t.fds.get_io(fd))?;
            (root, name, o)
        }
        _ => return Err(Errno::ENODEV),
    })
}

/// Where a new filesystem's root `root` is within it: a `cgroup2` mount made in a cgroup
/// namespace is rooted at the namespace's cgroup (mountinfo shows its path); else `/`
/// (empty).
pub(super) fn new_root_path(root: &Arc<dyn Inode>) -> Vec<u8> {
    cgroupfs::cgroup_of(root).map_or_else(Vec::new, |cg| cg.path.clone().into_bytes())
}

/// Whether mount(2) and fsopen(2) know the filesystem type `name`.
pub(super) fn known_filesystem(name: &str) -> bool {
    matches!(
        name,
        "tmpfs" | "devpts" | "proc" | "overlay" | "cgroup2" | "mqueue" | "cgroup"
    )
}

/// Where the bind source `src` is within its filesystem: its path below its mount's
/// mountpoint, under that mount's own root.
pub(super) fn bind_root_path(src: &Dentry) -> Vec<u8> {
    let below = if src.mount.path == b"/" {
        &src.path[..]
    } else {
        src.path.strip_prefix(&src.mount.path[..]).unwrap_or(b"")
    };
    let mut p = src.mount.root_path.clone();
    let below = below.strip_prefix(b"/").unwrap_or(below);
    if !below.is_empty() {
        if p != b"/" {
            p.push(b'/');
        }
        p.extend_from_slice(below);
    }
    p
}

/// The root of a new overlay from its options: one `lowerdir`, and an `upperdir` that is a
/// tmpfs directory (the sentry's overlay keeps its upper layer in tmpfs); `workdir` must
/// name a directory and is otherwise unused. Anything else is EINVAL.
fn overlay_root(t: &Task, data: &str) -> Result<Arc<dyn Inode>, Errno> {
    let (mut lower, mut upper, mut work) = (None, None, None);
    for opt in data.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        match k {
            "lowerdir" => lower = Some(v),
            "upperdir" => upper = Some(v),
            "workdir" => work = Some(v),
            _ => {
                log::debug!("mount overlay: unsupported option {opt}");
                return Err(Errno::EINVAL);
            }
        }
    }
    let (Some(lower), Some(upper), Some(work)) = (lower, upper, work) else {
        return Err(Errno::EINVAL);
    };
    if lower.contains(':') {
        // Several lower layers are not supported.
        return Err(Errno::EINVAL);
    }
    let dir = |p: &str| -> Result<Arc<Dentry>, Errno> {
        let d = resolve(t, p.as_bytes(), true)?;
        if d.inode.file_type()? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(d)
    };
    let lower = dir(lower)?;
    let upper = dir(upper)?;
    dir(work)?;
    let upper = upper
        .inode
        .clone()
        .as_any()
        .downcast::<TmpNode>()
        .map_err(|_| Errno::EINVAL)?;
    Ok(overlay::new_overlay_on(lower.inode.clone(), upper))
}

/// cgroup2 mount options: Linux's are accepted (one hierarchy is shared by every mount, and
/// none of them changes what the sandbox does), anything else is EINVAL.
pub(super) fn cgroup2_options(data: &str) -> Result<(), Errno> {
    const KNOWN: [&str; 6] = [
        "nsdelegate",
        "favordynmods",
        "memory_localevents",
        "memory_recursiveprot",
        "memory_hugetlb_accounting",
        "pids_localevents",
    ];
    let ok = data
        .split(',')
        .filter(|o| !o.is_empty())
        .all(|o| KNOWN.contains(&o));
    if ok {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Whether some task has a file, cwd or root inside one of `mounts`.
fn busy(t: &Task, mounts: &[Arc<Mount>]) -> bool {
    let ids: Vec<u64> = mounts.iter().map(|m| m.id).collect();
    let inside = |d: &Dentry| ids.contains(&d.mount.id);
    let views: Vec<_> = {
        let tree = t.kernel.tree();
        tree.tasks
            .values()
            .filter_map(|h| h.view.lock().unwrap().clone())
            .collect()
    };
    views.iter().any(|v| {
        inside(&v.fs.cwd())
            || inside(&v.fs.root())
            || v.fds.fds().into_iter().any(|fd| {
                v.fds
                    .get(fd)
                    .ok()
                    .and_then(|f| f.dentry.clone())
                    .is_some_and(|d| inside(&d))
            })
    })
}

/// Whether `path` is `dir` or below it.
fn at_or_under(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// pivot_root(2): the mount at `new_root` becomes the caller's root mount, and the old root
/// mount moves to `put_old`; every task of the namespace whose root or cwd was the old root
/// gets the new one. As Linux's, the current root must be a mount's root and not the
/// namespace's own root mount (which has no parent), `new_root` a mount's root below it on
/// another mount, and `put_old` at or below `new_root`, not on the root's mount.
pub fn pivot_root(t: &mut Task, new_root: PathArg, put_old: PathArg) -> SysResult {
    check_admin(t)?;
    let new_path = t.mm.read_cstring(new_root.0, PATH_MAX)?;
    let old_path = t.mm.read_cstring(put_old.0, PATH_MAX)?;
    let new = resolve(t, &new_path, true)?;
    if new.inode.file_type()? != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let put = resolve(t, &old_path, true)?;
    if put.inode.file_type()? != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let root = t.fs.root();
    // Nothing moves out of or onto shared mounts.
    let ns = t.fs.ns.clone();
    let current = |id: u64| ns.mounts().into_iter().find(|m| m.id == id);
    let shared_parent = |id: u64| {
        current(id)
            .and_then(|m| m.parent_in(&ns))
            .is_some_and(|p| p.shared())
    };
    if current(put.mount.id).is_some_and(|m| m.shared())
        || shared_parent(new.mount.id)
        || shared_parent(root.mount.id)
    {
        return Err(Errno::EINVAL);
    }
    if new.mount.id == root.mount.id || put.mount.id == root.mount.id {
        return Err(Errno::EBUSY);
    }
    let root_mnt = mount_rooted_at(t, &root).ok_or(Errno::EINVAL)?;
    if root_mnt.path == b"/" {
        return Err(Errno::EINVAL);
    }
    let new_mnt = mount_rooted_at(t, &new).ok_or(Errno::EINVAL)?;
    if new_mnt.locked {
        return Err(Errno::EINVAL);
    }
    if !at_or_under(&put.path, &new.path)
        || !at_or_under(&new.path, &root.path)
        || new.path == root.path
    {
        return Err(Errno::EINVAL);
    }
    let (new_mnt, _) = ns.pivot(&root_mnt, &new_mnt, &put.path, put.mount.id);
    let new_root_dentry = Arc::new(Dentry {
        inode: new_mnt.root.clone(),
        parent: root.parent.clone(),
        name: root.name.clone(),
        path: new_mnt.path.clone(),
        mount: new_mnt.clone(),
    });
    // The old root becomes the new one; others inside either moved tree are found again.
    follow_moves(t, &ns, |d| {
        (d.mount.id == root_mnt.id
            && std::ptr::addr_eq(Arc::as_ptr(&d.inode), Arc::as_ptr(&root_mnt.root)))
        .then(|| new_root_dentry.clone())
    });
    Ok(0)
}

/// After mounts moved: every task root and cwd in namespace `ns` is replaced by what
/// `special` gives for it, or found again at its mount's new place.
pub(super) fn follow_moves(
    t: &Task,
    ns: &Arc<MountNamespace>,
    special: impl Fn(&Arc<Dentry>) -> Option<Arc<Dentry>>,
) {
    let views: Vec<_> = {
        let tree = t.kernel.tree();
        tree.tasks
            .values()
            .filter_map(|h| h.view.lock().unwrap().clone())
            .collect()
    };
    let mut seen: Vec<*const crate::vfs::FsContext> = Vec::new();
    for fs in views.iter().map(|v| &v.fs).chain(std::iter::once(&t.fs)) {
        if !Arc::ptr_eq(&fs.ns, ns) || seen.contains(&Arc::as_ptr(fs)) {
            continue;
        }
        seen.push(Arc::as_ptr(fs));
        let fix = |d: Arc<Dentry>| -> Arc<Dentry> {
            special(&d).or_else(|| relocate(ns, &d)).unwrap_or(d)
        };
        fs.set_root(fix(fs.root()));
        fs.set_cwd(fix(fs.cwd()));
    }
}

/// mount(2) with MS_MOVE: the mount rooted at `source` (with everything mounted on it) moves
/// onto `dir`. EINVAL unless `source` is a mount's root other than the namespace's; ELOOP
/// onto its own tree; ENOTDIR between a directory and a non-directory.
fn move_mount_old(t: &mut Task, source: UserAddr, dir: &Arc<Dentry>) -> SysResult {
    let src_path = t.mm.read_cstring(source, PATH_MAX)?;
    let src = resolve(t, &src_path, true)?;
    let m = mount_rooted_at(t, &src).ok_or(Errno::EINVAL)?;
    if m.path == b"/" {
        return Err(Errno::EINVAL);
    }
    if (src.inode.file_type()? == FileType::Directory)
        != (dir.inode.file_type()? == FileType::Directory)
    {
        return Err(Errno::ENOTDIR);
    }
    let ns = t.fs.ns.clone();
    if m.parent_in(&ns).is_some_and(|p| p.shared()) {
        return Err(Errno::EINVAL);
    }
    let subtree = ns.submounts(&m);
    if dir.mount.id == m.id || subtree.iter().any(|x| x.id == dir.mount.id) {
        return Err(Errno::ELOOP);
    }
    if dir.path == b"/" {
        return Err(Errno::EBUSY);
    }
    ns.move_mount(&m, &dir.path);
    follow_moves(t, &ns, |_| None);
    Ok(0)
}

/// `d` found again after pivot_root moved its mount: its path rebased onto the mount's new
/// place, its parent walked to afresh. None when its mount did not move.
fn relocate(ns: &Arc<MountNamespace>, d: &Dentry) -> Option<Arc<Dentry>> {
    let now = ns.mounts().into_iter().find(|m| m.id == d.mount.id)?;
    if now.path == d.mount.path {
        return None;
    }
    let path = rebase(&d.path, &d.mount.path, &now.path)?;
    let cut = path.iter().rposition(|&c| c == b'/')?;
    let parent_path = if cut == 0 {
        b"/".to_vec()
    } else {
        path[..cut].to_vec()
    };
    let parent = Resolver::new(Caller::kernel(), ns.root(), ns)
        .resolve(ns.root(), &parent_path, false)
        .ok()?;
    Some(Arc::new(Dentry {
        inode: d.inode.clone(),
        parent: Some(parent),
        name: d.name.clone(),
        path,
        mount: now,
    }))
}

/// umount2(2)
pub fn umount2(t: &mut Task, target: PathArg, flags: i32) -> SysResult {
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0
        || (flags & MNT_EXPIRE != 0 && flags & (MNT_FORCE | MNT_DETACH) != 0)
    {
        return Err(Errno::EINVAL);
    }
    check_admin(t)?;
    let path = t.mm.read_cstring(target.0, PATH_MAX)?;
    let d = resolve(t, &path, flags & UMOUNT_NOFOLLOW == 0)?;
    // The topmost mount at that point: a mount stacked on the cwd is reached through ".".
    let m = if d.path == b"/" {
        mount_rooted_at(t, &d)
    } else {
        t.fs.ns.top_mount_over(&d)
    }
    .ok_or(Errno::EINVAL)?;
    if m.path == b"/" {
        return Err(Errno::EBUSY);
    }
    if m.locked {
        return Err(Errno::EINVAL);
    }
    if flags & MNT_EXPIRE != 0 {
        // Expiry marks are not kept: the first call would only mark the mount.
        return Err(Errno::EAGAIN);
    }
    let below = t.fs.ns.submounts(&m);
    if flags & MNT_DETACH == 0 {
        let mut all = below.clone();
        all.push(m.clone());
        // The caller's own cwd inside the mount also makes it busy, as on Linux.
        if !below.is_empty() || busy(t, &all) {
            return Err(Errno::EBUSY);
        }
    }
    // What propagation copied of them onto their parents' peers and slaves goes too.
    t.fs.ns.unmount_tree(&m, &below);
    Ok(0)
}
