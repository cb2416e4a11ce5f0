//! ETXTBSY both ways, compared with native Linux (`etxtbsy.c`): execve of a file open for
//! writing fails, and while a process runs a program, opening it for writing or with
//! O_TRUNC and truncate(2) fail; reading and a second execve do not, and writing works
//! again once the process is gone.

use runsc_rs_tests::{assert_same_program, skip};

#[test]
fn etxtbsy_matches_native() {
    if !nix::unistd::geteuid().is_root() {
        return skip("the sandbox needs root here");
    }
    assert_same_program(
        "etxtbsy",
        &[],
        &[
            "execve a closed copy: 0\n",
            "execve while open for writing: -1 ETXTBSY\n",
            "execve while open for reading: 0\n",
            "open O_WRONLY while it runs: -1 ETXTBSY\n",
            "open O_RDWR while it runs: -1 ETXTBSY\n",
            "open O_RDONLY|O_TRUNC while it runs: -1 ETXTBSY\n",
            "open O_RDONLY while it runs: 0\n",
            "truncate while it runs: -1 ETXTBSY\n",
            "a second execve while it runs: 0\n",
            "open O_WRONLY once it exited, not yet reaped: 0\n",
            "open O_WRONLY after it exited: 0\n",
        ],
    );
}
