//! The counters of a namespace's internet stack that `/proc/net/snmp` and
//! `/proc/net/netstat` show (Linux's SNMP MIBs), counted where the stack sees each event.
//!
//! - Packets: every frame between smoltcp and the stack's device passes through
//!   [`Counted`], which reads its IP header: IPv4 packets in and out (`Ip`), ICMP messages by
//!   type (`Icmp`, `IcmpMsg`), TCP segments in and out and resets sent (`Tcp`, both
//!   families, as Linux's one TCP MIB), UDP datagrams the link carries (`Udp`, IPv4, with
//!   the port-unreachable errors smoltcp answers unclaimed ones with as `NoPorts`). The
//!   device loops what the sandbox sends itself, so such a packet counts out and in, as on
//!   Linux's loopback.
//! - UDP datagrams that stay inside the sandbox never reach the device
//!   ([`super::udp`]): the sentry counts them where it delivers them; so do the echoes a
//!   ping socket sends to the sandbox itself ([`super::icmp`], [`Mib::looped`]).
//! - TCP connection events (`ActiveOpens`, `PassiveOpens`, `AttemptFails`, `EstabResets`)
//!   come from the states of the smoltcp sockets: [`TcpStates::observe`] compares each with
//!   its state at the last look, before and after every poll (every socket operation ends
//!   with one), as Linux counts in `tcp_set_state`. `CurrEstab` is the number of sockets in
//!   ESTABLISHED or CLOSE_WAIT when read.
//!
//! Not counted (shown as 0): retransmissions (smoltcp does not report them; they count in
//! `OutSegs`), fragments (smoltcp reassembles nothing the stack accepts), checksum errors
//! (frames are not verified, see [`super::link`]), and the TcpExt events smoltcp keeps to
//! itself.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet};

/// ICMPv4 destination unreachable, and its code for an unreachable port.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_PORT_UNREACH: u8 = 3;
/// The TCP header's RST flag (in its flags byte).
const TCP_RST: u8 = 0x04;

/// IPv4 (`Ip:` and the octets of `IpExt:`).
#[derive(Debug, Default, Clone)]
pub struct Ip {
    pub in_receives: u64,
    pub in_delivers: u64,
    pub out_requests: u64,
    pub in_octets: u64,
    pub out_octets: u64,
}

/// ICMPv4 messages by type, each way.
#[derive(Debug, Default, Clone)]
pub struct Icmp {
    pub in_types: BTreeMap<u8, u64>,
    pub out_types: BTreeMap<u8, u64>,
}

/// TCP (`Tcp:`; `CurrEstab` is read live).
#[derive(Debug, Default, Clone)]
pub struct Tcp {
    pub active_opens: u64,
    pub passive_opens: u64,
    pub attempt_fails: u64,
    pub estab_resets: u64,
    pub in_segs: u64,
    pub out_segs: u64,
    pub out_rsts: u64,
    /// Segments sent with data (`TcpExt: TCPOrigDataSent`, retransmissions included).
    pub data_segs_out: u64,
}

/// IPv4 UDP (`Udp:`).
#[derive(Debug, Default, Clone)]
pub struct Udp {
    pub in_datagrams: u64,
    pub no_ports: u64,
    pub in_errors: u64,
    pub out_datagrams: u64,
    pub rcvbuf_errors: u64,
    pub ignored_multi: u64,
}

/// A stack's counters.
#[derive(Debug, Default, Clone)]
pub struct Mib {
    pub ip: Ip,
    pub icmp: Icmp,
    pub tcp: Tcp,
    pub udp: Udp,
    /// TCP sockets in ESTABLISHED or CLOSE_WAIT (filled in when read).
    pub curr_estab: u64,
}

/// A packet's direction through the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    In,
    Out,
}

impl Mib {
    /// Counts IP packet `packet`, which the sentry sent inside the sandbox without the
    /// device ([`super::icmp`]'s echoes), as the loopback would: out, and in when
    /// `delivered`.
    pub fn looped(&mut self, packet: &[u8], delivered: bool) {
        self.packet(packet, Way::Out);
        if delivered {
            self.packet(packet, Way::In);
        }
    }

    /// Counts one frame (of `medium`) crossing the device.
    fn frame(&mut self, medium: Medium, frame: &[u8], way: Way) {
        let packet = match medium {
            Medium::Ethernet => {
                let Ok(eth) = EthernetFrame::new_checked(frame) else {
                    return;
                };
                if !matches!(
                    eth.ethertype(),
                    EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6
                ) {
                    return;
                }
                &frame[EthernetFrame::<&[u8]>::header_len()..]
            }
            _ => frame,
        };
        self.packet(packet, way);
    }

    /// Counts one IP packet.
    fn packet(&mut self, packet: &[u8], way: Way) {
        let (proto, body) = match packet.first().map(|b| b >> 4) {
            Some(4) => {
                let Ok(p) = Ipv4Packet::new_checked(packet) else {
                    return;
                };
                let len = u64::from(p.total_len());
                match way {
                    Way::In => {
                        self.ip.in_receives += 1;
                        self.ip.in_delivers += 1;
                        self.ip.in_octets += len;
                    }
                    Way::Out => {
                        self.ip.out_requests += 1;
                        self.ip.out_octets += len;
                    }
                }
                let header = usize::from(p.header_len());
                let end = usize::from(p.total_len()).min(packet.len());
                (p.next_header(), packet.get(header..end).unwrap_or_default())
            }
            Some(6) => {
                let Ok(p) = Ipv6Packet::new_checked(packet) else {
                    return;
                };
                // Extension headers are not walked: smoltcp sends none on TCP or UDP.
                let header = p.header_len();
                let end = (header + usize::from(p.payload_len())).min(packet.len());
                (p.next_header(), packet.get(header..end).unwrap_or_default())
            }
            _ => return,
        };
        let v4 = packet[0] >> 4 == 4;
        match proto {
            IpProtocol::Tcp => self.tcp_segment(body, way),
            IpProtocol::Udp if v4 => match way {
                Way::In => self.udp.in_datagrams += 1,
                Way::Out => self.udp.out_datagrams += 1,
            },
            IpProtocol::Icmp => {
                let (Some(&ty), code) = (body.first(), body.get(1).copied()) else {
                    return;
                };
                let types = match way {
                    Way::In => &mut self.icmp.in_types,
                    Way::Out => &mut self.icmp.out_types,
                };
                *types.entry(ty).or_default() += 1;
                if way == Way::Out && ty == ICMP_DEST_UNREACH && code == Some(ICMP_PORT_UNREACH) {
                    self.unclaimed_udp();
                }
            }
            _ => {}
        }
    }

    fn tcp_segment(&mut self, segment: &[u8], way: Way) {
        // Data offset (header length in words) and flags.
        let (Some(&offset), Some(&flags)) = (segment.get(12), segment.get(13)) else {
            return;
        };
        match way {
            Way::In => self.tcp.in_segs += 1,
            Way::Out => {
                self.tcp.out_segs += 1;
                if flags & TCP_RST != 0 {
                    self.tcp.out_rsts += 1;
                }
                if segment.len() > usize::from(offset >> 4) * 4 {
                    self.tcp.data_segs_out += 1;
                }
            }
        }
    }

    /// smoltcp answered a datagram from the link no socket took with a port unreachable:
    /// it was counted in, as received, and was not delivered.
    fn unclaimed_udp(&mut self) {
        self.udp.in_datagrams = self.udp.in_datagrams.saturating_sub(1);
        self.udp.no_ports += 1;
    }
}

/// The stack's device as smoltcp polls it, each frame counted into `mib`.
pub struct Counted<'a, D: phy::Device> {
    pub dev: &'a mut D,
    pub mib: &'a RefCell<Mib>,
}

pub struct CountedRx<'a, T> {
    inner: T,
    mib: &'a RefCell<Mib>,
    medium: Medium,
}

pub struct CountedTx<'a, T> {
    inner: T,
    mib: &'a RefCell<Mib>,
    medium: Medium,
}

impl<D: phy::Device> phy::Device for Counted<'_, D> {
    type RxToken<'b>
        = CountedRx<'b, D::RxToken<'b>>
    where
        Self: 'b;
    type TxToken<'b>
        = CountedTx<'b, D::TxToken<'b>>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let medium = self.dev.capabilities().medium;
        let mib = self.mib;
        let (rx, tx) = self.dev.receive(now)?;
        Some((
            CountedRx {
                inner: rx,
                mib,
                medium,
            },
            CountedTx {
                inner: tx,
                mib,
                medium,
            },
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        let medium = self.dev.capabilities().medium;
        let mib = self.mib;
        Some(CountedTx {
            inner: self.dev.transmit(now)?,
            mib,
            medium,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.dev.capabilities()
    }
}

impl<T: phy::RxToken> phy::RxToken for CountedRx<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let (mib, medium) = (self.mib, self.medium);
        self.inner.consume(|frame| {
            mib.borrow_mut().frame(medium, frame, Way::In);
            f(frame)
        })
    }

    fn meta(&self) -> phy::PacketMeta {
        self.inner.meta()
    }
}

impl<T: phy::TxToken> phy::TxToken for CountedTx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (mib, medium) = (self.mib, self.medium);
        self.inner.consume(len, |frame| {
            let r = f(frame);
            mib.borrow_mut().frame(medium, frame, Way::Out);
            r
        })
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        self.inner.set_meta(meta);
    }
}

/// The state of each TCP socket at the last look, for counting its transitions.
#[derive(Debug, Default)]
pub struct TcpStates {
    seen: HashMap<SocketHandle, tcp::State>,
}

impl TcpStates {
    /// Counts what changed since the last look and forgets the sockets that are gone.
    pub fn observe(&mut self, mib: &mut Mib, set: &SocketSet<'static>) {
        use tcp::State::*;
        let mut now = HashMap::with_capacity(self.seen.len());
        for (h, s) in set.iter() {
            let Socket::Tcp(s) = s else { continue };
            let state = s.state();
            // A socket not seen before was made by the sentry since the last look: closed,
            // listening, or connecting (every operation polls after it, so a connect is
            // seen before its SYN leaves).
            let Some(before) = self.seen.remove(&h) else {
                if state == SynSent {
                    mib.tcp.active_opens += 1;
                }
                now.insert(h, state);
                continue;
            };
            match (before, state) {
                (a, b) if a == b => {}
                // A handshake completed on a listening socket.
                (Listen | SynReceived, Established | CloseWait | FinWait1 | FinWait2) => {
                    mib.tcp.passive_opens += 1
                }
                // A handshake that failed (Linux: SYN_SENT or SYN_RECV to CLOSE, or a
                // request socket dropped).
                (SynSent | SynReceived, Closed | Listen) => mib.tcp.attempt_fails += 1,
                (Established | CloseWait, Closed) => mib.tcp.estab_resets += 1,
                _ => {}
            }
            now.insert(h, state);
        }
        // Sockets removed since: one dropped while established was reset.
        mib.tcp.estab_resets += self
            .seen
            .values()
            .filter(|s| matches!(s, Established | CloseWait))
            .count() as u64;
        self.seen = now;
    }
}

/// Sockets in ESTABLISHED or CLOSE_WAIT (Linux's `CurrEstab`).
pub fn curr_estab(set: &SocketSet<'static>) -> u64 {
    set.iter()
        .filter(|(_, s)| {
            matches!(s, Socket::Tcp(s)
                if matches!(s.state(), tcp::State::Established | tcp::State::CloseWait))
        })
        .count() as u64
}
