//! hostfs (directfs): a host directory tree reached only through directory fds.
//!
//! Every host call is fd-relative with a single path component: `openat(dirfd, name,
//! O_PATH|O_NOFOLLOW)`, `fstat`, `readlinkat(fd, "")`, `getdents64` on a directory fd opened
//! from `"."`. The host never follows a symlink for us (the sentry's walk resolves them), and
//! no multi-component path ever reaches the host, so nothing outside the root is reachable.
//! Only regular files and directories are opened for I/O on the host; host device nodes,
//! FIFOs and sockets are never opened.
//!
//! A filesystem is read-only unless created writable (`--volume` without `:ro`).

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::abi::Errno;
use crate::vfs::host::HostFile;
use crate::vfs::inode::{now, RenameFlags, TimeSet};
use crate::vfs::{
    Caller, DirEntry, FileOps, FileType, FsStats, Inode, NewAttrs, NewNode, SetAttr, Stat,
};

fn herr(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// Rejects anything but one plain component (defence in depth; the walk never passes one).
fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::ENOENT);
    }
    Ok(())
}

/// Settings shared by every node of one host tree.
#[derive(Debug)]
struct HostFs {
    writable: bool,
}

/// A host file, held as an `O_PATH` fd.
pub struct HostNode {
    fs: Arc<HostFs>,
    /// `O_PATH|O_NOFOLLOW` fd of the file itself.
    fd: Arc<OwnedFd>,
    /// The directory it was found in and its name there (None for the tree's root), for
    /// opening it for I/O and for attribute changes by name.
    parent: Option<(Arc<OwnedFd>, Vec<u8>)>,
}

impl std::fmt::Debug for HostNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNode").finish_non_exhaustive()
    }
}

fn to_stat(st: &rustix::fs::Stat) -> Stat {
    Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: st.st_atime,
        atime_nsec: st.st_atime_nsec as i64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as i64,
        ctime: st.st_ctime,
        ctime_nsec: st.st_ctime_nsec as i64,
        ..Stat::default()
    }
}

impl HostNode {
    /// The root of a host tree: `dir` must be a directory fd (any open mode, O_PATH is
    /// enough) that the operator chose as the root.
    ///
    /// # Errors
    /// ENOTDIR when `dir` is not a directory.
    pub fn new_root(dir: OwnedFd, writable: bool) -> Result<Arc<HostNode>, Errno> {
        let st = rustix::fs::fstat(&dir).map_err(herr)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        Ok(Arc::new(HostNode {
            fs: Arc::new(HostFs { writable }),
            fd: Arc::new(dir),
            parent: None,
        }))
    }

    /// Opens the host directory `path` (chosen by the operator) as a tree root.
    ///
    /// # Errors
    /// The host's open errors.
    pub fn open_root(path: &std::path::Path, writable: bool) -> Result<Arc<HostNode>, Errno> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(herr)?;
        HostNode::new_root(fd, writable)
    }

    fn child(&self, name: &[u8]) -> Result<Arc<HostNode>, Errno> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            self.fd.as_fd(),
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(herr)?;
        Ok(Arc::new(HostNode {
            fs: self.fs.clone(),
            fd: Arc::new(fd),
            parent: Some((self.fd.clone(), name.to_vec())),
        }))
    }

    fn host_stat(&self) -> Result<rustix::fs::Stat, Errno> {
        rustix::fs::fstat(self.fd.as_fd()).map_err(herr)
    }

    /// Opens the file itself for I/O with `flags` (regular files and directories only),
    /// checking it is still the file the O_PATH fd refers to.
    fn reopen(&self, flags: OFlags) -> Result<OwnedFd, Errno> {
        let want = self.host_stat()?;
        let kind = want.st_mode & libc::S_IFMT;
        let fd = match (&self.parent, kind) {
            (_, libc::S_IFDIR) => rustix::fs::openat(
                self.fd.as_fd(),
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ),
            (Some((dir, name)), libc::S_IFREG) => rustix::fs::openat(
                dir.as_fd(),
                name,
                flags | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            ),
            _ => return Err(Errno::ENXIO),
        }
        .map_err(herr)?;
        let got = rustix::fs::fstat(&fd).map_err(herr)?;
        if got.st_dev != want.st_dev || got.st_ino != want.st_ino {
            return Err(Errno::ESTALE);
        }
        Ok(fd)
    }

    fn check_writable(&self) -> Result<(), Errno> {
        if self.fs.writable {
            Ok(())
        } else {
            Err(Errno::EROFS)
        }
    }

    fn same_fs(&self, other: &Arc<dyn Inode>) -> Result<Arc<HostNode>, Errno> {
        let o = other
            .clone()
            .as_any()
            .downcast::<HostNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&o.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        Ok(o)
    }
}

impl Inode for HostNode {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(to_stat(&self.host_stat()?))
    }

    fn lookup(&self, _cx: &Caller<'_>, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.child(name)?)
    }

    fn readdir(&self, _cx: &Caller<'_>) -> Result<Vec<DirEntry>, Errno> {
        let fd = self.reopen(OFlags::RDONLY)?;
        let dir = rustix::fs::Dir::new(fd).map_err(herr)?;
        let mut out = Vec::new();
        for e in dir {
            let e = e.map_err(herr)?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match e.file_type() {
                rustix::fs::FileType::Directory => FileType::Directory,
                rustix::fs::FileType::Symlink => FileType::Symlink,
                rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
                rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
                rustix::fs::FileType::Fifo => FileType::Fifo,
                rustix::fs::FileType::Socket => FileType::Socket,
                _ => FileType::Regular,
            };
            out.push(DirEntry {
                name: name.to_vec(),
                ino: e.ino(),
                kind,
            });
        }
        Ok(out)
    }

    fn readlink(&self, _cx: &Caller<'_>) -> Result<Vec<u8>, Errno> {
        if self.host_stat()?.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        rustix::fs::readlinkat(self.fd.as_fd(), "", Vec::new())
            .map(|c| c.into_bytes())
            .map_err(herr)
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        let fd = self.reopen(OFlags::RDONLY)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match rustix::io::pread(&fd, &mut buf, out.len() as u64) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(herr(e)),
            }
        }
    }

    fn open(&self, _cx: &Caller<'_>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let acc = flags & libc::O_ACCMODE as u32;
        let host_flags = if acc == libc::O_RDONLY as u32 {
            OFlags::RDONLY
        } else {
            self.check_writable()?;
            if acc == libc::O_WRONLY as u32 {
                OFlags::WRONLY
            } else {
                OFlags::RDWR
            }
        };
        Ok(Arc::new(HostFile::new(self.reopen(host_flags)?)))
    }

    fn create(
        &self,
        _cx: &Caller<'_>,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        self.check_writable()?;
        check_name(name)?;
        let mode = Mode::from_bits_truncate(attrs.mode & 0o7777);
        let dir = self.fd.as_fd();
        match &node {
            NewNode::Regular => {
                rustix::fs::openat(
                    dir,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY,
                    mode,
                )
                .map(drop)
                .map_err(herr)?;
            }
            NewNode::Directory => rustix::fs::mkdirat(dir, name, mode).map_err(herr)?,
            NewNode::Symlink(target) => {
                rustix::fs::symlinkat(target.as_slice(), dir, name).map_err(herr)?;
            }
            NewNode::Fifo | NewNode::Socket => return Err(Errno::EPERM),
        }
        Ok(self.child(name)?)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> Result<(), Errno> {
        self.check_writable()?;
        check_name(name)?;
        let t = self.same_fs(target)?;
        let Some((tdir, tname)) = &t.parent else {
            return Err(Errno::EPERM);
        };
        rustix::fs::linkat(
            tdir.as_fd(),
            tname.as_slice(),
            self.fd.as_fd(),
            name,
            AtFlags::empty(),
        )
        .map_err(herr)
    }

    fn unlink(&self, _cx: &Caller<'_>, name: &[u8], dir: bool) -> Result<(), Errno> {
        self.check_writable()?;
        check_name(name)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(self.fd.as_fd(), name, flags).map_err(herr)
    }

    fn rename(
        &self,
        _cx: &Caller<'_>,
        name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        check_name(name)?;
        check_name(new_name)?;
        let nd = self.same_fs(new_dir)?;
        let mut f = rustix::fs::RenameFlags::empty();
        if flags.noreplace {
            f |= rustix::fs::RenameFlags::NOREPLACE;
        }
        if flags.exchange {
            f |= rustix::fs::RenameFlags::EXCHANGE;
        }
        rustix::fs::renameat_with(self.fd.as_fd(), name, nd.fd.as_fd(), new_name, f).map_err(herr)
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        self.check_writable()?;
        let Some((dir, name)) = &self.parent else {
            return Err(Errno::EPERM);
        };
        let dir = dir.as_fd();
        if let Some(size) = a.size {
            let fd = self.reopen(OFlags::WRONLY)?;
            rustix::fs::ftruncate(&fd, size).map_err(herr)?;
        }
        if let Some(m) = a.mode {
            rustix::fs::chmodat(
                dir,
                name.as_slice(),
                Mode::from_bits_truncate(m),
                AtFlags::empty(),
            )
            .map_err(herr)?;
        }
        if a.uid.is_some() || a.gid.is_some() {
            rustix::fs::chownat(
                dir,
                name.as_slice(),
                a.uid.map(rustix::fs::Uid::from_raw),
                a.gid.map(rustix::fs::Gid::from_raw),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(herr)?;
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let omit = Timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            };
            let conv = |t: Option<TimeSet>| match t {
                None => omit,
                Some(TimeSet::Now) => {
                    let (s, ns) = now();
                    Timespec {
                        tv_sec: s,
                        tv_nsec: ns,
                    }
                }
                Some(TimeSet::At(s, ns)) => Timespec {
                    tv_sec: s,
                    tv_nsec: ns,
                },
            };
            let ts = Timestamps {
                last_access: conv(a.atime),
                last_modification: conv(a.mtime),
            };
            rustix::fs::utimensat(dir, name.as_slice(), &ts, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(herr)?;
        }
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        let s = rustix::fs::fstatfs(self.fd.as_fd()).map_err(herr)?;
        Ok(FsStats {
            fs_type: s.f_type as i64,
            block_size: s.f_bsize as i64,
            blocks: s.f_blocks as u64,
            blocks_free: s.f_bfree as u64,
            blocks_avail: s.f_bavail as u64,
            files: s.f_files as u64,
            files_free: s.f_ffree as u64,
            name_max: s.f_namelen as i64,
        })
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{MountNamespace, Resolver};

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let base = std::env::temp_dir().join(format!("runsc-rs-hostfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(base.join("secret"), b"host secret").unwrap();
        std::fs::write(root.join("secret"), b"sandbox file").unwrap();
        std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("dotdot")).unwrap();
        std::os::unix::fs::symlink("/../../secret", root.join("abs")).unwrap();

        let node = HostNode::open_root(&root, false).unwrap();
        let ns = MountNamespace::new(node, "hostfs", "test");
        let r = Resolver::new(Caller::kernel(), ns.root(), &ns);
        let read = |p: &str| {
            r.resolve(ns.root(), p.as_bytes(), true)
                .and_then(|d| d.inode.contents())
        };
        assert_eq!(read("/slash/secret").unwrap(), b"sandbox file");
        assert_eq!(read("/dotdot").unwrap(), b"sandbox file");
        assert_eq!(read("/abs").unwrap(), b"sandbox file");
        assert_eq!(read("/../secret").unwrap(), b"sandbox file");
        // Read-only: no change reaches the host.
        let cx = Caller::kernel();
        let attrs = NewAttrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        assert_eq!(
            ns.root()
                .inode
                .create(&cx, b"x", NewNode::Regular, attrs)
                .err(),
            Some(Errno::EROFS)
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
