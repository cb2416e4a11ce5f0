# Advisory locks: POSIX ranges, interruption, release on close and exit, flock. Compared with
# native output by tests/tests/locks.rs.
import fcntl, os, time, signal, sys
open(os.environ.get("LOCKFILE", "/tmp/l"),"w").close()
fd = os.open(os.environ.get("LOCKFILE", "/tmp/l"), os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
# The parent releases one second after the child's interrupted wait, whatever the machine's
# load (a fixed sleep from the fork would leave the child a load-dependent share of it).
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    fd2 = os.open(os.environ.get("LOCKFILE", "/tmp/l"), os.O_RDWR)
    def h(*a): raise TimeoutError()
    signal.signal(signal.SIGALRM, h); signal.alarm(1)
    t0 = time.time()
    try: fcntl.lockf(fd2, fcntl.LOCK_EX, 5, 0); print("BAD")
    except TimeoutError: print("interrupted after", "at least 1s" if time.time()-t0 >= 0.9 else "less than 1s")
    os.write(w, b"x")
    t0 = time.time(); fcntl.lockf(fd2, fcntl.LOCK_EX, 5, 0)
    print("child waited", "until the release" if time.time()-t0 >= 0.9 else "less than the parent held it")
    sys.stdout.flush()
    os._exit(0)
os.read(r, 1)
time.sleep(1)
os.close(fd)
os.waitpid(pid, 0)
# exit releases: a child locks and exits; parent then locks NB
pid = os.fork()
if pid == 0:
    f = os.open(os.environ.get("LOCKFILE", "/tmp/l"), os.O_RDWR); fcntl.lockf(f, fcntl.LOCK_EX); os._exit(0)
os.waitpid(pid, 0)
f = os.open(os.environ.get("LOCKFILE", "/tmp/l"), os.O_RDWR); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print("released at exit")
# OFD-style flock shared across fork via the same description
f2 = os.open(os.environ.get("LOCKFILE", "/tmp/l"), os.O_RDWR); fcntl.flock(f2, fcntl.LOCK_SH)
f3 = os.open(os.environ.get("LOCKFILE", "/tmp/l"), os.O_RDWR)
try: fcntl.flock(f3, fcntl.LOCK_EX | fcntl.LOCK_NB); print("BAD")
except BlockingIOError: print("flock conflict")
os.close(f2); fcntl.flock(f3, fcntl.LOCK_EX | fcntl.LOCK_NB); print("flock released on close")
