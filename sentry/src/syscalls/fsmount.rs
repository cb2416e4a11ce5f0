//! The new mount API: fsopen(2), fsconfig(2) and fsmount(2) make a filesystem and a
//! detached mount of it; open_tree(2) names (or clones, detached) a mount tree; move_mount(2)
//! attaches a detached tree or moves an attached one; mount_setattr(2) changes a mount's
//! flags and propagation. The descriptors of mounts are `O_PATH` descriptors of their roots;
//! a detached tree is unmounted when the last one is closed without attaching it.

use std::sync::{Arc, Mutex};

use super::fd::nofile_limit;
use super::mount::{
    bind_root_path, cgroup2_options, check_admin, known_filesystem, mem_bytes, new_filesystem,
    new_root_path,
};
use super::path::{read_path, resolver, start_dir};
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult};
use crate::fs::devpts::DevPtsOptions;
use crate::fs::tmpfs::{TmpNode, TmpfsOptions};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::file::Stat;
use crate::vfs::{
    dir::PathFile, is_detached_path, Dentry, FileOps, FileType, Inode, Mount, MountOpts, OpenFile,
    Propagation,
};

const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;

const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_SET_BINARY: u32 = 2;
const FSCONFIG_SET_PATH: u32 = 3;
const FSCONFIG_SET_PATH_EMPTY: u32 = 4;
const FSCONFIG_SET_FD: u32 = 5;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSCONFIG_CMD_RECONFIGURE: u32 = 7;
const FSCONFIG_CMD_CREATE_EXCL: u32 = 8;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
/// The attributes fsmount(2) and mount_setattr(2) know.
const MOUNT_ATTR_KNOWN: u64 = MOUNT_ATTR_RDONLY
    | MOUNT_ATTR_NOSUID
    | MOUNT_ATTR_NODEV
    | MOUNT_ATTR_NOEXEC
    | MOUNT_ATTR__ATIME
    | MOUNT_ATTR_NODIRATIME
    | MOUNT_ATTR_IDMAP
    | MOUNT_ATTR_NOSYMFOLLOW;

const MOVE_MOUNT_F_SYMLINKS: u32 = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_SYMLINKS: u32 = 0x10;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const MOVE_MOUNT_MASK: u32 = 0x77;

const OPEN_TREE_CLONE: u64 = 1;
const AT_RECURSIVE: u64 = 0x8000;
const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
const AT_NO_AUTOMOUNT: u64 = libc::AT_NO_AUTOMOUNT as u64;

/// `struct mount_attr`'s first version: attr_set, attr_clr, propagation, userns_fd.
const MOUNT_ATTR_SIZE_VER0: usize = 32;

/// The `MS_*` mount flags and read-only mark for `MOUNT_ATTR_*` bits.
fn attr_to_flags(attr: u64) -> (bool, u64) {
    let mut flags = 0;
    for (a, f) in [
        (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
        (MOUNT_ATTR_NODEV, libc::MS_NODEV),
        (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
        (MOUNT_ATTR_NODIRATIME, libc::MS_NODIRATIME),
    ] {
        if attr & a != 0 {
            flags |= f;
        }
    }
    match attr & MOUNT_ATTR__ATIME {
        MOUNT_ATTR_NOATIME => flags |= libc::MS_NOATIME,
        MOUNT_ATTR_STRICTATIME => flags |= libc::MS_STRICTATIME,
        _ => {}
    }
    (attr & MOUNT_ATTR_RDONLY != 0, flags)
}

/// Where an fs context is in its life.
enum Phase {
    /// Taking parameters.
    Params,
    /// Created: the filesystem's root, type and options; `mounted` once fsmount took it,
    /// with whether it made the filesystem read-only.
    Created {
        root: Arc<dyn Inode>,
        fs_type: &'static str,
        fs_options: String,
        mounted: Option<bool>,
    },
}

struct FsConfig {
    fs_type: String,
    source: Option<String>,
    /// `key` and `key=value` parameters, in order, for the filesystem's option parser.
    params: Vec<String>,
    readonly: bool,
    phase: Phase,
}

/// An fs context descriptor (fsopen).
struct FsContextFile {
    state: Mutex<FsConfig>,
}

impl FileOps for FsContextFile {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }
}

/// The fs context open at `fd`: EBADF for no file, EINVAL for another kind.
fn fs_context(t: &Task, fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = t.fds.get(fd)?;
    let is_ctx = f
        .ops()
        .checkpoint_any()
        .is_some_and(|a| a.is::<FsContextFile>());
    if is_ctx {
        Ok(f)
    } else {
        Err(Errno::EINVAL)
    }
}

fn with_context<R>(f: &OpenFile, op: impl FnOnce(&mut FsConfig) -> R) -> R {
    let ctx = f
        .ops()
        .checkpoint_any()
        .and_then(|a| a.downcast_ref::<FsContextFile>())
        .expect("checked by fs_context");
    op(&mut ctx.state.lock().unwrap())
}

fn read_string(t: &Task, addr: UserAddr) -> Result<String, Errno> {
    if addr.is_null() {
        return Err(Errno::EINVAL);
    }
    let raw = t.mm.read_cstring(addr, 4096)?;
    String::from_utf8(raw).map_err(|_| Errno::EINVAL)
}

/// fsopen(2)
pub fn fsopen(t: &mut Task, fsname: UserAddr, flags: u32) -> SysResult {
    check_admin(t)?;
    if flags & !FSOPEN_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_string(t, fsname)?;
    if !known_filesystem(&name) || name == "cgroup" {
        return Err(Errno::ENODEV);
    }
    let file = OpenFile::new(
        Arc::new(FsContextFile {
            state: Mutex::new(FsConfig {
                fs_type: name,
                source: None,
                params: Vec::new(),
                readonly: false,
                phase: Phase::Params,
            }),
        }),
        libc::O_RDWR as u32,
    );
    let limit = nofile_limit(t);
    Ok(t.fds.install(file, 0, flags & FSOPEN_CLOEXEC != 0, limit)? as u64)
}

/// A parameter's errors, found when it is set as Linux's filesystems parse each one then:
/// tmpfs, devpts and cgroup2 parameters; proc's and overlay's are checked at creation.
fn check_param(fs_type: &str, param: &str) -> Result<(), Errno> {
    match fs_type {
        "tmpfs" => TmpfsOptions::parse(param, mem_bytes()).map(drop),
        "devpts" => DevPtsOptions::parse(param).map(drop),
        "cgroup2" => cgroup2_options(param),
        _ => Ok(()),
    }
}

/// fsconfig(2): string and flag parameters; the filesystem is made by FSCONFIG_CMD_CREATE
/// and reconfigured (a tmpfs's limits) by FSCONFIG_CMD_RECONFIGURE; changing whether a
/// filesystem already mounted is read-only is EOPNOTSUPP. Binary, path and fd parameters
/// are EINVAL: no filesystem here takes one.
pub fn fsconfig(
    t: &mut Task,
    fd: Fd,
    cmd: u32,
    key: UserAddr,
    value: UserAddr,
    aux: i32,
) -> SysResult {
    let f = fs_context(t, fd.0)?;
    match cmd {
        FSCONFIG_SET_FLAG => {
            if !value.is_null() || aux != 0 {
                return Err(Errno::EINVAL);
            }
            let key = read_string(t, key)?;
            with_context(&f, |c| {
                match key.as_str() {
                    "ro" => c.readonly = true,
                    "rw" => c.readonly = false,
                    "source" => return Err(Errno::EINVAL),
                    _ => {
                        check_param(&c.fs_type, &key)?;
                        c.params.push(key);
                    }
                }
                Ok(0)
            })
        }
        FSCONFIG_SET_STRING => {
            if aux != 0 {
                return Err(Errno::EINVAL);
            }
            let key = read_string(t, key)?;
            let value = read_string(t, value)?;
            with_context(&f, |c| {
                if key == "source" {
                    if c.source.is_some() {
                        return Err(Errno::EINVAL);
                    }
                    c.source = Some(value);
                } else {
                    let param = format!("{key}={value}");
                    check_param(&c.fs_type, &param)?;
                    c.params.push(param);
                }
                Ok(0)
            })
        }
        FSCONFIG_SET_BINARY | FSCONFIG_SET_PATH | FSCONFIG_SET_PATH_EMPTY | FSCONFIG_SET_FD => {
            Err(Errno::EINVAL)
        }
        FSCONFIG_CMD_CREATE | FSCONFIG_CMD_CREATE_EXCL => {
            if !key.is_null() || !value.is_null() || aux != 0 {
                return Err(Errno::EINVAL);
            }
            let (fs_type, data) = with_context(&f, |c| match c.phase {
                Phase::Params => Ok((c.fs_type.clone(), c.params.join(","))),
                Phase::Created { .. } => Err(Errno::EBUSY),
            })?;
            let (root, fs_type, fs_options) = new_filesystem(t, &fs_type, &data, None)?;
            with_context(&f, |c| {
                c.phase = Phase::Created {
                    root,
                    fs_type,
                    fs_options,
                    mounted: None,
                };
                c.params.clear();
            });
            Ok(0)
        }
        FSCONFIG_CMD_RECONFIGURE => {
            if !key.is_null() || !value.is_null() || aux != 0 {
                return Err(Errno::EINVAL);
            }
            check_admin(t)?;
            with_context(&f, |c| {
                let Phase::Created { root, mounted, .. } = &c.phase else {
                    return Err(Errno::EBUSY);
                };
                // The read-only state of a mounted filesystem lives in its mounts here, not in
                // a superblock a reconfiguration could change: refused rather than ignored.
                if mounted.is_some_and(|ro| ro != c.readonly) {
                    return Err(Errno::EOPNOTSUPP);
                }
                if let Ok(node) = root.clone().as_any().downcast::<TmpNode>() {
                    let data = c.params.join(",");
                    node.reconfigure(&TmpfsOptions::parse(&data, mem_bytes())?)?;
                }
                c.params.clear();
                Ok(0)
            })
        }
        _ => Err(Errno::EOPNOTSUPP),
    }
}

/// An `O_PATH` descriptor of the root of the mount `m` (holding `hold` while open).
fn install_mount_fd(
    t: &Task,
    m: &Arc<Mount>,
    hold: Option<Arc<crate::vfs::DetachedTree>>,
    cloexec: bool,
) -> SysResult {
    let d = Arc::new(Dentry {
        inode: m.root.clone(),
        parent: None,
        name: Vec::new(),
        path: m.path.clone(),
        mount: m.clone(),
    });
    install_path_fd(t, d, hold, cloexec)
}

fn install_path_fd(
    t: &Task,
    d: Arc<Dentry>,
    hold: Option<Arc<crate::vfs::DetachedTree>>,
    cloexec: bool,
) -> SysResult {
    let ops = match hold {
        Some(h) => PathFile::holding(d.clone(), h),
        None => PathFile::new(d.clone()),
    };
    let mut flags = libc::O_PATH as u32;
    if d.inode.file_type()? == FileType::Directory {
        flags |= libc::O_DIRECTORY as u32;
    }
    let file = OpenFile::with_dentry(Arc::new(ops), flags, d);
    let limit = nofile_limit(t);
    Ok(t.fds.install(file, 0, cloexec, limit)? as u64)
}

/// fsmount(2)
pub fn fsmount(t: &mut Task, fd: Fd, flags: u32, attr: u32) -> SysResult {
    check_admin(t)?;
    if flags & !FSMOUNT_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let attr = u64::from(attr);
    if attr & !(MOUNT_ATTR_KNOWN & !MOUNT_ATTR_IDMAP) != 0 {
        return Err(Errno::EINVAL);
    }
    let atime = attr & MOUNT_ATTR__ATIME;
    if atime != 0 && atime != MOUNT_ATTR_NOATIME && atime != MOUNT_ATTR_STRICTATIME {
        return Err(Errno::EINVAL);
    }
    let f = fs_context(t, fd.0)?;
    let (root, fs_type, fs_options, source, sb_readonly) = with_context(&f, |c| {
        let source = c.source.clone().unwrap_or_else(|| "none".into());
        match &mut c.phase {
            Phase::Params => Err(Errno::EINVAL),
            Phase::Created {
                mounted: Some(_), ..
            } => Err(Errno::EBUSY),
            Phase::Created {
                root,
                fs_type,
                fs_options,
                mounted,
            } => {
                *mounted = Some(c.readonly);
                Ok((
                    root.clone(),
                    *fs_type,
                    fs_options.clone(),
                    source,
                    c.readonly,
                ))
            }
        }
    })?;
    let (ro, mflags) = attr_to_flags(attr);
    let opts = MountOpts {
        readonly: ro || sb_readonly,
        sb_readonly: Some(sb_readonly),
        flags: mflags,
        root_path: new_root_path(&root),
        fs_options,
        ..MountOpts::default()
    };
    let (m, hold) = t.fs.ns.mount_detached(root, fs_type, &source, opts);
    install_mount_fd(t, &m, Some(hold), flags & FSMOUNT_CLOEXEC != 0)
}

/// Resolves `(dirfd, path)` for the new mount API: an empty path names `dirfd` itself only
/// with `empty` (else ENOENT).
fn lookup(
    t: &Task,
    dirfd: Fd,
    path: &[u8],
    follow: bool,
    empty: bool,
) -> Result<Arc<Dentry>, Errno> {
    if path.is_empty() {
        if !empty {
            return Err(Errno::ENOENT);
        }
        if dirfd.0 == libc::AT_FDCWD {
            return Ok(t.fs.cwd());
        }
        return t.fds.get(dirfd.0)?.dentry.clone().ok_or(Errno::EINVAL);
    }
    let start = start_dir(t, dirfd, path)?;
    resolver(t).resolve(start, path, follow)
}

/// The mount `d` is the root of, as it is now (attached or detached).
fn mount_of_root(t: &Task, d: &Dentry) -> Option<Arc<Mount>> {
    let now = t.fs.ns.find(d.mount.id)?;
    std::ptr::addr_eq(Arc::as_ptr(&now.root), Arc::as_ptr(&d.inode)).then_some(now)
}

/// open_tree(2)
pub fn open_tree(t: &mut Task, dirfd: Fd, path: PathArg, flags: Flags) -> SysResult {
    let flags = flags.0;
    let known = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as u64
        | AT_EMPTY_PATH
        | AT_NO_AUTOMOUNT
        | AT_RECURSIVE
        | AT_SYMLINK_NOFOLLOW;
    if flags & !known != 0 || (flags & AT_RECURSIVE != 0 && flags & OPEN_TREE_CLONE == 0) {
        return Err(Errno::EINVAL);
    }
    let clone = flags & OPEN_TREE_CLONE != 0;
    if clone {
        check_admin(t)?;
    }
    let p = read_path(t, path)?;
    let d = lookup(
        t,
        dirfd,
        &p,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    let cloexec = flags & libc::O_CLOEXEC as u64 != 0;
    if !clone {
        return install_path_fd(t, d, None, cloexec);
    }
    // The mount must still be mounted (not unmounted, even lazily).
    let m = t.fs.ns.find(d.mount.id).ok_or(Errno::EINVAL)?;
    let (copy, hold) = t.fs.ns.clone_tree(
        &m,
        d.inode.clone(),
        &d.path,
        bind_root_path(&d),
        flags & AT_RECURSIVE != 0,
    );
    install_mount_fd(t, &copy, Some(hold), cloexec)
}

/// move_mount(2): the mount rooted at the source (a detached tree's root, or an attached
/// mount as MS_MOVE moves it) goes onto the target.
pub fn move_mount(
    t: &mut Task,
    from_dirfd: Fd,
    from_path: PathArg,
    to_dirfd: Fd,
    to_path: PathArg,
    flags: u32,
) -> SysResult {
    if flags & !MOVE_MOUNT_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    check_admin(t)?;
    let fp = read_path(t, from_path)?;
    let tp = read_path(t, to_path)?;
    let src = lookup(
        t,
        from_dirfd,
        &fp,
        flags & MOVE_MOUNT_F_SYMLINKS != 0,
        flags & MOVE_MOUNT_F_EMPTY_PATH != 0,
    )?;
    let dst = lookup(
        t,
        to_dirfd,
        &tp,
        flags & MOVE_MOUNT_T_SYMLINKS != 0,
        flags & MOVE_MOUNT_T_EMPTY_PATH != 0,
    )?;
    let m = mount_of_root(t, &src).ok_or(Errno::EINVAL)?;
    if m.path == b"/" {
        return Err(Errno::EINVAL);
    }
    // Out of a detached tree only its root moves.
    if is_detached_path(&m.path) && m.parent != 0 {
        return Err(Errno::EINVAL);
    }
    // The target must be where it was walked to (not in a tree unmounted since).
    if t.fs.ns.find(dst.mount.id).is_none() {
        return Err(Errno::ENOENT);
    }
    if (src.inode.file_type()? == FileType::Directory)
        != (dst.inode.file_type()? == FileType::Directory)
    {
        return Err(Errno::ENOTDIR);
    }
    let ns = t.fs.ns.clone();
    if m.parent_in(&ns).is_some_and(|p| p.shared()) {
        return Err(Errno::EINVAL);
    }
    let subtree = ns.submounts(&m);
    if dst.mount.id == m.id || subtree.iter().any(|x| x.id == dst.mount.id) {
        return Err(Errno::ELOOP);
    }
    if dst.path == b"/" {
        return Err(Errno::EBUSY);
    }
    ns.move_mount(&m, &dst.path);
    if !is_detached_path(&m.path) {
        super::mount::follow_moves(t, &ns, |_| None);
    }
    Ok(0)
}

/// mount_setattr(2): read-only, nosuid, nodev, noexec and the access-time mode of the mount
/// at the path (and with AT_RECURSIVE of every mount below it), and its propagation.
/// MOUNT_ATTR_IDMAP is EINVAL (no filesystem here maps IDs), as Linux's for such filesystems.
pub fn mount_setattr(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    flags: Flags,
    uattr: UserAddr,
    size: usize,
) -> SysResult {
    let flags = flags.0;
    if flags & !(AT_EMPTY_PATH | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    if size < MOUNT_ATTR_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let raw = t.mm.read_bytes(uattr, size)?;
    // A larger struct than this kernel's must have zeros in what it does not know.
    if raw[MOUNT_ATTR_SIZE_VER0..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let word = |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap());
    let (set, clr, propagation) = (word(0), word(1), word(2));
    if (set | clr) & !MOUNT_ATTR_KNOWN != 0 {
        return Err(Errno::EINVAL);
    }
    if (set | clr) & (MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSYMFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    // An access-time mode is set by clearing the whole field and giving one.
    if set & MOUNT_ATTR__ATIME != 0 && clr & MOUNT_ATTR__ATIME != MOUNT_ATTR__ATIME {
        return Err(Errno::EINVAL);
    }
    let propagation_ok = [
        0,
        libc::MS_SHARED,
        libc::MS_PRIVATE,
        libc::MS_SLAVE,
        libc::MS_UNBINDABLE,
    ]
    .contains(&propagation);
    if !propagation_ok {
        return Err(Errno::EINVAL);
    }
    check_admin(t)?;
    let p = read_path(t, path)?;
    let d = lookup(
        t,
        dirfd,
        &p,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    let m = mount_of_root(t, &d).ok_or(Errno::EINVAL)?;
    let ns = t.fs.ns.clone();
    let mut targets = vec![m.clone()];
    if flags & AT_RECURSIVE != 0 {
        targets.extend(ns.submounts(&m));
    }
    let (set_ro, set_flags) = attr_to_flags(set);
    let (clr_ro, mut clr_flags) = attr_to_flags(clr);
    if clr & MOUNT_ATTR__ATIME != 0 {
        clr_flags |= libc::MS_NOATIME | libc::MS_STRICTATIME | libc::MS_RELATIME;
    }
    if set != 0 || clr != 0 {
        for x in &targets {
            let Some(now) = ns.find(x.id) else { continue };
            let readonly = (now.readonly && !clr_ro) || set_ro;
            let mflags = (now.flags & !clr_flags) | set_flags;
            ns.set_flags(&now, readonly, mflags, None, None);
        }
    }
    if propagation != 0 {
        let kind = match propagation {
            libc::MS_SHARED => Propagation::Shared,
            libc::MS_SLAVE => Propagation::Slave,
            libc::MS_UNBINDABLE => Propagation::Unbindable,
            _ => Propagation::Private,
        };
        if let Some(now) = ns.find(m.id) {
            ns.set_propagation(&now, kind, flags & AT_RECURSIVE != 0);
        }
    }
    Ok(0)
}
