//! Clocks and sleeping; setting the clock, which the sandbox may never do (EPERM after Linux's
//! argument checks, as in a container without CAP_SYS_TIME on the host).

use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{Errno, SysResult, Timespec, Timeval};
use crate::kernel::cpu_timers::{CpuClock as TimerCpuClock, CpuClockOwner};
use crate::kernel::task::{Restart, RestartBlock};
use crate::kernel::timer::CPU_TICK;
use crate::kernel::{Task, TaskHandle, ThreadGroup};
use crate::mm::usermem::UserAddr;

/// Reads a host clock. The sentry reads host time through the vDSO (no host syscall).
fn host_clock(id: libc::clockid_t) -> Timespec {
    let ts = nix::time::clock_gettime(nix::time::ClockId::from_raw(id))
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    Timespec {
        tv_sec: ts.tv_sec(),
        tv_nsec: ts.tv_nsec(),
    }
}

/// The sandbox's `clock` (not a CPU-time clock) now: the vDSO's parameters where they
/// serve it, so that the system call and the vDSO agree, else the host's clock.
///
/// # Errors
/// EINVAL for unknown clocks.
fn clock_now(clock: i32) -> Result<Timespec, Errno> {
    let src = clock_source(clock)?;
    Ok(match crate::vdso::clock::now(clock) {
        Some(ns) => Timespec::from_nanos(ns as u128),
        None => host_clock(src),
    })
}

pub(super) fn clock_source(clock: i32) -> Result<libc::clockid_t, Errno> {
    match clock {
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE => Ok(libc::CLOCK_REALTIME),
        libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_COARSE | libc::CLOCK_MONOTONIC_RAW => {
            Ok(libc::CLOCK_MONOTONIC)
        }
        libc::CLOCK_BOOTTIME => Ok(libc::CLOCK_BOOTTIME),
        libc::CLOCK_PROCESS_CPUTIME_ID | libc::CLOCK_THREAD_CPUTIME_ID => {
            Ok(libc::CLOCK_THREAD_CPUTIME_ID)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// The current time of `clock` in nanoseconds, for absolute timer deadlines.
///
/// # Errors
/// EINVAL for unknown clocks.
pub(super) fn clock_now_nanos(clock: i32) -> Result<u128, Errno> {
    let ts = clock_now(clock)?;
    Ok(ts.tv_sec.max(0) as u128 * 1_000_000_000 + ts.tv_nsec.max(0) as u128)
}

/// What a CPU-time clock counts (Linux's CPUCLOCK_PROF, CPUCLOCK_VIRT, CPUCLOCK_SCHED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuWhich {
    /// User plus system time.
    Prof,
    /// User time.
    Virt,
    /// Time on a CPU (user plus system here).
    Sched,
}

/// Whose CPU time a clock reads.
#[derive(Debug, Clone)]
enum CpuTarget {
    /// The calling thread.
    Caller,
    /// The calling process.
    OwnProcess,
    /// Another thread of the calling process.
    Thread(Arc<TaskHandle>),
    /// Another process (a zombie included, until reaped).
    Process(Arc<ThreadGroup>),
}

/// A CPU-time clock: CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, or a negative ID from
/// `clock_getcpuclockid`/`pthread_getcpuclockid` (`~pid << 3 | thread << 2 | which`).
#[derive(Debug, Clone)]
struct CpuClock {
    target: CpuTarget,
    which: CpuWhich,
}

/// Decodes `clock` if it is a CPU-time clock; None for the other clocks.
///
/// # Errors
/// EINVAL for a malformed ID, or one naming no visible process, or a thread outside the
/// caller's process (as Linux).
fn cpu_clock(t: &Task, clock: i32, gettime: bool) -> Result<Option<CpuClock>, Errno> {
    let (target, which) = match clock {
        libc::CLOCK_PROCESS_CPUTIME_ID => (CpuTarget::OwnProcess, CpuWhich::Sched),
        libc::CLOCK_THREAD_CPUTIME_ID => (CpuTarget::Caller, CpuWhich::Sched),
        c if c >= 0 => return Ok(None),
        c => {
            let which = match c & 3 {
                0 => CpuWhich::Prof,
                1 => CpuWhich::Virt,
                2 => CpuWhich::Sched,
                _ => return Err(Errno::EINVAL),
            };
            let thread = c & 4 != 0;
            let pid = !(c >> 3);
            let target = if pid == 0 {
                if thread {
                    CpuTarget::Caller
                } else {
                    CpuTarget::OwnProcess
                }
            } else {
                let global = t.lookup_pid(pid).ok_or(Errno::EINVAL)?;
                let tree = t.kernel.tree();
                if thread {
                    match tree.tasks.get(&global) {
                        Some(_) if global == t.tid => CpuTarget::Caller,
                        Some(h) if Arc::ptr_eq(&h.tg, &t.tg) => CpuTarget::Thread(h.clone()),
                        _ => return Err(Errno::EINVAL),
                    }
                } else if global == t.tg.tgid || (gettime && global == t.tid) {
                    CpuTarget::OwnProcess
                } else {
                    let p = tree.procs.get(&global).ok_or(Errno::EINVAL)?;
                    CpuTarget::Process(p.tg.clone())
                }
            };
            (target, which)
        }
    };
    Ok(Some(CpuClock { target, which }))
}

/// The CPU-time clock `clock` names, for a POSIX timer of the caller; None for the other
/// clocks.
///
/// # Errors
/// EINVAL as [`cpu_clock`].
pub(super) fn cpu_timer_clock(t: &Task, clock: i32) -> Result<Option<TimerCpuClock>, Errno> {
    let Some(c) = cpu_clock(t, clock, false)? else {
        return Ok(None);
    };
    let owner = match c.target {
        CpuTarget::Caller => CpuClockOwner::Thread(Arc::downgrade(&t.handle)),
        CpuTarget::OwnProcess => CpuClockOwner::Process(Arc::downgrade(&t.tg)),
        CpuTarget::Thread(h) => CpuClockOwner::Thread(Arc::downgrade(&h)),
        CpuTarget::Process(tg) => CpuClockOwner::Process(Arc::downgrade(&tg)),
    };
    Ok(Some(TimerCpuClock {
        owner,
        user_only: c.which == CpuWhich::Virt,
    }))
}

impl CpuClock {
    /// The clock's value now.
    fn read(&self, t: &mut Task) -> Duration {
        let times = match &self.target {
            CpuTarget::Caller => t.thread_times(),
            CpuTarget::OwnProcess => {
                t.thread_times();
                t.tg.cpu_times()
            }
            CpuTarget::Thread(h) => h.clock.times(),
            CpuTarget::Process(tg) => tg.cpu_times(),
        };
        match self.which {
            CpuWhich::Prof | CpuWhich::Sched => times.total(),
            CpuWhich::Virt => times.user,
        }
    }

    /// The clock's resolution: 1 ns for the scheduler clock, one host tick (HZ=250, Debian's)
    /// for the others, as Linux reports them.
    fn resolution(&self) -> Timespec {
        Timespec {
            tv_sec: 0,
            tv_nsec: if self.which == CpuWhich::Sched {
                1
            } else {
                4_000_000
            },
        }
    }
}

/// clock_gettime(2); the CPU-time clocks read the sentry's accounting
/// ([`crate::kernel::usage`]).
pub fn clock_gettime(t: &mut Task, clock: i32, tp: UserAddr) -> SysResult {
    let ts = match cpu_clock(t, clock, true)? {
        Some(c) => Timespec::from_nanos(c.read(t).as_nanos()),
        None => clock_now(clock)?,
    };
    t.mm.write_obj(tp, &ts)?;
    Ok(0)
}

/// clock_getres(2)
pub fn clock_getres(t: &mut Task, clock: i32, tp: UserAddr) -> SysResult {
    let res = match cpu_clock(t, clock, false)? {
        Some(c) => c.resolution(),
        None => {
            let coarse = matches!(
                clock,
                libc::CLOCK_REALTIME_COARSE | libc::CLOCK_MONOTONIC_COARSE
            );
            clock_source(clock)?;
            Timespec {
                tv_sec: 0,
                tv_nsec: if coarse { 4_000_000 } else { 1 },
            }
        }
    };
    if !tp.is_null() {
        t.mm.write_obj(tp, &res)?;
    }
    Ok(0)
}

/// gettimeofday(2)
pub fn gettimeofday(t: &mut Task, tv: UserAddr, tz: UserAddr) -> SysResult {
    if !tv.is_null() {
        let ts = clock_now(libc::CLOCK_REALTIME)?;
        t.mm.write_obj(
            tv,
            &Timeval {
                tv_sec: ts.tv_sec,
                tv_usec: ts.tv_nsec / 1000,
            },
        )?;
    }
    if !tz.is_null() {
        t.mm.write_obj(tz, &[0u32; 2])?;
    }
    Ok(0)
}

/// The latest time settimeofday accepts (Linux's TIME_SETTOD_SEC_MAX: 30 years short of the
/// end of ktime).
const SETTOD_SEC_MAX: i64 = i64::MAX / 1_000_000_000 - 30 * 365 * 86_400;

/// Whether `ts` is a time the clock could be set to (Linux's `timespec64_valid_settod`).
fn valid_settod(ts: &Timespec) -> bool {
    (0..=SETTOD_SEC_MAX).contains(&ts.tv_sec) && (0..1_000_000_000).contains(&ts.tv_nsec)
}

/// clock_settime(2): only CLOCK_REALTIME is settable (others are EINVAL, as on Linux), and
/// setting it is EPERM once the time is read and checked.
pub fn clock_settime(t: &mut Task, clock: i32, tp: UserAddr) -> SysResult {
    if clock != libc::CLOCK_REALTIME {
        return Err(Errno::EINVAL);
    }
    let ts: Timespec = t.mm.read_obj(tp)?;
    if !valid_settod(&ts) {
        return Err(Errno::EINVAL);
    }
    Err(Errno::EPERM)
}

/// settimeofday(2): EPERM after Linux's checks of the time and the timezone.
pub fn settimeofday(t: &mut Task, tv: UserAddr, tz: UserAddr) -> SysResult {
    if !tv.is_null() {
        let v: Timeval = t.mm.read_obj(tv)?;
        if !(0..1_000_000).contains(&v.tv_usec) {
            return Err(Errno::EINVAL);
        }
        let ts = Timespec {
            tv_sec: v.tv_sec,
            tv_nsec: v.tv_usec * 1000,
        };
        if !valid_settod(&ts) {
            return Err(Errno::EINVAL);
        }
    }
    if !tz.is_null() {
        let [minuteswest, _dsttime]: [i32; 2] = t.mm.read_obj(tz)?;
        if !(-15 * 60..=15 * 60).contains(&minuteswest) {
            return Err(Errno::EINVAL);
        }
    }
    Err(Errno::EPERM)
}

/// `struct timex`, with the padding the x86-64 layout has made explicit.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Timex {
    modes: u32,
    _pad0: u32,
    offset: i64,
    freq: i64,
    maxerror: i64,
    esterror: i64,
    status: i32,
    _pad1: u32,
    constant: i64,
    precision: i64,
    tolerance: i64,
    time: Timeval,
    tick: i64,
    ppsfreq: i64,
    jitter: i64,
    shift: i32,
    _pad2: u32,
    stabil: i64,
    jitcnt: i64,
    calcnt: i64,
    errcnt: i64,
    stbcnt: i64,
    tai: i32,
    _reserved: [i32; 11],
}

/// adjtimex modes that only read: ADJ_OFFSET_SS_READ (ADJ_OFFSET_SINGLESHOT|ADJ_OFFSET_READONLY).
const ADJ_OFFSET_SS_READ: u32 = 0xa001;
const ADJ_ADJTIME: u32 = 0x8000;
/// The clock is not synchronized; times are in nanoseconds.
const STA_UNSYNC: i32 = 0x0040;
const STA_NANO: i32 = 0x2000;
/// adjtimex's result for an unsynchronized clock.
const TIME_ERROR: u64 = 5;

/// adjtimex(2) and clock_adjtime(2) on CLOCK_REALTIME: reading (modes 0 or
/// ADJ_OFFSET_SS_READ) reports a clock no NTP daemon disciplines, as a freshly booted Linux
/// does; any change is EPERM.
fn adjtime_realtime(t: &mut Task, buf: UserAddr) -> SysResult {
    let tx: Timex = t.mm.read_obj(buf)?;
    if tx.modes & ADJ_ADJTIME != 0 {
        // The old adjtime(3) interface: only the single-shot form exists.
        if tx.modes & 0x0001 == 0 {
            return Err(Errno::EINVAL);
        }
        if tx.modes != ADJ_OFFSET_SS_READ {
            return Err(Errno::EPERM);
        }
    } else if tx.modes != 0 {
        return Err(Errno::EPERM);
    }
    let now = clock_now(libc::CLOCK_REALTIME)?;
    // NTP_PHASE_LIMIT, the error bounds of an unsynchronized clock, in microseconds.
    const PHASE_LIMIT_US: i64 = 16_000_000;
    let out = Timex {
        modes: tx.modes,
        maxerror: PHASE_LIMIT_US,
        esterror: PHASE_LIMIT_US,
        status: STA_UNSYNC | STA_NANO,
        constant: 2,
        precision: 1,
        // MAXFREQ (500 ppm) in the 16.16 fixed point of the frequency fields.
        tolerance: 500 << 16,
        time: Timeval {
            tv_sec: now.tv_sec,
            tv_usec: now.tv_nsec,
        },
        // Microseconds per USER_HZ tick.
        tick: 10_000,
        ..Timex::default()
    };
    t.mm.write_obj(buf, &out)?;
    Ok(TIME_ERROR)
}

/// adjtimex(2)
pub fn adjtimex(t: &mut Task, buf: UserAddr) -> SysResult {
    adjtime_realtime(t, buf)
}

/// clock_adjtime(2): CLOCK_REALTIME as adjtimex; the other clocks cannot be adjusted
/// (EOPNOTSUPP), unknown ones are EINVAL.
pub fn clock_adjtime(t: &mut Task, clock: i32, buf: UserAddr) -> SysResult {
    if clock == libc::CLOCK_REALTIME {
        return adjtime_realtime(t, buf);
    }
    cpu_clock(t, clock, false)?;
    clock_source(clock)?;
    Err(Errno::EOPNOTSUPP)
}

/// time(2)
pub fn time(t: &mut Task, tloc: UserAddr) -> SysResult {
    let now = clock_now(libc::CLOCK_REALTIME)?.tv_sec;
    if !tloc.is_null() {
        t.mm.write_obj(tloc, &now)?;
    }
    Ok(now as u64)
}

/// Sleeps until `deadline` for nanosleep; on interruption reports the remainder at `rem`
/// and arranges for `restart_syscall` to continue the sleep if no handler runs.
pub fn sleep_until_restartable(t: &mut Task, deadline: Instant, rem: UserAddr) -> SysResult {
    match t.sleep_until(Some(deadline)) {
        Ok(()) => Ok(0),
        Err(Errno::EINTR) => {
            if !rem.is_null() {
                let left = deadline.saturating_duration_since(Instant::now());
                t.mm.write_obj(rem, &Timespec::from_nanos(left.as_nanos()))?;
            }
            t.restart = Some(Restart::Block);
            t.restart_block = Some(RestartBlock::Sleep { deadline, rem });
            Err(Errno::EINTR)
        }
        Err(e) => Err(e),
    }
}

fn deadline_after(ns: u128) -> Instant {
    let d = Duration::from_nanos(ns.min(u64::MAX as u128) as u64);
    Instant::now()
        .checked_add(d)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 40))
}

/// nanosleep(2)
pub fn nanosleep(t: &mut Task, req: UserAddr, rem: UserAddr) -> SysResult {
    let ts: Timespec = t.mm.read_obj(req)?;
    let deadline = deadline_after(ts.to_nanos()?);
    sleep_until_restartable(t, deadline, rem)
}

/// clock_nanosleep(2)
pub fn clock_nanosleep(
    t: &mut Task,
    clock: i32,
    flags: i32,
    req: UserAddr,
    rem: UserAddr,
) -> SysResult {
    if clock == libc::CLOCK_THREAD_CPUTIME_ID {
        // Linux's thread clock has no sleep at all.
        return Err(Errno::EOPNOTSUPP);
    }
    if let Some(c) = cpu_clock(t, clock, false)? {
        return cpu_clock_nanosleep(t, c, flags & libc::TIMER_ABSTIME != 0, req, rem);
    }
    if !matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME
    ) {
        return Err(Errno::EINVAL);
    }
    let ts: Timespec = t.mm.read_obj(req)?;
    let want = ts.to_nanos()?;
    if flags & libc::TIMER_ABSTIME != 0 {
        let now = clock_now(clock)?;
        let now = now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128;
        let r = t.sleep_until(Some(deadline_after(want.saturating_sub(now))));
        if r.is_err() {
            // An absolute sleep restarts as it was called.
            t.restart = Some(Restart::NoHand);
        }
        return r.map(|()| 0);
    }
    sleep_until_restartable(t, deadline_after(want), rem)
}

/// clock_nanosleep(2) on a CPU-time clock: sleeps until the clock reaches the target.
///
/// A clock only moves while its threads run, and they run without the sentry's knowledge, so
/// the sleeper looks at the clock every [`CPU_TICK`] of wall time (an interruptible sleep, no
/// spinning). The caller's own thread clock (by its `pthread_getcpuclockid` ID) cannot
/// advance while it sleeps: EINVAL, as Linux.
/// An interrupted relative sleep reports the remaining CPU time and returns EINTR even when no
/// handler runs (Linux restarts it through its restart block; this one has none to keep).
fn cpu_clock_nanosleep(
    t: &mut Task,
    clock: CpuClock,
    absolute: bool,
    req: UserAddr,
    rem: UserAddr,
) -> SysResult {
    if matches!(clock.target, CpuTarget::Caller) {
        return Err(Errno::EINVAL);
    }
    let ts: Timespec = t.mm.read_obj(req)?;
    let want = Duration::from_nanos(ts.to_nanos()?.min(u64::MAX as u128) as u64);
    let target = if absolute {
        want
    } else {
        clock.read(t).saturating_add(want)
    };
    loop {
        let left = target.saturating_sub(clock.read(t));
        if left.is_zero() {
            return Ok(0);
        }
        match t.sleep_until(Some(Instant::now() + left.min(CPU_TICK))) {
            Ok(()) => {}
            Err(Errno::EINTR) if absolute => {
                t.restart = Some(Restart::NoHand);
                return Err(Errno::EINTR);
            }
            Err(Errno::EINTR) => {
                if !rem.is_null() {
                    let left = target.saturating_sub(clock.read(t));
                    t.mm.write_obj(rem, &Timespec::from_nanos(left.as_nanos()))?;
                }
                return Err(Errno::EINTR);
            }
            Err(e) => return Err(e),
        }
    }
}
