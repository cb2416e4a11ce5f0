"""openpty, termios round trip, canonical editing and echo, EOF, raw mode, poll, hang-up."""
import os, pty, termios, tty, sys, select, signal, time
m, s = pty.openpty()
name = os.ttyname(s)
print("name", name.startswith("/dev/pts/"))
print("isatty", os.isatty(s), os.isatty(m))
a = termios.tcgetattr(s)
print("lflag canon", bool(a[3] & termios.ICANON), "echo", bool(a[3] & termios.ECHO))
a[3] &= ~termios.ECHO
termios.tcsetattr(s, termios.TCSANOW, a)
b = termios.tcgetattr(m)
print("roundtrip", b[3] == a[3])
a[3] |= termios.ECHO
termios.tcsetattr(s, termios.TCSANOW, a)
os.write(m, b"abc\x7fd\n")
print("slave read", os.read(s, 100))
print("echo", os.read(m, 100))
os.write(s, b"out\n")
print("master read", os.read(m, 100))
import fcntl, struct
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
print("winsz", struct.unpack("HHHH", fcntl.ioctl(s, termios.TIOCGWINSZ, b"\0"*8)))
os.write(m, b"x\x04")
print("eof line", os.read(s, 100))
os.write(m, b"\x04")
print("eof", os.read(s, 100))
tty.setraw(s)
os.write(m, b"\r\x03")
print("raw", os.read(s, 100))
print("fionread", struct.unpack("i", fcntl.ioctl(s, termios.FIONREAD, b"\0"*4)))
r, w, _ = select.select([s, m], [s, m], [], 0)
print("select", s in r, m in r, s in w, m in w)
os.close(m)
print("after hangup read", os.read(s, 10))
try:
    os.write(s, b"x")
except OSError as e:
    print("after hangup write", e.errno)
