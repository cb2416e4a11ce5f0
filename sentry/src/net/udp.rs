//! UDP delivery inside the sandbox: a demultiplexer above smoltcp.
//!
//! smoltcp hands an arriving datagram to the first of its sockets that matches. Linux
//! delivers a unicast datagram to the best-matching socket (a bound address over the
//! wildcard, a connected socket over an unconnected one, a bound device over none; among
//! SO_REUSEPORT sockets of the same rank one chosen by a hash of the source, otherwise the
//! most recently bound), and a multicast or broadcast datagram to every socket that matches
//! (for multicast, only when a socket joined the group on the receiving interface; each
//! socket then by its own memberships or IP_MULTICAST_ALL). So a datagram that stays inside
//! the sandbox (to one of its own addresses, a multicast group or a broadcast address) never
//! enters smoltcp: `sendmsg` builds a [`Datagram`] with what its IP header would carry (TTL,
//! TOS, addresses, interface) and [`deliver`] queues it on the receivers' entries
//! ([`Entry::dgrams`]), from which `recvmsg` reads it with its control messages
//! ([`control`]). Datagrams from the link still come through each socket's smoltcp socket:
//! one receiver each, and without the TTL and TOS, which smoltcp does not report.
//!
//! ICMP errors about a socket's datagrams reach it as on Linux ([`report`]): SO_ERROR for
//! a connected socket's hard errors, and with IP_RECVERR (IPV6_RECVERR) the error queue
//! that MSG_ERRQUEUE reads ([`Entry::errors`]). A unicast datagram the sentry delivers to
//! nobody is refused there and then ([`refused`]); errors from the link, and those smoltcp
//! answers looped datagrams with, come from the stack's own raw ICMP sockets
//! ([`icmp_arrived`]).

use std::time::SystemTime;

use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address};

use super::config::LOOPBACK_INDEX;
use super::inet::{int, sockaddr, v6only};
use super::stack::{Entry, Inner, Proto, St};
use crate::abi::bpf::{run_socket_filter, SockFilter};
use crate::abi::Errno;

/// The UDP header's length.
const UDP_HEADER: usize = 8;

/// A datagram queued for a socket by the sentry.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub data: Vec<u8>,
    pub src: (IpAddress, u16),
    /// The destination as addressed (the group or broadcast address for those).
    pub dst: (IpAddress, u16),
    /// The local address a reply would come from (IP_PKTINFO's `ipi_spec_dst`).
    pub spec_dst: IpAddress,
    pub ttl: u8,
    pub tos: u8,
    /// The receiving interface.
    pub ifindex: i32,
    pub at: SystemTime,
}

/// An error queued on a socket that set IP_RECVERR (IPV6_RECVERR for IPv6), read with
/// MSG_ERRQUEUE: Linux's `sk_error_queue` entry with its `sock_extended_err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedError {
    pub errno: Errno,
    /// `SO_EE_ORIGIN_ICMP`, `SO_EE_ORIGIN_ICMP6` or `SO_EE_ORIGIN_LOCAL`.
    pub origin: u8,
    pub icmp_type: u8,
    pub code: u8,
    /// `ee_info`: the path MTU of an EMSGSIZE.
    pub info: u32,
    /// The host that sent the ICMP message (none for a local error).
    pub offender: Option<IpAddress>,
    /// The failed datagram's destination.
    pub dst: (IpAddress, u16),
    /// As much of its payload as the ICMP message carried.
    pub payload: Vec<u8>,
}

const SO_EE_ORIGIN_LOCAL: u8 = 1;
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_PORT_UNREACH: u8 = 3;
const ICMP6_DST_UNREACH: u8 = 1;
const ICMP6_DST_UNREACH_NOPORT: u8 = 4;
/// `IP_RECVERR`, `IPV6_RECVERR`.
const IP_RECVERR: i32 = 11;
const IPV6_RECVERR: i32 = 25;
/// The payload bytes an ICMP error quotes of a UDP datagram: Linux's ICMP messages are at
/// most 576 bytes (IPv4) or the IPv6 minimum MTU, 1280 bytes, and quote the datagram from
/// its IP header on.
const ICMP_QUOTED: usize = 576 - 20 - 8 - 20 - UDP_HEADER;
const ICMP6_QUOTED: usize = 1280 - 40 - 8 - 40 - UDP_HEADER;

/// The datagram `d` that entry `id` sent inside the sandbox found no socket: Linux's ICMP
/// port unreachable comes back from the destination ([`report`]).
pub fn refused(g: &mut Inner, id: u64, d: &Datagram) {
    let v4 = matches!(d.dst.0, IpAddress::Ipv4(_));
    let (origin, icmp_type, code, quoted) = if v4 {
        (
            SO_EE_ORIGIN_ICMP,
            ICMP_DEST_UNREACH,
            ICMP_PORT_UNREACH,
            ICMP_QUOTED,
        )
    } else {
        (
            SO_EE_ORIGIN_ICMP6,
            ICMP6_DST_UNREACH,
            ICMP6_DST_UNREACH_NOPORT,
            ICMP6_QUOTED,
        )
    };
    let q = QueuedError {
        errno: Errno::ECONNREFUSED,
        origin,
        icmp_type,
        code,
        info: 0,
        offender: Some(d.dst.0),
        dst: d.dst,
        payload: d.data[..d.data.len().min(quoted)].to_vec(),
    };
    report(g.entries.get_mut(&id).expect("present"), q, true);
}

/// ICMP error `q` arrived for a datagram entry `e` sent; `hard`: Linux reports it to a
/// connected socket (`icmp_err_convert`'s fatal ones). A socket that asked for errors of
/// that IP version (IP_RECVERR, IPV6_RECVERR) queues it for MSG_ERRQUEUE, while its
/// receive buffer has room, and has it as SO_ERROR; one without gets only a connected
/// socket's SO_ERROR for a hard error (the errno from its next call), as `__udp4_lib_err`.
fn report(e: &mut Entry, q: QueuedError, hard: bool) {
    let wanted = if q.origin == SO_EE_ORIGIN_ICMP6 {
        on(e, libc::IPPROTO_IPV6, IPV6_RECVERR)
    } else {
        on(e, libc::IPPROTO_IP, IP_RECVERR)
    };
    if !wanted {
        if hard && e.udp_peer.is_some() {
            e.error = Some(q.errno);
        }
        return;
    }
    let errno = q.errno;
    let queued: usize = e.errors.iter().map(|q| q.payload.len()).sum();
    if e.dgram_bytes + queued + q.payload.len() < e.rcvbuf {
        e.errors.push_back(q);
    }
    e.error = Some(errno);
}

/// The errno of ICMP (`v4`) or ICMPv6 error `ty`/`code` and whether it is hard, as Linux's
/// `__udp4_lib_err` and `icmpv6_err_convert` see it; `None` for a message that is no error
/// of a datagram's.
fn icmp_errno(v4: bool, ty: u8, code: u8) -> Option<(Errno, bool)> {
    use Errno::*;
    Some(match (v4, ty, code) {
        (true, 3, 0 | 11) => (ENETUNREACH, false),
        (true, 3, 1 | 12) => (EHOSTUNREACH, false),
        (true, 3, 2) => (ENOPROTOOPT, true),
        (true, 3, 3) => (ECONNREFUSED, true),
        // Fragmentation needed (path MTU discovery is on by default).
        (true, 3, 4) => (EMSGSIZE, true),
        (true, 3, 5) => (EOPNOTSUPP, false),
        (true, 3, 6 | 9) => (ENETUNREACH, true),
        (true, 3, 7) => (EHOSTDOWN, true),
        (true, 3, 8) => (ENONET, true),
        (true, 3, 10 | 13..=15) => (EHOSTUNREACH, true),
        (true, 11, _) => (EHOSTUNREACH, false),
        (true, 12, _) => (EPROTO, true),
        (false, 1, 0) => (ENETUNREACH, false),
        (false, 1, 2 | 3) => (EHOSTUNREACH, false),
        (false, 1, 4) => (ECONNREFUSED, true),
        (false, 1, 1 | 5 | 6) => (EACCES, true),
        (false, 2, _) => (EMSGSIZE, true),
        (false, 3, _) => (EHOSTUNREACH, false),
        (false, 4, _) => (EPROTO, true),
        _ => return None,
    })
}

/// An ICMP or ICMPv6 message `packet` (with its IP header) arrived: when it is an error
/// about a UDP datagram one of the stack's sockets sent (its quoted IP and UDP headers
/// name the socket, found as a reply to that datagram would find it), the socket hears of
/// it ([`report`]).
pub fn icmp_arrived(g: &mut Inner, packet: &[u8]) {
    let Some((offender, icmp)) = ip_payload(packet) else {
        return;
    };
    let v4 = matches!(offender, IpAddress::Ipv4(_));
    let (Some(&ty), Some(&code)) = (icmp.first(), icmp.get(1)) else {
        return;
    };
    let Some((errno, hard)) = icmp_errno(v4, ty, code) else {
        return;
    };
    // The quoted datagram: its IP header (UDP, from us) and at least the UDP header.
    let Some(quoted) = icmp.get(8..) else {
        return;
    };
    let (src, dst, udp) = match (v4, quoted.first().map(|b| b >> 4)) {
        (true, Some(4)) if quoted.get(9) == Some(&17) => {
            let ihl = usize::from(quoted[0] & 0xf) * 4;
            let (Some(s), Some(d)) = (quoted.get(12..16), quoted.get(16..20)) else {
                return;
            };
            let a = |b: &[u8]| IpAddress::v4(b[0], b[1], b[2], b[3]);
            (a(s), a(d), quoted.get(ihl..))
        }
        (false, Some(6)) if quoted.get(6) == Some(&17) => {
            let (Some(s), Some(d)) = (quoted.get(8..24), quoted.get(24..40)) else {
                return;
            };
            let a = |b: &[u8]| {
                IpAddress::Ipv6(smoltcp::wire::Ipv6Address::from(
                    <[u8; 16]>::try_from(b).expect("16 bytes"),
                ))
            };
            (a(s), a(d), quoted.get(40..))
        }
        _ => return,
    };
    let Some(udp) = udp.filter(|u| u.len() >= UDP_HEADER) else {
        return;
    };
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    // The socket a reply from the destination would reach.
    let reply = Datagram {
        data: Vec::new(),
        src: (dst, dport),
        dst: (src, sport),
        spec_dst: src,
        ttl: 0,
        tos: 0,
        ifindex: if g.on_loopback(src) {
            LOOPBACK_INDEX
        } else {
            g.link_index.unwrap_or(LOOPBACK_INDEX)
        },
        at: SystemTime::now(),
    };
    let Some(id) = unicast_receiver(g, &reply) else {
        return;
    };
    // ee_info: the MTU of a "fragmentation needed" (16 bits) or "packet too big".
    let info = match (v4, ty) {
        (true, 3) if code == 4 => u32::from(u16::from_be_bytes([icmp[6], icmp[7]])),
        (false, 2) => u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
        _ => 0,
    };
    let q = QueuedError {
        errno,
        origin: if v4 {
            SO_EE_ORIGIN_ICMP
        } else {
            SO_EE_ORIGIN_ICMP6
        },
        icmp_type: ty,
        code,
        info,
        offender: Some(offender),
        dst: (dst, dport),
        payload: udp[UDP_HEADER..].to_vec(),
    };
    report(g.entries.get_mut(&id).expect("present"), q, hard);
}

/// The source and payload of IPv4 or IPv6 packet `packet`.
fn ip_payload(packet: &[u8]) -> Option<(IpAddress, &[u8])> {
    match packet.first()? >> 4 {
        4 => {
            let p = smoltcp::wire::Ipv4Packet::new_checked(packet).ok()?;
            let end = usize::from(p.total_len()).min(packet.len());
            let body = packet.get(usize::from(p.header_len())..end)?;
            Some((IpAddress::Ipv4(p.src_addr()), body))
        }
        6 => {
            let p = smoltcp::wire::Ipv6Packet::new_checked(packet).ok()?;
            let end = (40 + usize::from(p.payload_len())).min(packet.len());
            Some((IpAddress::Ipv6(p.src_addr()), packet.get(40..end)?))
        }
        _ => None,
    }
}

/// Entry `e`, an AF_INET6 socket, refused to send an IPv6 datagram to `dst` longer than
/// an IPv6 packet can carry (EMSGSIZE): with IPV6_RECVERR it queues a local error that
/// gives the path's MTU, `mtu`, and leaves SO_ERROR alone, as Linux's
/// `ipv6_local_error`. IPv4 queues none.
pub fn too_big(e: &mut Entry, dst: (IpAddress, u16), mtu: u32) {
    if !matches!(dst.0, IpAddress::Ipv6(_)) || !on(e, libc::IPPROTO_IPV6, IPV6_RECVERR) {
        return;
    }
    queue_emsgsize(e, dst, mtu);
}

/// Entry `e` refused to send a datagram to `dst` that does not fit the path's MTU, `mtu`,
/// and that its path MTU discovery setting keeps from being fragmented (EMSGSIZE): with
/// IP_RECVERR (IPV6_RECVERR) it queues a local error giving the MTU, as Linux's
/// `ip_local_error` (`ipv6_local_error`) in its append path.
pub fn does_not_fit(e: &mut Entry, dst: (IpAddress, u16), mtu: u32) {
    let (level, name) = match dst.0 {
        IpAddress::Ipv4(_) => (libc::IPPROTO_IP, IP_RECVERR),
        IpAddress::Ipv6(_) => (libc::IPPROTO_IPV6, IPV6_RECVERR),
    };
    if !on(e, level, name) {
        return;
    }
    queue_emsgsize(e, dst, mtu);
}

/// Queues on `e` the local EMSGSIZE error of a datagram to `dst` refused for the path's
/// MTU, `mtu`, which the error carries in `ee_info`.
fn queue_emsgsize(e: &mut Entry, dst: (IpAddress, u16), mtu: u32) {
    e.errors.push_back(QueuedError {
        errno: Errno::EMSGSIZE,
        origin: SO_EE_ORIGIN_LOCAL,
        icmp_type: 0,
        code: 0,
        info: mtu,
        offender: None,
        dst,
        payload: Vec::new(),
    });
}

/// Takes the oldest error queued on `e` (MSG_ERRQUEUE). An ICMP error's SO_ERROR becomes
/// the next ICMP error's, or none, as Linux's `sock_dequeue_err_skb`.
pub fn take_error(e: &mut Entry) -> Option<QueuedError> {
    let q = e.errors.pop_front()?;
    let icmp = |q: &QueuedError| q.origin != SO_EE_ORIGIN_LOCAL;
    match e.errors.front().filter(|n| icmp(n)) {
        Some(next) => e.error = Some(next.errno),
        None if icmp(&q) => e.error = None,
        None => {}
    }
    Some(q)
}

/// The control message a read of `q` from the error queue of a socket of `family` gives:
/// IP_RECVERR (IPV6_RECVERR for an ICMPv6 error) with the `sock_extended_err` and the
/// offender's address after it.
pub fn error_control(family: i32, q: &QueuedError) -> (i32, i32, Vec<u8>) {
    let mut v = (q.errno as u32).to_ne_bytes().to_vec();
    v.extend_from_slice(&[q.origin, q.icmp_type, q.code, 0]);
    v.extend_from_slice(&q.info.to_ne_bytes());
    // ee_data.
    v.extend_from_slice(&[0; 4]);
    let six = q.origin == SO_EE_ORIGIN_ICMP6
        || (q.origin == SO_EE_ORIGIN_LOCAL && matches!(q.dst.0, IpAddress::Ipv6(_)));
    let (level, name, family) = if six {
        (libc::IPPROTO_IPV6, IPV6_RECVERR, libc::AF_INET6)
    } else {
        (libc::IPPROTO_IP, IP_RECVERR, family)
    };
    match q.offender {
        Some(a) => v.extend_from_slice(&sockaddr(family, a, 0)),
        // A local error names no offender: a zeroed address of family AF_UNSPEC.
        None => v.resize(v.len() + sockaddr(family, q.dst.0, 0).len(), 0),
    }
    (level, name, v)
}

/// A socket that stops asking for errors (IP_RECVERR or IPV6_RECVERR set to 0) loses
/// those queued, as in Linux.
pub fn recverr_off(e: &mut Entry, level: i32, name: i32) {
    if (level, name) == (libc::IPPROTO_IP, IP_RECVERR)
        || (level, name) == (libc::IPPROTO_IPV6, IPV6_RECVERR)
    {
        e.errors.clear();
    }
}

/// How a destination inside the sandbox is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the stack's own addresses.
    Unicast,
    /// An IPv4 multicast group.
    Multicast,
    /// 255.255.255.255 or the broadcast address of one of the stack's IPv4 networks.
    Broadcast,
}

/// Whether `ip` (already resolved from the unspecified address) is delivered by the
/// sentry, and how.
pub fn kind(g: &Inner, ip: IpAddress) -> Option<Kind> {
    match ip {
        IpAddress::Ipv4(a) if a.is_multicast() => Some(Kind::Multicast),
        IpAddress::Ipv4(a) if is_broadcast(g, a) => Some(Kind::Broadcast),
        a if g.is_own(a) => Some(Kind::Unicast),
        _ => None,
    }
}

/// Whether `a` is the limited broadcast address or the broadcast address of one of the
/// stack's IPv4 networks.
pub fn is_broadcast(g: &Inner, a: Ipv4Address) -> bool {
    a.is_broadcast()
        || g.cidrs().iter().any(|c| match c {
            IpCidr::Ipv4(c) => c.prefix_len() < 31 && c.broadcast() == Some(a),
            IpCidr::Ipv6(_) => false,
        })
}

/// The IPv4 address the stack holds on interface `index`.
pub fn address_of(g: &Inner, index: i32) -> Option<Ipv4Address> {
    g.cidrs().iter().find_map(|c| match c.address() {
        IpAddress::Ipv4(a) if (index == LOOPBACK_INDEX) == a.is_loopback() => Some(a),
        _ => None,
    })
}

/// The interface a datagram to `dst` (multicast or broadcast) leaves by: the socket's
/// IP_MULTICAST_IF (multicast), its bound device, its bound address's interface, or the
/// link; `None` when there is no route (ENETUNREACH).
pub fn out_interface(g: &Inner, e: &Entry, dst: IpAddress, kind: Kind) -> Option<i32> {
    if kind == Kind::Multicast {
        if let Some(index) = super::multicast::interface(e) {
            return Some(index);
        }
    }
    if e.bound_dev != 0 {
        return Some(e.bound_dev);
    }
    // A network's own broadcast address leaves by that network's interface.
    if let IpAddress::Ipv4(a) = dst {
        let net = g.cidrs().iter().find(|c| match c {
            IpCidr::Ipv4(c) => c.prefix_len() < 31 && c.broadcast() == Some(a),
            IpCidr::Ipv6(_) => false,
        });
        if let Some(c) = net {
            return Some(if g.on_loopback(c.address()) {
                LOOPBACK_INDEX
            } else {
                g.link_index?
            });
        }
    }
    match e.bound.and_then(|b| b.0) {
        Some(a) if g.on_loopback(a) => Some(LOOPBACK_INDEX),
        _ => g.link_index,
    }
}

/// A datagram's rank for entry `e` by Linux's UDP lookup (higher is better), `None` when
/// `e` does not take it. Multicast and broadcast datagrams also need the port and address
/// match; their group membership is checked by the caller.
fn score(e: &Entry, d: &Datagram) -> Option<u32> {
    if e.proto != Proto::Udp || !matches!(e.st, St::Udp(_)) {
        return None;
    }
    let (addr, port) = e.bound?;
    if port != d.dst.1 {
        return None;
    }
    let mut score = match (d.dst.0, e.family) {
        (IpAddress::Ipv4(_), libc::AF_INET) => 2,
        (IpAddress::Ipv4(_), _) if !v6only(e) => 1,
        (IpAddress::Ipv6(_), libc::AF_INET6) => 2,
        _ => return None,
    };
    if let Some(a) = addr {
        if a != d.dst.0 {
            return None;
        }
        score += 4;
    }
    // Connected: the peer's address, and its port unless connected to port 0.
    if let Some((addr, port)) = e.udp_peer {
        if addr != d.src.0 {
            return None;
        }
        score += 4;
        if port != 0 {
            if port != d.src.1 {
                return None;
            }
            score += 4;
        }
    }
    if e.bound_dev != 0 {
        if e.bound_dev != d.ifindex {
            return None;
        }
        score += 4;
    }
    Some(score)
}

/// A stable hash of the datagram's source, for choosing among SO_REUSEPORT sockets.
fn flow_hash(d: &Datagram) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    match d.src.0 {
        IpAddress::Ipv4(a) => a.octets().into_iter().for_each(&mut mix),
        IpAddress::Ipv6(a) => a.octets().into_iter().for_each(&mut mix),
    }
    d.src.1.to_be_bytes().into_iter().for_each(&mut mix);
    h
}

/// The socket unicast datagram `d` goes to (see the module docs), if any.
fn unicast_receiver(g: &Inner, d: &Datagram) -> Option<u64> {
    let holders = g.port_holders(Proto::Udp, d.dst.1);
    // Most recently bound first: it wins a tie between SO_REUSEADDR sockets.
    let mut best: Vec<u64> = Vec::new();
    let mut top = 0;
    for &id in holders.iter().rev() {
        let Some(s) = score(&g.entries[&id], d) else {
            continue;
        };
        if s > top {
            (top, best) = (s, vec![id]);
        } else if s == top {
            best.push(id);
        }
    }
    let first = *best.first()?;
    if !g.entries[&first].opts.reuse_port {
        return Some(first);
    }
    // In bind order, so that a source keeps its socket while the group stays.
    let group: Vec<u64> = best
        .into_iter()
        .rev()
        .filter(|id| g.entries[id].opts.reuse_port)
        .collect();
    Some(group[(flow_hash(d) % group.len() as u64) as usize])
}

/// Queues `d` for the sockets that take it (see the module docs); returns how many sockets
/// it was for (0: the port is closed), counting those whose full queue or socket filter
/// dropped it, which Linux answers with no port unreachable either.
pub fn deliver(g: &mut Inner, d: &Datagram, kind: Kind) -> usize {
    let holders = g.port_holders(Proto::Udp, d.dst.1);
    let receivers: Vec<u64> = match kind {
        Kind::Unicast => unicast_receiver(g, d).into_iter().collect(),
        Kind::Broadcast => holders
            .iter()
            .copied()
            .filter(|id| score(&g.entries[id], d).is_some())
            .collect(),
        Kind::Multicast => {
            let IpAddress::Ipv4(group) = d.dst.0 else {
                return 0;
            };
            let joined = |e: &Entry| super::multicast::is_member(e, group, d.ifindex);
            if !g.entries.values().any(joined) {
                // No socket joined the group on this interface: the host drops it.
                return 0;
            }
            holders
                .iter()
                .copied()
                .filter(|id| {
                    let e = &g.entries[id];
                    score(e, d).is_some() && (joined(e) || super::multicast::all(e))
                })
                .collect()
        }
    };
    let mut n = 0;
    let (mut full, mut dropped) = (0u64, 0u64);
    let claimed = receivers.len();
    for id in receivers {
        let e = g.entries.get_mut(&id).expect("present");
        // Linux takes a datagram while the queue is below SO_RCVBUF.
        if e.rd_shut {
            continue;
        }
        if e.dgram_bytes >= e.rcvbuf {
            full += 1;
            continue;
        }
        let mut d = d.clone();
        if let Some(prog) = &e.filter {
            match filtered(prog, d.src.1, d.dst.1, &d.data) {
                Some(keep) => d.data.truncate(keep),
                None => {
                    dropped += 1;
                    continue;
                }
            }
        }
        e.dgram_bytes += d.data.len();
        e.dgrams.push_back(d);
        n += 1;
    }
    count(g, d, kind, n, (full, dropped), claimed == 0);
    claimed
}

/// What the socket filter `prog` (SO_ATTACH_FILTER) leaves of a datagram from port `src`
/// to port `dst`: `None` when it drops it, else the payload bytes kept. Linux runs the
/// filter on the UDP header and payload and never trims below the header
/// (`sk_filter_trim_cap`); the header's checksum, which the sentry does not keep, reads
/// as 0.
pub fn filtered(prog: &[SockFilter], src: u16, dst: u16, data: &[u8]) -> Option<usize> {
    let mut packet = Vec::with_capacity(UDP_HEADER + data.len());
    packet.extend_from_slice(&src.to_be_bytes());
    packet.extend_from_slice(&dst.to_be_bytes());
    let len = u16::try_from(UDP_HEADER + data.len()).unwrap_or(u16::MAX);
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(data);
    match run_socket_filter(prog, &packet) {
        0 => None,
        keep => Some((keep as usize).clamp(UDP_HEADER, packet.len()) - UDP_HEADER),
    }
}

/// Counts a datagram the sentry delivered into the UDP (and IP) counters of `/proc/net/snmp`
/// ([`super::mib`]): IPv4 only, as Linux's `Udp:` line. One sent on a link as well was
/// counted out by the device.
/// `full`: datagrams refused for a full queue; `dropped`: by a socket filter.
fn count(
    g: &mut Inner,
    d: &Datagram,
    kind: Kind,
    taken: u64,
    (full, dropped): (u64, u64),
    unclaimed: bool,
) {
    if !matches!(d.dst.0, IpAddress::Ipv4(_)) {
        return;
    }
    let mib = &mut g.mib;
    if d.ifindex == LOOPBACK_INDEX {
        // IPv4 and UDP headers.
        let octets = 28 + d.data.len() as u64;
        mib.udp.out_datagrams += 1;
        mib.ip.out_requests += 1;
        mib.ip.out_octets += octets;
        mib.ip.in_receives += 1;
        mib.ip.in_delivers += 1;
        mib.ip.in_octets += octets;
    }
    mib.udp.in_datagrams += taken;
    mib.udp.rcvbuf_errors += full;
    mib.udp.in_errors += full + dropped;
    if unclaimed {
        match kind {
            Kind::Unicast => mib.udp.no_ports += 1,
            Kind::Broadcast | Kind::Multicast => mib.udp.ignored_multi += 1,
        }
    }
}

/// The receive timestamp SIOCGSTAMP reports, as Linux keeps `sk_stamp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stamp {
    /// Nothing read yet (ENOENT).
    #[default]
    Unset,
    /// Read without timestamping: the first SIOCGSTAMP takes the time it is asked.
    Pending,
    /// SIOCGSTAMP was asked: each read records its datagram's arrival.
    Tracking(Option<SystemTime>),
}

/// A datagram that arrived `at` was read from `e`: SO_TIMESTAMP gives it in a control
/// message and leaves the ioctl's stamp alone; otherwise the stamp follows, once
/// SIOCGSTAMP asked for it.
pub fn note_read(e: &mut Entry, at: SystemTime) {
    if on(e, libc::SOL_SOCKET, SO_TIMESTAMP) || on(e, libc::SOL_SOCKET, SO_TIMESTAMPNS) {
        return;
    }
    e.stamp = match e.stamp {
        Stamp::Tracking(_) => Stamp::Tracking(Some(at)),
        Stamp::Unset => Stamp::Pending,
        s => s,
    };
}

/// SIOCGSTAMP: the stamp, `None` when nothing was read (ENOENT). Asking turns tracking on.
pub fn stamp(e: &mut Entry) -> Option<SystemTime> {
    let (now, next) = match e.stamp {
        Stamp::Unset => (None, Stamp::Tracking(None)),
        Stamp::Pending => {
            let t = SystemTime::now();
            (Some(t), Stamp::Tracking(Some(t)))
        }
        Stamp::Tracking(t) => (t, Stamp::Tracking(t)),
    };
    e.stamp = next;
    now
}

/// `SO_TIMESTAMP`, `SO_TIMESTAMPNS` (and their SCM_ types).
pub const SO_TIMESTAMP: i32 = 29;
pub const SO_TIMESTAMPNS: i32 = 35;
const IP_RECVORIGDSTADDR: i32 = 20;
const IPV6_RECVORIGDSTADDR: i32 = 74;

/// The receive options of datagram sockets that are plain flags (as Linux keeps them: 0
/// or 1).
pub const RECV_FLAGS: [(i32, i32); 12] = [
    (libc::SOL_SOCKET, SO_TIMESTAMP),
    (libc::IPPROTO_IP, IP_RECVERR),
    (libc::IPPROTO_IPV6, IPV6_RECVERR),
    (libc::SOL_SOCKET, SO_TIMESTAMPNS),
    (libc::IPPROTO_IP, libc::IP_PKTINFO),
    (libc::IPPROTO_IP, libc::IP_RECVTTL),
    (libc::IPPROTO_IP, libc::IP_RECVTOS),
    (libc::IPPROTO_IP, IP_RECVORIGDSTADDR),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS),
    (libc::IPPROTO_IPV6, IPV6_RECVORIGDSTADDR),
];

fn on(e: &Entry, level: i32, name: i32) -> bool {
    e.options
        .get(&(level, name))
        .is_some_and(|v| v.iter().any(|&b| b != 0))
}

fn v4_octets(a: IpAddress) -> [u8; 4] {
    match a {
        IpAddress::Ipv4(a) => a.octets(),
        IpAddress::Ipv6(a) => a.to_ipv4_mapped().map_or([0; 4], |a| a.octets()),
    }
}

fn v6_octets(a: IpAddress) -> [u8; 16] {
    match a {
        IpAddress::Ipv4(a) => a.to_ipv6_mapped().octets(),
        IpAddress::Ipv6(a) => a.octets(),
    }
}

/// The SO_TIMESTAMPNS or SO_TIMESTAMP control message for data that arrived `at`, when
/// entry `e` asked for one.
pub fn timestamp(e: &Entry, at: SystemTime) -> Option<(i32, i32, Vec<u8>)> {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = (since.as_secs() as i64).to_ne_bytes();
    if on(e, libc::SOL_SOCKET, SO_TIMESTAMPNS) {
        let nanos = i64::from(since.subsec_nanos()).to_ne_bytes();
        Some((libc::SOL_SOCKET, SO_TIMESTAMPNS, [secs, nanos].concat()))
    } else if on(e, libc::SOL_SOCKET, SO_TIMESTAMP) {
        let micros = i64::from(since.subsec_micros()).to_ne_bytes();
        Some((libc::SOL_SOCKET, SO_TIMESTAMP, [secs, micros].concat()))
    } else {
        None
    }
}

/// The control messages `recvmsg` gives with `d` on entry `e`, in Linux's order: the
/// timestamp, then the IPv4 ones (IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR) for an IPv4
/// datagram, then the IPv6 ones of an AF_INET6 socket (IPV6_PKTINFO, IPV6_HOPLIMIT,
/// IPV6_TCLASS, IPV6_ORIGDSTADDR).
pub fn control(e: &Entry, d: &Datagram) -> Vec<(i32, i32, Vec<u8>)> {
    let mut out: Vec<_> = timestamp(e, d.at).into_iter().collect();
    let ip = libc::IPPROTO_IP;
    if let IpAddress::Ipv4(_) = d.dst.0 {
        if on(e, ip, libc::IP_PKTINFO) {
            let mut v = d.ifindex.to_ne_bytes().to_vec();
            v.extend_from_slice(&v4_octets(d.spec_dst));
            v.extend_from_slice(&v4_octets(d.dst.0));
            out.push((ip, libc::IP_PKTINFO, v));
        }
        if on(e, ip, libc::IP_RECVTTL) {
            out.push((ip, libc::IP_TTL, int(i32::from(d.ttl))));
        }
        if on(e, ip, libc::IP_RECVTOS) {
            out.push((ip, libc::IP_TOS, vec![d.tos]));
        }
        if on(e, ip, IP_RECVORIGDSTADDR) {
            out.push((
                ip,
                IP_RECVORIGDSTADDR,
                sockaddr(libc::AF_INET, d.dst.0, d.dst.1),
            ));
        }
    }
    if e.family == libc::AF_INET6 {
        let ip6 = libc::IPPROTO_IPV6;
        if on(e, ip6, libc::IPV6_RECVPKTINFO) {
            let mut v = v6_octets(d.dst.0).to_vec();
            v.extend_from_slice(&d.ifindex.to_ne_bytes());
            out.push((ip6, libc::IPV6_PKTINFO, v));
        }
        if let IpAddress::Ipv6(_) = d.dst.0 {
            if on(e, ip6, libc::IPV6_RECVHOPLIMIT) {
                out.push((ip6, libc::IPV6_HOPLIMIT, int(i32::from(d.ttl))));
            }
            if on(e, ip6, libc::IPV6_RECVTCLASS) {
                out.push((ip6, libc::IPV6_TCLASS, int(i32::from(d.tos))));
            }
            if on(e, ip6, IPV6_RECVORIGDSTADDR) {
                out.push((
                    ip6,
                    IPV6_RECVORIGDSTADDR,
                    sockaddr(libc::AF_INET6, d.dst.0, d.dst.1),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::stack::Stack;
    use std::sync::Arc;

    fn udp_entry(g: &mut Inner, addr: Option<IpAddress>, port: u16, reuse_port: bool) -> u64 {
        let id = crate::net::stack::next_id();
        let mut e = Entry::new(
            Proto::Udp,
            libc::AF_INET,
            Arc::new(crate::waiter::WaitQueue::new()),
        );
        e.opts.reuse_port = reuse_port;
        e.opts.reuse_addr = true;
        g.entries.insert(id, e);
        g.bind_port(Proto::Udp, addr, port, id).unwrap();
        let h = g.new_udp(addr, port);
        let e = g.entries.get_mut(&id).unwrap();
        e.bound = Some((addr, port));
        e.st = St::Udp(h);
        id
    }

    fn datagram(src_port: u16, dst: IpAddress, port: u16) -> Datagram {
        let lo = IpAddress::v4(127, 0, 0, 1);
        Datagram {
            data: vec![1, 2, 3],
            src: (lo, src_port),
            dst: (dst, port),
            spec_dst: lo,
            ttl: 64,
            tos: 0,
            ifindex: LOOPBACK_INDEX,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn unicast_goes_to_the_best_then_latest_socket() {
        let stack = Stack::start();
        let mut g = stack.lock();
        let lo = IpAddress::v4(127, 0, 0, 1);
        let wild = udp_entry(&mut g, None, 5000, false);
        let exact = udp_entry(&mut g, Some(lo), 5000, false);
        assert_eq!(deliver(&mut g, &datagram(1, lo, 5000), Kind::Unicast), 1);
        assert_eq!(g.entries[&exact].dgrams.len(), 1);
        assert!(g.entries[&wild].dgrams.is_empty());
        let later = udp_entry(&mut g, Some(lo), 5000, false);
        deliver(&mut g, &datagram(1, lo, 5000), Kind::Unicast);
        assert_eq!(g.entries[&later].dgrams.len(), 1);
        assert_eq!(g.entries[&exact].dgrams.len(), 1);
    }

    #[test]
    fn reuseport_spreads_by_source_and_broadcast_reaches_all() {
        let stack = Stack::start();
        let mut g = stack.lock();
        let lo = IpAddress::v4(127, 0, 0, 1);
        let a = udp_entry(&mut g, Some(lo), 6000, true);
        let b = udp_entry(&mut g, Some(lo), 6000, true);
        for port in 1..=64 {
            deliver(&mut g, &datagram(port, lo, 6000), Kind::Unicast);
        }
        let (na, nb) = (g.entries[&a].dgrams.len(), g.entries[&b].dgrams.len());
        assert_eq!(na + nb, 64);
        assert!(na > 0 && nb > 0, "{na} {nb}");
        let bcast = IpAddress::v4(255, 255, 255, 255);
        let c = udp_entry(&mut g, None, 6001, false);
        let d = udp_entry(&mut g, Some(bcast), 6001, false);
        let e = udp_entry(&mut g, Some(lo), 6001, false);
        assert_eq!(
            deliver(&mut g, &datagram(1, bcast, 6001), Kind::Broadcast),
            2
        );
        assert_eq!(g.entries[&c].dgrams.len(), 1);
        assert_eq!(g.entries[&d].dgrams.len(), 1);
        assert!(g.entries[&e].dgrams.is_empty());
    }
}
