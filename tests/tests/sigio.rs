//! Signal-driven I/O (`O_ASYNC`, `F_SETOWN`/`F_SETOWN_EX`, `F_SETSIG`, `FIOASYNC`,
//! `FIOSETOWN`): `tests/programs/sigio.c` arms it on a pipe, a socketpair, a TCP connection on
//! 127.0.0.1 and a pty master, writes to the other end and prints the signal that arrives,
//! natively and in the sandbox; the outputs must be equal.
//!
//! Needs a built `runsc-rs` and `cc` for the C program; a missing piece prints
//! `SKIPPED: reason`.

use runsc_rs_tests::assert_same_program;

#[test]
fn io_signals_match_native() {
    // The native run itself shows what is checked, so a broken program cannot hide a bug.
    assert_same_program(
        "sigio",
        &[],
        &[
            "pipe read end: signo rt code 1 band 0x41 fd_ok 1\n",
            "pipe after O_ASYNC off: pending 0\n",
            "pipe write end after write: SIGIO pending 0\n",
            "pipe write end after the reader closed: SIGIO pending 1\n",
            "socketpair without owner: SIGIO pending 0\n",
            "socketpair (plain SIGIO): signo SIGIO code 128",
            "socketpair owner cleared: SIGIO pending 0 getown 0\n",
            "socketpair pgrp owner: getown 1 type 2\nsocketpair pgrp owner: SIGIO pending 1\n",
            "tcp: owner_ex type 0 self 1\ntcp: signo rt code 1 band 0x41 fd_ok 1\n",
            "pty master: signo rt code 1 band 0x41 fd_ok 1\n",
            "eventfd FIOASYNC -1 errno Inappropriate ioctl for device\n",
            "pipe FIOSETOWN -1 errno Inappropriate ioctl for device\n",
        ],
    );
}
