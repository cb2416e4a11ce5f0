//! Job control, shared by every kind of terminal: which session a terminal controls, its
//! foreground process group, the ioctls about them, hang-up, and `/dev/tty`.
//!
//! Both terminal backends (the host pty passthrough in [`super::HostTty`] and the sentry's
//! own pseudo-terminals in [`super::pty`]) keep a [`Job`] and hand these ioctls to it.
//!
//! `/dev/tty` needs the terminal controlling the caller's session. A terminal that becomes a
//! session's controlling terminal records itself with the kernel
//! ([`Context::set_session_terminal`]); a record whose terminal no longer names that session
//! is not followed.
//!
//! # Lock order
//! `Job::state` is a leaf, never held while asking the context (which takes the kernel's
//! process-table lock) or signalling.

use std::sync::{Arc, Mutex, Weak};

use crate::abi::{Errno, SysResult};
use crate::mm::usermem::UserAddr;
use crate::vfs::{Context, JobIds, ProcessGroups};

/// Which session a terminal controls and who is in the foreground (global IDs; 0: none).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobState {
    pub session: i32,
    pub foreground: i32,
    /// A pty whose master end was made the controlling terminal (`TIOCSCTTY` on the
    /// master): Linux keeps the two ends apart, so `TIOCNOTTY` on the other end is ENOTTY.
    pub by_master: bool,
}

pub use crate::vfs::ControllingTerminal;

/// The terminal controlling the caller's session, if any (the kernel's record, while the
/// terminal still says it controls that session).
pub fn controlling_terminal(t: &dyn Context) -> Option<Arc<dyn ControllingTerminal>> {
    let sid = t.job_ids().ok()?.sid;
    let found = t.session_terminal(sid)?;
    (found.session() == sid).then_some(found)
}

/// Job control of one terminal.
#[derive(Default)]
pub struct Job {
    /// A leaf lock.
    state: Mutex<JobState>,
    /// The kernel whose groups are signalled on hang-up (set with the session).
    groups: Mutex<Option<Weak<dyn ProcessGroups + Send + Sync>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("state", &self.state()).finish()
    }
}

impl Job {
    pub fn state(&self) -> JobState {
        *self.state.lock().unwrap()
    }

    /// Makes this the controlling terminal of session `sid` with `pgid` in the foreground,
    /// as `setsid(); ioctl(TIOCSCTTY)` before `execve` does for a container's process.
    pub fn set_controlling(&self, sid: i32, pgid: i32) {
        *self.state.lock().unwrap() = JobState {
            session: sid,
            foreground: pgid,
            by_master: false,
        };
    }

    /// Job control as a checkpoint saved it: `state`, hung up through `groups` (the
    /// restored kernel's) when it controls a session.
    pub fn restored(state: JobState, groups: Weak<dyn ProcessGroups + Send + Sync>) -> Job {
        let job = Job::default();
        job.put_back(state, groups);
        job
    }

    /// Puts back job control as a checkpoint saved it (see [`Job::restored`]).
    pub fn put_back(&self, state: JobState, groups: Weak<dyn ProcessGroups + Send + Sync>) {
        *self.state.lock().unwrap() = state;
        *self.groups.lock().unwrap() = (state.session != 0).then_some(groups);
    }

    /// The leader of session `sid` is exiting: if this terminal controls it, the session
    /// loses it, and the foreground group, returned, is to get SIGHUP (Linux's
    /// `disassociate_ctty` on exit). Takes only the state lock.
    pub fn leader_exited(&self, sid: i32) -> Option<i32> {
        let mut state = self.state.lock().unwrap();
        if state.session != sid {
            return None;
        }
        let job = std::mem::take(&mut *state);
        (job.foreground > 0).then_some(job.foreground)
    }

    /// Sends `signo` to the foreground process group.
    pub fn signal_foreground(&self, groups: &dyn ProcessGroups, signo: i32) {
        let fg = self.state().foreground;
        if fg > 0 {
            groups.signal_process_group(fg, signo);
        }
    }

    /// The session the caller is in, if this terminal controls it; ENOTTY otherwise.
    ///
    /// # Errors
    /// ENOTTY, ESRCH.
    pub fn check_session(&self, t: &dyn Context) -> Result<JobState, Errno> {
        let sid = t.job_ids()?.sid;
        let job = self.state();
        if job.session == 0 || job.session != sid {
            return Err(Errno::ENOTTY);
        }
        Ok(job)
    }

    /// Whether the caller is in a background group of the session this terminal controls
    /// (its reads and, with TOSTOP, its writes stop it).
    pub fn in_background(&self, t: &dyn Context) -> bool {
        let Ok(JobIds { pgid, sid, .. }) = t.job_ids() else {
            return false;
        };
        let job = self.state();
        job.session != 0 && job.session == sid && job.foreground != pgid
    }

    /// The job-control ioctls; None for other commands. `me` is the terminal, registered
    /// for `/dev/tty` when it becomes the caller's controlling terminal; `master`: the call
    /// came through a pty's master end.
    pub fn ioctl(
        &self,
        t: &mut dyn Context,
        me: Weak<dyn ControllingTerminal>,
        master: bool,
        cmd: u64,
        arg: u64,
    ) -> Option<SysResult> {
        Some(match cmd {
            libc::TIOCGPGRP => self.check_session(t).and_then(|job| {
                t.mm()
                    .write_obj(UserAddr(arg), &t.vpid_of(job.foreground))?;
                Ok(0)
            }),
            libc::TIOCGSID => self.check_session(t).and_then(|job| {
                t.mm().write_obj(UserAddr(arg), &t.vpid_of(job.session))?;
                Ok(0)
            }),
            libc::TIOCSPGRP => self.set_foreground(t, arg),
            libc::TIOCSCTTY => self.acquire(t, me, arg == 1, master),
            libc::TIOCNOTTY if self.state().by_master != master => Err(Errno::ENOTTY),
            libc::TIOCNOTTY => self.release(t),
            _ => return None,
        })
    }

    fn set_foreground(&self, t: &mut dyn Context, arg: u64) -> SysResult {
        let pgid: i32 = t.mm().read_obj(UserAddr(arg))?;
        if pgid < 0 {
            return Err(Errno::EINVAL);
        }
        let sid = t.job_ids()?.sid;
        {
            let job = self.state();
            if job.session == 0 || job.session != sid {
                return Err(Errno::ENOTTY);
            }
        }
        // A group outside the caller's namespace is in no session of it.
        let pgid = t.lookup_pid(pgid).ok_or(Errno::ESRCH)?;
        // Asked before taking `state`: the process table's lock comes first.
        if !t.group_in_session(pgid, sid)? {
            return Err(Errno::EPERM);
        }
        let mut job = self.state.lock().unwrap();
        if job.session != sid {
            return Err(Errno::ENOTTY);
        }
        job.foreground = pgid;
        Ok(0)
    }

    /// `TIOCSCTTY`, or opening the terminal without `O_NOCTTY`: a session leader without a
    /// controlling terminal takes this one if no session holds it.
    ///
    /// # Errors
    /// EPERM as Linux: not a session leader, the session has another terminal, or the
    /// terminal controls another session (stealing it needs CAP_SYS_ADMIN).
    pub fn acquire(
        &self,
        t: &mut dyn Context,
        me: Weak<dyn ControllingTerminal>,
        steal: bool,
        by_master: bool,
    ) -> SysResult {
        let JobIds { tgid, pgid, sid } = t.job_ids()?;
        if self.state().session == sid {
            return Ok(0);
        }
        if sid != tgid {
            return Err(Errno::EPERM);
        }
        if controlling_terminal(t).is_some() {
            return Err(Errno::EPERM);
        }
        let admin = t.creds().has_cap(crate::auth::cap::SYS_ADMIN);
        {
            let mut job = self.state.lock().unwrap();
            if job.session != 0 && !(steal && admin) {
                return Err(Errno::EPERM);
            }
            *job = JobState {
                session: sid,
                foreground: pgid,
                by_master,
            };
        }
        *self.groups.lock().unwrap() = Some(t.process_groups_weak());
        t.set_session_terminal(sid, me);
        Ok(0)
    }

    /// Opening the terminal without `O_NOCTTY`: [`Job::acquire`] when the caller may, and
    /// nothing otherwise.
    pub fn acquire_on_open(&self, t: &mut dyn Context, me: Weak<dyn ControllingTerminal>) {
        let Ok(JobIds { tgid, sid, .. }) = t.job_ids() else {
            return;
        };
        if sid == tgid && self.state().session == 0 && controlling_terminal(t).is_none() {
            let _ = self.acquire(t, me, false, false);
        }
    }

    fn release(&self, t: &mut dyn Context) -> SysResult {
        let JobIds { tgid, sid, .. } = t.job_ids()?;
        let job = self.check_session(t)?;
        if sid == tgid {
            // The session leader gives up its terminal: the foreground hangs up.
            *self.state.lock().unwrap() = JobState::default();
            let groups = t.process_groups();
            groups.signal_process_group(job.foreground, libc::SIGHUP);
            groups.signal_process_group(job.foreground, libc::SIGCONT);
        }
        Ok(0)
    }

    /// The terminal hung up (its pty master closed): the session loses it, and its leader
    /// and foreground group get SIGHUP and SIGCONT, as Linux's `tty_vhangup`.
    pub fn hangup(&self) {
        let job = std::mem::take(&mut *self.state.lock().unwrap());
        let groups = self.groups.lock().unwrap().take();
        let Some(groups) = groups.and_then(|g| g.upgrade()) else {
            return;
        };
        if job.session == 0 {
            return;
        }
        for pgid in [job.session, job.foreground] {
            if pgid > 0 {
                groups.signal_process_group(pgid, libc::SIGHUP);
                groups.signal_process_group(pgid, libc::SIGCONT);
            }
            if job.foreground == job.session {
                break;
            }
        }
    }
}
