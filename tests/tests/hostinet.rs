//! `--network host`: the sandbox's AF_INET/AF_INET6 sockets are host sockets of the
//! namespace it started in (`net::hostinet`).
//!
//! Every test makes its own pair of network namespaces joined by a veth, with private
//! addresses only (10.251.1.0/24, fd00:251:1::/64): the sandbox starts inside the first
//! (`ip netns exec A runsc-rs do --network host`), native peers run in the second. No traffic
//! leaves those namespaces; a guard deletes them. Where it makes sense the same program also
//! runs natively in the first namespace and the outputs must match.
//!
//! Needs root, iproute2's `ip` and python3; otherwise each test prints `SKIPPED: reason`.

use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::netns::{self, VethPair};
use runsc_rs_tests::{
    assert_no_sentry_panic, runsc_rs_bin, skip, test_platform, Outcome, Run, Scratch,
};

const SANDBOX_V4: &str = "10.251.1.1";
const PEER_V4: &str = "10.251.1.2";
const SANDBOX_V6: &str = "fd00:251:1::1";
const PEER_V6: &str = "fd00:251:1::2";

/// Two network namespaces joined by a veth (test network 1: the sandbox's is host 1, the
/// peer's host 2); both deleted (and so the veth) on drop.
struct NetPair {
    _net: VethPair,
    /// Where the sandbox runs.
    sandbox: String,
    /// Where the native peers run.
    peer: String,
}

impl NetPair {
    /// A new pair, or None after a skip when this machine cannot make one.
    fn new() -> Option<NetPair> {
        if let Some(why) = netns::unavailable() {
            skip(&why);
            return None;
        }
        if Command::new("python3").arg("-V").output().is_err() {
            skip("needs python3");
            return None;
        }
        match VethPair::new("hostinet", 1) {
            Ok(net) => Some(NetPair {
                sandbox: net.a.name.clone(),
                peer: net.b.name.clone(),
                _net: net,
            }),
            Err(e) => {
                skip(&format!("cannot make the test's namespaces: {e}"));
                None
            }
        }
    }

    /// `python3 -c script args..` in the sandbox, inside the sandbox's namespace.
    fn sandbox(&self, script: &str, args: &[&str]) -> Outcome {
        let mut argv: Vec<OsString> = ["ip", "netns", "exec", &self.sandbox]
            .iter()
            .map(OsString::from)
            .collect();
        argv.push(runsc_rs_bin().into());
        argv.push("do".into());
        if let Some(p) = test_platform() {
            argv.push("--platform".into());
            argv.push(p.into());
        }
        argv.extend(["--network", "host", "--", "python3", "-c", script].map(OsString::from));
        argv.extend(args.iter().map(OsString::from));
        let outcome = Run::new(&argv).native();
        assert_no_sentry_panic(&argv, &outcome);
        outcome
    }

    /// The same program natively in the sandbox's namespace, for comparison.
    fn native(&self, script: &str, args: &[&str]) -> Outcome {
        let mut argv = vec![
            "ip",
            "netns",
            "exec",
            &self.sandbox,
            "python3",
            "-c",
            script,
        ];
        argv.extend_from_slice(args);
        Run::new(&argv).native()
    }

    /// A native program in the peer namespace, killed when the guard drops.
    fn peer(&self, argv: &[&str]) -> Peer {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.peer])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the peer");
        Peer(Some(child))
    }
}

/// A native peer process.
struct Peer(Option<Child>);

impl Peer {
    /// Waits (a minute at most) for it to end; its stdout.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let child = self.0.as_mut().expect("running");
        while child.try_wait().expect("waiting for the peer").is_none() {
            assert!(Instant::now() < deadline, "the peer did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self
            .0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("peer output");
        assert!(
            out.status.success(),
            "peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until something listens on TCP `port` of `addr` in namespace `ns` (as seen from
/// that namespace's /proc/net/tcp, which the listener's own namespace shows).
fn wait_listening(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let needle = format!(":{port:04X} 00000000:0000 0A");
    let needle6 = format!(":{port:04X} 00000000000000000000000000000000:0000 0A");
    while Instant::now() < deadline {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "cat",
                "/proc/net/tcp",
                "/proc/net/tcp6",
            ])
            .output()
            .expect("reading /proc/net/tcp");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(&needle) || text.contains(&needle6) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} in {ns}");
}

fn ok(o: &Outcome) -> String {
    assert_eq!(
        o.status,
        0,
        "stdout:\n{}\nstderr:\n{}",
        o.stdout_text(),
        o.stderr_text()
    );
    o.stdout_text()
}

const FETCH: &str = r#"
import sys, urllib.request
for url in sys.argv[1:]:
    with urllib.request.urlopen(url, timeout=20) as r:
        body = r.read()
        print(r.status, len(body), body[:12])
"#;

const SERVE_ONCE: &str = r#"
import http.server, socket, sys
class S(http.server.HTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("from the sandbox %s\n" % self.path).encode() * 500
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = S((sys.argv[1], int(sys.argv[2])), H)
srv.handle_request()
print("served")
"#;

/// TCP both ways over IPv4 and IPv6: the sandbox fetches from a native http.server (Python
/// urllib, then curl), and serves a native curl.
#[test]
fn tcp_both_directions() {
    let Some(net) = NetPair::new() else { return };
    let dir = Scratch::new("hostinet");
    std::fs::write(dir.0.join("page.txt"), "hello over the veth\n".repeat(100)).unwrap();
    let d = dir.0.to_str().unwrap();
    let _v4 = net.peer(&[
        "python3",
        "-m",
        "http.server",
        "8001",
        "--bind",
        PEER_V4,
        "--directory",
        d,
    ]);
    let _v6 = net.peer(&[
        "python3",
        "-m",
        "http.server",
        "8002",
        "--bind",
        PEER_V6,
        "--directory",
        d,
    ]);
    wait_listening(&net.peer, 8001);
    wait_listening(&net.peer, 8002);
    let urls = [
        format!("http://{PEER_V4}:8001/page.txt"),
        format!("http://[{PEER_V6}]:8002/page.txt"),
    ];
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let sandboxed = ok(&net.sandbox(FETCH, &args));
    assert_eq!(sandboxed, ok(&net.native(FETCH, &args)));
    assert_eq!(sandboxed.matches("200 2000 b'hello over t'").count(), 2);

    // curl, a C program with its own event loop (poll on a nonblocking connect).
    let mut argv: Vec<OsString> = ["ip", "netns", "exec", &net.sandbox]
        .iter()
        .map(OsString::from)
        .collect();
    argv.push(runsc_rs_bin().into());
    argv.extend(
        [
            "do",
            "--network",
            "host",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "20",
        ]
        .map(OsString::from),
    );
    argv.extend(urls.iter().map(OsString::from));
    let curl = Run::new(&argv).native();
    assert_no_sentry_panic(&argv, &curl);
    assert_eq!(ok(&curl), "hello over the veth\n".repeat(200));

    // The other way: the sandbox listens, native curl connects.
    for (addr, port, url) in [
        (SANDBOX_V4, "8003", format!("http://{SANDBOX_V4}:8003/x")),
        (SANDBOX_V6, "8004", format!("http://[{SANDBOX_V6}]:8004/y")),
    ] {
        let client = std::thread::spawn({
            let peer = net.peer.clone();
            move || {
                let o = Run::new(&[
                    "ip",
                    "netns",
                    "exec",
                    &peer,
                    "curl",
                    "-sS",
                    "--retry",
                    "60",
                    "--retry-connrefused",
                    "--retry-delay",
                    "1",
                    "--max-time",
                    "20",
                    &url,
                ])
                .native();
                ok(&o)
            }
        });
        let served = net.sandbox(SERVE_ONCE, &[addr, port]);
        assert_eq!(ok(&served), "served\n");
        let body = client.join().unwrap();
        assert_eq!(body.len(), 500 * "from the sandbox /x\n".len(), "{body}");
        assert!(body.starts_with("from the sandbox /"), "{body}");
    }
}

const UDP: &str = r#"
import socket, sys
for fam, peer in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(20)
    for i in range(3):
        msg = b"ping %d " % i + b"x" * (1000 * i)
        s.sendto(msg, (peer, 9001))
        data, src = s.recvfrom(65536)
        print(fam == socket.AF_INET6, len(data), data[:7], src[0] == peer, src[1])
    # A connected datagram socket, and a datagram larger than the buffer: truncated.
    s.connect((peer, 9001))
    s.send(b"y" * 3000)
    data, _, flags, _ = s.recvmsg(100)
    print("trunc", len(data), flags & socket.MSG_TRUNC != 0)
    print("peer", s.getpeername()[:2] == (peer, 9001))
"#;

const UDP_ECHO: &str = r#"
import socket, sys
socks = []
for fam, addr in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, 9001))
    socks.append(s)
print("ready", flush=True)
for s in socks:
    for _ in range(4):
        data, src = s.recvfrom(65536)
        s.sendto(data, src)
"#;

/// UDP over IPv4 and IPv6 against a native echo server: addresses, connected sends,
/// truncation.
#[test]
fn udp_echo() {
    let Some(net) = NetPair::new() else { return };
    let run = |sandboxed: bool| {
        let mut echo = net.peer(&["python3", "-c", UDP_ECHO, PEER_V4, PEER_V6]);
        wait_ready_line(&mut echo);
        let o = if sandboxed {
            net.sandbox(UDP, &[PEER_V4, PEER_V6])
        } else {
            net.native(UDP, &[PEER_V4, PEER_V6])
        };
        echo.finish();
        ok(&o)
    };
    let sandboxed = run(true);
    assert_eq!(sandboxed, run(false));
    assert!(
        sandboxed.contains("False 2007 b'ping 2 ' True 9001\n"),
        "{sandboxed}"
    );
    assert_eq!(sandboxed.matches("trunc 100 True\npeer True\n").count(), 2);
}

/// Reads the peer's stdout up to its "ready" line.
fn wait_ready_line(p: &mut Peer) {
    use std::io::Read;
    let out = p.0.as_mut().unwrap().stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    let mut b = [0u8; 1];
    while !seen.ends_with(b"ready\n") {
        assert_eq!(out.read(&mut b).unwrap(), 1, "peer ended before ready");
        seen.push(b[0]);
    }
}

const BULK_SEND: &str = r#"
import hashlib, random, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
rng = random.Random(251)
h = hashlib.sha256()
total = int(sys.argv[3])
sent = 0
while sent < total:
    chunk = rng.randbytes(min(1 << 20, total - sent))
    s.sendall(chunk)
    h.update(chunk)
    sent += len(chunk)
s.shutdown(socket.SHUT_WR)
print("sent", sent, h.hexdigest())
print("peer says", s.recv(200).decode().strip())
"#;

const BULK_RECV: &str = r#"
import hashlib, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
print("ready", flush=True)
c, _ = l.accept()
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
c.close()
print(n, h.hexdigest())
"#;

const HUNDRED_MIB: u64 = 100 << 20;

/// 100 MiB each way between the sandbox and a native peer, checked with SHA-256.
#[test]
fn bulk_transfer_sha256() {
    let Some(net) = NetPair::new() else { return };
    let total = HUNDRED_MIB.to_string();
    // The sandbox sends to a native receiver.
    let mut rx = net.peer(&["python3", "-c", BULK_RECV, PEER_V4, "9100"]);
    wait_ready_line(&mut rx);
    let started = Instant::now();
    let sent = ok(&net.sandbox(BULK_SEND, &[PEER_V4, "9100", &total]));
    let took = started.elapsed();
    let received = rx.finish();
    let digest = sent.split_whitespace().nth(2).unwrap().to_owned();
    assert!(sent.starts_with(&format!("sent {HUNDRED_MIB} ")), "{sent}");
    assert_eq!(received.trim(), format!("{HUNDRED_MIB} {digest}"));
    assert!(sent.contains(&format!("peer says {HUNDRED_MIB} {digest}")));
    eprintln!("hostinet: 100 MiB sandbox -> native in {took:?}");

    // A native sender to the sandbox's receiver (IPv6 this time).
    let peer = net.peer.clone();
    let total2 = total.clone();
    let sender = std::thread::spawn(move || {
        // Retried until the sandbox listens.
        for _ in 0..600 {
            let o = Run::new(&[
                "ip", "netns", "exec", &peer, "python3", "-c", BULK_SEND, SANDBOX_V6, "9101",
                &total2,
            ])
            .native();
            if o.status == 0 {
                return o.stdout_text();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the sandbox never accepted");
    });
    let started = Instant::now();
    let received = ok(&net.sandbox(BULK_RECV, &[SANDBOX_V6, "9101"]));
    let took = started.elapsed();
    let sent = sender.join().unwrap();
    let digest = sent.split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(received, format!("ready\n{HUNDRED_MIB} {digest}\n"));
    eprintln!("hostinet: 100 MiB native -> sandbox in {took:?} (including the sandbox's start)");
}

const ACCEPT_ALARM: &str = r#"
import signal, socket, sys, time
class Alarm(Exception):
    pass
def on_alarm(sig, frame):
    raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind((sys.argv[1], 0))
l.listen(1)
signal.alarm(1)
t = time.monotonic()
try:
    l.accept()
    print("accepted?")
except Alarm:
    print("accept interrupted by SIGALRM", round(time.monotonic() - t))
# A receive timeout (SO_RCVTIMEO) ends a blocking accept with EAGAIN.
l.settimeout(None)
import struct
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300000))
try:
    l.accept()
except BlockingIOError as e:
    print("timed out", e.errno == 11)
"#;

/// A blocking accept on a host socket ends when a signal arrives (the handler runs), and
/// SO_RCVTIMEO bounds it.
#[test]
fn blocking_accept_ends_on_signal() {
    let Some(net) = NetPair::new() else { return };
    let sandboxed = ok(&net.sandbox(ACCEPT_ALARM, &[SANDBOX_V4]));
    assert_eq!(sandboxed, ok(&net.native(ACCEPT_ALARM, &[SANDBOX_V4])));
    assert_eq!(
        sandboxed,
        "accept interrupted by SIGALRM 1\ntimed out True\n"
    );
}

const RECV_KILLED: &str = r#"
import os, signal, socket, sys, time
pid = os.fork()
if pid == 0:
    s = socket.create_connection((sys.argv[1], 9200))
    s.recv(100)
    os._exit(3)
time.sleep(1)
t = time.monotonic()
os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
print("child killed by", os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
      "within 2s:", time.monotonic() - t < 2)
"#;

const SILENT: &str = r#"
import socket, sys, time
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 9200))
l.listen(4)
print("ready", flush=True)
conns = [l.accept()[0] for _ in range(2)]
time.sleep(30)
"#;

/// SIGKILL ends a process blocked in recv on a host socket whose peer never sends.
#[test]
fn sigkill_ends_blocked_recv() {
    let Some(net) = NetPair::new() else { return };
    let mut silent = net.peer(&["python3", "-c", SILENT, PEER_V4]);
    wait_ready_line(&mut silent);
    let sandboxed = ok(&net.sandbox(RECV_KILLED, &[PEER_V4]));
    assert_eq!(sandboxed, ok(&net.native(RECV_KILLED, &[PEER_V4])));
    assert_eq!(sandboxed, "child killed by 9 within 2s: True\n");
}

const LOOPBACK: &str = r#"
import http.server, socket, threading, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from %s\n" % self.path).encode() * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
for cls, host, url in ((http.server.ThreadingHTTPServer, "127.0.0.1", "127.0.0.1"),
                       (S6, "::1", "[::1]")):
    srv = cls((host, 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    with urllib.request.urlopen("http://%s:%d/lo" % (url, port), timeout=10) as r:
        print(r.status, len(r.read()))
    srv.shutdown()
    srv.server_close()
# UDP to oneself, MSG_PEEK and FIONREAD.
import fcntl, struct, termios
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.sendto(b"datagram", u.getsockname())
print(u.recv(100, socket.MSG_PEEK),
      struct.unpack("i", fcntl.ioctl(u, termios.FIONREAD, b"\0" * 4))[0],
      u.recvfrom(100)[0])
print("done")
"#;

/// Loopback inside the sandbox's namespace (its `lo` is up), IPv4 and IPv6.
#[test]
fn loopback_in_namespace() {
    let Some(net) = NetPair::new() else { return };
    let sandboxed = ok(&net.sandbox(LOOPBACK, &[]));
    assert_eq!(sandboxed, ok(&net.native(LOOPBACK, &[])));
    assert_eq!(
        sandboxed,
        "200 1500\n200 1500\nb'datagram' 8 b'datagram'\ndone\n"
    );
}

const PING: &str = r#"
import socket, struct, sys
for fam, proto, typ, peer in ((socket.AF_INET, socket.IPPROTO_ICMP, 8, sys.argv[1]),
                              (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, sys.argv[2])):
    s = socket.socket(fam, socket.SOCK_DGRAM, proto)
    s.settimeout(10)
    s.sendto(struct.pack("!BBHHH", typ, 0, 0, 0, 7) + b"runsc", (peer, 0))
    data, src = s.recvfrom(200)
    print(fam == socket.AF_INET6, data[0], data[6:8], data[8:], src[0] == peer)
"#;

/// ICMP echo ("ping") sockets, IPv4 and IPv6, once the namespace's `ping_group_range`
/// admits the caller.
#[test]
fn ping_sockets() {
    let Some(net) = NetPair::new() else { return };
    let allowed = Command::new("ip")
        .args(["netns", "exec", &net.sandbox, "sysctl", "-q", "-w"])
        .arg("net.ipv4.ping_group_range=0 2147483647")
        .status();
    if !allowed.is_ok_and(|s| s.success()) {
        skip("cannot set net.ipv4.ping_group_range in the test's namespace");
        return;
    }
    let sandboxed = ok(&net.sandbox(PING, &[PEER_V4, PEER_V6]));
    assert_eq!(sandboxed, ok(&net.native(PING, &[PEER_V4, PEER_V6])));
    assert_eq!(
        sandboxed,
        "False 0 b'\\x00\\x07' b'runsc' True\nTrue 129 b'\\x00\\x07' b'runsc' True\n"
    );
}
