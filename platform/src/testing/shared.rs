//! Tests both platforms pass the same way. Each takes the platform's fixture maker `setup`
//! (code in, [`Setup`] out); `ptrace/tests.rs` and `systrap/tests.rs` run each one as a test
//! of their own.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

use super::*;
use crate::{Access, BatchError, Error, MapOp, SignalInfo};

/// The fixture maker of one platform.
pub(crate) type Maker<P, A> = fn(&[u8]) -> Setup<P, A>;

/// What the tests need of an address space type.
pub(crate) trait TestSpace: AddressSpace + Processes + 'static {}

impl<T: AddressSpace + Processes + 'static> TestSpace for T {}

fn expect_fault(exit: Exit) -> (u64, Access, SignalInfo) {
    match exit {
        Exit::Fault { addr, access, info } => (addr, access, info),
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn expect_signal(exit: Exit) -> SignalInfo {
    match exit {
        Exit::Signal(info) => info,
        other => panic!("expected a signal, got {other:?}"),
    }
}

/// A read of an unmapped page faults (reported as `read`: the access the platform can tell)
/// and is retried once the page is mapped.
pub(crate) fn fault_on_unmapped_address_then_retry_after_map<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
    read: Access,
) {
    let mut t = setup(&load(DATA));
    t.guest.write(0x1000, &0xdead_beef_u64.to_le_bytes());
    let mut state = CpuState::new(CODE, 0);
    let (addr, access, info) = expect_fault(t.switch(&mut state));
    assert_eq!(addr, DATA);
    assert_eq!(access, read);
    assert_eq!(info.signo, libc::SIGSEGV);
    assert_eq!(info.code, SEGV_MAPERR);
    assert_eq!(state.regs.rip, CODE, "the faulting instruction is retried");
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 0xdead_beef);
}

/// A write to a read-only page faults (reported as `write`), unmapping makes it a missing
/// page, a writable mapping lets it through.
pub(crate) fn write_to_read_only_page_faults_and_unmap_removes_the_page<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
    write: Access,
) {
    let mut t = setup(&store(DATA, 7));
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::R).unwrap();
    let mut state = CpuState::new(CODE, 0);
    let (addr, access, info) = expect_fault(t.switch(&mut state));
    assert_eq!((addr, access, info.code), (DATA, write, SEGV_ACCERR));
    t.dyn_space.unmap(DATA, PAGE_SIZE).unwrap();
    let (addr, _, info) = expect_fault(t.switch(&mut state));
    assert_eq!((addr, info.code), (DATA, SEGV_MAPERR));
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::RW).unwrap();
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 7);
}

/// `protect` changes a mapping's permissions in place: a write to a page made read-only
/// faults as an access error (not a missing page), and made writable again it goes through to
/// the same memory-file page. A range with an unmapped page is refused.
pub(crate) fn protect_changes_permissions_in_place<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
    write: Access,
) {
    let mut t = setup(&store(DATA, 7));
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::RW).unwrap();
    t.dyn_space.protect(DATA, PAGE_SIZE, Perms::R).unwrap();
    let mut state = CpuState::new(CODE, 0);
    let (addr, access, info) = expect_fault(t.switch(&mut state));
    assert_eq!((addr, access, info.code), (DATA, write, SEGV_ACCERR));
    t.dyn_space.protect(DATA, PAGE_SIZE, Perms::RW).unwrap();
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 7);
    let mut stored = [0u8; 8];
    t.guest.read(0x1000, &mut stored);
    assert_eq!(u64::from_le_bytes(stored), 7);
    let refused = t.dyn_space.protect(DATA, 2 * PAGE_SIZE, Perms::R);
    assert!(
        matches!(
            refused,
            Err(Error::Injected {
                errno: libc::ENOMEM,
                ..
            })
        ),
        "{refused:?}"
    );
}

/// `apply` runs its operations in order (a later map of a page replaces an earlier one),
/// stops at the first that fails and reports that one's index and error: a refused range,
/// or a host failure in the middle of a batch. More operations than one host round trip
/// takes are split, in order.
pub(crate) fn apply_runs_in_order_and_stops_at_the_failing_operation<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
) {
    let mut t = setup(&load(DATA));
    for page in 1..=4u64 {
        t.guest
            .write(page * PAGE_SIZE, &(0x100 + page).to_le_bytes());
    }
    let map = |file_page: u64| MapOp::Map {
        addr: DATA,
        len: PAGE_SIZE,
        file_offset: file_page * PAGE_SIZE,
        perms: Perms::R,
    };
    let unmapped_protect = MapOp::Protect {
        addr: DATA + PAGE_SIZE,
        len: PAGE_SIZE,
        perms: Perms::R,
    };
    let read = |t: &mut Setup<P, A>| {
        let mut state = CpuState::new(CODE, 0);
        assert_eq!(t.switch(&mut state), Exit::Syscall);
        state.regs.orig_rax
    };
    // The protect fails (nothing is mapped there): the maps before it ran, the one after
    // did not.
    let ops = [map(1), map(2), unmapped_protect, map(3)];
    match t.dyn_space.apply(&ops) {
        Err(BatchError {
            index: 2,
            error:
                Error::Injected {
                    errno: libc::ENOMEM,
                    ..
                },
        }) => {}
        other => panic!("expected the protect to fail, got {other:?}"),
    }
    assert_eq!(read(&mut t), 0x102);
    // A range the platform refuses itself, after one it runs.
    let beyond = MapOp::Unmap {
        addr: crate::MAX_USER_ADDRESS - PAGE_SIZE,
        len: 2 * PAGE_SIZE,
    };
    match t.dyn_space.apply(&[map(3), beyond, map(4)]) {
        Err(BatchError { index: 1, .. }) => {}
        other => panic!("expected the range to be refused, got {other:?}"),
    }
    assert_eq!(read(&mut t), 0x103);
    // Many operations, the last map wins; then an unmap in the same batch is a missing page.
    let many: Vec<MapOp> = (0..400u64).map(|n| map(1 + n % 4)).collect();
    t.dyn_space.apply(&many).unwrap();
    assert_eq!(read(&mut t), 0x104);
    let unmap = MapOp::Unmap {
        addr: DATA,
        len: PAGE_SIZE,
    };
    t.dyn_space.apply(&[map(1), unmap]).unwrap();
    let mut state = CpuState::new(CODE, 0);
    let (addr, _, info) = expect_fault(t.switch(&mut state));
    assert_eq!((addr, info.code), (DATA, SEGV_MAPERR));
}

/// Application code that jumps into the stub's batch loop with a `mmap` in its registers
/// gets a system call the sentry handles, never a host `mmap`: the batch site is the
/// sentry's only while it injects.
pub(crate) fn application_code_cannot_run_the_batch_loop<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    let mut code = vec![
        0xb8, 9, 0, 0, 0, // mov eax, SYS_mmap
        0xbf, 0, 0, 0x60, 0, // mov edi, 0x600000
        0xbe, 0, 0x10, 0, 0, // mov esi, 4096
        0xba, 3, 0, 0, 0, // mov edx, PROT_READ | PROT_WRITE
        0x41, 0xba, 0x11, 0, 0, 0, // mov r10d, MAP_SHARED | MAP_FIXED
        0x45, 0x31, 0xc0, // xor r8d, r8d
        0x45, 0x31, 0xc9, // xor r9d, r9d
        0x45, 0x31, 0xe4, // xor r12d, r12d
        0x48, 0xb9, // movabs rcx, the batch loop
    ];
    code.extend_from_slice(&crate::stub::batch_entry().to_le_bytes());
    code.extend_from_slice(&[0xff, 0xe1]); // jmp rcx
    let mut t = setup(&code);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, libc::SYS_mmap as u64);
    assert_eq!(state.regs.rip, crate::stub::batch_site());
}

pub(crate) fn ud2_is_sigill_and_int3_is_sigtrap<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    let mut t = setup(UD2);
    let mut state = CpuState::new(CODE, 0);
    let info = expect_signal(t.switch(&mut state));
    assert_eq!((info.signo, info.addr), (libc::SIGILL, CODE));
    t.guest.write(0, INT3);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(expect_signal(t.switch(&mut state)).signo, libc::SIGTRAP);
    assert_eq!(state.regs.rip, CODE + 1);
    t.guest.write(0, DIVIDE_BY_ZERO);
    let mut state = CpuState::new(CODE, 0);
    let info = expect_signal(t.switch(&mut state));
    assert_eq!((info.signo, info.addr), (libc::SIGFPE, CODE + 2));
}

pub(crate) fn general_protection_fault_is_a_signal_not_a_fault<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
) {
    let mut t = setup(NON_CANONICAL_LOAD);
    let mut state = CpuState::new(CODE, 0);
    let info = expect_signal(t.switch(&mut state));
    assert_eq!((info.signo, info.code), (libc::SIGSEGV, libc::SI_KERNEL));
}

/// A system call through the 32-bit ABI (`int 0x80`) is refused with the general-protection
/// SIGSEGV, `rip` at the instruction and rax untouched, and the stub lives on: never an
/// [`Exit::Syscall`] that the sentry would run as the 64-bit call of the same number.
pub(crate) fn int80_is_refused_with_sigsegv<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    // `mov eax, 20; int 0x80`, then a 64-bit `syscall` to show the stub still runs.
    let mut t = setup(&[0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0x0f, 0x05]);
    let mut state = CpuState::new(CODE, 0);
    let info = expect_signal(t.switch(&mut state));
    assert_eq!(
        (info.signo, info.code, info.addr),
        (libc::SIGSEGV, libc::SI_KERNEL, 0)
    );
    assert_eq!((state.regs.rip, state.regs.rax), (CODE + 5, 20));
    state.regs.rip = CODE + 7;
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 20);
}

/// A call of the legacy vsyscall page's `time` entry comes back as [`Exit::Vsyscall`] with
/// the number and arguments, the host having skipped the call and emulated its `ret`.
pub(crate) fn a_vsyscall_is_reported_as_one_returning_to_its_caller<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
) {
    let vsyscall = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains("[vsyscall]");
    if !vsyscall {
        eprintln!("SKIPPED: the host has no vsyscall page (vsyscall=none)");
        return;
    }
    // mov $0xffffffffff600400,%rax (time); call *%rax
    let mut code = vec![0x48, 0xb8];
    code.extend_from_slice(&(crate::VSYSCALL_PAGE + 0x400).to_le_bytes());
    code.extend_from_slice(&[0xff, 0xd0]);
    let mut t = setup(&code);
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::RW).unwrap();
    let mut state = CpuState::new(CODE, DATA + PAGE_SIZE);
    state.regs.rdi = DATA;
    assert_eq!(t.switch(&mut state), Exit::Vsyscall);
    assert_eq!(state.regs.orig_rax, 201);
    assert_eq!(state.regs.rdi, DATA);
    // The host emulated the `ret`: back at the caller, the return address popped.
    assert_eq!(state.regs.rip, CODE + 12);
    assert_eq!(state.regs.rsp, DATA + PAGE_SIZE);
}

/// The fs base is loaded exactly, and a new base set by the sentry is seen on the next run.
pub(crate) fn fs_base_is_loaded_exactly<P: Platform + 'static, A: TestSpace>(setup: Maker<P, A>) {
    let mut t = setup(LOAD_FS0);
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

pub(crate) fn fp_state_is_loaded_and_pulled<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    let mut t = setup(FP_PROGRAM);
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

/// A writer thread maps a page and stores into it; a reader thread with its own context in
/// the same address space sees both the mapping and the value.
pub(crate) fn threads_of_one_address_space_share_memory_and_mappings<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
) {
    const SHARED: u64 = 0x70_0000;
    let value = 0x1122_3344_5566_7788;
    let reader_offset = 0x100;
    let t = setup(&store(SHARED, value));
    t.guest.write(reader_offset, &load(SHARED));
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

/// Creates every process of `t`'s address space for this thread (an injection and a first
/// switch of `state`, which must stop at a system call) and returns them, for watchdogs.
fn start_processes<P: Platform, A: TestSpace>(
    t: &mut Setup<P, A>,
    state: &mut CpuState,
) -> Vec<nix::unistd::Pid> {
    t.dyn_space.unmap(DATA, PAGE_SIZE).unwrap();
    assert_eq!(t.switch(state), Exit::Syscall);
    t.pids()
}

pub(crate) fn interrupt_stops_a_spinning_thread<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    const SPIN_AT: u64 = 0x100;
    let mut t = setup(GETPID_LOOP);
    t.guest.write(SPIN_AT, SPIN);
    let pids = start_processes(&mut t, &mut CpuState::new(CODE, 0));
    let mut state = CpuState::new(CODE + SPIN_AT, 0);
    let interrupter = t.context.interrupter();
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
    assert!((CODE + SPIN_AT..CODE + SPIN_AT + 2).contains(&state.regs.rip));
}

pub(crate) fn interrupt_before_switch_returns_without_running<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
) {
    let mut t = setup(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    t.context.interrupter().interrupt();
    assert_eq!(t.switch(&mut state), Exit::Interrupted);
    assert_eq!(state.regs.rip, CODE);
    assert!(state.fp.dirty, "nothing was loaded");
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    assert_eq!(state.regs.orig_rax, 39);
}

/// Interrupts sent every 300 µs while the thread alternates between spinning code, system
/// calls and injected maps: the spinning code always comes back, nothing hangs.
pub(crate) fn interrupts_racing_with_syscalls_and_injection_are_never_lost<
    P: Platform + 'static,
    A: TestSpace,
>(
    setup: Maker<P, A>,
) {
    const SPIN_AT: u64 = 0x100;
    let mut t = setup(GETPID_LOOP);
    t.guest.write(SPIN_AT, SPIN);
    let mut looping = CpuState::new(CODE, 0);
    let mut spinning = CpuState::new(CODE + SPIN_AT, 0);
    let pids = start_processes(&mut t, &mut looping);
    let interrupter = t.context.interrupter();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let pelter = std::thread::spawn(move || {
        let started = Instant::now();
        while stop_rx.recv_timeout(Duration::from_micros(300)).is_err() {
            interrupter.interrupt();
            // Watchdog: a lost interrupt leaves the spinning thread running forever.
            if started.elapsed() > Duration::from_secs(20) {
                for &pid in &pids {
                    let _ = kill(pid, Signal::SIGKILL);
                }
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

pub(crate) fn released_address_space_refuses_work<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    let mut t = setup(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let pids = t.pids();
    t.dyn_space.release();
    assert!(pids.iter().all(|&pid| reaped(pid)));
    assert!(matches!(
        t.dyn_space.map(DATA, PAGE_SIZE, 0, Perms::R),
        Err(Error::Host { .. })
    ));
    assert!(t.context.switch(&t.dyn_space, &mut state).is_err());
}

pub(crate) fn one_context_runs_in_several_address_spaces<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
) {
    let mut t = setup(&load(DATA));
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

/// A context of another platform instance (made by `other` over the same memory file)
/// refuses this one's address space.
pub(crate) fn foreign_address_space_is_refused<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
    other: fn(&Guest) -> P,
) {
    let t = setup(GETPID_THEN_EXIT);
    let other = other(&t.guest);
    let mut context = other.new_context().unwrap();
    let mut state = CpuState::new(CODE, 0);
    assert!(matches!(
        context.switch(&t.dyn_space, &mut state),
        Err(Error::Unavailable(..))
    ));
}

/// The platform names its host system calls (`expected` among them), each with a reason.
pub(crate) fn host_syscalls_name_a_reason_each<P: Platform + 'static, A: TestSpace>(
    setup: Maker<P, A>,
    expected: &str,
) {
    let t = setup(&[]);
    let calls = t.platform.host_syscalls();
    assert!(calls.iter().any(|(name, _)| *name == expected));
    assert!(calls
        .iter()
        .all(|(name, why)| !name.is_empty() && !why.is_empty()));
}

/// Runs every test of this module as a `#[test]` of the calling module, with the platform's
/// fixture maker `setup`, its constructor `platform` (from a [`Guest`]), the [`Access`] it
/// reports for a faulting read and write, and one host system call it must list.
macro_rules! run_shared_tests {
    (
        setup: $setup:path,
        platform: $platform:path,
        read: $read:expr,
        write: $write:expr,
        host_syscall: $host_syscall:expr $(,)?
    ) => {
        run_shared_tests!(@each $setup;
            ud2_is_sigill_and_int3_is_sigtrap,
            apply_runs_in_order_and_stops_at_the_failing_operation,
            application_code_cannot_run_the_batch_loop,
            general_protection_fault_is_a_signal_not_a_fault,
            int80_is_refused_with_sigsegv,
            a_vsyscall_is_reported_as_one_returning_to_its_caller,
            fs_base_is_loaded_exactly,
            fp_state_is_loaded_and_pulled,
            threads_of_one_address_space_share_memory_and_mappings,
            interrupt_stops_a_spinning_thread,
            interrupt_before_switch_returns_without_running,
            interrupts_racing_with_syscalls_and_injection_are_never_lost,
            released_address_space_refuses_work,
            one_context_runs_in_several_address_spaces,
        );

        #[test]
        fn fault_on_unmapped_address_then_retry_after_map() {
            $crate::testing::shared::fault_on_unmapped_address_then_retry_after_map($setup, $read);
        }

        #[test]
        fn write_to_read_only_page_faults_and_unmap_removes_the_page() {
            $crate::testing::shared::write_to_read_only_page_faults_and_unmap_removes_the_page(
                $setup, $write,
            );
        }

        #[test]
        fn protect_changes_permissions_in_place() {
            $crate::testing::shared::protect_changes_permissions_in_place($setup, $write);
        }

        #[test]
        fn foreign_address_space_is_refused() {
            $crate::testing::shared::foreign_address_space_is_refused($setup, $platform);
        }

        #[test]
        fn host_syscalls_name_a_reason_each() {
            $crate::testing::shared::host_syscalls_name_a_reason_each($setup, $host_syscall);
        }
    };
    (@each $setup:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testing::shared::$name($setup)
            }
        )*
    };
}
pub(crate) use run_shared_tests;
