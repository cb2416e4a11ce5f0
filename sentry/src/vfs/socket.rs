//! The operations of a socket file, declared here so that an open file can carry a socket
//! as its own kind ([`super::FileKind::Socket`]); the families live in the `net` module.
//!
//! User memory stays in the system-call layer: sockets receive and return sentry buffers,
//! socket addresses as `sockaddr` bytes, and passed files as [`OpenFile`]s.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::Errno;
use crate::vfs::{Context, FileOps, OpenFile};

/// `struct ucred` (SO_PEERCRED, SCM_CREDENTIALS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Ucred {
    /// What an unconnected socket reports for SO_PEERCRED.
    pub const NONE: Ucred = Ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };

    /// The credentials as `t` sees them: the PID (kept global inside the sentry) in its
    /// PID namespace, 0 when not visible there.
    pub fn seen_by(self, t: &dyn Context) -> Ucred {
        Ucred {
            pid: if self.pid == 0 {
                0
            } else {
                t.vpid_of(self.pid)
            },
            ..self
        }
    }

    /// The calling process's credentials (effective ids, as Linux's `cred_to_ucred`), with
    /// its global PID.
    pub fn of(t: &dyn Context) -> Ucred {
        Ucred {
            pid: t.tgid(),
            uid: t.creds().euid,
            gid: t.creds().egid,
        }
    }
}

/// A message to send.
#[derive(Default)]
pub struct OutMessage {
    pub data: Vec<u8>,
    /// The destination `sockaddr` (sendto/sendmsg with a name).
    pub to: Option<Vec<u8>>,
    /// SCM_RIGHTS.
    pub fds: Vec<Arc<OpenFile>>,
    /// SCM_CREDENTIALS as the sender asked (already validated); None: the sender's own.
    pub creds: Option<Ucred>,
}

/// A message received.
#[derive(Default)]
pub struct InMessage {
    pub data: Vec<u8>,
    /// The message's full length (differs from `data.len()` when a datagram was truncated).
    pub full_len: usize,
    /// The sender's `sockaddr` (datagram sockets).
    pub from: Option<Vec<u8>>,
    pub fds: Vec<Arc<OpenFile>>,
    /// The sender's credentials, present when the receiver set SO_PASSCRED.
    pub creds: Option<Ucred>,
}

/// Flags of one send or receive call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoFlags {
    /// O_NONBLOCK on the file or MSG_DONTWAIT.
    pub nonblocking: bool,
    /// MSG_PEEK.
    pub peek: bool,
    /// MSG_WAITALL.
    pub waitall: bool,
    /// MSG_ERRQUEUE: read the socket's error queue instead of its data.
    pub errqueue: bool,
}

/// What a socket file does beyond read/write. Blocking operations block the calling task
/// interruptibly (EINTR with the usual restart rules).
pub trait Socket: FileOps {
    /// `bind(2)` to a `sockaddr`.
    ///
    /// # Errors
    /// EINVAL (already bound, bad address), EADDRINUSE, and path-resolution errors.
    fn bind(&self, t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno>;

    /// `listen(2)`.
    ///
    /// # Errors
    /// EOPNOTSUPP for datagram sockets, EINVAL when unbound or connected.
    fn listen(&self, t: &mut dyn Context, backlog: i32) -> Result<(), Errno>;

    /// `accept(2)`: the new connection's socket and the peer's `sockaddr`.
    ///
    /// # Errors
    /// EINVAL when not listening, EAGAIN when nonblocking and none is pending.
    fn accept(
        &self,
        t: &mut dyn Context,
        nonblocking: bool,
    ) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno>;

    /// `connect(2)`.
    ///
    /// # Errors
    /// ECONNREFUSED, ENOENT, EISCONN, EAGAIN (full backlog, nonblocking), EPROTOTYPE.
    fn connect(&self, t: &mut dyn Context, addr: &[u8], nonblocking: bool) -> Result<(), Errno>;

    /// Sends `msg`; returns the bytes sent.
    ///
    /// # Errors
    /// EPIPE (the caller raises SIGPIPE), ENOTCONN, EAGAIN, EMSGSIZE, ECONNREFUSED.
    fn send(&self, t: &mut dyn Context, msg: OutMessage, flags: IoFlags) -> Result<usize, Errno>;

    /// Receives at most `len` bytes.
    ///
    /// # Errors
    /// EAGAIN, EINVAL (not connected), EINTR.
    fn recv(&self, t: &mut dyn Context, len: usize, flags: IoFlags) -> Result<InMessage, Errno>;

    /// `getsockname(2)` as `sockaddr` bytes.
    fn local_addr(&self) -> Vec<u8>;

    /// `getpeername(2)` as `sockaddr` bytes.
    ///
    /// # Errors
    /// ENOTCONN.
    fn peer_addr(&self) -> Result<Vec<u8>, Errno>;

    /// `shutdown(2)` with `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    ///
    /// # Errors
    /// EINVAL for another `how`, ENOTCONN.
    fn shutdown(&self, how: i32) -> Result<(), Errno>;

    /// `getsockopt(2)`: the option's value.
    ///
    /// # Errors
    /// ENOPROTOOPT for unknown options.
    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno>;

    /// `setsockopt(2)`.
    ///
    /// # Errors
    /// EINVAL for short values, ENOPROTOOPT/EOPNOTSUPP for unknown levels.
    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno>;
}
