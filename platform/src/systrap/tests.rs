//! Tests of the systrap platform with hand-assembled application code (the ptrace tests'
//! programs, in `crate::testing`).

use std::os::fd::AsFd;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::address_space::SystrapAddressSpace;
use super::{Systrap, Tuning};
use crate::testing::*;
use crate::{Access, AddressSpace, Context, CpuState, Error, Exit, Perms, Platform, PAGE_SIZE};

impl Guest {
    fn systrap(&self) -> Systrap {
        Systrap::new(self.memfd.as_fd()).unwrap()
    }
}

/// A platform, one address space with `code` mapped at [`CODE`], and a context of this thread.
struct Setup {
    guest: Guest,
    platform: Systrap,
    address_space: Arc<SystrapAddressSpace>,
    dyn_space: Arc<dyn AddressSpace>,
    context: Box<dyn Context>,
}

impl Setup {
    fn new(code: &[u8]) -> Setup {
        let guest = Guest::new();
        let platform = guest.systrap();
        Self::with(guest, platform, code)
    }

    fn with(guest: Guest, platform: Systrap, code: &[u8]) -> Setup {
        guest.write(0, code);
        let address_space = SystrapAddressSpace::create(&platform.shared).unwrap();
        let dyn_space: Arc<dyn AddressSpace> = address_space.clone();
        dyn_space.map(CODE, PAGE_SIZE, 0, Perms::RX).unwrap();
        let context = platform.new_context().unwrap();
        Setup {
            guest,
            platform,
            address_space,
            dyn_space,
            context,
        }
    }

    fn switch(&mut self, state: &mut CpuState) -> Exit {
        self.context.switch(&self.dyn_space, state).unwrap()
    }

    /// Every process of the address space: factory, injection stubs, systrap stubs.
    fn pids(&self) -> Vec<Pid> {
        self.address_space.ptrace.pids()
    }
}

fn gone(pid: Pid) -> bool {
    kill(pid, None) == Err(Errno::ESRCH)
}

#[test]
fn syscalls_trap_without_running_and_take_the_sentrys_result() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
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
    let mut t = Setup::new(&[0x0f, 0x05, 0x0f, 0x05]);
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

#[test]
fn fault_on_unmapped_address_then_retry_after_map() {
    let mut t = Setup::new(&load(DATA));
    t.guest.write(0x1000, &0xdead_beef_u64.to_le_bytes());
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Fault { addr, access, info } => {
            assert_eq!(addr, DATA);
            assert_eq!(access, Access::Read);
            assert_eq!(info.signo, libc::SIGSEGV);
            assert_eq!(info.code, SEGV_MAPERR);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert_eq!(state.regs.rip, CODE, "the faulting instruction is retried");
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0xdead_beef);
}

#[test]
fn write_to_read_only_page_faults_and_unmap_removes_the_page() {
    let mut t = Setup::new(&store(DATA, 7));
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Fault { addr, access, info } => {
            assert_eq!(addr, DATA);
            assert_eq!(access, Access::Write);
            assert_eq!(info.code, SEGV_ACCERR);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    t.dyn_space.unmap(DATA, PAGE_SIZE).unwrap();
    match t.switch(&mut state) {
        Exit::Fault { addr, info, .. } => {
            assert_eq!(addr, DATA);
            assert_eq!(info.code, SEGV_MAPERR);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::RW).unwrap();
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 7);
}

#[test]
fn executing_unmapped_code_is_an_exec_fault() {
    let mut t = Setup::new(&[]);
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
fn ud2_is_sigill_and_int3_is_sigtrap() {
    let mut t = Setup::new(UD2);
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Signal(info) => {
            assert_eq!(info.signo, libc::SIGILL);
            assert_eq!(info.addr, CODE);
        }
        other => panic!("expected SIGILL, got {other:?}"),
    }
    t.guest.write(0, INT3);
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Signal(info) => assert_eq!(info.signo, libc::SIGTRAP),
        other => panic!("expected SIGTRAP, got {other:?}"),
    }
    assert_eq!(state.regs.rip, CODE + 1);
    t.guest.write(0, DIVIDE_BY_ZERO);
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Signal(info) => {
            assert_eq!(info.signo, libc::SIGFPE);
            assert_eq!(info.addr, CODE + 2);
        }
        other => panic!("expected SIGFPE, got {other:?}"),
    }
}

#[test]
fn general_protection_fault_is_a_signal_not_a_fault() {
    let mut t = Setup::new(NON_CANONICAL_LOAD);
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Signal(info) => {
            assert_eq!(info.signo, libc::SIGSEGV);
            assert_eq!(info.code, libc::SI_KERNEL);
        }
        other => panic!("expected SIGSEGV, got {other:?}"),
    }
}

#[test]
fn fs_base_is_loaded_exactly() {
    let mut t = Setup::new(LOAD_FS0);
    t.guest
        .write(0x1000 + 0x80, &0x0123_4567_89ab_cdef_u64.to_le_bytes());
    t.guest
        .write(0x1000 + 0x100, &0x7654_3210_u64.to_le_bytes());
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    let mut state = CpuState::new(CODE, 0);
    state.regs.fs_base = DATA + 0x80;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x0123_4567_89ab_cdef);
    assert_eq!(state.regs.fs_base, DATA + 0x80);
    // The sentry changes it (arch_prctl): the next run sees the new base.
    state.regs.fs_base = DATA + 0x100;
    state.regs.rip = CODE;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x7654_3210);
}

#[test]
fn fs_base_written_by_the_application_is_reported() {
    if !super::sysmsg::fsgsbase_available() {
        eprintln!("SKIPPED: no FSGSBASE: the application cannot write its fs base");
        return;
    }
    // `wrfsbase rdi; syscall`
    let mut t = Setup::new(&[0xf3, 0x48, 0x0f, 0xae, 0xd7, 0x0f, 0x05]);
    let mut state = CpuState::new(CODE, 0);
    state.regs.rdi = 0x1234_5000;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.fs_base, 0x1234_5000);
}

#[test]
fn fp_state_is_loaded_and_pulled() {
    let mut t = Setup::new(FP_PROGRAM);
    let mut state = CpuState::new(CODE, 0);
    state.fp.area[160..168].copy_from_slice(&0x1122_3344_5566_7788_u64.to_le_bytes());
    state.fp.dirty = true;
    state.regs.rdi = 0x99aa_bbcc_ddee_ff00;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x1122_3344_5566_7788);
    assert!(!state.fp.dirty);
    assert!(!state.fp.valid);
    t.context.pull_fp(&t.dyn_space, &mut state).unwrap();
    assert!(state.fp.valid);
    let xmm1 = u64::from_le_bytes(state.fp.area[176..184].try_into().unwrap());
    assert_eq!(xmm1, 0x99aa_bbcc_ddee_ff00);
    let mxcsr = u32::from_le_bytes(state.fp.area[24..28].try_into().unwrap());
    assert_eq!(mxcsr, 0x1f80);
}

#[test]
fn fp_state_survives_switches_that_do_not_touch_it() {
    // `movq xmm1, rdi; syscall; movq rax, xmm1; syscall`
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xcf, 0x0f, 0x05, 0x66, 0x48, 0x0f, 0x7e, 0xc8, 0x0f, 0x05,
    ];
    let mut t = Setup::new(&code);
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

#[test]
fn threads_of_one_address_space_share_memory_and_mappings() {
    const SHARED: u64 = 0x70_0000;
    let value = 0x1122_3344_5566_7788;
    let reader_offset = 0x100;
    let t = Setup::new(&store(SHARED, value));
    t.guest.write(reader_offset, &load(SHARED));
    let platform = Arc::new(t.platform);
    let space = t.dyn_space.clone();

    let (written_tx, written_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let writer = {
        let platform = platform.clone();
        let space = space.clone();
        std::thread::spawn(move || {
            space.map(SHARED, PAGE_SIZE, 0x3000, Perms::RW).unwrap();
            let mut context = platform.new_context().unwrap();
            let mut state = CpuState::new(CODE, 0);
            assert_eq!(context.switch(&space, &mut state).unwrap(), Exit::Syscall);
            assert_eq!(state.regs.orig_rax, value);
            written_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        })
    };
    written_rx.recv().unwrap();
    let reader = {
        let platform = platform.clone();
        let space = space.clone();
        std::thread::spawn(move || {
            let mut context = platform.new_context().unwrap();
            let mut state = CpuState::new(CODE + reader_offset, 0);
            let exit = context.switch(&space, &mut state).unwrap();
            (exit, state.regs.orig_rax)
        })
    };
    let (exit, seen) = reader.join().unwrap();
    done_tx.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(exit, Exit::Syscall);
    assert_eq!(seen, value);
}

#[test]
fn interrupt_stops_a_spinning_thread() {
    let mut t = Setup::new(SPIN);
    let mut state = CpuState::new(CODE, 0);
    let interrupter = t.context.interrupter();
    let pids = t.pids();
    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        interrupter.interrupt();
        // Watchdog: if the interrupt was lost, end the test instead of hanging it.
        if finished_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            for pid in pids {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    });
    let started = Instant::now();
    let exit = t.switch(&mut state);
    finished_tx.send(()).unwrap();
    helper.join().unwrap();
    assert_eq!(exit, Exit::Interrupted);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!((CODE..CODE + 2).contains(&state.regs.rip));
}

#[test]
fn interrupt_before_switch_returns_without_running() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    t.context.interrupter().interrupt();
    assert_eq!(t.switch(&mut state), Exit::Interrupted);
    assert_eq!(state.regs.rip, CODE);
    assert!(state.fp.dirty, "nothing was loaded");
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
}

#[test]
fn interrupts_racing_with_syscalls_are_never_lost() {
    const SPIN_AT: u64 = 0x100;
    let mut t = Setup::new(GETPID_LOOP);
    t.guest.write(SPIN_AT, SPIN);
    let mut looping = CpuState::new(CODE, 0);
    let mut spinning = CpuState::new(CODE + SPIN_AT, 0);
    assert_eq!(t.switch(&mut looping), Exit::Syscall);
    let pids = t.pids();
    let interrupter = t.context.interrupter();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let pelter = std::thread::spawn(move || {
        let started = Instant::now();
        while stop_rx.recv_timeout(Duration::from_micros(300)).is_err() {
            interrupter.interrupt();
            if started.elapsed() > Duration::from_secs(20) {
                for &pid in &pids {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
        }
    });
    let (mut syscalls, mut interrupts) = (0, 0);
    for round in 0..400 {
        assert_eq!(t.switch(&mut spinning), Exit::Interrupted);
        assert!((CODE + SPIN_AT..CODE + SPIN_AT + 2).contains(&spinning.regs.rip));
        match t.switch(&mut looping) {
            Exit::Syscall => {
                assert_eq!(looping.regs.orig_rax, 39);
                syscalls += 1;
            }
            Exit::Interrupted => interrupts += 1,
            other => panic!("unexpected {other:?}"),
        }
        assert!((CODE..CODE + 9).contains(&looping.regs.rip));
        if round % 8 == 0 {
            t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
        }
    }
    stop_tx.send(()).unwrap();
    pelter.join().unwrap();
    eprintln!("systrap racing interrupts: {syscalls} syscalls, {interrupts} interrupts");
}

#[test]
fn dropping_context_and_address_space_kills_every_process() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
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
        assert!(gone(pid), "{pid} is still there");
    }
}

#[test]
fn released_address_space_refuses_work() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let pids = t.pids();
    t.dyn_space.release();
    assert!(pids.iter().all(|&pid| gone(pid)));
    assert!(matches!(
        t.dyn_space.map(DATA, PAGE_SIZE, 0, Perms::R),
        Err(Error::Host { .. })
    ));
    assert!(t.context.switch(&t.dyn_space, &mut state).is_err());
}

#[test]
fn a_killed_stub_is_reported_not_waited_for() {
    let mut t = Setup::new(SPIN);
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
fn one_context_runs_in_several_address_spaces() {
    let mut t = Setup::new(&load(DATA));
    t.guest.write(0x1000, &1u64.to_le_bytes());
    t.guest.write(0x2000, &2u64.to_le_bytes());
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    let second = t.platform.new_address_space().unwrap();
    second.map(CODE, PAGE_SIZE, 0, Perms::RX).unwrap();
    second.map(DATA, PAGE_SIZE, 0x2000, Perms::R).unwrap();
    for _ in 0..3 {
        let mut state = CpuState::new(CODE, 0);
        assert_eq!(t.switch(&mut state), Exit::Syscall);
        assert_eq!(state.regs.orig_rax, 1);
        let mut state = CpuState::new(CODE, 0);
        assert_eq!(
            t.context.switch(&second, &mut state).unwrap(),
            Exit::Syscall
        );
        assert_eq!(state.regs.orig_rax, 2);
    }
}

#[test]
fn foreign_address_space_is_refused() {
    let t = Setup::new(GETPID_THEN_EXIT);
    let other = t.guest.systrap();
    let mut context = other.new_context().unwrap();
    let mut state = CpuState::new(CODE, 0);
    assert!(matches!(
        context.switch(&t.dyn_space, &mut state),
        Err(Error::Unavailable(..))
    ));
}

#[test]
fn application_cannot_make_host_calls_from_the_stub_page() {
    // Jump to the stub's `syscall` used for injection with getpid in rax: the stub filter
    // traps it like any other application system call.
    let code = crate::ptrace::stub::syscall_insn();
    let mut t = Setup::new(&[]);
    let mut state = CpuState::new(code, 0);
    state.regs.rax = libc::SYS_getpid as u64;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, libc::SYS_getpid as u64);
    // The handler's own futex site with another futex operation: trapped too.
    let site = crate::ptrace::stub::systrap_code().site_wake - 2;
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
        let guest = Guest::new();
        let platform = Systrap::with_tuning(guest.memfd.as_fd(), tuning).unwrap();
        let mut t = Setup::with(guest, platform, GETPID_LOOP);
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
    let unbound = measure(Tuning {
        follow_cpu: false,
        ..Tuning::default()
    });
    let polling = measure(Tuning {
        sentry_spin: 200,
        stub_spin: 200,
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
        "ns per syscall round trip: systrap {default} (default: same CPU, futex), \
         systrap {unbound} (futex, unbound), systrap {polling} (short polling, unbound), \
         ptrace {ptrace}, native {native}"
    );
}

#[test]
fn host_syscalls_name_a_reason_each() {
    let t = Setup::new(&[]);
    let calls = t.platform.host_syscalls();
    assert!(calls.iter().any(|(name, _)| *name == "futex"));
    assert!(calls
        .iter()
        .all(|(name, why)| !name.is_empty() && !why.is_empty()));
}

#[test]
fn int80_traps_like_a_system_call_instead_of_killing_the_stub() {
    // `mov eax, 20; int 0x80`
    let mut t = Setup::new(&[0xb8, 20, 0, 0, 0, 0xcd, 0x80]);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 20);
    assert_eq!(state.regs.rip, CODE + 7);
    assert!(t.pids().iter().all(|&pid| !gone(pid)));
}
