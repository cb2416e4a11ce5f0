//! epoll readiness modes compared with native Linux: level-triggered, edge-triggered
//! (EPOLLET: one report per readiness transition), EPOLLONESHOT (one report until
//! EPOLL_CTL_MOD), on a pipe, an AF_UNIX socketpair and an eventfd, for data, room and
//! hang-up.

use runsc_rs_tests::{assert_same, program_str};

#[test]
fn edge_level_and_oneshot_match_native() {
    let Some(prog) = program_str("epoll_edge") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    assert_eq!(native.status, 0, "{}", native.stderr_text());
    let text = native.stdout_text();
    // The native run itself shows the three behaviours (a broken program cannot hide a
    // sandbox bug): level reports again, edge and one-shot do not.
    for section in [
        "== pipe level\nempty 0\nafter-write 1 0x1 data 7\nagain-no-read 1 0x1 data 7\n",
        "== pipe edge\nempty 0\nafter-write 1 0x1 data 7\nagain-no-read 0\nsecond-write 1 0x1 data 7\n",
        "== socketpair edge\nempty 0\nafter-write 1 0x1 data 7\nagain-no-read 0\nsecond-write 1 0x1 data 7\n",
        "oneshot-disarmed 0\nafter-mod 1 0x1 data 8\nafter-mod-again 0\n",
        "== eventfd edge\nempty 0\nafter-write 1 0x1 data 11\nagain 0\n",
    ] {
        assert!(text.contains(section), "native output lacks {section:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}
