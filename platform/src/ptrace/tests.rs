//! Tests of the ptrace platform with hand-assembled application code.

use std::os::fd::AsFd;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::address_space::PtraceAddressSpace;
use super::factory::RseqArea;
use super::Ptrace;
use crate::testing::*;
use crate::{Access, AddressSpace, Context, CpuState, Error, Exit, Perms, Platform, PAGE_SIZE};

impl Guest {
    fn platform(&self) -> Ptrace {
        Ptrace::new(self.memfd.as_fd()).unwrap()
    }
}

/// A platform, one address space with `code` mapped at [`CODE`], and a context of this thread.
struct Setup {
    guest: Guest,
    platform: Ptrace,
    address_space: Arc<PtraceAddressSpace>,
    dyn_space: Arc<dyn AddressSpace>,
    context: Box<dyn Context>,
}

impl Setup {
    fn new(code: &[u8]) -> Setup {
        let guest = Guest::new();
        guest.write(0, code);
        let platform = guest.platform();
        let address_space = PtraceAddressSpace::create(&platform.shared).unwrap();
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

    /// The stubs of the address space (the factory excluded).
    fn stubs(&self) -> Vec<Pid> {
        let pids = self.address_space.pids();
        pids[1..].to_vec()
    }
}

fn gone(pid: Pid) -> bool {
    kill(pid, None) == Err(Errno::ESRCH)
}

#[test]
fn syscalls_stop_without_running_and_take_the_sentrys_result() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
    assert_eq!(state.regs.rip, CODE + 7);
    state.regs.rax = 1234;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 60);
    assert_eq!(state.regs.rdi, 1234);
    // exit was not executed by the host: the stub is alive and can run on.
    assert!(!gone(t.stubs()[0]));
}

#[test]
fn fault_on_unmapped_address_then_retry_after_map() {
    let mut t = Setup::new(&load(DATA));
    t.guest.write(0x1000, &0xdead_beef_u64.to_le_bytes());
    let mut state = CpuState::new(CODE, 0);
    match t.switch(&mut state) {
        Exit::Fault { addr, access, info } => {
            assert_eq!(addr, DATA);
            assert_eq!(access, Access::Unknown);
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
        Exit::Fault { addr, info, .. } => {
            assert_eq!(addr, DATA);
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
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    let mut state = CpuState::new(CODE, 0);
    state.regs.fs_base = DATA + 0x80;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0x0123_4567_89ab_cdef);
    assert_eq!(state.regs.fs_base, DATA + 0x80);
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
fn threads_of_one_address_space_share_memory_and_mappings() {
    const SHARED: u64 = 0x70_0000;
    let value = 0x1122_3344_5566_7788;
    let mut code = store(SHARED, value);
    let reader_offset = 0x100;
    let t = Setup::new(&[]);
    t.guest.write(0, &code);
    code = load(SHARED);
    t.guest.write(reader_offset, &code);
    let platform = Arc::new(t.platform);
    let space = t.dyn_space.clone();

    let (written_tx, written_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let writer = {
        let platform = platform.clone();
        let space = space.clone();
        std::thread::spawn(move || {
            // Only this thread's stub ever runs the injected mmap.
            space.map(SHARED, PAGE_SIZE, 0x3000, Perms::RW).unwrap();
            let mut context = platform.new_context().unwrap();
            let mut state = CpuState::new(CODE, 0);
            assert_eq!(context.switch(&space, &mut state).unwrap(), Exit::Syscall);
            assert_eq!(state.regs.orig_rax, value);
            written_tx.send(()).unwrap();
            // Keep the writer's stub alive while the reader runs.
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
    assert_eq!(
        exit,
        Exit::Syscall,
        "the reader's stub sees the writer's mapping"
    );
    assert_eq!(seen, value);
}

#[test]
fn interrupt_stops_a_spinning_thread() {
    let mut t = Setup::new(SPIN);
    let mut state = CpuState::new(CODE, 0);
    // Create the stub first so the watchdog can name it.
    t.dyn_space.unmap(DATA, PAGE_SIZE).unwrap();
    let stub = t.stubs()[0];
    let interrupter = t.context.interrupter();
    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        interrupter.interrupt();
        // Watchdog: if the interrupt was lost, end the test instead of hanging it.
        if finished_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = kill(stub, Signal::SIGKILL);
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
fn dropping_the_address_space_kills_factory_and_stubs() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let pids = t.address_space.pids();
    assert_eq!(pids.len(), 2, "factory and one stub");
    assert!(pids.iter().all(|&pid| !gone(pid)));
    let Setup {
        address_space,
        dyn_space,
        context,
        ..
    } = t;
    drop(context);
    drop(address_space);
    drop(dyn_space);
    for pid in pids {
        assert!(gone(pid), "{pid} is still there");
    }
}

#[test]
fn released_address_space_refuses_work() {
    let mut t = Setup::new(GETPID_THEN_EXIT);
    let pids = t.address_space.pids();
    t.dyn_space.release();
    assert!(pids.iter().all(|&pid| gone(pid)));
    assert!(matches!(
        t.dyn_space.map(DATA, PAGE_SIZE, 0, Perms::R),
        Err(Error::Host { .. })
    ));
    let mut state = CpuState::new(CODE, 0);
    assert!(t.context.switch(&t.dyn_space, &mut state).is_err());
}

#[test]
fn a_stub_dies_with_its_host_thread() {
    let t = Setup::new(GETPID_THEN_EXIT);
    let space = t.address_space.clone();
    let stub = std::thread::spawn(move || {
        let dyn_space: Arc<dyn AddressSpace> = space.clone();
        dyn_space.map(DATA, PAGE_SIZE, 0, Perms::R).unwrap();
        space.pids()[2]
    })
    .join()
    .unwrap();
    assert!(gone(stub));
    assert_eq!(
        t.address_space.pids().len(),
        2,
        "factory and this thread's stub remain"
    );
}

#[test]
fn foreign_address_space_is_refused() {
    let t = Setup::new(GETPID_THEN_EXIT);
    let other = t.guest.platform();
    let mut context = other.new_context().unwrap();
    let mut state = CpuState::new(CODE, 0);
    assert!(matches!(
        context.switch(&t.dyn_space, &mut state),
        Err(Error::Unavailable(..))
    ));
}

#[test]
fn rseq_area_of_a_thread_unregisters() {
    let result = std::thread::spawn(|| {
        let area = RseqArea::of_current_thread()?;
        // SAFETY: unregistering this thread's own rseq area; the thread exits right after, and
        // glibc falls back to system calls where it would have read the area.
        let rc = unsafe { libc::syscall(libc::SYS_rseq, area.addr, area.len, 1, 0x5305_3053) };
        Some((rc, Errno::last()))
    })
    .join()
    .unwrap();
    match result {
        Some((rc, errno)) => assert_eq!(rc, 0, "rseq unregister: {errno}"),
        None => eprintln!("SKIPPED: the C library registers no rseq area"),
    }
}

#[test]
fn syscall_round_trip_time() {
    let mut t = Setup::new(GETPID_LOOP);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    const ROUNDS: u32 = 10_000;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        state.regs.rax = 1;
        assert_eq!(t.switch(&mut state), Exit::Syscall);
    }
    let per_op = started.elapsed() / ROUNDS;
    eprintln!(
        "ptrace: {} ns per Exit::Syscall round trip",
        per_op.as_nanos()
    );
    assert_eq!(state.regs.orig_rax, 39);
}

#[test]
fn host_syscalls_name_a_reason_each() {
    let t = Setup::new(&[]);
    let calls = t.platform.host_syscalls();
    assert!(calls.iter().any(|(name, _)| *name == "ptrace"));
    assert!(calls
        .iter()
        .all(|(name, why)| !name.is_empty() && !why.is_empty()));
}

#[test]
fn interrupts_racing_with_syscalls_and_injection_are_never_lost() {
    const SPIN_AT: u64 = 0x100;
    let mut t = Setup::new(GETPID_LOOP);
    t.guest.write(SPIN_AT, SPIN);
    let mut looping = CpuState::new(CODE, 0);
    let mut spinning = CpuState::new(CODE + SPIN_AT, 0);
    t.dyn_space.unmap(DATA, PAGE_SIZE).unwrap();
    let stub = t.stubs()[0];
    let interrupter = t.context.interrupter();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let pelter = std::thread::spawn(move || {
        let started = Instant::now();
        while stop_rx.recv_timeout(Duration::from_micros(300)).is_err() {
            interrupter.interrupt();
            // Watchdog: a lost interrupt leaves the spinning thread running forever.
            if started.elapsed() > Duration::from_secs(20) {
                let _ = kill(stub, Signal::SIGKILL);
            }
        }
    });
    let (mut syscalls, mut interrupts) = (0, 0);
    for round in 0..400 {
        // The spinning program only ever comes back through an interrupt.
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
            // Injection while a stale interrupt signal may be queued.
            t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
        }
    }
    stop_tx.send(()).unwrap();
    pelter.join().unwrap();
    eprintln!("racing interrupts: {syscalls} syscalls, {interrupts} interrupts");
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
fn a_dead_factory_is_reported_not_waited_for() {
    let t = Setup::new(GETPID_THEN_EXIT);
    let factory = t.address_space.pids()[0];
    kill(factory, Signal::SIGKILL).unwrap();
    let space = t.dyn_space.clone();
    let result = std::thread::spawn(move || space.map(DATA, PAGE_SIZE, 0, Perms::R))
        .join()
        .unwrap();
    match result {
        Err(Error::StubDied { pid, status }) => {
            assert_eq!(pid, factory.as_raw());
            assert_eq!(status, "factory killed by signal 9");
        }
        other => panic!("expected StubDied, got {other:?}"),
    }
}
