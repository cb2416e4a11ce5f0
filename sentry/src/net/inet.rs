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

use smoltcp::iface::SocketSet;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{
    IpAddress, IpEndpoint, IpListenEndpoint, IpProtocol, Ipv4Address, Ipv6Address, TcpPacket,
};

use super::stack::{next_id, readiness, rx_len, Entry, Hop, Inner, Proto, St, Stack};
use super::{InMessage, IoFlags, OutMessage, Socket};
use crate::abi::bpf::{run_socket_filter, SockFilter};
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
/// TCP_INQ, and TCP_CM_INQ, the control message it turns on.
const TCP_INQ: i32 = 36;
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
/// ENETUNREACH without a route ([`Inner::unreachable`]).
pub(super) fn destination(g: &Inner, ip: IpAddress, port: u16) -> Result<(IpEndpoint, Hop), Errno> {
    let ip = this_host(ip);
    let hop = g.hop(ip).ok_or_else(|| g.unreachable(ip))?;
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
        let linger = self.linger();
        self.stack.lock().remove(self.id);
        self.stack.kick();
        super::forward::closed(&self.stack, self.id);
        if let Some((h, until)) = linger {
            self.linger_wait(h, until);
        }
    }
}

impl InetSocket {
    /// A connection whose close lingers (SO_LINGER with a time): its handle and until
    /// when.
    fn linger(&self) -> Option<(smoltcp::iface::SocketHandle, Instant)> {
        let g = self.stack.lock();
        let e = g.entries.get(&self.id)?;
        match (&e.st, e.opts.linger) {
            (St::Connected(h), Some(secs)) if secs > 0 => {
                Some((*h, Instant::now() + Duration::from_secs(secs.into())))
            }
            _ => None,
        }
    }

    /// SO_LINGER: the close waits (at most until `until`) for the peer to acknowledge
    /// what was sent and the FIN, as Linux's close does. The socket's file is gone, so
    /// no signal can interrupt it; the wait is bounded by the time the application set.
    fn linger_wait(&self, h: smoltcp::iface::SocketHandle, until: Instant) {
        use smoltcp::socket::tcp::State as T;
        while Instant::now() < until {
            {
                let mut g = self.stack.lock();
                g.pump();
                // The orphaned connection leaves the set once closed.
                if !g.is_orphan(h) {
                    return;
                }
                if !matches!(g.tcp(h).state(), T::FinWait1 | T::Closing | T::LastAck) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
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

    /// A destination as `sendto` takes it: an AF_INET6 datagram socket also takes an
    /// AF_INET address (as v4-mapped), ENETUNREACH under IPV6_V6ONLY, as Linux's
    /// `udpv6_sendmsg`.
    fn parse_dest(&self, g: &Inner, addr: &[u8]) -> Result<Option<(IpAddress, u16)>, Errno> {
        let given = addr
            .get(..2)
            .map(|f| i32::from(u16::from_ne_bytes([f[0], f[1]])));
        if self.family == libc::AF_INET6 && given == Some(libc::AF_INET) {
            if v6only(&g.entries[&self.id]) {
                return Err(Errno::ENETUNREACH);
            }
            return parse(libc::AF_INET, addr);
        }
        self.parse(g, addr)
    }

    /// Whether an AF_INET6 socket bound to a specific address may reach `dst`: one bound
    /// to an IPv6 address cannot reach an IPv4 (v4-mapped) one (ENETUNREACH), one bound to
    /// a v4-mapped address cannot reach an IPv6 one (EAFNOSUPPORT), as Linux.
    fn check_bound_family(&self, g: &Inner, id: u64, dst: IpAddress) -> Result<(), Errno> {
        let e = &g.entries[&id];
        if self.family != libc::AF_INET6 || e.source_from_connect {
            return Ok(());
        }
        match (e.bound, dst) {
            (Some((Some(IpAddress::Ipv6(a)), _)), IpAddress::Ipv4(_)) if !a.is_unspecified() => {
                Err(Errno::ENETUNREACH)
            }
            (Some((Some(IpAddress::Ipv4(a)), _)), IpAddress::Ipv6(_)) if !a.is_unspecified() => {
                Err(Errno::EAFNOSUPPORT)
            }
            _ => Ok(()),
        }
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
        let port = g.bind_port(proto, addr, port, id)?;
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
                    St::Connecting { .. } | St::Resolving { .. } if flags.nonblocking => {
                        return Some(Err(Errno::EAGAIN))
                    }
                    St::Connecting { .. } | St::Resolving { .. } => return None,
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
                let (sndbuf, cork) = (g.entries[&id].sndbuf, g.entries[&id].opts.cork);
                let r = if cork {
                    hold_corked(g, id, h, src, &mut sent)
                } else {
                    let s = g.tcp(h);
                    // SO_SNDBUF bounds what waits unacknowledged, as in Linux.
                    let room = sndbuf.saturating_sub(s.send_queue());
                    tcp_send_from(s, src, room, &mut sent)
                };
                if let Err(e) = r {
                    return Some(Err(e));
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

    /// The receive itself, without the control messages TCP_INQ adds.
    fn recv_data(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        if flags.errqueue {
            // Linux answers a read of an empty error queue at once, blocking socket or not.
            return self.with(|g, id| {
                let e = g.entries.get_mut(&id).expect("present");
                let q = super::udp::take_error(e).ok_or(Errno::EAGAIN)?;
                let len = dst.copy_from(&q.payload)?;
                Ok(InMessage {
                    len,
                    full_len: q.payload.len(),
                    from: Some(self.addr(q.dst.0, q.dst.1)),
                    control: vec![super::udp::error_control(self.family, &q)],
                    ..InMessage::default()
                })
            });
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

    fn send_udp(
        &self,
        t: &mut dyn Context,
        src: &mut dyn IoSrc,
        msg: &OutMessage,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        let cmsgs = SendControl::parse(&msg.control)?;
        let to = msg.to.as_deref();
        let dest = match to {
            Some(a) => {
                let g = self.stack.lock();
                match self.parse_dest(&g, a)? {
                    Some(d) => {
                        self.check_bound_family(&g, self.id, d.0)?;
                        Some(d)
                    }
                    None => return Err(Errno::EAFNOSUPPORT),
                }
            }
            None => None,
        };
        let max = if self.family == libc::AF_INET6 {
            UDP6_MAX
        } else {
            UDP_MAX
        };
        if src.remaining() > max {
            self.with(|g, id| {
                let to = dest.or(g.entries[&id].udp_peer);
                let mtu = match to {
                    Some((ip, _)) if g.is_own(this_host(ip)) => super::config::LOOPBACK_MTU,
                    _ => g.link_mtu() as u32,
                };
                if let Some(to) = to {
                    super::udp::too_big(g.entries.get_mut(&id).expect("present"), to, mtu);
                }
            });
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
                if let Some(err) = g.entries.get_mut(&id).expect("present").error.take() {
                    return Some(Err(err));
                }
                let (ip, port) = match dest.or(g.entries[&id].udp_peer) {
                    Some(d) => d,
                    None => return Some(Err(Errno::EDESTADDRREQ)),
                };
                let inside = super::udp::kind(g, this_host(ip))
                    .filter(|_| !g.copies_wanted(IpProtocol::Udp));
                let ep = match inside {
                    Some(_) => IpEndpoint::new(this_host(ip), port),
                    None => match destination(g, ip, port) {
                        Ok((ep, _)) => ep,
                        Err(e) => return Some(Err(e)),
                    },
                };
                if port == 0 {
                    return Some(Err(Errno::EINVAL));
                }
                // A socket bound to (or connected over) one IP version cannot send over the
                // other (smoltcp would build a packet with mixed addresses): as Linux, an
                // IPv4 destination is unreachable from an IPv6 address bound, an IPv6 one is
                // not of the family of a socket on IPv4. An IPv6 source connect chose has
                // no IPv4 one (Linux's inet_saddr stays unset): the route picks it.
                let e = &g.entries[&id];
                let fixed = e.bound.and_then(|b| b.0).or(e.udp_peer.map(|p| p.0));
                if let Some(local) = fixed.filter(|l| !l.is_unspecified()) {
                    match (local, ep.addr) {
                        (IpAddress::Ipv6(_), IpAddress::Ipv4(_))
                            if !(e.source_from_connect && inside.is_some()) =>
                        {
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
                if inside.is_none() && !g.is_own(ep.addr) {
                    let mtu = g.link_mtu();
                    let e = g.entries.get_mut(&id).expect("present");
                    if data.len() + udp_headers(ep.addr) > mtu && keeps_whole(e, ep.addr) {
                        super::udp::does_not_fit(e, (ip, port), mtu as u32);
                        return Some(Err(Errno::EMSGSIZE));
                    }
                }
                if let Some(kind) = inside {
                    return Some(send_inside(g, id, data, ep, kind, &cmsgs));
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

    /// The next datagram the sentry queued for entry `id` ([`super::udp`]) into `dst`, with
    /// its control messages; `None` when none is queued. The datagram leaves the queue
    /// (unless peeking) even when the copy faults, as in Linux.
    fn take_datagram(
        &self,
        g: &mut Inner,
        id: u64,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Option<Result<InMessage, Errno>> {
        let e = g.entries.get_mut(&id).expect("present");
        let d = if flags.peek {
            e.dgrams.front()?.clone()
        } else {
            let d = e.dgrams.pop_front()?;
            e.dgram_bytes -= d.data.len();
            super::udp::note_read(e, d.at);
            d
        };
        let control = super::udp::control(e, &d);
        let full_len = d.data.len();
        Some(dst.copy_from(&d.data).map(|n| InMessage {
            len: n,
            full_len,
            from: Some(self.addr(d.src.0, d.src.1)),
            control,
            ..InMessage::default()
        }))
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
        let (filter, port) = (e.filter.clone(), e.bound.map_or(0, |b| b.1));
        let reset_unread = e.reset && !e.fin_seen && e.error == Some(Errno::ECONNRESET);
        // SO_RCVLOWAT: a blocking read waits for that many bytes (or all it asked for).
        let target = if flags.nonblocking || flags.peek {
            1
        } else {
            e.opts.rcvlowat.min(len).max(1)
        };
        match e.st {
            St::Connected(h) => {
                let s = g.tcp(h);
                if s.recv_queue() < target && s.may_recv() && !rd_shut {
                    return None;
                }
                if s.recv_queue() > 0 && len > 0 {
                    let n = if flags.trunc {
                        // MSG_TRUNC on a stream: Linux counts (with MSG_PEEK) or drops the
                        // bytes without copying them.
                        let n = len.min(s.recv_queue());
                        if !flags.peek {
                            // The queue may wrap: two pieces.
                            let before = s.recv_queue();
                            for _ in 0..2 {
                                let want = n - (before - s.recv_queue());
                                if want == 0 {
                                    break;
                                }
                                let _ = s.recv(|buf| (want.min(buf.len()), ()));
                            }
                        }
                        Ok(n)
                    } else if flags.peek {
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
                if let Some(r) = self.take_datagram(g, id, dst, flags) {
                    return Some(r);
                }
                if !g.udp(h).can_recv() {
                    // ECONNREFUSED (Linux's ICMP error) when nothing is queued.
                    if let Some(err) = g.entries.get_mut(&id).expect("present").error.take() {
                        return Some(Err(err));
                    }
                }
                let s = g.udp(h);
                let (data, meta) = if flags.peek {
                    match s.peek() {
                        Ok((d, m)) => (d, *m),
                        Err(_) => {
                            return if rd_shut && !flags.nonblocking {
                                Some(Ok(InMessage::default()))
                            } else {
                                None
                            }
                        }
                    }
                } else {
                    match s.recv() {
                        Ok(x) => x,
                        // Shut for reading, an empty queue is the end of file to a
                        // blocking read only, as in Linux.
                        Err(_) => {
                            return if rd_shut && !flags.nonblocking {
                                Some(Ok(InMessage::default()))
                            } else {
                                None
                            }
                        }
                    }
                };
                let from = (meta.endpoint.addr, meta.endpoint.port);
                let foreign = self.family == libc::AF_INET && matches!(from.0, IpAddress::Ipv6(_));
                let stranger = peer.is_some_and(|(a, p)| a != from.0 || (p != 0 && p != from.1));
                // A datagram from the link meets the socket filter here (those delivered
                // inside did on delivery).
                let keep = match &filter {
                    Some(prog) => super::udp::filtered(prog, from.1, port, data),
                    None => Some(data.len()),
                };
                let Some(keep) = keep.filter(|_| !foreign && !stranger) else {
                    if flags.peek {
                        // Drop the stranger's (or an IPv6 datagram on an AF_INET socket,
                        // or one the filter refuses) and look again.
                        let _ = s.recv();
                    }
                    continue;
                };
                let data = &data[..keep];
                // A datagram leaves the queue even when the copy faults, as in Linux.
                let full_len = data.len();
                let r = dst.copy_from(data).map(|n| InMessage {
                    len: n,
                    full_len,
                    from: Some(self.addr(from.0, from.1)),
                    ..InMessage::default()
                });
                if !flags.peek {
                    let e = g.entries.get_mut(&id).expect("present");
                    super::udp::note_read(e, std::time::SystemTime::now());
                }
                return Some(r);
            },
            St::Idle if e.proto == Proto::Udp => {
                if rd_shut && !flags.nonblocking {
                    Some(Ok(InMessage::default()))
                } else {
                    None
                }
            }
            St::Connecting { .. } | St::Resolving { .. } => None,
            // A connect that failed: its error once, then end of file (Linux shuts the
            // socket down both ways when the connection ends).
            St::Failed => {
                let e = g.entries.get_mut(&id).expect("present");
                Some(e.error.take().map_or(Ok(InMessage::default()), Err))
            }
            _ => Some(Err(Errno::ENOTCONN)),
        }
    }
}

/// The send-side control messages of a UDP `sendmsg` that change the datagram: IP_TTL,
/// IP_TOS, IPV6_HOPLIMIT, IPV6_TCLASS, and the source address of IP_PKTINFO and
/// IPV6_PKTINFO (`ipi_spec_dst`, `ipi6_addr`).
#[derive(Debug, Default)]
pub(super) struct SendControl {
    pub ttl: Option<u8>,
    pub tos: Option<u8>,
    pub hop_limit: Option<u8>,
    pub tclass: Option<u8>,
    pub source: Option<IpAddress>,
}

impl SendControl {
    /// Parses the messages as Linux's `ip_cmsg_send` and `ip6_datagram_send_ctl` do
    /// (messages of other levels are ignored).
    ///
    /// # Errors
    /// EINVAL for a short value, one out of range or an unknown IP or IPv6 message.
    pub(super) fn parse(control: &[(i32, i32, Vec<u8>)]) -> Result<SendControl, Errno> {
        let mut c = SendControl::default();
        let int = |v: &[u8]| int_of(v);
        for (level, ty, data) in control {
            match (*level, *ty) {
                (libc::IPPROTO_IP, libc::IP_TTL) => match int(data)? {
                    v @ 1..=255 => c.ttl = Some(v as u8),
                    _ => return Err(Errno::EINVAL),
                },
                (libc::IPPROTO_IP, libc::IP_TOS) => {
                    // An int, or (as Linux also takes) a single byte.
                    let v = match data.len() {
                        1 => i32::from(data[0]),
                        4 => int(data)?,
                        _ => return Err(Errno::EINVAL),
                    };
                    c.tos = Some(u8::try_from(v).map_err(|_| Errno::EINVAL)?);
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let v = data.get(..12).ok_or(Errno::EINVAL)?;
                    let a = Ipv4Address::new(v[4], v[5], v[6], v[7]);
                    c.source = (!a.is_unspecified()).then_some(IpAddress::Ipv4(a));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => match int(data)? {
                    -1 => c.hop_limit = None,
                    v @ 0..=255 => c.hop_limit = Some(v as u8),
                    _ => return Err(Errno::EINVAL),
                },
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => match int(data)? {
                    -1 => c.tclass = None,
                    v @ 0..=255 => c.tclass = Some(v as u8),
                    _ => return Err(Errno::EINVAL),
                },
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let v = data.get(..20).ok_or(Errno::EINVAL)?;
                    let a = Ipv6Address::from(<[u8; 16]>::try_from(&v[..16]).expect("16"));
                    c.source = (!a.is_unspecified()).then_some(IpAddress::Ipv6(a));
                }
                (libc::IPPROTO_IP | libc::IPPROTO_IPV6, _) => return Err(Errno::EINVAL),
                _ => {}
            }
        }
        Ok(c)
    }
}

/// Sends `data` from entry `id` (bound) to `to`, a destination inside the sandbox: the
/// datagram goes to the receivers' queues ([`super::udp::deliver`]) with the header fields
/// the socket's options (or the message's `c`) give it. A unicast datagram nobody takes is
/// refused as Linux's ICMP port unreachable refuses it ([`super::udp::refused`]).
///
/// # Errors
/// EACCES for a broadcast without SO_BROADCAST, ENETUNREACH without a route for a
/// multicast or broadcast destination, EADDRNOTAVAIL for a source not ours.
fn send_inside(
    g: &mut Inner,
    id: u64,
    data: &[u8],
    to: IpEndpoint,
    kind: super::udp::Kind,
    c: &SendControl,
) -> Result<usize, Errno> {
    use super::udp::{address_of, Datagram, Kind};
    let e = &g.entries[&id];
    let (bound, port) = e.bound.expect("bound");
    if let Some(s) = c.source {
        if !g.is_own(s) {
            return Err(Errno::EADDRNOTAVAIL);
        }
    }
    let own_bound = bound.filter(|&a| {
        g.is_own(a) && matches!(a, IpAddress::Ipv4(_)) == matches!(to.addr, IpAddress::Ipv4(_))
    });
    let (ifindex, src, spec_dst) = match kind {
        Kind::Unicast => {
            let src = c
                .source
                .or(own_bound)
                .unwrap_or_else(|| g.source_for(to.addr));
            (super::config::LOOPBACK_INDEX, src, to.addr)
        }
        Kind::Multicast | Kind::Broadcast => {
            if kind == Kind::Broadcast
                && opt_int(e, libc::SOL_SOCKET, libc::SO_BROADCAST) != Some(1)
            {
                return Err(Errno::EACCES);
            }
            let index = super::udp::out_interface(g, e, to.addr, kind).ok_or(Errno::ENETUNREACH)?;
            let if_addr = address_of(g, index).map(IpAddress::Ipv4);
            let chosen = e
                .options
                .get(&(libc::IPPROTO_IP, libc::IP_MULTICAST_IF))
                .map(|v| IpAddress::v4(v[0], v[1], v[2], v[3]))
                .filter(|a| kind == Kind::Multicast && !a.is_unspecified());
            let src = c
                .source
                .or(own_bound)
                .or(chosen)
                .or(if_addr)
                .ok_or(Errno::ENETUNREACH)?;
            (index, src, if_addr.unwrap_or(src))
        }
    };
    let v6 = matches!(to.addr, IpAddress::Ipv6(_));
    let ttl = if kind == Kind::Multicast {
        c.ttl.unwrap_or_else(|| super::multicast::ttl(e))
    } else if v6 {
        c.hop_limit.or(hop_limit(e)).unwrap_or(DEFAULT_TTL as u8)
    } else {
        c.ttl.or(hop_limit(e)).unwrap_or(DEFAULT_TTL as u8)
    };
    let tos = if v6 {
        c.tclass
            .unwrap_or_else(|| opt_int(e, libc::IPPROTO_IPV6, libc::IPV6_TCLASS).unwrap_or(0) as u8)
    } else {
        c.tos
            .unwrap_or_else(|| opt_int(e, libc::IPPROTO_IP, libc::IP_TOS).unwrap_or(0) as u8)
    };
    let on_link = ifindex != super::config::LOOPBACK_INDEX;
    let looped = kind != Kind::Multicast || !on_link || super::multicast::looped(e);
    if on_link {
        // The link's other hosts get it too.
        if let St::Udp(h) = e.st {
            let _ = g.udp(h).send_slice(data, to);
        }
    }
    if looped
        && super::netfilter::udp_looped(
            g.netfilter(),
            (src.into(), port),
            (to.addr.into(), to.port),
            data.len(),
        )?
    {
        let d = Datagram {
            data: data.to_vec(),
            src: (src, port),
            dst: (to.addr, to.port),
            spec_dst,
            ttl,
            tos,
            ifindex,
            at: std::time::SystemTime::now(),
        };
        let receivers = super::udp::deliver(g, &d, kind);
        if receivers == 0 && kind == Kind::Unicast {
            super::udp::refused(g, id, &d);
        }
    }
    Ok(data.len())
}

/// `SO_ORIGINAL_DST` of connection `h`: where its client sent it before the nat table
/// redirected it.
///
/// # Errors
/// ENOENT when it was not redirected (as Linux finding no translation), ENOTCONN when it
/// has no peer any more.
fn original_dst(g: &mut Inner, h: smoltcp::iface::SocketHandle) -> Result<Vec<u8>, Errno> {
    let s = g.tcp(h);
    let (Some(local), Some(peer)) = (s.local_endpoint(), s.remote_endpoint()) else {
        return Err(Errno::ENOTCONN);
    };
    let (addr, port) = g
        .netfilter()
        .original_dst(
            (local.addr.into(), local.port),
            (peer.addr.into(), peer.port),
        )
        .ok_or(Errno::ENOENT)?;
    Ok(sockaddr(libc::AF_INET, addr.into(), port))
}

/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;
/// `SO_BINDTOIFINDEX` (not in the libc crate for every target).
const SO_BINDTOIFINDEX: i32 = 62;

/// The interface index `value` (SO_BINDTODEVICE's value: at most IFNAMSIZ - 1 bytes of it
/// count, up to a NUL) names; 0 for the empty name.
///
/// # Errors
/// ENODEV for an unknown interface.
fn device_index(g: &Inner, value: &[u8]) -> Result<i32, Errno> {
    let value = &value[..value.len().min(IFNAMSIZ - 1)];
    let name = value.split(|&b| b == 0).next().unwrap_or_default();
    match name {
        b"" => Ok(0),
        b"lo" => Ok(super::config::LOOPBACK_INDEX),
        n if g.link_name.as_deref().map(str::as_bytes) == Some(n) => {
            g.link_index.ok_or(Errno::ENODEV)
        }
        n => g.tun.index_of(n).ok_or(Errno::ENODEV),
    }
}

/// The name of interface `index`.
fn device_name(g: &Inner, index: i32) -> Option<String> {
    if index == super::config::LOOPBACK_INDEX {
        Some("lo".into())
    } else if g.link_index == Some(index) {
        g.link_name.clone()
    } else {
        g.tun.name_of(index)
    }
}

/// setsockopt of SO_BINDTODEVICE and SO_BINDTOIFINDEX, which TCP and UDP sockets share.
/// `None`: not one of them.
fn set_device_option(
    g: &mut Inner,
    id: u64,
    level: i32,
    name: i32,
    value: &[u8],
) -> Option<Result<(), Errno>> {
    let index = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) => device_index(g, value),
        (libc::SOL_SOCKET, SO_BINDTOIFINDEX) => int_of(value).and_then(|index| {
            if index != 0 && device_name(g, index).is_none() {
                return Err(Errno::ENODEV);
            }
            Ok(index)
        }),
        _ => return None,
    };
    Some(index.map(|index| {
        g.entries.get_mut(&id).expect("present").bound_dev = index;
    }))
}

/// getsockopt of the options [`set_device_option`] sets.
fn get_device_option(g: &Inner, id: u64, level: i32, name: i32) -> Option<Result<Vec<u8>, Errno>> {
    let e = &g.entries[&id];
    match (level, name) {
        // The name with its NUL; nothing when unbound (the caller checks the room).
        (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) if e.bound_dev == 0 => Some(Ok(Vec::new())),
        (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) => Some(
            device_name(g, e.bound_dev)
                .map(|n| {
                    let mut v = n.into_bytes();
                    v.push(0);
                    v
                })
                .ok_or(Errno::ENODEV),
        ),
        (libc::SOL_SOCKET, SO_BINDTOIFINDEX) => Some(Ok(int(e.bound_dev))),
        _ => None,
    }
}

/// The options of [`set_udp_option`] TCP sockets take as well: IP_MTU_DISCOVER,
/// SO_TIMESTAMP and SO_TIMESTAMPNS.
const TCP_SHARED: [(i32, i32); 3] = [
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
    (libc::SOL_SOCKET, super::udp::SO_TIMESTAMP),
    (libc::SOL_SOCKET, super::udp::SO_TIMESTAMPNS),
];

/// setsockopt of the options datagram sockets have here: IP_MTU_DISCOVER and the receive
/// flags ([`super::udp::RECV_FLAGS`]); TCP sockets take some ([`TCP_SHARED`]). `None`: not
/// one of them.
fn set_udp_option(
    g: &mut Inner,
    id: u64,
    level: i32,
    name: i32,
    value: &[u8],
) -> Option<Result<(), Errno>> {
    let r = match (level, name) {
        // IP_PMTUDISC_DONT ..= IP_PMTUDISC_OMIT. Datagrams inside the sandbox are never
        // fragmented; on the link, DO and PROBE refuse what does not fit ([`keeps_whole`]).
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER) => {
            let v = ip_int(value);
            if value.is_empty() || !(0..=5).contains(&v) {
                Err(Errno::EINVAL)
            } else {
                let e = g.entries.get_mut(&id).expect("present");
                e.options.insert((level, name), int(v));
                Ok(())
            }
        }
        key if super::udp::RECV_FLAGS.contains(&key) => {
            let v = if level == libc::IPPROTO_IP {
                if value.is_empty() {
                    Err(Errno::EINVAL)
                } else {
                    Ok(ip_int(value))
                }
            } else {
                int_of(value)
            };
            v.map(|v| {
                let e = g.entries.get_mut(&id).expect("present");
                e.options.insert(key, int(i32::from(v != 0)));
                if v == 0 {
                    super::udp::recverr_off(e, level, name);
                }
            })
        }
        _ => return None,
    };
    Some(r)
}

/// The IP and UDP headers of a datagram to `dst`.
fn udp_headers(dst: IpAddress) -> usize {
    match dst {
        IpAddress::Ipv4(_) => 20 + 8,
        IpAddress::Ipv6(_) => 40 + 8,
    }
}

/// `IPV6_MTU_DISCOVER`, `IPV6_DONTFRAG`, `IPV6_MTU`.
const IPV6_MTU_DISCOVER: i32 = 23;
const IPV6_DONTFRAG: i32 = 62;
const IPV6_MTU: i32 = 24;
/// `IP_PMTUDISC_DO` and `IP_PMTUDISC_PROBE` (the IPv6 values are the same).
const PMTUDISC_DO: i32 = 2;
const PMTUDISC_PROBE: i32 = 3;

/// Whether entry `e` keeps its datagrams to `dst` whole, refusing with EMSGSIZE those above
/// the path's MTU rather than having them fragmented: IP_MTU_DISCOVER (IPV6_MTU_DISCOVER)
/// IP_PMTUDISC_DO or IP_PMTUDISC_PROBE, or IPV6_DONTFRAG. Linux's default (WANT) and DONT
/// fragment, and so does OMIT.
fn keeps_whole(e: &Entry, dst: IpAddress) -> bool {
    let strict = |v: Option<i32>| matches!(v, Some(PMTUDISC_DO | PMTUDISC_PROBE));
    match dst {
        IpAddress::Ipv4(_) => strict(opt_int(e, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)),
        IpAddress::Ipv6(_) => {
            strict(opt_int(e, libc::IPPROTO_IPV6, IPV6_MTU_DISCOVER))
                || opt_int(e, libc::IPPROTO_IPV6, IPV6_DONTFRAG).is_some_and(|v| v != 0)
        }
    }
}

/// getsockopt of the options [`set_udp_option`] sets, and IP_MTU (IPV6_MTU): a connected
/// socket's path MTU.
fn get_udp_option(g: &Inner, id: u64, level: i32, name: i32) -> Option<Result<Vec<u8>, Errno>> {
    let e = &g.entries[&id];
    if level == libc::IPPROTO_IPV6 && e.family != libc::AF_INET6 {
        return None;
    }
    if (level, name) == (libc::IPPROTO_IP, libc::IP_MTU)
        || (level, name) == (libc::IPPROTO_IPV6, IPV6_MTU)
    {
        let Some((peer, _)) = e.udp_peer else {
            return Some(Err(Errno::ENOTCONN));
        };
        let mtu = if g.is_own(this_host(peer)) {
            super::config::LOOPBACK_MTU
        } else {
            g.link_mtu() as u32
        };
        return Some(Ok(int(mtu as i32)));
    }
    Some(Ok(match (level, name) {
        // IP_PMTUDISC_WANT by default (net.ipv4.ip_no_pmtu_disc = 0).
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER) => int(opt_int(e, level, name).unwrap_or(1)),
        key if super::udp::RECV_FLAGS.contains(&key) => int(opt_int(e, level, name).unwrap_or(0)),
        _ => return None,
    }))
}

/// The most one step of a TCP send copies from the application: a piece that faults is
/// dropped whole, as Linux's `tcp_sendmsg` drops the chunk (at most its 64 KiB size goal)
/// whose copy faulted.
const TCP_SEND_PIECE: usize = 64 << 10;

/// Copies exactly `dst.len()` bytes of `src` into `dst`.
///
/// # Errors
/// EFAULT when any of it faults (what was read before the fault is dropped with it).
fn copy_whole(src: &mut dyn IoSrc, dst: &mut [u8]) -> Result<(), Errno> {
    if src.copy_to(dst)? < dst.len() {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Queues at most `max` bytes of `src` on the TCP socket `s`, in pieces of at most
/// [`TCP_SEND_PIECE`] (its free space may also wrap), adding the bytes queued to `sent`.
///
/// # Errors
/// EFAULT when a piece faults: it stays unsent, the pieces before it stay queued.
fn tcp_send_from(
    s: &mut tcp::Socket,
    src: &mut dyn IoSrc,
    max: usize,
    sent: &mut usize,
) -> Result<(), Errno> {
    let mut total = 0;
    loop {
        let want = (max - total).min(src.remaining()).min(TCP_SEND_PIECE);
        if want == 0 {
            return Ok(());
        }
        let r = s.send(|buf| {
            let n = want.min(buf.len());
            match copy_whole(src, &mut buf[..n]) {
                Ok(()) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            }
        });
        match r {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(c)) => {
                total += c;
                *sent += c;
            }
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// TCP_CM_INQ's value after a read from entry `id`, `None` unless TCP_INQ is on: the
/// bytes left to read, and 1 when none are left but the connection ended (a read would
/// see its end), as Linux's `tcp_inq_hint`.
fn inq_hint(g: &mut Inner, id: u64) -> Option<i32> {
    let e = &g.entries[&id];
    if opt_int(e, SOL_TCP, TCP_INQ) != Some(1) {
        return None;
    }
    Some(match e.st {
        St::Connected(h) => {
            let s = g.tcp(h);
            match s.recv_queue() {
                0 if !s.may_recv() => 1,
                n => i32::try_from(n).unwrap_or(i32::MAX),
            }
        }
        _ => 1,
    })
}

/// A TCP socket's socket filter (SO_ATTACH_FILTER) as the device applies it to arriving
/// segments ([`tcp_passes`]): a connection's to its own segments, a listener's to those for
/// its address and port that no filtered connection claims (the handshakes of connections
/// it has not handed out, which inherit the filter, as in Linux).
#[derive(Debug, Clone)]
pub struct TcpFilter {
    local: IpListenEndpoint,
    remote: Option<IpEndpoint>,
    prog: Arc<[SockFilter]>,
}

/// Entry `e`'s socket filter, when it is a TCP socket with one that hears segments.
pub(super) fn tcp_filter(set: &SocketSet<'static>, e: &Entry) -> Option<TcpFilter> {
    let prog = e.filter.clone()?;
    match e.st {
        St::Connected(h) | St::Connecting { h, .. } => {
            let s = set.get::<tcp::Socket>(h);
            let local = s.local_endpoint()?;
            Some(TcpFilter {
                local: IpListenEndpoint {
                    addr: Some(local.addr),
                    port: local.port,
                },
                remote: Some(s.remote_endpoint()?),
                prog,
            })
        }
        St::Listening { .. } => {
            let (addr, port) = e.bound?;
            Some(TcpFilter {
                local: IpListenEndpoint { addr, port },
                remote: None,
                prog,
            })
        }
        _ => None,
    }
}

/// Whether the TCP segment `seg` from `src` to `dst` passes the socket filter of the socket
/// it is for, if that has one. Linux runs the filter on the TCP header and payload
/// (`tcp_filter`); a segment is taken whole or dropped (a filter's shorter length does not
/// trim it here).
pub(super) fn tcp_passes(
    filters: &[TcpFilter],
    src: IpAddress,
    dst: IpAddress,
    seg: &[u8],
) -> bool {
    let Ok(tcp) = TcpPacket::new_checked(seg) else {
        return true;
    };
    let from = IpEndpoint::new(src, tcp.src_port());
    let port = tcp.dst_port();
    let exact = filters
        .iter()
        .find(|f| f.remote == Some(from) && f.local.port == port && f.local.addr == Some(dst));
    let filter = exact.or_else(|| {
        filters.iter().find(|f| {
            f.remote.is_none() && f.local.port == port && f.local.addr.is_none_or(|a| a == dst)
        })
    });
    filter.is_none_or(|f| run_socket_filter(&f.prog, seg) != 0)
}

/// Linux's ceiling on how long TCP_CORK holds a partial segment back (man 7 tcp).
const CORK_CEILING: Duration = Duration::from_millis(200);

/// A write on a corked connection (entry `id`, connection `h`): the bytes are held in
/// the entry (SO_SNDBUF bounds them with what waits unacknowledged, and so does the
/// connection's buffer, so that a flush always fits), full segments go at once. The bytes
/// held are added to `sent`.
///
/// # Errors
/// EFAULT when a piece of [`TCP_SEND_PIECE`] faults: it is not held, those before it are.
fn hold_corked(
    g: &mut Inner,
    id: u64,
    h: smoltcp::iface::SocketHandle,
    src: &mut dyn IoSrc,
    sent: &mut usize,
) -> Result<(), Errno> {
    let queued = g.tcp(h).send_queue();
    let e = g.entries.get_mut(&id).expect("present");
    let limit = e.sndbuf.min(super::stack::TCP_BUF);
    let mut want = limit
        .saturating_sub(queued + e.corked.len())
        .min(src.remaining());
    let mut r = Ok(());
    while want > 0 {
        // Straight into the held bytes; a piece that faults is taken back out.
        let piece = want.min(TCP_SEND_PIECE);
        let start = e.corked.len();
        e.corked.resize(start + piece, 0);
        if let Err(err) = copy_whole(src, &mut e.corked[start..]) {
            e.corked.truncate(start);
            r = Err(err);
            break;
        }
        want -= piece;
        *sent += piece;
        e.corked_at.get_or_insert_with(Instant::now);
    }
    push_corked(g, id, false);
    r
}

/// Moves what TCP_CORK held for entry `id` into its connection: full segments always;
/// the rest once the socket is uncorked, 200 ms after it was first held, or when `force`d
/// (shutdown, close), as Linux. Called on every write and from the stack's poller.
pub(super) fn push_corked(g: &mut Inner, id: u64, force: bool) {
    let Some(e) = g.entries.get_mut(&id) else {
        return;
    };
    let St::Connected(h) = e.st else {
        return;
    };
    if e.corked.is_empty() {
        return;
    }
    let all = force || !e.opts.cork || e.corked_at.is_some_and(|t| t.elapsed() >= CORK_CEILING);
    let mut held = std::mem::take(&mut e.corked);
    let mss = mss_of(g, h).max(1) as usize;
    let n = if all {
        held.len()
    } else {
        held.len() / mss * mss
    };
    let taken = g.tcp(h).send_slice(&held[..n]).unwrap_or(0);
    held.drain(..taken);
    let e = g.entries.get_mut(&id).expect("present");
    if held.is_empty() {
        e.corked_at = None;
    }
    e.corked = held;
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

/// The socket-level and TCP options besides buffer sizes, timeouts and TCP_NODELAY.
///
/// # Errors
/// As Linux: EINVAL for a short value or one out of range, ENOPROTOOPT for an option
/// the stack does not offer.
fn set_option(g: &mut Inner, id: u64, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
    let e = g.entries.get_mut(&id).expect("present");
    let before = e.opts.clone();
    let o = &mut e.opts;
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => o.reuse_addr = int_of(value)? != 0,
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => o.reuse_port = int_of(value)? != 0,
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => o.keepalive = int_of(value)? != 0,
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            let v = value.get(..8).ok_or(Errno::EINVAL)?;
            let on = int_of(&v[..4])?;
            let secs = int_of(&v[4..])?;
            o.linger = (on != 0).then_some(secs.max(0) as u32);
            if let Some(t) = o.linger {
                o.linger_time = t;
            }
        }
        (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => {
            // Linux takes a negative value as INT_MAX and 0 as 1.
            let v = int_of(value)?;
            o.rcvlowat = if v < 0 {
                i32::MAX as usize
            } else {
                v.max(1) as usize
            };
        }
        // SO_MARK is an integer (the syscall checked CAP_NET_ADMIN or CAP_NET_RAW).
        (libc::SOL_SOCKET, libc::SO_PRIORITY | libc::SO_MARK) => {
            // SO_PRIORITY above 6 takes CAP_NET_ADMIN, which the caller's namespace root
            // holds.
            let v = int_of(value)?;
            e.options.insert((level, name), int(v));
        }
        (libc::SOL_SOCKET, name) if RECORDED_SOCKET_OPTIONS.contains(&name) => {
            let v = i32::from(int_of(value)? != 0);
            e.options.insert((level, name), int(v));
        }
        // The syscall passes the program itself ([`crate::abi::bpf`]).
        (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER) => {
            e.filter = Some(crate::abi::bpf::parse_socket_filter(value)?.into());
        }
        (libc::SOL_SOCKET, libc::SO_DETACH_FILTER) => {
            if e.filter.take().is_none() {
                return Err(Errno::ENOENT);
            }
        }
        (libc::SOL_SOCKET, _) => return Err(Errno::ENOPROTOOPT),
        (SOL_TCP, libc::TCP_CORK) => o.cork = int_of(value)? != 0,
        (SOL_TCP, libc::TCP_QUICKACK) => o.quickack = int_of(value)? != 0,
        (SOL_TCP, TCP_INQ) => {
            let v = int_of(value)?;
            if !(0..=1).contains(&v) {
                return Err(Errno::EINVAL);
            }
            e.options.insert((level, name), int(v));
        }
        (SOL_TCP, libc::TCP_MAXSEG) => {
            // TCP_MIN_MSS..=MAX_TCP_WINDOW; the value only bounds the MSS in Linux,
            // which getsockopt never shows; smoltcp sends segments the peer's MSS
            // allows, so it is checked and otherwise has no effect.
            if !(88..=32767).contains(&int_of(value)?) {
                return Err(Errno::EINVAL);
            }
        }
        (SOL_TCP, libc::TCP_KEEPIDLE) => o.keep_idle = ranged(value, 1, 32767)?,
        (SOL_TCP, libc::TCP_KEEPINTVL) => o.keep_intvl = ranged(value, 1, 32767)?,
        (SOL_TCP, libc::TCP_KEEPCNT) => o.keep_cnt = ranged(value, 1, 127)?,
        (SOL_TCP, libc::TCP_SYNCNT) => o.syn_count = ranged(value, 1, 127)?,
        (SOL_TCP, libc::TCP_USER_TIMEOUT) => {
            o.user_timeout_ms = u32::try_from(int_of(value)?).map_err(|_| Errno::EINVAL)?;
        }
        (SOL_TCP, libc::TCP_DEFER_ACCEPT) => o.defer_accept = defer_accept(int_of(value)?),
        (SOL_TCP, libc::TCP_WINDOW_CLAMP) => {
            let v = int_of(value)?;
            if v == 0 {
                if !matches!(e.st, St::Idle | St::Failed) {
                    return Err(Errno::EINVAL);
                }
                e.opts.window_clamp = 0;
            } else {
                // At least half of SOCK_MIN_RCVBUF.
                e.opts.window_clamp = v.max(MIN_RCVBUF / 2);
            }
        }
        (SOL_TCP, libc::TCP_LINGER2) => {
            // Linux: negative turns FIN_WAIT2's timeout off (-1), 0 is the default
            // (tcp_fin_timeout, 60 s), at most TCP_FIN_TIMEOUT_MAX (120 s).
            o.linger2 = match int_of(value)? {
                v if v < 0 => -1,
                0 => 60,
                v => v.min(120),
            };
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    if e.opts != before {
        // The connection follows at once.
        let nodelay = e.nodelay;
        let opts = e.opts.clone();
        if let St::Connected(h) = e.st {
            opts.apply(g.tcp(h), nodelay);
        }
    }
    // Uncorking sends what was held at once.
    push_corked(g, id, false);
    Ok(())
}

/// Socket-level flags Linux accepts on an internet socket whose effect the stack has by
/// nature or that only matter elsewhere: SO_DEBUG (kernel tracing), SO_DONTROUTE (every
/// destination is on the link or the loopback), SO_BROADCAST (TCP ignores it),
/// SO_OOBINLINE (smoltcp keeps urgent data in line), SO_NO_CHECK (UDP checksums are
/// always sent), SO_BSDCOMPAT (ignored by Linux), SO_PRIORITY and SO_MARK (no queueing
/// discipline or policy routing in the stack), SO_PASSCRED (credentials travel only over
/// AF_UNIX; Linux before 6.x accepts it on any socket, as gVisor's suite expects).
const RECORDED_SOCKET_OPTIONS: [i32; 9] = [
    libc::SO_PASSCRED,
    libc::SO_DEBUG,
    libc::SO_DONTROUTE,
    libc::SO_BROADCAST,
    libc::SO_OOBINLINE,
    libc::SO_NO_CHECK,
    libc::SO_BSDCOMPAT,
    libc::SO_PRIORITY,
    libc::SO_MARK,
];
/// Linux's TCP MSS before a connection (TCP_MSS_DEFAULT).
const DEFAULT_MSS: i32 = 536;
/// SOCK_MIN_RCVBUF.
const MIN_RCVBUF: i32 = 2304;

/// An integer option in `lo..=hi` (else EINVAL).
fn ranged(value: &[u8], lo: i32, hi: i32) -> Result<u32, Errno> {
    let v = int_of(value)?;
    if (lo..=hi).contains(&v) {
        Ok(v as u32)
    } else {
        Err(Errno::EINVAL)
    }
}

/// TCP_DEFER_ACCEPT's seconds as Linux keeps them: rounded up to a number of SYN-ACK
/// retransmissions (1 s doubling up to 120 s, at most 255 of them) and shown as the
/// seconds those take; 0 or less turns it off.
fn defer_accept(secs: i32) -> i32 {
    if secs <= 0 {
        return 0;
    }
    let (mut period, mut total, mut retries) = (1, 1, 1);
    while total < secs && retries < 255 {
        period = (period * 2).min(120);
        total += period;
        retries += 1;
    }
    total
}

/// The MSS of a connection: the path's MTU (inside the stack, Linux's loopback figure,
/// which leaves room for the timestamp option; else the link's 1500) less the IP and TCP
/// headers.
fn mss_of(g: &mut Inner, h: smoltcp::iface::SocketHandle) -> i32 {
    let Some(remote) = g.tcp(h).remote_endpoint() else {
        return DEFAULT_MSS;
    };
    let ip_header = if remote.addr.version() == smoltcp::wire::IpVersion::Ipv6 {
        40
    } else {
        20
    };
    if g.is_own(remote.addr) {
        65_535 - ip_header - 20 - 12
    } else {
        1_500 - ip_header - 20
    }
}

/// smoltcp's retransmission timeout never falls below 1 s (its `RTTE_MIN_RTO`), which is
/// what a connection inside the stack (round trips of microseconds) runs with.
const RTO_FLOOR_US: u32 = 1_000_000;

/// TCP_INFO: `struct tcp_info` with what the stack knows (state, MSS, the options in
/// use, queued bytes, the retransmission timeout's floor, the congestion window); the
/// round-trip estimates smoltcp keeps to itself are 0. smoltcp runs without congestion
/// control, so the window is what the send buffer lets fly, in segments.
fn tcp_info(g: &mut Inner, id: u64) -> Vec<u8> {
    use smoltcp::socket::tcp::State as T;
    let mut info = vec![0u8; TCP_INFO_LEN];
    let (state, mss, unacked) = match g.entries[&id].st {
        St::Listening { ref ready, .. } => (10u8, DEFAULT_MSS, ready.len() as u32),
        St::Connecting { .. } | St::Resolving { .. } => (2, DEFAULT_MSS, 0),
        St::Connected(h) => {
            let mss = mss_of(g, h);
            let s = g.tcp(h);
            let state = match s.state() {
                T::Established => 1,
                T::SynSent => 2,
                T::SynReceived => 3,
                T::FinWait1 => 4,
                T::FinWait2 => 5,
                T::TimeWait => 6,
                T::Closed => 7,
                T::CloseWait => 8,
                T::LastAck => 9,
                T::Listen => 10,
                T::Closing => 11,
            };
            (state, mss, s.send_queue() as u32)
        }
        _ => (7, DEFAULT_MSS, 0),
    };
    info[0] = state; // tcpi_state
    let put = |info: &mut Vec<u8>, at: usize, v: u32| {
        info[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    };
    put(&mut info, 16, mss as u32); // tcpi_snd_mss
    put(&mut info, 20, mss as u32); // tcpi_rcv_mss
    put(&mut info, 24, unacked); // tcpi_unacked (listener: its accept queue)
    put(&mut info, 8, RTO_FLOOR_US); // tcpi_rto
    let cwnd = (super::stack::TCP_BUF / mss.max(1) as usize) as u32;
    put(&mut info, 80, cwnd); // tcpi_snd_cwnd
    info
}

/// `sizeof(struct tcp_info)` up to `tcpi_snd_wnd` (Linux 5.4's).
const TCP_INFO_LEN: usize = 232;

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

/// What a checkpoint keeps of an AF_INET or AF_INET6 socket on the sandbox's stack
/// (`kernel::checkpoint`): how it was bound, whether it listens, a UDP socket's peer, and
/// its options. A listening socket is bound and listening again after a restore
/// (connections waiting in its accept queue are not kept); a connected UDP socket is
/// bound and connected again (datagrams queued are not kept); a TCP connection is
/// restored reset (its peer's side of it is gone): a read reports ECONNRESET once, then
/// end of file, a write EPIPE.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InetImage {
    pub family: i32,
    pub udp: bool,
    /// The bound address (None: the wildcard) and port; None: unbound.
    pub bound: Option<(Option<String>, u16)>,
    pub port_locked: bool,
    /// A listening socket's backlog as listen(2) was given it.
    pub listening: Option<i32>,
    /// A TCP connection, established, closed or under way: restored reset.
    pub connection: bool,
    /// The address and port a UDP socket is connected to.
    pub peer: Option<(String, u16)>,
    pub nodelay: bool,
    pub opts: super::stack::SockOpts,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Options recorded only: (level, name, value).
    pub options: Vec<(i32, i32, Vec<u8>)>,
    pub bound_dev: i32,
}

impl InetSocket {
    /// The stack the socket lives in (its network namespace's).
    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }

    /// This socket for a checkpoint.
    ///
    /// # Errors
    /// What the image cannot hold yet (a UDP socket bound to a multicast or broadcast
    /// address, an ICMP or raw one).
    pub fn saved(&self) -> Result<InetImage, String> {
        let g = self.stack.lock();
        let e = &g.entries[&self.id];
        let (listening, connection) = match &e.st {
            St::Idle | St::Udp(_) => (None, false),
            St::Listening { backlog, .. } => (Some((*backlog as i32 - 1).max(0)), false),
            St::Connecting { .. } | St::Resolving { .. } | St::Connected(_) | St::Failed => {
                (None, true)
            }
            St::Icmp(_) | St::Raw(_) => return Err("an ICMP or raw socket".into()),
        };
        let udp = e.proto == Proto::Udp;
        if udp && bound_group(&g, e) {
            return Err("a UDP socket bound to a multicast or broadcast address".into());
        }
        Ok(InetImage {
            family: self.family,
            udp,
            // A connection comes back reset, holding no port.
            bound: if e.owns_port && !connection {
                e.bound.map(|(a, p)| (a.map(|a| a.to_string()), p))
            } else {
                None
            },
            port_locked: e.port_locked,
            listening,
            connection,
            peer: e.udp_peer.map(|(a, p)| (a.to_string(), p)),
            nodelay: e.nodelay,
            opts: e.opts.clone(),
            rcvbuf: e.rcvbuf,
            sndbuf: e.sndbuf,
            options: e
                .options
                .iter()
                .map(|(&(level, name), v)| (level, name, v.clone()))
                .collect(),
            bound_dev: e.bound_dev,
        })
    }

    /// A socket as [`InetSocket::saved`] described it, on `stack`: bound and listening
    /// again, a connection reset.
    ///
    /// # Errors
    /// The address cannot be bound in this sandbox (another socket has the port, the
    /// address is not the stack's), or the image is malformed.
    pub fn restored(stack: &Arc<Stack>, image: &InetImage) -> Result<InetSocket, String> {
        if image.family != libc::AF_INET && image.family != libc::AF_INET6 {
            return Err(format!("family {}", image.family));
        }
        let proto = if image.udp { Proto::Udp } else { Proto::Tcp };
        let sock = InetSocket::of_family(stack, image.family, proto);
        let peer = match &image.peer {
            Some((a, port)) => Some((
                a.parse::<IpAddress>()
                    .map_err(|_| format!("bad peer address {a:?}"))?,
                *port,
            )),
            None => None,
        };
        let bound = match &image.bound {
            Some((addr, port)) => {
                let ip = match addr {
                    Some(a) => Some(
                        a.parse::<IpAddress>()
                            .map_err(|_| format!("bad address {a:?}"))?,
                    ),
                    None => None,
                };
                Some((ip, *port))
            }
            None => None,
        };
        sock.with(|g, id| {
            {
                let e = g.entries.get_mut(&id).expect("present");
                e.nodelay = image.nodelay;
                e.opts = image.opts.clone();
                e.rcvbuf = image.rcvbuf;
                e.sndbuf = image.sndbuf;
                e.bound_dev = image.bound_dev;
                e.options = image
                    .options
                    .iter()
                    .map(|(level, name, v)| ((*level, *name), v.clone()))
                    .collect();
            }
            if let Some((ip, port)) = bound {
                if ip.is_some_and(|ip| !g.is_own(ip)) {
                    return Err(format!(
                        "{} is not an address of this sandbox",
                        ip.map_or(String::new(), |ip| ip.to_string())
                    ));
                }
                Self::bind_locked(g, id, ip, port)
                    .map_err(|e| format!("binding port {port} ({e:?})"))?;
                g.entries.get_mut(&id).expect("present").port_locked = image.port_locked;
            }
            if let Some(backlog) = image.listening {
                if g.listen_conflict(id) {
                    return Err("another socket listens on its port".into());
                }
                g.listen(id, backlog);
            }
            if peer.is_some() {
                if !image.udp || bound.is_none() {
                    return Err("a peer without a bound UDP socket".into());
                }
                g.entries.get_mut(&id).expect("present").udp_peer = peer;
            }
            if image.connection {
                let e = g.entries.get_mut(&id).expect("present");
                e.st = St::Failed;
                e.reset = true;
                e.error = Some(Errno::ECONNRESET);
            }
            Ok(())
        })?;
        if image.listening.is_some() {
            super::forward::listening(&sock.stack, sock.id);
        }
        Ok(sock)
    }
}

/// Whether UDP entry `e` is bound to a multicast or broadcast address.
fn bound_group(g: &Inner, e: &Entry) -> bool {
    matches!(
        e.bound,
        Some((Some(ip), _)) if matches!(
            super::udp::kind(g, ip),
            Some(super::udp::Kind::Multicast | super::udp::Kind::Broadcast)
        )
    )
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
            // A datagram socket may also bind a multicast group or a broadcast address
            // (to hear only those).
            let group = self.proto == Proto::Udp
                && matches!(
                    super::udp::kind(g, ip),
                    Some(super::udp::Kind::Multicast | super::udp::Kind::Broadcast)
                );
            let ip = if ip.is_unspecified() {
                None
            } else if g.is_own(ip) || group {
                Some(ip)
            } else {
                return Err(Errno::EADDRNOTAVAIL);
            };
            // bind(2) to port 0 with every ephemeral port taken is EADDRINUSE on Linux
            // (an implicit bind, as connect's, answers EADDRNOTAVAIL).
            Self::bind_locked(g, id, ip, port).map_err(|e| match e {
                Errno::EADDRNOTAVAIL if port == 0 => Errno::EADDRINUSE,
                e => e,
            })?;
            g.entries.get_mut(&id).expect("present").port_locked = port != 0;
            Ok(())
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
            if g.listen_conflict(id) {
                return Err(Errno::EADDRINUSE);
            }
            g.listen(id, backlog);
            Ok(())
        })?;
        super::forward::listening(&self.stack, self.id);
        Ok(())
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
        let (h, nodelay, (opts, filter), bufs) = t
            .block_on(&[&self.queue], deadline, || {
                self.with(|g, id| {
                    let e = g.entries.get_mut(&id).expect("present");
                    let nodelay = e.nodelay;
                    let opts = (e.opts.clone(), e.filter.clone());
                    let bufs = (e.sndbuf, e.rcvbuf);
                    let St::Listening { ready, .. } = &mut e.st else {
                        return Some(Err(Errno::EINVAL));
                    };
                    match ready.pop_front() {
                        Some(h) => Some(Ok((h, nodelay, opts, bufs))),
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
            // The connection inherits the listener's options, as in Linux.
            opts.apply(g.tcp(h), nodelay);
            let e = g.entries.get_mut(&sock.id).expect("present");
            e.st = St::Connected(h);
            e.nodelay = nodelay;
            e.opts = opts;
            e.filter = filter;
            (e.sndbuf, e.rcvbuf) = bufs;
            e.bound = local.map(|l| (Some(l.addr), l.port));
            if let Some(l) = local {
                // The connection holds the listener's port until it is closed, as in Linux.
                e.owns_port = true;
                g.hold_port(Proto::Tcp, l.port, sock.id);
            }
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
                // An AF_INET6 socket takes an AF_INET address too (as v4-mapped), unless
                // IPV6_V6ONLY (glibc's getaddrinfo relies on it).
                let given = addr
                    .get(..2)
                    .map(|f| i32::from(u16::from_ne_bytes([f[0], f[1]])));
                let parsed = if self.family == libc::AF_INET6 && given == Some(libc::AF_INET) {
                    if v6only(&g.entries[&id]) {
                        return Err(Errno::EAFNOSUPPORT);
                    }
                    parse(libc::AF_INET, addr)?
                } else {
                    self.parse(g, addr)?
                };
                let peer = match parsed {
                    None => None,
                    Some((ip, port)) => {
                        use super::udp::Kind;
                        self.check_bound_family(g, id, ip)?;
                        match super::udp::kind(g, ip) {
                            Some(kind @ (Kind::Multicast | Kind::Broadcast)) => {
                                let e = &g.entries[&id];
                                let broadcast_ok =
                                    opt_int(e, libc::SOL_SOCKET, libc::SO_BROADCAST) == Some(1);
                                if kind == Kind::Broadcast && !broadcast_ok {
                                    return Err(Errno::EACCES);
                                }
                                super::udp::out_interface(g, e, ip, kind)
                                    .ok_or(Errno::ENETUNREACH)?;
                                Some((ip, port))
                            }
                            _ => {
                                let (ep, _) = destination(g, ip, port)?;
                                Some((ep.addr, port))
                            }
                        }
                    }
                };
                let Some((ip, port)) = peer else {
                    g.udp_disconnect(id);
                    return Ok(());
                };
                if g.entries[&id].bound.is_none() {
                    Self::bind_locked(g, id, None, 0)?;
                }
                if super::udp::kind(g, ip).is_none_or(|k| k == super::udp::Kind::Unicast) {
                    let source = g.source_for(ip);
                    g.bind_source(id, source);
                }
                // Connected to port 0, the socket has a peer address (its source follows
                // it) but no peer (getpeername: ENOTCONN).
                g.entries.get_mut(&id).expect("present").udp_peer = Some((ip, port));
                Ok(())
            });
        }
        let done = self.with(|g, id| {
            let Some((ip, port)) = self.parse(g, addr)? else {
                return Err(Errno::EAFNOSUPPORT);
            };
            self.check_bound_family(g, id, ip)?;
            let (remote, hop) = destination(g, ip, port)?;
            let e = g.entries.get_mut(&id).expect("present");
            if e.connecting {
                // Linux reports the end of a connect started earlier: success once
                // established (whatever happened since, short of a reset), else the
                // pending error or ECONNABORTED; the socket is then unconnected.
                let closed = match e.st {
                    St::Connecting { .. } | St::Resolving { .. } if nonblocking => {
                        return Err(Errno::EALREADY)
                    }
                    St::Connecting { .. } | St::Resolving { .. } => return Ok(false),
                    St::Connected(h) => g.tcp(h).state() == tcp::State::Closed,
                    _ => true,
                };
                let e = g.entries.get_mut(&id).expect("present");
                e.connecting = false;
                return if closed {
                    Err(e.error.take().unwrap_or(Errno::ECONNABORTED))
                } else {
                    Ok(true)
                };
            }
            match g.entries[&id].st {
                St::Idle | St::Failed => {}
                St::Connecting { .. } | St::Resolving { .. } => return Err(Errno::EALREADY),
                St::Connected(_) => return Err(Errno::EISCONN),
                St::Listening { .. } | St::Udp(_) | St::Icmp(_) | St::Raw(_) => {
                    return Err(Errno::EISCONN)
                }
            }
            if g.entries[&id].bound.is_none() {
                g.connect_port(id, remote)?;
            }
            if port == 0 {
                // Nothing listens on port 0: Linux's SYN to it is answered by a reset, once
                // the next hop answered ARP (neighbour discovery); EHOSTUNREACH when it
                // never does.
                g.entries.get_mut(&id).expect("present").connecting = true;
                let local = g.entries[&id].bound.expect("bound");
                let local = IpEndpoint::new(local.0.unwrap_or_else(|| g.source_for(ip)), local.1);
                match hop {
                    Hop::Link(a) if !g.heard_from(a) && local.addr.version() == ip.version() => {
                        let hops = hop_limit(&g.entries[&id]).unwrap_or(DEFAULT_TTL as u8);
                        g.connect_resolving(id, local, ip, a, hops);
                    }
                    _ => {
                        let e = g.entries.get_mut(&id).expect("present");
                        e.st = St::Failed;
                        e.error = Some(Errno::ECONNREFUSED);
                    }
                }
                return Ok(false);
            }
            let e = &g.entries[&id];
            let (local, lport) = e.bound.expect("bound");
            let local = local.unwrap_or_else(|| g.source_for(remote.addr));
            g.clear_tuple(IpEndpoint::new(local, lport), remote, hop == Hop::Inside)?;
            g.bind_source(id, local);
            let e = &g.entries[&id];
            let nagle_off = e.nodelay;
            let connect_timeout = e.opts.connect_timeout();
            let h = g.new_tcp(nagle_off);
            let hops = hop_limit(&g.entries[&id]);
            g.tcp(h).set_hop_limit(hops);
            let r = {
                let cx = g.iface.context();
                let s = g.set.get_mut::<tcp::Socket>(h);
                s.set_timeout(Some(connect_timeout));
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
            e.connecting = true;
            Ok(false)
        })?;
        if done {
            return Ok(());
        }
        if nonblocking {
            return Err(Errno::EINPROGRESS);
        }
        t.block_on(&[&self.queue], None, || {
            self.with(|g, id| {
                let e = g.entries.get_mut(&id).expect("present");
                let r = match e.st {
                    St::Connected(_) => Ok(()),
                    St::Failed => Err(e.error.take().unwrap_or(Errno::ECONNREFUSED)),
                    _ => return None,
                };
                e.connecting = false;
                Some(r)
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
            Proto::Udp | Proto::Icmp => self.send_udp(t, src, &msg, flags),
        }
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        let mut g = self.stack.lock();
        let e = &g.entries[&self.id];
        Ok(match e.st {
            St::Udp(_) if !e.dgrams.is_empty() => e.dgrams[0].data.len(),
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
        let mut m = self.recv_data(t, dst, flags)?;
        if self.proto == Proto::Tcp {
            let mut g = self.stack.lock();
            let e = &g.entries[&self.id];
            // As Linux, the time the latest data read arrived, when data was read.
            if let Some(at) = e.rx_at.filter(|_| m.len > 0) {
                m.control.extend(super::udp::timestamp(e, at));
            }
            if let Some(inq) = inq_hint(&mut g, self.id) {
                m.control.push((SOL_TCP, TCP_INQ, int(inq)));
            }
        }
        Ok(m)
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
                .filter(|&(_, port)| port != 0)
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
        if rd {
            super::forward::closed(&self.stack, self.id);
        }
        self.with(|g, id| {
            let e = g.entries.get_mut(&id).expect("present");
            let h = match e.st {
                St::Connected(h) => Some(h),
                St::Udp(_) if e.udp_peer.is_some() => None,
                // Linux shuts an unconnected datagram socket down all the same (its
                // blocked readers wake and read end of file), then reports ENOTCONN.
                St::Udp(_) | St::Idle if self.proto == Proto::Udp => {
                    e.rd_shut |= rd;
                    e.wr_shut |= wr;
                    e.queue.clone().notify_all();
                    return Err(Errno::ENOTCONN);
                }
                // Linux stops a listener shut down for reading (its pending connections
                // are reset, accept fails with EINVAL) and keeps its port; SHUT_WR alone
                // does nothing to it.
                St::Listening { .. } => {
                    if rd {
                        g.stop_listening(id);
                    }
                    return Ok(());
                }
                // A handshake under way is abandoned: the socket reports ECONNRESET.
                St::Connecting { .. } | St::Resolving { .. } => {
                    g.abort_connecting(id, Errno::ECONNRESET);
                    return Ok(());
                }
                _ => return Err(Errno::ENOTCONN),
            };
            e.rd_shut |= rd;
            e.wr_shut |= wr;
            // A connection in TIME_WAIT or closed is no longer connected in Linux (the
            // socket is closed; a TIME_WAIT remnant takes its place): ENOTCONN, the
            // shutdown bits still set.
            let gone = h.is_some_and(|h| {
                matches!(g.tcp(h).state(), tcp::State::TimeWait | tcp::State::Closed)
            });
            if let (Some(h), true, false) = (h, wr, gone) {
                push_corked(g, id, true);
                g.tcp(h).close();
            }
            let q = g.entries[&id].queue.clone();
            q.notify_all();
            if gone {
                return Err(Errno::ENOTCONN);
            }
            Ok(())
        })
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        let mut g = self.stack.lock();
        if level == SOL_TCP && self.proto == Proto::Tcp {
            let connected = match g.entries[&self.id].st {
                St::Connected(h) => Some(h),
                _ => None,
            };
            match (name, connected) {
                (libc::TCP_INFO, _) => return Ok(tcp_info(&mut g, self.id)),
                // Linux shows the default MSS until connected, then the connection's.
                (libc::TCP_MAXSEG, Some(h)) => return Ok(int(mss_of(&mut g, h))),
                (libc::TCP_MAXSEG, _) => return Ok(int(DEFAULT_MSS)),
                _ => {}
            }
        }
        let e = g.entries.get_mut(&self.id).expect("present");
        let proto = match self.proto {
            Proto::Tcp => libc::IPPROTO_TCP,
            Proto::Udp => libc::IPPROTO_UDP,
            Proto::Icmp => libc::IPPROTO_ICMP,
        };
        // TCP sockets answer the multicast options' defaults too, as Linux's inet sockets.
        if level == libc::IPPROTO_IP && matches!(self.proto, Proto::Udp | Proto::Tcp) {
            if let Some(r) = super::multicast::get(e, name) {
                return r;
            }
        }
        if let Some(r) = get_device_option(&g, self.id, level, name) {
            return r;
        }
        if self.proto == Proto::Udp || TCP_SHARED.contains(&(level, name)) {
            if let Some(r) = get_udp_option(&g, self.id, level, name) {
                return r;
            }
        }
        let e = g.entries.get_mut(&self.id).expect("present");
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
            (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => int(e.opts.rcvlowat as i32),
            // Fixed at 1 in Linux.
            (libc::SOL_SOCKET, libc::SO_SNDLOWAT) => int(1),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                int(i32::from(matches!(e.st, St::Listening { .. })))
            }
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => int(i32::from(e.opts.reuse_addr)),
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => int(i32::from(e.opts.reuse_port)),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => int(i32::from(e.opts.keepalive)),
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let on = i32::from(e.opts.linger.is_some());
                let secs = e.opts.linger_time as i32;
                [int(on), int(secs)].concat()
            }
            (libc::SOL_SOCKET, name) if RECORDED_SOCKET_OPTIONS.contains(&name) => {
                int(opt_int(e, level, name).unwrap_or(0))
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or(vec![0; 16]),
            (libc::SOL_SOCKET, _) => return Err(Errno::ENOPROTOOPT),
            (SOL_TCP, _) if self.proto != Proto::Tcp => return Err(Errno::EOPNOTSUPP),
            (SOL_TCP, libc::TCP_NODELAY) => int(i32::from(e.nodelay)),
            (SOL_TCP, libc::TCP_CORK) => int(i32::from(e.opts.cork)),
            (SOL_TCP, libc::TCP_QUICKACK) => int(i32::from(e.opts.quickack)),
            (SOL_TCP, TCP_INQ) => int(opt_int(e, level, name).unwrap_or(0)),
            (SOL_TCP, libc::TCP_KEEPIDLE) => int(e.opts.keep_idle as i32),
            (SOL_TCP, libc::TCP_KEEPINTVL) => int(e.opts.keep_intvl as i32),
            (SOL_TCP, libc::TCP_KEEPCNT) => int(e.opts.keep_cnt as i32),
            (SOL_TCP, libc::TCP_SYNCNT) => int(e.opts.syn_count as i32),
            (SOL_TCP, libc::TCP_USER_TIMEOUT) => int(e.opts.user_timeout_ms as i32),
            (SOL_TCP, libc::TCP_DEFER_ACCEPT) => int(e.opts.defer_accept),
            (SOL_TCP, libc::TCP_WINDOW_CLAMP) => int(e.opts.window_clamp),
            (SOL_TCP, libc::TCP_LINGER2) => int(e.opts.linger2),
            // The name in a TCP_CA_NAME_MAX buffer, NUL-padded as Linux copies it out.
            (SOL_TCP, libc::TCP_CONGESTION) => {
                let mut name = e
                    .options
                    .get(&(level, name))
                    .cloned()
                    .unwrap_or_else(|| DEFAULT_CONGESTION.to_vec());
                name.resize(TCP_CA_NAME_MAX, 0);
                name
            }
            (SOL_TCP, _) => return Err(Errno::ENOPROTOOPT),
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
            // Where a redirected connection was going: ENOTCONN before a connection (as
            // gVisor), ENOPROTOOPT for other protocols (as Linux).
            (libc::IPPROTO_IP | libc::IPPROTO_IPV6, super::netfilter::SO_ORIGINAL_DST) => {
                let St::Connected(h) = e.st else {
                    return Err(if self.proto == Proto::Tcp {
                        Errno::ENOTCONN
                    } else {
                        Errno::ENOPROTOOPT
                    });
                };
                return original_dst(&mut g, h);
            }
            (libc::IPPROTO_IP, _) => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or_else(|| int(0)),
            (libc::IPPROTO_IPV6, _) if self.family == libc::AF_INET6 => e
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
        if let Some(r) = self.with(|g, id| set_device_option(g, id, level, name, value)) {
            return r;
        }
        if self.proto == Proto::Udp || TCP_SHARED.contains(&(level, name)) {
            if let Some(r) = self.with(|g, id| set_udp_option(g, id, level, name, value)) {
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
                    let nagle = !e.nodelay;
                    if let St::Connected(h) | St::Connecting { h, .. } = e.st {
                        g.tcp(h).set_nagle_enabled(nagle);
                    }
                }
                (libc::SOL_SOCKET, _) | (SOL_TCP, _) => {
                    set_option(g, id, level, name, value)?;
                }
                // IP, IPv6 and UDP options not handled above are recorded (those are the
                // UDP and raw-socket code's to sort out).
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
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

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

    /// SIOCGSTAMP and SIOCGSTAMPNS: when the last datagram read arrived (ENOENT before
    /// the first).
    fn ioctl(
        &self,
        t: &mut dyn Context,
        _file: &crate::vfs::OpenFile,
        cmd: u32,
        arg: u64,
    ) -> crate::abi::SysResult {
        let cmd = u64::from(cmd);
        if cmd != SIOCGSTAMP && cmd != SIOCGSTAMPNS {
            return Err(Errno::ENOTTY);
        }
        let stamp = {
            let mut g = self.stack.lock();
            super::udp::stamp(g.entries.get_mut(&self.id).expect("present"))
        };
        let since = stamp
            .ok_or(Errno::ENOENT)?
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let frac = if cmd == SIOCGSTAMP {
            i64::from(since.subsec_micros())
        } else {
            i64::from(since.subsec_nanos())
        };
        let mut v = (since.as_secs() as i64).to_ne_bytes().to_vec();
        v.extend_from_slice(&frac.to_ne_bytes());
        t.mm().write_bytes(crate::mm::usermem::UserAddr(arg), &v)?;
        Ok(0)
    }
}

/// `SIOCGSTAMP` and `SIOCGSTAMPNS` (x86-64's `_OLD` numbers, with a 64-bit time).
const SIOCGSTAMP: u64 = 0x8906;
const SIOCGSTAMPNS: u64 = 0x8907;

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
        // All of 127.0.0.0/8 is the loopback's, reached from 127.0.0.1.
        let other = IpAddress::v4(127, 0, 0, 2);
        assert_eq!(destination(&g, other, 1).map(|d| d.1), Ok(Hop::Inside));
        assert_eq!(g.source_for(other), IpAddress::v4(127, 0, 0, 1));
    }

    fn get_int(s: &InetSocket, level: i32, name: i32) -> Result<i32, Errno> {
        s.getsockopt(level, name).map(|v| int_of(&v).unwrap())
    }

    #[test]
    fn unknown_options_are_refused() {
        let s = InetSocket::new(&Stack::start(), Proto::Tcp);
        // SO_PEEK_OFF, TCP_FASTOPEN, TCP_REPAIR, unassigned names.
        for (level, name) in [
            (libc::SOL_SOCKET, 42), // SO_PEEK_OFF
            (libc::SOL_SOCKET, 999),
            (SOL_TCP, libc::TCP_FASTOPEN),
            (SOL_TCP, libc::TCP_REPAIR),
            (SOL_TCP, 999),
        ] {
            assert_eq!(
                s.setsockopt(level, name, &int(1)),
                Err(Errno::ENOPROTOOPT),
                "set {level} {name}"
            );
            assert_eq!(get_int(&s, level, name), Err(Errno::ENOPROTOOPT));
        }
    }

    #[test]
    fn options_read_back_as_linux() {
        let s = InetSocket::new(&Stack::start(), Proto::Tcp);
        // Linux's defaults (checked natively).
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_MAXSEG), Ok(536));
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_KEEPIDLE), Ok(7200));
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_KEEPINTVL), Ok(75));
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_KEEPCNT), Ok(9));
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_SYNCNT), Ok(6));
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_LINGER2), Ok(60));
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_QUICKACK), Ok(1));
        assert_eq!(get_int(&s, libc::SOL_SOCKET, libc::SO_RCVLOWAT), Ok(1));
        // Booleans read back as 0 or 1.
        s.setsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, &int(7))
            .unwrap();
        assert_eq!(get_int(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR), Ok(1));
        s.setsockopt(libc::SOL_SOCKET, libc::SO_KEEPALIVE, &int(1))
            .unwrap();
        assert_eq!(get_int(&s, libc::SOL_SOCKET, libc::SO_KEEPALIVE), Ok(1));
        // Ranges.
        assert_eq!(
            s.setsockopt(SOL_TCP, libc::TCP_MAXSEG, &int(10)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.setsockopt(SOL_TCP, libc::TCP_SYNCNT, &int(0)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.setsockopt(SOL_TCP, libc::TCP_USER_TIMEOUT, &int(-1)),
            Err(Errno::EINVAL)
        );
        s.setsockopt(SOL_TCP, libc::TCP_DEFER_ACCEPT, &int(5))
            .unwrap();
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_DEFER_ACCEPT), Ok(7));
        s.setsockopt(SOL_TCP, libc::TCP_WINDOW_CLAMP, &int(1))
            .unwrap();
        assert_eq!(get_int(&s, SOL_TCP, libc::TCP_WINDOW_CLAMP), Ok(1152));
        let linger = [int(1), int(3)].concat();
        s.setsockopt(libc::SOL_SOCKET, libc::SO_LINGER, &linger)
            .unwrap();
        assert_eq!(
            s.getsockopt(libc::SOL_SOCKET, libc::SO_LINGER).unwrap(),
            linger
        );
        assert_eq!(s.getsockopt(SOL_TCP, libc::TCP_INFO).unwrap()[0], 7);
    }

    #[test]
    fn port_sharing_follows_linux() {
        let any = |f| (f, false, None);
        let lo = Some(IpAddress::v4(127, 0, 0, 1));
        use super::super::stack::overlap;
        assert!(overlap(any(libc::AF_INET), any(libc::AF_INET6)));
        assert!(!overlap(any(libc::AF_INET), (libc::AF_INET6, true, None)));
        assert!(overlap(
            (libc::AF_INET6, false, None),
            (libc::AF_INET, false, lo)
        ));
        assert!(!overlap(
            (libc::AF_INET6, true, None),
            (libc::AF_INET, false, lo)
        ));
        assert!(!overlap(
            (libc::AF_INET, false, lo),
            (
                libc::AF_INET6,
                false,
                Some(IpAddress::Ipv6(Ipv6Address::LOCALHOST))
            )
        ));
    }
}
