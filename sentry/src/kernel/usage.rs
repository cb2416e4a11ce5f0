//! CPU-time and resource-usage accounting (getrusage, wait4's rusage, times, the CPU-time
//! clocks, `/proc/[pid]/stat` utime/stime/cutime/cstime).
//!
//! Each task splits its time as gVisor does. **User time** is the wall-clock time between
//! switching into the application (the platform's `Context::switch`) and coming back; it
//! includes time the host scheduler gave the stub thread to others, so on a loaded host it
//! over-reports, never under-reports. **System time** is the time the task's sentry thread
//! works outside that switch: handling system calls and faults, delivering signals. Time a
//! task sleeps in a blocking system call (in its [`Waiter`](crate::waiter::Waiter), which
//! keeps the total) costs no host CPU, so it counts as neither, as on Linux. The platform's
//! own work inside `switch` (ptrace stops, futex calls, the systrap sentry polling for the
//! stub) is left out of both.
//!
//! No host call is made per switch: each stretch in the sentry is timed with the sandbox's
//! monotonic clock read through the TSC without a lock ([`now_ns`]), less its waiter's sleep. A stretch of [`SHORT_SENTRY_STRETCH`] or more
//! (a costly or blocking call, where one more host call does not matter) also reads the
//! thread's host CPU clock (`CLOCK_THREAD_CPUTIME_ID`, a host system call: the vDSO does not
//! serve CPU clocks) and is charged no more than the CPU time the thread used since the last
//! such read that was not already charged. So system time never runs ahead of the sentry
//! thread's host CPU time by more than the short stretches since the last long one, and a
//! sleep outside the waiter (a contended lock, a slow host call, the thread preempted) is
//! caught at the next long stretch. Reading the CPU clock on every switch instead, to
//! leave the platform's part out exactly, cost 0.65-0.7 µs per system call on the
//! development VM, a fifth of a patched call.
//!
//! A thread group's own times are the sum of its live threads' and those of its exited
//! threads; its children's times (`RUSAGE_CHILDREN`, `cutime`/`cstime`) are the totals of the
//! children it reaped with a wait, each including that child's own reaped children. Children
//! reaped without a wait (SIGCHLD ignored, SA_NOCLDWAIT, no parent) are not added, as on
//! Linux.
//!
//! `ru_maxrss` is a sampled high-water mark of the resident set: the memory manager keeps no
//! peak, so the RSS is sampled when a thread exits, before execve replaces the address space,
//! and when the process asks (getrusage). Other `rusage` fields are 0.
//!
//! # Lock order
//! `ThreadGroup::sig` → `ThreadGroup::usage` (a leaf). A [`TaskClock`] is a sequence lock
//! its task's thread writes and anyone reads without blocking.

use std::ops::{Add, AddAssign};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use crate::vdso::clock;

/// Clock ticks per second as `times(2)` and `/proc` count them (USER_HZ).
pub const USER_HZ: u64 = 100;

/// User and system CPU time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: Duration,
    pub sys: Duration,
}

impl CpuTimes {
    /// User plus system time (the "PROF" and "SCHED" CPU clocks).
    pub fn total(self) -> Duration {
        self.user + self.sys
    }
}

impl Add for CpuTimes {
    type Output = CpuTimes;
    fn add(self, o: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user + o.user,
            sys: self.sys + o.sys,
        }
    }
}

impl AddAssign for CpuTimes {
    fn add_assign(&mut self, o: CpuTimes) {
        *self = *self + o;
    }
}

/// Converts a duration to clock ticks ([`USER_HZ`]).
pub fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / (1_000_000_000 / u128::from(USER_HZ))) as u64
}

/// What `getrusage` and `wait4` report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rusage {
    pub times: CpuTimes,
    /// Peak resident set in KiB (sampled; see the module documentation).
    pub maxrss_kb: u64,
}

impl Rusage {
    /// Adds `o`'s times and keeps the larger peak (how Linux merges a child's usage).
    pub fn merge(&mut self, o: Rusage) {
        self.times += o.times;
        self.maxrss_kb = self.maxrss_kb.max(o.maxrss_kb);
    }

    /// `struct rusage` on x86-64: `ru_utime`, `ru_stime` (timevals), then 14 longs of which
    /// `ru_maxrss` is the first.
    pub fn to_abi(self) -> [i64; 18] {
        let mut r = [0i64; 18];
        let tv = |d: Duration| (d.as_secs() as i64, i64::from(d.subsec_micros()));
        (r[0], r[1]) = tv(self.times.user);
        (r[2], r[3]) = tv(self.times.sys);
        r[4] = self.maxrss_kb as i64;
        r
    }
}

/// The read and write calls of one task and the bytes they moved (`/proc/[pid]/io`'s
/// `rchar`, `wchar`, `syscr`, `syscw`): written by the task's own thread, read by anyone.
#[derive(Debug, Default)]
pub struct IoCounts {
    rchar: AtomicU64,
    wchar: AtomicU64,
    syscr: AtomicU64,
    syscw: AtomicU64,
}

/// A sum of [`IoCounts`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IoTotals {
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
}

impl AddAssign for IoTotals {
    fn add_assign(&mut self, o: IoTotals) {
        self.rchar += o.rchar;
        self.wchar += o.wchar;
        self.syscr += o.syscr;
        self.syscw += o.syscw;
    }
}

impl IoCounts {
    /// A read call that reached a file and moved `bytes`.
    pub fn read(&self, bytes: usize) {
        self.rchar.fetch_add(bytes as u64, Ordering::Relaxed);
        self.syscr.fetch_add(1, Ordering::Relaxed);
    }

    /// A write call that reached a file and moved `bytes`.
    pub fn write(&self, bytes: usize) {
        self.wchar.fetch_add(bytes as u64, Ordering::Relaxed);
        self.syscw.fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> IoTotals {
        IoTotals {
            rchar: self.rchar.load(Ordering::Relaxed),
            wchar: self.wchar.load(Ordering::Relaxed),
            syscr: self.syscr.load(Ordering::Relaxed),
            syscw: self.syscw.load(Ordering::Relaxed),
        }
    }
}

/// The CPU time of one task: written by the task's own thread only (its [`Accountant`]),
/// read by anyone. A sequence lock, not a mutex: the writer, which updates it twice per
/// switch, makes plain stores instead of two locked instructions per update, and a reader
/// retries while an update is under way, so it never sees one half done (a CPU-time clock
/// must not go back).
#[derive(Debug, Default)]
pub struct TaskClock {
    /// Odd while the owner updates the fields.
    seq: AtomicU64,
    /// Completed time in the application, ns.
    user: AtomicU64,
    /// System time charged so far, ns.
    sys: AtomicU64,
    /// When the task switched into the application ([`now_ns`]); 0 while it is in the
    /// sentry.
    app_since: AtomicU64,
}

/// The accounting clock, in nanoseconds: the sandbox's CLOCK_MONOTONIC read through the TSC
/// ([`clock::monotonic_ns`]: an unfenced counter read and a multiplication, no call; 14-24
/// against 35-60 ns for the host's vDSO on the development VM, and accounting reads it
/// twice per switch), else the host's CLOCK_MONOTONIC (before the TSC is calibrated, without a
/// usable one, during a refresh). The sandbox's clock never runs behind the host's, so a
/// later reading can be a few microseconds earlier than one before it: every difference
/// saturates. Never 0 (0 is "not in the application" in [`TaskClock::app_since`]).
fn now_ns() -> u64 {
    clock::monotonic_ns()
        .unwrap_or_else(|| {
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map_or(0, |t| Duration::from(t).as_nanos() as u64)
        })
        .max(1)
}

/// What a [`TaskClock`] holds, as one consistent snapshot.
#[derive(Debug, Clone, Copy)]
struct ClockState {
    user: u64,
    sys: u64,
    /// [`TaskClock::app_since`].
    app_since: u64,
}

impl TaskClock {
    /// Whether the task is running application code now (what a CPU-time tick charges).
    pub fn in_app(&self) -> bool {
        self.app_since.load(Ordering::Acquire) != 0
    }

    /// The task's times now, counting an application run in progress.
    pub fn times(&self) -> CpuTimes {
        let s = self.read();
        let running = match s.app_since {
            0 => 0,
            since => now_ns().saturating_sub(since),
        };
        CpuTimes {
            user: Duration::from_nanos(s.user + running),
            sys: Duration::from_nanos(s.sys),
        }
    }

    /// A consistent snapshot (retried while the owner is updating).
    fn read(&self) -> ClockState {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before.is_multiple_of(2) {
                let user = self.user.load(Ordering::Relaxed);
                let sys = self.sys.load(Ordering::Relaxed);
                let app_since = self.app_since.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return ClockState {
                        user,
                        sys,
                        app_since,
                    };
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Adds `user` and `sys` ns and sets `app_since` (the owning task's thread only: one
    /// writer).
    fn update(&self, user: u64, sys: u64, app_since: u64) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        if user != 0 {
            let total = self.user.load(Ordering::Relaxed) + user;
            self.user.store(total, Ordering::Relaxed);
        }
        if sys != 0 {
            let total = self.sys.load(Ordering::Relaxed) + sys;
            self.sys.store(total, Ordering::Relaxed);
        }
        self.app_since.store(app_since, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

/// The host CPU time of the calling thread, ns.
fn thread_cpu_now() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0, |t| Duration::from(t).as_nanos() as u64)
}

/// A stretch in the sentry between two switches shorter than this (ns) is charged as system
/// time by the monotonic clock alone: it cannot have slept for long, and reading the CPU
/// clock is a host system call (0.65-0.7 µs on the development VM), as much as the sentry's
/// whole work for a cheap system call.
const SHORT_SENTRY_STRETCH: u64 = 20_000;

/// The task thread's side of its [`TaskClock`]: when (by [`now_ns`]) the task last came back
/// from the application, how long its waiter had slept by then, and where the thread's host
/// CPU clock stood at the last read together with the system time charged since. All in
/// nanoseconds: the per-switch arithmetic is a few integer operations.
#[derive(Debug)]
pub struct Accountant {
    /// The thread's host CPU clock at the last read.
    cpu_mark: u64,
    /// System time charged since `cpu_mark` was read.
    charged_since_mark: u64,
    /// When the current stretch in the sentry began.
    marked_at: u64,
    /// The task's waiter's total sleep when the current stretch began.
    slept_at_mark: u64,
}

/// A waiter's total sleep in nanoseconds.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Accountant {
    /// Starts accounting on the calling (task) thread; `slept` is its waiter's
    /// [`Waiter::slept`](crate::waiter::Waiter::slept).
    pub fn start(slept: Duration) -> Accountant {
        Accountant {
            cpu_mark: thread_cpu_now(),
            charged_since_mark: 0,
            marked_at: now_ns(),
            slept_at_mark: nanos(slept),
        }
    }

    /// The system time (ns) of the stretch in the sentry from the mark to `now`: its
    /// monotonic time less what the task slept in its waiter; a stretch as long as
    /// [`SHORT_SENTRY_STRETCH`] is also capped by the thread's host CPU time since the last
    /// read that has not been charged yet (which covers sleeps outside the waiter: host
    /// calls, contended locks, a preempted thread).
    fn stretch(&mut self, now: u64, slept: Duration) -> u64 {
        let slept = nanos(slept);
        let wall = now.saturating_sub(self.marked_at);
        let working = wall.saturating_sub(slept.saturating_sub(self.slept_at_mark));
        let spent = if wall < SHORT_SENTRY_STRETCH {
            self.charged_since_mark += working;
            working
        } else {
            let cpu = thread_cpu_now();
            let unclaimed = cpu
                .saturating_sub(self.cpu_mark)
                .saturating_sub(self.charged_since_mark);
            self.cpu_mark = cpu;
            self.charged_since_mark = 0;
            working.min(unclaimed)
        };
        self.marked_at = now;
        self.slept_at_mark = slept;
        spent
    }

    /// Charges the sentry time since the last mark as system time (the thread is in the
    /// sentry); `slept` is the task's waiter's total sleep.
    pub fn charge_sys(&mut self, clock: &TaskClock, slept: Duration) {
        let spent = self.stretch(now_ns(), slept);
        let app_since = clock.app_since.load(Ordering::Relaxed);
        clock.update(0, spent, app_since);
    }

    /// The task is about to switch into the application: charges the stretch in the sentry
    /// since it came back (see [`Accountant::stretch`]).
    pub fn enter_app(&mut self, clock: &TaskClock, slept: Duration) {
        let now = now_ns();
        let spent = self.stretch(now, slept);
        clock.update(0, spent, now);
    }

    /// The task came back from the application. No host call: the platform's work in the
    /// switch is charged to neither side unless a long stretch's CPU cap lets some of it
    /// through (see [`Accountant::stretch`]).
    pub fn leave_app(&mut self, clock: &TaskClock, slept: Duration) {
        let now = now_ns();
        let since = clock.app_since.load(Ordering::Relaxed);
        let user = if since == 0 {
            0
        } else {
            now.saturating_sub(since)
        };
        clock.update(user, 0, 0);
        self.marked_at = now;
        self.slept_at_mark = nanos(slept);
    }
}

/// A thread group's accumulated usage; the live threads' part is read from their clocks.
#[derive(Debug, Default)]
pub struct GroupUsage {
    /// Times of the group's exited threads.
    pub exited: CpuTimes,
    /// Sampled peak resident set of the process, KiB.
    pub maxrss_kb: u64,
    /// Reaped, waited-for children (each with its own reaped children).
    pub children: Rusage,
    /// Read and write calls of the group's exited threads.
    pub exited_io: IoTotals,
}

impl GroupUsage {
    /// Records a resident-set sample.
    pub fn sample_rss(&mut self, bytes: u64) {
        self.maxrss_kb = self.maxrss_kb.max(bytes / 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A reader never sees an update of the clock half done: here every update adds the same
    /// to user and system time and moves `app_since` with them, so any snapshot that mixes two
    /// updates shows them apart.
    #[test]
    fn readers_never_see_an_update_half_done() {
        let c = std::sync::Arc::new(TaskClock::default());
        // Before the reader starts: the default snapshot (all zero) is not of this shape.
        c.update(0, 0, 1);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) || reads < 1000 {
                    let s = c.read();
                    assert_eq!(s.user, s.sys);
                    assert_eq!(s.app_since, s.user + 1, "{s:?}");
                    reads += 1;
                }
            })
        };
        for n in 1..=1_000_000u64 {
            c.update(1, 1, n + 1);
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    }

    #[test]
    fn user_time_runs_only_in_the_application() {
        let c = TaskClock::default();
        let mut a = Accountant::start(Duration::ZERO);
        a.enter_app(&c, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(30));
        let mid = c.times();
        assert!(mid.user >= Duration::from_millis(30), "{mid:?}");
        a.leave_app(&c, Duration::ZERO);
        let after = c.times();
        assert!(after.user >= mid.user);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            c.times().user,
            after.user,
            "sleeping in the sentry is not user time"
        );
    }

    #[test]
    fn system_time_is_host_cpu_time_outside_the_application() {
        let c = TaskClock::default();
        let mut a = Accountant::start(Duration::ZERO);
        // 50 ms of this thread's CPU time, however long a loaded machine takes to give it.
        let start = thread_cpu_now();
        let mut x = 0u64;
        while thread_cpu_now() - start < 50_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        a.charge_sys(&c, Duration::ZERO);
        let busy = c.times().sys;
        assert!(busy >= Duration::from_millis(10), "{busy:?}");
        std::thread::sleep(Duration::from_millis(50));
        a.charge_sys(&c, Duration::ZERO);
        let idle = c.times().sys - busy;
        assert!(idle < Duration::from_millis(20), "sleep charged {idle:?}");
        assert_eq!(c.times().user, Duration::ZERO);
    }

    #[test]
    fn sleeping_between_switches_is_not_system_time() {
        let c = TaskClock::default();
        let mut a = Accountant::start(Duration::ZERO);
        a.enter_app(&c, Duration::ZERO);
        a.leave_app(&c, Duration::ZERO);
        let before = c.times().sys;
        // A stretch in the sentry long enough to be charged by the CPU clock: a sleep.
        std::thread::sleep(Duration::from_millis(50));
        a.enter_app(&c, Duration::ZERO);
        let slept = c.times().sys - before;
        assert!(slept < Duration::from_millis(20), "sleep charged {slept:?}");
        // Short stretches are charged too (by the monotonic clock), never more than they took.
        let before = c.times().sys;
        let started = Instant::now();
        a.leave_app(&c, Duration::ZERO);
        a.enter_app(&c, Duration::ZERO);
        let took = started.elapsed();
        assert!(c.times().sys - before <= took);
    }

    #[test]
    fn waiting_in_the_waiter_is_not_system_time() {
        let c = TaskClock::default();
        let w = crate::waiter::Waiter::new();
        let mut a = Accountant::start(w.slept());
        a.enter_app(&c, w.slept());
        a.leave_app(&c, w.slept());
        let before = c.times().sys;
        let start = thread_cpu_now();
        let mut x = 0u64;
        while thread_cpu_now() - start < 30_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(!w.wait(Some(Instant::now() + Duration::from_millis(50))));
        assert!(w.slept() >= Duration::from_millis(50));
        a.enter_app(&c, w.slept());
        let charged = c.times().sys - before;
        assert!(charged >= Duration::from_millis(10), "{charged:?}");
        assert!(
            charged < Duration::from_millis(60),
            "sleep charged: {charged:?}"
        );
    }

    #[test]
    fn rusage_layout_and_merge() {
        let mut r = Rusage {
            times: CpuTimes {
                user: Duration::from_micros(1_500_002),
                sys: Duration::from_millis(250),
            },
            maxrss_kb: 10,
        };
        r.merge(Rusage {
            times: CpuTimes {
                user: Duration::from_secs(1),
                sys: Duration::ZERO,
            },
            maxrss_kb: 7,
        });
        let abi = r.to_abi();
        assert_eq!(&abi[..5], &[2, 500_002, 0, 250_000, 10]);
        assert!(abi[5..].iter().all(|&v| v == 0));
        assert_eq!(ticks(Duration::from_millis(1234)), 123);
    }
}
