//! An AF_UNIX socket of the sandbox connected to a host socket: `connect(2)` (or `sendto`
//! from a datagram socket) to a path whose socket is the host's ([`crate::vfs::HostSpecial`]:
//! a socket in a volume, such as a bind-mounted `/run/docker.sock`). The sentry holds a
//! nonblocking host socket connected to it and moves the application's data over it:
//! - data is copied with `read`/`write` (`preadv2`/`pwritev2` straight between the
//!   application's pages and the host socket); a blocking call waits between nonblocking
//!   attempts in the task's interruptible block ([`crate::vfs::host::when_ready`]);
//! - nothing but data crosses: SCM_RIGHTS and SCM_CREDENTIALS to a host socket are refused
//!   with EOPNOTSUPP (the host peer sees the sentry's credentials as its SO_PEERCRED);
//!   MSG_PEEK and FIONREAD are EOPNOTSUPP too (the sandbox's host system calls do not include
//!   `recvfrom` or `ioctl(FIONREAD)` outside host network mode);
//! - a write after the host peer closed is EPIPE (the sentry ignores SIGPIPE; the system call
//!   layer raises it in the application as Linux would);
//! - the connection's socket options are the sandbox's own (SO_TYPE, timeouts, buffer sizes
//!   as set), except SO_PEERCRED, which is the unknown peer's (pid 0, uid and gid -1).
//!
//! The other way, with `--host-uds=create` ([`HostUds`], opt-in): a bind of a stream or
//! seqpacket socket in a writable volume makes a host socket there
//! ([`crate::vfs::Inode::bind_host_socket`]); the sentry holds it ([`HostListener`]), listens
//! on it when the application does and turns each host connection it accepts into a sandbox
//! socket connected to the host peer, with the data path above. Without `create`, hostfs
//! refuses to make the socket file (EPERM); under `runsc-rs do` a bind outside volumes lands
//! in the overlay's upper layer and is reachable only from the sandbox.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::poll::PollFlags;

use super::unix::Kind;
use super::{InMessage, IoFlags};
use crate::abi::Errno;
use crate::vfs::host::{backoff, readiness, when_ready};
use crate::vfs::{Context, HostSpecial};
use crate::vfs::{IoDst, IoSrc};

/// First wait of a blocking connect to a host listener whose backlog is full; it doubles up
/// to [`MAX_CONNECT_PERIOD`].
const FIRST_CONNECT_PERIOD: Duration = Duration::from_millis(1);
const MAX_CONNECT_PERIOD: Duration = Duration::from_millis(50);

/// The host side of a sandbox socket connected to a host socket.
#[derive(Debug)]
pub struct HostConn {
    fd: OwnedFd,
    kind: Kind,
}

impl HostConn {
    /// Connects a new host socket of `kind` to `target`; unless `nonblocking`, waits while
    /// the host listener's backlog is full (EAGAIN), as Linux's blocking connect does.
    ///
    /// # Errors
    /// ECONNREFUSED, EPROTOTYPE, EAGAIN (nonblocking, backlog full), EINTR, EOPNOTSUPP.
    pub fn connect(
        t: &mut dyn Context,
        target: &dyn HostSpecial,
        kind: Kind,
        nonblocking: bool,
    ) -> Result<HostConn, Errno> {
        let mut period = FIRST_CONNECT_PERIOD;
        loop {
            match target.connect_socket(kind.sock_type()) {
                Err(Errno::EAGAIN) if !nonblocking => {}
                r => return r.map(|fd| HostConn { fd, kind }),
            }
            backoff(t, &mut period, MAX_CONNECT_PERIOD)?;
        }
    }

    /// Sends `src`'s data; a blocking stream send completes unless a signal ends it.
    ///
    /// # Errors
    /// EPIPE, ECONNRESET, EAGAIN, EINTR, EFAULT; EOPNOTSUPP with control messages.
    pub fn send(
        &self,
        t: &mut dyn Context,
        has_control: bool,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        if self.kind != Kind::Stream {
            // One message, whole: gather it so that one host write sends it.
            let data = super::gather(src)?;
            return self.send_message(t, has_control, &data, flags);
        }
        if has_control {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut sent = 0usize;
        loop {
            let r = when_ready(
                t,
                self.fd.as_fd(),
                PollFlags::POLLOUT,
                flags.nonblocking,
                &mut |_| src.write_host(self.fd.as_fd(), None, false),
            );
            match r {
                Ok(n) => {
                    sent += n;
                    if n == 0 || flags.nonblocking || src.remaining() == 0 {
                        return Ok(sent);
                    }
                }
                Err(e) if sent > 0 => {
                    if e == Errno::EINTR {
                        t.clear_restart();
                    }
                    return Ok(sent);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `data` as one message (a datagram or seqpacket record) with one host write.
    ///
    /// # Errors
    /// As [`HostConn::send`]; EMSGSIZE for a datagram larger than the host takes.
    pub fn send_message(
        &self,
        t: &mut dyn Context,
        has_control: bool,
        data: &[u8],
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        if has_control {
            return Err(Errno::EOPNOTSUPP);
        }
        when_ready(
            t,
            self.fd.as_fd(),
            PollFlags::POLLOUT,
            flags.nonblocking,
            &mut |_| rustix::io::write(&self.fd, data).map_err(host_errno),
        )
    }

    /// Receives into `dst`: what one host read gives (a message of a datagram or seqpacket
    /// socket, truncated to `dst`), or with MSG_WAITALL on a stream until `dst` is full or
    /// the peer shut down.
    ///
    /// # Errors
    /// EAGAIN, EINTR, ECONNRESET, EFAULT; EOPNOTSUPP for MSG_PEEK and MSG_ERRQUEUE.
    pub fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        if flags.peek || flags.errqueue {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut got = 0usize;
        loop {
            let r = when_ready(
                t,
                self.fd.as_fd(),
                PollFlags::POLLIN,
                flags.nonblocking,
                &mut |_| dst.read_host(self.fd.as_fd(), None, false),
            );
            match r {
                Ok(n) => {
                    got += n;
                    let more =
                        flags.waitall && self.kind == Kind::Stream && n > 0 && dst.remaining() > 0;
                    if !more {
                        break;
                    }
                }
                Err(e) if got > 0 => {
                    if e == Errno::EINTR {
                        t.clear_restart();
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(InMessage {
            len: got,
            full_len: got,
            ..InMessage::default()
        })
    }

    /// `shutdown(2)` of the host connection.
    ///
    /// # Errors
    /// EINVAL for another `how`, ENOTCONN.
    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let how = match how {
            libc::SHUT_RD => rustix::net::Shutdown::Read,
            libc::SHUT_WR => rustix::net::Shutdown::Write,
            libc::SHUT_RDWR => rustix::net::Shutdown::Both,
            _ => return Err(Errno::EINVAL),
        };
        rustix::net::shutdown(&self.fd, how).map_err(host_errno)
    }

    /// The host socket's poll(2) events now.
    pub fn readiness(&self) -> u32 {
        readiness(self.fd.as_fd())
    }
}

fn host_errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// gVisor's `--host-uds`: what the sandbox's AF_UNIX sockets may do with host sockets in
/// volumes. `open` (connecting to a host socket there) is the default; `create` (a bind in a
/// volume makes a host socket that host programs connect to) widens the host surface and is
/// opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostUds {
    pub open: bool,
    pub create: bool,
}

impl HostUds {
    /// Today's default: `open`.
    pub const DEFAULT: HostUds = HostUds {
        open: true,
        create: false,
    };

    /// gVisor's name of the setting: `none`, `open`, `create` or `all`.
    pub fn name(self) -> &'static str {
        match (self.open, self.create) {
            (false, false) => "none",
            (true, false) => "open",
            (false, true) => "create",
            (true, true) => "all",
        }
    }
}

impl std::str::FromStr for HostUds {
    type Err = String;

    fn from_str(s: &str) -> Result<HostUds, String> {
        let (open, create) = match s {
            "none" => (false, false),
            "open" => (true, false),
            "create" => (false, true),
            "all" => (true, true),
            _ => {
                return Err(format!(
                    "--host-uds {s:?}: expected none, open, create or all"
                ))
            }
        };
        Ok(HostUds { open, create })
    }
}

/// The sandbox's setting, bit 0 `open`, bit 1 `create` (set once at boot, before any
/// application runs; [`set_policy`]).
static POLICY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// Sets the sandbox's `--host-uds` (the Loader, at boot).
pub fn set_policy(p: HostUds) {
    let bits = u8::from(p.open) | (u8::from(p.create) << 1);
    POLICY.store(bits, std::sync::atomic::Ordering::Relaxed);
}

/// The sandbox's `--host-uds`.
pub fn policy() -> HostUds {
    let bits = POLICY.load(std::sync::atomic::Ordering::Relaxed);
    HostUds {
        open: bits & 1 != 0,
        create: bits & 2 != 0,
    }
}

/// A host socket the sandbox bound in a volume (`--host-uds=create`): the sentry holds it
/// (nonblocking), listens on it when the application does, and turns each host connection
/// it accepts into a sandbox socket connected to the host peer ([`HostConn`]).
#[derive(Debug)]
pub struct HostListener {
    fd: OwnedFd,
    kind: Kind,
}

impl HostListener {
    /// The bound host socket `fd` (nonblocking, close-on-exec) of `kind`.
    pub fn new(fd: OwnedFd, kind: Kind) -> HostListener {
        HostListener { fd, kind }
    }

    /// `listen(2)` on the host socket.
    ///
    /// # Errors
    /// The host's.
    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        rustix::net::listen(&self.fd, backlog).map_err(host_errno)
    }

    /// Accepts a host connection, waiting for one in the task's interruptible block unless
    /// `nonblocking`.
    ///
    /// # Errors
    /// EAGAIN (nonblocking, none pending), EINTR, EINVAL (not listening), the host's.
    pub fn accept(&self, t: &mut dyn Context, nonblocking: bool) -> Result<HostConn, Errno> {
        let mut conn = None;
        when_ready(
            t,
            self.fd.as_fd(),
            PollFlags::POLLIN,
            nonblocking,
            &mut |_| {
                // The listener is nonblocking: accept4 never waits on the host.
                let fd = rustix::net::accept_with(
                    &self.fd,
                    rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
                )
                .map_err(host_errno)?;
                conn = Some(HostConn {
                    fd,
                    kind: self.kind,
                });
                Ok(0)
            },
        )?;
        conn.ok_or(Errno::EAGAIN)
    }

    /// The host socket's poll(2) events now (POLLIN: a connection is pending).
    pub fn readiness(&self) -> u32 {
        readiness(self.fd.as_fd()) & (libc::POLLIN | libc::POLLRDNORM | libc::POLLERR) as u32
    }
}
