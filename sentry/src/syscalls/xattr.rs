//! Extended attributes: get/set/list/remove, each by path, by path without following a
//! final symlink (l*), and by fd (f*).

use super::path::{path_at, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

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
