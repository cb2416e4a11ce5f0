//! Signal frames and CPU-time interval timers: C programs run natively and under
//! `runsc-rs do`, outputs compared.

use runsc_rs_tests::{assert_same, program_str};

/// Frames on and off the alternate stack (SS_ONSTACK, SS_AUTODISARM, EPERM while on it,
/// nesting, the red zone, alignment), the FP state's magic numbers and sizes, and
/// rt_sigreturn of a frame the handler changed (registers, xmm0, flags, mask, uc_stack).
#[test]
fn signal_frames_match_linux() {
    let Some(prog) = program_str("sigframe") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    assert_eq!(native.status, 0);
    let text = native.stdout_text();
    for line in [
        "frame_fits_minsigstksz=1\n",
        "onstack: outer_on_alt=1 nested_on_alt=1 nested_below_outer=1\n",
        "modified: rbx=0x1234567887654321 xmm0=0xdeadbeefcafef00d cf=1 SIGTERM_blocked=1 altstack_is_new=1",
    ] {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
}

/// ITIMER_VIRTUAL and ITIMER_PROF fire on CPU time, not while asleep; one-shot and
/// disarming behave as on Linux.
#[test]
fn cpu_time_itimers_fire() {
    let Some(prog) = program_str("cpu_itimer") else {
        return;
    };
    let (native, _) = assert_same(&[&prog]);
    let text = native.stdout_text();
    assert!(
        text.contains("busy 0.5s: SIGVTALRM >=5, SIGPROF >=5\n")
            && text.contains("one-shot: fired=1 disarmed=1\n"),
        "{text}"
    );
}
