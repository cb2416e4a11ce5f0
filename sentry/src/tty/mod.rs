//! Terminals: the job control every terminal shares ([`job`]), and two backends for it.
//!
//! - [`HostTty`]: a host pty slave handed to the sandbox as a container's terminal. The line
//!   discipline (canonical mode, echo, erase, output processing) stays with the host pty,
//!   which the containerd shim owns: the sentry passes bytes through and forwards the
//!   termios and window size calls to it. Typed `^C`/`^\\`/`^Z`: the host pty has no session
//!   of its own, so its `ISIG` handling only drops those characters; the shim, which sees
//!   the typed bytes on their way in, asks the sentry to signal the foreground group
//!   ([`HostTty::signal_foreground`] through the Loader). Job control of its readers is the
//!   sentry's: a background job that reads it stops with SIGTTIN.
//! - [`pty`]: pseudo-terminals made entirely in the sentry (devpts, `/dev/ptmx`), with the
//!   sentry's own line discipline ([`ldisc`]).
//!
//! A host terminal can also appear as a node of the container's devpts (`/dev/pts/N`, as
//! the pty runc makes inside the container does): the node's owner learns through
//! [`pty::PtyOwner`] when the terminal is gone, as for the sentry's own ptys.
//!
//! [`DevTty`] is `/dev/tty`: opening it opens the caller's controlling terminal.
//!
//! Layer: above `vfs` (a terminal is a file), below the filesystems (devpts makes ptys)
//! and the kernel: what it needs of processes (the caller's session, signalling a process
//! group) comes through [`Context`].
//!
//! # Lock order
//! Every lock here is a leaf (see [`job`] and [`pty`]): none is held while asking the
//! context, which takes the kernel's process-table lock.

pub mod image;
pub mod job;
pub mod ldisc;
pub mod pty;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, OnceLock, Weak};

use nix::sys::termios::{self, SetArg};

use self::job::{ControllingTerminal, Job};
use self::pty::PtyOwner;
use crate::abi::{Errno, SysResult, Termios, Winsize};
use crate::mm::usermem::UserAddr;
use crate::vfs::host::HostFile;
use crate::vfs::{Context, ProcessGroups};
use crate::vfs::{FileOps, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};

/// A host terminal (the slave of a pty the shim owns) as a sentry file.
pub struct HostTty {
    host: HostFile,
    job: Job,
    me: Weak<HostTty>,
    /// The devpts node standing for this terminal, if any: its filesystem and number, told
    /// when the terminal is gone (the last open file closed).
    node: OnceLock<(Weak<dyn PtyOwner>, u32)>,
}

impl Drop for HostTty {
    fn drop(&mut self) {
        if let Some((owner, index)) = self.node.get() {
            if let Some(owner) = owner.upgrade() {
                owner.released(*index);
            }
        }
    }
}

impl std::fmt::Debug for HostTty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTty")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl HostTty {
    /// Wraps the host terminal `fd` (donated to the sandbox).
    pub fn new(fd: OwnedFd) -> Arc<HostTty> {
        Arc::new_cyclic(|me| HostTty {
            host: HostFile::donated(fd),
            job: Job::default(),
            me: me.clone(),
            node: OnceLock::new(),
        })
    }

    /// Records that node `index` of `owner` (a devpts instance) stands for this terminal;
    /// `owner` is told when the terminal is gone. A second call is ignored.
    pub fn set_node(&self, owner: Weak<dyn PtyOwner>, index: u32) {
        let _ = self.node.set((owner, index));
    }

    /// Makes this the controlling terminal of session `sid` with `pgid` in the foreground,
    /// as `setsid(); ioctl(TIOCSCTTY)` before `execve` does for a container's process.
    pub fn set_controlling(&self, sid: i32, pgid: i32) {
        self.job.set_controlling(sid, pgid);
    }

    /// Sends `signo` to the foreground process group (SIGWINCH after a resize).
    pub fn signal_foreground(&self, groups: &dyn ProcessGroups, signo: i32) {
        self.job.signal_foreground(groups, signo);
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
}

impl ControllingTerminal for HostTty {
    fn reopen(&self) -> Result<Arc<dyn FileOps>, Errno> {
        let me = self.me.upgrade().ok_or(Errno::EIO)?;
        Ok(me)
    }

    fn session(&self) -> i32 {
        self.job.state().session
    }

    fn session_leader_exited(&self, groups: &dyn ProcessGroups, sid: i32) {
        self.job.leader_exited(groups, sid);
    }
}

impl FileOps for HostTty {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        // A background job reading its controlling terminal stops (SIGTTIN) rather than
        // take the foreground's input; EIO if it ignores or blocks the signal.
        if dst.remaining() > 0 && self.job.in_background(t) {
            if !t.signal_would_act(libc::SIGTTIN) {
                return Err(Errno::EIO);
            }
            let pgid = t.job_ids()?.pgid;
            t.process_groups().signal_process_group(pgid, libc::SIGTTIN);
            // Interrupted by the stop; the read restarts once the job continues.
            t.block(&[], None, &mut || false)?;
        }
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
            c => {
                let me: Weak<dyn ControllingTerminal> = self.me.clone();
                match self.job.ioctl(t, me, false, c, arg) {
                    Some(r) => r,
                    None => self.host.ioctl(t, f, cmd, arg),
                }
            }
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
    use super::job::JobState;
    use super::*;

    #[test]
    fn controlling_session_is_recorded() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let tty = HostTty::new(pty.slave);
        assert_eq!(tty.job.state(), JobState::default());
        tty.set_controlling(5, 5);
        assert_eq!(
            tty.job.state(),
            JobState {
                session: 5,
                foreground: 5,
                by_master: false,
            }
        );
    }
}

/// `/dev/tty`: an open of it is replaced by an open of the caller's controlling terminal.
#[derive(Debug)]
pub struct DevTty;

impl FileOps for DevTty {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            mode: libc::S_IFCHR | 0o666,
            rdev: libc::makedev(5, 0),
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        _dst: &mut dyn IoDst,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::ENXIO)
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        _src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::ENXIO)
    }

    fn opened(&self, t: &mut dyn Context, _flags: u32) -> Result<Option<Arc<dyn FileOps>>, Errno> {
        let term = job::controlling_terminal(t).ok_or(Errno::ENXIO)?;
        term.reopen().map(Some)
    }
}
