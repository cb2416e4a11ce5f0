//! AF_NETLINK sockets speaking NETLINK_ROUTE: the sandbox's own view of its links, addresses
//! and routes (`ip addr`, `getifaddrs`, glibc's `if_nameindex` and AI_ADDRCONFIG).
//!
//! The sentry is the "kernel" end of every netlink socket: a send is parsed and answered at
//! once, and the answers wait in the socket's receive queue, one datagram each, as Linux
//! queues its reply skbs. What the answers describe is the loopback with its addresses now
//! ([`config::LoopbackAddrs`], which RTM_NEWADDR and RTM_DELADDR change on the sentry's
//! stack), the namespace's [`config::NetConfig`] as boot found it and its TUN/TAP links,
//! with the kernel's own routes (prefix routes and the `local` table) derived from the
//! addresses as Linux derives them. Multicast group membership is accepted and never
//! delivers a notification (NETLINK_KOBJECT_UEVENT sockets likewise exist and never receive
//! anything); other changes are refused: EPERM without CAP_NET_ADMIN, as Linux, and
//! EOPNOTSUPP otherwise. Messages are built and parsed with netlink-packet-route.
//!
//! NETLINK_NETFILTER sockets speak nftables over a ruleset that is always empty (the stack's
//! packet filter is the legacy iptables one): dumps list nothing, flushing every table
//! succeeds, and whatever would add to the ruleset is EOPNOTSUPP ([`process_netfilter`]).
//!
//! Semantics follow Linux (`net/netlink/af_netlink.c`, `net/core/rtnetlink.c`) and gVisor
//! (`pkg/sentry/socket/netlink`): a socket binds to a port id (the caller's PID unless taken
//! or chosen) on bind, connect or its first send; a dump answers with its entries in
//! datagrams of at most a page, then NLMSG_DONE alone; NLM_F_ACK adds an NLMSG_ERROR 0 that
//! carries only the request's header, and an error carries the whole request.
//!
//! # Lock order
//! A socket's state lock → the namespace's port table ([`Ports`]). Wait queues are notified
//! with no lock held.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use netlink_packet_core::Parseable;
use netlink_packet_core::{
    DoneMessage, ErrorMessage, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NLM_F_ACK, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{
    LinkAttribute, LinkFlags, LinkLayerType, LinkMessage, LinkMode, State as OperState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RoutePreference,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::config::{self, Link, LoopbackAddrs, Network, Route, LOOPBACK_INDEX};
use super::{InMessage, IoFlags, OutMessage, Socket, Ucred};
use crate::abi::{Errno, SysResult};
use crate::auth::UserNs;
use crate::mm::usermem::UserAddr;
use crate::vfs::Context;
use crate::vfs::{FileOps, Stat};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::WaitQueue;

/// `NETLINK_ROUTE`, the protocol the sentry answers.
pub const NETLINK_ROUTE: i32 = 0;
/// `NETLINK_NETFILTER`: nfnetlink, of which the sentry answers nftables over an empty
/// ruleset ([`process_netfilter`]).
pub const NETLINK_NETFILTER: i32 = 12;
/// `NETLINK_KOBJECT_UEVENT`: device events, of which the sandbox has none; its sockets
/// exist (udev-style programs open them) and never receive anything.
pub const NETLINK_KOBJECT_UEVENT: i32 = 15;
/// `SOL_NETLINK`.
const SOL_NETLINK: i32 = 270;
/// `NETLINK_CAP_ACK`: errors carry only the request's header.
const NETLINK_CAP_ACK: i32 = 10;
/// `CAP_NET_ADMIN`, needed by every request but the GET kinds.
const CAP_NET_ADMIN: u32 = 12;
/// Message types below this are netlink control messages, never requests.
const NLMSG_MIN_TYPE: u16 = 0x10;
/// The last rtnetlink message type Linux knows (`RTM_MAX`).
const RTM_MAX: u16 = 0x7f;
/// `RTCF_LOCAL`: a looked-up route delivers locally.
const RTCF_LOCAL: u32 = 0x8000_0000;
/// The low two bits of an rtnetlink type: NEW, DEL, GET, SET.
const KIND_GET: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
/// `NLM_F_REPLACE`: an existing object is replaced.
const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL`: a new object must not exist yet.
const NLM_F_EXCL: u16 = 0x200;
const RTM_GETROUTE: u16 = 26;
/// `RT_TABLE_LOCAL`.
const TABLE_LOCAL: u8 = 255;
/// Linux's `rmem_default`/`wmem_default`: the default buffer sizes.
const DEFAULT_BUF: usize = 212_992;
/// Largest datagram a dump fills before starting another (Linux: about a page).
const DUMP_DATAGRAM: usize = 4096;
/// `sizeof(struct sockaddr_nl)`.
const SOCKADDR_NL_LEN: usize = 12;
/// `IFF_LOWER_UP`: Linux reports it for every running link.
const IFF_LOWER_UP: u32 = 0x1_0000;
/// The metric Linux gives IPv6 prefix routes.
const IP6_RT_PRIO_ADDRCONF: u32 = 256;
/// A lifetime that never ends (`INFINITY_LIFE_TIME`).
const FOREVER: u32 = u32::MAX;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// The port ids bound in one network namespace, by protocol.
#[derive(Debug, Default)]
pub struct Ports {
    taken: Mutex<HashSet<(i32, u32)>>,
}

impl Ports {
    /// Takes `port`; 0 picks one: `pid` when free, else a negative id counting down from
    /// -4096 as Linux's autobind.
    fn take(&self, protocol: i32, port: u32, pid: u32) -> Result<u32, Errno> {
        let mut taken = self.taken.lock().unwrap();
        if port != 0 {
            return if taken.insert((protocol, port)) {
                Ok(port)
            } else {
                Err(Errno::EADDRINUSE)
            };
        }
        if pid != 0 && taken.insert((protocol, pid)) {
            return Ok(pid);
        }
        let mut rover = -4097i32;
        loop {
            if taken.insert((protocol, rover as u32)) {
                return Ok(rover as u32);
            }
            rover = rover.checked_sub(1).ok_or(Errno::EADDRINUSE)?;
        }
    }

    fn release(&self, protocol: i32, port: u32) {
        self.taken.lock().unwrap().remove(&(protocol, port));
    }
}

/// What the namespace shows: its links (loopback first) and its configured routes.
#[derive(Debug, Clone)]
struct View {
    links: Vec<Link>,
    routes: Vec<Route>,
}

impl View {
    /// The links and routes of `network`, with loopback addresses `lo` (`None`: the fixed
    /// ones, as on the host's stack).
    fn of(network: &Network, tun: &super::tun::Devices, lo: Option<&LoopbackAddrs>) -> View {
        let mut links = vec![lo.map_or_else(config::loopback, LoopbackAddrs::link)];
        let mut routes = Vec::new();
        if let Some(c) = network.config() {
            links.extend(c.links.iter().cloned());
            routes.extend(c.routes.iter().cloned());
        }
        links.extend(tun.links());
        View { links, routes }
    }
}

/// The links a namespace shows, loopback first (for `/proc/net`).
pub fn links(ns: &super::Namespace) -> Vec<Link> {
    View::of(&ns.network, &ns.tun, ns.loopback_addrs().map(|a| &**a)).links
}

/// An IPv4 route of the main table, as `/proc/net/route` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Route {
    pub link: String,
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub metric: u32,
}

/// The main table's IPv4 routes of a namespace (what `ip -4 route` shows).
pub fn ipv4_main_routes(ns: &super::Namespace) -> Vec<Ipv4Route> {
    let view = View::of(&ns.network, &ns.tun, ns.loopback_addrs().map(|a| &**a));
    routes(&view)
        .into_iter()
        .filter(|r| r.table == RouteHeader::RT_TABLE_MAIN)
        .filter_map(|r| {
            let IpAddr::V4(dst) = r.dst else { return None };
            let link = view.links.iter().find(|l| l.index == r.link)?.name.clone();
            Some(Ipv4Route {
                link,
                dst,
                prefix: r.prefix,
                gateway: r.gateway.and_then(|g| match g {
                    IpAddr::V4(g) => Some(g),
                    IpAddr::V6(_) => None,
                }),
                metric: r.metric,
            })
        })
        .collect()
}

/// `sizeof(struct ifreq)`.
const IFREQ_LEN: usize = 40;
/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;

/// Whether `cmd` is one of the netdevice ioctls ([`netdevice_ioctl`]) Linux answers on a
/// socket of any family.
pub fn is_netdevice_ioctl(cmd: u32) -> bool {
    matches!(
        u64::from(cmd),
        libc::SIOCGIFINDEX
            | libc::SIOCGIFNAME
            | libc::SIOCGIFFLAGS
            | libc::SIOCSIFFLAGS
            | libc::SIOCGIFMTU
            | libc::SIOCGIFHWADDR
            | libc::SIOCGIFADDR
            | libc::SIOCGIFNETMASK
            | libc::SIOCGIFBRDADDR
            | libc::SIOCGIFTXQLEN
            | libc::SIOCGIFCONF
            | SIOCETHTOOL
    )
}

/// `SIOCETHTOOL`: an ethtool command whose struct `ifr_data` points at.
const SIOCETHTOOL: u64 = 0x8946;
/// ethtool commands the sentry's links answer: the link state and the timestamping they
/// offer (software time stamps only, as Linux's loopback and veth links).
const ETHTOOL_GLINK: u32 = 0x0a;
const ETHTOOL_GET_TS_INFO: u32 = 0x41;
/// SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE.
const SOFTWARE_TIMESTAMPING: u32 = 0x2 | 0x8 | 0x10;

/// An ethtool command for link `l`, its struct at `data` (read and written back whole).
///
/// # Errors
/// EOPNOTSUPP for commands the links lack (a driver without the operation), EFAULT.
fn ethtool(l: &Link, t: &dyn Context, data: UserAddr) -> SysResult {
    let mm = t.mm();
    let cmd: u32 = mm.read_obj(data)?;
    match cmd {
        // struct ethtool_value { cmd, data }.
        ETHTOOL_GLINK => {
            let up = u32::from(l.flags & libc::IFF_RUNNING as u32 != 0);
            mm.write_obj(data, &[cmd, up])?;
        }
        // struct ethtool_ts_info { cmd, so_timestamping, phc_index, tx_types,
        // tx_reserved[3], rx_filters, rx_reserved[3] }: no hardware clock (-1).
        ETHTOOL_GET_TS_INFO => {
            let mut v = [0u32; 11];
            v[0] = cmd;
            v[1] = SOFTWARE_TIMESTAMPING;
            v[2] = u32::MAX;
            mm.write_obj(data, &v)?;
        }
        _ => return Err(Errno::EOPNOTSUPP),
    }
    Ok(0)
}

/// A `sockaddr_in` padded to the 16 bytes of an `ifreq`'s address.
fn sockaddr_in(a: Ipv4Addr) -> [u8; 16] {
    let mut v = [0; 16];
    v[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    v[4..8].copy_from_slice(&a.octets());
    v
}

/// The netdevice ioctls (`netdevice(7)`: SIOCGIFINDEX, SIOCGIFNAME, SIOCGIFFLAGS,
/// SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFBRDADDR, SIOCGIFTXQLEN,
/// SIOCGIFCONF, and SIOCETHTOOL's link state and timestamping) on any socket, answered from
/// `network` as NETLINK_ROUTE answers.
///
/// # Errors
/// ENODEV for an unknown link, EADDRNOTAVAIL for a link without an IPv4 address, EFAULT.
pub fn netdevice_ioctl(
    ns: &super::Namespace,
    net_admin: bool,
    t: &dyn Context,
    cmd: u32,
    arg: u64,
) -> SysResult {
    let links = links(ns);
    let mm = t.mm();
    let at = UserAddr(arg);
    if u64::from(cmd) == libc::SIOCGIFCONF {
        // struct ifconf { int ifc_len; char *ifc_buf; }: one ifreq per IPv4 address.
        let len: i32 = mm.read_obj(at)?;
        let buf: u64 = mm.read_obj(UserAddr(arg + 8))?;
        let mut entries = Vec::new();
        for l in &links {
            for a in &l.addrs {
                if let IpAddr::V4(v4) = a.ip {
                    let mut req = [0u8; IFREQ_LEN];
                    let n = l.name.len().min(IFNAMSIZ - 1);
                    req[..n].copy_from_slice(&l.name.as_bytes()[..n]);
                    req[IFNAMSIZ..IFNAMSIZ + 16].copy_from_slice(&sockaddr_in(v4));
                    entries.push(req);
                }
            }
        }
        let total = if buf == 0 {
            entries.len() * IFREQ_LEN
        } else {
            let room = usize::try_from(len).unwrap_or(0) / IFREQ_LEN;
            let out: Vec<u8> = entries.iter().take(room).flatten().copied().collect();
            mm.write_bytes(UserAddr(buf), &out)?;
            out.len()
        };
        mm.write_obj(at, &(total as i32))?;
        return Ok(0);
    }
    let mut req: [u8; IFREQ_LEN] = mm.read_obj(at)?;
    let link = if u64::from(cmd) == libc::SIOCGIFNAME {
        let index = i32::from_ne_bytes(req[IFNAMSIZ..IFNAMSIZ + 4].try_into().expect("4"));
        links.iter().find(|l| l.index == index)
    } else {
        let end = req[..IFNAMSIZ]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(IFNAMSIZ);
        links.iter().find(|l| l.name.as_bytes() == &req[..end])
    };
    let l = link.ok_or(Errno::ENODEV)?;
    if u64::from(cmd) == SIOCETHTOOL {
        let ptr = u64::from_ne_bytes(req[IFNAMSIZ..IFNAMSIZ + 8].try_into().expect("8"));
        return ethtool(l, t, UserAddr(ptr));
    }
    if u64::from(cmd) == libc::SIOCSIFFLAGS {
        if !net_admin {
            return Err(Errno::EPERM);
        }
        let flags = u32::from(u16::from_ne_bytes([req[IFNAMSIZ], req[IFNAMSIZ + 1]]));
        // What SIOCSIFFLAGS may change (Linux's `dev_change_flags` mask).
        let change = (libc::IFF_UP
            | libc::IFF_DEBUG
            | libc::IFF_NOTRAILERS
            | libc::IFF_NOARP
            | libc::IFF_PROMISC
            | libc::IFF_ALLMULTI
            | libc::IFF_MULTICAST) as u32;
        return match ns.tun.change_flags(l.index, flags, change) {
            Some(r) => r.map(|()| 0),
            None if (flags ^ l.flags) & change != 0 => Err(Errno::EOPNOTSUPP),
            None => Ok(0),
        };
    }
    let data = &mut req[IFNAMSIZ..];
    let v4 = l.addrs.iter().find_map(|a| match a.ip {
        IpAddr::V4(ip) => Some((ip, a.prefix)),
        IpAddr::V6(_) => None,
    });
    let loopback = l.flags & libc::IFF_LOOPBACK as u32 != 0;
    match u64::from(cmd) {
        libc::SIOCGIFINDEX => data[..4].copy_from_slice(&l.index.to_ne_bytes()),
        libc::SIOCGIFNAME => {
            let n = l.name.len().min(IFNAMSIZ - 1);
            req[..IFNAMSIZ].fill(0);
            req[..n].copy_from_slice(&l.name.as_bytes()[..n]);
        }
        // The `short` flags: IFF_LOWER_UP and above do not fit.
        libc::SIOCGIFFLAGS => data[..2].copy_from_slice(&(l.flags as u16).to_ne_bytes()),
        libc::SIOCGIFMTU => data[..4].copy_from_slice(&l.mtu.to_ne_bytes()),
        libc::SIOCGIFTXQLEN => data[..4].copy_from_slice(&1000i32.to_ne_bytes()),
        libc::SIOCGIFHWADDR => {
            let ty: u16 = if loopback { 772 } else { 1 };
            data[..2].copy_from_slice(&ty.to_ne_bytes());
            data[2..8].copy_from_slice(&l.mac);
            data[8..16].fill(0);
        }
        c => {
            let (ip, prefix) = v4.ok_or(Errno::EADDRNOTAVAIL)?;
            let a = match c {
                libc::SIOCGIFADDR => ip,
                libc::SIOCGIFNETMASK => {
                    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
                }
                // Loopback's address has no broadcast address.
                _ if loopback => Ipv4Addr::UNSPECIFIED,
                _ => broadcast_of(ip, prefix),
            };
            data[..16].copy_from_slice(&sockaddr_in(a));
        }
    }
    mm.write_obj(at, &req)?;
    Ok(0)
}

/// A `sockaddr_nl`.
fn sockaddr_nl(port: u32, groups: u32) -> Vec<u8> {
    let mut v = (libc::AF_NETLINK as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(&[0; 2]);
    v.extend_from_slice(&port.to_ne_bytes());
    v.extend_from_slice(&groups.to_ne_bytes());
    v
}

/// A parsed `sockaddr_nl`: (port id, groups).
///
/// # Errors
/// EINVAL when short or of another family.
fn parse_sockaddr(addr: &[u8]) -> Result<(u32, u32), Errno> {
    if addr.len() < SOCKADDR_NL_LEN {
        return Err(Errno::EINVAL);
    }
    if i32::from(u16::from_ne_bytes([addr[0], addr[1]])) != libc::AF_NETLINK {
        return Err(Errno::EINVAL);
    }
    let word = |i: usize| u32::from_ne_bytes(addr[i..i + 4].try_into().expect("4 bytes"));
    Ok((word(4), word(8)))
}

/// The socket types `socket(2)` accepts for AF_NETLINK.
///
/// # Errors
/// ESOCKTNOSUPPORT for stream and seqpacket sockets, EPROTONOSUPPORT for protocols other
/// than NETLINK_ROUTE, NETLINK_NETFILTER and NETLINK_KOBJECT_UEVENT.
pub fn check_type(ty: i32, protocol: i32) -> Result<(), Errno> {
    if ty != libc::SOCK_RAW && ty != libc::SOCK_DGRAM {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    if ![NETLINK_ROUTE, NETLINK_NETFILTER, NETLINK_KOBJECT_UEVENT].contains(&protocol) {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

/// Mutable state of a socket.
#[derive(Debug)]
struct Inner {
    /// The bound port id (None: unbound; getsockname says 0).
    port: Option<u32>,
    /// Multicast groups (bitmask) asked for at bind.
    groups: u32,
    /// Reply datagrams not yet read.
    rx: VecDeque<Vec<u8>>,
    rx_bytes: usize,
    sndbuf: usize,
    rcvbuf: usize,
    passcred: bool,
    cap_ack: bool,
    /// A socket filter is attached (uevent sockets only: nothing ever reaches them).
    filter: bool,
    /// Other options, recorded as set.
    options: HashMap<(i32, i32), Vec<u8>>,
}

/// An AF_NETLINK NETLINK_ROUTE socket file.
pub struct NetlinkSocket {
    ty: i32,
    protocol: i32,
    ino: u64,
    /// The configured links and routes (loopback first), without the TUN/TAP links.
    view: View,
    /// The namespace's TUN/TAP links, which change.
    tun: Arc<super::tun::Devices>,
    /// The loopback's addresses, which change on the sentry's stack (`None` on the host's).
    lo: Option<Arc<LoopbackAddrs>>,
    ports: Arc<Ports>,
    /// The user namespace owning the socket's network namespace: requests that need
    /// CAP_NET_ADMIN need it there (Linux's `netlink_net_capable`).
    owner: Arc<UserNs>,
    state: Mutex<Inner>,
    queue: WaitQueue,
}

impl std::fmt::Debug for NetlinkSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkSocket")
            .field("ino", &self.ino)
            .field("port", &self.state.lock().unwrap().port)
            .finish_non_exhaustive()
    }
}

impl Drop for NetlinkSocket {
    fn drop(&mut self) {
        if let Some(port) = self.state.lock().unwrap().port {
            self.ports.release(self.protocol, port);
        }
    }
}

impl NetlinkSocket {
    /// A new unbound socket of type `ty` (SOCK_RAW or SOCK_DGRAM) and `protocol` (checked
    /// by [`check_type`]) answering from namespace `ns`.
    pub fn new(
        ns: &super::Namespace,
        owner: &Arc<UserNs>,
        ty: i32,
        protocol: i32,
    ) -> NetlinkSocket {
        NetlinkSocket {
            ty,
            protocol,
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            view: View::of(&ns.network, &super::tun::Devices::default(), None),
            tun: ns.tun.clone(),
            lo: ns.loopback_addrs().cloned(),
            ports: ns.netlink_ports.clone(),
            owner: owner.clone(),
            state: Mutex::new(Inner {
                port: None,
                groups: 0,
                rx: VecDeque::new(),
                rx_bytes: 0,
                sndbuf: DEFAULT_BUF,
                rcvbuf: DEFAULT_BUF,
                passcred: false,
                cap_ack: false,
                filter: false,
                options: HashMap::new(),
            }),
            queue: WaitQueue::new(),
        }
    }

    /// Binds to `port` (0: automatic) unless bound; rebinding to another port is EINVAL.
    fn bind_port(&self, st: &mut Inner, t: &dyn Context, port: u32) -> Result<u32, Errno> {
        if let Some(p) = st.port {
            return if port == 0 || port == p {
                Ok(p)
            } else {
                Err(Errno::EINVAL)
            };
        }
        let pid = t.vpid_of(t.tgid()) as u32;
        let p = self.ports.take(self.protocol, port, pid)?;
        st.port = Some(p);
        Ok(p)
    }
}

/// A reply to queue: the messages, each with its own netlink header.
type Reply = Vec<NetlinkMessage<RouteNetlinkMessage>>;

fn message(
    payload: NetlinkPayload<RouteNetlinkMessage>,
    flags: u16,
    seq: u32,
    port: u32,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    header.port_number = port;
    let mut m = NetlinkMessage::new(header, payload);
    m.finalize();
    m
}

fn bytes_of(m: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// Packs messages into datagrams of at most [`DUMP_DATAGRAM`] bytes (a larger message
/// travels alone).
fn pack(msgs: &[NetlinkMessage<RouteNetlinkMessage>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for m in msgs {
        let b = bytes_of(m);
        match out.last_mut() {
            Some(d) if d.len() + b.len() <= DUMP_DATAGRAM => d.extend_from_slice(&b),
            _ => out.push(b),
        }
    }
    out
}

/// The scope Linux gives an address: host for loopback ones, link for IPv6 link-local.
fn addr_scope(ip: IpAddr) -> AddressScope {
    match ip {
        IpAddr::V4(a) if a.is_loopback() => AddressScope::Host,
        IpAddr::V6(a) if a.is_loopback() => AddressScope::Host,
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => AddressScope::Link,
        _ => AddressScope::Universe,
    }
}

/// `ip` masked to its first `prefix` bits.
fn network_of(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// The IPv4 broadcast address of `a/prefix`.
fn broadcast_of(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(a) | host)
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

const V4_ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const V6_ANY: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Whether a dump asked for `family` includes addresses or routes of `ip`'s family
/// (AF_UNSPEC and families without their own table: all).
fn wanted(family: u8, ip: IpAddr) -> bool {
    match i32::from(family) {
        libc::AF_INET => ip.is_ipv4(),
        libc::AF_INET6 => ip.is_ipv6(),
        _ => true,
    }
}

fn link_message(l: &Link) -> LinkMessage {
    let loopback = l.flags & libc::IFF_LOOPBACK as u32 != 0;
    let running = l.flags & libc::IFF_RUNNING as u32 != 0;
    let mut m = LinkMessage::default();
    m.header.index = l.index as u32;
    let tun = super::tun::is_tun_link(l.flags);
    m.header.link_layer_type = if loopback {
        LinkLayerType::Loopback
    } else if tun {
        LinkLayerType::None
    } else {
        LinkLayerType::Ether
    };
    m.header.flags = LinkFlags::from_bits_retain(l.flags | if running { IFF_LOWER_UP } else { 0 });
    let broadcast = if loopback { [0; 6] } else { [0xff; 6] };
    // Linux's loopback reports an unknown operational state; others are up when running.
    let oper = match (loopback, running) {
        (true, _) => OperState::Unknown,
        (false, true) => OperState::Up,
        (false, false) => OperState::Down,
    };
    m.attributes = vec![
        LinkAttribute::IfName(l.name.clone()),
        LinkAttribute::TxQueueLen(1000),
        LinkAttribute::OperState(oper),
        LinkAttribute::Mode(LinkMode::Default),
        LinkAttribute::Mtu(l.mtu),
        LinkAttribute::Group(0),
        LinkAttribute::Qdisc("noqueue".into()),
        LinkAttribute::Carrier(u8::from(running)),
    ];
    // A TUN link has no hardware address.
    if !tun {
        m.attributes.push(LinkAttribute::Address(l.mac.to_vec()));
        m.attributes
            .push(LinkAttribute::Broadcast(broadcast.to_vec()));
    }
    m
}

/// Turns a link message into what Linux's IPv6 link dump sends (`inet6_fill_ifinfo`): the
/// name, hardware address, MTU and state (plus the queue length, which `ip` otherwise asks
/// for with an ioctl).
fn inet6_only(m: &mut LinkMessage) {
    m.header.interface_family = AddressFamily::Inet6;
    m.attributes.retain(|a| {
        matches!(
            a,
            LinkAttribute::IfName(_)
                | LinkAttribute::Address(_)
                | LinkAttribute::Mtu(_)
                | LinkAttribute::OperState(_)
                | LinkAttribute::TxQueueLen(_)
        )
    });
}

fn address_messages(l: &Link, family: u8) -> Vec<AddressMessage> {
    let loopback = l.flags & libc::IFF_LOOPBACK as u32 != 0;
    l.addrs
        .iter()
        .filter(|a| wanted(family, a.ip))
        .map(|a| {
            let mut m = AddressMessage::default();
            m.header.family = family_of(a.ip);
            m.header.prefix_len = a.prefix;
            m.header.flags = AddressHeaderFlags::Permanent;
            m.header.scope = addr_scope(a.ip);
            m.header.index = l.index as u32;
            let mut cache = CacheInfo::default();
            cache.ifa_preferred = FOREVER;
            cache.ifa_valid = FOREVER;
            m.attributes.push(AddressAttribute::Address(a.ip));
            if let IpAddr::V4(v4) = a.ip {
                m.attributes.push(AddressAttribute::Local(a.ip));
                if !loopback && a.prefix < 31 {
                    m.attributes
                        .push(AddressAttribute::Broadcast(broadcast_of(v4, a.prefix)));
                }
                m.attributes.push(AddressAttribute::Label(l.name.clone()));
            }
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Permanent));
            m.attributes.push(AddressAttribute::CacheInfo(cache));
            m
        })
        .collect()
}

/// One route as a message: `table`, `kind`, `scope`, `protocol`, and the attributes Linux
/// sends (IPv6 ones always carry a metric and a preference).
struct RouteSpec {
    dst: IpAddr,
    prefix: u8,
    table: u8,
    kind: RouteType,
    scope: RouteScope,
    protocol: RouteProtocol,
    gateway: Option<IpAddr>,
    src: Option<IpAddr>,
    link: i32,
    metric: u32,
}

impl RouteSpec {
    fn message(&self, flags: RouteFlags) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family_of(self.dst);
        m.header.destination_prefix_length = self.prefix;
        m.header.table = self.table;
        m.header.protocol = self.protocol;
        m.header.scope = self.scope;
        m.header.kind = self.kind;
        m.header.flags = flags;
        m.attributes
            .push(RouteAttribute::Table(u32::from(self.table)));
        let v6 = self.dst.is_ipv6();
        if v6 || self.metric != 0 {
            m.attributes.push(RouteAttribute::Priority(self.metric));
        }
        if self.prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(self.dst)));
        }
        if let Some(src) = self.src {
            m.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        if let Some(gw) = self.gateway {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        m.attributes.push(RouteAttribute::Oif(self.link as u32));
        if v6 {
            m.attributes
                .push(RouteAttribute::Preference(RoutePreference::Medium));
        }
        m
    }

    /// Whether `ip` falls in this route's destination.
    fn covers(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.dst.is_ipv4() && network_of(ip, self.prefix) == self.dst
    }
}

/// Every route of the namespace, main table first, then the `local` table Linux derives
/// from the addresses.
fn routes(view: &View) -> Vec<RouteSpec> {
    let mut main = Vec::new();
    let mut local = Vec::new();
    for l in &view.links {
        let loopback = l.flags & libc::IFF_LOOPBACK as u32 != 0;
        for a in &l.addrs {
            let max = if a.ip.is_ipv4() { 32 } else { 128 };
            let net = network_of(a.ip, a.prefix);
            local.push(RouteSpec {
                dst: a.ip,
                prefix: max,
                table: TABLE_LOCAL,
                kind: RouteType::Local,
                // Linux gives every IPv6 route the universe scope.
                scope: if a.ip.is_ipv4() {
                    RouteScope::Host
                } else {
                    RouteScope::Universe
                },
                protocol: RouteProtocol::Kernel,
                gateway: None,
                src: a.ip.is_ipv4().then_some(a.ip),
                link: l.index,
                metric: 0,
            });
            match a.ip {
                IpAddr::V4(v4) => {
                    if a.prefix < 32 && loopback {
                        local.push(RouteSpec {
                            dst: net,
                            prefix: a.prefix,
                            table: TABLE_LOCAL,
                            kind: RouteType::Local,
                            scope: RouteScope::Host,
                            protocol: RouteProtocol::Kernel,
                            gateway: None,
                            src: Some(a.ip),
                            link: l.index,
                            metric: 0,
                        });
                    } else if a.prefix < 32 && !configured(view, net, a.prefix, l.index) {
                        main.push(RouteSpec {
                            dst: net,
                            prefix: a.prefix,
                            table: RouteHeader::RT_TABLE_MAIN,
                            kind: RouteType::Unicast,
                            scope: RouteScope::Link,
                            protocol: RouteProtocol::Kernel,
                            gateway: None,
                            src: Some(a.ip),
                            link: l.index,
                            metric: 0,
                        });
                    }
                    if a.prefix < 31 {
                        local.push(RouteSpec {
                            dst: IpAddr::V4(broadcast_of(v4, a.prefix)),
                            prefix: 32,
                            table: TABLE_LOCAL,
                            kind: RouteType::Broadcast,
                            scope: RouteScope::Link,
                            protocol: RouteProtocol::Kernel,
                            gateway: None,
                            src: Some(a.ip),
                            link: l.index,
                            metric: 0,
                        });
                    }
                }
                IpAddr::V6(_) => {
                    if a.prefix < 128 && !configured(view, net, a.prefix, l.index) {
                        main.push(RouteSpec {
                            dst: net,
                            prefix: a.prefix,
                            table: RouteHeader::RT_TABLE_MAIN,
                            kind: RouteType::Unicast,
                            scope: RouteScope::Universe,
                            protocol: RouteProtocol::Kernel,
                            gateway: None,
                            src: None,
                            link: l.index,
                            metric: IP6_RT_PRIO_ADDRCONF,
                        });
                    }
                }
            }
        }
    }
    for r in &view.routes {
        // An on-link route to a link's own subnet is the kernel's prefix route.
        let own = view.links.iter().find(|l| {
            l.index == r.link
                && r.gateway.is_none()
                && l.addrs.iter().any(|a| {
                    a.prefix == r.prefix
                        && a.ip.is_ipv4() == r.dst.is_ipv4()
                        && network_of(a.ip, a.prefix) == r.dst
                })
        });
        let src = own.and_then(|l| {
            l.addrs
                .iter()
                .find(|a| a.ip.is_ipv4() && network_of(a.ip, a.prefix) == r.dst)
                .map(|a| a.ip)
        });
        main.push(RouteSpec {
            dst: r.dst,
            prefix: r.prefix,
            table: RouteHeader::RT_TABLE_MAIN,
            kind: RouteType::Unicast,
            scope: if r.gateway.is_none() && r.dst.is_ipv4() {
                RouteScope::Link
            } else {
                RouteScope::Universe
            },
            protocol: if own.is_some() {
                RouteProtocol::Kernel
            } else {
                RouteProtocol::Boot
            },
            gateway: r.gateway,
            src,
            link: r.link,
            metric: r.metric,
        });
    }
    // Linux walks an IPv4 table in key order, shorter prefixes first.
    let order = |r: &RouteSpec| {
        (
            r.dst.is_ipv6(),
            r.dst.is_ipv4().then_some((r.dst, r.prefix)),
        )
    };
    main.sort_by_key(order);
    local.sort_by_key(order);
    main.extend(local);
    main
}

/// Whether the configuration already holds the route to `net/prefix` on `link`.
fn configured(view: &View, net: IpAddr, prefix: u8, link: i32) -> bool {
    view.routes
        .iter()
        .any(|r| r.dst == net && r.prefix == prefix && r.link == link && r.gateway.is_none())
}

/// The route a packet to `ip` takes: the `local` table first, then the longest prefix.
fn lookup(view: &View, ip: IpAddr) -> Option<RouteSpec> {
    let all = routes(view);
    let best = |table: u8| {
        all.iter()
            .filter(|r| r.table == table && r.covers(ip))
            .max_by_key(|r| (r.prefix, std::cmp::Reverse(r.metric)))
    };
    let r = best(TABLE_LOCAL).or_else(|| best(RouteHeader::RT_TABLE_MAIN))?;
    Some(RouteSpec {
        dst: ip,
        prefix: if ip.is_ipv4() { 32 } else { 128 },
        src: r.src.or_else(|| source_for(view, r.link, ip)),
        gateway: r.gateway,
        table: r.table,
        kind: r.kind,
        scope: r.scope,
        protocol: r.protocol,
        link: r.link,
        metric: r.metric,
    })
}

/// The address a link would send from to reach `ip`.
fn source_for(view: &View, link: i32, ip: IpAddr) -> Option<IpAddr> {
    let l = view.links.iter().find(|l| l.index == link)?;
    l.addrs
        .iter()
        .find(|a| a.ip.is_ipv4() == ip.is_ipv4())
        .map(|a| a.ip)
}

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    net_admin: bool,
}

/// What a request asks for.
enum Answer {
    /// A dump: these entries, then NLMSG_DONE.
    Dump(Vec<RouteNetlinkMessage>),
    /// A single reply.
    One(RouteNetlinkMessage),
    /// Nothing beyond the acknowledgement.
    Nothing,
    /// Nothing, not even an acknowledgement.
    Silent,
}

/// RTM_NEWLINK or RTM_SETLINK on an existing link: its flags (IFF_UP) and, on a TAP link,
/// its hardware address change on the namespace's TUN/TAP links; on the others only a
/// request that changes nothing is accepted.
fn change_link(view: &View, tun: &super::tun::Devices, payload: &[u8]) -> Result<(), Errno> {
    let req = LinkMessage::parse(payload).map_err(|_| Errno::EINVAL)?;
    let name = req.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    });
    let l = match (req.header.index, name) {
        (0, None) => return Err(Errno::EINVAL),
        (0, Some(n)) => view.links.iter().find(|l| l.name == n),
        (i, _) => view.links.iter().find(|l| l.index as u32 == i),
    }
    .ok_or(Errno::ENODEV)?;
    let (flags, change) = (req.header.flags.bits(), req.header.change_mask.bits());
    let mac = req.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.clone()),
        _ => None,
    });
    let others = req.attributes.iter().any(|a| {
        !matches!(
            a,
            LinkAttribute::IfName(_) | LinkAttribute::Address(_) | LinkAttribute::Other(_)
        )
    });
    if let Some(r) = mac.as_ref().and_then(|m| tun.set_mac(l.index, m)) {
        r?;
    }
    match tun.change_flags(l.index, flags, change) {
        Some(r) => r?,
        None if change & (flags ^ l.flags) != 0 || mac.is_some_and(|m| m != l.mac) => {
            return Err(Errno::EOPNOTSUPP)
        }
        None => {}
    }
    if others {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(())
}

/// RTM_NEWADDR and RTM_DELADDR: addresses of the loopback (on the sentry's stack) and of
/// the namespace's TUN/TAP links change; the configured links' are fixed (EOPNOTSUPP).
fn change_addr(
    view: &View,
    tun: &super::tun::Devices,
    lo: Option<&LoopbackAddrs>,
    ty: u16,
    flags: u16,
    payload: &[u8],
) -> Result<(), Errno> {
    let req = AddressMessage::parse(payload).map_err(|_| Errno::EINVAL)?;
    let ip = req
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            req.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
        .ok_or(Errno::EINVAL)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if req.header.prefix_len > max || family_of(ip) != req.header.family {
        return Err(Errno::EINVAL);
    }
    let index = req.header.index as i32;
    if !view.links.iter().any(|l| l.index == index) {
        return Err(Errno::ENODEV);
    }
    let a = config::Addr {
        ip,
        prefix: req.header.prefix_len,
    };
    if let (LOOPBACK_INDEX, Some(lo)) = (index, lo) {
        return if ty == RTM_NEWADDR {
            lo.add(a, flags & NLM_F_EXCL != 0, flags & NLM_F_REPLACE != 0)
        } else {
            lo.del(ip)
        };
    }
    let r = if ty == RTM_NEWADDR {
        tun.add_addr(index, a, flags & NLM_F_EXCL != 0)
    } else {
        tun.del_addr(index, ip)
    };
    r.unwrap_or(Err(Errno::EOPNOTSUPP))
}

/// Answers one rtnetlink request of `ty` with `payload` (after the netlink header).
fn answer(
    view: &View,
    tun: &super::tun::Devices,
    lo: Option<&LoopbackAddrs>,
    ty: u16,
    flags: u16,
    payload: &[u8],
    caller: Caller,
) -> Result<Answer, Errno> {
    // Linux ignores requests without even the one-byte family.
    let Some(&family) = payload.first() else {
        return Ok(Answer::Nothing);
    };
    if ty > RTM_MAX {
        return Err(Errno::EOPNOTSUPP);
    }
    if ty & 3 != KIND_GET && !caller.net_admin {
        return Err(Errno::EPERM);
    }
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    // A dump reads only the family byte (glibc still sends a bare `rtgenmsg`); a single
    // request is parsed whole.
    match (ty, dump) {
        (RTM_NEWLINK | RTM_SETLINK, _) => change_link(view, tun, payload).map(|()| Answer::Nothing),
        (RTM_NEWADDR | RTM_DELADDR, _) => {
            change_addr(view, tun, lo, ty, flags, payload).map(|()| Answer::Nothing)
        }
        (RTM_GETLINK, true) => Ok(Answer::Dump(
            view.links
                .iter()
                .map(|l| {
                    let mut m = link_message(l);
                    if i32::from(family) == libc::AF_INET6 {
                        inet6_only(&mut m);
                    }
                    RouteNetlinkMessage::NewLink(m)
                })
                .collect(),
        )),
        (RTM_GETLINK, false) => {
            let req = LinkMessage::parse(payload).map_err(|_| Errno::EINVAL)?;
            let name = req.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            let found = match (req.header.index, name) {
                (0, None) => return Err(Errno::EINVAL),
                (0, Some(n)) => view.links.iter().find(|l| l.name == n),
                (i, _) => view.links.iter().find(|l| l.index as u32 == i),
            };
            let l = found.ok_or(Errno::ENODEV)?;
            Ok(Answer::One(RouteNetlinkMessage::NewLink(link_message(l))))
        }
        (RTM_GETADDR, true) => {
            // Linux dumps family by family (AF_INET before AF_INET6), link by link.
            let mut out = Vec::new();
            for f in [libc::AF_INET, libc::AF_INET6] {
                if wanted(family, if f == libc::AF_INET { V4_ANY } else { V6_ANY }) {
                    for l in &view.links {
                        out.extend(
                            address_messages(l, f as u8)
                                .into_iter()
                                .map(RouteNetlinkMessage::NewAddress),
                        );
                    }
                }
            }
            Ok(Answer::Dump(out))
        }
        (RTM_GETROUTE, true) => {
            let mut all = routes(view);
            // Family by family, as Linux's dump of every family.
            all.sort_by_key(|r| r.dst.is_ipv6());
            Ok(Answer::Dump(
                all.iter()
                    .filter(|r| wanted(family, r.dst))
                    .map(|r| RouteNetlinkMessage::NewRoute(r.message(RouteFlags::empty())))
                    .collect(),
            ))
        }
        (RTM_GETROUTE, false) => {
            let req = RouteMessage::parse(payload).map_err(|_| Errno::EINVAL)?;
            let dst = req.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                _ => None,
            });
            let dst = dst.ok_or(Errno::EINVAL)?;
            let mut r = lookup(view, dst).ok_or(Errno::ENETUNREACH)?;
            let mut flags = RouteFlags::Cloned;
            if r.kind == RouteType::Local {
                flags |= RouteFlags::from_bits_retain(RTCF_LOCAL);
            }
            // A lookup answers from the main table's point of view, for the caller.
            r.table = RouteHeader::RT_TABLE_MAIN;
            let mut m = r.message(flags);
            m.attributes.push(RouteAttribute::Uid(caller.uid));
            Ok(Answer::One(RouteNetlinkMessage::NewRoute(m)))
        }
        _ => Err(Errno::EOPNOTSUPP),
    }
}

/// The NLMSG_ERROR for `request` (whole, or only its header when `cap` or an ack).
fn error_message(
    request: &[u8],
    code: i32,
    cap: bool,
    seq: u32,
    port: u32,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut e = ErrorMessage::default();
    e.code = std::num::NonZeroI32::new(code);
    let capped = code == 0 || cap;
    e.header = if capped {
        request[..16].to_vec()
    } else {
        request.to_vec()
    };
    message(
        NetlinkPayload::Error(e),
        if capped { NLM_F_CAPPED } else { 0 },
        seq,
        port,
    )
}

/// Processes every NETLINK_ROUTE request in `buf`; returns the datagrams to queue.
fn process_route(
    configured: &View,
    tun: &super::tun::Devices,
    lo: Option<&LoopbackAddrs>,
    buf: &[u8],
    port: u32,
    caller: Caller,
    cap_ack: bool,
) -> Vec<Vec<u8>> {
    process(buf, port, cap_ack, |ty, flags, payload| {
        // The loopback's addresses and the TUN/TAP links as they are now (an earlier
        // request may have changed them).
        let mut view = configured.clone();
        if let Some(lo) = lo {
            view.links[0] = lo.link();
        }
        view.links.extend(tun.links());
        answer(&view, tun, lo, ty, flags, payload, caller)
    })
}

/// nfnetlink's batch markers (`NFNL_MSG_BATCH_BEGIN`, `NFNL_MSG_BATCH_END`).
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// The nftables subsystem of nfnetlink (`NFNL_SUBSYS_NFTABLES`).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// nftables messages (`enum nf_tables_msg_types`) that read or flush an empty ruleset.
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_GETOBJ: u16 = 19;
const NFT_MSG_GETFLOWTABLE: u16 = 23;
/// `NFTA_TABLE_NAME` and `NFTA_TABLE_HANDLE`: a delete naming one table.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_HANDLE: u16 = 4;
/// `NFPROTO_UNSPEC`: an nftables request for every family.
const NFPROTO_UNSPEC: u8 = 0;
/// Size of `struct nfgenmsg`, which opens every nfnetlink payload.
const NFGENMSG_LEN: usize = 4;

/// Whether an nftables attribute stream (after the `nfgenmsg`) holds attribute `kind`.
fn has_attr(mut attrs: &[u8], kind: u16) -> bool {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return false;
        }
        if ty == kind {
            return true;
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    false
}

/// Processes every NETLINK_NETFILTER request in `buf`; returns the datagrams to queue.
///
/// The sandbox's nftables ruleset is always empty: nothing can be added to it (the stack
/// runs the legacy iptables tables of [`super::netfilter`], not nftables), so a dump of
/// tables, chains, rules, sets, objects or flowtables lists nothing, a get of a table or a
/// delete of one family's table by name or handle is ENOENT, and a delete of every table
/// (the flush `nft flush ruleset` sends: no name, or no family) succeeds with nothing to
/// remove. A send needs CAP_NET_ADMIN (EPERM, once), and a
/// change is accepted only inside a batch (EINVAL outside, as Linux). Batch markers are not
/// acknowledged (Linux before 6.10, as the sandbox's kernel version says). Anything that
/// would create state, and the other nfnetlink subsystems, are EOPNOTSUPP.
fn process_netfilter(buf: &[u8], port: u32, caller: Caller, cap_ack: bool) -> Vec<Vec<u8>> {
    let mut in_batch = false;
    let mut denied = false;
    process(buf, port, cap_ack, |ty, flags, payload| {
        // Linux refuses the whole send at its first message.
        if denied {
            return Ok(Answer::Silent);
        }
        if !caller.net_admin {
            denied = true;
            return Err(Errno::EPERM);
        }
        match ty {
            NFNL_MSG_BATCH_BEGIN => {
                in_batch = true;
                return Ok(Answer::Silent);
            }
            NFNL_MSG_BATCH_END => {
                in_batch = false;
                return Ok(Answer::Silent);
            }
            _ => {}
        }
        if ty >> 8 != NFNL_SUBSYS_NFTABLES || payload.len() < NFGENMSG_LEN {
            return Err(if ty >> 8 != NFNL_SUBSYS_NFTABLES {
                Errno::EOPNOTSUPP
            } else {
                Errno::EINVAL
            });
        }
        let attrs = &payload[NFGENMSG_LEN..];
        match ty & 0xff {
            NFT_MSG_GETTABLE | NFT_MSG_GETCHAIN | NFT_MSG_GETRULE | NFT_MSG_GETSET
            | NFT_MSG_GETOBJ | NFT_MSG_GETFLOWTABLE => {
                if flags & NLM_F_DUMP != 0 {
                    Ok(Answer::Dump(Vec::new()))
                } else {
                    Err(Errno::ENOENT)
                }
            }
            NFT_MSG_DELTABLE if !in_batch => Err(Errno::EINVAL),
            // One family's table by name or handle: there is none.
            NFT_MSG_DELTABLE
                if payload[0] != NFPROTO_UNSPEC
                    && (has_attr(attrs, NFTA_TABLE_NAME) || has_attr(attrs, NFTA_TABLE_HANDLE)) =>
            {
                Err(Errno::ENOENT)
            }
            // A flush (every family, or every table of one): nothing to remove.
            NFT_MSG_DELTABLE => Ok(Answer::Nothing),
            _ => Err(Errno::EOPNOTSUPP),
        }
    })
}

/// Processes every request in `buf` with `answer` (given each request's type, flags and
/// payload); returns the datagrams to queue.
fn process(
    buf: &[u8],
    port: u32,
    cap_ack: bool,
    mut answer: impl FnMut(u16, u16, &[u8]) -> Result<Answer, Errno>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let Ok(nl) = NetlinkBuffer::new_checked(rest) {
        let len = nl.length() as usize;
        let request = &rest[..len];
        let (ty, flags, seq) = (nl.message_type(), nl.flags(), nl.sequence_number());
        let ack = flags & NLM_F_ACK != 0;
        let result = if flags & NLM_F_REQUEST == 0 || ty < NLMSG_MIN_TYPE {
            Ok(Answer::Nothing)
        } else {
            answer(ty, flags, nl.payload())
        };
        match result {
            Ok(Answer::Silent) => {}
            Ok(Answer::Dump(entries)) => {
                let msgs: Reply = entries
                    .into_iter()
                    .map(|m| message(NetlinkPayload::InnerMessage(m), NLM_F_MULTIPART, seq, port))
                    .collect();
                out.extend(pack(&msgs));
                out.push(bytes_of(&message(
                    NetlinkPayload::Done(DoneMessage::default()),
                    NLM_F_MULTIPART,
                    seq,
                    port,
                )));
            }
            Ok(Answer::One(m)) => {
                out.push(bytes_of(&message(
                    NetlinkPayload::InnerMessage(m),
                    0,
                    seq,
                    port,
                )));
                if ack {
                    out.push(bytes_of(&error_message(request, 0, cap_ack, seq, port)));
                }
            }
            Ok(Answer::Nothing) => {
                if ack {
                    out.push(bytes_of(&error_message(request, 0, cap_ack, seq, port)));
                }
            }
            Err(e) => out.push(bytes_of(&error_message(
                request,
                -(e as i32),
                cap_ack,
                seq,
                port,
            ))),
        }
        let next = (len + 3) & !3;
        if next >= rest.len() {
            break;
        }
        rest = &rest[next..];
    }
    out
}

fn int(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn int_of(value: &[u8]) -> Result<i32, Errno> {
    Ok(i32::from_ne_bytes(
        value
            .get(..4)
            .ok_or(Errno::EINVAL)?
            .try_into()
            .expect("4 bytes"),
    ))
}

impl Socket for NetlinkSocket {
    fn bind(&self, t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        let (port, groups) = parse_sockaddr(addr)?;
        let mut st = self.state.lock().unwrap();
        self.bind_port(&mut st, t, port)?;
        st.groups = groups;
        Ok(())
    }

    fn connect(&self, t: &mut dyn Context, addr: &[u8], _nonblocking: bool) -> Result<(), Errno> {
        let (port, _) = parse_sockaddr(addr)?;
        // Only the kernel (port 0) is a peer: user ports would need NL_CFG_F_NONROOT_SEND.
        if port != 0 {
            return Err(Errno::EPERM);
        }
        let mut st = self.state.lock().unwrap();
        self.bind_port(&mut st, t, 0).map(drop)
    }

    fn send(
        &self,
        t: &mut dyn Context,
        mut msg: OutMessage,
        src: &mut dyn IoSrc,
        _flags: IoFlags,
    ) -> Result<usize, Errno> {
        msg.data = super::gather(src)?;
        if let Some(to) = &msg.to {
            let (port, groups) = parse_sockaddr(to)?;
            if port != 0 || groups != 0 {
                return Err(Errno::EPERM);
            }
        }
        let creds = t.creds();
        let caller = Caller {
            uid: creds.euid,
            net_admin: creds.has_cap_in(&self.owner, CAP_NET_ADMIN),
        };
        let replies = {
            let mut st = self.state.lock().unwrap();
            if msg.data.len() > st.sndbuf {
                return Err(Errno::EMSGSIZE);
            }
            let port = self.bind_port(&mut st, t, 0)?;
            let replies = match self.protocol {
                NETLINK_ROUTE => process_route(
                    &self.view,
                    &self.tun,
                    self.lo.as_deref(),
                    &msg.data,
                    port,
                    caller,
                    st.cap_ack,
                ),
                NETLINK_NETFILTER => process_netfilter(&msg.data, port, caller, st.cap_ack),
                _ => Vec::new(),
            };
            let mut queued = false;
            for r in replies {
                // A full receive buffer drops replies, as Linux.
                if st.rx_bytes + r.len() > st.rcvbuf.max(DUMP_DATAGRAM) {
                    break;
                }
                st.rx_bytes += r.len();
                st.rx.push_back(r);
                queued = true;
            }
            queued
        };
        if replies {
            self.queue.notify_all();
        }
        Ok(msg.data.len())
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        Ok(self.state.lock().unwrap().rx.front().map_or(0, Vec::len))
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
        let st = self.state.lock().unwrap();
        sockaddr_nl(st.port.unwrap_or(0), st.groups)
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        Ok(sockaddr_nl(0, 0))
    }

    fn shutdown(&self, _how: i32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        let st = self.state.lock().unwrap();
        Ok(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => int(self.ty),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(libc::AF_NETLINK),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(self.protocol),
            (libc::SOL_SOCKET, libc::SO_ERROR) => int(0),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(st.sndbuf as i32),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(st.rcvbuf as i32),
            (libc::SOL_SOCKET, libc::SO_PASSCRED) => int(i32::from(st.passcred)),
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => st
                .options
                .get(&(level, name))
                .cloned()
                .unwrap_or(vec![0; 16]),
            (SOL_NETLINK, NETLINK_CAP_ACK) => int(i32::from(st.cap_ack)),
            (libc::SOL_SOCKET | SOL_NETLINK, _) => st
                .options
                .get(&(level, name))
                .cloned()
                .ok_or(Errno::ENOPROTOOPT)?,
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        if level != libc::SOL_SOCKET && level != SOL_NETLINK {
            return Err(Errno::ENOPROTOOPT);
        }
        let mut st = self.state.lock().unwrap();
        match (level, name) {
            // Linux doubles the value for bookkeeping overhead, with a floor.
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                st.sndbuf = (int_of(value)?.max(0) as usize * 2).max(4608);
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                st.rcvbuf = (int_of(value)?.max(0) as usize * 2).max(2304);
            }
            (libc::SOL_SOCKET, libc::SO_PASSCRED) => st.passcred = int_of(value)? != 0,
            (
                libc::SOL_SOCKET,
                libc::SO_TYPE | libc::SO_PROTOCOL | libc::SO_DOMAIN | libc::SO_ERROR,
            ) => return Err(Errno::ENOPROTOOPT),
            (SOL_NETLINK, NETLINK_CAP_ACK) => st.cap_ack = int_of(value)? != 0,
            // A filter on replies the sentry does not run would drop nothing it should: only
            // uevent sockets, which never receive, take one (as gVisor).
            (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER) if self.protocol != NETLINK_ROUTE => {
                st.filter = true;
            }
            (libc::SOL_SOCKET, libc::SO_DETACH_FILTER) if self.protocol != NETLINK_ROUTE => {
                if !std::mem::take(&mut st.filter) {
                    return Err(Errno::ENOENT);
                }
            }
            (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER | libc::SO_DETACH_FILTER) => {
                return Err(Errno::ENOPROTOOPT)
            }
            _ => {
                if value.is_empty() {
                    return Err(Errno::EINVAL);
                }
                st.options.insert((level, name), value.to_vec());
            }
        }
        Ok(())
    }
}

impl NetlinkSocket {
    /// One receive of at most `len` bytes, staged in the message.
    fn recv_staged(
        &self,
        t: &mut dyn Context,
        len: usize,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        t.block_on(&[&self.queue], None, || {
            let mut st = self.state.lock().unwrap();
            let passcred = st.passcred;
            let d = if flags.peek {
                st.rx.front().cloned()
            } else {
                let d = st.rx.pop_front();
                if let Some(d) = &d {
                    st.rx_bytes -= d.len();
                }
                d
            };
            match d {
                Some(d) => Some(Ok(InMessage {
                    full_len: d.len(),
                    data: d[..len.min(d.len())].to_vec(),
                    from: Some(sockaddr_nl(0, 0)),
                    fds: Vec::new(),
                    control: Vec::new(),
                    len: 0,
                    // Replies come from the kernel: PID 0, root.
                    creds: passcred.then_some(Ucred {
                        pid: 0,
                        uid: 0,
                        gid: 0,
                    }),
                })),
                None if flags.nonblocking => Some(Err(Errno::EAGAIN)),
                None => None,
            }
        })
    }
}

/// What a checkpoint keeps of a netlink socket (`kernel::checkpoint`): type, protocol,
/// port id and groups, the replies not read yet (the restored namespace answers from its
/// own configuration afterwards) and options.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NetlinkImage {
    pub ty: i32,
    pub protocol: i32,
    pub port: Option<u32>,
    pub groups: u32,
    pub rx: Vec<Vec<u8>>,
    pub sndbuf: usize,
    pub rcvbuf: usize,
    pub passcred: bool,
    pub cap_ack: bool,
    pub filter: bool,
    /// Options recorded only: (level, name, value).
    pub options: Vec<(i32, i32, Vec<u8>)>,
}

impl NetlinkSocket {
    /// Whether the socket lives in network namespace `ns` (binds its port ids there).
    pub fn in_namespace(&self, ns: &super::Namespace) -> bool {
        Arc::ptr_eq(&self.ports, &ns.netlink_ports)
    }

    /// This socket for a checkpoint.
    pub fn saved(&self) -> NetlinkImage {
        let st = self.state.lock().unwrap();
        NetlinkImage {
            ty: self.ty,
            protocol: self.protocol,
            port: st.port,
            groups: st.groups,
            rx: st.rx.iter().cloned().collect(),
            sndbuf: st.sndbuf,
            rcvbuf: st.rcvbuf,
            passcred: st.passcred,
            cap_ack: st.cap_ack,
            filter: st.filter,
            options: st
                .options
                .iter()
                .map(|(&(level, name), v)| (level, name, v.clone()))
                .collect(),
        }
    }

    /// A socket as [`NetlinkSocket::saved`] described it in namespace `ns`, its port id
    /// taken again there.
    ///
    /// # Errors
    /// The type or protocol is not one this build makes, or the port id is taken.
    pub fn restored(
        ns: &super::Namespace,
        owner: &Arc<UserNs>,
        image: &NetlinkImage,
    ) -> Result<NetlinkSocket, String> {
        check_type(image.ty, image.protocol)
            .map_err(|e| format!("type {} protocol {} ({e:?})", image.ty, image.protocol))?;
        let ports = &ns.netlink_ports;
        let sock = NetlinkSocket::new(ns, owner, image.ty, image.protocol);
        if let Some(port) = image.port {
            ports
                .take(image.protocol, port, 0)
                .map_err(|e| format!("port id {port} ({e:?})"))?;
        }
        let mut st = sock.state.lock().unwrap();
        st.port = image.port;
        st.groups = image.groups;
        st.rx_bytes = image.rx.iter().map(Vec::len).sum();
        st.rx = image.rx.iter().cloned().collect();
        st.sndbuf = image.sndbuf;
        st.rcvbuf = image.rcvbuf;
        st.passcred = image.passcred;
        st.cap_ack = image.cap_ack;
        st.filter = image.filter;
        st.options = image
            .options
            .iter()
            .map(|(level, name, v)| ((*level, *name), v.clone()))
            .collect();
        drop(st);
        Ok(sock)
    }
}

impl FileOps for NetlinkSocket {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::socket::stat(self.ino))
    }

    fn readiness(&self) -> u32 {
        let mut r = libc::POLLOUT | libc::POLLWRNORM;
        if !self.state.lock().unwrap().rx.is_empty() {
            r |= libc::POLLIN | libc::POLLRDNORM;
        }
        r as u32
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Caller = Caller {
        uid: 0,
        net_admin: true,
    };

    fn request(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len() as u32;
        let mut v = len.to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(body);
        v
    }

    /// The (type, flags) of every message in `datagrams`, and the error codes.
    fn kinds(datagrams: &[Vec<u8>]) -> Vec<(u16, i32)> {
        let mut out = Vec::new();
        for d in datagrams {
            let mut rest = &d[..];
            while let Ok(nl) = NetlinkBuffer::new_checked(rest) {
                let code = if nl.message_type() == 2 {
                    i32::from_ne_bytes(nl.payload()[..4].try_into().unwrap())
                } else {
                    0
                };
                out.push((nl.message_type(), code));
                let len = (nl.length() as usize + 3) & !3;
                if len >= rest.len() {
                    break;
                }
                rest = &rest[len..];
            }
        }
        out
    }

    static NO_TUN: std::sync::LazyLock<super::super::tun::Devices> =
        std::sync::LazyLock::new(super::super::tun::Devices::default);

    fn loopback_view() -> View {
        View::of(&Network::Loopback, &NO_TUN, None)
    }

    #[test]
    fn link_dump_ends_with_done_alone() {
        let d = process_route(
            &loopback_view(),
            &NO_TUN,
            None,
            &request(RTM_GETLINK, NLM_F_DUMP, &[0; 16]),
            42,
            ROOT,
            false,
        );
        assert_eq!(d.len(), 2, "entries, then NLMSG_DONE in its own datagram");
        assert_eq!(kinds(&d), vec![(16, 0), (3, 0)]);
    }

    #[test]
    fn link_by_name_and_missing_link() {
        let mut body = vec![0; 16];
        body.extend_from_slice(&[7, 0, 3, 0, b'l', b'o', 0, 0]);
        let d = process_route(
            &loopback_view(),
            &NO_TUN,
            None,
            &request(RTM_GETLINK, 0, &body),
            1,
            ROOT,
            false,
        );
        assert_eq!(kinds(&d), vec![(16, 0)]);
        let mut body = vec![0; 16];
        body[4] = 9;
        let d = process_route(
            &loopback_view(),
            &NO_TUN,
            None,
            &request(RTM_GETLINK, 0, &body),
            1,
            ROOT,
            false,
        );
        assert_eq!(kinds(&d), vec![(2, -(Errno::ENODEV as i32))]);
    }

    /// An RTM_NEWADDR body: `ip`/24 on link `index`.
    fn new_addr(index: u32, ip: [u8; 4]) -> Vec<u8> {
        let mut body = vec![libc::AF_INET as u8, 24, 0, 0];
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&[8, 0, 2, 0]);
        body.extend_from_slice(&ip);
        body
    }

    #[test]
    fn changes_need_net_admin_and_only_tun_links_change() {
        let body = new_addr(1, [10, 0, 0, 1]);
        let user = Caller {
            uid: 1000,
            net_admin: false,
        };
        let d = process_route(
            &loopback_view(),
            &NO_TUN,
            None,
            &request(20, 0, &body),
            1,
            user,
            false,
        );
        assert_eq!(kinds(&d), vec![(2, -(Errno::EPERM as i32))]);
        let d = process_route(
            &loopback_view(),
            &NO_TUN,
            None,
            &request(20, 0, &body),
            1,
            ROOT,
            false,
        );
        assert_eq!(kinds(&d), vec![(2, -(Errno::EOPNOTSUPP as i32))]);
    }

    #[test]
    fn loopback_addresses_change_on_the_sentrys_stack() {
        let lo = LoopbackAddrs::default();
        let body = new_addr(1, [192, 0, 2, 1]);
        let send = |ty: u16, flags: u16| {
            kinds(&process_route(
                &loopback_view(),
                &NO_TUN,
                Some(&lo),
                &request(ty, flags | NLM_F_ACK, &body),
                1,
                ROOT,
                false,
            ))
        };
        assert_eq!(send(RTM_NEWADDR, NLM_F_EXCL), vec![(2, 0)]);
        assert!(lo.get().contains(&config::Addr {
            ip: IpAddr::from([192, 0, 2, 1]),
            prefix: 24
        }));
        assert_eq!(
            send(RTM_NEWADDR, NLM_F_EXCL),
            vec![(2, -(Errno::EEXIST as i32))]
        );
        assert_eq!(send(RTM_NEWADDR, 0), vec![(2, -(Errno::EEXIST as i32))]);
        assert_eq!(send(RTM_NEWADDR, NLM_F_REPLACE), vec![(2, 0)]);
        assert_eq!(send(RTM_DELADDR, 0), vec![(2, 0)]);
        assert_eq!(
            send(RTM_DELADDR, 0),
            vec![(2, -(Errno::EADDRNOTAVAIL as i32))]
        );
        assert_eq!(lo.get(), config::loopback().addrs);
    }

    #[test]
    fn a_tun_link_takes_addresses_and_comes_up() {
        let tun = super::super::tun::Devices::default();
        let q = Arc::new(WaitQueue::new());
        let (index, _) = tun
            .attach(b"tun0", super::super::tun::IFF_TUN, &q, true)
            .unwrap();
        let body = new_addr(index as u32, [10, 0, 0, 1]);
        let d = process_route(
            &loopback_view(),
            &tun,
            None,
            &request(20, NLM_F_ACK, &body),
            1,
            ROOT,
            false,
        );
        assert_eq!(kinds(&d), vec![(2, 0)]);
        assert_eq!(tun.links()[0].addrs[0].ip, IpAddr::from([10, 0, 0, 1]));
        let d = process_route(
            &loopback_view(),
            &tun,
            None,
            &request(20, NLM_F_EXCL, &body),
            1,
            ROOT,
            false,
        );
        assert_eq!(kinds(&d), vec![(2, -(Errno::EEXIST as i32))]);
        // ifinfomsg: family, pad, type, index, flags IFF_UP, change IFF_UP.
        let mut link = vec![0u8, 0, 0, 0];
        link.extend_from_slice(&(index as u32).to_ne_bytes());
        link.extend_from_slice(&1u32.to_ne_bytes());
        link.extend_from_slice(&1u32.to_ne_bytes());
        let d = process_route(
            &loopback_view(),
            &tun,
            None,
            &request(16, NLM_F_ACK, &link),
            1,
            ROOT,
            false,
        );
        assert_eq!(kinds(&d), vec![(2, 0)]);
        assert!(tun.links()[0].flags & libc::IFF_UP as u32 != 0);
    }

    #[test]
    fn loopback_routes_are_the_local_table() {
        let r = routes(&loopback_view());
        assert!(r.iter().all(|r| r.table == TABLE_LOCAL));
        let dsts: Vec<String> = r
            .iter()
            .map(|r| format!("{}/{}", r.dst, r.prefix))
            .collect();
        assert_eq!(
            dsts,
            [
                "127.0.0.0/8",
                "127.0.0.1/32",
                "127.255.255.255/32",
                "::1/128"
            ]
        );
        let hit = lookup(&loopback_view(), "127.1.2.3".parse().unwrap()).unwrap();
        assert_eq!(hit.kind, RouteType::Local);
        assert!(lookup(&loopback_view(), "10.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn ports_prefer_the_pid_then_count_down() {
        let p = Ports::default();
        assert_eq!(p.take(NETLINK_ROUTE, 0, 100), Ok(100));
        assert_eq!(p.take(NETLINK_ROUTE, 0, 100), Ok(-4097i32 as u32));
        assert_eq!(p.take(NETLINK_KOBJECT_UEVENT, 0, 100), Ok(100));
        assert_eq!(p.take(NETLINK_ROUTE, 100, 5), Err(Errno::EADDRINUSE));
        p.release(NETLINK_ROUTE, 100);
        assert_eq!(p.take(NETLINK_ROUTE, 100, 5), Ok(100));
    }
}
