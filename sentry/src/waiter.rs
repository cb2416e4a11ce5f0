//! Blocking: per-task waiters and the wait queues that wake them (gVisor's pkg/waiter).
//!
//! Layer: below `vfs`, `fs`, `net`, `tty` and `kernel`, which all block on these queues;
//! imports nothing of the sentry.
//!
//! A blocking system call registers its task's [`Waiter`] on the [`WaitQueue`]s of what it
//! waits for, checks its condition, and sleeps until notified (by the queue, by signal
//! delivery, by group exit) or until a deadline. Notifications are sticky, so a wake-up
//! between the check and the sleep is never lost; spurious wake-ups only cost a re-check.
//!
//! Code that blocks without a task in hand (the memory manager's page fills, which wait for
//! a FUSE daemon inside fault handling) uses [`wait_killable`]: on a task's host thread the
//! kernel has installed a [`ThreadOwner`] ([`set_thread_owner`]), whose waiter such a wait
//! registers and whose death (SIGKILL, group exit, another thread's execve) ends it, as
//! Linux's killable waits; on other threads it waits until its condition holds.
//!
//! A queue may also carry [`WakeHook`]s: code run on each of its wake-ups (the signal of an
//! `O_ASYNC` file, Linux's `kill_fasync`), so every file whose readiness is announced on a
//! queue gets signal-driven I/O from this one notification point.
//!
//! # Lock order
//! `WaitQueue::waiters` → `Waiter::notified` (both leaves of every other lock).
//! `WaitQueue::hooks` is a leaf too: hooks run after it is released, with no lock of the
//! queue held, so a hook may take the locks of signal delivery (the process table); a queue
//! that has hooks is therefore never notified with those locks held.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One task's wake-up flag.
#[derive(Debug, Default)]
pub struct Waiter {
    notified: Mutex<bool>,
    cv: Condvar,
    /// The owner is inside [`Waiter::wait`] (`/proc` shows it as sleeping, state `S`).
    sleeping: AtomicBool,
    /// Nanoseconds spent in [`Waiter::wait`] so far (monotonic clock): time a task blocks,
    /// which CPU-time accounting leaves out of its system time.
    slept_ns: AtomicU64,
}

impl Waiter {
    pub fn new() -> Arc<Waiter> {
        Arc::new(Waiter::default())
    }

    /// Wakes the owner (or makes its next wait return at once).
    pub fn notify(&self) {
        *self.notified.lock().unwrap() = true;
        self.cv.notify_one();
    }

    /// Sleeps until notified or `deadline`; consumes the notification. Returns false on
    /// timeout.
    pub fn wait(&self, deadline: Option<Instant>) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let woken = self.wait_notified(deadline);
        let slept = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.slept_ns.fetch_add(slept, Ordering::Relaxed);
        self.sleeping.store(false, Ordering::Relaxed);
        woken
    }

    /// The total time spent in [`Waiter::wait`] (by its owner, the only caller).
    pub fn slept(&self) -> Duration {
        Duration::from_nanos(self.slept_ns.load(Ordering::Relaxed))
    }

    /// Whether the owner is blocked in a wait.
    pub fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }

    fn wait_notified(&self, deadline: Option<Instant>) -> bool {
        let mut n = self.notified.lock().unwrap();
        while !*n {
            match deadline {
                None => n = self.cv.wait(n).unwrap(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    n = self.cv.wait_timeout(n, d - now).unwrap().0;
                }
            }
        }
        *n = false;
        true
    }
}

/// Which readiness a wake-up is about (Linux's poll key of `wake_up_poll`): edge-triggered
/// epoll re-arms an item only for wake-ups that concern the events it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Data, a connection, a hang-up or an error: the reading side.
    Readable,
    /// Room to write (the reader consumed data).
    Writable,
    /// Anything (an unkeyed wake-up).
    Any,
    /// Only blocked tasks re-check their condition; no readiness appeared (a pipe read
    /// that leaves room unchanged for pollers, a sender's own endpoint).
    Blocked,
}

/// Code run on every wake-up of a queue (other than [`Wake::Blocked`]), on the notifier's
/// thread once the waiters are woken.
pub trait WakeHook: Send + Sync {
    fn woken(&self, kind: Wake);
}

/// How many wake-ups of each kind a queue has had; see [`WaitQueue::wakes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WakeCount {
    pub readable: u64,
    pub writable: u64,
}

/// The waiters interested in one event source (a pipe end, a child's exit...).
#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<Arc<Waiter>>>,
    /// Hooks run on each wake-up; `hooked` counts them so that a queue without any (nearly
    /// all) never takes this lock on a wake-up.
    hooks: Mutex<Vec<Arc<dyn WakeHook>>>,
    hooked: AtomicUsize,
    /// Wake-ups about the reading side so far (edge-triggered epoll compares counts).
    readable_wakes: AtomicU64,
    /// Wake-ups about the writing side so far.
    writable_wakes: AtomicU64,
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("waiters", &self.waiters.lock().unwrap().len())
            .field("hooks", &self.hooked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl WaitQueue {
    pub fn new() -> WaitQueue {
        WaitQueue::default()
    }

    /// Runs `hook` on every later wake-up until [`WaitQueue::remove_hook`].
    pub fn add_hook(&self, hook: &Arc<dyn WakeHook>) {
        let mut v = self.hooks.lock().unwrap();
        v.push(hook.clone());
        self.hooked.store(v.len(), Ordering::SeqCst);
    }

    pub fn remove_hook(&self, hook: &Arc<dyn WakeHook>) {
        let mut v = self.hooks.lock().unwrap();
        if let Some(i) = v.iter().position(|x| Arc::ptr_eq(x, hook)) {
            v.swap_remove(i);
        }
        self.hooked.store(v.len(), Ordering::SeqCst);
    }

    pub fn add(&self, w: &Arc<Waiter>) {
        self.waiters.lock().unwrap().push(w.clone());
    }

    pub fn remove(&self, w: &Arc<Waiter>) {
        let mut v = self.waiters.lock().unwrap();
        if let Some(i) = v.iter().position(|x| Arc::ptr_eq(x, w)) {
            v.swap_remove(i);
        }
    }

    /// Wakes every registered waiter; each re-checks its own condition. Counts as a
    /// wake-up of both kinds.
    pub fn notify_all(&self) {
        self.notify(Wake::Any);
    }

    /// Wakes every registered waiter about `kind` of readiness.
    pub fn notify(&self, kind: Wake) {
        if matches!(kind, Wake::Readable | Wake::Any) {
            self.readable_wakes.fetch_add(1, Ordering::SeqCst);
        }
        if matches!(kind, Wake::Writable | Wake::Any) {
            self.writable_wakes.fetch_add(1, Ordering::SeqCst);
        }
        for w in self.waiters.lock().unwrap().iter() {
            w.notify();
        }
        if kind != Wake::Blocked && self.hooked.load(Ordering::SeqCst) > 0 {
            // A copy, so that no lock of the queue is held while the hooks run.
            let hooks = self.hooks.lock().unwrap().clone();
            for h in hooks {
                h.woken(kind);
            }
        }
    }

    /// The wake-up counts so far. Read them before polling readiness: a wake-up after the
    /// poll then shows as a changed count later.
    pub fn wakes(&self) -> WakeCount {
        WakeCount {
            readable: self.readable_wakes.load(Ordering::SeqCst),
            writable: self.writable_wakes.load(Ordering::SeqCst),
        }
    }
}

/// The task a host thread runs, as seen by waits that have no task in hand.
pub trait ThreadOwner: Send + Sync {
    /// The task's waiter: what wakes it when it is signalled or its group exits.
    fn waiter(&self) -> &Arc<Waiter>;
    /// Whether the task is dying (it will exit at its next look at its signal state,
    /// whatever a handler would do): Some(true) or Some(false), or None when that cannot be
    /// told without waiting for a lock (the caller asks again a little later).
    fn dying(&self) -> Option<bool>;
}

thread_local! {
    static OWNER: RefCell<Option<Arc<dyn ThreadOwner>>> = const { RefCell::new(None) };
}

/// Makes `owner` the task this host thread runs (None: no task any more).
pub fn set_thread_owner(owner: Option<Arc<dyn ThreadOwner>>) {
    OWNER.with(|o| *o.borrow_mut() = owner);
}

/// Whether this thread's task is known to be dying (false on a thread without a task).
pub fn thread_owner_dying() -> bool {
    OWNER.with(|o| o.borrow().as_ref().and_then(|o| o.dying())) == Some(true)
}

/// A [`wait_killable`] ended because the thread's task is dying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Killed;

/// How soon a killable wait looks again when [`ThreadOwner::dying`] could not tell.
const DYING_RECHECK: Duration = Duration::from_millis(20);

/// Blocks the calling thread, registered on `queues`, until `ready` gives a value. On a
/// task's thread ([`set_thread_owner`]) the task's own waiter sleeps, so that what kills
/// the task wakes the wait, which then ends with [`Killed`]; elsewhere only `ready` ends it.
///
/// # Errors
/// [`Killed`] once the thread's task is dying (`ready` is asked first).
pub fn wait_killable<T>(
    queues: &[&WaitQueue],
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, Killed> {
    let owner = OWNER.with(|o| o.borrow().clone());
    let waiter = owner
        .as_ref()
        .map_or_else(Waiter::new, |o| o.waiter().clone());
    for q in queues {
        q.add(&waiter);
    }
    let r = loop {
        if let Some(v) = ready() {
            break Ok(v);
        }
        let deadline = match owner.as_ref().map(|o| o.dying()) {
            Some(Some(true)) => break Err(Killed),
            Some(None) => Some(Instant::now() + DYING_RECHECK),
            Some(Some(false)) | None => None,
        };
        waiter.wait(deadline);
    };
    for q in queues {
        q.remove(&waiter);
    }
    r
}

/// A one-shot event (vfork completion).
#[derive(Debug, Default)]
pub struct Completion {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Completion {
    pub fn complete(&self) {
        *self.done.lock().unwrap() = true;
        self.cv.notify_all();
    }

    pub fn wait(&self) {
        let mut d = self.done.lock().unwrap();
        while !*d {
            d = self.cv.wait(d).unwrap();
        }
    }
}

/// A task stand-in for tests of [`wait_killable`] and its callers: dying when `dying` says.
#[cfg(test)]
pub(crate) struct TestOwner {
    pub waiter: Arc<Waiter>,
    pub dying: AtomicBool,
}

#[cfg(test)]
impl TestOwner {
    pub fn new() -> Arc<TestOwner> {
        Arc::new(TestOwner {
            waiter: Waiter::new(),
            dying: AtomicBool::new(false),
        })
    }
}

#[cfg(test)]
impl ThreadOwner for TestOwner {
    fn waiter(&self) -> &Arc<Waiter> {
        &self.waiter
    }
    fn dying(&self) -> Option<bool> {
        Some(self.dying.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn notification_before_wait_is_not_lost() {
        let w = Waiter::new();
        let q = WaitQueue::new();
        q.add(&w);
        q.notify_all();
        assert!(w.wait(Some(Instant::now() + Duration::from_secs(5))));
        assert!(!w.wait(Some(Instant::now() + Duration::from_millis(10))));
        q.remove(&w);
        q.notify_all();
        assert!(!w.wait(Some(Instant::now() + Duration::from_millis(10))));
    }

    #[test]
    fn wake_counts_follow_the_kind() {
        let q = WaitQueue::new();
        let w = Waiter::new();
        q.add(&w);
        let c0 = q.wakes();
        q.notify(Wake::Readable);
        let c1 = q.wakes();
        assert_eq!((c1.readable - c0.readable, c1.writable), (1, c0.writable));
        q.notify(Wake::Writable);
        q.notify(Wake::Blocked);
        let c2 = q.wakes();
        assert_eq!((c2.readable, c2.writable - c1.writable), (c1.readable, 1));
        q.notify_all();
        let c3 = q.wakes();
        assert_eq!(
            (c3.readable, c3.writable),
            (c2.readable + 1, c2.writable + 1)
        );
        // Every kind, Blocked included, wakes the waiter.
        assert!(w.wait(Some(Instant::now() + Duration::from_secs(5))));
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Wake>>);

    impl WakeHook for Recorder {
        fn woken(&self, kind: Wake) {
            self.0.lock().unwrap().push(kind);
        }
    }

    #[test]
    fn hooks_see_readiness_wakes_until_removed() {
        let q = WaitQueue::new();
        let rec = Arc::new(Recorder::default());
        let hook: Arc<dyn WakeHook> = rec.clone();
        q.add_hook(&hook);
        q.notify(Wake::Readable);
        q.notify(Wake::Blocked);
        q.notify(Wake::Writable);
        q.notify_all();
        q.remove_hook(&hook);
        q.notify(Wake::Readable);
        assert_eq!(
            *rec.0.lock().unwrap(),
            [Wake::Readable, Wake::Writable, Wake::Any]
        );
    }

    #[test]
    fn killable_wait_ends_when_the_owner_dies() {
        let owner = TestOwner::new();
        let killer = owner.clone();
        let q = Arc::new(WaitQueue::new());
        let h = std::thread::spawn(move || {
            set_thread_owner(Some(killer.clone()));
            let r = wait_killable(&[&WaitQueue::new()], || None::<()>);
            set_thread_owner(None);
            r
        });
        // Not dying: a wake-up alone does not end the wait.
        owner.waiter.notify();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished());
        owner.dying.store(true, Ordering::SeqCst);
        owner.waiter.notify();
        assert_eq!(h.join().unwrap(), Err(Killed));
        // Without an owner, the queue's wake-up and `ready` end it.
        let done = Arc::new(AtomicBool::new(false));
        let (q2, d2) = (q.clone(), done.clone());
        let h = std::thread::spawn(move || {
            wait_killable(&[&q2], || d2.load(Ordering::SeqCst).then_some(7))
        });
        done.store(true, Ordering::SeqCst);
        q.notify_all();
        assert_eq!(h.join().unwrap(), Ok(7));
    }

    #[test]
    fn cross_thread_wake() {
        let w = Waiter::new();
        let w2 = w.clone();
        let h = std::thread::spawn(move || w2.notify());
        assert!(w.wait(None));
        h.join().unwrap();
    }
}
