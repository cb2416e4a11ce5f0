# A checkpoint workload (tests/tests/checkpoint.rs): threads counting, and data left in a
# pipe, a stream and a datagram socket pair, and an eventfd. It prints "ready", sleeps long
# enough to be checkpointed, then reads everything back and checks the sockets still carry
# data both ways: restored, the lines after "ready" show what came back.
import os
import socket
import sys
import threading
import time

r, w = os.pipe()
sa, sb = socket.socketpair()
da, db = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
efd = os.eventfd(0)

os.write(w, b"in-the-pipe")
sa.sendall(b"in-the-stream")
da.send(b"dgram-1")
da.send(b"dgram-2")
os.eventfd_write(efd, 5)

counts = [0, 0, 0]
stop = threading.Event()


def count(i):
    while not stop.is_set():
        counts[i] += 1
        time.sleep(0.01)


threads = [threading.Thread(target=count, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
print("ready", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 6)

before = list(counts)
time.sleep(0.3)
moving = all(after > b for after, b in zip(counts, before))
pipe = os.read(r, 100).decode()
stream = sb.recv(100).decode()
dgrams = [db.recv(100).decode(), db.recv(100).decode()]
event = os.eventfd_read(efd)
sb.sendall(b"back")
echo = sa.recv(100).decode()
db.send(b"dgram-back")
echo2 = da.recv(100).decode()
stop.set()
for t in threads:
    t.join()
print(
    f"pipe={pipe} stream={stream} dgrams={','.join(dgrams)} eventfd={event} "
    f"threads_moving={moving} echo={echo},{echo2}",
    flush=True,
)
