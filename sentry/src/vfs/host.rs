//! Files backed by a host file descriptor the sandbox was given (stdio, a host tty).
//!
//! Only data transfer and a few read-only terminal queries reach the host; everything else is
//! answered by the sentry.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::abi::{Errno, SysResult, Termios, Winsize};
use crate::vfs::Context;
use crate::vfs::{FileOps, OpenFile, Stat};

/// A file backed by a host fd.
pub struct HostFile {
    /// Shared with page-cache mappings of the file, which fill pages from it.
    fd: Arc<OwnedFd>,
    /// The sentry keeps the offset (files hostfs opened) rather than the host fd (donated
    /// stdio, whose offset is shared with the caller: a redirected stdout must append exactly
    /// as a native process's would).
    seekable: bool,
}

impl HostFile {
    /// A file hostfs opened: regular files keep their offset in the sentry.
    pub fn new(fd: OwnedFd) -> HostFile {
        HostFile::shared(Arc::new(fd))
    }

    /// A file hostfs opened on an fd other opens share (a bind-mounted single file, whose
    /// fd cannot be reopened): I/O is positional, so each open keeps its own offset.
    pub fn shared(fd: Arc<OwnedFd>) -> HostFile {
        let seekable = nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            .unwrap_or(false);
        HostFile { fd, seekable }
    }

    /// A host fd donated to the sandbox (stdio): data moves at the host fd's own offset.
    pub fn donated(fd: OwnedFd) -> HostFile {
        HostFile {
            fd: Arc::new(fd),
            seekable: false,
        }
    }

    fn errno() -> Errno {
        Errno::last()
    }
}

impl AsFd for HostFile {
    /// The host fd, for the terminal layer's host calls (the `tty` module).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FileOps for HostFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        buf: &mut [u8],
        offset: Option<u64>,
    ) -> Result<usize, Errno> {
        loop {
            let r = match offset {
                Some(off) => nix::sys::uio::pread(&self.fd, buf, off as i64),
                None => nix::unistd::read(self.fd.as_raw_fd(), buf),
            };
            match r {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        buf: &[u8],
        offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let r = match offset {
                Some(off) => nix::sys::uio::pwrite(&self.fd, buf, off as i64),
                None => nix::unistd::write(&self.fd, buf),
            };
            match r {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    fn ioctl(&self, t: &mut dyn Context, _f: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        use crate::mm::usermem::UserAddr;
        match cmd as u64 {
            libc::TCGETS => {
                let tio = nix::sys::termios::tcgetattr(&self.fd).map_err(|_| Errno::ENOTTY)?;
                let raw: libc::termios = tio.into();
                let mut cc = [0u8; 19];
                cc.copy_from_slice(&raw.c_cc[..19]);
                let out = Termios {
                    iflag: raw.c_iflag,
                    oflag: raw.c_oflag,
                    cflag: raw.c_cflag,
                    lflag: raw.c_lflag,
                    line: raw.c_line,
                    cc,
                };
                t.mm().write_obj(UserAddr(arg), &out)?;
                Ok(0)
            }
            libc::TIOCGWINSZ => {
                let ws = rustix::termios::tcgetwinsize(&self.fd).map_err(|_| Errno::ENOTTY)?;
                let out = Winsize {
                    row: ws.ws_row,
                    col: ws.ws_col,
                    xpixel: ws.ws_xpixel,
                    ypixel: ws.ws_ypixel,
                };
                t.mm().write_obj(UserAddr(arg), &out)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd()).map_err(|_| Self::errno())?;
        Ok(Stat {
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
            atime_nsec: st.st_atime_nsec,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            ctime: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec,
            ..Stat::default()
        })
    }

    fn readiness(&self) -> u32 {
        let mut fds = [nix::poll::PollFd::new(
            self.fd.as_fd(),
            nix::poll::PollFlags::POLLIN | nix::poll::PollFlags::POLLOUT,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().map_or(0, |r| r.bits() as u32),
            Err(_) => libc::POLLERR as u32,
        }
    }

    fn seekable(&self) -> bool {
        self.seekable
    }

    /// Regular files hostfs opened map through the page cache (donated stdio does not map).
    fn mappable(
        &self,
        mf: &Arc<crate::memory::MemoryFile>,
    ) -> Option<Arc<dyn crate::mm::filemap::Mappable>> {
        use crate::mm::pagecache::{CachedMapping, HostFileId, Version};
        if !self.seekable {
            return None;
        }
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd()).ok()?;
        let id = HostFileId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let version = Version {
            size: st.st_size.max(0) as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
        };
        Some(Arc::new(CachedMapping::new(
            mf,
            self.fd.clone(),
            id,
            version,
        )))
    }

    fn seek(&self, offset: i64, whence: i32) -> Result<u64, Errno> {
        let whence = match whence {
            libc::SEEK_SET => nix::unistd::Whence::SeekSet,
            libc::SEEK_CUR => nix::unistd::Whence::SeekCur,
            libc::SEEK_END => nix::unistd::Whence::SeekEnd,
            _ => return Err(Errno::EINVAL),
        };
        nix::unistd::lseek(self.fd.as_raw_fd(), offset, whence).map(|o| o as u64)
    }
}
