//! Path-based calls that name, create, remove and open files: the open family (open, openat,
//! openat2, creat), mkdir/mknod, symlink/readlink, unlink/rmdir, rename, link, and access.
//! Also the path-resolution helpers the other path-taking families share.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::fd::nofile_limit;
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::{UserAddr, PATH_MAX};
use crate::vfs::dir::{DirFile, PathFile};
use crate::vfs::inode::{may_access, may_access_inode, OpenFileInode, RenameFlags};
use crate::vfs::inotify;
use crate::vfs::landlock;
use crate::vfs::write_access::Access;
use crate::vfs::{Caller, Dentry, FileKind, FileType, NewNode, OpenFile, Resolver, SetAttr, Stat};

pub(super) const AT_FDCWD: i32 = libc::AT_FDCWD;
pub(super) const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
pub(super) const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
pub(super) const AT_SYMLINK_FOLLOW: u64 = libc::AT_SYMLINK_FOLLOW as u64;
pub(super) const AT_REMOVEDIR: u64 = libc::AT_REMOVEDIR as u64;
pub(super) const AT_EACCESS: u64 = libc::AT_EACCESS as u64;
pub(super) const AT_NO_AUTOMOUNT: u64 = libc::AT_NO_AUTOMOUNT as u64;
pub(super) const AT_STATX_SYNC_TYPE: u64 = 0x6000;

pub(super) fn read_path(t: &Task, p: PathArg) -> Result<Vec<u8>, Errno> {
    t.mm.read_cstring(p.0, PATH_MAX)
}

/// Runs `f` on the path at `p`, read into a buffer this thread keeps: the hot path-taking
/// calls (stat, open) then allocate nothing for their path.
pub(super) fn with_path<T: std::ops::Deref<Target = Task>, R>(
    t: T,
    p: PathArg,
    f: impl FnOnce(T, &[u8]) -> Result<R, Errno>,
) -> Result<R, Errno> {
    thread_local! {
        static PATH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PATH.with(|buf| match buf.try_borrow_mut() {
        Ok(mut path) => {
            t.mm.read_cstring_into(p.0, PATH_MAX, &mut path)?;
            f(t, &path)
        }
        // A nested use (none today) reads into a buffer of its own.
        Err(_) => {
            let path = read_path(&t, p)?;
            f(t, &path)
        }
    })
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
pub(super) enum Target {
    Path(Arc<Dentry>),
    File(Arc<OpenFile>),
}

impl Target {
    pub(super) fn stat(&self) -> Result<Stat, Errno> {
        match self {
            Target::Path(d) => d.inode.stat(),
            Target::File(f) => f.ops().stat(),
        }
    }

    pub(super) fn dentry(self) -> Result<Arc<Dentry>, Errno> {
        match self {
            Target::Path(d) => Ok(d),
            Target::File(_) => Err(Errno::EPERM),
        }
    }
}

/// Resolves `(dirfd, path)` for a `*at` call.
pub(super) fn lookup_at(
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

pub(super) fn path_at(t: &Task, dirfd: Fd, p: PathArg, flags: u64) -> Result<Target, Errno> {
    with_path(t, p, |t, path| {
        lookup_at(
            t,
            dirfd,
            path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        )
    })
}

pub(super) fn check_writable_mount(d: &Dentry) -> Result<(), Errno> {
    if d.mount.readonly {
        Err(Errno::EROFS)
    } else {
        Ok(())
    }
}

/// openat2 RESOLVE_* flags.
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE_CACHED: u64 = 0x20;

/// How many times an O_CREAT open without O_EXCL looks the name up again after losing a race
/// with another process's unlink or create of the same name.
const CREATE_RACE_RETRIES: usize = 8;

/// Opens `path`, creating it with O_CREAT; installs the new fd.
///
/// Linux looks up and creates under the directory's lock, so an `open(O_CREAT)` without
/// O_EXCL always ends with a file. Here the lookup, the host's create and the open of what was
/// found are separate steps, and another process (in the sandbox or on the host) may unlink the
/// name between them (the open finds nothing: ENOENT; the name now holds another file: ESTALE)
/// or create it (EEXIST): the open then starts again from the lookup in a new call epoch
/// ([`crate::vfs::dcache`]), as if it had come after the other process's change, a bounded
/// number of times (SQLite's `-shm` file is unlinked by
/// its last user while others open it with O_CREAT).
fn do_open(t: &mut Task, dirfd: Fd, path: &[u8], flags: u32, mode: u32, resolve: u64) -> SysResult {
    let racy = flags & libc::O_CREAT as u32 != 0 && flags & libc::O_EXCL as u32 == 0;
    let mut tries = 0;
    loop {
        match open_once(t, dirfd, path, flags, mode, resolve) {
            Err(Errno::ENOENT | Errno::ESTALE | Errno::EEXIST)
                if racy && tries < CREATE_RACE_RETRIES =>
            {
                tries += 1;
                // A new call epoch: what the host changed since this call began (its
                // notifications, attributes) is read again rather than trusted.
                crate::vfs::dcache::begin_call();
            }
            r => return r,
        }
    }
}

/// One attempt of [`do_open`].
fn open_once(
    t: &mut Task,
    dirfd: Fd,
    path: &[u8],
    flags: u32,
    mode: u32,
    resolve: u64,
) -> SysResult {
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
                    if !may_access_inode(pn.parent.inode.as_ref(), &pst, &t.creds, 3, false) {
                        return Err(Errno::EACCES);
                    }
                    landlock::check_make(&t.creds, &pn.parent, &NewNode::Regular)?;
                    let (attrs, acls) =
                        super::xattr::new_file_attrs(t, pn.parent.inode.as_ref(), mode, false);
                    let inode = pn
                        .parent
                        .inode
                        .create(&cx, &pn.name, NewNode::Regular, attrs)?;
                    super::xattr::apply_inherited(inode.as_ref(), acls)?;
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
    // What an open checks (type, mode, owners): a walk's attributes.
    let st = dentry.inode.walk_attrs()?;
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
    let mut write_access = None;
    let ops: Arc<dyn crate::vfs::FileOps> = if kind == FileType::Directory {
        if writes || o(libc::O_CREAT) {
            return Err(Errno::EISDIR);
        }
        // Listing a directory takes read permission, as for any other open for reading.
        if !may_access_inode(dentry.inode.as_ref(), &st, &t.creds, 4, false) {
            return Err(Errno::EACCES);
        }
        landlock::check_open(&t.creds, &dentry, kind, flags)?;
        Arc::new(DirFile::new(dentry.clone()))
    } else {
        // As Linux, a special file (FIFO, device, socket) on a read-only mount may still be
        // opened for writing; a device on a `nodev` mount may not be opened at all.
        let special = matches!(
            kind,
            FileType::Fifo | FileType::CharDevice | FileType::BlockDevice | FileType::Socket
        );
        if (writes && !special) || (o(libc::O_TRUNC) && kind == FileType::Regular) {
            check_writable_mount(&dentry)?;
        }
        if matches!(kind, FileType::CharDevice | FileType::BlockDevice)
            && dentry.mount.flags & libc::MS_NODEV != 0
        {
            return Err(Errno::EACCES);
        }
        let mask = if created {
            0
        } else {
            (if writes { 2 } else { 0 }) | if acc != libc::O_WRONLY as u32 { 4 } else { 0 }
        };
        if !may_access_inode(dentry.inode.as_ref(), &st, &t.creds, mask, false) {
            return Err(Errno::EACCES);
        }
        landlock::check_open(&t.creds, &dentry, kind, flags)?;
        if kind == FileType::Fifo && !is_host_pipe(&dentry) {
            let st = dentry.inode.stat()?;
            return open_fifo(t, &st, flags, dentry);
        }
        // ETXTBSY while a process runs the file (Linux's get_write_access), before O_TRUNC
        // changes it; a writer keeps the access while the description lives.
        if kind == FileType::Regular && (writes || o(libc::O_TRUNC)) {
            write_access = Some(t.kernel.write_access.get_write(dentry.inode.ident()?)?);
        }
        let mut ops = dentry.inode.open(&cx, flags)?;
        if let Some(terminal) = ops.opened(t, flags)? {
            ops = terminal;
        }
        if o(libc::O_TRUNC) && kind == FileType::Regular && !created {
            let trunc = SetAttr {
                size: Some(0),
                ..SetAttr::default()
            };
            if dentry.inode.stat()?.size != 0 {
                dentry.inode.setattr(&trunc)?;
            }
            inotify::attr_changed(&dentry, &trunc);
        }
        if !writes {
            write_access = None;
        }
        ops
    };
    install_opened(t, ops, flags, dentry, write_access)
}

/// Whether `dentry` is `/proc/[pid]/fd/N` of a pipe the sandbox did not make (a host fd it
/// was given, such as stdin): reopening it shares that file, as before FIFOs existed here.
fn is_host_pipe(dentry: &Arc<Dentry>) -> bool {
    dentry
        .inode
        .clone()
        .as_any()
        .downcast::<OpenFileInode>()
        .is_ok_and(|o| !matches!(o.0.kind(), FileKind::Pipe(_)))
}

/// Opens a FIFO: every opener of the inode shares the kernel's pipe for it, and opening
/// waits for the other side as Linux does (O_TRUNC does nothing to a FIFO). A host FIFO
/// (hostfs) is opened on the host instead, to talk to host processes.
fn open_fifo(t: &mut Task, st: &Stat, flags: u32, dentry: Arc<Dentry>) -> SysResult {
    let host = match dentry.inode.host_special() {
        Some(h) => Some(h.open_fifo(t, flags)?),
        None => None,
    };
    if let Some(ops) = host {
        return install_opened(t, ops, flags, dentry, None);
    }
    let kernel = t.kernel.clone();
    let end = kernel.fifos.open(t, (st.dev, st.ino), flags)?;
    install_opened_kind(t, FileKind::Pipe(end), flags, dentry, None)
}

/// Installs a file just opened by path (IN_OPEN for inotify), holding `write_access` (an
/// open for writing's) while it lives.
fn install_opened(
    t: &Task,
    ops: Arc<dyn crate::vfs::FileOps>,
    flags: u32,
    dentry: Arc<Dentry>,
    write_access: Option<Access>,
) -> SysResult {
    install_opened_kind(t, FileKind::Plain(ops), flags, dentry, write_access)
}

/// [`install_opened`] for a file of any kind.
fn install_opened_kind(
    t: &Task,
    kind: FileKind,
    flags: u32,
    dentry: Arc<Dentry>,
    write_access: Option<Access>,
) -> SysResult {
    // As Linux, an O_TMPFILE file keeps O_TMPFILE (O_DIRECTORY included) in F_GETFL.
    let keep = flags
        & !((libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC | libc::O_CLOEXEC)
            as u32);
    let file = OpenFile::of_kind_with_dentry(kind, keep | libc::O_LARGEFILE as u32, dentry);
    landlock::keep_denied(&t.creds, &file);
    file.opened();
    if let Some(access) = write_access {
        file.hold_write_access(access);
    }
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
    if !may_access_inode(dir.inode.as_ref(), &st, &t.creds, 3, false) {
        return Err(Errno::EACCES);
    }
    let cx = Caller::of(t);
    let linkable = flags & libc::O_EXCL as u32 == 0;
    let (attrs, acls) = super::xattr::new_file_attrs(t, dir.inode.as_ref(), mode, false);
    let inode = dir.inode.create_tmpfile(&cx, attrs, linkable)?;
    super::xattr::apply_inherited(inode.as_ref(), acls)?;
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
    install_opened(t, ops, flags, dentry, None)
}

/// open(2)
pub fn open(t: &mut Task, path: PathArg, flags: Flags, mode: u32) -> SysResult {
    with_path(t, path, |t, p| {
        do_open(t, Fd(AT_FDCWD), p, flags.0 as u32, mode, 0)
    })
}

/// openat(2)
pub fn openat(t: &mut Task, dirfd: Fd, path: PathArg, flags: Flags, mode: u32) -> SysResult {
    with_path(t, path, |t, p| {
        do_open(t, dirfd, p, flags.0 as u32, mode, 0)
    })
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
    let real = flags & AT_EACCESS == 0;
    let ok = match &target {
        Target::Path(d) => may_access_inode(d.inode.as_ref(), &st, &t.creds, mode, real),
        Target::File(_) => may_access(&st, &t.creds, mode, real),
    };
    if mode != 0 && !ok {
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

fn parent_of(t: &Task, dirfd: Fd, path: PathArg) -> Result<crate::vfs::walk::ParentAndName, Errno> {
    let p = read_path(t, path)?;
    let start = start_dir(t, dirfd, &p)?;
    resolver(t).resolve_parent(start, &p)
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
    let pst = pn.parent.inode.stat()?;
    if !may_access_inode(pn.parent.inode.as_ref(), &pst, &t.creds, 3, false) {
        return Err(Errno::EACCES);
    }
    landlock::check_make(&t.creds, &pn.parent, &node)?;
    let is_dir = node == NewNode::Directory;
    let (attrs, acls) = super::xattr::new_file_attrs(t, pn.parent.inode.as_ref(), mode, is_dir);
    let inode = pn
        .parent
        .inode
        .create(&Caller::of(t), &pn.name, node, attrs)?;
    super::xattr::apply_inherited(inode.as_ref(), acls)?;
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

fn do_mknod(t: &Task, dirfd: Fd, path: PathArg, mode: u32, dev: u64) -> SysResult {
    let node = match mode & libc::S_IFMT {
        0 | libc::S_IFREG => NewNode::Regular,
        libc::S_IFIFO => NewNode::Fifo,
        libc::S_IFSOCK => NewNode::Socket,
        kind @ (libc::S_IFCHR | libc::S_IFBLK) => {
            if !t.creds.has_cap(crate::auth::cap::MKNOD) {
                return Err(Errno::EPERM);
            }
            // The kernel takes the number as 32 bits, whose encoding is st_rdev's.
            NewNode::Device {
                block: kind == libc::S_IFBLK,
                rdev: dev & 0xffff_ffff,
            }
        }
        libc::S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    make_node(t, dirfd, path, node, mode)
}

/// mknod(2)
pub fn mknod(t: &mut Task, path: PathArg, mode: u32, dev: u64) -> SysResult {
    do_mknod(t, Fd(AT_FDCWD), path, mode, dev)
}

/// mknodat(2)
pub fn mknodat(t: &mut Task, dirfd: Fd, path: PathArg, mode: u32, dev: u64) -> SysResult {
    do_mknod(t, dirfd, path, mode, dev)
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

/// may_create: write and search permission on the directory `dir` a name is added to.
fn may_create(t: &Task, dir: &Dentry) -> Result<(), Errno> {
    let st = dir.inode.stat()?;
    if !may_access_inode(dir.inode.as_ref(), &st, &t.creds, 3, false) {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// may_delete: whether the caller may take `victim`'s name out of `dir` (unlink, rmdir,
/// rename's source and the target it replaces): write and search permission on the
/// directory (EACCES), and in a sticky directory (EPERM) being the file's or the
/// directory's owner or holding CAP_FOWNER.
fn may_delete(t: &Task, dir: &Dentry, victim: &Dentry) -> Result<(), Errno> {
    let st = dir.inode.stat()?;
    if !may_access_inode(dir.inode.as_ref(), &st, &t.creds, 3, false) {
        return Err(Errno::EACCES);
    }
    if st.mode & libc::S_ISVTX != 0 && t.creds.fsuid != st.uid {
        let vst = victim.inode.stat()?;
        if t.creds.fsuid != vst.uid
            && !crate::vfs::inode::capable_wrt_owner(&t.creds, &vst, crate::auth::cap::FOWNER)
        {
            return Err(Errno::EPERM);
        }
    }
    Ok(())
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
    may_delete(t, &pn.parent, &child)?;
    landlock::check_remove(&t.creds, &pn.parent, &child)?;
    let before = inotify::before(Some(&child));
    pn.parent.inode.unlink(&Caller::of(t), &pn.name, dir)?;
    // The walk would see the name gone; forgetting it now frees the file with its last use.
    t.fs.ns.dentries().forget(&pn.parent, &pn.name);
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
    // vfs_rename's permission checks: the source's name may go, the target's may be
    // replaced (or a name added), and a directory moving to another parent (or, in an
    // exchange, the directory coming back) must be writable for its `..`.
    may_delete(t, &op.parent, &src)?;
    match &dst {
        Some(d) => may_delete(t, &np.parent, d)?,
        None => may_create(t, &np.parent)?,
    }
    if op.parent.path != np.parent.path {
        let moving_dirs = [Some(&src), dst.as_ref().filter(|_| flags & EXCHANGE != 0)];
        for d in moving_dirs.into_iter().flatten() {
            let st = d.inode.stat()?;
            if FileType::from_mode(st.mode) == FileType::Directory
                && !may_access_inode(d.inode.as_ref(), &st, &t.creds, 2, false)
            {
                return Err(Errno::EACCES);
            }
        }
    }
    let exchange = flags & EXCHANGE != 0;
    landlock::check_refer(
        &t.creds,
        &op.parent,
        &src,
        &np.parent,
        dst.as_deref(),
        true,
        exchange,
    )?;
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
    let dentries = t.fs.ns.dentries();
    dentries.forget(&op.parent, &op.name);
    dentries.forget(&np.parent, &np.name);
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
    let target_dir = target.parent.as_deref().unwrap_or(&target);
    landlock::check_refer(
        &t.creds, target_dir, &target, &np.parent, None, false, false,
    )?;
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
