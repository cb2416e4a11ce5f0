//! The stack's device ([`Device`]): frames between smoltcp and the pod's link (an AF_PACKET
//! socket boot opened and bound to it), plus the loopback that carries whatever the sandbox
//! sends to itself.
//!
//! smoltcp has no loopback for an interface's own addresses: a frame for 127.0.0.1 or for
//! the link's own address would leave on the wire (after an ARP or neighbour solicitation
//! that nobody answers). The device keeps such frames inside instead: a frame addressed to
//! the interface's own MAC, and an ARP request or neighbour solicitation for one of its own
//! addresses, go to the loopback queue and come back as received frames, so smoltcp
//! resolves its own addresses to its own MAC and talks to itself like to any neighbour. In
//! loopback-only mode (`Medium::Ip`, no link) every packet is looped.
//!
//! Frames are read from the nonblocking packet socket until EAGAIN, at most
//! [`FRAMES_PER_POLL`] per interface poll, so a flood costs bounded work per round and the
//! stack lock is released between rounds. The frames the socket shows us of our own
//! transmissions (packet sockets see outgoing frames too) carry our MAC as source and are
//! dropped. Checksums of received frames are not verified: a veth peer hands over frames
//! with checksum offload (the checksum not yet filled in) and segmentation offload
//! (segments larger than the MTU); both are whole and correct on that local medium.
//!
//! The interface takes every unicast packet (smoltcp's AnyIP), so that a whole network on
//! the loopback is local as on Linux (127.0.0.5 as much as 127.0.0.1); the device lets in
//! only what is for the stack ([`Local::accepts`]): a packet for one of its addresses or
//! loopback networks, a broadcast or multicast one, an ARP request or neighbour
//! solicitation for one of its addresses. Off the wire, nothing for 127.0.0.0/8 or ::1
//! (Linux drops such martians too).
//!
//! IP fragments are reassembled here before smoltcp sees them, whatever link they came
//! by, and packets above the link's MTU are cut into fragments as they leave on the wire
//! ([`frag`]); the loopback carries whole packets. Netfilter sees what Linux's tables see
//! without connection tracking: PREROUTING each fragment, INPUT the reassembled datagram,
//! OUTPUT and POSTROUTING the whole packet before it is cut.
//!
//! Host system calls: read(2) and write(2) on the packet socket.

mod frag;

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::config::{Link, LOOPBACK_INDEX};
use super::netfilter::{Netfilter, Verdict, LOCAL_IN, LOCAL_OUT, POST_ROUTING, PRE_ROUTING};
use super::packet::{
    pkttype_of, Iface, Taps, ARPHRD_ETHER, ETH_HLEN, ETH_P_IP, ETH_P_IPV6, PACKET_HOST,
    PACKET_OUTGOING,
};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpCidr,
    IpListenEndpoint, IpProtocol, Ipv4Address, Ipv4Packet, Ipv6Address, Ipv6Packet, TcpPacket,
    UdpPacket,
};

/// Most frames one interface poll takes in (wire and loopback together).
pub const FRAMES_PER_POLL: usize = 32;
/// The largest frame a packet socket hands over: a segmentation-offload frame of a whole
/// IP packet (64 KiB) plus its Ethernet header.
const MAX_FRAME: usize = 65_536 + 64;
/// The IP MTU smoltcp sees: the loopback's, so that the sandbox talking to itself is not cut
/// to the link's MTU; towards the wire TCP segments follow the peer's MSS.
const IP_MTU: usize = 65_535;
/// Most remote addresses remembered as heard from (a bounded set).
const MAX_HEARD: usize = 4096;
/// ICMPv6 neighbour solicitation.
const NDP_SOLICIT: u8 = 135;
/// Most packets written to TUN/TAP files waiting for the stack's next poll.
const FROM_TUN_MAX: usize = 1024;

/// The addresses the stack answers for.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// The interface's addresses with their networks.
    pub cidrs: Vec<IpCidr>,
    /// Of those, the IPv4 ones on the loopback: every address of their networks is local.
    pub loopback_nets: Vec<IpCidr>,
}

impl Local {
    /// Whether `a` is one of the stack's addresses: its own, or one of a loopback network
    /// other than its broadcast address (which Linux's `local` table lists as broadcast).
    pub fn contains(&self, a: IpAddress) -> bool {
        self.cidrs.iter().any(|c| c.address() == a)
            || self
                .loopback_nets
                .iter()
                .any(|c| c.contains_addr(&a) && broadcast(c).map(IpAddress::Ipv4) != Some(a))
    }

    /// Whether an IPv4 destination is for the stack: local, multicast, the limited
    /// broadcast or a network's broadcast address.
    fn accepts_v4(&self, dst: Ipv4Address) -> bool {
        dst.is_multicast()
            || dst.is_broadcast()
            || self.contains(IpAddress::Ipv4(dst))
            || self.cidrs.iter().any(|c| broadcast(c) == Some(dst))
    }

    fn accepts_v6(&self, dst: Ipv6Address) -> bool {
        dst.is_multicast() || self.contains(IpAddress::Ipv6(dst))
    }

    /// Whether a received frame (IP packet on `Medium::Ip`) is for the stack; off the wire
    /// (`from_wire`) nothing for the loopback's 127.0.0.0/8 or ::1 is. A frame the stack
    /// looped to itself is, whatever its destination: it was routed to the loopback when
    /// sent (Linux keeps a looped packet's local route, so a raw `IP_HDRINCL` packet sent
    /// to 127.0.0.1 with another destination in its header is delivered here).
    pub fn accepts(&self, medium: Medium, frame: &[u8], from_wire: bool) -> bool {
        if !from_wire {
            return true;
        }
        let martian = |a: IpAddress| IpAddr::from(a).is_loopback();
        let (ethertype, ip) = if medium == Medium::Ethernet {
            let Ok(eth) = EthernetFrame::new_checked(frame) else {
                return false;
            };
            (eth.ethertype(), &frame[frame.len() - eth.payload().len()..])
        } else {
            match frame.first().map(|b| b >> 4) {
                Some(4) => (EthernetProtocol::Ipv4, frame),
                Some(6) => (EthernetProtocol::Ipv6, frame),
                _ => return false,
            }
        };
        match ethertype {
            EthernetProtocol::Arp => arp_target(ip)
                .is_some_and(|t| self.contains(IpAddress::Ipv4(t)) && !martian(t.into())),
            EthernetProtocol::Ipv4 => Ipv4Packet::new_checked(ip)
                .is_ok_and(|p| self.accepts_v4(p.dst_addr()) && !martian(p.dst_addr().into())),
            EthernetProtocol::Ipv6 => Ipv6Packet::new_checked(ip).is_ok_and(|p| {
                self.accepts_v6(p.dst_addr())
                    && !martian(p.dst_addr().into())
                    && solicited(&p).is_none_or(|t| self.contains(IpAddress::Ipv6(t)))
            }),
            _ => true,
        }
    }
}

/// The broadcast address of an IPv4 network that has one (a prefix shorter than 31).
fn broadcast(c: &IpCidr) -> Option<Ipv4Address> {
    match c {
        IpCidr::Ipv4(c) if c.prefix_len() < 31 => c.broadcast(),
        _ => None,
    }
}

/// The target of an ARP packet.
fn arp_target(payload: &[u8]) -> Option<Ipv4Address> {
    let arp = ArpPacket::new_checked(payload).ok()?;
    let t: [u8; 4] = arp.target_protocol_addr().try_into().ok()?;
    Some(Ipv4Address::from(t))
}

/// The target of a neighbour solicitation.
fn solicited(ip: &Ipv6Packet<&[u8]>) -> Option<Ipv6Address> {
    let icmp = ip.payload();
    // A neighbour solicitation: type, code, checksum, reserved, then the target.
    if ip.next_header() != IpProtocol::Icmpv6 || icmp.len() < 24 || icmp[0] != NDP_SOLICIT {
        return None;
    }
    let target: [u8; 16] = icmp[8..24].try_into().ok()?;
    Some(target.into())
}

/// One packet-socket link.
#[derive(Debug)]
struct Port {
    fd: Arc<OwnedFd>,
    mac: EthernetAddress,
    /// The link as the sandbox's packet sockets see it.
    iface: Iface,
    mtu: usize,
    /// Its name (what netfilter rules name as interface).
    name: String,
}

/// The stack's device: the link (if any) and the loopback queue.
#[derive(Debug)]
pub struct Device {
    medium: Medium,
    port: Option<Port>,
    /// Frames sent to ourselves, delivered before the wire's.
    looped: VecDeque<Vec<u8>>,
    /// The stack's addresses: ARP requests and neighbour solicitations for them stay
    /// inside, and only packets for them come in ([`Local::accepts`]).
    pub local: Local,
    /// Frames still allowed in this poll.
    budget: usize,
    /// Remote addresses that have sent us something on the wire (for telling an unreachable
    /// neighbour from a silent one).
    heard: HashSet<IpAddress>,
    rx: Vec<u8>,
    /// Listeners whose accept queue is full: a SYN for them is dropped unanswered, as Linux
    /// does, and the peer's retransmission comes back later.
    pub full_listeners: Vec<IpListenEndpoint>,
    /// TCP sockets' socket filters (SO_ATTACH_FILTER), which the segments for them pass
    /// ([`super::inet::TcpFilter`]).
    pub tcp_filters: Vec<super::inet::TcpFilter>,
    /// The sandbox's packet sockets, which get copies of the frames ([`super::packet`]).
    pub taps: Taps,
    /// The namespace's TUN/TAP links (loopback-only stacks route to them).
    pub tun: Option<Arc<super::tun::Devices>>,
    /// Their networks that are up, by link index.
    pub tun_routes: Vec<(IpCidr, i32)>,
    /// IP packets written to a TUN/TAP file, delivered before the loopback's.
    from_tun: VecDeque<Vec<u8>>,
    /// The namespace's netfilter tables, which every IP packet sent and received passes.
    pub netfilter: Arc<Netfilter>,
    /// The TOS and traffic class of the packets handed to the stack lately, which raw
    /// sockets read ([`super::raw::Classes`]).
    pub classes: super::raw::Classes,
    /// Those of the packets raw sockets sent, put back as they leave.
    pub sent_classes: super::raw::Classes,
    /// The datagrams whose fragments are arriving.
    reassembly: frag::Reassembly,
    /// The identification of the last IPv6 datagram cut into fragments.
    frag_id: u32,
}

impl Device {
    /// A loopback-only device.
    pub fn loopback() -> Device {
        Device {
            medium: Medium::Ip,
            port: None,
            looped: VecDeque::new(),
            local: Local::default(),
            budget: FRAMES_PER_POLL,
            heard: HashSet::new(),
            rx: Vec::new(),
            full_listeners: Vec::new(),
            tcp_filters: Vec::new(),
            taps: Taps::default(),
            tun: None,
            tun_routes: Vec::new(),
            from_tun: VecDeque::new(),
            netfilter: Arc::default(),
            classes: super::raw::Classes::default(),
            sent_classes: super::raw::Classes::default(),
            reassembly: frag::Reassembly::default(),
            frag_id: first_frag_id(),
        }
    }

    /// A device on packet socket `fd` (nonblocking) of `link`; the stack sets its
    /// addresses ([`Device::local`]).
    pub fn ethernet(fd: Arc<OwnedFd>, link: &Link) -> Device {
        Device {
            medium: Medium::Ethernet,
            port: Some(Port {
                fd,
                mac: EthernetAddress(link.mac),
                iface: Iface {
                    index: link.index,
                    hatype: ARPHRD_ETHER,
                },
                mtu: link.mtu as usize,
                name: link.name.clone(),
            }),
            looped: VecDeque::new(),
            local: Local::default(),
            budget: FRAMES_PER_POLL,
            heard: HashSet::new(),
            rx: vec![0; MAX_FRAME],
            full_listeners: Vec::new(),
            tcp_filters: Vec::new(),
            taps: Taps::default(),
            tun: None,
            tun_routes: Vec::new(),
            from_tun: VecDeque::new(),
            netfilter: Arc::default(),
            classes: super::raw::Classes::default(),
            sent_classes: super::raw::Classes::default(),
            reassembly: frag::Reassembly::default(),
            frag_id: first_frag_id(),
        }
    }

    /// Starts a new interface poll: the frame budget is refilled.
    pub fn refill(&mut self) {
        self.budget = FRAMES_PER_POLL;
    }

    /// Whether the last poll stopped at its budget (more frames may be waiting).
    pub fn exhausted(&self) -> bool {
        self.budget == 0
    }

    /// Whether frames sent to ourselves wait for the next poll.
    pub fn has_looped(&self) -> bool {
        !self.looped.is_empty() || !self.from_tun.is_empty()
    }

    /// Whether `addr` has sent us anything on the wire; for an address reached through a
    /// TUN/TAP link, whether the link can send to it now (a TAP link knows its hardware
    /// address).
    pub fn heard_from(&self, addr: &IpAddress) -> bool {
        // A TUN/TAP link's neighbours are its own: they go with the link, as Linux's
        // neighbour entries go with their device.
        match (&self.tun, tun_route(&self.tun_routes, *addr)) {
            (Some(tun), Some(index)) => tun.resolved(index, IpAddr::from(*addr)),
            _ => self.heard.contains(addr),
        }
    }

    /// Whether the device only loops (no link): TUN/TAP links are routed on such stacks.
    pub fn is_loopback_only(&self) -> bool {
        self.medium == Medium::Ip
    }

    /// Takes an IP packet written to a TUN/TAP file, for the next poll.
    pub fn inject(&mut self, packet: Vec<u8>) {
        if self.from_tun.len() < FROM_TUN_MAX {
            if let Some(src) = source_of(&packet) {
                if self.heard.len() < MAX_HEARD {
                    self.heard.insert(src);
                }
            }
            self.from_tun.push_back(packet);
        }
    }

    /// The link's hardware address and MTU (`None`: loopback only).
    pub fn link(&self) -> Option<([u8; 6], usize)> {
        self.port.as_ref().map(|p| (p.mac.0, p.mtu))
    }

    /// Sends a frame a packet socket (`sender`) wrote on `iface`: the taps see it leave; on
    /// the loopback it comes back as received (an IPv4 or IPv6 one into the stack at the
    /// next poll), on the link it goes to the wire.
    pub fn send_frame(&mut self, iface: Iface, mut frame: Vec<u8>, sender: u64) {
        self.taps
            .capture(iface, &frame, PACKET_OUTGOING, Some(sender));
        if iface.index != LOOPBACK_INDEX {
            if let Some(port) = &self.port {
                if let Err(e) = rustix::io::write(port.fd.as_fd(), &frame) {
                    log::trace!("netstack: a packet socket's frame: {e}");
                }
            }
            return;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        // The IP-only loopback keeps no link header: a frame whose payload is not a packet
        // of its EtherType's IP version could not be told apart again when it comes back.
        // The stack would drop it; the taps get its received copy now, as Linux's `lo`
        // hands them a frame before IP looks at it.
        let version = frame.get(ETH_HLEN).map(|b| b >> 4);
        let ip_only = matches!(
            (ethertype, version),
            (ETH_P_IP, Some(4)) | (ETH_P_IPV6, Some(6))
        );
        if !matches!(ethertype, ETH_P_IP | ETH_P_IPV6) || (self.port.is_none() && !ip_only) {
            self.taps.capture(iface, &frame, PACKET_HOST, None);
            return;
        }
        match &self.port {
            Some(port) => {
                frame[..6].copy_from_slice(&port.mac.0);
                frame[6..12].copy_from_slice(&port.mac.0);
                self.looped.push_back(frame);
            }
            None => self.looped.push_back(frame.split_off(ETH_HLEN)),
        }
    }

    /// Hands the taps a copy of a frame the loopback carried (`pkttype`: sent or received).
    fn capture_looped(&mut self, frame: &[u8], pkttype: u8) {
        capture_looped(&mut self.taps, self.medium, frame, pkttype);
    }

    /// The next frame off the wire, skipping our own transmissions.
    fn read_wire(&mut self) -> Option<Vec<u8>> {
        let port = self.port.as_ref()?;
        loop {
            let n = match rustix::io::read(port.fd.as_fd(), &mut self.rx) {
                Ok(n) => n,
                Err(rustix::io::Errno::AGAIN) => return None,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    log::debug!("netstack: reading the link: {e}");
                    return None;
                }
            };
            let frame = &self.rx[..n];
            let Ok(eth) = EthernetFrame::new_checked(frame) else {
                continue;
            };
            if eth.src_addr() == port.mac {
                continue;
            }
            if !self.taps.is_empty() {
                let pkttype = pkttype_of(frame, port.mac.0);
                self.taps.capture(port.iface, frame, pkttype, None);
            }
            if let Some(src) = sender(&eth) {
                if self.heard.len() >= MAX_HEARD {
                    self.heard.clear();
                }
                self.heard.insert(src);
            }
            return Some(frame.to_vec());
        }
    }
}

/// Hands `taps` a copy of a frame the loopback carried: an IP packet (`Medium::Ip`) or an
/// Ethernet frame between our own addresses, shown as the loopback shows it (zero
/// addresses; the loopback carries no ARP nor neighbour discovery).
fn capture_looped(taps: &mut Taps, medium: Medium, frame: &[u8], pkttype: u8) {
    if taps.is_empty() {
        return;
    }
    if medium == Medium::Ip {
        taps.capture_ip(frame, pkttype);
        return;
    }
    let Some(ethertype) = frame.get(12..14) else {
        return;
    };
    if !matches!(
        u16::from_be_bytes([ethertype[0], ethertype[1]]),
        ETH_P_IP | ETH_P_IPV6
    ) {
        return;
    }
    let mut copy = frame.to_vec();
    copy[..12].fill(0);
    taps.capture(Iface::LOOPBACK, &copy, pkttype, None);
}

/// The IP address that sent an Ethernet frame (an ARP sender or an IP source).
fn sender(eth: &EthernetFrame<&[u8]>) -> Option<IpAddress> {
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let arp = ArpPacket::new_checked(eth.payload()).ok()?;
            let a: [u8; 4] = arp.source_protocol_addr().try_into().ok()?;
            Some(IpAddress::v4(a[0], a[1], a[2], a[3]))
        }
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            Some(IpAddress::Ipv4(ip.src_addr()))
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            Some(IpAddress::Ipv6(ip.src_addr()))
        }
        _ => None,
    }
}

/// Whether an outgoing Ethernet frame stays inside: it is for our own MAC, or it asks for
/// the hardware address of one of our own addresses.
fn stays_inside(frame: &[u8], mac: EthernetAddress, local: &Local) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.dst_addr() == mac {
        return true;
    }
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            ArpPacket::new_checked(eth.payload())
                .is_ok_and(|arp| arp.operation() == ArpOperation::Request)
                && arp_target(eth.payload()).is_some_and(|t| local.contains(IpAddress::Ipv4(t)))
        }
        EthernetProtocol::Ipv6 => Ipv6Packet::new_checked(eth.payload())
            .ok()
            .and_then(|ip| solicited(&ip))
            .is_some_and(|t| local.contains(IpAddress::Ipv6(t))),
        _ => false,
    }
}

impl phy::Device for Device {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        loop {
            if self.budget == 0 {
                return None;
            }
            let (mut frame, iface, from_wire) = if let Some(p) = self.from_tun.pop_front() {
                (p, "", true)
            } else if let Some(f) = self.looped.pop_front() {
                self.capture_looped(&f, PACKET_HOST);
                (f, LOOPBACK_NAME, false)
            } else {
                let f = self.read_wire()?;
                (f, self.port.as_ref().map_or("", |p| p.name.as_str()), true)
            };
            self.budget -= 1;
            if !passes(
                &self.netfilter,
                self.medium,
                &mut frame,
                iface,
                "",
                PRE_ROUTING,
            ) {
                continue;
            }
            if !self.local.accepts(self.medium, &frame, from_wire) {
                continue;
            }
            if let Some(at) = ip_start(self.medium, &frame) {
                match self.reassembly.receive(&frame[at..], now) {
                    frag::Received::Whole => {}
                    frag::Received::Held => continue,
                    frag::Received::Complete(ip) => {
                        frame.truncate(at);
                        frame.extend_from_slice(&ip);
                    }
                }
            }
            if !passes(
                &self.netfilter,
                self.medium,
                &mut frame,
                iface,
                "",
                LOCAL_IN,
            ) {
                continue;
            }
            if !self.full_listeners.is_empty() && self.for_full_listener(&frame) {
                continue;
            }
            if !self.tcp_filters.is_empty() {
                let seg = self.tcp_segment(&frame);
                if seg.is_some_and(|(s, d, t)| !super::inet::tcp_passes(&self.tcp_filters, s, d, t))
                {
                    continue;
                }
            }
            if let Some(ip) = ip_of(self.medium, &frame) {
                self.classes.note(ip);
            }
            return Some((RxToken { frame }, self.tx()));
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(self.tx())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut checksum = ChecksumCapabilities::default();
        if self.medium == Medium::Ip {
            checksum = ChecksumCapabilities::ignored();
            // ICMP checksums are kept on the loopback as Linux does (raw sockets read them,
            // and a request with a bad one gets no reply).
            checksum.icmpv4 = Checksum::Both;
            checksum.icmpv6 = Checksum::Both;
        } else {
            checksum.ipv4 = Checksum::Tx;
            checksum.udp = Checksum::Tx;
            checksum.tcp = Checksum::Tx;
            checksum.icmpv4 = Checksum::Tx;
            checksum.icmpv6 = Checksum::Tx;
        }
        let header = if self.medium == Medium::Ethernet {
            14
        } else {
            0
        };
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = IP_MTU + header;
        caps.checksum = checksum;
        caps
    }
}

impl Device {
    /// The TCP segment `frame` carries, with its source and destination addresses.
    fn tcp_segment<'a>(&self, frame: &'a [u8]) -> Option<(IpAddress, IpAddress, &'a [u8])> {
        let ip = ip_of(self.medium, frame)?;
        match ip.first().map(|b| b >> 4) {
            Some(4) => match Ipv4Packet::new_checked(ip) {
                Ok(p) if p.next_header() == IpProtocol::Tcp => {
                    let off = usize::from(p.header_len());
                    let end = usize::from(p.total_len()).min(ip.len());
                    let (src, dst) = (p.src_addr(), p.dst_addr());
                    Some((src.into(), dst.into(), &ip[off.min(end)..end]))
                }
                _ => None,
            },
            Some(6) => match Ipv6Packet::new_checked(ip) {
                Ok(p) if p.next_header() == IpProtocol::Tcp => {
                    Some((p.src_addr().into(), p.dst_addr().into(), &ip[40..]))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether `frame` is a SYN (without ACK) for a listener whose accept queue is full.
    fn for_full_listener(&self, frame: &[u8]) -> bool {
        let Some((_, dst, tcp)) = self.tcp_segment(frame) else {
            return false;
        };
        let Ok(tcp) = TcpPacket::new_checked(tcp) else {
            return false;
        };
        tcp.syn()
            && !tcp.ack()
            && self
                .full_listeners
                .iter()
                .any(|l| l.port == tcp.dst_port() && l.addr.is_none_or(|a| a == dst))
    }

    fn tx(&mut self) -> TxToken<'_> {
        TxToken {
            port: self.port.as_ref(),
            looped: &mut self.looped,
            local: &self.local,
            medium: self.medium,
            taps: &mut self.taps,
            tun: self.tun.as_deref(),
            tun_routes: &self.tun_routes,
            netfilter: &self.netfilter,
            sent_classes: &mut self.sent_classes,
            frag_id: &mut self.frag_id,
        }
    }
}

/// A random start for the identifications of the IPv6 datagrams the device cuts, so that
/// a peer cannot foresee them (RFC 7739), from the keys std's hash maps are seeded with.
fn first_frag_id() -> u32 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8) as u32
}

/// Where the IP packet in `frame` of `medium` starts: after an Ethernet header.
fn ip_start(medium: Medium, frame: &[u8]) -> Option<usize> {
    if medium == Medium::Ethernet {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        matches!(
            eth.ethertype(),
            EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6
        )
        .then_some(ETH_HLEN)
    } else {
        Some(0)
    }
}

/// The IP packet `frame` of `medium` carries.
fn ip_of(medium: Medium, frame: &[u8]) -> Option<&[u8]> {
    Some(&frame[ip_start(medium, frame)?..])
}

/// The loopback's name, as rules name it.
const LOOPBACK_NAME: &str = "lo";

/// Whether netfilter lets a frame of `medium` pass: received when `out_iface` is empty
/// (`hook`: PREROUTING, or INPUT once reassembled), sent otherwise (OUTPUT and POSTROUTING;
/// `hook` is not used). A frame whose addresses the nat table rewrote gets its checksums
/// again. Frames that are not IP (ARP) are not its business.
fn passes(
    nf: &Netfilter,
    medium: Medium,
    frame: &mut [u8],
    in_iface: &str,
    out_iface: &str,
    hook: usize,
) -> bool {
    let ip = if medium == Medium::Ip {
        frame
    } else {
        match frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]])) {
            Some(ETH_P_IP | ETH_P_IPV6) => &mut frame[ETH_HLEN..],
            _ => return true,
        }
    };
    let hooks: &[usize] = if out_iface.is_empty() {
        &[hook]
    } else {
        &[LOCAL_OUT, POST_ROUTING]
    };
    let (verdict, rewritten) = nf.run(hooks, ip, (in_iface, out_iface));
    if rewritten {
        fill_checksums(ip);
    }
    verdict == Verdict::Accept
}

/// The TUN/TAP link whose network holds `dst`, unless `dst` is one of their own addresses.
fn tun_route(routes: &[(IpCidr, i32)], dst: IpAddress) -> Option<i32> {
    if routes.iter().any(|(c, _)| c.address() == dst) {
        return None;
    }
    routes
        .iter()
        .find(|(c, _)| c.contains_addr(&dst))
        .map(|&(_, i)| i)
}

/// The source and destination of an IP packet.
fn addrs_of(packet: &[u8]) -> Option<(IpAddress, IpAddress)> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Ipv4Packet::new_checked(packet)
            .ok()
            .map(|p| (p.src_addr().into(), p.dst_addr().into())),
        Some(6) => Ipv6Packet::new_checked(packet)
            .ok()
            .map(|p| (p.src_addr().into(), p.dst_addr().into())),
        _ => None,
    }
}

fn source_of(packet: &[u8]) -> Option<IpAddress> {
    addrs_of(packet).map(|a| a.0)
}

/// Fills in the IPv4 header checksum and the TCP and UDP checksums the loopback leaves
/// out, for a packet leaving through a TUN/TAP link.
fn fill_checksums(packet: &mut [u8]) {
    let Some((src, dst)) = addrs_of(packet) else {
        return;
    };
    let (proto, start, end) = match packet[0] >> 4 {
        4 => {
            let mut p = Ipv4Packet::new_unchecked(&mut *packet);
            p.fill_checksum();
            if p.more_frags() || p.frag_offset() != 0 {
                // A fragment's transport checksum covers the whole datagram.
                return;
            }
            let end = usize::from(p.total_len());
            (p.next_header(), usize::from(p.header_len()), end)
        }
        _ => {
            let p = Ipv6Packet::new_unchecked(&*packet);
            (p.next_header(), 40, 40 + usize::from(p.payload_len()))
        }
    };
    let Some(body) = packet.get_mut(start..end) else {
        return;
    };
    match proto {
        IpProtocol::Tcp => {
            if let Ok(mut t) = TcpPacket::new_checked(body) {
                t.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut u) = UdpPacket::new_checked(body) {
                u.fill_checksum(&src, &dst);
            }
        }
        _ => {}
    }
}

/// A received frame.
pub struct RxToken {
    frame: Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.frame)
    }
}

/// The right to send one frame.
pub struct TxToken<'a> {
    port: Option<&'a Port>,
    looped: &'a mut VecDeque<Vec<u8>>,
    local: &'a Local,
    medium: Medium,
    taps: &'a mut Taps,
    tun: Option<&'a super::tun::Devices>,
    tun_routes: &'a [(IpCidr, i32)],
    netfilter: &'a Netfilter,
    sent_classes: &'a mut super::raw::Classes,
    frag_id: &'a mut u32,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        if let Some(at) = ip_start(self.medium, &frame) {
            self.sent_classes.restore(&mut frame[at..]);
        }
        let wire = self
            .port
            .filter(|port| !stays_inside(&frame, port.mac, self.local));
        let out = wire.map_or(LOOPBACK_NAME, |port| port.name.as_str());
        if !passes(self.netfilter, self.medium, &mut frame, "", out, LOCAL_OUT) {
            return r;
        }
        match wire {
            Some(port) => {
                // Above the link's MTU: cut into fragments. The sockets have refused what
                // their path MTU discovery setting keeps whole (EMSGSIZE), so smoltcp's DF
                // flag, which it sets on every IPv4 packet, is not a refusal here.
                let cut = ip_start(self.medium, &frame)
                    .filter(|&at| frame.len() - at > port.mtu)
                    .and_then(|at| {
                        *self.frag_id = self.frag_id.wrapping_add(1);
                        let frags = frag::fragment(&frame[at..], port.mtu, *self.frag_id)?;
                        Some(
                            frags
                                .into_iter()
                                .map(|f| [&frame[..at], &f[..]].concat())
                                .collect(),
                        )
                    });
                for frame in cut.unwrap_or_else(|| vec![frame]) {
                    if !self.taps.is_empty() {
                        self.taps.capture(port.iface, &frame, PACKET_OUTGOING, None);
                    }
                    // A full queue or a frame the link refuses is a lost frame, as on a NIC:
                    // TCP retransmits, UDP and ICMP are unreliable anyway.
                    if let Err(e) = rustix::io::write(port.fd.as_fd(), &frame) {
                        log::trace!("netstack: sending a frame of {} bytes: {e}", frame.len());
                    }
                }
            }
            _ => {
                let out = match (self.medium, self.tun) {
                    (Medium::Ip, Some(tun)) => addrs_of(&frame)
                        .and_then(|(_, dst)| tun_route(self.tun_routes, dst))
                        .map(|index| (tun, index)),
                    _ => None,
                };
                if let Some((tun, index)) = out {
                    fill_checksums(&mut frame);
                    tun.transmit(index, &frame);
                    return r;
                }
                capture_looped(self.taps, self.medium, &frame, PACKET_OUTGOING);
                self.looped.push_back(frame);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{ArpRepr, EthernetRepr};

    fn arp_request(target: Ipv4Address) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let mut buf = vec![0; 14 + repr.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        repr.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        buf
    }

    #[test]
    fn own_addresses_are_resolved_inside() {
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let own = Local {
            cidrs: vec![
                IpCidr::new(IpAddress::v4(10, 0, 0, 1), 24),
                IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8),
            ],
            loopback_nets: vec![IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)],
        };
        assert!(stays_inside(
            &arp_request(Ipv4Address::new(127, 0, 0, 1)),
            mac,
            &own
        ));
        assert!(stays_inside(
            &arp_request(Ipv4Address::new(10, 0, 0, 1)),
            mac,
            &own
        ));
        assert!(!stays_inside(
            &arp_request(Ipv4Address::new(10, 0, 0, 2)),
            mac,
            &own
        ));
        // All of a loopback network is ours.
        assert!(stays_inside(
            &arp_request(Ipv4Address::new(127, 0, 0, 5)),
            mac,
            &own
        ));
    }

    #[test]
    fn only_frames_for_the_stack_come_in() {
        let own = Local {
            cidrs: vec![
                IpCidr::new(IpAddress::v4(10, 0, 0, 1), 24),
                IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8),
            ],
            loopback_nets: vec![IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)],
        };
        let eth = Medium::Ethernet;
        assert!(own.accepts(eth, &arp_request(Ipv4Address::new(10, 0, 0, 1)), true));
        assert!(!own.accepts(eth, &arp_request(Ipv4Address::new(10, 0, 0, 9)), true));
        assert!(own.accepts(eth, &arp_request(Ipv4Address::new(127, 0, 0, 5)), false));
        assert!(!own.accepts(eth, &arp_request(Ipv4Address::new(127, 0, 0, 5)), true));
        let ipv4 = |dst: [u8; 4]| {
            let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2];
            p.extend_from_slice(&dst);
            p
        };
        let ip = Medium::Ip;
        assert!(own.accepts(ip, &ipv4([127, 0, 0, 5]), false));
        // Looped by the stack itself: delivered whatever the header names.
        assert!(own.accepts(ip, &ipv4([42, 0, 0, 0]), false));
        assert!(!own.accepts(ip, &ipv4([42, 0, 0, 0]), true));
        assert!(own.accepts(ip, &ipv4([10, 0, 0, 255]), true));
        assert!(own.accepts(ip, &ipv4([224, 0, 0, 1]), true));
        assert!(!own.accepts(ip, &ipv4([10, 0, 0, 7]), true));
        assert!(!own.accepts(ip, &ipv4([127, 0, 0, 1]), true));
        // A loopback network's broadcast address is not one of its addresses.
        assert!(!own.contains(IpAddress::v4(127, 255, 255, 255)));
        assert!(own.contains(IpAddress::v4(127, 255, 255, 254)));
    }
}
