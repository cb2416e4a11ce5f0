//! AF_PACKET sockets on the sentry's own links: `socket(AF_PACKET, SOCK_RAW or SOCK_DGRAM,
//! htons(protocol))`, which need CAP_NET_RAW (checked by the caller).
//!
//! A packet socket is a tap ([`Tap`]) on the stack's device ([`super::link`]): the device
//! hands every registered tap a copy of each frame it carries, as Linux's `dev_queue_xmit_nit`
//! and `__netif_receive_skb` do. An outgoing frame (PACKET_OUTGOING) reaches only the taps
//! bound to ETH_P_ALL, and never the socket that sent it; a received frame reaches the taps
//! bound to ETH_P_ALL or to its EtherType. A tap bound to an interface index sees that
//! interface only; protocol 0 sees nothing until a bind names a protocol. The loopback
//! (index 1, ARPHRD_LOOPBACK) shows each packet the sandbox sends to itself twice (sent,
//! then received) with an Ethernet header of zero addresses, as Linux's `lo` does; the
//! pod's link (with `--network sandbox`) shows the frames on the wire, marked host,
//! broadcast, multicast or other host by their destination.
//!
//! A SOCK_RAW socket reads and writes whole frames; a SOCK_DGRAM one the payload only, with
//! the link header built from the destination `sockaddr_ll` on send. Sending needs an
//! interface (the destination's, or the bound one: ENXIO without). A frame sent on the
//! loopback comes back as received, and an IPv4 or IPv6 one goes to the stack; one sent on
//! the link leaves on the wire.
//!
//! While any tap exists, UDP datagrams inside the sandbox go through smoltcp rather than
//! the sentry's own delivery ([`super::udp`]), so the device sees them.
//!
//! PACKET_RX_RING (TPACKET_V1 and V2) is a ring of frames in memory-file pages that the
//! application maps (`mmap` of the socket: [`RingPages`]), filled as Linux's `tpacket_rcv`
//! fills it: a frame the application still owns (its `tp_status` not TP_STATUS_KERNEL) stops
//! the ring, and what arrives then is dropped (counted by PACKET_STATISTICS); a packet
//! longer than its frame is cut (TP_STATUS_COPY and a copy in the receive queue with
//! PACKET_COPY_THRESH). While a ring is set, frames go to it and not to the receive queue,
//! and poll reports POLLIN while the frame before the ring's head is the application's.
//! PACKET_RESERVE moves the data further into each frame; PACKET_VERSION and PACKET_RESERVE
//! are EBUSY while a ring exists, a ring is EBUSY while mapped. PACKET_HDRLEN answers each
//! version's frame header size, as Linux.
//!
//! Not offered: socket filters (SO_ATTACH_FILTER is ENOPROTOOPT), PACKET_TX_RING and
//! TPACKET_V3 rings (a request Linux refuses is EINVAL as there, a valid one EOPNOTSUPP)
//! and SOCK_PACKET.
//!
//! # Lock order
//! The stack lock → a tap's wait queue (frames are queued and notified under the stack lock).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use std::sync::Weak;

use super::config::LOOPBACK_INDEX;
use super::inet::{int, int_of};
use super::stack::{next_id, Stack};
use super::{InMessage, IoFlags, OutMessage, Socket};
use crate::abi::{Errno, PAGE_SIZE as PAGE};
use crate::memory::{FileRange, MemoryFile};
use crate::mm::filemap::Mappable;
use crate::vfs::{Context, FileOps, IoDst, IoSrc, Stat};
use crate::waiter::{WaitQueue, Wake};

/// `ETH_P_ALL`: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// EtherTypes the loopback hands to the stack.
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
/// Bytes of an Ethernet header.
pub const ETH_HLEN: usize = 14;
/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK`.
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_LOOPBACK: u16 = 772;
/// `sll_pkttype` values.
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OTHERHOST: u8 = 3;
pub const PACKET_OUTGOING: u8 = 4;
/// `SOL_PACKET` and its options.
const SOL_PACKET: i32 = 263;
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_DROP_MEMBERSHIP: i32 = 2;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_COPY_THRESH: i32 = 7;
const PACKET_VERSION: i32 = 10;
const PACKET_RESERVE: i32 = 12;
const PACKET_TX_RING: i32 = 13;
/// `TPACKET_V1`..`TPACKET_V3`.
const TPACKET_V1: i32 = 0;
const TPACKET_V2: i32 = 1;
const TPACKET_V3: i32 = 2;
/// `PACKET_HDRLEN` (getsockopt, with a TPACKET version in the buffer): the size of that
/// version's frame header.
pub const PACKET_HDRLEN: i32 = 11;
/// Bytes of `struct tpacket3_hdr`.
const TPACKET3_HDR: i32 = 48;
/// Bytes of `struct tpacket_req`, and the least frame of each version (`TPACKET_HDRLEN`,
/// `TPACKET2_HDRLEN`, `TPACKET3_HDRLEN`: the header, aligned, and a `sockaddr_ll`).
const TPACKET_REQ: usize = 16;
const MIN_FRAME: [u32; 3] = [52, 52, 68];
/// Bytes of `struct tpacket_hdr` and `struct tpacket2_hdr` (both aligned already).
const FRAME_HDR: u32 = 32;
/// `tp_status` bits of a receive frame.
const TP_STATUS_KERNEL: u64 = 0;
const TP_STATUS_USER: u64 = 1;
const TP_STATUS_COPY: u64 = 2;
const TP_STATUS_LOSING: u64 = 4;
/// `TPACKET_ALIGNMENT`.
const TPACKET_ALIGNMENT: u32 = 16;
const PAGE_SIZE: u32 = 4096;
/// `PACKET_MR_*` membership types.
const PACKET_MR_MULTICAST: u16 = 0;
const PACKET_MR_PROMISC: u16 = 1;
const PACKET_MR_ALLMULTI: u16 = 2;
const PACKET_MR_UNICAST: u16 = 3;
/// Bytes of `struct sockaddr_ll` and the offset of its `sll_addr`.
const SOCKADDR_LL: usize = 20;
const SLL_ADDR: usize = 12;
/// Bytes of `struct packet_mreq`.
const PACKET_MREQ: usize = 16;
/// Linux's `net.core.rmem_max`/`wmem_max` (the default too) and the least buffers
/// (SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF).
const BUF_MAX: usize = super::unix::DEFAULT_BUF;
const MIN_RCVBUF: usize = 2304;
const MIN_SNDBUF: usize = 4608;
/// What a queued frame costs against SO_RCVBUF beyond its bytes (Linux's skb truesize).
const FRAME_OVERHEAD: usize = 576;

/// The interface a frame travelled on.
#[derive(Debug, Clone, Copy)]
pub struct Iface {
    pub index: i32,
    /// `ARPHRD_*`.
    pub hatype: u16,
}

impl Iface {
    pub const LOOPBACK: Iface = Iface {
        index: LOOPBACK_INDEX,
        hatype: ARPHRD_LOOPBACK,
    };
}

/// A frame as a tap keeps it.
#[derive(Debug)]
struct Captured {
    /// The whole frame, Ethernet header first.
    frame: Vec<u8>,
    iface: Iface,
    pkttype: u8,
}

/// One packet socket's view of the device (under the stack lock).
#[derive(Debug)]
pub struct Tap {
    /// SOCK_RAW or SOCK_DGRAM.
    ty: i32,
    /// The protocol bound (host order; 0: none, [`ETH_P_ALL`]: every one).
    protocol: u16,
    /// The interface bound (0: every one).
    ifindex: i32,
    queue: VecDeque<Captured>,
    /// Bytes charged against `rcvbuf` by the queued frames.
    charged: usize,
    rcvbuf: usize,
    sndbuf: usize,
    /// Frames queued and dropped since PACKET_STATISTICS last read them.
    packets: u32,
    drops: u32,
    /// PACKET_ADD_MEMBERSHIP entries: (ifindex, type, address).
    memberships: Vec<(i32, u16, Vec<u8>)>,
    /// Options only recorded (SO_LINGER, SO_PRIORITY, ...), by (level, name); PACKET_VERSION,
    /// PACKET_RESERVE and PACKET_COPY_THRESH among them.
    options: HashMap<(i32, i32), Vec<u8>>,
    /// PACKET_RX_RING.
    rx_ring: Option<Ring>,
    /// The pages the application's mappings of the ring share (alive while one exists).
    mapping: Weak<RingPages>,
    wq: Arc<WaitQueue>,
}

/// A ring of frames in memory-file pages (Linux's `packet_ring_buffer`): `tp_block_nr`
/// blocks of `tp_block_size` bytes, each holding `block_size / frame_size` frames.
struct Ring {
    mf: Arc<MemoryFile>,
    pages: FileRange,
    block_size: u32,
    frames_per_block: u32,
    frame_size: u32,
    frame_nr: u32,
    /// The next frame the kernel fills.
    head: u32,
    /// TPACKET_V1 or TPACKET_V2 (the width of `tp_status` and the header's layout).
    version: i32,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("pages", &self.pages)
            .field("frame_size", &self.frame_size)
            .field("frame_nr", &self.frame_nr)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.mf.dec_ref(self.pages);
    }
}

impl Ring {
    /// The memory-file offset of frame `i`.
    fn frame(&self, i: u32) -> u64 {
        self.pages.offset
            + u64::from(i / self.frames_per_block) * u64::from(self.block_size)
            + u64::from(i % self.frames_per_block) * u64::from(self.frame_size)
    }

    /// `tp_status` of frame `i` (an `unsigned long` in TPACKET_V1, a `__u32` in V2).
    fn status(&self, i: u32) -> u64 {
        let mut b = [0u8; 8];
        let n = if self.version == TPACKET_V1 { 8 } else { 4 };
        self.mf.read(self.frame(i), &mut b[..n]);
        u64::from_ne_bytes(b)
    }

    fn set_status(&self, i: u32, status: u64) {
        let n = if self.version == TPACKET_V1 { 8 } else { 4 };
        self.mf.write(self.frame(i), &status.to_ne_bytes()[..n]);
    }

    /// Whether the frame before the head is the application's (packet_poll's POLLIN).
    fn readable(&self) -> bool {
        let previous = self.head.checked_sub(1).unwrap_or(self.frame_nr - 1);
        self.status(previous) != TP_STATUS_KERNEL
    }
}

/// The rings' pages as the socket's `mmap` shows them (the receive ring first). Holds one
/// reference to each range, so a mapping keeps its pages after the ring or the socket goes.
pub struct RingPages {
    mf: Arc<MemoryFile>,
    ranges: Vec<FileRange>,
}

impl Drop for RingPages {
    fn drop(&mut self) {
        for r in &self.ranges {
            self.mf.dec_ref(*r);
        }
    }
}

impl Mappable for RingPages {
    fn size(&self) -> u64 {
        self.ranges.iter().map(|r| r.len).sum()
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let end = first.saturating_add(count);
        let mut runs = Vec::new();
        let mut start = 0;
        for r in &self.ranges {
            let pages = r.len / PAGE;
            let (lo, hi) = (first.max(start), end.min(start + pages));
            if lo < hi {
                let run = FileRange {
                    offset: r.offset + (lo - start) * PAGE,
                    len: (hi - lo) * PAGE,
                };
                self.mf.inc_ref(run);
                runs.push((lo, run));
            }
            start += pages;
        }
        Ok(runs)
    }

    fn shared_writable(&self) -> bool {
        true
    }

    fn fixed_size_mapping(&self) -> bool {
        true
    }
}

/// The device's taps, by socket id.
#[derive(Debug, Default)]
pub struct Taps {
    taps: HashMap<u64, Tap>,
}

impl Taps {
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Hands a copy of the Ethernet `frame` seen on `iface` to every tap that wants it;
    /// `skip` is the packet socket that sent it (it sees no copy of its own transmission).
    pub fn capture(&mut self, iface: Iface, frame: &[u8], pkttype: u8, skip: Option<u64>) {
        if frame.len() < ETH_HLEN {
            return;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        for (id, tap) in &mut self.taps {
            if Some(*id) == skip || (tap.ifindex != 0 && tap.ifindex != iface.index) {
                continue;
            }
            let wanted = match tap.protocol {
                0 => false,
                ETH_P_ALL => true,
                p => p == ethertype && pkttype != PACKET_OUTGOING,
            };
            if !wanted {
                continue;
            }
            if tap.rx_ring.is_some() {
                tap.fill_frame(iface, frame, pkttype);
                continue;
            }
            let cost = frame.len() + FRAME_OVERHEAD;
            if tap.charged + cost > tap.rcvbuf && !tap.queue.is_empty() {
                tap.drops = tap.drops.saturating_add(1);
                continue;
            }
            tap.charged += cost;
            tap.packets = tap.packets.saturating_add(1);
            tap.queue.push_back(Captured {
                frame: frame.to_vec(),
                iface,
                pkttype,
            });
            tap.wq.notify(Wake::Readable);
        }
    }

    /// Hands a copy of an IP packet the loopback carried (no link header) to the taps:
    /// the loopback's frame has zero addresses and the EtherType of the IP version.
    pub fn capture_ip(&mut self, packet: &[u8], pkttype: u8) {
        if self.taps.is_empty() {
            return;
        }
        let ethertype = match packet.first().map(|b| b >> 4) {
            Some(4) => ETH_P_IP,
            Some(6) => ETH_P_IPV6,
            _ => return,
        };
        let mut frame = vec![0; ETH_HLEN + packet.len()];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame[ETH_HLEN..].copy_from_slice(packet);
        self.capture(Iface::LOOPBACK, &frame, pkttype, None);
    }
}

impl Tap {
    /// A SOL_PACKET option kept as an int (0 when never set).
    fn packet_option(&self, name: i32) -> u32 {
        self.options
            .get(&(SOL_PACKET, name))
            .and_then(|v| int_of(v).ok())
            .map_or(0, |v| v as u32)
    }

    /// Whether an application mapping of the rings exists.
    fn mapped(&self) -> bool {
        self.mapping.strong_count() > 0
    }

    /// Puts `frame` in the receive ring as Linux's `tpacket_rcv` does: the data at `tp_mac`
    /// (the link header for SOCK_RAW, the network header for SOCK_DGRAM; `tp_net` is where
    /// the network header lies), cut to the frame; a `sockaddr_ll` after the header; the
    /// status last. Dropped (and counted) when the head frame is still the application's.
    fn fill_frame(&mut self, iface: Iface, frame: &[u8], pkttype: u8) {
        let reserve = self.packet_option(PACKET_RESERVE) as usize;
        let copy_thresh = self.packet_option(PACKET_COPY_THRESH);
        let ring = self.rx_ring.as_mut().expect("a ring");
        let hdrlen = MIN_FRAME[ring.version as usize] as usize;
        let align = |n: usize| n.next_multiple_of(TPACKET_ALIGNMENT as usize);
        let (data, macoff, netoff) = if self.ty == libc::SOCK_DGRAM {
            let off = align(hdrlen) + 16 + reserve;
            (&frame[ETH_HLEN..], off, off)
        } else {
            let netoff = align(hdrlen + 16) + reserve;
            (frame, netoff - ETH_HLEN, netoff)
        };
        let frame_size = ring.frame_size as usize;
        let mut snaplen = data.len();
        let mut status = TP_STATUS_USER;
        let cost = frame.len() + FRAME_OVERHEAD;
        let mut copy = false;
        if macoff + snaplen > frame_size {
            if copy_thresh != 0 && self.charged + cost <= self.rcvbuf {
                copy = true;
                status |= TP_STATUS_COPY;
            }
            snaplen = frame_size.saturating_sub(macoff);
        }
        let head = ring.head;
        if netoff > usize::from(u16::MAX) || ring.status(head) != TP_STATUS_KERNEL {
            self.drops = self.drops.saturating_add(1);
            return;
        }
        self.packets = self.packets.saturating_add(1);
        if self.drops != 0 {
            status |= TP_STATUS_LOSING;
        }
        let base = ring.frame(head);
        if snaplen > 0 {
            ring.mf.write(base + macoff as u64, &data[..snaplen]);
        }
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since_epoch.as_secs() as u32;
        let mut h = Vec::with_capacity(FRAME_HDR as usize);
        // After `tp_status` (written last): tp_len, tp_snaplen, tp_mac, tp_net, then the time
        // (microseconds in V1, nanoseconds in V2).
        let (status_len, fraction) = if ring.version == TPACKET_V1 {
            (8, since_epoch.subsec_micros())
        } else {
            (4, since_epoch.subsec_nanos())
        };
        h.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        h.extend_from_slice(&(snaplen as u32).to_ne_bytes());
        h.extend_from_slice(&(macoff as u16).to_ne_bytes());
        h.extend_from_slice(&(netoff as u16).to_ne_bytes());
        h.extend_from_slice(&secs.to_ne_bytes());
        h.extend_from_slice(&fraction.to_ne_bytes());
        ring.mf.write(base + status_len, &h);
        let protocol = u16::from_be_bytes([frame[12], frame[13]]);
        let sll = sockaddr_ll(protocol, iface.index, iface.hatype, pkttype, &frame[6..12]);
        ring.mf.write(base + u64::from(FRAME_HDR), &sll);
        ring.set_status(head, status);
        ring.head = (head + 1) % ring.frame_nr;
        if copy {
            self.charged += cost;
            self.queue.push_back(Captured {
                frame: frame.to_vec(),
                iface,
                pkttype,
            });
        }
        self.wq.notify(Wake::Readable);
    }

    /// PACKET_RX_RING and PACKET_TX_RING with `value` (Linux's `packet_set_ring`): EBUSY
    /// while mapped or when a ring exists; a request without blocks frees the ring.
    fn set_ring(&mut self, mf: &Arc<MemoryFile>, tx: bool, value: &[u8]) -> Result<(), Errno> {
        let version = self.packet_option(PACKET_VERSION) as i32;
        let reserve = self.packet_option(PACKET_RESERVE);
        if value.len() < TPACKET_REQ {
            return Err(Errno::EINVAL);
        }
        let block_nr = u32::from_ne_bytes(value[4..8].try_into().expect("4 bytes"));
        if self.mapped() || (block_nr != 0 && !tx && self.rx_ring.is_some()) {
            return Err(Errno::EBUSY);
        }
        let req = check_ring(version, reserve, value)?;
        let Some(req) = req else {
            if !tx {
                self.rx_ring = None;
            }
            return Ok(());
        };
        if tx || version == TPACKET_V3 {
            return Err(Errno::EOPNOTSUPP);
        }
        let len = u64::from(req.block_size) * u64::from(req.block_nr);
        let pages = mf.allocate(len).map_err(|_| Errno::ENOMEM)?;
        mf.zero(pages.offset, pages.len);
        self.rx_ring = Some(Ring {
            mf: mf.clone(),
            pages,
            block_size: req.block_size,
            frames_per_block: req.block_size / req.frame_size,
            frame_size: req.frame_size,
            frame_nr: req.frame_nr,
            head: 0,
            version,
        });
        Ok(())
    }

    /// The rings' pages for an `mmap` of `len` bytes at `offset`: EINVAL unless it maps
    /// every ring whole from offset 0 (Linux's `packet_mmap`).
    fn map_rings(&mut self, len: u64, offset: u64) -> Result<Arc<dyn Mappable>, Errno> {
        let ring = self.rx_ring.as_ref().ok_or(Errno::EINVAL)?;
        if offset != 0 || len != ring.pages.len {
            return Err(Errno::EINVAL);
        }
        if let Some(pages) = self.mapping.upgrade() {
            return Ok(pages);
        }
        ring.mf.inc_ref(ring.pages);
        let pages = Arc::new(RingPages {
            mf: ring.mf.clone(),
            ranges: vec![ring.pages],
        });
        self.mapping = Arc::downgrade(&pages);
        Ok(pages)
    }
}

/// The `sll_pkttype` of a frame received on a link with hardware address `mac`.
pub fn pkttype_of(frame: &[u8], mac: [u8; 6]) -> u8 {
    match frame.get(..6) {
        Some(d) if d == mac => PACKET_HOST,
        Some(d) if d == [0xff; 6] => PACKET_BROADCAST,
        Some(d) if d[0] & 1 == 1 => PACKET_MULTICAST,
        _ => PACKET_OTHERHOST,
    }
}

/// A `sockaddr_ll`.
fn sockaddr_ll(protocol: u16, ifindex: i32, hatype: u16, pkttype: u8, addr: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; SOCKADDR_LL];
    b[0..2].copy_from_slice(&(libc::AF_PACKET as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&protocol.to_be_bytes());
    b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    b[8..10].copy_from_slice(&hatype.to_ne_bytes());
    b[10] = pkttype;
    b[11] = addr.len() as u8;
    b[SLL_ADDR..SLL_ADDR + addr.len()].copy_from_slice(addr);
    b
}

/// A valid ring request: `struct tpacket_req`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RingRequest {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// PACKET_RX_RING and PACKET_TX_RING with `struct tpacket_req` `value`, for a socket of
/// TPACKET version `version` with PACKET_RESERVE `reserve`: a request Linux's
/// `packet_set_ring` refuses is EINVAL as there; one without blocks asks for no ring (None).
fn check_ring(version: i32, reserve: u32, value: &[u8]) -> Result<Option<RingRequest>, Errno> {
    // TPACKET_V3 takes a `struct tpacket_req3` (three more fields).
    let wanted = if version == TPACKET_V3 {
        TPACKET_REQ + 12
    } else {
        TPACKET_REQ
    };
    if value.len() < wanted {
        return Err(Errno::EINVAL);
    }
    let field = |i: usize| u32::from_ne_bytes(value[i * 4..i * 4 + 4].try_into().expect("4"));
    let (block_size, block_nr, frame_size, frame_nr) = (field(0), field(1), field(2), field(3));
    if block_nr == 0 {
        return if frame_nr == 0 {
            Ok(None)
        } else {
            Err(Errno::EINVAL)
        };
    }
    let min_frame = MIN_FRAME[usize::try_from(version).unwrap_or(0).min(2)].saturating_add(reserve);
    let per_block = block_size.checked_div(frame_size).unwrap_or(0);
    let valid = (block_size as i32) > 0
        && block_size.is_multiple_of(PAGE_SIZE)
        && frame_size >= min_frame
        && frame_size.is_multiple_of(TPACKET_ALIGNMENT)
        && per_block != 0
        && per_block.checked_mul(block_nr) == Some(frame_nr);
    if !valid {
        return Err(Errno::EINVAL);
    }
    Ok(Some(RingRequest {
        block_size,
        block_nr,
        frame_size,
        frame_nr,
    }))
}

/// A parsed `sockaddr_ll`: protocol (host order), interface index, hardware address.
struct Ll {
    protocol: u16,
    ifindex: i32,
    addr: [u8; 8],
}

fn parse_ll(addr: &[u8]) -> Result<Ll, Errno> {
    if addr.len() < SOCKADDR_LL {
        return Err(Errno::EINVAL);
    }
    if i32::from(u16::from_ne_bytes([addr[0], addr[1]])) != libc::AF_PACKET {
        return Err(Errno::EINVAL);
    }
    Ok(Ll {
        protocol: u16::from_be_bytes([addr[2], addr[3]]),
        ifindex: i32::from_ne_bytes(addr[4..8].try_into().expect("4 bytes")),
        addr: addr[SLL_ADDR..SLL_ADDR + 8].try_into().expect("8 bytes"),
    })
}

/// A packet socket file.
pub struct PacketSocket {
    id: u64,
    /// SOCK_RAW or SOCK_DGRAM.
    ty: i32,
    /// The protocol given to socket(2) (host order), for SO_PROTOCOL.
    created_protocol: u16,
    queue: Arc<WaitQueue>,
    stack: Arc<Stack>,
    /// Where the rings' pages come from.
    mf: Arc<MemoryFile>,
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("id", &self.id)
            .field("ty", &self.ty)
            .finish_non_exhaustive()
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        self.stack.lock().taps().taps.remove(&self.id);
    }
}

impl PacketSocket {
    /// A packet socket of type `ty` for `protocol` as socket(2) got it (network order in
    /// its low 16 bits).
    ///
    /// # Errors
    /// ESOCKTNOSUPPORT for types other than SOCK_RAW and SOCK_DGRAM.
    pub fn new(
        stack: &Arc<Stack>,
        mf: &Arc<MemoryFile>,
        ty: i32,
        protocol: i32,
    ) -> Result<PacketSocket, Errno> {
        if ty != libc::SOCK_RAW && ty != libc::SOCK_DGRAM {
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        let protocol = u16::from_be(protocol as u16);
        let s = PacketSocket {
            id: next_id(),
            ty,
            created_protocol: protocol,
            queue: Arc::new(WaitQueue::new()),
            stack: stack.clone(),
            mf: mf.clone(),
        };
        stack.lock().taps().taps.insert(
            s.id,
            Tap {
                ty,
                protocol,
                ifindex: 0,
                queue: VecDeque::new(),
                charged: 0,
                rcvbuf: BUF_MAX,
                sndbuf: BUF_MAX,
                packets: 0,
                drops: 0,
                memberships: Vec::new(),
                options: HashMap::new(),
                rx_ring: None,
                mapping: Weak::new(),
                wq: s.queue.clone(),
            },
        );
        Ok(s)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tap) -> R) -> R {
        let mut g = self.stack.lock();
        f(g.taps().taps.get_mut(&self.id).expect("registered"))
    }

    /// The hardware address and type of interface `index`, or ENODEV.
    fn iface(&self, index: i32) -> Result<(Iface, [u8; 6]), Errno> {
        let g = self.stack.lock();
        if index == LOOPBACK_INDEX {
            return Ok((Iface::LOOPBACK, [0; 6]));
        }
        match (g.link_index, g.link_mac()) {
            (Some(i), Some(mac)) if i == index => Ok((
                Iface {
                    index,
                    hatype: ARPHRD_ETHER,
                },
                mac,
            )),
            _ => Err(Errno::ENODEV),
        }
    }

    /// One receive attempt of at most `len` bytes: `None` when nothing is queued.
    fn take(&self, len: usize, peek: bool) -> Option<InMessage> {
        self.with(|tap| {
            if peek {
                return tap.queue.front().map(|c| self.message(c, len));
            }
            let c = tap.queue.pop_front()?;
            tap.charged -= c.frame.len() + FRAME_OVERHEAD;
            Some(self.message(&c, len))
        })
    }

    fn message(&self, c: &Captured, len: usize) -> InMessage {
        let data = if self.ty == libc::SOCK_DGRAM {
            &c.frame[ETH_HLEN..]
        } else {
            &c.frame[..]
        };
        let protocol = u16::from_be_bytes([c.frame[12], c.frame[13]]);
        let n = data.len().min(len);
        InMessage {
            data: data[..n].to_vec(),
            full_len: data.len(),
            from: Some(sockaddr_ll(
                protocol,
                c.iface.index,
                c.iface.hatype,
                c.pkttype,
                &c.frame[6..12],
            )),
            ..InMessage::default()
        }
    }
}

impl Socket for PacketSocket {
    fn bind(&self, _t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        let ll = parse_ll(addr)?;
        if ll.ifindex != 0 {
            self.iface(ll.ifindex)?;
        }
        self.with(|tap| {
            tap.ifindex = ll.ifindex;
            if ll.protocol != 0 {
                tap.protocol = ll.protocol;
            }
        });
        Ok(())
    }

    fn connect(&self, _t: &mut dyn Context, _addr: &[u8], _nonblocking: bool) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    fn send(
        &self,
        _t: &mut dyn Context,
        mut msg: OutMessage,
        src: &mut dyn IoSrc,
        _flags: IoFlags,
    ) -> Result<usize, Errno> {
        let (bound_index, bound_protocol) = self.with(|tap| (tap.ifindex, tap.protocol));
        let (ifindex, protocol, dst) = match msg.to.as_deref() {
            Some(a) => {
                let ll = parse_ll(a)?;
                (ll.ifindex, ll.protocol, ll.addr)
            }
            None => (bound_index, bound_protocol, [0; 8]),
        };
        if ifindex == 0 {
            return Err(Errno::ENXIO);
        }
        let (iface, mac) = self.iface(ifindex)?;
        let mtu = if iface.index == LOOPBACK_INDEX {
            super::config::LOOPBACK_MTU as usize
        } else {
            self.stack.lock().link_mtu()
        };
        let header = if self.ty == libc::SOCK_RAW {
            0
        } else {
            ETH_HLEN
        };
        if src.remaining() + header > mtu + ETH_HLEN {
            return Err(Errno::EMSGSIZE);
        }
        msg.data = super::gather(src)?;
        let len = msg.data.len();
        let frame = if self.ty == libc::SOCK_RAW {
            if len < ETH_HLEN {
                return Err(Errno::EINVAL);
            }
            msg.data
        } else {
            let mut f = Vec::with_capacity(ETH_HLEN + len);
            f.extend_from_slice(&dst[..6]);
            f.extend_from_slice(&mac);
            f.extend_from_slice(&protocol.to_be_bytes());
            f.extend_from_slice(&msg.data);
            f
        };
        let mut g = self.stack.lock();
        g.send_frame(iface, frame, self.id);
        g.pump();
        Ok(len)
    }

    fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        let len = dst.remaining();
        let m = t.block_on(&[&self.queue], None, || match self.take(len, flags.peek) {
            Some(m) => Some(Ok(m)),
            None if flags.nonblocking => Some(Err(Errno::EAGAIN)),
            None => None,
        })?;
        super::deliver(m, dst)
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        Ok(self.with(|tap| {
            tap.queue.front().map_or(0, |c| {
                if self.ty == libc::SOCK_DGRAM {
                    c.frame.len() - ETH_HLEN
                } else {
                    c.frame.len()
                }
            })
        }))
    }

    fn local_addr(&self) -> Vec<u8> {
        let (protocol, ifindex) = self.with(|tap| (tap.protocol, tap.ifindex));
        match self.iface(ifindex) {
            Ok((iface, mac)) if ifindex != 0 => {
                sockaddr_ll(protocol, ifindex, iface.hatype, 0, &mac)[..SLL_ADDR + 6].to_vec()
            }
            _ => sockaddr_ll(protocol, ifindex, 0, 0, &[])[..SLL_ADDR].to_vec(),
        }
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    fn shutdown(&self, _how: i32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        self.with(|tap| {
            Ok(match (level, name) {
                (libc::SOL_SOCKET, libc::SO_TYPE) => int(self.ty),
                (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(libc::AF_PACKET),
                (libc::SOL_SOCKET, libc::SO_PROTOCOL) => {
                    int(i32::from(self.created_protocol.to_be()))
                }
                (libc::SOL_SOCKET, libc::SO_ERROR | libc::SO_ACCEPTCONN) => int(0),
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(tap.sndbuf as i32),
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(tap.rcvbuf as i32),
                (libc::SOL_SOCKET, libc::SO_LINGER) => tap
                    .options
                    .get(&(level, name))
                    .cloned()
                    .unwrap_or_else(|| vec![0; 8]),
                (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER | libc::SO_DETACH_FILTER) => {
                    return Err(Errno::ENOPROTOOPT)
                }
                (SOL_PACKET, PACKET_VERSION | PACKET_RESERVE) => {
                    int(tap.packet_option(name) as i32)
                }
                (SOL_PACKET, PACKET_STATISTICS) => {
                    // struct tpacket_stats { tp_packets, tp_drops }: counted since the last
                    // read, dropped frames included in the packets.
                    let mut v = tap.packets.saturating_add(tap.drops).to_ne_bytes().to_vec();
                    v.extend_from_slice(&tap.drops.to_ne_bytes());
                    tap.packets = 0;
                    tap.drops = 0;
                    v
                }
                (libc::SOL_SOCKET, _) => tap
                    .options
                    .get(&(level, name))
                    .cloned()
                    .unwrap_or_else(|| int(0)),
                _ => return Err(Errno::ENOPROTOOPT),
            })
        })
    }

    fn packet_hdrlen(&self, version: i32) -> Result<i32, Errno> {
        match version {
            TPACKET_V1 | TPACKET_V2 => Ok(FRAME_HDR as i32),
            TPACKET_V3 => Ok(TPACKET3_HDR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                let v = (int_of(value)? as u32 as usize).min(BUF_MAX) * 2;
                self.with(|tap| {
                    if name == libc::SO_RCVBUF {
                        tap.rcvbuf = v.max(MIN_RCVBUF);
                    } else {
                        tap.sndbuf = v.max(MIN_SNDBUF);
                    }
                });
                Ok(())
            }
            // No filter can be attached, so there is none to detach.
            (libc::SOL_SOCKET, libc::SO_DETACH_FILTER) => Err(Errno::ENOENT),
            (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER) => Err(Errno::ENOPROTOOPT),
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                if value.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                self.with(|tap| tap.options.insert((level, name), value[..8].to_vec()));
                Ok(())
            }
            (libc::SOL_SOCKET, _) => {
                if value.len() < 4 {
                    return Err(Errno::EINVAL);
                }
                self.with(|tap| tap.options.insert((level, name), value[..4].to_vec()));
                Ok(())
            }
            (SOL_PACKET, PACKET_VERSION | PACKET_RESERVE | PACKET_COPY_THRESH) => {
                // PACKET_RESERVE takes a longer value; the others exactly an int.
                if value.len() < 4 || (name != PACKET_RESERVE && value.len() != 4) {
                    return Err(Errno::EINVAL);
                }
                let v = int_of(value)?;
                let valid = match name {
                    PACKET_VERSION => (0..=TPACKET_V3).contains(&v),
                    PACKET_RESERVE => v >= 0,
                    _ => true,
                };
                if !valid {
                    return Err(Errno::EINVAL);
                }
                self.with(|tap| {
                    if name != PACKET_COPY_THRESH && tap.rx_ring.is_some() {
                        return Err(Errno::EBUSY);
                    }
                    tap.options.insert((level, name), value[..4].to_vec());
                    Ok(())
                })
            }
            (SOL_PACKET, PACKET_RX_RING | PACKET_TX_RING) => {
                self.with(|tap| tap.set_ring(&self.mf, name == PACKET_TX_RING, value))
            }
            (SOL_PACKET, PACKET_ADD_MEMBERSHIP | PACKET_DROP_MEMBERSHIP) => {
                if value.len() < PACKET_MREQ - 8 {
                    return Err(Errno::EINVAL);
                }
                let ifindex = i32::from_ne_bytes(value[0..4].try_into().expect("4 bytes"));
                let ty = u16::from_ne_bytes([value[4], value[5]]);
                let alen = usize::from(u16::from_ne_bytes([value[6], value[7]]));
                let addr = value.get(8..8 + alen).ok_or(Errno::EINVAL)?.to_vec();
                self.iface(ifindex)?;
                if !matches!(
                    ty,
                    PACKET_MR_MULTICAST
                        | PACKET_MR_PROMISC
                        | PACKET_MR_ALLMULTI
                        | PACKET_MR_UNICAST
                ) {
                    return Err(Errno::EINVAL);
                }
                let entry = (ifindex, ty, addr);
                self.with(|tap| {
                    if name == PACKET_ADD_MEMBERSHIP {
                        tap.memberships.push(entry);
                        Ok(())
                    } else {
                        let i = tap
                            .memberships
                            .iter()
                            .position(|m| *m == entry)
                            .ok_or(Errno::EADDRNOTAVAIL)?;
                        tap.memberships.remove(i);
                        Ok(())
                    }
                })
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }
}

/// What a checkpoint keeps of a packet socket (`kernel::checkpoint`): its type, the
/// protocol socket(2) got and the one bound, the interface bound (by index), buffer sizes,
/// the PACKET_STATISTICS counters, PACKET_ADD_MEMBERSHIP entries and the socket options
/// recorded. Frames queued when the checkpoint was taken are not kept (as datagrams queued
/// at a UDP socket).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PacketImage {
    /// SOCK_RAW or SOCK_DGRAM.
    pub ty: i32,
    /// The protocol given to socket(2), host order.
    pub created_protocol: u16,
    /// The protocol bound (host order; 0: none).
    pub protocol: u16,
    /// The interface bound (0: every one).
    pub ifindex: i32,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub packets: u32,
    pub drops: u32,
    /// (ifindex, `PACKET_MR_*` type, address).
    pub memberships: Vec<(i32, u16, Vec<u8>)>,
    /// (level, name, value).
    pub options: Vec<(i32, i32, Vec<u8>)>,
}

impl PacketSocket {
    /// This socket for a checkpoint.
    ///
    /// # Errors
    /// The socket has a ring (its frames and mappings are not kept): what it is.
    pub fn saved(&self) -> Result<PacketImage, String> {
        self.with(|tap| {
            if tap.rx_ring.is_some() {
                return Err("a packet socket with a PACKET_RX_RING".to_owned());
            }
            Ok(PacketImage {
                ty: self.ty,
                created_protocol: self.created_protocol,
                protocol: tap.protocol,
                ifindex: tap.ifindex,
                rcvbuf: tap.rcvbuf,
                sndbuf: tap.sndbuf,
                packets: tap.packets,
                drops: tap.drops,
                memberships: tap.memberships.clone(),
                options: tap
                    .options
                    .iter()
                    .map(|(&(level, name), v)| (level, name, v.clone()))
                    .collect(),
            })
        })
    }

    /// A packet socket as [`PacketSocket::saved`] described it, on `stack`.
    ///
    /// # Errors
    /// An interface it is bound to or a member on is not in this sandbox, or the image is
    /// malformed.
    pub fn restored(
        stack: &Arc<Stack>,
        mf: &Arc<MemoryFile>,
        image: &PacketImage,
    ) -> Result<PacketSocket, String> {
        let sock = PacketSocket::new(
            stack,
            mf,
            image.ty,
            i32::from(image.created_protocol.to_be()),
        )
        .map_err(|_| format!("socket type {}", image.ty))?;
        let indexes = std::iter::once(image.ifindex).chain(image.memberships.iter().map(|m| m.0));
        for index in indexes.filter(|&i| i != 0) {
            sock.iface(index)
                .map_err(|_| format!("no interface of index {index} in this sandbox"))?;
        }
        if image.memberships.iter().any(|m| m.1 > PACKET_MR_UNICAST) {
            return Err("a membership of an unknown type".into());
        }
        sock.with(|tap| {
            tap.protocol = image.protocol;
            tap.ifindex = image.ifindex;
            tap.rcvbuf = image.rcvbuf.clamp(MIN_RCVBUF, BUF_MAX * 2);
            tap.sndbuf = image.sndbuf.clamp(MIN_SNDBUF, BUF_MAX * 2);
            tap.packets = image.packets;
            tap.drops = image.drops;
            tap.memberships = image.memberships.clone();
            tap.options = image
                .options
                .iter()
                .map(|(level, name, v)| ((*level, *name), v.clone()))
                .collect();
        });
        Ok(sock)
    }
}

impl FileOps for PacketSocket {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::socket::stat(self.id))
    }

    fn mmap_buffer(&self, len: u64, offset: u64) -> Option<Result<Arc<dyn Mappable>, Errno>> {
        Some(self.with(|tap| tap.map_rings(len, offset)))
    }

    fn readiness(&self) -> u32 {
        let readable = self
            .with(|tap| !tap.queue.is_empty() || tap.rx_ring.as_ref().is_some_and(Ring::readable));
        let mut r = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        if readable {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        r
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = vec![0; ETH_HLEN + 4];
        f[..6].copy_from_slice(&dst);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn tap(protocol: u16, ifindex: i32) -> Tap {
        Tap {
            ty: libc::SOCK_RAW,
            protocol,
            ifindex,
            queue: VecDeque::new(),
            charged: 0,
            rcvbuf: BUF_MAX,
            sndbuf: BUF_MAX,
            packets: 0,
            drops: 0,
            memberships: Vec::new(),
            options: HashMap::new(),
            rx_ring: None,
            mapping: Weak::new(),
            wq: Arc::new(WaitQueue::new()),
        }
    }

    #[test]
    fn taps_follow_protocol_interface_and_direction() {
        let mut taps = Taps::default();
        taps.taps.insert(1, tap(ETH_P_ALL, 0));
        taps.taps.insert(2, tap(ETH_P_IP, LOOPBACK_INDEX));
        taps.taps.insert(3, tap(ETH_P_IP, 2));
        taps.taps.insert(4, tap(0, 0));
        let f = frame([0; 6], ETH_P_IP);
        taps.capture(Iface::LOOPBACK, &f, PACKET_OUTGOING, None);
        taps.capture(Iface::LOOPBACK, &f, PACKET_HOST, None);
        taps.capture(Iface::LOOPBACK, &frame([0; 6], 0x0806), PACKET_HOST, None);
        let n = |taps: &Taps, id| taps.taps[&id].queue.len();
        // ETH_P_ALL: both directions and every protocol; ETH_P_IP: received IPv4 only, on
        // its interface; protocol 0: nothing.
        assert_eq!(
            (n(&taps, 1), n(&taps, 2), n(&taps, 3), n(&taps, 4)),
            (3, 1, 0, 0)
        );
        taps.capture(Iface::LOOPBACK, &f, PACKET_OUTGOING, Some(1));
        assert_eq!(n(&taps, 1), 3, "the sender sees no copy of its own frame");
    }

    fn req(block_size: u32, block_nr: u32, frame_size: u32, frame_nr: u32) -> Vec<u8> {
        [block_size, block_nr, frame_size, frame_nr]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect()
    }

    #[test]
    fn ring_requests_checked_as_linux_checks_them() {
        // Not a page multiple, a frame below the header, a frame not aligned, a frame
        // count that is not the blocks' frames, frames without blocks, a short request.
        for r in [
            req(100, 1, 64, 1),
            req(4096, 1, 16, 256),
            req(4096, 1, 100, 40),
            req(4096, 1, 2048, 3),
            req(4096, 0, 2048, 2),
            req(4096, 1, 2048, 2)[..12].to_vec(),
        ] {
            assert_eq!(check_ring(0, 0, &r), Err(Errno::EINVAL), "{r:?}");
        }
        assert_eq!(check_ring(0, 0, &req(0, 0, 0, 0)), Ok(None), "no ring");
        assert_eq!(
            check_ring(1, 0, &req(8192, 2, 2048, 8)),
            Ok(Some(RingRequest {
                block_size: 8192,
                block_nr: 2,
                frame_size: 2048,
                frame_nr: 8
            }))
        );
        // PACKET_RESERVE counts against the least frame.
        assert_eq!(check_ring(1, 16, &req(4096, 1, 64, 64)), Err(Errno::EINVAL));
    }

    #[test]
    fn pkttype_by_destination() {
        let mac = [2, 0, 0, 0, 0, 1];
        assert_eq!(pkttype_of(&frame(mac, ETH_P_IP), mac), PACKET_HOST);
        assert_eq!(
            pkttype_of(&frame([0xff; 6], ETH_P_IP), mac),
            PACKET_BROADCAST
        );
        assert_eq!(
            pkttype_of(&frame([1, 0, 0x5e, 0, 0, 1], ETH_P_IP), mac),
            PACKET_MULTICAST
        );
        assert_eq!(
            pkttype_of(&frame([2, 0, 0, 0, 0, 2], ETH_P_IP), mac),
            PACKET_OTHERHOST
        );
    }
}
