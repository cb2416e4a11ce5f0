//! Path-based file system calls: open family, stat family, access, directories, links,
//! renames, attributes, cwd/root, statfs.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult, Timespec, Timeval};
use crate::kernel::Task;
use crate::mm::usermem::{UserAddr, PATH_MAX};
use crate::vfs::dir::{DirFile, PathFile};
use crate::vfs::inode::{may_access, may_chown, RenameFlags, TimeSet};
use crate::vfs::inotify;
use crate::vfs::lock::{self, Lock};
use crate::vfs::{
    Caller, Dentry, FileType, FsStats, NewAttrs, NewNode, OpenFile, Resolver, SetAttr, Stat,
};

const AT_FDCWD: i32 = libc::AT_FDCWD;
const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
const AT_SYMLINK_FOLLOW: u64 = libc::AT_SYMLINK_FOLLOW as u64;
const AT_REMOVEDIR: u64 = libc::AT_REMOVEDIR as u64;
const AT_EACCESS: u64 = libc::AT_EACCESS as u64;
const AT_NO_AUTOMOUNT: u64 = libc::AT_NO_AUTOMOUNT as u64;
const AT_STATX_SYNC_TYPE: u64 = 0x6000;

pub(super) fn read_path(t: &Task, p: PathArg) -> Result<Vec<u8>, Errno> {
    t.mm.read_cstring(p.0, PATH_MAX)
}

pub(super) fn resolver(t: &Task) -> Resolver<'_> {
    Resolver::new(Caller::of(t), t.fs.root(), &t.fs.ns)
}

/// The directory a relative path starts from: the cwd or the directory open at `dirfd`.
pub(super) fn start_dir(t: &Task, dirfd: Fd, path: &[u8]) -> Result<Arc<Dentry>, Errno> {
    if path.first() == Some(&b'/') {
        return Ok(t.fs.root());
    }
    if dirfd.0 == AT_FDCWD {
        return Ok(t.fs.cwd());
    }
    let f = t.fds.get(dirfd.0)?;
    let d = f.dentry.clone().ok_or(Errno::ENOTDIR)?;
    if d.inode.file_type()? != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    Ok(d)
}

/// What a `*at` call with AT_EMPTY_PATH may name: a path, or an fd without one (a pipe).
enum Target {
    Path(Arc<Dentry>),
    File(Arc<OpenFile>),
}

impl Target {
    fn stat(&self) -> Result<Stat, Errno> {
        match self {
            Target::Path(d) => d.inode.stat(),
            Target::File(f) => f.ops().stat(),
        }
    }

    fn dentry(self) -> Result<Arc<Dentry>, Errno> {
        match self {
            Target::Path(d) => Ok(d),
            Target::File(_) => Err(Errno::EPERM),
        }
    }
}

/// Resolves `(dirfd, path)` for a `*at` call.
fn lookup_at(
    t: &Task,
    dirfd: Fd,
    path: &[u8],
    follow: bool,
    empty_ok: bool,
) -> Result<Target, Errno> {
    if path.is_empty() {
        if !empty_ok {
            return Err(Errno::ENOENT);
        }
        if dirfd.0 == AT_FDCWD {
            return Ok(Target::Path(t.fs.cwd()));
        }
        let f = t.fds.get(dirfd.0)?;
        return Ok(match &f.dentry {
            Some(d) => Target::Path(d.clone()),
            None => Target::File(f),
        });
    }
    let start = start_dir(t, dirfd, path)?;
    Ok(Target::Path(resolver(t).resolve(start, path, follow)?))
}

fn path_at(t: &Task, dirfd: Fd, p: PathArg, flags: u64) -> Result<Target, Errno> {
    let path = read_path(t, p)?;
    lookup_at(
        t,
        dirfd,
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )
}

fn check_writable_mount(d: &Dentry) -> Result<(), Errno> {
    if d.mount.readonly {
        Err(Errno::EROFS)
    } else {
        Ok(())
    }
}

fn nofile_limit(t: &Task) -> u64 {
    t.tg.limits.lock().unwrap()[libc::RLIMIT_NOFILE as usize].cur
}

/// openat2 RESOLVE_* flags.
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE_CACHED: u64 = 0x20;

/// Opens `path`, creating it with O_CREAT; installs the new fd.
fn do_open(t: &Task, dirfd: Fd, path: &[u8], flags: u32, mode: u32, resolve: u64) -> SysResult {
    let o = |f: i32| flags & f as u32 != 0;
    let tmpfile = o(libc::O_TMPFILE & !libc::O_DIRECTORY);
    if tmpfile {
        let acc = flags & libc::O_ACCMODE as u32;
        if flags & (libc::O_TMPFILE | libc::O_CREAT) as u32 != libc::O_TMPFILE as u32
            || (acc != libc::O_WRONLY as u32 && acc != libc::O_RDWR as u32)
        {
            return Err(Errno::EINVAL);
        }
    }
    // RESOLVE_BENEATH and RESOLVE_IN_ROOT resolve absolute paths against dirfd too.
    let scoped = resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0;
    let start = start_dir(t, dirfd, if scoped { b"" } else { path })?;
    let mut r = resolver(t);
    r.no_symlinks = resolve & RESOLVE_NO_SYMLINKS != 0;
    if resolve & RESOLVE_IN_ROOT != 0 {
        r.root = start.clone();
    } else if resolve & RESOLVE_BENEATH != 0 {
        r.beneath = Some(start.path.clone());
    }
    let follow = !o(libc::O_NOFOLLOW) && !r.no_symlinks;
    let cx = Caller::of(t);
    if tmpfile {
        let dir = r.resolve(start, path, follow)?;
        return open_tmpfile(t, dir, flags, mode);
    }
    let mut created = false;
    let dentry = if o(libc::O_CREAT) {
        let mut links = 0;
        let mut pn = r.walk_parent(start, path, &mut links)?;
        loop {
            if pn.name == b"." || pn.name == b".." || pn.trailing_slash {
                return Err(Errno::EISDIR);
            }
            match r.child(&pn.parent, &pn.name) {
                Ok(d) => {
                    if o(libc::O_EXCL) {
                        return Err(Errno::EEXIST);
                    }
                    if d.inode.file_type()? == FileType::Symlink {
                        if !follow {
                            return Err(Errno::ELOOP);
                        }
                        links += 1;
                        if links > crate::vfs::walk::MAX_SYMLINKS {
                            return Err(Errno::ELOOP);
                        }
                        if let Some(m) = d.inode.magic_link(&cx) {
                            break crate::vfs::walk::magic_dentry(pn.parent.clone(), &d, m?);
                        }
                        let target = d.inode.readlink(&cx)?;
                        pn = r.walk_parent(pn.parent.clone(), &target, &mut links)?;
                        continue;
                    }
                    break d;
                }
                Err(Errno::ENOENT) => {
                    check_writable_mount(&pn.parent)?;
                    let pst = pn.parent.inode.stat()?;
                    if !may_access(&pst, &t.creds, 3, false) {
                        return Err(Errno::EACCES);
                    }
                    let attrs = NewAttrs {
                        mode: mode & 0o7777 & !t.fs.umask(),
                        uid: t.creds.euid,
                        gid: t.creds.egid,
                    };
                    let inode = pn
                        .parent
                        .inode
                        .create(&cx, &pn.name, NewNode::Regular, attrs)?;
                    created = true;
                    inotify::created(&pn.parent, &pn.name, false);
                    break Arc::new(Dentry {
                        inode,
                        path: pn.parent.child_path(&pn.name),
                        name: pn.name.clone(),
                        mount: pn.parent.mount.clone(),
                        parent: Some(pn.parent.clone()),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    } else {
        r.resolve(start, path, follow)?
    };
    let st = dentry.inode.stat()?;
    let kind = FileType::from_mode(st.mode);
    let cloexec = o(libc::O_CLOEXEC);
    let limit = nofile_limit(t);
    if o(libc::O_PATH) {
        let keep = flags & (libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW) as u32;
        let file = OpenFile::with_dentry(Arc::new(PathFile::new(dentry.clone())), keep, dentry);
        return Ok(t.fds.install(file, 0, cloexec, limit)? as u64);
    }
    if kind == FileType::Symlink {
        return Err(Errno::ELOOP);
    }
    if o(libc::O_DIRECTORY) && kind != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let acc = flags & libc::O_ACCMODE as u32;
    let writes = acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32;
    if acc == libc::O_ACCMODE as u32 {
        return Err(Errno::EINVAL);
    }
    let ops: Arc<dyn crate::vfs::FileOps> = if kind == FileType::Directory {
        if writes || o(libc::O_CREAT) {
            return Err(Errno::EISDIR);
        }
        Arc::new(DirFile::new(dentry.clone()))
    } else {
        if writes || (o(libc::O_TRUNC) && kind == FileType::Regular) {
            check_writable_mount(&dentry)?;
        }
        let mask = if created {
            0
        } else {
            (if writes { 2 } else { 0 }) | if acc != libc::O_WRONLY as u32 { 4 } else { 0 }
        };
        if !may_access(&st, &t.creds, mask, false) {
            return Err(Errno::EACCES);
        }
        let ops = dentry.inode.open(&cx, flags)?;
        if o(libc::O_TRUNC) && kind == FileType::Regular && !created {
            let trunc = SetAttr {
                size: Some(0),
                ..SetAttr::default()
            };
            if st.size != 0 {
                dentry.inode.setattr(&trunc)?;
            }
            inotify::attr_changed(&dentry, &trunc);
        }
        ops
    };
    install_opened(t, ops, flags, dentry)
}

/// Installs a file just opened by path (IN_OPEN for inotify).
fn install_opened(
    t: &Task,
    ops: Arc<dyn crate::vfs::FileOps>,
    flags: u32,
    dentry: Arc<Dentry>,
) -> SysResult {
    // As Linux, an O_TMPFILE file keeps O_TMPFILE (O_DIRECTORY included) in F_GETFL.
    let keep = flags
        & !((libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC | libc::O_CLOEXEC)
            as u32);
    inotify::file_event(&dentry, inotify::IN_OPEN);
    let file = OpenFile::with_dentry(ops, keep | libc::O_LARGEFILE as u32, dentry);
    let cloexec = flags & libc::O_CLOEXEC as u32 != 0;
    Ok(t.fds.install(file, 0, cloexec, nofile_limit(t))? as u64)
}

/// `O_TMPFILE`: an unnamed regular file in the directory `dir`'s filesystem, linkable later
/// with `linkat` unless `O_EXCL` was given.
fn open_tmpfile(t: &Task, dir: Arc<Dentry>, flags: u32, mode: u32) -> SysResult {
    let st = dir.inode.stat()?;
    if FileType::from_mode(st.mode) != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    check_writable_mount(&dir)?;
    if !may_access(&st, &t.creds, 3, false) {
        return Err(Errno::EACCES);
    }
    let cx = Caller::of(t);
    let linkable = flags & libc::O_EXCL as u32 == 0;
    let inode = dir
        .inode
        .create_tmpfile(&cx, new_attrs(t, mode), linkable)?;
    let ino = inode.stat()?.ino;
    let name = format!("#{ino}").into_bytes();
    let mut path = dir.child_path(&name);
    path.extend_from_slice(b" (deleted)");
    let ops = inode.open(&cx, flags)?;
    let dentry = Arc::new(Dentry {
        inode,
        path,
        name,
        mount: dir.mount.clone(),
        parent: Some(dir),
    });
    install_opened(t, ops, flags, dentry)
}

/// open(2)
pub fn open(t: &mut Task, path: PathArg, flags: Flags, mode: u32) -> SysResult {
    let p = read_path(t, path)?;
    do_open(t, Fd(AT_FDCWD), &p, flags.0 as u32, mode, 0)
}

/// openat(2)
pub fn openat(t: &mut Task, dirfd: Fd, path: PathArg, flags: Flags, mode: u32) -> SysResult {
    let p = read_path(t, path)?;
    do_open(t, dirfd, &p, flags.0 as u32, mode, 0)
}

/// creat(2)
pub fn creat(t: &mut Task, path: PathArg, mode: u32) -> SysResult {
    let p = read_path(t, path)?;
    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32;
    do_open(t, Fd(AT_FDCWD), &p, flags, mode, 0)
}

/// `struct open_how`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2)
pub fn openat2(t: &mut Task, dirfd: Fd, path: PathArg, how: UserAddr, size: usize) -> SysResult {
    if size < size_of::<OpenHow>() {
        return Err(Errno::EINVAL);
    }
    // Linux refuses extension structures larger than a page.
    if size > crate::abi::PAGE_SIZE as usize {
        return Err(Errno::E2BIG);
    }
    if size > size_of::<OpenHow>() {
        let extra = t.mm.read_bytes(
            how.offset(size_of::<OpenHow>() as u64)?,
            size - size_of::<OpenHow>(),
        )?;
        if extra.iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
    }
    let h: OpenHow = t.mm.read_obj(how)?;
    let known = RESOLVE_NO_XDEV
        | RESOLVE_NO_MAGICLINKS
        | RESOLVE_NO_SYMLINKS
        | RESOLVE_BENEATH
        | RESOLVE_IN_ROOT
        | RESOLVE_CACHED;
    if h.resolve & !known != 0 || h.flags > u32::MAX as u64 || h.mode & !0o7777 != 0 {
        return Err(Errno::EINVAL);
    }
    if h.resolve & RESOLVE_BENEATH != 0 && h.resolve & RESOLVE_IN_ROOT != 0 {
        return Err(Errno::EINVAL);
    }
    if h.flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 == 0 && h.mode != 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    do_open(t, dirfd, &p, h.flags as u32, h.mode as u32, h.resolve)
}

fn write_stat(t: &Task, buf: UserAddr, st: &Stat) -> SysResult {
    t.mm.write_obj(buf, st)?;
    Ok(0)
}

/// stat(2)
pub fn stat(t: &mut Task, path: PathArg, buf: UserAddr) -> SysResult {
    let st = path_at(t, Fd(AT_FDCWD), path, 0)?.stat()?;
    write_stat(t, buf, &st)
}

/// lstat(2)
pub fn lstat(t: &mut Task, path: PathArg, buf: UserAddr) -> SysResult {
    let st = path_at(t, Fd(AT_FDCWD), path, AT_SYMLINK_NOFOLLOW)?.stat()?;
    write_stat(t, buf, &st)
}

/// newfstatat(2)
pub fn newfstatat(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    buf: UserAddr,
    flags: Flags,
) -> SysResult {
    if flags.0 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let st = path_at(t, dirfd, path, flags.0)?.stat()?;
    write_stat(t, buf, &st)
}

/// `struct statx_timestamp`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct StatxTime {
    sec: i64,
    nsec: u32,
    reserved: i32,
}

/// `struct statx`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Statx {
    mask: u32,
    blksize: u32,
    attributes: u64,
    nlink: u32,
    uid: u32,
    gid: u32,
    mode: u16,
    spare0: u16,
    ino: u64,
    size: u64,
    blocks: u64,
    attributes_mask: u64,
    atime: StatxTime,
    btime: StatxTime,
    ctime: StatxTime,
    mtime: StatxTime,
    rdev_major: u32,
    rdev_minor: u32,
    dev_major: u32,
    dev_minor: u32,
    mnt_id: u64,
    dio_mem_align: u32,
    dio_offset_align: u32,
    spare: [u64; 12],
}

/// statx(2)
pub fn statx(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    flags: Flags,
    mask: u32,
    buf: UserAddr,
) -> SysResult {
    if flags.0 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags.0 & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
    {
        return Err(Errno::EINVAL);
    }
    if mask & 0x8000_0000 != 0 {
        return Err(Errno::EINVAL);
    }
    let target = path_at(t, dirfd, path, flags.0)?;
    let mnt_id = match &target {
        Target::Path(d) => d.mount.id,
        Target::File(_) => 0,
    };
    let st = target.stat()?;
    let ts = |s: i64, ns: i64| StatxTime {
        sec: s,
        nsec: ns as u32,
        reserved: 0,
    };
    let out = Statx {
        mask: libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
        blksize: st.blksize as u32,
        nlink: st.nlink as u32,
        uid: st.uid,
        gid: st.gid,
        mode: st.mode as u16,
        ino: st.ino,
        size: st.size as u64,
        blocks: st.blocks as u64,
        atime: ts(st.atime, st.atime_nsec),
        ctime: ts(st.ctime, st.ctime_nsec),
        mtime: ts(st.mtime, st.mtime_nsec),
        rdev_major: libc::major(st.rdev),
        rdev_minor: libc::minor(st.rdev),
        dev_major: libc::major(st.dev),
        dev_minor: libc::minor(st.dev),
        mnt_id,
        ..Statx::default()
    };
    t.mm.write_obj(buf, &out)?;
    Ok(0)
}

fn do_access(t: &Task, dirfd: Fd, path: PathArg, mode: i32, flags: u64) -> SysResult {
    if mode & !7 != 0 || flags & !(AT_SYMLINK_NOFOLLOW | AT_EACCESS | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let target = path_at(t, dirfd, path, flags)?;
    let st = target.stat()?;
    let mode = mode as u32;
    if mode & 2 != 0 {
        if let Target::Path(d) = &target {
            if d.mount.readonly && FileType::from_mode(st.mode) != FileType::CharDevice {
                return Err(Errno::EROFS);
            }
        }
    }
    if mode != 0 && !may_access(&st, &t.creds, mode, flags & AT_EACCESS == 0) {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

/// access(2)
pub fn access(t: &mut Task, path: PathArg, mode: i32) -> SysResult {
    do_access(t, Fd(AT_FDCWD), path, mode, 0)
}

/// faccessat(2)
pub fn faccessat(t: &mut Task, dirfd: Fd, path: PathArg, mode: i32) -> SysResult {
    do_access(t, dirfd, path, mode, 0)
}

/// faccessat2(2)
pub fn faccessat2(t: &mut Task, dirfd: Fd, path: PathArg, mode: i32, flags: Flags) -> SysResult {
    do_access(t, dirfd, path, mode, flags.0)
}

/// getdents64(2)
pub fn getdents64(t: &mut Task, fd: Fd, buf: UserAddr, count: u32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    let mut off = f.offset.lock().unwrap();
    let (data, next) = f.ops().getdents(t, *off, count as usize)?;
    if !data.is_empty() {
        t.mm.write_bytes(buf, &data)?;
    }
    *off = next;
    drop(off);
    if let Some(d) = &f.dentry {
        inotify::file_event(d, inotify::IN_ACCESS);
    }
    Ok(data.len() as u64)
}

fn parent_of(t: &Task, dirfd: Fd, path: PathArg) -> Result<crate::vfs::walk::ParentAndName, Errno> {
    let p = read_path(t, path)?;
    let start = start_dir(t, dirfd, &p)?;
    resolver(t).resolve_parent(start, &p)
}

fn new_attrs(t: &Task, mode: u32) -> NewAttrs {
    NewAttrs {
        mode: mode & 0o7777 & !t.fs.umask(),
        uid: t.creds.euid,
        gid: t.creds.egid,
    }
}

fn make_node(t: &Task, dirfd: Fd, path: PathArg, node: NewNode, mode: u32) -> SysResult {
    let pn = parent_of(t, dirfd, path)?;
    if pn.name == b"." || pn.name == b".." {
        return Err(Errno::EEXIST);
    }
    if pn.trailing_slash && node != NewNode::Directory {
        return Err(Errno::ENOENT);
    }
    if resolver(t).child(&pn.parent, &pn.name).is_ok() {
        return Err(Errno::EEXIST);
    }
    check_writable_mount(&pn.parent)?;
    if !may_access(&pn.parent.inode.stat()?, &t.creds, 3, false) {
        return Err(Errno::EACCES);
    }
    let is_dir = node == NewNode::Directory;
    pn.parent
        .inode
        .create(&Caller::of(t), &pn.name, node, new_attrs(t, mode))?;
    inotify::created(&pn.parent, &pn.name, is_dir);
    Ok(0)
}

/// mkdir(2)
pub fn mkdir(t: &mut Task, path: PathArg, mode: u32) -> SysResult {
    make_node(t, Fd(AT_FDCWD), path, NewNode::Directory, mode)
}

/// mkdirat(2)
pub fn mkdirat(t: &mut Task, dirfd: Fd, path: PathArg, mode: u32) -> SysResult {
    make_node(t, dirfd, path, NewNode::Directory, mode)
}

fn do_mknod(t: &Task, dirfd: Fd, path: PathArg, mode: u32) -> SysResult {
    let node = match mode & libc::S_IFMT {
        0 | libc::S_IFREG => NewNode::Regular,
        libc::S_IFIFO => NewNode::Fifo,
        libc::S_IFSOCK => NewNode::Socket,
        libc::S_IFDIR => return Err(Errno::EINVAL),
        _ => return Err(Errno::EPERM),
    };
    make_node(t, dirfd, path, node, mode)
}

/// mknod(2)
pub fn mknod(t: &mut Task, path: PathArg, mode: u32, _dev: u64) -> SysResult {
    do_mknod(t, Fd(AT_FDCWD), path, mode)
}

/// mknodat(2)
pub fn mknodat(t: &mut Task, dirfd: Fd, path: PathArg, mode: u32, _dev: u64) -> SysResult {
    do_mknod(t, dirfd, path, mode)
}

/// symlink(2)
pub fn symlink(t: &mut Task, target: PathArg, path: PathArg) -> SysResult {
    symlinkat(t, target, Fd(AT_FDCWD), path)
}

/// symlinkat(2)
pub fn symlinkat(t: &mut Task, target: PathArg, dirfd: Fd, path: PathArg) -> SysResult {
    let tgt = read_path(t, target)?;
    if tgt.is_empty() {
        return Err(Errno::ENOENT);
    }
    make_node(t, dirfd, path, NewNode::Symlink(tgt), 0o777)
}

fn do_unlink(t: &Task, dirfd: Fd, path: PathArg, dir: bool) -> SysResult {
    let pn = parent_of(t, dirfd, path)?;
    match pn.name.as_slice() {
        b"." => return Err(if dir { Errno::EINVAL } else { Errno::EISDIR }),
        b".." => return Err(if dir { Errno::ENOTEMPTY } else { Errno::EISDIR }),
        _ => {}
    }
    let child = resolver(t).child(&pn.parent, &pn.name)?;
    let is_dir = child.inode.file_type()? == FileType::Directory;
    if !dir && pn.trailing_slash {
        return Err(if is_dir {
            Errno::EISDIR
        } else {
            Errno::ENOTDIR
        });
    }
    if !Arc::ptr_eq(&child.mount, &pn.parent.mount) {
        return Err(Errno::EBUSY);
    }
    check_writable_mount(&pn.parent)?;
    let before = inotify::before(Some(&child));
    pn.parent.inode.unlink(&Caller::of(t), &pn.name, dir)?;
    inotify::removed(&pn.parent, &pn.name, before);
    Ok(0)
}

/// unlink(2)
pub fn unlink(t: &mut Task, path: PathArg) -> SysResult {
    do_unlink(t, Fd(AT_FDCWD), path, false)
}

/// rmdir(2)
pub fn rmdir(t: &mut Task, path: PathArg) -> SysResult {
    do_unlink(t, Fd(AT_FDCWD), path, true)
}

/// unlinkat(2)
pub fn unlinkat(t: &mut Task, dirfd: Fd, path: PathArg, flags: Flags) -> SysResult {
    if flags.0 & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    do_unlink(t, dirfd, path, flags.0 & AT_REMOVEDIR != 0)
}

fn do_rename(
    t: &Task,
    olddir: Fd,
    old: PathArg,
    newdir: Fd,
    new: PathArg,
    flags: u64,
) -> SysResult {
    const NOREPLACE: u64 = 1;
    const EXCHANGE: u64 = 2;
    const WHITEOUT: u64 = 4;
    if flags & !(NOREPLACE | EXCHANGE | WHITEOUT) != 0
        || (flags & NOREPLACE != 0 && flags & EXCHANGE != 0)
    {
        return Err(Errno::EINVAL);
    }
    if flags & WHITEOUT != 0 {
        return Err(Errno::EINVAL);
    }
    let op = parent_of(t, olddir, old)?;
    let np = parent_of(t, newdir, new)?;
    for n in [&op.name, &np.name] {
        if n == b"." || n == b".." {
            return Err(Errno::EBUSY);
        }
    }
    let r = resolver(t);
    let src = r.child(&op.parent, &op.name)?;
    let src_dir = src.inode.file_type()? == FileType::Directory;
    if (op.trailing_slash || np.trailing_slash) && !src_dir {
        return Err(Errno::ENOTDIR);
    }
    if !Arc::ptr_eq(&op.parent.mount, &np.parent.mount) {
        return Err(Errno::EXDEV);
    }
    // Moving a mountpoint (a bind-mounted /etc/hosts, say) is EBUSY on Linux.
    if !Arc::ptr_eq(&src.mount, &op.parent.mount) {
        return Err(Errno::EBUSY);
    }
    let new_path = np.parent.child_path(&np.name);
    if new_path.len() > src.path.len()
        && new_path.starts_with(&src.path)
        && new_path[src.path.len()] == b'/'
    {
        return Err(Errno::EINVAL);
    }
    let dst = r.child(&np.parent, &np.name).ok();
    if let Some(dst) = &dst {
        if !Arc::ptr_eq(&dst.mount, &np.parent.mount) {
            return Err(Errno::EBUSY);
        }
    }
    check_writable_mount(&op.parent)?;
    // Renaming a name onto itself (or a link of the same file) changes nothing.
    let same = match (&dst, src.inode.stat()) {
        (Some(d), Ok(a)) => d
            .inode
            .stat()
            .is_ok_and(|b| (a.dev, a.ino) == (b.dev, b.ino)),
        _ => false,
    };
    let (src_before, dst_before) = (inotify::before(Some(&src)), inotify::before(dst.as_deref()));
    let rf = RenameFlags {
        noreplace: flags & NOREPLACE != 0,
        exchange: flags & EXCHANGE != 0,
    };
    op.parent
        .inode
        .rename(&Caller::of(t), &op.name, &np.parent.inode, &np.name, rf)?;
    if !same {
        inotify::moved(
            &op.parent,
            &op.name,
            &np.parent,
            &np.name,
            src_before,
            dst_before,
            rf.exchange,
        );
    }
    Ok(0)
}

/// rename(2)
pub fn rename(t: &mut Task, old: PathArg, new: PathArg) -> SysResult {
    do_rename(t, Fd(AT_FDCWD), old, Fd(AT_FDCWD), new, 0)
}

/// renameat(2)
pub fn renameat(t: &mut Task, olddir: Fd, old: PathArg, newdir: Fd, new: PathArg) -> SysResult {
    do_rename(t, olddir, old, newdir, new, 0)
}

/// renameat2(2)
pub fn renameat2(
    t: &mut Task,
    olddir: Fd,
    old: PathArg,
    newdir: Fd,
    new: PathArg,
    flags: Flags,
) -> SysResult {
    do_rename(t, olddir, old, newdir, new, flags.0)
}

/// link(2)
pub fn link(t: &mut Task, old: PathArg, new: PathArg) -> SysResult {
    linkat(t, Fd(AT_FDCWD), old, Fd(AT_FDCWD), new, Flags(0))
}

/// linkat(2)
pub fn linkat(
    t: &mut Task,
    olddir: Fd,
    old: PathArg,
    newdir: Fd,
    new: PathArg,
    flags: Flags,
) -> SysResult {
    if flags.0 & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, old)?;
    let target = lookup_at(
        t,
        olddir,
        &p,
        flags.0 & AT_SYMLINK_FOLLOW != 0,
        flags.0 & AT_EMPTY_PATH != 0,
    )?
    .dentry()?;
    if target.inode.file_type()? == FileType::Directory {
        return Err(Errno::EPERM);
    }
    let np = parent_of(t, newdir, new)?;
    if np.name == b"." || np.name == b".." || np.trailing_slash {
        return Err(Errno::EEXIST);
    }
    if !Arc::ptr_eq(&target.mount, &np.parent.mount) {
        return Err(Errno::EXDEV);
    }
    if resolver(t).child(&np.parent, &np.name).is_ok() {
        return Err(Errno::EEXIST);
    }
    check_writable_mount(&np.parent)?;
    np.parent.inode.link(&np.name, &target.inode)?;
    inotify::linked(&target, &np.parent, &np.name);
    Ok(0)
}

fn do_readlink(t: &Task, dirfd: Fd, path: PathArg, buf: UserAddr, size: i32) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    let d = lookup_at(t, dirfd, &p, false, true)?;
    let target = match d {
        Target::Path(d) => {
            if d.inode.file_type()? != FileType::Symlink {
                return Err(if p.is_empty() {
                    Errno::ENOENT
                } else {
                    Errno::EINVAL
                });
            }
            d.inode.readlink(&Caller::of(t))?
        }
        Target::File(_) => return Err(Errno::EINVAL),
    };
    let n = target.len().min(size as usize);
    t.mm.write_bytes(buf, &target[..n])?;
    Ok(n as u64)
}

/// readlink(2)
pub fn readlink(t: &mut Task, path: PathArg, buf: UserAddr, size: i32) -> SysResult {
    do_readlink(t, Fd(AT_FDCWD), path, buf, size)
}

/// readlinkat(2)
pub fn readlinkat(t: &mut Task, dirfd: Fd, path: PathArg, buf: UserAddr, size: i32) -> SysResult {
    do_readlink(t, dirfd, path, buf, size)
}

fn setattr(d: &Dentry, a: SetAttr) -> SysResult {
    check_writable_mount(d)?;
    d.inode.setattr(&a)?;
    inotify::attr_changed(d, &a);
    Ok(0)
}

fn fd_dentry(t: &Task, fd: Fd) -> Result<Arc<Dentry>, Errno> {
    t.fds.get(fd.0)?.dentry.clone().ok_or(Errno::EPERM)
}

/// chmod(2)
pub fn chmod(t: &mut Task, path: PathArg, mode: u32) -> SysResult {
    fchmodat(t, Fd(AT_FDCWD), path, mode)
}

/// fchmod(2)
pub fn fchmod(t: &mut Task, fd: Fd, mode: u32) -> SysResult {
    let d = fd_dentry(t, fd)?;
    setattr(
        &d,
        SetAttr {
            mode: Some(mode & 0o7777),
            ..SetAttr::default()
        },
    )
}

/// fchmodat(2)
pub fn fchmodat(t: &mut Task, dirfd: Fd, path: PathArg, mode: u32) -> SysResult {
    let d = path_at(t, dirfd, path, 0)?.dentry()?;
    setattr(
        &d,
        SetAttr {
            mode: Some(mode & 0o7777),
            ..SetAttr::default()
        },
    )
}

/// The change of owner chown(2) asks for on `d`; EPERM unless the caller may make it.
fn owner(t: &Task, d: &Dentry, uid: u32, gid: u32) -> Result<SetAttr, Errno> {
    let uid = (uid != u32::MAX).then_some(uid);
    let gid = (gid != u32::MAX).then_some(gid);
    if !may_chown(&d.inode.stat()?, &t.creds, uid, gid) {
        return Err(Errno::EPERM);
    }
    Ok(SetAttr {
        uid,
        gid,
        ..SetAttr::default()
    })
}

/// chown(2)
pub fn chown(t: &mut Task, path: PathArg, uid: u32, gid: u32) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    setattr(&d, owner(t, &d, uid, gid)?)
}

/// lchown(2)
pub fn lchown(t: &mut Task, path: PathArg, uid: u32, gid: u32) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, AT_SYMLINK_NOFOLLOW)?.dentry()?;
    setattr(&d, owner(t, &d, uid, gid)?)
}

/// fchown(2)
pub fn fchown(t: &mut Task, fd: Fd, uid: u32, gid: u32) -> SysResult {
    let d = fd_dentry(t, fd)?;
    setattr(&d, owner(t, &d, uid, gid)?)
}

/// fchownat(2)
pub fn fchownat(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    uid: u32,
    gid: u32,
    flags: Flags,
) -> SysResult {
    if flags.0 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = path_at(t, dirfd, path, flags.0)?.dentry()?;
    setattr(&d, owner(t, &d, uid, gid)?)
}

fn time_of(ts: Timespec) -> Result<Option<TimeSet>, Errno> {
    match ts.tv_nsec {
        libc::UTIME_OMIT => Ok(None),
        libc::UTIME_NOW => Ok(Some(TimeSet::Now)),
        n if (0..1_000_000_000).contains(&n) => Ok(Some(TimeSet::At(ts.tv_sec, n))),
        _ => Err(Errno::EINVAL),
    }
}

fn set_times(
    t: &Task,
    dirfd: Fd,
    path: Option<PathArg>,
    times: [Option<TimeSet>; 2],
    flags: u64,
) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = match path {
        None => {
            if dirfd.0 == AT_FDCWD {
                return Err(Errno::EFAULT);
            }
            fd_dentry(t, dirfd)?
        }
        Some(p) => path_at(t, dirfd, p, flags)?.dentry()?,
    };
    if times == [None, None] {
        return Ok(0);
    }
    setattr(
        &d,
        SetAttr {
            atime: times[0],
            mtime: times[1],
            ..SetAttr::default()
        },
    )
}

/// utimensat(2)
pub fn utimensat(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    times: UserAddr,
    flags: Flags,
) -> SysResult {
    let ts = if times.is_null() {
        [Some(TimeSet::Now); 2]
    } else {
        let v: Vec<Timespec> = t.mm.read_slice(times, 2)?;
        [time_of(v[0])?, time_of(v[1])?]
    };
    let path = (!path.0.is_null()).then_some(path);
    set_times(t, dirfd, path, ts, flags.0)
}

/// futimesat(2)
pub fn futimesat(t: &mut Task, dirfd: Fd, path: PathArg, times: UserAddr) -> SysResult {
    let ts = if times.is_null() {
        [Some(TimeSet::Now); 2]
    } else {
        let v: Vec<Timeval> = t.mm.read_slice(times, 2)?;
        let conv = |tv: Timeval| {
            if !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(Errno::EINVAL);
            }
            Ok(Some(TimeSet::At(tv.tv_sec, tv.tv_usec * 1000)))
        };
        [conv(v[0])?, conv(v[1])?]
    };
    let path = (!path.0.is_null()).then_some(path);
    set_times(t, dirfd, path, ts, 0)
}

/// utimes(2)
pub fn utimes(t: &mut Task, path: PathArg, times: UserAddr) -> SysResult {
    futimesat(t, Fd(AT_FDCWD), path, times)
}

/// truncate(2)
pub fn truncate(t: &mut Task, path: PathArg, len: i64) -> SysResult {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    match d.inode.file_type()? {
        FileType::Directory => return Err(Errno::EISDIR),
        FileType::Regular => {}
        _ => return Err(Errno::EINVAL),
    }
    setattr(
        &d,
        SetAttr {
            size: Some(len as u64),
            ..SetAttr::default()
        },
    )
}

/// ftruncate(2)
pub fn ftruncate(t: &mut Task, fd: Fd, len: i64) -> SysResult {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get(fd.0)?;
    if !f.writable() {
        return Err(Errno::EINVAL);
    }
    let d = f.dentry.clone().ok_or(Errno::EINVAL)?;
    if d.inode.file_type()? != FileType::Regular {
        return Err(Errno::EINVAL);
    }
    let a = SetAttr {
        size: Some(len as u64),
        ..SetAttr::default()
    };
    d.inode.setattr(&a)?;
    inotify::attr_changed(&d, &a);
    Ok(0)
}

/// fallocate(2): mode 0 extends the file; other modes are EOPNOTSUPP.
pub fn fallocate(t: &mut Task, fd: Fd, mode: i32, offset: i64, len: i64) -> SysResult {
    if offset < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get(fd.0)?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    if mode != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let d = f.dentry.clone().ok_or(Errno::ESPIPE)?;
    let st = d.inode.stat()?;
    match FileType::from_mode(st.mode) {
        FileType::Regular => {}
        FileType::Directory => return Err(Errno::EISDIR),
        _ => return Err(Errno::ENODEV),
    }
    let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
    if end > st.size {
        d.inode.setattr(&SetAttr {
            size: Some(end as u64),
            ..SetAttr::default()
        })?;
    }
    inotify::file_event(&d, inotify::IN_MODIFY);
    Ok(0)
}

/// fsync(2): sandbox files live in memory or on a read-only layer; nothing to flush.
pub fn fsync(t: &mut Task, fd: Fd) -> SysResult {
    t.fds.get(fd.0)?;
    Ok(0)
}

/// fdatasync(2)
pub fn fdatasync(t: &mut Task, fd: Fd) -> SysResult {
    fsync(t, fd)
}

/// syncfs(2)
pub fn syncfs(t: &mut Task, fd: Fd) -> SysResult {
    fsync(t, fd)
}

/// sync(2)
pub fn sync(_t: &mut Task) -> SysResult {
    Ok(0)
}

/// `struct statfs`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct StatfsBuf {
    f_type: i64,
    f_bsize: i64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_fsid: [i32; 2],
    f_namelen: i64,
    f_frsize: i64,
    f_flags: i64,
    f_spare: [i64; 4],
}

fn write_statfs(t: &Task, d: &Dentry, buf: UserAddr) -> SysResult {
    let s: FsStats = d.inode.statfs()?;
    let out = StatfsBuf {
        f_type: s.fs_type,
        f_bsize: s.block_size,
        f_blocks: s.blocks,
        f_bfree: s.blocks_free,
        f_bavail: s.blocks_avail,
        f_files: s.files,
        f_ffree: s.files_free,
        f_fsid: [0, d.mount.id as i32],
        f_namelen: s.name_max,
        f_frsize: s.block_size,
        f_flags: if d.mount.readonly {
            libc::ST_RDONLY as i64
        } else {
            0
        } | libc::ST_RELATIME as i64,
        f_spare: [0; 4],
    };
    t.mm.write_obj(buf, &out)?;
    Ok(0)
}

/// statfs(2)
pub fn statfs(t: &mut Task, path: PathArg, buf: UserAddr) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    write_statfs(t, &d, buf)
}

/// fstatfs(2)
pub fn fstatfs(t: &mut Task, fd: Fd, buf: UserAddr) -> SysResult {
    let d = t.fds.get(fd.0)?.dentry.clone().ok_or(Errno::ENOSYS)?;
    write_statfs(t, &d, buf)
}

fn enter_dir(t: &Task, d: Arc<Dentry>) -> Result<Arc<Dentry>, Errno> {
    let st = d.inode.stat()?;
    if FileType::from_mode(st.mode) != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    if !may_access(&st, &t.creds, 1, false) {
        return Err(Errno::EACCES);
    }
    Ok(d)
}

/// chdir(2)
pub fn chdir(t: &mut Task, path: PathArg) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    let d = enter_dir(t, d)?;
    t.fs.set_cwd(d);
    Ok(0)
}

/// fchdir(2)
pub fn fchdir(t: &mut Task, fd: Fd) -> SysResult {
    let d = t.fds.get(fd.0)?.dentry.clone().ok_or(Errno::ENOTDIR)?;
    let d = enter_dir(t, d)?;
    t.fs.set_cwd(d);
    Ok(0)
}

/// chroot(2)
pub fn chroot(t: &mut Task, path: PathArg) -> SysResult {
    if !t.creds.has_cap(crate::auth::cap::SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    let d = enter_dir(t, d)?;
    t.fs.set_root(d);
    Ok(0)
}

/// getcwd(2)
pub fn getcwd(t: &mut Task, buf: UserAddr, size: usize) -> SysResult {
    let cwd = t.fs.cwd();
    let root = t.fs.root();
    let mut path = if root.path == b"/" {
        cwd.path.clone()
    } else if cwd.path == root.path {
        b"/".to_vec()
    } else if cwd.path.starts_with(&root.path) && cwd.path[root.path.len()] == b'/' {
        cwd.path[root.path.len()..].to_vec()
    } else {
        // The cwd is outside the root (after chroot without chdir), as Linux reports it.
        let mut p = b"(unreachable)".to_vec();
        p.extend_from_slice(&cwd.path);
        p
    };
    path.push(0);
    if size < path.len() {
        return Err(Errno::ERANGE);
    }
    t.mm.write_bytes(buf, &path)?;
    Ok(path.len() as u64)
}

/// umask(2)
pub fn umask(t: &mut Task, mask: u32) -> SysResult {
    Ok(t.fs.swap_umask(mask) as u64)
}

fn xattr_target(t: &Task, path: PathArg, follow: bool) -> Result<(), Errno> {
    let flags = if follow { 0 } else { AT_SYMLINK_NOFOLLOW };
    path_at(t, Fd(AT_FDCWD), path, flags).map(drop)
}

fn check_xattr_name(t: &Task, name: UserAddr) -> Result<(), Errno> {
    let n = t.mm.read_cstring(name, 256)?;
    if n.is_empty() {
        return Err(Errno::ERANGE);
    }
    Ok(())
}

/// getxattr(2): no file carries extended attributes yet.
pub fn getxattr(
    t: &mut Task,
    path: PathArg,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
) -> SysResult {
    xattr_target(t, path, true)?;
    check_xattr_name(t, name)?;
    Err(Errno::ENODATA)
}

/// lgetxattr(2)
pub fn lgetxattr(
    t: &mut Task,
    path: PathArg,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
) -> SysResult {
    xattr_target(t, path, false)?;
    check_xattr_name(t, name)?;
    Err(Errno::ENODATA)
}

/// fgetxattr(2)
pub fn fgetxattr(
    t: &mut Task,
    fd: Fd,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
) -> SysResult {
    t.fds.get(fd.0)?;
    check_xattr_name(t, name)?;
    Err(Errno::ENODATA)
}

/// listxattr(2): the list is empty.
pub fn listxattr(t: &mut Task, path: PathArg, _list: UserAddr, _size: usize) -> SysResult {
    xattr_target(t, path, true)?;
    Ok(0)
}

/// llistxattr(2)
pub fn llistxattr(t: &mut Task, path: PathArg, _list: UserAddr, _size: usize) -> SysResult {
    xattr_target(t, path, false)?;
    Ok(0)
}

/// flistxattr(2)
pub fn flistxattr(t: &mut Task, fd: Fd, _list: UserAddr, _size: usize) -> SysResult {
    t.fds.get(fd.0)?;
    Ok(0)
}

/// setxattr(2): the sandbox's filesystems do not store extended attributes.
pub fn setxattr(
    t: &mut Task,
    path: PathArg,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
    _flags: Flags,
) -> SysResult {
    xattr_target(t, path, true)?;
    check_xattr_name(t, name)?;
    Err(Errno::EOPNOTSUPP)
}

/// lsetxattr(2)
pub fn lsetxattr(
    t: &mut Task,
    path: PathArg,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
    _flags: Flags,
) -> SysResult {
    xattr_target(t, path, false)?;
    check_xattr_name(t, name)?;
    Err(Errno::EOPNOTSUPP)
}

/// fsetxattr(2)
pub fn fsetxattr(
    t: &mut Task,
    fd: Fd,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
    _flags: Flags,
) -> SysResult {
    t.fds.get(fd.0)?;
    check_xattr_name(t, name)?;
    Err(Errno::EOPNOTSUPP)
}

/// removexattr(2)
pub fn removexattr(t: &mut Task, path: PathArg, name: UserAddr) -> SysResult {
    xattr_target(t, path, true)?;
    check_xattr_name(t, name)?;
    Err(Errno::ENODATA)
}

/// lremovexattr(2)
pub fn lremovexattr(t: &mut Task, path: PathArg, name: UserAddr) -> SysResult {
    xattr_target(t, path, false)?;
    check_xattr_name(t, name)?;
    Err(Errno::ENODATA)
}

/// fremovexattr(2)
pub fn fremovexattr(t: &mut Task, fd: Fd, name: UserAddr) -> SysResult {
    t.fds.get(fd.0)?;
    check_xattr_name(t, name)?;
    Err(Errno::ENODATA)
}

/// `struct flock`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct FlockBuf {
    l_type: i16,
    l_whence: i16,
    pad0: u32,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
    pad1: u32,
}

/// The identity of the file `f` in the lock table.
fn lock_key(f: &OpenFile) -> Result<(u64, u64), Errno> {
    let st = match &f.dentry {
        Some(d) => d.inode.stat()?,
        None => f.ops().stat()?,
    };
    Ok((st.dev, st.ino))
}

/// Takes `want` on `f`'s file, waiting (interruptibly) while it conflicts if `wait`.
fn set_lock(t: &mut Task, f: &OpenFile, want: Lock, unlock: bool, wait: bool) -> SysResult {
    let locks = t.kernel.locks.file(lock_key(f)?);
    f.note_locked(&t.kernel.locks);
    if !wait {
        return match locks.try_set(want, unlock) {
            Ok(()) => Ok(0),
            Err(_) if want.family == lock::Family::Flock => Err(Errno::EWOULDBLOCK),
            Err(_) => Err(Errno::EAGAIN),
        };
    }
    t.block_on(&[&locks.queue], None, |_| {
        locks.try_set(want, unlock).ok().map(|()| Ok(0))
    })
}

/// The record-lock commands of fcntl(2): POSIX locks (owned by the process) and OFD locks
/// (owned by the open file description), over byte ranges.
pub fn fcntl_lock(t: &mut Task, fd: Fd, cmd: i32, arg: u64) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let addr = UserAddr(arg);
    let mut l: FlockBuf = t.mm.read_obj(addr)?;
    let ofd = matches!(
        cmd,
        libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    );
    if ofd && l.l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let base: i64 = match l.l_whence as i32 {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => *f.offset.lock().unwrap() as i64,
        libc::SEEK_END => f.ops().size()? as i64,
        _ => return Err(Errno::EINVAL),
    };
    let start = base.checked_add(l.l_start).ok_or(Errno::EOVERFLOW)?;
    let (start, end) = match l.l_len {
        0 => (start, None),
        n if n > 0 => (start, Some(start.checked_add(n).ok_or(Errno::EOVERFLOW)?)),
        n => (start + n, Some(start)),
    };
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    let kind = match l.l_type as i32 {
        libc::F_RDLCK => Some(lock::Kind::Read),
        libc::F_WRLCK => Some(lock::Kind::Write),
        libc::F_UNLCK => None,
        _ => return Err(Errno::EINVAL),
    };
    let owner = if ofd {
        lock::Owner::File(f.lock_id())
    } else {
        lock::Owner::Process(t.tg.tgid)
    };
    let want = Lock {
        owner,
        family: lock::Family::Record,
        kind: kind.unwrap_or(lock::Kind::Read),
        start: start as u64,
        end: end.map_or(u64::MAX, |e| e as u64),
        pid: if ofd { -1 } else { t.tg.tgid },
    };
    match cmd {
        libc::F_GETLK | libc::F_OFD_GETLK => {
            if kind.is_none() {
                return Err(Errno::EINVAL);
            }
            let held = t.kernel.locks.file(lock_key(&f)?).conflict(&want);
            match held {
                None => l.l_type = libc::F_UNLCK as i16,
                Some(h) => {
                    l.l_type = match h.kind {
                        lock::Kind::Read => libc::F_RDLCK,
                        lock::Kind::Write => libc::F_WRLCK,
                    } as i16;
                    l.l_whence = libc::SEEK_SET as i16;
                    l.l_start = h.start as i64;
                    l.l_len = if h.end == u64::MAX {
                        0
                    } else {
                        (h.end - h.start) as i64
                    };
                    // The holder as the caller's namespace sees it (-1 for OFD locks).
                    l.l_pid = if h.pid > 0 { t.vpid_of(h.pid) } else { h.pid };
                }
            }
            t.mm.write_obj(addr, &l)?;
            Ok(0)
        }
        _ => {
            match kind {
                Some(lock::Kind::Read) if !f.readable() => return Err(Errno::EBADF),
                Some(lock::Kind::Write) if !f.writable() => return Err(Errno::EBADF),
                _ => {}
            }
            let wait = matches!(cmd, libc::F_SETLKW | libc::F_OFD_SETLKW);
            set_lock(t, &f, want, kind.is_none(), wait)
        }
    }
}

/// flock(2): whole-file locks owned by the open file description.
pub fn flock(t: &mut Task, fd: Fd, op: i32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let kind = match op & !libc::LOCK_NB {
        libc::LOCK_SH => Some(lock::Kind::Read),
        libc::LOCK_EX => Some(lock::Kind::Write),
        libc::LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    let want = Lock {
        owner: lock::Owner::File(f.lock_id()),
        family: lock::Family::Flock,
        kind: kind.unwrap_or(lock::Kind::Read),
        start: 0,
        end: u64::MAX,
        pid: -1,
    };
    let wait = op & libc::LOCK_NB == 0 && kind.is_some();
    set_lock(t, &f, want, kind.is_none(), wait)
}

/// fadvise64(2): advice about the page cache, which the sentry's files do not need.
pub fn fadvise64(t: &mut Task, fd: Fd, _offset: i64, len: i64, advice: i32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    if !f.ops().seekable() {
        return Err(Errno::ESPIPE);
    }
    if len < 0 || !(0..=5).contains(&advice) {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
