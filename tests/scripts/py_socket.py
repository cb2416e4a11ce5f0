import socket, os, sys, threading, array

a, b = socket.socketpair()
a.sendall(b"ping")
print("pair", b.recv(10))
b.sendall(b"pong" * 1000)
got = b""
while len(got) < 4000:
    got += a.recv(65536)
print("pair-big", len(got))
a.close(); print("eof", b.recv(10)); b.close()

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/py_socket.sock"
if os.path.exists(path): os.unlink(path)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path); srv.listen(4)
print("bound", os.path.exists(path), oct(os.stat(path).st_mode & 0o170000))
def serve():
    c, _ = srv.accept()
    data = c.recv(100)
    c.sendall(data.upper())
    c.close()
th = threading.Thread(target=serve); th.start()
cl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cl.connect(path)
cl.sendall(b"hello server")
print("client", cl.recv(100))
th.join(); cl.close(); srv.close(); os.unlink(path)

try:
    s = socket.socket(socket.AF_UNIX); s.connect(path)
except OSError as e:
    print("connect-missing", e.errno)

# fork + server in child, datagram
d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
pid = os.fork()
if pid == 0:
    d2.send(b"from child"); os._exit(0)
print("dgram", d1.recv(100)); os.waitpid(pid, 0)

# SCM_RIGHTS across fork
p1, p2 = socket.socketpair()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    msg, anc, flags, addr = p2.recvmsg(10, socket.CMSG_LEN(4))
    fds = array.array("i"); fds.frombytes(anc[0][2][:4])
    os.write(fds[0], b"via passed fd")
    os._exit(0)
p1.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
os.close(w); os.waitpid(pid, 0)
print("scm", os.read(r, 100))

# abstract namespace
ab = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); ab.bind("\0pytest-abstract"); ab.listen(1)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect("\0pytest-abstract")
s2, _ = ab.accept(); c.sendall(b"abs"); print("abstract", s2.recv(10), ab.getsockname())
import struct
cred = s2.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
pid_, uid_, gid_ = struct.unpack("3i", cred)
print("peercred", pid_ == os.getpid(), uid_ == os.getuid(), gid_ == os.getgid())
print("type", s2.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM)

# asyncio: nonblocking sockets (FIONBIO) under epoll
import asyncio
async def main():
    async def handle(r, w):
        w.write((await r.readline()).upper()); await w.drain(); w.close()
    srv = await asyncio.start_unix_server(handle, path="\0pytest-asyncio")
    r, w = await asyncio.open_unix_connection("\0pytest-asyncio")
    w.write(b"hi asyncio\n"); await w.drain()
    print("asyncio", await r.readline()); w.close(); srv.close()
asyncio.run(main())
