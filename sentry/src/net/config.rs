//! What a network namespace is built from: its mode, and for the sentry's own stack the links,
//! addresses and routes boot read from the host namespace it was started in.
//!
//! Boot reads these facts from the host (over the host's NETLINK_ROUTE, before the seccomp
//! filter goes on) and opens one packet socket per link; the stack, the sandbox's
//! AF_NETLINK sockets and /proc/net only ever read the values here, but for the loopback's
//! addresses ([`LoopbackAddrs`]), which root in the namespace changes. Nothing here makes a
//! host system call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::Errno;

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

/// The loopback link every namespace has, with the addresses it starts with.
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

/// The addresses of a namespace's loopback link, which root in it adds and removes
/// (RTM_NEWADDR, RTM_DELADDR: `ip addr add 192.0.2.1/24 dev lo`). As on Linux, an IPv4
/// address on the loopback makes its whole network local (the sentry's stack takes every
/// address of 127.0.0.1/8 as its own); an IPv6 one is just that address.
pub struct LoopbackAddrs {
    addrs: Mutex<Vec<Addr>>,
    /// Called after every change, with no lock of this type held (the stack re-reads them).
    on_change: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for LoopbackAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackAddrs")
            .field("addrs", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Default for LoopbackAddrs {
    fn default() -> LoopbackAddrs {
        LoopbackAddrs {
            addrs: Mutex::new(loopback().addrs),
            on_change: Mutex::new(None),
        }
    }
}

impl LoopbackAddrs {
    fn lock(&self) -> MutexGuard<'_, Vec<Addr>> {
        self.addrs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses now, in the order they were added.
    pub fn get(&self) -> Vec<Addr> {
        self.lock().clone()
    }

    /// The loopback link with its addresses now.
    pub fn link(&self) -> Link {
        Link {
            addrs: self.get(),
            ..loopback()
        }
    }

    /// Makes `f` run after every change (the namespace's stack, once it runs).
    pub fn on_change(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *self.on_change.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    fn changed(&self) {
        let f = self
            .on_change
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(f) = f {
            f();
        }
    }

    /// Adds `addr`.
    ///
    /// # Errors
    /// EEXIST when the address is there already and `excl` (NLM_F_EXCL) or not `replace`
    /// (NLM_F_REPLACE) was asked; a replaced one takes the new prefix length.
    pub fn add(&self, addr: Addr, excl: bool, replace: bool) -> Result<(), Errno> {
        {
            let mut addrs = self.lock();
            match addrs.iter_mut().find(|a| a.ip == addr.ip) {
                Some(_) if excl || !replace => return Err(Errno::EEXIST),
                Some(a) => a.prefix = addr.prefix,
                None => addrs.push(addr),
            }
        }
        self.changed();
        Ok(())
    }

    /// Removes `ip`.
    ///
    /// # Errors
    /// EADDRNOTAVAIL when the loopback does not have it.
    pub fn del(&self, ip: IpAddr) -> Result<(), Errno> {
        {
            let mut addrs = self.lock();
            let before = addrs.len();
            addrs.retain(|a| a.ip != ip);
            if addrs.len() == before {
                return Err(Errno::EADDRNOTAVAIL);
            }
        }
        self.changed();
        Ok(())
    }
}
