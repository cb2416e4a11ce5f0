//! The operations of a socket file, declared here so that an open file can carry a socket
//! as its own kind ([`super::FileKind::Socket`]); the families live in the `net` module.
//!
//! Data moves between the socket and the caller's memory through [`IoSrc`]/[`IoDst`] (the
//! same path as `read(2)`/`write(2)` on any file: [`OpenFile::read`] routes a socket file to
//! [`Socket::recv`]); socket addresses travel as `sockaddr` bytes and passed files as
//! [`OpenFile`]s.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::Errno;
use crate::mm::usermem::{IoDst, IoSrc};
use crate::vfs::{Context, FileOps, OpenFile, Stat};

/// What `fstat(2)` shows for a socket of inode number `ino` (Linux's sockfs: device 8,
/// mode `S_IFSOCK | 0777`).
pub fn stat(ino: u64) -> Stat {
    Stat {
        dev: 0x8,
        ino,
        nlink: 1,
        mode: libc::S_IFSOCK | 0o777,
        blksize: 4096,
        ..Stat::default()
    }
}

/// Reads everything `src` holds into a buffer: for sockets that must see a whole message
/// (datagrams, netlink requests) before sending it. A fault part-way keeps what came before.
///
/// # Errors
/// EFAULT when nothing could be read.
pub fn gather(src: &mut dyn IoSrc) -> Result<Vec<u8>, Errno> {
    let mut data = vec![0u8; src.remaining()];
    let n = src.copy_to(&mut data)?;
    data.truncate(n);
    Ok(data)
}

/// Hands a message a socket staged in `m.data` to `dst`: sets `m.len` to the bytes copied
/// and empties `m.data`.
///
/// # Errors
/// EFAULT when `dst` takes nothing of a non-empty message.
pub fn deliver(mut m: InMessage, dst: &mut dyn IoDst) -> Result<InMessage, Errno> {
    m.len = dst.copy_from(&m.data)?;
    m.data = Vec::new();
    Ok(m)
}

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

/// A message to send; its data comes from the [`IoSrc`] given beside it.
#[derive(Default)]
pub struct OutMessage {
    /// Data a socket staged itself with [`gather`] (one that needs the whole message at
    /// once); always empty in what [`Socket::send`] is given.
    pub data: Vec<u8>,
    /// The destination `sockaddr` (sendto/sendmsg with a name).
    pub to: Option<Vec<u8>>,
    /// SCM_RIGHTS.
    pub fds: Vec<Arc<OpenFile>>,
    /// SCM_CREDENTIALS as the sender asked (already validated); None: the sender's own.
    pub creds: Option<Ucred>,
    /// Control messages of other levels than SOL_SOCKET, as (level, type, data), for the
    /// socket to interpret (internet sockets: IP_TTL, IP_TOS, IPV6_HOPLIMIT, ...).
    pub control: Vec<(i32, i32, Vec<u8>)>,
}

impl OutMessage {
    /// Whether it carries SOL_SOCKET control messages (SCM_RIGHTS or SCM_CREDENTIALS), which
    /// never cross to a host socket.
    pub fn has_socket_control(&self) -> bool {
        !self.fds.is_empty() || self.creds.is_some()
    }
}

/// A message received; its data went to the [`IoDst`] given to [`Socket::recv`].
#[derive(Default)]
pub struct InMessage {
    /// The bytes copied to the destination.
    pub len: usize,
    /// The message's full length (differs from `len` when a datagram was truncated).
    pub full_len: usize,
    /// Data a socket staged itself before [`deliver`] (AF_UNIX queues whole messages);
    /// always empty in what [`Socket::recv`] returns.
    pub data: Vec<u8>,
    /// The sender's `sockaddr` (datagram sockets).
    pub from: Option<Vec<u8>>,
    pub fds: Vec<Arc<OpenFile>>,
    /// The sender's credentials, present when the receiver set SO_PASSCRED.
    pub creds: Option<Ucred>,
    /// Further control messages as (level, type, data), in the order Linux writes them
    /// (internet sockets: SO_TIMESTAMP, IP_PKTINFO, IP_TTL, ...).
    pub control: Vec<(i32, i32, Vec<u8>)>,
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
    /// MSG_TRUNC: a stream socket discards what it would have copied (with MSG_PEEK, only
    /// counts it).
    pub trunc: bool,
}

/// What a socket file does beyond read/write. Blocking operations block the calling task
/// interruptibly (EINTR with the usual restart rules).
pub trait Socket: FileOps {
    /// `bind(2)` to a `sockaddr`.
    ///
    /// # Errors
    /// EINVAL (already bound, bad address), EADDRINUSE, and path-resolution errors.
    fn bind(&self, t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno>;

    /// `listen(2)`. The default is a connectionless socket's answer.
    ///
    /// # Errors
    /// EOPNOTSUPP for datagram sockets, EINVAL when unbound or connected.
    fn listen(&self, _t: &mut dyn Context, _backlog: i32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `accept(2)`: the new connection's socket and the peer's `sockaddr`. The default is a
    /// connectionless socket's answer.
    ///
    /// # Errors
    /// EOPNOTSUPP for datagram sockets, EINVAL when not listening, EAGAIN when nonblocking
    /// and none is pending.
    fn accept(
        &self,
        _t: &mut dyn Context,
        _nonblocking: bool,
    ) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `connect(2)`.
    ///
    /// # Errors
    /// ECONNREFUSED, ENOENT, EISCONN, EAGAIN (full backlog, nonblocking), EPROTOTYPE.
    fn connect(&self, t: &mut dyn Context, addr: &[u8], nonblocking: bool) -> Result<(), Errno>;

    /// Sends `msg` with the data of `src`; returns the bytes sent. A source that faults
    /// part-way sends what came before the fault.
    ///
    /// # Errors
    /// EPIPE (the caller raises SIGPIPE), ENOTCONN, EAGAIN, EMSGSIZE, ECONNREFUSED, EFAULT.
    fn send(
        &self,
        t: &mut dyn Context,
        msg: OutMessage,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno>;

    /// Receives at most `dst.remaining()` bytes into `dst`. Stream data leaves the socket
    /// only as far as `dst` took it (Linux's TCP keeps it on EFAULT); a datagram is taken
    /// whole.
    ///
    /// # Errors
    /// EAGAIN, EINVAL (not connected), EINTR, EFAULT.
    fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno>;

    /// The bytes `FIONREAD`/`SIOCINQ` reports: queued stream data, or the next datagram's
    /// length.
    ///
    /// # Errors
    /// Host errors (hostinet).
    fn rx_queued(&self) -> Result<usize, Errno>;

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

    /// `getsockopt(2)` of a netfilter query (`IPT_SO_GET_*`, `IP6T_SO_GET_*`, `name` as
    /// IPv4 numbers it), whose buffer `q` (as long as the caller's optlen) carries the
    /// question; the answer replaces it. Only raw sockets answer.
    ///
    /// # Errors
    /// ENOPROTOOPT; for raw sockets EPERM without CAP_NET_ADMIN, and the query's own.
    fn netfilter_query(
        &self,
        _t: &mut dyn Context,
        _level: i32,
        _name: i32,
        _q: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        Err(Errno::ENOPROTOOPT)
    }

    /// `setsockopt(2)` of a netfilter command (`IPT_SO_SET_*`, `IP6T_SO_SET_*`), which
    /// writes to the caller's memory (the replaced table's counters). Only raw sockets
    /// take it.
    ///
    /// # Errors
    /// ENOPROTOOPT; for raw sockets EPERM without CAP_NET_ADMIN, and the command's own.
    fn netfilter_command(
        &self,
        _t: &mut dyn Context,
        _level: i32,
        _name: i32,
        _value: &[u8],
    ) -> Result<(), Errno> {
        Err(Errno::ENOPROTOOPT)
    }

    /// `getsockopt(2)` of SOL_PACKET's `PACKET_HDRLEN`: the frame header size of TPACKET
    /// version `version` (which the caller's buffer carries). Only packet sockets answer.
    ///
    /// # Errors
    /// ENOPROTOOPT; for packet sockets EINVAL for an unknown version.
    fn packet_hdrlen(&self, _version: i32) -> Result<i32, Errno> {
        Err(Errno::ENOPROTOOPT)
    }

    /// `fchmod(2)` of the socket's own inode (its permission bits, which an AF_UNIX bind
    /// gives the file it creates, less the umask). The caller checked ownership.
    ///
    /// # Errors
    /// EPERM for families whose inode keeps no mode of its own.
    fn set_mode(&self, _mode: u32) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
}
