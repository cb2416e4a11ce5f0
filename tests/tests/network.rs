//! The sentry's own TCP/IP stack on a real link: each test makes a pair of network
//! namespaces joined by a veth pair (private addresses 10.251.N.0/24 and fd00:251:N::/64),
//! runs `runsc-rs do --network sandbox` in the first and native programs in the second, and
//! checks what crosses the link both ways: HTTP, UDP, ping, 100 MiB with its SHA-256, the
//! errors of connect, that the loopback keeps working, and that a listener in the sandbox is
//! reachable at the host kernel's 127.0.0.1 in its namespace (the port forwarding CRI
//! PortForward uses). Nothing leaves the namespaces the
//! test made; a guard deletes them.
//!
//! Needs root (namespaces), `ip`, Debian's python3 and curl; a missing piece prints
//! `SKIPPED: reason`.

use std::time::{Duration, Instant};

use runsc_rs_tests::netns::{v4, v6, SandboxPair};
use runsc_rs_tests::{assert_exit_ok, debian_python, static_busybox, Outcome};

/// The programs both sides run: `python3 -c NET MODE ARGS...`.
const NET: &str = r#"
import hashlib, socket, sys, time

def block():
    # 1 MiB of deterministic bytes.
    out, h = [], b"runsc-rs"
    while sum(map(len, out)) < 1 << 20:
        h = hashlib.sha256(h).digest()
        out.append(h * 64)
    return b"".join(out)[: 1 << 20]

def connect(family, host, port, deadline=30):
    end = time.time() + deadline
    while True:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.connect((host, port))
            return s
        except OSError:
            s.close()
            if time.time() > end:
                raise
            time.sleep(0.2)

def bulk_send(s, mib):
    b, h = block(), hashlib.sha256()
    for _ in range(mib):
        s.sendall(b)
        h.update(b)
    return h.hexdigest()

def bulk_recv(s):
    h, n = hashlib.sha256(), 0
    while True:
        d = s.recv(1 << 16)
        if not d:
            return n, h.hexdigest()
        h.update(d)
        n += len(d)

mode, args = sys.argv[1], sys.argv[2:]
if mode == "http-serve":
    import http.server
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("sandbox says %s\n" % self.path).encode() * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    family = socket.AF_INET6 if ":" in args[0] else socket.AF_INET
    class S(http.server.HTTPServer):
        address_family = family
    srv = S((args[0], int(args[1])), H)
    for _ in range(int(args[2])):
        srv.handle_request()
    print("served")
elif mode == "fetch":
    import urllib.request
    end = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(args[0], timeout=10) as r:
                d = r.read()
                print(r.status, len(d), hashlib.sha256(d).hexdigest())
                break
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.2)
elif mode == "udp-echo":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args[0], int(args[1])))
    d, peer = s.recvfrom(100)
    s.sendto(d.upper(), peer)
    print("echoed", d.decode(), peer[0])
elif mode == "udp-ask":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    end = time.time() + 30
    while True:
        s.sendto(b"hello", (args[0], int(args[1])))
        try:
            d, peer = s.recvfrom(100)
            print("reply", d.decode(), peer[0], s.getsockname()[0])
            break
        except socket.timeout:
            if time.time() > end:
                raise
elif mode == "bulk-serve":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(args[0])))
    s.listen(1)
    c, _ = s.accept()
    t = time.time()
    if args[1] == "send":
        print("sent", bulk_send(c, int(args[2])))
    else:
        n, h = bulk_recv(c)
        print("got", n, h)
    c.close()
    print("seconds %.2f" % (time.time() - t), file=sys.stderr)
elif mode == "bulk-connect":
    c = connect(socket.AF_INET, args[0], int(args[1]))
    if args[2] == "send":
        print("sent", bulk_send(c, int(args[3])))
        c.shutdown(socket.SHUT_WR)
        c.recv(1)
    else:
        n, h = bulk_recv(c)
        print("got", n, h)
elif mode == "errors":
    import errno, select
    peer, absent = args[0], args[1]
    s = socket.socket()
    print("refused", s.connect_ex((peer, 1)) == errno.ECONNREFUSED)
    s = socket.socket()
    s.setblocking(False)
    print("inprogress", s.connect_ex((peer, 1)) == errno.EINPROGRESS)
    select.select([], [s], [], 10)
    print("so_error refused", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED)
    s = socket.socket()
    t = time.time()
    e = s.connect_ex((absent, 80))
    print("absent", errno.errorcode.get(e, e), "within 10s", time.time() - t < 10)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((peer, 9))
    print("udp source", s.getsockname()[0])
    s = socket.socket()
    s.bind((args[2], 0))
    print("bound", s.getsockname()[0])
    s = socket.socket()
    try:
        s.bind(("192.0.2.1", 0))
    except OSError as e:
        print("foreign bind", errno.errorcode[e.errno])
    l = socket.socket()
    l.bind(("0.0.0.0", 0))
    l.listen(4096)
    port = l.getsockname()[1]
    conns = [socket.create_connection((args[2], port)) for _ in range(200)]
    print("backlog", len([l.accept() for _ in conns]))
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = l.accept()
    c.sendall(b"lo")
    print("loopback", a.recv(2).decode(), a.getsockname()[0])
elif mode == "dual":
    l = socket.socket(socket.AF_INET6)
    l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    l.bind(("::", 0))
    l.listen(8)
    port = l.getsockname()[1]
    for host in ("::1", "127.0.0.1", args[0]):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        c = socket.socket(fam)
        c.connect((host, port))
        a, peer = l.accept()
        c.sendall(b"x")
        print(host, "->", peer[0], a.recv(1).decode())
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    print("v6only", s.connect_ex(("::ffff:127.0.0.1", port)) != 0)
elif mode == "ping-socket":
    # Unprivileged ping: datagram ICMP sockets; the stack sets the identifier.
    for host in args:
        six = ":" in host
        fam, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if six else (socket.AF_INET, socket.IPPROTO_ICMP)
        s = socket.socket(fam, socket.SOCK_DGRAM, proto)
        s.settimeout(10)
        req = bytes([128 if six else 8, 0, 0, 0, 0x12, 0x34, 0, 7]) + b"payload"
        s.sendto(req, (host, 0))
        d, peer = s.recvfrom(100)
        print(host, "type", d[0], "seq", d[7], d[8:].decode(), peer[0] == host)
elif mode == "udp-refused":
    # Datagrams to a port the peer has closed: its ICMP port unreachable reaches the
    # sender's error queue (IP_RECVERR/IPV6_RECVERR), and a connected socket's next call.
    import select, struct
    for host in args:
        six = ":" in host
        fam, level, opt = (socket.AF_INET6, socket.IPPROTO_IPV6, 25) if six else (socket.AF_INET, socket.IPPROTO_IP, 11)
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(level, opt, 1)
        s.sendto(b"x" * 100, (host, 9))
        p = select.poll()
        p.register(s, 0)
        print(host, "poll", [e for _, e in p.poll(10000)])
        d, anc, flags, addr = s.recvmsg(200, 256, socket.MSG_ERRQUEUE)
        lvl, ty, data = anc[0]
        err, origin, t, code, _, info, _ = struct.unpack("IBBBBII", data[:16])
        off = socket.inet_ntop(fam, data[20:24] if not six else data[24:40])
        print(host, len(d), flags & socket.MSG_ERRQUEUE != 0, addr[0] == host, addr[1], lvl, ty,
              err, origin, t, code, info, off == host)
        c = socket.socket(fam, socket.SOCK_DGRAM)
        c.connect((host, 9))
        c.send(b"y")
        p = select.poll()
        p.register(c, 0)
        print(host, "connected poll", [e for _, e in p.poll(10000)])
        try:
            c.send(b"z")
            print(host, "sent again")
        except OSError as e:
            print(host, "send again:", e.strerror)
elif mode == "fwd-serve":
    # One connection on 127.0.0.1:PORT: read to the peer's FIN, answer with what came and
    # 2 MiB, close; then listen on PORT+1 (the wildcard) for the peer's "bye".
    port = int(args[0])
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port))
    l.listen(5)
    c, peer = l.accept()
    n, h = bulk_recv(c)
    c.sendall(("%d %s\n" % (n, h)).encode())
    c.sendall(block() * 2)
    c.close()
    l.close()
    l2 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l2.bind(("0.0.0.0", port + 1))
    l2.listen(1)
    c, _ = l2.accept()
    print("peer", peer[0], "then", c.recv(10).decode())
elif mode == "fwd-client":
    port = int(args[0])
    s = connect(socket.AF_INET, "127.0.0.1", port)
    sent = bulk_send(s, 8)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        data += d
    line, rest = data.split(b"\n", 1)
    print(line.decode() == "%d %s" % (8 << 20, sent), rest == block() * 2)
    s.close()
    end = time.time() + 10
    while True:
        try:
            t = socket.create_connection(("127.0.0.1", port), timeout=2)
            t.close()
        except ConnectionRefusedError:
            print("refused after close")
            break
        if time.time() > end:
            print("still listening")
            break
        time.sleep(0.1)
    s2 = connect(socket.AF_INET, "127.0.0.1", port + 1)
    s2.sendall(b"bye")
    s2.close()
elif mode == "fwd-taken":
    # Listens on the wildcard at a port the host kernel's 127.0.0.1 has taken, and talks to
    # itself through it.
    port = int(args[0])
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.bind(("0.0.0.0", port))
    l.listen(1)
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = l.accept()
    c.sendall(b"x")
    print("listening, got", a.recv(1).decode())
print("done")
"#;

/// Runs `sandbox` in the sandbox and `native` in the peer's namespace at the same time,
/// starting the sandbox first (`sandbox_first`) or the native side, and returns (sandbox,
/// native). The side started second retries its connection until the first listens.
fn both(
    pair: &SandboxPair,
    sandbox: Vec<String>,
    native: Vec<String>,
    sandbox_first: bool,
) -> (Outcome, Outcome) {
    let timeout = Duration::from_secs(120);
    std::thread::scope(|sc| {
        let native_run = |delay: bool| {
            if delay {
                std::thread::sleep(Duration::from_millis(300));
            }
            let argv: Vec<&str> = native.iter().map(String::as_str).collect();
            pair.native(1, &argv).timeout(timeout).native()
        };
        let sandbox_argv: Vec<&str> = sandbox.iter().map(String::as_str).collect();
        if sandbox_first {
            let n = sc.spawn(move || native_run(true));
            let s = pair.sandbox(&sandbox_argv, timeout);
            (s, n.join().expect("native side"))
        } else {
            let n = sc.spawn(move || native_run(false));
            std::thread::sleep(Duration::from_millis(500));
            let s = pair.sandbox(&sandbox_argv, timeout);
            (s, n.join().expect("native side"))
        }
    })
}

fn args(py: &str, list: &[&str]) -> Vec<String> {
    [py, "-c", NET]
        .iter()
        .chain(list)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn http_both_ways() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    // The sandbox serves; curl on the peer fetches, over IPv4 and IPv6.
    let curl = |host: &str| {
        vec![
            "curl".to_string(),
            "-sS".into(),
            "--retry".into(),
            "60".into(),
            "--retry-connrefused".into(),
            "--retry-delay".into(),
            "1".into(),
            "-g".into(),
            format!("http://{host}:8080/x"),
        ]
    };
    let (s, c) = both(
        &pair,
        args(py, &["http-serve", "0.0.0.0", "8080", "1"]),
        curl(&v4(n, 1)),
        true,
    );
    assert_exit_ok("sandbox server", &s);
    assert_exit_ok("curl", &c);
    assert_eq!(c.stdout_text(), "sandbox says /x\n".repeat(100));
    let (s, c) = both(
        &pair,
        args(py, &["http-serve", "::", "8080", "1"]),
        curl(&format!("[{}]", v6(n, 1))),
        true,
    );
    assert_exit_ok("sandbox IPv6 server", &s);
    assert_exit_ok("curl -6", &c);
    assert_eq!(c.stdout_text(), "sandbox says /x\n".repeat(100));

    // The peer serves; urllib in the sandbox fetches.
    let (s, c) = both(
        &pair,
        args(py, &["fetch", &format!("http://{}:8081/y", v4(n, 2))]),
        args(py, &["http-serve", "0.0.0.0", "8081", "1"]),
        false,
    );
    assert_exit_ok("native server", &c);
    assert_exit_ok("sandbox urllib", &s);
    let body = "sandbox says /y\n".repeat(100);
    assert!(
        s.stdout_text().starts_with(&format!("200 {} ", body.len())),
        "{}",
        s.stdout_text()
    );
}

#[test]
fn udp_both_ways() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    let (s, c) = both(
        &pair,
        args(py, &["udp-echo", "0.0.0.0", "9000"]),
        args(py, &["udp-ask", &v4(n, 1), "9000"]),
        true,
    );
    assert_exit_ok("sandbox echo", &s);
    assert_exit_ok("native ask", &c);
    assert!(s
        .stdout_text()
        .starts_with(&format!("echoed hello {}\n", v4(n, 2))));
    assert!(c
        .stdout_text()
        .starts_with(&format!("reply HELLO {}", v4(n, 1))));
    let (s, c) = both(
        &pair,
        args(py, &["udp-ask", &v4(n, 2), "9001"]),
        args(py, &["udp-echo", "0.0.0.0", "9001"]),
        false,
    );
    assert_exit_ok("native echo", &c);
    assert_exit_ok("sandbox ask", &s);
    // The sandbox's datagrams leave from its link address; its unconnected socket still
    // shows the wildcard, as on Linux.
    assert!(
        c.stdout_text()
            .starts_with(&format!("echoed hello {}\n", v4(n, 1))),
        "{}",
        c.stdout_text()
    );
    assert!(
        s.stdout_text()
            .starts_with(&format!("reply HELLO {} 0.0.0.0\n", v4(n, 2))),
        "{}",
        s.stdout_text()
    );
}

#[test]
fn ping_both_ways() {
    let Some(bb) = static_busybox() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    // The stack answers pings with no socket open: the sandbox only sleeps.
    let sleeper = vec![bb.to_string(), "sleep".into(), "8".into()];
    let ping = |host: String| {
        vec![
            bb.to_string(),
            "ping".into(),
            "-c".into(),
            "3".into(),
            "-W".into(),
            "5".into(),
            host,
        ]
    };
    let (s, c) = both(&pair, sleeper, ping(v4(n, 1)), true);
    assert_exit_ok("sandbox sleep", &s);
    assert_exit_ok("ping the sandbox", &c);
    assert!(
        c.stdout_text().contains("3 packets received"),
        "{}",
        c.stdout_text()
    );
    // busybox ping in the sandbox (root: a raw ICMP socket).
    let out = pair.sandbox(
        &ping(v4(n, 2))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    assert_exit_ok("ping from the sandbox", &out);
    assert!(
        out.stdout_text().contains("3 packets received"),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn ping_sockets() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    let hosts = [
        v4(n, 2),
        v6(n, 2),
        v4(n, 1),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    let mut argv = vec![py, "-c", NET, "ping-socket"];
    argv.extend(hosts.iter().map(String::as_str));
    let out = pair.sandbox(&argv, Duration::from_secs(60));
    assert_exit_ok("sandbox", &out);
    let mut expected = String::new();
    for h in &hosts {
        let reply = if h.contains(':') { 129 } else { 0 };
        expected += &format!("{h} type {reply} seq 7 payload True\n");
    }
    expected += "done\n";
    assert_eq!(out.stdout_text(), expected);
}

/// A peer's ICMP port unreachable for a datagram from the sandbox reaches the sender as
/// on Linux: on its error queue with IP_RECVERR (IPV6_RECVERR), as POLLERR and as a
/// connected socket's ECONNREFUSED. The same program runs natively in the sandbox's
/// namespace first.
#[test]
fn udp_port_unreachable_from_the_link() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    let hosts = [v4(n, 2), v6(n, 2)];
    let mut argv = vec![py, "-c", NET, "udp-refused"];
    argv.extend(hosts.iter().map(String::as_str));
    let native = pair.native(0, &argv).native();
    assert_exit_ok("native", &native);
    let sandbox = pair.sandbox(&argv, Duration::from_secs(60));
    assert_exit_ok("sandbox", &sandbox);
    let text = native.stdout_text();
    let four = v4(n, 2);
    assert!(
        text.contains(&format!(
            "{four} 100 True True 9 0 11 111 2 3 3 0 True\n{four} connected poll [8]\n\
             {four} send again: Connection refused\n"
        )),
        "{text}"
    );
    assert_eq!(sandbox.stdout_text(), text);
}

#[test]
fn bulk_100_mib_both_ways_with_sha256() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    let peer = v4(n, 1);
    for (sandbox_sends, port) in [(true, "9100"), (false, "9101")] {
        let (mine, theirs) = if sandbox_sends {
            ("send", "recv")
        } else {
            ("recv", "send")
        };
        let started = Instant::now();
        let (s, c) = both(
            &pair,
            args(py, &["bulk-serve", port, mine, "100"]),
            args(py, &["bulk-connect", &peer, port, theirs, "100"]),
            true,
        );
        assert_exit_ok("sandbox side", &s);
        assert_exit_ok("native side", &c);
        let (sender, receiver) = if sandbox_sends { (&s, &c) } else { (&c, &s) };
        let sent = sender.stdout_text();
        let got = receiver.stdout_text();
        let sha = sent
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("sent "))
            .unwrap_or_else(|| panic!("no digest: {sent}"))
            .to_string();
        assert!(
            got.starts_with(&format!("got {} {sha}\n", 100 << 20)),
            "sent {sha}, {got}"
        );
        eprintln!(
            "100 MiB, sandbox {}: {:?} in all ({})",
            if sandbox_sends { "sends" } else { "receives" },
            started.elapsed(),
            s.stderr_text().trim()
        );
    }
}

#[test]
fn connect_errors_addresses_backlog_and_loopback() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let n = pair.n();
    // 10.251.N.99 is on the link but nobody answers its ARP.
    let argv = [py, "-c", NET, "errors", &v4(n, 2), &v4(n, 99), &v4(n, 1)];
    let native = pair.native(0, &argv).native();
    let out = pair.sandbox(&argv, Duration::from_secs(120));
    assert_exit_ok("native", &native);
    assert_exit_ok("sandbox", &out);
    let me = v4(n, 1);
    // Native Linux in the same namespace shows what is checked.
    let expected = format!(
        "refused True\ninprogress True\nso_error refused True\n\
         absent EHOSTUNREACH within 10s True\nudp source {me}\nbound {me}\n\
         foreign bind EADDRNOTAVAIL\nbacklog 200\nloopback lo 127.0.0.1\ndone\n"
    );
    assert_eq!(native.stdout_text(), expected);
    assert_eq!(out.stdout_text(), expected);
}

#[test]
fn ipv6_dual_stack() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    let me = v6(pair.n(), 1);
    let argv = [py, "-c", NET, "dual", &me];
    let native = pair.native(0, &argv).native();
    let out = pair.sandbox(&argv, Duration::from_secs(60));
    assert_exit_ok("native", &native);
    assert_exit_ok("sandbox", &out);
    let expected = format!(
        "::1 -> ::1 x\n127.0.0.1 -> ::ffff:127.0.0.1 x\n{me} -> {me} x\nv6only True\ndone\n"
    );
    assert_eq!(native.stdout_text(), expected);
    assert_eq!(out.stdout_text(), expected);
}

/// A listener in the sandbox on 127.0.0.1 or the wildcard is reachable at the host kernel's
/// 127.0.0.1 in the sandbox's namespace (what containerd's CRI PortForward dials): 8 MiB in,
/// a half-close, the answer and 2 MiB out; the host port closes with the application's
/// listener; a port the host has taken leaves the application's listen working. The same
/// programs run natively first, both sides on the namespace's own kernel.
#[test]
fn host_loopback_reaches_sandbox_listeners() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("net") else {
        return;
    };
    // Native and sandbox runs use different ports: the native run's connections may leave
    // TIME_WAIT sockets on the host kernel's ports, which a new listener without
    // SO_REUSEADDR on both sides cannot bind.
    let serve = |port| [py, "-c", NET, "fwd-serve", port];
    let client = |port| [py, "-c", NET, "fwd-client", port];
    let expected_server = "peer 127.0.0.1 then bye\ndone\n";
    let expected_client = "True True\nrefused after close\ndone\n";
    let timeout = Duration::from_secs(120);
    let (s, c) = std::thread::scope(|sc| {
        let n = sc.spawn(|| pair.native(0, &client("8090")).timeout(timeout).native());
        let s = pair.native(0, &serve("8090")).timeout(timeout).native();
        (s, n.join().expect("native client"))
    });
    assert_exit_ok("native server", &s);
    assert_exit_ok("native client", &c);
    assert_eq!(s.stdout_text(), expected_server);
    assert_eq!(c.stdout_text(), expected_client);

    let (s, c) = std::thread::scope(|sc| {
        let n = sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            pair.native(0, &client("8092")).timeout(timeout).native()
        });
        let s = pair.sandbox(&serve("8092"), timeout);
        (s, n.join().expect("host client"))
    });
    assert_exit_ok("sandbox server", &s);
    assert_exit_ok("host client", &c);
    assert_eq!(s.stdout_text(), expected_server);
    assert_eq!(c.stdout_text(), expected_client);

    // The host kernel's 127.0.0.1:8095 is taken by a native listener.
    let hold = "import socket, time\n\
                l = socket.socket()\n\
                l.bind(('127.0.0.1', 8095))\n\
                l.listen(1)\n\
                print('held', flush=True)\n\
                time.sleep(60)\n";
    let mut holder = pair
        .net
        .a
        .command(py)
        .args(["-c", hold])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the holder");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("piped")),
        &mut line,
    )
    .expect("the holder's line");
    assert_eq!(line, "held\n");
    let out = pair.sandbox(&[py, "-c", NET, "fwd-taken", "8095"], timeout);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_exit_ok("sandbox on a taken port", &out);
    assert_eq!(out.stdout_text(), "listening, got x\ndone\n");
}
