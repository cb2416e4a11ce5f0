//! Netfilter in the sandbox through Debian's `iptables-legacy` and `ip6tables-legacy`, which
//! use the `IPT_SO_*` and `IP6T_SO_*` socket options of a raw socket: listings and rule
//! changes compared with native Linux in a fresh network namespace (`unshare -n`, loopback
//! up), and rules that really act on the sandbox's stack (a DROP makes a TCP connection on
//! 127.0.0.1 time out and a UDP send fail with EPERM, a REDIRECT sends a connection to a
//! local port and `SO_ORIGINAL_DST` answers where it was going), and rules the stack cannot
//! apply (a UDP REDIRECT, a `mark` match) refused rather than ignored.
//!
//! Needs root (for `unshare -n`), iproute2's `ip`, Debian's `iptables` package and python3;
//! a missing piece prints `SKIPPED: reason`.

use std::path::Path;

use runsc_rs_tests::{assert_same_outcomes, netns_and_sandbox, run_sandbox, skip, Outcome};

/// Runs `script` with `sh -c` natively in a new network namespace with `lo` up, and in the
/// sandbox (`--network none`); `None` (after a skip) when something it needs is missing.
fn both(script: &str) -> Option<(Outcome, Outcome)> {
    for tool in ["/usr/sbin/iptables-legacy", "/usr/sbin/ip6tables-legacy"] {
        if !Path::new(tool).is_file() {
            skip(&format!(
                "{tool} is not installed (Debian package iptables)"
            ));
            return None;
        }
    }
    if !Path::new("/usr/bin/python3").is_file() {
        skip("python3 is not installed");
        return None;
    }
    let (native, sandbox) = netns_and_sandbox(script)?;
    if native
        .stderr_text()
        .contains("can't initialize iptables table")
    {
        skip(&format!(
            "the host kernel has no legacy iptables: {}",
            native.stderr_text()
        ));
        return None;
    }
    Some((native, sandbox))
}

/// [`both`], failing with a diff unless stdout and the exit status agree; the native
/// output.
fn assert_same_in_netns(script: &str) -> Option<String> {
    both(script).map(|pair| assert_same_outcomes(script, pair))
}

#[test]
fn initial_tables_list_as_native() {
    let script = "\
        iptables-legacy -L -n -v && iptables-legacy -t nat -S && iptables-legacy -t mangle -L -n \
        && iptables-legacy -t raw -S && ip6tables-legacy -L -n -v && ip6tables-legacy -t nat -S \
        ; echo status $?";
    let Some(out) = assert_same_in_netns(script) else {
        return;
    };
    assert!(
        out.contains("Chain INPUT (policy ACCEPT 0 packets, 0 bytes)"),
        "{out}"
    );
    assert!(out.contains("-P POSTROUTING ACCEPT"), "{out}");
    assert!(out.ends_with("status 0\n"), "{out}");
}

#[test]
fn rules_and_user_chains_read_back_as_native() {
    let script = "\
        set -e
        iptables-legacy -N checks
        iptables-legacy -A checks -p udp --sport 53 -j RETURN
        iptables-legacy -A checks -p icmp --icmp-type echo-request -j ACCEPT
        iptables-legacy -A INPUT -s 127.0.0.2/32 -p tcp --dport 8080 -j DROP
        iptables-legacy -A INPUT ! -i lo -p tcp --tcp-flags SYN,ACK SYN -j DROP
        iptables-legacy -A OUTPUT -j checks
        iptables-legacy -P FORWARD DROP
        iptables-legacy -S
        iptables-legacy -L -n
        iptables-legacy -D INPUT 1
        iptables-legacy -S INPUT
        ip6tables-legacy -A INPUT -s ::1/128 -p udp --dport 9 -j DROP
        ip6tables-legacy -S
        iptables-legacy -F
        iptables-legacy -X checks
        iptables-legacy -S
        echo status $?";
    let Some(out) = assert_same_in_netns(script) else {
        return;
    };
    assert!(
        out.contains("-A INPUT -s 127.0.0.2/32 -p tcp -m tcp --dport 8080 -j DROP"),
        "{out}"
    );
    assert!(
        out.contains("-A checks -p udp -m udp --sport 53 -j RETURN"),
        "{out}"
    );
    assert!(out.ends_with("status 0\n"), "{out}");
}

/// A python3 program that reports, for a listener on 127.0.0.1, whether a connection is
/// made within a short time, and whether a UDP datagram to 127.0.0.1 is sent and received.
const PROBE: &str = r#"
import errno, socket, sys
port = int(sys.argv[1])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(8)
c = socket.socket(); c.settimeout(0.5)
try:
    c.connect(("127.0.0.1", port)); print("tcp connected")
except socket.timeout:
    print("tcp timed out")
except OSError as e:
    print("tcp", errno.errorcode[e.errno])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", port))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", ("127.0.0.1", port)); print("udp sent")
except OSError as e:
    print("udp send", errno.errorcode[e.errno])
u.settimeout(0.3)
try:
    u.recv(10); print("udp received")
except socket.timeout:
    print("udp not received")
"#;

#[test]
fn drop_rules_act_on_loopback_traffic() {
    let script = format!(
        "\
        d=$(mktemp -d)
        cat > $d/probe.py <<'EOF'\n{PROBE}\nEOF\n\
        python3 $d/probe.py 7001
        iptables-legacy -A INPUT -p tcp --dport 7002 -j DROP
        python3 $d/probe.py 7002
        iptables-legacy -A OUTPUT -p udp -d 127.0.0.1 --dport 7003 -j DROP
        python3 $d/probe.py 7003
        iptables-legacy -A INPUT -p udp --dport 7004 -j DROP
        python3 $d/probe.py 7004
        iptables-legacy -F
        python3 $d/probe.py 7002
        rm -r $d
        echo status $?"
    );
    let Some(out) = assert_same_in_netns(&script) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    // Each probe prints three lines.
    assert_eq!(
        lines[..3],
        ["tcp connected", "udp sent", "udp received"],
        "{out}"
    );
    assert_eq!(lines[3], "tcp timed out", "{out}");
    assert_eq!(lines[7], "udp send EPERM", "{out}");
    assert_eq!(lines[11], "udp not received", "{out}");
    assert_eq!(lines[12], "tcp connected", "{out}");
}

/// A python3 program that listens on 127.0.0.1:8080, connects to 127.0.0.1:80 and reports
/// where the connection went and what `SO_ORIGINAL_DST` answers on the accepted side.
const REDIRECTED: &str = r#"
import errno, socket, struct
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 8080)); l.listen(8)
c = socket.socket(); c.settimeout(2)
try:
    c.connect(("127.0.0.1", 80))
except OSError as e:
    print("connect", errno.errorcode.get(e.errno, e)); raise SystemExit
a, peer = l.accept()
c.sendall(b"ping"); print("accepted, got", a.recv(4).decode())
print("client peer", c.getpeername())
raw = a.getsockopt(socket.SOL_IP, 80, 16)
port, = struct.unpack("!H", raw[2:4])
print("original", socket.inet_ntoa(raw[4:8]), port)
"#;

#[test]
fn redirect_sends_a_connection_to_a_local_port() {
    let script = format!(
        "\
        d=$(mktemp -d)
        cat > $d/redirect.py <<'EOF'\n{REDIRECTED}\nEOF\n\
        iptables-legacy -t nat -A OUTPUT -d 127.0.0.1/32 -p tcp --dport 80 -j REDIRECT --to-ports 8080
        iptables-legacy -t nat -S OUTPUT
        python3 $d/redirect.py
        rm -r $d
        echo status $?"
    );
    let Some(out) = assert_same_in_netns(&script) else {
        return;
    };
    assert!(out.contains("accepted, got ping"), "{out}");
    assert!(out.contains("client peer ('127.0.0.1', 80)"), "{out}");
    assert!(out.contains("original 127.0.0.1 80"), "{out}");
}

#[test]
fn rules_the_stack_cannot_apply_are_refused() {
    let Some((_, sandbox)) = both("true") else {
        return;
    };
    assert_eq!(sandbox.status, 0, "{}", sandbox.stderr_text());
    let script = "\
        iptables-legacy -t nat -A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 5353
        echo redirect status $?
        iptables-legacy -A INPUT -m mark --mark 1 -j DROP
        echo mark status $?
        iptables-legacy -t nat -S OUTPUT
        iptables-legacy -S INPUT";
    let out = run_sandbox(&["sh", "-c", script], &["--network", "none"]);
    let text = out.stdout_text();
    assert!(
        text.contains("redirect status 1"),
        "{text}\n{}",
        out.stderr_text()
    );
    assert!(
        text.contains("mark status 1"),
        "{text}\n{}",
        out.stderr_text()
    );
    assert!(!text.contains("REDIRECT"), "{text}");
    assert!(!text.contains("-m mark"), "{text}");
    assert!(
        text.contains("-P OUTPUT ACCEPT\n-P INPUT ACCEPT\n"),
        "{text}"
    );
}
