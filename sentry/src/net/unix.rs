//! AF_UNIX sockets, entirely inside the sentry: stream, datagram and seqpacket; socketpair;
//! names in the filesystem (a socket inode, found again by its device and inode number) and
//! in the abstract namespace; SCM_RIGHTS and SCM_CREDENTIALS; SO_PEERCRED; shutdown; the
//! ECONNRESET a peer sees when a connection closes with data unread or never accepted.
//!
//! Each socket file owns an [`Endpoint`]: its receive queue, connection state and wait queue.
//! A sender writes into the *peer's* receive queue, so a connected pair holds each other's
//! endpoint; closing the file breaks the cycle ([`Endpoint::close`]). Every change to an
//! endpoint notifies its own wait queue and its peer's (readers wait on their own queue,
//! writers on both), which is also what poll/epoll sleep on.
//!
//! # Lock order
//! `Names` maps → one `Endpoint::state` at a time: code never holds two endpoint locks, it
//! snapshots what it needs from one (the peer's `Arc`), releases it, then locks the other.
//! Messages (which may hold open files, even sockets) are never dropped under an endpoint
//! lock, because dropping the last reference to a socket file closes it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::unix_host::{HostConn, HostListener};
use super::{InMessage, IoFlags, OutMessage, Socket, Ucred};
use crate::abi::Errno;
use crate::vfs::inode::may_access;
use crate::vfs::{
    Caller, Context, Dentry, FileOps, FileType, NewAttrs, NewNode, OpenFile, Resolver, Stat,
};
use crate::vfs::{IoDst, IoSrc};
use crate::waiter::{WaitQueue, Wake};

/// Default SO_SNDBUF / SO_RCVBUF (Linux's `wmem_default`).
pub const DEFAULT_BUF: usize = 212_992;
/// The largest SO_SNDBUF / SO_RCVBUF an unprivileged AF_UNIX socket asks for, before
/// doubling: Linux clamps at `net.core.wmem_max`/`rmem_max`, which distributions commonly
/// set to 4 MiB (gVisor's AF_UNIX maximum too). Programs that send multi-megabyte records
/// count on it. The inet families keep Linux's built-in 212992 (see `inet::BUF_MAX`).
const UNIX_BUF_MAX: usize = 4 << 20;
/// The least SO_SNDBUF and SO_RCVBUF (Linux's SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF).
const MIN_SNDBUF: usize = 4608;
const MIN_RCVBUF: usize = 2304;
/// The first SOL_SOCKET option number past Linux's last (SO_RCVPRIORITY is 82).
const SO_UNKNOWN_FROM: i32 = 83;
/// Largest `sun_path`.
const SUN_PATH_MAX: usize = 108;
/// Most connections a listener queues (SOMAXCONN).
const SOMAXCONN: usize = 4096;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);
static NEXT_AUTOBIND: AtomicU64 = AtomicU64::new(1);

/// The socket type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Stream,
    Dgram,
    SeqPacket,
}

impl Kind {
    pub(super) fn sock_type(self) -> i32 {
        match self {
            Kind::Stream => libc::SOCK_STREAM,
            Kind::Dgram => libc::SOCK_DGRAM,
            Kind::SeqPacket => libc::SOCK_SEQPACKET,
        }
    }

    fn connection_oriented(self) -> bool {
        self != Kind::Dgram
    }
}

/// A socket name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Addr {
    /// A filesystem path (as given to bind, for getsockname) and the socket inode's
    /// (device, inode) identity.
    Path { path: Vec<u8>, key: (u64, u64) },
    /// The abstract namespace (the name without its leading NUL).
    Abstract(Vec<u8>),
}

impl Addr {
    /// As a `sockaddr_un` of the exact length Linux reports.
    pub fn to_sockaddr(&self) -> Vec<u8> {
        let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        match self {
            Addr::Path { path, .. } => {
                v.extend_from_slice(path);
                v.push(0);
            }
            Addr::Abstract(name) => {
                v.push(0);
                v.extend_from_slice(name);
            }
        }
        v
    }
}

/// An unnamed socket's `sockaddr`: just the family.
fn unnamed() -> Vec<u8> {
    (libc::AF_UNIX as u16).to_ne_bytes().to_vec()
}

/// A parsed `sockaddr_un`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    /// Only the family: autobind (bind) or EINVAL elsewhere.
    Unnamed,
    Path(Vec<u8>),
    Abstract(Vec<u8>),
}

fn parse(addr: &[u8]) -> Result<Name, Errno> {
    if addr.len() < 2 || addr.len() > 2 + SUN_PATH_MAX {
        return Err(Errno::EINVAL);
    }
    if u16::from_ne_bytes([addr[0], addr[1]]) != libc::AF_UNIX as u16 {
        return Err(Errno::EINVAL);
    }
    let path = &addr[2..];
    match path.first() {
        None => Ok(Name::Unnamed),
        Some(0) => Ok(Name::Abstract(path[1..].to_vec())),
        Some(_) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            Ok(Name::Path(path[..end].to_vec()))
        }
    }
}

/// The sandbox's socket names: who is bound to what.
#[derive(Debug, Default)]
pub struct Names {
    /// Abstract names and filesystem socket inodes, with the endpoint bound there.
    bound: Mutex<HashMap<NameKey, Weak<Endpoint>>>,
    /// Every endpoint of the namespace, for `/proc/net/unix` (dead ones pruned as the list
    /// doubles).
    live: Mutex<Vec<Weak<Endpoint>>>,
}

/// Where a bound socket is found. As Linux hashes abstract names together with the socket
/// type, each type has its own abstract namespace: a stream and a datagram socket may hold
/// the same abstract name, and connecting to an abstract name only finds sockets of the
/// caller's type (ECONNREFUSED otherwise, where a path finds the socket and says
/// EPROTOTYPE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum NameKey {
    Abstract(Vec<u8>, Kind),
    Inode(u64, u64),
}

impl NameKey {
    fn of(a: &Addr, kind: Kind) -> NameKey {
        match a {
            Addr::Path { key, .. } => NameKey::Inode(key.0, key.1),
            Addr::Abstract(n) => NameKey::Abstract(n.clone(), kind),
        }
    }
}

impl Names {
    /// Binds `ep` to `key` unless a live socket holds it.
    fn insert(&self, key: NameKey, ep: &Arc<Endpoint>) -> Result<(), Errno> {
        let mut m = self.bound.lock().unwrap();
        if m.get(&key)
            .and_then(Weak::upgrade)
            .is_some_and(|e| !e.is_closed())
        {
            return Err(Errno::EADDRINUSE);
        }
        m.insert(key, Arc::downgrade(ep));
        Ok(())
    }

    fn get(&self, key: &NameKey) -> Option<Arc<Endpoint>> {
        self.bound.lock().unwrap().get(key).and_then(Weak::upgrade)
    }

    fn register(&self, ep: &Arc<Endpoint>) {
        let mut live = self.live.lock().unwrap();
        if live.len().is_power_of_two() {
            live.retain(|w| w.strong_count() > 0);
        }
        live.push(Arc::downgrade(ep));
    }

    /// The open sockets, for `/proc/net/unix`, by inode.
    pub fn list(&self) -> Vec<Listed> {
        let eps: Vec<Arc<Endpoint>> = self
            .live
            .lock()
            .unwrap()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut out: Vec<Listed> = eps
            .iter()
            .filter_map(|ep| {
                let s = ep.lock();
                (!s.closed).then(|| Listed {
                    path: s.addr.clone().map(|a| match a {
                        Addr::Path { path, .. } => path,
                        Addr::Abstract(mut n) => {
                            n.insert(0, b'@');
                            n
                        }
                    }),
                    sock_type: ep.kind.sock_type(),
                    listening: matches!(s.conn, Conn::Listening { .. }),
                    connected: matches!(s.conn, Conn::Connected(_)),
                    ino: ep.ino,
                })
            })
            .collect();
        out.sort_by_key(|b| b.ino);
        out
    }

    fn remove(&self, key: &NameKey, ep: &Endpoint) {
        let mut m = self.bound.lock().unwrap();
        if m.get(key).is_some_and(|w| std::ptr::eq(w.as_ptr(), ep)) {
            m.remove(key);
        }
    }
}

/// A socket as `/proc/net/unix` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The path, or `@` and the abstract name; None when unnamed.
    pub path: Option<Vec<u8>>,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub sock_type: i32,
    pub listening: bool,
    pub connected: bool,
    pub ino: u64,
}

/// One queued message (a stream's send, a datagram, a seqpacket record).
struct Message {
    data: Vec<u8>,
    /// Bytes of `data` already read (streams read messages piecewise).
    read: usize,
    fds: Vec<Arc<OpenFile>>,
    /// The sender's credentials, recorded when it passed SCM_CREDENTIALS or either side had
    /// SO_PASSCRED at send time (as Linux's `unix_maybe_add_creds`); None reads as nobody.
    creds: Option<Ucred>,
    from: Option<Addr>,
    /// What the message counts against its sender's SO_SNDBUF until it is read or dropped.
    charge: Option<Charge>,
}

/// Largest skb head that fits one page with its shared info (Linux's `SKB_MAX_HEAD(0)`).
const SKB_MAX_HEAD: usize = 4096 - SKB_SHINFO;
/// Largest piece a stream send queues at once (Linux's skb head plus 32 KiB of pages).
const STREAM_CHUNK: usize = 32_768 + SKB_MAX_HEAD;
/// Largest datagram head before Linux moves the rest to pages (`SKB_MAX_ALLOC`), and the
/// most page bytes one skb carries (`MAX_SKB_FRAGS` pages).
const SKB_MAX_ALLOC: usize = (4096 << 2) - SKB_SHINFO;
const SKB_MAX_FRAG_BYTES: usize = 17 * 4096;
/// Cache-aligned sizes of Linux's `struct sk_buff` and `struct skb_shared_info`.
const SKB_STRUCT: usize = 256;
const SKB_SHINFO: usize = 320;

/// What Linux charges a sender's `sk_wmem_alloc` for one message of `len` bytes from a socket
/// of `kind` (the skb's truesize): the `struct sk_buff`, the head allocation rounded up to
/// its kmalloc size class (the shared info included) and whole pages for the rest, split as
/// `unix_dgram_sendmsg` (records) and `unix_stream_sendmsg` (a stream's pieces) split it.
/// This makes the number of messages SO_SNDBUF admits match Linux's.
fn truesize(kind: Kind, len: usize) -> usize {
    let page_align = |n: usize| n.div_ceil(4096) * 4096;
    let paged = match kind {
        Kind::Stream => len.min(page_align(len.saturating_sub(SKB_MAX_HEAD))),
        Kind::Dgram | Kind::SeqPacket if len > SKB_MAX_ALLOC => {
            page_align((len - SKB_MAX_ALLOC).min(SKB_MAX_FRAG_BYTES))
        }
        Kind::Dgram | Kind::SeqPacket => 0,
    };
    // kmalloc's power-of-two caches (the least that holds a shared info is 512 bytes), then
    // whole page orders: a power of two either way.
    let head = ((len - paged).next_multiple_of(64) + SKB_SHINFO).next_power_of_two();
    SKB_STRUCT + head + paged
}
/// net.unix.max_dgram_qlen: datagrams queued for a socket not connected back to the sender.
const MAX_DGRAM_QLEN: usize = 10;

/// Bytes a queued message holds of its sender's send buffer, given back (waking the sender)
/// when the message goes.
struct Charge {
    to: Weak<Endpoint>,
    bytes: usize,
}

impl Charge {
    fn new(sender: &Arc<Endpoint>, len: usize) -> Charge {
        let bytes = truesize(sender.kind, len);
        sender.wmem.fetch_add(bytes, Ordering::SeqCst);
        Charge {
            to: Arc::downgrade(sender),
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(e) = self.to.upgrade() {
            e.wmem.fetch_sub(self.bytes, Ordering::SeqCst);
            e.queue.notify(Wake::Writable);
        }
    }
}

/// What a receiver with SO_PASSCRED sees for a message sent without credentials: no pid and
/// the overflow uid and gid.
const NO_CREDS: Ucred = Ucred {
    pid: 0,
    uid: 65534,
    gid: 65534,
};

enum Conn {
    Unconnected,
    Listening {
        backlog: usize,
        /// Server-side endpoints of connections not yet accepted.
        pending: VecDeque<Arc<Endpoint>>,
    },
    /// Connected to (stream, seqpacket) or sending by default to (datagram) this endpoint.
    Connected(Arc<Endpoint>),
}

struct State {
    addr: Option<Addr>,
    /// The Landlock domain of the task that bound the socket (Linux: of its opener), which
    /// abstract-socket scoping compares with a connecting task's.
    landlock: Option<Arc<crate::auth::landlock::Domain>>,
    conn: Conn,
    rx: VecDeque<Message>,
    /// Unread bytes in `rx`.
    rx_bytes: usize,
    /// SHUT_RD here, or the peer shut down writing or closed.
    rcv_shut: bool,
    /// SHUT_WR here, or the peer shut down reading or closed.
    snd_shut: bool,
    /// The file is closed: nothing is delivered here any more.
    closed: bool,
    /// The pending socket error (Linux's `sk_err`): ECONNRESET when the peer closed with
    /// data unread or before accepting. Reported once, by a read that finds no data, a
    /// seqpacket send or SO_ERROR; POLLERR while pending.
    error: Option<Errno>,
    /// SO_PASSCRED.
    passcred: bool,
    /// A server-side endpoint not yet accepted (Linux records credentials on everything
    /// sent to it, as it has no socket whose SO_PASSCRED could say otherwise).
    embryo: bool,
    sndbuf: usize,
    rcvbuf: usize,
    /// SO_PEERCRED: the peer's credentials at connect (or at listen, for a client).
    peercred: Ucred,
    /// Credentials recorded at listen(2), handed to connecting clients.
    listen_cred: Ucred,
    /// The peer's name when connected.
    peer_addr: Option<Addr>,
    /// Other SOL_SOCKET options: recorded, reported back, without effect.
    options: BTreeMap<i32, Vec<u8>>,
    /// Bound to a host socket (`UnixSocket::host_listener`): connections to the name go
    /// through the host.
    host_bound: bool,
}

/// A socket's protocol state, shared with its peer.
pub struct Endpoint {
    kind: Kind,
    /// The socket file's inode number (its endpoint lives as long as the file).
    ino: u64,
    state: Mutex<State>,
    /// Bytes of this endpoint's messages still queued at receivers (Linux's `sk_wmem_alloc`),
    /// bounded by SO_SNDBUF.
    wmem: AtomicUsize,
    /// Notified on every change to this endpoint (data, space, connections, shutdown).
    queue: WaitQueue,
    names: Arc<Names>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn new(kind: Kind, names: Arc<Names>) -> Arc<Endpoint> {
        let ep = Arc::new(Endpoint {
            kind,
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State {
                addr: None,
                conn: Conn::Unconnected,
                rx: VecDeque::new(),
                rx_bytes: 0,
                rcv_shut: false,
                snd_shut: false,
                closed: false,
                error: None,
                passcred: false,
                embryo: false,
                sndbuf: DEFAULT_BUF,
                rcvbuf: DEFAULT_BUF,
                peercred: Ucred::NONE,
                listen_cred: Ucred::NONE,
                peer_addr: None,
                options: BTreeMap::new(),
                host_bound: false,
                landlock: None,
            }),
            wmem: AtomicUsize::new(0),
            queue: WaitQueue::new(),
            names: names.clone(),
        });
        names.register(&ep);
        ep
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Its socket file was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// When a wait starting now gives up under SO_RCVTIMEO or SO_SNDTIMEO (`name`): none set
    /// or a zero `struct timeval` waits without limit, a negative one not at all.
    fn deadline(&self, name: i32) -> Option<Instant> {
        let s = self.lock();
        let raw = s.options.get(&name)?;
        let sec = i64::from_ne_bytes(raw.get(..8)?.try_into().ok()?);
        let usec = i64::from_ne_bytes(raw.get(8..16)?.try_into().ok()?);
        match (sec, usec) {
            (0, 0) => None,
            (..0, _) => Some(Instant::now()),
            _ => {
                let d = Duration::new(sec as u64, (usec.clamp(0, 999_999) * 1000) as u32);
                Instant::now().checked_add(d)
            }
        }
    }

    fn peer(&self) -> Option<Arc<Endpoint>> {
        match &self.lock().conn {
            Conn::Connected(p) => Some(p.clone()),
            _ => None,
        }
    }

    /// Wakes whoever waits on this endpoint (about `mine`) and on its peer (about
    /// `theirs`).
    fn notify_pair(&self, peer: Option<&Arc<Endpoint>>, mine: Wake, theirs: Wake) {
        self.queue.notify(mine);
        if let Some(p) = peer {
            p.queue.notify(theirs);
        }
    }

    /// The file is closed: drop queued data and pending connections, tell the peer.
    fn close(&self) {
        let (rx, conn, addr, reset) = {
            let mut s = self.lock();
            // As Linux's `unix_release_sock`: the peer of a connection closed with data
            // unread, or never accepted, sees ECONNRESET.
            let reset = !s.rx.is_empty() || s.embryo;
            s.closed = true;
            s.rcv_shut = true;
            s.snd_shut = true;
            s.rx_bytes = 0;
            (
                std::mem::take(&mut s.rx),
                std::mem::replace(&mut s.conn, Conn::Unconnected),
                s.addr.clone(),
                reset,
            )
        };
        if let Some(a) = &addr {
            self.names.remove(&NameKey::of(a, self.kind), self);
        }
        self.queue.notify_all();
        match conn {
            Conn::Connected(peer) => {
                if self.kind.connection_oriented() {
                    let mut p = peer.lock();
                    p.rcv_shut = true;
                    p.snd_shut = true;
                    if reset {
                        p.error = Some(Errno::ECONNRESET);
                    }
                }
                peer.queue.notify_all();
            }
            Conn::Listening { pending, .. } => {
                for p in pending {
                    p.close();
                }
            }
            Conn::Unconnected => {}
        }
        drop(rx);
    }

    /// Appends a message to this endpoint's receive queue (the caller checked for room).
    fn push(&self, msg: Message) {
        let mut s = self.lock();
        s.rx_bytes += msg.data.len();
        s.rx.push_back(msg);
    }

    /// Appends a datagram unless the queue is full for this sender: one not connected back
    /// from here finds room for at most `MAX_DGRAM_QLEN` queued datagrams (Linux's
    /// `unix_recvq_full`).
    #[allow(clippy::result_large_err)] // the message comes back whole to be retried
    fn deliver(&self, msg: Message, sender: &Arc<Endpoint>) -> Result<(), Message> {
        let mut s = self.lock();
        let len = msg.data.len();
        let back = matches!(&s.conn, Conn::Connected(p) if Arc::ptr_eq(p, sender));
        if !back && s.rx.len() > MAX_DGRAM_QLEN {
            return Err(msg);
        }
        let mut msg = msg;
        msg.charge = Some(Charge::new(sender, len));
        s.rx_bytes += len;
        s.rx.push_back(msg);
        Ok(())
    }
}

/// A wait that SO_RCVTIMEO or SO_SNDTIMEO ended fails as a nonblocking call would.
fn timed_out(e: Errno) -> Errno {
    if e == Errno::ETIMEDOUT {
        Errno::EAGAIN
    } else {
        e
    }
}

/// The file operations of an AF_UNIX socket.
pub struct UnixSocket {
    ep: Arc<Endpoint>,
    ino: u64,
    /// The permission bits of the socket's own inode (fchmod); a bind to a path creates the
    /// file with these less the umask, as Linux.
    mode: AtomicU32,
    /// Set once connected to a host socket ([`super::unix_host`]): every transfer goes
    /// there, and `ep` stays unconnected.
    host: OnceLock<HostConnected>,
    /// Set when bound to a host socket in a volume (`--host-uds=create`): listen and accept
    /// act on it, and the name is not among the sandbox's own (`ep` is not in [`Names`]), so
    /// a sandbox client reaches it through the host socket as a host client does.
    host_listener: OnceLock<HostListener>,
}

/// A connection to a host socket and the name the application connected to (getpeername).
#[derive(Debug)]
struct HostConnected {
    conn: HostConn,
    peer: Vec<u8>,
}

/// What a name leads to: a socket of the sandbox, or a host socket in a host directory.
enum Target {
    Sandbox(Arc<Endpoint>),
    Host(Arc<Dentry>),
}

impl std::fmt::Debug for UnixSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixSocket")
            .field("kind", &self.ep.kind)
            .field("ino", &self.ino)
            .finish()
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        self.ep.close();
    }
}

fn resolver(t: &dyn Context) -> Resolver<'_> {
    Resolver::new(Caller::of(t), t.fs().root(), &t.fs().ns)
}

fn start_dir(t: &dyn Context, path: &[u8]) -> Arc<Dentry> {
    if path.first() == Some(&b'/') {
        t.fs().root()
    } else {
        t.fs().cwd()
    }
}

/// Creates the socket inode for `bind(path)` of a socket of `kind`; returns its (device,
/// inode) identity, and the bound host socket when the name is in a volume whose sockets are
/// the host's and `--host-uds=create` lets a bind make one there.
fn create_socket_file(
    t: &dyn Context,
    path: &[u8],
    mode: u32,
    kind: Kind,
) -> Result<((u64, u64), Option<OwnedFd>), Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let r = resolver(t);
    let pn = r.resolve_parent(start_dir(t, path), path)?;
    if pn.name == b"." || pn.name == b".." || pn.trailing_slash {
        return Err(Errno::EADDRINUSE);
    }
    if r.child(&pn.parent, &pn.name).is_ok() {
        return Err(Errno::EADDRINUSE);
    }
    if pn.parent.mount.readonly {
        return Err(Errno::EROFS);
    }
    if !may_access(&pn.parent.inode.stat()?, &t.creds(), 3, false) {
        return Err(Errno::EACCES);
    }
    crate::vfs::landlock::check_make(&t.creds(), &pn.parent, &NewNode::Socket)?;
    let attrs = NewAttrs {
        mode: mode & !t.fs().umask(),
        uid: t.creds().euid,
        gid: t.creds().egid,
    };
    let in_use = |e| {
        if e == Errno::EEXIST {
            Errno::EADDRINUSE
        } else {
            e
        }
    };
    if kind.connection_oriented() && super::unix_host::policy().create {
        match pn
            .parent
            .inode
            .bind_host_socket(&pn.name, kind.sock_type(), attrs.mode)
        {
            Ok((inode, fd)) => {
                let st = inode.stat()?;
                return Ok(((st.dev, st.ino), Some(fd)));
            }
            Err(Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(in_use(e)),
        }
    }
    let inode = pn
        .parent
        .inode
        .create(&Caller::of(t), &pn.name, NewNode::Socket, attrs)
        .map_err(in_use)?;
    let st = inode.stat()?;
    Ok(((st.dev, st.ino), None))
}

/// Finds the endpoint bound at `name` for connect or sendto from a socket of type `kind`: a
/// socket file no sandbox socket is bound to may be a host socket ([`Target::Host`]).
fn lookup(t: &dyn Context, names: &Names, name: &Name, kind: Kind) -> Result<Target, Errno> {
    let key = match name {
        Name::Unnamed => return Err(Errno::EINVAL),
        Name::Abstract(n) => NameKey::Abstract(n.clone(), kind),
        Name::Path(p) => {
            if p.is_empty() {
                return Err(Errno::ENOENT);
            }
            let d = resolver(t).resolve(start_dir(t, p), p, true)?;
            let st = d.inode.stat()?;
            if FileType::from_mode(st.mode) != FileType::Socket {
                return Err(Errno::ECONNREFUSED);
            }
            if !may_access(&st, &t.creds(), 2, false) {
                return Err(Errno::EACCES);
            }
            let key = NameKey::Inode(st.dev, st.ino);
            return match names.get(&key).filter(|ep| !ep.is_closed()) {
                // A listener of the sandbox's own bound to a host socket: reached through
                // the host socket, as host clients reach it.
                Some(ep) if ep.lock().host_bound => Ok(Target::Host(d)),
                Some(ep) => Ok(Target::Sandbox(ep)),
                None if d.inode.host_special().is_some() && super::unix_host::policy().open => {
                    Ok(Target::Host(d))
                }
                None => Err(Errno::ECONNREFUSED),
            };
        }
    };
    match names.get(&key) {
        Some(ep) if matches!(name, Name::Abstract(_)) && !may_reach(t, &ep) => Err(Errno::EPERM),
        Some(ep) if !ep.is_closed() => Ok(Target::Sandbox(ep)),
        _ => Err(Errno::ECONNREFUSED),
    }
}

/// Whether Landlock's abstract-socket scope lets the caller reach the socket bound by `ep`'s
/// binder: only in the caller's domain or one nested in it.
fn may_reach(t: &dyn Context, ep: &Endpoint) -> bool {
    let scope = crate::auth::landlock::scope::ABSTRACT_UNIX_SOCKET;
    let target = ep.lock().landlock.clone();
    crate::auth::landlock::reaches(t.creds().landlock.as_ref(), scope, target.as_ref())
}

/// Connects a new host socket of `kind` to the host socket at `d`.
fn connect_host(
    t: &mut dyn Context,
    d: &Dentry,
    kind: Kind,
    nonblocking: bool,
) -> Result<HostConn, Errno> {
    let target = d.inode.host_special().ok_or(Errno::ECONNREFUSED)?;
    HostConn::connect(t, target, kind, nonblocking)
}

impl UnixSocket {
    /// A new unconnected socket.
    pub fn new(names: &Arc<Names>, kind: Kind) -> UnixSocket {
        UnixSocket::with_endpoint(Endpoint::new(kind, names.clone()))
    }

    fn with_endpoint(ep: Arc<Endpoint>) -> UnixSocket {
        UnixSocket {
            ino: ep.ino,
            ep,
            mode: AtomicU32::new(0o777),
            host: OnceLock::new(),
            host_listener: OnceLock::new(),
        }
    }

    /// socketpair(2): two connected sockets, each reporting `cred` as its peer.
    pub fn pair(names: &Arc<Names>, kind: Kind, cred: Ucred) -> (UnixSocket, UnixSocket) {
        let a = Endpoint::new(kind, names.clone());
        let b = Endpoint::new(kind, names.clone());
        for (x, y) in [(&a, &b), (&b, &a)] {
            let mut s = x.lock();
            s.conn = Conn::Connected(y.clone());
            s.peercred = cred;
        }
        (UnixSocket::with_endpoint(a), UnixSocket::with_endpoint(b))
    }

    /// Connects this socket to the host socket at `d` (`addr`: the name connected to, as
    /// getpeername reports it).
    fn connect_to_host(
        &self,
        t: &mut dyn Context,
        d: &Dentry,
        addr: &[u8],
        nonblocking: bool,
    ) -> Result<(), Errno> {
        if matches!(self.ep.lock().conn, Conn::Listening { .. }) {
            return Err(Errno::EINVAL);
        }
        let conn = connect_host(t, d, self.ep.kind, nonblocking)?;
        let connected = HostConnected {
            conn,
            peer: addr.to_vec(),
        };
        self.host.set(connected).map_err(|_| Errno::EISCONN)
    }

    /// accept(2) on a listener bound to a host socket: the new socket is connected to the
    /// host peer, and named as the listener (getsockname), as Linux's accepted sockets are.
    fn accept_host(
        &self,
        t: &mut dyn Context,
        h: &HostListener,
        nonblocking: bool,
    ) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        let addr = {
            let s = self.ep.lock();
            if !matches!(s.conn, Conn::Listening { .. }) {
                return Err(Errno::EINVAL);
            }
            s.addr.clone()
        };
        let conn = h.accept(t, nonblocking)?;
        let ep = Endpoint::new(self.ep.kind, self.ep.names.clone());
        // Not inserted in Names: the name stays the listener's.
        ep.lock().addr = addr;
        let sock = UnixSocket::with_endpoint(ep);
        // The host peer's address is not known here (host clients are usually unnamed).
        let peer = unnamed();
        sock.host
            .set(HostConnected {
                conn,
                peer: peer.clone(),
            })
            .map_err(|_| Errno::EINVAL)?;
        Ok((Arc::new(sock), peer))
    }

    /// The host listener, once this socket listens on a host socket.
    fn listening_host(&self) -> Option<&HostListener> {
        let h = self.host_listener.get()?;
        matches!(self.ep.lock().conn, Conn::Listening { .. }).then_some(h)
    }

    /// Sends on a connection-oriented socket: into the peer's queue, blocking for room.
    fn send_connected(
        &self,
        t: &mut dyn Context,
        mut msg: OutMessage,
        flags: IoFlags,
        own: Ucred,
    ) -> Result<usize, Errno> {
        let ep = &self.ep;
        let (peer, passcred) = {
            let mut s = ep.lock();
            if ep.kind == Kind::SeqPacket {
                if let Some(e) = s.error.take() {
                    return Err(e);
                }
            }
            if s.snd_shut {
                return Err(Errno::EPIPE);
            }
            match &s.conn {
                Conn::Connected(p) => (p.clone(), s.passcred),
                _ => return Err(Errno::ENOTCONN),
            }
        };
        let creds = msg.creds.or_else(|| {
            let p = peer.lock();
            (passcred || p.passcred || p.embryo).then_some(own)
        });
        let record = ep.kind == Kind::SeqPacket;
        if record && msg.data.len() + 32 > ep.lock().sndbuf {
            return Err(Errno::EMSGSIZE);
        }
        if ep.kind == Kind::Stream && msg.data.is_empty() {
            return Ok(0);
        }
        let total = msg.data.len();
        let mut sent = 0usize;
        let mut fds = std::mem::take(&mut msg.fds);
        let deadline = ep.deadline(libc::SO_SNDTIMEO);
        let r = t.block_on(&[&ep.queue, &peer.queue], deadline, || {
            if ep.lock().snd_shut {
                return Some(Err(Errno::EPIPE));
            }
            loop {
                let rcv_shut = {
                    let p = peer.lock();
                    p.rcv_shut || p.closed
                };
                if rcv_shut {
                    return Some(Err(Errno::EPIPE));
                }
                // As Linux: each piece (a record whole, a stream in chunks of at most half
                // the buffer) waits until what this socket has queued is below SO_SNDBUF.
                let sndbuf = ep.lock().sndbuf;
                if ep.wmem.load(Ordering::SeqCst) >= sndbuf {
                    break;
                }
                let left = total - sent;
                let n = if record {
                    left
                } else {
                    left.min((sndbuf / 2).saturating_sub(64).clamp(1, STREAM_CHUNK))
                };
                let m = Message {
                    data: msg.data[sent..sent + n].to_vec(),
                    read: 0,
                    fds: std::mem::take(&mut fds),
                    creds,
                    from: None,
                    charge: Some(Charge::new(ep, n)),
                };
                peer.push(m);
                sent += n;
                ep.notify_pair(Some(&peer), Wake::Blocked, Wake::Readable);
                if sent == total {
                    return Some(Ok(sent));
                }
            }
            if flags.nonblocking {
                Some(if sent > 0 {
                    Ok(sent)
                } else {
                    Err(Errno::EAGAIN)
                })
            } else {
                None
            }
        });
        match r {
            Err(Errno::EINTR | Errno::EPIPE | Errno::ETIMEDOUT) if sent > 0 => {
                t.clear_restart();
                Ok(sent)
            }
            r => r.map_err(timed_out),
        }
    }

    fn send_dgram(
        &self,
        t: &mut dyn Context,
        msg: OutMessage,
        flags: IoFlags,
        own: Ucred,
    ) -> Result<usize, Errno> {
        let ep = &self.ep;
        let (target, from, sndbuf, passcred) = {
            let s = ep.lock();
            if s.snd_shut {
                return Err(Errno::EPIPE);
            }
            let connected = match &s.conn {
                Conn::Connected(p) => Some(p.clone()),
                _ => None,
            };
            (connected, s.addr.clone(), s.sndbuf, s.passcred)
        };
        let target = match &msg.to {
            Some(a) => match lookup(t, &ep.names, &parse(a)?, ep.kind)? {
                Target::Sandbox(ep) => ep,
                // A datagram to a host socket: over a connection made for it alone.
                Target::Host(d) => {
                    return connect_host(t, &d, ep.kind, flags.nonblocking)?.send_message(
                        t,
                        msg.has_socket_control(),
                        &msg.data,
                        flags,
                    );
                }
            },
            None => target.ok_or(Errno::ENOTCONN)?,
        };
        let creds = msg
            .creds
            .or_else(|| (passcred || target.lock().passcred).then_some(own));
        if target.kind != Kind::Dgram {
            return Err(Errno::EPROTOTYPE);
        }
        if msg.data.len() + 32 > sndbuf {
            return Err(Errno::EMSGSIZE);
        }
        let len = msg.data.len();
        let mut pending = Some(Message {
            data: msg.data,
            read: 0,
            fds: msg.fds,
            creds,
            from,
            charge: None,
        });
        let deadline = ep.deadline(libc::SO_SNDTIMEO);
        t.block_on(&[&ep.queue, &target.queue], deadline, || {
            {
                let s = target.lock();
                if s.closed {
                    return Some(Err(Errno::ECONNREFUSED));
                }
                if s.rcv_shut {
                    return Some(Err(Errno::EPIPE));
                }
                // A datagram socket connected elsewhere only takes from its peer.
                if let Conn::Connected(p) = &s.conn {
                    if !Arc::ptr_eq(p, ep) {
                        return Some(Err(Errno::EPERM));
                    }
                }
            }
            if ep.wmem.load(Ordering::SeqCst) >= ep.lock().sndbuf {
                return if flags.nonblocking {
                    Some(Err(Errno::EAGAIN))
                } else {
                    None
                };
            }
            let m = pending.take().expect("message not yet delivered");
            match target.deliver(m, ep) {
                Ok(()) => {
                    target.queue.notify_all();
                    Some(Ok(len))
                }
                Err(m) => {
                    pending = Some(m);
                    if flags.nonblocking {
                        Some(Err(Errno::EAGAIN))
                    } else {
                        None
                    }
                }
            }
        })
        .map_err(timed_out)
    }

    /// Binds an unnamed socket to a free abstract name of five hex digits, as Linux's
    /// autobind (bind with only the family, or a send or connect under SO_PASSCRED, so that
    /// the receiver can tell who sent); ENOSPC when every such name is taken.
    fn autobind(&self) -> Result<(), Errno> {
        let ep = &self.ep;
        let mut s = ep.lock();
        if s.addr.is_some() {
            return Ok(());
        }
        // The map never locks this endpoint here: it holds no name yet.
        for _ in 0..=0xfffff {
            let n = NEXT_AUTOBIND.fetch_add(1, Ordering::Relaxed);
            let a = Addr::Abstract(format!("{:05x}", n & 0xfffff).into_bytes());
            if ep.names.insert(NameKey::of(&a, ep.kind), ep).is_ok() {
                s.addr = Some(a);
                return Ok(());
            }
        }
        Err(Errno::ENOSPC)
    }

    /// An unnamed socket with SO_PASSCRED gets a name before it connects or sends.
    fn autobind_for_creds(&self) -> Result<(), Errno> {
        let needed = {
            let s = self.ep.lock();
            s.passcred && s.addr.is_none()
        };
        if needed {
            self.autobind()?;
        }
        Ok(())
    }

    /// Takes (or peeks) from the front of the receive queue.
    fn take(&self, len: usize, flags: IoFlags) -> Option<Result<InMessage, Errno>> {
        let ep = &self.ep;
        let mut s = ep.lock();
        let passcred = s.passcred;
        if s.rx.is_empty() {
            if let Some(e) = s.error.take() {
                return Some(Err(e));
            }
            return match s.conn {
                _ if s.rcv_shut => Some(Ok(InMessage::default())),
                Conn::Listening { .. } => Some(Err(Errno::EINVAL)),
                Conn::Unconnected if ep.kind.connection_oriented() => Some(Err(Errno::EINVAL)),
                _ => None,
            };
        }
        let mut out = InMessage::default();
        if ep.kind == Kind::Stream {
            // As Linux reads a stream: across messages while their credentials match the
            // first one's (only checked under SO_PASSCRED), stopping after a message that
            // carried files; a peek goes on from message to message the same way.
            let mut first_creds: Option<Option<Ucred>> = None;
            let mut at = 0usize;
            // Even a zero-length read takes the first message's files.
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) && out.data.len() >= len {
                    break;
                }
                let Some(m) = s.rx.get(if flags.peek { at } else { 0 }) else {
                    break;
                };
                if passcred {
                    match first_creds {
                        Some(c) if c != m.creds => break,
                        Some(_) => {}
                        None => {
                            first_creds = Some(m.creds);
                            out.creds = Some(m.creds.unwrap_or(NO_CREDS));
                        }
                    }
                }
                let n = (m.data.len() - m.read).min(len - out.data.len());
                out.data.extend_from_slice(&m.data[m.read..m.read + n]);
                if flags.peek {
                    let had_fds = !m.fds.is_empty();
                    out.fds.extend(m.fds.iter().cloned());
                    if had_fds {
                        break;
                    }
                    at += 1;
                    continue;
                }
                let m = s.rx.front_mut().expect("front exists");
                let had_fds = !m.fds.is_empty();
                out.fds.append(&mut m.fds);
                m.read += n;
                let partly = m.read < m.data.len();
                s.rx_bytes -= n;
                if partly {
                    break;
                }
                let m = s.rx.pop_front().expect("front exists");
                drop(s);
                drop(m);
                s = ep.lock();
                if had_fds {
                    break;
                }
            }
            out.full_len = out.data.len();
        } else {
            let m = s.rx.front().expect("not empty");
            let n = m.data.len().min(len);
            out.data = m.data[..n].to_vec();
            out.full_len = m.data.len();
            out.from = m.from.as_ref().map(Addr::to_sockaddr);
            if passcred {
                out.creds = Some(m.creds.unwrap_or(NO_CREDS));
            }
            if flags.peek {
                out.fds = m.fds.clone();
            } else {
                let m = s.rx.pop_front().expect("not empty");
                s.rx_bytes -= m.data.len();
                out.fds = m.fds;
            }
        }
        let peer = match &s.conn {
            Conn::Connected(p) => Some(p.clone()),
            _ => None,
        };
        drop(s);
        if ep.kind.connection_oriented() {
            // As Linux: the sender's name as it is now (it may have bound since sending);
            // the only sender of a connection is the peer.
            out.from = peer
                .as_ref()
                .and_then(|p| p.lock().addr.as_ref().map(Addr::to_sockaddr));
        }
        if !flags.peek {
            // The data was the peer's: room appeared on its side.
            ep.notify_pair(peer.as_ref(), Wake::Blocked, Wake::Writable);
        }
        Some(Ok(out))
    }
}

impl Socket for UnixSocket {
    fn bind(&self, t: &mut dyn Context, addr: &[u8]) -> Result<(), Errno> {
        let name = parse(addr)?;
        if self.ep.lock().addr.is_some() {
            return Err(Errno::EINVAL);
        }
        let a = match name {
            Name::Unnamed => return self.autobind(),
            Name::Abstract(n) => Addr::Abstract(n),
            Name::Path(p) => {
                let mode = self.mode.load(Ordering::Relaxed);
                let (key, host) = create_socket_file(t, &p, mode, self.ep.kind)?;
                let a = Addr::Path { path: p, key };
                if let Some(fd) = host {
                    let names = self.ep.names.clone();
                    let mut s = self.ep.lock();
                    if s.addr.is_some() {
                        return Err(Errno::EINVAL);
                    }
                    names.insert(NameKey::of(&a, self.ep.kind), &self.ep)?;
                    let listener = HostListener::new(fd, self.ep.kind);
                    if self.host_listener.set(listener).is_err() {
                        names.remove(&NameKey::of(&a, self.ep.kind), &self.ep);
                        return Err(Errno::EINVAL);
                    }
                    s.host_bound = true;
                    s.addr = Some(a);
                    return Ok(());
                }
                a
            }
        };
        let names = self.ep.names.clone();
        let mut s = self.ep.lock();
        if s.addr.is_some() {
            return Err(Errno::EINVAL);
        }
        names.insert(NameKey::of(&a, self.ep.kind), &self.ep)?;
        s.addr = Some(a);
        s.landlock = t.creds().landlock;
        Ok(())
    }

    fn listen(&self, t: &mut dyn Context, backlog: i32) -> Result<(), Errno> {
        if !self.ep.kind.connection_oriented() {
            return Err(Errno::EOPNOTSUPP);
        }
        let backlog = usize::try_from(backlog).unwrap_or(0).clamp(1, SOMAXCONN);
        let mut s = self.ep.lock();
        if s.addr.is_none() {
            return Err(Errno::EINVAL);
        }
        if let Some(h) = self.host_listener.get() {
            if matches!(s.conn, Conn::Connected(_)) {
                return Err(Errno::EINVAL);
            }
            h.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        }
        match &mut s.conn {
            Conn::Connected(_) => return Err(Errno::EINVAL),
            Conn::Listening { backlog: b, .. } => *b = backlog,
            Conn::Unconnected => {
                s.conn = Conn::Listening {
                    backlog,
                    pending: VecDeque::new(),
                }
            }
        }
        // A listener reports its own credentials as SO_PEERCRED, as Linux.
        s.listen_cred = Ucred::of(t);
        s.peercred = s.listen_cred;
        drop(s);
        self.ep.queue.notify_all();
        Ok(())
    }

    fn accept(
        &self,
        t: &mut dyn Context,
        nonblocking: bool,
    ) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        if !self.ep.kind.connection_oriented() {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(h) = self.host_listener.get() {
            return self.accept_host(t, h, nonblocking);
        }
        let ep = &self.ep;
        let deadline = ep.deadline(libc::SO_RCVTIMEO);
        let (new, passcred) = t
            .block_on(&[&ep.queue], deadline, || {
                let mut s = ep.lock();
                let passcred = s.passcred;
                let Conn::Listening { pending, .. } = &mut s.conn else {
                    return Some(Err(Errno::EINVAL));
                };
                match pending.pop_front() {
                    Some(n) => Some(Ok((n, passcred))),
                    None if nonblocking => Some(Err(Errno::EAGAIN)),
                    None => None,
                }
            })
            .map_err(timed_out)?;
        let peer = {
            let mut s = new.lock();
            // The accepted socket takes the listener's SO_PASSCRED, as Linux's
            // `unix_sock_inherit_flags`.
            s.embryo = false;
            s.passcred = passcred;
            s.peer_addr.as_ref().map_or_else(unnamed, Addr::to_sockaddr)
        };
        Ok((Arc::new(UnixSocket::with_endpoint(new)), peer))
    }

    fn connect(&self, t: &mut dyn Context, addr: &[u8], nonblocking: bool) -> Result<(), Errno> {
        let ep = &self.ep;
        let name = parse(addr)?;
        if self.host.get().is_some() {
            // The host connection stays until the socket is closed.
            return Err(Errno::EISCONN);
        }
        if !ep.kind.connection_oriented() {
            if name == Name::Unnamed {
                // AF_UNSPEC-style disconnect.
                ep.lock().conn = Conn::Unconnected;
                return Ok(());
            }
            self.autobind_for_creds()?;
            let target = match lookup(t, &ep.names, &name, ep.kind)? {
                Target::Sandbox(ep) => ep,
                Target::Host(d) => return self.connect_to_host(t, &d, addr, nonblocking),
            };
            if target.kind != Kind::Dgram {
                return Err(Errno::EPROTOTYPE);
            }
            let peer_addr = target.lock().addr.clone();
            let mut s = ep.lock();
            s.conn = Conn::Connected(target);
            s.peer_addr = peer_addr;
            return Ok(());
        }
        if name == Name::Unnamed {
            return Err(Errno::EINVAL);
        }
        self.autobind_for_creds()?;
        let my_addr = {
            let s = ep.lock();
            match s.conn {
                Conn::Connected(_) => return Err(Errno::EISCONN),
                Conn::Listening { .. } => return Err(Errno::EINVAL),
                Conn::Unconnected => {}
            }
            s.addr.clone()
        };
        let listener = match lookup(t, &ep.names, &name, ep.kind)? {
            Target::Sandbox(ep) => ep,
            Target::Host(d) => return self.connect_to_host(t, &d, addr, nonblocking),
        };
        if listener.kind != ep.kind {
            return Err(Errno::EPROTOTYPE);
        }
        let me = Ucred::of(t);
        let deadline = ep.deadline(libc::SO_SNDTIMEO);
        let r = t.block_on(&[&listener.queue], deadline, || {
            let mut l = listener.lock();
            let addr = l.addr.clone();
            let cred = l.listen_cred;
            let Conn::Listening { backlog, pending } = &mut l.conn else {
                return Some(Err(Errno::ECONNREFUSED));
            };
            if pending.len() >= *backlog {
                return if nonblocking {
                    Some(Err(Errno::EAGAIN))
                } else {
                    None
                };
            }
            let server = Endpoint::new(ep.kind, listener.names.clone());
            {
                let mut s = server.lock();
                s.addr = addr.clone();
                s.conn = Conn::Connected(ep.clone());
                s.peercred = me;
                s.peer_addr = my_addr.clone();
                s.embryo = true;
            }
            pending.push_back(server.clone());
            Some(Ok((server, cred, addr)))
        });
        let (server, listen_cred, listen_addr) = r.map_err(timed_out)?;
        listener.queue.notify_all();
        let mut s = ep.lock();
        s.conn = Conn::Connected(server);
        s.peercred = listen_cred;
        s.peer_addr = listen_addr;
        drop(s);
        ep.queue.notify_all();
        Ok(())
    }

    fn send(
        &self,
        t: &mut dyn Context,
        mut msg: OutMessage,
        src: &mut dyn IoSrc,
        flags: IoFlags,
    ) -> Result<usize, Errno> {
        if let Some(h) = self.host.get() {
            return h.conn.send(t, msg.has_socket_control(), src, flags);
        }
        msg.data = super::gather(src)?;
        let creds = Ucred::of(t);
        if self.ep.kind == Kind::Dgram {
            self.autobind_for_creds()?;
            self.send_dgram(t, msg, flags, creds)
        } else {
            // As Linux: a stream refuses a destination (EISCONN once connected); a
            // seqpacket socket ignores it and sends to its peer.
            if self.ep.kind == Kind::Stream && msg.to.is_some() {
                return Err(if self.ep.peer().is_some() {
                    Errno::EISCONN
                } else {
                    Errno::EOPNOTSUPP
                });
            }
            self.send_connected(t, msg, flags, creds)
        }
    }

    fn rx_queued(&self) -> Result<usize, Errno> {
        if self.host.get().is_some() {
            // FIONREAD of a host socket is not among the sandbox's host system calls.
            return Err(Errno::EOPNOTSUPP);
        }
        let s = self.ep.lock();
        Ok(if self.ep.kind == Kind::Stream {
            s.rx_bytes
        } else {
            s.rx.front().map_or(0, |m| m.data.len())
        })
    }

    fn recv(
        &self,
        t: &mut dyn Context,
        dst: &mut dyn IoDst,
        flags: IoFlags,
    ) -> Result<InMessage, Errno> {
        if let Some(h) = self.host.get() {
            return h.conn.recv(t, dst, flags);
        }
        let len = dst.remaining();
        let ep = self.ep.clone();
        let deadline = ep.deadline(libc::SO_RCVTIMEO);
        if !flags.waitall || ep.kind != Kind::Stream {
            let m = t
                .block_on(&[&ep.queue], deadline, || match self.take(len, flags) {
                    Some(r) => Some(r),
                    None if flags.nonblocking => Some(Err(Errno::EAGAIN)),
                    None => None,
                })
                .map_err(timed_out)?;
            return super::deliver(m, dst);
        }
        let mut out = InMessage::default();
        let r = t.block_on(&[&ep.queue], deadline, || loop {
            match self.take(len - out.data.len(), flags) {
                Some(Ok(m)) if m.data.is_empty() => return Some(Ok(())),
                Some(Ok(mut m)) => {
                    out.data.append(&mut m.data);
                    out.fds.append(&mut m.fds);
                    out.creds = out.creds.or(m.creds);
                    if out.from.is_none() {
                        out.from = m.from.take();
                    }
                    if out.data.len() == len || !out.fds.is_empty() {
                        return Some(Ok(()));
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None if flags.nonblocking => return Some(Err(Errno::EAGAIN)),
                None => return None,
            }
        });
        match r {
            Ok(()) => {}
            Err(_) if !out.data.is_empty() => t.clear_restart(),
            Err(e) => return Err(timed_out(e)),
        }
        out.full_len = out.data.len();
        super::deliver(out, dst)
    }

    fn local_addr(&self) -> Vec<u8> {
        self.ep
            .lock()
            .addr
            .as_ref()
            .map_or_else(unnamed, Addr::to_sockaddr)
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        if let Some(h) = self.host.get() {
            return Ok(h.peer.clone());
        }
        let s = self.ep.lock();
        match &s.conn {
            Conn::Connected(_) => Ok(s.peer_addr.as_ref().map_or_else(unnamed, Addr::to_sockaddr)),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let (rd, wr) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        if let Some(h) = self.host.get() {
            return h.conn.shutdown(how);
        }
        let peer = {
            let mut s = self.ep.lock();
            let peer = match &s.conn {
                Conn::Connected(p) => Some(p.clone()),
                _ if self.ep.kind.connection_oriented() => return Err(Errno::ENOTCONN),
                _ => None,
            };
            s.rcv_shut |= rd;
            s.snd_shut |= wr;
            peer
        };
        if let Some(p) = &peer {
            if self.ep.kind.connection_oriented() {
                let mut ps = p.lock();
                ps.snd_shut |= rd;
                ps.rcv_shut |= wr;
            }
        }
        self.ep.notify_pair(peer.as_ref(), Wake::Any, Wake::Any);
        Ok(())
    }

    fn getsockopt(&self, level: i32, name: i32) -> Result<Vec<u8>, Errno> {
        if level != libc::SOL_SOCKET {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut s = self.ep.lock();
        let int = |v: i32| v.to_ne_bytes().to_vec();
        Ok(match name {
            libc::SO_TYPE => int(self.ep.kind.sock_type()),
            libc::SO_DOMAIN => int(libc::AF_UNIX),
            libc::SO_PROTOCOL => int(0),
            libc::SO_ERROR => int(s.error.take().map_or(0, |e| e as i32)),
            libc::SO_SNDBUF => int(s.sndbuf as i32),
            libc::SO_RCVBUF => int(s.rcvbuf as i32),
            libc::SO_PASSCRED => int(i32::from(s.passcred)),
            libc::SO_ACCEPTCONN => int(i32::from(matches!(s.conn, Conn::Listening { .. }))),
            libc::SO_PEERCRED => zerocopy::IntoBytes::as_bytes(&s.peercred).to_vec(),
            libc::SO_PEERSEC | libc::SO_PASSSEC => return Err(Errno::ENOPROTOOPT),
            libc::SO_LINGER => s.options.get(&name).cloned().unwrap_or(vec![0; 8]),
            libc::SO_RCVLOWAT => s.options.get(&name).cloned().unwrap_or_else(|| int(1)),
            libc::SO_RCVTIMEO | libc::SO_SNDTIMEO => {
                s.options.get(&name).cloned().unwrap_or(vec![0; 16])
            }
            // Names Linux does not know.
            ..=0 | SO_UNKNOWN_FROM.. => return Err(Errno::ENOPROTOOPT),
            _ => s.options.get(&name).cloned().unwrap_or_else(|| int(0)),
        })
    }

    fn set_mode(&self, mode: u32) -> Result<(), Errno> {
        self.mode.store(mode & 0o7777, Ordering::Relaxed);
        Ok(())
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        if level != libc::SOL_SOCKET {
            return Err(Errno::EOPNOTSUPP);
        }
        let int = || -> Result<i32, Errno> {
            Ok(i32::from_ne_bytes(
                value
                    .get(..4)
                    .ok_or(Errno::EINVAL)?
                    .try_into()
                    .expect("4 bytes"),
            ))
        };
        let mut s = self.ep.lock();
        match name {
            // Linux caps the value at wmem_max/rmem_max and doubles it for bookkeeping
            // overhead, with a floor.
            libc::SO_SNDBUF => {
                s.sndbuf = ((int()? as u32 as usize).min(UNIX_BUF_MAX) * 2).max(MIN_SNDBUF)
            }
            libc::SO_RCVBUF => {
                s.rcvbuf = ((int()? as u32 as usize).min(UNIX_BUF_MAX) * 2).max(MIN_RCVBUF)
            }
            // The caller checked CAP_NET_ADMIN: no cap, the same doubling and floor.
            libc::SO_SNDBUFFORCE => {
                s.sndbuf = (int()?.max(0) as usize)
                    .saturating_mul(2)
                    .clamp(MIN_SNDBUF, i32::MAX as usize)
            }
            libc::SO_RCVBUFFORCE => {
                s.rcvbuf = (int()?.max(0) as usize)
                    .saturating_mul(2)
                    .clamp(MIN_RCVBUF, i32::MAX as usize)
            }
            libc::SO_PASSCRED => s.passcred = int()? != 0,
            libc::SO_RCVTIMEO | libc::SO_SNDTIMEO => {
                let tv = value.get(..16).ok_or(Errno::EINVAL)?;
                let usec = i64::from_ne_bytes(tv[8..].try_into().expect("8 bytes"));
                if !(0..1_000_000).contains(&usec) {
                    return Err(Errno::EDOM);
                }
                s.options.insert(name, tv.to_vec());
            }
            libc::SO_TYPE | libc::SO_PROTOCOL | libc::SO_DOMAIN | libc::SO_PEERCRED => {
                return Err(Errno::ENOPROTOOPT)
            }
            _ => {
                if value.is_empty() {
                    return Err(Errno::EINVAL);
                }
                s.options.insert(name, value.to_vec());
            }
        }
        drop(s);
        if matches!(name, libc::SO_SNDBUF | libc::SO_SNDBUFFORCE) {
            // As Linux's sk_write_space: a sender waiting on a full buffer looks again.
            self.ep.queue.notify(Wake::Writable);
        }
        Ok(())
    }
}

impl FileOps for UnixSocket {
    /// A connection to a host socket cannot be saved: the host peer is not part of the
    /// checkpoint.
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        match (self.host.get(), self.host_listener.get()) {
            (None, None) => Some(self),
            _ => None,
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let mut st = crate::vfs::socket::stat(self.ino);
        st.mode = libc::S_IFSOCK | self.mode.load(Ordering::Relaxed);
        Ok(st)
    }

    fn readiness(&self) -> u32 {
        if let Some(h) = self.host.get() {
            return h.conn.readiness();
        }
        if let Some(h) = self.listening_host() {
            return h.readiness();
        }
        let (mut r, peer, sndbuf) = {
            let s = self.ep.lock();
            let mut r = 0;
            if let Conn::Listening { pending, .. } = &s.conn {
                return if pending.is_empty() {
                    0
                } else {
                    (libc::POLLIN | libc::POLLRDNORM) as u32
                };
            }
            if !s.rx.is_empty() {
                r |= libc::POLLIN | libc::POLLRDNORM;
            }
            if s.error.is_some() {
                r |= libc::POLLERR;
            }
            if s.rcv_shut {
                r |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
            }
            if s.rcv_shut && s.snd_shut {
                r |= libc::POLLHUP;
            }
            let peer = match &s.conn {
                Conn::Connected(p) => Some(p.clone()),
                _ => None,
            };
            if self.ep.kind.connection_oriented() && peer.is_none() {
                // Unconnected: Linux reports POLLOUT only once connected, and POLLHUP.
                r |= libc::POLLHUP;
                return r as u32;
            }
            (r, peer, s.sndbuf)
        };
        // As Linux's `unix_writable`: capacity, not shutdown, decides: what this socket has
        // queued at receivers is at most a quarter of SO_SNDBUF. A datagram peer that is not
        // connected back also needs room in its queue.
        let mut writable = self.ep.wmem.load(Ordering::SeqCst) * 4 <= sndbuf;
        if let (Kind::Dgram, Some(p)) = (self.ep.kind, &peer) {
            let p = p.lock();
            let back = matches!(&p.conn, Conn::Connected(b) if Arc::ptr_eq(b, &self.ep));
            if !back && !p.closed && p.rx.len() > MAX_DGRAM_QLEN {
                writable = false;
            }
        }
        if writable {
            r |= libc::POLLOUT | libc::POLLWRNORM;
        }
        r as u32
    }

    /// None once connected to or listening on a host socket, whose readiness is polled.
    fn wait_queue(&self) -> Option<&WaitQueue> {
        if self.host.get().is_some() || self.listening_host().is_some() {
            return None;
        }
        Some(&self.ep.queue)
    }

    fn ioctl(
        &self,
        t: &mut dyn Context,
        _file: &OpenFile,
        cmd: u32,
        arg: u64,
    ) -> crate::abi::SysResult {
        // SIOCOUTQ (TIOCOUTQ): as Linux's `unix_outq_len`, what this socket's sent messages
        // still hold of its send buffer at their receivers.
        if u64::from(cmd) == libc::TIOCOUTQ {
            let n = i32::try_from(self.ep.wmem.load(Ordering::SeqCst)).unwrap_or(i32::MAX);
            t.mm().write_obj(crate::mm::usermem::UserAddr(arg), &n)?;
            return Ok(0);
        }
        Err(Errno::ENOTTY)
    }
}

/// A saved endpoint of a checkpoint ([`Saver`], [`restore_endpoints`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EndpointImage {
    /// `stream`, `dgram` or `seqpacket`.
    pub kind: String,
    /// Its name (a path with the identity its socket file had, or an abstract name); an
    /// accepted socket carries its listener's.
    pub addr: Option<Addr>,
    /// The name is bound here: connect and sendto find this endpoint by it.
    pub bound: bool,
    /// The endpoint it is connected to (or sends to by default), by index.
    pub peer: Option<usize>,
    /// The peer's name as getpeername reports it.
    pub peer_addr: Option<Addr>,
    /// A listener's backlog and the server ends of the connections waiting in its accept
    /// queue, oldest first, by index.
    pub listening: Option<ListenImage>,
    /// A server end not accepted yet.
    pub embryo: bool,
    /// The receive queue, oldest first.
    pub rx: Vec<MessageImage>,
    pub rcv_shut: bool,
    pub snd_shut: bool,
    /// Its file was closed (an endpoint kept only by its peer's connection).
    pub closed: bool,
    /// The pending socket error, an errno.
    pub error: Option<i32>,
    pub passcred: bool,
    pub sndbuf: usize,
    pub rcvbuf: usize,
    /// SO_PEERCRED: pid, uid, gid.
    pub peercred: (i32, u32, u32),
    /// The credentials recorded at listen(2), handed to connecting clients.
    pub listen_cred: (i32, u32, u32),
    /// Other SOL_SOCKET options as they were set.
    pub options: Vec<(i32, Vec<u8>)>,
    /// The network namespace whose names it binds (an index the kernel's image gives; 0:
    /// the initial one).
    #[serde(default)]
    pub netns: usize,
}

/// A saved listener's queue.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ListenImage {
    pub backlog: usize,
    pub pending: Vec<usize>,
}

/// A queued message of a saved endpoint: its unread bytes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MessageImage {
    pub data: Vec<u8>,
    /// The sender's credentials recorded with it: pid, uid, gid.
    pub creds: Option<(i32, u32, u32)>,
    /// The endpoint whose send buffer it counts against, by index.
    pub charged_to: Option<usize>,
    /// The name of the datagram's sender, as recvfrom reports it.
    pub from: Option<Addr>,
    /// The open file descriptions in flight with it (SCM_RIGHTS), by the index the
    /// checkpoint gave them (its open file descriptions are shared with the fd tables').
    pub fds: Vec<usize>,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Stream => "stream",
        Kind::Dgram => "dgram",
        Kind::SeqPacket => "seqpacket",
    }
}

fn cred_tuple(c: Ucred) -> (i32, u32, u32) {
    (c.pid, c.uid, c.gid)
}

fn tuple_cred((pid, uid, gid): (i32, u32, u32)) -> Ucred {
    Ucred { pid, uid, gid }
}

/// Records the endpoints of AF_UNIX sockets for a checkpoint, each once, with the
/// endpoints they reach (peers, connections waiting to be accepted, senders whose buffers
/// queued messages count against).
#[derive(Default)]
pub struct Saver {
    index: HashMap<usize, usize>,
    endpoints: Vec<Arc<Endpoint>>,
    /// The images of `endpoints[..images.len()]`.
    images: Vec<EndpointImage>,
}

impl Saver {
    /// The index of `socket`'s endpoint in the saved list.
    pub fn socket(&mut self, socket: &UnixSocket) -> usize {
        self.intern(&socket.ep)
    }

    fn intern(&mut self, ep: &Arc<Endpoint>) -> usize {
        let key = Arc::as_ptr(ep) as usize;
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.endpoints.push(ep.clone());
        self.index.insert(key, self.endpoints.len() - 1);
        self.endpoints.len() - 1
    }

    /// Makes the images of the endpoints recorded since the last call and of those they
    /// reach. Each file in flight in a queued message (SCM_RIGHTS) goes to `file`, which
    /// returns the index of its open file description; the caller saves it, which may
    /// record more endpoints (a socket in flight): call again until it returns false.
    pub fn save_pending(&mut self, file: &mut dyn FnMut(&Arc<OpenFile>) -> usize) -> bool {
        let before = self.images.len();
        while self.images.len() < self.endpoints.len() {
            let ep = self.endpoints[self.images.len()].clone();
            // One endpoint lock at a time, and none while the names map is read: what is
            // needed is copied out first.
            let (mut image, peer, pending, senders, fds) = {
                let s = ep.lock();
                let (peer, listening, pending) = match &s.conn {
                    Conn::Unconnected => (None, None, Vec::new()),
                    Conn::Listening { backlog, pending } => (
                        None,
                        Some(ListenImage {
                            backlog: *backlog,
                            pending: Vec::new(),
                        }),
                        pending.iter().cloned().collect(),
                    ),
                    Conn::Connected(p) => (Some(p.clone()), None, Vec::new()),
                };
                let mut rx = Vec::new();
                let mut senders = Vec::new();
                let mut fds = Vec::new();
                for m in &s.rx {
                    senders.push(m.charge.as_ref().and_then(|c| c.to.upgrade()));
                    fds.push(m.fds.clone());
                    rx.push(MessageImage {
                        data: m.data[m.read..].to_vec(),
                        creds: m.creds.map(cred_tuple),
                        charged_to: None,
                        from: m.from.clone(),
                        fds: Vec::new(),
                    });
                }
                let image = EndpointImage {
                    kind: kind_name(ep.kind).to_owned(),
                    addr: s.addr.clone(),
                    bound: false,
                    peer: None,
                    peer_addr: s.peer_addr.clone(),
                    listening,
                    embryo: s.embryo,
                    rx,
                    rcv_shut: s.rcv_shut,
                    snd_shut: s.snd_shut,
                    closed: s.closed,
                    error: s.error.map(|e| e as i32),
                    passcred: s.passcred,
                    sndbuf: s.sndbuf,
                    rcvbuf: s.rcvbuf,
                    peercred: cred_tuple(s.peercred),
                    listen_cred: cred_tuple(s.listen_cred),
                    options: s.options.iter().map(|(k, v)| (*k, v.clone())).collect(),
                    netns: 0,
                };
                (image, peer, pending, senders, fds)
            };
            image.bound = image.addr.as_ref().is_some_and(|a| {
                ep.names
                    .get(&NameKey::of(a, ep.kind))
                    .is_some_and(|e| Arc::ptr_eq(&e, &ep))
            });
            image.peer = peer.map(|p| self.intern(&p));
            if let Some(l) = &mut image.listening {
                l.pending = pending.iter().map(|p| self.intern(p)).collect();
            }
            for ((m, sender), fds) in image.rx.iter_mut().zip(senders).zip(fds) {
                m.charged_to = sender.map(|e| self.intern(&e));
                m.fds = fds.iter().map(&mut *file).collect();
            }
            self.images.push(image);
        }
        self.images.len() > before
    }

    /// The images of every endpoint recorded ([`Saver::save_pending`] made them).
    /// `netns` gives the index of the network namespace whose names an endpoint binds.
    ///
    /// # Errors
    /// An endpoint of a namespace `netns` does not know.
    pub fn finish(
        mut self,
        netns: &dyn Fn(&Arc<Names>) -> Option<usize>,
    ) -> Result<Vec<EndpointImage>, String> {
        debug_assert_eq!(self.images.len(), self.endpoints.len());
        for (image, ep) in self.images.iter_mut().zip(&self.endpoints) {
            image.netns = netns(&ep.names).ok_or_else(|| {
                "an AF_UNIX socket of a network namespace no task holds".to_owned()
            })?;
        }
        Ok(self.images)
    }
}

/// `a` with the identity its socket file has after a restore (`moved`: old to new device
/// and inode of the socket files the restore put back); None for a path whose file did not
/// come back.
fn relocated(a: &Addr, moved: &HashMap<(u64, u64), (u64, u64)>) -> Option<Addr> {
    match a {
        Addr::Path { path, key } => moved.get(key).map(|&key| Addr::Path {
            path: path.clone(),
            key,
        }),
        Addr::Abstract(_) => Some(a.clone()),
    }
}

/// Rebuilds saved endpoints (a restore), in the order of `images`; [`UnixSocket::restored`]
/// makes the socket file of one, [`restore_in_flight`] puts back the files their messages
/// carried. A name bound to a path is bound again to the socket file the restore put back
/// there (`moved` maps the old identities of those files to the new); one whose file did
/// not come back (it was unlinked) is not found by that path any more, as before.
///
/// # Errors
/// An image that does not hold together (unknown kind, index out of range, a name bound
/// twice), as a description.
pub fn restore_endpoints(
    names: &[&Arc<Names>],
    images: &[EndpointImage],
    moved: &HashMap<(u64, u64), (u64, u64)>,
) -> Result<Vec<Arc<Endpoint>>, String> {
    let endpoints = images
        .iter()
        .map(|im| {
            let kind = match im.kind.as_str() {
                "stream" => Kind::Stream,
                "dgram" => Kind::Dgram,
                "seqpacket" => Kind::SeqPacket,
                other => return Err(format!("unknown AF_UNIX socket kind {other:?}")),
            };
            let names = names
                .get(im.netns)
                .ok_or_else(|| format!("no network namespace {}", im.netns))?;
            Ok(Endpoint::new(kind, Arc::clone(names)))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let at = |i: usize| {
        endpoints
            .get(i)
            .cloned()
            .ok_or_else(|| format!("AF_UNIX endpoint {i} is not in the image"))
    };
    // A relocated path keeps its name for getsockname even when its file is gone.
    let keep = |a: &Addr| relocated(a, moved).unwrap_or_else(|| a.clone());
    for (ep, im) in endpoints.iter().zip(images) {
        if im.bound {
            let a = im
                .addr
                .as_ref()
                .ok_or_else(|| "a bound AF_UNIX endpoint without a name".to_owned())?;
            if let Some(a) = relocated(a, moved) {
                ep.names
                    .insert(NameKey::of(&a, ep.kind), ep)
                    .map_err(|_| format!("the AF_UNIX name {a:?} is bound twice"))?;
            }
        }
        let peer = im.peer.map(at).transpose()?;
        let conn = match (&im.listening, peer) {
            (Some(l), _) => Conn::Listening {
                backlog: l.backlog,
                pending: l.pending.iter().map(|&i| at(i)).collect::<Result<_, _>>()?,
            },
            (None, Some(p)) => Conn::Connected(p),
            (None, None) => Conn::Unconnected,
        };
        let mut rx = VecDeque::new();
        let mut rx_bytes = 0;
        for m in &im.rx {
            let charge = match m.charged_to {
                Some(i) => Some(Charge::new(&at(i)?, m.data.len())),
                None => None,
            };
            rx_bytes += m.data.len();
            rx.push_back(Message {
                data: m.data.clone(),
                read: 0,
                fds: Vec::new(),
                creds: m.creds.map(tuple_cred),
                from: m.from.as_ref().map(keep),
                charge,
            });
        }
        let mut s = ep.lock();
        s.addr = im.addr.as_ref().map(keep);
        s.peer_addr = im.peer_addr.as_ref().map(keep);
        s.conn = conn;
        s.embryo = im.embryo;
        s.rx = rx;
        s.rx_bytes = rx_bytes;
        s.rcv_shut = im.rcv_shut;
        s.snd_shut = im.snd_shut;
        s.closed = im.closed;
        s.error = im.error.map(Errno::from_raw);
        s.passcred = im.passcred;
        s.sndbuf = im.sndbuf;
        s.rcvbuf = im.rcvbuf;
        s.peercred = tuple_cred(im.peercred);
        s.listen_cred = tuple_cred(im.listen_cred);
        s.options = im.options.iter().cloned().collect();
    }
    Ok(endpoints)
}

/// Puts back the files in flight in the messages of restored endpoints (`endpoints` as
/// [`restore_endpoints`] made them from `images`); `file` gives the open file description
/// of an index of [`MessageImage::fds`].
///
/// # Errors
/// A description the restore did not make, as a description.
pub fn restore_in_flight(
    endpoints: &[Arc<Endpoint>],
    images: &[EndpointImage],
    file: &dyn Fn(usize) -> Option<Arc<OpenFile>>,
) -> Result<(), String> {
    for (ep, im) in endpoints.iter().zip(images) {
        let mut per_message = Vec::new();
        for m in &im.rx {
            per_message.push(
                m.fds
                    .iter()
                    .map(|&d| file(d).ok_or_else(|| format!("no open file {d} for a message")))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let mut s = ep.lock();
        for (m, fds) in s.rx.iter_mut().zip(per_message) {
            m.fds = fds;
        }
    }
    Ok(())
}

impl Endpoint {
    /// A server end of a connection not accepted yet: its listener holds it, no file does.
    pub fn awaits_accept(&self) -> bool {
        self.lock().embryo
    }
}

impl UnixSocket {
    /// The socket file of a restored endpoint ([`restore_endpoints`]).
    pub fn restored(ep: &Arc<Endpoint>) -> UnixSocket {
        UnixSocket::with_endpoint(ep.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_forms_round_trip() {
        let p = Addr::Path {
            path: b"/tmp/s".to_vec(),
            key: (1, 2),
        };
        let raw = p.to_sockaddr();
        assert_eq!(raw.len(), 2 + 6 + 1);
        assert_eq!(parse(&raw).unwrap(), Name::Path(b"/tmp/s".to_vec()));
        let a = Addr::Abstract(b"x\0y".to_vec());
        assert_eq!(
            parse(&a.to_sockaddr()).unwrap(),
            Name::Abstract(b"x\0y".to_vec())
        );
        assert_eq!(parse(&unnamed()).unwrap(), Name::Unnamed);
        assert_eq!(parse(&[1]), Err(Errno::EINVAL));
        assert_eq!(parse(&[2, 0, b'a']), Err(Errno::EINVAL));
    }

    #[test]
    fn two_namespaces_share_no_socket_state() {
        use crate::net::{inet, stack, Namespace};
        let (a, b) = (Namespace::default(), Namespace::default());
        let key = NameKey::Abstract(b"same".to_vec(), Kind::Stream);
        let ea = Endpoint::new(Kind::Stream, a.unix_names.clone());
        let eb = Endpoint::new(Kind::Stream, b.unix_names.clone());
        a.unix_names.insert(key.clone(), &ea).unwrap();
        // The same abstract name is free in the other namespace.
        assert!(b.unix_names.get(&key).is_none());
        b.unix_names.insert(key, &eb).unwrap();

        let _sock = inet::InetSocket::new(a.inet(), stack::Proto::Tcp);
        assert!(!Arc::ptr_eq(a.inet(), b.inet()));
        assert_eq!(a.inet().lock().entries.len(), 1);
        assert!(b.inet().lock().entries.is_empty());
    }

    #[test]
    fn names_reject_live_duplicates_and_forget_closed_ones() {
        let names = Arc::new(Names::default());
        let a = Endpoint::new(Kind::Stream, names.clone());
        let b = Endpoint::new(Kind::Stream, names.clone());
        let key = NameKey::Abstract(b"n".to_vec(), Kind::Stream);
        names.insert(key.clone(), &a).unwrap();
        assert_eq!(names.insert(key.clone(), &b), Err(Errno::EADDRINUSE));
        a.lock().addr = Some(Addr::Abstract(b"n".to_vec()));
        a.close();
        assert!(names.get(&key).is_none());
        names.insert(key, &b).unwrap();
    }

    #[test]
    fn closing_one_end_shuts_the_other() {
        let names = Arc::new(Names::default());
        let a = Endpoint::new(Kind::Stream, names.clone());
        let b = Endpoint::new(Kind::Stream, names);
        a.lock().conn = Conn::Connected(b.clone());
        b.lock().conn = Conn::Connected(a.clone());
        let sb = UnixSocket::with_endpoint(b.clone());
        a.close();
        let s = b.lock();
        assert!(s.rcv_shut && s.snd_shut);
        drop(s);
        let r = sb.readiness();
        assert_ne!(r & libc::POLLHUP as u32, 0);
        assert_ne!(r & libc::POLLIN as u32, 0);
    }

    #[test]
    fn closing_with_data_unread_resets_the_peer_once() {
        let names = Arc::new(Names::default());
        let a = Endpoint::new(Kind::Stream, names.clone());
        let b = Endpoint::new(Kind::Stream, names);
        a.lock().conn = Conn::Connected(b.clone());
        b.lock().conn = Conn::Connected(a.clone());
        let sa = UnixSocket::with_endpoint(a.clone());
        b.push(Message {
            data: b"unread".to_vec(),
            read: 0,
            fds: Vec::new(),
            creds: None,
            from: None,
            charge: None,
        });
        b.close();
        assert_ne!(sa.readiness() & libc::POLLERR as u32, 0);
        let first = sa.take(10, IoFlags::default()).map(|r| r.map(|m| m.data));
        assert!(matches!(first, Some(Err(Errno::ECONNRESET))));
        // Reported once: then end of file, and no POLLERR.
        let then = sa.take(10, IoFlags::default()).map(|r| r.map(|m| m.data));
        assert!(matches!(then, Some(Ok(d)) if d.is_empty()));
        assert_eq!(sa.readiness() & libc::POLLERR as u32, 0);
    }

    #[test]
    fn datagrams_keep_boundaries_and_report_truncation() {
        let names = Arc::new(Names::default());
        let ep = Endpoint::new(Kind::Dgram, names);
        let sock = UnixSocket::with_endpoint(ep.clone());
        for d in [&b"hello"[..], b"world!"] {
            let m = Message {
                data: d.to_vec(),
                read: 0,
                fds: Vec::new(),
                creds: None,
                from: None,
                charge: None,
            };
            assert!(ep.deliver(m, &ep).is_ok());
        }
        let m = sock.take(3, IoFlags::default()).unwrap().unwrap();
        assert_eq!((m.data.as_slice(), m.full_len), (&b"hel"[..], 5));
        let m = sock.take(100, IoFlags::default()).unwrap().unwrap();
        assert_eq!(m.data, b"world!");
        assert!(sock.take(100, IoFlags::default()).is_none());
    }
}
