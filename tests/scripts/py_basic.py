import subprocess, threading, os, signal, time, json, hashlib, sys

r = subprocess.run(["/bin/echo", "hi"], capture_output=True)
print("subprocess", r.returncode, r.stdout)

lock = threading.Lock()
counter = [0]
def work():
    for _ in range(1000):
        with lock:
            counter[0] += 1
ts = [threading.Thread(target=work) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("threads", counter[0])

pid = os.fork()
if pid == 0:
    os._exit(7)
_, st = os.waitpid(pid, 0)
print("fork", os.WEXITSTATUS(st))

fired = []
signal.signal(signal.SIGALRM, lambda s, f: fired.append(s))
signal.alarm(1)
time.sleep(2)
print("alarm", fired)

t0 = time.monotonic(); time.sleep(0.1); print("sleep", time.monotonic() - t0 >= 0.1)
print("json", json.dumps({"a": [1, 2, {"b": None}]}, sort_keys=True))
print("sha", hashlib.sha256(open(sys.argv[0], "rb").read()).hexdigest())
