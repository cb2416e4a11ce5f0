//! The operations a filesystem implements for each of its files.
//!
//! Filesystems hand out [`Inode`] trait objects; the path walk ([`super::walk`]) and the
//! system calls only ever talk to this trait. Names passed in are single path components:
//! never empty, never `.` or `..`, never containing `/` (the walk guarantees it).

use std::any::Any;
use std::sync::Arc;

use crate::abi::Errno;
use crate::auth::{cap, CapSet, Creds};
use crate::vfs::{Context, FileOps, Stat};

/// Who is asking: credentials for permission checks and, for `/proc`, the calling task's
/// identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub creds: Creds,
    /// The calling task (None: the sentry itself).
    pub task: Option<TaskIds>,
}

/// A task's global thread and process IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskIds {
    pub tid: i32,
    pub tgid: i32,
}

impl Caller {
    /// The caller for a task's system call.
    pub fn of(t: &dyn Context) -> Caller {
        t.caller()
    }

    /// The sentry itself (boot, tests): root with every capability, no task.
    pub fn kernel() -> Caller {
        Caller {
            creds: Creds::new(0, 0, &[], CapSet::FULL),
            task: None,
        }
    }
}

/// File type bits of a mode (`S_IFMT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The type in a `st_mode`.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::Regular,
        }
    }

    /// The `S_IFMT` bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => libc::S_IFREG,
            FileType::Directory => libc::S_IFDIR,
            FileType::Symlink => libc::S_IFLNK,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::Fifo => libc::S_IFIFO,
            FileType::Socket => libc::S_IFSOCK,
        }
    }

    /// The `d_type` of a directory entry.
    pub fn dirent_type(self) -> u8 {
        match self {
            FileType::Regular => libc::DT_REG,
            FileType::Directory => libc::DT_DIR,
            FileType::Symlink => libc::DT_LNK,
            FileType::CharDevice => libc::DT_CHR,
            FileType::BlockDevice => libc::DT_BLK,
            FileType::Fifo => libc::DT_FIFO,
            FileType::Socket => libc::DT_SOCK,
        }
    }
}

/// Where a magic link leads.
pub enum MagicTarget {
    /// A file that has a path.
    Path(Arc<super::Dentry>),
    /// An open file without one (a pipe, a donated host fd): reopening it shares its
    /// operations.
    File(Arc<super::OpenFile>),
}

/// An open file without a path, seen as an inode (reached through a magic link).
pub struct OpenFileInode(pub Arc<super::OpenFile>);

impl Inode for OpenFileInode {
    fn stat(&self) -> Result<Stat, Errno> {
        self.0.ops().stat()
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        // A socket cannot be opened again, not even through its magic link (sockfs has no
        // open: ENXIO, as Linux).
        if matches!(self.0.kind(), super::FileKind::Socket(_)) {
            return Err(Errno::ENXIO);
        }
        Ok(self.0.kind().shared_ops())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(FsStats {
            fs_type: 0x5049_5045,
            block_size: 4096,
            name_max: 255,
            ..FsStats::default()
        })
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// One directory entry (without `.` and `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub kind: FileType,
}

/// What to create in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewNode {
    Regular,
    Directory,
    Symlink(Vec<u8>),
    Fifo,
    /// A socket's name in the filesystem (`bind` on an AF_UNIX socket, `mknod S_IFSOCK`).
    Socket,
    /// A character (or, with `block`, block) device node with device number `rdev`
    /// (`mknod S_IFCHR`/`S_IFBLK`, in `st_rdev`'s encoding).
    Device {
        block: bool,
        rdev: u64,
    },
}

/// Ownership and permission of a new file (mode already has the umask applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAttrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A time in a [`SetAttr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(i64, i64),
}

/// Attribute changes (chmod, chown, truncate, utimensat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// Permission bits (07777) only.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

/// `struct statfs` as the filesystem reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    pub fs_type: i64,
    pub block_size: i64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: i64,
}

/// `renameat2` flags the filesystems understand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

/// A FIFO or socket of the host reached through a host filesystem (hostfs): what the sandbox
/// does with it reaches the host object, as gVisor's `--host-fifo=open` and `--host-uds=open`
/// do, instead of the sandbox's own pipes and socket names. The host object is always reached
/// through the node's own `O_PATH` fd, never by a name looked up again.
pub trait HostSpecial: Send + Sync {
    /// Opens the host FIFO with open(2) `flags`; unless `O_NONBLOCK`, waits as Linux does
    /// for the other side (a reader for a writer, a writer for a reader), interruptibly.
    ///
    /// # Errors
    /// ENXIO (no reader for a nonblocking writer), EINTR, ESTALE (the node changed on the
    /// host), ENOTSUP when the node is not a FIFO.
    fn open_fifo(&self, t: &mut dyn Context, flags: u32) -> Result<Arc<dyn FileOps>, Errno>;

    /// A new nonblocking, close-on-exec host socket of type `ty` (`SOCK_STREAM`,
    /// `SOCK_SEQPACKET`, `SOCK_DGRAM`) connected to this host socket.
    ///
    /// # Errors
    /// ECONNREFUSED (nobody listens), EPROTOTYPE (another socket type), EAGAIN (the
    /// listener's backlog is full), EOPNOTSUPP when host sockets cannot be reached.
    fn connect_socket(&self, ty: i32) -> Result<std::os::fd::OwnedFd, Errno>;
}

/// A file in some filesystem. Defaults are Linux's answers for a file that lacks the
/// operation, or EROFS for changes to a filesystem that does not allow them.
pub trait Inode: Send + Sync {
    /// `stat(2)` of the file.
    ///
    /// # Errors
    /// Backend failures.
    fn stat(&self) -> Result<Stat, Errno>;

    /// What a path walk checks of a directory it passes through: the file type, mode, owner
    /// and group of [`Inode::stat`] (the other fields may be left out). A filesystem whose
    /// full `stat` costs more than those four overrides it (a merged overlay directory
    /// takes its inode number from the lower layer, which may be the host).
    ///
    /// # Errors
    /// Backend failures.
    fn walk_attrs(&self) -> Result<Stat, Errno> {
        self.stat()
    }

    /// Looks `name` up in this directory.
    ///
    /// # Errors
    /// ENOENT, ENOTDIR, backend failures.
    fn lookup(&self, _cx: &Caller, _name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::ENOTDIR)
    }

    /// The entries of this directory, without `.` and `..`, in a stable order.
    ///
    /// # Errors
    /// ENOTDIR, backend failures.
    fn readdir(&self, _cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::ENOTDIR)
    }

    /// The target of this symlink.
    ///
    /// # Errors
    /// EINVAL when this is not a symlink.
    fn readlink(&self, _cx: &Caller) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }

    /// The whole contents of a regular file, read by the sentry itself (exec, the loader's
    /// interpreter, overlay copy-up).
    ///
    /// # Errors
    /// EINVAL for files without contents, backend failures.
    fn contents(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }

    /// Opens the file for I/O with `flags` (`O_*`; the access mode is already checked).
    ///
    /// # Errors
    /// ENXIO for devices that are absent, EROFS for writes to read-only files.
    fn open(&self, cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno>;

    /// Creates `name` in this directory.
    ///
    /// # Errors
    /// EEXIST, EROFS, ENOTDIR.
    fn create(
        &self,
        _cx: &Caller,
        _name: &[u8],
        _node: NewNode,
        _attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EROFS)
    }

    /// `O_TMPFILE`: a new regular file in this directory's filesystem without a name (link
    /// count 0). `linkable`: a later `link` may give it one (no `O_EXCL`).
    ///
    /// # Errors
    /// EOPNOTSUPP for filesystems without unnamed files, ENOTDIR.
    fn create_tmpfile(
        &self,
        _cx: &Caller,
        _attrs: NewAttrs,
        _linkable: bool,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Adds a hard link `name` to `target` (a file of the same filesystem). A target whose
    /// link count is 0 is ENOENT unless it is a linkable `O_TMPFILE` file.
    ///
    /// # Errors
    /// EXDEV across filesystems, EEXIST, EROFS.
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    /// Removes `name` from this directory (`rmdir` when `dir`, else `unlink`).
    ///
    /// # Errors
    /// ENOENT, EISDIR/ENOTDIR, ENOTEMPTY, EROFS.
    fn unlink(&self, _cx: &Caller, _name: &[u8], _dir: bool) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    /// Moves `name` to `new_name` in `new_dir` (a directory of the same filesystem).
    ///
    /// # Errors
    /// EXDEV across filesystems, and rename(2)'s errors.
    fn rename(
        &self,
        _cx: &Caller,
        _name: &[u8],
        _new_dir: &Arc<dyn Inode>,
        _new_name: &[u8],
        _flags: RenameFlags,
    ) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    /// Changes attributes.
    ///
    /// # Errors
    /// EROFS, EISDIR for truncating a directory, EINVAL.
    fn setattr(&self, _attr: &SetAttr) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    /// fallocate(2) mode 0 on a regular file: storage for `[off, end)`, and the size grown
    /// to `end` if smaller. A filesystem that reserves nothing ahead (the default) only grows
    /// the file.
    ///
    /// # Errors
    /// ENOSPC when the storage is not there (nothing is reserved then), and setattr's.
    fn allocate(&self, _off: u64, end: u64) -> Result<(), Errno> {
        if end > self.stat()?.size as u64 {
            self.setattr(&SetAttr {
                size: Some(end),
                ..SetAttr::default()
            })?;
        }
        Ok(())
    }

    /// Records an access (a read, a directory listing) in the access time, for a
    /// filesystem that keeps its own times (the host keeps a host file's). `relatime`:
    /// only when the access time is not later than the modification or change time, or is
    /// a day old (Linux's default); else always.
    fn touch_atime(&self, _relatime: bool) {}

    /// `statfs(2)` of the filesystem holding this file.
    ///
    /// # Errors
    /// Backend failures.
    fn statfs(&self) -> Result<FsStats, Errno>;

    /// For operations on two files of one filesystem (link, rename): the filesystem recovers
    /// its own type from the other file; anything else is EXDEV.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// For `/proc/[pid]/fd/N`-style "magic" links: following the link yields the open file
    /// itself rather than a walk of `readlink`'s text (None: an ordinary file or symlink).
    fn magic_link(&self, _cx: &Caller) -> Option<Result<MagicTarget, Errno>> {
        None
    }

    /// The value of the extended attribute `name` (the caller has checked permissions and
    /// the name's form).
    ///
    /// # Errors
    /// ENODATA when the file has no such attribute, EOPNOTSUPP when the filesystem does not
    /// keep attributes of that namespace.
    fn getxattr(&self, _name: &[u8]) -> Result<Vec<u8>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Sets the extended attribute `name` (`flags`: [`XATTR_CREATE`], [`XATTR_REPLACE`]). The
    /// ACL attributes are stored as given: [`super::acl`] has already applied their meaning.
    ///
    /// # Errors
    /// EEXIST, ENODATA (for the flags), EOPNOTSUPP, EROFS.
    fn setxattr(&self, _name: &[u8], _value: &[u8], _flags: u32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Removes the extended attribute `name`.
    ///
    /// # Errors
    /// ENODATA when there is none, EOPNOTSUPP, EROFS.
    fn removexattr(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// The names of the file's extended attributes (every namespace; the caller filters).
    ///
    /// # Errors
    /// Backend failures.
    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        Ok(Vec::new())
    }

    /// The file's extended access ACL, if it has one and the filesystem enforces ACLs (asked
    /// on permission checks, so it must be cheap).
    fn access_acl(&self) -> Option<super::acl::Acl> {
        None
    }

    /// The host FIFO or socket this node is, when opening or connecting to it must reach
    /// the host (None: the sandbox's own pipe or socket name, the default).
    fn host_special(&self) -> Option<&dyn HostSpecial> {
        None
    }

    /// Binds a new host socket of type `ty` (`SOCK_STREAM`, `SOCK_SEQPACKET`) at `name` in
    /// this host directory with permission bits `mode` (gVisor's `--host-uds=create`):
    /// returns the node made and the bound host socket (nonblocking, close-on-exec), which
    /// host programs can connect to once the sandbox listens. EOPNOTSUPP (the default): the
    /// directory is not one whose sockets are the host's, so the bind makes the sandbox's own
    /// socket file with [`Inode::create`].
    ///
    /// # Errors
    /// EOPNOTSUPP; EADDRINUSE (the name exists), EROFS, ENAMETOOLONG (the host's socket
    /// address cannot hold the name), the host's.
    fn bind_host_socket(
        &self,
        _name: &[u8],
        _ty: i32,
        _mode: u32,
    ) -> Result<(Arc<dyn Inode>, std::os::fd::OwnedFd), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// The file type, from `stat`.
    ///
    /// # Errors
    /// Backend failures.
    fn file_type(&self) -> Result<FileType, Errno> {
        Ok(FileType::from_mode(self.stat()?.mode))
    }

    /// The (device, inode number) of [`Inode::stat`], which never change for an inode. A
    /// filesystem whose full `stat` costs a host call overrides it.
    ///
    /// # Errors
    /// Backend failures.
    fn ident(&self) -> Result<(u64, u64), Errno> {
        let st = self.stat()?;
        Ok((st.dev, st.ino))
    }
}

/// `setxattr` flags: fail with EEXIST if the attribute exists; with ENODATA if it does not.
pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;

/// Whether an access at `now` updates an access time of `atime` under `relatime`: the
/// access time is not later than the modification or change time, or is a day old.
pub fn relatime_due(
    atime: (i64, i64),
    mtime: (i64, i64),
    ctime: (i64, i64),
    now: (i64, i64),
) -> bool {
    atime <= mtime || atime <= ctime || now.0 - atime.0 >= 24 * 60 * 60
}

/// The current wall-clock time as (seconds, nanoseconds).
pub fn now() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

/// Whether `creds` holds `cap` over a file with `st` (Linux's `capable_wrt_inode_uidgid`):
/// the capability in the caller's own user namespace, and that namespace maps both the
/// file's owner and its group. In the initial namespace this is the capability alone.
pub fn capable_wrt_owner(creds: &Creds, st: &Stat, cap: u32) -> bool {
    creds.has_cap_in(&creds.user_ns, cap)
        && creds.user_ns.from_kernel(st.uid, false).is_some()
        && creds.user_ns.from_kernel(st.gid, true).is_some()
}

/// Whether `creds` may give a file with `st` the owner `uid` and the group `gid` (None:
/// unchanged), as Linux's chown_ok/chgrp_ok: with CAP_CHOWN anything; otherwise only the
/// owner, keeping the owner and choosing one of its own groups.
pub fn may_chown(st: &Stat, creds: &Creds, uid: Option<u32>, gid: Option<u32>) -> bool {
    if capable_wrt_owner(creds, st, cap::CHOWN) {
        return true;
    }
    let owner = creds.fsuid == st.uid;
    let uid_ok = uid.is_none_or(|u| owner && u == st.uid);
    let gid_ok = gid.is_none_or(|g| owner && (g == st.gid || creds.in_group(g)));
    uid_ok && gid_ok
}

/// Whether `creds` may access a file with `st` for `mask` (R_OK=4, W_OK=2, X_OK=1), as
/// generic_permission does: the owner, group (effective or supplementary) or other bits,
/// then CAP_DAC_READ_SEARCH (reading files, reading and searching directories) and
/// CAP_DAC_OVERRIDE (everything but executing a file without any x bit). `use_real_ids`
/// checks as access(2) does, with the real IDs and root's capabilities.
pub fn may_access(st: &Stat, creds: &Creds, mask: u32, use_real_ids: bool) -> bool {
    may_access_with_acl(st, None, creds, mask, use_real_ids)
}

/// [`may_access`] for `inode`, whose stat is `st`: a caller other than the owner is checked
/// against the file's extended access ACL when it has one, as acl_permission_check does.
pub fn may_access_inode(
    inode: &dyn Inode,
    st: &Stat,
    creds: &Creds,
    mask: u32,
    use_real_ids: bool,
) -> bool {
    if use_real_ids {
        return may_access_inode(inode, st, &creds.for_real_ids(), mask, false);
    }
    let acl = if st.uid != creds.fsuid && st.mode & 0o070 != 0 {
        inode.access_acl()
    } else {
        None
    };
    may_access_with_acl(st, acl.as_ref(), creds, mask, false)
}

fn may_access_with_acl(
    st: &Stat,
    acl: Option<&super::acl::Acl>,
    creds: &Creds,
    mask: u32,
    use_real_ids: bool,
) -> bool {
    if use_real_ids {
        return may_access_with_acl(st, acl, &creds.for_real_ids(), mask, false);
    }
    let allowed = if st.uid == creds.fsuid {
        (st.mode >> 6) & 7 & mask == mask
    } else if let Some(acl) = acl {
        super::acl::permits(acl, st.gid, creds, mask)
    } else if creds.in_group(st.gid) {
        (st.mode >> 3) & 7 & mask == mask
    } else {
        st.mode & 7 & mask == mask
    };
    if allowed {
        return true;
    }
    if FileType::from_mode(st.mode) == FileType::Directory {
        return (mask & 2 == 0 && capable_wrt_owner(creds, st, cap::DAC_READ_SEARCH))
            || capable_wrt_owner(creds, st, cap::DAC_OVERRIDE);
    }
    if mask == 4 && capable_wrt_owner(creds, st, cap::DAC_READ_SEARCH) {
        return true;
    }
    (mask & 1 == 0 || st.mode & 0o111 != 0) && capable_wrt_owner(creds, st, cap::DAC_OVERRIDE)
}
