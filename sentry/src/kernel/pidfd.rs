//! Process file descriptors (`pidfd_open`, `clone3(CLONE_PIDFD)`): an open file naming one
//! process. It becomes readable (POLLIN) when the process has exited, and also hangs up
//! (POLLHUP) once the process has been reaped. The process is held weakly, so a pidfd keeps
//! no exited process alive, and the identity it hands out (the thread group's address, which
//! the weak reference keeps from being reused) tells the process apart from a later one
//! given the same PID.
//!
//! # Lock order
//! `readiness` takes `Kernel::tree` alone; nothing is held across it.

use std::sync::{Arc, Weak};

use super::{Kernel, ThreadGroup};
use crate::abi::Errno;
use crate::vfs::{FileOps, PidFdFile, Stat};

/// One pidfd.
pub struct PidFd {
    tgid: i32,
    tg: Weak<ThreadGroup>,
    kernel: Weak<Kernel>,
}

impl PidFd {
    /// A pidfd for the process `tg` of `kernel`.
    pub fn new(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>) -> PidFd {
        PidFd {
            tgid: tg.tgid,
            tg: Arc::downgrade(tg),
            kernel: Arc::downgrade(kernel),
        }
    }

    /// A pidfd a restore puts back for a process reaped before the checkpoint: it names no
    /// process (signals fail with ESRCH) and polls as exited and reaped.
    pub fn reaped(kernel: &Arc<Kernel>, tgid: i32) -> PidFd {
        PidFd {
            tgid,
            tg: Weak::new(),
            kernel: Arc::downgrade(kernel),
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
}

impl PidFdFile for PidFd {
    fn target(&self) -> (i32, usize) {
        (self.tgid, Weak::as_ptr(&self.tg) as usize)
    }
}

impl FileOps for PidFd {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }

    fn readiness(&self) -> u32 {
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
