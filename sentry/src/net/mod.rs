//! Sockets: the [`Socket`] operations the socket system calls use, and the families the
//! sentry offers.
//!
//! AF_UNIX ([`unix`]), AF_PACKET ([`packet`], taps on the stack's device) and the internet
//! families over the sentry's own stack ([`stack`] on smoltcp, [`link`] its device) are
//! implemented entirely inside the sentry: no host socket is ever created for an
//! application. AF_INET and AF_INET6 TCP and UDP ([`inet`]) and ICMP
//! echo ([`icmp`]) run on the loopback (127.0.0.1, ::1) and, with `--network sandbox`, on
//! the pod's link through the packet socket boot opened; destinations without a route are
//! ENETUNREACH. AF_NETLINK NETLINK_ROUTE ([`netlink`]) answers from the namespace's
//! configuration and its TUN/TAP links ([`tun`], made by `/dev/net/tun` files), which a
//! loopback-only stack routes packets through.
//! In sandbox mode a TCP listener on the wildcard or a loopback address is also reachable at
//! the host kernel's 127.0.0.1 in the pod's namespace ([`forward`]: the sentry's own host
//! listener relays into the stack), which is what CRI PortForward dials.
//!
//! With `--network host` ([`config::Network::Host`]) AF_INET and AF_INET6 sockets are
//! instead host sockets the sentry holds ([`hostinet`]).
//!
//! The [`Socket`] operations and message types are declared in the vfs (a socket is a kind
//! of open file); this module implements them. Layer: above `vfs`, below `kernel`.
//!
//! Reads and writes of a socket file reach [`Socket::recv`] and [`Socket::send`] through the
//! vfs, with the caller's memory as the destination or source.

pub mod config;
pub mod forward;
pub mod hostinet;
pub mod icmp;
pub mod inet;
pub mod link;
pub mod mib;
pub mod multicast;
pub mod netfilter;
pub mod netlink;
pub mod packet;
pub mod raw;
pub mod stack;
pub mod tun;
pub mod udp;
pub mod unix;
mod unix_host;
pub use unix_host::{policy as host_uds_policy, set_policy as set_host_uds_policy, HostUds};

use std::sync::{Arc, OnceLock};

use crate::abi::Errno;
pub use crate::vfs::socket::{deliver, gather, InMessage, IoFlags, OutMessage, Socket, Ucred};
use crate::vfs::Context;

/// A network namespace: what the sockets of one kernel share (the AF_UNIX names, the
/// network it offers and its internet stack). The kernel owns one; nothing of it is
/// process-global, so two kernels in one process do not see each other's sockets.
#[derive(Default)]
pub struct Namespace {
    /// AF_UNIX socket names (abstract and filesystem).
    pub unix_names: Arc<unix::Names>,
    /// What boot gave this namespace ([`config::Network`]).
    pub network: config::Network,
    /// The TUN/TAP links made in this namespace ([`tun`]).
    pub tun: Arc<tun::Devices>,
    /// The netlink port ids bound.
    netlink_ports: Arc<netlink::Ports>,
    /// The loopback's addresses (changed over netlink; the stack follows them).
    loopback: Arc<config::LoopbackAddrs>,
    /// The internet stack (with its poller thread): on a link, started with the namespace;
    /// loopback-only, by the first internet socket.
    inet: OnceLock<Arc<stack::Stack>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("network", &self.network)
            .field("inet_started", &self.inet.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// A namespace offering `network`. On the pod's link (`Network::Sandbox`) the stack
    /// starts now, taking the packet sockets out of `network` (its `devices` are left
    /// empty), so that it answers ARP and pings before any socket exists.
    pub fn new(mut network: config::Network) -> Namespace {
        let inet = OnceLock::new();
        if let config::Network::Sandbox { config, devices } = &mut network {
            match stack::Stack::start_on_link(config, std::mem::take(devices)) {
                Ok(s) => drop(inet.set(s)),
                Err(e) => log::error!("netstack: cannot run on the link: {e}; loopback only"),
            }
        }
        let last = network
            .config()
            .and_then(|c| c.links.iter().map(|l| l.index).max())
            .unwrap_or(config::LOOPBACK_INDEX);
        let tun = Arc::new(tun::Devices::new(last));
        let loopback = Arc::<config::LoopbackAddrs>::default();
        if let Some(s) = inet.get() {
            s.attach(&tun, &loopback);
        }
        Namespace {
            network,
            inet,
            tun,
            loopback,
            ..Namespace::default()
        }
    }

    /// The internet stack, started on first use.
    pub fn inet(&self) -> &Arc<stack::Stack> {
        self.inet.get_or_init(|| {
            let s = stack::Stack::start();
            s.attach(&self.tun, &self.loopback);
            s
        })
    }

    /// The internet stack if it has started (what a checkpoint saves of it, without
    /// starting one).
    pub fn started_inet(&self) -> Option<&Arc<stack::Stack>> {
        self.inet.get()
    }

    /// The loopback's addresses, which change on the sentry's stack (`None`: the host's
    /// stack, whose loopback the sandbox does not change).
    pub fn loopback_addrs(&self) -> Option<&Arc<config::LoopbackAddrs>> {
        (!matches!(self.network, config::Network::Host { .. })).then_some(&self.loopback)
    }

    /// Whether `stack` is this namespace's (started) internet stack.
    pub fn holds_stack(&self, stack: &Arc<stack::Stack>) -> bool {
        self.inet.get().is_some_and(|s| Arc::ptr_eq(s, stack))
    }

    /// The AF_INET sockets `/proc/net/tcp` and `/proc/net/udp` list
    /// ([`stack::Stack::listed_sockets`]). Does not start the stack.
    pub fn inet_sockets(&self) -> Vec<stack::InetEntry> {
        self.inet
            .get()
            .map_or_else(Vec::new, |s| s.listed_sockets())
    }

    /// The internet stack's counters ([`mib::Mib`]; all zero before it starts). Does not
    /// start the stack.
    pub fn counters(&self) -> mib::Mib {
        self.inet
            .get()
            .map_or_else(mib::Mib::default, |s| s.lock().counters())
    }
}

/// The socket types `socket(2)` and `socketpair(2)` accept (without SOCK_NONBLOCK and
/// SOCK_CLOEXEC).
fn unix_kind(ty: i32) -> Result<unix::Kind, Errno> {
    match ty {
        libc::SOCK_STREAM => Ok(unix::Kind::Stream),
        // Linux makes an AF_UNIX SOCK_RAW socket a datagram one.
        libc::SOCK_DGRAM | libc::SOCK_RAW => Ok(unix::Kind::Dgram),
        libc::SOCK_SEQPACKET => Ok(unix::Kind::SeqPacket),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

fn check_unix_protocol(protocol: i32) -> Result<(), Errno> {
    if protocol != 0 && protocol != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

/// A new socket of `domain` and `ty` (without flags), for the caller `t`, in `ns` (owned by
/// user namespace `owner`).
///
/// # Errors
/// EAFNOSUPPORT for families the sentry has no stack for, ESOCKTNOSUPPORT, EPROTONOSUPPORT;
/// EPERM for a raw socket without CAP_NET_RAW.
pub fn socket(
    t: &dyn Context,
    ns: &Namespace,
    owner: &Arc<crate::auth::UserNs>,
    domain: i32,
    ty: i32,
    protocol: i32,
) -> Result<Arc<dyn Socket>, Errno> {
    match domain {
        libc::AF_UNIX => {
            let kind = unix_kind(ty)?;
            check_unix_protocol(protocol)?;
            Ok(Arc::new(unix::UnixSocket::new(&ns.unix_names, kind)))
        }
        libc::AF_INET | libc::AF_INET6 if matches!(ns.network, config::Network::Host { .. }) => {
            Ok(Arc::new(hostinet::socket(domain, ty, protocol)?))
        }
        libc::AF_INET | libc::AF_INET6 => {
            if ty == libc::SOCK_RAW {
                let protocol = raw::check_protocol(protocol)?;
                if !t.creds().has_cap(crate::auth::cap::NET_RAW) {
                    return Err(Errno::EPERM);
                }
                return Ok(Arc::new(raw::RawSocket::new(
                    ns.inet(),
                    owner,
                    domain,
                    protocol,
                )));
            }
            if icmp::is_ping(domain, ty, protocol) {
                return Ok(Arc::new(icmp::IcmpSocket::new(ns.inet(), domain)));
            }
            let proto = inet::proto_of(ty, protocol)?;
            Ok(Arc::new(inet::InetSocket::of_family(
                ns.inet(),
                domain,
                proto,
            )))
        }
        libc::AF_PACKET if !matches!(ns.network, config::Network::Host { .. }) => {
            if !t.creds().has_cap(crate::auth::cap::NET_RAW) {
                return Err(Errno::EPERM);
            }
            Ok(Arc::new(packet::PacketSocket::new(
                ns.inet(),
                t.mm().memory_file(),
                ty,
                protocol,
            )?))
        }
        libc::AF_NETLINK => {
            netlink::check_type(ty, protocol)?;
            Ok(Arc::new(netlink::NetlinkSocket::new(
                ns, owner, ty, protocol,
            )))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// A connected pair of sockets.
///
/// # Errors
/// As [`socket`]; EOPNOTSUPP for families without pairs.
pub fn socketpair(
    t: &dyn Context,
    ns: &Namespace,
    domain: i32,
    ty: i32,
    protocol: i32,
) -> Result<[Arc<dyn Socket>; 2], Errno> {
    match domain {
        libc::AF_UNIX => {
            let kind = unix_kind(ty)?;
            check_unix_protocol(protocol)?;
            let (a, b) = unix::UnixSocket::pair(&ns.unix_names, kind, Ucred::of(t));
            Ok([Arc::new(a), Arc::new(b)])
        }
        libc::AF_INET | libc::AF_INET6 => {
            // The socket is made first, so a type socket(2) refuses fails as there; internet
            // sockets have no pairs.
            if ty != libc::SOCK_RAW && !icmp::is_ping(domain, ty, protocol) {
                inet::proto_of(ty, protocol)?;
            }
            Err(Errno::EOPNOTSUPP)
        }
        libc::AF_NETLINK => Err(Errno::EOPNOTSUPP),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}
