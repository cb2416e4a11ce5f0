//! `/proc/sys/net/ipv4/ip_local_port_range` is root's to narrow, and bind(2) to port 0 then
//! takes ports from it alone, natively and in the sandbox alike; connect(2) shares a port
//! among connections to different peers, bind(2) to port 0 never does. Natively the program
//! runs in a network namespace of its own (root only), never changing the host's range.

use runsc_rs_tests::{assert_same_program, skip};

#[test]
fn bind_to_port_zero_honours_the_local_port_range() {
    if !nix::unistd::geteuid().is_root() {
        return skip("a network namespace of its own needs root natively");
    }
    assert_same_program(
        "port_range",
        &[],
        &[
            "reversed: 22\n",
            "below 1024: 22\n",
            "garbage: 22\n",
            "narrow: 0\n",
            "range: 40000\t40001\n",
            "first two: 1 1\n",
            "third: EADDRINUSE\n",
            "tcp range: 0\n",
            "connect 3: ok\n",
            "connect 4: Cannot assign requested address\n",
            "tcp bind to port 0: EADDRINUSE\n",
            "udp range: 0\n",
            "udp reuseaddr ports: 40020 40020\n",
        ],
    );
}
