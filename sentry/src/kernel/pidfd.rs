//! Process file descriptors (`pidfd_open`, `clone3(CLONE_PIDFD)`): an open file naming one
//! process. It becomes readable (POLLIN) when the process has exited, and also hangs up
//! (POLLHUP) once the process has been reaped. The process is held weakly, so a pidfd keeps
//! no exited process alive, and the identity it hands out (the thread group's address, which
//! the weak reference keeps from being reused) tells the process apart from a later one
//! given the same PID.
//!
//! A `PIDFD_THREAD` pidfd names one thread instead ([`Thread`]). Of a thread that does not
//! lead its group it is readable once that thread has exited, and hangs up once nothing
//! holds the thread any more (at once, or when its tracer has collected it). Of the leader
//! it is readable, as a process pidfd, only once the whole group has exited (Linux 6.15's
//! delayed leader notification); a non-leader's execve takes over the leader's ID and so
//! "revives" it, while the ID the execing thread had reads as exited.
//!
//! # Lock order
//! `readiness` takes `Kernel::tree` alone; nothing is held across it.

use std::sync::{Arc, Weak};

use super::task::TaskHandle;
use super::{Kernel, ThreadGroup};
use crate::abi::Errno;
use crate::vfs::{FileOps, PidFdFile, Stat};

/// The thread a `PIDFD_THREAD` pidfd names.
enum Thread {
    /// The group's leader: whichever thread holds the group's ID (an execve by another
    /// thread hands it on).
    Leader,
    /// A thread that does not lead its group, by its global TID; held weakly, so the
    /// pidfd tells it apart from a later thread given the same ID.
    Other(i32, Weak<TaskHandle>),
}

/// One pidfd.
pub struct PidFd {
    tgid: i32,
    tg: Weak<ThreadGroup>,
    kernel: Weak<Kernel>,
    /// `PIDFD_THREAD`: the thread named; None for a process pidfd.
    thread: Option<Thread>,
}

impl PidFd {
    /// A pidfd for the process `tg` of `kernel`.
    pub fn new(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>) -> PidFd {
        PidFd {
            tgid: tg.tgid,
            tg: Arc::downgrade(tg),
            kernel: Arc::downgrade(kernel),
            thread: None,
        }
    }

    /// A `PIDFD_THREAD` pidfd for the leader of `tg` (which may have exited already while
    /// other threads run on).
    pub fn of_leader(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>) -> PidFd {
        PidFd {
            thread: Some(Thread::Leader),
            ..PidFd::new(kernel, tg)
        }
    }

    /// A `PIDFD_THREAD` pidfd for the thread `h` of `kernel`.
    pub fn of_thread(kernel: &Arc<Kernel>, h: &Arc<TaskHandle>) -> PidFd {
        let tid = h.tid();
        if tid == h.tg.tgid {
            return PidFd::of_leader(kernel, &h.tg);
        }
        PidFd {
            thread: Some(Thread::Other(tid, Arc::downgrade(h))),
            ..PidFd::new(kernel, &h.tg)
        }
    }

    /// A pidfd a restore puts back for a process reaped before the checkpoint: it names no
    /// process (signals fail with ESRCH) and polls as exited and reaped.
    pub fn reaped(kernel: &Arc<Kernel>, tgid: i32) -> PidFd {
        PidFd {
            tgid,
            tg: Weak::new(),
            kernel: Arc::downgrade(kernel),
            thread: None,
        }
    }

    /// For a checkpoint: the process's global PID (which a restore gives it again) and
    /// whether the process is still in the process tree (running or a zombie); false once
    /// it has been reaped.
    pub fn saved(&self) -> (i32, bool) {
        let me = Weak::as_ptr(&self.tg) as usize;
        let present = self.tg.strong_count() > 0
            && self.kernel.upgrade().is_some_and(|k| {
                k.tree()
                    .procs
                    .get(&self.tgid)
                    .is_some_and(|p| PidFd::identity(&p.tg) == me)
            });
        (self.tgid, present)
    }

    /// Identity token of a thread group, as [`PidFdFile::target`] returns it.
    pub fn identity(tg: &Arc<ThreadGroup>) -> usize {
        Arc::as_ptr(tg) as usize
    }

    /// Identity token of a thread, as [`PidFdFile::thread`] returns it.
    pub fn thread_identity(h: &Arc<TaskHandle>) -> usize {
        Arc::as_ptr(h) as usize
    }

    /// A non-leader thread's pidfd: whether its thread has exited, and whether it is gone
    /// altogether (no tracer still has it to collect).
    fn other_thread_state(&self, tid: i32, h: &Weak<TaskHandle>) -> (bool, bool) {
        let me = Weak::as_ptr(h);
        let Some(k) = self.kernel.upgrade() else {
            return (true, true);
        };
        let tree = k.tree();
        let holds = |m: &std::collections::HashMap<i32, Arc<TaskHandle>>| {
            m.get(&tid).is_some_and(|t| Arc::as_ptr(t) == me)
        };
        let exited = !holds(&tree.tasks);
        (exited, exited && !holds(&tree.ptraced))
    }
}

impl PidFdFile for PidFd {
    fn target(&self) -> (i32, usize) {
        (self.tgid, Weak::as_ptr(&self.tg) as usize)
    }

    fn thread(&self) -> Option<(i32, usize)> {
        match self.thread.as_ref()? {
            Thread::Leader => Some((self.tgid, 0)),
            Thread::Other(tid, h) => Some((*tid, Weak::as_ptr(h) as usize)),
        }
    }
}

impl FileOps for PidFd {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        // A checkpoint records process pidfds only; a thread's is refused as unknown.
        self.thread.is_none().then_some(self as &dyn std::any::Any)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
        if let Some(Thread::Other(tid, h)) = &self.thread {
            let (exited, gone) = self.other_thread_state(*tid, h);
            let mut ready = 0;
            if exited {
                ready |= (libc::POLLIN | libc::POLLRDNORM) as u32;
            }
            if gone {
                ready |= libc::POLLHUP as u32;
            }
            return ready;
        }
        let exited = self
            .tg
            .upgrade()
            .is_none_or(|tg| tg.exit_status().is_some());
        if !exited {
            return 0;
        }
        let me = Weak::as_ptr(&self.tg) as usize;
        let reaped = self.kernel.upgrade().is_none_or(|k| {
            k.tree()
                .procs
                .get(&self.tgid)
                .is_none_or(|p| PidFd::identity(&p.tg) != me)
        });
        let mut ready = (libc::POLLIN | libc::POLLRDNORM) as u32;
        if reaped {
            ready |= libc::POLLHUP as u32;
        }
        ready
    }
}
