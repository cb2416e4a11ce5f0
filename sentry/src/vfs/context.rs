//! What file, inode, socket and terminal operations may ask of the task that calls them.
//!
//! The kernel implements [`Context`] for its `Task`; everything below the kernel (the vfs,
//! the filesystems, sockets, terminals) sees the caller only through this trait, so those
//! layers never import the kernel. It offers exactly what they use: credentials and the
//! filesystem context, the caller's memory (ioctl arguments), interruptible blocking on wait
//! queues, raising a signal on the caller, PIDs as the caller sees them, the process-group
//! facts terminals need for job control, and `/dev/net/tun` files in the caller's network
//! namespace.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::abi::Errno;
use crate::auth::Creds;
use crate::mm::MemoryManager;
use crate::vfs::{Caller, FileOps, FsContext};
use crate::waiter::WaitQueue;

/// The caller's process, process group and session (global IDs), for job control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIds {
    pub tgid: i32,
    pub pgid: i32,
    pub sid: i32,
}

/// Signalling whole process groups (terminal hang-up, SIGWINCH, typed `^C`).
pub trait ProcessGroups {
    /// Sends `signo` from the kernel to every process of group `pgid` (a global ID).
    fn signal_process_group(&self, pgid: i32, signo: i32);
}

/// A terminal that can be a session's controlling terminal (what `/dev/tty` opens).
pub trait ControllingTerminal: Send + Sync {
    /// A new open of the terminal, as opening its device node would give.
    ///
    /// # Errors
    /// EIO when the terminal is hung up.
    fn reopen(&self) -> Result<Arc<dyn FileOps>, Errno>;

    /// The session the terminal controls now (0: none).
    fn session(&self) -> i32;

    /// Session `sid`'s leader is exiting: if the terminal still controls `sid`, it controls
    /// no session any more, and its foreground group, returned, is to get SIGHUP. Called
    /// under the kernel's process-table lock, before the leader can be reaped (Linux's
    /// `disassociate_ctty` comes before `exit_notify`): it takes only the terminal's own
    /// state lock, and the caller sends the signal once the table is unlocked.
    fn session_leader_exited(&self, sid: i32) -> Option<i32>;

    /// vhangup(2) on the terminal: it controls no session any more, and the session's leader
    /// and foreground group get SIGHUP and SIGCONT. Call with no kernel lock held.
    fn hang_up(&self);
}

/// The calling task, as file-level code sees it.
pub trait Context {
    /// The caller's credentials.
    fn creds(&self) -> Creds;

    /// Who is asking, for inode operations.
    fn caller(&self) -> Caller;

    /// Root, working directory, umask and mount namespace.
    fn fs(&self) -> &Arc<FsContext>;

    /// The caller's address space (ioctl arguments).
    fn mm(&self) -> &MemoryManager;

    /// Blocks until `ready` returns true, registered on `queues`, re-checking on every
    /// wake-up.
    ///
    /// # Errors
    /// EINTR when a signal, stop or exit interrupts the wait (restarted as `ERESTARTSYS`
    /// unless [`Context::clear_restart`] is called), ETIMEDOUT when `deadline` passes first.
    fn block(
        &mut self,
        queues: &[&WaitQueue],
        deadline: Option<Instant>,
        ready: &mut dyn FnMut() -> bool,
    ) -> Result<(), Errno>;

    /// The interrupted call is not restarted (a transfer that already moved data returns
    /// its count).
    fn clear_restart(&mut self);

    /// Sends `signo` to the calling thread as its own `kill` would (SI_USER, the caller's
    /// PID and UID): SIGPIPE after EPIPE.
    fn raise_signal(&mut self, signo: i32);

    /// The caller's thread ID (global: the sentry keeps IDs global internally).
    fn tid(&self) -> i32;

    /// The caller's process ID (global).
    fn tgid(&self) -> i32;

    /// What the caller calls the process or group with global ID `global` (0: not visible
    /// in its PID namespace).
    fn vpid_of(&self, global: i32) -> i32;

    /// The global ID of what the caller calls `local`; None when nothing visible to it is.
    fn lookup_pid(&self, local: i32) -> Option<i32>;

    /// The caller's process, group and session.
    ///
    /// # Errors
    /// ESRCH when the caller's process is gone from the process table.
    fn job_ids(&self) -> Result<JobIds, Errno>;

    /// Whether group `pgid` has a live process in session `sid` (global IDs).
    ///
    /// # Errors
    /// ESRCH when no process, process group or session has the ID `pgid` any more.
    fn group_in_session(&self, pgid: i32, sid: i32) -> Result<bool, Errno>;

    /// Signalling process groups.
    fn process_groups(&self) -> &dyn ProcessGroups;

    /// The same, kept by a terminal to signal its session when it hangs up later (a pty
    /// master's last close, where no task is at hand).
    fn process_groups_weak(&self) -> Weak<dyn ProcessGroups + Send + Sync>;

    /// Whether `signo` sent to the caller now would act: neither blocked by the calling
    /// thread nor ignored by its process (a background read or write on a terminal fails
    /// with EIO instead of stopping a process that would not stop).
    fn signal_would_act(&self, signo: i32) -> bool;

    /// The terminal recorded as the controlling terminal of session `sid` (a global ID), if
    /// it still exists. The kernel keeps the record, as Linux keeps it with the session.
    fn session_terminal(&self, sid: i32) -> Option<Arc<dyn ControllingTerminal>>;

    /// Records `term` as the controlling terminal of session `sid`, replacing the record.
    fn set_session_terminal(&self, sid: i32, term: Weak<dyn ControllingTerminal>);

    /// A new open of `/dev/net/tun` bound to the caller's network namespace (where its
    /// TUNSETIFF makes links), as Linux's tun keeps the opener's namespace.
    fn open_net_tun(&self) -> Arc<dyn FileOps>;
}

impl dyn Context + '_ {
    /// Blocks until `ready` returns a result; see [`Context::block`].
    ///
    /// # Errors
    /// As [`Context::block`], and `ready`'s own errors.
    pub fn block_on<T>(
        &mut self,
        queues: &[&WaitQueue],
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Option<Result<T, Errno>>,
    ) -> Result<T, Errno> {
        let mut out = None;
        self.block(queues, deadline, &mut || {
            out = ready();
            out.is_some()
        })?;
        out.expect("block returns Ok only after ready produced a result")
    }

    /// Raises SIGPIPE in the caller for a write that failed with EPIPE.
    pub fn raise_sigpipe(&mut self) {
        self.raise_signal(libc::SIGPIPE);
    }
}
