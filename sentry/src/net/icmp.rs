//! ICMP echo sockets over the sentry's stack ([`super::stack`]): ping sockets
//! (`SOCK_DGRAM, IPPROTO_ICMP` / `IPPROTO_ICMPV6`, what an unprivileged `ping` opens). Raw
//! ICMP sockets (`SOCK_RAW`, as busybox `ping` uses) are raw IP sockets ([`super::raw`]).
//!
//! Each is one smoltcp ICMP socket bound to an echo identifier: its "port" (bound, or an
//! ephemeral one at the first send), which the stack writes into every echo request, as
//! Linux does; it receives echo replies only. smoltcp answers echo requests to the stack's
//! addresses from the link.
//!
//! An echo request to one of the sandbox's own addresses never enters smoltcp (as UDP's
//! datagrams, [`super::udp`]): the sentry passes it and its reply through netfilter's
//! loopback hooks, counts both ([`super::mib`]) and queues the reply on the socket
//! ([`Entry::dgrams`]) with what its IP header carries, as Linux's `icmp_reply` builds
//! it: TTL (hop limit) 64, the request's TOS (traffic class). A receive gives the control
//! messages the socket asked for from those ([`super::udp::control`]: IP_PKTINFO,
//! IP_RECVTTL, IP_RECVTOS and the IPv6 ones). While a raw socket of the protocol or a
//! packet socket wants copies, echoes go through smoltcp (replies then carry no control
//! messages).
//!
//! # Lock order
//! The stack lock → wait queues (see [`super::stack`]).

use std::sync::Arc;

use smoltcp::socket::icmp;
use smoltcp::wire::{
    Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv6Address,
};

use super::config::LOOPBACK_INDEX;
use super::inet::{destination, int, int_of, parse, sockaddr, v6only};
use super::netfilter::{self, Packet};
use super::stack::{next_id, readiness, rx_len, Entry, Inner, Proto, St, Stack};
use super::udp::Datagram;
use super::{InMessage, IoFlags, OutMessage, Socket};
use crate::abi::Errno;
use crate::vfs::Context;
use crate::vfs::{FileOps, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::WaitQueue;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REPLY_V6: u8 = 129;
/// The TTL (hop limit) of Linux's echo replies (`ip_default_ttl`, the route's hop limit).
const REPLY_TTL: u8 = 64;
/// ICMP header bytes: type, code, checksum, identifier, sequence.
const HEADER: usize = 8;

/// An ICMP echo socket file.
pub struct IcmpSocket {
    id: u64,
    /// AF_INET or AF_INET6.
    family: i32,
    queue: Arc<WaitQueue>,
    stack: Arc<Stack>,
}

impl std::fmt::Debug for IcmpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpSocket")
            .field("id", &self.id)
            .field("family", &self.family)
            .finish()
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        self.stack.lock().remove(self.id);
        self.stack.kick();
    }
}

/// Whether (`family`, `ty`, `protocol`) names a ping socket.
pub fn is_ping(family: i32, ty: i32, protocol: i32) -> bool {
    let icmp = match family {
        libc::AF_INET => libc::IPPROTO_ICMP,
        _ => libc::IPPROTO_ICMPV6,
    };
    ty == libc::SOCK_DGRAM && protocol == icmp
}

impl IcmpSocket {
    /// A new ping socket of `family`.
    pub fn new(stack: &Arc<Stack>, family: i32) -> IcmpSocket {
        let queue = Arc::new(WaitQueue::new());
        let id = next_id();
        stack
            .lock()
            .entries
            .insert(id, Entry::new(Proto::Icmp, family, queue.clone()));
        IcmpSocket {
            id,
            family,
            queue,
            stack: stack.clone(),
        }
    }

    fn echo_request(&self) -> u8 {
        if self.family == libc::AF_INET6 {
            ECHO_REQUEST_V6
        } else {
            ECHO_REQUEST_V4
        }
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

    /// The address parsed for this socket's family (never a v4-mapped one for ICMPv6,
    /// whose peers speak IPv6).
    fn parse(&self, addr: &[u8]) -> Result<Option<(IpAddress, u16)>, Errno> {
        let r = parse(self.family, addr)?;
        if self.family == libc::AF_INET6 && matches!(r, Some((IpAddress::Ipv4(_), _))) {
            return Err(Errno::EINVAL);
        }
        Ok(r)
    }

    /// Takes echo identifier `ident` (0: an ephemeral one) unless bound.
    fn bind_locked(
        g: &mut Inner,
        id: u64,
        addr: Option<IpAddress>,
        ident: u16,
    ) -> Result<(), Errno> {
        if g.entries[&id].bound.is_some() {
            return Err(Errno::EINVAL);
        }
        let ident = g.take_port(Proto::Icmp, ident, id)?;
        let h = g.new_icmp(ident);
        let e = g.entries.get_mut(&id).expect("present");
        e.bound = Some((addr, ident));
        e.owns_port = true;
        e.st = St::Icmp(h);
        Ok(())
    }

    /// One receive attempt: `None` when nothing is there yet.
    fn take(&self, g: &mut Inner, id: u64, len: usize) -> Option<InMessage> {
        let St::Icmp(h) = g.entries[&id].st else {
            return None;
        };
        let peer = g.entries[&id].udp_peer.map(|p| p.0);
        let e = g.entries.get_mut(&id).expect("present");
        while let Some(d) = e.dgrams.pop_front() {
            e.dgram_bytes -= d.data.len();
            if peer.is_some_and(|p| p != d.src.0) {
                continue;
            }
            let n = d.data.len().min(len);
            return Some(InMessage {
                data: d.data[..n].to_vec(),
                full_len: d.data.len(),
                from: Some(sockaddr(self.family, d.src.0, 0)),
                control: super::udp::control(e, &d),
                ..InMessage::default()
            });
        }
        loop {
            let (data, from) = {
                let s = g.icmp(h);
                let (d, from) = s.recv().ok()?;
                (d.to_vec(), from)
            };
            // A ping socket hears replies only (its own requests to itself come back too).
            let unwanted =
                data.first() == Some(&self.echo_request()) || peer.is_some_and(|p| p != from);
            if unwanted {
                continue;
            }
            let n = data.len().min(len);
            return Some(InMessage {
                data: data[..n].to_vec(),
                full_len: data.len(),
                from: Some(sockaddr(self.family, from, 0)),
                ..InMessage::default()
            });
        }
    }
}

impl Socket for IcmpSocket {
    fn bind(&self, _t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        let (ip, ident) = self.parse(addr)?.ok_or(Errno::EAFNOSUPPORT)?;
        // As Linux's ping_check_bind_addr: an IPv6 address that is neither the wildcard
        // nor unicast is EINVAL (an IPv4 multicast one is EADDRNOTAVAIL, below).
        if matches!(ip, IpAddress::Ipv6(a) if a.is_multicast()) {
            return Err(Errno::EINVAL);
        }
        self.with(|g, id| {
            let ip = if ip.is_unspecified() {
                None
            } else if g.is_own(ip) {
                Some(ip)
            } else {
                return Err(Errno::EADDRNOTAVAIL);
            };
            Self::bind_locked(g, id, ip, ident)
        })
    }

    fn connect(&self, _t: &mut dyn Context, addr: &[u8], _nonblocking: bool) -> Result<(), Errno> {
        let target = self.parse(addr)?;
        // Only the peer is recorded: nothing is sent, so the interface is not pumped (a
        // pump visits every socket, and a program may connect tens of thousands of them).
        let mut g = self.stack.lock();
        let peer = match target {
            None => None,
            // The port means nothing to ICMP but getpeername reports it, as Linux's.
            Some((ip, port)) => Some((destination(&g, ip, 0)?.0.addr, port)),
        };
        g.entries.get_mut(&self.id).expect("present").udp_peer = peer;
        Ok(())
    }

    fn send(
        &self,
        t: &mut dyn Context,
        mut msg: OutMessage,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        // Linux's ping_v4_sendmsg and ping_v6_sendmsg: at most 64 KiB.
        if src.remaining() > usize::from(u16::MAX) {
            return Err(Errno::EMSGSIZE);
        }
        msg.data = super::gather(src)?;
        let to = match msg.to.as_deref() {
            Some(a) => Some(self.parse(a)?.ok_or(Errno::EAFNOSUPPORT)?.0),
            None => None,
        };
        let mut data = msg.data;
        if data.len() < HEADER {
            return Err(Errno::EINVAL);
        }
        // Linux's ping sockets send echo requests only.
        if data[0] != self.echo_request() || data[1] != 0 {
            return Err(Errno::EINVAL);
        }
        t.block_on(&[&self.queue], None, || {
            self.with(|g, id| {
                let ip = match to.or(g.entries[&id].udp_peer.map(|p| p.0)) {
                    Some(ip) => ip,
                    None => return Some(Err(Errno::EDESTADDRREQ)),
                };
                let dst = match destination(g, ip, 0) {
                    Ok((ep, _)) => ep.addr,
                    Err(e) => return Some(Err(e)),
                };
                if g.entries[&id].bound.is_none() {
                    if let Err(e) = Self::bind_locked(g, id, None, 0) {
                        return Some(Err(e));
                    }
                }
                let Some((_, ident)) = g.entries[&id].bound else {
                    return Some(Err(Errno::EINVAL));
                };
                let St::Icmp(h) = g.entries[&id].st else {
                    return Some(Err(Errno::EINVAL));
                };
                data[4..6].copy_from_slice(&ident.to_be_bytes());
                let proto = if self.family == libc::AF_INET6 {
                    IpProtocol::Icmpv6
                } else {
                    IpProtocol::Icmp
                };
                if g.is_own(dst) && !g.copies_wanted(proto) {
                    return Some(echo_inside(g, id, &data, dst).map(|()| data.len()));
                }
                match g.icmp(h).send_slice(&data, dst) {
                    Ok(()) => Some(Ok(data.len())),
                    Err(icmp::SendError::BufferFull) if flags.nonblocking => {
                        Some(Err(Errno::EAGAIN))
                    }
                    Err(icmp::SendError::BufferFull) => None,
                    Err(icmp::SendError::Unaddressable) => Some(Err(Errno::EINVAL)),
                }
            })
        })
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        let g = self.stack.lock();
        Ok(rx_len(&g.set, &g.entries[&self.id]))
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
        let g = self.stack.lock();
        let any = match self.family {
            libc::AF_INET6 => IpAddress::Ipv6(Ipv6Address::UNSPECIFIED),
            _ => IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
        };
        match g.entries[&self.id].bound {
            Some((ip, ident)) => sockaddr(self.family, ip.unwrap_or(any), ident),
            None => sockaddr(self.family, any, 0),
        }
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        let g = self.stack.lock();
        // As Linux's `inet_getname`: a socket connected without a port has no peer name.
        g.entries[&self.id]
            .udp_peer
            .filter(|&(_, port)| port != 0)
            .map(|(ip, port)| sockaddr(self.family, ip, port))
            .ok_or(Errno::ENOTCONN)
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
            Ok(())
        })
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        let mut g = self.stack.lock();
        let e = g.entries.get_mut(&self.id).expect("present");
        let protocol = match self.family {
            libc::AF_INET6 => libc::IPPROTO_ICMPV6,
            _ => libc::IPPROTO_ICMP,
        };
        Ok(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => int(libc::SOCK_DGRAM),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(self.family),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(protocol),
            (libc::SOL_SOCKET, libc::SO_ERROR) => int(e.error.take().map_or(0, |e| e as i32)),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(e.sndbuf as i32),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(e.rcvbuf as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if self.family == libc::AF_INET6 => {
                int(i32::from(v6only(e)))
            }
            (libc::SOL_SOCKET | libc::IPPROTO_IP | libc::IPPROTO_IPV6, _) => e
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or_else(|| int(0)),
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        // ping and busybox ping set socket, IP and ICMP filter (SOL_RAW) options; they are
        // recorded.
        if !matches!(
            level,
            libc::SOL_SOCKET
                | libc::SOL_RAW
                | libc::IPPROTO_IP
                | libc::IPPROTO_IPV6
                | libc::IPPROTO_ICMPV6
        ) {
            return Err(Errno::ENOPROTOOPT);
        }
        if value.is_empty() {
            return Err(Errno::EINVAL);
        }
        self.with(|g, id| {
            let e = g.entries.get_mut(&id).expect("present");
            match (level, name) {
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                    e.sndbuf = (int_of(value)?.max(0) as usize * 2).max(4608);
                }
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                    e.rcvbuf = (int_of(value)?.max(0) as usize * 2).max(2304);
                }
                _ => {
                    e.options.insert((level, name), value.to_vec());
                }
            }
            Ok(())
        })
    }
}

impl IcmpSocket {
    /// One receive of at most `len` bytes, staged in the message.
    fn recv_staged(
        &self,
        t: &mut dyn Context,
        len: usize,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        if flags.peek {
            // smoltcp's ICMP sockets cannot look without taking; no ping peeks.
            return Err(Errno::EOPNOTSUPP);
        }
        t.block_on(&[&self.queue], None, || {
            self.with(|g, id| match self.take(g, id, len) {
                Some(m) => Some(Ok(m)),
                None if flags.nonblocking => Some(Err(Errno::EAGAIN)),
                None => None,
            })
        })
    }
}

/// Answers echo request `request` (its identifier written) that entry `id` sends to `dst`,
/// one of the sandbox's own addresses, as the sandbox's kernel: the request and the reply
/// pass the loopback's netfilter hooks and counters, and the reply is queued on the entry
/// while its receive buffer has room (see the module docs).
///
/// # Errors
/// EPERM when an OUTPUT rule drops the request.
fn echo_inside(g: &mut Inner, id: u64, request: &[u8], dst: IpAddress) -> Result<(), Errno> {
    let e = &g.entries[&id];
    let v4 = matches!(dst, IpAddress::Ipv4(_));
    let src = e
        .bound
        .and_then(|b| b.0)
        .filter(|a| g.is_own(*a) && matches!(a, IpAddress::Ipv4(_)) == v4)
        .unwrap_or_else(|| g.source_for(dst));
    let (tos, ttl) = if v4 {
        (option_byte(e, libc::IPPROTO_IP, libc::IP_TOS), libc::IP_TTL)
    } else {
        (
            option_byte(e, libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
            libc::IPV6_UNICAST_HOPS,
        )
    };
    let level = if v4 {
        libc::IPPROTO_IP
    } else {
        libc::IPPROTO_IPV6
    };
    let hops = match option_byte(e, level, ttl) {
        0 => REPLY_TTL,
        n => n,
    };
    let request = ip_packet(src, dst, hops, tos, request);
    if !looped(g, &request)? {
        return Ok(());
    }
    let header = if v4 { 20 } else { 40 };
    let mut reply = request[header..].to_vec();
    reply[0] = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    let reply = ip_packet(dst, src, REPLY_TTL, tos, &reply);
    // A reply dropped on its way out is no error of the sender's.
    if !looped(g, &reply).unwrap_or(false) {
        return Ok(());
    }
    let data = reply[header..].to_vec();
    let e = g.entries.get_mut(&id).expect("present");
    if e.dgram_bytes >= e.rcvbuf {
        return Ok(());
    }
    e.dgram_bytes += data.len();
    e.dgrams.push_back(Datagram {
        data,
        src: (dst, 0),
        dst: (src, e.bound.map_or(0, |b| b.1)),
        // Linux's ping sockets leave ipi_spec_dst unset.
        spec_dst: IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
        ttl: REPLY_TTL,
        tos,
        ifindex: LOOPBACK_INDEX,
        at: std::time::SystemTime::now(),
    });
    Ok(())
}

/// Whether IP packet `ip` that stays inside the sandbox is delivered (netfilter's loopback
/// hooks), counted as the loopback counts it.
///
/// # Errors
/// EPERM when an OUTPUT rule drops it.
fn looped(g: &mut Inner, ip: &[u8]) -> Result<bool, Errno> {
    let p = Packet::parse(ip, "", "").ok_or(Errno::EINVAL)?;
    let delivered = netfilter::looped(g.netfilter(), p);
    g.mib.looped(ip, delivered == Ok(true));
    delivered
}

/// The low byte of an option recorded as set (an int, or a single byte), 0 when unset.
fn option_byte(e: &Entry, level: i32, name: i32) -> u8 {
    match e.options.get(&(level, name)).map(Vec::as_slice) {
        Some([b]) => *b,
        Some(v) if v.len() >= 4 => i32::from_ne_bytes([v[0], v[1], v[2], v[3]]).clamp(0, 255) as u8,
        _ => 0,
    }
}

/// The IP packet (no options or extension headers) carrying ICMP message `icmp` from
/// `src` to `dst`, its ICMP checksum filled in.
fn ip_packet(src: IpAddress, dst: IpAddress, ttl: u8, tos: u8, icmp: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + icmp.len());
    match (src, dst) {
        (IpAddress::Ipv4(s), IpAddress::Ipv4(d)) => {
            let len = u16::try_from(20 + icmp.len()).unwrap_or(u16::MAX);
            p.extend_from_slice(&[0x45, tos]);
            p.extend_from_slice(&len.to_be_bytes());
            // Identification 0, DF, the TTL, ICMP, the header checksum below.
            p.extend_from_slice(&[0, 0, 0x40, 0, ttl, 1, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            p.extend_from_slice(icmp);
            Icmpv4Packet::new_unchecked(&mut p[20..]).fill_checksum();
        }
        (s, d) => {
            let six = |a: IpAddress| match a {
                IpAddress::Ipv6(a) => a,
                IpAddress::Ipv4(a) => a.to_ipv6_mapped(),
            };
            let (s, d) = (six(s), six(d));
            let len = u16::try_from(icmp.len()).unwrap_or(u16::MAX);
            p.extend_from_slice(&[0x60 | (tos >> 4), tos << 4, 0, 0]);
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[58, ttl]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(icmp);
            Icmpv6Packet::new_unchecked(&mut p[40..]).fill_checksum(&s, &d);
        }
    }
    p
}

/// What a checkpoint keeps of a ping socket (`kernel::checkpoint`): its echo identifier
/// and address (how it was bound), its peer, shutdown state and options. Replies queued
/// when the checkpoint was taken are not kept (as datagrams queued at a UDP socket).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IcmpImage {
    pub family: i32,
    /// The bound address (None: the wildcard) and echo identifier; None: unbound.
    pub bound: Option<(Option<String>, u16)>,
    /// The address (and port, which only getpeername reports) it is connected to.
    pub peer: Option<(String, u16)>,
    pub rd_shut: bool,
    pub wr_shut: bool,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Options recorded only: (level, name, value).
    pub options: Vec<(i32, i32, Vec<u8>)>,
}

fn address(a: &str) -> Result<IpAddress, String> {
    a.parse().map_err(|_| format!("bad address {a:?}"))
}

impl IcmpSocket {
    /// The stack the socket lives in (its network namespace's).
    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }

    /// This socket for a checkpoint.
    pub fn saved(&self) -> IcmpImage {
        let g = self.stack.lock();
        let e = &g.entries[&self.id];
        IcmpImage {
            family: self.family,
            bound: e
                .bound
                .filter(|_| e.owns_port)
                .map(|(a, ident)| (a.map(|a| a.to_string()), ident)),
            peer: e.udp_peer.map(|(a, port)| (a.to_string(), port)),
            rd_shut: e.rd_shut,
            wr_shut: e.wr_shut,
            rcvbuf: e.rcvbuf,
            sndbuf: e.sndbuf,
            options: e
                .options
                .iter()
                .map(|(&(level, name), v)| (level, name, v.clone()))
                .collect(),
        }
    }

    /// A ping socket as [`IcmpSocket::saved`] described it, on `stack`.
    ///
    /// # Errors
    /// The identifier is taken or the address is not the stack's in this sandbox, or the
    /// image is malformed.
    pub fn restored(stack: &Arc<Stack>, image: &IcmpImage) -> Result<IcmpSocket, String> {
        if image.family != libc::AF_INET && image.family != libc::AF_INET6 {
            return Err(format!("family {}", image.family));
        }
        let bound = match &image.bound {
            Some((a, ident)) => Some((a.as_deref().map(address).transpose()?, *ident)),
            None => None,
        };
        let peer = match &image.peer {
            Some((a, port)) => Some((address(a)?, *port)),
            None => None,
        };
        let sock = IcmpSocket::new(stack, image.family);
        sock.with(|g, id| {
            if let Some((ip, ident)) = bound {
                if ip.is_some_and(|ip| !g.is_own(ip)) {
                    return Err(format!(
                        "{} is not an address of this sandbox",
                        ip.map_or(String::new(), |ip| ip.to_string())
                    ));
                }
                Self::bind_locked(g, id, ip, ident)
                    .map_err(|e| format!("taking echo identifier {ident} ({e:?})"))?;
            }
            let e = g.entries.get_mut(&id).expect("present");
            e.udp_peer = peer;
            e.rd_shut = image.rd_shut;
            e.wr_shut = image.wr_shut;
            e.rcvbuf = image.rcvbuf;
            e.sndbuf = image.sndbuf;
            e.options = image
                .options
                .iter()
                .map(|(level, name, v)| ((*level, *name), v.clone()))
                .collect();
            Ok(())
        })?;
        Ok(sock)
    }
}

impl FileOps for IcmpSocket {
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
    fn socket_kinds() {
        assert!(is_ping(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP));
        assert!(is_ping(
            libc::AF_INET6,
            libc::SOCK_DGRAM,
            libc::IPPROTO_ICMPV6
        ));
        assert!(!is_ping(
            libc::AF_INET6,
            libc::SOCK_RAW,
            libc::IPPROTO_ICMPV6
        ));
        assert!(!is_ping(libc::AF_INET, libc::SOCK_DGRAM, 0));
    }
}
