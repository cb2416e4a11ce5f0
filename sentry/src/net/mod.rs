//! Sockets: the [`Socket`] operations the socket system calls use, and the families the
//! sentry offers.
//!
//! AF_UNIX ([`unix`]) and AF_INET over a loopback-only stack ([`inet`], [`stack`]: TCP and
//! UDP on 127.0.0.1, smoltcp) are implemented entirely inside the sentry: no host socket is
//! ever created for an application. The sandbox has no outside network yet: other
//! destinations are ENETUNREACH. AF_INET6 and AF_NETLINK are EAFNOSUPPORT.
//!
//! With `--network host` ([`config::Network::Host`]) AF_INET and AF_INET6 sockets are
//! instead host sockets the sentry holds ([`hostinet`]).
//!
//! The [`Socket`] operations and message types are declared in the vfs (a socket is a kind
//! of open file); this module implements them. Layer: above `vfs`, below `kernel`.
//!
//! User memory stays in the system-call layer: sockets receive and return sentry buffers,
//! socket addresses as `sockaddr` bytes, and passed files as [`OpenFile`]s.

pub mod config;
pub mod hostinet;
pub mod inet;
pub mod stack;
pub mod unix;

use std::sync::{Arc, OnceLock};

use crate::abi::Errno;
pub use crate::vfs::socket::{InMessage, IoFlags, OutMessage, Socket, Ucred};
use crate::vfs::{Context, OpenFile};
use crate::vfs::{IoDst, IoSrc};

/// A network namespace: what the sockets of one kernel share (the AF_UNIX names, the
/// network it offers and its internet stack). The kernel owns one; nothing of it is
/// process-global, so two kernels in one process do not see each other's sockets.
#[derive(Default)]
pub struct Namespace {
    /// AF_UNIX socket names (abstract and filesystem).
    pub unix_names: Arc<unix::Names>,
    /// What boot gave this namespace ([`config::Network`]).
    pub network: config::Network,
    /// The internet stack, started (with its poller thread) by the first AF_INET socket.
    inet: OnceLock<Arc<stack::Stack>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("network", &self.network)
            .field("inet_started", &self.inet.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// A namespace offering `network`.
    pub fn new(network: config::Network) -> Namespace {
        Namespace {
            network,
            ..Namespace::default()
        }
    }

    /// The internet stack, started on first use.
    pub fn inet(&self) -> &Arc<stack::Stack> {
        self.inet.get_or_init(stack::Stack::start)
    }
}

/// The socket types `socket(2)` and `socketpair(2)` accept (without SOCK_NONBLOCK and
/// SOCK_CLOEXEC).
fn unix_kind(ty: i32) -> Result<unix::Kind, Errno> {
    match ty {
        libc::SOCK_STREAM => Ok(unix::Kind::Stream),
        libc::SOCK_DGRAM => Ok(unix::Kind::Dgram),
        libc::SOCK_SEQPACKET => Ok(unix::Kind::SeqPacket),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

fn check_unix_protocol(protocol: i32) -> Result<(), Errno> {
    if protocol != 0 && protocol != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

/// A new socket of `domain` and `ty` (without flags).
///
/// # Errors
/// EAFNOSUPPORT for families the sentry has no stack for, ESOCKTNOSUPPORT, EPROTONOSUPPORT.
pub fn socket(
    ns: &Namespace,
    domain: i32,
    ty: i32,
    protocol: i32,
) -> Result<Arc<dyn Socket>, Errno> {
    match domain {
        libc::AF_UNIX => {
            let kind = unix_kind(ty)?;
            check_unix_protocol(protocol)?;
            Ok(Arc::new(unix::UnixSocket::new(&ns.unix_names, kind)))
        }
        libc::AF_INET | libc::AF_INET6 if matches!(ns.network, config::Network::Host { .. }) => {
            Ok(Arc::new(hostinet::socket(domain, ty, protocol)?))
        }
        libc::AF_INET => {
            let proto = inet::proto_of(ty, protocol)?;
            Ok(Arc::new(inet::InetSocket::new(ns.inet(), proto)))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// A connected pair of sockets.
///
/// # Errors
/// As [`socket`]; EOPNOTSUPP for families without pairs.
pub fn socketpair(
    t: &dyn Context,
    ns: &Namespace,
    domain: i32,
    ty: i32,
    protocol: i32,
) -> Result<[Arc<dyn Socket>; 2], Errno> {
    match domain {
        libc::AF_UNIX => {
            let kind = unix_kind(ty)?;
            check_unix_protocol(protocol)?;
            let (a, b) = unix::UnixSocket::pair(&ns.unix_names, kind, Ucred::of(t));
            Ok([Arc::new(a), Arc::new(b)])
        }
        libc::AF_INET | libc::AF_INET6 => Err(Errno::EOPNOTSUPP),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

fn nonblocking(file: &OpenFile) -> IoFlags {
    IoFlags {
        nonblocking: file.flags() & libc::O_NONBLOCK as u32 != 0,
        ..IoFlags::default()
    }
}

/// `read(2)` on socket `s`: a receive without flags.
///
/// # Errors
/// As [`Socket::recv`].
pub fn read_socket<S: Socket + ?Sized>(
    s: &S,
    t: &mut dyn Context,
    file: &OpenFile,
    dst: &mut dyn IoDst,
) -> Result<usize, Errno> {
    let m = s.recv(t, dst.remaining(), nonblocking(file))?;
    dst.copy_from(&m.data)
}

/// `write(2)` on socket `s`: a send without flags, which raises SIGPIPE on EPIPE as `send(2)`
/// without MSG_NOSIGNAL does.
///
/// # Errors
/// As [`Socket::send`].
pub fn write_socket<S: Socket + ?Sized>(
    s: &S,
    t: &mut dyn Context,
    file: &OpenFile,
    src: &mut dyn IoSrc,
) -> Result<usize, Errno> {
    let mut data = vec![0u8; src.remaining()];
    let n = src.copy_to(&mut data)?;
    data.truncate(n);
    let msg = OutMessage {
        data,
        ..OutMessage::default()
    };
    let r = s.send(t, msg, nonblocking(file));
    if r == Err(Errno::EPIPE) {
        t.raise_sigpipe();
    }
    r
}
