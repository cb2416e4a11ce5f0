//! System calls added to the table later (fchmodat2, epoll_pwait2, getdents, utime, kcmp,
//! futex_wait, futex_wake, futex_requeue, membarrier), compared with native Linux. The
//! programs (`tests/programs/new_calls.c`, `tests/programs/membarrier.c`) print one line per
//! step; both runs must match.

use runsc_rs_tests::assert_same_program;

/// Runs one section natively and in the sandbox; checks the native run itself shows
/// `expect` (so a broken program cannot hide a sandbox bug).
fn section(name: &str, expect: &[&str]) {
    assert_same_program("new_calls", &[name], expect);
}

#[test]
fn fchmodat2_flags_symlinks_and_empty_paths_match_native() {
    section(
        "fchmodat2",
        &[
            "plain: 0\n",
            "symlink itself: -1 EOPNOTSUPP\n",
            "NOFOLLOW on a file: 0\n",
            "bad flag: -1 EINVAL\n",
            "AT_EMPTY_PATH on O_PATH fd: 0\n",
            "mode: 602\n",
            "other's file: -1 EPERM\n",
        ],
    );
}

#[test]
fn epoll_pwait2_timeouts_and_sigmask_match_native() {
    section(
        "epoll_pwait2",
        &[
            "short timeout, nothing ready: 0\n",
            "ready, NULL timeout: 1\n",
            "tv_nsec too big: -1 EINVAL\n",
            "bad timeout address: -1 EFAULT\n",
            "interrupted by SIGUSR1: -1 EINTR\n",
            "mask restored: 1\n",
        ],
    );
}

#[test]
fn getdents_old_layout_matches_native() {
    section(
        "getdents",
        &[
            "  fifo type 1 ino matches 1\n",
            "  symlink type 10 ino matches 1\n",
            "  a_name_long_enough_to_need_more_than_one_word_of_padding_xyz type 8 ino matches 1\n",
            "entries 7, bad records 0, more than one call 1\n",
            "buffer too small: -1 EINVAL\n",
            "O_PATH fd: -1 EBADF\n",
        ],
    );
}

#[test]
fn utime_sets_whole_seconds_and_checks_permissions_as_natively() {
    section(
        "utime",
        &[
            "times: atime 1000000.000000000 mtime 2000000.000000000\n",
            "mtime moved from the given one: 1\n",
            "other's file, given times: -1 EPERM\n",
            "other's file, now: -1 EACCES\n",
            "writable file, now: 0\n",
        ],
    );
}

#[test]
fn kcmp_compares_resources_of_threads_and_fork_children_as_natively() {
    section(
        "kcmp",
        &[
            "dup: equal\n",
            "opened twice: unequal\n",
            "thread VM: equal\n",
            "child FILES: unequal\n",
            "child's inherited fd: equal\n",
            "epoll target in the child's view: equal\n",
            "epoll second registration: -1 ENOENT\n",
            "unprivileged against root's: -1 EPERM\n",
        ],
    );
}

#[test]
fn futex2_wait_wake_and_requeue_match_native() {
    section(
        "futex2",
        &[
            "wait, value differs: -1 EAGAIN\n",
            "wait until a monotonic time: -1 ETIMEDOUT\n",
            "wait, CLOCK_BOOTTIME: -1 EINVAL\n",
            "wait, value past 32 bits: -1 EINVAL\n",
            "wake, nr 0: 0\n",
            "wake with a disjoint mask: 0\n",
            "wake with a matching mask: 1\n",
            "FUTEX_WAKE wakes a futex_wait waiter: 1\n",
            "waiter returned 0\n",
            "FUTEX_WAKE with count 0: 1\n",
            "requeue value differs: -1 EAGAIN\n",
            "requeue reserved: -1 EINVAL\n",
            "requeue moves the waiter: 1\n",
            "wake the first futex: 0\n",
            "wake the second futex: 1\n",
        ],
    );
}

/// membarrier(2): the global barrier, private expedited only after registering (in every
/// thread, kept by a fork child, dropped by exec), bad flags and unknown commands.
#[test]
fn membarrier_registration_and_barriers_match_native() {
    assert_same_program(
        "membarrier",
        &[],
        &[
            "query: basic commands offered: yes\n",
            "global: 0\n",
            "global with flags: -1 EINVAL\n",
            "private expedited, unregistered: -1 EPERM\n",
            "private expedited: 0\n",
            "unknown command: -1 EINVAL\n",
            "thread: private expedited: 0\n",
            "fork child: private expedited: 0\n",
            "after exec: private expedited: -1 EPERM\n",
        ],
    );
}
