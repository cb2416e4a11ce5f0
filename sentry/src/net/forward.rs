//! Port forwarding from the host kernel's loopback into the sandbox's stack (`--network
//! sandbox` only).
//!
//! Tools that reach a pod's port from the node, such as containerd's CRI `PortForward`
//! (`kubectl port-forward`), enter the pod's network namespace and connect to
//! `127.0.0.1:PORT` on the host kernel. In sandbox mode the application's sockets live in the
//! sentry's own stack ([`super::stack`]), which the host kernel never sees, so such a
//! connection would be refused. This module closes the gap: while an application socket
//! listens on a TCP port bound to the wildcard or a loopback address, the sentry (which runs
//! in the pod's namespace) listens on the host kernel's `127.0.0.1:PORT` and relays every
//! connection it accepts there into its own stack, as a connection to the loopback address at
//! that port, which the application accepts as from any local client.
//!
//! - [`listening`] (called by [`super::inet`] after a successful `listen`) opens the host
//!   listener for the port on its first application listener; a host port already taken is
//!   logged at warn and the application's `listen` succeeds all the same. (The host listener
//!   sets SO_REUSEADDR, so its own earlier connections in TIME_WAIT do not block it; those
//!   of a host program that did not set it do, as on Linux.)
//! - [`closed`] (called when an application listener closes or is shut down) forgets it; the
//!   port's last listener closing shuts the host listener down, which ends its accept thread.
//!   Connections already relayed go on, as established connections outlive a listener.
//! - Each host listener has one thread blocked in accept(2). Each relayed connection has two
//!   threads: one reads the host socket (blocking) and writes into the stack, waiting on the
//!   connection's wait queue when the stack's send buffer is full; the other waits on that
//!   queue for data and writes it to the host socket (blocking). A FIN from either side is
//!   passed on as a half-close (`shutdown(SHUT_WR)` on the host, `close` in the stack); a
//!   reset in the stack shuts the host socket down; a host error resets the stack's
//!   connection. Nothing polls on a timer.
//!
//! The application never touches a host socket: the host sockets here belong to the sentry,
//! and the host calls they need are on the seccomp allowlist only in sandbox mode
//! (`boot::seccomp::Allowlist::with_port_forwarding`).
//!
//! # Lock order
//! `Forwards::ports` is never held while taking the stack lock, nor the other way round.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};

use rustix::net::{Shutdown, SocketFlags};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::stack::{next_id, Entry, Proto, St, Stack};
use crate::waiter::{WaitQueue, Waiter};

/// Bytes one relay step moves.
const CHUNK: usize = 64 * 1024;
/// The host listener's backlog.
const HOST_BACKLOG: i32 = 128;
/// The flags of the host sockets the forwarder makes (socket and accept4); the seccomp rules
/// name them.
pub const HOST_SOCKET_FLAGS: i32 = libc::SOCK_CLOEXEC;
/// The flags of the forwarder's host sends (no SIGPIPE when the host peer has gone).
pub const HOST_SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;

/// One forwarded port.
#[derive(Debug)]
struct Port {
    /// The application listeners (stack entry ids) on the port.
    listeners: Vec<u64>,
    /// The host listener (`None`: the host port was taken).
    host: Option<Arc<OwnedFd>>,
}

/// The forwarded ports of one stack.
#[derive(Debug, Default)]
pub struct Forwards {
    ports: Mutex<HashMap<u16, Port>>,
}

impl Forwards {
    fn ports(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Port>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Application entry `id` of `stack` listens now: forward its port from the host's loopback
/// if it is a TCP listener on the wildcard or a loopback address of a stack on the pod's link.
pub fn listening(stack: &Arc<Stack>, id: u64) {
    let (port, target) = {
        let g = stack.lock();
        if g.link_index.is_none() {
            return;
        }
        let Some(e) = g.entries.get(&id) else { return };
        if e.proto != Proto::Tcp || !matches!(e.st, St::Listening { .. }) {
            return;
        }
        let Some((addr, port)) = e.bound else { return };
        let target = match addr {
            None if e.family == libc::AF_INET6 && super::inet::v6only(e) => {
                IpAddress::Ipv6(smoltcp::wire::Ipv6Address::LOCALHOST)
            }
            None => IpAddress::v4(127, 0, 0, 1),
            Some(a) if std::net::IpAddr::from(a).is_loopback() => a,
            Some(_) => return,
        };
        (port, target)
    };
    let mut ports = stack.forwards.ports();
    if let Some(p) = ports.get_mut(&port) {
        if !p.listeners.contains(&id) {
            p.listeners.push(id);
        }
        return;
    }
    let host = match host_listener(port) {
        Ok(fd) => {
            let fd = Arc::new(fd);
            let (weak, lfd) = (Arc::downgrade(stack), fd.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("forward-{port}"))
                .spawn(move || serve(&lfd, &weak, port, target));
            match spawned {
                Ok(_) => {
                    log::debug!("forward: host 127.0.0.1:{port} -> sandbox {target}:{port}");
                    Some(fd)
                }
                Err(e) => {
                    log::warn!("forward: no thread for port {port}: {e}");
                    None
                }
            }
        }
        Err(e) => {
            log::warn!("forward: cannot listen on the host's 127.0.0.1:{port}: {e}");
            None
        }
    };
    ports.insert(
        port,
        Port {
            listeners: vec![id],
            host,
        },
    );
}

/// Application entry `id` of `stack` stops listening (closed or shut down): the host listener
/// of its port closes with the port's last application listener.
pub fn closed(stack: &Stack, id: u64) {
    let mut ports = stack.forwards.ports();
    let Some(port) = ports
        .iter()
        .find_map(|(&port, p)| p.listeners.contains(&id).then_some(port))
    else {
        return;
    };
    let p = ports.get_mut(&port).expect("found");
    p.listeners.retain(|&l| l != id);
    if p.listeners.is_empty() {
        if let Some(fd) = ports.remove(&port).and_then(|p| p.host) {
            // Wakes the accept thread (accept fails with EINVAL), which drops the socket.
            let _ = rustix::net::shutdown(&*fd, Shutdown::Both);
        }
    }
}

/// A host TCP socket listening on 127.0.0.1:`port`.
fn host_listener(port: u16) -> std::io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
    rustix::net::listen(&fd, HOST_BACKLOG)?;
    Ok(fd)
}

/// The accept loop of one host listener; ends when the listener is shut down or the stack
/// is gone.
fn serve(listener: &OwnedFd, stack: &Weak<Stack>, port: u16, target: IpAddress) {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(conn) => {
                let Some(stack) = stack.upgrade() else { return };
                let spawned = std::thread::Builder::new()
                    .name(format!("forward-{port}-out"))
                    .spawn(move || relay(&stack, conn, IpEndpoint::new(target, port)));
                if let Err(e) = spawned {
                    log::warn!("forward: no thread for a connection to port {port}: {e}");
                }
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => {}
            Err(rustix::io::Errno::INVAL) => return,
            Err(e) => {
                log::warn!("forward: accept on port {port}: {e}");
                return;
            }
        }
    }
}

/// A relayed connection's stack side: its entry, smoltcp socket and wait queue.
struct Inside {
    stack: Arc<Stack>,
    id: u64,
    h: SocketHandle,
    queue: Arc<WaitQueue>,
}

impl Drop for Inside {
    fn drop(&mut self) {
        // Closes the stack's side (a reset if data is left unread) and frees its port.
        self.stack.lock().remove(self.id);
        self.stack.kick();
    }
}

impl Inside {
    /// Connects to `to` inside the stack; `None` if the connection is refused or fails.
    fn connect(stack: &Arc<Stack>, to: IpEndpoint) -> Option<Inside> {
        let queue = Arc::new(WaitQueue::new());
        let waiter = Waiter::new();
        queue.add(&waiter);
        let id = next_id();
        let family = match to.addr {
            IpAddress::Ipv4(_) => libc::AF_INET,
            IpAddress::Ipv6(_) => libc::AF_INET6,
        };
        let h = {
            let mut g = stack.lock();
            g.entries
                .insert(id, Entry::new(Proto::Tcp, family, queue.clone()));
            let Ok(lport) = g.bind_port(Proto::Tcp, None, 0, id) else {
                g.remove(id);
                return None;
            };
            let e = g.entries.get_mut(&id).expect("present");
            e.bound = Some((None, lport));
            e.owns_port = true;
            e.nodelay = true;
            let h = g.new_tcp(true);
            let r = {
                let g = &mut *g;
                let cx = g.iface.context();
                let s = g.set.get_mut::<tcp::Socket>(h);
                // A handshake that never completes (a listener whose backlog stays full)
                // fails as an application's connect would, ending the relay.
                s.set_timeout(Some(super::stack::SockOpts::default().connect_timeout()));
                s.connect(cx, to, IpEndpoint::new(to.addr, lport))
            };
            if r.is_err() {
                g.set.remove(h);
                g.remove(id);
                return None;
            }
            let since = g.now();
            g.entries.get_mut(&id).expect("present").st = St::Connecting {
                h,
                since,
                hop: None,
            };
            g.pump();
            h
        };
        stack.kick();
        let inside = Inside {
            stack: stack.clone(),
            id,
            h,
            queue,
        };
        loop {
            match inside.stack.lock().entries[&id].st {
                St::Connected(_) => break,
                St::Connecting { .. } => {}
                _ => {
                    inside.queue.remove(&waiter);
                    return None;
                }
            }
            waiter.wait(None);
        }
        inside.queue.remove(&waiter);
        Some(inside)
    }

    /// Runs `f` on the connection's smoltcp socket, then pumps the stack and kicks its
    /// poller.
    fn with<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut g = self.stack.lock();
        let r = f(g.tcp(self.h));
        g.pump();
        drop(g);
        self.stack.kick();
        r
    }
}

/// What the stack's side of a connection has for the host.
enum Out {
    Data(Vec<u8>),
    /// The application closed its side (FIN).
    Fin,
    /// The connection was reset or ended without a FIN.
    Reset,
    Wait,
}

/// Relays one accepted host connection `host` to `to` inside the stack until both sides
/// have closed. This thread carries the stack's data to the host; a second one carries the
/// host's data in.
fn relay(stack: &Arc<Stack>, host: OwnedFd, to: IpEndpoint) {
    let Some(inside) = Inside::connect(stack, to) else {
        // Nothing listens any more: the host client sees its connection end.
        let _ = rustix::net::shutdown(&host, Shutdown::Both);
        return;
    };
    let inside = Arc::new(inside);
    let host = Arc::new(host);
    let inward = {
        let (inside, host) = (inside.clone(), host.clone());
        std::thread::Builder::new()
            .name("forward-in".into())
            .spawn(move || host_to_stack(&inside, &host))
    };
    let inward = match inward {
        Ok(t) => t,
        Err(e) => {
            log::warn!("forward: no thread for a connection: {e}");
            inside.with(|s| s.abort());
            return;
        }
    };
    stack_to_host(&inside, &host);
    let _ = inward.join();
}

/// Carries the stack's data to the host until the application's FIN or a reset.
fn stack_to_host(inside: &Inside, host: &OwnedFd) {
    let waiter = Waiter::new();
    inside.queue.add(&waiter);
    loop {
        let out = inside.with(|s| {
            if s.can_recv() {
                let mut buf = Vec::new();
                let _ = s.recv(|b| {
                    let n = b.len().min(CHUNK);
                    buf.extend_from_slice(&b[..n]);
                    (n, ())
                });
                Out::Data(buf)
            } else if matches!(
                s.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            ) {
                Out::Fin
            } else if s.state() == tcp::State::Closed {
                Out::Reset
            } else {
                Out::Wait
            }
        });
        match out {
            Out::Data(buf) => {
                if send_all(host, &buf).is_err() {
                    // The host peer is gone: reset the application's side; the other
                    // thread's read ends with the shutdown.
                    inside.with(|s| s.abort());
                    let _ = rustix::net::shutdown(host, Shutdown::Both);
                    break;
                }
            }
            Out::Fin => {
                let _ = rustix::net::shutdown(host, Shutdown::Write);
                break;
            }
            Out::Reset => {
                let _ = rustix::net::shutdown(host, Shutdown::Both);
                break;
            }
            Out::Wait => {
                waiter.wait(None);
            }
        }
    }
    inside.queue.remove(&waiter);
}

/// Writes all of `buf` to the host socket (blocking).
fn send_all(host: &OwnedFd, mut buf: &[u8]) -> rustix::io::Result<()> {
    while !buf.is_empty() {
        match rustix::net::send(host, buf, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Carries the host's data into the stack until the host's FIN (passed on as a close) or an
/// error (passed on as a reset).
fn host_to_stack(inside: &Inside, host: &OwnedFd) {
    let waiter = Waiter::new();
    inside.queue.add(&waiter);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match rustix::io::read(host, &mut buf) {
            Ok(0) => {
                inside.with(|s| s.close());
                break;
            }
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                inside.with(|s| s.abort());
                break;
            }
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let sent = inside.with(|s| {
                if !s.may_send() {
                    return None;
                }
                Some(s.send_slice(rest).unwrap_or(0))
            });
            match sent {
                // The stack's side can take no more: the host's data has nowhere to go.
                None => {
                    let _ = rustix::net::shutdown(host, Shutdown::Both);
                    inside.queue.remove(&waiter);
                    return;
                }
                Some(0) => {
                    waiter.wait(None);
                }
                Some(k) => rest = &rest[k..],
            }
        }
    }
    inside.queue.remove(&waiter);
}
