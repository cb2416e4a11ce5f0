//! Host FIFOs and Unix sockets met in a volume (a bind mount of a host directory, or of a
//! single socket): opening or connecting to one reaches the host object (gVisor's
//! `--host-fifo=open` and `--host-uds=open`; here the default for volumes), so a container
//! can talk to a host service whose socket or FIFO the operator mounted into it
//! (`-v /run/docker.sock:/run/docker.sock`, `--volume /run/app:/run/app`). Those of the
//! root filesystem and, under `runsc-rs do`, of the host's `/` are not reached: there they
//! stay the sandbox's own (a FIFO is a pipe among sandbox processes, a socket file has no
//! listener), so a sandbox that may read the host's files cannot also talk to every host
//! daemon. A FIFO or socket the sandbox makes itself (mkfifo, bind) is its own (an
//! overlay's upper layer; a hostfs tree refuses to create them), except a socket bound in a
//! volume under `--host-uds=create`, which is a host socket ([`HostNode::bind_socket`]).
//!
//! How the host object is reached, without following a name the application can change:
//! - a FIFO is reopened like a regular file ([`HostNode::reopen`]'s rule): by its name in its
//!   directory fd with `O_NOFOLLOW`, always `O_NONBLOCK` (a host open must never block a
//!   sentry thread), and used only when `fstat` shows the node's own inode (else ESTALE).
//!   The waits of a blocking open happen in the task's interruptible block between
//!   nonblocking attempts: a writer retries while the host says ENXIO (no reader), a reader
//!   waits until the FIFO has a writer ([`has_writer`]). Reads and writes are
//!   [`HostFile`]'s, which wait the same way.
//! - a socket is connected through the magic link `/proc/self/fd/N` of the node's `O_PATH`
//!   fd, in the sandbox's private procfs ([`HOST_PROC`], mounted at startup, process
//!   directories only), so the host resolves the inode the sentry already holds and never a
//!   name. The connection is a nonblocking host socket; the AF_UNIX sockets (`net::unix`)
//!   move data over it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use rustix::pipe::{PipeFlags, SpliceFlags};

use super::{herr, HostNode, Origin};
use crate::abi::Errno;
use crate::vfs::host::{backoff, HostFile};
use crate::vfs::{Context, FileOps, HostSpecial};

/// Where the sandbox process mounts its own procfs (`subset=pid`: only process
/// directories), for connecting to host sockets by fd.
pub const HOST_PROC: &str = "/proc";

/// First wait between attempts of a blocking FIFO open; it doubles up to
/// [`MAX_RETRY_PERIOD`].
const FIRST_RETRY_PERIOD: Duration = Duration::from_millis(1);
/// Longest wait between attempts: how late a blocked open sees the other side arrive.
const MAX_RETRY_PERIOD: Duration = Duration::from_millis(50);

/// A pipe of the sentry's own that [`has_writer`] copies one byte into (`tee`), made once.
fn probe_pipe() -> Result<&'static Mutex<(OwnedFd, OwnedFd)>, Errno> {
    static PIPE: OnceLock<Mutex<(OwnedFd, OwnedFd)>> = OnceLock::new();
    if let Some(p) = PIPE.get() {
        return Ok(p);
    }
    let pair = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(herr)?;
    // Two first users may race: one pipe wins, the other is closed.
    Ok(PIPE.get_or_init(|| Mutex::new(pair)))
}

/// Whether the host FIFO `fd` (open for reading, nonblocking) has a writer, as gVisor finds
/// out: `tee` of one byte says EAGAIN when it is empty with a writer, 0 when it is empty
/// without one, and copies a byte (drained again from the probe pipe) when data is queued,
/// which a writer put there. Nothing is taken from the FIFO.
fn has_writer(fd: &OwnedFd) -> Result<bool, Errno> {
    let pipe = probe_pipe()?;
    let pipe = pipe.lock().unwrap_or_else(|e| e.into_inner());
    match rustix::pipe::tee(fd, &pipe.1, 1, SpliceFlags::NONBLOCK) {
        Err(rustix::io::Errno::AGAIN) => Ok(true),
        Err(e) => Err(herr(e)),
        Ok(0) => Ok(false),
        Ok(_) => {
            let mut byte = [0u8; 1];
            rustix::io::read(&pipe.0, &mut byte).map_err(herr)?;
            Ok(true)
        }
    }
}

impl HostNode {
    /// Opens the host FIFO by its name with `access`, nonblocking, checking it is still the
    /// node's inode.
    fn reopen_fifo(&self, access: OFlags) -> Result<OwnedFd, Errno> {
        let Origin::Child { dir, name } = &self.origin else {
            return Err(Errno::ENXIO);
        };
        let fd = rustix::fs::openat(
            dir.as_fd(),
            name,
            access | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(herr)?;
        let got = rustix::fs::fstat(&fd).map_err(herr)?;
        if !self.ident.same_inode(&got) {
            return Err(Errno::ESTALE);
        }
        Ok(fd)
    }
}

/// The longest host socket address: `sun_path`'s 108 bytes less the terminating NUL the
/// host's address conversion keeps.
const MAX_HOST_SUN_PATH: usize = 107;

impl HostNode {
    /// Binds a new host socket of type `ty` at `name` in this directory (`--host-uds=create`)
    /// and gives it the permission bits `mode`. The host resolves `/proc/self/fd/N/NAME` with
    /// N this directory's `O_PATH` fd and NAME the one component the sentry checked: the
    /// directory is the inode the sentry holds, and bind(2) never follows a final symlink (an
    /// existing name of any kind is EADDRINUSE). The node made is looked up once more by its
    /// name (`O_NOFOLLOW`) and must be a socket; its mode is then changed on its own fd.
    pub(super) fn bind_socket(
        &self,
        name: &[u8],
        ty: i32,
        mode: u32,
    ) -> Result<(Arc<HostNode>, OwnedFd), Errno> {
        if !self.fs.host_objects {
            return Err(Errno::EOPNOTSUPP);
        }
        if matches!(self.origin, Origin::File) {
            return Err(Errno::ENOTDIR);
        }
        if ty != libc::SOCK_STREAM && ty != libc::SOCK_SEQPACKET {
            return Err(Errno::EOPNOTSUPP);
        }
        self.check_writable()?;
        super::check_name(name)?;
        let mut path = format!("{HOST_PROC}/self/fd/{}/", self.fd.as_raw_fd()).into_bytes();
        path.extend_from_slice(name);
        if path.len() > MAX_HOST_SUN_PATH {
            return Err(Errno::ENAMETOOLONG);
        }
        let addr = SocketAddrUnix::new(std::ffi::OsStr::from_bytes(&path)).map_err(herr)?;
        let sock = unix_socket(ty)?;
        rustix::net::bind(&sock, &addr).map_err(herr)?;
        self.forget_attrs();
        let node = self.created_child(name, libc::S_IFSOCK, None)?;
        // The host made the file with the sentry's umask; the application's mode is its own.
        // The socket is bound either way: a host without fchmodat2 keeps the host's mode.
        if let Err(e) = node.chmod(Mode::from_bits_truncate(mode & 0o7777)) {
            log::debug!("hostfs: mode of a bound host socket unchanged: {e:?}");
        }
        node.forget_attrs();
        Ok((node, sock))
    }
}

/// A new nonblocking host AF_UNIX socket of type `ty`, closed on exec.
fn unix_socket(ty: i32) -> Result<OwnedFd, Errno> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::from_raw(ty as u32),
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(herr)
}

impl HostSpecial for HostNode {
    fn open_fifo(&self, t: &mut dyn Context, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        if self.ident.kind != libc::S_IFIFO {
            return Err(Errno::ENOTSUP);
        }
        let nonblocking = flags & libc::O_NONBLOCK as u32 != 0;
        let acc = flags & libc::O_ACCMODE as u32;
        let access = match acc as i32 {
            libc::O_RDONLY => OFlags::RDONLY,
            libc::O_WRONLY => OFlags::WRONLY,
            _ => OFlags::RDWR,
        };
        let mut period = FIRST_RETRY_PERIOD;
        let fd = loop {
            match self.reopen_fifo(access) {
                // No reader yet: a blocking writer waits for one, as Linux's fifo_open.
                Err(Errno::ENXIO) if !nonblocking && access == OFlags::WRONLY => {}
                r => break r?,
            }
            backoff(t, &mut period, MAX_RETRY_PERIOD)?;
        };
        if access == OFlags::RDONLY && !nonblocking {
            // Holding the read end meanwhile lets a host writer's blocked open complete.
            while !has_writer(&fd)? {
                backoff(t, &mut period, MAX_RETRY_PERIOD)?;
            }
        }
        Ok(Arc::new(HostFile::with_kind(Arc::new(fd), libc::S_IFIFO)))
    }

    fn connect_socket(&self, ty: i32) -> Result<OwnedFd, Errno> {
        if self.ident.kind != libc::S_IFSOCK {
            return Err(Errno::ECONNREFUSED);
        }
        let sock = unix_socket(ty)?;
        let by_fd = format!("{HOST_PROC}/self/fd/{}", self.fd.as_raw_fd());
        let addr = SocketAddrUnix::new(by_fd.as_str()).map_err(herr)?;
        match rustix::net::connect(&sock, &addr) {
            Ok(()) => Ok(sock),
            // No private procfs (its mount failed at startup): host sockets are unreachable.
            Err(rustix::io::Errno::NOENT) => Err(Errno::EOPNOTSUPP),
            Err(e) => Err(herr(e)),
        }
    }
}
