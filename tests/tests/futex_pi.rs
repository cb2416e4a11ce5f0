//! Priority-inheritance futexes (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI,
//! FUTEX_UNLOCK_PI) as glibc's PTHREAD_PRIO_INHERIT mutexes use them, and as raw calls:
//! tests/programs/futex_pi.c prints one line per check and must print what Linux prints,
//! on each platform.

use runsc_rs_tests::{assert_same_run, program_str, test_platform, Run};

/// The lines the native run must hold itself, so that a broken program cannot hide a
/// sandbox bug.
const EXPECT: &[&str] = &[
    "contended count: 120000 (want 120000)\n",
    "errorcheck: relock: EDEADLK\n",
    "trylock from another thread: EBUSY\n",
    "timedlock (realtime) while held: ETIMEDOUT\n",
    "clocklock (monotonic) while held: ETIMEDOUT\n",
    "robust: lock after owner died: EOWNERDEAD\n",
    "robust: waiter when owner dies: EOWNERDEAD\n",
    "pshared: lock while the child holds it: EOWNERDEAD\n",
    "raw: lock with a dead owner: -1 ESRCH\n",
    "raw: unlock not owner: -1 EPERM\n",
    "raw: handed over: own tid 1, waiters bit 1\n",
    "raw: own tid 1, waiters 1, owner died 1\n",
    "raw: lock across a signal handler: 0\n",
];

#[test]
fn pi_mutexes_and_raw_pi_futexes_behave_like_linux_on_each_platform() {
    let Some(prog) = program_str("futex_pi") else {
        return;
    };
    let run = Run::new(&[prog.as_str()]);
    // An explicitly chosen platform is the only one run; otherwise both are.
    let platforms: &[&[&str]] = if test_platform().is_some() {
        &[&[]]
    } else {
        &[&["--platform", "systrap"], &["--platform", "ptrace"]]
    };
    for flags in platforms {
        let (native, _) = assert_same_run(&run, flags);
        assert_eq!(native.status, 0, "{}", native.stderr_text());
        let text = native.stdout_text();
        for line in EXPECT {
            assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
        }
        assert!(text.ends_with("done\n"), "{text}");
    }
}
