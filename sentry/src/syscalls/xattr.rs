//! Extended attributes: get/set/list/remove, each by path, by path without following a
//! final symlink (l*), and by fd (f*).
//!
//! The twelve calls are four handlers generic over [`XattrFile`], how the call names its
//! file; the table's argument type (`PathArg`, `NoFollowPath` or `Fd`) picks the variant.

use super::path::{path_at, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::{Fd, Flags, NoFollowPath, PathArg};
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

/// How an xattr call finds its file.
pub trait XattrFile: Copy {
    /// Fails as the call must when the file cannot be found (ENOENT, EBADF, ...).
    fn find(self, t: &Task) -> Result<(), Errno>;
}

impl XattrFile for PathArg {
    fn find(self, t: &Task) -> Result<(), Errno> {
        path_at(t, Fd(AT_FDCWD), self, 0).map(drop)
    }
}

impl XattrFile for NoFollowPath {
    fn find(self, t: &Task) -> Result<(), Errno> {
        path_at(t, Fd(AT_FDCWD), PathArg(self.0), AT_SYMLINK_NOFOLLOW).map(drop)
    }
}

impl XattrFile for Fd {
    fn find(self, t: &Task) -> Result<(), Errno> {
        t.fds.get(self.0).map(drop)
    }
}

fn check_name(t: &Task, name: UserAddr) -> Result<(), Errno> {
    let n = t.mm.read_cstring(name, 256)?;
    if n.is_empty() {
        return Err(Errno::ERANGE);
    }
    Ok(())
}

/// getxattr(2), lgetxattr(2), fgetxattr(2): no file carries extended attributes yet.
pub fn get<F: XattrFile>(
    t: &mut Task,
    file: F,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
) -> SysResult {
    file.find(t)?;
    check_name(t, name)?;
    Err(Errno::ENODATA)
}

/// listxattr(2), llistxattr(2), flistxattr(2): the list is empty.
pub fn list<F: XattrFile>(t: &mut Task, file: F, _list: UserAddr, _size: usize) -> SysResult {
    file.find(t)?;
    Ok(0)
}

/// setxattr(2), lsetxattr(2), fsetxattr(2): the sandbox's filesystems do not store extended
/// attributes.
pub fn set<F: XattrFile>(
    t: &mut Task,
    file: F,
    name: UserAddr,
    _value: UserAddr,
    _size: usize,
    _flags: Flags,
) -> SysResult {
    file.find(t)?;
    check_name(t, name)?;
    Err(Errno::EOPNOTSUPP)
}

/// removexattr(2), lremovexattr(2), fremovexattr(2)
pub fn remove<F: XattrFile>(t: &mut Task, file: F, name: UserAddr) -> SysResult {
    file.find(t)?;
    check_name(t, name)?;
    Err(Errno::ENODATA)
}
