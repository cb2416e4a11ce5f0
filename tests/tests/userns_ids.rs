//! File owners through user namespaces: `userns_ids.c` natively and in the sandbox must
//! print the same. stat, fstat and statx show owners mapped into the caller's user namespace
//! (65534 unmapped), chown family calls take the caller's IDs (EINVAL unmapped), CAP_CHOWN,
//! CAP_FOWNER and CAP_DAC_OVERRIDE count only over files whose owner and group the caller's
//! namespace maps, and `/proc/[pid]/status` shows IDs through the reader's namespace. Needs
//! root natively (it makes files of other users and writes another process's uid_map).

use runsc_rs_tests::{assert_same_program, skip};

#[test]
fn owners_through_user_namespaces_match_native() {
    if !nix::unistd::geteuid().is_root() {
        return skip("userns_ids makes files of other users: needs root");
    }
    assert_same_program(
        "userns_ids",
        &[],
        &[
            "unmapped: stat root's: 65534 65534 644\n",
            "unmapped: self Uid:\t65534\t65534\t65534\t65534\n",
            "unmapped: chown to 0: -1 EINVAL\n",
            "mapped: stat 1000's: 100 100 600\n",
            "mapped: stat 5000's: 65534 65534 600\n",
            "mapped: open 1000's 0600 file (DAC_OVERRIDE): 0\n",
            "mapped: statx 1000's: 100 100\n",
            "mapped: chmod 5000's: -1 EPERM\n",
            "mapped: chown 1000's to 105:106: 0\n",
            "mapped: chown to unmapped 5000: -1 EINVAL\n",
            "mapped: chown 5000's to 0: -1 EPERM\n",
            "mapped: self Uid:\t0\t100\t0\t100\n",
            "parent reads child: Uid:\t0\t1000\t0\t1000\n",
            "parent: stat 1000's: 1005 1006 640\n",
        ],
    );
}
