"""AF_UNIX semantics the sandbox must share with Linux; prints one line per check so the
test can compare the output natively and under runsc-rs. Works in a fresh temp directory."""
import array, errno, fcntl, os, select, socket, struct, tempfile, time

S = socket.SOL_SOCKET
SO_PASSCRED, SCM_CREDENTIALS, SO_PEERCRED = 16, 2, 17


def err(f):
    try:
        r = f()
        return "ok %r" % (r,)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def creds_of(anc):
    for level, ty, data in anc:
        if (level, ty) == (S, SCM_CREDENTIALS) and len(data) >= 12:
            pid, uid, gid = struct.unpack("iII", data[:12])
            return ("me" if pid == os.getpid() else pid, uid, gid)
    return None


# SO_RCVTIMEO bounds a blocking receive: EAGAIN after the timeout.
a, b = socket.socketpair()
b.setsockopt(S, socket.SO_RCVTIMEO, struct.pack("ll", 0, 50000))
t0 = time.monotonic()
print("rcvtimeo", err(lambda: b.recv(1)), time.monotonic() - t0 < 5)
print("rcvtimeo bad usec", err(lambda: b.setsockopt(S, socket.SO_RCVTIMEO, struct.pack("ll", 0, 2000000))))

# AF_UNIX SOCK_RAW is a datagram socket.
r = socket.socket(socket.AF_UNIX, socket.SOCK_RAW)
print("raw type", r.getsockopt(S, socket.SO_TYPE) == socket.SOCK_DGRAM)
r.close()

# Credentials: none recorded when neither end had SO_PASSCRED at send time (nobody), the
# sender's once the receiver set it; stream reads do not coalesce across the change.
a, b = socket.socketpair()
a.send(b"one")
b.setsockopt(S, SO_PASSCRED, 1)
a.send(b"two")
d, anc, fl, _ = b.recvmsg(100, socket.CMSG_SPACE(12))
print("creds first", d, creds_of(anc))
d, anc, fl, _ = b.recvmsg(100, socket.CMSG_SPACE(12))
print("creds second", d, creds_of(anc) == ("me", os.geteuid(), os.getegid()))

# A control buffer too small for the credentials: cut with MSG_CTRUNC, header kept.
a.send(b"x")
d, anc, fl, _ = b.recvmsg(10, socket.CMSG_LEN(0) + 4)
print("ctrunc", d, bool(fl & socket.MSG_CTRUNC), [(l, t, len(x)) for l, t, x in anc])

# Files: a read joins a plain message with the next one that carries a file, then stops.
a, b = socket.socketpair()
r1, w1 = os.pipe()
a.send(b"ab")
a.sendmsg([b"cd"], [(S, socket.SCM_RIGHTS, array.array("i", [r1]))])
a.send(b"ef")
d, anc, fl, _ = b.recvmsg(100, socket.CMSG_SPACE(16))
print("fd coalesce", d, [(l, t, len(x)) for l, t, x in anc])
print("after fd", b.recv(100))

# A listener reports its own credentials as SO_PEERCRED.
tmp = tempfile.mkdtemp()
l = socket.socket(socket.AF_UNIX)
l.bind(os.path.join(tmp, "s"))
l.listen(1)
pid, uid, gid = struct.unpack("iII", l.getsockopt(S, SO_PEERCRED, 12))
print("listener peercred", pid == os.getpid(), uid == os.geteuid())

# Datagram send buffer: a full SO_SNDBUF is EAGAIN and not POLLOUT, even after SHUT_WR;
# draining the peer brings POLLOUT back; a bigger SO_SNDBUF unblocks sends.
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
a.setblocking(False)
n = 0
while True:
    try:
        a.send(b"x" * 4096)
        n += 1
    except BlockingIOError:
        break
print("dgram filled", n > 0)
p = select.poll()
p.register(a, select.POLLOUT)
print("full pollout", p.poll(0))
a.shutdown(socket.SHUT_WR)
print("shut pollout", p.poll(0))
b.setblocking(False)
try:
    while b.recv(8192):
        pass
except BlockingIOError:
    pass
print("drained pollout", [(fd == a.fileno(), ev) for fd, ev in p.poll(0)])
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
a.setblocking(False)
sz = a.getsockopt(S, socket.SO_SNDBUF)
while True:
    try:
        a.send(b"y" * (sz // 4))
    except BlockingIOError:
        break
a.setsockopt(S, socket.SO_SNDBUF, sz * 2)
print("bigger sndbuf", err(lambda: a.send(b"y" * (sz // 4))))

# Full shutdown of a datagram pair: POLLIN|POLLOUT|POLLRDHUP|POLLHUP.
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
a.shutdown(socket.SHUT_RDWR)
p = select.poll()
p.register(a, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
print("seqpacket full shutdown", [ev for _, ev in p.poll(0)])
print("unknown option", err(lambda: a.getsockopt(S, 999)))

# SO_SNDBUF and SO_RCVBUF of every type: doubled, with Linux's floors; SO_SNDBUFFORCE (root)
# has no ceiling. A sender's buffer holds what Linux's skb truesize accounting admits (the
# number of sends before EAGAIN and SIOCOUTQ show it); a record longer than SO_SNDBUF less 32
# is EMSGSIZE; a 2 MiB message from 512 iovecs arrives whole.
import threading

for ty in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
    a, b = socket.socketpair(socket.AF_UNIX, ty)
    sizes = []
    for v in (0, 1, 1000, 3000, 100000):
        a.setsockopt(S, socket.SO_SNDBUF, v)
        a.setsockopt(S, socket.SO_RCVBUF, v)
        sizes.append((a.getsockopt(S, socket.SO_SNDBUF), a.getsockopt(S, socket.SO_RCVBUF)))
    print("bufsizes", ty, sizes)
    for n in (1, 5000, 20000, 70000):
        for buf in (0, 50000, None):
            a, b = socket.socketpair(socket.AF_UNIX, ty)
            a.setblocking(False)
            if buf is not None:
                a.setsockopt(S, socket.SO_SNDBUF, buf)
            sends = total = 0
            while sends < 10000:
                try:
                    total += a.send(b"x" * n)
                    sends += 1
                except BlockingIOError:
                    break
                except OSError as e:
                    sends = errno.errorcode[e.errno]
                    break
            outq = struct.unpack("i", fcntl.ioctl(a, 0x5411, b"\0" * 4))[0]
            print("fill", ty, n, buf, sends, total, outq)
    a, b = socket.socketpair(socket.AF_UNIX, ty)
    print("sndbufforce", err(lambda: a.setsockopt(S, 32, (1 << 20) + 2048)),
          a.getsockopt(S, socket.SO_SNDBUF))
    if ty != socket.SOCK_STREAM:
        print("record over sndbuf", err(lambda: a.send(b"z" * ((2 << 20) + 4096 - 31))))
    bufs = [bytes([i % 256]) * 4096 for i in range(512)]
    got = [b""]

    def reader():
        while len(got[0]) < len(bufs) * 4096:
            d = b.recv(4 << 20)
            if not d:
                break
            got[0] += d
            if ty != socket.SOCK_STREAM:
                break

    th = threading.Thread(target=reader)
    th.start()
    print("iovecs", err(lambda: a.sendmsg(bufs)))
    th.join()
    print("received", len(got[0]), got[0] == b"".join(bufs))

# A listener closed with a connection it never accepted resets that connection: the client
# sees POLLERR, then ECONNRESET once (from a read or SO_ERROR), then end of file.
d = tempfile.mkdtemp()
for how in ("read", "so_error"):
    path = os.path.join(d, "l-" + how)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    ls.close()
    p = select.poll()
    p.register(c, select.POLLIN)
    print("listener closed", how, [bool(ev & select.POLLERR) for _, ev in p.poll(0)])
    if how == "read":
        print("reset read", err(lambda: c.recv(1)), err(lambda: c.recv(1)))
    else:
        print("reset so_error", c.getsockopt(S, socket.SO_ERROR), c.getsockopt(S, socket.SO_ERROR))
    c.close()
# Closing with data unread resets the peer too; closing with all of it read does not.
for unread in (True, False):
    a, b = socket.socketpair()
    a.send(b"x")
    if not unread:
        b.recv(1)
    b.close()
    print("closed unread" if unread else "closed drained", err(lambda: a.recv(1)))
    a.close()
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
a.send(b"x")
b.close()
print("seqpacket reset send", err(lambda: a.send(b"y")), err(lambda: a.send(b"y")))

# sendto with an address: a stream refuses it (EISCONN once connected), a seqpacket socket
# ignores it (ENOTCONN unconnected).
for ty in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
    a, b = socket.socketpair(socket.AF_UNIX, ty)
    u = socket.socket(socket.AF_UNIX, ty)
    print("sendto addr", ty, err(lambda: a.sendto(b"x", "\0nowhere")),
          err(lambda: u.sendto(b"x", "\0nowhere")))

# SIOCOUTQ on an idle socket; reopening a socket through /proc/self/fd; fstatfs (sockfs).
import fcntl
a, b = socket.socketpair()
print("outq idle", struct.unpack("i", fcntl.ioctl(a, 0x5411, b"\0" * 4))[0])
print("reopen", err(lambda: os.open("/proc/self/fd/%d" % a.fileno(), os.O_RDWR)))
v = os.fstatvfs(a.fileno())
print("fstatfs", v.f_bsize, v.f_namemax)

# A stream or seqpacket receiver learns its peer's name as it is when reading: none while
# unbound, the name bound after connecting once it is.
tag = "%d-%d" % (os.getpid(), time.monotonic_ns())
for ty in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
    ls = socket.socket(socket.AF_UNIX, ty)
    ls.bind("\0srv-%s-%d" % (tag, ty))
    ls.listen(1)
    c = socket.socket(socket.AF_UNIX, ty)
    c.connect("\0srv-%s-%d" % (tag, ty))
    s, _ = ls.accept()
    c.send(b"a")
    print("from unbound", ty, s.recvfrom(10))
    c.bind("\0cli-%s-%d" % (tag, ty))
    c.send(b"b")
    d, addr = s.recvfrom(10)
    print("from bound", ty, d, addr == b"\0cli-%s-%d" % (tag.encode(), ty))
    for x in (ls, c, s):
        x.close()

# Abstract names belong to one socket type: a stream and a datagram socket may share one,
# and connecting to a name held only by another type is refused (a path says EPROTOTYPE).
name = "\0shared-" + tag
st = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sq = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
print("abstract per type", err(lambda: st.bind(name)), err(lambda: dg.bind(name)))
st.listen(1)
print("abstract wrong type", err(lambda: sq.connect(name)))
print("abstract same type dup", err(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(name)))
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
print("abstract dgram to stream name", err(lambda: u.sendto(b"x", "\0only-stream-" + tag)))
only = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
only.bind("\0only-stream-" + tag)
print("abstract dgram to stream-only name", err(lambda: u.sendto(b"x", "\0only-stream-" + tag)))
path = os.path.join(os.getcwd(), "st-" + tag)
ps = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ps.bind(path)
ps.listen(1)
print("path wrong type", err(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(path)))
os.unlink(path)
for x in (st, dg, sq, u, only, ps):
    x.close()

# Under SO_PASSCRED an unnamed socket gets an autobind name when it sends or connects, and
# the receiver sees it as the sender.
rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rx.bind("\0rx-" + tag)
tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
tx.setsockopt(S, SO_PASSCRED, 1)
print("before send", tx.getsockname())
tx.sendto(b"x", "\0rx-" + tag)
me = tx.getsockname()
_, frm = rx.recvfrom(10)
print("autobind on send", len(me), me[:1], frm == me)
cc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cc.setsockopt(S, SO_PASSCRED, 1)
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind("\0ls-" + tag)
ls.listen(1)
cc.connect("\0ls-" + tag)
print("autobind on connect", len(cc.getsockname()))
plain = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
plain.sendto(b"y", "\0rx-" + tag)
print("no autobind without passcred", plain.getsockname(), rx.recvfrom(10))

# SO_MARK keeps its value; setting it takes CAP_NET_ADMIN or CAP_NET_RAW (dropped from the
# effective set here with capset).
import ctypes
SO_MARK = 36
m = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
set_ok = err(lambda: m.setsockopt(S, SO_MARK, 1234))
print("so_mark", set_ok == "ok None" and m.getsockopt(S, SO_MARK) == 1234 or set_ok)
libc = ctypes.CDLL(None, use_errno=True)
hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
caps = (ctypes.c_uint32 * 6)()
libc.syscall(125, hdr, caps)
caps[0] &= ~((1 << 12) | (1 << 13))
print("capset", libc.syscall(126, hdr, caps))
print("so_mark without caps", err(lambda: m.setsockopt(S, SO_MARK, 5)), m.getsockopt(S, SO_MARK))

# fchmod of a socket changes its own inode's mode; a bind to a path creates the file with
# that mode less the umask.
fm = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.fchmod(fm.fileno(), 0o765)
print("fchmod socket", oct(os.fstat(fm.fileno()).st_mode))
old = os.umask(0o123)
fpath = os.path.join(os.getcwd(), "fm-" + tag)
fm.bind(fpath)
os.umask(old)
print("bound mode", oct(os.stat(fpath).st_mode))
os.unlink(fpath)
