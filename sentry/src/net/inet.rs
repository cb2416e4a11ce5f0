//! AF_INET and AF_INET6 sockets (TCP and UDP) over the sandbox's stack ([`super::stack`]).
//!
//! A socket file is an id into the stack's entries plus its wait queue; all its state lives
//! under the stack lock, so an operation locks the stack, acts, pumps the interface (which
//! notifies every socket whose readiness changed, the peer's included) and kicks the
//! poller. The stack's own addresses (the loopback's, the link's) and the wildcard are the
//! bind addresses (others: EADDRNOTAVAIL); destinations are those the stack has a route to
//! (others: ENETUNREACH). AF_INET6 sockets are dual-stack: an IPv4 peer shows v4-mapped,
//! unless IPV6_V6ONLY, which refuses v4-mapped destinations.
//!
//! # Lock order
//! The stack lock → wait queues (see [`super::stack`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

use super::stack::{next_id, readiness, rx_len, Entry, Hop, Inner, Proto, St, Stack};
use super::{InMessage, IoFlags, OutMessage, Socket};
use crate::abi::Errno;
use crate::vfs::Context;
use crate::vfs::{FileOps, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::{WaitQueue, Wake};

/// Largest UDP payload over IPv4 without fragmentation.
const UDP_MAX: usize = 65_507;
/// Largest UDP payload over IPv6.
const UDP6_MAX: usize = 65_527;
/// TCP congestion-control names `TCP_CONGESTION` accepts (Linux's built-in ones) and the
/// default; smoltcp's own algorithm runs whatever the name says.
const CONGESTION_CONTROLS: [&[u8]; 2] = [b"reno", b"cubic"];
const DEFAULT_CONGESTION: &[u8] = b"cubic";
/// `TCP_CA_NAME_MAX`.
const TCP_CA_NAME_MAX: usize = 16;
const SOL_TCP: i32 = libc::IPPROTO_TCP;
/// `sizeof(struct sockaddr_in6)` and the shortest one Linux accepts (RFC 2133's, without
/// the scope id).
const SOCKADDR_IN6_LEN: usize = 28;
const SOCKADDR_IN6_MIN: usize = 24;

/// A socket address of `family` (AF_INET: `sockaddr_in`; AF_INET6: `sockaddr_in6`, an IPv4
/// address shown v4-mapped).
pub(super) fn sockaddr(family: i32, addr: IpAddress, port: u16) -> Vec<u8> {
    let mut v = (family as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(&port.to_be_bytes());
    if family == libc::AF_INET6 {
        let a = match addr {
            IpAddress::Ipv6(a) => a,
            IpAddress::Ipv4(a) => a.to_ipv6_mapped(),
        };
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&a.octets());
        v.extend_from_slice(&[0; 4]);
        debug_assert_eq!(v.len(), SOCKADDR_IN6_LEN);
    } else {
        let a = match addr {
            IpAddress::Ipv4(a) => a,
            IpAddress::Ipv6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Address::UNSPECIFIED),
        };
        v.extend_from_slice(&a.octets());
        v.extend_from_slice(&[0; 8]);
    }
    v
}

/// A parsed socket address for a socket of `family`; `None` for AF_UNSPEC. A v4-mapped
/// IPv6 address is the IPv4 address (dual-stack sockets).
///
/// # Errors
/// EINVAL when short, EAFNOSUPPORT for another family.
pub(super) fn parse(family: i32, addr: &[u8]) -> Result<Option<(IpAddress, u16)>, Errno> {
    if addr.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let given = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    if given == libc::AF_UNSPEC {
        return Ok(None);
    }
    let min = if family == libc::AF_INET6 {
        SOCKADDR_IN6_MIN
    } else {
        16
    };
    if addr.len() < min {
        return Err(Errno::EINVAL);
    }
    if given != family {
        return Err(Errno::EAFNOSUPPORT);
    }
    let port = u16::from_be_bytes([addr[2], addr[3]]);
    let ip = if family == libc::AF_INET6 {
        let a = Ipv6Address::from(<[u8; 16]>::try_from(&addr[8..24]).expect("16 bytes"));
        match a.to_ipv4_mapped() {
            Some(v4) => IpAddress::Ipv4(v4),
            None => IpAddress::Ipv6(a),
        }
    } else {
        IpAddress::v4(addr[4], addr[5], addr[6], addr[7])
    };
    Ok(Some((ip, port)))
}

/// The unspecified address (0.0.0.0, ::) means this host, as Linux: its loopback.
fn this_host(ip: IpAddress) -> IpAddress {
    match ip {
        IpAddress::Ipv4(a) if a.is_unspecified() => IpAddress::v4(127, 0, 0, 1),
        IpAddress::Ipv6(a) if a.is_unspecified() => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
        a => a,
    }
}

/// A destination and where it is reached.
///
/// # Errors
/// ENETUNREACH without a route.
pub(super) fn destination(g: &Inner, ip: IpAddress, port: u16) -> Result<(IpEndpoint, Hop), Errno> {
    let ip = this_host(ip);
    let hop = g.hop(ip).ok_or(Errno::ENETUNREACH)?;
    Ok((IpEndpoint::new(ip, port), hop))
}

/// An AF_INET or AF_INET6 socket file.
pub struct InetSocket {
    id: u64,
    /// AF_INET or AF_INET6.
    family: i32,
    proto: Proto,
    queue: Arc<WaitQueue>,
    /// The namespace's stack the socket lives in.
    stack: Arc<Stack>,
}

/// net.core.wmem_max and rmem_max: the largest SO_SNDBUF and SO_RCVBUF an unprivileged
/// socket asks for (before doubling).
const BUF_MAX: usize = super::unix::DEFAULT_BUF;

/// A wait that SO_RCVTIMEO or SO_SNDTIMEO (`deadline`) ended fails as a nonblocking call
/// would; an ETIMEDOUT of the connection itself stays.
fn timed_out_again(deadline: Option<Instant>) -> impl Fn(Errno) -> Errno {
    move |e| match (e, deadline) {
        (Errno::ETIMEDOUT, Some(d)) if Instant::now() >= d => Errno::EAGAIN,
        (e, _) => e,
    }
}

impl std::fmt::Debug for InetSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InetSocket")
            .field("id", &self.id)
            .field("family", &self.family)
            .field("proto", &self.proto)
            .finish()
    }
}

impl Drop for InetSocket {
    fn drop(&mut self) {
        self.stack.lock().remove(self.id);
        self.stack.kick();
    }
}

/// The socket types `socket(2)` accepts for AF_INET and AF_INET6.
///
/// # Errors
/// ESOCKTNOSUPPORT, EPROTONOSUPPORT.
pub fn proto_of(ty: i32, protocol: i32) -> Result<Proto, Errno> {
    match (ty, protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Ok(Proto::Tcp),
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Ok(Proto::Udp),
        (libc::SOCK_STREAM | libc::SOCK_DGRAM, _) => Err(Errno::EPROTONOSUPPORT),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

impl InetSocket {
    /// A new unbound AF_INET socket.
    pub fn new(stack: &Arc<Stack>, proto: Proto) -> InetSocket {
        InetSocket::of_family(stack, libc::AF_INET, proto)
    }

    /// A new unbound socket of `family` (AF_INET or AF_INET6).
    pub fn of_family(stack: &Arc<Stack>, family: i32, proto: Proto) -> InetSocket {
        let queue = Arc::new(WaitQueue::new());
        let id = next_id();
        stack
            .lock()
            .entries
            .insert(id, Entry::new(proto, family, queue.clone()));
        InetSocket {
            id,
            family,
            proto,
            queue,
            stack: stack.clone(),
        }
    }

    fn addr(&self, ip: IpAddress, port: u16) -> Vec<u8> {
        sockaddr(self.family, ip, port)
    }

    /// An address given to this socket: IPv4 ones only v4-mapped on AF_INET6 sockets, and
    /// not when IPV6_V6ONLY is set.
    ///
    /// # Errors
    /// As [`parse`]; ENETUNREACH for a v4-mapped address on an IPV6_V6ONLY socket.
    fn parse(&self, g: &Inner, addr: &[u8]) -> Result<Option<(IpAddress, u16)>, Errno> {
        let r = parse(self.family, addr)?;
        if let Some((IpAddress::Ipv4(_), _)) = r {
            if self.family == libc::AF_INET6 && v6only(&g.entries[&self.id]) {
                return Err(Errno::ENETUNREACH);
            }
        }
        Ok(r)
    }

    /// Gives the socket's smoltcp socket, if it has one yet, its hop limit.
    fn apply_hop_limit(&self, g: &mut Inner, id: u64) {
        let hops = hop_limit(&g.entries[&id]);
        match g.entries[&id].st {
            St::Udp(h) => g.udp(h).set_hop_limit(hops),
            St::Connected(h) | St::Connecting { h, .. } => g.tcp(h).set_hop_limit(hops),
            _ => {}
        }
    }

    /// Runs `f` on the stack with this socket's entry id, then pumps and kicks the poller.
    fn with<R>(&self, f: impl FnOnce(&mut Inner, u64) -> R) -> R {
        let s = &self.stack;
        let mut g = s.lock();
        let r = f(&mut g, self.id);
        g.pump();
        drop(g);
        s.kick();
        r
    }

    /// When a wait starting now ends under SO_RCVTIMEO or SO_SNDTIMEO (`name`): none set or
    /// a zero `struct timeval` waits without limit, a negative one not at all.
    fn deadline(&self, name: i32) -> Option<Instant> {
        let g = self.stack.lock();
        let raw = g.entries[&self.id].options.get(&(libc::SOL_SOCKET, name))?;
        let sec = i64::from_ne_bytes(raw[..8].try_into().expect("8 bytes"));
        let usec = i64::from_ne_bytes(raw[8..16].try_into().expect("8 bytes"));
        match (sec, usec) {
            (0, 0) => None,
            (..0, _) => Some(Instant::now()),
            _ => Some(Instant::now() + Duration::new(sec as u64, usec as u32 * 1000)),
        }
    }

    /// Binds to `addr`/`port` (`None` address: the wildcard; port 0: ephemeral) unless
    /// bound.
    fn bind_locked(
        g: &mut Inner,
        id: u64,
        addr: Option<IpAddress>,
        port: u16,
    ) -> Result<(), Errno> {
        let proto = g.entries[&id].proto;
        if g.entries[&id].bound.is_some() {
            return Err(Errno::EINVAL);
        }
        let port = g.take_port(proto, port, id)?;
        let udp = (proto == Proto::Udp).then(|| g.new_udp(addr, port));
        if let Some(h) = udp {
            let hops = hop_limit(&g.entries[&id]);
            g.udp(h).set_hop_limit(hops);
        }
        let e = g.entries.get_mut(&id).expect("present");
        e.bound = Some((addr, port));
        e.owns_port = true;
        if let Some(h) = udp {
            e.st = St::Udp(h);
        }
        Ok(())
    }

    fn send_tcp(
        &self,
        t: &mut dyn Context,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        let mut sent = 0;
        let deadline = self.deadline(libc::SO_SNDTIMEO);
        let r = t.block_on(&[&self.queue], deadline, || {
            self.with(|g, id| {
                let e = &g.entries[&id];
                let wr_shut = e.wr_shut;
                let h = match e.st {
                    St::Connected(h) => h,
                    St::Connecting { .. } if flags.nonblocking => return Some(Err(Errno::EAGAIN)),
                    St::Connecting { .. } => return None,
                    _ => return Some(Err(Errno::EPIPE)),
                };
                if wr_shut {
                    return Some(Err(Errno::EPIPE));
                }
                if !g.tcp(h).may_send() {
                    // A reset reports its error once, then EPIPE.
                    let e = g.entries.get_mut(&id).expect("present");
                    return Some(Err(e.error.take().unwrap_or(Errno::EPIPE)));
                }
                let sndbuf = g.entries[&id].sndbuf;
                let s = g.tcp(h);
                // SO_SNDBUF bounds what waits unacknowledged, as in Linux.
                let room = sndbuf.saturating_sub(s.send_queue());
                match tcp_send_from(s, src, room) {
                    Ok(n) => sent += n,
                    Err(e) => return Some(Err(e)),
                }
                if src.remaining() == 0 || (flags.nonblocking && sent > 0) {
                    Some(Ok(()))
                } else if flags.nonblocking {
                    Some(Err(Errno::EAGAIN))
                } else {
                    None
                }
            })
        });
        match r {
            Ok(()) => Ok(sent),
            Err(_) if sent > 0 => {
                t.clear_restart();
                Ok(sent)
            }
            Err(e) => Err(timed_out_again(deadline)(e)),
        }
    }

    fn send_udp(
        &self,
        t: &mut dyn Context,
        src: &mut dyn IoSrc,
        to: Option<&[u8]>,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        let dest = match to {
            Some(a) => match self.parse(&self.stack.lock(), a)? {
                Some(d) => Some(d),
                None => return Err(Errno::EAFNOSUPPORT),
            },
            None => None,
        };
        let max = if self.family == libc::AF_INET6 {
            UDP6_MAX
        } else {
            UDP_MAX
        };
        if src.remaining() > max {
            return Err(Errno::EMSGSIZE);
        }
        // A datagram is built whole, as Linux copies it into one buffer before sending.
        let data = &super::gather(src)?;
        let deadline = self.deadline(libc::SO_SNDTIMEO);
        t.block_on(&[&self.queue], deadline, || {
            self.with(|g, id| {
                if g.entries[&id].wr_shut {
                    return Some(Err(Errno::EPIPE));
                }
                let (ip, port) = match dest.or(g.entries[&id].udp_peer) {
                    Some(d) => d,
                    None => return Some(Err(Errno::EDESTADDRREQ)),
                };
                let ep = match destination(g, ip, port) {
                    Ok((ep, _)) => ep,
                    Err(e) => return Some(Err(e)),
                };
                if port == 0 {
                    return Some(Err(Errno::EINVAL));
                }
                // A socket bound to (or connected over) one IP version cannot send over the
                // other (smoltcp would build a packet with mixed addresses): as Linux, an
                // IPv4 destination is unreachable from an IPv6 address, an IPv6 one is not
                // of the family of a socket on IPv4.
                let e = &g.entries[&id];
                let fixed = e.bound.and_then(|b| b.0).or(e.udp_peer.map(|p| p.0));
                if let Some(local) = fixed.filter(|l| !l.is_unspecified()) {
                    match (local, ep.addr) {
                        (IpAddress::Ipv6(_), IpAddress::Ipv4(_)) => {
                            return Some(Err(Errno::ENETUNREACH))
                        }
                        (IpAddress::Ipv4(_), IpAddress::Ipv6(_)) => {
                            return Some(Err(Errno::EAFNOSUPPORT))
                        }
                        _ => {}
                    }
                }
                if g.entries[&id].bound.is_none() {
                    if let Err(e) = Self::bind_locked(g, id, None, 0) {
                        return Some(Err(e));
                    }
                }
                let St::Udp(h) = g.entries[&id].st else {
                    return Some(Err(Errno::EINVAL));
                };
                match g.udp(h).send_slice(data, ep) {
                    Ok(()) => Some(Ok(data.len())),
                    Err(udp::SendError::BufferFull) if flags.nonblocking => {
                        Some(Err(Errno::EAGAIN))
                    }
                    Err(udp::SendError::BufferFull) => None,
                    Err(udp::SendError::Unaddressable) => Some(Err(Errno::EINVAL)),
                }
            })
        })
        .map_err(timed_out_again(deadline))
    }

    /// One receive attempt into `dst`: `None` when nothing is there yet.
    fn take(
        &self,
        g: &mut Inner,
        id: u64,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Option<Result<InMessage, Errno>> {
        let len = dst.remaining();
        let e = &g.entries[&id];
        let rd_shut = e.rd_shut;
        let peer = e.udp_peer;
        let reset_unread = e.reset && !e.fin_seen && e.error == Some(Errno::ECONNRESET);
        match e.st {
            St::Connected(h) => {
                let s = g.tcp(h);
                if s.recv_queue() > 0 && len > 0 {
                    let n = if flags.peek {
                        // Peeking takes nothing: a staging copy cannot lose data.
                        let mut buf = vec![0; len.min(s.recv_queue())];
                        let n = s.peek_slice(&mut buf).unwrap_or(0);
                        dst.copy_from(&buf[..n])
                    } else {
                        tcp_recv_into(s, dst)
                    };
                    return Some(n.map(|n| InMessage {
                        len: n,
                        full_len: n,
                        ..InMessage::default()
                    }));
                }
                if s.may_recv() {
                    return if len > 0 && !rd_shut {
                        None
                    } else {
                        Some(Ok(InMessage::default()))
                    };
                }
                if reset_unread {
                    // A reset without the peer's FIN reports ECONNRESET once.
                    g.entries.get_mut(&id).expect("present").error = None;
                    return Some(Err(Errno::ECONNRESET));
                }
                // The peer's FIN, or a connection gone: end of file.
                Some(Ok(InMessage::default()))
            }
            St::Udp(h) => loop {
                let s = g.udp(h);
                let (data, meta) = if flags.peek {
                    match s.peek() {
                        Ok((d, m)) => (d, *m),
                        Err(_) => {
                            return if rd_shut {
                                Some(Ok(InMessage::default()))
                            } else {
                                None
                            }
                        }
                    }
                } else {
                    match s.recv() {
                        Ok(x) => x,
                        Err(_) => {
                            return if rd_shut {
                                Some(Ok(InMessage::default()))
                            } else {
                                None
                            }
                        }
                    }
                };
                let from = (meta.endpoint.addr, meta.endpoint.port);
                let foreign = self.family == libc::AF_INET && matches!(from.0, IpAddress::Ipv6(_));
                if foreign || peer.is_some_and(|p| p != from) {
                    if flags.peek {
                        // Drop the stranger's (or an IPv6 datagram on an AF_INET socket)
                        // and look again.
                        let _ = s.recv();
                    }
                    continue;
                }
                // A datagram leaves the queue even when the copy faults, as in Linux.
                let full_len = data.len();
                return Some(dst.copy_from(data).map(|n| InMessage {
                    len: n,
                    full_len,
                    from: Some(self.addr(from.0, from.1)),
                    ..InMessage::default()
                }));
            },
            St::Idle if e.proto == Proto::Udp => {
                if rd_shut {
                    Some(Ok(InMessage::default()))
                } else {
                    None
                }
            }
            St::Connecting { .. } => None,
            _ => Some(Err(Errno::ENOTCONN)),
        }
    }
}

/// Queues at most `max` bytes of `src` on the TCP socket `s` (its free space may wrap, so
/// two pieces); returns the bytes queued. What faults stays unsent.
///
/// # Errors
/// EFAULT when nothing could be read from `src`.
fn tcp_send_from(s: &mut tcp::Socket, src: &mut dyn IoSrc, max: usize) -> Result<usize, Errno> {
    let mut total = 0;
    for _ in 0..2 {
        let want = (max - total).min(src.remaining());
        if want == 0 {
            break;
        }
        let r = s.send(|buf| {
            let n = want.min(buf.len());
            match src.copy_to(&mut buf[..n]) {
                Ok(c) => (c, Ok(c)),
                Err(e) => (0, Err(e)),
            }
        });
        match r {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(c)) => total += c,
            Ok(Err(e)) if total == 0 => return Err(e),
            Ok(Err(_)) => break,
        }
    }
    Ok(total)
}

/// Moves received TCP data into `dst` (the queue may wrap: two pieces); data leaves the
/// socket only as far as `dst` took it.
///
/// # Errors
/// EFAULT when `dst` took nothing.
fn tcp_recv_into(s: &mut tcp::Socket, dst: &mut dyn IoDst) -> Result<usize, Errno> {
    let mut total = 0;
    for _ in 0..2 {
        if dst.remaining() == 0 {
            break;
        }
        let r = s.recv(|buf| match dst.copy_from(buf) {
            Ok(c) => (c, Ok(c)),
            Err(e) => (0, Err(e)),
        });
        match r {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(c)) => total += c,
            Ok(Err(e)) if total == 0 => return Err(e),
            Ok(Err(_)) => break,
        }
    }
    Ok(total)
}

pub(super) fn int(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub(super) fn int_of(value: &[u8]) -> Result<i32, Errno> {
    Ok(i32::from_ne_bytes(
        value
            .get(..4)
            .ok_or(Errno::EINVAL)?
            .try_into()
            .expect("4 bytes"),
    ))
}

/// The TTL (hop limit) of a socket that set none (Linux's net.ipv4.ip_default_ttl).
const DEFAULT_TTL: i32 = 64;
/// The ECN bits of IP_TOS and IPV6_TCLASS (INET_ECN_MASK).
const ECN_MASK: i32 = 3;

/// An integer option's stored value.
fn opt_int(e: &Entry, level: i32, name: i32) -> Option<i32> {
    e.options.get(&(level, name)).and_then(|v| int_of(v).ok())
}

/// An IPv4-level integer option as Linux reads it: an int, or a single byte when shorter,
/// 0 when empty.
fn ip_int(value: &[u8]) -> i32 {
    match value.len() {
        0 => 0,
        1..=3 => i32::from(value[0]),
        _ => int_of(value).unwrap_or(0),
    }
}

/// The hop limit a socket's packets carry: IP_TTL on AF_INET, IPV6_UNICAST_HOPS on
/// AF_INET6 (None: the stack's default, 64).
fn hop_limit(e: &Entry) -> Option<u8> {
    let key = if e.family == libc::AF_INET6 {
        (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
    } else {
        (libc::IPPROTO_IP, libc::IP_TTL)
    };
    e.options
        .get(&key)
        .and_then(|v| int_of(v).ok())
        .and_then(|v| u8::try_from(v).ok())
        // smoltcp cannot send with a hop limit of 0 (IPV6_UNICAST_HOPS allows it): such a
        // socket's packets carry the default.
        .filter(|&v| v > 0)
}

/// Whether IPV6_V6ONLY is set on the entry.
pub(super) fn v6only(e: &Entry) -> bool {
    e.options
        .get(&(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY))
        .is_some_and(|v| v.iter().any(|&b| b != 0))
}

impl Socket for InetSocket {
    fn bind(&self, _t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        self.with(|g, id| {
            let (ip, port) = match self.parse(g, addr)? {
                Some(a) => a,
                // Linux accepts AF_UNSPEC with INADDR_ANY on AF_INET for compatibility.
                None if self.family == libc::AF_INET && addr.len() >= 8 && addr[4..8] == [0; 4] => {
                    (
                        IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
                        u16::from_be_bytes([addr[2], addr[3]]),
                    )
                }
                None => return Err(Errno::EAFNOSUPPORT),
            };
            let ip = if ip.is_unspecified() {
                None
            } else if g.is_own(ip) {
                Some(ip)
            } else {
                return Err(Errno::EADDRNOTAVAIL);
            };
            Self::bind_locked(g, id, ip, port)
        })
    }

    fn listen(&self, _t: &mut dyn Context, backlog: i32) -> Result<(), Errno> {
        if self.proto != Proto::Tcp {
            return Err(Errno::EOPNOTSUPP);
        }
        self.with(|g, id| {
            match g.entries[&id].st {
                St::Idle | St::Listening { .. } => {}
                _ => return Err(Errno::EINVAL),
            }
            if g.entries[&id].bound.is_none() {
                Self::bind_locked(g, id, None, 0)?;
            }
            g.listen(id, backlog);
            Ok(())
        })
    }

    fn accept(
        &self,
        t: &mut dyn Context,
        nonblocking: bool,
    ) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        if self.proto != Proto::Tcp {
            return Err(Errno::EOPNOTSUPP);
        }
        let deadline = self.deadline(libc::SO_RCVTIMEO);
        let (h, nodelay) = t
            .block_on(&[&self.queue], deadline, || {
                self.with(|g, id| {
                    let e = g.entries.get_mut(&id).expect("present");
                    let nodelay = e.nodelay;
                    let St::Listening { ready, .. } = &mut e.st else {
                        return Some(Err(Errno::EINVAL));
                    };
                    match ready.pop_front() {
                        Some(h) => Some(Ok((h, nodelay))),
                        None if nonblocking => Some(Err(Errno::EAGAIN)),
                        None => None,
                    }
                })
            })
            .map_err(timed_out_again(deadline))?;
        let sock = InetSocket::of_family(&self.stack, self.family, Proto::Tcp);
        let peer = self.with(|g, _| {
            let s = g.tcp(h);
            let local = s.local_endpoint();
            let remote = s.remote_endpoint();
            let e = g.entries.get_mut(&sock.id).expect("present");
            e.st = St::Connected(h);
            e.nodelay = nodelay;
            e.bound = local.map(|l| (Some(l.addr), l.port));
            remote.map_or_else(
                || self.addr(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), 0),
                |r| self.addr(r.addr, r.port),
            )
        });
        Ok((Arc::new(sock), peer))
    }

    fn connect(&self, t: &mut dyn Context, addr: &[u8], nonblocking: bool) -> Result<(), Errno> {
        if self.proto == Proto::Udp {
            return self.with(|g, id| {
                let peer = match self.parse(g, addr)? {
                    None => None,
                    Some((ip, port)) => {
                        let (ep, _) = destination(g, ip, port)?;
                        Some((ep.addr, port))
                    }
                };
                if peer.is_some() && g.entries[&id].bound.is_none() {
                    Self::bind_locked(g, id, None, 0)?;
                }
                g.entries.get_mut(&id).expect("present").udp_peer = peer;
                Ok(())
            });
        }
        self.with(|g, id| {
            let Some((ip, port)) = self.parse(g, addr)? else {
                return Err(Errno::EAFNOSUPPORT);
            };
            let (remote, hop) = destination(g, ip, port)?;
            match g.entries[&id].st {
                St::Idle | St::Failed => {}
                St::Connecting { .. } => return Err(Errno::EALREADY),
                St::Connected(_) => return Err(Errno::EISCONN),
                St::Listening { .. } | St::Udp(_) | St::Icmp(_) | St::Raw(_) => {
                    return Err(Errno::EISCONN)
                }
            }
            if g.entries[&id].bound.is_none() {
                Self::bind_locked(g, id, None, 0)?;
            }
            let e = &g.entries[&id];
            let (local, lport) = e.bound.expect("bound");
            let local = local.unwrap_or_else(|| g.source_for(remote.addr));
            let nodelay = e.nodelay;
            let h = g.new_tcp(nodelay);
            let hops = hop_limit(&g.entries[&id]);
            g.tcp(h).set_hop_limit(hops);
            let r = {
                let cx = g.iface.context();
                let s = g.set.get_mut::<tcp::Socket>(h);
                s.set_timeout(Some(super::stack::CONNECT_TIMEOUT));
                s.connect(cx, remote, IpEndpoint::new(local, lport))
            };
            if r.is_err() {
                g.set.remove(h);
                return Err(Errno::EADDRNOTAVAIL);
            }
            let since = g.now();
            let e = g.entries.get_mut(&id).expect("present");
            e.st = St::Connecting {
                h,
                since,
                hop: match hop {
                    Hop::Inside => None,
                    Hop::Link(a) => Some(a),
                },
            };
            e.error = None;
            Ok(())
        })?;
        if nonblocking {
            return Err(Errno::EINPROGRESS);
        }
        t.block_on(&[&self.queue], None, || {
            self.with(|g, id| {
                let e = g.entries.get_mut(&id).expect("present");
                match e.st {
                    St::Connected(_) => Some(Ok(())),
                    St::Failed => Some(Err(e.error.take().unwrap_or(Errno::ECONNREFUSED))),
                    _ => None,
                }
            })
        })
    }

    fn send(
        &self,
        t: &mut dyn Context,
        msg: OutMessage,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        match self.proto {
            Proto::Tcp => {
                // Linux ignores the address on a connected stream socket.
                self.send_tcp(t, src, flags)
            }
            Proto::Udp | Proto::Icmp => self.send_udp(t, src, msg.to.as_deref(), flags),
        }
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        let mut g = self.stack.lock();
        let e = &g.entries[&self.id];
        Ok(match e.st {
            St::Udp(h) => g.udp(h).peek().map_or(0, |(d, _)| d.len()),
            St::Listening { .. } => 0,
            _ => rx_len(&g.set, e),
        })
    }

    fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        if flags.errqueue {
            // The stack queues no extended errors (IP_RECVERR), and Linux answers a read of
            // an empty error queue at once, blocking socket or not.
            return Err(Errno::EAGAIN);
        }
        let deadline = self.deadline(libc::SO_RCVTIMEO);
        if !flags.waitall || self.proto != Proto::Tcp {
            return t
                .block_on(&[&self.queue], deadline, || {
                    self.with(|g, id| match self.take(g, id, dst, flags) {
                        Some(r) => Some(r),
                        None if flags.nonblocking => Some(Err(Errno::EAGAIN)),
                        None => None,
                    })
                })
                .map_err(timed_out_again(deadline));
        }
        let mut out = InMessage::default();
        let r = t.block_on(&[&self.queue], deadline, || {
            self.with(|g, id| loop {
                match self.take(g, id, dst, flags) {
                    Some(Ok(m)) if m.len == 0 => return Some(Ok(())),
                    Some(Ok(m)) => {
                        out.len += m.len;
                        if dst.remaining() == 0 {
                            return Some(Ok(()));
                        }
                    }
                    Some(Err(e)) if out.len > 0 && e == Errno::EFAULT => return Some(Ok(())),
                    Some(Err(e)) => return Some(Err(e)),
                    None if flags.nonblocking => return Some(Err(Errno::EAGAIN)),
                    None => return None,
                }
            })
        });
        match r {
            Ok(()) => {}
            Err(_) if out.len > 0 => t.clear_restart(),
            Err(e) => return Err(timed_out_again(deadline)(e)),
        }
        out.full_len = out.len;
        Ok(out)
    }

    fn local_addr(&self) -> Vec<u8> {
        let g = self.stack.lock();
        let e = &g.entries[&self.id];
        let any = match self.family {
            libc::AF_INET6 => IpAddress::Ipv6(Ipv6Address::UNSPECIFIED),
            _ => IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
        };
        match (e.bound, &e.st) {
            (Some((None, port)), St::Connected(h) | St::Connecting { h, .. }) => {
                match g.set.get::<tcp::Socket>(*h).local_endpoint() {
                    Some(l) => self.addr(l.addr, l.port),
                    None => self.addr(any, port),
                }
            }
            (Some((None, port)), _) => match e.udp_peer {
                Some((peer, _)) => self.addr(g.source_for(peer), port),
                None => self.addr(any, port),
            },
            (Some((Some(ip), port)), _) => self.addr(ip, port),
            (None, _) => self.addr(any, 0),
        }
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        let g = self.stack.lock();
        let e = &g.entries[&self.id];
        match e.st {
            St::Connected(h) => g
                .set
                .get::<tcp::Socket>(h)
                .remote_endpoint()
                .map(|r| self.addr(r.addr, r.port))
                .ok_or(Errno::ENOTCONN),
            _ => e
                .udp_peer
                .map(|(ip, port)| self.addr(ip, port))
                .ok_or(Errno::ENOTCONN),
        }
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let (rd, wr) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        self.with(|g, id| {
            let e = g.entries.get_mut(&id).expect("present");
            let h = match e.st {
                St::Connected(h) => Some(h),
                St::Udp(_) if e.udp_peer.is_some() => None,
                _ => return Err(Errno::ENOTCONN),
            };
            e.rd_shut |= rd;
            e.wr_shut |= wr;
            if let (Some(h), true) = (h, wr) {
                g.tcp(h).close();
            }
            let q = g.entries[&id].queue.clone();
            q.notify_all();
            Ok(())
        })
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        let mut g = self.stack.lock();
        let e = g.entries.get_mut(&self.id).expect("present");
        let proto = match self.proto {
            Proto::Tcp => libc::IPPROTO_TCP,
            Proto::Udp => libc::IPPROTO_UDP,
            Proto::Icmp => libc::IPPROTO_ICMP,
        };
        if level == libc::IPPROTO_IP && self.proto == Proto::Udp {
            if let Some(r) = super::multicast::get(e, name) {
                return r;
            }
        }
        Ok(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => int(match self.proto {
                Proto::Tcp => libc::SOCK_STREAM,
                Proto::Udp | Proto::Icmp => libc::SOCK_DGRAM,
            }),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(self.family),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(proto),
            (libc::SOL_SOCKET, libc::SO_ERROR) => int(e.error.take().map_or(0, |e| e as i32)),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(e.sndbuf as i32),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(e.rcvbuf as i32),
            // Reads wake at one byte; a larger SO_RCVLOWAT is kept but not honoured.
            (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => int(opt_int(e, level, name).unwrap_or(1)),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                int(i32::from(matches!(e.st, St::Listening { .. })))
            }
            (libc::SOL_SOCKET, libc::SO_PEERCRED | libc::SO_PEERSEC | libc::SO_PASSSEC) => {
                return Err(Errno::ENOPROTOOPT)
            }
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                e.options.get(&(level, name)).cloned().unwrap_or(vec![0; 8])
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or(vec![0; 16]),
            (SOL_TCP, libc::TCP_NODELAY) if self.proto == Proto::Tcp => int(i32::from(e.nodelay)),
            (SOL_TCP, libc::TCP_MAXSEG) if self.proto == Proto::Tcp => int(65_483),
            // The name in a TCP_CA_NAME_MAX buffer, NUL-padded as Linux copies it out.
            (SOL_TCP, libc::TCP_CONGESTION) if self.proto == Proto::Tcp => {
                let mut name = e
                    .options
                    .get(&(level, name))
                    .cloned()
                    .unwrap_or_else(|| DEFAULT_CONGESTION.to_vec());
                name.resize(TCP_CA_NAME_MAX, 0);
                name
            }
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if self.family == libc::AF_INET6 => {
                int(i32::from(v6only(e)))
            }
            (libc::IPPROTO_IP, libc::IP_TTL) => int(opt_int(e, level, name).unwrap_or(DEFAULT_TTL)),
            (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) if self.family == libc::AF_INET6 => {
                int(opt_int(e, level, name).unwrap_or(DEFAULT_TTL))
            }
            (libc::IPPROTO_IP, libc::IP_TOS) => int(opt_int(e, level, name).unwrap_or(0)),
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if self.family == libc::AF_INET6 => {
                int(opt_int(e, level, name).unwrap_or(0))
            }
            (libc::SOL_SOCKET | libc::IPPROTO_IP, _) => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or_else(|| int(0)),
            (libc::IPPROTO_IPV6, _) if self.family == libc::AF_INET6 => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or_else(|| int(0)),
            (SOL_TCP, _) if self.proto == Proto::Tcp => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or_else(|| int(0)),
            (libc::IPPROTO_UDP, _) if self.proto == Proto::Udp => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or_else(|| int(0)),
            _ => return Err(Errno::EOPNOTSUPP),
        })
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        let known = matches!(level, libc::SOL_SOCKET | libc::IPPROTO_IP)
            || (level == libc::IPPROTO_IPV6 && self.family == libc::AF_INET6)
            || (level == SOL_TCP && self.proto == Proto::Tcp)
            || (level == libc::IPPROTO_UDP && self.proto == Proto::Udp);
        if !known {
            return Err(Errno::ENOPROTOOPT);
        }
        if level == libc::IPPROTO_IP && self.proto == Proto::Udp {
            if let Some(r) = self.with(|g, id| super::multicast::set(g, id, name, value)) {
                return r;
            }
        }
        self.with(|g, id| {
            let e = g.entries.get_mut(&id).expect("present");
            match (level, name) {
                // Linux caps the value (read as unsigned) at wmem_max/rmem_max, then doubles
                // it for bookkeeping overhead, with a floor.
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                    e.sndbuf = (int_of(value)? as u32 as usize).min(BUF_MAX) * 2;
                    e.sndbuf = e.sndbuf.max(4608);
                    // A sender blocked on a full buffer may go on now.
                    self.queue.notify(Wake::Writable);
                }
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                    e.rcvbuf = ((int_of(value)? as u32 as usize).min(BUF_MAX) * 2).max(2304);
                }
                // The caller checked CAP_NET_ADMIN: no cap at rmem_max/wmem_max.
                (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE) => {
                    e.rcvbuf = ((int_of(value)?.max(0) as usize) * 2).max(2304);
                }
                (libc::SOL_SOCKET, libc::SO_SNDBUFFORCE) => {
                    e.sndbuf = ((int_of(value)?.max(0) as usize) * 2).max(4608);
                    self.queue.notify(Wake::Writable);
                }
                (
                    libc::SOL_SOCKET,
                    libc::SO_TYPE | libc::SO_PROTOCOL | libc::SO_DOMAIN | libc::SO_ERROR,
                ) => return Err(Errno::ENOPROTOOPT),
                (SOL_TCP, libc::TCP_CONGESTION) => {
                    let name = value.split(|&b| b == 0).next().unwrap_or_default();
                    if !CONGESTION_CONTROLS.contains(&name) {
                        return Err(Errno::ENOENT);
                    }
                    e.options
                        .insert((level, libc::TCP_CONGESTION), name.to_vec());
                }
                (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => {
                    let tv = value.get(..16).ok_or(Errno::EINVAL)?;
                    let usec = i64::from_ne_bytes(tv[8..].try_into().expect("8 bytes"));
                    if !(0..1_000_000).contains(&usec) {
                        return Err(Errno::EDOM);
                    }
                    e.options.insert((level, name), tv.to_vec());
                }
                (libc::IPPROTO_IP, libc::IP_TTL) => {
                    match ip_int(value) {
                        -1 => drop(e.options.remove(&(level, name))),
                        v @ 1..=255 => drop(e.options.insert((level, name), int(v))),
                        _ => return Err(Errno::EINVAL),
                    }
                    self.apply_hop_limit(g, id);
                }
                (libc::IPPROTO_IP, libc::IP_TOS) => {
                    // Linux keeps the low byte; a stream socket's ECN bits are the stack's.
                    let mut tos = i32::from(ip_int(value) as u8);
                    if self.proto == Proto::Tcp {
                        let old = opt_int(e, level, name).unwrap_or(0);
                        tos = (tos & !ECN_MASK) | (old & ECN_MASK);
                    }
                    e.options.insert((level, name), int(tos));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => {
                    match int_of(value)? {
                        -1 => drop(e.options.remove(&(level, name))),
                        v @ 0..=255 => drop(e.options.insert((level, name), int(v))),
                        _ => return Err(Errno::EINVAL),
                    }
                    self.apply_hop_limit(g, id);
                }
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                    let mut class = match int_of(value)? {
                        -1 => 0,
                        v @ 0..=255 => v,
                        _ => return Err(Errno::EINVAL),
                    };
                    if self.proto == Proto::Tcp {
                        let old = opt_int(e, level, name).unwrap_or(0);
                        class = (class & !ECN_MASK) | (old & ECN_MASK);
                    }
                    e.options.insert((level, name), int(class));
                }
                (SOL_TCP, libc::TCP_NODELAY) => {
                    e.nodelay = int_of(value)? != 0;
                    let nodelay = e.nodelay;
                    if let St::Connected(h) | St::Connecting { h, .. } = e.st {
                        g.tcp(h).set_nagle_enabled(!nodelay);
                    }
                }
                _ => {
                    if value.is_empty() {
                        return Err(Errno::EINVAL);
                    }
                    e.options.insert((level, name), value.to_vec());
                }
            }
            Ok(())
        })
    }
}

impl FileOps for InetSocket {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::socket::stat(self.id))
    }

    fn readiness(&self) -> u32 {
        let g = self.stack.lock();
        readiness(&g.set, &g.entries[&self.id])
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trips() {
        let lo = IpAddress::v4(127, 0, 0, 1);
        let a = sockaddr(libc::AF_INET, lo, 8080);
        assert_eq!(a.len(), 16);
        assert_eq!(parse(libc::AF_INET, &a).unwrap(), Some((lo, 8080)));
        assert_eq!(parse(libc::AF_INET, &a[..8]), Err(Errno::EINVAL));
        assert_eq!(
            parse(libc::AF_INET, &(libc::AF_UNSPEC as u16).to_ne_bytes()),
            Ok(None)
        );
        let six = IpAddress::v6(0xfd00, 0x251, 0, 0, 0, 0, 0, 1);
        let b = sockaddr(libc::AF_INET6, six, 80);
        assert_eq!(b.len(), SOCKADDR_IN6_LEN);
        assert_eq!(parse(libc::AF_INET6, &b).unwrap(), Some((six, 80)));
        assert_eq!(parse(libc::AF_INET6, &a), Err(Errno::EINVAL));
        assert_eq!(parse(libc::AF_INET, &b), Err(Errno::EAFNOSUPPORT));
        // A v4-mapped address is the IPv4 address, and shows v4-mapped again.
        let mapped = sockaddr(libc::AF_INET6, lo, 1);
        assert_eq!(&mapped[8..20], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(parse(libc::AF_INET6, &mapped).unwrap(), Some((lo, 1)));
    }

    #[test]
    fn only_own_addresses_are_reachable_on_loopback() {
        let stack = Stack::start();
        let g = stack.lock();
        let any = IpAddress::Ipv4(Ipv4Address::UNSPECIFIED);
        let (ep, hop) = destination(&g, any, 1).unwrap();
        assert_eq!((ep.addr, hop), (IpAddress::v4(127, 0, 0, 1), Hop::Inside));
        assert!(destination(&g, IpAddress::Ipv6(Ipv6Address::LOCALHOST), 1).is_ok());
        assert_eq!(
            destination(&g, IpAddress::v4(10, 0, 0, 1), 1),
            Err(Errno::ENETUNREACH)
        );
        assert_eq!(
            destination(&g, IpAddress::v4(127, 0, 0, 2), 1),
            Err(Errno::ENETUNREACH)
        );
    }

    #[test]
    fn options_are_recorded() {
        let s = InetSocket::new(&Stack::start(), Proto::Tcp);
        s.setsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, &int(1))
            .unwrap();
        assert_eq!(
            s.getsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR).unwrap(),
            int(1)
        );
        let g = s.stack.lock();
        assert!(g.entries[&s.id]
            .options
            .contains_key(&(libc::SOL_SOCKET, libc::SO_REUSEADDR)));
    }
}
