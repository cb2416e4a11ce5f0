//! AF_INET and AF_INET6 sockets backed by host sockets the sentry holds (`--network host`).
//!
//! The sandbox then shares the network namespace it was started in: a TCP, UDP or ICMP
//! ("ping") socket of the application is a host socket of the same kind that only the sentry
//! sees. What reaches the host is narrow on purpose, so that the seccomp extension of host
//! mode (the sandbox's allowlist reads [`HostOption::ALL`] and [`SOCKET_TYPES`]) can stay
//! small:
//! - sockets are created nonblocking and close-on-exec, and never change that; a blocking
//!   call of the application waits between nonblocking host attempts (a host socket has no
//!   sentry wait queue): a few host polls of at most [`HOST_POLL_MS`], each followed by a
//!   signal check, then the caller's interruptible block with backoff, so a signal or
//!   SIGKILL always ends the wait, and SO_RCVTIMEO/SO_SNDTIMEO are deadlines of that wait,
//!   kept here;
//! - socket addresses are parsed and checked here and handed over as typed addresses;
//! - data is copied through sentry buffers, never as application pointers, and no control
//!   messages (no fd passing, no credentials) cross in either direction;
//! - sends always carry MSG_NOSIGNAL: EPIPE comes back here and the system-call layer raises
//!   SIGPIPE in the application, never in the sentry;
//! - socket options pass through only from the [`HostOption`] table, with their sizes
//!   checked; everything else is ENOPROTOOPT.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use rustix::net::{self as host, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use super::{InMessage, IoFlags, OutMessage, Socket};
use crate::abi::Errno;
use crate::vfs::Context;
use crate::vfs::{FileOps, Stat};
use crate::vfs::{IoDst, IoSrc};

/// `sizeof(struct sockaddr_in)`.
const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`; Linux also accepts the 24 bytes of RFC 2133, without the
/// scope id.
const SOCKADDR_IN6_LEN: usize = 28;
const SOCKADDR_IN6_MIN: usize = 24;

/// The largest datagram a receive takes in one piece (the largest IP payload).
const DGRAM_MAX: usize = 65_536;
/// The most one stream receive copies through the sentry (a short read is allowed; with
/// MSG_WAITALL the sentry loops).
const STREAM_CHUNK: usize = 1 << 20;

/// How long one host poll of a socket may block a task thread, in milliseconds: the first
/// [`HOST_POLLS`] waits of a blocking call are such polls (a reply that comes within a
/// millisecond or two is seen at once), each followed by a check for signals, so a signal
/// waits at most this long.
pub const HOST_POLL_MS: u8 = 1;
const HOST_POLLS: u32 = 4;
/// First wait between nonblocking host attempts after the host polls; it doubles up to
/// [`MAX_POLL_PERIOD`].
const FIRST_POLL_PERIOD: Duration = Duration::from_micros(500);
/// Longest wait between attempts: the latency a blocked call sees after a long idle period.
const MAX_POLL_PERIOD: Duration = Duration::from_millis(20);

/// The `(type, protocol)` pairs of host sockets, for each of AF_INET and AF_INET6: TCP, UDP
/// and ICMP echo ("ping") sockets, which the host allows only to the groups of
/// `net.ipv4.ping_group_range`.
pub const SOCKET_TYPES: [(i32, i32); 6] = [
    (libc::SOCK_STREAM, 0),
    (libc::SOCK_STREAM, libc::IPPROTO_TCP),
    (libc::SOCK_DGRAM, 0),
    (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
    (libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
    (libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6),
];

/// The socket families host mode serves.
pub const FAMILIES: [i32; 2] = [libc::AF_INET, libc::AF_INET6];

/// The flags every host socket (and accepted connection) is made with.
pub const SOCKET_FLAGS: i32 = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

fn host_errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// A socket option that passes through to the host socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOption {
    ReuseAddr,
    ReusePort,
    KeepAlive,
    Broadcast,
    Linger,
    Error,
    Type,
    Domain,
    Protocol,
    AcceptConn,
    RcvBuf,
    SndBuf,
    TcpNoDelay,
    TcpKeepIdle,
    TcpKeepIntvl,
    TcpKeepCnt,
    TcpUserTimeout,
    TcpQuickAck,
    TcpCork,
    IpTos,
    IpTtl,
    Ipv6V6Only,
    Ipv6TClass,
    Ipv6UnicastHops,
}

/// `struct linger`.
const LINGER_LEN: usize = 8;
/// `struct timeval`.
const TIMEVAL_LEN: usize = 16;

impl HostOption {
    /// Every option of the table, for the seccomp filter's argument rules.
    pub const ALL: [HostOption; 24] = [
        HostOption::ReuseAddr,
        HostOption::ReusePort,
        HostOption::KeepAlive,
        HostOption::Broadcast,
        HostOption::Linger,
        HostOption::Error,
        HostOption::Type,
        HostOption::Domain,
        HostOption::Protocol,
        HostOption::AcceptConn,
        HostOption::RcvBuf,
        HostOption::SndBuf,
        HostOption::TcpNoDelay,
        HostOption::TcpKeepIdle,
        HostOption::TcpKeepIntvl,
        HostOption::TcpKeepCnt,
        HostOption::TcpUserTimeout,
        HostOption::TcpQuickAck,
        HostOption::TcpCork,
        HostOption::IpTos,
        HostOption::IpTtl,
        HostOption::Ipv6V6Only,
        HostOption::Ipv6TClass,
        HostOption::Ipv6UnicastHops,
    ];

    /// Its `(level, name)`.
    pub fn key(self) -> (i32, i32) {
        use HostOption::*;
        let (s, tcp, ip, ip6) = (
            libc::SOL_SOCKET,
            libc::IPPROTO_TCP,
            libc::IPPROTO_IP,
            libc::IPPROTO_IPV6,
        );
        match self {
            ReuseAddr => (s, libc::SO_REUSEADDR),
            ReusePort => (s, libc::SO_REUSEPORT),
            KeepAlive => (s, libc::SO_KEEPALIVE),
            Broadcast => (s, libc::SO_BROADCAST),
            Linger => (s, libc::SO_LINGER),
            Error => (s, libc::SO_ERROR),
            Type => (s, libc::SO_TYPE),
            Domain => (s, libc::SO_DOMAIN),
            Protocol => (s, libc::SO_PROTOCOL),
            AcceptConn => (s, libc::SO_ACCEPTCONN),
            RcvBuf => (s, libc::SO_RCVBUF),
            SndBuf => (s, libc::SO_SNDBUF),
            TcpNoDelay => (tcp, libc::TCP_NODELAY),
            TcpKeepIdle => (tcp, libc::TCP_KEEPIDLE),
            TcpKeepIntvl => (tcp, libc::TCP_KEEPINTVL),
            TcpKeepCnt => (tcp, libc::TCP_KEEPCNT),
            TcpUserTimeout => (tcp, libc::TCP_USER_TIMEOUT),
            TcpQuickAck => (tcp, libc::TCP_QUICKACK),
            TcpCork => (tcp, libc::TCP_CORK),
            IpTos => (ip, libc::IP_TOS),
            IpTtl => (ip, libc::IP_TTL),
            Ipv6V6Only => (ip6, libc::IPV6_V6ONLY),
            Ipv6TClass => (ip6, libc::IPV6_TCLASS),
            Ipv6UnicastHops => (ip6, libc::IPV6_UNICAST_HOPS),
        }
    }

    /// Whether `setsockopt` may change it (the others are read-only facts).
    pub fn settable(self) -> bool {
        !matches!(
            self,
            HostOption::Error
                | HostOption::Type
                | HostOption::Domain
                | HostOption::Protocol
                | HostOption::AcceptConn
        )
    }

    fn of(level: i32, name: i32) -> Option<HostOption> {
        HostOption::ALL
            .into_iter()
            .find(|o| o.key() == (level, name))
    }

    /// The option's value on `fd`, as the `getsockopt(2)` bytes.
    fn get(self, fd: &OwnedFd) -> Result<Vec<u8>, Errno> {
        use HostOption::*;
        let v: i32 = match self {
            ReuseAddr => host::sockopt::socket_reuseaddr(fd).map(i32::from),
            ReusePort => host::sockopt::socket_reuseport(fd).map(i32::from),
            KeepAlive => host::sockopt::socket_keepalive(fd).map(i32::from),
            Broadcast => host::sockopt::socket_broadcast(fd).map(i32::from),
            Linger => {
                let l = host::sockopt::socket_linger(fd).map_err(host_errno)?;
                let mut out = i32::from(l.is_some()).to_ne_bytes().to_vec();
                let secs = l.map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
                out.extend_from_slice(&secs.to_ne_bytes());
                return Ok(out);
            }
            Error => {
                host::sockopt::socket_error(fd).map(|r| r.err().map_or(0, |e| e.raw_os_error()))
            }
            Type => host::sockopt::socket_type(fd).map(|t| t.as_raw() as i32),
            Domain => host::sockopt::socket_domain(fd).map(|d| i32::from(d.as_raw())),
            Protocol => {
                host::sockopt::socket_protocol(fd).map(|p| p.map_or(0, |p| p.as_raw().get() as i32))
            }
            AcceptConn => host::sockopt::socket_acceptconn(fd).map(i32::from),
            RcvBuf => host::sockopt::socket_recv_buffer_size(fd).map(|n| n as i32),
            SndBuf => host::sockopt::socket_send_buffer_size(fd).map(|n| n as i32),
            TcpNoDelay => host::sockopt::tcp_nodelay(fd).map(i32::from),
            TcpKeepIdle => host::sockopt::tcp_keepidle(fd).map(|d| d.as_secs() as i32),
            TcpKeepIntvl => host::sockopt::tcp_keepintvl(fd).map(|d| d.as_secs() as i32),
            TcpKeepCnt => host::sockopt::tcp_keepcnt(fd).map(|n| n as i32),
            TcpUserTimeout => host::sockopt::tcp_user_timeout(fd).map(|n| n as i32),
            TcpQuickAck => host::sockopt::tcp_quickack(fd).map(i32::from),
            TcpCork => host::sockopt::tcp_cork(fd).map(i32::from),
            IpTos => host::sockopt::ip_tos(fd).map(i32::from),
            IpTtl => host::sockopt::ip_ttl(fd).map(|n| n as i32),
            Ipv6V6Only => host::sockopt::ipv6_v6only(fd).map(i32::from),
            Ipv6TClass => host::sockopt::ipv6_tclass(fd).map(|n| n as i32),
            Ipv6UnicastHops => host::sockopt::ipv6_unicast_hops(fd).map(i32::from),
        }
        .map_err(host_errno)?;
        Ok(v.to_ne_bytes().to_vec())
    }

    /// Sets the option on `fd` from the `setsockopt(2)` bytes.
    fn set(self, fd: &OwnedFd, value: &[u8]) -> Result<(), Errno> {
        use HostOption::*;
        if self == Linger {
            if value.len() < LINGER_LEN {
                return Err(Errno::EINVAL);
            }
            let on = int_at(value, 0)? != 0;
            let secs = int_at(value, 4)?.max(0) as u64;
            let linger = on.then(|| Duration::from_secs(secs));
            return host::sockopt::set_socket_linger(fd, linger).map_err(host_errno);
        }
        let v = int_at(value, 0)?;
        let flag = v != 0;
        let unsigned = || u32::try_from(v).map_err(|_| Errno::EINVAL);
        match self {
            ReuseAddr => host::sockopt::set_socket_reuseaddr(fd, flag),
            ReusePort => host::sockopt::set_socket_reuseport(fd, flag),
            KeepAlive => host::sockopt::set_socket_keepalive(fd, flag),
            Broadcast => host::sockopt::set_socket_broadcast(fd, flag),
            RcvBuf => host::sockopt::set_socket_recv_buffer_size(fd, v.max(0) as usize),
            SndBuf => host::sockopt::set_socket_send_buffer_size(fd, v.max(0) as usize),
            TcpNoDelay => host::sockopt::set_tcp_nodelay(fd, flag),
            TcpKeepIdle => {
                host::sockopt::set_tcp_keepidle(fd, Duration::from_secs(unsigned()?.into()))
            }
            TcpKeepIntvl => {
                host::sockopt::set_tcp_keepintvl(fd, Duration::from_secs(unsigned()?.into()))
            }
            TcpKeepCnt => host::sockopt::set_tcp_keepcnt(fd, unsigned()?),
            TcpUserTimeout => host::sockopt::set_tcp_user_timeout(fd, unsigned()?),
            TcpQuickAck => host::sockopt::set_tcp_quickack(fd, flag),
            TcpCork => host::sockopt::set_tcp_cork(fd, flag),
            IpTos => host::sockopt::set_ip_tos(fd, u8::try_from(v).map_err(|_| Errno::EINVAL)?),
            IpTtl => host::sockopt::set_ip_ttl(fd, unsigned()?),
            Ipv6V6Only => host::sockopt::set_ipv6_v6only(fd, flag),
            Ipv6TClass => host::sockopt::set_ipv6_tclass(fd, unsigned()?),
            // -1 restores the route's default.
            Ipv6UnicastHops => host::sockopt::set_ipv6_unicast_hops(
                fd,
                match v {
                    -1 => None,
                    0..=255 => Some(v as u8),
                    _ => return Err(Errno::EINVAL),
                },
            ),
            Linger | Error | Type | Domain | Protocol | AcceptConn => {
                return Err(Errno::ENOPROTOOPT)
            }
        }
        .map_err(host_errno)
    }
}

/// The `i32` at byte `at` of an option value.
fn int_at(value: &[u8], at: usize) -> Result<i32, Errno> {
    let b = value.get(at..at + 4).ok_or(Errno::EINVAL)?;
    Ok(i32::from_ne_bytes(b.try_into().expect("4 bytes")))
}

/// A `struct sockaddr_in` or `sockaddr_in6`.
fn sockaddr_bytes(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(a) => {
            let mut v = (libc::AF_INET as u16).to_ne_bytes().to_vec();
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&a.ip().octets());
            v.resize(SOCKADDR_IN_LEN, 0);
            v
        }
        SocketAddr::V6(a) => {
            let mut v = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
            v.extend_from_slice(&a.port().to_be_bytes());
            // std keeps the flow label as `sin6_flowinfo` holds it.
            v.extend_from_slice(&a.flowinfo().to_ne_bytes());
            v.extend_from_slice(&a.ip().octets());
            v.extend_from_slice(&a.scope_id().to_ne_bytes());
            v
        }
    }
}

/// A host-reported address as `sockaddr` bytes (an unnamed one, which only an AF_UNIX peer
/// could be, as the bare family).
fn host_sockaddr(a: Option<rustix::net::SocketAddrAny>, family: i32) -> Vec<u8> {
    match a.map(SocketAddr::try_from) {
        Some(Ok(a)) => sockaddr_bytes(&a),
        _ => (family as u16).to_ne_bytes().to_vec(),
    }
}

/// An application `sockaddr`, checked before it reaches the host: `None` for AF_UNSPEC.
///
/// # Errors
/// EINVAL when shorter than its family needs, EAFNOSUPPORT for families other than AF_INET,
/// AF_INET6 and AF_UNSPEC.
fn parse_sockaddr(addr: &[u8]) -> Result<Option<SocketAddr>, Errno> {
    if addr.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let family = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    let port = || u16::from_be_bytes([addr[2], addr[3]]);
    match family {
        libc::AF_UNSPEC => Ok(None),
        libc::AF_INET => {
            if addr.len() < SOCKADDR_IN_LEN {
                return Err(Errno::EINVAL);
            }
            let ip = Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]);
            Ok(Some(SocketAddr::V4(SocketAddrV4::new(ip, port()))))
        }
        libc::AF_INET6 => {
            if addr.len() < SOCKADDR_IN6_MIN {
                return Err(Errno::EINVAL);
            }
            let flowinfo = u32::from_ne_bytes(addr[4..8].try_into().expect("4 bytes"));
            let ip: [u8; 16] = addr[8..24].try_into().expect("16 bytes");
            let scope_id = addr
                .get(24..SOCKADDR_IN6_LEN)
                .map_or(0, |b| u32::from_ne_bytes(b.try_into().expect("4 bytes")));
            Ok(Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port(),
                flowinfo,
                scope_id,
            ))))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// SO_RCVTIMEO and SO_SNDTIMEO as the application set them (`struct timeval` bytes) and as
/// the deadline of the sentry's waits.
#[derive(Debug, Default, Clone, Copy)]
struct Timeout {
    raw: [u8; TIMEVAL_LEN],
    /// None: wait without limit.
    limit: Option<Duration>,
}

impl Timeout {
    /// Parses a `struct timeval` as Linux's `sock_set_timeout`: zero is no limit, a negative
    /// time a limit already reached.
    fn parse(value: &[u8]) -> Result<Timeout, Errno> {
        if value.len() < TIMEVAL_LEN {
            return Err(Errno::EINVAL);
        }
        let sec = i64::from_ne_bytes(value[..8].try_into().expect("8 bytes"));
        let usec = i64::from_ne_bytes(value[8..16].try_into().expect("8 bytes"));
        if !(0..1_000_000).contains(&usec) {
            return Err(Errno::EDOM);
        }
        let limit = if sec < 0 {
            Some(Duration::ZERO)
        } else if sec == 0 && usec == 0 {
            None
        } else {
            Some(Duration::new(sec as u64, usec as u32 * 1000))
        };
        let mut raw = [0; TIMEVAL_LEN];
        raw.copy_from_slice(&value[..TIMEVAL_LEN]);
        if sec < 0 {
            raw = [0; TIMEVAL_LEN];
        }
        Ok(Timeout { raw, limit })
    }

    fn deadline(&self) -> Option<Instant> {
        self.limit.map(|d| Instant::now() + d)
    }
}

#[derive(Debug, Default)]
struct Timeouts {
    recv: Timeout,
    send: Timeout,
}

/// What one wait for the host ended with.
enum Waited<T> {
    Done(Result<T, Errno>),
    /// The socket's SO_RCVTIMEO/SO_SNDTIMEO passed first.
    TimedOut,
}

/// Runs `op` (a nonblocking host call on `fd`) until it stops answering EAGAIN. Between
/// attempts it waits for `events` on `fd`: first in short host polls followed by a check for
/// signals, then in the caller's interruptible block, with backoff. With `nonblocking` the
/// first EAGAIN is the answer.
///
/// # Errors
/// EINTR (restartable) when a signal, stop or exit ends the wait, and `op`'s own errors.
fn retry<T>(
    t: &mut dyn Context,
    fd: &OwnedFd,
    events: PollFlags,
    nonblocking: bool,
    deadline: Option<Instant>,
    mut op: impl FnMut() -> Result<T, Errno>,
) -> Waited<T> {
    let mut period = FIRST_POLL_PERIOD;
    let mut host_polls = 0;
    loop {
        match op() {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if !nonblocking => {}
            r => return Waited::Done(r),
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Waited::TimedOut;
        }
        if host_polls < HOST_POLLS {
            host_polls += 1;
            let mut fds = [PollFd::new(fd.as_fd(), events)];
            // Readiness, an error or the timeout: the next attempt tells which.
            let _ = nix::poll::poll(&mut fds, PollTimeout::from(HOST_POLL_MS));
            // An already-passed deadline: only a pending signal ends this block.
            match t.block(&[], Some(now), &mut || false) {
                Ok(()) | Err(Errno::ETIMEDOUT) => {}
                Err(e) => return Waited::Done(Err(e)),
            }
            continue;
        }
        let wake = deadline.map_or(now + period, |d| d.min(now + period));
        match t.block(&[], Some(wake), &mut || false) {
            Ok(()) | Err(Errno::ETIMEDOUT) => {}
            Err(e) => return Waited::Done(Err(e)),
        }
        period = (period * 2).min(MAX_POLL_PERIOD);
    }
}

/// An AF_INET or AF_INET6 socket backed by a host socket.
#[derive(Debug)]
pub struct HostSocket {
    fd: OwnedFd,
    family: i32,
    stream: bool,
    timeouts: Mutex<Timeouts>,
}

/// A new host socket for `socket(2)` in host mode.
///
/// # Errors
/// ESOCKTNOSUPPORT/EPROTONOSUPPORT for kinds outside [`SOCKET_TYPES`]; the host's errors
/// (EACCES for a ping socket outside `ping_group_range`, EMFILE, ENOBUFS).
pub fn socket(family: i32, ty: i32, protocol: i32) -> Result<HostSocket, Errno> {
    if !FAMILIES.contains(&family) {
        return Err(Errno::EAFNOSUPPORT);
    }
    if !SOCKET_TYPES.iter().any(|&(t, _)| t == ty) {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    let icmp_of_other_family = (family == libc::AF_INET && protocol == libc::IPPROTO_ICMPV6)
        || (family == libc::AF_INET6 && protocol == libc::IPPROTO_ICMP);
    if !SOCKET_TYPES.contains(&(ty, protocol)) || icmp_of_other_family {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let fd = host::socket_with(
        AddressFamily::from_raw(family as u16),
        SocketType::from_raw(ty as u32),
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        NonZeroU32::new(protocol as u32).map(host::Protocol::from_raw),
    )
    .map_err(host_errno)?;
    Ok(HostSocket::wrap(fd, family, ty == libc::SOCK_STREAM))
}

impl HostSocket {
    fn wrap(fd: OwnedFd, family: i32, stream: bool) -> HostSocket {
        HostSocket {
            fd,
            family,
            stream,
            timeouts: Mutex::new(Timeouts::default()),
        }
    }

    fn recv_deadline(&self) -> Option<Instant> {
        self.timeouts.lock().unwrap().recv.deadline()
    }

    fn send_deadline(&self) -> Option<Instant> {
        self.timeouts.lock().unwrap().send.deadline()
    }

    /// One nonblocking host receive into a fresh buffer of `len` bytes.
    fn recv_once(&self, len: usize, peek: bool) -> Result<InMessage, Errno> {
        let mut flags = RecvFlags::DONTWAIT;
        if peek {
            flags |= RecvFlags::PEEK;
        }
        if !self.stream {
            // The datagram's whole length, for MSG_TRUNC and msg_flags.
            flags |= RecvFlags::TRUNC;
        }
        let mut buf = vec![0u8; len];
        let (n, full, from) = host::recvfrom(&self.fd, &mut buf[..], flags).map_err(host_errno)?;
        buf.truncate(n);
        Ok(InMessage {
            data: buf,
            full_len: full.max(n),
            from: (!self.stream).then(|| host_sockaddr(from, self.family)),
            ..InMessage::default()
        })
    }

    /// One nonblocking host send of `data`.
    fn send_once(&self, data: &[u8], to: Option<&SocketAddr>) -> Result<usize, Errno> {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        match to {
            Some(a) => host::sendto(&self.fd, data, flags, a),
            None => host::send(&self.fd, data, flags),
        }
        .map_err(host_errno)
    }

    fn poll(&self, events: PollFlags) -> u32 {
        let mut fds = [PollFd::new(self.fd.as_fd(), events)];
        match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().map_or(0, |r| r.bits() as u32),
            Err(_) => libc::POLLERR as u32,
        }
    }
}

impl Socket for HostSocket {
    fn bind(&self, _t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        let a = match parse_sockaddr(addr)? {
            Some(a) => a,
            // Linux accepts AF_UNSPEC with INADDR_ANY on AF_INET for compatibility.
            None if self.family == libc::AF_INET
                && addr.len() >= SOCKADDR_IN_LEN
                && addr[4..8] == [0; 4] =>
            {
                SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::UNSPECIFIED,
                    u16::from_be_bytes([addr[2], addr[3]]),
                ))
            }
            None => return Err(Errno::EAFNOSUPPORT),
        };
        host::bind(&self.fd, &a).map_err(host_errno)
    }

    fn listen(&self, _t: &mut dyn Context, backlog: i32) -> Result<(), Errno> {
        host::listen(&self.fd, backlog).map_err(host_errno)
    }

    fn accept(
        &self,
        t: &mut dyn Context,
        nonblocking: bool,
    ) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        let deadline = self.recv_deadline();
        let r = retry(
            t,
            &self.fd,
            PollFlags::POLLIN,
            nonblocking,
            deadline,
            || {
                host::acceptfrom_with(&self.fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
                    .map_err(host_errno)
            },
        );
        let (fd, peer) = match r {
            Waited::Done(r) => r?,
            Waited::TimedOut => return Err(Errno::EAGAIN),
        };
        let peer = host_sockaddr(peer, self.family);
        Ok((Arc::new(HostSocket::wrap(fd, self.family, true)), peer))
    }

    fn connect(&self, t: &mut dyn Context, addr: &[u8], nonblocking: bool) -> Result<(), Errno> {
        let r = match parse_sockaddr(addr)? {
            Some(a) => host::connect(&self.fd, &a),
            None => host::connect_unspec(&self.fd),
        };
        match r.map_err(host_errno) {
            Err(Errno::EINPROGRESS) if !nonblocking && self.stream => {}
            r => return r,
        }
        // The handshake goes on in the host; the socket turns writable when it ends, and
        // SO_ERROR says how.
        let deadline = self.send_deadline();
        let r = retry(t, &self.fd, PollFlags::POLLOUT, false, deadline, || {
            if self.poll(PollFlags::POLLOUT) == 0 {
                return Err(Errno::EAGAIN);
            }
            host::sockopt::socket_error(&self.fd)
                .map_err(host_errno)?
                .map_err(host_errno)
        });
        match r {
            Waited::Done(r) => r,
            Waited::TimedOut => Err(Errno::EINPROGRESS),
        }
    }

    fn send(
        &self,
        t: &mut dyn Context,
        mut msg: OutMessage,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        msg.data = super::gather(src)?;
        // No control messages cross to the host (SCM_RIGHTS and SCM_CREDENTIALS are AF_UNIX
        // only; Linux's inet sockets refuse them the same way).
        if msg.has_socket_control() {
            return Err(Errno::EINVAL);
        }
        // A stream socket ignores the address, as Linux's TCP without Fast Open does.
        let to = match (&msg.to, self.stream) {
            (Some(a), false) => match parse_sockaddr(a)? {
                Some(a) => Some(a),
                None => return Err(Errno::EAFNOSUPPORT),
            },
            _ => None,
        };
        let deadline = self.send_deadline();
        if !self.stream {
            return match retry(
                t,
                &self.fd,
                PollFlags::POLLOUT,
                flags.nonblocking,
                deadline,
                || self.send_once(&msg.data, to.as_ref()),
            ) {
                Waited::Done(r) => r,
                Waited::TimedOut => Err(Errno::EAGAIN),
            };
        }
        // A blocking stream send completes unless a signal or the timeout ends it; the host
        // takes what fits each time.
        let mut sent = 0usize;
        loop {
            let r = retry(
                t,
                &self.fd,
                PollFlags::POLLOUT,
                flags.nonblocking,
                deadline,
                || self.send_once(&msg.data[sent..], None),
            );
            match r {
                Waited::Done(Ok(n)) => {
                    sent += n;
                    if sent == msg.data.len() || flags.nonblocking {
                        return Ok(sent);
                    }
                }
                Waited::Done(Err(e)) if sent == 0 => return Err(e),
                Waited::TimedOut if sent == 0 => return Err(Errno::EAGAIN),
                Waited::Done(Err(Errno::EINTR)) => {
                    t.clear_restart();
                    return Ok(sent);
                }
                Waited::Done(Err(_)) | Waited::TimedOut => return Ok(sent),
            }
        }
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        let n = rustix::io::ioctl_fionread(&self.fd).map_err(host_errno)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        let m = self.recv_staged(t, dst.remaining(), flags)?;
        super::deliver(m, dst)
    }

    fn local_addr(&self) -> Vec<u8> {
        host_sockaddr(host::getsockname(&self.fd).ok(), self.family)
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        match host::getpeername(&self.fd).map_err(host_errno)? {
            Some(a) => Ok(host_sockaddr(Some(a), self.family)),
            None => Err(Errno::ENOTCONN),
        }
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let how = match how {
            libc::SHUT_RD => host::Shutdown::Read,
            libc::SHUT_WR => host::Shutdown::Write,
            libc::SHUT_RDWR => host::Shutdown::Both,
            _ => return Err(Errno::EINVAL),
        };
        host::shutdown(&self.fd, how).map_err(host_errno)
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        let timeouts = self.timeouts.lock().unwrap();
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => return Ok(timeouts.recv.raw.to_vec()),
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => return Ok(timeouts.send.raw.to_vec()),
            _ => {}
        }
        drop(timeouts);
        HostOption::of(level, name)
            .ok_or(Errno::ENOPROTOOPT)?
            .get(&self.fd)
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => {
                self.timeouts.lock().unwrap().recv = Timeout::parse(value)?;
                return Ok(());
            }
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => {
                self.timeouts.lock().unwrap().send = Timeout::parse(value)?;
                return Ok(());
            }
            _ => {}
        }
        let opt = HostOption::of(level, name)
            .filter(|o| o.settable())
            .ok_or(Errno::ENOPROTOOPT)?;
        if value.len() < 4 {
            return Err(Errno::EINVAL);
        }
        opt.set(&self.fd, value)
    }
}

impl HostSocket {
    /// One receive of at most `len` bytes, staged in the message.
    fn recv_staged(
        &self,
        t: &mut dyn Context,
        len: usize,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        let deadline = self.recv_deadline();
        let chunk = if self.stream { STREAM_CHUNK } else { DGRAM_MAX };
        if !(flags.waitall && self.stream) || flags.peek {
            let r = retry(
                t,
                &self.fd,
                PollFlags::POLLIN,
                flags.nonblocking,
                deadline,
                || self.recv_once(len.min(chunk), flags.peek),
            );
            return match r {
                Waited::Done(r) => r,
                Waited::TimedOut => Err(Errno::EAGAIN),
            };
        }
        let mut out = InMessage::default();
        while out.data.len() < len {
            let want = (len - out.data.len()).min(chunk);
            let r = retry(
                t,
                &self.fd,
                PollFlags::POLLIN,
                flags.nonblocking,
                deadline,
                || self.recv_once(want, false),
            );
            match r {
                Waited::Done(Ok(m)) if m.data.is_empty() => break,
                Waited::Done(Ok(mut m)) => out.data.append(&mut m.data),
                Waited::Done(Err(e)) if out.data.is_empty() => return Err(e),
                Waited::TimedOut if out.data.is_empty() => return Err(Errno::EAGAIN),
                Waited::Done(Err(Errno::EINTR)) => {
                    t.clear_restart();
                    break;
                }
                Waited::Done(Err(_)) | Waited::TimedOut => break,
            }
            if flags.nonblocking {
                break;
            }
        }
        out.full_len = out.data.len();
        Ok(out)
    }
}

impl FileOps for HostSocket {
    fn stat(&self) -> Result<Stat, Errno> {
        // The host socket's inode number, shown as any socket of the sentry's.
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd())?;
        Ok(crate::vfs::socket::stat(st.st_ino))
    }

    fn readiness(&self) -> u32 {
        // Not POLLRDHUP: nix drops a revents it cannot name entirely.
        self.poll(PollFlags::POLLIN | PollFlags::POLLOUT | PollFlags::POLLPRI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs_round_trip() {
        for a in [
            "10.251.0.1:8080".parse::<SocketAddr>().unwrap(),
            "[fd00:251::1]:53".parse().unwrap(),
        ] {
            let b = sockaddr_bytes(&a);
            assert_eq!(parse_sockaddr(&b).unwrap(), Some(a));
        }
        let v4 = sockaddr_bytes(&"127.0.0.1:1".parse().unwrap());
        assert_eq!(v4.len(), SOCKADDR_IN_LEN);
        assert_eq!(parse_sockaddr(&v4[..15]), Err(Errno::EINVAL));
        let v6 = sockaddr_bytes(&"[::1]:1".parse().unwrap());
        assert_eq!(v6.len(), SOCKADDR_IN6_LEN);
        assert!(parse_sockaddr(&v6[..SOCKADDR_IN6_MIN]).unwrap().is_some());
        assert_eq!(parse_sockaddr(&v6[..23]), Err(Errno::EINVAL));
        let unix = (libc::AF_UNIX as u16).to_ne_bytes();
        assert_eq!(parse_sockaddr(&unix), Err(Errno::EAFNOSUPPORT));
        assert_eq!(parse_sockaddr(&[0, 0]), Ok(None));
    }

    #[test]
    fn timeouts_parse_as_linux() {
        let tv = |s: i64, us: i64| [s.to_ne_bytes(), us.to_ne_bytes()].concat();
        assert_eq!(Timeout::parse(&tv(0, 0)).unwrap().limit, None);
        assert_eq!(
            Timeout::parse(&tv(1, 500_000)).unwrap().limit,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            Timeout::parse(&tv(-1, 0)).unwrap().limit,
            Some(Duration::ZERO)
        );
        assert_eq!(Timeout::parse(&tv(0, 1_000_000)).unwrap_err(), Errno::EDOM);
        assert_eq!(Timeout::parse(&tv(1, 0)[..8]).unwrap_err(), Errno::EINVAL);
    }

    #[test]
    fn only_listed_kinds_reach_the_host() {
        assert_eq!(
            socket(libc::AF_INET, libc::SOCK_RAW, 0).unwrap_err(),
            Errno::ESOCKTNOSUPPORT
        );
        assert_eq!(
            socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_UDP).unwrap_err(),
            Errno::EPROTONOSUPPORT
        );
        assert_eq!(
            socket(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_ICMP).unwrap_err(),
            Errno::EPROTONOSUPPORT
        );
        assert_eq!(
            socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap_err(),
            Errno::EAFNOSUPPORT
        );
    }

    #[test]
    fn options_outside_the_table_are_refused() {
        let s = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        assert_eq!(
            s.setsockopt(libc::SOL_SOCKET, libc::SO_BINDTODEVICE, b"lo\0\0"),
            Err(Errno::ENOPROTOOPT)
        );
        assert_eq!(
            s.setsockopt(libc::SOL_SOCKET, libc::SO_TYPE, &1i32.to_ne_bytes()),
            Err(Errno::ENOPROTOOPT)
        );
        assert_eq!(
            s.setsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, &[1]),
            Err(Errno::EINVAL)
        );
        s.setsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32.to_ne_bytes())
            .unwrap();
        assert_eq!(
            s.getsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR).unwrap(),
            1i32.to_ne_bytes()
        );
        assert_eq!(
            s.getsockopt(libc::SOL_SOCKET, libc::SO_TYPE).unwrap(),
            libc::SOCK_STREAM.to_ne_bytes()
        );
        let linger = [1i32.to_ne_bytes(), 7i32.to_ne_bytes()].concat();
        s.setsockopt(libc::SOL_SOCKET, libc::SO_LINGER, &linger)
            .unwrap();
        assert_eq!(
            s.getsockopt(libc::SOL_SOCKET, libc::SO_LINGER).unwrap(),
            linger
        );
        assert_eq!(
            s.getsockopt(libc::SOL_IP, libc::IP_PKTINFO),
            Err(Errno::ENOPROTOOPT)
        );
    }
}
