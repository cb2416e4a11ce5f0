//! File status: stat, lstat, newfstatat, fstat, statx, statfs, fstatfs and ustat.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::path::{
    path_at, Target, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_STATX_SYNC_TYPE,
    AT_SYMLINK_NOFOLLOW,
};
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::{Dentry, FsStats, Stat};

/// `st` with its owner and group as the caller's user namespace shows them (65534 for IDs
/// it does not map), as Linux's stat fills `struct kstat` through `from_kuid_munged`.
fn shown(t: &Task, mut st: Stat) -> Stat {
    st.uid = t.creds.user_ns.show(st.uid, false);
    st.gid = t.creds.user_ns.show(st.gid, true);
    st
}

fn write_stat(t: &Task, buf: UserAddr, st: Stat) -> SysResult {
    t.mm.write_obj(buf, &shown(t, st))?;
    Ok(0)
}

/// stat(2)
pub fn stat(t: &mut Task, path: PathArg, buf: UserAddr) -> SysResult {
    let st = path_at(t, Fd(AT_FDCWD), path, 0)?.stat()?;
    write_stat(t, buf, st)
}

/// lstat(2)
pub fn lstat(t: &mut Task, path: PathArg, buf: UserAddr) -> SysResult {
    let st = path_at(t, Fd(AT_FDCWD), path, AT_SYMLINK_NOFOLLOW)?.stat()?;
    write_stat(t, buf, st)
}

/// fstat(2)
pub fn fstat(t: &mut Task, fd: Fd, statbuf: UserAddr) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let st = match &f.dentry {
        Some(d) => d.inode.stat()?,
        None => f.ops().stat()?,
    };
    write_stat(t, statbuf, st)
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
    write_stat(t, buf, st)
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
    let st = shown(t, target.stat()?);
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
        f_flags: statfs_flags(&d.mount),
        f_spare: [0; 4],
    };
    t.mm.write_obj(buf, &out)?;
    Ok(0)
}

/// `statfs`'s `f_flags`: the mount's flags as `ST_*` bits, and ST_VALID as Linux sets it.
fn statfs_flags(m: &crate::vfs::Mount) -> i64 {
    const ST_VALID: u64 = 0x20;
    let mut f = ST_VALID;
    for (ms, st) in [
        (libc::MS_NOSUID, libc::ST_NOSUID),
        (libc::MS_NODEV, libc::ST_NODEV),
        (libc::MS_NOEXEC, libc::ST_NOEXEC),
        (libc::MS_NOATIME, libc::ST_NOATIME),
        (libc::MS_NODIRATIME, libc::ST_NODIRATIME),
    ] {
        if m.flags & ms != 0 {
            f |= st;
        }
    }
    if m.readonly {
        f |= libc::ST_RDONLY;
    }
    if m.flags & (libc::MS_NOATIME | libc::MS_STRICTATIME) == 0 {
        f |= libc::ST_RELATIME;
    }
    f as i64
}

/// statfs(2)
pub fn statfs(t: &mut Task, path: PathArg, buf: UserAddr) -> SysResult {
    let d = path_at(t, Fd(AT_FDCWD), path, 0)?.dentry()?;
    write_statfs(t, &d, buf)
}

/// fstatfs(2)
pub fn fstatfs(t: &mut Task, fd: Fd, buf: UserAddr) -> SysResult {
    let f = t.fds.get(fd.0)?;
    if let Some(d) = f.dentry.clone() {
        return write_statfs(t, &d, buf);
    }
    if !matches!(f.kind(), crate::vfs::FileKind::Socket(_)) {
        return Err(Errno::ENOSYS);
    }
    // A socket lives on sockfs: Linux's `simple_statfs` of it.
    let out = StatfsBuf {
        f_type: SOCKFS_MAGIC,
        f_bsize: 4096,
        f_namelen: 255,
        f_frsize: 4096,
        ..StatfsBuf::default()
    };
    t.mm.write_obj(buf, &out)?;
    Ok(0)
}

/// `f_type` of sockfs.
const SOCKFS_MAGIC: i64 = 0x534F_434B;

/// `struct ustat` of x86-64.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct UstatBuf {
    f_tfree: i32,
    pad: u32,
    f_tinode: u64,
    f_fname: [u8; 6],
    f_fpack: [u8; 6],
    tail: [u8; 4],
}

/// ustat(2): the free blocks and inodes of the filesystem mounted from device `dev` (in the
/// kernel's `new_encode_dev` form), found among the mounts of the caller's mount namespace;
/// EINVAL when none is. `f_tfree` is truncated to an `int`, as Linux.
pub fn ustat(t: &mut Task, dev: u32, buf: UserAddr) -> SysResult {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    let mount =
        t.fs.ns
            .mounts()
            .into_iter()
            .find(|m| {
                m.root
                    .stat()
                    .is_ok_and(|st| libc::major(st.dev) == major && libc::minor(st.dev) == minor)
            })
            .ok_or(Errno::EINVAL)?;
    let s: FsStats = mount.root.statfs()?;
    let out = UstatBuf {
        f_tfree: s.blocks_free as i32,
        f_tinode: s.files_free,
        ..UstatBuf::default()
    };
    t.mm.write_obj(buf, &out)?;
    Ok(0)
}
