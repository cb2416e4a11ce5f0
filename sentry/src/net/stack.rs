//! The sandbox's internet stack: one smoltcp [`Interface`] on a loopback device holding
//! 127.0.0.1/8, its socket set, and the bookkeeping of the sentry's AF_INET sockets
//! ([`super::inet`]).
//!
//! Everything lives behind one mutex ([`Stack::lock`]). Every socket operation runs with it
//! held and ends with [`Inner::pump`]: the interface is polled until the loopback device
//! has nothing left to deliver, then [`Inner::settle`] moves sockets along (a listener's
//! established connections into its accept queue, a finished `connect`) and notifies each
//! socket's wait queue whose readiness or queued bytes changed. A background thread polls
//! at smoltcp's `poll_delay` for the TCP timers (retransmission, TIME_WAIT); operations
//! kick it so that it re-reads the delay. It needs no host system call beyond a thread and
//! a futex.
//!
//! Each network namespace ([`super::Namespace`], owned by the kernel) has its own stack;
//! its poller thread ends once the stack is gone.
//!
//! # Lock order
//! `Stack::inner` → a socket's `WaitQueue` (notified under the stack lock; waking takes no
//! stack lock).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::abi::Errno;
use crate::waiter::{WaitQueue, Wake};

/// Bytes of each TCP socket's receive and send buffers.
pub const TCP_BUF: usize = 256 * 1024;
/// Payload bytes of each UDP socket's receive and send buffers.
const UDP_BUF: usize = 256 * 1024;
/// Datagrams each UDP buffer holds.
const UDP_PACKETS: usize = 64;
/// Most listening smoltcp sockets (each takes one connection) a listener keeps.
const MAX_BACKLOG: usize = 16;
/// First and last ephemeral port (Linux's `ip_local_port_range`).
const EPHEMERAL: (u16, u16) = (32768, 60999);
/// Longest the poller sleeps without a timer due.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Most interface polls one pump makes (each moves the loopback queue one step).
const MAX_POLLS: usize = 1024;

/// The transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A socket's connection state.
#[derive(Debug)]
pub enum St {
    /// Fresh (possibly bound).
    Idle,
    /// Listening: smoltcp sockets waiting for a SYN and established ones to accept.
    Listening {
        backlog: usize,
        waiting: Vec<SocketHandle>,
        ready: VecDeque<SocketHandle>,
    },
    /// A TCP handshake under way.
    Connecting(SocketHandle),
    /// A TCP connection (possibly closed by now).
    Connected(SocketHandle),
    /// A UDP socket with its port.
    Udp(SocketHandle),
    /// A connect that failed; the error is in `Entry::error` until read.
    Failed,
}

/// One sentry socket.
#[derive(Debug)]
pub struct Entry {
    pub proto: Proto,
    pub queue: Arc<WaitQueue>,
    /// The address and port bound (the address may be 0.0.0.0).
    pub bound: Option<(Ipv4Address, u16)>,
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
    /// A connected UDP socket's peer.
    pub udp_peer: Option<(Ipv4Address, u16)>,
    pub nodelay: bool,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Options recorded only, by (level, name).
    pub options: HashMap<(i32, i32), Vec<u8>>,
    /// Readiness and queue lengths at the last notification.
    seen: (u32, usize, usize),
}

impl Entry {
    pub fn new(proto: Proto, queue: Arc<WaitQueue>) -> Entry {
        Entry {
            proto,
            queue,
            bound: None,
            owns_port: false,
            st: St::Idle,
            rd_shut: false,
            wr_shut: false,
            fin_seen: false,
            reset: false,
            error: None,
            udp_peer: None,
            nodelay: false,
            rcvbuf: super::unix::DEFAULT_BUF,
            sndbuf: super::unix::DEFAULT_BUF,
            options: HashMap::new(),
            seen: (0, 0, 0),
        }
    }
}

/// The stack state behind the lock.
pub struct Inner {
    pub iface: Interface,
    dev: Loopback,
    pub set: SocketSet<'static>,
    pub entries: HashMap<u64, Entry>,
    /// Ports held, per protocol.
    ports: HashMap<(Proto, u16), u64>,
    next_ephemeral: u16,
    /// TCP sockets whose file is closed, finishing their close before removal.
    orphans: Vec<SocketHandle>,
    epoch: std::time::Instant,
}

/// The stack and its poller's wake-up.
pub struct Stack {
    inner: Mutex<Inner>,
    kick: Condvar,
}

impl Stack {
    /// A new stack with its poller thread.
    pub fn start() -> Arc<Stack> {
        let s = Arc::new(Stack::new());
        let weak = Arc::downgrade(&s);
        if let Err(e) = std::thread::Builder::new()
            .name("netstack".into())
            .spawn(move || Stack::run_poller(&weak))
        {
            log::error!("netstack: cannot start the poller thread: {e}; TCP timers only run on socket operations");
        }
        s
    }

    fn new() -> Stack {
        let epoch = std::time::Instant::now();
        let mut dev = Loopback::new(Medium::Ip);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = epoch.elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
        let mut iface = Interface::new(config, &mut dev, Instant::from_micros(0));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
                .expect("room for one address");
        });
        Stack {
            inner: Mutex::new(Inner {
                iface,
                dev,
                set: SocketSet::new(Vec::new()),
                entries: HashMap::new(),
                ports: HashMap::new(),
                next_ephemeral: EPHEMERAL.0,
                orphans: Vec::new(),
                epoch,
            }),
            kick: Condvar::new(),
        }
    }

    /// The stack state; the caller pumps after changing it.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the poller to re-read the next timer.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Runs the TCP timers until the stack is dropped (it holds the stack only while
    /// polling, so the last socket and the namespace going away end it within IDLE_POLL).
    fn run_poller(stack: &Weak<Stack>) {
        while let Some(s) = stack.upgrade() {
            let mut g = s.lock();
            g.pump();
            let now = g.now();
            let inner = &mut *g;
            let delay = inner
                .iface
                .poll_delay(now, &inner.set)
                .map_or(IDLE_POLL, |d| {
                    std::time::Duration::from_micros(d.total_micros()).min(IDLE_POLL)
                });
            drop(s.kick.wait_timeout(g, delay));
        }
    }
}

/// Whether the TCP state is past the handshake.
fn synchronized(s: tcp::State) -> bool {
    !matches!(
        s,
        tcp::State::Closed | tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived
    )
}

impl Inner {
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// A new smoltcp TCP socket.
    pub fn new_tcp(&mut self, nodelay: bool) -> SocketHandle {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        );
        // Delayed ACKs only add latency on a loopback.
        s.set_ack_delay(None);
        s.set_nagle_enabled(!nodelay);
        self.set.add(s)
    }

    /// A new smoltcp UDP socket bound to `port`.
    pub fn new_udp(&mut self, port: u16) -> SocketHandle {
        let buf = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BUF],
            )
        };
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(port).expect("a nonzero port");
        self.set.add(s)
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(h)
    }

    pub fn udp(&mut self, h: SocketHandle) -> &mut udp::Socket<'static> {
        self.set.get_mut::<udp::Socket>(h)
    }

    /// Takes `port` (0: an ephemeral one) for entry `id`.
    ///
    /// # Errors
    /// EADDRINUSE when held, EADDRNOTAVAIL when no ephemeral port is free.
    pub fn take_port(&mut self, proto: Proto, port: u16, id: u64) -> Result<u16, Errno> {
        if port != 0 {
            return match self.ports.entry((proto, port)) {
                std::collections::hash_map::Entry::Occupied(_) => Err(Errno::EADDRINUSE),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(id);
                    Ok(port)
                }
            };
        }
        let span = EPHEMERAL.1 - EPHEMERAL.0 + 1;
        for _ in 0..span {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p == EPHEMERAL.1 { EPHEMERAL.0 } else { p + 1 };
            if let std::collections::hash_map::Entry::Vacant(v) = self.ports.entry((proto, p)) {
                v.insert(id);
                return Ok(p);
            }
        }
        Err(Errno::EADDRNOTAVAIL)
    }

    /// Removes entry `id` (its file closed): connections close (reset when unread data
    /// remains), listeners reset their pending connections, the port is released.
    pub fn remove(&mut self, id: u64) {
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        if e.owns_port {
            if let Some((_, port)) = e.bound {
                if self.ports.get(&(e.proto, port)) == Some(&id) {
                    self.ports.remove(&(e.proto, port));
                }
            }
        }
        match e.st {
            St::Connected(h) | St::Connecting(h) => {
                let s = self.tcp(h);
                if s.can_recv() {
                    s.abort();
                } else {
                    s.close();
                }
                self.orphans.push(h);
            }
            St::Listening { waiting, ready, .. } => {
                for h in waiting.into_iter().chain(ready) {
                    self.tcp(h).abort();
                    self.orphans.push(h);
                }
            }
            St::Udp(h) => {
                self.set.remove(h);
            }
            St::Idle | St::Failed => {}
        }
        self.pump();
    }

    /// Polls the interface until the loopback is drained, then settles the sockets.
    pub fn pump(&mut self) {
        for _ in 0..MAX_POLLS {
            let now = self.now();
            if self.iface.poll(now, &mut self.dev, &mut self.set) == PollResult::None {
                break;
            }
        }
        self.settle();
    }

    /// Moves sockets along after a poll and notifies the wait queues that have news.
    fn settle(&mut self) {
        let set = &mut self.set;
        self.orphans.retain(|&h| {
            let s = set.get_mut::<tcp::Socket>(h);
            if s.can_recv() {
                // Data for a closed file: Linux answers with a reset.
                s.abort();
            }
            if s.state() == tcp::State::Closed {
                set.remove(h);
                false
            } else {
                true
            }
        });
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            self.advance(id);
            let e = &self.entries[&id];
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
            self.entries.get_mut(&id).expect("present").seen = now;
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
    }

    /// Listener upkeep and connect completion for entry `id`.
    fn advance(&mut self, id: u64) {
        let port = self.entries[&id].bound.map_or(0, |b| b.1);
        let nodelay = self.entries[&id].nodelay;
        let e = self.entries.get_mut(&id).expect("present");
        match &mut e.st {
            St::Connecting(h) => {
                let h = *h;
                let state = self.set.get::<tcp::Socket>(h).state();
                if synchronized(state) {
                    e.st = St::Connected(h);
                } else if state == tcp::State::Closed {
                    e.st = St::Failed;
                    e.error = Some(Errno::ECONNREFUSED);
                    self.set.remove(h);
                    if e.owns_port {
                        e.owns_port = false;
                        e.bound = None;
                        self.ports.remove(&(Proto::Tcp, port));
                    }
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
                            let _ = s.listen(port);
                            i += 1;
                        }
                        _ => ready.push_back(waiting.swap_remove(i)),
                    }
                }
                // One socket always listens, so a connection beyond the backlog waits in
                // the handshake rather than being refused.
                let target = (*backlog).saturating_sub(ready.len()).max(1);
                let mut fresh = Vec::new();
                while waiting.len() + fresh.len() < target {
                    let mut s = tcp::Socket::new(
                        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
                        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
                    );
                    s.set_ack_delay(None);
                    s.set_nagle_enabled(!nodelay);
                    if s.listen(port).is_err() {
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
        let backlog = usize::try_from(backlog).unwrap_or(0).clamp(1, MAX_BACKLOG);
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

/// Bytes waiting to be read.
pub fn rx_len(set: &SocketSet<'static>, e: &Entry) -> usize {
    match e.st {
        St::Connected(h) => set.get::<tcp::Socket>(h).recv_queue(),
        St::Udp(h) => set.get::<udp::Socket>(h).recv_queue(),
        St::Listening { ref ready, .. } => ready.len(),
        _ => 0,
    }
}

fn tx_len(set: &SocketSet<'static>, e: &Entry) -> usize {
    match e.st {
        St::Connected(h) => set.get::<tcp::Socket>(h).send_queue(),
        _ => 0,
    }
}

/// The poll(2) events of entry `e`.
pub fn readiness(set: &SocketSet<'static>, e: &Entry) -> u32 {
    let rd = libc::POLLIN | libc::POLLRDNORM;
    let wr = libc::POLLOUT | libc::POLLWRNORM;
    let mut r = 0;
    if e.error.is_some() {
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
        St::Failed => r |= wr | libc::POLLHUP,
        St::Listening { ref ready, .. } => {
            if !ready.is_empty() {
                r |= rd;
            }
        }
        St::Connecting(_) => {}
        St::Connected(h) => {
            let s = set.get::<tcp::Socket>(h);
            let state = s.state();
            let peer_done = !s.may_recv();
            if s.can_recv() || peer_done || e.rd_shut {
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
