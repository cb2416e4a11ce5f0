//! The sandbox's network, taken from the host network namespace it was started in.
//!
//! `--network sandbox` (gVisor's default) runs the sentry's own TCP/IP stack on the links of
//! the namespace the sandbox process starts in (under containerd: the pod's, which CNI set
//! up). Before capabilities are dropped and the seccomp filter goes on, boot
//! ([`take_links`]):
//!
//! 1. reads the namespace's links, addresses and main-table routes over the host's
//!    NETLINK_ROUTE (one dump each);
//! 2. keeps the links that are up and Ethernet (loopback and down or non-Ethernet links, like
//!    the `sit0` a module may add to every namespace, are left alone), gives them the
//!    sandbox's indexes 2, 3, ... in host order, and keeps the routes out of those links with
//!    their output link translated;
//! 3. opens one `AF_PACKET` socket per link ([`platform::open_packet_socket`]): the sentry
//!    sends and receives the link's Ethernet frames through it;
//! 4. deletes the links' addresses from the host kernel (RTM_DELADDR; the kernel drops the
//!    routes that depended on them), so that only the sentry answers ARP, neighbour
//!    discovery and connections for them, as gVisor does. The links stay up.
//!
//! `--network host` reads the same facts ([`read_host`]) and changes nothing.
//!
//! Taking the links of the host's own namespace would cut the machine off its network, so
//! [`take_links`] refuses to run in the host's initial network namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rustix::net::{netlink, AddressFamily as SocketFamily, RecvFlags, SendFlags, SocketType};

use crate::net::config::{Addr, Link, NetConfig, Network, Route};

/// Receive buffer of each packet socket: room for a burst of full frames while the stack's
/// poller is busy (the host drops frames beyond it, which TCP then retransmits).
const PACKET_RCVBUF: usize = 4 << 20;

/// Errors reading or taking the host's network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network: {what}: {source}")]
    Host {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "network: {what}: permission denied: this needs {capability} in the network \
         namespace (run runsc-rs as root)"
    )]
    Permission {
        what: String,
        capability: &'static str,
    },
    #[error("network: the host's netlink answer to {what} cannot be decoded: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: netlink_packet_core::DecodeError,
    },
    #[error(
        "--network sandbox: this network namespace has no link the sandbox can take (an up \
         Ethernet link); found: {found}"
    )]
    NoLink { found: String },
    #[error(
        "--network sandbox: this is (or cannot be told apart from) the network namespace of the \
         machine or container itself; taking its links would remove its addresses. Run the \
         sandbox in a namespace made for it (`ip netns exec NAME runsc-rs do --network \
         sandbox ...`), or use --network host or none"
    )]
    HostNamespace,
}

/// An error of the host, named as a missing capability when it is EPERM.
fn denied_or(what: String, capability: &'static str, source: std::io::Error) -> Error {
    if source.raw_os_error() == Some(libc::EPERM) {
        Error::Permission { what, capability }
    } else {
        Error::Host { what, source }
    }
}

fn io(what: &str) -> impl FnOnce(rustix::io::Errno) -> Error + '_ {
    move |e| Error::Host {
        what: what.to_string(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    }
}

/// A NETLINK_ROUTE socket of the host kernel, for boot's requests.
struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
}

impl RouteSocket {
    fn open() -> Result<RouteSocket, Error> {
        let fd = rustix::net::socket_with(
            SocketFamily::NETLINK,
            SocketType::RAW,
            rustix::net::SocketFlags::CLOEXEC,
            // NETLINK_ROUTE is protocol 0.
            None,
        )
        .map_err(io("opening a NETLINK_ROUTE socket"))?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 0))
            .map_err(io("binding the NETLINK_ROUTE socket"))?;
        Ok(RouteSocket { fd, seq: 0 })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, Error> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        rustix::net::send(&self.fd, &buf, SendFlags::empty())
            .map_err(io("sending a NETLINK_ROUTE request"))?;
        Ok(self.seq)
    }

    /// Reads the answers to request `seq` until its end (NLMSG_DONE, or the acknowledgement
    /// of a single request), handing each inner message to `each`.
    fn answers(
        &mut self,
        seq: u32,
        what: &'static str,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> Result<(), Error> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())
                .map_err(io("reading a NETLINK_ROUTE answer"))?;
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|source| Error::Decode { what, source })?;
                let len = (message.header.length as usize).max(16);
                rest = &rest[(len.next_multiple_of(4)).min(rest.len())..];
                if message.header.sequence_number != seq {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => each(m),
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(Error::Host {
                                what: what.to_string(),
                                source: e.to_io(),
                            }),
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Dumps every object `request` asks for.
    fn dump(
        &mut self,
        request: RouteNetlinkMessage,
        what: &'static str,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        let seq = self.send(request, NLM_F_DUMP)?;
        let mut all = Vec::new();
        self.answers(seq, what, |m| all.push(m))?;
        Ok(all)
    }

    /// Makes one change and waits for the kernel's acknowledgement.
    fn change(&mut self, request: RouteNetlinkMessage, what: &'static str) -> Result<(), Error> {
        let seq = self.send(request, NLM_F_ACK)?;
        self.answers(seq, what, |_| {})
    }
}

/// The host's answers, as read.
#[derive(Debug, Default)]
struct HostState {
    links: Vec<LinkMessage>,
    addresses: Vec<AddressMessage>,
    routes: Vec<RouteMessage>,
}

fn read_state(sock: &mut RouteSocket) -> Result<HostState, Error> {
    let links = sock
        .dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "RTM_GETLINK",
        )?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .collect();
    let addresses = sock
        .dump(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            "RTM_GETADDR",
        )?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => Some(a),
            _ => None,
        })
        .collect();
    let routes = sock
        .dump(
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            "RTM_GETROUTE",
        )?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => Some(r),
            _ => None,
        })
        .collect();
    Ok(HostState {
        links,
        addresses,
        routes,
    })
}

/// A link the sandbox takes, with the host's index and address messages (to delete them).
#[derive(Debug)]
struct Taken {
    host_index: u32,
    link: Link,
    host_addresses: Vec<AddressMessage>,
}

/// What [`plan`] makes of the host's state.
#[derive(Debug)]
struct Plan {
    taken: Vec<Taken>,
    routes: Vec<Route>,
    /// Links left to the host, with why (for the log and the no-link error).
    skipped: Vec<String>,
}

fn link_name(l: &LinkMessage) -> String {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("link{}", l.header.index))
}

/// The address a message names: IFA_LOCAL when present (on point-to-point links
/// IFA_ADDRESS is the peer), else IFA_ADDRESS.
fn address_of(a: &AddressMessage) -> Option<IpAddr> {
    let find = |local: bool| {
        a.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// Decides which links the sandbox takes and translates their addresses and routes.
/// Pure: the host's answers in, the sandbox's view out.
fn plan(state: HostState) -> Plan {
    let mut taken = Vec::new();
    let mut skipped = Vec::new();
    for l in &state.links {
        let name = link_name(l);
        let flags = l.header.flags;
        let why_not = if l.header.link_layer_type == LinkLayerType::Loopback {
            Some("loopback")
        } else if l.header.link_layer_type != LinkLayerType::Ether {
            Some("not Ethernet")
        } else if !flags.contains(LinkFlags::Up) {
            Some("down")
        } else {
            None
        };
        if let Some(why) = why_not {
            skipped.push(format!("{name} ({why})"));
            continue;
        }
        let mut mac = [0u8; 6];
        let mut mtu = 1500;
        for a in &l.attributes {
            match a {
                LinkAttribute::Address(bytes) if bytes.len() == 6 => mac.copy_from_slice(bytes),
                LinkAttribute::Mtu(m) => mtu = *m,
                _ => {}
            }
        }
        let host_addresses: Vec<AddressMessage> = state
            .addresses
            .iter()
            .filter(|a| a.header.index == l.header.index)
            .cloned()
            .collect();
        let addrs = host_addresses
            .iter()
            .filter_map(|a| {
                Some(Addr {
                    ip: address_of(a)?,
                    prefix: a.header.prefix_len,
                })
            })
            .collect();
        taken.push(Taken {
            host_index: l.header.index,
            link: Link {
                name,
                index: 2 + taken.len() as i32,
                mac,
                mtu,
                flags: flags.bits(),
                addrs,
            },
            host_addresses,
        });
    }
    let sandbox_index = |host: u32| {
        taken
            .iter()
            .find(|t| t.host_index == host)
            .map(|t| t.link.index)
    };
    let mut routes = Vec::new();
    for r in &state.routes {
        let mut table = u32::from(r.header.table);
        let mut oif = None;
        let mut dst = None;
        let mut gateway = None;
        let mut metric = 0;
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Destination(d) => dst = route_ip(d),
                RouteAttribute::Gateway(g) => gateway = route_ip(g),
                RouteAttribute::Priority(p) => metric = *p,
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) || r.header.kind != RouteType::Unicast {
            continue;
        }
        // Multipath routes name no single output link; the sandbox has none of them.
        let Some(link) = oif.and_then(sandbox_index) else {
            continue;
        };
        let any = match r.header.address_family {
            AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => continue,
        };
        routes.push(Route {
            dst: dst.unwrap_or(any),
            prefix: r.header.destination_prefix_length,
            gateway,
            link,
            metric,
        });
    }
    Plan {
        taken,
        routes,
        skipped,
    }
}

fn config_of(plan: &Plan) -> NetConfig {
    NetConfig {
        links: plan.taken.iter().map(|t| t.link.clone()).collect(),
        routes: plan.routes.clone(),
    }
}

fn log_config(mode: &str, config: &NetConfig, skipped: &[String]) {
    for l in &config.links {
        let addrs: Vec<String> = l
            .addrs
            .iter()
            .map(|a| format!("{}/{}", a.ip, a.prefix))
            .collect();
        log::info!(
            "network {mode}: link {} {} mac {} mtu {} flags {:#x} addrs [{}]",
            l.index,
            l.name,
            l.mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            l.mtu,
            l.flags,
            addrs.join(", ")
        );
    }
    for r in &config.routes {
        let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        log::info!(
            "network {mode}: route {}/{}{via} link {} metric {}",
            r.dst,
            r.prefix,
            r.link,
            r.metric
        );
    }
    if !skipped.is_empty() {
        log::debug!("network {mode}: left to the host: {}", skipped.join(", "));
    }
}

/// Refuses the namespace a machine or container lives in: the one of `kthreadd` (PID 2, the
/// kernel's thread parent, when this PID namespace shows the host's kernel threads) or of
/// PID 1 (a container's init, which shares the host's namespace under `--net=host`). Taking
/// its links would cut the machine off its network. A namespace the sandbox may take is one
/// made for it (`ip netns exec`, a pod's): different from both. When neither can be read,
/// nothing proves that, so it is refused as well.
fn check_not_host_namespace() -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let id = |path: &str| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    let ours = id("/proc/thread-self/ns/net").map_err(|source| {
        denied_or(
            "reading this thread's network namespace".into(),
            "CAP_NET_ADMIN and CAP_NET_RAW",
            source,
        )
    })?;
    let kthreadd = std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd");
    let (witnesses, unreadable): (Vec<_>, Vec<_>) =
        [kthreadd.then_some("/proc/2/ns/net"), Some("/proc/1/ns/net")]
            .into_iter()
            .flatten()
            .map(id)
            .partition(Result::is_ok);
    let witnesses: Vec<(u64, u64)> = witnesses.into_iter().flatten().collect();
    if witnesses.contains(&ours) {
        return Err(Error::HostNamespace);
    }
    if witnesses.is_empty() {
        // Unreadable to an unprivileged caller, who could not take links anyway: say so.
        let denied = unreadable
            .into_iter()
            .filter_map(Result::err)
            .find(|e| matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)));
        return Err(match denied {
            Some(_) => Error::Permission {
                what: "taking this network namespace's links".into(),
                capability: "CAP_NET_ADMIN and CAP_NET_RAW",
            },
            None => Error::HostNamespace,
        });
    }
    Ok(())
}

/// `--network host`: the links, addresses and routes of the namespace this process is in,
/// for the sandbox's netlink and /proc/net views. Changes nothing on the host.
///
/// # Errors
/// The host's NETLINK_ROUTE failing.
pub fn read_host() -> Result<NetConfig, Error> {
    let mut sock = RouteSocket::open()?;
    let plan = plan(read_state(&mut sock)?);
    let config = config_of(&plan);
    log_config("host", &config, &plan.skipped);
    Ok(config)
}

/// `--network sandbox`: takes the up Ethernet links of the namespace this process is in
/// (see the module doc): their configuration, a packet socket each, and their addresses,
/// which the host kernel no longer has when this returns.
///
/// Call before dropping capabilities (packet sockets need CAP_NET_RAW, deleting addresses
/// CAP_NET_ADMIN) and before the seccomp filter, while the host's `/proc` is still visible.
///
/// Without a link to take, the sandbox gets the loopback only, or with `required` an error
/// naming what was found.
///
/// # Errors
/// The host namespace itself, no link to take (`required`), missing capabilities, the host's
/// NETLINK_ROUTE failing.
pub fn take_links(required: bool) -> Result<Network, Error> {
    check_not_host_namespace()?;
    let mut sock = RouteSocket::open()?;
    let plan = plan(read_state(&mut sock)?);
    if plan.taken.is_empty() && !required {
        log::info!(
            "network sandbox: no link to take ({}); loopback only",
            plan.skipped.join(", ")
        );
        return Ok(Network::Loopback);
    }
    if plan.taken.is_empty() {
        return Err(Error::NoLink {
            found: if plan.skipped.is_empty() {
                "nothing".into()
            } else {
                plan.skipped.join(", ")
            },
        });
    }
    let config = config_of(&plan);
    log_config("sandbox", &config, &plan.skipped);
    let mut devices = Vec::with_capacity(plan.taken.len());
    for t in &plan.taken {
        let fd = platform::open_packet_socket(t.host_index as i32, PACKET_RCVBUF).map_err(|e| {
            denied_or(
                format!("opening a packet socket on {}", t.link.name),
                "CAP_NET_RAW",
                e,
            )
        })?;
        devices.push(fd);
    }
    for t in &plan.taken {
        for a in &t.host_addresses {
            let mut del = AddressMessage::default();
            del.header = a.header.clone();
            del.attributes = a
                .attributes
                .iter()
                .filter(|attr| {
                    matches!(
                        attr,
                        AddressAttribute::Local(_) | AddressAttribute::Address(_)
                    )
                })
                .cloned()
                .collect();
            let ip = address_of(a).map(|ip| ip.to_string()).unwrap_or_default();
            let what = format!(
                "removing {ip}/{} from {} on the host",
                a.header.prefix_len, t.link.name
            );
            sock.change(RouteNetlinkMessage::DelAddress(del), "RTM_DELADDR")
                .map_err(|e| match e {
                    Error::Host { source, .. } => denied_or(what, "CAP_NET_ADMIN", source),
                    other => other,
                })?;
        }
        log::info!(
            "network sandbox: {} taken: {} host address(es) removed, packet socket open",
            t.link.name,
            t.host_addresses.len()
        );
    }
    Ok(Network::Sandbox { config, devices })
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::address::AddressHeader;
    use netlink_packet_route::link::LinkHeader;
    use netlink_packet_route::route::RouteHeader;

    use super::*;

    fn link(index: u32, name: &str, kind: LinkLayerType, flags: LinkFlags) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header = LinkHeader {
            index,
            link_layer_type: kind,
            flags,
            ..LinkHeader::default()
        };
        l.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, index as u8]),
            LinkAttribute::Mtu(1400 + index),
        ];
        l
    }

    fn address(index: u32, ip: IpAddr, prefix: u8) -> AddressMessage {
        let mut a = AddressMessage::default();
        a.header = AddressHeader {
            family: if ip.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            prefix_len: prefix,
            index,
            ..AddressHeader::default()
        };
        a.attributes = vec![AddressAttribute::Address(ip)];
        if ip.is_ipv4() {
            a.attributes.push(AddressAttribute::Local(ip));
        }
        a
    }

    fn route(
        table: u8,
        kind: RouteType,
        dst: Option<(IpAddr, u8)>,
        attrs: Vec<RouteAttribute>,
    ) -> RouteMessage {
        let mut r = RouteMessage::default();
        let v4 = dst.is_none_or(|(ip, _)| ip.is_ipv4());
        r.header = RouteHeader {
            address_family: if v4 {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            destination_prefix_length: dst.map_or(0, |(_, p)| p),
            table,
            kind,
            ..RouteHeader::default()
        };
        r.attributes = attrs;
        if let Some((ip, _)) = dst {
            r.attributes.push(RouteAttribute::Destination(ip.into()));
        }
        r
    }

    #[test]
    fn takes_up_ethernet_links_and_translates_routes() {
        let up = LinkFlags::Up | LinkFlags::Running | LinkFlags::Broadcast;
        let v4: IpAddr = "10.251.3.2".parse().unwrap();
        let v6: IpAddr = "fd00:251::2".parse().unwrap();
        let gw: IpAddr = "10.251.3.1".parse().unwrap();
        let state = HostState {
            links: vec![
                link(1, "lo", LinkLayerType::Loopback, up | LinkFlags::Loopback),
                link(4, "sit0", LinkLayerType::Sit, LinkFlags::empty()),
                link(7, "eth0", LinkLayerType::Ether, up),
                link(9, "eth1", LinkLayerType::Ether, LinkFlags::Broadcast),
                link(12, "net1", LinkLayerType::Ether, up),
            ],
            addresses: vec![
                address(1, "127.0.0.1".parse().unwrap(), 8),
                address(7, v4, 24),
                address(7, v6, 64),
                address(12, "10.252.0.5".parse().unwrap(), 16),
            ],
            routes: vec![
                route(
                    254,
                    RouteType::Unicast,
                    None,
                    vec![RouteAttribute::Gateway(gw.into()), RouteAttribute::Oif(7)],
                ),
                route(
                    254,
                    RouteType::Unicast,
                    Some(("10.251.3.0".parse().unwrap(), 24)),
                    vec![RouteAttribute::Oif(7)],
                ),
                route(
                    254,
                    RouteType::Unicast,
                    Some(("fd00:251::".parse().unwrap(), 64)),
                    vec![RouteAttribute::Oif(7), RouteAttribute::Priority(256)],
                ),
                route(
                    254,
                    RouteType::Unicast,
                    Some(("10.252.0.0".parse().unwrap(), 16)),
                    vec![RouteAttribute::Oif(12)],
                ),
                // The local table, another link's route and a multipath route stay out.
                route(
                    255,
                    RouteType::Local,
                    Some((v4, 32)),
                    vec![RouteAttribute::Oif(7)],
                ),
                route(
                    254,
                    RouteType::Unicast,
                    Some(("10.9.0.0".parse().unwrap(), 16)),
                    vec![RouteAttribute::Oif(9)],
                ),
                route(
                    254,
                    RouteType::Unicast,
                    Some(("10.8.0.0".parse().unwrap(), 16)),
                    vec![],
                ),
            ],
        };
        let plan = plan(state);
        let config = config_of(&plan);
        assert_eq!(
            plan.skipped,
            ["lo (loopback)", "sit0 (not Ethernet)", "eth1 (down)"]
        );
        assert_eq!(
            plan.taken.iter().map(|t| t.host_index).collect::<Vec<_>>(),
            [7, 12]
        );
        assert_eq!(plan.taken[0].host_addresses.len(), 2);
        let eth0 = &config.links[0];
        assert_eq!(
            (eth0.name.as_str(), eth0.index, eth0.mtu),
            ("eth0", 2, 1407)
        );
        assert_eq!(eth0.mac, [2, 0, 0, 0, 0, 7]);
        assert_eq!(eth0.flags, up.bits());
        assert_eq!(
            eth0.addrs,
            [Addr { ip: v4, prefix: 24 }, Addr { ip: v6, prefix: 64 }]
        );
        assert_eq!(config.links[1].index, 3);
        assert_eq!(
            config.routes,
            [
                Route {
                    dst: "0.0.0.0".parse().unwrap(),
                    prefix: 0,
                    gateway: Some(gw),
                    link: 2,
                    metric: 0
                },
                Route {
                    dst: "10.251.3.0".parse().unwrap(),
                    prefix: 24,
                    gateway: None,
                    link: 2,
                    metric: 0
                },
                Route {
                    dst: "fd00:251::".parse().unwrap(),
                    prefix: 64,
                    gateway: None,
                    link: 2,
                    metric: 256
                },
                Route {
                    dst: "10.252.0.0".parse().unwrap(),
                    prefix: 16,
                    gateway: None,
                    link: 3,
                    metric: 0
                },
            ]
        );
    }

    #[test]
    fn the_hosts_own_namespace_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIPPED: needs root to read kthreadd's network namespace");
            return;
        }
        // This test process runs where the test runner was started; compare with what the
        // host says directly.
        let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let same = ["/proc/2/ns/net", "/proc/1/ns/net"]
            .iter()
            .any(|w| std::fs::read_link(w).is_ok_and(|n| n == ours));
        assert_eq!(
            matches!(check_not_host_namespace(), Err(Error::HostNamespace)),
            same
        );
        // A thread in a namespace of its own is never the host's.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            check_not_host_namespace().unwrap();
        })
        .join()
        .unwrap();
    }
}
