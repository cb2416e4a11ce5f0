//! Tests of the systrap platform with hand-assembled application code (the programs are in
//! `crate::testing`; the tests both platforms share are in `crate::testing::shared`).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::address_space::SystrapAddressSpace;
use super::{Systrap, Tuning};
use crate::testing::shared::run_shared_tests;
use crate::testing::{self, *};
use crate::{Access, CpuState, Error, Exit, Perms, Platform, PAGE_SIZE};

type Setup = testing::Setup<Systrap, SystrapAddressSpace>;

impl Processes for SystrapAddressSpace {
    /// Every process of the address space: factory, injection stubs, systrap stubs.
    fn pids(&self) -> Vec<Pid> {
        self.ptrace.pids()
    }
}

fn platform(guest: &Guest) -> Systrap {
    Systrap::new(guest.memfd.as_fd()).unwrap()
}

/// A systrap platform (with `tuning`), one address space with `code` mapped at [`CODE`], and
/// a context.
fn setup_tuned(code: &[u8], tuning: Tuning) -> Setup {
    let guest = Guest::new();
    let platform = Systrap::with_tuning(guest.memfd.as_fd(), tuning).unwrap();
    Setup::with(guest, platform, code, |p| {
        SystrapAddressSpace::create(&p.shared).unwrap()
    })
}

fn setup(code: &[u8]) -> Setup {
    setup_tuned(code, Tuning::default())
}

run_shared_tests!(
    setup: setup,
    platform: platform,
    read: Access::Read,
    write: Access::Write,
    host_syscall: "futex",
);

#[test]
fn syscalls_trap_without_running_and_take_the_sentrys_result() {
    let mut t = setup(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
    assert_eq!(state.regs.rax, (-libc::ENOSYS) as u64);
    assert_eq!(state.regs.rip, CODE + 7);
    state.regs.rax = 1234;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 60);
    assert_eq!(state.regs.rdi, 1234);
    // exit was not executed by the host: every process is alive and the stub runs on.
    assert!(t.pids().iter().all(|&pid| !gone(pid)));
    state.regs.rip = CODE;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
}

#[test]
fn registers_round_trip_through_the_handler() {
    // `syscall; syscall`: every register but rcx/r11 (clobbered by `syscall`) and rax
    // (the result) comes back as the sentry set it.
    let mut t = setup(&[0x0f, 0x05, 0x0f, 0x05]);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let r = &mut state.regs;
    (r.rbx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) = (1, 2, 3, 4, 5, 0x7000_0000);
    (r.r8, r.r9, r.r10, r.r12, r.r13, r.r14, r.r15) = (8, 9, 10, 12, 13, 14, 15);
    r.rax = 0x55;
    r.eflags = 0x202 | 0x1; // carry set
    let before = state.regs;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let after = state.regs;
    assert_eq!(
        after.orig_rax, 0x55,
        "the result became the next call's number"
    );
    assert_eq!(
        (after.rbx, after.rdx, after.rsi, after.rdi, after.rbp, after.rsp),
        (before.rbx, before.rdx, before.rsi, before.rdi, before.rbp, before.rsp)
    );
    assert_eq!(
        (after.r8, after.r9, after.r10, after.r12, after.r13, after.r14, after.r15),
        (8, 9, 10, 12, 13, 14, 15)
    );
    assert_eq!(after.rip, CODE + 4);
    assert_eq!(after.rcx, CODE + 4, "syscall saved rip in rcx");
    assert_eq!(after.eflags & 1, 1);
    assert_eq!((after.cs, after.ss), (0x33, 0x2b));
}

/// A trapped system call returns without `rt_sigreturn` when it can: every register the
/// sentry sets reaches the application, those `syscall` itself clobbers (rax, rcx, r11) and
/// the flags included, and the FP state the sentry left alone is the application's.
#[test]
fn registers_and_fp_state_survive_the_return_from_a_trapped_call() {
    // `movq xmm0, rdi; syscall; mov rbx, rcx; mov rbp, r11; mov r8, rax; movq rdx, xmm0;
    // syscall`: the second call reports rcx, r11 and rax as the first one's return left
    // them, and xmm0 as the application set it.
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xc7, 0x0f, 0x05, 0x48, 0x89, 0xcb, 0x4c, 0x89, 0xdd, 0x49, 0x89,
        0xc0, 0x66, 0x48, 0x0f, 0x7e, 0xc2, 0x0f, 0x05,
    ];
    const CF: u64 = 0x1;
    const DF: u64 = 0x400;
    const OF: u64 = 0x800;
    let mut t = setup(&code);
    for round in 0..3u64 {
        let mut state = CpuState::new(CODE, 0);
        state.regs.rdi = 0x0bad_cafe + round;
        assert_eq!(t.switch(&mut state), Exit::Syscall);
        assert_eq!(state.regs.rip, CODE + 7);
        let r = &mut state.regs;
        (r.rax, r.rcx, r.r11) = (0x1111 + round, 0x2222 + round, 0x3333 + round);
        (r.rsi, r.r9, r.r10, r.r12, r.r13, r.r14, r.r15) = (6, 9, 10, 12, 13, 14, 15);
        r.rsp = 0x7000_0000 + 8 * round;
        r.eflags = 0x202 | CF | DF | OF;
        assert_eq!(t.switch(&mut state), Exit::Syscall);
        let r = &state.regs;
        assert_eq!(r.rip, CODE + code.len() as u64);
        assert_eq!(
            (r.rbx, r.rbp, r.r8),
            (0x2222 + round, 0x3333 + round, 0x1111 + round),
            "rcx, r11, rax as the sentry set them"
        );
        assert_eq!(r.rdx, 0x0bad_cafe + round, "xmm0 as the application set it");
        assert_eq!(
            (r.rsi, r.r9, r.r10, r.r12, r.r13, r.r14, r.r15),
            (6, 9, 10, 12, 13, 14, 15)
        );
        assert_eq!(r.rsp, 0x7000_0000 + 8 * round);
        assert_eq!(
            r.r11 & (CF | DF | OF),
            CF | DF | OF,
            "flags as the sentry set them"
        );
    }
}

/// The host signal mask of a stub that runs application code is the same after many
/// trapped system calls as after one (the handler's return without `rt_sigreturn` must
/// leave nothing blocked), and it never blocks the interrupt signal.
#[test]
fn the_stubs_signal_mask_is_kept_across_trapped_calls() {
    // `syscall; jmp $`
    let mut t = setup(&[0x0f, 0x05, 0xeb, 0xfe]);
    let blocked_while_spinning = |t: &mut Setup, stub: Pid| -> u64 {
        let mut state = CpuState::new(CODE + 2, 0);
        let interrupter = t.context.interrupter();
        let (done, finished) = std::sync::mpsc::channel::<u64>();
        let helper = std::thread::spawn(move || {
            // The stub is in `jmp $` once it has used CPU time in user mode there; its mask
            // is then the application's.
            let blocked = loop {
                let status = std::fs::read_to_string(format!("/proc/{stub}/status")).unwrap();
                let field = |name: &str| {
                    let line = status.lines().find(|l| l.starts_with(name)).unwrap();
                    line[name.len()..].trim().to_owned()
                };
                if field("State:").starts_with('R') {
                    break u64::from_str_radix(&field("SigBlk:"), 16).unwrap();
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            interrupter.interrupt();
            blocked
        });
        let exit = t.context.switch(&t.dyn_space, &mut state).unwrap();
        let blocked = helper.join().unwrap();
        drop((done, finished));
        assert_eq!(exit, Exit::Interrupted);
        assert_eq!(state.regs.rip, CODE + 2);
        blocked
    };
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let stub = *t.pids().last().unwrap();
    let first = blocked_while_spinning(&mut t, stub);
    for _ in 0..2000 {
        let mut state = CpuState::new(CODE, 0);
        assert_eq!(t.switch(&mut state), Exit::Syscall);
    }
    let after = blocked_while_spinning(&mut t, stub);
    assert_eq!(after, first, "mask after 2000 trapped calls");
    assert_eq!(after & (1 << (libc::SIGUSR2 - 1)), 0, "SIGUSR2 blocked");
    assert_eq!(after & (1 << (libc::SIGSYS - 1)), 0, "SIGSYS blocked");
}

/// Interrupts sent all the time while application code makes trapped system calls land
/// everywhere in the stub's handler: on the way to the sentry, in the hand-off, in the
/// return window. None corrupts a register, and each switch ends with a system call at the
/// instruction after `syscall` or an interrupt at one of the loop's instructions.
#[test]
fn interrupts_racing_trapped_calls_keep_every_register() {
    // `loop: syscall; jmp loop`
    let mut t = setup(&[0x0f, 0x05, 0xeb, 0xfc]);
    let interrupter = t.context.interrupter();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                interrupter.interrupt();
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let mut state = CpuState::new(CODE, 0);
    let r = &mut state.regs;
    (r.rbx, r.rbp, r.rsi, r.rdi, r.rdx, r.rsp) = (1, 2, 3, 4, 5, 0x7000_0000);
    (r.r8, r.r9, r.r10, r.r12, r.r13, r.r14, r.r15) = (8, 9, 10, 12, 13, 14, 15);
    let kept = |s: &CpuState| {
        let r = &s.regs;
        [
            r.rbx, r.rbp, r.rsi, r.rdi, r.rdx, r.rsp, r.r8, r.r9, r.r10, r.r12, r.r13, r.r14, r.r15,
        ]
    };
    let expected = kept(&state);
    let (mut syscalls, mut interrupts) = (0, 0);
    for _ in 0..4000 {
        state.regs.rax = 0;
        match t.switch(&mut state) {
            Exit::Syscall => {
                syscalls += 1;
                assert_eq!(state.regs.rip, CODE + 2);
                assert_eq!(state.regs.orig_rax, 0);
            }
            Exit::Interrupted => {
                interrupts += 1;
                assert!(
                    [CODE, CODE + 2].contains(&state.regs.rip),
                    "{:#x}",
                    state.regs.rip
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(kept(&state), expected);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hammer.join().unwrap();
    assert!(
        syscalls > 0 && interrupts > 0,
        "{syscalls} calls, {interrupts} interrupts"
    );
}

#[test]
fn executing_unmapped_code_is_an_exec_fault() {
    let mut t = setup(&[]);
    let mut state = CpuState::new(DATA, 0);
    match t.switch(&mut state) {
        Exit::Fault { addr, access, .. } => {
            assert_eq!(addr, DATA);
            assert_eq!(access, Access::Exec);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn fs_base_written_by_the_application_is_reported() {
    if !super::sysmsg::fsgsbase_available() {
        eprintln!("SKIPPED: no FSGSBASE: the application cannot write its fs base");
        return;
    }
    // `wrfsbase rdi; syscall`
    let mut t = setup(&[0xf3, 0x48, 0x0f, 0xae, 0xd7, 0x0f, 0x05]);
    let mut state = CpuState::new(CODE, 0);
    state.regs.rdi = 0x1234_5000;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.fs_base, 0x1234_5000);
}

#[test]
fn fp_state_survives_switches_that_do_not_touch_it() {
    // `movq xmm1, rdi; syscall; movq rax, xmm1; syscall`
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xcf, 0x0f, 0x05, 0x66, 0x48, 0x0f, 0x7e, 0xc8, 0x0f, 0x05,
    ];
    let mut t = setup(&code);
    let mut state = CpuState::new(CODE, 0);
    state.regs.rdi = 0x0bad_cafe;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x0bad_cafe);
    // Pulled and set back unchanged (as a signal frame round trip would).
    t.context.pull_fp(&t.dyn_space, &mut state).unwrap();
    state.fp.dirty = true;
    state.regs.rip = CODE + 7;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x0bad_cafe);
}

/// The fast return restores the FP components the frame holds in use (and only those): the
/// upper halves of a YMM register and an AVX-512-only ZMM register the application filled
/// survive two trapped calls.
#[test]
fn avx_and_avx512_state_survives_fast_returns() {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        eprintln!("SKIPPED: the CPU has no AVX-512");
        return;
    }
    // `vpcmpeqd ymm1, ymm1, ymm1; vpternlogd zmm17, zmm17, zmm17, 0xff; syscall;
    // vextracti128 xmm2, ymm1, 1; vmovq rax, xmm2; syscall;
    // vextracti32x4 xmm3, zmm17, 3; vmovq rax, xmm3; syscall`
    let code = [
        0xc5, 0xf5, 0x76, 0xc9, 0x62, 0xa3, 0x75, 0x40, 0x25, 0xc9, 0xff, 0x0f, 0x05, 0xc4, 0xe3,
        0x7d, 0x39, 0xca, 0x01, 0xc4, 0xe1, 0xf9, 0x7e, 0xd0, 0x0f, 0x05, 0x62, 0xe3, 0x7d, 0x48,
        0x39, 0xcb, 0x03, 0xc4, 0xe1, 0xf9, 0x7e, 0xd8, 0x0f, 0x05,
    ];
    let mut t = setup(&code);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.rip, CODE + 13);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, u64::MAX, "ymm1's upper half");
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, u64::MAX, "zmm17's top lane");
}

#[test]
fn fp_state_of_a_patched_call_is_saved_when_pulled_and_loaded_when_set() {
    // `movq xmm1, rdi; mov eax, 39; lea rcx, [rip + 2]; jmp rdx` (a patched call: rdx holds
    // the fast entry), then `movq rax, xmm1; syscall` (trapped) at CODE + 19.
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xcf, 0xb8, 0x27, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x0d, 0x02, 0x00,
        0x00, 0x00, 0xff, 0xe2, 0x66, 0x48, 0x0f, 0x7e, 0xc8, 0x0f, 0x05,
    ];
    /// XMM1's low quadword in the legacy XSAVE area.
    const XMM1: usize = 160 + 16;
    let xmm1 =
        |state: &CpuState| u64::from_le_bytes(state.fp.area[XMM1..XMM1 + 8].try_into().unwrap());
    let mut t = setup(&code);
    let Some(entry) = t.context.syscall_patch_entry() else {
        eprintln!("SKIPPED: this host's systrap takes no patched system calls");
        return;
    };
    let mut state = CpuState::new(CODE, 0);
    state.regs.rdi = 0x0bad_cafe;
    state.regs.rdx = entry;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(
        (state.regs.orig_rax, state.regs.rip),
        (39, CODE + 19),
        "not the fast entry"
    );
    // The fast entry left the FP state in the registers; pulling fetches it.
    t.context.pull_fp(&t.dyn_space, &mut state).unwrap();
    assert_eq!(xmm1(&state), 0x0bad_cafe);
    // The fetch resumed nothing: the thread goes on from the call.
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x0bad_cafe);
    // FP state the sentry sets after a patched call reaches the application.
    state.regs.rip = CODE + 5;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
    t.context.pull_fp(&t.dyn_space, &mut state).unwrap();
    assert_eq!(xmm1(&state), 0x0bad_cafe);
    state.fp.area[XMM1..XMM1 + 8].copy_from_slice(&0x5555_u64.to_le_bytes());
    state.fp.dirty = true;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x5555);
    assert_eq!(state.regs.rip, CODE + 26);
}

/// An interrupt whose signal reaches a stub still in the fast entry's hand-off is dropped
/// there but noted, and reported before the stub returns (the sentry, still waiting, would
/// also signal again), so the switch comes back even though the application then runs on
/// without a system call.
#[test]
fn an_interrupt_dropped_by_the_fast_entry_is_sent_again() {
    // `mov eax, 39; lea rcx, [rip + 2]; jmp rdx` (a patched call: rdx holds the fast entry),
    // then `jmp $` at CODE + 14.
    let code = [
        0xb8, 0x27, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x0d, 0x02, 0x00, 0x00, 0x00, 0xff, 0xe2, 0xeb,
        0xfe,
    ];
    let mut t = setup(&code);
    let Some(entry) = t.context.syscall_patch_entry() else {
        eprintln!("SKIPPED: this host's systrap takes no patched system calls");
        return;
    };
    let mut state = CpuState::new(CODE, 0);
    state.regs.rdx = entry;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.rip, CODE + 14, "not the fast entry");
    // Stopped in the fast entry's hand-off, the stub takes the interrupt's signal when it
    // continues, still there: after the switch has resumed it.
    let stub = *t.pids().last().unwrap();
    kill(stub, Signal::SIGSTOP).unwrap();
    while !stopped(stub) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let interrupter = t.context.interrupter();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        interrupter.interrupt();
        kill(stub, Signal::SIGCONT).unwrap();
        // A lost interrupt would leave the switch waiting for good: end it.
        if finished.recv_timeout(Duration::from_secs(10)).is_err() {
            kill(stub, Signal::SIGKILL).unwrap();
        }
    });
    let result = t.context.switch(&t.dyn_space, &mut state);
    let _ = done.send(());
    helper.join().unwrap();
    assert!(matches!(result, Ok(Exit::Interrupted)), "{result:?}");
}

/// Whether process `pid` is stopped (`T` in /proc/PID/stat).
fn stopped(pid: Pid) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].starts_with('T')
}

#[test]
fn dropping_context_and_address_space_kills_every_process() {
    let mut t = setup(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let pids = t.pids();
    assert_eq!(pids.len(), 3, "factory, injection stub, systrap stub");
    assert!(pids.iter().all(|&pid| !gone(pid)));
    let Setup {
        address_space,
        dyn_space,
        context,
        ..
    } = t;
    drop(context);
    assert!(gone(pids[2]), "the context's stub dies with it");
    drop(address_space);
    drop(dyn_space);
    for pid in pids {
        assert!(reaped(pid), "{pid} is still there");
    }
}

#[test]
fn a_killed_stub_is_reported_not_waited_for() {
    let mut t = setup(SPIN);
    let mut state = CpuState::new(CODE, 0);
    // An interrupt before the switch still creates the stub.
    t.context.interrupter().interrupt();
    assert_eq!(t.switch(&mut state), Exit::Interrupted);
    let stub = *t.pids().last().unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        kill(stub, Signal::SIGKILL).unwrap();
    });
    let started = Instant::now();
    let result = t.context.switch(&t.dyn_space, &mut state);
    killer.join().unwrap();
    assert!(
        matches!(result, Err(Error::StubDied { pid, .. }) if pid == stub.as_raw()),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn application_cannot_make_host_calls_from_the_stub_page() {
    // Jump to the stub's `syscall` used for injection with getpid in rax: the stub filter
    // traps it like any other application system call.
    let code = crate::stub::syscall_insn();
    let mut t = setup(&[]);
    let mut state = CpuState::new(code, 0);
    state.regs.rax = libc::SYS_getpid as u64;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, libc::SYS_getpid as u64);
    // The handler's own futex site with another futex operation: trapped too.
    let site = crate::stub::systrap_code().site_wake - 2;
    let mut state = CpuState::new(site, 0);
    state.regs.rax = libc::SYS_futex as u64;
    state.regs.rsi = libc::FUTEX_CMP_REQUEUE as u64;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, libc::SYS_futex as u64);
}

/// Round trips of `getpid` in a loop: systrap with several waiting policies, ptrace and
/// native, from the same run. Printed, never asserted.
#[test]
fn syscall_round_trip_time() {
    const ROUNDS: u32 = 20_000;
    fn measure(tuning: Tuning) -> u128 {
        let mut t = setup_tuned(GETPID_LOOP, tuning);
        let mut state = CpuState::new(CODE, 0);
        assert_eq!(t.switch(&mut state), Exit::Syscall);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            state.regs.rax = 1;
            assert_eq!(t.switch(&mut state), Exit::Syscall);
        }
        assert_eq!(state.regs.orig_rax, 39);
        (started.elapsed() / ROUNDS).as_nanos()
    }
    let default = measure(Tuning::default());
    let same_cpu = measure(Tuning {
        spin: Duration::ZERO,
        ..Tuning::default()
    });
    let unbound = measure(Tuning {
        spin: Duration::ZERO,
        follow_cpu: false,
    });
    let ptrace = {
        let guest = Guest::new();
        guest.write(0, GETPID_LOOP);
        let platform = crate::ptrace::Ptrace::new(guest.memfd.as_fd()).unwrap();
        let space = platform.new_address_space().unwrap();
        space.map(CODE, PAGE_SIZE, 0, Perms::RX).unwrap();
        let mut context = platform.new_context().unwrap();
        let mut state = CpuState::new(CODE, 0);
        assert_eq!(context.switch(&space, &mut state).unwrap(), Exit::Syscall);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            assert_eq!(context.switch(&space, &mut state).unwrap(), Exit::Syscall);
        }
        (started.elapsed() / ROUNDS).as_nanos()
    };
    let native = {
        let started = Instant::now();
        for _ in 0..ROUNDS * 10 {
            // SAFETY: getpid has no arguments and no effects.
            unsafe { libc::syscall(libc::SYS_getpid) };
        }
        (started.elapsed() / (ROUNDS * 10)).as_nanos()
    };
    eprintln!(
        "ns per syscall round trip: systrap {default} (default: polling when it pays, else \
         same CPU), systrap {same_cpu} (same CPU, futex), systrap {unbound} (futex, unbound), \
         ptrace {ptrace}, native {native}"
    );
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: Pid) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces) start at the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, so 11 and 12 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_stub_waiting_for_a_slow_sentry_polls_only_briefly() {
    let mut t = setup(GETPID_LOOP);
    let mut state = CpuState::new(CODE, 0);
    // Quick round trips past a fresh stub's back-off, so that polling is on when the
    // sentry goes slow.
    for _ in 0..super::context::STREAK + 10 {
        assert_eq!(t.switch(&mut state), Exit::Syscall);
    }
    let before: u64 = t.pids().into_iter().map(cpu_ticks).sum();
    std::thread::sleep(Duration::from_millis(500));
    let after: u64 = t.pids().into_iter().map(cpu_ticks).sum();
    // A stub polling for the whole half second would use about 50 ticks (at 100 Hz).
    assert!(
        after - before <= 5,
        "stubs used {} ticks while idle",
        after - before
    );
    assert_eq!(t.switch(&mut state), Exit::Syscall);
}

#[test]
fn the_sentry_waiting_for_busy_application_code_polls_only_briefly() {
    let mut t = setup(SPIN);
    let interrupter = t.context.interrupter();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        interrupter.interrupt();
    });
    // SAFETY: getrusage fills the struct it is given; all-zero is a valid value of it.
    let thread_cpu = || unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        Duration::new(
            usage.ru_utime.tv_sec as u64,
            usage.ru_utime.tv_usec as u32 * 1000,
        ) + Duration::new(
            usage.ru_stime.tv_sec as u64,
            usage.ru_stime.tv_usec as u32 * 1000,
        )
    };
    let before = thread_cpu();
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Interrupted);
    let used = thread_cpu() - before;
    waker.join().unwrap();
    assert!(
        used < Duration::from_millis(100),
        "the sentry used {used:?} waiting"
    );
}

#[test]
fn failed_polls_back_off_doubling_and_only_runs_of_successes_forgive() {
    use super::context::{Polling, STREAK};
    let polling = Polling::fresh();
    let skipped = |polling: &Polling| {
        let mut n = 0;
        while !polling.this_time() {
            n += 1;
        }
        n
    };
    // A fresh stub starts backed off, then polls until a poll fails.
    assert_eq!(skipped(&polling), STREAK);
    let polling = Polling::default();
    assert_eq!(skipped(&polling), 0);
    polling.record(false);
    assert_eq!(skipped(&polling), 1);
    polling.record(false);
    assert_eq!(skipped(&polling), 2);
    // Alternating success and failure keeps doubling: such polling does not pay.
    for expected in [4, 8, 16] {
        polling.record(true);
        polling.record(false);
        assert_eq!(skipped(&polling), expected);
    }
    for _ in 0..20 {
        polling.record(false);
    }
    assert_eq!(skipped(&polling), super::MAX_BACKOFF);
    // A full run of successes halves the penalty.
    for _ in 0..STREAK {
        polling.record(true);
    }
    polling.record(false);
    assert_eq!(skipped(&polling), super::MAX_BACKOFF);
    for _ in 0..2 * STREAK {
        polling.record(true);
    }
    polling.record(false);
    assert_eq!(skipped(&polling), super::MAX_BACKOFF / 2);
}

/// The sentry tells a stub that is running application code from one that never took its
/// resume by the stub's count of resumes taken: it must match the sentry's count whether the
/// stub took the resume while polling or was woken for it.
#[test]
fn the_stub_counts_each_resume_it_takes_once() {
    let mut t = setup(GETPID_LOOP);
    let mut state = CpuState::new(CODE, 0);
    const SWITCHES: u32 = 40;
    for i in 0..SWITCHES {
        if i % 8 == 0 {
            // Past any poll budget: the stub is asleep and is woken for this resume.
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(t.switch(&mut state), Exit::Syscall);
    }
    let slots = t.address_space.slots();
    assert_eq!(slots.len(), 1);
    let region = t.platform.shared.sysmsg.region(slots[0]);
    assert_eq!(region.pickups(), SWITCHES);
}

#[test]
fn how_hand_offs_are_judged() {
    use super::context::{judge, Judged, Polling, Waited, STREAK};
    let polled = Waited::default();
    let ran = Waited {
        slept: true,
        late: false,
    };
    let late = |slept| Waited { slept, late: true };
    // Both polled and neither slept.
    assert_eq!(judge(true, false, polled), Judged::Ok);
    // The stub told to poll slept while the sentry, which had seen its event while polling,
    // worked on the call: long, not failed.
    assert_eq!(judge(true, true, polled), Judged::Long);
    // The sentry slept while application code ran (the stub had taken the resume): long.
    assert_eq!(judge(true, false, ran), Judged::Long);
    assert_eq!(judge(false, true, ran), Judged::Long);
    // The stub had not taken the resume when the sentry's budget ran out: not running.
    assert_eq!(judge(true, false, late(true)), Judged::Failed);
    assert_eq!(judge(false, false, late(true)), Judged::Failed);
    // A stub told to poll that gave up, slept and was woken late: not running either.
    assert_eq!(judge(true, true, late(true)), Judged::Failed);
    // A stub told to sleep, woken for the first poll after a back-off, whose wake-up was
    // slow: neither failed nor a success.
    assert_eq!(judge(false, true, late(true)), Judged::Waking);
    // Waking a stub to start it polling is fine when it answers within the budget.
    assert_eq!(judge(false, true, polled), Judged::Ok);
    let next_polls = |polls, stub_polled, woke, waited| {
        let polling = Polling::default();
        polling.after(polls, stub_polled, woke, waited);
        polling.this_time()
    };
    // Long and failed hand-offs both back off (a sleep in a polling hand-off is a cross-CPU
    // wake-up).
    assert!(next_polls(true, true, false, polled));
    assert!(next_polls(true, false, true, polled));
    assert!(!next_polls(true, true, true, polled));
    assert!(!next_polls(true, false, false, ran));
    assert!(!next_polls(true, true, false, late(true)));
    assert!(!next_polls(true, true, true, late(true)));
    assert!(next_polls(true, false, true, late(true)));
    // A slow wake-up neither backs off nor counts towards a run of successes.
    let polling = Polling::default();
    polling.record(false);
    polling.record(false);
    assert!(!polling.this_time());
    assert!(!polling.this_time());
    for _ in 0..2 * STREAK {
        polling.after(true, false, true, late(true));
    }
    polling.record(false);
    let mut skipped = 0;
    while !polling.this_time() {
        skipped += 1;
    }
    assert_eq!(skipped, 4);
    // A hand-off that did not poll is not judged.
    assert!(next_polls(false, true, true, late(true)));
}

/// A stub takes its handlers and seccomp filter from the setup page, which application code
/// can read but not write: a store there faults as a write to a read-only page, and the
/// filter the page holds is the one the stubs run under.
#[test]
fn the_setup_page_is_read_only_to_application_code() {
    let page = crate::stub::SETUP_PAGE;
    // mov rbx, page; mov rax, 7; mov [rbx], rax; syscall
    let mut code = vec![0x48, 0xbb];
    code.extend_from_slice(&page.to_le_bytes());
    code.extend_from_slice(&[
        0x48, 0xc7, 0xc0, 0x07, 0, 0, 0, 0x48, 0x89, 0x03, 0x0f, 0x05,
    ]);
    let mut t = setup(&code);
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Fault { addr, access, info } => {
            assert_eq!((addr, access), (page, Access::Write));
            assert_eq!(info.code, 2, "SEGV_ACCERR: the page is there, read-only");
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    let program = super::filter::program(&crate::stub::systrap_code());
    let bytes: Vec<u8> = program.iter().flat_map(|i| i.to_bytes()).collect();
    // SAFETY: the setup page is mapped read-only in this process for its whole life.
    let sealed = unsafe {
        std::slice::from_raw_parts((page + crate::stub::SETUP_FILTER) as *const u8, bytes.len())
    };
    assert_eq!(sealed, &bytes[..]);
}

/// A stub that sleeps through its hand-offs follows its sentry thread's CPU only once the
/// thread was on that CPU at two hand-offs in a row: a new stub is left unbound by its first
/// hand-off (one `sched_setaffinity` saved per short-lived stub and per CPU bounce) and is
/// bound to the thread's CPU at the second.
#[test]
fn a_sleeping_stub_follows_its_thread_only_to_a_cpu_it_stays_on() {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    let all = sched_getaffinity(Pid::from_raw(0)).unwrap();
    let usable: Vec<usize> = (0..CpuSet::count())
        .filter(|&cpu| all.is_set(cpu).unwrap_or(false))
        .collect();
    if usable.len() < 2 {
        eprintln!("one usable CPU: a stub has nowhere else to be bound");
        return;
    }
    let mut t = setup_tuned(
        GETPID_THEN_EXIT,
        Tuning {
            spin: Duration::ZERO,
            follow_cpu: true,
        },
    );
    // The factory (and so every stub) keeps every CPU; only this thread is pinned.
    let mut one = CpuSet::new();
    one.set(usable[0]).unwrap();
    sched_setaffinity(Pid::from_raw(0), &one).unwrap();
    let bound = |t: &Setup| {
        t.pids()
            .into_iter()
            .filter(|&pid| sched_getaffinity(pid).is_ok_and(|set| set == one))
            .count()
    };
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let after_first = bound(&t);
    state.regs.rip = CODE;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let after_second = bound(&t);
    sched_setaffinity(Pid::from_raw(0), &all).unwrap();
    assert_eq!(after_first, 0, "the first hand-off bound a stub");
    assert_eq!(
        after_second, 1,
        "the stub did not follow its settled thread"
    );
}

fn sorted(mut pids: Vec<Pid>) -> Vec<Pid> {
    pids.sort();
    pids
}

/// The value of `field` (with its colon) in `pid`'s `/proc` status.
fn status_field(pid: Pid, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line[field.len()..].trim().to_owned()
}

/// A second address space: the first made the master thread fork the spare, which the
/// second takes once it is complete. Returns the spare's pids (factory, stub, mapper).
fn setup_from_the_spare(code: &[u8]) -> (Setup, Vec<Pid>) {
    let guest = Guest::new();
    let platform = platform(&guest);
    drop(SystrapAddressSpace::create(&platform.shared).unwrap());
    let spare = platform.shared.ptrace.wait_for_spare();
    assert_eq!(spare.len(), 3, "factory, stub and mapper: {spare:?}");
    let t = Setup::with(guest, platform, code, |p| {
        SystrapAddressSpace::create(&p.shared).unwrap()
    });
    assert_eq!(
        sorted(t.pids()),
        sorted(spare.clone()),
        "the spare was taken"
    );
    (t, spare)
}

#[test]
fn the_spare_factorys_stub_is_set_up_ahead_and_runs_the_first_thread() {
    let (mut t, spare) = setup_from_the_spare(GETPID_THEN_EXIT);
    let stub = spare[1];
    // The master thread set it up and let it go: it is parked in its handler, untraced,
    // with its region mapped and its filter installed.
    assert_eq!(status_field(stub, "TracerPid:"), "0");
    assert_eq!(status_field(stub, "Seccomp:"), "2", "in filter mode");
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
    // The first thread got that stub (no other process was made) and its region.
    assert_eq!(sorted(t.pids()), sorted(spare));
    assert_eq!(t.address_space.slots().len(), 1);
    state.regs.rax = 7;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!((state.regs.orig_rax, state.regs.rdi), (60, 7));
}

#[test]
fn a_readied_stub_that_died_is_reported_at_its_first_switch() {
    let (mut t, spare) = setup_from_the_spare(GETPID_THEN_EXIT);
    kill(spare[1], Signal::SIGKILL).unwrap();
    let mut state = CpuState::new(CODE, 0);
    let started = Instant::now();
    let result = t.context.switch(&t.dyn_space, &mut state);
    assert!(
        matches!(result, Err(Error::StubDied { pid, .. }) if pid == spare[1].as_raw()),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_unused_readied_stubs_region_is_freed_once_it_is_reaped() {
    let guest = Guest::new();
    let platform = platform(&guest);
    drop(SystrapAddressSpace::create(&platform.shared).unwrap());
    let spare = platform.shared.ptrace.wait_for_spare();
    // The readied stub's region is the only one in use: the first address space never ran.
    let in_use = platform.shared.sysmsg.in_use();
    assert_eq!(in_use.len(), 1, "{in_use:?}");
    let space = SystrapAddressSpace::create(&platform.shared).unwrap();
    assert_eq!(space.ptrace.pids(), spare, "the spare was taken");
    // The next spare's stub takes another region (waited for, so it cannot take this one).
    let next = platform.shared.ptrace.wait_for_spare();
    assert_ne!(next, spare);
    // Released without running a thread: the stub is killed as one the factory still holds,
    // and its region returns once the reaper has reaped it.
    drop(space);
    for pid in &spare {
        assert!(reaped(*pid), "{pid} is still there");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while platform.shared.sysmsg.in_use().contains(&in_use[0]) {
        assert!(Instant::now() < deadline, "the region was never freed");
        std::thread::sleep(Duration::from_millis(5));
    }
}
