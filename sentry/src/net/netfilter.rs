//! Netfilter tables of one network namespace's stack: what `iptables` and `ip6tables`
//! (their legacy, socket-option interface) read and write through a raw socket's
//! `IPT_SO_*` and `IP6T_SO_*` options, and the stack applies to its packets.
//!
//! Each family has the tables `filter` (INPUT, FORWARD, OUTPUT), `nat` (PREROUTING, INPUT,
//! OUTPUT, POSTROUTING), `mangle` (all five hooks) and `raw` (PREROUTING, OUTPUT), each
//! starting as Linux's do: one unconditional ACCEPT policy per hook and the closing ERROR
//! entry. `IPT_SO_SET_REPLACE` replaces a table whole with the blob the application built;
//! `IPT_SO_GET_ENTRIES` gives that blob back with the rules' packet and byte counters.
//!
//! The rules are checked as Linux's `translate_table` checks them (entry offsets and sizes,
//! hook entries and underflows, jumps onto entries and no loop) and then parsed into
//! [`Rule`]s that the stack runs ([`Netfilter::run`] from the device, [`udp_looped`] for
//! the UDP datagrams that stay inside): a packet sent traverses OUTPUT then POSTROUTING,
//! one received PREROUTING then INPUT, each over the `raw`, `mangle`, `nat` and `filter`
//! tables that have the hook, in that order. A rule matches on its IP header fields
//! (addresses and masks, interfaces, protocol, fragments, each maybe inverted) and the
//! `tcp`, `udp`, `icmp` and `icmp6` matches (ports, TCP flags, ICMP type and code); its
//! target is ACCEPT, DROP, RETURN, a jump or goto to a user chain, ERROR (a chain's header:
//! a packet reaching it is dropped, as on Linux) or, in the nat table's PREROUTING and
//! OUTPUT, REDIRECT. FORWARD rules are kept but never reached: the sandbox forwards nothing.
//!
//! REDIRECT (TCP over IPv4) works as Linux's connection tracking does for it, per client
//! endpoint: a connection's opening SYN runs the nat chain; when redirected, its segments
//! go to 127.0.0.1 (OUTPUT) or the address they came for (PREROUTING) at the port asked,
//! the replies come back from the original destination, and `SO_ORIGINAL_DST` of either
//! end answers that destination ([`Netfilter::original_dst`]). The last
//! [`MAX_REDIRECTED`] connections are remembered.
//!
//! What the stack cannot apply is refused whole rather than stored and ignored: other
//! matches (`mark`, `owner`, `multiport`...) and targets (`DNAT`, `CT`, `MASQUERADE`...)
//! that Linux knows are EOPNOTSUPP, unknown ones ENOENT (as Linux, which finds no such
//! extension); the `tcp` match's option test, the IPv6 TOS test and REDIRECT of anything
//! but TCP over IPv4 are EOPNOTSUPP; a verdict other than ACCEPT or REDIRECT in the `nat`
//! table (whose verdicts Linux takes only on a connection's first packet) is EOPNOTSUPP.
//! `IPT_SO_SET_ADD_COUNTERS` adds to the rules' counters. The revision queries
//! (`IPT_SO_GET_REVISION_MATCH` and `_TARGET`) answer for the extensions Linux has, as
//! iptables asks them before it builds a rule.
//!
//! Only raw sockets of the family take these options: others answer ENOPROTOOPT, after a
//! too short buffer's EINVAL ([`check_len`]), as gVisor orders them. They need
//! CAP_NET_ADMIN over the user namespace that owns the socket's network namespace (EPERM).
//!
//! # Lock order
//! The stack lock → [`Netfilter`]'s lock (a leaf: the device evaluates under the stack
//! lock; the socket options take only this one).

use std::net::IpAddr;
use std::sync::Mutex;

use crate::abi::Errno;

/// `IPT_SO_SET_REPLACE` and `IP6T_SO_SET_REPLACE` (setsockopt).
pub const SO_SET_REPLACE: i32 = 64;
/// `IPT_SO_SET_ADD_COUNTERS` (setsockopt).
pub const SO_SET_ADD_COUNTERS: i32 = 65;
/// `IPT_SO_GET_INFO` (getsockopt).
pub const SO_GET_INFO: i32 = 64;
/// `IPT_SO_GET_ENTRIES` (getsockopt).
pub const SO_GET_ENTRIES: i32 = 65;
/// `IPT_SO_GET_REVISION_MATCH` (getsockopt).
pub const SO_GET_REVISION_MATCH: i32 = 66;
/// `IPT_SO_GET_REVISION_TARGET` (getsockopt).
pub const SO_GET_REVISION_TARGET: i32 = 67;
/// `SO_ORIGINAL_DST` and `IP6T_SO_ORIGINAL_DST` (getsockopt).
pub const SO_ORIGINAL_DST: i32 = 80;

/// `XT_TABLE_MAXNAMELEN`.
const TABLE_NAME: usize = 32;
/// `XT_EXTENSION_MAXNAMELEN`.
const EXT_NAME: usize = 29;
/// `NF_INET_NUMHOOKS`.
const HOOKS: usize = 5;
/// `sizeof(struct ipt_getinfo)`.
const GETINFO_SIZE: usize = 84;
/// `sizeof(struct ipt_get_entries)` (also `ip6t_get_entries`).
const GET_ENTRIES_SIZE: usize = 40;
/// `sizeof(struct ipt_replace)` (also `ip6t_replace`).
const REPLACE_SIZE: usize = 96;
/// `sizeof(struct xt_get_revision)`.
const REVISION_SIZE: usize = 30;
/// `sizeof(struct xt_entry_target)` and `xt_entry_match`: size, name, revision.
const EXT_HEADER: usize = 32;
/// `XT_ALIGN(sizeof(struct xt_standard_target))`.
const STANDARD_TARGET_SIZE: usize = 40;
/// `XT_ALIGN(sizeof(struct xt_error_target))`.
const ERROR_TARGET_SIZE: usize = 64;
/// `sizeof(struct xt_counters)`.
const COUNTERS_SIZE: u64 = 16;
/// `sizeof(struct xt_counters_info)`: the table's name and the number of counters.
const COUNTERS_INFO_SIZE: usize = 40;
/// The largest `IPT_SO_SET_REPLACE` value taken (Linux's bound is memory).
pub const MAX_REPLACE: usize = 16 << 20;

/// Standard verdicts as a standard target stores them (`-NF_x - 1`).
const VERDICT_DROP: i32 = -1;
const VERDICT_ACCEPT: i32 = -2;
/// `XT_RETURN` (`-NF_REPEAT - 1`).
const VERDICT_RETURN: i32 = -5;

/// Hooks (`NF_INET_*`).
pub const PRE_ROUTING: usize = 0;
pub const LOCAL_IN: usize = 1;
pub const LOCAL_OUT: usize = 3;
pub const POST_ROUTING: usize = 4;

/// `ipt_ip` flags and inversions (IPv4).
const IPT_F_FRAG: u8 = 0x01;
const IPT_F_GOTO: u8 = 0x02;
const IPT_F_MASK: u8 = 0x03;
/// `ip6t_ip6` flags (IPv6).
const IP6T_F_PROTO: u8 = 0x01;
const IP6T_F_TOS: u8 = 0x02;
const IP6T_F_GOTO: u8 = 0x04;
const IP6T_F_MASK: u8 = 0x07;
/// Inversion bits, the same for both families.
const INV_VIA_IN: u8 = 0x01;
const INV_VIA_OUT: u8 = 0x02;
const INV_SRCIP: u8 = 0x08;
const INV_DSTIP: u8 = 0x10;
const INV_FRAG: u8 = 0x20;
const INV_PROTO: u8 = 0x40;
const INV_MASK: u8 = 0x7F;

/// Most rules one packet visits in one hook's traversal (a bound on work; the tables have
/// no loops).
const MAX_STEPS: usize = 1 << 16;

/// An IP version's table layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The socket option level that reaches this family's tables.
    pub fn level(self) -> i32 {
        match self {
            Family::V4 => libc::IPPROTO_IP,
            Family::V6 => libc::IPPROTO_IPV6,
        }
    }

    /// `sizeof(struct ipt_entry)` or `ip6t_entry`.
    fn entry_size(self) -> usize {
        match self {
            Family::V4 => 112,
            Family::V6 => 168,
        }
    }

    /// Offsets in an entry of `target_offset` (then `next_offset`) and the counters.
    fn offsets(self) -> (usize, usize) {
        match self {
            Family::V4 => (88, 96),
            Family::V6 => (140, 152),
        }
    }
}

/// `IP6T_SO_GET_REVISION_MATCH` and `_TARGET`, which IPv6 numbers apart.
const IP6T_SO_GET_REVISION_MATCH: i32 = 68;
const IP6T_SO_GET_REVISION_TARGET: i32 = 69;

/// The netfilter query (`SO_GET_*`, IPv6's numbered as IPv4's) that getsockopt(2) of
/// `(level, name)` asks, answered from the caller's buffer; `None` for other options.
pub fn query_of(level: i32, name: i32) -> Option<i32> {
    match (level, name) {
        (libc::IPPROTO_IP, SO_GET_INFO..=SO_GET_REVISION_TARGET)
        | (libc::IPPROTO_IPV6, SO_GET_INFO | SO_GET_ENTRIES) => Some(name),
        (libc::IPPROTO_IPV6, IP6T_SO_GET_REVISION_MATCH) => Some(SO_GET_REVISION_MATCH),
        (libc::IPPROTO_IPV6, IP6T_SO_GET_REVISION_TARGET) => Some(SO_GET_REVISION_TARGET),
        _ => None,
    }
}

/// Whether `(level, name)` is a netfilter command setsockopt(2) takes.
pub fn is_command(level: i32, name: i32) -> bool {
    matches!(level, libc::IPPROTO_IP | libc::IPPROTO_IPV6)
        && (SO_SET_REPLACE..=SO_SET_ADD_COUNTERS).contains(&name)
}

/// The first check of a netfilter query of `len` bytes, made whatever the socket: EINVAL
/// when the buffer cannot hold the query's structure.
pub fn check_len(name: i32, len: usize) -> Result<(), Errno> {
    let need = match name {
        SO_GET_INFO => GETINFO_SIZE,
        SO_GET_ENTRIES => GET_ENTRIES_SIZE,
        _ => REVISION_SIZE,
    };
    if len < need {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The first check of a netfilter command of `len` bytes, made whatever the socket.
pub fn check_command_len(name: i32, len: usize) -> Result<(), Errno> {
    if name == SO_SET_REPLACE && len < REPLACE_SIZE {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// A NUL-terminated name in a fixed field (`None`: no NUL in it).
fn name_at(b: &[u8], off: usize, len: usize) -> Option<&str> {
    let field = &b[off..off + len];
    let end = field.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&field[..end]).ok()
}

/// The extensions Linux offers and their newest revision: (name, revision, IPv4, IPv6).
const MATCHES: &[(&str, u8)] = &[
    ("tcp", 0),
    ("udp", 0),
    ("icmp", 0),
    ("icmp6", 0),
    ("mark", 1),
    ("owner", 1),
    ("multiport", 1),
    ("conntrack", 3),
    ("state", 0),
    ("comment", 0),
    ("addrtype", 1),
    ("limit", 0),
];
const TARGETS: &[(&str, u8)] = &[
    ("", 0),
    ("ERROR", 0),
    ("REDIRECT", 0),
    ("DNAT", 2),
    ("SNAT", 2),
    ("MASQUERADE", 0),
    ("CT", 2),
    ("MARK", 2),
    ("REJECT", 0),
    ("LOG", 0),
    ("TPROXY", 1),
    ("RETURN", 0),
];

/// `IPT_SO_GET_REVISION_*`: Ok when the extension exists in the revision asked (or a
/// newer one), EPROTONOSUPPORT when only older ones exist, ENOENT when it does not.
fn revision(list: &[(&str, u8)], q: &[u8]) -> Result<(), Errno> {
    let name = name_at(q, 0, EXT_NAME).ok_or(Errno::EINVAL)?;
    let asked = q[EXT_NAME];
    match list.iter().find(|(n, _)| *n == name) {
        None => Err(Errno::ENOENT),
        Some(&(_, best)) if asked > best => Err(Errno::EPROTONOSUPPORT),
        Some(_) => Ok(()),
    }
}

/// A packet as the rules see it.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol (the last header for IPv6).
    pub proto: u8,
    /// A fragment other than the first (its transport header is not there).
    pub fragment: bool,
    /// The transport header and what follows.
    pub transport: &'a [u8],
    /// The whole packet's length (for the byte counters).
    pub len: usize,
    /// The interfaces it comes in on and goes out of ("" when none).
    pub in_iface: &'a str,
    pub out_iface: &'a str,
}

impl<'a> Packet<'a> {
    /// An IP packet's header fields (`None`: not a whole IPv4 or IPv6 header).
    pub fn parse(ip: &'a [u8], in_iface: &'a str, out_iface: &'a str) -> Option<Packet<'a>> {
        match ip.first()? >> 4 {
            4 => {
                let ihl = usize::from(ip.first()? & 0xF) * 4;
                if ihl < 20 || ip.len() < ihl {
                    return None;
                }
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                let end = total.clamp(ihl, ip.len());
                let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1FFF;
                Some(Packet {
                    src: IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).ok()?),
                    dst: IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).ok()?),
                    proto: ip[9],
                    fragment: frag_off != 0,
                    transport: &ip[ihl..end],
                    len: ip.len(),
                    in_iface,
                    out_iface,
                })
            }
            6 => {
                if ip.len() < 40 {
                    return None;
                }
                let end = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
                Some(Packet {
                    src: IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?),
                    dst: IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?),
                    proto: ip[6],
                    fragment: false,
                    transport: &ip[40..end],
                    len: ip.len(),
                    in_iface,
                    out_iface,
                })
            }
            _ => None,
        }
    }

    fn port(&self, at: usize) -> Option<u16> {
        (!self.fragment)
            .then(|| self.transport.get(at..at + 2))
            .flatten()
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
    }
}

/// What a hook decides for a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
}

/// A rule's header test (`ipt_ip` or `ip6t_ip6`).
#[derive(Debug, Clone)]
struct IpMatch {
    src: IpAddr,
    src_mask: IpAddr,
    dst: IpAddr,
    dst_mask: IpAddr,
    in_iface: [u8; 16],
    in_mask: [u8; 16],
    out_iface: [u8; 16],
    out_mask: [u8; 16],
    /// The protocol asked (`None`: any).
    proto: Option<u8>,
    /// Only fragments other than the first.
    fragments: bool,
    inv: u8,
}

fn masked_eq(a: IpAddr, mask: IpAddr, want: IpAddr) -> bool {
    match (a, mask, want) {
        (IpAddr::V4(a), IpAddr::V4(m), IpAddr::V4(w)) => a.to_bits() & m.to_bits() == w.to_bits(),
        (IpAddr::V6(a), IpAddr::V6(m), IpAddr::V6(w)) => a.to_bits() & m.to_bits() == w.to_bits(),
        _ => false,
    }
}

/// Linux's `ifname_compare`: the name's bytes under the mask.
fn iface_eq(name: &str, want: &[u8; 16], mask: &[u8; 16]) -> bool {
    let mut dev = [0u8; 16];
    let n = name.len().min(16);
    dev[..n].copy_from_slice(&name.as_bytes()[..n]);
    (0..16).all(|i| (dev[i] ^ want[i]) & mask[i] == 0)
}

impl IpMatch {
    fn parse(f: Family, e: &[u8]) -> Result<(IpMatch, bool), Errno> {
        let (alen, names) = match f {
            Family::V4 => (4, 16),
            Family::V6 => (16, 64),
        };
        let addr = |i: usize| -> IpAddr {
            let b = &e[i * alen..(i + 1) * alen];
            match f {
                Family::V4 => IpAddr::from(<[u8; 4]>::try_from(b).expect("4 bytes")),
                Family::V6 => IpAddr::from(<[u8; 16]>::try_from(b).expect("16 bytes")),
            }
        };
        let name = |i: usize| -> [u8; 16] {
            e[names + i * 16..names + (i + 1) * 16]
                .try_into()
                .expect("16 bytes")
        };
        let at = names + 64;
        let proto = u16_at(e, at);
        let (flags, inv) = match f {
            Family::V4 => (e[at + 2], e[at + 3]),
            Family::V6 => (e[at + 3], e[at + 4]),
        };
        let (fmask, goto) = match f {
            Family::V4 => (IPT_F_MASK, flags & IPT_F_GOTO != 0),
            Family::V6 => (IP6T_F_MASK, flags & IP6T_F_GOTO != 0),
        };
        if flags & !fmask != 0 || inv & !INV_MASK != 0 {
            return Err(Errno::EINVAL);
        }
        if f == Family::V6 && flags & IP6T_F_TOS != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let proto = match f {
            Family::V4 => (proto != 0).then_some(proto as u8),
            // Without IP6T_F_PROTO the protocol is not tested; with it, 0 inverted matches
            // every protocol but none, which is what Linux's test gives as well.
            Family::V6 if flags & IP6T_F_PROTO != 0 => Some(proto as u8),
            Family::V6 => None,
        };
        let m = IpMatch {
            src: addr(0),
            dst: addr(1),
            src_mask: addr(2),
            dst_mask: addr(3),
            in_iface: name(0),
            out_iface: name(1),
            in_mask: name(2),
            out_mask: name(3),
            proto,
            fragments: f == Family::V4 && flags & IPT_F_FRAG != 0,
            inv,
        };
        Ok((m, goto))
    }

    fn matches(&self, p: &Packet) -> bool {
        let inv = |flag: u8, hit: bool| hit != (self.inv & flag != 0);
        inv(INV_SRCIP, masked_eq(p.src, self.src_mask, self.src))
            && inv(INV_DSTIP, masked_eq(p.dst, self.dst_mask, self.dst))
            && inv(
                INV_VIA_IN,
                iface_eq(p.in_iface, &self.in_iface, &self.in_mask),
            )
            && inv(
                INV_VIA_OUT,
                iface_eq(p.out_iface, &self.out_iface, &self.out_mask),
            )
            && self.proto.is_none_or(|want| match want {
                0 => self.inv & INV_PROTO != 0,
                w => inv(INV_PROTO, p.proto == w),
            })
            && (!self.fragments || inv(INV_FRAG, p.fragment))
    }

    /// The protocol a rule is restricted to, not inverted (what `tcp`, `udp` and `icmp`
    /// matches require).
    fn proto_only(&self) -> Option<u8> {
        self.proto.filter(|_| self.inv & INV_PROTO == 0)
    }
}

/// A match extension the stack applies.
#[derive(Debug, Clone)]
enum Match {
    /// `tcp` and `udp`: port ranges (inverted or not), and TCP's flags under a mask.
    Ports {
        src: (u16, u16, bool),
        dst: (u16, u16, bool),
        flags: Option<(u8, u8, bool)>,
    },
    /// `icmp` and `icmp6`: a type (255: any) and code range.
    Icmp { ty: u8, codes: (u8, u8), inv: bool },
}

impl Match {
    fn parse(f: Family, ip: &IpMatch, m: &[u8]) -> Result<Match, Errno> {
        let name = name_at(m, 2, EXT_NAME).ok_or(Errno::EINVAL)?;
        let data = &m[EXT_HEADER..];
        let rev = m[EXT_HEADER - 1];
        let need = |proto: i32, len: usize| -> Result<(), Errno> {
            if ip.proto_only() != Some(proto as u8) {
                return Err(Errno::EINVAL);
            }
            if data.len() < len || rev != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(())
        };
        let range = |off: usize, inv: bool| (u16_at(data, off), u16_at(data, off + 2), inv);
        match (name, f) {
            ("tcp", _) => {
                need(libc::IPPROTO_TCP, 12)?;
                let inv = data[11];
                if inv & !0x0F != 0 {
                    return Err(Errno::EINVAL);
                }
                if data[8] != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                Ok(Match::Ports {
                    src: range(0, inv & 0x01 != 0),
                    dst: range(4, inv & 0x02 != 0),
                    flags: Some((data[9], data[10], inv & 0x04 != 0)),
                })
            }
            ("udp", _) => {
                need(libc::IPPROTO_UDP, 9)?;
                let inv = data[8];
                if inv & !0x03 != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(Match::Ports {
                    src: range(0, inv & 0x01 != 0),
                    dst: range(4, inv & 0x02 != 0),
                    flags: None,
                })
            }
            ("icmp", Family::V4) | ("icmp6", Family::V6) => {
                let proto = match f {
                    Family::V4 => libc::IPPROTO_ICMP,
                    Family::V6 => libc::IPPROTO_ICMPV6,
                };
                need(proto, 4)?;
                if data[3] & !0x01 != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(Match::Icmp {
                    ty: data[0],
                    codes: (data[1], data[2]),
                    inv: data[3] & 0x01 != 0,
                })
            }
            _ if MATCHES.iter().any(|(n, _)| *n == name) => Err(Errno::EOPNOTSUPP),
            _ => Err(Errno::ENOENT),
        }
    }

    fn matches(&self, p: &Packet) -> bool {
        let within = |(lo, hi, inv): (u16, u16, bool), v: u16| (lo <= v && v <= hi) != inv;
        match *self {
            Match::Ports { src, dst, flags } => {
                let (Some(sport), Some(dport)) = (p.port(0), p.port(2)) else {
                    return false;
                };
                let flags_ok = flags.is_none_or(|(mask, cmp, inv)| {
                    p.transport
                        .get(13)
                        .is_some_and(|&f| (f & mask == cmp) != inv)
                });
                within(src, sport) && within(dst, dport) && flags_ok
            }
            Match::Icmp { ty, codes, inv } => {
                if p.fragment {
                    return false;
                }
                let (Some(&t), Some(&c)) = (p.transport.first(), p.transport.get(1)) else {
                    return false;
                };
                (ty == 0xFF || (t == ty && codes.0 <= c && c <= codes.1)) != inv
            }
        }
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Accept,
    Drop,
    Return,
    /// To the rule at this index; a goto does not come back.
    Jump {
        to: usize,
        goto: bool,
    },
    /// A chain header or the table's end: a packet reaching it is dropped.
    Error,
    /// `REDIRECT` (nat, TCP over IPv4): the connection goes to this host, to this port
    /// (`None`: the same port).
    Redirect(Option<u16>),
}

#[derive(Debug, Clone)]
struct Rule {
    /// Where the entry starts in the blob.
    offset: usize,
    ip: IpMatch,
    matches: Vec<Match>,
    /// No header test and no match: every packet matches.
    unconditional: bool,
    target: Target,
    packets: u64,
    bytes: u64,
}

impl Rule {
    fn matches(&self, p: &Packet) -> bool {
        self.ip.matches(p) && self.matches.iter().all(|m| m.matches(p))
    }
}

/// One table: its blob as the application wrote it and the rules parsed from it.
#[derive(Debug, Clone)]
struct Table {
    name: &'static str,
    valid_hooks: u32,
    hook_entry: [u32; HOOKS],
    underflow: [u32; HOOKS],
    blob: Vec<u8>,
    rules: Vec<Rule>,
    /// The rule indices of `hook_entry` and `underflow` (valid hooks only).
    hook_rule: [usize; HOOKS],
    underflow_rule: [usize; HOOKS],
}

/// The tables' names and hooks, in the order a hook traverses them.
const TABLES: &[(&str, u32)] = &[
    ("raw", 1 << PRE_ROUTING | 1 << LOCAL_OUT),
    (
        "mangle",
        1 << PRE_ROUTING | 1 << LOCAL_IN | 1 << 2 | 1 << LOCAL_OUT | 1 << POST_ROUTING,
    ),
    (
        "nat",
        1 << PRE_ROUTING | 1 << LOCAL_IN | 1 << LOCAL_OUT | 1 << POST_ROUTING,
    ),
    ("filter", 1 << LOCAL_IN | 1 << 2 | 1 << LOCAL_OUT),
];

/// An entry without matches and with `target` (header and data), as Linux's initial tables
/// have.
fn bare_entry(f: Family, target: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; f.entry_size()];
    let (to, _) = f.offsets();
    e[to..to + 2].copy_from_slice(&(f.entry_size() as u16).to_ne_bytes());
    e[to + 2..to + 4].copy_from_slice(&((f.entry_size() + target.len()) as u16).to_ne_bytes());
    e.extend_from_slice(target);
    e
}

fn standard_target(verdict: i32) -> Vec<u8> {
    let mut t = vec![0u8; STANDARD_TARGET_SIZE];
    t[..2].copy_from_slice(&(STANDARD_TARGET_SIZE as u16).to_ne_bytes());
    t[EXT_HEADER..EXT_HEADER + 4].copy_from_slice(&verdict.to_ne_bytes());
    t
}

fn error_target(name: &str) -> Vec<u8> {
    let mut t = vec![0u8; ERROR_TARGET_SIZE];
    t[..2].copy_from_slice(&(ERROR_TARGET_SIZE as u16).to_ne_bytes());
    t[2..7].copy_from_slice(b"ERROR");
    t[EXT_HEADER..EXT_HEADER + name.len()].copy_from_slice(name.as_bytes());
    t
}

/// A replacement's header fields.
struct Replace {
    valid_hooks: u32,
    num_entries: u32,
    hook_entry: [u32; HOOKS],
    underflow: [u32; HOOKS],
}

impl Table {
    /// Linux's initial table: an ACCEPT policy for each hook, then ERROR.
    fn initial(f: Family, name: &'static str, valid_hooks: u32) -> Table {
        let mut blob = Vec::new();
        let mut hooks = [0u32; HOOKS];
        for (h, at) in hooks.iter_mut().enumerate() {
            if valid_hooks & (1 << h) != 0 {
                *at = blob.len() as u32;
                blob.extend(bare_entry(f, &standard_target(VERDICT_ACCEPT)));
            }
        }
        blob.extend(bare_entry(f, &error_target("ERROR")));
        let r = Replace {
            valid_hooks,
            num_entries: valid_hooks.count_ones() + 1,
            hook_entry: hooks,
            underflow: hooks,
        };
        Table::build(f, name, &r, blob).expect("the initial tables are valid")
    }

    /// Checks `blob` as Linux's `translate_table` does and parses its rules.
    fn build(f: Family, name: &'static str, r: &Replace, blob: Vec<u8>) -> Result<Table, Errno> {
        let esize = f.entry_size();
        let (to_off, _) = f.offsets();
        // The entries' bounds, in order.
        let mut starts = Vec::new();
        let mut off = 0;
        while off < blob.len() {
            if off % 8 != 0 || off + esize > blob.len() {
                return Err(Errno::EINVAL);
            }
            let target_offset = usize::from(u16_at(&blob, off + to_off));
            let next_offset = usize::from(u16_at(&blob, off + to_off + 2));
            if target_offset < esize
                || next_offset < target_offset + EXT_HEADER
                || off + next_offset > blob.len()
            {
                return Err(Errno::EINVAL);
            }
            starts.push(off);
            off += next_offset;
        }
        if starts.len() != r.num_entries as usize {
            return Err(Errno::EINVAL);
        }
        let index_of = |o: u32| starts.binary_search(&(o as usize)).ok();
        let valid = |h: &usize| r.valid_hooks & (1 << h) != 0;
        let mut hook_rule = [0usize; HOOKS];
        let mut underflow_rule = [0usize; HOOKS];
        for h in (0..HOOKS).filter(valid) {
            hook_rule[h] = index_of(r.hook_entry[h]).ok_or(Errno::EINVAL)?;
            underflow_rule[h] = index_of(r.underflow[h]).ok_or(Errno::EINVAL)?;
        }
        let mut rules = Vec::with_capacity(starts.len());
        let mut jumps = Vec::new();
        for (i, &start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(blob.len());
            let e = &blob[start..end];
            let target_offset = usize::from(u16_at(e, to_off));
            let (ip, goto) = IpMatch::parse(f, e)?;
            let mut matches = Vec::new();
            let mut m = esize;
            while m < target_offset {
                if m + EXT_HEADER > target_offset {
                    return Err(Errno::EINVAL);
                }
                let size = usize::from(u16_at(e, m));
                if size < EXT_HEADER || m + size > target_offset {
                    return Err(Errno::EINVAL);
                }
                matches.push(Match::parse(f, &ip, &e[m..m + size])?);
                m += size;
            }
            let t = &e[target_offset..];
            let tsize = usize::from(u16_at(t, 0));
            if tsize < EXT_HEADER || tsize > t.len() {
                return Err(Errno::EINVAL);
            }
            let tname = name_at(t, 2, EXT_NAME).ok_or(Errno::EINVAL)?;
            let target = match tname {
                "" => {
                    if tsize != STANDARD_TARGET_SIZE {
                        return Err(Errno::EINVAL);
                    }
                    match u32_at(t, EXT_HEADER) as i32 {
                        VERDICT_ACCEPT => Target::Accept,
                        VERDICT_DROP => Target::Drop,
                        VERDICT_RETURN => Target::Return,
                        v if v >= 0 => {
                            let to = index_of(v as u32).ok_or(Errno::EINVAL)?;
                            jumps.push(i);
                            Target::Jump { to, goto }
                        }
                        v if v >= -6 => return Err(Errno::EOPNOTSUPP),
                        _ => return Err(Errno::EINVAL),
                    }
                }
                "ERROR" => {
                    if tsize != ERROR_TARGET_SIZE {
                        return Err(Errno::EINVAL);
                    }
                    Target::Error
                }
                "REDIRECT" => redirect(f, name, &ip, &t[..tsize])?,
                n if TARGETS.iter().any(|(k, _)| *k == n) => return Err(Errno::EOPNOTSUPP),
                _ => return Err(Errno::ENOENT),
            };
            if name == "nat"
                && !matches!(
                    target,
                    Target::Accept
                        | Target::Jump { .. }
                        | Target::Return
                        | Target::Error
                        | Target::Redirect(_)
                )
            {
                return Err(Errno::EOPNOTSUPP);
            }
            let unconditional = e[..to_off - 4].iter().all(|&b| b == 0) && matches.is_empty();
            rules.push(Rule {
                offset: start,
                ip,
                matches,
                unconditional,
                target,
                packets: 0,
                bytes: 0,
            });
        }
        // Linux's check_underflow: a hook's underflow is an unconditional ACCEPT or DROP.
        for h in (0..HOOKS).filter(valid) {
            let u = &rules[underflow_rule[h]];
            if !u.unconditional || !matches!(u.target, Target::Accept | Target::Drop) {
                return Err(Errno::EINVAL);
            }
        }
        // Jumps land on rules, never on a chain header; no chain reaches itself.
        for &i in &jumps {
            if let Target::Jump { to, .. } = rules[i].target {
                if rules[to].target == Target::Error {
                    return Err(Errno::EINVAL);
                }
            }
        }
        // REDIRECT rewrites destinations: Linux takes it in PREROUTING and OUTPUT only.
        for h in [LOCAL_IN, POST_ROUTING].iter().filter(|h| valid(h)) {
            let chain = &rules[hook_rule[*h]..=underflow_rule[*h].max(hook_rule[*h])];
            if chain
                .iter()
                .any(|r| matches!(r.target, Target::Redirect(_)))
            {
                return Err(Errno::EINVAL);
            }
        }
        for h in (0..HOOKS).filter(valid) {
            if rules[hook_rule[h]].target == Target::Error {
                return Err(Errno::EINVAL);
            }
        }
        check_loops(&rules)?;
        Ok(Table {
            name,
            valid_hooks: r.valid_hooks,
            hook_entry: r.hook_entry,
            underflow: r.underflow,
            blob,
            rules,
            hook_rule,
            underflow_rule,
        })
    }

    /// `ipt_getinfo` for this table.
    fn info(&self) -> Vec<u8> {
        let mut b = vec![0u8; GETINFO_SIZE];
        b[..self.name.len()].copy_from_slice(self.name.as_bytes());
        put_u32(&mut b, 32, self.valid_hooks);
        for (h, (entry, underflow)) in self.hook_entry.iter().zip(&self.underflow).enumerate() {
            put_u32(&mut b, 36 + 4 * h, *entry);
            put_u32(&mut b, 56 + 4 * h, *underflow);
        }
        put_u32(&mut b, 76, self.rules.len() as u32);
        put_u32(&mut b, 80, self.blob.len() as u32);
        b
    }

    /// The entries with their counters now.
    fn entries(&self, f: Family) -> Vec<u8> {
        let (_, counters) = f.offsets();
        let mut blob = self.blob.clone();
        for r in &self.rules {
            let at = r.offset + counters;
            blob[at..at + 8].copy_from_slice(&r.packets.to_ne_bytes());
            blob[at + 8..at + 16].copy_from_slice(&r.bytes.to_ne_bytes());
        }
        blob
    }

    /// The counters as `IPT_SO_SET_REPLACE` hands the old ones back.
    fn counters(&self) -> Vec<u8> {
        self.rules
            .iter()
            .flat_map(|r| {
                let mut c = r.packets.to_ne_bytes().to_vec();
                c.extend_from_slice(&r.bytes.to_ne_bytes());
                c
            })
            .collect()
    }

    /// Runs `p` through `hook`'s chain (Linux's `ipt_do_table`).
    fn traverse(&mut self, hook: usize, p: &Packet) -> Decision {
        let mut back: Vec<usize> = Vec::new();
        let mut i = self.hook_rule[hook];
        for _ in 0..MAX_STEPS {
            let Some(rule) = self.rules.get_mut(i) else {
                return Decision::Drop;
            };
            if !rule.matches(p) {
                i += 1;
                continue;
            }
            rule.packets += 1;
            rule.bytes += p.len as u64;
            match rule.target {
                Target::Accept => return Decision::Accept,
                Target::Drop | Target::Error => return Decision::Drop,
                Target::Redirect(port) => return Decision::Redirect(port),
                Target::Return => i = back.pop().unwrap_or(self.underflow_rule[hook]),
                Target::Jump { to, goto } => {
                    if !goto {
                        back.push(i + 1);
                    }
                    i = to;
                }
            }
        }
        log::warn!(
            "netfilter: a packet ran {MAX_STEPS} rules of {}; dropped",
            self.name
        );
        Decision::Drop
    }
}

/// What a table's traversal decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Accept,
    Drop,
    Redirect(Option<u16>),
}

/// `NF_NAT_RANGE_PROTO_SPECIFIED`.
const NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
/// `XT_ALIGN(sizeof(struct nf_nat_ipv4_multi_range_compat))` plus the target header.
const REDIRECT_TARGET_SIZE: usize = EXT_HEADER + 24;

/// A `REDIRECT` target (`t`, header included) of a rule with header test `ip` in table
/// `table`: TCP over IPv4 in the nat table, one range, its first port taken.
fn redirect(f: Family, table: &str, ip: &IpMatch, t: &[u8]) -> Result<Target, Errno> {
    if table != "nat" || t.len() != REDIRECT_TARGET_SIZE {
        return Err(Errno::EINVAL);
    }
    if f != Family::V4 || ip.proto_only() != Some(libc::IPPROTO_TCP as u8) {
        return Err(Errno::EOPNOTSUPP);
    }
    let range = &t[EXT_HEADER..];
    if u32_at(range, 0) != 1 {
        return Err(Errno::EINVAL);
    }
    let port = (u32_at(range, 4) & NAT_RANGE_PROTO_SPECIFIED != 0)
        .then(|| u16::from_be_bytes([range[16], range[17]]));
    Ok(Target::Redirect(port))
}

/// Most redirected connections remembered; the oldest is forgotten first.
const MAX_REDIRECTED: usize = 4096;

/// A redirected connection: where its client sent it and where it went.
#[derive(Debug, Clone, Copy)]
struct Redirected {
    original: (IpAddr, u16),
    to: (IpAddr, u16),
}

/// The redirected TCP connections, by client endpoint (one connection per client endpoint
/// at a time: its SYN decides anew).
#[derive(Debug, Default)]
struct Translations {
    by_client: std::collections::HashMap<(IpAddr, u16), Redirected>,
    order: std::collections::VecDeque<(IpAddr, u16)>,
}

/// A TCP over IPv4 segment's endpoints and whether it opens a connection (SYN without ACK).
struct Segment {
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    opening: bool,
}

impl Segment {
    fn of(ip: &[u8]) -> Option<Segment> {
        let p = Packet::parse(ip, "", "")?;
        if p.proto != libc::IPPROTO_TCP as u8 || !p.src.is_ipv4() {
            return None;
        }
        let flags = *p.transport.get(13)?;
        Some(Segment {
            src: (p.src, p.port(0)?),
            dst: (p.dst, p.port(2)?),
            opening: flags & 0x12 == 0x02,
        })
    }
}

/// Rewrites an IPv4 TCP segment's source (`source`) or destination endpoint. The
/// checksums are the caller's to fill in.
fn rewrite(ip: &mut [u8], source: bool, (addr, port): (IpAddr, u16)) {
    let IpAddr::V4(a) = addr else {
        return;
    };
    let ihl = usize::from(ip[0] & 0xF) * 4;
    let (a_at, p_at) = if source { (12, ihl) } else { (16, ihl + 2) };
    ip[a_at..a_at + 4].copy_from_slice(&a.octets());
    ip[p_at..p_at + 2].copy_from_slice(&port.to_be_bytes());
}

impl Translations {
    /// The nat table's part of `hook` for `ip`: a known connection's segments are
    /// translated (the client's to where it was redirected, the replies back from where
    /// the client sent it), an opening segment runs the chain. Whether `ip` changed.
    fn nat(&mut self, table: &mut Table, hook: usize, ip: &mut [u8], ifaces: (&str, &str)) -> bool {
        let Some(seg) = Segment::of(ip) else {
            if let Some(p) = Packet::parse(ip, ifaces.0, ifaces.1) {
                table.traverse(hook, &p);
            }
            return false;
        };
        if let Some(r) = self.by_client.get(&seg.src) {
            // Translated already (on the loopback: at OUTPUT, now at PREROUTING).
            if r.to == seg.dst && r.original != seg.dst {
                return false;
            }
            if r.original == seg.dst && !seg.opening {
                rewrite(ip, false, r.to);
                return true;
            }
        }
        if !seg.opening {
            if let Some(r) = self.by_client.get(&seg.dst).filter(|r| r.to == seg.src) {
                rewrite(ip, true, r.original);
                return true;
            }
            return false;
        }
        // A new connection from this endpoint: the chain decides anew.
        self.by_client.remove(&seg.src);
        let Some(p) = Packet::parse(ip, ifaces.0, ifaces.1) else {
            return false;
        };
        let Decision::Redirect(port) = table.traverse(hook, &p) else {
            return false;
        };
        // Output goes to the loopback; input to the address it came for.
        let addr = if hook == LOCAL_OUT {
            IpAddr::from([127, 0, 0, 1])
        } else {
            seg.dst.0
        };
        let to = (addr, port.unwrap_or(seg.dst.1));
        while self.order.len() >= MAX_REDIRECTED {
            if let Some(old) = self.order.pop_front() {
                self.by_client.remove(&old);
            }
        }
        self.order.retain(|c| *c != seg.src);
        self.order.push_back(seg.src);
        self.by_client.insert(
            seg.src,
            Redirected {
                original: seg.dst,
                to,
            },
        );
        rewrite(ip, false, to);
        true
    }

    /// `SO_ORIGINAL_DST` of a connection between `local` and `peer`: where its client sent
    /// it, when it was redirected.
    fn original(&self, local: (IpAddr, u16), peer: (IpAddr, u16)) -> Option<(IpAddr, u16)> {
        if let Some(r) = self.by_client.get(&peer).filter(|r| r.to == local) {
            return Some(r.original);
        }
        self.by_client
            .get(&local)
            .filter(|r| r.original == peer)
            .map(|r| r.original)
    }
}

/// Refuses a table where a chain jumps, directly or not, into itself (Linux's
/// `mark_source_chains`: ELOOP). The rules are a graph: each leads to the next unless it
/// ends the flow unconditionally (ACCEPT, DROP, RETURN, a goto, ERROR), and a jump to its
/// target; a depth-first walk finds a cycle in time linear in the rules.
fn check_loops(rules: &[Rule]) -> Result<(), Errno> {
    let edges = |i: usize| -> [Option<usize>; 2] {
        let r = &rules[i];
        let ends = r.target == Target::Error
            || (r.unconditional && !matches!(r.target, Target::Jump { goto: false, .. }));
        let next = (!ends && i + 1 < rules.len()).then_some(i + 1);
        let jump = match r.target {
            Target::Jump { to, .. } => Some(to),
            _ => None,
        };
        [next, jump]
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; rules.len()];
    for root in 0..rules.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (rule, the next of its two edges to follow)
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Open;
        while let Some((node, next)) = stack.last_mut() {
            if *next == 2 {
                mark[*node] = Mark::Done;
                stack.pop();
                continue;
            }
            let edge = edges(*node)[*next];
            *next += 1;
            let Some(to) = edge else { continue };
            match mark[to] {
                Mark::Open => return Err(Errno::ELOOP),
                Mark::Done => {}
                Mark::New => {
                    mark[to] = Mark::Open;
                    stack.push((to, 0));
                }
            }
        }
    }
    Ok(())
}

/// One family's tables.
#[derive(Debug)]
struct Tables {
    family: Family,
    tables: Vec<Table>,
    /// The connections the nat table redirected (IPv4 only).
    translations: Translations,
}

impl Tables {
    fn new(f: Family) -> Tables {
        Tables {
            family: f,
            tables: TABLES
                .iter()
                .map(|&(n, hooks)| Table::initial(f, n, hooks))
                .collect(),
            translations: Translations::default(),
        }
    }

    fn find(&self, name: &str) -> Result<usize, Errno> {
        self.tables
            .iter()
            .position(|t| t.name == name)
            .ok_or(Errno::ENOENT)
    }
}

/// A namespace's netfilter tables, both families.
#[derive(Debug)]
pub struct Netfilter {
    v4: Mutex<Tables>,
    v6: Mutex<Tables>,
}

impl Default for Netfilter {
    fn default() -> Netfilter {
        Netfilter {
            v4: Mutex::new(Tables::new(Family::V4)),
            v6: Mutex::new(Tables::new(Family::V6)),
        }
    }
}

/// What `IPT_SO_SET_REPLACE` leaves for the caller: the old counters and where the
/// application wants them.
#[derive(Debug)]
pub struct Replaced {
    pub counters_addr: u64,
    pub counters: Vec<u8>,
}

impl Netfilter {
    fn tables(&self, f: Family) -> std::sync::MutexGuard<'_, Tables> {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
        .lock()
        .unwrap_or_else(|e| e.into_inner())
    }

    /// A query (`SO_GET_*`, checked by [`check_len`]) with the caller's buffer `q`: the
    /// bytes to write back.
    ///
    /// # Errors
    /// ENOENT for an unknown table or extension, EINVAL for a bad size, EAGAIN when the
    /// table changed size since the caller asked its info, EPROTONOSUPPORT for a revision
    /// newer than the extension's.
    pub fn query(&self, f: Family, name: i32, q: &[u8]) -> Result<Vec<u8>, Errno> {
        match name {
            SO_GET_INFO => {
                if q.len() != GETINFO_SIZE {
                    return Err(Errno::EINVAL);
                }
                let tname = name_at(q, 0, TABLE_NAME).ok_or(Errno::EINVAL)?;
                let t = self.tables(f);
                Ok(t.tables[t.find(tname)?].info())
            }
            SO_GET_ENTRIES => {
                let tname = name_at(q, 0, TABLE_NAME).ok_or(Errno::EINVAL)?;
                let size = u32_at(q, TABLE_NAME) as usize;
                if q.len() != GET_ENTRIES_SIZE + size {
                    return Err(Errno::EINVAL);
                }
                let t = self.tables(f);
                let table = &t.tables[t.find(tname)?];
                if table.blob.len() != size {
                    return Err(Errno::EAGAIN);
                }
                let mut out = q[..GET_ENTRIES_SIZE].to_vec();
                out.extend(table.entries(f));
                Ok(out)
            }
            SO_GET_REVISION_MATCH | SO_GET_REVISION_TARGET => {
                if q.len() != REVISION_SIZE {
                    return Err(Errno::EINVAL);
                }
                let list = if name == SO_GET_REVISION_MATCH {
                    MATCHES
                } else {
                    TARGETS
                };
                revision(list, q)?;
                Ok(q.to_vec())
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    /// `SO_SET_REPLACE` with the value `v` (its header and entries): replaces the table
    /// whole or leaves it as it was.
    ///
    /// # Errors
    /// EINVAL for a malformed replacement, ENOENT for an unknown table or extension,
    /// EOPNOTSUPP for what the stack cannot apply (see the module docs), ELOOP for a
    /// chain that reaches itself, ENOMEM for absurd sizes.
    pub fn replace(&self, f: Family, v: &[u8]) -> Result<Replaced, Errno> {
        if v.len() < REPLACE_SIZE {
            return Err(Errno::EINVAL);
        }
        let tname = name_at(v, 0, TABLE_NAME).ok_or(Errno::EINVAL)?;
        let hooks = |at: usize| -> [u32; HOOKS] { std::array::from_fn(|h| u32_at(v, at + 4 * h)) };
        let r = Replace {
            valid_hooks: u32_at(v, 32),
            num_entries: u32_at(v, 36),
            hook_entry: hooks(44),
            underflow: hooks(64),
        };
        let size = u32_at(v, 40) as usize;
        let num_counters = u32_at(v, 84);
        let counters_addr = u64::from_ne_bytes(v[88..96].try_into().expect("8 bytes"));
        if u64::from(num_counters) >= u64::from(i32::MAX as u32) / COUNTERS_SIZE {
            return Err(Errno::ENOMEM);
        }
        if num_counters == 0 || v.len() - REPLACE_SIZE < size {
            return Err(Errno::EINVAL);
        }
        let mut t = self.tables(f);
        let i = t.find(tname)?;
        if r.valid_hooks != t.tables[i].valid_hooks {
            return Err(Errno::EINVAL);
        }
        let name = t.tables[i].name;
        let new = Table::build(f, name, &r, v[REPLACE_SIZE..REPLACE_SIZE + size].to_vec())?;
        let old = std::mem::replace(&mut t.tables[i], new);
        // Linux wants `num_counters` to be the old table's entries (EAGAIN otherwise);
        // gVisor takes any, and so does this, handing back as many as asked and there are.
        let mut counters = old.counters();
        counters.truncate(num_counters as usize * COUNTERS_SIZE as usize);
        Ok(Replaced {
            counters_addr,
            counters,
        })
    }

    /// `SO_SET_ADD_COUNTERS` with the value `v` (`xt_counters_info`): adds to each rule's
    /// counters, as iptables does after a replacement to carry the old rules' counts over.
    ///
    /// # Errors
    /// EINVAL when the size or number of counters does not fit the table, ENOENT for an
    /// unknown table.
    pub fn add_counters(&self, f: Family, v: &[u8]) -> Result<(), Errno> {
        if v.len() < COUNTERS_INFO_SIZE {
            return Err(Errno::EINVAL);
        }
        let tname = name_at(v, 0, TABLE_NAME).ok_or(Errno::EINVAL)?;
        let n = u32_at(v, TABLE_NAME) as usize;
        if v.len() != COUNTERS_INFO_SIZE + n * COUNTERS_SIZE as usize {
            return Err(Errno::EINVAL);
        }
        let mut t = self.tables(f);
        let i = t.find(tname)?;
        let table = &mut t.tables[i];
        if table.rules.len() != n {
            return Err(Errno::EINVAL);
        }
        let counters = v[COUNTERS_INFO_SIZE..].chunks_exact(COUNTERS_SIZE as usize);
        for (r, c) in table.rules.iter_mut().zip(counters) {
            let (p, b) = c.split_at(8);
            r.packets = r
                .packets
                .wrapping_add(u64::from_ne_bytes(p.try_into().expect("8 bytes")));
            r.bytes = r
                .bytes
                .wrapping_add(u64::from_ne_bytes(b.try_into().expect("8 bytes")));
        }
        Ok(())
    }

    /// The verdict of `hook` for `p` over every table that has the hook.
    pub fn verdict(&self, hook: usize, p: &Packet) -> Verdict {
        let f = match p.src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let mut t = self.tables(f);
        debug_assert_eq!(t.family, f);
        for table in t.tables.iter_mut() {
            if table.valid_hooks & (1 << hook) != 0 && table.traverse(hook, p) == Decision::Drop {
                return Verdict::Drop;
            }
        }
        Verdict::Accept
    }

    /// A locally sent packet's fate: OUTPUT, then POSTROUTING.
    pub fn output(&self, p: &Packet) -> Verdict {
        match self.verdict(LOCAL_OUT, p) {
            Verdict::Accept => self.verdict(POST_ROUTING, p),
            Verdict::Drop => Verdict::Drop,
        }
    }

    /// A received packet's fate: PREROUTING, then INPUT.
    pub fn input(&self, p: &Packet) -> Verdict {
        match self.verdict(PRE_ROUTING, p) {
            Verdict::Accept => self.verdict(LOCAL_IN, p),
            Verdict::Drop => Verdict::Drop,
        }
    }

    /// The IP packet `ip` through `hooks` (OUTPUT and POSTROUTING for one sent, with
    /// `ifaces.1` its interface; PREROUTING and INPUT for one received, with `ifaces.0`):
    /// the verdict, and whether the nat table rewrote its addresses (its checksums are
    /// then the caller's to fill in). Not an IP packet: accepted as it is.
    pub fn run(&self, hooks: &[usize], ip: &mut [u8], ifaces: (&str, &str)) -> (Verdict, bool) {
        let f = match ip.first().map(|b| b >> 4) {
            Some(4) => Family::V4,
            Some(6) => Family::V6,
            _ => return (Verdict::Accept, false),
        };
        let mut t = self.tables(f);
        let Tables {
            tables,
            translations,
            ..
        } = &mut *t;
        let mut rewritten = false;
        for &hook in hooks {
            for table in tables.iter_mut() {
                if table.valid_hooks & (1 << hook) == 0 {
                    continue;
                }
                if table.name == "nat" && matches!(hook, LOCAL_OUT | PRE_ROUTING) {
                    rewritten |= translations.nat(table, hook, ip, ifaces);
                    continue;
                }
                let Some(p) = Packet::parse(ip, ifaces.0, ifaces.1) else {
                    return (Verdict::Accept, rewritten);
                };
                if table.traverse(hook, &p) == Decision::Drop {
                    return (Verdict::Drop, rewritten);
                }
            }
        }
        (Verdict::Accept, rewritten)
    }

    /// `SO_ORIGINAL_DST` of a TCP connection between `local` and `peer`: where its client
    /// sent it before the nat table redirected it (`None`: not redirected).
    pub fn original_dst(&self, local: (IpAddr, u16), peer: (IpAddr, u16)) -> Option<(IpAddr, u16)> {
        self.tables(Family::V4).translations.original(local, peer)
    }
}

/// One table of a checkpoint image: what `IPT_SO_GET_INFO` and `IPT_SO_GET_ENTRIES` tell of
/// it, the entries with the rules' packet and byte counters in them. A restore checks and
/// parses it again as a replacement ([`Table::build`]), then takes the counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableImage {
    pub name: String,
    pub valid_hooks: u32,
    pub hook_entry: [u32; HOOKS],
    pub underflow: [u32; HOOKS],
    pub num_entries: u32,
    pub entries: Vec<u8>,
}

/// A namespace's netfilter tables in a checkpoint image, both families. The connections
/// REDIRECT translated are not saved: they belong to TCP connections, which a restore
/// resets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetfilterImage {
    pub v4: Vec<TableImage>,
    pub v6: Vec<TableImage>,
}

impl Table {
    fn image(&self, f: Family) -> TableImage {
        TableImage {
            name: self.name.to_owned(),
            valid_hooks: self.valid_hooks,
            hook_entry: self.hook_entry,
            underflow: self.underflow,
            num_entries: self.rules.len() as u32,
            entries: self.entries(f),
        }
    }

    /// The table `image` saved, in place of `self` (the same table, as the kernel made it):
    /// its entries checked again and its counters taken from them.
    fn restored(&self, f: Family, image: &TableImage) -> Result<Table, Errno> {
        if image.valid_hooks != self.valid_hooks {
            return Err(Errno::EINVAL);
        }
        let r = Replace {
            valid_hooks: image.valid_hooks,
            num_entries: image.num_entries,
            hook_entry: image.hook_entry,
            underflow: image.underflow,
        };
        let mut t = Table::build(f, self.name, &r, image.entries.clone())?;
        let (_, counters) = f.offsets();
        for rule in &mut t.rules {
            let at = rule.offset + counters;
            let word = |o: usize| u64::from_ne_bytes(t.blob[o..o + 8].try_into().expect("8 bytes"));
            (rule.packets, rule.bytes) = (word(at), word(at + 8));
        }
        Ok(t)
    }
}

impl Netfilter {
    /// Every table of both families, rules and counters, for a checkpoint image.
    pub fn image(&self) -> NetfilterImage {
        let family = |f: Family| {
            let t = self.tables(f);
            t.tables.iter().map(|table| table.image(f)).collect()
        };
        NetfilterImage {
            v4: family(Family::V4),
            v6: family(Family::V6),
        }
    }

    /// Replaces the tables with those of `image` (a fresh namespace's, before any packet),
    /// all of them or none.
    ///
    /// # Errors
    /// ENOENT for a table this build does not have, EINVAL or what a replacement would
    /// answer for tables it cannot take.
    pub fn restore(&self, image: &NetfilterImage) -> Result<(), Errno> {
        let rebuilt = |f: Family, saved: &[TableImage]| -> Result<Vec<Table>, Errno> {
            let t = self.tables(f);
            let mut tables = t.tables.clone();
            for table in saved {
                let i = t.find(&table.name)?;
                tables[i] = t.tables[i].restored(f, table)?;
            }
            Ok(tables)
        };
        let v4 = rebuilt(Family::V4, &image.v4)?;
        let v6 = rebuilt(Family::V6, &image.v6)?;
        self.tables(Family::V4).tables = v4;
        self.tables(Family::V6).tables = v6;
        Ok(())
    }
}

/// A UDP datagram that stays inside the sandbox (it does not pass the device): whether it
/// is delivered, after OUTPUT and POSTROUTING, then PREROUTING and INPUT on the loopback.
///
/// # Errors
/// EPERM when a rule on the way out drops it, as Linux's sendmsg(2) reports.
pub fn udp_looped(
    nf: &Netfilter,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    len: usize,
) -> Result<bool, Errno> {
    let mut header = [0u8; 8];
    header[..2].copy_from_slice(&src.1.to_be_bytes());
    header[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let ip_header = if src.0.is_ipv4() { 20 } else { 40 };
    looped(
        nf,
        Packet {
            src: src.0,
            dst: dst.0,
            proto: libc::IPPROTO_UDP as u8,
            fragment: false,
            transport: &header,
            len: ip_header + header.len() + len,
            in_iface: "",
            out_iface: "",
        },
    )
}

/// A packet that stays inside the sandbox (a UDP datagram, an echo the sentry answers):
/// whether it is delivered, after OUTPUT and POSTROUTING, then PREROUTING and INPUT on
/// the loopback.
///
/// # Errors
/// EPERM when a rule on the way out drops it, as Linux's sendmsg(2) reports.
pub fn looped(nf: &Netfilter, mut p: Packet) -> Result<bool, Errno> {
    (p.in_iface, p.out_iface) = ("", "lo");
    if nf.output(&p) == Verdict::Drop {
        return Err(Errno::EPERM);
    }
    (p.in_iface, p.out_iface) = ("lo", "");
    Ok(nf.input(&p) == Verdict::Accept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `ipt_replace` of `table` with the initial table's header and `entries`.
    fn replace_of(nf: &Netfilter, table: &str, entries: &[u8], num: u32) -> Vec<u8> {
        let mut q = vec![0u8; GETINFO_SIZE];
        q[..table.len()].copy_from_slice(table.as_bytes());
        let info = nf.query(Family::V4, SO_GET_INFO, &q).expect("info");
        let mut r = vec![0u8; REPLACE_SIZE];
        r[..table.len()].copy_from_slice(table.as_bytes());
        r[32..36].copy_from_slice(&info[32..36]);
        put_u32(&mut r, 36, num);
        put_u32(&mut r, 40, entries.len() as u32);
        r[44..84].copy_from_slice(&info[36..76]);
        put_u32(&mut r, 84, u32_at(&info, 76));
        r.extend_from_slice(entries);
        r
    }

    fn tcp_packet(dport: u16) -> Vec<u8> {
        let mut ip = vec![0u8; 40];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[9] = libc::IPPROTO_TCP as u8;
        ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
        ip[22..24].copy_from_slice(&dport.to_be_bytes());
        ip[33] = 0x02;
        ip
    }

    #[test]
    fn image_restores_rules_and_counters() {
        let nf = Netfilter::default();
        // filter's INPUT: a DROP of TCP to port 9 (counted once), then the policies.
        let mut drop = bare_entry(Family::V4, &standard_target(VERDICT_DROP));
        drop[80..82].copy_from_slice(&(libc::IPPROTO_TCP as u16).to_ne_bytes());
        let mut entries = drop;
        for _ in 0..3 {
            entries.extend(bare_entry(Family::V4, &standard_target(VERDICT_ACCEPT)));
        }
        entries.extend(bare_entry(Family::V4, &error_target("ERROR")));
        let mut r = replace_of(&nf, "filter", &entries, 5);
        let e = 152u32;
        for (h, at) in [(1usize, 0u32), (2, 2 * e), (3, 3 * e)] {
            put_u32(&mut r, 44 + 4 * h, at);
            put_u32(&mut r, 64 + 4 * h, if h == 1 { e } else { at });
        }
        nf.replace(Family::V4, &r).expect("replace");
        let mut ip = tcp_packet(9);
        assert_eq!(
            nf.run(&[PRE_ROUTING, LOCAL_IN], &mut ip, ("lo", "")).0,
            Verdict::Drop
        );

        let image = nf.image();
        let json = serde_json::to_vec(&image).unwrap();
        let back: NetfilterImage = serde_json::from_slice(&json).unwrap();
        let restored = Netfilter::default();
        restored.restore(&back).expect("restore");
        assert_eq!(restored.image(), image);
        let mut ip = tcp_packet(9);
        assert_eq!(
            restored
                .run(&[PRE_ROUTING, LOCAL_IN], &mut ip, ("lo", ""))
                .0,
            Verdict::Drop
        );

        // A table the kernel does not have is refused, and nothing changes.
        let mut bad = image.clone();
        bad.v6[0].name = "nothing".into();
        let fresh = Netfilter::default();
        assert_eq!(fresh.restore(&bad), Err(Errno::ENOENT));
        assert_eq!(fresh.image(), Netfilter::default().image());
    }

    #[test]
    fn initial_tables_are_linux_sized() {
        let nf = Netfilter::default();
        let mut q = vec![0u8; GETINFO_SIZE];
        q[..3].copy_from_slice(b"nat");
        let info = nf.query(Family::V4, SO_GET_INFO, &q).unwrap();
        assert_eq!(u32_at(&info, 32), 0b11011);
        assert_eq!(u32_at(&info, 76), 5);
        assert_eq!(u32_at(&info, 80), 4 * 152 + 176);
        q[..7].copy_from_slice(b"nothing");
        assert_eq!(nf.query(Family::V4, SO_GET_INFO, &q), Err(Errno::ENOENT));
    }

    #[test]
    fn a_drop_rule_drops_only_its_port() {
        let nf = Netfilter::default();
        // filter: INPUT [drop tcp dport 80] [policy], FORWARD, OUTPUT, ERROR.
        let mut drop = bare_entry(Family::V4, &standard_target(VERDICT_DROP));
        drop[80..82].copy_from_slice(&(libc::IPPROTO_TCP as u16).to_ne_bytes());
        let mut tcp = vec![0u8; 48];
        tcp[..2].copy_from_slice(&48u16.to_ne_bytes());
        tcp[2..5].copy_from_slice(b"tcp");
        tcp[32..34].copy_from_slice(&0u16.to_ne_bytes());
        tcp[34..36].copy_from_slice(&u16::MAX.to_ne_bytes());
        tcp[36..38].copy_from_slice(&80u16.to_ne_bytes());
        tcp[38..40].copy_from_slice(&80u16.to_ne_bytes());
        let target = drop.split_off(112);
        drop.extend_from_slice(&tcp);
        drop.extend_from_slice(&target);
        drop[88..90].copy_from_slice(&(112u16 + 48).to_ne_bytes());
        drop[90..92].copy_from_slice(&(112u16 + 48 + 40).to_ne_bytes());
        let accept = bare_entry(Family::V4, &standard_target(VERDICT_ACCEPT));
        let mut entries = drop.clone();
        for _ in 0..3 {
            entries.extend_from_slice(&accept);
        }
        entries.extend(bare_entry(Family::V4, &error_target("ERROR")));
        let mut r = replace_of(&nf, "filter", &entries, 5);
        // INPUT's entry stays at 0; its policy and the other hooks move by the rule.
        let moved = drop.len() as u32;
        for (h, at) in [(1usize, 0u32), (2, moved + 152), (3, moved + 304)] {
            put_u32(&mut r, 44 + 4 * h, at);
            put_u32(&mut r, 64 + 4 * h, if h == 1 { moved } else { at });
        }
        nf.replace(Family::V4, &r).unwrap();
        let mut ip = tcp_packet(80);
        assert_eq!(
            nf.run(&[PRE_ROUTING, LOCAL_IN], &mut ip, ("lo", "")).0,
            Verdict::Drop
        );
        let mut ip = tcp_packet(81);
        assert_eq!(
            nf.run(&[PRE_ROUTING, LOCAL_IN], &mut ip, ("lo", "")).0,
            Verdict::Accept
        );
        assert_eq!(
            nf.run(&[LOCAL_OUT, POST_ROUTING], &mut tcp_packet(80), ("", "lo"))
                .0,
            Verdict::Accept
        );
    }

    #[test]
    fn a_chain_that_jumps_to_itself_is_refused() {
        let nf = Netfilter::default();
        // filter: INPUT [jump to itself] [policy], FORWARD, OUTPUT, ERROR.
        let jump = bare_entry(Family::V4, &standard_target(0));
        let accept = bare_entry(Family::V4, &standard_target(VERDICT_ACCEPT));
        let mut entries = jump.clone();
        for _ in 0..3 {
            entries.extend_from_slice(&accept);
        }
        entries.extend(bare_entry(Family::V4, &error_target("ERROR")));
        let mut r = replace_of(&nf, "filter", &entries, 5);
        for (h, at) in [(1usize, 0u32), (2, 304), (3, 456)] {
            put_u32(&mut r, 44 + 4 * h, at);
            put_u32(&mut r, 64 + 4 * h, if h == 1 { 152 } else { at });
        }
        assert_eq!(nf.replace(Family::V4, &r).unwrap_err(), Errno::ELOOP);
        // Unchanged.
        let mut ip = tcp_packet(80);
        assert_eq!(
            nf.run(&[PRE_ROUTING, LOCAL_IN], &mut ip, ("lo", "")).0,
            Verdict::Accept
        );
    }
}
