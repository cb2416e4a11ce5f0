//! Directories as places: reading entries (getdents64), the working directory (getcwd,
//! chdir, fchdir) and the root (chroot).

use std::sync::Arc;

use super::path::{path_at, AT_FDCWD};
use super::{Fd, PathArg};
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::inode::may_access_inode;
use crate::vfs::inotify;
use crate::vfs::{Dentry, FileType};

/// getdents64(2)
pub fn getdents64(t: &mut Task, fd: Fd, buf: UserAddr, count: u32) -> SysResult {
    read_dir(t, fd, buf, count, false)
}

/// getdents(2): the old `struct linux_dirent` layout (name right after `d_reclen`, the type
/// in the record's last byte). On x86-64 its `d_ino` and `d_off` are `unsigned long`, as
/// wide as getdents64's, so no entry overflows them (EOVERFLOW is for 32-bit callers).
pub fn getdents(t: &mut Task, fd: Fd, buf: UserAddr, count: u32) -> SysResult {
    read_dir(t, fd, buf, count, true)
}

/// Rewrites `linux_dirent64` records into `linux_dirent` ones in place: both are
/// `ALIGN(name + 20, 8)` bytes long (Linux's filldir and filldir64), so the same entries fit
/// the same buffer and the offsets of every record stay.
fn to_old_dirents(data: &mut [u8]) {
    let mut at = 0;
    while at + 19 <= data.len() {
        let reclen = usize::from(u16::from_ne_bytes([data[at + 16], data[at + 17]]));
        if reclen < 20 || at + reclen > data.len() {
            break;
        }
        let rec = &mut data[at..at + reclen];
        let d_type = rec[18];
        let name_len = rec[19..]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(reclen - 20);
        rec.copy_within(19..19 + name_len, 18);
        rec[18 + name_len..].fill(0);
        rec[reclen - 1] = d_type;
        at += reclen;
    }
}

fn read_dir(t: &mut Task, fd: Fd, buf: UserAddr, count: u32, old_layout: bool) -> SysResult {
    let f = t.fds.get(fd.0)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    let mut off = f.offset.lock().unwrap();
    let (mut data, mut next) = f.ops().getdents(t, *off, count as usize)?;
    if old_layout {
        to_old_dirents(&mut data);
    }
    let mut len = data.len();
    if !data.is_empty() {
        let copied = t.mm.copy_out(buf.0, &data).unwrap_or(0);
        if copied < len {
            // As Linux's filldir64: the entries that fit before the fault are returned, and
            // the offset moves past them only; EFAULT when not even one did.
            (len, next) = whole_dirents(&data, copied).ok_or(Errno::EFAULT)?;
        }
    }
    *off = next;
    drop(off);
    if let Some(d) = &f.dentry {
        f.touch_atime(d);
        inotify::file_event(d, inotify::IN_ACCESS);
    }
    Ok(len as u64)
}

/// The bytes of the whole `linux_dirent64` records of `data` that lie in its first `limit`
/// bytes, and the directory offset after the last of them (its `d_off`); None when not even
/// the first one does.
fn whole_dirents(data: &[u8], limit: usize) -> Option<(usize, u64)> {
    let mut at = 0;
    let mut next = None;
    while at + 19 <= data.len() {
        let reclen = usize::from(u16::from_ne_bytes([data[at + 16], data[at + 17]]));
        if reclen == 0 || at + reclen > limit {
            break;
        }
        let d_off = u64::from_ne_bytes(data[at + 8..at + 16].try_into().ok()?);
        at += reclen;
        next = Some((at, d_off));
    }
    next
}

fn enter_dir(t: &Task, d: Arc<Dentry>) -> Result<Arc<Dentry>, Errno> {
    let st = d.inode.stat()?;
    if FileType::from_mode(st.mode) != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    if !may_access_inode(d.inode.as_ref(), &st, &t.creds, 1, false) {
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
    // CAP_SYS_CHROOT in the caller's own user namespace, as Linux's.
    if !t
        .creds
        .has_cap_in(&t.creds.user_ns, crate::auth::cap::SYS_CHROOT)
    {
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

#[cfg(test)]
mod tests {
    use super::{to_old_dirents, whole_dirents};

    /// A `linux_dirent64` of `reclen` bytes whose `d_off` is `d_off`.
    fn dirent(d_off: u64, reclen: u16) -> Vec<u8> {
        let mut v = vec![0u8; usize::from(reclen)];
        v[8..16].copy_from_slice(&d_off.to_ne_bytes());
        v[16..18].copy_from_slice(&reclen.to_ne_bytes());
        v
    }

    #[test]
    fn only_whole_entries_before_a_fault_count() {
        let data = [dirent(1, 24), dirent(2, 32), dirent(3, 24)].concat();
        assert_eq!(whole_dirents(&data, 23), None);
        assert_eq!(whole_dirents(&data, 24), Some((24, 1)));
        assert_eq!(whole_dirents(&data, 55), Some((24, 1)));
        assert_eq!(whole_dirents(&data, 56), Some((56, 2)));
        assert_eq!(whole_dirents(&data, 80), Some((80, 3)));
    }

    /// A `linux_dirent64` for `name` of type `d_type`, sized as Linux's filldir64.
    fn named(ino: u64, d_off: u64, d_type: u8, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        let mut v = dirent(d_off, reclen as u16);
        v[0..8].copy_from_slice(&ino.to_ne_bytes());
        v[18] = d_type;
        v[19..19 + name.len()].copy_from_slice(name);
        v
    }

    #[test]
    fn old_dirents_move_the_type_to_the_last_byte() {
        // "abcd" fills its 24-byte record to the last byte; "x" leaves padding.
        let mut data = [named(7, 1, 4, b"abcd"), named(9, 2, 8, b"x")].concat();
        to_old_dirents(&mut data);
        assert_eq!(&data[0..8], &7u64.to_ne_bytes());
        assert_eq!(&data[8..16], &1u64.to_ne_bytes());
        assert_eq!(&data[16..18], &24u16.to_ne_bytes());
        assert_eq!(&data[18..24], b"abcd\0\x04");
        assert_eq!(&data[24..32], &9u64.to_ne_bytes());
        assert_eq!(&data[40..42], &24u16.to_ne_bytes());
        assert_eq!(&data[42..48], b"x\0\0\0\0\x08");
    }
}
