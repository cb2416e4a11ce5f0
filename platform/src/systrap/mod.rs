//! The systrap platform: application system calls trap into a signal handler in the stub,
//! which hands the registers to the sentry through shared memory; no ptrace stop per call.
//!
//! # Shape
//! - Address spaces and factories are the ptrace platform's ([`crate::ptrace`]), the stub code is
//!   the common [`crate::stub`]; a
//!   [`SystrapAddressSpace`](address_space::SystrapAddressSpace) wraps a ptrace address
//!   space. `map`/`unmap` are the ptrace platform's: `mmap`/`munmap` injected by ptrace into
//!   a stub traced by the calling thread, so they are complete when they return.
//! - Each [`Context`] gets its own **systrap stub** per address space. The context's thread
//!   seizes a fresh stub once, points it at the stub's set-up code with its message region's
//!   address and file offset in registers, and detaches: the stub itself maps its region,
//!   sets the alternate signal stack, the handlers for SIGSYS, SIGSEGV, SIGBUS, SIGILL,
//!   SIGFPE, SIGTRAP and SIGUSR2, then the seccomp filter of `filter.rs`, all read from the
//!   read-only setup page (`stub::seal_systrap_setup`, sealed before the zygote forks), and
//!   parks in its handler; a failed step ends it with `stub::SETUP_FAILED`. The spare
//!   factory's stub is set up so by the factory master thread, with a region of the pool
//!   (`context::SetUpStubs`), and the first context to run in its address space adopts it:
//!   a `fork`'s child thread waits for no set-up.
//! - A switch writes the registers into the stub's message region (`sysmsg.rs`), flips the
//!   state word to RESUME, and waits for EVENT. The handler returns into application code
//!   (straight from the region after a trapped system call, else through its signal frame
//!   and `rt_sigreturn`: see "Leaving the handler"). The next system
//!   call (seccomp `SECCOMP_RET_TRAP`), fault, or interrupt (SIGUSR2 from the sentry) enters
//!   the handler again, which saves the frame's registers and flips the state to EVENT.
//! - Patched system calls (`crate::patch`) skip the trap: the stub's fast entry, reached by
//!   a jump from the application, saves the registers into the region itself (event kind
//!   `KIND_FAST_SYSCALL`) and hands off through the same code as the handler; a stub's gs
//!   base is its region while the application's gs base is 0 (see `context.rs`).
//! - A side that waits sleeps on the state word with `FUTEX_WAIT`, and `FUTEX_WAKE` goes
//!   only to a side that said it sleeps. The sentry sleeps on the value it last saw (a fresh
//!   stub's region says RESUME from its detach until its first EVENT), so no value of the
//!   word, including one the application writes, turns its wait into a busy loop. By default each stub is kept on the CPU its sentry
//!   thread runs on, so that a hand-off is a same-CPU switch: on virtual machines waking a
//!   halted vCPU costs tens to hundreds of microseconds.
//! - When the sentry may use more than one CPU, a context also tries *polling*: the stub is
//!   let loose on every CPU and both sides poll the state word for a bounded time
//!   ([`Tuning::spin`]) before sleeping. A hand-off between two running CPUs costs well under
//!   a microsecond, against several for a same-CPU switch. Polling only pays while the other
//!   side answers within the budget and really runs on another CPU; so every hand-off in which
//!   either side had to sleep after all turns polling off for that stub for a number of
//!   hand-offs that doubles with each failure ([`MAX_BACKOFF`]) and halves only after a run
//!   of successes (a failed poll costs far more than a successful one saves), and the stub
//!   is bound to the sentry's CPU again meanwhile. The log tells the failures apart: *long*
//!   ones, where a side slept because the other was busy (the sentry on a long call, the
//!   application computing), and those where the other side was not running. The sentry
//!   tells them apart by the stub's count of resumes taken (`layout::OFF_PICKUPS`, on a
//!   line of its own, read only when the sentry's poll runs out). Long hand-offs back off too: leaving them out, so that a fresh process
//!   kept polling through its early page faults, execs and computing, made `python3 -S -c
//!   pass` twice as slow and the pipe ping-pong a third to a half slower on the development VM (busy with
//!   other builds), every sleep in a polling hand-off being a cross-CPU wake-up that waits
//!   for the other CPU's current task. A stub backs off at once in a fresh process because
//!   polling does not pay there. A poll that meets a preempted other side within the
//!   budget still succeeds: failing those too made a trapped `getpid` on the same busy VM
//!   slower (7.5-7.9 µs sleeping against 5.9 polling slowly). An idle sandbox therefore polls for at most one budget
//!   per side before it sleeps, and a busy machine falls back to same-CPU hand-offs. Each
//!   stub logs its hand-offs, the polling ones (long and failed among them) and those in
//!   which the sentry slept at debug level when it goes (`runsc-rs do --debug-log FILE`).
//!   The first poll after a back-off wakes a stub that was told to sleep, on the other
//!   CPU; a wake-up slower than the budget there (a halted or busy vCPU) is neither success
//!   nor failure (`context::Judged::Waking`): judged failed, it kept a stub at
//!   [`MAX_BACKOFF`] for good beside an occasional CPU hog. Not handled yet: on a machine
//!   with more runnable tasks than CPUs (load average 8-9 on the 2-vCPU VM) polls succeed
//!   yet a trapped `getpid` took 10-14.6 µs polling against 6.3-6.7 µs with polling turned
//!   off (same-CPU sleeping hand-offs): both sides that polled wait for their CPU, though
//!   the resume-to-event part of a polled hand-off stays near 1.5 µs, so timing successful
//!   polls alone does not show it.
//!
//! # Cost of a trapped system call
//! The trap itself bounds what the hand-off can save. On the development VM (AMD EPYC
//! under nested virtualisation, AVX-512 state) a seccomp `SIGSYS` and the handler's
//! `rt_sigreturn`, in one process with no hand-off at all, take 2.25 µs of CPU (delivery
//! 1.3 µs, `rt_sigreturn` 0.95 µs; native `getpid` 0.14 µs); a hand-off that polls adds a
//! few hundred nanoseconds, one that sleeps two context switches between processes (several
//! microseconds there). Patched system calls take neither the signal nor the return.
//!
//! Measured from both sides with time-stamp counter stamps (a test build, medians of 20,000
//! polled hand-offs on the same VM, busy with other builds), a trapped `getpid` from
//! `syscall(SYS_getpid)` took 1.95-2.5 µs: the application's `syscall` to the handler's
//! first instruction, seccomp and `SIGSYS` delivery included, 1.5-1.6 µs; the handler's
//! return (checks, `xrstor`, bases, flags) 0.15-0.25 µs; each way of the hand-off, from
//! the store of the state word to the other side's load, 0.05-0.08 µs in one stretch of
//! the session and 0.25-0.28 µs in another (the two vCPUs' placement on the host); the
//! sentry between two switches (accounting, dispatch, the switch's own bookkeeping)
//! 0.13-0.24 µs. A patched call took 0.35-0.4 µs in all, or 0.95-0.98 µs in the slow
//! stretch. When polls fail and a side sleeps, each way costs 2-2.7 µs instead, and a stub
//! backed off to [`MAX_BACKOFF`] on a busy machine rarely polls again (its retry pays a
//! cross-CPU wake-up).
//!
//! The sentry's part between two switches, sampled with `perf` (a later stretch, the machine
//! loaded, so sleeping hand-offs; per trapped `getpid`, CPU time): about 0.24 µs, of which
//! the waiting side of the switch 50 ns, the rest of the switch (registers in and out,
//! placement, the resume) 45 ns, the task's run loop 40 ns, the two monotonic clock reads of
//! CPU-time accounting 40 ns (the largest single item; a TSC-based clock would halve it),
//! dispatch, seccomp gate and the handler 30 ns, the accounting's own arithmetic 25 ns. A
//! switch no longer upgrades the address space's weak reference and takes its lock to see
//! whether it was released (a flag of its own, ~10 ns), and the task clock is a sequence
//! lock (plain stores instead of two mutex cycles per switch). The stub's return path
//! (`xrstor`, base writes, the window) was 0.3 µs of the stub's own samples there.
//!
//! Since then: `wrfsbase` and `wrgsbase` cost 18-50 ns each on that VM (`rdfsbase` 2-4 ns),
//! so the return writes a base only where it differs from the thread's, which after a trap
//! it nearly never does; CPU-time accounting reads the sandbox's TSC clock (an unfenced
//! `rdtsc`, 14-24 ns there) instead of the host's vDSO `clock_gettime` (35-60 ns) twice per
//! switch; and a switch makes two locked instructions fewer (the interrupter's flag).
//!
//! # Cache lines
//! A polled hand-off costs what moving cache lines between the two CPUs costs, so the
//! region is laid out and written to move few of them (`layout`): the state word and the
//! sleeping flags have their *control line* to themselves, so the writes a side makes
//! before it flips the state never pull the line the other side polls away from it and
//! back; and both sides write a register or field only when its value changed (the
//! sentry's `Region::store_regs`, the stub's save), so a line neither side changed stays
//! valid in both caches and a `getpid` moves little more than the control line and the
//! line with rax. The sentry's first polls come before its first look at the clock.
//!
//! # Leaving the handler
//! `rt_sigreturn` is 0.95 µs of the 2.25 above, so after a trapped system call (SIGSYS) the
//! handler returns the way the fast entry of patched calls does, without it (the stub code in
//! `crate::stub`, `.Lsystrap_return` and `runsc_systrap_return_window`). On the same VM,
//! natively on the thread CPU clock, a SIGSYS with such a return costs 1.65 µs against 2.18
//! with `rt_sigreturn` (a C program that traps getpid with seccomp and returns from its
//! handler each way).
//! - **Signal mask.** `rt_sigreturn` would restore the frame's `uc_sigmask`. SIGSYS's handler
//!   is installed with `SA_NODEFER` and an empty `sa_mask` (the setup page's second
//!   `sigaction`), so while it runs the thread's mask *is* the mask the application code ran
//!   with, by construction, and leaving by a jump keeps it. The other handled signals (faults,
//!   SIGUSR2) keep blocking every signal and always leave through `rt_sigreturn`.
//! - **Interrupts.** With nothing blocked, the sentry's SIGUSR2 can reach the stub inside its
//!   own code. The handler tells the cases apart by the interrupted instruction pointer: in the
//!   *return window* (the last instructions before the jump, where FP state and bases are the
//!   application's and its registers are the region's) the frame gets the region's registers
//!   and the interrupt is an event at the application's resume point; anywhere else in the
//!   systrap code the stub is on its way to the sentry or back, so the signal is noted in the
//!   region (`OFF_INTERRUPTED`) and dropped, and the first instruction of the window (or the
//!   slow path, after blocking) reports a noted interrupt as an event before returning (a
//!   note that arrived before the event it rode with costs one spurious `Exit::Interrupted`).
//!   No interrupt is lost between the last look at the note and the return. The fast entry of
//!   patched calls shares the window and the note.
//! - **When the fast return is not taken** (then the handler first blocks every signal with
//!   `rt_sigprocmask`, looks at the note, and returns through the frame as before; on a host
//!   without FSGSBASE SIGSYS's handler blocks every signal like the others and never takes
//!   the fast return, so it skips that `rt_sigprocmask`): the
//!   sentry set new FP state (`OFF_FP_DIRTY`: the kernel validates it in `rt_sigreturn`),
//!   TF is set (single-step: the trap must come after the first application instruction),
//!   the host has no FSGSBASE or the application's gs base is not 0 (the jump goes through
//!   gs, which must be the region), or the frame's FP area is not an XSAVE image (no
//!   `FP_XSTATE_MAGIC1`, not 64-byte aligned).
//! - **FP state.** The kernel saved it in the frame with `XSAVE` (standard format) and gave the
//!   handler a fresh one, every component in its init state (PKRU excepted); `xrstor`
//!   loads the frame's image with the features the kernel recorded
//!   (`_fpx_sw_bytes.xfeatures`), but only those the image holds in use (`XSTATE_BV`), SSE
//!   (MXCSR) and PKRU: a component the image says is in its init state already is, in the
//!   handler (`layout::XFEATURES_ALWAYS_RESTORED`; 200 of 500 cycles on the development VM
//!   with AVX-512). PKRU is restored as with `rt_sigreturn`.
//! - **Flags, bases.** The flags are set with `popfq` to what `rt_sigreturn` would make them
//!   (`layout::EFLAGS_FROM_SENTRY`); fs base with `wrfsbase` from the region (so the sentry's
//!   `arch_prctl(ARCH_SET_FS)` reaches the host thread), gs base is the region.
//! - **Stacks.** The handler runs on the alternate stack (the region); leaving it by a jump
//!   leaves no kernel state behind (the kernel derives "on the alternate stack" from rsp), and
//!   nothing is written below the application's rsp: rsp is loaded from the region, r12 last
//!   through gs, and the jump reads rip through gs.
//! - **Everything else** (ptrace stops, checkpoints, `execve`, signal delivery, faults) goes
//!   through the sentry's registers in the region either way; a frame the fast path cannot use
//!   falls back to `rt_sigreturn`.
//!
//! - Factories are forked by a zygote made at platform creation, before the sentry installs
//!   its own seccomp filter (`ptrace/factory.rs`): a stub that inherited the sentry's filter
//!   would be killed (`SECCOMP_RET_KILL_PROCESS` wins over `SECCOMP_RET_TRAP`) on any
//!   application system call outside the sentry's allowlist. Unlike the ptrace platform's,
//!   systrap factories install no filter of their own: a systrap stub's filter must trap
//!   application system calls, which a factory filter answering `SECCOMP_RET_KILL_PROCESS`
//!   would kill first, and a second filter answering `SECCOMP_RET_TRAP` would be evaluated
//!   on every application system call. So systrap factories and injection stubs (which run
//!   only the factory loop and injected calls, never application code) carry no filter.
//!
//! # Lock order
//! A context's stubs are its own (no lock). `Shared::address_spaces`, an address space's
//! `slots`, and the message file's slot pool are leaf locks, never held together.
//!
//! # Cleanup
//! A context kills its stubs when dropped; releasing an address space kills every stub of it
//! (they are registered with the wrapped ptrace address space) and returns its message
//! regions once no process maps them.

mod address_space;
mod context;
mod filter;
pub(crate) mod sysmsg;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use self::address_space::SystrapAddressSpace;
use self::context::SystrapContext;
use self::sysmsg::SysmsgFile;
use crate::ptrace::factory::{dup_cloexec, FactoryMaster};
use crate::stub;
use crate::{AddressSpace, Context, Platform, Result};

/// The systrap platform.
pub struct Systrap {
    shared: Arc<Shared>,
}

/// State shared by the platform, its address spaces and its contexts.
struct Shared {
    ptrace: Arc<crate::ptrace::Shared>,
    sysmsg: Arc<SysmsgFile>,
    /// The handler uses `rdfsbase`/`wrfsbase`.
    fsgsbase: bool,
    /// Contexts take patched system calls (`crate::patch`): `fsgsbase` and `xsave` are
    /// there and [`PATCH_ENV`] does not say 0.
    patch: bool,
    waiting: Waiting,
    /// Live address spaces by key (the address of the value), so a context can find the
    /// address space behind an `&Arc<dyn AddressSpace>`.
    address_spaces: Mutex<HashMap<usize, Weak<SystrapAddressSpace>>>,
}

/// How the sentry and the stubs wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// How long each side polls for the other before sleeping, when polling is tried at all
    /// (see the module documentation); zero never polls.
    pub spin: Duration,
    /// Keep each stub on the CPU its sentry thread last ran on (`sched_setaffinity` when
    /// that changes) whenever it does not poll, so every sleeping hand-off is a same-CPU
    /// switch instead of a cross-CPU wake-up.
    pub follow_cpu: bool,
}

impl Default for Tuning {
    /// Poll for a few microseconds (a trapped system call takes 2-5 µs to come back on the
    /// machines measured), and hand off on one CPU when polling does not pay.
    fn default() -> Tuning {
        Tuning {
            spin: Duration::from_micros(20),
            follow_cpu: true,
        }
    }
}

/// Environment variable that overrides [`Tuning::spin`] (whole microseconds; 0 turns
/// polling off), so the same binary can be measured both ways.
pub const SPIN_ENV: &str = "RUNSC_RS_SYSTRAP_SPIN_US";

/// Environment variable that turns system-call patching off when it holds `0`.
pub const PATCH_ENV: &str = "RUNSC_RS_SYSCALL_PATCH";

/// Whether [`PATCH_ENV`] allows patching.
fn patch_allowed() -> bool {
    std::env::var(PATCH_ENV).map_or(true, |v| v.trim() != "0")
}

impl Tuning {
    /// The default tuning, with [`SPIN_ENV`] applied when it holds a number.
    pub fn from_env() -> Tuning {
        let mut tuning = Tuning::default();
        if let Some(us) = std::env::var(SPIN_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            tuning.spin = Duration::from_micros(us);
        }
        tuning
    }
}

/// Longest run of hand-offs without polling after failed polls (the doubling stops here).
pub(crate) const MAX_BACKOFF: u32 = 1024;

/// The waiting policy in the units each side uses, fixed at platform creation.
#[derive(Debug, Clone)]
struct Waiting {
    tuning: Tuning,
    /// Whether contexts try polling: a budget is set and the sentry may use several CPUs
    /// (two processes polling for each other on one CPU only take turns at wasting it).
    polls: bool,
    /// `pause` iterations of a stub's poll (its budget measured on this CPU).
    stub_spin: u32,
    /// How long the sentry polls by the clock: its budget less the time of the first
    /// [`context::POLLS_PER_CLOCK`] polls, which it makes before it first reads the clock
    /// (so that a stub answering within them costs no clock read, 50 ns on the development
    /// VM) and which are counted at the measured `pause` time.
    sentry_spin: Duration,
    /// The CPUs the sentry may use; a stub that neither polls nor follows its sentry
    /// thread may use all of them.
    cpus: nix::sched::CpuSet,
}

impl Waiting {
    fn new(tuning: Tuning) -> Waiting {
        let cpus = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap_or_default();
        let usable = (0..nix::sched::CpuSet::count())
            .filter(|&cpu| cpus.is_set(cpu).unwrap_or(false))
            .count();
        let polls = !tuning.spin.is_zero() && usable > 1;
        let (stub_spin, sentry_spin) = if polls {
            let pause = pause_ns();
            let first_batch = Duration::from_nanos(pause * u64::from(context::POLLS_PER_CLOCK));
            (
                u32::try_from(tuning.spin.as_nanos() / u128::from(pause)).unwrap_or(u32::MAX),
                tuning.spin.saturating_sub(first_batch),
            )
        } else {
            (0, Duration::ZERO)
        };
        Waiting {
            tuning,
            polls,
            stub_spin,
            sentry_spin,
            cpus,
        }
    }
}

/// Nanoseconds one `pause` takes here (the least of a few timed runs, at least 1): the
/// stub's poll counts iterations, having no clock of its own.
fn pause_ns() -> u64 {
    const PAUSES: u32 = 2000;
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PAUSES {
                std::hint::spin_loop();
            }
            started.elapsed()
        })
        .min()
        .unwrap_or_default();
    (best.as_nanos() / u128::from(PAUSES)).max(1) as u64
}

impl Systrap {
    /// Creates the platform over the memory file `memfd` (duplicated; the caller keeps its
    /// fd). Forks the zygote now: call this before the sentry installs its seccomp filter.
    ///
    /// # Errors
    /// The stub pages cannot be mapped at their fixed address, the message file cannot be
    /// created, or the zygote cannot be started.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Systrap> {
        Self::with_tuning(memfd, Tuning::default())
    }

    /// Like [`Systrap::new`] with explicit waiting policy.
    ///
    /// # Errors
    /// As for [`Systrap::new`].
    pub fn with_tuning(memfd: BorrowedFd<'_>, tuning: Tuning) -> Result<Systrap> {
        stub::install()?;
        // Before the zygote forks: every stub must inherit the sealed page. Without FSGSBASE
        // the handler always leaves through `rt_sigreturn`, so SIGSYS blocks every signal
        // like the others (see "Leaving the handler").
        stub::seal_systrap_setup(
            &context::HANDLED,
            &filter::program(&stub::systrap_code()),
            sysmsg::fsgsbase_available(),
        )?;
        let sysmsg = Arc::new(SysmsgFile::new()?);
        let fsgsbase = sysmsg::fsgsbase_available();
        // A thread's systrap stub, set up and parked in its handler, and the address space's
        // mapper, started.
        let master = FactoryMaster::start(
            dup_cloexec(memfd)?,
            Some(dup_cloexec(sysmsg.fd())?),
            None,
            1,
            true,
            Some(Arc::new(context::SetUpStubs::new(sysmsg.clone(), fsgsbase))),
        )?;
        let patch = fsgsbase && std::arch::is_x86_feature_detected!("xsave") && patch_allowed();
        let waiting = Waiting::new(tuning);
        log::info!(
            "systrap: platform ready (fs base via {}; polling {}; syscall patching {})",
            if fsgsbase { "wrfsbase" } else { "arch_prctl" },
            if waiting.polls {
                format!("{:?}, {} pauses in a stub", tuning.spin, waiting.stub_spin)
            } else {
                "off".to_owned()
            },
            if patch { "on" } else { "off" }
        );
        Ok(Systrap {
            shared: Arc::new(Shared {
                ptrace: Arc::new(crate::ptrace::Shared::new(master)),
                sysmsg,
                fsgsbase,
                patch,
                waiting,
                address_spaces: Mutex::default(),
            }),
        })
    }
}

impl Platform for Systrap {
    fn name(&self) -> &'static str {
        "systrap"
    }

    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>> {
        Ok(SystrapAddressSpace::create(&self.shared)?)
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(SystrapContext::new(self.shared.clone())))
    }

    fn host_syscalls(&self) -> Vec<(&'static str, &'static str)> {
        // The ptrace machinery's calls, and those of the systrap hand-offs.
        let mut calls = crate::ptrace::host_syscalls();
        calls.extend([
            (
                "futex",
                "systrap hand-offs with stubs on their message regions",
            ),
            ("kill", "systrap: interrupting a running stub (SIGUSR2)"),
            (
                "waitid",
                "systrap: checking that a stub that does not answer is still alive",
            ),
            (
                "sched_setaffinity",
                "systrap: keeping a stub on its sentry thread's CPU",
            ),
        ]);
        calls
    }
}
