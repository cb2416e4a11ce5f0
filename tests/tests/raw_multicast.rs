//! Raw IP sockets, AF_PACKET sockets and the IPv4 multicast options over the sandbox's
//! loopback, compared with native Linux on stdout and exit status
//! (`tests/programs/raw_loopback.c`, `tests/programs/packet_loopback.c`,
//! `tests/programs/packet_ring.c`, `tests/programs/multicast_opts.c`). Raw and packet sockets
//! need root (CAP_NET_RAW) natively.

use runsc_rs_tests::{assert_same, program_str, skip};

#[test]
fn raw_sockets_match_native() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip("raw sockets need CAP_NET_RAW natively");
    }
    let Some(prog) = program_str("raw_loopback") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let text = native.stdout_text();
    // The native run itself shows what is checked.
    for line in [
        "raw udp 0: len 33 version 4 ihl 5 proto 17 total 33 payload hello\n",
        "raw udp 1: len 33 version 4 ihl 5 proto 17 total 33 payload hello\n",
        "filtered: len 28 type 0\n",
        "udp got 4 rawd from port 9\n",
        "icmpv6 got len 8 type 129 (no IPv6 header)\n",
        "without CAP_NET_RAW: -1 Operation not permitted\n",
    ] {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}

#[test]
fn packet_sockets_match_native() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip("packet sockets need CAP_NET_RAW natively");
    }
    let Some(prog) = program_str("packet_loopback") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let text = native.stdout_text();
    // The native run itself shows what is checked.
    for line in [
        "bound: len 18 family 17 lo 1 proto 0x3 hatype 772 halen 6\n",
        "raw 1: len 47 pkttype 4 proto 0x800 lo 1 hatype 772 halen 6 ethproto 0x800 zero-macs 1 payload hello\n",
        "raw 2: len 47 pkttype 0 proto 0x800 lo 1 hatype 772 halen 6 ethproto 0x800 zero-macs 1 payload hello\n",
        "cooked 1: len 33 pkttype 0 proto 0x800 lo 1 hatype 772 halen 6 payload hello\n",
        "udp got 5 rawfr from port 9\n",
        "no device: -1 No such device or address\n",
        "without CAP_NET_RAW: -1 Operation not permitted\n",
    ] {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}

#[test]
fn packet_rx_ring_matches_native() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip("packet sockets and network namespaces need root natively");
    }
    let Some(prog) = program_str("packet_ring") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let text = native.stdout_text();
    // The native run itself shows what is checked: the ring's rules, a datagram read from
    // the mapped ring, a drop when full and a frame handed back being filled again.
    for line in [
        "ring while mapped: -1 Device or resource busy\n",
        "frame 0: status 0x1 len 38 snaplen 38 mac 80 net 80 family 17 proto 0x800 lo 1 hatype 772 pkttype 0 halen 6 ip proto 17 to-lo 1 udp port 47124 payload ring-hello\n",
        "recv with a ring: -1 Resource temporarily unavailable\n",
        "frame 0: status 0x5 len 33 snaplen 33 mac 80 net 80 family 17 proto 0x800 lo 1 hatype 772 pkttype 0 halen 6 ip proto 17 to-lo 1 udp port 47124 payload again\n",
        "stats: packets 6 drops 1\n",
        "poll all released: 0 ok\n",
        "recv without a ring: 34 ok\n",
        "hdrlen of version 0: 32 ok (optlen 4)\n",
        "hdrlen of version 1: 32 ok (optlen 4)\n",
        "hdrlen of version 2: 48 ok (optlen 4)\n",
        "hdrlen of version 3: -1 Invalid argument (optlen 4)\n",
    ] {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}

#[test]
fn multicast_options_match_native() {
    let Some(prog) = program_str("multicast_opts") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let text = native.stdout_text();
    for line in [
        "join again: -1 Address already in use\n",
        "drop again: -1 Cannot assign requested address\n",
        "IF after ip_mreq: 0 len 4: 127 0 0 1\n",
    ] {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}
