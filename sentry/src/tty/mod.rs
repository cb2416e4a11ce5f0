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
//! A checkpoint saves the container's console (the init process's host terminal) as a
//! [`image::ConsoleImage`] ([`HostTty::saved`]); a restore puts it onto the console of its
//! own invocation, a new host pty ([`HostTty::restore`]). The host terminal of an exec'd
//! process has no image: its master went to that exec's caller, whom a restore cannot
//! reach.
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
    /// The container's console (its init's terminal), which a checkpoint saves.
    console: bool,
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
    /// Wraps the host terminal `fd` (donated to the sandbox) of an exec'd process.
    pub fn new(fd: OwnedFd) -> Arc<HostTty> {
        Self::wrap(fd, false)
    }

    /// Wraps the host terminal `fd` that is the container's console (its init's).
    pub fn console(fd: OwnedFd) -> Arc<HostTty> {
        Self::wrap(fd, true)
    }

    fn wrap(fd: OwnedFd, console: bool) -> Arc<HostTty> {
        Arc::new_cyclic(|me| HostTty {
            host: HostFile::donated(fd),
            job: Job::default(),
            me: me.clone(),
            console,
            node: OnceLock::new(),
        })
    }

    /// The number of its devpts node, if it has one.
    pub fn node_index(&self) -> Option<u32> {
        self.node.get().map(|(_, index)| *index)
    }

    /// What a checkpoint saves of the console: the host pty's termios and window size, the
    /// session it controls and its node.
    ///
    /// # Errors
    /// A message: not the container's console (an exec's terminal), the host pty's
    /// termios unreadable.
    pub fn saved(&self) -> Result<image::ConsoleImage, String> {
        if !self.console {
            return Err(
                "the terminal of an exec'd process (its host pty's master went to that exec's caller, whom a restore cannot reach)"
                    .into(),
            );
        }
        let termios = self
            .host_termios()
            .map_err(|e| format!("the console's termios ({e:?})"))?;
        let ws = rustix::termios::tcgetwinsize(self.host.as_fd())
            .map_err(|e| format!("the console's window size ({e})"))?;
        let job = self.job.state();
        let node = self.node.get().and_then(|(owner, index)| {
            let node = owner.upgrade()?.node(*index)?;
            Some((*index, node))
        });
        Ok(image::ConsoleImage {
            termios: image::TermiosImage::from(&termios),
            winsize: [ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel],
            session: job.session,
            foreground: job.foreground,
            node,
        })
    }

    /// Puts the saved console `image` onto this one, a new host pty given to the restored
    /// sandbox: its termios and window size go to the host pty, the session and foreground
    /// group to its job control (hung up through `groups`, the restored kernel's).
    ///
    /// # Errors
    /// A message: this is not a console, the image's node number differs from this one's,
    /// the host pty refused the settings.
    pub fn restore(
        &self,
        image: &image::ConsoleImage,
        groups: Weak<dyn ProcessGroups + Send + Sync>,
    ) -> Result<(), String> {
        if !self.console {
            return Err("the console put onto a terminal that is not one".into());
        }
        let index = image.node.map(|(index, _)| index);
        if index != self.node_index() {
            return Err(format!(
                "the console was /dev/pts/{}, the new one is /dev/pts/{}",
                fmt_index(index),
                fmt_index(self.node_index())
            ));
        }
        let termios = image.termios.termios()?;
        self.set_host_termios(&termios, SetArg::TCSANOW)
            .map_err(|e| format!("setting the console's termios ({e:?})"))?;
        let ws = image::winsize(image.winsize);
        rustix::termios::tcsetwinsize(
            self.host.as_fd(),
            rustix::termios::Winsize {
                ws_row: ws.row,
                ws_col: ws.col,
                ws_xpixel: ws.xpixel,
                ws_ypixel: ws.ypixel,
            },
        )
        .map_err(|e| format!("setting the console's window size ({e})"))?;
        let state = job::JobState {
            session: image.session,
            foreground: image.foreground,
            by_master: false,
        };
        self.job.put_back(state, groups);
        Ok(())
    }

    /// The terminal it is, for the kernel's record of the session it controls.
    pub fn weak_terminal(&self) -> Weak<dyn ControllingTerminal> {
        let w: Weak<dyn ControllingTerminal> = self.me.clone();
        w
    }

    fn host_termios(&self) -> Result<Termios, Errno> {
        let raw: libc::termios = termios::tcgetattr(self.host.as_fd())?.into();
        Ok(Termios::from(&raw))
    }

    /// Sets the host pty's termios to `new` (the control characters it has; the host's
    /// others are kept).
    fn set_host_termios(&self, new: &Termios, when: SetArg) -> Result<(), Errno> {
        let current = termios::tcgetattr(self.host.as_fd())?;
        let mut raw: libc::termios = current.into();
        raw.c_iflag = new.iflag;
        raw.c_oflag = new.oflag;
        raw.c_cflag = new.cflag;
        raw.c_lflag = new.lflag;
        raw.c_line = new.line;
        raw.c_cc[..new.cc.len()].copy_from_slice(&new.cc);
        termios::tcsetattr(self.host.as_fd(), when, &raw.into())?;
        Ok(())
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
        self.set_host_termios(&new, when)?;
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

fn fmt_index(index: Option<u32>) -> String {
    index.map_or_else(|| "(none)".into(), |i| i.to_string())
}

impl ControllingTerminal for HostTty {
    fn reopen(&self) -> Result<Arc<dyn FileOps>, Errno> {
        let me = self.me.upgrade().ok_or(Errno::EIO)?;
        Ok(me)
    }

    fn session(&self) -> i32 {
        self.job.state().session
    }

    fn session_leader_exited(&self, sid: i32) -> Option<i32> {
        self.job.leader_exited(sid)
    }

    fn hang_up(&self) {
        self.job.hangup();
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

    struct NoGroups;

    impl ProcessGroups for NoGroups {
        fn signal_process_group(&self, _pgid: i32, _signo: i32) {}
    }

    #[test]
    fn console_moves_onto_a_new_pty() {
        let old = nix::pty::openpty(None, None).unwrap();
        let tty = HostTty::console(old.slave);
        let mut t: libc::termios = termios::tcgetattr(tty.host.as_fd()).unwrap().into();
        t.c_lflag &= !(libc::ICANON | libc::ECHO);
        t.c_cc[libc::VMIN] = 3;
        termios::tcsetattr(tty.host.as_fd(), SetArg::TCSANOW, &t.into()).unwrap();
        let size = rustix::termios::Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(tty.host.as_fd(), size).unwrap();
        tty.set_controlling(7, 9);
        let image = tty.saved().unwrap();
        assert_eq!(image.winsize, [33, 101, 0, 0]);
        assert_eq!((image.session, image.foreground, image.node), (7, 9, None));

        let new = nix::pty::openpty(None, None).unwrap();
        let again = HostTty::console(new.slave);
        let groups = || -> Weak<dyn ProcessGroups + Send + Sync> { Weak::<NoGroups>::new() };
        again.restore(&image, groups()).unwrap();
        assert_eq!(again.saved().unwrap(), image);
        let lflag = termios::tcgetattr(again.host.as_fd()).unwrap().local_flags;
        assert!(!lflag.contains(termios::LocalFlags::ICANON | termios::LocalFlags::ECHO));

        // An exec's terminal is not saved, and a console cannot move onto one.
        let exec = HostTty::new(nix::pty::openpty(None, None).unwrap().slave);
        assert!(exec.saved().is_err());
        assert!(exec.restore(&image, groups()).is_err());
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
