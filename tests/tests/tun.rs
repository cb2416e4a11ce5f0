//! TUN devices and SO_BINDTODEVICE (`tests/programs/tun_device.c`), compared with native
//! Linux in a fresh network namespace of the test's own (`unshare -n`, loopback up): the
//! link is made, addressed over NETLINK_ROUTE and brought up, a UDP datagram routed through
//! it is read off the TUN file, an ICMP echo request written into it is answered through
//! it, a raw socket's TOS goes out and comes in with its packets, and sockets bound to it
//! share ports as Linux allows.
//!
//! Needs root (for `unshare -n` and /dev/net/tun natively), iproute2's `ip` and `cc`; a
//! missing piece prints `SKIPPED: reason`. No packet leaves the namespaces the test makes.

use std::path::Path;

use runsc_rs_tests::{diff, program_str, run_native, run_sandbox, skip};

#[test]
fn tun_link_carries_packets_like_native() {
    let Some(prog) = program_str("tun_device") else {
        return;
    };
    if !Path::new("/dev/net/tun").exists() {
        skip("no /dev/net/tun on this host to compare with");
        return;
    }
    let script = format!("ip link set lo up || exit 99\n{prog}");
    let native = run_native(&["unshare", "-n", "sh", "-c", &script]);
    if native.status == 99 || native.stderr_text().contains("unshare failed") {
        skip(&format!(
            "cannot make a network namespace here: {}",
            native.stderr_text()
        ));
        return;
    }
    let sandbox = run_sandbox(&[prog.as_str()], &["--network", "none"]);
    assert!(
        native.stdout == sandbox.stdout && native.status == sandbox.status,
        "native (status {}) and sandbox (status {}) differ (- native, + sandbox):\n{}\n\
         --- sandbox stderr ---\n{}",
        native.status,
        sandbox.status,
        diff(&native.stdout, &sandbox.stdout),
        sandbox.stderr_text()
    );
    let out = native.stdout_text();
    // The native run shows what is compared, so a broken program cannot pass unnoticed.
    for line in [
        "made tun0\n",
        "packet: 33 bytes 10.77.0.1 -> 10.77.0.2 port 9999 payload hello ip csum ok 1\n",
        "reply: 36 bytes 10.77.0.1 -> 10.77.0.2 type 0 id 77 seq 1 data pingdata\n",
        "raw packet out: 28 bytes tos 0x28 payload rawdata1 ip csum ok 1\n",
        "raw packet in: 28 bytes tos 0x2c payload rawdata2 IP_TOS 0x2c\n",
        "got tun0 len 5\n",
        "bind unbound: -1 errno 98\n",
        "index after close: 0\n",
    ] {
        assert!(out.contains(line), "native output lacks {line:?}:\n{out}");
    }
}
