//! inotify system calls: instances, watches (the events themselves come from
//! [`crate::vfs::inotify`]'s hooks in the file system calls).

use std::sync::Arc;

use super::fd::nofile_limit;
use super::path::{read_path, resolver, start_dir};
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::vfs::inode::may_access;
use crate::vfs::inotify::{self, Inotify};
use crate::vfs::{FileKind, OpenFile};

/// inotify_init1(2)
pub fn inotify_init1(t: &mut Task, flags: Flags) -> SysResult {
    let allowed = (libc::IN_NONBLOCK | libc::IN_CLOEXEC) as u64;
    if flags.0 & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let f = OpenFile::of_kind(
        FileKind::Inotify(Inotify::new(&t.kernel.notify)?),
        libc::O_RDONLY as u32 | (flags.0 as u32 & libc::O_NONBLOCK as u32),
    );
    let limit = nofile_limit(t);
    Ok(t.fds
        .install(f, 0, flags.0 & libc::O_CLOEXEC as u64 != 0, limit)? as u64)
}

/// inotify_init(2)
pub fn inotify_init(t: &mut Task) -> SysResult {
    inotify_init1(t, Flags(0))
}

fn instance(t: &Task, fd: Fd) -> Result<Arc<Inotify>, Errno> {
    match t.fds.get(fd.0)?.kind() {
        FileKind::Inotify(i) => Ok(i.clone()),
        _ => Err(Errno::EINVAL),
    }
}

/// inotify_add_watch(2)
pub fn inotify_add_watch(t: &mut Task, fd: Fd, path: PathArg, mask: u32) -> SysResult {
    let f = instance(t, fd)?;
    inotify::check_mask(mask)?;
    let p = read_path(t, path)?;
    let start = start_dir(t, Fd(libc::AT_FDCWD), &p)?;
    let d = resolver(t).resolve(start, &p, mask & inotify::IN_DONT_FOLLOW == 0)?;
    let st = d.inode.stat()?;
    if !may_access(&st, &t.creds, 4, false) {
        return Err(Errno::EACCES);
    }
    Ok(f.add_watch_at(&st, mask, &d.path)? as u64)
}

/// inotify_rm_watch(2)
pub fn inotify_rm_watch(t: &mut Task, fd: Fd, wd: i32) -> SysResult {
    instance(t, fd)?.rm_watch(wd)?;
    Ok(0)
}
