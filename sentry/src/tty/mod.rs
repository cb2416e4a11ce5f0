//! Terminals: a host pty slave handed to the sandbox as a container's terminal.
//!
//! One responsibility: the job-control side of a terminal the host does not know about. The
//! line discipline (canonical mode, echo, erase, output processing) stays with the host pty,
//! which the containerd shim owns: the sentry passes bytes through and forwards the termios
//! and window size calls to it. What the sentry keeps itself, because only it knows the
//! sandbox's sessions and process groups, is which session the terminal controls and its
//! foreground process group (`TIOCSCTTY`, `TIOCNOTTY`, `TIOCGPGRP`, `TIOCSPGRP`, `TIOCGSID`),
//! and `SIGWINCH` to that group when the window changes.
//!
//! Typed `^C`/`^\`/`^Z`: the host pty has no session of its own, so its `ISIG` handling
//! only drops those characters (and flushes the line); the shim, which sees the typed bytes
//! on their way in, asks the sentry to signal the foreground group
//! ([`HostTty::signal_foreground`] through the Loader).
//!
//! Not yet: background-group `SIGTTOU`/`SIGTTIN`, `/dev/tty`.
//!
//! Layer: above `vfs` (a terminal is a file), below the kernel: what it needs of processes
//! (the caller's session, signalling a process group) comes through [`Context`].
//!
//! # Lock order
//! `HostTty::job` is a leaf: it is never held while asking the context, which takes the
//! kernel's process-table lock.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::sys::termios::{self, SetArg};

use crate::abi::{Errno, SysResult, Termios, Winsize};
use crate::mm::usermem::UserAddr;
use crate::vfs::host::HostFile;
use crate::vfs::{Context, JobIds, ProcessGroups};
use crate::vfs::{FileOps, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};

/// Which session a terminal controls and who is in the foreground. 0: none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct JobControl {
    session: i32,
    foreground: i32,
}

/// A host terminal (the slave of a pty the shim owns) as a sentry file.
pub struct HostTty {
    host: HostFile,
    /// A leaf lock (see the module's lock order).
    job: Mutex<JobControl>,
}

impl std::fmt::Debug for HostTty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTty")
            .field("job", &*self.job.lock().unwrap())
            .finish_non_exhaustive()
    }
}

impl HostTty {
    /// Wraps the host terminal `fd` (donated to the sandbox).
    pub fn new(fd: OwnedFd) -> Arc<HostTty> {
        Arc::new(HostTty {
            host: HostFile::donated(fd),
            job: Mutex::new(JobControl::default()),
        })
    }

    /// Makes this the controlling terminal of session `sid` with `pgid` in the foreground,
    /// as `setsid(); ioctl(TIOCSCTTY)` before `execve` does for a container's process.
    pub fn set_controlling(&self, sid: i32, pgid: i32) {
        *self.job.lock().unwrap() = JobControl {
            session: sid,
            foreground: pgid,
        };
    }

    /// Sends `signo` to the foreground process group (SIGWINCH after a resize).
    pub fn signal_foreground(&self, groups: &dyn ProcessGroups, signo: i32) {
        let fg = self.job.lock().unwrap().foreground;
        if fg <= 0 {
            return;
        }
        groups.signal_process_group(fg, signo);
    }

    /// The session the caller is in, if this terminal controls it; ENOTTY otherwise.
    fn check_session(&self, t: &dyn Context) -> Result<JobControl, Errno> {
        let sid = t.job_ids()?.sid;
        let job = *self.job.lock().unwrap();
        if job.session == 0 || job.session != sid {
            return Err(Errno::ENOTTY);
        }
        Ok(job)
    }

    fn set_termios(&self, t: &mut dyn Context, arg: u64, when: SetArg) -> SysResult {
        let new: Termios = t.mm().read_obj(UserAddr(arg))?;
        let current = termios::tcgetattr(self.host.as_fd()).map_err(|_| Errno::ENOTTY)?;
        let mut raw: libc::termios = current.into();
        raw.c_iflag = new.iflag;
        raw.c_oflag = new.oflag;
        raw.c_cflag = new.cflag;
        raw.c_lflag = new.lflag;
        raw.c_line = new.line;
        raw.c_cc[..new.cc.len()].copy_from_slice(&new.cc);
        termios::tcsetattr(self.host.as_fd(), when, &raw.into())?;
        Ok(0)
    }

    fn set_winsize(&self, t: &mut dyn Context, arg: u64) -> SysResult {
        let ws: Winsize = t.mm().read_obj(UserAddr(arg))?;
        let old = rustix::termios::tcgetwinsize(self.host.as_fd()).ok();
        let new = rustix::termios::Winsize {
            ws_row: ws.row,
            ws_col: ws.col,
            ws_xpixel: ws.xpixel,
            ws_ypixel: ws.ypixel,
        };
        rustix::termios::tcsetwinsize(self.host.as_fd(), new)
            .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        let changed = old.is_none_or(|o| (o.ws_row, o.ws_col) != (ws.row, ws.col));
        if changed {
            self.signal_foreground(t.process_groups(), libc::SIGWINCH);
        }
        Ok(0)
    }

    fn set_foreground(&self, t: &mut dyn Context, arg: u64) -> SysResult {
        let pgid: i32 = t.mm().read_obj(UserAddr(arg))?;
        if pgid < 0 {
            return Err(Errno::EINVAL);
        }
        // A group outside the caller's namespace is in no session of it.
        let pgid = t.lookup_pid(pgid).ok_or(Errno::EPERM)?;
        let sid = t.job_ids()?.sid;
        // Asked before taking `job`: the process table's lock comes first.
        let in_session = t.group_in_session(pgid, sid);
        let mut job = self.job.lock().unwrap();
        if job.session == 0 || job.session != sid {
            return Err(Errno::ENOTTY);
        }
        if !in_session {
            return Err(Errno::EPERM);
        }
        job.foreground = pgid;
        Ok(0)
    }

    fn acquire(&self, t: &mut dyn Context) -> SysResult {
        let JobIds { tgid, pgid, sid } = t.job_ids()?;
        let mut job = self.job.lock().unwrap();
        if job.session == sid {
            return Ok(0);
        }
        // Only a session leader without a terminal may take one that no session holds
        // (stealing with arg 1 needs CAP_SYS_ADMIN, which the sandbox's users lack).
        if sid != tgid || job.session != 0 {
            return Err(Errno::EPERM);
        }
        *job = JobControl {
            session: sid,
            foreground: pgid,
        };
        Ok(0)
    }

    fn release(&self, t: &mut dyn Context) -> SysResult {
        let JobIds { tgid, sid, .. } = t.job_ids()?;
        let job = self.check_session(t)?;
        if sid == tgid {
            // The session leader gives up its terminal: the foreground hangs up.
            *self.job.lock().unwrap() = JobControl::default();
            let groups = t.process_groups();
            groups.signal_process_group(job.foreground, libc::SIGHUP);
            groups.signal_process_group(job.foreground, libc::SIGCONT);
        }
        Ok(0)
    }
}

impl FileOps for HostTty {
    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        self.host.read(t, f, dst, None)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        self.host.write(t, f, src, None)
    }

    fn ioctl(&self, t: &mut dyn Context, f: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        match u64::from(cmd) {
            libc::TCSETS => self.set_termios(t, arg, SetArg::TCSANOW),
            libc::TCSETSW => self.set_termios(t, arg, SetArg::TCSADRAIN),
            libc::TCSETSF => self.set_termios(t, arg, SetArg::TCSAFLUSH),
            libc::TIOCSWINSZ => self.set_winsize(t, arg),
            libc::TIOCGPGRP => {
                let job = self.check_session(t)?;
                t.mm()
                    .write_obj(UserAddr(arg), &t.vpid_of(job.foreground))?;
                Ok(0)
            }
            libc::TIOCGSID => {
                let job = self.check_session(t)?;
                t.mm().write_obj(UserAddr(arg), &t.vpid_of(job.session))?;
                Ok(0)
            }
            libc::TIOCSPGRP => self.set_foreground(t, arg),
            libc::TIOCSCTTY => self.acquire(t),
            libc::TIOCNOTTY => self.release(t),
            _ => self.host.ioctl(t, f, cmd, arg),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.host.stat()
    }

    fn readiness(&self) -> u32 {
        self.host.readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controlling_session_is_recorded() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let tty = HostTty::new(pty.slave);
        assert_eq!(*tty.job.lock().unwrap(), JobControl::default());
        tty.set_controlling(5, 5);
        assert_eq!(
            *tty.job.lock().unwrap(),
            JobControl {
                session: 5,
                foreground: 5
            }
        );
    }
}
