//! What a process's CPU time drives: ITIMER_VIRTUAL (SIGVTALRM), ITIMER_PROF (SIGPROF),
//! RLIMIT_CPU (SIGXCPU at the soft limit and every CPU second after it, SIGKILL at the hard
//! limit), and POSIX timers on CPU-time clocks (`timer_create` on CLOCK_PROCESS_CPUTIME_ID,
//! CLOCK_THREAD_CPUTIME_ID or a `clock_getcpuclockid` clock).
//!
//! CPU time accrues only while threads run, and an application thread running its own code
//! never enters the sentry, so these are checked from outside: while any of them is armed,
//! a wall-clock timer samples the process's CPU clocks every [`CPU_TICK`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::signal::SigInfo;
use super::timer::{Action, PosixDeadline, Timer, CPU_TICK};
use super::usage::CpuTimes;
use super::{Kernel, TaskHandle, ThreadGroup};

/// Whose CPU time a [`CpuClock`] reads. Weak: a timer does not keep its clock's owner.
#[derive(Debug, Clone)]
pub enum CpuClockOwner {
    Thread(Weak<TaskHandle>),
    Process(Weak<ThreadGroup>),
}

/// A CPU-time clock a POSIX timer counts on: a thread's or a process's user time
/// (CPUCLOCK_VIRT) or user plus system time (CPUCLOCK_PROF, CPUCLOCK_SCHED).
#[derive(Debug, Clone)]
pub struct CpuClock {
    pub owner: CpuClockOwner,
    pub user_only: bool,
}

impl CpuClock {
    /// The clock's reading; None once its thread or process is gone (reaped).
    pub fn read(&self) -> Option<Duration> {
        let times = match &self.owner {
            CpuClockOwner::Thread(h) => h.upgrade()?.clock.times(),
            CpuClockOwner::Process(tg) => tg.upgrade()?.cpu_times(),
        };
        Some(if self.user_only {
            times.user
        } else {
            times.total()
        })
    }
}

/// The CPU clock an interval timer counts: user time (ITIMER_VIRTUAL) or user plus system
/// time (ITIMER_PROF, and RLIMIT_CPU).
pub fn cpu_clock(times: &CpuTimes, which: i32) -> Duration {
    if which == libc::ITIMER_VIRTUAL {
        times.user
    } else {
        times.total()
    }
}

/// RLIMIT_CPU's soft and hard limits, in seconds (u64::MAX: none).
fn cpu_limit(tg: &ThreadGroup) -> (u64, u64) {
    let l = tg.limits.lock().unwrap()[libc::RLIMIT_CPU as usize];
    (l.cur, l.max)
}

/// Whether anything needs the sampler: an armed CPU interval timer, an armed POSIX timer on
/// a CPU clock, or a finite RLIMIT_CPU (Linux checks the hard limit only when there is a
/// soft one).
fn needed(tg: &ThreadGroup, timers: &super::timer::ProcessTimers) -> bool {
    timers.virt.armed()
        || timers.prof.armed()
        || timers.posix.values().any(|p| p.cpu_armed())
        || cpu_limit(tg).0 != libc::RLIM_INFINITY
}

/// Starts the process's CPU-time sampler unless it runs or nothing needs it. Called when an
/// interval timer is set, RLIMIT_CPU changes, and a process starts with limits of its own
/// (boot, fork, restore). The sampler stops itself once nothing needs it.
pub fn arm(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>) {
    let mut timers = tg.timers.lock().unwrap();
    if timers.cpu_sampler.is_some() || !needed(tg, &timers) {
        return;
    }
    let k = Arc::downgrade(kernel);
    let g = Arc::downgrade(tg);
    let ticks = AtomicU64::new(0);
    let action: Action = Box::new(move |_| {
        let (Some(k), Some(g)) = (k.upgrade(), g.upgrade()) else {
            return;
        };
        sample(&k, &g, ticks.fetch_add(1, Ordering::Relaxed));
    });
    let sampler = Timer::new(&kernel.timers, action);
    sampler.set(Some(CPU_TICK), Some(CPU_TICK));
    timers.cpu_sampler = Some(sampler);
}

/// One tick of the sampler.
///
/// The interval timers: each signal is queued once however many periods passed (a pending
/// standard signal is not queued twice on Linux either). As Linux, where the tick that
/// expires the timer charges the thread it interrupts, the signal goes to a thread running
/// application code (taking turns among them, so busy threads share the signals), else to
/// the process.
///
/// RLIMIT_CPU, as Linux's `check_process_timers`: at the hard limit SIGKILL; at the soft
/// limit SIGXCPU, and the soft limit moves one second on (while below the hard one), so the
/// signal comes again every CPU second.
fn sample(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>, tick: u64) {
    let times = tg.cpu_times();
    // The POSIX timers' clocks are read without the timers lock held (a process clock takes
    // its group's `sig` lock).
    let posix_clocks: Vec<(i32, CpuClock)> = {
        let timers = tg.timers.lock().unwrap();
        timers
            .posix
            .iter()
            .filter(|(_, p)| p.cpu_armed())
            .filter_map(|(&id, p)| Some((id, p.cpu_clock()?.clone())))
            .collect()
    };
    let posix_now: Vec<(i32, Duration)> = posix_clocks
        .into_iter()
        .filter_map(|(id, c)| Some((id, c.read()?)))
        .collect();
    let (virt, prof, posix_fired, idle) = {
        let mut timers = tg.timers.lock().unwrap();
        let virt = timers.virt.expire(cpu_clock(&times, libc::ITIMER_VIRTUAL));
        let prof = timers.prof.expire(cpu_clock(&times, libc::ITIMER_PROF));
        let mut posix_fired = Vec::new();
        for (id, now) in posix_now {
            if let Some(PosixDeadline::Cpu { itimer, action, .. }) =
                timers.posix.get_mut(&id).map(|p| &mut p.deadline)
            {
                let count = itimer.expire(now);
                if count > 0 {
                    posix_fired.push((action.clone(), count));
                }
            }
        }
        let sampler = if needed(tg, &timers) {
            None
        } else {
            timers.cpu_sampler.take()
        };
        (virt, prof, posix_fired, sampler)
    };
    if let Some(sampler) = idle {
        sampler.set(None, None);
    }
    for (action, count) in posix_fired {
        action(count);
    }
    let running: Vec<_> = tg
        .sig()
        .threads
        .values()
        .filter(|t| t.handle.clock.in_app())
        .map(|t| t.handle.clone())
        .collect();
    // Linux checks the limit on a tick that interrupts one of the process's threads: a
    // process blocked in the sentry (waiting, sleeping) is not signalled until it runs.
    let limit_signal = if running.is_empty() {
        None
    } else {
        let mut limits = tg.limits.lock().unwrap();
        let l = &mut limits[libc::RLIMIT_CPU as usize];
        let used = times.total();
        if l.cur == libc::RLIM_INFINITY {
            None
        } else if l.max != libc::RLIM_INFINITY && used >= Duration::from_secs(l.max) {
            Some(libc::SIGKILL)
        } else if used >= Duration::from_secs(l.cur) {
            if l.cur < l.max {
                l.cur += 1;
            }
            Some(libc::SIGXCPU)
        } else {
            None
        }
    };
    if virt == 0 && prof == 0 && limit_signal.is_none() {
        return;
    }
    let tree = kernel.tree();
    if let Some(signo) = limit_signal {
        tree.send_group(tg, SigInfo::kernel(signo), true);
    }
    for (count, signo) in [(virt, libc::SIGVTALRM), (prof, libc::SIGPROF)] {
        if count == 0 {
            continue;
        }
        let info = SigInfo::kernel(signo);
        match running.len() {
            0 => tree.send_group(tg, info, false),
            n => tree.send_thread(&running[(tick % n as u64) as usize], info, false),
        }
    }
}
