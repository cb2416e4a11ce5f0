//! Socket system calls: creation, naming, connections, sendmsg/recvmsg with control messages,
//! options. The sockets themselves live in [`crate::net`]; this layer only moves user memory
//! (addresses, iovecs, `msghdr`, `cmsghdr`) in and out and installs passed files.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::fd::nofile_limit;
use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::abi::{Iovec, Timespec};
use crate::auth::cap;
use crate::kernel::Task;
use crate::mm::usermem::{access_ok, IoDst, IoSrc, UserAddr, UserIo};
use crate::net::{self, InMessage, IoFlags, OutMessage, Ucred};
use crate::vfs::{FileKind, OpenFile};

/// `sizeof(struct sockaddr_storage)`.
const SOCKADDR_MAX: u32 = 128;
/// Most fds one SCM_RIGHTS message may carry (SCM_MAX_FD).
const SCM_MAX_FD: usize = 253;
/// Largest message the sentry buffers for one send (larger stream sends complete short).
const MAX_SEND: usize = 64 << 20;

const MSG_OOB: i32 = 1;
const MSG_PEEK: i32 = 2;
const MSG_CTRUNC: i32 = 8;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_WAITALL: i32 = 0x100;
const MSG_ERRQUEUE: i32 = 0x2000;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_WAITFORONE: i32 = 0x1_0000;
const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;

const SCM_RIGHTS: i32 = 1;
const SCM_CREDENTIALS: i32 = 2;

/// `struct msghdr`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    pad0: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
    flags: i32,
    pad1: u32,
}

/// `struct cmsghdr` (the data follows, 8-byte aligned).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct CmsgHdr {
    len: u64,
    level: i32,
    ty: i32,
}

const CMSG_HDR: usize = size_of::<CmsgHdr>();

const fn cmsg_align(n: usize) -> usize {
    (n + 7) & !7
}

/// The open file at `fd`, which must be a socket.
fn socket_file(t: &Task, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
    let f = t.fds.get(fd.0)?;
    if !matches!(f.kind(), FileKind::Socket(_)) {
        return Err(Errno::ENOTSOCK);
    }
    Ok(f)
}

/// Runs `op` on the socket behind `f`.
fn with_socket<R>(
    f: &OpenFile,
    op: impl FnOnce(&dyn net::Socket) -> Result<R, Errno>,
) -> Result<R, Errno> {
    match f.kind() {
        FileKind::Socket(s) => op(&**s),
        _ => Err(Errno::ENOTSOCK),
    }
}

fn read_sockaddr(t: &Task, addr: UserAddr, len: u32) -> Result<Vec<u8>, Errno> {
    if len > SOCKADDR_MAX {
        return Err(Errno::EINVAL);
    }
    t.mm.read_bytes(addr, len as usize)
}

/// Copies `sa` out to `addr` (truncated to the caller's buffer) and its full length to
/// `lenp`, as Linux's `move_addr_to_user`.
fn write_sockaddr(t: &Task, addr: UserAddr, lenp: UserAddr, sa: &[u8]) -> Result<(), Errno> {
    if addr.is_null() || lenp.is_null() {
        return Ok(());
    }
    let len: i32 = t.mm.read_obj(lenp)?;
    let room = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    let n = room.min(sa.len());
    if n > 0 {
        t.mm.write_bytes(addr, &sa[..n])?;
    }
    t.mm.write_obj(lenp, &(sa.len() as u32))
}

fn install(t: &Task, socket: Arc<dyn net::Socket>, flags: i32) -> Result<i32, Errno> {
    let status = if flags & libc::SOCK_NONBLOCK != 0 {
        libc::O_NONBLOCK as u32
    } else {
        0
    };
    let f = OpenFile::of_kind(FileKind::Socket(socket), libc::O_RDWR as u32 | status);
    t.fds
        .install(f, 0, flags & libc::SOCK_CLOEXEC != 0, nofile_limit(t))
}

/// socket(2)
pub fn socket(t: &mut Task, domain: i32, ty: i32, protocol: i32) -> SysResult {
    let flags = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let ops = net::socket(t, &t.ns.net, &t.ns.net.owner, domain, ty & !flags, protocol)?;
    Ok(install(t, ops, flags)? as u64)
}

/// socketpair(2)
pub fn socketpair(t: &mut Task, domain: i32, ty: i32, protocol: i32, sv: UserAddr) -> SysResult {
    let flags = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let [a, b] = net::socketpair(t, &t.ns.net, domain, ty & !flags, protocol)?;
    let fa = install(t, a, flags)?;
    let fb = match install(t, b, flags) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.fds.remove(fa);
            return Err(e);
        }
    };
    if let Err(e) = t.mm.write_obj(sv, &[fa, fb]) {
        let _ = t.fds.remove(fa);
        let _ = t.fds.remove(fb);
        return Err(e);
    }
    Ok(0)
}

/// bind(2)
pub fn bind(t: &mut Task, fd: Fd, addr: UserAddr, len: u32) -> SysResult {
    let f = socket_file(t, fd)?;
    let sa = read_sockaddr(t, addr, len)?;
    super::landlock::check_tcp(&t.creds, &f, &sa, crate::auth::landlock::net::BIND_TCP)?;
    with_socket(&f, |s| s.bind(t, &sa))?;
    Ok(0)
}

/// listen(2)
pub fn listen(t: &mut Task, fd: Fd, backlog: i32) -> SysResult {
    let f = socket_file(t, fd)?;
    with_socket(&f, |s| s.listen(t, backlog))?;
    Ok(0)
}

/// connect(2)
pub fn connect(t: &mut Task, fd: Fd, addr: UserAddr, len: u32) -> SysResult {
    let f = socket_file(t, fd)?;
    let sa = read_sockaddr(t, addr, len)?;
    let nb = f.flags() & libc::O_NONBLOCK as u32 != 0;
    super::landlock::check_tcp(&t.creds, &f, &sa, crate::auth::landlock::net::CONNECT_TCP)?;
    with_socket(&f, |s| s.connect(t, &sa, nb))?;
    Ok(0)
}

/// accept4(2)
pub fn accept4(t: &mut Task, fd: Fd, addr: UserAddr, lenp: UserAddr, flags: i32) -> SysResult {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = socket_file(t, fd)?;
    let nb = f.flags() & libc::O_NONBLOCK as u32 != 0;
    let (ops, peer) = with_socket(&f, |s| s.accept(t, nb))?;
    let newfd = install(t, ops, flags)?;
    if let Err(e) = write_sockaddr(t, addr, lenp, &peer) {
        let _ = t.fds.remove(newfd);
        return Err(e);
    }
    Ok(newfd as u64)
}

/// accept(2)
pub fn accept(t: &mut Task, fd: Fd, addr: UserAddr, lenp: UserAddr) -> SysResult {
    accept4(t, fd, addr, lenp, 0)
}

/// getsockname(2)
pub fn getsockname(t: &mut Task, fd: Fd, addr: UserAddr, lenp: UserAddr) -> SysResult {
    let f = socket_file(t, fd)?;
    let sa = with_socket(&f, |s| Ok(s.local_addr()))?;
    write_sockaddr(t, addr, lenp, &sa)?;
    Ok(0)
}

/// getpeername(2)
pub fn getpeername(t: &mut Task, fd: Fd, addr: UserAddr, lenp: UserAddr) -> SysResult {
    let f = socket_file(t, fd)?;
    let sa = with_socket(&f, |s| s.peer_addr())?;
    write_sockaddr(t, addr, lenp, &sa)?;
    Ok(0)
}

/// shutdown(2)
pub fn shutdown(t: &mut Task, fd: Fd, how: i32) -> SysResult {
    let f = socket_file(t, fd)?;
    with_socket(&f, |s| s.shutdown(how))?;
    Ok(0)
}

/// setsockopt(2)
pub fn setsockopt(
    t: &mut Task,
    fd: Fd,
    level: i32,
    name: i32,
    val: UserAddr,
    len: u32,
) -> SysResult {
    let f = socket_file(t, fd)?;
    if net::netfilter::is_command(level, name) {
        net::netfilter::check_command_len(name, len as usize)?;
        if len as usize > net::netfilter::MAX_REPLACE {
            return Err(Errno::ENOMEM);
        }
        let v = t.mm.read_bytes(val, len as usize)?;
        with_socket(&f, |s| s.netfilter_command(t, level, name, &v))?;
        return Ok(0);
    }
    let v = if (level, name) == (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER) {
        socket_filter_program(t, val, len)?
    } else if (level, name) == (libc::IPPROTO_IPV6, IPV6_CHECKSUM) {
        // Linux's raw sockets read an int whatever the length (`do_rawv6_setsockopt`).
        t.mm.read_bytes(val, std::mem::size_of::<i32>())?
    } else {
        t.mm.read_bytes(val, (len as usize).min(4096))?
    };
    // Setting a buffer size beyond net.core.[rw]mem_max takes CAP_NET_ADMIN.
    if level == libc::SOL_SOCKET
        && matches!(name, libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE)
        && !t.creds.has_cap(cap::NET_ADMIN)
    {
        return Err(Errno::EPERM);
    }
    // A packet mark takes CAP_NET_ADMIN or CAP_NET_RAW, whatever the family.
    if (level, name) == (libc::SOL_SOCKET, libc::SO_MARK)
        && !t.creds.has_cap(cap::NET_ADMIN)
        && !t.creds.has_cap(cap::NET_RAW)
    {
        return Err(Errno::EPERM);
    }
    with_socket(&f, |s| s.setsockopt(level, name, &v))?;
    Ok(0)
}

/// `IPV6_CHECKSUM`.
const IPV6_CHECKSUM: i32 = 7;

/// `struct sock_fprog`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SockFprog {
    len: u16,
    _pad: [u8; 6],
    filter: u64,
}

/// SO_ATTACH_FILTER's value as the socket takes it: the instructions the `sock_fprog` at
/// `val` points to (Linux's `bpf_prog_create_from_user`).
///
/// # Errors
/// EINVAL for a short value, a null program or a length outside 1..=BPF_MAXINSNS; EFAULT.
fn socket_filter_program(t: &mut Task, val: UserAddr, len: u32) -> Result<Vec<u8>, Errno> {
    if (len as usize) < std::mem::size_of::<SockFprog>() {
        return Err(Errno::EINVAL);
    }
    let fprog: SockFprog = t.mm.read_obj(val)?;
    let count = usize::from(fprog.len);
    if fprog.filter == 0 || count == 0 || count > crate::abi::bpf::MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    let size = std::mem::size_of::<crate::abi::bpf::SockFilter>();
    t.mm.read_bytes(UserAddr(fprog.filter), count * size)
}

/// getsockopt(2)
pub fn getsockopt(
    t: &mut Task,
    fd: Fd,
    level: i32,
    name: i32,
    val: UserAddr,
    lenp: UserAddr,
) -> SysResult {
    let f = socket_file(t, fd)?;
    let len: i32 = t.mm.read_obj(lenp)?;
    let room = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    if let Some(query) = net::netfilter::query_of(level, name) {
        net::netfilter::check_len(query, room)?;
        if room > net::netfilter::MAX_REPLACE {
            return Err(Errno::ENOMEM);
        }
        let q = t.mm.read_bytes(val, room)?;
        let v = with_socket(&f, |s| s.netfilter_query(t, level, query, &q))?;
        t.mm.write_bytes(val, &v)?;
        t.mm.write_obj(lenp, &(v.len() as u32))?;
        return Ok(0);
    }
    if (level, name) == (libc::SOL_PACKET, net::packet::PACKET_HDRLEN) {
        // The buffer carries the TPACKET version asked about (Linux: at least an int).
        if room < 4 {
            return Err(Errno::EINVAL);
        }
        let version: i32 = t.mm.read_obj(val)?;
        let n = with_socket(&f, |s| s.packet_hdrlen(version))?;
        t.mm.write_obj(val, &n)?;
        t.mm.write_obj(lenp, &4u32)?;
        return Ok(0);
    }
    let mut v = with_socket(&f, |s| s.getsockopt(level, name))?;
    // A bound device's name needs room for any name (Linux's `sock_getbindtodevice`).
    if (level, name) == (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) && !v.is_empty() && room < 16 {
        return Err(Errno::EINVAL);
    }
    if (level, name) == (libc::SOL_SOCKET, libc::SO_PEERCRED) {
        if let Ok((c, _)) = Ucred::read_from_prefix(&v) {
            v = c.seen_by(t).as_bytes().to_vec();
        }
    }
    // Linux's IPv4 options answer a buffer shorter than an int with one byte when the value
    // fits in it.
    if level == libc::IPPROTO_IP && v.len() == 4 && (1..4).contains(&room) {
        let x = i32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
        if let Ok(b) = u8::try_from(x) {
            v = vec![b];
        }
    }
    let n = room.min(v.len());
    t.mm.write_bytes(val, &v[..n])?;
    t.mm.write_obj(lenp, &(n as u32))?;
    Ok(0)
}

fn io_flags(f: &OpenFile, flags: i32) -> IoFlags {
    IoFlags {
        nonblocking: f.flags() & libc::O_NONBLOCK as u32 != 0 || flags & MSG_DONTWAIT != 0,
        peek: flags & MSG_PEEK != 0,
        waitall: flags & MSG_WAITALL != 0,
        errqueue: flags & MSG_ERRQUEUE != 0,
        trunc: flags & MSG_TRUNC != 0,
    }
}

/// Sends and raises SIGPIPE on EPIPE unless MSG_NOSIGNAL.
fn do_send(
    t: &mut Task,
    f: &OpenFile,
    msg: OutMessage,
    src: &mut dyn IoSrc,
    flags: i32,
) -> SysResult {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let fl = io_flags(f, flags);
    let r = with_socket(f, |s| s.send(t, msg, src, fl));
    if r == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        crate::vfs::Context::raise_signal(t, libc::SIGPIPE);
    }
    Ok(r? as u64)
}

fn do_recv(
    t: &mut Task,
    f: &OpenFile,
    dst: &mut dyn IoDst,
    flags: i32,
) -> Result<InMessage, Errno> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let fl = io_flags(f, flags);
    with_socket(f, |s| s.recv(t, dst, fl))
}

/// sendto(2)
pub fn sendto(
    t: &mut Task,
    fd: Fd,
    buf: UserAddr,
    len: usize,
    flags: i32,
    addr: UserAddr,
    alen: u32,
) -> SysResult {
    let f = socket_file(t, fd)?;
    access_ok(buf, len as u64)?;
    let to = if addr.is_null() {
        None
    } else {
        Some(read_sockaddr(t, addr, alen)?)
    };
    let msg = OutMessage {
        to,
        ..OutMessage::default()
    };
    let mm = t.mm.clone();
    let mut src = UserIo::single(&mm, buf, len, MAX_SEND);
    do_send(t, &f, msg, &mut src, flags)
}

/// recvfrom(2)
pub fn recvfrom(
    t: &mut Task,
    fd: Fd,
    buf: UserAddr,
    len: usize,
    flags: i32,
    addr: UserAddr,
    lenp: UserAddr,
) -> SysResult {
    let f = socket_file(t, fd)?;
    access_ok(buf, len as u64)?;
    let mm = t.mm.clone();
    let mut dst = UserIo::single(&mm, buf, len, MAX_SEND);
    let m = do_recv(t, &f, &mut dst, flags)?;
    if let Some(from) = &m.from {
        write_sockaddr(t, addr, lenp, from)?;
    } else if !lenp.is_null() && !addr.is_null() {
        t.mm.write_obj(lenp, &0u32)?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        m.full_len
    } else {
        m.len
    } as u64)
}

/// Parses the control messages of a sendmsg: SCM_RIGHTS and SCM_CREDENTIALS; those of
/// other levels go to the socket (which ignores the ones it has no use for, as Linux).
fn parse_control(t: &Task, control: u64, len: u64, msg: &mut OutMessage) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let len = usize::try_from(len).map_err(|_| Errno::ENOBUFS)?;
    if len > 1 << 16 {
        return Err(Errno::ENOBUFS);
    }
    let buf = t.mm.read_bytes(UserAddr(control), len)?;
    let mut off = 0usize;
    while off + CMSG_HDR <= buf.len() {
        let h = CmsgHdr::read_from_bytes(&buf[off..off + CMSG_HDR]).map_err(|_| Errno::EINVAL)?;
        let clen = usize::try_from(h.len).map_err(|_| Errno::EINVAL)?;
        if clen < CMSG_HDR || off + clen > buf.len() {
            return Err(Errno::EINVAL);
        }
        let data = &buf[off + CMSG_HDR..off + clen];
        match (h.level, h.ty) {
            (libc::SOL_SOCKET, SCM_RIGHTS) => {
                let n = data.len() / 4;
                if msg.fds.len() + n > SCM_MAX_FD {
                    return Err(Errno::EINVAL);
                }
                for c in data.chunks_exact(4) {
                    let fd = i32::from_ne_bytes(c.try_into().expect("4 bytes"));
                    let f = t.fds.get(fd)?;
                    if f.is_path_only() {
                        return Err(Errno::EBADF);
                    }
                    msg.fds.push(f);
                }
            }
            (libc::SOL_SOCKET, SCM_CREDENTIALS) => {
                let mut c = Ucred::read_from_prefix(data).map_err(|_| Errno::EINVAL)?.0;
                let cr = &t.creds;
                // The pid is the sender's view; the sentry keeps it global. It must name a
                // thread or process that is not yet reaped (Linux's `find_get_pid`).
                let global = t.lookup_pid(c.pid).filter(|g| {
                    let tree = t.kernel.tree();
                    tree.procs.contains_key(g) || tree.tasks.contains_key(g)
                });
                let pid_ok = global == Some(t.tg.tgid) || cr.has_cap(cap::SYS_ADMIN);
                c.pid = global.unwrap_or(0);
                let uid_ok = [cr.uid, cr.euid, cr.suid].contains(&c.uid) || cr.has_cap(cap::SETUID);
                let gid_ok = [cr.gid, cr.egid, cr.sgid].contains(&c.gid) || cr.has_cap(cap::SETGID);
                if !(pid_ok && uid_ok && gid_ok) {
                    return Err(Errno::EPERM);
                }
                // A permitted pid must still name a process (a zombie counts until reaped).
                if global.is_none() {
                    return Err(Errno::ESRCH);
                }
                msg.creds = Some(c);
            }
            (libc::SOL_SOCKET, _) => return Err(Errno::EINVAL),
            (level, ty) => msg.control.push((level, ty, data.to_vec())),
        }
        off += cmsg_align(clen);
    }
    Ok(())
}

fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
    let h = CmsgHdr {
        len: (CMSG_HDR + data.len()) as u64,
        level,
        ty,
    };
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// The control buffer of a recvmsg as Linux's `put_cmsg` fills it: a message that does not
/// fit whole is cut to the room left (its header still written when it fits) with MSG_CTRUNC.
struct Control {
    out: Vec<u8>,
    room: usize,
    truncated: bool,
}

impl Control {
    fn left(&self) -> usize {
        self.room - self.out.len()
    }

    fn put(&mut self, level: i32, ty: i32, data: &[u8]) {
        if self.left() < CMSG_HDR {
            self.truncated = true;
            return;
        }
        // What the message takes of the buffer: its aligned space, or all that is left.
        let space = cmsg_align(CMSG_HDR + data.len()).min(self.left());
        let mut one = cmsg(level, ty, data);
        if one.len() > self.left() {
            self.truncated = true;
            one.truncate(self.left());
            let len = one.len() as u64;
            one[..8].copy_from_slice(&len.to_ne_bytes());
        }
        let end = self.out.len() + space;
        self.out.extend_from_slice(&one);
        self.out.resize(end, 0);
    }
}

/// Builds the control data of a recvmsg into at most `room` bytes: credentials first, then
/// rights (installed as fds here; those that do not fit are closed). Returns the bytes and
/// whether anything was cut.
fn build_control(t: &Task, m: &mut InMessage, room: usize, cloexec: bool) -> (Vec<u8>, bool) {
    let mut c = Control {
        out: Vec::new(),
        room,
        truncated: false,
    };
    if let Some(cr) = m.creds {
        c.put(libc::SOL_SOCKET, SCM_CREDENTIALS, cr.seen_by(t).as_bytes());
    }
    for (level, ty, data) in std::mem::take(&mut m.control) {
        c.put(level, ty, &data);
    }
    let files = std::mem::take(&mut m.fds);
    if !files.is_empty() {
        let fit = c.left().saturating_sub(CMSG_HDR) / 4;
        if fit < files.len() {
            c.truncated = true;
        }
        let limit = nofile_limit(t);
        let mut fds: Vec<u8> = Vec::new();
        for f in files.into_iter().take(fit) {
            match t.fds.install(f, 0, cloexec, limit) {
                Ok(fd) => fds.extend_from_slice(&fd.to_ne_bytes()),
                Err(_) => {
                    c.truncated = true;
                    break;
                }
            }
        }
        if !fds.is_empty() {
            c.put(libc::SOL_SOCKET, SCM_RIGHTS, &fds);
        }
    }
    (c.out, c.truncated)
}

/// The iovecs of a `msghdr` (checked as readv's are).
fn msg_iovecs(t: &Task, h: &MsgHdr) -> Result<Vec<Iovec>, Errno> {
    t.mm.read_iovecs(
        UserAddr(h.iov),
        usize::try_from(h.iovlen).map_err(|_| Errno::EMSGSIZE)?,
    )
}

/// sendmsg(2)
pub fn sendmsg(t: &mut Task, fd: Fd, msg: UserAddr, flags: i32) -> SysResult {
    let f = socket_file(t, fd)?;
    let h: MsgHdr = t.mm.read_obj(msg)?;
    let iovs = msg_iovecs(t, &h)?;
    let mut out = OutMessage::default();
    if h.name != 0 && h.namelen != 0 {
        out.to = Some(read_sockaddr(t, UserAddr(h.name), h.namelen)?);
    }
    parse_control(t, h.control, h.controllen, &mut out)?;
    let mm = t.mm.clone();
    let mut src = UserIo::new(&mm, iovs, MAX_SEND);
    do_send(t, &f, out, &mut src, flags)
}

/// recvmsg(2)
pub fn recvmsg(t: &mut Task, fd: Fd, msg: UserAddr, flags: i32) -> SysResult {
    let f = socket_file(t, fd)?;
    let mut h: MsgHdr = t.mm.read_obj(msg)?;
    let iovs = msg_iovecs(t, &h)?;
    let mm = t.mm.clone();
    let mut dst = UserIo::new(&mm, iovs, MAX_SEND);
    let mut m = do_recv(t, &f, &mut dst, flags)?;
    let copied = m.len;
    // What MSG_ERRQUEUE reads comes from the error queue, and says so.
    let mut out_flags = flags & MSG_ERRQUEUE;
    if m.full_len > m.len {
        out_flags |= MSG_TRUNC;
    }
    if h.name != 0 {
        let sa = m.from.take().unwrap_or_default();
        let n = (h.namelen as usize).min(sa.len());
        if n > 0 {
            t.mm.write_bytes(UserAddr(h.name), &sa[..n])?;
        }
        h.namelen = sa.len() as u32;
    }
    let room = if h.control == 0 {
        0
    } else {
        usize::try_from(h.controllen).unwrap_or(usize::MAX)
    };
    let (control, truncated) = build_control(t, &mut m, room, flags & MSG_CMSG_CLOEXEC != 0);
    if truncated {
        out_flags |= MSG_CTRUNC;
    }
    if !control.is_empty() {
        t.mm.write_bytes(UserAddr(h.control), &control)?;
    }
    h.controllen = control.len() as u64;
    h.flags = out_flags;
    t.mm.write_obj(msg, &h)?;
    Ok(if flags & MSG_TRUNC != 0 {
        m.full_len
    } else {
        copied
    } as u64)
}

/// `struct mmsghdr`.
const MMSGHDR_SIZE: u64 = 64;

/// sendmmsg(2)
pub fn sendmmsg(t: &mut Task, fd: Fd, vec: UserAddr, vlen: u32, flags: i32) -> SysResult {
    let mut sent = 0u64;
    for i in 0..u64::from(vlen.min(1024)) {
        let at = vec.offset(i * MMSGHDR_SIZE)?;
        match sendmsg(t, fd, at, flags) {
            Ok(n) => t.mm.write_obj(at.offset(56)?, &(n as u32))?,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        sent += 1;
    }
    Ok(sent)
}

/// recvmmsg(2): recvmsg into each `mmsghdr` in turn. As Linux, the timeout is only looked at
/// after each message (the wait for the first is not bounded by it), MSG_WAITFORONE makes the
/// receives after the first nonblocking, and an error after the first message ends the batch.
pub fn recvmmsg(
    t: &mut Task,
    fd: Fd,
    vec: UserAddr,
    vlen: u32,
    flags: i32,
    timeout: UserAddr,
) -> SysResult {
    socket_file(t, fd)?;
    let deadline = if timeout.is_null() {
        None
    } else {
        let ts: Timespec = t.mm.read_obj(timeout)?;
        let ns = u64::try_from(ts.to_nanos()?).unwrap_or(u64::MAX);
        Some(std::time::Instant::now() + std::time::Duration::from_nanos(ns))
    };
    let mut got = 0u64;
    let mut fl = flags & !MSG_WAITFORONE;
    for i in 0..u64::from(vlen.min(1024)) {
        let at = vec.offset(i * MMSGHDR_SIZE)?;
        match recvmsg(t, fd, at, fl) {
            Ok(n) => t.mm.write_obj(at.offset(56)?, &(n as u32))?,
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
        got += 1;
        if flags & MSG_WAITFORONE != 0 {
            fl |= MSG_DONTWAIT;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(std::time::Instant::now());
        t.mm.write_obj(timeout, &Timespec::from_nanos(left.as_nanos()))?;
    }
    Ok(got)
}
