//! Raw IP sockets over the sentry's stack ([`super::stack`]): `socket(AF_INET or AF_INET6,
//! SOCK_RAW, protocol)` for any protocol, which need CAP_NET_RAW (checked by the caller).
//!
//! Each is one smoltcp raw socket of its IP version and protocol; smoltcp hands every raw
//! socket a copy of each incoming packet of its protocol (on the loopback, every packet the
//! sandbox sends to itself), before and besides the normal processing, as Linux does. A
//! receive then filters as Linux's raw sockets do: the bound address (destination), the
//! connected peer (source), ICMP_FILTER (ICMP over IPv4) and ICMP6_FILTER (ICMPv6), and
//! IPV6_CHECKSUM's verification. An IPv4 raw socket reads each packet with its IPv4 header
//! (the header smoltcp parsed, written again: identification and fragment fields read as 0
//! and DF; the TOS, which smoltcp leaves out, is the one the device saw the packet come in
//! with, [`Classes`]); an IPv6 one reads the payload only.
//! A receive gives the control messages the socket asked for (IP_PKTINFO, IP_RECVTTL,
//! IP_RECVTOS, IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS) from that header and
//! the traffic class the device saw, as UDP's ([`super::udp::control`]). Raw sockets keep
//! no arrival time (no SO_TIMESTAMP).
//!
//! Sending builds the IP header from the socket's addresses, the message's IP_TTL, IP_TOS,
//! IPV6_HOPLIMIT and IPV6_TCLASS control messages and the socket's options (IP_TTL, IP_TOS,
//! IPV6_UNICAST_HOPS, IPV6_TCLASS), or, with IP_HDRINCL (and on `IPPROTO_RAW` sockets, where
//! it is implied), takes the application's IPv4 header, filling in the total length, a zero source
//! address and the checksum as Linux does. ICMPv6 checksums are always computed, other IPv6
//! protocols' at IPV6_CHECKSUM's offset when set. A packet whose protocol differs from the
//! socket's (IP_HDRINCL) leaves through a smoltcp raw socket of that protocol made for the
//! one send. `IPPROTO_RAW` sockets receive nothing, as on Linux.
//!
//! # Lock order
//! The stack lock → wait queues (see [`super::stack`]).

use std::sync::Arc;

use smoltcp::socket::raw;
use smoltcp::wire::{IpAddress, IpProtocol, IpVersion, Ipv4Address, Ipv6Address};

use super::config::LOOPBACK_INDEX;
use super::inet::{destination, int, int_of, parse, sockaddr, SendControl};
use super::netfilter;
use super::stack::{next_id, readiness, Entry, Inner, Proto, St, Stack};
use super::{InMessage, IoFlags, OutMessage, Socket};
use crate::abi::Errno;
use crate::auth::{cap, UserNs};
use crate::mm::usermem::UserAddr;
use crate::vfs::Context;
use crate::vfs::{FileOps, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::WaitQueue;

/// `IPPROTO_MAX`: protocols at or above it are EINVAL.
const IPPROTO_MAX: i32 = 263;
/// `SOL_RAW`'s `ICMP_FILTER`.
const ICMP_FILTER: i32 = 1;
/// `IPPROTO_ICMPV6`'s `ICMP6_FILTER`.
const ICMP6_FILTER: i32 = 1;
/// `IPV6_CHECKSUM`.
const IPV6_CHECKSUM: i32 = 7;
/// Bytes of an IPv4 header without options and of an IPv6 header.
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// `net.core.rmem_max` and `wmem_max`: the largest SO_RCVBUF and SO_SNDBUF asked (doubled).
const BUF_MAX: usize = super::unix::DEFAULT_BUF;
/// The default hop limit (Linux's ip_default_ttl and hop_limit).
const DEFAULT_TTL: u8 = 64;
/// The ICMPv6 checksum's offset, which ICMPv6 raw sockets always compute.
const ICMPV6_CHECKSUM_OFFSET: usize = 2;

/// Per-socket raw options (under the stack lock, in the socket).
#[derive(Debug, Default, Clone)]
struct RawOptions {
    hdrincl: bool,
    /// ICMP_FILTER: bit n set drops ICMP type n (< 32).
    icmp_filter: u32,
    /// ICMP6_FILTER: bit n set drops ICMPv6 type n.
    icmp6_filter: [u32; 8],
    /// IPV6_CHECKSUM's offset (`None`: off).
    checksum: Option<usize>,
    /// The local address was set by connect (not bind): a disconnect clears it.
    bound_by_connect: bool,
}

/// How many packets' TOS (traffic class) [`Classes`] remembers.
const CLASSES_KEPT: usize = 256;

/// The TOS (IPv4) or traffic class (IPv6) of the last packets with a nonzero one, by the
/// packet's identity (version, addresses, protocol and payload). smoltcp writes the IP
/// header of what raw sockets send, and of what it gives them, again from what it parsed,
/// which leaves those bits out. So the device keeps two: the classes of the packets raw
/// sockets sent, which it puts back into them as they leave ([`Classes::restore`]), and
/// those of the packets it handed the stack, which a raw receive finds by the same
/// identity. A packet read after [`CLASSES_KEPT`] newer ones with a class came in reads 0,
/// and of two packets alike in all but their class, both read the later's.
#[derive(Debug, Default)]
pub struct Classes {
    recent: std::collections::VecDeque<(u64, u8)>,
}

impl Classes {
    /// Remembers the class of `ip`, an IP packet, unless it is 0. Called for every packet
    /// the device receives: the class is read from the header before anything is hashed.
    pub fn note(&mut self, ip: &[u8]) {
        if class_of(ip).unwrap_or(0) == 0 {
            return;
        }
        let Some((key, class)) = identity(ip) else {
            return;
        };
        if self.recent.len() == CLASSES_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back((key, class));
    }

    /// The class `ip` (a raw socket's copy of a received packet) came in with.
    fn of(&self, ip: &[u8]) -> Option<u8> {
        let (key, _) = identity(ip)?;
        self.recent
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
    }

    /// Gives `ip`, a packet leaving without a class, the class remembered for it (the
    /// oldest such: packets leave in the order they were sent), which is forgotten then.
    pub fn restore(&mut self, ip: &mut [u8]) {
        if self.recent.is_empty() {
            return;
        }
        let Some((key, 0)) = identity(ip) else {
            return;
        };
        let Some(i) = self.recent.iter().position(|(k, _)| *k == key) else {
            return;
        };
        let (_, class) = self.recent.remove(i).expect("found");
        set_class(ip, class);
    }
}

/// Writes `class` into the header of `ip` (an IPv4 one gets its checksum again).
fn set_class(ip: &mut [u8], class: u8) {
    if ip[0] >> 4 == 4 {
        let mut p = smoltcp::wire::Ipv4Packet::new_unchecked(ip);
        p.set_dscp(class >> 2);
        p.set_ecn(class & 3);
        p.fill_checksum();
    } else {
        smoltcp::wire::Ipv6Packet::new_unchecked(ip).set_traffic_class(class);
    }
}

/// The TOS (IPv4) or traffic class (IPv6) in the header of `ip`, without parsing the rest.
fn class_of(ip: &[u8]) -> Option<u8> {
    let (first, second) = (*ip.first()?, *ip.get(1)?);
    match first >> 4 {
        4 => Some(second),
        6 => Some((first << 4) | (second >> 4)),
        _ => None,
    }
}

/// A packet's identity for [`Classes`] (a hash of what smoltcp's copy keeps of it) and its
/// TOS or traffic class.
fn identity(ip: &[u8]) -> Option<(u64, u8)> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let class = match ip.first()? >> 4 {
        4 => {
            let p = smoltcp::wire::Ipv4Packet::new_checked(ip).ok()?;
            (4u8, p.src_addr().octets(), p.dst_addr().octets()).hash(&mut h);
            (u8::from(p.next_header()), p.payload()).hash(&mut h);
            (p.dscp() << 2) | p.ecn()
        }
        6 => {
            let p = smoltcp::wire::Ipv6Packet::new_checked(ip).ok()?;
            (6u8, p.src_addr().octets(), p.dst_addr().octets()).hash(&mut h);
            (u8::from(p.next_header()), p.payload()).hash(&mut h);
            p.traffic_class()
        }
        _ => return None,
    };
    Some((h.finish(), class))
}

/// A packet a raw socket takes: what the application reads, and the IP header's facts.
struct Received {
    data: Vec<u8>,
    src: IpAddress,
    dst: IpAddress,
    ttl: u8,
    tos: u8,
}

/// A raw IP socket file.
pub struct RawSocket {
    id: u64,
    /// AF_INET or AF_INET6.
    family: i32,
    /// The IP protocol number (`IPPROTO_RAW`: send only).
    protocol: u8,
    opts: std::sync::Mutex<RawOptions>,
    queue: Arc<WaitQueue>,
    stack: Arc<Stack>,
    /// The user namespace owning the socket's network namespace: netfilter's options take
    /// CAP_NET_ADMIN over it.
    owner: Arc<UserNs>,
}

impl std::fmt::Debug for RawSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSocket")
            .field("id", &self.id)
            .field("family", &self.family)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        self.stack.lock().remove(self.id);
        self.stack.kick();
    }
}

/// Checks the protocol of a raw socket: EINVAL outside 0..IPPROTO_MAX, EPROTONOSUPPORT for
/// 0 and the numbers past a byte (Linux's raw sockets take an IP protocol number).
///
/// # Errors
/// As above.
pub fn check_protocol(protocol: i32) -> Result<u8, Errno> {
    if !(0..IPPROTO_MAX).contains(&protocol) {
        return Err(Errno::EINVAL);
    }
    match u8::try_from(protocol) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Errno::EPROTONOSUPPORT),
    }
}

/// The Internet checksum of `data` added to `sum` (ones' complement, not yet inverted).
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
        if sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    sum
}

/// The IPv6 upper-layer checksum of `payload` (with its checksum field as it is).
fn checksum_v6(src: &Ipv6Address, dst: &Ipv6Address, next: u8, payload: &[u8]) -> u16 {
    let mut s = sum16(0, &src.octets());
    s = sum16(s, &dst.octets());
    s = sum16(s, &(payload.len() as u32).to_be_bytes());
    s = sum16(s, &[0, 0, 0, next]);
    s = sum16(s, payload);
    !(s as u16)
}

impl RawSocket {
    /// A new raw socket of `family` for IP protocol `protocol` (checked by
    /// [`check_protocol`]).
    pub fn new(stack: &Arc<Stack>, owner: &Arc<UserNs>, family: i32, protocol: u8) -> RawSocket {
        let queue = Arc::new(WaitQueue::new());
        let id = next_id();
        let version = if family == libc::AF_INET6 {
            IpVersion::Ipv6
        } else {
            IpVersion::Ipv4
        };
        let mut g = stack.lock();
        let mut e = Entry::new(Proto::Icmp, family, queue.clone());
        let h = g.new_raw(version, Some(IpProtocol::from(protocol)), e.rcvbuf);
        e.st = St::Raw(h);
        g.entries.insert(id, e);
        drop(g);
        let opts = RawOptions {
            hdrincl: family == libc::AF_INET && i32::from(protocol) == libc::IPPROTO_RAW,
            checksum: (family == libc::AF_INET6 && i32::from(protocol) == libc::IPPROTO_ICMPV6)
                .then_some(ICMPV6_CHECKSUM_OFFSET),
            ..RawOptions::default()
        };
        RawSocket {
            id,
            family,
            protocol,
            opts: std::sync::Mutex::new(opts),
            queue,
            stack: stack.clone(),
            owner: owner.clone(),
        }
    }

    fn opts(&self) -> std::sync::MutexGuard<'_, RawOptions> {
        self.opts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_icmpv6(&self) -> bool {
        self.family == libc::AF_INET6 && i32::from(self.protocol) == libc::IPPROTO_ICMPV6
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner, u64) -> R) -> R {
        let s = &self.stack;
        let mut g = s.lock();
        let r = f(&mut g, self.id);
        g.pump();
        drop(g);
        s.kick();
        r
    }

    fn handle(g: &Inner, id: u64) -> Option<smoltcp::iface::SocketHandle> {
        match g.entries.get(&id)?.st {
            St::Raw(h) => Some(h),
            _ => None,
        }
    }

    /// Gives entry `id` a smoltcp socket whose receive buffer holds `rcvbuf` bytes of
    /// packets (Linux drops packets arriving at a full SO_RCVBUF). Only while nothing is
    /// queued (smoltcp cannot move packets between sockets): a socket with packets waiting
    /// keeps its buffer.
    fn resize_rx(g: &mut Inner, id: u64, rcvbuf: usize) {
        let Some(old) = Self::handle(g, id) else {
            return;
        };
        let (version, protocol, queued) = {
            let s = g.raw(old);
            (
                s.ip_version(),
                s.ip_protocol(),
                s.can_recv() || s.send_queue() > 0,
            )
        };
        let Some(version) = version else {
            return;
        };
        if queued {
            return;
        }
        let new = g.new_raw(version, protocol, rcvbuf);
        g.set.remove(old);
        g.entries.get_mut(&id).expect("present").st = St::Raw(new);
    }

    /// The address parsed for this socket's family (never a v4-mapped one on AF_INET6).
    fn parse(&self, addr: &[u8]) -> Result<Option<IpAddress>, Errno> {
        let r = parse(self.family, addr)?;
        if self.family == libc::AF_INET6 && matches!(r, Some((IpAddress::Ipv4(_), _))) {
            return Err(Errno::EINVAL);
        }
        Ok(r.map(|(ip, _)| ip))
    }

    /// What an application reads of `packet` (as received, with its IP header), with the
    /// header's facts; `None` when the socket's filters drop it.
    fn accept(&self, e: &Entry, opts: &RawOptions, packet: &[u8]) -> Option<Received> {
        let local = e.bound.and_then(|b| b.0);
        let peer = e.udp_peer.map(|p| p.0);
        let (src, dst, payload, data, ttl, tos) = if self.family == libc::AF_INET6 {
            let p = smoltcp::wire::Ipv6Packet::new_checked(packet).ok()?;
            let payload = p.payload();
            (
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
                payload,
                payload.to_vec(),
                p.hop_limit(),
                p.traffic_class(),
            )
        } else {
            let p = smoltcp::wire::Ipv4Packet::new_checked(packet).ok()?;
            (
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
                p.payload(),
                packet.to_vec(),
                p.hop_limit(),
                (p.dscp() << 2) | p.ecn(),
            )
        };
        if local.is_some_and(|l| l != dst) || peer.is_some_and(|p| p != src) {
            return None;
        }
        if self.family == libc::AF_INET && i32::from(self.protocol) == libc::IPPROTO_ICMP {
            let ty = *payload.first()?;
            if ty < 32 && opts.icmp_filter & (1 << ty) != 0 {
                return None;
            }
        }
        if self.is_icmpv6() {
            let ty = *payload.first()?;
            if opts.icmp6_filter[usize::from(ty >> 5)] & (1 << (ty & 31)) != 0 {
                return None;
            }
        }
        if let (Some(off), IpAddress::Ipv6(s), IpAddress::Ipv6(d)) = (opts.checksum, src, dst) {
            // A checksum that does not verify (or no room for it) drops the packet.
            if payload.len() < off + 2 || checksum_v6(&s, &d, self.protocol, payload) != 0 {
                return None;
            }
        }
        Some(Received {
            data,
            src,
            dst,
            ttl,
            tos,
        })
    }

    /// The control messages a receive of `r` gives (IP_PKTINFO, IP_TTL, IP_TOS and their
    /// IPv6 counterparts, as the socket asked for them). Raw sockets keep no arrival time,
    /// so SO_TIMESTAMP gives nothing.
    fn control(g: &Inner, e: &Entry, r: &Received) -> Vec<(i32, i32, Vec<u8>)> {
        // A packet from one of the stack's own addresses came over the loopback.
        let ifindex = if g.is_own(r.src) {
            LOOPBACK_INDEX
        } else {
            g.link_index.unwrap_or(LOOPBACK_INDEX)
        };
        let d = super::udp::Datagram {
            data: Vec::new(),
            src: (r.src, 0),
            dst: (r.dst, 0),
            spec_dst: if g.is_own(r.dst) {
                r.dst
            } else {
                g.source_for(r.src)
            },
            ttl: r.ttl,
            tos: r.tos,
            ifindex,
            at: std::time::SystemTime::UNIX_EPOCH,
        };
        let mut control = super::udp::control(e, &d);
        control.retain(|(level, _, _)| *level != libc::SOL_SOCKET);
        control
    }

    /// One receive attempt of at most `len` bytes: `None` when nothing is there yet.
    fn take(&self, g: &mut Inner, id: u64, len: usize, peek: bool) -> Option<InMessage> {
        let h = Self::handle(g, id)?;
        let opts = self.opts().clone();
        loop {
            let packet = g.raw(h).peek().ok()?.to_vec();
            let wanted = if i32::from(self.protocol) == libc::IPPROTO_RAW {
                None
            } else {
                self.accept(&g.entries[&id], &opts, &packet)
            };
            if !peek || wanted.is_none() {
                let _ = g.raw(h).recv();
            }
            let Some(mut r) = wanted else {
                continue;
            };
            if r.tos == 0 {
                if let Some(class) = g.classes().of(&packet) {
                    r.tos = class;
                    if self.family == libc::AF_INET {
                        // The header the application reads carries it too.
                        set_class(&mut r.data, class);
                    }
                }
            }
            let n = r.data.len().min(len);
            return Some(InMessage {
                data: r.data[..n].to_vec(),
                full_len: r.data.len(),
                from: Some(sockaddr(self.family, r.src, 0)),
                control: Self::control(g, &g.entries[&id], &r),
                ..InMessage::default()
            });
        }
    }

    /// The IP packet for `data` to `dst` (`c`: the message's IP_TTL, IP_TOS,
    /// IPV6_HOPLIMIT and IPV6_TCLASS, before the socket's options).
    fn packet(
        &self,
        g: &Inner,
        id: u64,
        mut data: Vec<u8>,
        dst: IpAddress,
        c: &SendControl,
    ) -> Result<Vec<u8>, Errno> {
        let e = &g.entries[&id];
        let opts = self.opts().clone();
        let opt =
            |level: i32, name: i32| e.options.get(&(level, name)).and_then(|v| int_of(v).ok());
        let src = e
            .bound
            .and_then(|b| b.0)
            .unwrap_or_else(|| g.source_for(dst));
        match (dst, src) {
            (IpAddress::Ipv4(d), IpAddress::Ipv4(s)) if opts.hdrincl => {
                if data.len() < IPV4_HEADER {
                    return Err(Errno::EINVAL);
                }
                if data.len() > usize::from(u16::MAX) {
                    return Err(Errno::EMSGSIZE);
                }
                // The application's own header is sent as it is, never fragmented: above
                // the link's MTU it is refused, as Linux's raw_send_hdrinc.
                if !g.is_own(dst) && data.len() > g.link_mtu() {
                    return Err(Errno::EMSGSIZE);
                }
                let total = data.len() as u16;
                data[2..4].copy_from_slice(&total.to_be_bytes());
                let ihl = usize::from(data[0] & 0xf) * 4;
                if data[0] >> 4 != 4 || ihl < IPV4_HEADER || ihl > data.len() {
                    return Err(Errno::EINVAL);
                }
                if data[12..16] == [0; 4] {
                    data[12..16].copy_from_slice(&s.octets());
                }
                if data[16..20] == [0; 4] {
                    data[16..20].copy_from_slice(&d.octets());
                }
                Ok(data)
            }
            (IpAddress::Ipv4(d), IpAddress::Ipv4(s)) => {
                let total = IPV4_HEADER + data.len();
                let total = u16::try_from(total).map_err(|_| Errno::EMSGSIZE)?;
                let ttl = c.ttl.unwrap_or_else(|| {
                    opt(libc::IPPROTO_IP, libc::IP_TTL)
                        .and_then(|v| u8::try_from(v).ok())
                        .unwrap_or(DEFAULT_TTL)
                });
                let tos = c
                    .tos
                    .unwrap_or_else(|| opt(libc::IPPROTO_IP, libc::IP_TOS).unwrap_or(0) as u8);
                let mut p = vec![0x45, tos];
                p.extend_from_slice(&total.to_be_bytes());
                p.extend_from_slice(&[0, 0, 0x40, 0, ttl, self.protocol, 0, 0]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.append(&mut data);
                Ok(p)
            }
            // An IPv6 raw socket never takes the application's header (IPV6_HDRINCL is not
            // offered), so IPPROTO_RAW has nothing to send.
            (IpAddress::Ipv6(_), IpAddress::Ipv6(_))
                if i32::from(self.protocol) == libc::IPPROTO_RAW =>
            {
                Err(Errno::EINVAL)
            }
            (IpAddress::Ipv6(d), IpAddress::Ipv6(s)) => {
                let len = u16::try_from(data.len()).map_err(|_| Errno::EMSGSIZE)?;
                if let Some(off) = opts.checksum {
                    if data.len() < off + 2 {
                        return Err(Errno::EINVAL);
                    }
                    data[off..off + 2].copy_from_slice(&[0, 0]);
                    let c = checksum_v6(&s, &d, self.protocol, &data);
                    data[off..off + 2].copy_from_slice(&c.to_be_bytes());
                }
                let hops = c.hop_limit.unwrap_or_else(|| {
                    opt(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
                        .and_then(|v| u8::try_from(v).ok())
                        .unwrap_or(DEFAULT_TTL)
                });
                let class = c.tclass.unwrap_or_else(|| {
                    opt(libc::IPPROTO_IPV6, libc::IPV6_TCLASS).unwrap_or(0) as u8
                });
                let mut p = vec![0x60 | (class >> 4), class << 4, 0, 0];
                p.extend_from_slice(&len.to_be_bytes());
                p.extend_from_slice(&[self.protocol, hops]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.append(&mut data);
                Ok(p)
            }
            _ => Err(Errno::EAFNOSUPPORT),
        }
    }

    /// Queues `packet` on the smoltcp raw socket of its protocol: the socket's own, or one
    /// made for this send (IP_HDRINCL with another protocol).
    fn emit(
        &self,
        g: &mut Inner,
        h: smoltcp::iface::SocketHandle,
        packet: &[u8],
        nonblocking: bool,
    ) -> Option<Result<usize, Errno>> {
        let proto = if self.family == libc::AF_INET6 {
            packet[6]
        } else {
            packet[9]
        };
        g.sent_classes().note(packet);
        if proto != self.protocol {
            return Some(g.send_ip(packet).map(|()| packet.len()));
        }
        match g.raw(h).send_slice(packet) {
            Ok(()) => Some(Ok(packet.len())),
            Err(raw::SendError::BufferFull) if packet.len() > g.raw(h).payload_send_capacity() => {
                Some(Err(Errno::EMSGSIZE))
            }
            Err(raw::SendError::BufferFull) if nonblocking => Some(Err(Errno::EAGAIN)),
            Err(raw::SendError::BufferFull) => None,
        }
    }
}

impl Socket for RawSocket {
    fn bind(&self, _t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        if addr.len() >= 2 && i32::from(u16::from_ne_bytes([addr[0], addr[1]])) == libc::AF_UNSPEC {
            return Err(Errno::EINVAL);
        }
        let ip = self.parse(addr)?.ok_or(Errno::EAFNOSUPPORT)?;
        self.with(|g, id| {
            let ip = if ip.is_unspecified() {
                None
            } else if g.is_own(ip) {
                Some(ip)
            } else {
                return Err(Errno::EADDRNOTAVAIL);
            };
            g.entries.get_mut(&id).expect("present").bound = Some((ip, 0));
            self.opts().bound_by_connect = false;
            Ok(())
        })
    }

    fn connect(&self, _t: &mut dyn Context, addr: &[u8], _nonblocking: bool) -> Result<(), Errno> {
        let target = self.parse(addr)?;
        let mut g = self.stack.lock();
        let peer = match target {
            None => None,
            Some(ip) => Some((destination(&g, ip, 0)?.0.addr, 0)),
        };
        // As Linux, a connect picks the local address an unbound socket then has.
        let source = peer.map(|(ip, _)| g.source_for(ip));
        let mut opts = self.opts();
        let e = g.entries.get_mut(&self.id).expect("present");
        e.udp_peer = peer;
        let unbound = e.bound.and_then(|b| b.0).is_none();
        match source {
            Some(src) if unbound || opts.bound_by_connect => {
                e.bound = Some((Some(src), 0));
                opts.bound_by_connect = true;
            }
            None if opts.bound_by_connect => {
                e.bound = None;
                opts.bound_by_connect = false;
            }
            _ => {}
        }
        Ok(())
    }

    fn send(
        &self,
        t: &mut dyn Context,
        mut msg: OutMessage,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        msg.data = super::gather(src)?;
        let control = SendControl::parse(&msg.control)?;
        let to = match msg.to.as_deref() {
            Some(a) => Some(self.parse(a)?.ok_or(Errno::EAFNOSUPPORT)?),
            None => None,
        };
        let data = msg.data;
        let (packet, h) = {
            let g = self.stack.lock();
            let e = &g.entries[&self.id];
            let ip = match to.or(e.udp_peer.map(|p| p.0)) {
                Some(ip) => ip,
                None => return Err(Errno::EDESTADDRREQ),
            };
            let dst = destination(&g, ip, 0)?.0.addr;
            let h = Self::handle(&g, self.id).ok_or(Errno::EINVAL)?;
            (self.packet(&g, self.id, data, dst, &control)?, h)
        };
        let sent = t.block_on(&[&self.queue], None, || {
            self.with(|g, _| self.emit(g, h, &packet, flags.nonblocking))
        })?;
        // What the caller wrote (without the header the socket added).
        let header = match (self.family, self.opts().hdrincl) {
            (libc::AF_INET6, _) => IPV6_HEADER,
            (_, true) => 0,
            _ => IPV4_HEADER,
        };
        Ok(sent - header)
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        let mut g = self.stack.lock();
        Ok(self
            .take(&mut g, self.id, usize::MAX, true)
            .map_or(0, |m| m.full_len))
    }

    fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        let len = dst.remaining();
        let m = t.block_on(&[&self.queue], None, || {
            self.with(|g, id| match self.take(g, id, len, flags.peek) {
                Some(m) => Some(Ok(m)),
                // As Linux's datagram receive: a nonblocking one is EAGAIN even shut down;
                // a blocking one ends (0 bytes) instead of waiting.
                None if flags.nonblocking => Some(Err(Errno::EAGAIN)),
                None if g.entries[&id].rd_shut => Some(Ok(InMessage::default())),
                None => None,
            })
        })?;
        super::deliver(m, dst)
    }

    fn local_addr(&self) -> Vec<u8> {
        let g = self.stack.lock();
        let any = match self.family {
            libc::AF_INET6 => IpAddress::Ipv6(Ipv6Address::UNSPECIFIED),
            _ => IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
        };
        let ip = g.entries[&self.id].bound.and_then(|b| b.0).unwrap_or(any);
        // Linux shows a raw socket's protocol as its port.
        sockaddr(self.family, ip, u16::from(self.protocol))
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        // A raw socket has no peer port, and Linux's getpeername wants one: never connected.
        Err(Errno::ENOTCONN)
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
            return Err(Errno::EINVAL);
        }
        self.with(|g, id| {
            let e = g.entries.get_mut(&id).expect("present");
            if e.udp_peer.is_none() {
                return Err(Errno::ENOTCONN);
            }
            e.rd_shut |= how != libc::SHUT_WR;
            e.wr_shut |= how != libc::SHUT_RD;
            e.queue.notify(crate::waiter::Wake::Any);
            Ok(())
        })
    }

    fn netfilter_query(
        &self,
        t: &mut dyn Context,
        level: i32,
        name: i32,
        q: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        let family = self.netfilter_family(t, level)?;
        self.stack.netfilter.query(family, name, q)
    }

    fn netfilter_command(
        &self,
        t: &mut dyn Context,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        let family = self.netfilter_family(t, level)?;
        match name {
            netfilter::SO_SET_REPLACE => {
                let old = self.stack.netfilter.replace(family, value)?;
                // As Linux, the table stays replaced when the old counters cannot be
                // written.
                t.mm()
                    .write_bytes(UserAddr(old.counters_addr), &old.counters)
            }
            _ => self.stack.netfilter.add_counters(family, value),
        }
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        let opts = self.opts().clone();
        let mut g = self.stack.lock();
        let e = g.entries.get_mut(&self.id).expect("present");
        Ok(match (level, name) {
            (libc::IPPROTO_IPV6 | libc::IPPROTO_ICMPV6, _) if self.family == libc::AF_INET => {
                return Err(Errno::EOPNOTSUPP)
            }
            (libc::IPPROTO_IP, _)
                if self.family == libc::AF_INET && super::multicast::get(e, name).is_some() =>
            {
                return super::multicast::get(e, name).expect("a multicast option")
            }
            (libc::SOL_SOCKET, libc::SO_TYPE) => int(libc::SOCK_RAW),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(self.family),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(i32::from(self.protocol)),
            (libc::SOL_SOCKET, libc::SO_ERROR) => int(e.error.take().map_or(0, |e| e as i32)),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(e.sndbuf as i32),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(e.rcvbuf as i32),
            (libc::IPPROTO_IP, libc::IP_HDRINCL) if self.family == libc::AF_INET => {
                int(i32::from(opts.hdrincl))
            }
            (libc::IPPROTO_IP, libc::IP_TTL) if self.family == libc::AF_INET => int(e
                .options
                .get(&(level, name))
                .and_then(|v| int_of(v).ok())
                .unwrap_or(i32::from(DEFAULT_TTL))),
            (libc::SOL_RAW, ICMP_FILTER)
                if self.family == libc::AF_INET
                    && i32::from(self.protocol) == libc::IPPROTO_ICMP =>
            {
                opts.icmp_filter.to_ne_bytes().to_vec()
            }
            (libc::SOL_RAW, ICMP_FILTER) => return Err(Errno::EOPNOTSUPP),
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER) if self.is_icmpv6() => opts
                .icmp6_filter
                .iter()
                .flat_map(|w| w.to_ne_bytes())
                .collect(),
            (libc::IPPROTO_IPV6, IPV6_CHECKSUM) if self.family == libc::AF_INET6 => {
                int(opts.checksum.map_or(-1, |o| o as i32))
            }
            (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) if self.family == libc::AF_INET6 => {
                int(e
                    .options
                    .get(&(level, name))
                    .and_then(|v| int_of(v).ok())
                    .unwrap_or(i32::from(DEFAULT_TTL)))
            }
            (libc::SOL_SOCKET, libc::SO_DETACH_FILTER) => return Err(Errno::ENOPROTOOPT),
            (libc::IPPROTO_IP, _) if self.family != libc::AF_INET => {
                return Err(Errno::ENOPROTOOPT)
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
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        match (level, name) {
            // (Linux's getsockopt answers EOPNOTSUPP here, its setsockopt ENOPROTOOPT.)
            (libc::IPPROTO_IPV6 | libc::IPPROTO_ICMPV6, _) if self.family == libc::AF_INET => {
                return Err(Errno::ENOPROTOOPT)
            }
            (libc::IPPROTO_IP, libc::IP_HDRINCL) if self.family == libc::AF_INET => {
                let v = if value.len() < 4 {
                    i32::from(*value.first().ok_or(Errno::EINVAL)?)
                } else {
                    int_of(value)?
                };
                // An IPPROTO_RAW socket always includes the header.
                if i32::from(self.protocol) != libc::IPPROTO_RAW {
                    self.opts().hdrincl = v != 0;
                }
                return Ok(());
            }
            (libc::SOL_RAW, ICMP_FILTER) => {
                if self.family != libc::AF_INET || i32::from(self.protocol) != libc::IPPROTO_ICMP {
                    return Err(Errno::EOPNOTSUPP);
                }
                let v = value.get(..4).ok_or(Errno::EINVAL)?;
                self.opts().icmp_filter = u32::from_ne_bytes(v.try_into().expect("4 bytes"));
                return Ok(());
            }
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER) if self.is_icmpv6() => {
                // Linux takes at most the filter's size; a shorter one sets its prefix.
                let mut f = [0u32; 8];
                for (w, c) in f.iter_mut().zip(value.chunks_exact(4)) {
                    *w = u32::from_ne_bytes(c.try_into().expect("4 bytes"));
                }
                self.opts().icmp6_filter = f;
                return Ok(());
            }
            (libc::IPPROTO_IPV6, IPV6_CHECKSUM) if self.family == libc::AF_INET6 => {
                let v = int_of(value)?;
                if self.is_icmpv6() {
                    // The kernel's own: an ICMPv6 socket cannot change it.
                    return Err(Errno::EINVAL);
                }
                self.opts().checksum = match v {
                    v if v < 0 => None,
                    v if v % 2 == 1 => return Err(Errno::EINVAL),
                    v => Some(v as usize),
                };
                return Ok(());
            }
            (libc::IPPROTO_IP, _) if self.family == libc::AF_INET => {
                if let Some(r) = self.with(|g, id| super::multicast::set(g, id, name, value)) {
                    return r;
                }
            }
            _ => {}
        }
        let known = matches!(level, libc::SOL_SOCKET)
            || (level == libc::IPPROTO_IP && self.family == libc::AF_INET)
            || (level == libc::IPPROTO_IPV6 && self.family == libc::AF_INET6);
        if !known {
            return Err(Errno::ENOPROTOOPT);
        }
        if value.is_empty() {
            return Err(Errno::EINVAL);
        }
        self.with(|g, id| {
            let e = g.entries.get_mut(&id).expect("present");
            match (level, name) {
                // Linux caps the value (read as unsigned) at wmem_max/rmem_max, then doubles
                // it, with a floor.
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                    e.sndbuf = ((int_of(value)? as u32 as usize).min(BUF_MAX) * 2).max(4608);
                }
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                    e.rcvbuf = ((int_of(value)? as u32 as usize).min(BUF_MAX) * 2).max(2304);
                    let rcvbuf = e.rcvbuf;
                    Self::resize_rx(g, id, rcvbuf);
                }
                // No socket filter can be attached (SO_ATTACH_FILTER is not offered), so
                // there is none to detach.
                (libc::SOL_SOCKET, libc::SO_DETACH_FILTER) => return Err(Errno::ENOENT),
                (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER | libc::SO_ATTACH_BPF) => {
                    return Err(Errno::ENOPROTOOPT)
                }
                _ => {
                    e.options.insert((level, name), value.to_vec());
                }
            }
            Ok(())
        })
    }
}

/// What a checkpoint keeps of a raw IP socket (`kernel::checkpoint`): its protocol, the
/// local address a bind (or a connect) gave it, its peer, shutdown state, buffer sizes, the
/// raw options (IP_HDRINCL, ICMP_FILTER, ICMP6_FILTER, IPV6_CHECKSUM) and the options kept
/// in its entry (IP_TTL, IP_TOS, multicast memberships, ...). Packets queued when the
/// checkpoint was taken are not kept (as datagrams queued at a UDP socket).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RawImage {
    pub family: i32,
    pub protocol: u8,
    /// The local address (None: the wildcard).
    pub local: Option<String>,
    /// The local address was set by connect, not bind.
    pub bound_by_connect: bool,
    /// The address it is connected to.
    pub peer: Option<String>,
    pub rd_shut: bool,
    pub wr_shut: bool,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub hdrincl: bool,
    pub icmp_filter: u32,
    pub icmp6_filter: [u32; 8],
    pub checksum: Option<usize>,
    /// Options kept in the entry: (level, name, value).
    pub options: Vec<(i32, i32, Vec<u8>)>,
}

fn address(a: &str) -> Result<IpAddress, String> {
    a.parse().map_err(|_| format!("bad address {a:?}"))
}

impl RawSocket {
    /// This socket for a checkpoint.
    pub fn saved(&self) -> RawImage {
        let opts = self.opts().clone();
        let g = self.stack.lock();
        let e = &g.entries[&self.id];
        RawImage {
            family: self.family,
            protocol: self.protocol,
            local: e.bound.and_then(|b| b.0).map(|a| a.to_string()),
            bound_by_connect: opts.bound_by_connect,
            peer: e.udp_peer.map(|(a, _)| a.to_string()),
            rd_shut: e.rd_shut,
            wr_shut: e.wr_shut,
            rcvbuf: e.rcvbuf,
            sndbuf: e.sndbuf,
            hdrincl: opts.hdrincl,
            icmp_filter: opts.icmp_filter,
            icmp6_filter: opts.icmp6_filter,
            checksum: opts.checksum,
            options: e
                .options
                .iter()
                .map(|(&(level, name), v)| (level, name, v.clone()))
                .collect(),
        }
    }

    /// The table family a netfilter option at `level` reaches from this socket, for the
    /// caller `t`.
    ///
    /// # Errors
    /// ENOPROTOOPT at the other family's level, EPERM without CAP_NET_ADMIN over the
    /// socket's network namespace.
    fn netfilter_family(&self, t: &dyn Context, level: i32) -> Result<netfilter::Family, Errno> {
        let family = match self.family {
            libc::AF_INET => netfilter::Family::V4,
            _ => netfilter::Family::V6,
        };
        if level != family.level() {
            return Err(Errno::ENOPROTOOPT);
        }
        if !t.creds().has_cap_in(&self.owner, cap::NET_ADMIN) {
            return Err(Errno::EPERM);
        }
        Ok(family)
    }

    /// A raw socket as [`RawSocket::saved`] described it, on `stack`.
    ///
    /// # Errors
    /// The local address is not the stack's in this sandbox, or the image is malformed.
    pub fn restored(
        stack: &Arc<Stack>,
        owner: &Arc<UserNs>,
        image: &RawImage,
    ) -> Result<RawSocket, String> {
        if image.family != libc::AF_INET && image.family != libc::AF_INET6 {
            return Err(format!("family {}", image.family));
        }
        check_protocol(i32::from(image.protocol)).map_err(|_| "protocol 0".to_string())?;
        let local = image.local.as_deref().map(address).transpose()?;
        let peer = image.peer.as_deref().map(address).transpose()?;
        let v6 = image.family == libc::AF_INET6;
        for ip in local.iter().chain(peer.iter()) {
            if matches!(ip, IpAddress::Ipv6(_)) != v6 {
                return Err(format!("{ip} is not of the socket's family"));
            }
        }
        if image.checksum.is_some_and(|c| c % 2 == 1) {
            return Err("an odd IPV6_CHECKSUM offset".into());
        }
        let sock = RawSocket::new(stack, owner, image.family, image.protocol);
        {
            let mut opts = sock.opts();
            // IPPROTO_RAW always includes the header, and ICMPv6 always checksums.
            opts.hdrincl |= image.hdrincl;
            opts.icmp_filter = image.icmp_filter;
            opts.icmp6_filter = image.icmp6_filter;
            if !sock.is_icmpv6() {
                opts.checksum = image.checksum;
            }
            opts.bound_by_connect = image.bound_by_connect;
        }
        sock.with(|g, id| {
            if let Some(ip) = local.filter(|&ip| !g.is_own(ip)) {
                return Err(format!("{ip} is not an address of this sandbox"));
            }
            let e = g.entries.get_mut(&id).expect("present");
            e.bound = local.map(|ip| (Some(ip), 0));
            e.udp_peer = peer.map(|ip| (ip, 0));
            e.rd_shut = image.rd_shut;
            e.wr_shut = image.wr_shut;
            e.sndbuf = image.sndbuf.clamp(4608, BUF_MAX * 2);
            e.options = image
                .options
                .iter()
                .map(|(level, name, v)| ((*level, *name), v.clone()))
                .collect();
            let rcvbuf = image.rcvbuf.clamp(2304, BUF_MAX * 2);
            if e.rcvbuf != rcvbuf {
                e.rcvbuf = rcvbuf;
                Self::resize_rx(g, id, rcvbuf);
            }
            Ok(())
        })?;
        Ok(sock)
    }
}

impl FileOps for RawSocket {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(check_protocol(0), Err(Errno::EPROTONOSUPPORT));
        assert_eq!(check_protocol(-1), Err(Errno::EINVAL));
        assert_eq!(check_protocol(IPPROTO_MAX), Err(Errno::EINVAL));
        assert_eq!(check_protocol(256), Err(Errno::EPROTONOSUPPORT));
        assert_eq!(check_protocol(17), Ok(17));
    }

    #[test]
    fn an_ipv6_checksum_verifies() {
        let s = Ipv6Address::LOCALHOST;
        let mut p = vec![128u8, 0, 0, 0, 0, 1, 0, 1, b'x'];
        let c = checksum_v6(&s, &s, 58, &p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum_v6(&s, &s, 58, &p), 0);
    }

    /// An IPv4 packet from 10.0.0.1 to 10.0.0.2 of protocol 17 with `tos` and `payload`,
    /// as smoltcp would write it again (identification 0).
    fn v4(tos: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45,
            tos,
            0,
            20 + payload.len() as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        smoltcp::wire::Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    #[test]
    fn a_sent_class_is_put_back_once_in_order() {
        let mut c = Classes::default();
        c.note(&v4(0x28, b"same"));
        c.note(&v4(0x2c, b"same"));
        let mut out = v4(0, b"same");
        c.restore(&mut out);
        assert_eq!(out, v4(0x28, b"same"), "the oldest first, checksum again");
        let mut out = v4(0, b"same");
        c.restore(&mut out);
        assert_eq!(out[1], 0x2c);
        let mut out = v4(0, b"same");
        c.restore(&mut out);
        assert_eq!(out[1], 0, "each class is put back once");
        let mut other = v4(0, b"else");
        c.note(&v4(0x28, b"same"));
        c.restore(&mut other);
        assert_eq!(other[1], 0, "another payload is another packet");
    }

    #[test]
    fn a_received_class_is_found_by_identity() {
        let mut c = Classes::default();
        c.note(&v4(0, b"zero"));
        assert!(c.recent.is_empty(), "class 0 is not kept");
        let mut v6 = vec![0x6a, 0xc0, 0, 0, 0, 4, 17, 64];
        v6.extend_from_slice(&[0; 32]);
        v6.extend_from_slice(b"data");
        assert_eq!(
            class_of(&v6),
            Some(0xac),
            "an IPv6 traffic class spans two bytes"
        );
        assert_eq!(identity(&v6).map(|(_, c)| c), Some(0xac));
        c.note(&v4(0x2c, b"data"));
        assert_eq!(c.of(&v4(0, b"data")), Some(0x2c));
        assert_eq!(c.of(&v4(0, b"datb")), None);
        for i in 0..CLASSES_KEPT {
            c.note(&v4(4, &(i as u32).to_be_bytes()));
        }
        assert_eq!(c.of(&v4(0, b"data")), None, "at most CLASSES_KEPT are kept");
    }
}
