//! Tests of the ptrace platform with hand-assembled application code; the tests both
//! platforms share are in `crate::testing::shared`.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::address_space::{inject_into, PtraceAddressSpace};
use super::factory::RseqArea;
use super::Ptrace;
use crate::testing::shared::run_shared_tests;
use crate::testing::{self, *};
use crate::{Access, AddressSpace, CpuState, Error, Exit, MapOp, Perms, PAGE_SIZE};

type Setup = testing::Setup<Ptrace, PtraceAddressSpace>;

impl Processes for PtraceAddressSpace {
    fn pids(&self) -> Vec<Pid> {
        PtraceAddressSpace::pids(self)
    }
}

fn platform(guest: &Guest) -> Ptrace {
    Ptrace::new(guest.memfd.as_fd()).unwrap()
}

/// A ptrace platform, one address space with `code` mapped at [`CODE`], and a context.
fn setup(code: &[u8]) -> Setup {
    let guest = Guest::new();
    let platform = platform(&guest);
    Setup::with(guest, platform, code, |p| {
        PtraceAddressSpace::create(&p.shared).unwrap()
    })
}

impl Setup {
    /// The stubs of the address space (the factory excluded).
    fn stubs(&self) -> Vec<Pid> {
        self.pids()[1..].to_vec()
    }
}

run_shared_tests!(
    setup: setup,
    platform: platform,
    // A tracer cannot see the x86 page-fault error code.
    read: Access::Unknown,
    write: Access::Unknown,
    host_syscall: "ptrace",
);

#[test]
fn syscalls_stop_without_running_and_take_the_sentrys_result() {
    let mut t = setup(GETPID_THEN_EXIT);
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

/// The voluntary context switches of `pid` so far: one per ptrace stop of a stub.
fn voluntary_switches(pid: Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_batch_of_operations_takes_one_stop_of_the_stub() {
    let t = setup(GETPID_THEN_EXIT);
    // Setting up mapped the code from this thread: its stub is registered last.
    let stub = *t.pids().last().unwrap();
    let ops: Vec<MapOp> = (0..6u64)
        .map(|n| MapOp::Map {
            addr: DATA + n * PAGE_SIZE,
            len: PAGE_SIZE,
            file_offset: n * PAGE_SIZE,
            perms: Perms::RW,
        })
        .chain([MapOp::Protect {
            addr: DATA,
            len: 6 * PAGE_SIZE,
            perms: Perms::R,
        }])
        .collect();
    let before = voluntary_switches(stub);
    t.dyn_space.apply(&ops).unwrap();
    assert_eq!(
        voluntary_switches(stub) - before,
        1,
        "one stop for 7 operations"
    );
    let before = voluntary_switches(stub);
    for op in &ops[..3] {
        t.dyn_space.apply(std::slice::from_ref(op)).unwrap();
    }
    assert_eq!(
        voluntary_switches(stub) - before,
        3,
        "one stop per call otherwise"
    );
}

#[test]
fn dropping_the_address_space_kills_factory_and_stubs() {
    let mut t = setup(GETPID_THEN_EXIT);
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
        assert!(reaped(pid), "{pid} is still there");
    }
}

/// The spare factory's pids once the master thread has filled its slot (within 10 s: it
/// normally takes a few milliseconds; the bound only ends a broken test).
fn wait_for_spare(master: &super::factory::FactoryMaster) -> Vec<Pid> {
    for _ in 0..10_000 {
        if let Some(pids) = master.spare_pids() {
            return pids;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("no spare factory after 10 s");
}

#[test]
fn the_spare_factory_is_taken_from_its_slot_and_dies_with_the_platform() {
    let guest = Guest::new();
    let ptrace = platform(&guest);
    drop(PtraceAddressSpace::create(&ptrace.shared).unwrap());
    let spare = wait_for_spare(&ptrace.shared.master);
    let taken = PtraceAddressSpace::create(&ptrace.shared).unwrap();
    assert_eq!(taken.pids(), spare, "the spare, with its prepared stub");
    drop(taken);
    // Taking it asked for the next one, which the platform's end kills.
    let next = wait_for_spare(&ptrace.shared.master);
    assert!(next.iter().all(|&pid| !gone(pid)));
    drop(ptrace);
    for pid in next {
        assert!(reaped(pid), "{pid} is still there");
    }
}

#[test]
fn the_zygote_refills_off_the_takers_cpu_and_factories_get_every_cpu_back() {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    let me = Pid::from_raw(0);
    let all = sched_getaffinity(me).unwrap();
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| all.is_set(c).unwrap())
        .collect();
    if cpus.len() < 2 {
        eprintln!("skipped: this thread may run on one CPU only");
        return;
    }
    let guest = Guest::new();
    let ptrace = platform(&guest);
    drop(PtraceAddressSpace::create(&ptrace.shared).unwrap());
    wait_for_spare(&ptrace.shared.master);
    // The spare is taken on a known CPU: this thread's only one for now (the master
    // thread, started before, keeps every CPU).
    let mut one = CpuSet::new();
    one.set(cpus[0]).unwrap();
    sched_setaffinity(me, &one).unwrap();
    let taken = PtraceAddressSpace::create(&ptrace.shared);
    sched_setaffinity(me, &all).unwrap();
    drop(taken.unwrap());
    let spare = wait_for_spare(&ptrace.shared.master);
    let set = |pid: Pid| {
        let set = sched_getaffinity(pid).unwrap();
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap())
            .collect::<Vec<_>>()
    };
    // The zygote forked the new spare without that CPU; the factory and its prepared stub
    // (which application code would run in) have every CPU again.
    let zygote = ptrace.shared.master.zygote_pid();
    assert_eq!(set(zygote), cpus[1..], "the zygote's CPUs");
    for pid in spare {
        assert_eq!(set(pid), cpus, "CPUs of {pid} (spare factory or its stub)");
    }
}

#[test]
fn the_zygote_sheds_the_sentry_once_and_gives_factories_no_data_of_it() {
    // The zygote sheds before it answers its first request, so it has once a factory exists;
    // code run in a stub of that factory shows the shed zygote still forks working ones.
    let mut t = setup(GETPID_THEN_EXIT);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let zygote = t.platform.shared.master.zygote_pid();
    let ours = std::fs::read_to_string("/proc/self/maps").unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{zygote}/maps")).unwrap();
    // The heap stays only where it holds the factory filter (a page or two of it).
    for name in ["memfd:", "[stack]"] {
        assert!(ours.contains(name), "the test process maps no {name}");
        assert!(
            !maps.contains(name),
            "the zygote still maps {name}:\n{maps}"
        );
    }
    let lines = |m: &str| m.lines().count();
    assert!(lines(&maps) < lines(&ours), "zygote:\n{maps}");
    // The loaded objects' writable data is the zygote's alone: a factory gets no copy
    // (`dc`, VM_DONTCOPY, in the zygote's flags).
    let smaps = std::fs::read_to_string(format!("/proc/{zygote}/smaps")).unwrap();
    let mut writable_files = 0;
    let mut mapping = "";
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 6 && fields[0].contains('-') && fields[5].starts_with('/') {
            mapping = line;
        } else if fields.len() >= 5 && fields[0].contains('-') {
            mapping = "";
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            let perms = mapping.split_whitespace().nth(1).unwrap_or("");
            if perms.contains('w') {
                writable_files += 1;
                assert!(flags.contains(" dc"), "{mapping} is copied to factories");
            }
        }
    }
    assert!(
        writable_files > 0,
        "no writable file mapping in the zygote:\n{smaps}"
    );
}

#[test]
fn a_spare_factory_comes_with_a_stub_that_dies_with_it_unused() {
    let guest = Guest::new();
    let ptrace = platform(&guest);
    // The first address space gets a factory forked on demand; the second the spare one,
    // forked meanwhile with the stub of a first thread ready.
    let first = PtraceAddressSpace::create(&ptrace.shared).unwrap();
    assert_eq!(first.pids().len(), 1, "factory alone");
    let second = PtraceAddressSpace::create(&ptrace.shared).unwrap();
    let pids = second.pids();
    assert_eq!(pids.len(), 2, "factory and its prepared stub");
    assert!(pids.iter().all(|&pid| !gone(pid)));
    drop(second);
    for pid in pids {
        assert!(reaped(pid), "{pid} is still there");
    }
    // A prepared stub is handed out like a new one: seized, it runs injected calls.
    let third = PtraceAddressSpace::create(&ptrace.shared).unwrap();
    let prepared = third.pids()[1];
    assert_eq!(third.spawn_stub().unwrap().pid, prepared);
    super::address_space::seize(prepared).unwrap();
    let closed = inject_into(prepared, "close", libc::SYS_close, [1, 0, 0, 0, 0, 0]);
    // The stub closed its factory socket itself before pausing.
    assert!(
        matches!(
            closed,
            Err(Error::Injected {
                errno: libc::EBADF,
                ..
            })
        ),
        "{closed:?}"
    );
}

#[test]
fn a_stub_dies_with_its_host_thread() {
    let t = setup(GETPID_THEN_EXIT);
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
    let mut t = setup(GETPID_LOOP);
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

/// A stub that dies is reaped by the wait that sees it; its pid may be reused at once, so
/// its address space must forget it rather than SIGKILL that pid when it is released.
#[test]
fn a_dead_stub_is_forgotten_not_signalled_again() {
    let mut t = setup(GETPID_LOOP);
    let mut state = CpuState::new(CODE, 0);
    assert_eq!(t.switch(&mut state), Exit::Syscall);
    let stub = t.stubs()[0];
    kill(stub, Signal::SIGKILL).unwrap();
    state.regs.rax = 1;
    match t.context.switch(&t.dyn_space, &mut state) {
        Err(Error::StubDied { pid, .. }) => assert_eq!(pid, stub.as_raw()),
        other => panic!("expected StubDied, got {other:?}"),
    }
    assert!(!t.stubs().contains(&stub), "{:?}", t.stubs());
    // The same through an injection: kill the thread's next stub, then map.
    t.dyn_space.map(DATA, PAGE_SIZE, 0, Perms::R).unwrap();
    let next = t.stubs()[0];
    assert_ne!(next, stub);
    kill(next, Signal::SIGKILL).unwrap();
    assert!(matches!(
        t.dyn_space.map(DATA, PAGE_SIZE, 0, Perms::R),
        Err(Error::StubDied { .. })
    ));
    assert!(t.stubs().is_empty(), "{:?}", t.stubs());
}

#[test]
fn a_dead_factory_is_reported_not_waited_for() {
    let t = setup(GETPID_THEN_EXIT);
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

/// `Seccomp:` (0 none, 2 filter) and `Seccomp_filters:` of process `pid`.
fn seccomp_status(pid: Pid) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("Seccomp:"), field("Seccomp_filters:"))
}

/// Injects `nr` with `args` in a fresh stub of `t`'s address space traced by this thread and
/// returns the outcome.
fn inject_in_new_stub(t: &Setup, nr: libc::c_long, args: [u64; 6]) -> (Pid, crate::Result<u64>) {
    let stub = t.address_space.spawn_stub().unwrap().pid;
    super::address_space::seize(stub).unwrap();
    (stub, inject_into(stub, "test call", nr, args))
}

#[test]
fn a_stub_making_a_call_outside_its_filter_is_killed_by_sigsys() {
    let t = setup(GETPID_THEN_EXIT);
    let killed = format!("killed by signal {}", libc::SIGSYS);
    let forbidden: [(&str, libc::c_long, [u64; 6]); 4] = [
        ("getppid", libc::SYS_getppid, [0; 6]),
        (
            "openat",
            libc::SYS_openat,
            [libc::AT_FDCWD as u64, 0, 0, 0, 0, 0],
        ),
        // Allowed calls with arguments the sentry never injects.
        ("close(0)", libc::SYS_close, [0; 6]),
        (
            "anonymous mmap",
            libc::SYS_mmap,
            [
                0,
                PAGE_SIZE,
                (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        ),
    ];
    for (what, nr, args) in forbidden {
        let (stub, result) = inject_in_new_stub(&t, nr, args);
        match result {
            Err(Error::StubDied { pid, status }) => {
                assert_eq!(pid, stub.as_raw(), "{what}");
                assert_eq!(status, killed, "{what}");
            }
            other => panic!("{what}: expected the stub killed by SIGSYS, got {other:?}"),
        }
    }
    // The calls the sentry does inject still work, in a stub made after those deaths (the
    // factory is alive and well).
    let (_, closed) = inject_in_new_stub(&t, libc::SYS_close, [1, 0, 0, 0, 0, 0]);
    assert!(
        matches!(
            closed,
            Err(Error::Injected {
                errno: libc::EBADF,
                ..
            })
        ),
        "{closed:?}"
    );
    t.dyn_space.map(DATA, PAGE_SIZE, 0x1000, Perms::RX).unwrap();
    t.dyn_space.unmap(DATA, PAGE_SIZE).unwrap();
}

#[test]
fn factories_and_stubs_carry_only_the_stub_filter() {
    // A platform made before the "sentry" (here: this thread) installs a filter of its own,
    // as the sandbox does it.
    let guest = Guest::new();
    guest.write(0, GETPID_THEN_EXIT);
    let ptrace = platform(&guest);
    let pids = std::thread::spawn(move || {
        let allow_all = crate::stub_filter::program(&[], libc::SECCOMP_RET_ALLOW);
        // SAFETY: `allow_all` lives across the call; it filters this thread alone (no TSYNC).
        assert!(unsafe { crate::stub_filter::install_raw(&allow_all) });
        assert_eq!(seccomp_status(nix::unistd::gettid()), (2, 1));
        let space = PtraceAddressSpace::create(&ptrace.shared).unwrap();
        let dyn_space: Arc<dyn AddressSpace> = space.clone();
        dyn_space.map(CODE, PAGE_SIZE, 0, Perms::RX).unwrap();
        let mut context = crate::Platform::new_context(&ptrace).unwrap();
        let mut state = CpuState::new(CODE, 0);
        // exit(getpid()) runs under PTRACE_SYSEMU: neither call reaches the stub's filter.
        assert_eq!(
            context.switch(&dyn_space, &mut state).unwrap(),
            Exit::Syscall
        );
        assert_eq!(
            context.switch(&dyn_space, &mut state).unwrap(),
            Exit::Syscall
        );
        assert_eq!(state.regs.orig_rax, libc::SYS_exit as u64);
        let pids = space.pids();
        for &pid in &pids {
            assert_eq!(seccomp_status(pid), (2, 1), "process {pid}");
        }
        pids
    })
    .join()
    .unwrap();
    assert_eq!(pids.len(), 2, "factory and stub");
}

#[test]
fn a_stub_cannot_make_its_command_page_writable() {
    let t = setup(GETPID_THEN_EXIT);
    // The page is the sentry's sealed file, mapped read-only: even an mprotect the filter
    // lets through (the one the sentry injects) cannot add write access.
    let page = crate::stub::CMD_PAGE;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let (_, result) = inject_in_new_stub(&t, libc::SYS_mprotect, [page, PAGE_SIZE, rw, 0, 0, 0]);
    assert!(
        matches!(
            result,
            Err(Error::Injected {
                errno: libc::EACCES,
                ..
            })
        ),
        "{result:?}"
    );
    // Batches, which read the page, still work.
    let ops = [
        MapOp::Map {
            addr: DATA,
            len: PAGE_SIZE,
            file_offset: 0x1000,
            perms: Perms::RX,
        },
        MapOp::Protect {
            addr: DATA,
            len: PAGE_SIZE,
            perms: Perms::R,
        },
        MapOp::Unmap {
            addr: DATA,
            len: PAGE_SIZE,
        },
    ];
    t.dyn_space.apply(&ops).unwrap();
}
