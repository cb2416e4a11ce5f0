//! `/dev`: a tmpfs holding the standard character devices and the fd links.
//!
//! null, zero, full, random and urandom are implemented by the sentry; `tty` opens the
//! caller's controlling terminal ([`crate::tty::DevTty`]); `fuse` opens a FUSE device file
//! ([`super::fuse::DevFile`]); `net/tun` opens a TUN/TAP file
//! in the caller's network namespace ([`crate::vfs::Context::open_net_tun`]). `shm` and `pts` are directories
//! for the tmpfs and devpts mounts; `ptmx` is a link to `pts/ptmx`, as runc makes it.

use std::sync::Arc;

use super::tmpfs::{Device, TmpFs, TmpNode};
use crate::abi::Errno;
use crate::memory::MemoryFile;
use crate::vfs::Context;
use crate::vfs::{Caller, FileOps, Inode, NewAttrs, NewNode, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Zero,
    Full,
    Random,
    Tty,
    /// `/dev/net/tun`: replaced at open by the caller's namespace's file.
    Tun,
    /// `/dev/fuse`: a new [`super::fuse::DevFile`] per open.
    Fuse,
}

struct CharDev {
    kind: Kind,
    rdev: u64,
}

struct CharFile {
    kind: Kind,
    rdev: u64,
}

impl Device for CharDev {
    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        match self.kind {
            Kind::Tty => return Ok(Arc::new(crate::tty::DevTty)),
            Kind::Fuse => return Ok(Arc::new(super::fuse::DevFile::default())),
            _ => {}
        }
        Ok(Arc::new(CharFile {
            kind: self.kind,
            rdev: self.rdev,
        }))
    }
}

/// Fills `dst` page by page from `gen` (zeroes, random bytes), stopping at a fault.
fn fill_dst(
    dst: &mut dyn IoDst,
    mut gen: impl FnMut(&mut [u8]) -> Result<(), Errno>,
) -> Result<usize, Errno> {
    let mut chunk = [0u8; crate::abi::PAGE_SIZE as usize];
    let mut done = 0usize;
    while dst.remaining() > 0 {
        let n = dst.remaining().min(chunk.len());
        gen(&mut chunk[..n])?;
        match dst.copy_from(&chunk[..n]) {
            Ok(c) if c == n => done += c,
            Ok(c) => return Ok(done + c),
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

impl FileOps for CharFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        match self.kind {
            Kind::Null => Ok(0),
            Kind::Zero | Kind::Full => fill_dst(dst, |chunk| {
                chunk.fill(0);
                Ok(())
            }),
            Kind::Random => fill_dst(dst, |chunk| {
                rustix::rand::getrandom(chunk, rustix::rand::GetRandomFlags::empty())
                    .map(drop)
                    .map_err(|e| Errno::from_raw(e.raw_os_error()))
            }),
            Kind::Tty | Kind::Tun | Kind::Fuse => Err(Errno::ENXIO),
        }
    }

    fn opened(&self, t: &mut dyn Context, _flags: u32) -> Result<Option<Arc<dyn FileOps>>, Errno> {
        Ok((self.kind == Kind::Tun).then(|| t.open_net_tun()))
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        match self.kind {
            Kind::Full => Err(Errno::ENOSPC),
            Kind::Tty | Kind::Tun | Kind::Fuse => Err(Errno::ENXIO),
            _ => Ok(src.remaining()),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            mode: libc::S_IFCHR | 0o666,
            rdev: self.rdev,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn seekable(&self) -> bool {
        true
    }

    fn offset_pinned(&self) -> bool {
        !matches!(self.kind, Kind::Tty | Kind::Tun | Kind::Fuse)
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(0)
    }
}

/// The device a node made by mknod(2) with device number `rdev` opens: the character
/// devices the sentry implements (null, zero, full, random, urandom, tty, fuse) by their Linux
/// numbers; any other, and every block device, is absent (ENXIO on open), as a number
/// without a driver is on Linux.
pub fn by_number(block: bool, rdev: u64) -> Arc<dyn Device> {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let kind = match (block, major, minor) {
        (false, 1, 3) => Kind::Null,
        (false, 1, 5) => Kind::Zero,
        (false, 1, 7) => Kind::Full,
        (false, 1, 8 | 9) => Kind::Random,
        (false, 5, 0) => Kind::Tty,
        (false, 10, 229) => Kind::Fuse,
        _ => return Arc::new(Absent),
    };
    Arc::new(CharDev { kind, rdev })
}

/// A device number without a device behind it.
struct Absent;

impl Device for Absent {
    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }
}

/// Builds the `/dev` tree; mount a tmpfs at `/dev/shm` separately.
///
/// # Errors
/// Only on internal inconsistencies (duplicate names).
pub fn new_dev(mf: &Arc<MemoryFile>) -> Result<Arc<TmpNode>, Errno> {
    let root = TmpFs::new_root(mf, 0o755);
    let devs = [
        ("null", Kind::Null, 1, 3),
        ("zero", Kind::Zero, 1, 5),
        ("full", Kind::Full, 1, 7),
        ("random", Kind::Random, 1, 8),
        ("urandom", Kind::Random, 1, 9),
        ("tty", Kind::Tty, 5, 0),
        ("fuse", Kind::Fuse, 10, 229),
    ];
    for (name, kind, major, minor) in devs {
        let rdev = libc::makedev(major, minor);
        root.add_device(
            name.as_bytes(),
            0o666,
            rdev,
            Arc::new(CharDev { kind, rdev }),
        )?;
    }
    let cx = Caller::kernel();
    let attrs = |mode| NewAttrs {
        mode,
        uid: 0,
        gid: 0,
    };
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    for (name, target) in links {
        root.create(
            &cx,
            name.as_bytes(),
            NewNode::Symlink(target.as_bytes().to_vec()),
            attrs(0o777),
        )?;
    }
    root.create(&cx, b"net", NewNode::Directory, attrs(0o755))?;
    let net = root.child(b"net").ok_or(Errno::ENOENT)?;
    let rdev = libc::makedev(10, 200);
    net.add_device(
        b"tun",
        0o666,
        rdev,
        Arc::new(CharDev {
            kind: Kind::Tun,
            rdev,
        }),
    )?;
    root.create(&cx, b"shm", NewNode::Directory, attrs(0o1777))?;
    root.create(&cx, b"pts", NewNode::Directory, attrs(0o755))?;
    Ok(root)
}
