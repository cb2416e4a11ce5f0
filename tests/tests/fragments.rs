//! IP fragmentation on the pod's link: each test makes a pair of network namespaces joined by
//! a veth pair (MTU 1500, private addresses 10.251.N.0/24 and fd00:251:N::/64), runs
//! `runsc-rs do --network sandbox` in the first and native programs in the second, and
//! compares with the same program run natively in the first namespace: UDP datagrams above
//! the MTU both ways (the sandbox cuts them, the peer's fragments are reassembled), EMSGSIZE
//! with IP_PMTUDISC_DO and IPV6_DONTFRAG, IP_MTU, a ping with a 4,000-byte payload, and a
//! peer flooding incomplete datagrams, which costs the sentry bounded memory.
//!
//! Needs root (namespaces), `ip` and Debian's python3; a missing piece prints
//! `SKIPPED: reason`.

use std::time::Duration;

use runsc_rs_tests::netns::{v4, v6, SandboxPair};
use runsc_rs_tests::{assert_exit_ok, debian_python, static_busybox};

/// How long each program of these tests may run.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The programs: `python3 -c FRAG MODE ARGS...`.
const FRAG: &str = r#"
import errno, select, socket, struct, sys, time

mode, args = sys.argv[1], sys.argv[2:]
if mode == "echo":
    # Echoes every datagram on PORT (IPv4 and IPv6) until QUITS "quit"s came.
    port, quits = int(args[0]), int(args[1])
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("0.0.0.0", port))
    b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    b.bind(("::", port))
    while quits:
        r, _, _ = select.select([a, b], [], [], 150)
        if not r:
            sys.exit("idle")
        for s in r:
            d, addr = s.recvfrom(70000)
            if d == b"quit":
                quits -= 1
            else:
                s.sendto(d, addr)
elif mode == "ask":
    host4, host6, port = args[0], args[1], int(args[2])
    for fam, host, name in ((socket.AF_INET, host4, "v4"), (socket.AF_INET6, host6, "v6")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(2)
        level = socket.IPPROTO_IP if fam == socket.AF_INET else socket.IPPROTO_IPV6
        try:
            s.getsockopt(level, 14 if name == "v4" else 24)
        except OSError as e:
            print(name, "mtu unconnected", errno.errorcode[e.errno])
        s.connect((host, port))
        print(name, "mtu", s.getsockopt(level, 14 if name == "v4" else 24))
        def exchange(size):
            data = bytes((i * 7 + size) & 255 for i in range(size))
            for _ in range(10):
                s.send(data)
                try:
                    while True:
                        got = s.recv(70000)
                        if got == data:
                            return "same"
                except socket.timeout:
                    pass
            return "lost"
        for size in (1000, 1473, 4000, 9000, 65000):
            print(name, size, exchange(size))
        # Path MTU discovery on: what does not fit is refused, with a local error.
        recverr = (socket.IPPROTO_IP, 11) if name == "v4" else (socket.IPPROTO_IPV6, 25)
        s.setsockopt(*recverr, 1)
        s.setsockopt(level, 10 if name == "v4" else 23, 2)
        for size in (1000, 4000):
            try:
                s.send(bytes(size))
                print(name, "do", size, "sent")
            except OSError as e:
                print(name, "do", size, errno.errorcode[e.errno])
        try:
            _, anc, flags, _ = s.recvmsg(100, 512, socket.MSG_ERRQUEUE)
            for lvl, typ, d in anc:
                ee = struct.unpack("=IBBBBII", d[:16])
                print(name, "errqueue", errno.errorcode[ee[0]], "origin", ee[1], "info", ee[5])
        except OSError as e:
            print(name, "errqueue", errno.errorcode[e.errno])
        s.setsockopt(level, 10 if name == "v4" else 23, 1)
        print(name, "want", 4000, exchange(4000))
        if name == "v6":
            s.setsockopt(socket.IPPROTO_IPV6, 62, 1)
            try:
                s.send(bytes(4000))
                print(name, "dontfrag sent")
            except OSError as e:
                print(name, "dontfrag", errno.errorcode[e.errno])
        s.send(b"quit")
    # A raw socket's own header (IP_HDRINCL) is never fragmented: above the MTU, EMSGSIZE.
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    dst = socket.inet_aton(host4)
    for size in (1500, 1501):
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 1, 0, 64, 17, 0, bytes(4), dst)
        try:
            r.sendto(hdr + struct.pack("!HHHH", 9, 9, size - 20, 0) + bytes(size - 28), (host4, 0))
            print("hdrincl", size, "sent")
        except OSError as e:
            print("hdrincl", size, errno.errorcode[e.errno])
elif mode == "flood":
    # Incomplete datagrams: first fragments (more fragments set) that never get the rest.
    dst, count = args[0], int(args[1])
    src = socket.inet_aton(args[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    payload = bytes(1480)
    for i in range(count):
        ident = i & 0xFFFF
        src_port = 1024 + i // 0x10000
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1500, ident, 0x2000, 64, 17, 0, src,
                          socket.inet_aton(dst))
        s.sendto(hdr + struct.pack("!HH", src_port, 9) + payload[4:], (dst, 0))
        if i % 64 == 63:
            time.sleep(0.002)
    print("sent", count)
"#;

/// UDP datagrams above the link's MTU from the sandbox to a native peer and back, IPv4 and
/// IPv6: the sandbox cuts its own, reassembles the peer's; IP_MTU, and EMSGSIZE with path
/// MTU discovery on (IP_PMTUDISC_DO, IPV6_MTU_DISCOVER, IPV6_DONTFRAG) with the local
/// error on the error queue. The same program runs natively in the sandbox's namespace
/// first; the outputs must be the same.
#[test]
fn udp_above_the_mtu_both_ways() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(pair) = SandboxPair::new("frag") else {
        return;
    };
    let n = pair.n();
    let (h4, h6) = (v4(n, 2), v6(n, 2));
    let echo = pair
        .native(1, &[py, "-c", FRAG, "echo", "9100", "4"])
        .timeout(TIMEOUT);
    std::thread::scope(|sc| {
        let peer = sc.spawn(move || echo.native());
        std::thread::sleep(Duration::from_millis(500));
        let argv = [py, "-c", FRAG, "ask", &h4, &h6, "9100"];
        let native = pair.native(0, &argv).timeout(TIMEOUT).native();
        assert_exit_ok("native", &native);
        let sandbox = pair.sandbox(&argv, TIMEOUT);
        assert_exit_ok("sandbox", &sandbox);
        let text = native.stdout_text();
        for want in [
            "v4 mtu 1500\n",
            "v4 65000 same\n",
            "v4 do 4000 EMSGSIZE\n",
            "v6 mtu 1500\n",
            "v6 65000 same\n",
            "v6 dontfrag EMSGSIZE\n",
            "hdrincl 1501 EMSGSIZE\n",
        ] {
            assert!(text.contains(want), "native lacks {want:?}:\n{text}");
        }
        assert_eq!(sandbox.stdout_text(), text);
        assert_exit_ok("peer", &peer.join().expect("peer"));
    });
}

/// `ping -s 4000` both ways: the echo request and its reply are fragmented on the wire.
#[test]
fn ping_with_a_large_payload() {
    let Some(bb) = static_busybox() else {
        return;
    };
    let Some(pair) = SandboxPair::new("frag") else {
        return;
    };
    let n = pair.n();
    let ping = |host: String| {
        vec![
            bb.to_string(),
            "ping".into(),
            "-c".into(),
            "2".into(),
            "-W".into(),
            "5".into(),
            "-s".into(),
            "4000".into(),
            host,
        ]
    };
    // The peer first: a new sentry answers a peer whose address it has not resolved yet
    // only once it has (the peer's ARP request tells it), as in `network.rs`.
    std::thread::scope(|sc| {
        let sleeper = sc.spawn(|| pair.sandbox(&[bb, "sleep", "8"], TIMEOUT));
        std::thread::sleep(Duration::from_secs(2));
        let argv = ping(v4(n, 1));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let c = pair.native(1, &argv).timeout(TIMEOUT).native();
        assert_exit_ok("ping the sandbox", &c);
        let text = c.stdout_text();
        assert!(text.contains("4008 bytes from"), "{text}");
        assert!(text.contains("2 packets received"), "{text}");
        assert_exit_ok("sandbox sleep", &sleeper.join().expect("sleeper"));
    });
    let argv = ping(v4(n, 2));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = pair.sandbox(&argv, TIMEOUT);
    assert_exit_ok("ping from the sandbox", &out);
    let text = out.stdout_text();
    assert!(text.contains("4008 bytes from"), "{text}");
    assert!(text.contains("2 packets received"), "{text}");
    let mut argv = ping(v6(n, 2));
    argv.insert(2, "-6".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = pair.sandbox(&argv, TIMEOUT);
    assert_exit_ok("ping -6 from the sandbox", &out);
    let text = out.stdout_text();
    assert!(text.contains("4008 bytes from"), "{text}");
    assert!(text.contains("2 packets received"), "{text}");
}

/// The largest resident set among the processes of the sandbox's namespace (the sentry's).
fn largest_rss_kib(pair: &SandboxPair) -> u64 {
    pair.net
        .a
        .pids()
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// A peer sending 20,000 first fragments of datagrams that never complete (about 30 MB held
/// if they were all kept) grows the sentry's resident set by less than 16 MiB: reassembly
/// keeps at most 4 MiB.
#[test]
fn a_flood_of_incomplete_datagrams_costs_bounded_memory() {
    let Some(py) = debian_python() else {
        return;
    };
    let Some(bb) = static_busybox() else {
        return;
    };
    let Some(pair) = SandboxPair::new("frag") else {
        return;
    };
    let n = pair.n();
    std::thread::scope(|sc| {
        let sleeper = sc.spawn(|| pair.sandbox(&[bb, "sleep", "25"], TIMEOUT));
        // Wait until the sentry runs.
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if largest_rss_kib(&pair) > 10_000 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let before = largest_rss_kib(&pair);
        let flood = pair
            .native(1, &[py, "-c", FRAG, "flood", &v4(n, 1), "20000", &v4(n, 2)])
            .timeout(TIMEOUT)
            .native();
        assert_exit_ok("flood", &flood);
        std::thread::sleep(Duration::from_secs(1));
        let after = largest_rss_kib(&pair);
        eprintln!("sentry RSS before the flood {before} KiB, after {after} KiB");
        assert!(before > 0, "no sentry found");
        assert!(
            after < before + 16 * 1024,
            "RSS grew from {before} KiB to {after} KiB"
        );
        assert_exit_ok("sandbox sleep", &sleeper.join().expect("sleeper"));
    });
}
