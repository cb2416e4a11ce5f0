"""Threads allocating and computing while SIGALRM (an interval timer) and SIGUSR1 (a
kill loop) interrupt them: the Python program of issue 12 that ended in `free(): invalid
pointer` under runsc-rs when a signal's return lost the AVX registers. Prints "ok True"."""
import os, signal, threading, time
count = [0]
def h(sig, frm):
    count[0] += 1
    x = [str(i) * 3 for i in range(50)]
    d = {i: x for i in range(20)}
signal.signal(signal.SIGALRM, h)
signal.signal(signal.SIGUSR1, h)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
stop = False
def worker(n):
    l = []
    while not stop:
        l.append(bytearray(n * 37 % 4096 + 1))
        l.append(float(n) * 1.5)
        if len(l) > 200: l = []
        time.sleep(0)
def killer():
    pid = os.getpid()
    while not stop:
        os.kill(pid, signal.SIGUSR1)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)] + [threading.Thread(target=killer)]
for t in ts: t.start()
end = time.time() + 0.5
s = 0.0
while time.time() < end:
    s += sum(float(i) * 0.5 for i in range(100))
stop = True
for t in ts: t.join()
signal.setitimer(signal.ITIMER_REAL, 0)
assert s > 0
print("ok", count[0] > 0)
