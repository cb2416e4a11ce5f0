//! The sandbox's NETLINK_ROUTE and `/proc/net`, compared with native Linux in a fresh
//! network namespace of the test's own (`unshare -n`, loopback up): what a sandbox started
//! with `--network none` shows must be the same.
//!
//! Needs root (for `unshare -n`), iproute2's `ip`, `cc` and python3; a missing piece prints
//! `SKIPPED: reason`.

use std::path::Path;

use runsc_rs_tests::{
    assert_same, assert_same_outcomes, diff, netns_and_sandbox, program_str, run_native, skip,
};

/// Runs `script` natively in a fresh network namespace and in the sandbox, failing with a
/// diff unless stdout and the exit status agree; the native output.
fn assert_same_in_netns(script: &str) -> Option<String> {
    netns_and_sandbox(script).map(|pair| assert_same_outcomes(script, pair))
}

fn have_ip() -> bool {
    let found = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).is_file());
    if !found {
        skip("iproute2's ip is not installed");
    }
    found
}

#[test]
fn ip_shows_what_native_shows() {
    if !have_ip() {
        return;
    }
    for cmd in [
        "ip addr",
        "ip link",
        "ip -6 addr",
        "ip -4 addr show dev lo",
        "ip link show lo",
        "ip route",
        "ip -6 route",
        "ip route show table local",
        "ip -6 route show table local",
        "ip route get 127.0.0.1",
    ] {
        let Some(out) = assert_same_in_netns(&format!("{cmd}; echo status $?")) else {
            return;
        };
        // The native run shows what is compared, so an empty answer cannot pass unnoticed.
        if cmd.contains("addr") || cmd.contains("link") {
            assert!(out.contains("lo"), "{cmd}: {out}");
        }
        assert!(out.ends_with("status 0\n"), "{cmd}: {out}");
    }
}

#[test]
fn c_program_with_getifaddrs_and_raw_requests() {
    let Some(prog) = program_str("netlink_route") else {
        return;
    };
    let Some(out) = assert_same_in_netns(&prog) else {
        return;
    };
    for line in [
        "ifaddr lo family 2 flags 0x10049 addr 127.0.0.1 mask 255.0.0.0\n",
        "nameindex 1 lo\n",
        "bound pid is getpid 1\n",
        "link dump: NEWLINK(1 multi 1) DONE(len 20)\n",
        "addr dump: NEWADDR(2/8) NEWADDR(10/128) DONE(len 20)\n",
        "link 1 ack: NEWLINK(1 multi 0) ERROR 0 len 36 seq 12\n",
        "link 99: ERROR -19 len 52 seq 13\n",
        "getaddr without dump: ERROR -95 len 52 seq 15\n",
        "peek trunc positive 1, small read 4 flags trunc 1\n",
        "ethtool ts 0  so 0x1a phc -1 tx 0 rx 0\n",
        "ethtool unknown -1 Operation not supported\n",
        "ethtool nodev -1 No such device\n",
    ] {
        assert!(out.contains(line), "native output lacks {line:?}:\n{out}");
    }
    assert!(out.ends_with("done\n"), "{out}");
}

/// Python's view: interface names, AI_ADDRCONFIG lookups, and `/proc/net/{tcp,udp,unix}`
/// lines for sockets it holds open (addresses, state, queues, and the inode of the socket).
const PY_SOCKETS: &str = r#"
import os, socket
print(socket.if_nameindex())
print(sorted(set(a[0] for a in socket.getaddrinfo("localhost", 80, flags=socket.AI_ADDRCONFIG))))
print(sorted(set(a[4][0] for a in socket.getaddrinfo(None, 80, flags=socket.AI_ADDRCONFIG | socket.AI_PASSIVE))))

def rows(name, ino):
    with open("/proc/net/" + name) as f:
        lines = f.read().split("\n")
    print(name, "header", repr(lines[0].strip()), "width", len(lines[0]))
    for l in lines[1:]:
        fields = l.split()
        if str(ino) in fields:
            return fields, len(l)
    return None, 0

tcp = socket.socket()
tcp.bind(("127.0.0.1", 0))
tcp.listen(5)
port = tcp.getsockname()[1]
f, width = rows("tcp", os.fstat(tcp.fileno()).st_ino)
print("tcp listener", f[1] == "0100007F:%04X" % port, f[2:4], f[4], "width", width)
cli = socket.create_connection(("127.0.0.1", port))
srv, _ = tcp.accept()
f, width = rows("tcp", os.fstat(cli.fileno()).st_ino)
print("tcp client", f[2] == "0100007F:%04X" % port, f[3], "width", width)

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
f, width = rows("udp", os.fstat(udp.fileno()).st_ino)
print("udp", f[1] == "0100007F:%04X" % udp.getsockname()[1], f[2:4], "width", width)

ux = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ux.bind("\0runsc-rs-netlink-test")
ux.listen(1)
f, _ = rows("unix", os.fstat(ux.fileno()).st_ino)
print("unix", f[1:6], f[7])
print("done")
"#;

#[test]
fn python_names_lookups_and_proc_net_sockets() {
    let Some(py) = ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        skip("Debian's python3 is not installed");
        return;
    };
    let script = format!("{py} -c '{}'", PY_SOCKETS.replace('\'', "'\\''"));
    let Some(out) = assert_same_in_netns(&script) else {
        return;
    };
    for line in [
        "[(1, 'lo')]\n",
        "tcp listener True ['00000000:0000', '0A'] 00000000:00000000 width 149\n",
        "tcp client True 01 width 149\n",
        "udp True ['00000000:0000', '07'] width 127\n",
        "unix ['00000002', '00000000', '00010000', '0001', '01'] @runsc-rs-netlink-test\n",
    ] {
        assert!(out.contains(line), "native output lacks {line:?}:\n{out}");
    }
    assert!(out.ends_with("done\n"), "{out}");
}

#[test]
fn proc_net_files_match_native() {
    let Some(out) = assert_same_in_netns(
        "cd /proc/net && cat dev route if_inet6 tcp6 udp6 && \
         cd /proc/sys/net && for f in core/somaxconn ipv4/ip_local_port_range \
         ipv4/tcp_fin_timeout ipv4/tcp_keepalive_time ipv4/tcp_keepalive_intvl \
         ipv4/tcp_keepalive_probes ipv4/tcp_syncookies ipv4/tcp_sack ipv4/tcp_timestamps \
         ipv4/tcp_window_scaling ipv4/tcp_wmem ipv6/conf/all/disable_ipv6 \
         ipv6/conf/lo/disable_ipv6; do echo \"$f $(cat $f)\"; done; ls ipv6/conf",
    ) else {
        return;
    };
    assert!(out.contains("    lo:       0       0"), "{out}");
    assert!(
        out.contains("00000000000000000000000000000001 01 80 10 80       lo\n"),
        "{out}"
    );
    assert!(out.contains("core/somaxconn 4096\n"), "{out}");
}

/// Root's writes to `ipv4/{ip_forward,tcp_sack,tcp_recovery}` (per network namespace on
/// Linux) are read back, also through the descriptor that wrote them; junk is EINVAL. (The
/// values before are not compared: a new namespace's ip_forward follows the host's.)
#[test]
fn ipv4_sysctls_keep_what_root_writes() {
    let Some(out) = assert_same_in_netns(
        "python3 -c \"
import os
for name, value in (('ip_forward', b'1'), ('tcp_sack', b'0'), ('tcp_recovery', b'100')):
    fd = os.open('/proc/sys/net/ipv4/' + name, os.O_RDWR)
    os.pwrite(fd, value, 0)
    after = os.pread(fd, 16, 0)
    try:
        os.pwrite(fd, b'x', 0)
        junk = 'ok'
    except OSError as e:
        junk = os.strerror(e.errno)
    print(name, after, open('/proc/sys/net/ipv4/' + name).read().strip(), junk)
print('done')
\"",
    ) else {
        return;
    };
    for line in [
        "ip_forward b'1\\n' 1 Invalid argument\n",
        "tcp_sack b'0\\n' 0 Invalid argument\n",
        "tcp_recovery b'100\\n' 100 Invalid argument\n",
    ] {
        assert!(out.contains(line), "native output lacks {line:?}:\n{out}");
    }
    assert!(out.ends_with("done\n"), "{out}");
}

/// A network namespace with a veth link, made for one test and removed on drop.
struct VethNamespace {
    name: String,
    host_end: String,
}

impl VethNamespace {
    /// `10.251.77.2/24` on `eth0` with a default route via `.1`; IPv6 duplicate address
    /// detection off so that the link-local address is final at once.
    fn new() -> Result<VethNamespace, String> {
        let id = std::process::id();
        let ns = VethNamespace {
            name: format!("rsnl{id}"),
            host_end: format!("rsnlv{id}"),
        };
        let n = ns.name.as_str();
        let host_end = ns.host_end.as_str();
        for argv in [
            vec!["ip", "netns", "add", n],
            vec![
                "ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", n,
            ],
            vec!["ip", "link", "set", host_end, "up"],
            vec![
                "ip",
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv6.conf.eth0.accept_dad=0",
            ],
            vec!["ip", "netns", "exec", n, "ip", "link", "set", "lo", "up"],
            vec!["ip", "netns", "exec", n, "ip", "link", "set", "eth0", "up"],
            vec![
                "ip",
                "netns",
                "exec",
                n,
                "ip",
                "addr",
                "add",
                "10.251.77.2/24",
                "brd",
                "+",
                "dev",
                "eth0",
            ],
            vec![
                "ip",
                "netns",
                "exec",
                n,
                "ip",
                "route",
                "add",
                "default",
                "via",
                "10.251.77.1",
            ],
        ] {
            let out = run_native(&argv);
            if out.status != 0 {
                return Err(format!("{argv:?}: {}", out.stderr_text()));
            }
        }
        Ok(ns)
    }
}

impl Drop for VethNamespace {
    fn drop(&mut self) {
        let _ = run_native(&["ip", "netns", "del", &self.name]);
        let _ = run_native(&["ip", "link", "del", &self.host_end]);
    }
}

/// What the sandbox cannot show of a veth: its peer's index and namespace id.
fn without_veth_peer(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = match l.find("@if") {
                Some(i) => {
                    let end = l[i..].find(':').map_or(l.len(), |e| i + e);
                    format!("{}{}", &l[..i], &l[end..])
                }
                None => l.to_owned(),
            };
            match l.find(" link-netnsid ") {
                Some(i) => l[..i].to_owned(),
                None => l,
            }
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn veth_namespace_matches_native() {
    if !have_ip() {
        return;
    }
    let ns = match VethNamespace::new() {
        Ok(ns) => ns,
        Err(e) => {
            skip(&format!("cannot make a veth namespace here: {e}"));
            return;
        }
    };
    let script = "ip addr; ip link; ip route; ip -6 route; ip route show table local; \
                  cat /proc/net/route; sort /proc/net/if_inet6";
    // (Linux lists if_inet6 in the order of a hash salted per namespace: sorted here.)
    // Natively first: the sandbox takes the addresses off the host kernel's link.
    let native = run_native(&["ip", "netns", "exec", &ns.name, "sh", "-c", script]);
    assert_eq!(native.status, 0, "{}", native.stderr_text());
    let runsc = runsc_rs_tests::runsc_rs_bin();
    let mut argv = vec![
        "ip".to_owned(),
        "netns".into(),
        "exec".into(),
        ns.name.clone(),
        runsc.to_str().expect("UTF-8 path").into(),
        "do".into(),
    ];
    if let Some(platform) = runsc_rs_tests::test_platform() {
        argv.extend(["--platform".into(), platform]);
    }
    argv.extend(["--network", "sandbox", "--", "sh", "-c", script].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let sandbox = run_native(&argv);
    if sandbox.stderr_text().contains("--network") && sandbox.status == 2 {
        skip("this runsc-rs has no --network sandbox");
        return;
    }
    let (want, got) = (
        without_veth_peer(&native.stdout_text()),
        without_veth_peer(&sandbox.stdout_text()),
    );
    assert!(
        want.contains("10.251.77.2/24 brd 10.251.77.255"),
        "native: {want}"
    );
    assert!(
        want == got && sandbox.status == 0,
        "native and sandbox differ (- native, + sandbox):\n{}\n--- sandbox stderr ---\n{}",
        diff(want.as_bytes(), got.as_bytes()),
        sandbox.stderr_text()
    );
}

/// `ip addr add/del` on the loopback: the address shows, its whole network becomes local
/// (as all of 127.0.0.0/8 is), TCP and UDP reach any address of it from the loopback's own
/// address, and once removed the network is unreachable again.
#[test]
fn loopback_addresses_come_and_go_and_their_networks_are_local() {
    if !have_ip() {
        return;
    }
    let script = r#"
ip addr add 192.0.2.1/24 dev lo; echo add $?
ip addr add 192.0.2.1/24 dev lo 2>/dev/null; echo add again $?
ip -4 addr show dev lo
ip route show table local
ip route get 192.0.2.254 | head -n 1
f=$(mktemp)
cat > "$f" <<'PY'
import socket, sys
for dst in sys.argv[1:]:
    try:
        l = socket.socket()
        l.bind((dst, 0))
        l.listen(1)
        c = socket.socket()
        c.connect(l.getsockname())
        a, _ = l.accept()
        print(dst, "tcp from", c.getsockname()[0], "accepted at", a.getsockname()[0])
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((dst, 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"hi", u.getsockname())
        data, frm = u.recvfrom(16)
        print(dst, "udp", data, "from", frm[0])
    except OSError as e:
        print(dst, "errno", e.errno)
PY
python3 "$f" 127.0.0.5 127.1.2.3 192.0.2.254 192.0.2.1
ip addr del 192.0.2.1/24 dev lo; echo del $?
ip addr del 192.0.2.1/24 dev lo 2>/dev/null; echo del again $?
ip -4 addr show dev lo
python3 "$f" 192.0.2.254
rm -f "$f"
"#;
    let Some(out) = assert_same_in_netns(script) else {
        return;
    };
    assert!(out.contains("192.0.2.254 tcp from 192.0.2.1"), "{out}");
    assert!(out.contains("127.0.0.5 udp b'hi' from 127.0.0.1"), "{out}");
    assert!(out.ends_with("192.0.2.254 errno 99\n"), "{out}");
}

/// connect(2) fixes an unbound socket's address to its source, as Linux: a dual-stack
/// socket connected over ::1 holds its port at ::1 only, so 127.0.0.1 (plain or v4-mapped)
/// may still bind that port while ::1 and the wildcard may not, for TCP and UDP.
#[test]
fn a_connection_holds_its_port_at_its_source_address_only() {
    let script = r#"
f=$(mktemp)
cat > "$f" <<'PY'
import socket
for t in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    l = socket.socket(socket.AF_INET6, t)
    l.bind(("::1", 0))
    if t == socket.SOCK_STREAM:
        l.listen(1)
    c = socket.socket(socket.AF_INET6, t)
    c.connect(l.getsockname()[:2])
    port = c.getsockname()[1]
    out = []
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::ffff:127.0.0.1"),
                      (socket.AF_INET6, "::1"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, t)
        try:
            s.bind((addr, port))
            out.append("ok")
        except OSError as e:
            out.append(str(e.errno))
    print(t, c.getsockname()[0], " ".join(out))
PY
python3 "$f"
rm -f "$f"
"#;
    let Some(out) = assert_same_in_netns(script) else {
        return;
    };
    assert_eq!(out, "1 ::1 ok ok 98 98\n2 ::1 ok ok 98 98\n");
}

/// What `nf_netlink` prints natively: an empty nftables ruleset answers a flush, a dump and
/// the deletes and gets of a missing table as Linux's does.
const NF_NETLINK_EXPECTED: &str = "SO_PROTOCOL 12
SO_DOMAIN 16
flush ruleset: error 0
delete missing inet table: error -2
flush tables of that name: error 0
dump tables: 0 entries
get missing table: error -2
flush outside a batch: error -22
";

#[test]
fn netfilter_socket_over_an_empty_ruleset() {
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root (unshare of a network namespace)");
    }
    let Some(prog) = program_str("nf_netlink") else {
        return;
    };
    let (native, sandbox) = assert_same(&[&prog]);
    assert_eq!(native.stdout_text(), NF_NETLINK_EXPECTED);
    assert_eq!(sandbox.status, 0);
}
