//! What a network namespace is built from: its mode, and for the sentry's own stack the links,
//! addresses and routes boot read from the host namespace it was started in.
//!
//! Boot reads these facts from the host (over the host's NETLINK_ROUTE, before the seccomp
//! filter goes on) and opens one packet socket per link; the stack, the sandbox's
//! AF_NETLINK sockets and /proc/net only ever read the values here. Plain data: nothing here
//! makes a host system call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

/// The sandbox's index of its loopback link (as Linux, always 1).
pub const LOOPBACK_INDEX: i32 = 1;
/// The loopback link's MTU (Linux's default).
pub const LOOPBACK_MTU: u32 = 65_536;

/// An address on a link, with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub ip: IpAddr,
    pub prefix: u8,
}

/// A network link as the sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its name (kept from the host: `eth0`).
    pub name: String,
    /// Its index inside the sandbox ([`LOOPBACK_INDEX`] for `lo`, then 2, 3, ... in the
    /// order of [`NetConfig::links`]); never the host's.
    pub index: i32,
    /// Hardware address (all zero for loopback).
    pub mac: [u8; 6],
    pub mtu: u32,
    /// `IFF_*` flags (`IFF_UP | IFF_RUNNING | ...`).
    pub flags: u32,
    pub addrs: Vec<Addr>,
}

/// A route: packets for `dst/prefix` leave through link `link` (a sandbox index), to
/// `gateway` when set (on-link otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub link: i32,
    pub metric: u32,
}

/// Links and routes of a namespace, loopback excluded (every namespace has the same
/// loopback: [`loopback`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConfig {
    pub links: Vec<Link>,
    pub routes: Vec<Route>,
}

/// The network a kernel's namespace offers its applications.
#[derive(Debug, Default)]
pub enum Network {
    /// Loopback only (`--network none`): the sentry's stack with 127.0.0.1/8 and ::1.
    #[default]
    Loopback,
    /// The sentry's own stack on the links of the namespace the sandbox started in
    /// (`--network sandbox`): `config` as read from the host (whose addresses boot then
    /// removed from the host kernel, so only the sentry answers), and one AF_PACKET socket
    /// per link of `config.links`, in the same order.
    Sandbox {
        config: NetConfig,
        devices: Vec<OwnedFd>,
    },
    /// Host sockets held by the sentry (`--network host`, hostinet); `config` is the host
    /// namespace as boot read it, for the sandbox's netlink and /proc/net views.
    Host { config: NetConfig },
}

impl Network {
    /// The links and routes this network shows its applications, loopback excluded.
    pub fn config(&self) -> Option<&NetConfig> {
        match self {
            Network::Loopback => None,
            Network::Sandbox { config, .. } | Network::Host { config } => Some(config),
        }
    }
}

/// The loopback link every namespace has.
pub fn loopback() -> Link {
    Link {
        name: "lo".into(),
        index: LOOPBACK_INDEX,
        mac: [0; 6],
        mtu: LOOPBACK_MTU,
        flags: (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as u32,
        addrs: vec![
            Addr {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 8,
            },
            Addr {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ],
    }
}
