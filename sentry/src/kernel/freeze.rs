//! Stopping the world: [`Kernel::pause`] and [`Kernel::resume`] (gVisor's kernel Pause,
//! runc's `pause`/`resume`, the shim's Task.Pause/Resume, and the first step of a
//! checkpoint).
//!
//! A paused kernel runs no application code. Every task is brought to a safe point of its
//! run loop, the `Frozen` state ([`super::task`]): out of the application, with any system
//! call it was in either finished or interrupted and recorded as a restart (a blocking wait
//! sees [`Freezer::is_frozen`] through `Task::interrupted` and ends with EINTR and
//! `Restart::Sys`, as a signal would; with no handler to run, the call restarts on resume,
//! so the application never sees the EINTR, as with Linux's freezer).
//!
//! Time is not frozen (the choice of Linux's cgroup freezer): clocks advance, armed timers
//! keep expiring and queue their signals, which are delivered on resume, and a sleep whose
//! deadline passed during the pause ends as soon as the task resumes.
//!
//! A SIGKILL still ends a task of a paused kernel (as Linux lets it end a frozen process):
//! the task leaves its parked state to die, so destroying a paused container works.
//!
//! A task in the uninterruptible wait of a vfork parent parks inside that wait (the pause's
//! kick wakes it), recorded as waiting for its child with vfork's return value in rax
//! ([`Task::park_in_vfork`]); it continues waiting on resume, and a restore makes it wait
//! again for the restored child. `vfork_waiters` counts the tasks in that wait.
//!
//! # Lock order
//! `Freezer::state` is a leaf: nothing is locked while holding it (the pauser reads the
//! process table before taking it). The freeze flag itself is an atomic, changed only under
//! `state`: every task reads it at least twice per system call, and a kernel-wide lock there
//! would make all of them take turns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::checkpoint::{CheckpointError, TaskImage};
use super::task::Restart;
use super::{Kernel, Task};
use crate::waiter::Waiter;

/// Why a pause did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("the sandbox is already paused")]
    AlreadyPaused,
    #[error("the sandbox is not paused")]
    NotPaused,
    #[error("{running} of {live} tasks did not stop within {waited:?}")]
    Timeout {
        running: usize,
        live: usize,
        waited: Duration,
    },
}

/// The kernel's freeze flag and the count of tasks that obey it.
#[derive(Debug, Default)]
pub struct Freezer {
    /// Tasks must stop at their next safe point (written under `state`).
    frozen: AtomicBool,
    state: Mutex<FreezeState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct FreezeState {
    /// What each parked task recorded of itself for a checkpoint, by TID.
    images: HashMap<i32, Result<TaskImage, CheckpointError>>,
    /// Tasks parked in their `Frozen` state.
    parked: usize,
    /// Tasks waiting for a vfork child (parked there while the kernel is paused).
    vfork_waiters: usize,
}

/// What a pause found once every task had stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    pub parked: usize,
    pub vfork_waiters: usize,
}

impl Freezer {
    fn lock(&self) -> MutexGuard<'_, FreezeState> {
        self.state.lock().unwrap()
    }

    /// Whether tasks must stop at their next safe point.
    pub fn is_frozen(&self) -> bool {
        // SeqCst: a pauser sets it before kicking the tasks (whose interrupt flags are
        // SeqCst too), so a task that sees the kick sees the flag.
        self.frozen.load(Ordering::SeqCst)
    }

    /// Parks the calling task (`tid`, whose wake-up flag is `waiter`) until the kernel
    /// resumes or `dying` says it must die; `image` is what it recorded of itself. The task
    /// sleeps on its own waiter, so what wakes any blocked task (SIGKILL,
    /// [`Kernel::resume`]'s kick) wakes it.
    fn park(
        &self,
        tid: i32,
        waiter: &Waiter,
        dying: impl Fn() -> bool,
        image: impl FnOnce() -> Result<TaskImage, CheckpointError>,
    ) {
        if !self.is_frozen() {
            return;
        }
        let image = image();
        {
            let mut s = self.lock();
            s.images.insert(tid, image);
            s.parked += 1;
        }
        self.changed.notify_all();
        while self.is_frozen() && !dying() {
            waiter.wait(None);
        }
        let mut s = self.lock();
        s.images.remove(&tid);
        s.parked = s.parked.saturating_sub(1);
    }

    /// What the parked tasks recorded of themselves.
    pub(super) fn images(&self) -> HashMap<i32, Result<TaskImage, CheckpointError>> {
        let s = self.lock();
        s.images
            .iter()
            .map(|(&tid, r)| {
                let r = match r {
                    Ok(i) => Ok(i.clone()),
                    Err(e) => Err(CheckpointError::Recorded(e.to_string())),
                };
                (tid, r)
            })
            .collect()
    }

    /// Counts the caller as stopped while it waits for a vfork child.
    pub(super) fn enter_vfork_wait(&self) {
        self.lock().vfork_waiters += 1;
        self.changed.notify_all();
    }

    pub(super) fn leave_vfork_wait(&self) {
        let mut s = self.lock();
        s.vfork_waiters = s.vfork_waiters.saturating_sub(1);
    }
}

impl Task {
    /// The run loop's `Frozen` state: parks until the kernel resumes (or this task must
    /// die), having recorded itself for a checkpoint.
    pub(super) fn park_frozen(&mut self, restart: Option<Restart>) {
        let kernel = self.kernel.clone();
        let (tg, tid, waiter) = (self.tg.clone(), self.tid, self.handle.waiter.clone());
        kernel.freezer.park(
            tid,
            &waiter,
            || tg.sig().must_die(tid),
            || self.image(restart),
        );
    }

    /// Parks a vfork parent inside its wait for `child` (global TID) until the kernel
    /// resumes or this task must die, recorded as returning `ret` from vfork once the child
    /// execs or exits.
    pub(super) fn park_in_vfork(&mut self, child: i32, ret: u64) {
        let kernel = self.kernel.clone();
        let (tg, tid, waiter) = (self.tg.clone(), self.tid, self.handle.waiter.clone());
        kernel.freezer.park(
            tid,
            &waiter,
            || tg.sig().must_die(tid),
            || {
                let rax = std::mem::replace(&mut self.cpu.regs.rax, ret);
                let image = self.image(None);
                self.cpu.regs.rax = rax;
                image.map(|mut i| {
                    i.vfork_child = Some(child);
                    i
                })
            },
        );
    }
}

impl Kernel {
    /// Stops every task at a safe point and keeps new ones from running; returns once all
    /// the tasks in the process table are stopped.
    ///
    /// # Errors
    /// `AlreadyPaused`; `Timeout` when some task did not stop within `timeout` (the kernel
    /// is then resumed, as it was).
    pub fn pause(&self, timeout: Duration) -> Result<Stopped, PauseError> {
        {
            let _s = self.freezer.lock();
            if self.freezer.frozen.swap(true, Ordering::SeqCst) {
                return Err(PauseError::AlreadyPaused);
            }
        }
        let start = Instant::now();
        loop {
            // Kicked on every round: a task created since the last one (a clone racing
            // with the pause) starts in its run loop's signal check and parks by itself,
            // but one that was between that check and the application must be pulled out.
            let live = {
                let tree = self.tree();
                for t in tree.tasks.values() {
                    t.kick();
                }
                tree.tasks.len()
            };
            let s = self.freezer.lock();
            let stopped = s.parked;
            if stopped >= live {
                return Ok(Stopped {
                    parked: s.parked,
                    vfork_waiters: s.vfork_waiters,
                });
            }
            let waited = start.elapsed();
            if waited >= timeout {
                drop(s);
                self.resume_frozen();
                return Err(PauseError::Timeout {
                    running: live - stopped,
                    live,
                    waited,
                });
            }
            let _ = self
                .freezer
                .changed
                .wait_timeout(s, Duration::from_millis(20))
                .unwrap();
        }
    }

    /// Lets every parked task continue.
    ///
    /// # Errors
    /// `NotPaused`.
    pub fn resume(&self) -> Result<(), PauseError> {
        if !self.freezer.is_frozen() {
            return Err(PauseError::NotPaused);
        }
        self.resume_frozen();
        Ok(())
    }

    fn resume_frozen(&self) {
        {
            let _s = self.freezer.lock();
            self.freezer.frozen.store(false, Ordering::SeqCst);
        }
        for t in self.tree().tasks.values() {
            t.kick();
        }
    }

    /// Whether the kernel is paused.
    pub fn is_paused(&self) -> bool {
        self.freezer.is_frozen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn park_returns_at_once_when_not_frozen() {
        let f = Freezer::default();
        f.park(1, &Waiter::default(), || false, || unreachable!());
        assert_eq!(f.lock().parked, 0);
    }

    #[test]
    fn parked_threads_wait_for_the_thaw_or_death() {
        for kill in [false, true] {
            let f = std::sync::Arc::new(Freezer::default());
            let w = Waiter::new();
            let dying = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            f.frozen.store(true, Ordering::SeqCst);
            let (f2, w2, d2) = (f.clone(), w.clone(), dying.clone());
            let t = std::thread::spawn(move || {
                f2.park(
                    7,
                    &w2,
                    || d2.load(std::sync::atomic::Ordering::SeqCst),
                    || Err(CheckpointError::NotStopped { tid: 7 }),
                );
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while f.lock().parked == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(f.lock().parked, 1);
            assert!(f.images().contains_key(&7));
            // A spurious wake-up changes nothing.
            w.notify();
            std::thread::sleep(Duration::from_millis(20));
            assert!(!t.is_finished());
            if kill {
                dying.store(true, std::sync::atomic::Ordering::SeqCst);
            } else {
                f.frozen.store(false, Ordering::SeqCst);
            }
            w.notify();
            t.join().unwrap();
            assert_eq!(f.lock().parked, 0);
            assert!(f.images().is_empty());
        }
    }
}
