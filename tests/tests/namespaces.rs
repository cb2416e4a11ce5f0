//! UTS, IPC, network and user namespaces made by the guest, and the `/proc/[pid]/ns` files
//! setns(2) takes: `namespaces.c` natively and in the sandbox must print the same (names per
//! UTS namespace, System V and POSIX queues per IPC namespace, abstract AF_UNIX names per
//! network namespace with sockets staying in the one they were made in, a new user
//! namespace with unmapped IDs, its uid_map/gid_map/setgroups rules and the capabilities it
//! gives over namespaces it owns only). Needs root natively (CAP_SYS_ADMIN to unshare); the
//! program leaves the caller's namespaces first, so the host's are never changed.

use runsc_rs_tests::{assert_same_program, skip};

#[test]
fn namespaces_match_native() {
    if !nix::unistd::geteuid().is_root() {
        return skip("unshare(CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET) needs root natively");
    }
    assert_same_program(
        "namespaces",
        &[],
        &[
            "uname: ns-test dom\n",
            "uname: inner dom\n",
            "back in the first uts namespace: yes\n",
            "msgget existing key in new ns: -1 ENOENT\n",
            "mq_open existing in new ns: -1 ENOENT\n",
            "connect abstract from new ns: -1 ECONNREFUSED\n",
            "connect abstract with early socket: ok\n",
            "connect abstract after setns: ok\n",
            "ids: 65534 65534 65534 65534\n",
            "setns to parent user ns: -1 EPERM\n",
            "uid_map:          0          0          1\n",
            "ids: 0 0 0 0\n",
            "sethostname in own uts ns: ok\n",
            "child uname: cloned\n",
            "clone(NEWUSER|CLONE_FS): -1 EINVAL\n",
        ],
    );
}
