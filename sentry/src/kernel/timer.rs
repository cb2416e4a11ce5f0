//! Timers: interval timers (alarm, setitimer), POSIX timers, timerfds.
//!
//! Every armed [`Timer`] has an entry in the kernel's [`TimerService`]: one host thread that
//! sleeps until the earliest deadline and runs the expired timer's action (queue a signal,
//! bump a timerfd counter). Re-arming bumps the timer's generation, so stale heap entries are
//! skipped instead of removed. A periodic timer that fell behind reports the missed periods
//! as one expiration count (the overrun), as Linux does.
//!
//! # Lock order
//! `TimerService::heap` and `Timer::state` are never held together: the service pops an
//! entry, releases the heap, then fires the timer; a timer arms by releasing its own state
//! before pushing. Actions run with neither held.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::cpu_timers::CpuClock;
use super::signal::{Pending, SigInfo, SIGRTMIN, SI_TIMER};
use super::{Kernel, ThreadGroup};
use crate::abi::Errno;
use crate::vfs::IoDst;
use crate::vfs::{Context, FileOps, OpenFile, Stat, TimerFdFile};
use crate::waiter::WaitQueue;

/// What an expiring timer does with its expiration count (at least 1).
pub type Action = Box<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, Default, Clone, Copy)]
struct TimerState {
    deadline: Option<Instant>,
    interval: Option<Duration>,
    generation: u64,
}

/// One timer: a deadline, an optional period, and an action.
pub struct Timer {
    state: Mutex<TimerState>,
    action: Action,
    service: Arc<TimerService>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("state", &*self.state.lock().unwrap())
            .finish_non_exhaustive()
    }
}

impl Timer {
    pub fn new(service: &Arc<TimerService>, action: Action) -> Arc<Timer> {
        Arc::new(Timer {
            state: Mutex::new(TimerState::default()),
            action,
            service: service.clone(),
        })
    }

    /// Arms the timer to expire after `value` (None or zero: disarm), then every `interval`.
    /// Returns the previous setting as [`Timer::get`] does.
    pub fn set(
        self: &Arc<Self>,
        value: Option<Duration>,
        interval: Option<Duration>,
    ) -> (Option<Duration>, Option<Duration>) {
        let now = Instant::now();
        let (old, entry) = {
            let mut s = self.state.lock().unwrap();
            let old = remaining(&s, now);
            s.generation += 1;
            s.interval = interval.filter(|d| !d.is_zero());
            s.deadline = value.filter(|d| !d.is_zero()).map(|d| {
                now.checked_add(d)
                    .unwrap_or(now + Duration::from_secs(1 << 40))
            });
            (old, s.deadline.map(|d| (d, s.generation)))
        };
        if let Some((at, generation)) = entry {
            self.service.push(Entry {
                at,
                generation,
                timer: Arc::downgrade(self),
            });
        }
        old
    }

    /// Time left until the next expiration (None: disarmed) and the period.
    pub fn get(&self) -> (Option<Duration>, Option<Duration>) {
        remaining(&self.state.lock().unwrap(), Instant::now())
    }

    fn fire(self: &Arc<Self>, generation: u64) {
        let now = Instant::now();
        let (count, next) = {
            let mut s = self.state.lock().unwrap();
            let Some(deadline) = s.deadline else { return };
            if s.generation != generation || now < deadline {
                return;
            }
            match s.interval {
                Some(iv) => {
                    let late = (now - deadline).as_nanos() / iv.as_nanos().max(1);
                    let count = 1 + late.min(u64::MAX as u128 - 1) as u64;
                    let next = deadline + iv * (count.min(u32::MAX as u64) as u32);
                    s.deadline = Some(next);
                    (count, Some(next))
                }
                None => {
                    s.deadline = None;
                    (1, None)
                }
            }
        };
        if let Some(at) = next {
            self.service.push(Entry {
                at,
                generation,
                timer: Arc::downgrade(self),
            });
        }
        (self.action)(count);
    }
}

fn remaining(s: &TimerState, now: Instant) -> (Option<Duration>, Option<Duration>) {
    let left = s.deadline.map(|d| {
        // An armed timer never reports zero (that would read as disarmed).
        d.saturating_duration_since(now)
            .max(Duration::from_nanos(1))
    });
    (left, s.interval)
}

struct Entry {
    at: Instant,
    generation: u64,
    timer: Weak<Timer>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

/// The thread that fires timers.
#[derive(Default)]
pub struct TimerService {
    heap: Mutex<Heap>,
    cv: Condvar,
}

#[derive(Default)]
struct Heap {
    entries: BinaryHeap<Reverse<Entry>>,
    started: bool,
}

impl std::fmt::Debug for TimerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerService").finish_non_exhaustive()
    }
}

impl TimerService {
    fn push(self: &Arc<Self>, e: Entry) {
        let mut h = self.heap.lock().unwrap();
        h.entries.push(Reverse(e));
        if !h.started {
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("timers".into())
                .stack_size(256 << 10)
                .spawn(move || {
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.run()));
                    if let Err(payload) = ran {
                        super::task::abort_after_panic("the timer thread", payload.as_ref());
                    }
                });
            match spawned {
                Ok(_) => h.started = true,
                Err(e) => log::error!("starting the timer thread: {e}"),
            }
        }
        drop(h);
        self.cv.notify_one();
    }

    fn run(&self) {
        let mut h = self.heap.lock().unwrap();
        loop {
            let now = Instant::now();
            match h.entries.peek() {
                None => h = self.cv.wait(h).unwrap(),
                Some(Reverse(e)) if e.at > now => {
                    let wait = e.at - now;
                    h = self.cv.wait_timeout(h, wait).unwrap().0;
                }
                Some(_) => {
                    let Some(Reverse(e)) = h.entries.pop() else {
                        continue;
                    };
                    drop(h);
                    if let Some(t) = e.timer.upgrade() {
                        t.fire(e.generation);
                    }
                    h = self.heap.lock().unwrap();
                }
            }
        }
    }
}

/// How often armed CPU-time timers are checked. CPU time accrues only while threads run,
/// and an application thread running its own code never enters the sentry, so the check
/// is driven from outside, at Linux's usual tick granularity (CONFIG_HZ=100).
pub const CPU_TICK: Duration = Duration::from_millis(10);

/// An interval timer on a CPU clock (ITIMER_VIRTUAL, ITIMER_PROF): the clock reading at
/// which it expires next, and its period.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CpuItimer {
    pub deadline: Option<Duration>,
    pub interval: Option<Duration>,
}

impl CpuItimer {
    /// Arms it to expire `value` after the clock's reading `now` (None: disarm), then every
    /// `interval`; returns the previous setting as [`CpuItimer::get`] reports it.
    pub fn set(
        &mut self,
        now: Duration,
        value: Option<Duration>,
        interval: Option<Duration>,
    ) -> (Option<Duration>, Option<Duration>) {
        let old = self.get(now);
        self.deadline = value.map(|v| now.saturating_add(v));
        self.interval = interval;
        old
    }

    /// Clock time left until it expires (None: disarmed; an armed timer never reports zero)
    /// and its period.
    pub fn get(&self, now: Duration) -> (Option<Duration>, Option<Duration>) {
        let left = self
            .deadline
            .map(|d| d.saturating_sub(now).max(Duration::from_micros(1)));
        (left, self.interval)
    }

    /// Expires it if the clock reached its deadline: the expiration count (periods missed
    /// since, plus one), and the next deadline or disarmed.
    pub fn expire(&mut self, now: Duration) -> u64 {
        let Some(deadline) = self.deadline else {
            return 0;
        };
        if now < deadline {
            return 0;
        }
        match self.interval {
            Some(iv) => {
                let late = (now - deadline).as_nanos() / iv.as_nanos().max(1);
                let count = 1 + late.min(u64::MAX as u128 - 1) as u64;
                self.deadline = Some(
                    deadline.saturating_add(iv.saturating_mul(count.min(u32::MAX as u64) as u32)),
                );
                count
            }
            None => {
                self.deadline = None;
                1
            }
        }
    }

    pub fn armed(&self) -> bool {
        self.deadline.is_some()
    }
}

/// `sigev_notify` values.
pub const SIGEV_SIGNAL: i32 = 0;
pub const SIGEV_NONE: i32 = 1;
pub const SIGEV_THREAD: i32 = 2;
pub const SIGEV_THREAD_ID: i32 = 4;

/// How a POSIX timer reports an expiration: the `sigevent` it was created with (`thread`:
/// the global TID of SIGEV_THREAD_ID's thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEvent {
    pub notify: i32,
    pub signo: i32,
    pub value: u64,
    pub thread: Option<i32>,
}

/// What a POSIX timer counts its deadline on.
pub enum PosixDeadline {
    /// A wall clock: the kernel's [`TimerService`] fires it.
    Wall(Arc<Timer>),
    /// A CPU-time clock: the owning process's CPU-time sampler
    /// ([`super::cpu_timers`]) compares the clock with the deadline and runs `action`.
    Cpu {
        clock: CpuClock,
        itimer: CpuItimer,
        action: Arc<Action>,
    },
}

impl std::fmt::Debug for PosixDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PosixDeadline::Wall(t) => f.debug_tuple("Wall").field(t).finish(),
            PosixDeadline::Cpu { clock, itimer, .. } => f
                .debug_struct("Cpu")
                .field("clock", clock)
                .field("itimer", itimer)
                .finish_non_exhaustive(),
        }
    }
}

/// A POSIX timer (`timer_create`).
#[derive(Debug)]
pub struct PosixTimer {
    pub deadline: PosixDeadline,
    /// Expirations beyond the first at the last firing (`timer_getoverrun`).
    pub overrun: Arc<AtomicI32>,
    /// The clock ID it was created with (absolute times are measured on it).
    pub clock: i32,
    pub event: TimerEvent,
}

impl PosixTimer {
    /// A disarmed timer `id` of process `tg` that notifies as `event` says; it counts on
    /// `cpu` when given (a CPU-time clock), else on the wall clock `clock` names.
    pub fn new(
        kernel: &Arc<Kernel>,
        tg: &Arc<ThreadGroup>,
        id: i32,
        clock: i32,
        cpu: Option<CpuClock>,
        event: TimerEvent,
    ) -> PosixTimer {
        let overrun = Arc::new(AtomicI32::new(0));
        let TimerEvent {
            notify,
            signo,
            value,
            thread,
        } = event;
        let action: Action = if notify == SIGEV_NONE {
            let o = overrun.clone();
            Box::new(move |count| {
                o.store(
                    (count - 1).min(i32::MAX as u64) as i32,
                    AtomicOrdering::Relaxed,
                )
            })
        } else {
            let o = overrun.clone();
            let g = Arc::downgrade(tg);
            // Expirations not yet reported by a queued signal.
            let carried = AtomicU64::new(0);
            signal_action(kernel, tg, thread, move |count| {
                let count = count.saturating_add(carried.swap(0, AtomicOrdering::Relaxed));
                // As Linux, a standard signal another sender left pending takes no timer
                // signal: the expirations become overruns of the next one queued.
                let blocked_by_other = signo < SIGRTMIN
                    && g.upgrade().is_some_and(|g| {
                        let s = g.sig();
                        let other = |p: &Pending| {
                            p.queued().iter().any(|q| {
                                q.signo == signo
                                    && !(q.code == SI_TIMER && q.fields[0] as u32 == id as u32)
                            })
                        };
                        other(&s.shared)
                            || thread
                                .and_then(|tid| s.threads.get(&tid))
                                .is_some_and(|th| other(&th.pending))
                    });
                if blocked_by_other {
                    carried.fetch_add(count, AtomicOrdering::Relaxed);
                    return None;
                }
                let over = (count - 1).min(i32::MAX as u64) as i32;
                o.store(over, AtomicOrdering::Relaxed);
                let mut info = SigInfo::new(signo, SI_TIMER);
                info.fields[0] = id as u32 as u64 | (over as u32 as u64) << 32;
                info.fields[1] = value;
                Some(info)
            })
        };
        let deadline = match cpu {
            Some(clock) => PosixDeadline::Cpu {
                clock,
                itimer: CpuItimer::default(),
                action: Arc::new(action),
            },
            None => PosixDeadline::Wall(Timer::new(&kernel.timers, action)),
        };
        PosixTimer {
            deadline,
            overrun,
            clock,
            event,
        }
    }

    /// The CPU clock it counts on; None for a wall-clock timer.
    pub fn cpu_clock(&self) -> Option<&CpuClock> {
        match &self.deadline {
            PosixDeadline::Cpu { clock, .. } => Some(clock),
            PosixDeadline::Wall(_) => None,
        }
    }

    /// Arms it to expire after `value` (None: disarm), then every `interval`; `now` is
    /// its CPU clock's reading (unused for a wall clock). Returns the previous setting as
    /// [`PosixTimer::get`] reports it.
    pub fn set(
        &mut self,
        now: Duration,
        value: Option<Duration>,
        interval: Option<Duration>,
    ) -> (Option<Duration>, Option<Duration>) {
        match &mut self.deadline {
            PosixDeadline::Wall(t) => t.set(value, interval),
            PosixDeadline::Cpu { itimer, .. } => itimer.set(now, value, interval),
        }
    }

    /// Time left until the next expiration (None: disarmed) and the period; `now` as in
    /// [`PosixTimer::set`].
    pub fn get(&self, now: Duration) -> (Option<Duration>, Option<Duration>) {
        match &self.deadline {
            PosixDeadline::Wall(t) => t.get(),
            PosixDeadline::Cpu { itimer, .. } => itimer.get(now),
        }
    }

    /// Whether it is an armed CPU-clock timer (one the CPU-time sampler must watch).
    pub fn cpu_armed(&self) -> bool {
        matches!(&self.deadline, PosixDeadline::Cpu { itimer, .. } if itimer.armed())
    }
}

/// An action that queues a signal to the process (or one of its threads), built by `info`
/// from the expiration count (None: nothing to queue this time). Holds neither the kernel
/// nor the process alive.
pub fn signal_action(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    thread: Option<i32>,
    info: impl Fn(u64) -> Option<SigInfo> + Send + Sync + 'static,
) -> Action {
    let k = Arc::downgrade(kernel);
    let g = Arc::downgrade(tg);
    Box::new(move |count| {
        let (Some(k), Some(g)) = (k.upgrade(), g.upgrade()) else {
            return;
        };
        let tree = k.tree();
        let target = thread.and_then(|tid| tree.tasks.get(&tid).cloned());
        match target {
            Some(h) if Arc::ptr_eq(&h.tg, &g) => {
                if let Some(i) = info(count) {
                    tree.send_thread(&h, i, false);
                }
            }
            Some(_) => {}
            None => {
                if let Some(i) = info(count) {
                    tree.send_group(&g, i, false);
                }
            }
        }
    })
}

/// The process's ITIMER_REAL timer (SIGALRM), created on first use.
pub fn real_timer(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>) -> Arc<Timer> {
    let mut timers = tg.timers.lock().unwrap();
    timers
        .real
        .get_or_insert_with(|| {
            let action = signal_action(kernel, tg, None, |_| Some(SigInfo::kernel(libc::SIGALRM)));
            Timer::new(&kernel.timers, action)
        })
        .clone()
}

/// A process's timers. Not inherited by fork; exec keeps the interval timers and deletes the
/// POSIX timers; they all stop when the process exits.
#[derive(Debug, Default)]
pub struct ProcessTimers {
    /// ITIMER_REAL (and alarm), created on first use.
    pub real: Option<Arc<Timer>>,
    /// ITIMER_VIRTUAL: a deadline on the process's user CPU time (SIGVTALRM).
    pub virt: CpuItimer,
    /// ITIMER_PROF: a deadline on the process's user plus system CPU time (SIGPROF).
    pub prof: CpuItimer,
    /// While a CPU-time timer is armed: a wall-clock timer every [`CPU_TICK`] that compares
    /// the process's CPU clocks with their deadlines.
    pub cpu_sampler: Option<Arc<Timer>>,
    pub posix: BTreeMap<i32, PosixTimer>,
}

impl ProcessTimers {
    /// The first free POSIX timer id.
    pub fn free_id(&self) -> i32 {
        (0..).find(|i| !self.posix.contains_key(i)).unwrap_or(0)
    }
}

/// A timerfd: expirations accumulate in a counter that read(2) returns and resets.
pub struct TimerFd {
    timer: Arc<Timer>,
    clock: i32,
    ticks: Arc<TimerFdTicks>,
}

#[derive(Default)]
struct TimerFdTicks {
    count: Mutex<u64>,
    queue: WaitQueue,
}

impl TimerFd {
    pub fn new(service: &Arc<TimerService>, clock: i32) -> TimerFd {
        let ticks = Arc::new(TimerFdTicks::default());
        let t2 = ticks.clone();
        let timer = Timer::new(
            service,
            Box::new(move |n| {
                *t2.count.lock().unwrap() += n;
                t2.queue.notify_all();
            }),
        );
        TimerFd {
            timer,
            clock,
            ticks,
        }
    }

    /// For a checkpoint: the clock, the time left and the period, and the expirations not
    /// read yet.
    pub fn saved(&self) -> (i32, (Option<Duration>, Option<Duration>), u64) {
        (
            self.clock,
            self.timer.get(),
            *self.ticks.count.lock().unwrap(),
        )
    }

    /// A restored timerfd: armed to expire after `value` then every `interval`, with
    /// `ticks` expirations not read yet.
    pub fn restored(
        service: &Arc<TimerService>,
        clock: i32,
        value: Option<Duration>,
        interval: Option<Duration>,
        ticks: u64,
    ) -> TimerFd {
        let fd = TimerFd::new(service, clock);
        fd.timer.set(value, interval);
        *fd.ticks.count.lock().unwrap() = ticks;
        fd
    }
}

impl TimerFdFile for TimerFd {
    fn clock(&self) -> i32 {
        self.clock
    }

    fn set(
        &self,
        value: Option<Duration>,
        interval: Option<Duration>,
    ) -> (Option<Duration>, Option<Duration>) {
        let old = self.timer.set(value, interval);
        *self.ticks.count.lock().unwrap() = 0;
        old
    }

    fn get(&self) -> (Option<Duration>, Option<Duration>) {
        self.timer.get()
    }
}

impl FileOps for TimerFd {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(
        &self,
        t: &mut dyn Context,
        file: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        if dst.remaining() < 8 {
            return Err(Errno::EINVAL);
        }
        let nb = file.flags() & libc::O_NONBLOCK as u32 != 0;
        let ticks = &self.ticks;
        let n = t.block_on(&[&ticks.queue], None, || {
            let mut c = ticks.count.lock().unwrap();
            match *c {
                0 if nb => Some(Err(Errno::EAGAIN)),
                0 => None,
                n => {
                    *c = 0;
                    Some(Ok(n))
                }
            }
        })?;
        dst.copy_from(&n.to_ne_bytes())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
        if *self.ticks.count.lock().unwrap() > 0 {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.ticks.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

    fn counting(service: &Arc<TimerService>) -> (Arc<Timer>, Arc<AtomicU64>) {
        let n = Arc::new(AtomicU64::new(0));
        let n2 = n.clone();
        let t = Timer::new(
            service,
            Box::new(move |c| {
                n2.fetch_add(c, AtomicOrdering::SeqCst);
            }),
        );
        (t, n)
    }

    fn wait_for(n: &AtomicU64, want: u64) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if n.load(AtomicOrdering::SeqCst) >= want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn cpu_itimer_expires_on_its_clock() {
        let ms = Duration::from_millis;
        let mut t = CpuItimer::default();
        assert_eq!(t.set(ms(100), Some(ms(50)), Some(ms(20))), (None, None));
        assert_eq!(t.get(ms(120)), (Some(ms(30)), Some(ms(20))));
        assert_eq!(t.expire(ms(149)), 0);
        assert_eq!(t.expire(ms(150)), 1);
        assert_eq!(t.deadline, Some(ms(170)));
        assert_eq!(t.expire(ms(215)), 3, "170, 190 and 210 passed");
        assert_eq!(t.deadline, Some(ms(230)));
        t.set(ms(0), Some(ms(5)), None);
        assert_eq!(t.expire(ms(6)), 1);
        assert!(!t.armed());
    }

    #[test]
    fn one_shot_fires_once_and_disarms() {
        let s = Arc::new(TimerService::default());
        let (t, n) = counting(&s);
        t.set(Some(Duration::from_millis(5)), None);
        assert!(wait_for(&n, 1));
        assert_eq!(t.get(), (None, None));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(n.load(AtomicOrdering::SeqCst), 1);
    }

    #[test]
    fn rearming_discards_the_old_deadline() {
        let s = Arc::new(TimerService::default());
        let (t, n) = counting(&s);
        t.set(Some(Duration::from_millis(5)), None);
        let (old, _) = t.set(None, None);
        assert!(old.is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(n.load(AtomicOrdering::SeqCst), 0);
    }

    #[test]
    fn periodic_keeps_firing() {
        let s = Arc::new(TimerService::default());
        let (t, n) = counting(&s);
        t.set(
            Some(Duration::from_millis(1)),
            Some(Duration::from_millis(2)),
        );
        assert!(wait_for(&n, 3));
        assert_eq!(t.get().1, Some(Duration::from_millis(2)));
    }
}
