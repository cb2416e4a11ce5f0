//! AF_INET over the sandbox's loopback: TCP and UDP between processes of one sandbox,
//! compared with native Linux on stdout and exit status.
//!
//! Needs a built `runsc-rs`, `cc` for the C program and Debian's python3 for the HTTP test;
//! a missing piece prints `SKIPPED: reason`.

use std::path::Path;

use runsc_rs_tests::{assert_same, assert_same_program, skip};

#[test]
fn tcp_udp_loopback_match_native() {
    // The native run itself shows what is checked, so a broken program cannot hide a bug.
    assert_same_program(
        "inet_loopback",
        &[],
        &[
            "client got: 65536 bytes sum ",
            "server got ping 2 from-client 1\nclient got pong 2\n",
            "trunc 10\n",
            "connect closed port -1 ECONNREFUSED\n",
            "nonblocking connect -1 EINPROGRESS\npoll 1 out 1\nSO_ERROR 0\n",
            "eof 0\nepipe 1 sigpipe 1\nnosignal -1 EPIPE new-signals 0\n",
            "reset poll 1 in 1 err 1\nreset read -1 ECONNRESET\nthen read 0\n",
            "et empty 0\net first 1\net again 0\net second 1\net read 2\n",
        ],
    );
}

#[test]
fn tcp_states_match_native() {
    // The native run itself shows what is checked, so a broken program cannot hide a bug.
    assert_same_program(
        "tcp_states",
        &[],
        &[
            "shutdown in TIME_WAIT -1 ENOTCONN\nbind TIME_WAIT port: EADDRINUSE\n",
            "bind TIME_WAIT port with SO_REUSEADDR: EADDRINUSE\nbind passive closer's port: 0\n",
            "bind port of an open accepted connection: EADDRINUSE\n",
            "second connected within 200 ms: 0\nsecond connected after an accept: 1\n",
            "refused read -1 ECONNREFUSED\nthen read 0\nconnect again -1 ECONNABORTED\n",
            "connect port 0 -1 ECONNREFUSED\n",
            "MSG_TRUNC 4 untouched 1\nMSG_TRUNC|MSG_PEEK 4 untouched 1\nrest 6 efghij\n",
            "TCP_INFO len 1 state 1 rto>0 1 cwnd>0 1\n",
        ],
    );
}

/// UDP's delivery rules over the loopback: multicast to every member (IP_MULTICAST_ALL),
/// broadcast to the wildcard and broadcast-bound sockets, SO_REUSEADDR to the latest
/// socket, SO_REUSEPORT spread over the group, receive and send control messages, and
/// ECONNREFUSED from a closed port.
#[test]
fn udp_fanout_and_control_messages_match_native() {
    assert_same_program(
        "udp_fanout",
        &[],
        &[
            "mcast nobody joined: sent 2 got 0 0 0\n",
            "mcast a joined, b not all: sent 2 got 1 0 0\n",
            "mcast a joined, b all: sent 2 got 1 1 0\n",
            "bcast without SO_BROADCAST: EACCES\nbcast: sent 2 got 1 1 0\n",
            "reuseaddr latest: 1 1 1 1 others 0\n",
            "reuseport: total 64 both 1\n",
            "round 1: timestamp set pktinfo if 1 spec 127.0.0.1 addr 127.0.0.1 ttl 7 tos 4 len 1",
            "closed port: send 1 recv -1 ECONNREFUSED\n",
        ],
    );
}

/// IP_RECVERR and IPV6_RECVERR: a datagram to a closed loopback port comes back on the
/// error queue (MSG_ERRQUEUE) as Linux's ICMP port unreachable, with SO_ERROR and POLLERR
/// meanwhile; an IPv6 datagram too long to send leaves a local EMSGSIZE error. Natively the
/// program runs in a network namespace of its own.
#[test]
fn udp_error_queue_matches_native() {
    if !nix::unistd::geteuid().is_root() {
        return skip("a network namespace of its own needs root natively");
    }
    assert_same_program(
        "udp_errqueue",
        &[],
        &[
            "plain errqueue: EAGAIN\n",
            "v4 poll: 1 POLLERR\n",
            "v4 errqueue: 300 same=1 flags=ERRQUEUE name=2/127.0.0.1/closed\n  cmsg 0/11 len 48 \
             errno=ECONNREFUSED origin=2 type=3 code=3 pad=0 info=0 data=0 \
             offender=2/127.0.0.1/0\n",
            "v4 after read SO_ERROR: 0\n",
            "v4 long errqueue: 520 ",
            "v4 one left SO_ERROR: ECONNREFUSED\n",
            "v4 off errqueue: EAGAIN\nv4 off SO_ERROR: ECONNREFUSED\n",
            "v6 with IP_RECVERR errqueue: EAGAIN\n",
            "v6 errqueue: 300 same=1 flags=ERRQUEUE name=10/::1/closed\n  cmsg 41/25 len 60 \
             errno=ECONNREFUSED origin=3 type=1 code=4 pad=0 info=0 data=0 offender=10/::1/0\n",
            "v6 long errqueue: 1184 ",
            "v6 too big errqueue: 0 same=1 flags=ERRQUEUE name=10/::1/closed\n  cmsg 41/25 len 60 \
             errno=EMSGSIZE origin=1 type=0 code=0 pad=0 info=65536 data=0 offender=0//0\n",
            "v4 too big errqueue: EAGAIN\n",
        ],
    );
}

/// Ping sockets' control messages: an echo to the loopback comes back with TTL 64, the
/// request's TOS or traffic class, and the packet info, as the socket asked (gVisor's
/// PingSocket.Receive* cases).
#[test]
fn ping_control_messages_match_native() {
    if !nix::unistd::geteuid().is_root() {
        return skip("a network namespace of its own needs root natively");
    }
    assert_same_program(
        "ping_control",
        &[],
        &[
            "v4 reply: 8 bytes type 0 code 0\n  cmsg 0/8 len 28: lo 1 spec_dst 0.0.0.0 addr \
             127.0.0.1\n  cmsg 0/2 len 20: 64\n  cmsg 0/1 len 17: 42\n",
            "v4 plain: 8 bytes type 0 code 0\nv6",
            "v6 reply: 8 bytes type 129 code 0\n  cmsg 41/50 len 36: lo 1 addr ::1\n  \
             cmsg 41/52 len 20: 64\n  cmsg 41/67 len 20: 42\n",
        ],
    );
}

/// shutdown(2) of an unconnected UDP socket fails with ENOTCONN yet shuts it down: a
/// thread blocked in recvfrom wakes with end of file (it used to sleep forever, which hung
/// gVisor's UdpPortReuseMultiThread).
#[test]
fn udp_unconnected_shutdown_wakes_reader_match_native() {
    assert_same_program(
        "udp_shutdown",
        &[],
        &[
            "blocked recvfrom woke: 0 -\nbound shutdown(SHUT_RD): -1 ENOTCONN\n",
            "blocking recv after: 0 -\nnonblocking recv after: -1 EAGAIN\n",
            "unbound shutdown(SHUT_RDWR): -1 ENOTCONN\nunbound blocking recv after: 0 -\n",
        ],
    );
}

/// `http.server` in a thread and `urllib` against it, over 127.0.0.1.
const HTTP: &str = r#"
import http.server, threading, urllib.request

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from %s\n" % self.path).encode() * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
for path in ("/a", "/b"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        data = r.read()
        print(r.status, len(data), data[:20])
srv.shutdown()
srv.server_close()
print("done")
"#;

#[test]
fn python_http_server_and_urllib() {
    let Some(py) = ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        skip("Debian's python3 is not installed");
        return;
    };
    let (native, _) = assert_same(&[py, "-c", HTTP]);
    assert_eq!(native.status, 0, "{}", native.stderr_text());
    assert!(
        native.stdout_text().ends_with("done\n"),
        "{}",
        native.stdout_text()
    );
}

/// TCP_CORK (held until uncorked, the 200 ms ceiling or close), TCP_INQ's control message,
/// IP_MTU_DISCOVER on TCP, and classic BPF socket filters that really filter: a UDP filter
/// on the payload's first byte, one that trims, and a TCP filter that drops the segments
/// carrying data until it is detached (the sender's retransmission then gets through).
#[test]
fn cork_inq_and_socket_filters_match_native() {
    assert_same_program(
        "inet_cork_filter",
        &[],
        &[
            "corked recv -1 EAGAIN\nuncorked recv 3\nceiling readable 1\nceiling recv 4\n",
            "close flushed 2 then 0\n",
            "TCP_INQ default 0\nTCP_INQ 2: -1 EINVAL\nTCP_INQ set 1\nrecvmsg 4 inq cmsg 6\n",
            "tcp IP_MTU_DISCOVER default 1\ntcp IP_MTU_DISCOVER set 2, 99: EINVAL\n",
            "udp attach 0\nudp first 2 A1\nudp then -1 EAGAIN\nudp trimmed 2\n",
            "udp detach 0\nudp unfiltered 2 B2\nudp detach again -1 ENOENT\n",
            "bad program -1 EINVAL\nnull program -1 EINVAL\n",
            "tcp attach 0\ntcp filtered readable 0\n",
            "tcp after detach readable 1\ntcp after detach recv 2\n",
        ],
    );
}
