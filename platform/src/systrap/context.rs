//! Contexts: running application code in the context's own systrap stub.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::{gettid, Pid};

use super::address_space::SystrapAddressSpace;
use super::sysmsg::{self, Region, Slot, SysmsgFile, STATE_EVENT, STATE_RESUME};
use super::Shared;
use crate::ptrace::address_space::{seize_stopped, stopped_stub_error};
use crate::ptrace::context::{StubInterrupter, INTERRUPT_SIGNAL};
use crate::ptrace::factory::StubReadier;
use crate::ptrace::sys::{self, host};
use crate::stub;
use crate::{
    Access, AddressSpace, Context, CpuState, Error, Exit, Interrupter, Result, SignalInfo,
};

/// The host signal an [`Interrupter`] sends to a running stub.
/// Signals the stub's handler catches.
pub(super) const HANDLED: [i32; 7] = [
    libc::SIGSYS,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGUSR2,
];
/// `si_code` of a seccomp `SIGSYS`.
const SYS_SECCOMP: i32 = 1;
/// x86 page-fault error code bits.
const PF_WRITE: u64 = 1 << 1;
const PF_INSTR: u64 = 1 << 4;
const TRAP_PAGE_FAULT: u64 = 14;
/// How long the sentry sleeps on a silent stub before checking that it still lives.
const LIVENESS_PERIOD: Duration = Duration::from_millis(100);
/// How long the factory master waits for a stub it readies to park (see [`SetUpStubs`]).
const READY_LIMIT: Duration = Duration::from_secs(10);

/// One application thread's way onto the CPU.
pub(super) struct SystrapContext {
    shared: Arc<Shared>,
    /// The creating host thread (stub setup uses ptrace, which is per thread).
    tid: Pid,
    interrupt: Arc<StubInterrupter>,
    stubs: Vec<ContextStub>,
}

/// The context's stub in one address space.
struct ContextStub {
    key: usize,
    owner: Weak<SystrapAddressSpace>,
    pid: Pid,
    slot: Slot,
    /// Set when the address space is released (a flag of the address space's own, so that a
    /// switch needs no upgrade of `owner` nor lock to look at it).
    released: Arc<AtomicBool>,
    /// Resumes the sentry has made: the stub counts those it takes ([`Region::pickups`]).
    resumes: Cell<u32>,
    /// The single CPU the stub is bound to, if it is bound to one.
    cpu: Cell<Option<usize>>,
    /// The CPU the sentry thread ran on at the stub's previous sleeping hand-off: a stub
    /// follows its thread only once the thread stays on a new CPU (see [`place`]).
    seen: Cell<Option<usize>>,
    /// Polling state (see the module documentation of `systrap`).
    polling: Polling,
    /// The stub's last event came through the fast entry, which leaves the FP state in the
    /// thread's registers: [`SystrapContext::fetch_fp`] has it saved when the sentry needs it.
    fp_in_registers: Cell<bool>,
}

impl ContextStub {
    /// Lets the parked stub run (see [`resume`]), counting the resume.
    fn resume(&self, region: &Region<'_>) -> bool {
        self.resumes.set(self.resumes.get().wrapping_add(1));
        resume(region)
    }

    /// Fails with [`Error::StubDied`] once the stub's address space is gone or released.
    fn check_owner_alive(&self) -> Result<()> {
        if self.owner.strong_count() == 0 || self.released.load(Ordering::Acquire) {
            return Err(Error::StubDied {
                pid: self.pid.as_raw(),
                status: "address space released".into(),
            });
        }
        Ok(())
    }
}

/// A stub's record of how polling fared. A failed poll costs a whole budget of CPU (and
/// often a cross-CPU wake-up), a successful one saves a few microseconds: polling only
/// pays when nearly every poll succeeds. So a failure doubles the penalty, and only a run
/// of [`STREAK`] successes halves it again. A fresh stub starts backed off
/// ([`Polling::fresh`]).
///
/// Both kinds of failure [`judge`] tells apart back off: a *long* hand-off (a side slept
/// because the other was busy with the call, the sentry filling a page from a host file or
/// an exec, application code computing between two calls) and one whose other side was not
/// running. Leaving long ones out, so that a fresh process kept polling through them, made
/// `python3 -S -c pass` twice as slow on the development VM (busy with other builds): every
/// sleep in a polling hand-off is a cross-CPU wake-up, which there waits for the other CPU's
/// current task, where a same-CPU hand-off runs the woken side at once. A poll that meets a
/// preempted other side within the budget still succeeds: failing such polls too (a stub
/// that took the resume more than 2 µs into the sentry's poll) made a trapped `getpid` on
/// the same busy VM 7.5-7.9 µs instead of 5.9 (polling, however slow, beat sleeping).
/// A stub woken for the first poll after a back-off that is late only because its wake-up
/// was ([`Judged::Waking`]) neither backs off nor forgives.
#[derive(Default)]
pub(super) struct Polling {
    /// The stub was told to poll for its next resume.
    stub_polls: Cell<bool>,
    /// Hand-offs left before polling is tried again.
    skip: Cell<u32>,
    /// Hand-offs without polling after the next failure, halved per [`STREAK`] successes.
    penalty: Cell<u32>,
    /// Successful polls since the last failure or halving.
    streak: Cell<u32>,
    /// Hand-offs so far, those in which the sentry polled, and those in which it slept:
    /// logged when the stub goes, so that a run shows how well polling fared.
    handoffs: Cell<u64>,
    polled: Cell<u64>,
    slept: Cell<u64>,
    /// Polling hand-offs judged long, failed, and waking (see [`Judged::Waking`]).
    long: Cell<u64>,
    failed: Cell<u64>,
    waking: Cell<u64>,
}

/// How the sentry's wait for an event ended ([`wait_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Waited {
    /// The sentry slept (always, when it did not poll).
    pub(super) slept: bool,
    /// The sentry polled, and when its budget ran out the stub had not even taken the
    /// resume: the stub was not running (preempted, or slow to wake).
    pub(super) late: bool,
}

/// What a polling hand-off says about polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Judged {
    /// Neither side slept.
    Ok,
    /// A side slept while the other was busy: the sentry with the call (the stub, told to
    /// poll, had gone to sleep when the sentry resumed it, though the sentry had been polling
    /// when the event came, so was running), or the application between two calls (the stub
    /// had taken the resume in time, and the sentry's poll ran out).
    Long,
    /// The stub had not taken the resume when the sentry's budget ran out (see
    /// [`Waited::late`]) although it had been polling or on its way to sleep: it was not
    /// running (preempted on a busy machine).
    Failed,
    /// The stub had not taken the resume when the sentry's budget ran out, but it had been
    /// asleep because it was told not to poll (the first polling hand-off after a back-off)
    /// and had to be woken on the other CPU: a slow cross-CPU wake-up (a halted vCPU of a
    /// virtual machine, or one busy with another task, takes tens to hundreds of
    /// microseconds), which tells nothing about the polls that follow, where the stub keeps
    /// running. Neither success nor failure: the next hand-off polls again and is judged on
    /// its own. Judged a failure, it kept a stub that had once backed off to
    /// [`super::MAX_BACKOFF`] there for good on the development VM (18 of its 24 retries
    /// in 20,000 hand-offs were such wake-ups, while a stub that kept polling beside the same
    /// CPU hog failed 29 polls in 19,000).
    Waking,
}

/// Judges a hand-off in which the sentry polled: `stub_polled` if the stub had been told to
/// poll for it, `woke` if the stub was asleep and had to be woken, `waited` how the sentry's
/// wait ended. A stub that slept although told to poll (`stub_polled && woke`) did so after a
/// whole budget since its event, which the sentry, polling when that event came, spent on
/// the call: long. (Had the sentry slept instead, that earlier hand-off was judged already.)
pub(super) fn judge(stub_polled: bool, woke: bool, waited: Waited) -> Judged {
    if waited.late {
        if woke && !stub_polled {
            Judged::Waking
        } else {
            Judged::Failed
        }
    } else if waited.slept || (stub_polled && woke) {
        Judged::Long
    } else {
        Judged::Ok
    }
}

/// Successful polls in a row that halve the penalty.
pub(super) const STREAK: u32 = 16;

impl Polling {
    /// A new stub's record: no polling for its first [`STREAK`] hand-offs, as after a failed
    /// poll. Its first hand-offs are the least likely to answer within a budget (the stub's
    /// pages are cold, a young process faults and maps memory), and most stubs live short
    /// lives (a shell's fork and exec), where every failed poll is a whole budget wasted.
    pub(super) fn fresh() -> Polling {
        Polling {
            skip: Cell::new(STREAK),
            penalty: Cell::new(STREAK),
            ..Polling::default()
        }
    }

    /// Whether this hand-off polls (counts a skipped one).
    pub(super) fn this_time(&self) -> bool {
        match self.skip.get() {
            0 => true,
            n => {
                self.skip.set(n - 1);
                false
            }
        }
    }

    /// Takes in how a hand-off went: `polls` if the sentry polled in it, the rest as for
    /// [`judge`]; long and failed hand-offs both back off (see [`Polling`]). Waking a stub
    /// that was not told to poll (the first hand-off after a back-off) is not long: the stub
    /// slept because it was told to; nor is it failed when only the wake-up was slow
    /// ([`Judged::Waking`]: the next hand-off polls and is judged).
    pub(super) fn after(&self, polls: bool, stub_polled: bool, woke: bool, waited: Waited) {
        let bump = |cell: &Cell<u64>, by: bool| cell.set(cell.get() + u64::from(by));
        bump(&self.handoffs, true);
        bump(&self.polled, polls);
        bump(&self.slept, waited.slept);
        if polls {
            match judge(stub_polled, woke, waited) {
                Judged::Ok => self.record(true),
                Judged::Long => {
                    bump(&self.long, true);
                    self.record(false);
                }
                Judged::Failed => {
                    bump(&self.failed, true);
                    self.record(false);
                }
                Judged::Waking => bump(&self.waking, true),
            }
        }
    }

    /// Records a hand-off that polled: `ok` when neither side had to sleep.
    pub(super) fn record(&self, ok: bool) {
        if ok {
            let streak = self.streak.get() + 1;
            if streak == STREAK {
                self.penalty.set(self.penalty.get() / 2);
                self.streak.set(0);
            } else {
                self.streak.set(streak);
            }
        } else {
            let penalty = (self.penalty.get() * 2).clamp(1, super::MAX_BACKOFF);
            self.penalty.set(penalty);
            self.skip.set(penalty);
            self.streak.set(0);
        }
    }
}

impl Drop for ContextStub {
    fn drop(&mut self) {
        let polling = &self.polling;
        log::debug!(
            "systrap: stub {}: {} hand-offs, {} polling ({} long, {} failed, {} waking), the \
             sentry slept in {} (penalty {})",
            self.pid,
            polling.handoffs.get(),
            polling.polled.get(),
            polling.long.get(),
            polling.failed.get(),
            polling.waking.get(),
            polling.slept.get(),
            polling.penalty.get()
        );
        if let Some(owner) = self.owner.upgrade() {
            owner.retire(Some(self.pid), self.slot);
        }
    }
}

impl SystrapContext {
    pub(super) fn new(shared: Arc<Shared>) -> SystrapContext {
        SystrapContext {
            shared,
            tid: gettid(),
            interrupt: Arc::default(),
            stubs: Vec::new(),
        }
    }

    /// The index in `stubs` of this context's stub in `address_space`, created if needed.
    fn stub_for(&mut self, address_space: &Arc<dyn AddressSpace>) -> Result<usize> {
        let key = Arc::as_ptr(address_space).cast::<()>() as usize;
        self.stubs.retain(|s| s.owner.strong_count() > 0);
        if let Some(i) = self.stubs.iter().position(|s| s.key == key) {
            return Ok(i);
        }
        let owner = self
            .shared
            .address_spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .and_then(Weak::upgrade)
            .ok_or_else(|| {
                Error::Unavailable(
                    "systrap",
                    "the address space was not created by this systrap platform".into(),
                )
            })?;
        let spawned = owner.ptrace.spawn_stub()?;
        let pid = spawned.pid;
        // A stub the factory master readied is parked in its handler with its region mapped;
        // any other waits in `pause()` for its set-up.
        let slot = match spawned.readied {
            Some(index) => {
                let slot = Slot::from_index(index);
                owner.adopt_slot(slot);
                slot
            }
            None => match owner.alloc_slot() {
                Ok(slot) => slot,
                Err(e) => {
                    owner.ptrace.retire_stub(pid);
                    return Err(e);
                }
            },
        };
        // From here on dropping `stub` kills the process and keeps the region for reuse.
        let stub = ContextStub {
            key,
            owner: Arc::downgrade(&owner),
            pid,
            slot,
            released: owner.released.clone(),
            resumes: Cell::new(0),
            cpu: Cell::new(None),
            seen: Cell::new(None),
            polling: Polling::fresh(),
            fp_in_registers: Cell::new(false),
        };
        if spawned.readied.is_none() {
            set_up(&self.shared.sysmsg, self.shared.fsgsbase, pid, slot)?;
        }
        log::debug!(
            "systrap: stub {pid} (region {:#x}) for thread {}",
            slot.app_addr(),
            self.tid
        );
        self.stubs.push(stub);
        Ok(self.stubs.len() - 1)
    }

    fn assert_owner(&self) {
        debug_assert_eq!(
            gettid(),
            self.tid,
            "systrap context used from a thread that did not create it"
        );
    }

    /// Runs the parked stub with `state` until its next event.
    fn run(&self, stub: &ContextStub, state: &mut CpuState) -> Result<Exit> {
        let waiting = &self.shared.waiting;
        let polls = waiting.polls && stub.polling.this_time();
        place(stub, waiting, polls);
        let region = self.shared.sysmsg.region(stub.slot);
        let fp = state.fp.dirty.then_some(&state.fp.area[..]);
        // With fsgsbase the stub's gs base is its region whenever the application's is 0:
        // the fast entry of patched system calls finds the region through it.
        let own_gs = self.shared.fsgsbase && state.regs.gs_base == 0;
        if own_gs {
            state.regs.gs_base = stub.slot.app_addr();
        }
        region.store_regs(&state.regs, fp);
        if own_gs {
            state.regs.gs_base = 0;
        }
        state.fp.dirty = false;
        // The stub reads its budget when it next stops, so this one applies to the resume
        // after this event; `stub_polls` remembers what the stub was last told.
        region.set_spin(if polls { waiting.stub_spin } else { 0 });
        let stub_polled = stub.polling.stub_polls.replace(polls);
        let woke = stub.resume(&region);
        let poll = polls.then(|| Poll {
            budget: waiting.sentry_spin,
            resumes: stub.resumes.get(),
        });
        let waited = wait_event(&region, stub.pid, poll, Some(&self.interrupt));
        state.fp.valid = false;
        stub.polling.after(polls, stub_polled, woke, waited?);
        stub.fp_in_registers
            .set(region.kind() == sysmsg::KIND_FAST_SYSCALL);
        region.load_regs(&mut state.regs, self.shared.fsgsbase);
        if self.shared.fsgsbase && state.regs.gs_base == stub.slot.app_addr() {
            state.regs.gs_base = 0;
        }
        Ok(classify(&region, state))
    }

    /// Has the stub, stopped in the fast entry of a patched system call, save its FP state
    /// into its region: one more hand-off, made only when the sentry needs the state (a
    /// signal frame, `fork`, a ptrace stop, a checkpoint), so that patched calls never pay
    /// for an `xsave`. Interruptible like a switch: should application code have published
    /// an event of its own (its region is writable to it) and run on, an interrupt still
    /// brings the stub back into its handler.
    fn fetch_fp(&self, stub: &ContextStub, region: &Region<'_>) -> Result<()> {
        stub.check_owner_alive()?;
        region.fp_request().store(1, Ordering::Relaxed);
        self.interrupt
            .running_pid
            .store(stub.pid.as_raw(), Ordering::SeqCst);
        // An interrupt that came before the pid was published sent no signal: send it now
        // (the fast path drops it; the interrupt stays pending for the next switch).
        if self.interrupt.pending.load(Ordering::SeqCst) {
            let _ = nix::sys::signal::kill(stub.pid, INTERRUPT_SIGNAL);
        }
        stub.resume(region);
        let waited = wait_event(region, stub.pid, None, Some(&self.interrupt));
        self.interrupt.running_pid.store(0, Ordering::SeqCst);
        waited.map(drop)
    }
}

/// Turns the fresh stub `pid` into a systrap stub parked in its handler, with `slot`'s region:
/// seizes it, points it at the stub's set-up code (`stub::SystrapCode::setup`, which maps the
/// region, installs the handlers and the filter from the read-only setup page, and runs into
/// the entry `ud2`) and detaches. One ptrace stop in all, instead of one per set-up call.
///
/// # Errors
/// As [`seize_stopped`] (a stub found dead there was reaped), or the stub could not be set
/// up (then it may still live: the caller kills it).
fn set_up(sysmsg: &SysmsgFile, fsgsbase: bool, pid: Pid, slot: Slot) -> Result<()> {
    let region = sysmsg.region(slot);
    region.reset(fsgsbase);
    seize_stopped(pid)?;
    run_set_up(&region, pid, slot, None)
}

/// [`set_up`] of a stub the calling thread has seized and stopped; with `limit`, a stub that
/// has not parked after that long is an error (the caller kills it).
fn run_set_up(region: &Region<'_>, pid: Pid, slot: Slot, limit: Option<Duration>) -> Result<()> {
    let code = stub::systrap_code();
    let mut regs =
        ptrace::getregs(pid).map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_GETREGS)", e))?;
    regs.rip = code.setup;
    regs.rdi = slot.app_addr();
    regs.rsi = slot.file_offset();
    // Not in a system call: no restart logic may rewrite rax or rip on the way out.
    regs.orig_rax = u64::MAX;
    ptrace::setregs(pid, regs).map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_SETREGS)", e))?;
    // The stub runs from here: the state says so until its handler reports EVENT.
    region.state().store(STATE_RESUME, Ordering::SeqCst);
    ptrace::detach(pid, None).map_err(host("ptrace(PTRACE_DETACH)"))?;
    // The stub sets itself up, runs into `ud2` and parks in its handler (or exits with
    // `stub::SETUP_FAILED`, which the wait reports as its death).
    match limit {
        None => wait_event(region, pid, None, None).map(drop),
        Some(limit) => wait_parked(region, pid, limit),
    }
}

/// Waits at most `limit` for the stub `pid`, running its set-up, to park in its handler: the
/// factory master thread, which readies stubs, must never wait forever for one that neither
/// parks nor dies (stopped from outside, say), or no address space would get a factory any
/// more. Sleeps as [`wait_event`] does, with the same liveness checks.
fn wait_parked(region: &Region<'_>, pid: Pid, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let state = region.state();
    loop {
        region.sentry_sleeping().store(1, Ordering::SeqCst);
        let seen = state.load(Ordering::SeqCst);
        if seen != STATE_EVENT && Instant::now() < deadline {
            futex_wait(state, seen, LIVENESS_PERIOD);
        }
        region.sentry_sleeping().store(0, Ordering::Relaxed);
        if state.load(Ordering::Acquire) == STATE_EVENT {
            return Ok(());
        }
        check_alive(pid)?;
        if Instant::now() >= deadline {
            return Err(Error::StubDied {
                pid: pid.as_raw(),
                status: format!("did not finish its set-up in {limit:?}"),
            });
        }
    }
}

/// The systrap platform's [`StubReadier`]: the factory master sets up the spare factory's
/// prepared stub (with a region of its own) while nobody waits for it, so the first thread
/// of a new address space, a `fork`'s child, finds its stub parked in its handler. The set-up
/// is [`set_up`]'s: the region's address and offset go in the stub's registers, written by
/// ptrace, never through memory an application could write.
pub(super) struct SetUpStubs {
    sysmsg: Arc<SysmsgFile>,
    fsgsbase: bool,
}

impl SetUpStubs {
    pub(super) fn new(sysmsg: Arc<SysmsgFile>, fsgsbase: bool) -> SetUpStubs {
        SetUpStubs { sysmsg, fsgsbase }
    }
}

impl StubReadier for SetUpStubs {
    fn ready(&self, pid: Pid) -> Result<u32> {
        let slot = match self.sysmsg.alloc() {
            Ok(slot) => slot,
            Err(e) => {
                sys::kill_and_reap(pid);
                return Err(e);
            }
        };
        let region = self.sysmsg.region(slot);
        region.reset(self.fsgsbase);
        let outcome = match seize_stopped(pid) {
            // The wait that saw it die reaped it: its pid may name another process now.
            Err(e @ Error::StubDied { .. }) => Err(e),
            Err(e) => {
                sys::kill_and_reap(pid);
                Err(e)
            }
            Ok(()) => run_set_up(&region, pid, slot, Some(READY_LIMIT))
                .inspect_err(|_| sys::kill_and_reap(pid)),
        };
        match outcome {
            Ok(()) => Ok(slot.index()),
            Err(e) => {
                // Dead and reaped: nothing maps the region any more.
                self.sysmsg.free([slot]);
                Err(e)
            }
        }
    }

    fn discard(&self, readied: Vec<u32>) {
        self.sysmsg.free(readied.into_iter().map(Slot::from_index));
    }
}

/// Binds the stub for this hand-off: to another CPU than the calling thread's when both
/// poll (two pollers on one CPU only delay each other), to the calling thread's CPU when it
/// will sleep and `follow_cpu` is set (a same-CPU wake-up), else to every CPU. A failure
/// only costs speed.
///
/// A sleeping hand-off follows the thread only to a CPU the thread was also on at the
/// stub's previous sleeping hand-off: a sentry thread that blocks (in `wait4`, on the
/// factory, on a lock) often wakes on another CPU and soon moves back, and following each
/// such bounce costs a `sched_setaffinity`, where one hand-off with a cross-CPU wake-up
/// costs less. A new stub (nothing seen yet) is therefore bound from its second hand-off
/// on, by when its thread has settled. `seen` is the thread's CPU, not the stub's, so
/// polling hand-offs do not touch it. (A fork+exec+wait child's stub is still bound about
/// three times in its short life: to its thread's CPU, away from it for its first poll,
/// back after that poll fails; each is a real change, which the polling policy calls for.)
fn place(stub: &ContextStub, waiting: &super::Waiting, polls: bool) {
    if !polls && !waiting.tuning.follow_cpu {
        if stub.cpu.get().is_some() {
            bind(stub, &waiting.cpus, None);
        }
        return;
    }
    // SAFETY: sched_getcpu has no arguments and no memory effects.
    let Ok(here) = usize::try_from(unsafe { libc::sched_getcpu() }) else {
        return;
    };
    let current = stub.cpu.get();
    let want = if polls {
        if current.is_some_and(|cpu| cpu != here) {
            return;
        }
        let count = nix::sched::CpuSet::count();
        let Some(other) = (1..count)
            .map(|step| (here + step) % count)
            .find(|&cpu| waiting.cpus.is_set(cpu).unwrap_or(false))
        else {
            return;
        };
        other
    } else if stub.seen.replace(Some(here)) == Some(here) {
        here
    } else {
        return;
    };
    if current != Some(want) {
        let mut set = nix::sched::CpuSet::new();
        if set.set(want).is_ok() {
            bind(stub, &set, Some(want));
        }
    }
}

/// Sets the stub's CPU mask to `set`; `single` is the CPU when the set holds only one.
fn bind(stub: &ContextStub, set: &nix::sched::CpuSet, single: Option<usize>) {
    match nix::sched::sched_setaffinity(stub.pid, set) {
        Ok(()) => stub.cpu.set(single),
        Err(e) => log::debug!("systrap: binding stub {} to {single:?}: {e}", stub.pid),
    }
}

/// Lets the parked stub of `region` run. True if it had gone to sleep (and was woken).
fn resume(region: &Region<'_>) -> bool {
    region.state().store(STATE_RESUME, Ordering::SeqCst);
    let sleeping = region.stub_sleeping().load(Ordering::SeqCst) != 0;
    if sleeping {
        futex_wake(region.state());
    }
    sleeping
}

/// Polls of the state word between looks at the clock; the first batch comes before any.
pub(super) const POLLS_PER_CLOCK: u32 = 64;

/// A poll of the sentry's for an event: for `budget` by the clock (after the first
/// [`POLLS_PER_CLOCK`] polls), for the stub's answer to resume number `resumes`.
pub(super) struct Poll {
    budget: Duration,
    resumes: u32,
}

/// Waits until the stub of `region` reports an event: with `poll`, polls [`POLLS_PER_CLOCK`]
/// times and then for its budget more by the clock, then looks whether the stub has taken
/// the resume (see [`Waited::late`]: a cache line the stub otherwise keeps to itself); then
/// sleeps on the state word, checking every [`LIVENESS_PERIOD`] that the stub still lives
/// and, while `interrupt` is pending, sending its signal again.
///
/// The signal again: the fast entry drops an interrupt signal that reaches it before it
/// returns to the application (it expects to be on its way to the sentry), but one that
/// lands after the switch looked at `pending`, while the stub is still in the fast entry's
/// resume, would be lost, and application code that makes no more system calls would never
/// come back.
fn wait_event(
    region: &Region<'_>,
    pid: Pid,
    poll: Option<Poll>,
    interrupt: Option<&StubInterrupter>,
) -> Result<Waited> {
    let state = region.state();
    let mut waited = Waited::default();
    if let Some(poll) = poll {
        let mut started = None;
        'poll: loop {
            for _ in 0..POLLS_PER_CLOCK {
                if state.load(Ordering::Acquire) == STATE_EVENT {
                    return Ok(waited);
                }
                std::hint::spin_loop();
            }
            match started {
                None => started = Some(Instant::now()),
                Some(at) if at.elapsed() >= poll.budget => break 'poll,
                Some(_) => {}
            }
        }
        waited.late = region.pickups() != poll.resumes;
    }
    waited.slept = true;
    loop {
        region.sentry_sleeping().store(1, Ordering::SeqCst);
        let seen = state.load(Ordering::SeqCst);
        if seen == STATE_EVENT {
            region.sentry_sleeping().store(0, Ordering::Relaxed);
            return Ok(waited);
        }
        // Sleep on the value just seen, whatever it is: expecting one fixed value would
        // turn every other one (a fresh region's 0, or anything application code writes
        // into its stub's region) into a FUTEX_WAIT that fails at once, a busy loop.
        let timed_out = futex_wait(state, seen, LIVENESS_PERIOD);
        region.sentry_sleeping().store(0, Ordering::Relaxed);
        if state.load(Ordering::Acquire) == STATE_EVENT {
            return Ok(waited);
        }
        if timed_out {
            check_alive(pid)?;
            if interrupt.is_some_and(|i| i.pending.load(Ordering::SeqCst)) {
                log::debug!("systrap: stub {pid}: interrupt not answered, signalled again");
                let _ = nix::sys::signal::kill(pid, INTERRUPT_SIGNAL);
            }
        }
    }
}

/// `FUTEX_WAKE` on a shared (cross-process) futex word.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only reads the address's identity; `word` is valid.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// `FUTEX_WAIT` while `*word == expected`, at most `timeout`. True if it timed out.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 for the call; `ts` lives across it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const ts,
        )
    };
    rc == -1 && Errno::last() == Errno::ETIMEDOUT
}

/// Fails if stub `pid` has exited (or was reaped by a thread releasing its address space).
fn check_alive(pid: Pid) -> Result<()> {
    // SAFETY: all-zero is a valid siginfo_t; it is only an out parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out pointer for the duration of the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid.as_raw() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    let status = if rc == 0 {
        // SAFETY: waitid succeeded; si_pid is 0 when the child has not exited.
        if unsafe { info.si_pid() } == 0 {
            return Ok(());
        }
        // SAFETY: waitid reported an exited child, so the union holds si_status.
        let code = unsafe { info.si_status() };
        if info.si_code == libc::CLD_EXITED {
            format!("exited with status {code}")
        } else {
            format!("killed by signal {code}")
        }
    } else {
        format!("gone ({})", Errno::last())
    };
    Err(Error::StubDied {
        pid: pid.as_raw(),
        status,
    })
}

/// Decides what the stub's event means for the sentry; fixes up `state` for system calls.
fn classify(region: &Region<'_>, state: &mut CpuState) -> Exit {
    if region.kind() == sysmsg::KIND_FAST_SYSCALL {
        // A patched system call: rax is the number (set by its thunk), rip the return
        // address, rcx and r11 as `syscall` leaves them.
        state.regs.orig_rax = state.regs.rax;
        state.regs.rax = (-libc::ENOSYS) as i64 as u64;
        return Exit::Syscall;
    }
    let (signo, code, addr) = region.siginfo();
    if signo == libc::SIGILL && state.regs.rip == stub::systrap_code().fast_refuse {
        // The fast entry found no region in gs base (the application set its own): the
        // call is reported as if trapped, returning where `syscall` would.
        state.regs.orig_rax = state.regs.rax;
        state.regs.rax = (-libc::ENOSYS) as i64 as u64;
        state.regs.rip = state.regs.rcx;
        state.regs.r11 = state.regs.eflags;
        return Exit::Syscall;
    }
    if signo == libc::SIGSYS && code == SYS_SECCOMP {
        if region.sigsys_arch() != crate::AUDIT_ARCH_X86_64 {
            // The kernel rolled rip forward past the instruction, as for any trap.
            return crate::refuse_32bit_syscall(&mut state.regs);
        }
        // The kernel rolled rax back to the number (all 64 bits; `si_syscall` is an int);
        // report what PTRACE_SYSEMU would.
        state.regs.orig_rax = state.regs.rax;
        state.regs.rax = (-libc::ENOSYS) as i64 as u64;
        // `si_call_addr` is the vsyscall entry for an emulated vsyscall, else the address
        // after the `syscall` instruction.
        if (crate::VSYSCALL_PAGE..crate::VSYSCALL_PAGE + crate::PAGE_SIZE).contains(&addr) {
            return Exit::Vsyscall;
        }
        return Exit::Syscall;
    }
    let synchronous = matches!(
        signo,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
    );
    // si_code <= 0: sent by kill/tgkill/sigqueue, not raised by an instruction.
    if !synchronous || code <= 0 {
        if signo != INTERRUPT_SIGNAL as i32 {
            log::debug!("systrap: signal {signo} (code {code}) treated as an interrupt");
        }
        return Exit::Interrupted;
    }
    let info = SignalInfo { signo, code, addr };
    if signo == libc::SIGSEGV && code != libc::SI_KERNEL {
        let (err, trapno) = region.fault_code();
        let access = if trapno != TRAP_PAGE_FAULT {
            Access::Unknown
        } else if err & PF_INSTR != 0 {
            Access::Exec
        } else if err & PF_WRITE != 0 {
            Access::Write
        } else {
            Access::Read
        };
        Exit::Fault { addr, access, info }
    } else {
        Exit::Signal(info)
    }
}

impl Context for SystrapContext {
    fn switch(
        &mut self,
        address_space: &Arc<dyn AddressSpace>,
        state: &mut CpuState,
    ) -> Result<Exit> {
        self.assert_owner();
        let index = self.stub_for(address_space)?;
        let stub = &self.stubs[index];
        stub.check_owner_alive()?;
        // The pid's store and the look at `pending` are the two halves of a Dekker pair with
        // the interrupter's (`StubInterrupter::interrupt`): the store is a full barrier
        // (`xchg`), the look a plain load, and the locked swap only when it is set. The pid
        // goes back to 0 with a plain store: an interrupter that still sees the pid for a
        // while signals a parked stub, which notes it (one spurious `Exit::Interrupted`, as
        // with any late signal). Two locked instructions fewer per switch.
        self.interrupt
            .running_pid
            .store(stub.pid.as_raw(), Ordering::SeqCst);
        if self.interrupt.pending.load(Ordering::SeqCst)
            && self.interrupt.pending.swap(false, Ordering::SeqCst)
        {
            self.interrupt.running_pid.store(0, Ordering::Release);
            return Ok(Exit::Interrupted);
        }
        let exit = self.run(stub, state);
        self.interrupt.running_pid.store(0, Ordering::Release);
        if let Ok(Exit::Interrupted) = exit {
            self.interrupt.pending.store(false, Ordering::SeqCst);
        }
        log::trace!(
            "systrap: stub {}: {exit:?} at rip {:#x}",
            stub.pid,
            state.regs.rip
        );
        exit
    }

    fn pull_fp(
        &mut self,
        address_space: &Arc<dyn AddressSpace>,
        state: &mut CpuState,
    ) -> Result<()> {
        self.assert_owner();
        if state.fp.valid {
            return Ok(());
        }
        let index = self.stub_for(address_space)?;
        let stub = &self.stubs[index];
        let region = self.shared.sysmsg.region(stub.slot);
        if stub.fp_in_registers.get() {
            self.fetch_fp(stub, &region)?;
            stub.fp_in_registers.set(false);
        }
        region.load_fp(&mut state.fp.area, stub.slot.app_addr());
        state.fp.valid = true;
        Ok(())
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.interrupt.clone()
    }

    fn syscall_patch_entry(&self) -> Option<u64> {
        self.shared.patch.then(|| stub::systrap_code().fast_entry)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::testing::{gone, Guest};

    /// A stub that never parks (here one never set up, waiting in `pause()`) is given up on
    /// once the limit has passed, and left alive for the caller to kill: the factory master's
    /// wait for a stub it readies is bounded.
    #[test]
    fn the_wait_for_a_readied_stub_to_park_is_bounded() {
        let guest = Guest::new();
        let platform = super::super::Systrap::new(guest.memfd.as_fd()).unwrap();
        let space = SystrapAddressSpace::create(&platform.shared).unwrap();
        let pid = space.ptrace.spawn_stub().unwrap().pid;
        let slot = platform.shared.sysmsg.alloc().unwrap();
        let region = platform.shared.sysmsg.region(slot);
        region.reset(platform.shared.fsgsbase);
        let e = wait_parked(&region, pid, Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(&e, Error::StubDied { pid: p, .. } if *p == pid.as_raw()),
            "{e:?}"
        );
        assert!(!gone(pid), "it was only given up on");
        drop(space);
        platform.shared.sysmsg.free([slot]);
    }
}
