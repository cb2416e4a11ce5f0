//! IP fragmentation on the link: reassembly of fragments that arrive ([`Reassembly`]) and
//! fragmentation of packets above the link's MTU as they leave ([`fragment`]).
//!
//! smoltcp sees whole packets only: the device reassembles before handing a packet in, and
//! cuts what smoltcp sends (its IP MTU is the loopback's) to the link's MTU on the way out.
//! Linux's rules are followed where they are visible to a peer or an application:
//!
//! - A datagram waits at most [`TIMEOUT`] for its fragments (`net.ipv4.ipfrag_time`, 30 s),
//!   and all datagrams being reassembled take at most [`HIGH_THRESH`] bytes together
//!   (`ipfrag_high_thresh`, 4 MiB, each fragment charged with an overhead): a fragment
//!   above that is dropped, so a peer flooding incomplete datagrams costs bounded memory.
//! - A fragment that repeats part of the datagram already held, inside one run of
//!   contiguous fragments, is dropped alone (a duplicate); one that overlaps otherwise
//!   drops the whole datagram (RFC 5722 for IPv6; Linux does the same for IPv4), as do
//!   a second, different end and a datagram above 65,535 bytes.
//! - IPv4 fragments are cut on 8-byte boundaries with the header copied (options only
//!   those with the copy flag after the first fragment), DF cleared; IPv6 ones get a
//!   fragment header after the unfragmentable part (hop-by-hop, routing and destination
//!   options headers before a routing header are kept in every fragment: here, the
//!   headers before the first one of another kind).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use smoltcp::time::{Duration, Instant};

/// How long a datagram waits for its missing fragments (`ipfrag_time`).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes all datagrams being reassembled take (`ipfrag_high_thresh`).
pub const HIGH_THRESH: usize = 4 << 20;
/// What each fragment held costs beyond its bytes (its bookkeeping, as Linux charges an
/// skb's truesize).
const OVERHEAD: usize = 256;
/// The largest IP payload a reassembled datagram may have past its headers.
const MAX_IP: usize = 65_535;

/// IPv6's fragment extension header.
const IPV6_FRAGMENT: u8 = 44;
/// Extension headers that may stand before the fragment header (hop-by-hop options,
/// routing, destination options).
const IPV6_UNFRAGMENTABLE: [u8; 3] = [0, 43, 60];

/// What identifies one datagram's fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// The IPv4 protocol (IPv6 keys have none).
    proto: u8,
}

/// One fragment of an IP packet, parsed.
struct Fragment<'a> {
    key: Key,
    /// The headers every fragment repeats: IPv4's (options and all) or IPv6's unfragmentable
    /// part with the fragment header's next header put where the fragment header was named.
    header: Vec<u8>,
    /// Where its data starts in the datagram's payload, in bytes.
    offset: usize,
    more: bool,
    data: &'a [u8],
}

/// What to do with a received IP packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Not a fragment: deliver it as it is.
    Whole,
    /// A fragment held (or dropped) until its datagram is complete.
    Held,
    /// The last fragment that was missing: the whole datagram.
    Complete(Vec<u8>),
}

/// One datagram being reassembled.
struct Queue {
    /// When its first fragment arrived.
    started: Instant,
    /// The first fragment's headers, once it came.
    header: Option<Vec<u8>>,
    /// The fragments' data by offset; none overlaps another.
    pieces: BTreeMap<usize, Vec<u8>>,
    /// The payload's length, once the last fragment came.
    total: Option<usize>,
    /// What it is charged against [`HIGH_THRESH`].
    charged: usize,
}

/// The datagrams being reassembled.
#[derive(Default)]
pub struct Reassembly {
    queues: HashMap<Key, Queue>,
    /// What they take together.
    memory: usize,
    /// The limit (tests take a smaller one).
    limit: Option<usize>,
}

impl std::fmt::Debug for Reassembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembly")
            .field("datagrams", &self.queues.len())
            .field("memory", &self.memory)
            .finish()
    }
}

impl Reassembly {
    /// What the datagrams being reassembled take now.
    #[cfg(test)]
    fn memory(&self) -> usize {
        self.memory
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(HIGH_THRESH)
    }

    /// Takes the received IP packet `ip` at `now`.
    pub fn receive(&mut self, ip: &[u8], now: Instant) -> Received {
        let frag = match ip.first().map(|b| b >> 4) {
            Some(4) => parse_v4(ip),
            Some(6) => parse_v6(ip),
            _ => return Received::Whole,
        };
        let frag = match frag {
            Parsed::Whole => return Received::Whole,
            Parsed::Malformed => return Received::Held,
            Parsed::Fragment(f) => f,
        };
        self.expire(now);
        if !frag.more && frag.offset == 0 {
            // An atomic fragment (IPv6, RFC 6946): the whole datagram already.
            return Received::Complete(assemble(&frag.header, [frag.data]));
        }
        let mut frag = frag;
        if frag.more && frag.data.len() % 8 != 0 {
            if frag.header[0] >> 4 == 6 {
                // Linux answers a parameter problem and drops the fragment.
                return Received::Held;
            }
            // IPv4's is cut to the 8-byte boundary, as Linux's.
            frag.data = &frag.data[..frag.data.len() & !7];
        }
        let end = frag.offset + frag.data.len();
        if end > MAX_IP || frag.data.is_empty() {
            self.kill(&frag.key);
            return Received::Held;
        }
        let cost = frag.data.len() + frag.header.len() + OVERHEAD;
        let limit = self.limit();
        if self.memory + cost > limit {
            // Full: nothing new is taken until datagrams complete or time out.
            return Received::Held;
        }
        let q = self.queues.entry(frag.key).or_insert_with(|| Queue {
            started: now,
            header: None,
            pieces: BTreeMap::new(),
            total: None,
            charged: 0,
        });
        // A last fragment fixes the end: a second, different one, or data past it, is a
        // broken datagram.
        let broken = match (frag.more, q.total) {
            (false, Some(t)) => t != end,
            (true, Some(t)) => end > t,
            (false, None) => q
                .pieces
                .last_key_value()
                .is_some_and(|(o, p)| o + p.len() > end),
            (true, None) => false,
        };
        if broken {
            self.kill(&frag.key);
            return Received::Held;
        }
        match overlap(&q.pieces, frag.offset, end) {
            Overlap::None => {}
            Overlap::Duplicate => return Received::Held,
            Overlap::Partial => {
                self.kill(&frag.key);
                return Received::Held;
            }
        }
        if !frag.more {
            q.total = Some(end);
        }
        if frag.offset == 0 {
            q.header = Some(frag.header);
        }
        q.pieces.insert(frag.offset, frag.data.to_vec());
        q.charged += cost;
        self.memory += cost;
        let complete = q.header.is_some()
            && q.total.is_some_and(|t| {
                let mut at = 0;
                for (&o, p) in &q.pieces {
                    if o != at {
                        return false;
                    }
                    at += p.len();
                }
                at == t
            });
        if !complete {
            return Received::Held;
        }
        let q = self.queues.remove(&frag.key).expect("present");
        self.memory -= q.charged;
        let header = q.header.expect("complete");
        if header.len() + q.total.expect("complete") > MAX_IP + ip_fixed(&header) {
            return Received::Held;
        }
        Received::Complete(assemble(&header, q.pieces.values().map(Vec::as_slice)))
    }

    /// Drops the datagrams whose time is up.
    fn expire(&mut self, now: Instant) {
        let memory = &mut self.memory;
        self.queues.retain(|_, q| {
            let keep = now < q.started + TIMEOUT;
            if !keep {
                *memory -= q.charged;
            }
            keep
        });
    }

    fn kill(&mut self, key: &Key) {
        if let Some(q) = self.queues.remove(key) {
            self.memory -= q.charged;
        }
    }
}

/// The fixed header's length that a datagram's length limit does not count (IPv6's 40 bytes:
/// its payload length field counts what follows).
fn ip_fixed(header: &[u8]) -> usize {
    if header[0] >> 4 == 6 {
        40
    } else {
        0
    }
}

enum Overlap {
    None,
    /// Inside one run of contiguous fragments already held.
    Duplicate,
    Partial,
}

/// How `offset..end` meets the fragments held.
fn overlap(pieces: &BTreeMap<usize, Vec<u8>>, offset: usize, end: usize) -> Overlap {
    let before = pieces.range(..=offset).next_back();
    let after = pieces.range(offset..end).next();
    let touches = before.is_some_and(|(o, p)| o + p.len() > offset) || after.is_some();
    if !touches {
        return Overlap::None;
    }
    // Walk the run that holds `offset`.
    let Some((&start, _)) = before.filter(|(o, p)| *o + p.len() > offset) else {
        return Overlap::Partial;
    };
    let mut at = start;
    for (&o, p) in pieces.range(start..) {
        if o != at {
            break;
        }
        at += p.len();
        if at >= end {
            return Overlap::Duplicate;
        }
    }
    Overlap::Partial
}

/// The whole packet of `header` (a fragment's, with offset and more-fragments cleared
/// below) and the datagram's payload `pieces`.
fn assemble<'a>(header: &[u8], pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut p = header.to_vec();
    for piece in pieces {
        p.extend_from_slice(piece);
    }
    let len = p.len();
    if p[0] >> 4 == 4 {
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        // No more fragments, offset 0; DF as the fragments had it.
        p[6] &= 0x40;
        p[7] = 0;
        fill_v4_checksum(&mut p);
    } else {
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    }
    p
}

enum Parsed<'a> {
    Whole,
    Malformed,
    Fragment(Fragment<'a>),
}

fn parse_v4(ip: &[u8]) -> Parsed<'_> {
    if ip.len() < 20 {
        return Parsed::Whole;
    }
    let ihl = usize::from(ip[0] & 0xF) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    let more = flags & 0x2000 != 0;
    let offset = usize::from(flags & 0x1FFF) * 8;
    if !more && offset == 0 {
        return Parsed::Whole;
    }
    if ihl < 20 || total < ihl || total > ip.len() {
        return Parsed::Malformed;
    }
    let src: [u8; 4] = ip[12..16].try_into().expect("4 bytes");
    let dst: [u8; 4] = ip[16..20].try_into().expect("4 bytes");
    Parsed::Fragment(Fragment {
        key: Key {
            src: src.into(),
            dst: dst.into(),
            id: u32::from(u16::from_be_bytes([ip[4], ip[5]])),
            proto: ip[9],
        },
        header: ip[..ihl].to_vec(),
        offset,
        more,
        data: &ip[ihl..total],
    })
}

fn parse_v6(ip: &[u8]) -> Parsed<'_> {
    if ip.len() < 40 {
        return Parsed::Whole;
    }
    let end = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
    // Walk the unfragmentable headers to the fragment header: `named` is where the header
    // that names the next one keeps its next-header byte.
    let (mut next, mut at, mut named) = (ip[6], 40, 6);
    while next != IPV6_FRAGMENT {
        if !IPV6_UNFRAGMENTABLE.contains(&next) || at + 8 > end {
            return Parsed::Whole;
        }
        named = at;
        next = ip[at];
        at += (usize::from(ip[at + 1]) + 1) * 8;
    }
    if at + 8 > end {
        return Parsed::Malformed;
    }
    let fh = &ip[at..at + 8];
    let flags = u16::from_be_bytes([fh[2], fh[3]]);
    let mut header = ip[..at].to_vec();
    header[named] = fh[0];
    let src: [u8; 16] = ip[8..24].try_into().expect("16 bytes");
    let dst: [u8; 16] = ip[24..40].try_into().expect("16 bytes");
    Parsed::Fragment(Fragment {
        key: Key {
            src: src.into(),
            dst: dst.into(),
            id: u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]),
            proto: 0,
        },
        header,
        offset: usize::from(flags & !7),
        more: flags & 1 != 0,
        data: &ip[at + 8..end],
    })
}

/// The IPv4 header checksum of `p`, filled in.
fn fill_v4_checksum(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0xF) * 4;
    p[10..12].fill(0);
    let mut sum: u32 = p[..ihl]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// The fragments of IP packet `ip` for a link of IP MTU `mtu`, in order (`None`: it fits,
/// or is not an IPv4 or IPv6 packet that can be cut). `id` names an IPv6 datagram's
/// fragments (IPv4 keeps its header's).
pub fn fragment(ip: &[u8], mtu: usize, id: u32) -> Option<Vec<Vec<u8>>> {
    if ip.len() <= mtu {
        return None;
    }
    match ip.first()? >> 4 {
        4 => fragment_v4(ip, mtu),
        6 => fragment_v6(ip, mtu, id),
        _ => None,
    }
}

fn fragment_v4(ip: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    let ihl = usize::from(ip[0] & 0xF) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < 20 || total < ihl || total > ip.len() {
        return None;
    }
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    // A fragment being cut again keeps its place and, at its end, its more-fragments flag.
    let base = usize::from(flags & 0x1FFF) * 8;
    let more_after = flags & 0x2000 != 0;
    let later = later_header_v4(&ip[..ihl]);
    let payload = &ip[ihl..total];
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let header = if at == 0 { &ip[..ihl] } else { &later[..] };
        let room = (mtu.checked_sub(header.len())? / 8) * 8;
        if room == 0 {
            return None;
        }
        let n = room.min(payload.len() - at);
        let last = at + n == payload.len();
        let mut f = Vec::with_capacity(header.len() + n);
        f.extend_from_slice(header);
        f.extend_from_slice(&payload[at..at + n]);
        let len = f.len() as u16;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        let off = ((base + at) / 8) as u16;
        let more = if last { more_after } else { true };
        let flags = off | if more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&flags.to_be_bytes());
        fill_v4_checksum(&mut f);
        out.push(f);
        at += n;
    }
    Some(out)
}

/// The header of IPv4 fragments after the first: the options without the copy flag left
/// out, the rest padded to 4 bytes.
fn later_header_v4(header: &[u8]) -> Vec<u8> {
    let mut opts = Vec::new();
    let mut at = 20;
    while at < header.len() {
        match header[at] {
            0 => break,
            1 => at += 1,
            t => {
                let Some(&len) = header.get(at + 1) else {
                    break;
                };
                let len = usize::from(len).max(2);
                let end = (at + len).min(header.len());
                if t & 0x80 != 0 {
                    opts.extend_from_slice(&header[at..end]);
                }
                at = end;
            }
        }
    }
    while opts.len() % 4 != 0 {
        opts.push(0);
    }
    let mut h = header[..20].to_vec();
    h.extend_from_slice(&opts);
    h[0] = 0x40 | (h.len() / 4) as u8;
    h
}

fn fragment_v6(ip: &[u8], mtu: usize, id: u32) -> Option<Vec<Vec<u8>>> {
    let end = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
    // The unfragmentable part: the fixed header and the extension headers of the kinds
    // that precede a fragment header.
    let (mut next, mut at, mut named) = (ip[6], 40, 6);
    while IPV6_UNFRAGMENTABLE.contains(&next) && at + 8 <= end {
        let len = (usize::from(ip[at + 1]) + 1) * 8;
        if at + len > end {
            break;
        }
        named = at;
        next = ip[at];
        at += len;
    }
    if next == IPV6_FRAGMENT {
        // Already a fragment: not cut again (only its source cuts an IPv6 datagram).
        return None;
    }
    let unfrag = &ip[..at];
    let payload = &ip[at..end];
    let room = (mtu.checked_sub(at + 8)? / 8) * 8;
    if room == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let n = room.min(payload.len() - off);
        let more = off + n < payload.len();
        let mut f = Vec::with_capacity(at + 8 + n);
        f.extend_from_slice(unfrag);
        f[named] = IPV6_FRAGMENT;
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&payload[off..off + n]);
        let len = (f.len() - 40) as u16;
        f[4..6].copy_from_slice(&len.to_be_bytes());
        out.push(f);
        off += n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_v4(len: usize) -> Vec<u8> {
        let total = 20 + len;
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend((0..len).map(|i| i as u8));
        fill_v4_checksum(&mut p);
        p
    }

    fn udp_v6(len: usize) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        p[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        p.extend((0..len).map(|i| (i * 7) as u8));
        p
    }

    fn now(s: u64) -> Instant {
        Instant::from_secs(s as i64)
    }

    fn whole(r: &mut Reassembly, frags: &[Vec<u8>]) -> Option<Vec<u8>> {
        let mut out = None;
        for f in frags {
            match r.receive(f, now(0)) {
                Received::Complete(p) => out = Some(p),
                Received::Held => {}
                Received::Whole => panic!("a fragment taken as whole"),
            }
        }
        out
    }

    #[test]
    fn round_trip_both_families_any_order() {
        // One byte above the MTU, and more.
        for p in [
            udp_v4(1481),
            udp_v4(4000),
            udp_v4(65_000),
            udp_v6(1461),
            udp_v6(65_000),
        ] {
            let frags = fragment(&p, 1500, 7).expect("cut");
            assert!(frags.iter().all(|f| f.len() <= 1500), "{}", frags.len());
            assert!(frags.len() > 1);
            let mut r = Reassembly::default();
            let mut back = whole(&mut r, &frags).expect("complete");
            let mut reversed = frags.clone();
            reversed.reverse();
            let back2 = whole(&mut r, &reversed).expect("complete");
            assert_eq!(back, back2);
            if p[0] >> 4 == 4 {
                // The DF flag is cleared by fragmenting.
                back[6] |= 0x40;
                fill_v4_checksum(&mut back);
            }
            assert_eq!(back, p);
            assert_eq!(r.memory(), 0);
        }
        assert!(fragment(&udp_v4(1480), 1500, 0).is_none());
        assert_eq!(
            Reassembly::default().receive(&udp_v4(100), now(0)),
            Received::Whole
        );
    }

    #[test]
    fn duplicates_are_dropped_overlaps_drop_the_datagram() {
        let frags = fragment(&udp_v4(4000), 1500, 0).expect("cut");
        let mut r = Reassembly::default();
        assert_eq!(r.receive(&frags[0], now(0)), Received::Held);
        assert_eq!(r.receive(&frags[0], now(0)), Received::Held);
        assert_eq!(r.receive(&frags[1], now(0)), Received::Held);
        assert!(matches!(
            r.receive(&frags[2], now(0)),
            Received::Complete(_)
        ));
        // An overlapping fragment (the second one moved 8 bytes back) kills the datagram:
        // the rest never completes it.
        let mut shifted = frags[1].clone();
        let flags = u16::from_be_bytes([shifted[6], shifted[7]]) - 1;
        shifted[6..8].copy_from_slice(&flags.to_be_bytes());
        assert_eq!(r.receive(&frags[0], now(0)), Received::Held);
        assert_eq!(r.receive(&shifted, now(0)), Received::Held);
        assert_eq!(r.memory(), 0);
        assert_eq!(r.receive(&frags[1], now(0)), Received::Held);
        assert_eq!(r.receive(&frags[2], now(0)), Received::Held);
    }

    #[test]
    fn memory_is_bounded_and_datagrams_time_out() {
        let mut r = Reassembly {
            limit: Some(64 << 10),
            ..Reassembly::default()
        };
        let base = fragment(&udp_v4(4000), 1500, 0).expect("cut");
        for id in 0..1000u16 {
            let mut f = base[0].clone();
            f[4..6].copy_from_slice(&id.to_be_bytes());
            r.receive(&f, now(0));
            assert!(r.memory() <= 64 << 10);
        }
        assert!(r.memory() > 32 << 10);
        // A datagram that comes now finds no room ...
        assert_eq!(
            whole(&mut r, &fragment(&udp_v4(20_000), 1500, 0).unwrap()),
            None
        );
        // ... until the held ones time out.
        let frags = fragment(&udp_v4(4000), 1500, 0).expect("cut");
        let mut complete = None;
        for f in &frags {
            let mut f = f.clone();
            f[4..6].copy_from_slice(&5000u16.to_be_bytes());
            fill_v4_checksum(&mut f);
            if let Received::Complete(p) = r.receive(&f, now(31)) {
                complete = Some(p);
            }
        }
        assert!(complete.is_some());
        assert_eq!(r.memory(), 0);
    }

    #[test]
    fn ipv4_options_without_copy_flag_stay_in_the_first_fragment() {
        // Record route (7, not copied) and a copied option (0x94 router alert, 4 bytes).
        let mut p = udp_v4(3000);
        let opts = [7u8, 7, 4, 0, 0, 0, 0, 1, 0x94, 4, 0, 0];
        p.splice(20..20, opts);
        p[0] = 0x45 + 3;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let frags = fragment(&p, 1500, 0).expect("cut");
        assert_eq!(frags[0][0] & 0xF, 8);
        assert_eq!(frags[1][0] & 0xF, 6);
        assert_eq!(&frags[1][20..24], &[0x94, 4, 0, 0]);
        let mut r = Reassembly::default();
        let back = whole(&mut r, &frags).expect("complete");
        assert_eq!(back[20..], p[20..]);
    }
}
