//! The sandbox's internet stack: one smoltcp [`Interface`] on the stack's device
//! ([`super::link`]), its socket set, and the bookkeeping of the sentry's AF_INET sockets
//! ([`super::inet`]).
//!
//! In loopback-only mode the interface holds the loopback's addresses (127.0.0.1/8 and ::1
//! first; [`LoopbackAddrs`], which root changes over netlink) on an IP device that loops
//! every packet; an IPv4 network on the loopback is local whole ([`Inner::is_own`]). On
//! the pod's link (`Network::Sandbox`) it is an Ethernet interface with the link's MAC and
//! addresses, the gateways of the configured routes, and the loopback's addresses as well:
//! one interface and one socket set, whose device keeps the frames the sandbox sends to
//! itself inside (see [`super::link`]). So a socket needs no choice of interface:
//! a wildcard listener or UDP socket is one smoltcp socket that hears every address, and the
//! source address follows smoltcp's choice by destination. (One interface per link plus a
//! loopback interface would need a socket per interface for every wildcard socket and a
//! routing decision before smoltcp's own; with one link per pod, as container networks
//! give, the single interface is simpler and complete. Further links are not used.)
//!
//! Everything lives behind one mutex ([`Stack::lock`]). Every socket operation runs with it
//! held and ends with [`Inner::pump`]: the interface is polled, in rounds of a bounded number
//! of frames, until nothing is left to deliver; after each round [`Inner::settle`] moves
//! sockets along (a listener's established connections into its accept queue, a finished
//! `connect`) and notifies each socket's wait queue whose readiness or queued bytes
//! changed. A background thread polls for frames from the link and at smoltcp's
//! `poll_delay` for the TCP timers (retransmission, TIME_WAIT); operations kick it so that
//! it re-reads the delay. On a link it sleeps in ppoll(2) on the packet socket and a wake
//! pipe; loopback-only, on a condition variable (no host system call beyond a futex).
//! On a link the stack starts with the namespace, before any socket exists, so that it
//! answers ARP and pings from the start.
//!
//! The port table follows Linux's bind table: a connection holds its port (an accepted one,
//! its listener's) until it is closed, so a closed file's connection still finishing its
//! close (FIN_WAIT, TIME_WAIT; an orphaned FIN_WAIT2 ends after TCP_LINGER2) keeps its entry
//! as a ghost ([`Inner::remove`]). A wildcard-bound or unbound socket's connect fixes its
//! address to the source it chose ([`Inner::bind_source`]), as Linux sets the receive
//! address, so its port is held at that address only. bind(2) to port 0 takes a port
//! nobody holds; connect's implicit bind may share one with other connections bound that
//! way, to other peers ([`Inner::connect_port`]), as Linux's `inet_hash_connect`. A
//! listener's accept queue takes backlog + 1 connections; beyond that the device drops SYNs
//! for it unanswered ([`super::link`]), as Linux does, and the peer's retransmission is
//! taken once accept makes room.
//!
//! UDP datagrams that stay inside the sandbox do not pass through smoltcp: the sentry
//! delivers them to every socket Linux would ([`super::udp`]), into the entry's own queue.
//!
//! Each network namespace ([`super::Namespace`], owned by the kernel) has its own stack;
//! its poller thread ends once the stack is gone.
//!
//! # Lock order
//! `Stack::inner` → a socket's `WaitQueue` (notified under the stack lock; waking takes no
//! stack lock); `Stack::inner` → the netfilter tables' lock (the device runs packets through
//! them under the stack lock); `Stack::inner` → the loopback's addresses
//! ([`LoopbackAddrs`], read under the stack lock; a change calls back into the stack with
//! no lock of theirs held).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{icmp, raw, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, IpProtocol,
    IpVersion, Ipv6Address,
};

use super::config::{LoopbackAddrs, NetConfig, LOOPBACK_INDEX};
use super::inet::v6only;
use super::link::{Device, Local};
use super::mib::{Counted, Mib, TcpStates};
use crate::abi::Errno;
use crate::waiter::{WaitQueue, Wake};

/// Bytes of each TCP socket's receive and send buffers (window scaling lets a peer fill
/// them).
pub const TCP_BUF: usize = 256 * 1024;
/// Payload bytes of each UDP socket's receive and send buffers.
const UDP_BUF: usize = 256 * 1024;
/// Datagrams each UDP buffer holds.
const UDP_PACKETS: usize = 64;
/// Bytes of ICMP messages the stack's own raw sockets hold between polls.
const ICMP_ERRORS_BUF: usize = 64 * 1024;
/// Largest listen backlog (Linux's default `somaxconn`).
const MAX_BACKLOG: usize = 4096;
/// Listening smoltcp sockets a listener keeps ready for new SYNs (each takes one); as many
/// as frames one poll round can bring, so a burst of SYNs is never reset.
const SPARE_LISTENERS: usize = super::link::FRAMES_PER_POLL;
/// First and last ephemeral port by default (Linux's `ip_local_port_range`).
const EPHEMERAL: (u16, u16) = (32768, 60999);
/// The lowest port `ip_local_port_range` may start at (Linux's `ip_unprivileged_port_start`).
const PORT_RANGE_MIN: u16 = 1024;
/// Longest the poller sleeps without a timer due.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Most poll rounds one pump makes (each takes at most `FRAMES_PER_POLL` frames).
const MAX_ROUNDS: usize = 256;
/// How long a connect waits for its next hop to answer ARP or neighbour discovery before
/// failing with EHOSTUNREACH (Linux: 3 probes a second apart).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the SYN of a connect waiting for its next hop goes out again (Linux's ARP
/// and neighbour discovery retransmission time).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo (ping sockets); its "port" is the echo identifier. Raw IP sockets
    /// ([`super::raw`]), which hold no port, are entries of this protocol too.
    Icmp,
}

/// A socket's connection state.
#[derive(Debug)]
pub enum St {
    /// Fresh (possibly bound).
    Idle,
    /// Listening: smoltcp sockets waiting for a SYN and established ones to accept.
    Listening {
        /// The accept queue's room: listen(2)'s backlog + 1, as in Linux.
        backlog: usize,
        waiting: Vec<SocketHandle>,
        ready: VecDeque<SocketHandle>,
    },
    /// A TCP handshake under way, since `since`, through next hop `hop` (`None`: inside).
    Connecting {
        h: SocketHandle,
        since: Instant,
        hop: Option<IpAddress>,
    },
    /// A TCP connect to port 0 through next hop `hop` (since `since`), which waits for the
    /// hop to answer ARP or neighbour discovery. smoltcp makes no connection to port 0, so
    /// the sentry sends the SYN Linux sends (`syn`, again a second after `sent`, as Linux's
    /// probes go): once the hop answers, the connect is refused (nothing listens on port
    /// 0: the peer's reset), and it fails with EHOSTUNREACH when the hop never does.
    Resolving {
        since: Instant,
        hop: IpAddress,
        syn: Vec<u8>,
        sent: Instant,
    },
    /// A TCP connection (possibly closed by now).
    Connected(SocketHandle),
    /// A UDP socket with its port.
    Udp(SocketHandle),
    /// An ICMP socket with its echo identifier.
    Icmp(SocketHandle),
    /// A raw IP socket: a smoltcp raw socket that gets a copy of every packet of its
    /// protocol.
    Raw(SocketHandle),
    /// A connect that failed; the error is in `Entry::error` until read.
    Failed,
}

/// One sentry socket.
#[derive(Debug)]
pub struct Entry {
    pub proto: Proto,
    /// The socket's family (AF_INET or AF_INET6), for /proc/net.
    pub family: i32,
    pub queue: Arc<WaitQueue>,
    /// The address and port bound (`None` address: the wildcard).
    pub bound: Option<(Option<IpAddress>, u16)>,
    /// Whether the entry holds its port in the port table (not accepted connections).
    pub owns_port: bool,
    pub st: St,
    pub rd_shut: bool,
    pub wr_shut: bool,
    /// The connection saw the peer's FIN (a reset afterwards is EPIPE, not ECONNRESET).
    pub fin_seen: bool,
    /// The connection ended by a reset (reported once through `error`).
    pub reset: bool,
    /// The pending SO_ERROR.
    pub error: Option<Errno>,
    /// A connect was started and no connect call has seen it end yet (Linux's
    /// `SS_CONNECTING`): the next connect reports how it ended.
    pub connecting: bool,
    /// A connected UDP socket's peer.
    pub udp_peer: Option<(IpAddress, u16)>,
    pub nodelay: bool,
    /// Socket and TCP options that act on the connection.
    pub opts: SockOpts,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Options recorded only, by (level, name).
    pub options: HashMap<(i32, i32), Vec<u8>>,
    /// Datagrams the sentry delivered ([`super::udp`]), read before the smoltcp socket's.
    pub dgrams: VecDeque<super::udp::Datagram>,
    /// Payload bytes in `dgrams` (bounded by `rcvbuf`).
    pub dgram_bytes: usize,
    /// Errors queued for MSG_ERRQUEUE (IP_RECVERR, [`super::udp::refused`]).
    pub errors: VecDeque<super::udp::QueuedError>,
    /// SO_BINDTODEVICE: the interface index the socket is bound to (0: none).
    pub bound_dev: i32,
    /// The port was bound explicitly (bind with a nonzero port), so a UDP disconnect
    /// keeps it (Linux's SOCK_BINDPORT_LOCK).
    pub port_locked: bool,
    /// What SIOCGSTAMP answers ([`super::udp::Stamp`]).
    pub stamp: super::udp::Stamp,
    /// The port was taken by connect's implicit bind ([`Inner::connect_port`]): other such
    /// connections may share it.
    pub connect_bound: bool,
    /// TCP_CORK: bytes written and held back from the connection, and since when
    /// ([`super::inet::push_corked`]).
    pub corked: Vec<u8>,
    pub corked_at: Option<std::time::Instant>,
    /// SO_ATTACH_FILTER: the socket filter received data passes (checked).
    pub filter: Option<Arc<[crate::abi::bpf::SockFilter]>>,
    /// When a connection's latest data arrived (SO_TIMESTAMP on TCP).
    pub rx_at: Option<std::time::SystemTime>,
    /// The bound address is the source connect chose for a wildcard-bound socket
    /// ([`Inner::bind_source`]); a UDP disconnect undoes it.
    pub source_from_connect: bool,
    /// Readiness and queue lengths at the last notification.
    seen: (u32, usize, usize),
}

impl Entry {
    pub fn new(proto: Proto, family: i32, queue: Arc<WaitQueue>) -> Entry {
        Entry {
            proto,
            family,
            queue,
            bound: None,
            owns_port: false,
            st: St::Idle,
            rd_shut: false,
            wr_shut: false,
            fin_seen: false,
            reset: false,
            error: None,
            connecting: false,
            udp_peer: None,
            nodelay: false,
            opts: SockOpts::default(),
            rcvbuf: super::unix::DEFAULT_BUF,
            sndbuf: super::unix::DEFAULT_BUF,
            options: HashMap::new(),
            dgrams: VecDeque::new(),
            dgram_bytes: 0,
            errors: VecDeque::new(),
            bound_dev: 0,
            port_locked: false,
            stamp: super::udp::Stamp::default(),
            connect_bound: false,
            corked: Vec::new(),
            corked_at: None,
            filter: None,
            rx_at: None,
            source_from_connect: false,
            seen: (0, 0, 0),
        }
    }
}

/// The options of a socket that change what its connection does (Linux's defaults in
/// [`Default`]); accepted connections inherit them from the listener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SockOpts {
    pub reuse_addr: bool,
    pub reuse_port: bool,
    /// SO_KEEPALIVE, and TCP_KEEPIDLE, TCP_KEEPINTVL (seconds) and TCP_KEEPCNT.
    pub keepalive: bool,
    pub keep_idle: u32,
    pub keep_intvl: u32,
    pub keep_cnt: u32,
    /// SO_LINGER: `Some(seconds)` when on.
    pub linger: Option<u32>,
    /// SO_LINGER's time as last set while on: Linux keeps it (and `getsockopt` shows it)
    /// after lingering is turned off.
    pub linger_time: u32,
    /// SO_RCVLOWAT: bytes a read waits for (at least 1).
    pub rcvlowat: usize,
    /// TCP_USER_TIMEOUT in milliseconds (0: the stack's default).
    pub user_timeout_ms: u32,
    /// TCP_SYNCNT: SYN retransmissions before a connect times out.
    pub syn_count: u32,
    /// TCP_CORK: partial segments wait in [`Entry::corked`].
    pub cork: bool,
    /// TCP_QUICKACK (the stack acknowledges at once whatever the value).
    pub quickack: bool,
    /// TCP_DEFER_ACCEPT in seconds: accept waits for the first data that long.
    pub defer_accept: i32,
    /// TCP_WINDOW_CLAMP as set (0: none).
    pub window_clamp: i32,
    /// TCP_LINGER2 as Linux reads it back (seconds; -1: off).
    pub linger2: i32,
}

/// Linux's defaults: net.ipv4.tcp_keepalive_{time,intvl,probes}, tcp_syn_retries,
/// tcp_fin_timeout.
impl Default for SockOpts {
    fn default() -> SockOpts {
        SockOpts {
            reuse_addr: false,
            reuse_port: false,
            keepalive: false,
            keep_idle: 7200,
            keep_intvl: 75,
            keep_cnt: 9,
            linger: None,
            linger_time: 0,
            rcvlowat: 1,
            user_timeout_ms: 0,
            syn_count: 6,
            cork: false,
            quickack: true,
            defer_accept: 0,
            window_clamp: 0,
            linger2: 60,
        }
    }
}

impl SockOpts {
    /// How long an unanswered connect retransmits its SYN: 1 + 2 + 4 + ... seconds, as
    /// Linux's exponential backoff from a 1 s RTO over `syn_count` retries (6: 127 s).
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs((1u64 << (self.syn_count.min(30) + 1)) - 1)
    }

    /// Applies the options to a connection past its handshake: Nagle (TCP_NODELAY; what
    /// TCP_CORK holds back waits in the entry), keep-alive probes and the time after which an unanswered connection
    /// ends (TCP_USER_TIMEOUT; with keep-alive, the probes' idle + interval × count).
    pub fn apply(&self, s: &mut tcp::Socket, nodelay: bool) {
        s.set_nagle_enabled(!nodelay);
        if self.keepalive {
            s.set_keep_alive(Some(Duration::from_secs(self.keep_idle.into())));
        } else {
            s.set_keep_alive(None);
        }
        let timeout = if self.user_timeout_ms > 0 {
            Some(Duration::from_millis(self.user_timeout_ms.into()))
        } else if self.keepalive {
            Some(Duration::from_secs(
                u64::from(self.keep_idle) + u64::from(self.keep_intvl) * u64::from(self.keep_cnt),
            ))
        } else {
            None
        };
        s.set_timeout(timeout);
    }
}

/// Whether two bindings of one port cover a common address: equal addresses, or a
/// wildcard and an address (or wildcard) of a family it hears (an AF_INET6 wildcard hears
/// IPv4 unless IPV6_V6ONLY).
pub fn overlap(a: (i32, bool, Option<IpAddress>), b: (i32, bool, Option<IpAddress>)) -> bool {
    let hears_v4 = |(family, v6only, addr): (i32, bool, Option<IpAddress>)| match addr {
        None => family == libc::AF_INET || !v6only,
        Some(IpAddress::Ipv4(_)) => true,
        Some(IpAddress::Ipv6(_)) => false,
    };
    let hears_v6 = |(family, _, addr): (i32, bool, Option<IpAddress>)| match addr {
        None => family == libc::AF_INET6,
        Some(IpAddress::Ipv6(_)) => true,
        Some(IpAddress::Ipv4(_)) => false,
    };
    match (a.2, b.2) {
        (Some(x), Some(y)) => x == y,
        _ => (hears_v4(a) && hears_v4(b)) || (hears_v6(a) && hears_v6(b)),
    }
}

/// Which SO_REUSEPORT sockets may bind a TCP port without the conflict check (Linux's
/// `tb->fastreuseport`, `sk_reuseport_match`): any when every holder set it since the port
/// was first taken, those at the address of the last one that set it and did not match
/// (Linux's FASTREUSEPORT_STRICT), or none once a holder without it bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FastReuseport {
    Off,
    Any,
    Strict(Option<IpAddress>),
}

/// A fresh id for a socket's [`Entry`] (unique across the process, so the ids of internet
/// and ICMP sockets never meet in one stack's entries).
pub fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Where a destination is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// One of the stack's own addresses: the device loops it.
    Inside,
    /// On the link, directly or through a gateway: the address that must answer ARP or
    /// neighbour discovery.
    Link(IpAddress),
}

/// The stack state behind the lock.
pub struct Inner {
    pub iface: Interface,
    dev: Device,
    pub set: SocketSet<'static>,
    pub entries: HashMap<u64, Entry>,
    /// The interface's addresses (as on the link, then the loopback ones; then those of
    /// the TUN/TAP links that are up).
    cidrs: Vec<IpCidr>,
    /// The link's addresses (none on a loopback-only stack).
    base_cidrs: Vec<IpCidr>,
    /// The loopback's addresses, which root changes over netlink; its lock is taken under
    /// this one, never the other way.
    loopback: Arc<LoopbackAddrs>,
    /// Routes through a gateway: destination and gateway.
    gateways: Vec<(IpCidr, IpAddress)>,
    /// The entries holding each port, per protocol (several when SO_REUSEADDR or
    /// SO_REUSEPORT let them share it).
    ports: HashMap<(Proto, u16), Vec<u64>>,
    /// SYNs of connects waiting for their next hop ([`St::Resolving`]) due to go out again.
    probes: Vec<Vec<u8>>,
    /// Each TCP port's SO_REUSEPORT fast path (Linux's `tb->fastreuseport`), set when a
    /// socket binds it explicitly ([`Inner::bind_port`]).
    fast_reuseport: HashMap<u16, FastReuseport>,
    next_ephemeral: u16,
    /// First and last ephemeral port (`/proc/sys/net/ipv4/ip_local_port_range`).
    port_range: (u16, u16),
    /// The sandbox's index of the link the stack runs on (`None`: loopback only).
    pub link_index: Option<i32>,
    /// The link's name (SO_BINDTODEVICE names it).
    pub link_name: Option<String>,
    /// The namespace's TUN/TAP links (SO_BINDTODEVICE names them too); its lock is taken
    /// under this one, never the other way.
    pub tun: Arc<super::tun::Devices>,
    /// TCP connections whose file is closed, finishing their close before removal.
    orphans: Vec<Orphan>,
    /// The entries of closed files whose connection still holds their port (as Linux keeps
    /// a closing socket, TIME_WAIT included, in its bind table until it is gone), by id.
    ghosts: HashMap<u64, Entry>,
    /// Established connections a TCP_DEFER_ACCEPT listener holds back until data comes,
    /// with when they were first seen established.
    deferred: HashMap<SocketHandle, Instant>,
    /// Connections that reached the accept queue stage on an SO_REUSEPORT listener this
    /// settle pass, with that listener: [`Inner::place_arrivals`] hands each to the member
    /// of the listener's group it belongs to.
    arrivals: Vec<(u64, SocketHandle)>,
    epoch: std::time::Instant,
    /// The counters `/proc/net/snmp` shows ([`super::mib`]).
    pub mib: Mib,
    /// TCP states at the last look, for counting connection events.
    tcp_states: TcpStates,
    /// The stack's own raw ICMP and ICMPv6 sockets: they see each ICMP error that arrives,
    /// for the UDP socket whose datagram it reports ([`super::udp::icmp_arrived`]).
    icmp_errors: [SocketHandle; 2],
}

/// The stack as its namespace's TUN/TAP links reach it.
struct TunHooks {
    stack: Weak<Stack>,
}

impl super::tun::Hooks for TunHooks {
    fn receive(&self, _index: i32, packet: Vec<u8>) {
        let Some(s) = self.stack.upgrade() else {
            return;
        };
        {
            let mut g = s.lock();
            g.dev.inject(packet);
            g.pump();
        }
        s.kick();
    }

    fn changed(&self) {
        if let Some(s) = self.stack.upgrade() {
            s.lock().sync_addrs();
        }
    }
}

/// A connection whose file is closed.
#[derive(Debug)]
struct Orphan {
    h: SocketHandle,
    /// The entry holding its port ([`Inner::ghosts`]), if it held one.
    ghost: Option<u64>,
    /// TCP_LINGER2 of its socket (seconds; -1: off).
    linger2: i32,
    /// When it was first seen in FIN_WAIT2.
    fin_wait2_since: Option<Instant>,
    /// Seen closed with its reset still to send (it goes at the next poll).
    reset_pending: bool,
}

impl Orphan {
    fn new(h: SocketHandle) -> Orphan {
        Orphan {
            h,
            ghost: None,
            linger2: SockOpts::default().linger2,
            fin_wait2_since: None,
            reset_pending: false,
        }
    }
}

/// How the poller waits for work.
enum Sleep {
    /// Loopback only: a condition variable the operations notify.
    Condvar(Condvar),
    /// On a link: ppoll(2) on the packet socket and the read end of a pipe the operations
    /// write to.
    Ppoll {
        link: Arc<OwnedFd>,
        wake_rd: OwnedFd,
        wake_wr: OwnedFd,
    },
}

/// An internet socket as `/proc/net/{tcp,udp,tcp6,udp6}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetEntry {
    pub proto: Proto,
    /// AF_INET (listed in tcp, udp) or AF_INET6 (tcp6, udp6).
    pub family: i32,
    pub local: (std::net::IpAddr, u16),
    pub remote: (std::net::IpAddr, u16),
    /// Linux's `TCP_*` state number (UDP: 7 unconnected, 1 connected).
    pub state: u8,
    pub tx_queue: usize,
    pub rx_queue: usize,
    /// The socket file's inode number.
    pub ino: u64,
}

/// The stack and its poller's wake-up.
pub struct Stack {
    inner: Mutex<Inner>,
    sleep: Sleep,
    /// The ports forwarded from the host's loopback ([`super::forward`]).
    pub forwards: super::forward::Forwards,
    /// The netfilter tables its device applies ([`super::netfilter`]).
    pub netfilter: Arc<super::netfilter::Netfilter>,
}

/// Why a stack on a link cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the network has no link")]
    NoLink,
    #[error("the packet socket cannot be made nonblocking: {0}")]
    Nonblocking(#[source] std::io::Error),
    #[error("cannot make the poller's wake pipe: {0}")]
    WakePipe(#[source] nix::Error),
    #[error("cannot start the poller thread: {0}")]
    Thread(#[source] std::io::Error),
}

fn ip(a: IpAddr) -> IpAddress {
    match a {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    }
}

impl Stack {
    /// The internet sockets `/proc/net/{tcp,udp,tcp6,udp6}` list (as Linux, the ones in
    /// its lookup tables: listening and connected TCP sockets, bound UDP ones), by inode.
    pub fn listed_sockets(&self) -> Vec<InetEntry> {
        use smoltcp::socket::tcp::State as T;
        let mut g = self.lock();
        let ids: Vec<u64> = g.entries.keys().copied().collect();
        let mut out = Vec::new();
        for id in ids {
            let e = &g.entries[&id];
            let family = e.family;
            // As the socket's family shows it: an AF_INET6 socket's IPv4 peers are v4-mapped.
            let ip = |a: Option<IpAddress>| -> std::net::IpAddr {
                match (family, a) {
                    (libc::AF_INET6, Some(IpAddress::Ipv4(a))) => a.to_ipv6_mapped().into(),
                    (libc::AF_INET6, Some(IpAddress::Ipv6(a))) => a.into(),
                    (libc::AF_INET6, None) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                    (_, Some(IpAddress::Ipv4(a))) => a.into(),
                    (_, Some(IpAddress::Ipv6(a))) => a
                        .to_ipv4_mapped()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
                        .into(),
                    (_, None) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                }
            };
            let local = e.bound.map_or((ip(None), 0), |(a, p)| (ip(a), p));
            let peer = e.udp_peer.map(|(a, p)| (ip(Some(a)), p));
            let unconnected = (ip(None), 0);
            let entry = |proto, local, remote, state, queues: (usize, usize)| InetEntry {
                proto,
                family,
                local,
                remote,
                state,
                tx_queue: queues.0,
                rx_queue: queues.1,
                ino: id,
            };
            let listed = match e.st {
                St::Listening { .. } => Some(entry(Proto::Tcp, local, unconnected, 0x0A, (0, 0))),
                St::Connecting { h, .. } | St::Connected(h) => {
                    let s = g.tcp(h);
                    let ep = |x: Option<smoltcp::wire::IpEndpoint>| {
                        x.map_or(unconnected, |x| (ip(Some(x.addr)), x.port))
                    };
                    // Linux's TCP_* state numbers.
                    let state = match s.state() {
                        T::Established => 1,
                        T::SynSent => 2,
                        T::SynReceived => 3,
                        T::FinWait1 => 4,
                        T::FinWait2 => 5,
                        T::TimeWait => 6,
                        T::Closed => 7,
                        T::CloseWait => 8,
                        T::LastAck => 9,
                        T::Listen => 0x0A,
                        T::Closing => 0x0B,
                    };
                    Some(entry(
                        Proto::Tcp,
                        ep(s.local_endpoint()),
                        ep(s.remote_endpoint()),
                        state,
                        (s.send_queue(), s.recv_queue()),
                    ))
                }
                St::Udp(_) => Some(entry(
                    Proto::Udp,
                    local,
                    peer.unwrap_or(unconnected),
                    if peer.is_some() { 1 } else { 7 },
                    (0, 0),
                )),
                // Ping sockets are /proc/net/icmp's, which the sentry does not offer.
                _ => None,
            };
            out.extend(listed);
        }
        out.sort_by_key(|e| e.ino);
        out
    }

    /// A new loopback-only stack with its poller thread.
    pub fn start() -> Arc<Stack> {
        let epoch = std::time::Instant::now();
        let mut dev = Device::loopback();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed(epoch);
        let mut iface = Interface::new(config, &mut dev, Instant::from_micros(0));
        iface.set_any_ip(true);
        let netfilter = dev.netfilter.clone();
        let s = Arc::new(Stack {
            netfilter,
            inner: Mutex::new(Inner::new(iface, dev, Vec::new(), Vec::new(), epoch)),
            sleep: Sleep::Condvar(Condvar::new()),
            forwards: super::forward::Forwards::default(),
        });
        if let Err(e) = s.spawn_poller() {
            log::error!("netstack: {e}; TCP timers only run on socket operations");
        }
        s
    }

    /// A stack on the pod's link: `devices[0]`, the packet socket of `config.links[0]`.
    ///
    /// # Errors
    /// [`Error`]: no link, or the host refused the socket flag, the pipe or the thread.
    pub fn start_on_link(config: &NetConfig, devices: Vec<OwnedFd>) -> Result<Arc<Stack>, Error> {
        let mut devices = devices.into_iter();
        let (Some(link), Some(fd)) = (config.links.first(), devices.next()) else {
            return Err(Error::NoLink);
        };
        for extra in config.links.iter().skip(1) {
            log::warn!(
                "netstack: link {} is not used (the stack runs on {} only)",
                extra.name,
                link.name
            );
        }
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::Nonblocking(e.into()))?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| Error::Nonblocking(e.into()))?;
        let (wake_rd, wake_wr) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(Error::WakePipe)?;
        let fd = Arc::new(fd);

        let cidrs: Vec<IpCidr> = link
            .addrs
            .iter()
            .map(|a| IpCidr::new(ip(a.ip), a.prefix))
            .collect();
        let epoch = std::time::Instant::now();
        let mut dev = Device::ethernet(fd.clone(), link);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(link.mac)));
        iface_config.random_seed = seed(epoch);
        let mut iface = Interface::new(iface_config, &mut dev, Instant::from_micros(0));
        iface.set_any_ip(true);
        let mut gateways = Vec::new();
        for r in &config.routes {
            let Some(gw) = r.gateway else { continue };
            if r.link != link.index {
                continue;
            }
            let dst = IpCidr::new(ip(r.dst), r.prefix);
            let gw = ip(gw);
            if r.prefix == 0 {
                let added = match gw {
                    IpAddress::Ipv4(g) => iface.routes_mut().add_default_ipv4_route(g).is_ok(),
                    IpAddress::Ipv6(g) => iface.routes_mut().add_default_ipv6_route(g).is_ok(),
                };
                if !added {
                    log::warn!("netstack: no room for the default route via {gw}");
                }
            } else {
                iface.routes_mut().update(|t| {
                    if t.push(smoltcp::iface::Route {
                        cidr: dst,
                        via_router: gw,
                        preferred_until: None,
                        expires_at: None,
                    })
                    .is_err()
                    {
                        log::warn!("netstack: no room for the route to {dst} via {gw}");
                    }
                });
            }
            gateways.push((dst, gw));
        }
        // Longest prefix first, as routing picks.
        gateways.sort_by_key(|(c, _)| std::cmp::Reverse(c.prefix_len()));
        let netfilter = dev.netfilter.clone();
        let s = Arc::new(Stack {
            netfilter,
            inner: Mutex::new(Inner {
                link_index: Some(link.index),
                link_name: Some(link.name.clone()),
                ..Inner::new(iface, dev, cidrs, gateways, epoch)
            }),
            sleep: Sleep::Ppoll {
                link: fd,
                wake_rd,
                wake_wr,
            },
            forwards: super::forward::Forwards::default(),
        });
        s.spawn_poller()?;
        Ok(s)
    }

    fn spawn_poller(self: &Arc<Stack>) -> Result<(), Error> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("netstack".into())
            .spawn(move || Stack::run_poller(&weak))
            .map(drop)
            .map_err(Error::Thread)
    }

    /// The stack state; the caller pumps after changing it.
    /// Joins the stack to its namespace's loopback addresses, which it follows, and TUN/TAP
    /// links: SO_BINDTODEVICE names them, and a loopback-only stack routes to their
    /// networks and takes the packets written to them.
    pub fn attach(self: &Arc<Self>, tun: &Arc<super::tun::Devices>, loopback: &Arc<LoopbackAddrs>) {
        let mut g = self.lock();
        g.tun = tun.clone();
        g.loopback = loopback.clone();
        let stack = Arc::downgrade(self);
        loopback.on_change(Arc::new(move || {
            if let Some(s) = stack.upgrade() {
                s.lock().sync_addrs();
            }
        }));
        if g.dev.is_loopback_only() {
            g.dev.tun = Some(tun.clone());
            tun.set_hooks(Arc::new(TunHooks {
                stack: Arc::downgrade(self),
            }));
        }
        g.sync_addrs();
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the poller to re-read the next timer.
    pub fn kick(&self) {
        match &self.sleep {
            Sleep::Condvar(c) => c.notify_one(),
            // A full pipe already holds a wake-up.
            Sleep::Ppoll { wake_wr, .. } => drop(rustix::io::write(wake_wr, &[1])),
        }
    }

    /// Runs the link and the TCP timers until the stack is dropped (it holds the stack only
    /// while polling, so the last socket and the namespace going away end it within
    /// IDLE_POLL).
    fn run_poller(stack: &Weak<Stack>) {
        while let Some(s) = stack.upgrade() {
            let mut g = s.lock();
            g.pump();
            if g.dev.exhausted() {
                // More frames wait: another round, after letting the sockets at the lock.
                drop(g);
                std::thread::yield_now();
                continue;
            }
            let now = g.now();
            let inner = &mut *g;
            let delay = inner
                .iface
                .poll_delay(now, &inner.set)
                .map_or(IDLE_POLL, |d| {
                    std::time::Duration::from_micros(d.total_micros()).min(IDLE_POLL)
                });
            match &s.sleep {
                Sleep::Condvar(c) => drop(c.wait_timeout(g, delay)),
                Sleep::Ppoll { link, wake_rd, .. } => {
                    drop(g);
                    let mut fds = [
                        nix::poll::PollFd::new(link.as_fd(), nix::poll::PollFlags::POLLIN),
                        nix::poll::PollFd::new(wake_rd.as_fd(), nix::poll::PollFlags::POLLIN),
                    ];
                    let timeout = nix::sys::time::TimeSpec::from_duration(delay);
                    if let Err(e) = nix::poll::ppoll(&mut fds, Some(timeout), None) {
                        if e != nix::errno::Errno::EINTR {
                            log::error!("netstack: ppoll: {e}");
                            std::thread::sleep(delay);
                        }
                    }
                    let mut buf = [0u8; 64];
                    while matches!(rustix::io::read(wake_rd, &mut buf), Ok(n) if n > 0) {}
                }
            }
        }
    }
}

fn seed(epoch: std::time::Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64 ^ u64::from(std::process::id())
}

fn is_loopback(a: IpAddress) -> bool {
    IpAddr::from(a).is_loopback()
}

/// Whether the TCP state is past the handshake.
fn synchronized(s: tcp::State) -> bool {
    !matches!(
        s,
        tcp::State::Closed | tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived
    )
}

/// A fresh TCP socket.
fn tcp_socket(nodelay: bool) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
    );
    // Delayed ACKs add latency to request and response traffic and slow the peer's window
    // growth; an ACK costs little on a loopback or a local link.
    s.set_ack_delay(None);
    s.set_nagle_enabled(!nodelay);
    s
}

impl Inner {
    /// The netfilter tables the stack's packets pass.
    pub fn netfilter(&self) -> &super::netfilter::Netfilter {
        &self.dev.netfilter
    }

    /// The state of a stack on `iface` and `dev` with the link's addresses `link_cidrs`
    /// and the loopback's first ones.
    fn new(
        iface: Interface,
        dev: Device,
        link_cidrs: Vec<IpCidr>,
        gateways: Vec<(IpCidr, IpAddress)>,
        epoch: std::time::Instant,
    ) -> Inner {
        let mut set = SocketSet::new(Vec::new());
        let icmp_errors = [
            (IpVersion::Ipv4, IpProtocol::Icmp),
            (IpVersion::Ipv6, IpProtocol::Icmpv6),
        ]
        .map(|(version, protocol)| {
            // Drained after every poll: room for one poll's worth of ICMP messages.
            let rx = raw::PacketBuffer::new(
                vec![raw::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; ICMP_ERRORS_BUF],
            );
            let tx = raw::PacketBuffer::new(Vec::new(), Vec::new());
            set.add(raw::Socket::new(Some(version), Some(protocol), rx, tx))
        });
        let mut inner = Inner {
            iface,
            dev,
            set,
            entries: HashMap::new(),
            base_cidrs: link_cidrs,
            cidrs: Vec::new(),
            loopback: Arc::default(),
            gateways,
            ports: HashMap::new(),
            probes: Vec::new(),
            fast_reuseport: HashMap::new(),
            next_ephemeral: EPHEMERAL.0,
            port_range: EPHEMERAL,
            link_index: None,
            link_name: None,
            tun: Arc::default(),
            orphans: Vec::new(),
            ghosts: HashMap::new(),
            deferred: HashMap::new(),
            arrivals: Vec::new(),
            epoch,
            mib: Mib::default(),
            tcp_states: TcpStates::default(),
            icmp_errors,
        };
        inner.sync_addrs();
        inner
    }

    /// The stack's counters as `/proc/net/snmp` shows them now.
    pub fn counters(&self) -> Mib {
        Mib {
            curr_estab: super::mib::curr_estab(&self.set),
            ..self.mib.clone()
        }
    }

    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Re-reads the loopback's addresses and those of the TUN/TAP links that are up
    /// (loopback-only stacks): they become the interface's, after the link's, and the TUN/TAP
    /// links' networks are routed through them. smoltcp holds unicast addresses only (as
    /// many as it has room for); the IPv4 networks on the loopback are local whole.
    pub fn sync_addrs(&mut self) {
        let loopback: Vec<IpCidr> = self
            .loopback
            .get()
            .into_iter()
            .map(|a| IpCidr::new(ip(a.ip), a.prefix))
            .collect();
        let routes: Vec<(IpCidr, i32)> = if self.dev.is_loopback_only() {
            self.tun
                .up_addrs()
                .into_iter()
                .map(|(i, a)| (IpCidr::new(IpAddress::from(a.ip), a.prefix), i))
                .collect()
        } else {
            Vec::new()
        };
        let mut cidrs = self.base_cidrs.clone();
        cidrs.extend(&loopback);
        cidrs.extend(routes.iter().map(|r| r.0));
        cidrs.retain(|c| c.address().is_unicast());
        cidrs.truncate(smoltcp::config::IFACE_MAX_ADDR_COUNT);
        self.dev.local = Local {
            cidrs: cidrs.clone(),
            loopback_nets: loopback
                .into_iter()
                .filter(|c| matches!(c, IpCidr::Ipv4(_)) && c.address().is_unicast())
                .collect(),
        };
        self.iface.update_ip_addrs(|a| {
            a.clear();
            for c in &cidrs {
                // Bounded by the truncation above.
                let _ = a.push(*c);
            }
        });
        self.cidrs = cidrs;
        self.dev.tun_routes = routes;
    }

    /// The interface's addresses with their networks.
    pub fn cidrs(&self) -> &[IpCidr] {
        &self.cidrs
    }

    /// The entries holding `port` of `proto`, in the order they bound it.
    pub fn port_holders(&self, proto: Proto, port: u16) -> Vec<u64> {
        self.ports.get(&(proto, port)).cloned().unwrap_or_default()
    }

    /// Whether `addr` is one of the stack's own addresses, or of a network on the loopback
    /// (local whole, as 127.0.0.0/8).
    pub fn is_own(&self, addr: IpAddress) -> bool {
        self.dev.local.contains(addr)
    }

    /// Whether `addr` is reached on the loopback: one of the loopback's networks (IPv4),
    /// or ::1.
    pub fn on_loopback(&self, addr: IpAddress) -> bool {
        self.loopback_net(addr).is_some() || addr == IpAddress::Ipv6(Ipv6Address::LOCALHOST)
    }

    /// The loopback network holding `addr`, the longest prefix first.
    fn loopback_net(&self, addr: IpAddress) -> Option<&IpCidr> {
        self.dev
            .local
            .loopback_nets
            .iter()
            .filter(|c| c.contains_addr(&addr))
            .max_by_key(|c| c.prefix_len())
    }

    /// The error for a destination without a route: EADDRNOTAVAIL for IPv6 when the stack
    /// has no IPv6 address to send from (Linux finds no source before a route), else
    /// ENETUNREACH.
    pub fn unreachable(&self, dst: IpAddress) -> Errno {
        let has_source = self
            .cidrs
            .iter()
            .any(|c| c.address().version() == dst.version());
        if dst.version() == smoltcp::wire::IpVersion::Ipv6 && !has_source {
            Errno::EADDRNOTAVAIL
        } else {
            Errno::ENETUNREACH
        }
    }

    /// Where `dst` is reached; `None`: no route (ENETUNREACH).
    pub fn hop(&self, dst: IpAddress) -> Option<Hop> {
        if self.is_own(dst) {
            return Some(Hop::Inside);
        }
        if is_loopback(dst) {
            // 127/8 and ::1 never reach the link, even with the loopback's addresses gone.
            return None;
        }
        if self.cidrs.iter().any(|c| c.contains_addr(&dst)) {
            return Some(Hop::Link(dst));
        }
        self.gateways
            .iter()
            .find(|(c, _)| c.contains_addr(&dst))
            .map(|&(_, gw)| Hop::Link(gw))
    }

    /// The source address Linux would choose for `dst`: the address itself for one of
    /// ours, the loopback's address of a network on the loopback (127.0.0.1 for 127.0.0.5),
    /// else our address on `dst`'s network or the first one of its family on the link.
    pub fn source_for(&self, dst: IpAddress) -> IpAddress {
        if self.cidrs.iter().any(|c| c.address() == dst) {
            return dst;
        }
        if let Some(net) = self.loopback_net(dst) {
            return net.address();
        }
        if is_loopback(dst) {
            return dst;
        }
        let same_family = |c: &&IpCidr| c.address().version() == dst.version();
        self.cidrs
            .iter()
            .filter(same_family)
            .find(|c| c.contains_addr(&dst))
            .or_else(|| {
                self.cidrs
                    .iter()
                    .filter(same_family)
                    .find(|c| !is_loopback(c.address()))
            })
            .map_or(dst, IpCidr::address)
    }

    /// A new smoltcp TCP socket.
    pub fn new_tcp(&mut self, nodelay: bool) -> SocketHandle {
        self.set.add(tcp_socket(nodelay))
    }

    /// A new smoltcp UDP socket bound to `addr` (`None`: every address) and `port`.
    pub fn new_udp(&mut self, addr: Option<IpAddress>, port: u16) -> SocketHandle {
        let buf = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BUF],
            )
        };
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(IpListenEndpoint { addr, port })
            .expect("a nonzero port");
        self.set.add(s)
    }
    /// A new smoltcp ICMP socket for echo identifier `ident`.
    pub fn new_icmp(&mut self, ident: u16) -> SocketHandle {
        let buf = || {
            icmp::PacketBuffer::new(
                vec![icmp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BUF],
            )
        };
        let mut s = icmp::Socket::new(buf(), buf());
        s.bind(icmp::Endpoint::Ident(ident))
            .expect("an unbound socket");
        self.set.add(s)
    }

    /// A new smoltcp raw socket of IP `version` and `protocol` (`None`: every protocol)
    /// whose receive buffer holds `rcvbuf` bytes of packets.
    pub fn new_raw(
        &mut self,
        version: smoltcp::wire::IpVersion,
        protocol: Option<smoltcp::wire::IpProtocol>,
        rcvbuf: usize,
    ) -> SocketHandle {
        // Linux takes a packet while less than SO_RCVBUF is queued, so one as large as the
        // buffer fits an empty one: room for SO_RCVBUF and a packet's headers.
        let rx = raw::PacketBuffer::new(
            vec![raw::PacketMetadata::EMPTY; (rcvbuf / 256).clamp(8, 1024)],
            vec![0; rcvbuf + 64],
        );
        let tx = raw::PacketBuffer::new(
            vec![raw::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BUF],
        );
        self.set
            .add(raw::Socket::new(Some(version), protocol, rx, tx))
    }

    pub fn raw(&mut self, h: SocketHandle) -> &mut raw::Socket<'static> {
        self.set.get_mut::<raw::Socket>(h)
    }

    pub fn icmp(&mut self, h: SocketHandle) -> &mut icmp::Socket<'static> {
        self.set.get_mut::<icmp::Socket>(h)
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(h)
    }

    pub fn udp(&mut self, h: SocketHandle) -> &mut udp::Socket<'static> {
        self.set.get_mut::<udp::Socket>(h)
    }

    /// Takes `port` (0: an ephemeral one) for entry `id`, alone.
    ///
    /// # Errors
    /// EADDRINUSE when held, EADDRNOTAVAIL when no ephemeral port is free.
    pub fn take_port(&mut self, proto: Proto, port: u16, id: u64) -> Result<u16, Errno> {
        if port != 0 {
            let holders = self.ports.entry((proto, port)).or_default();
            if !holders.is_empty() {
                return Err(Errno::EADDRINUSE);
            }
            holders.push(id);
            return Ok(port);
        }
        self.ephemeral(proto, id)
    }

    /// A free ephemeral port, taken for `id`.
    fn ephemeral(&mut self, proto: Proto, id: u64) -> Result<u16, Errno> {
        self.scan_ephemeral(proto, id, |g, p| {
            g.ports.get(&(proto, p)).is_none_or(Vec::is_empty)
        })
    }

    /// The next ephemeral port from the rover that `usable` accepts, taken for `id`.
    fn scan_ephemeral(
        &mut self,
        proto: Proto,
        id: u64,
        usable: impl Fn(&Self, u16) -> bool,
    ) -> Result<u16, Errno> {
        let (lo, hi) = self.port_range;
        let span = u32::from(hi - lo) + 1;
        if !(lo..=hi).contains(&self.next_ephemeral) {
            self.next_ephemeral = lo;
        }
        for _ in 0..span {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= hi { lo } else { p + 1 };
            if usable(self, p) {
                self.ports.entry((proto, p)).or_default().push(id);
                return Ok(p);
            }
        }
        Err(Errno::EADDRNOTAVAIL)
    }

    /// Binds TCP entry `id`, unbound, to an ephemeral port for its connect to `remote`, as
    /// Linux's `inet_hash_connect`: a free port, or one held only by other connections
    /// that took theirs this way, none of them to `remote` (one closing in TIME_WAIT
    /// excepted: [`Inner::clear_tuple`] recycles it). A bind(2) to port 0 never takes
    /// such a shared port ([`Inner::ephemeral`]).
    ///
    /// # Errors
    /// EADDRNOTAVAIL when no port is left.
    pub fn connect_port(&mut self, id: u64, remote: IpEndpoint) -> Result<u16, Errno> {
        let port = self.scan_ephemeral(Proto::Tcp, id, |g, p| {
            let holders = g.ports.get(&(Proto::Tcp, p)).map_or(&[][..], Vec::as_slice);
            holders
                .iter()
                .all(|&o| g.holder(o).is_some_and(|e| e.connect_bound))
                && !g.connected_from(p, remote)
        })?;
        let e = self.entries.get_mut(&id).expect("present");
        e.bound = Some((None, port));
        e.owns_port = true;
        e.connect_bound = true;
        Ok(port)
    }

    /// Whether a connection from local port `port` to `remote` exists and is not a
    /// closed file's in TIME_WAIT.
    fn connected_from(&self, port: u16, remote: IpEndpoint) -> bool {
        self.set.iter().any(|(h, sock)| {
            let smoltcp::socket::Socket::Tcp(s) = sock else {
                return false;
            };
            s.local_endpoint().is_some_and(|l| l.port == port)
                && s.remote_endpoint() == Some(remote)
                && !matches!(s.state(), tcp::State::Closed | tcp::State::Listen)
                && !(s.state() == tcp::State::TimeWait && self.orphans.iter().any(|o| o.h == h))
        })
    }

    /// Binds wildcard-bound entry `id` to `source`, the address its connect sends from, as
    /// Linux sets a socket's receive address at connect: the port is then held at that
    /// address only, so other addresses (127.0.0.1 beside ::1) may still bind it. A later
    /// connect (UDP) replaces a source an earlier one chose.
    pub fn bind_source(&mut self, id: u64, source: IpAddress) {
        let e = self.entries.get_mut(&id).expect("present");
        if let Some((addr, _)) = &mut e.bound {
            if addr.is_none() || e.source_from_connect {
                *addr = Some(source);
                e.source_from_connect = true;
            }
        }
    }

    /// The ephemeral port range.
    pub fn port_range(&self) -> (u16, u16) {
        self.port_range
    }

    /// Sets the ephemeral port range, as a write to `ip_local_port_range`.
    ///
    /// # Errors
    /// EINVAL for a range that ends before it starts or starts below 1024.
    pub fn set_port_range(&mut self, lo: u16, hi: u16) -> Result<(), Errno> {
        if hi < lo || lo < PORT_RANGE_MIN {
            return Err(Errno::EINVAL);
        }
        self.port_range = (lo, hi);
        Ok(())
    }

    /// The entry `id` of an open socket, or of a closed one whose connection still holds
    /// its port.
    fn holder(&self, id: u64) -> Option<&Entry> {
        self.entries.get(&id).or_else(|| self.ghosts.get(&id))
    }

    /// Entry `id` (also a port holder, see [`Inner::holder`]) takes `port` too: an accepted
    /// connection holds its listener's port, as in Linux, until it is closed.
    pub fn hold_port(&mut self, proto: Proto, port: u16, id: u64) {
        self.ports.entry((proto, port)).or_default().push(id);
    }

    /// The binding of `e` at `addr` for port sharing: family, IPV6_V6ONLY, address.
    fn binding(e: &Entry, addr: Option<IpAddress>) -> (i32, bool, Option<IpAddress>) {
        (e.family, v6only(e), addr)
    }

    /// Whether entry `other`, holding the port at `at`, keeps `id` from binding `addr`
    /// there, by Linux's rules: no conflict unless the addresses overlap; none when both
    /// set SO_REUSEPORT, nor (TCP) when both set SO_REUSEADDR and `other` is not
    /// listening, nor (UDP) when both set SO_REUSEADDR.
    fn conflicts(&self, id: u64, addr: Option<IpAddress>, other: u64) -> bool {
        self.clashes(id, addr, other) && !self.both_reuse_port(id, other)
    }

    /// Whether entries `id` and `other` both set SO_REUSEPORT.
    fn both_reuse_port(&self, id: u64, other: u64) -> bool {
        let (Some(me), Some(o)) = (self.entries.get(&id), self.holder(other)) else {
            return false;
        };
        me.opts.reuse_port && o.opts.reuse_port
    }

    /// [`Inner::conflicts`] without SO_REUSEPORT: whether `other` keeps `id` from binding
    /// `addr` unless both set it.
    fn clashes(&self, id: u64, addr: Option<IpAddress>, other: u64) -> bool {
        let (Some(me), Some(o)) = (self.entries.get(&id), self.holder(other)) else {
            return false;
        };
        let Some((oaddr, _)) = o.bound else {
            return false;
        };
        if !overlap(Self::binding(me, addr), Self::binding(o, oaddr)) {
            return false;
        }
        // Sockets bound to different devices do not share addresses.
        if me.bound_dev != 0 && o.bound_dev != 0 && me.bound_dev != o.bound_dev {
            return false;
        }
        let listening = matches!(o.st, St::Listening { .. });
        !(me.opts.reuse_addr && o.opts.reuse_addr && (me.proto == Proto::Udp || !listening))
    }

    /// Takes `port` (0: an ephemeral one) at `addr` (`None`: the wildcard) for entry `id`,
    /// shared with the sockets holding it as SO_REUSEADDR and SO_REUSEPORT allow.
    ///
    /// # Errors
    /// EADDRINUSE when held, EADDRNOTAVAIL when no ephemeral port is free.
    pub fn bind_port(
        &mut self,
        proto: Proto,
        addr: Option<IpAddress>,
        port: u16,
        id: u64,
    ) -> Result<u16, Errno> {
        if port == 0 && proto == Proto::Udp {
            // Linux's UDP takes a port whose holders it may share as readily as a free one
            // (`udp_lib_get_port`); TCP only a free one (`inet_csk_find_open_port`).
            return self.scan_ephemeral(proto, id, |g, p| {
                g.ports
                    .get(&(proto, p))
                    .is_none_or(|holders| !holders.iter().any(|&o| g.conflicts(id, addr, o)))
            });
        }
        if port == 0 {
            return self.ephemeral(proto, id);
        }
        let holders = self.ports.get(&(proto, port)).cloned().unwrap_or_default();
        let reuse_port = self.entries.get(&id).is_some_and(|e| e.opts.reuse_port);
        let free = match proto {
            // Linux's `udp_lib_lport_inuse` goes through the holders newest first and stops
            // at the first it clashes with: the port is free when both set SO_REUSEPORT,
            // whatever older holders would say.
            Proto::Udp => holders
                .iter()
                .rev()
                .find(|&&o| self.clashes(id, addr, o))
                .is_none_or(|&o| self.both_reuse_port(id, o)),
            _ => !holders.iter().any(|&o| self.conflicts(id, addr, o)),
        };
        // TCP skips the conflict check on its port's SO_REUSEPORT fast path
        // (`inet_csk_get_port`), which may let in a socket an older holder would refuse.
        let fast = proto == Proto::Tcp
            && !holders.is_empty()
            && reuse_port
            && match self.fast_reuseport.get(&port) {
                Some(FastReuseport::Any) => true,
                Some(FastReuseport::Strict(a)) => a.is_none() || *a == addr,
                _ => false,
            };
        if !free && !fast {
            return Err(Errno::EADDRINUSE);
        }
        if proto == Proto::Tcp {
            // Linux's `inet_csk_update_fastreuse`.
            let state = match (holders.is_empty(), reuse_port) {
                (true, true) => Some(FastReuseport::Any),
                (_, false) => Some(FastReuseport::Off),
                (false, true) if !fast => Some(FastReuseport::Strict(addr)),
                (false, true) => None,
            };
            if let Some(state) = state {
                self.fast_reuseport.insert(port, state);
            }
        }
        self.ports.entry((proto, port)).or_default().push(id);
        Ok(port)
    }

    /// Whether a raw IP socket takes a copy of packets of `proto` (that protocol, or every
    /// protocol), or a packet socket exists. Datagrams (UDP) and echoes (ICMP) inside the
    /// sandbox then go through smoltcp and the device, which hand those sockets their
    /// copies, instead of the sentry's own delivery ([`super::udp`], [`super::icmp`]).
    pub fn copies_wanted(&self, proto: smoltcp::wire::IpProtocol) -> bool {
        !self.dev.taps.is_empty()
            || self.entries.values().any(|e| match e.st {
                St::Raw(h) => self
                    .set
                    .get::<raw::Socket>(h)
                    .ip_protocol()
                    .is_none_or(|p| p == proto),
                _ => false,
            })
    }

    /// Starts entry `id`'s connect from `local` to port 0 of `remote` through next hop
    /// `hop`, which has not answered yet ([`St::Resolving`]): its SYN goes out now.
    pub fn connect_resolving(
        &mut self,
        id: u64,
        local: IpEndpoint,
        remote: IpAddress,
        hop: IpAddress,
        hop_limit: u8,
    ) {
        let syn = syn_packet(local, IpEndpoint::new(remote, 0), hop_limit);
        // A SYN that cannot leave is lost, as Linux's may be.
        let _ = self.send_ip(&syn);
        let now = self.now();
        let e = self.entries.get_mut(&id).expect("present");
        e.st = St::Resolving {
            since: now,
            hop,
            syn,
            sent: now,
        };
    }

    /// Whether next hop `hop` has answered (ARP, neighbour discovery or any packet).
    pub fn heard_from(&self, hop: IpAddress) -> bool {
        self.dev.heard_from(&hop)
    }

    /// The TOS and traffic class of the packets the device handed the stack lately.
    pub fn classes(&self) -> &super::raw::Classes {
        &self.dev.classes
    }

    /// The TOS and traffic class of the packets raw sockets sent, for the device to put
    /// back as they leave.
    pub fn sent_classes(&mut self) -> &mut super::raw::Classes {
        &mut self.dev.sent_classes
    }

    /// The packet sockets' taps on the device ([`super::packet`]).
    pub fn taps(&mut self) -> &mut super::packet::Taps {
        &mut self.dev.taps
    }

    /// The link's hardware address (`None`: loopback only).
    pub fn link_mac(&self) -> Option<[u8; 6]> {
        self.dev.link().map(|l| l.0)
    }

    /// The link's MTU (the loopback's when there is no link).
    pub fn link_mtu(&self) -> usize {
        self.dev
            .link()
            .map_or(super::config::LOOPBACK_MTU as usize, |l| l.1)
    }

    /// Sends a packet socket's frame on `iface` ([`Device::send_frame`]); the caller pumps.
    pub fn send_frame(&mut self, iface: super::packet::Iface, frame: Vec<u8>, sender: u64) {
        self.dev.send_frame(iface, frame, sender);
    }

    /// Whether listening on entry `id`'s port would take connections another listener
    /// there takes (both listening on overlapping addresses without both setting
    /// SO_REUSEPORT): Linux's EADDRINUSE from listen(2).
    pub fn listen_conflict(&self, id: u64) -> bool {
        let Some((addr, port)) = self.entries[&id].bound else {
            return false;
        };
        let holders = self
            .ports
            .get(&(Proto::Tcp, port))
            .cloned()
            .unwrap_or_default();
        let me = &self.entries[&id];
        holders.iter().filter(|&&o| o != id).any(|&o| {
            let Some(other) = self.entries.get(&o) else {
                return false;
            };
            matches!(other.st, St::Listening { .. })
                && !(me.opts.reuse_port && other.opts.reuse_port)
                && overlap(
                    Self::binding(me, addr),
                    Self::binding(other, other.bound.and_then(|b| b.0)),
                )
        })
    }

    /// Ends entry `id`'s listening: the connections not accepted yet are reset, the socket
    /// is as if bound only, and its waiters wake.
    pub fn stop_listening(&mut self, id: u64) {
        let e = self.entries.get_mut(&id).expect("present");
        if let St::Listening { waiting, ready, .. } = std::mem::replace(&mut e.st, St::Idle) {
            for h in waiting.into_iter().chain(ready) {
                self.set.get_mut::<tcp::Socket>(h).abort();
                self.orphans.push(Orphan::new(h));
            }
        }
        self.entries[&id].queue.notify_all();
    }

    /// Abandons entry `id`'s handshake: the connection is reset and the socket fails with
    /// `err`.
    pub fn abort_connecting(&mut self, id: u64, err: Errno) {
        let e = self.entries.get_mut(&id).expect("present");
        match std::mem::replace(&mut e.st, St::Failed) {
            St::Connecting { h, .. } => {
                e.error = Some(err);
                self.set.get_mut::<tcp::Socket>(h).abort();
                self.orphans.push(Orphan::new(h));
            }
            St::Resolving { .. } => e.error = Some(err),
            _ => {}
        }
        self.entries[&id].queue.notify_all();
    }

    /// Whether `h` is a connection whose file is closed, still finishing its close.
    pub fn is_orphan(&self, h: SocketHandle) -> bool {
        self.orphans.iter().any(|o| o.h == h)
    }

    /// A UDP disconnect of entry `id`: the peer is forgotten and, unless bound
    /// explicitly to a port or an address, so is the port the connect or a send took.
    pub fn udp_disconnect(&mut self, id: u64) {
        let e = self.entries.get_mut(&id).expect("present");
        e.udp_peer = None;
        if std::mem::take(&mut e.source_from_connect) {
            if let Some((addr, _)) = &mut e.bound {
                *addr = None;
            }
        }
        if e.port_locked || !matches!(e.bound, Some((None, _))) || !e.owns_port {
            return;
        }
        let (_, port) = e.bound.take().expect("bound");
        e.owns_port = false;
        if let St::Udp(h) = std::mem::replace(&mut e.st, St::Idle) {
            self.set.remove(h);
        }
        self.release_port(Proto::Udp, port, id);
    }

    /// Gives up entry `id`'s hold on `port`.
    fn release_port(&mut self, proto: Proto, port: u16, id: u64) {
        release(&mut self.ports, proto, port, id);
    }

    /// Removes entry `id` (its file closed): connections close (reset when unread data
    /// remains), listeners reset their pending connections, the port is released (a
    /// connection's once it is closed: FIN_WAIT and TIME_WAIT hold it, as in Linux).
    pub fn remove(&mut self, id: u64) {
        // What TCP_CORK held goes out before the FIN, as Linux's close sends it.
        super::inet::push_corked(self, id, true);
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        let connection = matches!(e.st, St::Connected(_) | St::Connecting { .. });
        if e.owns_port && !connection {
            if let Some((_, port)) = e.bound {
                self.release_port(e.proto, port, id);
            }
        }
        match e.st {
            St::Connected(h) | St::Connecting { h, .. } => {
                let s = self.tcp(h);
                // Unread data, or SO_LINGER with a zero time: a reset.
                if s.can_recv() || e.opts.linger == Some(0) {
                    s.abort();
                } else {
                    s.close();
                }
                let local = s.local_endpoint();
                let linger2 = e.opts.linger2;
                let ghost = e.owns_port.then_some(id);
                if e.owns_port {
                    // A connection holds its port at its own address (Linux's bind table
                    // has the source address once connected), not the wildcard it bound.
                    let mut e = e;
                    if let (Some(l), Some((_, port))) = (local, e.bound) {
                        e.bound = Some((Some(l.addr), port));
                    }
                    self.ghosts.insert(id, e);
                }
                self.orphans.push(Orphan {
                    ghost,
                    linger2,
                    ..Orphan::new(h)
                });
            }
            St::Listening { waiting, ready, .. } => {
                for h in waiting.into_iter().chain(ready) {
                    self.tcp(h).abort();
                    self.orphans.push(Orphan::new(h));
                }
            }
            St::Udp(h) | St::Icmp(h) | St::Raw(h) => {
                self.set.remove(h);
            }
            St::Idle | St::Failed | St::Resolving { .. } => {}
        }
        self.pump();
    }

    /// Polls the interface in rounds of a bounded number of frames, settling the sockets
    /// after each (so listeners replenish between SYNs), until nothing moves.
    pub fn pump(&mut self) {
        // What the operation that pumps changed (a connect, a close, an abort) is seen
        // before the poll moves it further.
        self.tcp_states.observe(&mut self.mib, &self.set);
        for _ in 0..MAX_ROUNDS {
            self.dev.refill();
            let now = self.now();
            let mib = RefCell::new(std::mem::take(&mut self.mib));
            let mut dev = Counted {
                dev: &mut self.dev,
                mib: &mib,
            };
            let r = self.iface.poll(now, &mut dev, &mut self.set);
            self.mib = mib.into_inner();
            self.icmp_errors_arrived();
            self.tcp_states.observe(&mut self.mib, &self.set);
            self.settle();
            if r == PollResult::None && !self.dev.exhausted() && !self.dev.has_looped() {
                break;
            }
        }
        for syn in std::mem::take(&mut self.probes) {
            // A packet that cannot leave is lost, as a probe may be.
            let _ = self.send_ip(&syn);
        }
    }

    /// Sends `packet`, a whole IP packet, through a smoltcp raw socket of its version and
    /// protocol made for the one send (smoltcp writes its IP header again and resolves
    /// its next hop).
    ///
    /// # Errors
    /// EMSGSIZE when smoltcp cannot take it.
    pub fn send_ip(&mut self, packet: &[u8]) -> Result<(), Errno> {
        let (version, proto) = match packet.first().map(|b| b >> 4) {
            Some(6) if packet.len() > 6 => (IpVersion::Ipv6, packet[6]),
            Some(4) if packet.len() > 9 => (IpVersion::Ipv4, packet[9]),
            _ => return Err(Errno::EINVAL),
        };
        // (Its receive buffer holds nothing, so it takes no packet from anyone.)
        let once = self.set.add(raw::Socket::new(
            Some(version),
            Some(IpProtocol::from(proto)),
            raw::PacketBuffer::new(Vec::new(), Vec::new()),
            raw::PacketBuffer::new(vec![raw::PacketMetadata::EMPTY; 1], vec![0; packet.len()]),
        ));
        let r = self.raw(once).send_slice(packet);
        self.pump();
        self.set.remove(once);
        r.map_err(|_| Errno::EMSGSIZE)
    }

    /// Hands each ICMP message the poll received to [`super::udp::icmp_arrived`].
    fn icmp_errors_arrived(&mut self) {
        let mut arrived = Vec::new();
        for h in self.icmp_errors {
            while let Ok(packet) = self.set.get_mut::<raw::Socket>(h).recv() {
                arrived.push(packet.to_vec());
            }
        }
        for packet in arrived {
            super::udp::icmp_arrived(self, &packet);
        }
    }

    /// Moves sockets along after a poll and notifies the wait queues that have news.
    fn settle(&mut self) {
        // One clock read for the whole pass: it visits every socket.
        let at = self.now();
        let set = &mut self.set;
        let mut gone = Vec::new();
        self.orphans.retain_mut(|o| {
            let s = set.get_mut::<tcp::Socket>(o.h);
            if s.can_recv() {
                // Data for a closed file: Linux answers with a reset.
                s.abort();
            }
            if s.state() == tcp::State::FinWait2 {
                // Linux ends an orphaned FIN_WAIT2 after TCP_LINGER2 (tcp_fin_timeout)
                // quietly, or at once with a reset when TCP_LINGER2 is negative.
                let since = *o.fin_wait2_since.get_or_insert(at);
                if o.linger2 < 0 {
                    s.abort();
                } else if at - since >= Duration::from_secs(o.linger2.unsigned_abs().into()) {
                    set.remove(o.h);
                    gone.extend(o.ghost);
                    return false;
                }
            }
            // An aborted connection keeps its addresses until its reset is sent.
            if s.state() == tcp::State::Closed && (s.remote_endpoint().is_none() || o.reset_pending)
            {
                set.remove(o.h);
                gone.extend(o.ghost);
                false
            } else {
                o.reset_pending = s.state() == tcp::State::Closed;
                true
            }
        });
        for id in gone {
            self.drop_ghost(id);
        }
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for &id in &ids {
            self.advance(id, at);
        }
        self.place_arrivals();
        let mut full = Vec::new();
        let mut filters = Vec::new();
        for id in ids {
            let e = &self.entries[&id];
            filters.extend(super::inet::tcp_filter(&self.set, e));
            if let St::Listening { backlog, ready, .. } = &e.st {
                if ready.len() >= *backlog {
                    full.push(IpListenEndpoint {
                        addr: e.bound.and_then(|b| b.0),
                        port: e.bound.map_or(0, |b| b.1),
                    });
                }
            }
            let now = (
                readiness(&self.set, e),
                rx_len(&self.set, e),
                tx_len(&self.set, e),
            );
            let old = e.seen;
            if now == old {
                continue;
            }
            let q = e.queue.clone();
            let tcp_arrival = e.proto == Proto::Tcp && now.1 > old.1;
            let e = self.entries.get_mut(&id).expect("present");
            e.seen = now;
            if tcp_arrival {
                e.rx_at = Some(std::time::SystemTime::now());
            }
            let read_bits = (libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as u32;
            let write_bits = (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) as u32;
            let readable = (now.0 & !old.0 & read_bits) != 0 || now.1 > old.1;
            let writable = (now.0 & !old.0 & write_bits) != 0 || now.2 < old.2;
            match (readable, writable) {
                (true, true) => q.notify(Wake::Any),
                (true, false) => q.notify(Wake::Readable),
                (false, true) => q.notify(Wake::Writable),
                (false, false) => q.notify(Wake::Blocked),
            }
        }
        self.dev.full_listeners = full;
        self.dev.tcp_filters = filters;
    }

    /// Hands each connection that arrived on an SO_REUSEPORT listener to the member of
    /// the listener's group (the listening sockets of the same family with SO_REUSEPORT on
    /// the same address and port) that its peer's address and port hash to, as Linux
    /// spreads a reuseport group's connections; a connection stays with its member once
    /// queued. SO_BINDTODEVICE counts as in Linux's listener lookup (`compute_score`): a
    /// listener bound to another interface than the one the connection came in by takes
    /// none, and listeners bound to that interface go before unbound ones; a connection no
    /// listener takes is reset.
    fn place_arrivals(&mut self) {
        for (id, h) in std::mem::take(&mut self.arrivals) {
            let me = &self.entries[&id];
            let local = self.set.get::<tcp::Socket>(h).local_endpoint();
            let dev = match local.map(|l| l.addr) {
                Some(a) if self.on_loopback(a) => Some(LOOPBACK_INDEX),
                _ => self.link_index,
            };
            let mut group: Vec<(u64, bool)> = self
                .entries
                .iter()
                .filter(|(_, o)| {
                    o.opts.reuse_port
                        && o.family == me.family
                        && o.bound == me.bound
                        && matches!(o.st, St::Listening { .. })
                        && (o.bound_dev == 0 || Some(o.bound_dev) == dev)
                })
                .map(|(&o, e)| (o, e.bound_dev != 0))
                .collect();
            if group.iter().any(|&(_, bound)| bound) {
                group.retain(|&(_, bound)| bound);
            }
            let mut group: Vec<u64> = group.into_iter().map(|(o, _)| o).collect();
            group.sort_unstable();
            let peer = self.set.get::<tcp::Socket>(h).remote_endpoint();
            let target = match (group.len(), peer) {
                (0, _) => {
                    self.tcp(h).abort();
                    self.orphans.push(Orphan::new(h));
                    continue;
                }
                (2.., Some(peer)) => {
                    let mut hasher = std::hash::DefaultHasher::new();
                    std::hash::Hash::hash(&(peer.addr, peer.port), &mut hasher);
                    let pick = std::hash::Hasher::finish(&hasher) % group.len() as u64;
                    group[pick as usize]
                }
                _ => group[0],
            };
            match &mut self.entries.get_mut(&target).expect("present").st {
                St::Listening { ready, .. } => ready.push_back(h),
                // Unreachable (the group holds listeners only, and so did `id` when it
                // queued the connection this pass); never leak the connection.
                _ => {
                    self.tcp(h).abort();
                    self.orphans.push(Orphan::new(h));
                }
            }
        }
    }

    /// Forgets the closed entry `id`, releasing its port.
    fn drop_ghost(&mut self, id: u64) {
        if let Some(e) = self.ghosts.remove(&id) {
            if let Some((_, port)) = e.bound {
                release(&mut self.ports, e.proto, port, id);
            }
        }
    }

    /// Makes way for a connection from `local` to `remote` (one of the stack's own
    /// addresses when `inside`), as Linux treats an existing connection with the same
    /// addresses and ports: on this side, one in TIME_WAIT is reused (tcp_tw_reuse, which
    /// Linux allows on the loopback) and any other makes the connect fail; on the far side
    /// (when inside), one in TIME_WAIT takes the new SYN as a new connection and ends, and
    /// any other is reset (its challenge ACK draws a reset from the connecting side).
    ///
    /// # Errors
    /// EADDRNOTAVAIL when this side already has that connection.
    pub fn clear_tuple(
        &mut self,
        local: smoltcp::wire::IpEndpoint,
        remote: smoltcp::wire::IpEndpoint,
        inside: bool,
    ) -> Result<(), Errno> {
        let mut recycle = Vec::new();
        let mut reset = Vec::new();
        for (h, sock) in self.set.iter() {
            let smoltcp::socket::Socket::Tcp(s) = sock else {
                continue;
            };
            if matches!(s.state(), tcp::State::Closed | tcp::State::Listen) {
                continue;
            }
            let (Some(l), Some(r)) = (s.local_endpoint(), s.remote_endpoint()) else {
                continue;
            };
            let time_wait = s.state() == tcp::State::TimeWait;
            let orphan = self.orphans.iter().any(|o| o.h == h);
            if l == local && r == remote {
                if time_wait && orphan {
                    recycle.push(h);
                } else {
                    return Err(Errno::EADDRNOTAVAIL);
                }
            } else if inside && l == remote && r == local {
                if time_wait && orphan {
                    recycle.push(h);
                } else {
                    reset.push(h);
                }
            }
        }
        for h in reset {
            self.tcp(h).abort();
        }
        for h in recycle {
            let Some(i) = self.orphans.iter().position(|o| o.h == h) else {
                continue;
            };
            let o = self.orphans.swap_remove(i);
            self.set.remove(h);
            if let Some(id) = o.ghost {
                self.drop_ghost(id);
            }
        }
        Ok(())
    }

    /// Listener upkeep and connect completion for entry `id`.
    fn advance(&mut self, id: u64, now: Instant) {
        super::inet::push_corked(self, id, false);
        let bound = self.entries[&id].bound;
        let port = bound.map_or(0, |b| b.1);
        let listen_at = IpListenEndpoint {
            addr: bound.and_then(|b| b.0),
            port,
        };
        let nodelay = self.entries[&id].nodelay;
        let defer = Duration::from_secs(self.entries[&id].opts.defer_accept.max(0) as u64);
        let reuse_port = self.entries[&id].opts.reuse_port;
        let e = self.entries.get_mut(&id).expect("present");
        match &mut e.st {
            St::Connecting { h, since, hop } => {
                let (h, since, hop) = (*h, *since, *hop);
                let s = self.set.get_mut::<tcp::Socket>(h);
                let state = s.state();
                let elapsed = now - since;
                let unresolved = hop.is_some_and(|a| !self.dev.heard_from(&a));
                let failure = if synchronized(state) {
                    e.opts.apply(s, e.nodelay);
                    e.st = St::Connected(h);
                    None
                } else if state == tcp::State::Closed {
                    Some(if elapsed >= e.opts.connect_timeout() {
                        Errno::ETIMEDOUT
                    } else {
                        Errno::ECONNREFUSED
                    })
                } else if state == tcp::State::SynSent && unresolved && elapsed >= RESOLVE_TIMEOUT {
                    Some(Errno::EHOSTUNREACH)
                } else {
                    None
                };
                if let Some(err) = failure {
                    self.set.remove(h);
                    fail_connect(e, &mut self.ports, id, port, err);
                }
            }
            St::Resolving {
                since,
                hop,
                syn,
                sent,
            } => {
                let failure = if self.dev.heard_from(hop) {
                    Some(Errno::ECONNREFUSED)
                } else if now - *since >= RESOLVE_TIMEOUT {
                    Some(Errno::EHOSTUNREACH)
                } else {
                    None
                };
                if let Some(err) = failure {
                    fail_connect(e, &mut self.ports, id, port, err);
                } else if now - *sent >= PROBE_INTERVAL {
                    *sent = now;
                    self.probes.push(syn.clone());
                }
            }
            St::Connected(h) => {
                let state = self.set.get::<tcp::Socket>(*h).state();
                match state {
                    tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait => e.fin_seen = true,
                    // Closed without the peer's FIN, or before we sent ours: a reset.
                    tcp::State::Closed if !(e.reset || (e.fin_seen && e.wr_shut)) => {
                        e.reset = true;
                        e.error = Some(if e.fin_seen {
                            Errno::EPIPE
                        } else {
                            Errno::ECONNRESET
                        });
                    }
                    _ => {}
                }
            }
            St::Listening {
                backlog,
                waiting,
                ready,
            } => {
                let mut i = 0;
                while i < waiting.len() {
                    let s = self.set.get_mut::<tcp::Socket>(waiting[i]);
                    match s.state() {
                        tcp::State::Listen | tcp::State::SynReceived => i += 1,
                        tcp::State::Closed => {
                            // A handshake that failed: listen again.
                            self.deferred.remove(&waiting[i]);
                            let _ = s.listen(listen_at);
                            i += 1;
                        }
                        // TCP_DEFER_ACCEPT: an established connection without data waits
                        // for its first data (or the peer's FIN), at most the option's time.
                        tcp::State::Established if defer > Duration::ZERO && !s.can_recv() => {
                            let since = *self.deferred.entry(waiting[i]).or_insert(now);
                            if now - since >= defer {
                                self.deferred.remove(&waiting[i]);
                                let h = waiting.swap_remove(i);
                                if reuse_port {
                                    self.arrivals.push((id, h));
                                } else {
                                    ready.push_back(h);
                                }
                            } else {
                                i += 1;
                            }
                        }
                        _ => {
                            self.deferred.remove(&waiting[i]);
                            let h = waiting.swap_remove(i);
                            if reuse_port {
                                self.arrivals.push((id, h));
                            } else {
                                ready.push_back(h);
                            }
                        }
                    }
                }
                // Enough sockets listen for the SYNs of one poll round (up to the backlog),
                // so that no connection within the backlog is refused; one always listens,
                // so a connection beyond it waits in the handshake rather than being reset.
                let target = (*backlog)
                    .saturating_sub(ready.len())
                    .clamp(1, SPARE_LISTENERS);
                let held = waiting
                    .iter()
                    .filter(|h| self.deferred.contains_key(h))
                    .count();
                let mut fresh = Vec::new();
                while waiting.len() - held + fresh.len() < target {
                    let mut s = tcp_socket(nodelay);
                    if s.listen(listen_at).is_err() {
                        break;
                    }
                    fresh.push(s);
                }
                for s in fresh {
                    waiting.push(self.set.add(s));
                }
            }
            _ => {}
        }
    }

    /// Starts listening with `backlog`.
    pub fn listen(&mut self, id: u64, backlog: i32) {
        // Linux caps the backlog at somaxconn and takes connections while fewer than
        // backlog + 1 wait in the accept queue.
        let backlog = usize::try_from(backlog).unwrap_or(0).min(MAX_BACKLOG) + 1;
        let e = self.entries.get_mut(&id).expect("present");
        match &mut e.st {
            St::Listening { backlog: b, .. } => *b = backlog,
            _ => {
                e.st = St::Listening {
                    backlog,
                    waiting: Vec::new(),
                    ready: VecDeque::new(),
                }
            }
        }
        self.pump();
    }
}

/// Takes `id` off the holders of `port`.
/// The SYN of a TCP connect from `local` to `remote`, with the options Linux's carries
/// (MSS, SACK, window scaling) and a random initial sequence number.
fn syn_packet(local: IpEndpoint, remote: IpEndpoint, hop_limit: u8) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpRepr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};
    let mut isn = [0u8; 4];
    // A zero sequence number stands in when no random bytes come (nothing depends on it).
    let _ = rustix::rand::getrandom(&mut isn, rustix::rand::GetRandomFlags::empty());
    let tcp = TcpRepr {
        src_port: local.port,
        dst_port: remote.port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(i32::from_ne_bytes(isn)),
        ack_number: None,
        window_len: u16::MAX,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = IpRepr::new(
        local.addr,
        remote.addr,
        IpProtocol::Tcp,
        tcp.buffer_len(),
        hop_limit,
    );
    let caps = ChecksumCapabilities::default();
    let mut p = vec![0; ip.header_len() + tcp.buffer_len()];
    ip.emit(&mut p[..], &caps);
    let at = ip.header_len();
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut p[at..]),
        &local.addr,
        &remote.addr,
        &caps,
    );
    p
}

/// Ends the connect of entry `e` (`id`, on TCP port `port`) with `err`; the port it took
/// for it is free again.
fn fail_connect(
    e: &mut Entry,
    ports: &mut HashMap<(Proto, u16), Vec<u64>>,
    id: u64,
    port: u16,
    err: Errno,
) {
    e.st = St::Failed;
    e.error = Some(err);
    if e.owns_port {
        e.owns_port = false;
        e.bound = None;
        e.connect_bound = false;
        release(ports, Proto::Tcp, port, id);
    }
}

fn release(ports: &mut HashMap<(Proto, u16), Vec<u64>>, proto: Proto, port: u16, id: u64) {
    if let Some(holders) = ports.get_mut(&(proto, port)) {
        holders.retain(|&h| h != id);
        if holders.is_empty() {
            ports.remove(&(proto, port));
        }
    }
}

/// Bytes waiting to be read.
pub fn rx_len(set: &SocketSet<'static>, e: &Entry) -> usize {
    match e.st {
        St::Connected(h) => set.get::<tcp::Socket>(h).recv_queue(),
        St::Udp(h) => set.get::<udp::Socket>(h).recv_queue() + e.dgram_bytes,
        St::Icmp(h) => set.get::<icmp::Socket>(h).recv_queue() + e.dgram_bytes,
        St::Raw(h) => set.get::<raw::Socket>(h).recv_queue(),
        St::Listening { ref ready, .. } => ready.len(),
        _ => 0,
    }
}

fn tx_len(set: &SocketSet<'static>, e: &Entry) -> usize {
    match e.st {
        St::Connected(h) => set.get::<tcp::Socket>(h).send_queue() + e.corked.len(),
        _ => 0,
    }
}

/// The poll(2) events of entry `e`.
pub fn readiness(set: &SocketSet<'static>, e: &Entry) -> u32 {
    let rd = libc::POLLIN | libc::POLLRDNORM;
    let wr = libc::POLLOUT | libc::POLLWRNORM;
    let mut r = 0;
    if e.error.is_some() || !e.errors.is_empty() {
        r |= libc::POLLERR;
    }
    match e.st {
        St::Idle => {
            if e.proto == Proto::Tcp {
                r |= wr | libc::POLLHUP;
            } else {
                r |= wr;
            }
        }
        // Linux's failed connect is shut down both ways (`tcp_done`): readable (end of
        // file), writable (the error), hung up.
        St::Failed => r |= rd | wr | libc::POLLRDHUP | libc::POLLHUP,
        St::Listening { ref ready, .. } => {
            if !ready.is_empty() {
                r |= rd;
            }
        }
        St::Connecting { .. } | St::Resolving { .. } => {}
        St::Connected(h) => {
            let s = set.get::<tcp::Socket>(h);
            let state = s.state();
            let peer_done = !s.may_recv();
            if s.recv_queue() >= e.opts.rcvlowat.max(1) || peer_done || e.rd_shut {
                r |= rd;
            }
            if peer_done || e.rd_shut {
                r |= libc::POLLRDHUP;
            }
            if state == tcp::State::Closed || (peer_done && e.wr_shut) {
                r |= libc::POLLHUP;
            }
            if !e.wr_shut && (s.can_send() || state == tcp::State::Closed) {
                r |= wr;
            }
        }
        St::Udp(h) => {
            let s = set.get::<udp::Socket>(h);
            if s.can_recv() || !e.dgrams.is_empty() {
                r |= rd;
            }
            if s.can_send() {
                r |= wr;
            }
        }
        St::Icmp(h) => {
            let s = set.get::<icmp::Socket>(h);
            if s.can_recv() || !e.dgrams.is_empty() {
                r |= rd;
            }
            if s.can_send() {
                r |= wr;
            }
        }
        St::Raw(h) => {
            let s = set.get::<raw::Socket>(h);
            if s.can_recv() {
                r |= rd;
            }
            if s.can_send() {
                r |= wr;
            }
        }
    }
    r as u32
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    use super::*;
    use crate::net::config::{Addr, Link};

    /// Host `n` of 10.251.0.0/24 and fd00:251::/64.
    fn config(n: u8) -> NetConfig {
        NetConfig {
            links: vec![Link {
                name: "eth0".into(),
                index: 2,
                mac: [2, 0, 0, 0, 0, n],
                mtu: 1500,
                flags: (libc::IFF_UP | libc::IFF_RUNNING) as u32,
                addrs: vec![
                    Addr {
                        ip: IpAddr::V4(Ipv4Addr::new(10, 251, 0, n)),
                        prefix: 24,
                    },
                    Addr {
                        ip: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x251, 0, 0, 0, 0, 0, n.into())),
                        prefix: 64,
                    },
                ],
            }],
            routes: Vec::new(),
        }
    }

    /// Two stacks, hosts 1 and 2, on a wire (a datagram socket pair standing in for the
    /// packet sockets of a veth pair).
    fn wire() -> (Arc<Stack>, Arc<Stack>) {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        (
            Stack::start_on_link(&config(1), vec![a]).unwrap(),
            Stack::start_on_link(&config(2), vec![b]).unwrap(),
        )
    }

    /// Waits (the pollers run) until `f` holds on the stack's state, at most 5 s.
    fn until(s: &Stack, mut f: impl FnMut(&mut Inner) -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let mut g = s.lock();
            g.pump();
            if f(&mut g) {
                return true;
            }
            drop(g);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }

    fn listen(s: &Stack, port: u16) -> SocketHandle {
        let mut t = tcp_socket(true);
        t.listen(port).unwrap();
        s.lock().set.add(t)
    }

    fn connect(s: &Stack, to: IpAddress, port: u16) -> SocketHandle {
        let mut g = s.lock();
        let g = &mut *g;
        let h = g.new_tcp(true);
        let src = g.source_for(to);
        let cx = g.iface.context();
        g.set
            .get_mut::<tcp::Socket>(h)
            .connect(cx, (to, port), (src, 40000 + port))
            .unwrap();
        g.pump();
        h
    }

    fn established(g: &mut Inner, h: SocketHandle) -> bool {
        g.tcp(h).state() == tcp::State::Established
    }

    #[test]
    fn tcp_crosses_the_link_after_arp_and_neighbour_discovery() {
        let (a, b) = wire();
        for (to, port) in [
            (IpAddress::v4(10, 251, 0, 2), 80),
            (IpAddress::v6(0xfd00, 0x251, 0, 0, 0, 0, 0, 2), 81),
        ] {
            let l = listen(&b, port);
            let c = connect(&a, to, port);
            assert!(until(&a, |g| established(g, c)), "connect to {to}");
            assert!(until(&b, |g| established(g, l)));
            a.lock().tcp(c).send_slice(b"ping").unwrap();
            a.kick();
            let mut got = Vec::new();
            assert!(until(&b, |g| {
                let mut buf = [0; 16];
                let n = g.tcp(l).recv_slice(&mut buf).unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
                got == b"ping"
            }));
            // The source is our address on the peer's network.
            let local = a.lock().tcp(c).local_endpoint().unwrap().addr;
            assert_eq!(local.version(), to.version());
            assert!(a.lock().is_own(local));
        }
    }

    #[test]
    fn ephemeral_ports_come_from_the_configured_range() {
        let s = Stack::start();
        let mut g = s.lock();
        assert_eq!(g.port_range(), EPHEMERAL);
        assert_eq!(g.set_port_range(2000, 1999), Err(Errno::EINVAL));
        assert_eq!(g.set_port_range(80, 2000), Err(Errno::EINVAL));
        g.set_port_range(40000, 40001).unwrap();
        let a = g.take_port(Proto::Udp, 0, 1).unwrap();
        let b = g.take_port(Proto::Udp, 0, 2).unwrap();
        assert_eq!([a.min(b), a.max(b)], [40000, 40001]);
        assert_eq!(g.take_port(Proto::Udp, 0, 3), Err(Errno::EADDRNOTAVAIL));
    }

    #[test]
    fn own_addresses_stay_inside() {
        let (a, _b) = wire();
        for (to, port) in [
            (IpAddress::v4(10, 251, 0, 1), 90),
            (IpAddress::v4(127, 0, 0, 1), 91),
            (IpAddress::Ipv6(Ipv6Addr::LOCALHOST), 92),
            (IpAddress::v6(0xfd00, 0x251, 0, 0, 0, 0, 0, 1), 93),
        ] {
            let l = listen(&a, port);
            let c = connect(&a, to, port);
            assert!(
                until(&a, |g| established(g, c) && established(g, l)),
                "{to}"
            );
            let g = a.lock();
            assert_eq!(
                g.set.get::<tcp::Socket>(c).local_endpoint().unwrap().addr,
                to
            );
        }
    }

    #[test]
    fn the_stack_answers_echo_requests() {
        let (a, _b) = wire();
        for to in [
            IpAddress::v4(10, 251, 0, 2),
            IpAddress::v4(10, 251, 0, 1),
            IpAddress::v4(127, 0, 0, 1),
        ] {
            let h = a.lock().new_icmp(7);
            let req = [8u8, 0, 0, 0, 0, 7, 0, 1, b'x'];
            a.lock().icmp(h).send_slice(&req, to).unwrap();
            a.kick();
            assert!(
                until(&a, |g| {
                    // An echo to ourselves also shows the request: skip it.
                    matches!(g.icmp(h).recv(), Ok((d, from)) if d[0] == 0 && from == to)
                }),
                "echo reply from {to}"
            );
            a.lock().set.remove(h);
        }
    }

    #[test]
    fn routes_pick_the_next_hop() {
        let mut c = config(1);
        c.routes.push(crate::net::config::Route {
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix: 0,
            gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 251, 0, 254))),
            link: 2,
            metric: 0,
        });
        let (fd, _peer) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let s = Stack::start_on_link(&c, vec![fd]).unwrap();
        let g = s.lock();
        let gw = IpAddress::v4(10, 251, 0, 254);
        assert_eq!(g.hop(IpAddress::v4(192, 0, 2, 1)), Some(Hop::Link(gw)));
        assert_eq!(
            g.hop(IpAddress::v4(10, 251, 0, 7)),
            Some(Hop::Link(IpAddress::v4(10, 251, 0, 7)))
        );
        assert_eq!(g.hop(IpAddress::v4(10, 251, 0, 1)), Some(Hop::Inside));
        // No IPv6 default route.
        assert_eq!(g.hop(IpAddress::v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), None);
        assert_eq!(
            g.source_for(IpAddress::v4(192, 0, 2, 1)),
            IpAddress::v4(10, 251, 0, 1)
        );
    }

    /// Copies frames between veth0's packet socket and the datagram socket whose fd number
    /// is its argument, so the stack under test sees the real link (the kernel's checksum
    /// and segmentation offloads included).
    const RELAY: &str = r"
import select, socket, sys
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
p.bind(('veth0', 0))
u = socket.socket(fileno=int(sys.argv[1]))
while True:
    r, _, _ = select.select([p, u], [], [])
    if p in r:
        d, a = p.recvfrom(70000)
        if a[2] != socket.PACKET_OUTGOING:
            u.send(d)
    if u in r:
        p.send(u.recv(70000))
";

    /// Sends 3 MiB to 10.251.0.1:7, then prints what comes back.
    const CLIENT: &str = r"
import socket
s = socket.create_connection(('10.251.0.1', 7), timeout=20)
s.sendall(bytes(range(256)) * 12288)
s.shutdown(socket.SHUT_WR)
got = b''
while True:
    d = s.recv(100)
    if not d:
        break
    got += d
print(got.decode())
";

    /// The stack on one end of a veth pair, the kernel on the other, in a network namespace
    /// of the test thread's own: the kernel's ping and TCP reach the stack and back.
    #[test]
    fn the_kernel_talks_to_the_stack_over_a_veth() {
        use std::os::fd::AsRawFd;
        use std::process::Command;
        let py = "/usr/bin/python3";
        if !nix::unistd::geteuid().is_root() || !std::path::Path::new(py).exists() {
            eprintln!("SKIPPED: needs root and {py}");
            return;
        }
        std::thread::spawn(move || {
            // Only this thread (and what it starts) enters the new namespace.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let sh = |cmd: &str| {
                let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
                assert!(st.success(), "{cmd}");
            };
            sh("ip link add veth0 type veth peer name veth1 && \
                ip addr add 10.251.0.2/24 dev veth1 && \
                ip link set veth0 up && ip link set veth1 up && ip link set lo up");
            // (/sys shows the namespace it was mounted in: ask ip.)
            let link = Command::new("ip")
                .args(["-o", "link", "show", "veth0"])
                .output()
                .unwrap();
            let link = String::from_utf8_lossy(&link.stdout).to_string();
            let mac_text = link
                .split("link/ether ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or_else(|| panic!("no MAC in {link}"));
            let mut mac = [0u8; 6];
            for (m, h) in mac.iter_mut().zip(mac_text.split(':')) {
                *m = u8::from_str_radix(h, 16).unwrap();
            }
            // Without CLOEXEC: the relay inherits its end under the same number.
            let (ours, theirs) = socketpair(
                AddressFamily::Unix,
                SockType::Datagram,
                None,
                SockFlag::empty(),
            )
            .unwrap();
            let mut relay = Command::new(py)
                .arg("-c")
                .arg(RELAY)
                .arg(theirs.as_raw_fd().to_string())
                .spawn()
                .unwrap();
            drop(theirs);
            let mut c = config(1);
            c.links[0].mac = mac;
            let s = Stack::start_on_link(&c, vec![ours]).unwrap();

            let ping = Command::new("/bin/busybox")
                .args(["ping", "-c", "2", "-W", "5", "10.251.0.1"])
                .output()
                .unwrap();
            let ping_text = String::from_utf8_lossy(&ping.stdout).to_string();

            let l = listen(&s, 7);
            let client = Command::new(py)
                .arg("-c")
                .arg(CLIENT)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut count = 0usize;
            let served = until(&s, |g| {
                let t = g.tcp(l);
                let mut buf = [0u8; 65536];
                while let Ok(n) = t.recv_slice(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    count += n;
                }
                if t.state() == tcp::State::CloseWait {
                    t.send_slice(format!("got {count}").as_bytes()).unwrap();
                    t.close();
                    return true;
                }
                false
            });
            let out = client.wait_with_output().unwrap();
            let _ = relay.kill();
            let _ = relay.wait();
            drop(s);
            assert!(ping_text.contains("2 packets received"), "{ping_text}");
            assert!(served, "the stack got {count} bytes");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "got 3145728\n");
        })
        .join()
        .unwrap();
    }
}
