//! Timers: alarm, setitimer/getitimer, POSIX timers, and timerfd.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::fd::nofile_limit;
use super::time::{clock_now_nanos, clock_source, cpu_timer_clock};
use super::{Fd, Flags};
use crate::abi::{Errno, SysResult, Timespec, Timeval};
use crate::kernel::cpu_timers::CpuClock;
use crate::kernel::cpu_timers::{self, cpu_clock};
use crate::kernel::signal::NSIG;
use crate::kernel::timer::{
    real_timer, PosixTimer, TimerEvent, TimerFd, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD,
    SIGEV_THREAD_ID,
};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::{FileKind, OpenFile};

const TIMER_ABSTIME: i32 = 1;
const TFD_TIMER_ABSTIME: i32 = 1;
const TFD_TIMER_CANCEL_ON_SET: i32 = 2;
/// Most POSIX timers one process may hold.
const MAX_POSIX_TIMERS: usize = 1 << 14;

/// `struct itimerval`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Itimerval {
    interval: Timeval,
    value: Timeval,
}

/// `struct itimerspec`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Itimerspec {
    interval: Timespec,
    value: Timespec,
}

/// The head of `struct sigevent` (64 bytes in all).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SigEvent {
    value: u64,
    signo: i32,
    notify: i32,
    thread_id: i32,
    pad: [u32; 11],
}

fn timeval_to(tv: Timeval) -> Result<Option<Duration>, Errno> {
    if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
        return Err(Errno::EINVAL);
    }
    let d = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    Ok((!d.is_zero()).then_some(d))
}

fn timeval_from(d: Option<Duration>) -> Timeval {
    d.map_or(Timeval::default(), |d| Timeval {
        tv_sec: d.as_secs() as i64,
        tv_usec: d
            .subsec_micros()
            .max(u32::from(d < Duration::from_micros(1))) as i64,
    })
}

fn timespec_to(ts: Timespec) -> Result<Option<Duration>, Errno> {
    let ns = ts.to_nanos()?;
    Ok((ns > 0).then(|| Duration::from_nanos(ns.min(u64::MAX as u128) as u64)))
}

fn timespec_from(d: Option<Duration>) -> Timespec {
    d.map_or(Timespec::default(), |d| Timespec::from_nanos(d.as_nanos()))
}

/// alarm(2)
pub fn alarm(t: &mut Task, seconds: u32) -> SysResult {
    let value = (seconds > 0).then(|| Duration::from_secs(seconds.into()));
    let (old, _) = real_timer(&t.kernel, &t.tg).set(value, None);
    Ok(old.map_or(0, |d| {
        let s = d.as_secs() + u64::from(d.subsec_micros() >= 500_000);
        s.max(1)
    }))
}

/// setitimer(2)
pub fn setitimer(t: &mut Task, which: i32, new: UserAddr, old: UserAddr) -> SysResult {
    let v: Itimerval = if new.is_null() {
        Itimerval::default()
    } else {
        t.mm.read_obj(new)?
    };
    let (value, interval) = (timeval_to(v.value)?, timeval_to(v.interval)?);
    let prev = match which {
        libc::ITIMER_REAL => real_timer(&t.kernel, &t.tg).set(value, interval),
        libc::ITIMER_VIRTUAL | libc::ITIMER_PROF => {
            let now = cpu_clock(&t.tg.cpu_times(), which);
            let prev = {
                let mut timers = t.tg.timers.lock().unwrap();
                let slot = if which == libc::ITIMER_VIRTUAL {
                    &mut timers.virt
                } else {
                    &mut timers.prof
                };
                slot.set(now, value, interval)
            };
            cpu_timers::arm(&t.kernel, &t.tg);
            prev
        }
        _ => return Err(Errno::EINVAL),
    };
    if !old.is_null() {
        let o = Itimerval {
            interval: timeval_from(prev.1),
            value: timeval_from(prev.0),
        };
        t.mm.write_obj(old, &o)?;
    }
    Ok(0)
}

/// getitimer(2)
pub fn getitimer(t: &mut Task, which: i32, cur: UserAddr) -> SysResult {
    let (value, interval) = match which {
        libc::ITIMER_REAL => real_timer(&t.kernel, &t.tg).get(),
        libc::ITIMER_VIRTUAL => {
            let now = cpu_clock(&t.tg.cpu_times(), which);
            t.tg.timers.lock().unwrap().virt.get(now)
        }
        libc::ITIMER_PROF => {
            let now = cpu_clock(&t.tg.cpu_times(), which);
            t.tg.timers.lock().unwrap().prof.get(now)
        }
        _ => return Err(Errno::EINVAL),
    };
    let v = Itimerval {
        interval: timeval_from(interval),
        value: timeval_from(value),
    };
    t.mm.write_obj(cur, &v)?;
    Ok(0)
}

/// Converts an `itimerspec` value to a delay from now, on `clock` when `absolute`.
fn delay(clock: i32, ts: Timespec, absolute: bool) -> Result<Option<Duration>, Errno> {
    let d = timespec_to(ts)?;
    if !absolute || d.is_none() {
        return Ok(d);
    }
    let want = ts.to_nanos()?;
    let now = clock_now_nanos(clock)?;
    // An absolute time already past expires at once (the smallest delay).
    Ok(Some(Duration::from_nanos(
        want.saturating_sub(now).clamp(1, u64::MAX as u128) as u64,
    )))
}

/// timer_create(2); a timer on a CPU-time clock expires by that clock as the sentry
/// accounts it ([`crate::kernel::cpu_timers`]).
pub fn timer_create(t: &mut Task, clock: i32, sevp: UserAddr, idp: UserAddr) -> SysResult {
    let cpu = cpu_timer_clock(t, clock)?;
    if cpu.is_none() {
        clock_source(clock)?;
    }
    let ev = if sevp.is_null() {
        None
    } else {
        Some(t.mm.read_obj::<SigEvent>(sevp)?)
    };
    let (notify, signo, value, tid) = match ev {
        None => (SIGEV_SIGNAL, libc::SIGALRM, None, 0),
        Some(e) => (e.notify, e.signo, Some(e.value), e.thread_id),
    };
    let thread = match notify {
        SIGEV_NONE | SIGEV_SIGNAL | SIGEV_THREAD => None,
        SIGEV_THREAD_ID => {
            let tid = t.lookup_pid(tid).ok_or(Errno::EINVAL)?;
            let same = t
                .kernel
                .tree()
                .tasks
                .get(&tid)
                .is_some_and(|h| Arc::ptr_eq(&h.tg, &t.tg));
            if !same {
                return Err(Errno::EINVAL);
            }
            Some(tid)
        }
        _ => return Err(Errno::EINVAL),
    };
    if notify != SIGEV_NONE && !(1..=NSIG).contains(&signo) {
        return Err(Errno::EINVAL);
    }
    // Lock order: the process tree (taken above and by exit) before the timers.
    let mut timers = t.tg.timers.lock().unwrap();
    if timers.posix.len() >= MAX_POSIX_TIMERS {
        return Err(Errno::EAGAIN);
    }
    let id = timers.free_id();
    // Without a sigevent the value is the timer id.
    let event = TimerEvent {
        notify,
        signo,
        value: value.unwrap_or(id as u64),
        thread,
    };
    let timer = PosixTimer::new(&t.kernel, &t.tg, id, clock, cpu, event);
    timers.posix.insert(id, timer);
    drop(timers);
    if let Err(e) = t.mm.write_obj(idp, &id) {
        t.tg.timers.lock().unwrap().posix.remove(&id);
        return Err(e);
    }
    Ok(0)
}

/// Runs `f` on the caller's POSIX timer `id` (with the process's timers locked).
fn with_posix_timer<R>(
    t: &Task,
    id: i32,
    f: impl FnOnce(&mut PosixTimer) -> R,
) -> Result<R, Errno> {
    t.tg.timers
        .lock()
        .unwrap()
        .posix
        .get_mut(&id)
        .map(f)
        .ok_or(Errno::EINVAL)
}

/// The reading of the CPU clock a timer counts on (charging the caller's time so far);
/// None once the clock's thread or process is gone.
fn cpu_clock_now(t: &mut Task, clock: &CpuClock) -> Option<Duration> {
    t.thread_times();
    clock.read()
}

fn write_itimerspec(t: &Task, at: UserAddr, v: (Option<Duration>, Option<Duration>)) -> SysResult {
    if !at.is_null() {
        let s = Itimerspec {
            interval: timespec_from(v.1),
            value: timespec_from(v.0),
        };
        t.mm.write_obj(at, &s)?;
    }
    Ok(0)
}

/// timer_settime(2)
pub fn timer_settime(t: &mut Task, id: i32, flags: i32, new: UserAddr, old: UserAddr) -> SysResult {
    let (clock, cpu) = with_posix_timer(t, id, |p| (p.clock, p.cpu_clock().cloned()))?;
    let v: Itimerspec = t.mm.read_obj(new)?;
    let absolute = flags & TIMER_ABSTIME != 0;
    let interval = timespec_to(v.interval)?;
    let prev = match cpu {
        None => {
            let value = delay(clock, v.value, absolute)?;
            with_posix_timer(t, id, |p| p.set(Duration::ZERO, value, interval))?
        }
        Some(cpu) => {
            let value = timespec_to(v.value)?;
            // Linux refuses to arm a timer whose thread or process was reaped.
            let now = cpu_clock_now(t, &cpu).ok_or(Errno::ESRCH)?;
            // An absolute time already past expires at the next look (the smallest delay).
            let value = value.map(|d| {
                if absolute {
                    d.saturating_sub(now).max(Duration::from_nanos(1))
                } else {
                    d
                }
            });
            let prev = with_posix_timer(t, id, |p| p.set(now, value, interval))?;
            cpu_timers::arm(&t.kernel, &t.tg);
            prev
        }
    };
    write_itimerspec(t, old, prev)
}

/// timer_gettime(2)
pub fn timer_gettime(t: &mut Task, id: i32, cur: UserAddr) -> SysResult {
    let cpu = with_posix_timer(t, id, |p| p.cpu_clock().cloned())?;
    let now = match &cpu {
        Some(c) => cpu_clock_now(t, c),
        None => Some(Duration::ZERO),
    };
    // A timer whose clock's owner is gone reads as disarmed.
    let v = with_posix_timer(t, id, |p| match now {
        Some(now) => p.get(now),
        None => (None, p.get(Duration::ZERO).1),
    })?;
    write_itimerspec(t, cur, v)
}

/// timer_getoverrun(2)
pub fn timer_getoverrun(t: &mut Task, id: i32) -> SysResult {
    with_posix_timer(t, id, |p| p.overrun.load(Ordering::Relaxed) as u64)
}

/// timer_delete(2)
pub fn timer_delete(t: &mut Task, id: i32) -> SysResult {
    let removed = t.tg.timers.lock().unwrap().posix.remove(&id);
    removed.map(|_| 0).ok_or(Errno::EINVAL)
}

/// timerfd_create(2)
pub fn timerfd_create(t: &mut Task, clock: i32, flags: Flags) -> SysResult {
    let allowed = (libc::O_NONBLOCK | libc::O_CLOEXEC) as u64;
    if flags.0 & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    match clock {
        libc::CLOCK_REALTIME
        | libc::CLOCK_MONOTONIC
        | libc::CLOCK_BOOTTIME
        | libc::CLOCK_REALTIME_ALARM
        | libc::CLOCK_BOOTTIME_ALARM => {}
        _ => return Err(Errno::EINVAL),
    }
    let ops = Arc::new(TimerFd::new(&t.kernel.timers, clock));
    let f = OpenFile::of_kind(
        FileKind::TimerFd(ops),
        libc::O_RDWR as u32 | (flags.0 as u32 & libc::O_NONBLOCK as u32),
    );
    let cloexec = flags.0 & libc::O_CLOEXEC as u64 != 0;
    Ok(t.fds.install(f, 0, cloexec, nofile_limit(t))? as u64)
}

/// timerfd_settime(2)
pub fn timerfd_settime(
    t: &mut Task,
    fd: Fd,
    flags: i32,
    new: UserAddr,
    old: UserAddr,
) -> SysResult {
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get(fd.0)?;
    let FileKind::TimerFd(tfd) = f.kind() else {
        return Err(Errno::EINVAL);
    };
    let v: Itimerspec = t.mm.read_obj(new)?;
    let clock = match tfd.clock() {
        libc::CLOCK_REALTIME_ALARM => libc::CLOCK_REALTIME,
        libc::CLOCK_BOOTTIME_ALARM => libc::CLOCK_BOOTTIME,
        c => c,
    };
    let value = delay(clock, v.value, flags & TFD_TIMER_ABSTIME != 0)?;
    let interval = timespec_to(v.interval)?;
    let prev = tfd.set(value, interval);
    write_itimerspec(t, old, prev)
}

/// timerfd_gettime(2)
pub fn timerfd_gettime(t: &mut Task, fd: Fd, cur: UserAddr) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let FileKind::TimerFd(tfd) = f.kind() else {
        return Err(Errno::EINVAL);
    };
    write_itimerspec(t, cur, tfd.get())
}
