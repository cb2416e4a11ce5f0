//! TUN/TAP devices: `/dev/net/tun` files and the links they make in a network namespace.
//!
//! Opening `/dev/net/tun` gives a [`TunFile`] bound to the opener's network namespace (its
//! [`Devices`], and the user namespace owning it, where CAP_NET_ADMIN is checked, as
//! Linux's `tun_chr_open` keeps the opener's namespace). TUNSETIFF makes a link of that
//! namespace (IFF_TUN: IP packets; IFF_TAP: Ethernet frames), named as asked or after a
//! template (`tun%d`, `tap%d`, the lowest free number), and attaches the file to it;
//! TUNGETIFF reads its name and flags back, TUNSETPERSIST keeps it after the last close.
//! A link not persistent goes away when its file is closed. The links show in the
//! namespace's NETLINK_ROUTE dumps and netdevice ioctls ([`super::netlink`]), and
//! SO_BINDTODEVICE names them ([`super::inet`]). A link is made down; RTM_NEWLINK or
//! SIOCSIFFLAGS brings it up, and RTM_NEWADDR gives it addresses.
//!
//! Packets: the file reads what the stack sent out of its link ([`Devices::transmit`]: with
//! a 4-byte packet-information header `{flags, protocol}` unless IFF_NO_PI) and a write
//! hands one packet to the namespace's stack ([`Hooks::receive`]). A TAP link carries
//! Ethernet frames: it answers ARP requests for its addresses itself and learns its IPv4
//! neighbours' hardware addresses from ARP requests and replies written to it; a packet for
//! a neighbour not known yet becomes an ARP request (the stack's protocols send again, and
//! a TCP connect gives up with EHOSTUNREACH as on a link). IPv6 unicast on a TAP link
//! (neighbour discovery) is not carried. Writing to a link that is down is EIO, as Linux's
//! `tun_get_user`.
//!
//! # Lock order
//! The stack's lock → `Devices::state` → a file's wait queue (notified under it). The
//! hooks into the stack are called with no lock of this module held.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use super::config::{Addr, Link};
use crate::abi::{Errno, SysResult};
use crate::auth::UserNs;
use crate::mm::usermem::UserAddr;
use crate::vfs::{Context, FileOps, IoDst, IoSrc, OpenFile, Stat};
use crate::waiter::{WaitQueue, Wake};

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
pub const TUNSETIFF: u32 = 0x4004_54ca;
/// `TUNSETPERSIST`: `_IOW('T', 203, int)`.
pub const TUNSETPERSIST: u32 = 0x4004_54cb;
/// `TUNGETIFF`: `_IOR('T', 210, unsigned int)`.
pub const TUNGETIFF: u32 = 0x8004_54d2;
/// `TUNGETFEATURES`: `_IOR('T', 207, unsigned int)`.
pub const TUNGETFEATURES: u32 = 0x8004_54cf;

/// `ifr_flags` of TUNSETIFF and TUNGETIFF.
pub const IFF_TUN: u16 = 0x0001;
pub const IFF_TAP: u16 = 0x0002;
pub const IFF_NO_PI: u16 = 0x1000;
pub const IFF_ONE_QUEUE: u16 = 0x2000;
pub const IFF_VNET_HDR: u16 = 0x4000;
pub const IFF_TUN_EXCL: u16 = 0x8000;
pub const IFF_MULTI_QUEUE: u16 = 0x0100;
pub const IFF_PERSIST: u16 = 0x0800;
/// TUNGETIFF sets it while no socket filter is attached (never one here).
pub const IFF_NOFILTER: u16 = 0x1000;

/// The features a link keeps from TUNSETIFF (Linux's `TUN_FEATURES`, less the vnet header
/// and multiple queues, which are refused).
const KEPT: u16 = IFF_NO_PI | IFF_ONE_QUEUE;
/// Bytes of the packet-information header (`struct tun_pi`).
pub const PI_LEN: usize = 4;
/// The MTU Linux gives a new TUN/TAP link.
pub const MTU: u32 = 1500;
/// Packets a link queues for its reader before dropping (Linux's default `tx_queue_len`).
const QUEUE_LEN: usize = 500;
/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;
/// `sizeof(struct ifreq)`.
const IFREQ_LEN: usize = 40;
/// The largest packet one write hands over (an IP packet's limit, plus a link header).
const MAX_PACKET: usize = 65_535 + 14;

/// Most neighbours a TAP link remembers.
const MAX_NEIGHBOURS: usize = 64;
/// EtherTypes a TAP link handles.
const ETH_P_ARP: u16 = 0x0806;

/// The namespace's stack as the links see it.
pub trait Hooks: Send + Sync {
    /// An IP packet received on link `index` (written to its file).
    fn receive(&self, index: i32, packet: Vec<u8>);
    /// The links' state or addresses changed (the stack re-reads its routes).
    fn changed(&self);
}

/// One TUN/TAP link.
#[derive(Debug)]
struct Dev {
    link: Link,
    /// IFF_TUN or IFF_TAP, the kept features and IFF_PERSIST.
    tun_flags: u16,
    /// A file is attached (one queue per link).
    attached: bool,
    /// Packets for the reader, without the information header.
    rx: VecDeque<Vec<u8>>,
    /// The attached file's wait queue.
    queue: Option<Arc<WaitQueue>>,
    /// TAP: the hardware addresses of IPv4 neighbours learnt from ARP, most recent last.
    neighbours: VecDeque<(Ipv4Addr, [u8; 6])>,
}

impl Dev {
    fn is_tap(&self) -> bool {
        self.tun_flags & IFF_TAP != 0
    }

    fn is_up(&self) -> bool {
        self.link.flags & libc::IFF_UP as u32 != 0
    }

    /// Queues `packet` for the reader (dropped when the queue is full or nobody reads).
    fn queue_rx(&mut self, packet: Vec<u8>) {
        if !self.is_up() || !self.attached || self.rx.len() >= QUEUE_LEN {
            return;
        }
        self.rx.push_back(packet);
        if let Some(q) = &self.queue {
            q.notify(Wake::Readable);
        }
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        if ip.is_unspecified() {
            return;
        }
        self.neighbours.retain(|&(i, _)| i != ip);
        if self.neighbours.len() >= MAX_NEIGHBOURS {
            self.neighbours.pop_front();
        }
        self.neighbours.push_back((ip, mac));
    }

    fn neighbour(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.neighbours
            .iter()
            .find(|&&(i, _)| i == ip)
            .map(|&(_, m)| m)
    }

    fn own_v4(&self) -> impl Iterator<Item = (Ipv4Addr, u8)> + '_ {
        self.link.addrs.iter().filter_map(|a| match a.ip {
            IpAddr::V4(v4) => Some((v4, a.prefix)),
            IpAddr::V6(_) => None,
        })
    }

    /// An Ethernet frame from this link's address to `dst`.
    fn frame(&self, dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&dst);
        f.extend_from_slice(&self.link.mac);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// An ARP packet (Ethernet, IPv4) of `op` (1 request, 2 reply).
    fn arp(&self, op: u16, sip: Ipv4Addr, tha: [u8; 6], tip: Ipv4Addr) -> Vec<u8> {
        let mut a = vec![0, 1, 0x08, 0, 6, 4];
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&self.link.mac);
        a.extend_from_slice(&sip.octets());
        a.extend_from_slice(&tha);
        a.extend_from_slice(&tip.octets());
        let dst = if op == 1 { [0xff; 6] } else { tha };
        self.frame(dst, ETH_P_ARP, &a)
    }

    /// A frame written to a TAP link: ARP is answered here (as the kernel's neighbour
    /// code would), an IP packet for this link's MAC, a broadcast or a multicast address
    /// is returned for the stack.
    fn tap_input(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let dst = &frame[..6];
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let body = &frame[14..];
        match ethertype {
            ETH_P_ARP if body.len() >= 28 && body[..6] == [0, 1, 0x08, 0, 6, 4] => {
                let op = u16::from_be_bytes([body[6], body[7]]);
                let sha = <[u8; 6]>::try_from(&body[8..14]).ok()?;
                let sip = Ipv4Addr::from(<[u8; 4]>::try_from(&body[14..18]).ok()?);
                let tip = Ipv4Addr::from(<[u8; 4]>::try_from(&body[24..28]).ok()?);
                let ours = self.own_v4().any(|(a, _)| a == tip);
                if ours || self.neighbour(sip).is_some() {
                    self.learn(sip, sha);
                }
                if op == 1 && ours {
                    let reply = self.arp(2, tip, sha, sip);
                    self.queue_rx(reply);
                }
                None
            }
            // As Linux, an IP frame teaches nothing about its sender: only ARP does.
            super::packet::ETH_P_IP | super::packet::ETH_P_IPV6 => {
                let for_us = dst == self.link.mac || dst[0] & 1 != 0;
                for_us.then(|| body.to_vec())
            }
            _ => None,
        }
    }

    /// The stack sends IP `packet` out of this link: a TUN link's reader gets it as is; a
    /// TAP link's in a frame to the destination's hardware address, or an ARP request for
    /// it while unknown (the packet is dropped, to be sent again by its protocol).
    fn output(&mut self, packet: &[u8]) {
        if !self.is_tap() {
            self.queue_rx(packet.to_vec());
            return;
        }
        match packet.first().map(|b| b >> 4) {
            Some(4) if packet.len() >= 20 => {
                let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).expect("4"));
                let src = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).expect("4"));
                let bcast = dst.is_broadcast()
                    || self
                        .own_v4()
                        .any(|(a, p)| p < 31 && broadcast_of(a, p) == dst);
                if dst.is_multicast() {
                    let o = dst.octets();
                    let mac = [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]];
                    let f = self.frame(mac, super::packet::ETH_P_IP, packet);
                    self.queue_rx(f);
                } else if bcast {
                    let f = self.frame([0xff; 6], super::packet::ETH_P_IP, packet);
                    self.queue_rx(f);
                } else if let Some(mac) = self.neighbour(dst) {
                    let f = self.frame(mac, super::packet::ETH_P_IP, packet);
                    self.queue_rx(f);
                } else {
                    let req = self.arp(1, src, [0; 6], dst);
                    self.queue_rx(req);
                }
            }
            Some(6) if packet.len() >= 40 && packet[24] == 0xff => {
                // IPv6 multicast maps onto 33:33 and the group's low 32 bits.
                let mac = [0x33, 0x33, packet[36], packet[37], packet[38], packet[39]];
                let f = self.frame(mac, super::packet::ETH_P_IPV6, packet);
                self.queue_rx(f);
            }
            // IPv6 unicast would need neighbour discovery, which TAP links lack here.
            _ => {}
        }
    }
}

/// The broadcast address of `a`/`prefix`.
fn broadcast_of(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a) | u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0))
}

struct State {
    devs: Vec<Dev>,
    /// The index the next link gets.
    next_index: i32,
}

/// The TUN/TAP links of one network namespace.
pub struct Devices {
    state: Mutex<State>,
    hooks: Mutex<Option<Arc<dyn Hooks>>>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("links", &self.state().devs.len())
            .finish_non_exhaustive()
    }
}

impl Default for Devices {
    /// The links of a namespace with only a loopback.
    fn default() -> Devices {
        Devices::new(super::config::LOOPBACK_INDEX)
    }
}

/// Whether `flags` (link flags) are those of a TUN link: point-to-point, without ARP.
pub fn is_tun_link(flags: u32) -> bool {
    let tun = (libc::IFF_POINTOPOINT | libc::IFF_NOARP) as u32;
    flags & tun == tun
}

impl Devices {
    /// The links of a namespace whose other links end at index `last` (loopback, the
    /// configured ones): new ones are numbered after it.
    pub fn new(last: i32) -> Devices {
        Devices {
            state: Mutex::new(State {
                devs: Vec::new(),
                next_index: last + 1,
            }),
            hooks: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the links to the namespace's stack.
    pub fn set_hooks(&self, h: Arc<dyn Hooks>) {
        *self.hooks.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    fn hooks(&self) -> Option<Arc<dyn Hooks>> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tells the stack the links changed (called with no lock of this module held).
    fn changed(&self) {
        if let Some(h) = self.hooks() {
            h.changed();
        }
    }

    /// The links, in index order.
    pub fn links(&self) -> Vec<Link> {
        self.state().devs.iter().map(|d| d.link.clone()).collect()
    }

    /// The index of the link named `name`.
    pub fn index_of(&self, name: &[u8]) -> Option<i32> {
        let s = self.state();
        s.devs
            .iter()
            .find(|d| d.link.name.as_bytes() == name)
            .map(|d| d.link.index)
    }

    /// The name of link `index`.
    pub fn name_of(&self, index: i32) -> Option<String> {
        let s = self.state();
        s.devs
            .iter()
            .find(|d| d.link.index == index)
            .map(|d| d.link.name.clone())
    }

    /// The addresses of the links that are up, with their link index (for routing).
    pub fn up_addrs(&self) -> Vec<(i32, Addr)> {
        let s = self.state();
        s.devs
            .iter()
            .filter(|d| d.link.flags & libc::IFF_UP as u32 != 0)
            .flat_map(|d| d.link.addrs.iter().map(move |a| (d.link.index, *a)))
            .collect()
    }

    /// Changes the link flags of link `index` in `change` to those of `flags` (only IFF_UP
    /// is changeable); `None` when no such link is here.
    pub fn change_flags(&self, index: i32, flags: u32, change: u32) -> Option<Result<(), Errno>> {
        let r = self.change_flags_locked(index, flags, change);
        self.changed();
        r
    }

    fn change_flags_locked(
        &self,
        index: i32,
        flags: u32,
        change: u32,
    ) -> Option<Result<(), Errno>> {
        let mut s = self.state();
        let d = s.devs.iter_mut().find(|d| d.link.index == index)?;
        let up = libc::IFF_UP as u32;
        if change & !up & (flags ^ d.link.flags) != 0 {
            return Some(Err(Errno::EOPNOTSUPP));
        }
        if change & up != 0 {
            d.link.flags = (d.link.flags & !up) | (flags & up);
            if flags & up == 0 {
                d.rx.clear();
            }
            running(d);
        }
        Some(Ok(()))
    }

    /// Sets link `index`'s hardware address (TAP links only); `None` when no such link.
    pub fn set_mac(&self, index: i32, mac: &[u8]) -> Option<Result<(), Errno>> {
        let mut s = self.state();
        let d = s.devs.iter_mut().find(|d| d.link.index == index)?;
        Some(match <[u8; 6]>::try_from(mac) {
            Ok(m) if d.is_tap() && m[0] & 1 == 0 && m != [0; 6] => {
                d.link.mac = m;
                Ok(())
            }
            Ok(_) if d.is_tap() => Err(Errno::EADDRNOTAVAIL),
            _ => Err(Errno::EINVAL),
        })
    }

    /// Adds `addr` to link `index` (`excl`: EEXIST when present); `None` when no such link.
    pub fn add_addr(&self, index: i32, addr: Addr, excl: bool) -> Option<Result<(), Errno>> {
        {
            let mut s = self.state();
            let d = s.devs.iter_mut().find(|d| d.link.index == index)?;
            if d.link.addrs.iter().any(|a| a.ip == addr.ip) {
                return Some(if excl { Err(Errno::EEXIST) } else { Ok(()) });
            }
            d.link.addrs.push(addr);
        }
        self.changed();
        Some(Ok(()))
    }

    /// Removes `ip` from link `index`; `None` when no such link.
    pub fn del_addr(&self, index: i32, ip: IpAddr) -> Option<Result<(), Errno>> {
        let mut s = self.state();
        let d = s.devs.iter_mut().find(|d| d.link.index == index)?;
        let before = d.link.addrs.len();
        d.link.addrs.retain(|a| a.ip != ip);
        let removed = d.link.addrs.len() != before;
        drop(s);
        self.changed();
        Some(if removed {
            Ok(())
        } else {
            Err(Errno::EADDRNOTAVAIL)
        })
    }

    /// The stack sends IP `packet` out of link `index` ([`Dev::output`]); dropped when
    /// the link is gone, down or not attached (as Linux drops it with no queue).
    pub fn transmit(&self, index: i32, packet: &[u8]) {
        let mut s = self.state();
        if let Some(d) = s.devs.iter_mut().find(|d| d.link.index == index) {
            d.output(packet);
        }
    }

    /// Whether the stack may send to `ip` through link `index` at once: a TUN link needs
    /// no resolution, a TAP link knows `ip`'s hardware address.
    pub fn resolved(&self, index: i32, ip: IpAddr) -> bool {
        let s = self.state();
        s.devs
            .iter()
            .find(|d| d.link.index == index)
            .is_some_and(|d| match ip {
                _ if !d.is_tap() => true,
                IpAddr::V4(v4) => d.neighbour(v4).is_some(),
                IpAddr::V6(_) => false,
            })
    }

    /// Makes or attaches to the link `name` (empty: a new one from the kind's template)
    /// for a file, per TUNSETIFF's `flags`; returns the link's index and name.
    pub(super) fn attach(
        &self,
        name: &[u8],
        flags: u16,
        queue: &Arc<WaitQueue>,
        may_admin: bool,
    ) -> Result<(i32, String), Errno> {
        let kind = flags & (IFF_TUN | IFF_TAP);
        if kind != IFF_TUN && kind != IFF_TAP {
            return Err(Errno::EINVAL);
        }
        if flags & (IFF_VNET_HDR | IFF_MULTI_QUEUE) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut s = self.state();
        let name = std::str::from_utf8(name).map_err(|_| Errno::EINVAL)?;
        if let Some(d) = s.devs.iter_mut().find(|d| d.link.name == name) {
            if flags & IFF_TUN_EXCL != 0 {
                return Err(Errno::EBUSY);
            }
            if d.tun_flags & (IFF_TUN | IFF_TAP) != kind {
                return Err(Errno::EINVAL);
            }
            if !may_admin {
                return Err(Errno::EPERM);
            }
            if d.attached {
                return Err(Errno::EBUSY);
            }
            d.attached = true;
            d.tun_flags = (d.tun_flags & !KEPT) | (flags & KEPT);
            d.queue = Some(queue.clone());
            running(d);
            return Ok((d.link.index, d.link.name.clone()));
        }
        if !may_admin {
            return Err(Errno::EPERM);
        }
        let name = if name.is_empty() {
            template(&s, if kind == IFF_TUN { "tun%d" } else { "tap%d" })?
        } else if name.contains('%') {
            template(&s, name)?
        } else {
            name.to_owned()
        };
        if name == "lo" || name.contains('/') || name.contains(char::is_whitespace) {
            return Err(Errno::EINVAL);
        }
        let index = s.next_index;
        s.next_index += 1;
        let (mac, flags_l) = if kind == IFF_TAP {
            (
                random_mac(),
                (libc::IFF_BROADCAST | libc::IFF_MULTICAST) as u32,
            )
        } else {
            (
                [0; 6],
                (libc::IFF_POINTOPOINT | libc::IFF_NOARP | libc::IFF_MULTICAST) as u32,
            )
        };
        let mut d = Dev {
            link: Link {
                name: name.clone(),
                index,
                mac,
                mtu: MTU,
                flags: flags_l,
                addrs: Vec::new(),
            },
            tun_flags: kind | (flags & KEPT),
            attached: true,
            rx: VecDeque::new(),
            queue: Some(queue.clone()),
            neighbours: VecDeque::new(),
        };
        running(&mut d);
        s.devs.push(d);
        Ok((index, name))
    }

    /// The file attached to link `index` is closed: the link goes unless persistent.
    fn detach(&self, index: i32) {
        let mut s = self.state();
        let Some(pos) = s.devs.iter().position(|d| d.link.index == index) else {
            return;
        };
        let d = &mut s.devs[pos];
        if d.tun_flags & IFF_PERSIST != 0 {
            d.attached = false;
            d.queue = None;
            d.rx.clear();
            running(d);
        } else {
            s.devs.remove(pos);
        }
        drop(s);
        self.changed();
    }

    /// TUNSETPERSIST on link `index`; a link made not persistent while no file is attached
    /// goes at once.
    fn set_persist(&self, index: i32, on: bool) {
        let mut s = self.state();
        let Some(pos) = s.devs.iter().position(|d| d.link.index == index) else {
            return;
        };
        let d = &mut s.devs[pos];
        if on {
            d.tun_flags |= IFF_PERSIST;
        } else {
            d.tun_flags &= !IFF_PERSIST;
            if !d.attached {
                s.devs.remove(pos);
                drop(s);
                self.changed();
            }
        }
    }

    /// Link `index`'s name and TUNSETIFF flags.
    fn iff(&self, index: i32) -> Option<(String, u16)> {
        let s = self.state();
        let d = s.devs.iter().find(|d| d.link.index == index)?;
        Some((d.link.name.clone(), d.tun_flags))
    }

    /// Takes the next packet queued for link `index`'s reader: `Ok(None)` when none,
    /// EIO when the link is gone.
    fn take(&self, index: i32) -> Result<Option<Vec<u8>>, Errno> {
        let mut s = self.state();
        let d = s
            .devs
            .iter_mut()
            .find(|d| d.link.index == index)
            .ok_or(Errno::EIO)?;
        Ok(d.rx.pop_front())
    }

    fn has_packets(&self, index: i32) -> bool {
        let s = self.state();
        s.devs
            .iter()
            .find(|d| d.link.index == index)
            .is_some_and(|d| !d.rx.is_empty())
    }

    fn is_up(&self, index: i32) -> bool {
        let s = self.state();
        s.devs
            .iter()
            .find(|d| d.link.index == index)
            .is_some_and(|d| d.link.flags & libc::IFF_UP as u32 != 0)
    }

    /// A packet or frame written to link `index`'s file: the IP packet for the stack, if
    /// any (a TAP link answers ARP itself).
    fn input(&self, index: i32, packet: &[u8]) -> Option<Vec<u8>> {
        let mut s = self.state();
        let d = s.devs.iter_mut().find(|d| d.link.index == index)?;
        if d.is_tap() {
            d.tap_input(packet)
        } else {
            matches!(packet[0] >> 4, 4 | 6).then(|| packet.to_vec())
        }
    }
}

/// A link runs (carrier on) while up with a file attached, as Linux's tun.
fn running(d: &mut Dev) {
    let up = d.link.flags & libc::IFF_UP as u32 != 0;
    let run = libc::IFF_RUNNING as u32;
    if up && d.attached {
        d.link.flags |= run;
    } else {
        d.link.flags &= !run;
    }
}

/// The first free name of `template` (one `%d`).
fn template(s: &State, template: &str) -> Result<String, Errno> {
    let (head, tail) = template.split_once("%d").ok_or(Errno::EINVAL)?;
    if tail.contains('%') || head.contains('%') {
        return Err(Errno::EINVAL);
    }
    (0..32_768)
        .map(|n| format!("{head}{n}{tail}"))
        .find(|n| n.len() < IFNAMSIZ && !s.devs.iter().any(|d| &d.link.name == n))
        .ok_or(Errno::ENFILE)
}

/// A random locally administered unicast MAC (Linux's `eth_hw_addr_random`).
fn random_mac() -> [u8; 6] {
    let mut m = [0u8; 6];
    if rustix::rand::getrandom(&mut m, rustix::rand::GetRandomFlags::empty()).is_err() {
        m = [0x02, 0, 0, 0, 0, 0x01];
    }
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}

/// An open `/dev/net/tun`: unattached until TUNSETIFF.
pub struct TunFile {
    devices: Arc<Devices>,
    /// The user namespace owning the network namespace (CAP_NET_ADMIN is checked there).
    owner: Arc<UserNs>,
    /// The attached link's index.
    index: Mutex<Option<i32>>,
    queue: Arc<WaitQueue>,
}

impl std::fmt::Debug for TunFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunFile")
            .field("index", &self.attached())
            .finish_non_exhaustive()
    }
}

impl TunFile {
    /// A file opened in the network namespace whose links are `devices`, owned by `owner`.
    pub fn new(devices: Arc<Devices>, owner: Arc<UserNs>) -> TunFile {
        TunFile {
            devices,
            owner,
            index: Mutex::new(None),
            queue: Arc::new(WaitQueue::new()),
        }
    }

    fn attached(&self) -> Option<i32> {
        *self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_iff(&self, t: &dyn Context, arg: u64) -> SysResult {
        let mm = t.mm();
        let mut req: [u8; IFREQ_LEN] = mm.read_obj(UserAddr(arg))?;
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.is_some() {
            return Err(Errno::EINVAL);
        }
        let flags = u16::from_ne_bytes([req[IFNAMSIZ], req[IFNAMSIZ + 1]]);
        let end = req[..IFNAMSIZ - 1]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(IFNAMSIZ - 1);
        let may_admin = t
            .creds()
            .has_cap_in(&self.owner, crate::auth::cap::NET_ADMIN);
        let (i, name) = self
            .devices
            .attach(&req[..end], flags, &self.queue, may_admin)?;
        *index = Some(i);
        drop(index);
        req[..IFNAMSIZ].fill(0);
        req[..name.len()].copy_from_slice(name.as_bytes());
        mm.write_obj(UserAddr(arg), &req)?;
        Ok(0)
    }

    fn get_iff(&self, t: &dyn Context, arg: u64) -> SysResult {
        let index = self.attached().ok_or(Errno::EBADFD)?;
        let (name, flags) = self.devices.iff(index).ok_or(Errno::EBADFD)?;
        let mut req = [0u8; IFREQ_LEN];
        req[..name.len()].copy_from_slice(name.as_bytes());
        let shown = (flags & (IFF_TUN | IFF_TAP | KEPT | IFF_PERSIST)) | IFF_NOFILTER;
        req[IFNAMSIZ..IFNAMSIZ + 2].copy_from_slice(&shown.to_ne_bytes());
        t.mm().write_obj(UserAddr(arg), &req)?;
        Ok(0)
    }

    /// The packet-information header for `packet` of a TUN link (its protocol by IP
    /// version) or a TAP link (its EtherType).
    fn pi_for(tap: bool, packet: &[u8]) -> [u8; PI_LEN] {
        let proto: u16 = if tap {
            packet
                .get(12..14)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
        } else {
            match packet.first().map(|b| b >> 4) {
                Some(4) => super::packet::ETH_P_IP,
                Some(6) => super::packet::ETH_P_IPV6,
                _ => 0,
            }
        };
        let p = proto.to_be_bytes();
        [0, 0, p[0], p[1]]
    }
}

impl Drop for TunFile {
    fn drop(&mut self) {
        if let Some(i) = self.attached() {
            self.devices.detach(i);
        }
    }
}

impl FileOps for TunFile {
    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        let index = self.attached().ok_or(Errno::EBADFD)?;
        let (_, flags) = self.devices.iff(index).ok_or(Errno::EBADFD)?;
        let nb = file.nonblocking();
        let devices = &self.devices;
        let packet = t.block_on(&[&self.queue], None, || match devices.take(index) {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) if nb => Some(Err(Errno::EAGAIN)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })?;
        let mut out = Vec::with_capacity(packet.len() + PI_LEN);
        if flags & IFF_NO_PI == 0 {
            let mut pi = Self::pi_for(flags & IFF_TAP != 0, &packet);
            // TUN_PKT_STRIP: the packet did not fit the reader's buffer.
            if dst.remaining() < packet.len() + PI_LEN {
                pi[0..2].copy_from_slice(&1u16.to_ne_bytes());
            }
            out.extend_from_slice(&pi);
        }
        out.extend_from_slice(&packet);
        // What does not fit the buffer is lost, as a datagram.
        let n = out.len().min(dst.remaining());
        dst.copy_from(&out[..n])
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _file: &OpenFile,
        src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        let index = self.attached().ok_or(Errno::EBADFD)?;
        let (_, flags) = self.devices.iff(index).ok_or(Errno::EBADFD)?;
        let total = src.remaining();
        let head = if flags & IFF_NO_PI == 0 { PI_LEN } else { 0 };
        if total == 0 || total < head {
            return Err(Errno::EINVAL);
        }
        if total > MAX_PACKET + head {
            return Err(Errno::EMSGSIZE);
        }
        let mut data = super::gather(src)?;
        if data.len() < total {
            return Err(Errno::EFAULT);
        }
        let packet = data.split_off(head);
        let tap = flags & IFF_TAP != 0;
        // A TUN link without the information header takes the protocol from the IP
        // version: anything else is refused before the link's state is looked at.
        if !tap && head == 0 && !matches!(packet[0] >> 4, 4 | 6) {
            return Err(Errno::EINVAL);
        }
        if !self.devices.is_up(index) {
            return Err(Errno::EIO);
        }
        // A frame shorter than its link header is refused.
        if tap && packet.len() < super::packet::ETH_HLEN {
            return Err(Errno::EINVAL);
        }
        if let Some(ip) = self.devices.input(index, &packet) {
            if let Some(h) = self.devices.hooks() {
                h.receive(index, ip);
            }
        }
        Ok(total)
    }

    fn ioctl(&self, t: &mut dyn Context, _file: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        match cmd {
            TUNSETIFF => self.set_iff(t, arg),
            TUNGETIFF => self.get_iff(t, arg),
            TUNSETPERSIST => {
                let index = self.attached().ok_or(Errno::EBADFD)?;
                if !t
                    .creds()
                    .has_cap_in(&self.owner, crate::auth::cap::NET_ADMIN)
                {
                    return Err(Errno::EPERM);
                }
                self.devices.set_persist(index, arg != 0);
                Ok(0)
            }
            TUNGETFEATURES => {
                let features = u32::from(IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE);
                t.mm().write_obj(UserAddr(arg), &features)?;
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            mode: libc::S_IFCHR | 0o666,
            rdev: libc::makedev(10, 200),
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn readiness(&self) -> u32 {
        let out = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        match self.attached() {
            None => libc::POLLERR as u32,
            Some(i) if self.devices.has_packets(i) => {
                out | (libc::POLLIN | libc::POLLRDNORM) as u32
            }
            Some(_) => out,
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_lowest_free_number_and_closing_removes() {
        let d = Devices::new(1);
        let q = Arc::new(WaitQueue::new());
        let (i0, n0) = d.attach(b"", IFF_TUN, &q, true).unwrap();
        let (i1, n1) = d.attach(b"", IFF_TUN, &q, true).unwrap();
        assert_eq!((i0, n0.as_str(), i1, n1.as_str()), (2, "tun0", 3, "tun1"));
        let (_, tap) = d.attach(b"x%dy", IFF_TAP, &q, true).unwrap();
        assert_eq!(tap, "x0y");
        d.detach(i0);
        assert_eq!(d.index_of(b"tun0"), None);
        let (i2, n2) = d.attach(b"", IFF_TUN, &q, true).unwrap();
        assert_eq!((i2, n2.as_str()), (5, "tun0"));
    }

    #[test]
    fn attaching_needs_net_admin_and_a_free_link() {
        let d = Devices::new(1);
        let q = Arc::new(WaitQueue::new());
        assert_eq!(d.attach(b"tap0", IFF_TAP, &q, false), Err(Errno::EPERM));
        let (i, _) = d.attach(b"tap0", IFF_TAP, &q, true).unwrap();
        assert_eq!(d.attach(b"tap0", IFF_TAP, &q, true), Err(Errno::EBUSY));
        assert_eq!(
            d.attach(b"tap0", IFF_TAP | IFF_TUN_EXCL, &q, true),
            Err(Errno::EBUSY)
        );
        assert_eq!(d.attach(b"tap0", IFF_TUN, &q, true), Err(Errno::EINVAL));
        d.set_persist(i, true);
        d.detach(i);
        assert_eq!(d.index_of(b"tap0"), Some(i));
        assert_eq!(d.attach(b"tap0", IFF_TAP, &q, true).map(|r| r.0), Ok(i));
    }

    #[test]
    fn packets_queue_only_while_up_and_attached() {
        let d = Devices::new(1);
        let q = Arc::new(WaitQueue::new());
        let (i, _) = d.attach(b"tun0", IFF_TUN, &q, true).unwrap();
        d.transmit(i, &[0x45]);
        assert_eq!(d.take(i), Ok(None));
        assert_eq!(
            d.change_flags(i, libc::IFF_UP as u32, libc::IFF_UP as u32),
            Some(Ok(()))
        );
        assert!(d.links()[0].flags & libc::IFF_RUNNING as u32 != 0);
        d.transmit(i, &[0x45]);
        assert_eq!(d.take(i), Ok(Some(vec![0x45])));
        assert_eq!(TunFile::pi_for(false, &[0x60]), [0, 0, 0x86, 0xdd]);
    }
}
