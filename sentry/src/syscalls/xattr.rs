//! Extended attributes: get/set/list/remove, each by path, by path without following a
//! final symlink (l*), and by fd (f*).
//!
//! The twelve calls are four handlers generic over [`XattrFile`], how the call names its
//! file; the table's argument type (`PathArg`, `NoFollowPath` or `Fd`) picks the variant.
//! What Linux's VFS decides is decided here, once for every filesystem: the name's form
//! (ERANGE), the value's size (E2BIG), the namespace's permission rules (xattr_permission:
//! `trusted.` needs CAP_SYS_ADMIN, `user.` only on regular files and directories and
//! subject to the file's permission bits, the sticky-directory rule), and the POSIX ACL
//! attributes' meaning ([`crate::vfs::acl`]: mode updates, ownership, validation). The
//! filesystems only store values ([`Inode::getxattr`] and friends).

use std::sync::Arc;

use super::path::{check_writable_mount, path_at, Target, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::{Fd, Flags, NoFollowPath, PathArg};
use crate::abi::{Errno, SysResult};
use crate::auth::cap;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::acl;
use crate::vfs::inode::{may_access_inode, OpenFileInode, XATTR_CREATE, XATTR_REPLACE};
use crate::vfs::inotify;
use crate::vfs::{Dentry, FileType, Inode, NewAttrs, SetAttr, Stat};

/// Longest attribute name (XATTR_NAME_MAX).
const NAME_MAX: usize = 255;
/// Largest attribute value (XATTR_SIZE_MAX).
const SIZE_MAX: usize = 65536;
/// Largest name list `listxattr` copies out (XATTR_LIST_MAX).
const LIST_MAX: usize = 65536;

/// The file an xattr call acts on.
pub struct Found {
    dentry: Option<Arc<Dentry>>,
    inode: Arc<dyn Inode>,
}

/// How an xattr call finds its file.
pub trait XattrFile: Copy {
    /// Fails as the call must when the file cannot be found (ENOENT, EBADF, ...).
    fn find(self, t: &Task) -> Result<Found, Errno>;
}

fn found(target: Target) -> Found {
    match target {
        Target::Path(d) => Found {
            inode: d.inode.clone(),
            dentry: Some(d),
        },
        Target::File(f) => Found {
            dentry: None,
            inode: Arc::new(OpenFileInode(f)),
        },
    }
}

impl XattrFile for PathArg {
    fn find(self, t: &Task) -> Result<Found, Errno> {
        path_at(t, Fd(AT_FDCWD), self, 0).map(found)
    }
}

impl XattrFile for NoFollowPath {
    fn find(self, t: &Task) -> Result<Found, Errno> {
        path_at(t, Fd(AT_FDCWD), PathArg(self.0), AT_SYMLINK_NOFOLLOW).map(found)
    }
}

impl XattrFile for Fd {
    fn find(self, t: &Task) -> Result<Found, Errno> {
        let f = t.fds.get(self.0)?;
        if f.is_path_only() {
            return Err(Errno::EBADF);
        }
        Ok(match &f.dentry {
            Some(d) => Found {
                inode: d.inode.clone(),
                dentry: Some(d.clone()),
            },
            None => Found {
                dentry: None,
                inode: Arc::new(OpenFileInode(f)),
            },
        })
    }
}

/// The namespace of an attribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    User,
    Trusted,
    Security,
    /// `system.posix_acl_access` (false) or `system.posix_acl_default` (true).
    Acl(bool),
    /// A prefix no filesystem keeps: EOPNOTSUPP once the permission checks pass.
    Other,
}

fn namespace(name: &[u8]) -> Ns {
    if name == acl::ACCESS {
        Ns::Acl(false)
    } else if name == acl::DEFAULT {
        Ns::Acl(true)
    } else if name.starts_with(b"user.") {
        Ns::User
    } else if name.starts_with(b"trusted.") {
        Ns::Trusted
    } else if name.starts_with(b"security.") {
        Ns::Security
    } else {
        Ns::Other
    }
}

/// Reads the attribute name: EFAULT, or ERANGE when empty or longer than XATTR_NAME_MAX.
fn read_name(t: &Task, name: UserAddr) -> Result<Vec<u8>, Errno> {
    let n = match t.mm.read_cstring(name, NAME_MAX + 1) {
        Err(Errno::ENAMETOOLONG) => return Err(Errno::ERANGE),
        r => r?,
    };
    if n.is_empty() {
        return Err(Errno::ERANGE);
    }
    Ok(n)
}

fn owner_or_capable(t: &Task, st: &Stat) -> bool {
    t.creds.fsuid == st.uid || t.creds.has_cap(cap::FOWNER)
}

/// xattr_permission: whether the caller may read (or, with `write`, change) attribute `ns`
/// of `f`, whose stat is `st`.
fn permission(t: &Task, f: &Found, st: &Stat, ns: Ns, write: bool) -> Result<(), Errno> {
    let denied = if write { Errno::EPERM } else { Errno::ENODATA };
    match ns {
        Ns::Security | Ns::Acl(_) => return Ok(()),
        Ns::Trusted => {
            return if t.creds.has_cap(cap::SYS_ADMIN) {
                Ok(())
            } else {
                Err(denied)
            };
        }
        Ns::User => {
            let kind = FileType::from_mode(st.mode);
            if kind != FileType::Regular && kind != FileType::Directory {
                return Err(denied);
            }
            if kind == FileType::Directory
                && st.mode & libc::S_ISVTX != 0
                && write
                && !owner_or_capable(t, st)
            {
                return Err(Errno::EPERM);
            }
        }
        Ns::Other => {}
    }
    let mask = if write { 2 } else { 4 };
    if !may_access_inode(f.inode.as_ref(), st, &t.creds, mask, false) {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// Copies `value` out as getxattr/listxattr do: its length when `size` is 0, ERANGE when it
/// does not fit.
fn copy_out(t: &Task, addr: UserAddr, size: usize, value: &[u8]) -> SysResult {
    if size == 0 {
        return Ok(value.len() as u64);
    }
    if value.len() > size {
        return Err(Errno::ERANGE);
    }
    t.mm.write_bytes(addr, value)?;
    Ok(value.len() as u64)
}

/// getxattr(2), lgetxattr(2), fgetxattr(2)
pub fn get<F: XattrFile>(
    t: &mut Task,
    file: F,
    name: UserAddr,
    value: UserAddr,
    size: usize,
) -> SysResult {
    let name = read_name(t, name)?;
    let f = file.find(t)?;
    let st = f.inode.stat()?;
    let ns = namespace(&name);
    permission(t, &f, &st, ns, false)?;
    if ns == Ns::Other {
        return Err(Errno::EOPNOTSUPP);
    }
    let v = f.inode.getxattr(&name)?;
    copy_out(t, value, size, &v)
}

/// listxattr(2), llistxattr(2), flistxattr(2): `trusted.` names only for CAP_SYS_ADMIN.
pub fn list<F: XattrFile>(t: &mut Task, file: F, list: UserAddr, size: usize) -> SysResult {
    let f = file.find(t)?;
    let trusted = t.creds.has_cap(cap::SYS_ADMIN);
    let mut out = Vec::new();
    for n in f.inode.listxattr()? {
        if namespace(&n) == Ns::Trusted && !trusted {
            continue;
        }
        out.extend_from_slice(&n);
        out.push(0);
    }
    if out.len() > LIST_MAX && size != 0 {
        return Err(Errno::E2BIG);
    }
    copy_out(t, list, size, &out)
}

/// setxattr(2), lsetxattr(2), fsetxattr(2)
pub fn set<F: XattrFile>(
    t: &mut Task,
    file: F,
    name: UserAddr,
    value: UserAddr,
    size: usize,
    flags: Flags,
) -> SysResult {
    if flags.0 & !u64::from(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_name(t, name)?;
    if size > SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    let value = if size == 0 {
        Vec::new()
    } else {
        t.mm.read_bytes(value, size)?
    };
    let f = file.find(t)?;
    if let Some(d) = &f.dentry {
        check_writable_mount(d)?;
    }
    let ns = namespace(&name);
    if let Ns::Acl(default) = ns {
        set_acl(t, &f, default, acl::parse(&value)?)?;
    } else {
        let st = f.inode.stat()?;
        permission(t, &f, &st, ns, true)?;
        security_permission(t, &name, ns)?;
        if ns == Ns::Other {
            return Err(Errno::EOPNOTSUPP);
        }
        f.inode.setxattr(&name, &value, flags.0 as u32)?;
        if name == crate::vfs::file::SECURITY_CAPABILITY {
            crate::vfs::file::file_caps_set();
        }
    }
    changed(&f);
    Ok(0)
}

/// removexattr(2), lremovexattr(2), fremovexattr(2)
pub fn remove<F: XattrFile>(t: &mut Task, file: F, name: UserAddr) -> SysResult {
    let name = read_name(t, name)?;
    let f = file.find(t)?;
    if let Some(d) = &f.dentry {
        check_writable_mount(d)?;
    }
    let ns = namespace(&name);
    if let Ns::Acl(default) = ns {
        set_acl(t, &f, default, None)?;
    } else {
        let st = f.inode.stat()?;
        permission(t, &f, &st, ns, true)?;
        security_permission(t, &name, ns)?;
        if ns == Ns::Other {
            return Err(Errno::EOPNOTSUPP);
        }
        f.inode.removexattr(&name)?;
    }
    changed(&f);
    Ok(0)
}

/// The capability check of the security module for changing `security.` attributes:
/// `security.capability` needs CAP_SETFCAP, the others CAP_SYS_ADMIN.
fn security_permission(t: &Task, name: &[u8], ns: Ns) -> Result<(), Errno> {
    if ns != Ns::Security {
        return Ok(());
    }
    let need = if name == crate::vfs::file::SECURITY_CAPABILITY {
        cap::SETFCAP
    } else {
        cap::SYS_ADMIN
    };
    if t.creds.has_cap(need) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// IN_ATTRIB for a changed attribute.
fn changed(f: &Found) {
    if let Some(d) = &f.dentry {
        inotify::inode_changed(d, inotify::IN_ATTRIB);
    }
}

/// Sets (Some) or removes (None) an ACL, as Linux's set_posix_acl and the filesystems'
/// set_acl: symbolic links have none (EOPNOTSUPP); a default ACL only on a directory
/// (EACCES, though removing one from a file succeeds); only the owner or CAP_FOWNER may
/// change one (EPERM); an access ACL sets the permission bits, is not stored when the mode
/// says it all, and clears the set-group-ID bit of a caller outside the file's group.
fn set_acl(t: &Task, f: &Found, default: bool, entries: Option<acl::Acl>) -> Result<(), Errno> {
    let st = f.inode.stat()?;
    let kind = FileType::from_mode(st.mode);
    if kind == FileType::Symlink {
        return Err(Errno::EOPNOTSUPP);
    }
    if default && kind != FileType::Directory {
        return if entries.is_some() {
            Err(Errno::EACCES)
        } else {
            Ok(())
        };
    }
    if !owner_or_capable(t, &st) {
        return Err(Errno::EPERM);
    }
    let name = if default { acl::DEFAULT } else { acl::ACCESS };
    if default {
        return match entries {
            Some(a) => f.inode.setxattr(name, &acl::encode(&a), 0),
            None => f.inode.removexattr(name),
        };
    }
    let mut mode = st.mode;
    let given = entries.is_some();
    let mut stored = entries;
    if let Some(a) = &stored {
        let (m, extended) = acl::equiv_mode(a, mode);
        mode = m;
        if !extended {
            stored = None;
        }
    }
    if !t.creds.in_group(st.gid) && !t.creds.has_cap(cap::FSETID) {
        mode &= !libc::S_ISGID;
    }
    match &stored {
        Some(a) => f.inode.setxattr(name, &acl::encode(a), 0)?,
        // An ACL that folds into the mode replaces one the file may not have (an overlay's
        // lower file without one answers ENODATA to removal).
        None => match f.inode.removexattr(name) {
            Err(Errno::ENODATA) if given => {}
            r => r?,
        },
    }
    f.inode.setattr(&SetAttr {
        mode: Some(mode & 0o7777),
        ..SetAttr::default()
    })
}

/// ACLs a new file takes from its directory's default ACL.
pub(super) struct Inherited {
    access: Option<acl::Acl>,
    default: Option<acl::Acl>,
}

/// The ownership and permission bits of a new file made with `mode` in `parent`, and the
/// ACLs it inherits: with a default ACL on the directory the umask does not apply and the
/// mode is masked by the ACL instead (posix_acl_create).
pub(super) fn new_file_attrs(
    t: &Task,
    parent: &dyn Inode,
    mode: u32,
    dir: bool,
) -> (NewAttrs, Option<Inherited>) {
    let mode = mode & 0o7777;
    let default = parent
        .getxattr(acl::DEFAULT)
        .ok()
        .and_then(|v| acl::parse(&v).ok().flatten());
    let (mode, inherited) = match default {
        None => (mode & !t.fs.umask(), None),
        Some(d) => {
            let (m, access, default) = acl::inherit(&d, mode, dir);
            (m, Some(Inherited { access, default }))
        }
    };
    let attrs = NewAttrs {
        mode,
        uid: t.creds.fsuid,
        gid: t.creds.fsgid,
    };
    (attrs, inherited)
}

/// Gives a new file the ACLs [`new_file_attrs`] found.
///
/// # Errors
/// The filesystem's, storing them.
pub(super) fn apply_inherited(
    inode: &dyn Inode,
    inherited: Option<Inherited>,
) -> Result<(), Errno> {
    let Some(i) = inherited else { return Ok(()) };
    if let Some(a) = i.access {
        inode.setxattr(acl::ACCESS, &acl::encode(&a), 0)?;
    }
    if let Some(d) = i.default {
        inode.setxattr(acl::DEFAULT, &acl::encode(&d), 0)?;
    }
    Ok(())
}
