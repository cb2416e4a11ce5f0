//! CPU-time and resource-usage accounting (getrusage, wait4's rusage, times, the CPU-time
//! clocks, `/proc/[pid]/stat` utime/stime/cutime/cstime).
//!
//! Each task splits its time as gVisor does. **User time** is the wall-clock time between
//! switching into the application (the platform's `Context::switch`) and coming back; it
//! includes time the host scheduler gave the stub thread to others, so on a loaded host it
//! over-reports, never under-reports. **System time** is the host CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) the task's sentry thread uses outside that switch: handling
//! system calls and faults, delivering signals. Time a task sleeps in a blocking system call
//! costs no host CPU, so it counts as neither, as on Linux. The platform's own work inside
//! `switch` (ptrace stops, the systrap sentry spinning for the stub) is left out of both.
//! The cost is one read of the thread's host CPU clock per switch (a host system call, the
//! vDSO does not serve CPU clocks: about 350 ns) and two of the monotonic clock (vDSO): a
//! stretch in the sentry shorter than [`SHORT_SENTRY_STRETCH`] (a cheap system call) is
//! charged by the monotonic clock, which cannot count a sleep of any length there and saves
//! the second read; longer stretches read the CPU clock again.
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
//! `ThreadGroup::sig` → `ThreadGroup::usage` → `TaskClock::state` (each a leaf of what
//! precedes it).

use std::ops::{Add, AddAssign};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// The CPU time of one task: written by the task's own thread, read by anyone.
#[derive(Debug, Default)]
pub struct TaskClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    /// Completed time in the application.
    user: Duration,
    /// System time charged so far.
    sys: Duration,
    /// When the task switched into the application; None while it is in the sentry.
    app_since: Option<Instant>,
}

impl TaskClock {
    /// Whether the task is running application code now (what a CPU-time tick charges).
    pub fn in_app(&self) -> bool {
        self.state.lock().unwrap().app_since.is_some()
    }

    /// The task's times now, counting an application run in progress.
    pub fn times(&self) -> CpuTimes {
        let s = self.state.lock().unwrap();
        let running = s.app_since.map_or(Duration::ZERO, |t| t.elapsed());
        CpuTimes {
            user: s.user + running,
            sys: s.sys,
        }
    }
}

/// The host CPU time of the calling thread.
fn thread_cpu_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, Duration::from)
}

/// A stretch in the sentry between two switches shorter than this is charged as system time
/// by the monotonic clock instead of the thread's CPU clock: it cannot have slept for long,
/// and reading the CPU clock is a host system call (about 350 ns here), as much as the
/// sentry's whole work for a cheap system call.
const SHORT_SENTRY_STRETCH: Duration = Duration::from_micros(20);

/// The task thread's side of its [`TaskClock`]: where the thread's host CPU clock stood when
/// system time was last charged, and when (monotonic) that was.
#[derive(Debug)]
pub struct Accountant {
    sys_mark: Duration,
    marked_at: Instant,
}

impl Accountant {
    /// Starts accounting on the calling (task) thread.
    pub fn start() -> Accountant {
        Accountant {
            sys_mark: thread_cpu_now(),
            marked_at: Instant::now(),
        }
    }

    /// Charges the sentry time since the last mark as system time.
    pub fn charge_sys(&mut self, clock: &TaskClock) {
        let now = thread_cpu_now();
        let spent = now.saturating_sub(self.sys_mark);
        self.sys_mark = now;
        self.marked_at = Instant::now();
        clock.state.lock().unwrap().sys += spent;
    }

    /// The task is about to switch into the application. A short stretch in the sentry is
    /// charged by the monotonic clock ([`SHORT_SENTRY_STRETCH`]), a longer one (which may
    /// have slept) by the thread's CPU clock.
    pub fn enter_app(&mut self, clock: &TaskClock) {
        let now = Instant::now();
        let wall = now.saturating_duration_since(self.marked_at);
        let spent = if wall < SHORT_SENTRY_STRETCH {
            wall
        } else {
            thread_cpu_now().saturating_sub(self.sys_mark)
        };
        let mut s = clock.state.lock().unwrap();
        s.sys += spent;
        s.app_since = Some(now);
    }

    /// The task came back from the application.
    pub fn leave_app(&mut self, clock: &TaskClock) {
        let now = Instant::now();
        {
            let mut s = clock.state.lock().unwrap();
            if let Some(t) = s.app_since.take() {
                s.user += now.saturating_duration_since(t);
            }
        }
        self.sys_mark = thread_cpu_now();
        self.marked_at = now;
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

    #[test]
    fn user_time_runs_only_in_the_application() {
        let c = TaskClock::default();
        let mut a = Accountant::start();
        a.enter_app(&c);
        std::thread::sleep(Duration::from_millis(30));
        let mid = c.times();
        assert!(mid.user >= Duration::from_millis(30), "{mid:?}");
        a.leave_app(&c);
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
        let mut a = Accountant::start();
        // 50 ms of this thread's CPU time, however long a loaded machine takes to give it.
        let start = thread_cpu_now();
        let mut x = 0u64;
        while thread_cpu_now() - start < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        a.charge_sys(&c);
        let busy = c.times().sys;
        assert!(busy >= Duration::from_millis(10), "{busy:?}");
        std::thread::sleep(Duration::from_millis(50));
        a.charge_sys(&c);
        let idle = c.times().sys - busy;
        assert!(idle < Duration::from_millis(20), "sleep charged {idle:?}");
        assert_eq!(c.times().user, Duration::ZERO);
    }

    #[test]
    fn sleeping_between_switches_is_not_system_time() {
        let c = TaskClock::default();
        let mut a = Accountant::start();
        a.enter_app(&c);
        a.leave_app(&c);
        let before = c.times().sys;
        // A stretch in the sentry long enough to be charged by the CPU clock: a sleep.
        std::thread::sleep(Duration::from_millis(50));
        a.enter_app(&c);
        let slept = c.times().sys - before;
        assert!(slept < Duration::from_millis(20), "sleep charged {slept:?}");
        // Short stretches are charged too (by the monotonic clock), never more than they took.
        let before = c.times().sys;
        let started = Instant::now();
        a.leave_app(&c);
        a.enter_app(&c);
        let took = started.elapsed();
        assert!(c.times().sys - before <= took);
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
