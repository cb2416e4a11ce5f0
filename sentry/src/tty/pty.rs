//! Pseudo-terminals implemented in the sentry: a master (what `/dev/ptmx` opens) and a
//! slave (`/dev/pts/N`) joined by the sentry's own line discipline ([`super::ldisc`]); no
//! host pty stands behind them.
//!
//! The master's writes are the slave's input; the slave's writes (and the echo) are what the
//! master reads. Termios, window size and job control belong to the pair and may be asked
//! of either end, as on Linux. The master's last close hangs the pair up: slave reads
//! return end of file, writes EIO, and the controlling session gets SIGHUP and SIGCONT.
//! When every slave is closed, master reads return EIO once the output is drained.
//!
//! # Lock order
//! `Pty::state` is a leaf: never held while blocking, asking the context or signalling;
//! wait queues are notified after it is released.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::job::{ControllingTerminal, Job};
use super::ldisc::{LineDiscipline, VMIN, VTIME};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{Errno, SysResult, Termios, Winsize};
use crate::mm::usermem::UserAddr;
use crate::vfs::{Context, FileOps, IoDst, IoSrc, OpenFile, Stat};
use crate::waiter::{WaitQueue, Wake};

/// The major number of pty slaves (`UNIX98_PTY_SLAVE_MAJOR`).
pub const SLAVE_MAJOR: u32 = 136;

/// `TIOCGPTPEER`: `_IO('T', 0x41)`.
pub const TIOCGPTPEER: u64 = 0x5441;

/// `TCGETS2`, `TCSETS2`, `TCSETSW2`, `TCSETSF2` (`struct termios2`, 44 bytes).
const TCGETS2: u64 = 0x802c_542a;
const TCSETS2: u64 = 0x402c_542b;
const TCSETSW2: u64 = 0x402c_542c;
const TCSETSF2: u64 = 0x402c_542d;

/// `struct termios2`: termios with its input and output speeds.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Termios2 {
    termios: Termios,
    ispeed: u32,
    ospeed: u32,
}

/// What a pair's filesystem (devpts) learns about its ptys.
pub trait PtyOwner: Send + Sync {
    /// The master of pty `index` closed: its slave node goes away.
    fn released(&self, index: u32);

    /// The permission bits and owner of slave node `index`, while it is there (what a
    /// checkpoint saves of it).
    fn node(&self, _index: u32) -> Option<super::image::NodeImage> {
        None
    }
}

#[derive(Debug)]
struct PtyState {
    ldisc: LineDiscipline,
    /// `TIOCSPTLCK`: the slave cannot be opened while locked.
    locked: bool,
    /// The master is closed: the pair is hung up.
    hung_up: bool,
    /// Open slaves.
    slaves: usize,
    /// A slave was opened at least once (the master reads EIO only after the last closes).
    slave_opened: bool,
    /// `TIOCPKT`: the master's reads start with a status byte.
    packet: bool,
    /// `TIOCPKT_*` events not yet read by the master in packet mode.
    packet_status: u8,
}

/// `TIOCPKT` and `TIOCGPKT` (not in the libc crate for this target).
const TIOCPKT: u64 = 0x5420;
const TIOCGPKT: u64 = 0x8004_5438;
/// Packet-mode status bits: data follows, the slave flushed its input or its output.
const TIOCPKT_DATA: u8 = 0;
const TIOCPKT_FLUSHREAD: u8 = 1;
const TIOCPKT_FLUSHWRITE: u8 = 2;

/// One pty pair.
pub struct Pty {
    index: u32,
    state: Mutex<PtyState>,
    /// Readiness of the master end changes.
    master_queue: WaitQueue,
    /// Readiness of the slave end changes.
    slave_queue: WaitQueue,
    job: Job,
    owner: Weak<dyn PtyOwner>,
    me: Weak<Pty>,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Copies `data` to `dst`; returns the count and what did not reach it.
fn copy_out(dst: &mut dyn IoDst, data: &[u8]) -> (Result<usize, Errno>, usize) {
    match dst.copy_from(data) {
        Ok(n) => (Ok(n), n),
        Err(e) => (Err(e), 0),
    }
}

/// Reads what `src` holds, at most `max` bytes.
fn copy_in(src: &mut dyn IoSrc, max: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; src.remaining().min(max)];
    let n = src.copy_to(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

impl Pty {
    /// A new locked pair numbered `index`, with a master already open.
    pub fn new(index: u32, owner: Weak<dyn PtyOwner>) -> Arc<Pty> {
        Arc::new_cyclic(|me| Pty {
            index,
            state: Mutex::new(PtyState {
                ldisc: LineDiscipline::default(),
                locked: true,
                hung_up: false,
                slaves: 0,
                slave_opened: false,
                packet: false,
                packet_status: 0,
            }),
            master_queue: WaitQueue::new(),
            slave_queue: WaitQueue::new(),
            job: Job::default(),
            owner,
            me: me.clone(),
        })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    fn lock(&self) -> MutexGuard<'_, PtyState> {
        self.state.lock().unwrap()
    }

    /// The master end (one per pair, made by the ptmx open).
    pub fn master(self: &Arc<Self>) -> Arc<Master> {
        Arc::new(Master { pty: self.clone() })
    }

    /// Opens the slave end.
    ///
    /// # Errors
    /// EIO while locked or after the master closed.
    pub fn open_slave(self: &Arc<Self>) -> Result<Arc<Slave>, Errno> {
        let mut s = self.lock();
        if s.hung_up || s.locked {
            return Err(Errno::EIO);
        }
        s.slaves += 1;
        s.slave_opened = true;
        drop(s);
        self.master_queue.notify_all();
        Ok(Arc::new(Slave { pty: self.clone() }))
    }

    fn notify_both(&self) {
        self.master_queue.notify_all();
        self.slave_queue.notify_all();
    }

    /// The pair as a controlling terminal (what the kernel records for its session).
    pub fn weak_terminal(&self) -> Weak<dyn ControllingTerminal> {
        let w: Weak<dyn ControllingTerminal> = self.me.clone();
        w
    }

    fn rdev(&self) -> u64 {
        libc::makedev(SLAVE_MAJOR, self.index)
    }

    /// The ioctls both ends answer the same way (on the pair's one termios and window).
    fn common_ioctl(
        &self,
        t: &mut dyn Context,
        master: bool,
        cmd: u64,
        arg: u64,
    ) -> Option<SysResult> {
        let r = match cmd {
            libc::TCGETS => {
                let tio = self.lock().ldisc.termios;
                t.mm().write_obj(UserAddr(arg), &tio).map(|_| 0)
            }
            libc::TCSETS | libc::TCSETSW | libc::TCSETSF => {
                self.set_termios(t, master, cmd == libc::TCSETSF, arg)
            }
            TCGETS2 => {
                let tio = Termios2 {
                    termios: self.lock().ldisc.termios,
                    ispeed: 38400,
                    ospeed: 38400,
                };
                t.mm().write_obj(UserAddr(arg), &tio).map(|_| 0)
            }
            TCSETS2 | TCSETSW2 | TCSETSF2 => {
                let new: Result<Termios2, Errno> = t.mm().read_obj(UserAddr(arg));
                new.and_then(|new| self.apply_termios(t, master, cmd == TCSETSF2, new.termios))
            }
            libc::TIOCGWINSZ => {
                let ws = self.lock().ldisc.winsize;
                t.mm().write_obj(UserAddr(arg), &ws).map(|_| 0)
            }
            libc::TIOCSWINSZ => self.set_winsize(t, arg),
            libc::TCFLSH => self.flush(master, arg),
            libc::TCXONC => {
                if arg > 3 {
                    Err(Errno::EINVAL)
                } else {
                    Ok(0)
                }
            }
            libc::TCSBRK | libc::TCSBRKP => Ok(0),
            // TIOCGPGRP and TIOCGSID on the master report the slave's without asking
            // whether the caller's session is the terminal's, as Linux.
            libc::TIOCGPGRP if master => {
                let fg = self.job.state().foreground;
                t.mm().write_obj(UserAddr(arg), &t.vpid_of(fg)).map(|_| 0)
            }
            libc::TIOCGSID if master => {
                let sid = self.job.state().session;
                if sid == 0 {
                    Err(Errno::ENOTTY)
                } else {
                    t.mm().write_obj(UserAddr(arg), &t.vpid_of(sid)).map(|_| 0)
                }
            }
            // A background group changing the foreground stops with SIGTTOU first (it
            // proceeds if it ignores or blocks the signal), as Linux's tty_check_change.
            libc::TIOCSPGRP if !master => match self.check_background_change(t) {
                Ok(()) => return self.job.ioctl(t, self.weak_terminal(), master, cmd, arg),
                Err(e) => Err(e),
            },
            _ => return self.job.ioctl(t, self.weak_terminal(), master, cmd, arg),
        };
        Some(r)
    }

    fn set_termios(&self, t: &mut dyn Context, master: bool, flush: bool, arg: u64) -> SysResult {
        let new: Termios = t.mm().read_obj(UserAddr(arg))?;
        self.apply_termios(t, master, flush, new)
    }

    fn apply_termios(
        &self,
        t: &mut dyn Context,
        master: bool,
        flush: bool,
        new: Termios,
    ) -> SysResult {
        if !master {
            self.check_background_change(t)?;
        }
        let mut s = self.lock();
        if flush {
            s.ldisc.flush_input();
        }
        s.ldisc.set_termios(new);
        let signals = s.ldisc.take_signals();
        drop(s);
        self.notify_both();
        for sig in signals {
            self.job.signal_foreground(t.process_groups(), sig);
        }
        Ok(0)
    }

    fn set_winsize(&self, t: &mut dyn Context, arg: u64) -> SysResult {
        let ws: Winsize = t.mm().read_obj(UserAddr(arg))?;
        let mut s = self.lock();
        let old = s.ldisc.winsize;
        s.ldisc.winsize = ws;
        drop(s);
        if (old.row, old.col, old.xpixel, old.ypixel) != (ws.row, ws.col, ws.xpixel, ws.ypixel) {
            self.job
                .signal_foreground(t.process_groups(), libc::SIGWINCH);
        }
        Ok(0)
    }

    /// `TCFLSH`: on the master, "input" is what it would read (the slave's output).
    fn flush(&self, master: bool, arg: u64) -> SysResult {
        let (slave_in, slave_out) = match arg as i32 {
            libc::TCIFLUSH => (true, false),
            libc::TCOFLUSH => (false, true),
            libc::TCIOFLUSH => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let (slave_in, slave_out) = if master {
            (slave_out, slave_in)
        } else {
            (slave_in, slave_out)
        };
        let mut s = self.lock();
        if slave_in {
            s.ldisc.flush_input();
        }
        if slave_out {
            s.ldisc.flush_output();
        }
        // The slave's flushes are news for a master in packet mode; its own are not.
        if s.packet && !master {
            if slave_in {
                s.packet_status |= TIOCPKT_FLUSHREAD;
            }
            if slave_out {
                s.packet_status |= TIOCPKT_FLUSHWRITE;
            }
        }
        drop(s);
        self.notify_both();
        Ok(0)
    }

    /// A background process changing the terminal (TCSETS*, writes with TOSTOP): SIGTTOU to
    /// its group, unless it ignores or blocks it (then the change goes ahead).
    fn check_background_change(&self, t: &mut dyn Context) -> Result<(), Errno> {
        if !self.job.in_background(t) || !t.signal_would_act(libc::SIGTTOU) {
            return Ok(());
        }
        self.stop_caller(t, libc::SIGTTOU)
    }

    /// Sends `signo` to the caller's group and waits for it to act (the call restarts
    /// once the process continues).
    fn stop_caller(&self, t: &mut dyn Context, signo: i32) -> Result<(), Errno> {
        let pgid = t.job_ids()?.pgid;
        t.process_groups().signal_process_group(pgid, signo);
        t.block(&[], None, &mut || false)
    }

    /// Input from the master's writer, signalling the foreground group for ISIG characters.
    fn master_write(&self, t: &mut dyn Context, f: &OpenFile, src: &mut dyn IoSrc) -> SysResult {
        if src.remaining() == 0 {
            return Ok(0);
        }
        let nb = f.nonblocking();
        let mut done = 0usize;
        loop {
            let mut s = self.lock();
            if s.ldisc.input_room() {
                let data = match copy_in(src, super::ldisc::INPUT_MAX) {
                    Ok(d) => d,
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => return Ok(done as u64),
                };
                let fed = s.ldisc.write_input(&data);
                drop(s);
                done += fed.consumed;
                // Bytes copied in but not consumed are lost to the writer's count only:
                // the source cannot be rewound, so report what was consumed.
                self.notify_both();
                for sig in fed.signals {
                    self.job.signal_foreground(t.process_groups(), sig);
                }
                if fed.consumed < data.len() {
                    // The input filled up part-way: take the rest later.
                    let rest = &data[fed.consumed..];
                    let fed2 = self.wait_and_feed(t, nb, rest)?;
                    done += fed2;
                }
                if src.remaining() == 0 {
                    return Ok(done as u64);
                }
                continue;
            }
            drop(s);
            if done > 0 {
                return Ok(done as u64);
            }
            if nb {
                return Err(Errno::EAGAIN);
            }
            t.block(&[&self.master_queue], None, &mut || {
                self.lock().ldisc.input_room()
            })?;
        }
    }

    /// Feeds `rest` as room appears (blocking unless `nb`); returns the bytes consumed.
    fn wait_and_feed(
        &self,
        t: &mut dyn Context,
        nb: bool,
        mut rest: &[u8],
    ) -> Result<usize, Errno> {
        let mut done = 0;
        while !rest.is_empty() {
            if nb {
                break;
            }
            if t.block(&[&self.master_queue], None, &mut || {
                self.lock().ldisc.input_room()
            })
            .is_err()
            {
                t.clear_restart();
                break;
            }
            let fed = self.lock().ldisc.write_input(rest);
            self.notify_both();
            for sig in fed.signals {
                self.job.signal_foreground(t.process_groups(), sig);
            }
            done += fed.consumed;
            rest = &rest[fed.consumed..];
        }
        Ok(done)
    }

    fn master_read(&self, t: &mut dyn Context, f: &OpenFile, dst: &mut dyn IoDst) -> SysResult {
        if dst.remaining() == 0 {
            return Ok(0);
        }
        let nb = f.nonblocking();
        let n = t.block_on(&[&self.master_queue], None, || {
            let mut s = self.lock();
            // Packet mode: a pending status is read alone; data comes after a DATA byte.
            if s.packet && s.packet_status != 0 {
                let status = s.packet_status;
                let (r, taken) = copy_out(dst, &[status]);
                if taken == 1 {
                    s.packet_status = 0;
                }
                return Some(r);
            }
            if s.ldisc.output_available() > 0 {
                let header = usize::from(s.packet);
                let data = s.ldisc.take_output(dst.remaining() - header);
                let mut out = Vec::with_capacity(header + data.len());
                if s.packet {
                    out.push(TIOCPKT_DATA);
                }
                out.extend_from_slice(&data);
                let (r, taken) = copy_out(dst, &out);
                s.ldisc.untake_output(&data[taken.saturating_sub(header)..]);
                return Some(r);
            }
            if s.slave_opened && s.slaves == 0 {
                return Some(Err(Errno::EIO));
            }
            if nb {
                return Some(Err(Errno::EAGAIN));
            }
            None
        })?;
        self.slave_queue.notify(Wake::Writable);
        Ok(n as u64)
    }

    fn slave_read(&self, t: &mut dyn Context, f: &OpenFile, dst: &mut dyn IoDst) -> SysResult {
        if dst.remaining() == 0 {
            return Ok(0);
        }
        if self.job.in_background(t) {
            if !t.signal_would_act(libc::SIGTTIN) {
                return Err(Errno::EIO);
            }
            self.stop_caller(t, libc::SIGTTIN)?;
        }
        let nb = f.nonblocking();
        let (canonical, vmin, vtime) = {
            let s = self.lock();
            let cc = s.ldisc.termios.cc;
            (s.ldisc.canonical(), cc[VMIN] as usize, cc[VTIME] as u64)
        };
        let want = dst.remaining();
        // Non-canonical: how many bytes make the read return, and the timer (VTIME tenths).
        let need = if canonical { 1 } else { vmin.min(want) };
        let timer = (!canonical && vtime > 0).then(|| Duration::from_millis(vtime * 100));
        if !canonical && need == 0 && timer.is_none() {
            return self.take_slave_input(t, dst).map(|n| n as u64);
        }
        let ready = |s: &PtyState, need: usize| {
            if canonical {
                s.ldisc.readable()
            } else {
                s.ldisc.input_available() >= need.max(1)
            }
        };
        // VMIN > 0 with VTIME: wait for the first byte without a limit, then for the rest
        // until the timer runs out. VMIN == 0 with VTIME: one timer for any byte.
        let first_need = if timer.is_some() { 1 } else { need };
        let r = t.block_on(&[&self.slave_queue], None, || {
            let s = self.lock();
            if ready(&s, first_need) {
                return Some(Ok(()));
            }
            if s.hung_up {
                return Some(Err(Errno::ENODATA));
            }
            if nb {
                return Some(Err(Errno::EAGAIN));
            }
            None
        });
        match r {
            Ok(()) => {}
            // Hung up with nothing to read: end of file.
            Err(Errno::ENODATA) => return Ok(0),
            Err(Errno::EAGAIN) if !canonical && vmin == 0 && timer.is_none() => return Ok(0),
            Err(e) => return Err(e),
        }
        if let (Some(timer), true) = (timer, need > 1) {
            let deadline = Instant::now() + timer;
            let r = t.block(&[&self.slave_queue], Some(deadline), &mut || {
                let s = self.lock();
                ready(&s, need) || s.hung_up
            });
            match r {
                Ok(()) | Err(Errno::ETIMEDOUT) => {}
                Err(e) => return Err(e),
            }
        }
        self.take_slave_input(t, dst).map(|n| n as u64)
    }

    /// Reads what the slave may read now. Room it makes lets pending input through the line
    /// discipline, which may raise signals for the foreground group.
    fn take_slave_input(&self, t: &mut dyn Context, dst: &mut dyn IoDst) -> Result<usize, Errno> {
        let mut s = self.lock();
        let Some(data) = s.ldisc.take_input(dst.remaining()) else {
            return Ok(0);
        };
        let (r, taken) = copy_out(dst, &data);
        s.ldisc.untake_input(&data[taken..]);
        let signals = s.ldisc.take_signals();
        drop(s);
        self.notify_both();
        for sig in signals {
            self.job.signal_foreground(t.process_groups(), sig);
        }
        r
    }

    fn slave_write(&self, t: &mut dyn Context, f: &OpenFile, src: &mut dyn IoSrc) -> SysResult {
        if self.lock().hung_up {
            return Err(Errno::EIO);
        }
        if src.remaining() == 0 {
            return Ok(0);
        }
        if self.lock().ldisc.termios.lflag & libc::TOSTOP != 0 {
            self.check_background_change(t)?;
        }
        let nb = f.nonblocking();
        let mut done = 0usize;
        while src.remaining() > 0 {
            let r = t.block_on(&[&self.slave_queue], None, || {
                let s = self.lock();
                if s.hung_up {
                    return Some(Err(Errno::EIO));
                }
                if s.ldisc.output_room() >= 2 {
                    return Some(Ok(()));
                }
                if nb {
                    return Some(Err(Errno::EAGAIN));
                }
                None
            });
            if let Err(e) = r {
                if done > 0 {
                    if e == Errno::EINTR {
                        t.clear_restart();
                    }
                    break;
                }
                return Err(e);
            }
            let mut s = self.lock();
            // Each byte may take two of output (ONLCR).
            let room = s.ldisc.output_room() / 2;
            let data = match copy_in(src, room.max(1)) {
                Ok(d) => d,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            let n = s.ldisc.write_output(&data);
            drop(s);
            done += n;
            self.master_queue.notify(Wake::Readable);
            if n < data.len() {
                break;
            }
        }
        Ok(done as u64)
    }

    fn master_readiness(&self) -> u32 {
        let s = self.lock();
        let mut r = 0;
        if s.ldisc.output_available() > 0 {
            r |= libc::POLLIN | libc::POLLRDNORM;
        }
        if s.packet && s.packet_status != 0 {
            r |= libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM;
        }
        if s.ldisc.input_room() {
            r |= libc::POLLOUT | libc::POLLWRNORM;
        }
        if s.slave_opened && s.slaves == 0 {
            r |= libc::POLLHUP;
        }
        r as u32
    }

    fn slave_readiness(&self) -> u32 {
        let s = self.lock();
        if s.hung_up {
            return (libc::POLLIN
                | libc::POLLOUT
                | libc::POLLRDNORM
                | libc::POLLWRNORM
                | libc::POLLHUP
                | libc::POLLERR) as u32;
        }
        let mut r = 0;
        if s.ldisc.readable() {
            r |= libc::POLLIN | libc::POLLRDNORM;
        }
        if s.ldisc.output_room() >= 2 {
            r |= libc::POLLOUT | libc::POLLWRNORM;
        }
        r as u32
    }

    fn stat(&self, master: bool) -> Stat {
        let (mode, rdev) = if master {
            (0o666, libc::makedev(5, 2))
        } else {
            (0o620, self.rdev())
        };
        Stat {
            mode: libc::S_IFCHR | mode,
            rdev,
            nlink: 1,
            blksize: 1024,
            ..Stat::default()
        }
    }
}

impl Pty {
    /// The image of this pair as open file `id`'s (the slave node's attributes are the
    /// filesystem's to add).
    pub fn saved(&self, id: usize) -> super::image::PtyImage {
        let job = self.job.state();
        let s = self.lock();
        super::image::PtyImage {
            id,
            index: self.index,
            locked: s.locked,
            hung_up: s.hung_up,
            slave_opened: s.slave_opened,
            packet: s.packet,
            packet_status: s.packet_status,
            session: job.session,
            foreground: job.foreground,
            by_master: job.by_master,
            ldisc: s.ldisc.saved(),
            node: None,
        }
    }

    /// Its slave node's permission bits and owner, while the node is there.
    pub fn node(&self) -> Option<super::image::NodeImage> {
        self.owner.upgrade()?.node(self.index)
    }

    /// Whether the pair is hung up (its master closed).
    pub fn hung_up(&self) -> bool {
        self.lock().hung_up
    }

    /// The pair `image` describes, with no end open yet ([`Pty::restored_master`],
    /// [`Pty::restored_slave`]); `owner` is its devpts instance, `groups` the kernel whose
    /// groups a hang-up signals.
    ///
    /// # Errors
    /// A message for an inconsistent image.
    pub fn restored(
        image: &super::image::PtyImage,
        owner: Weak<dyn PtyOwner>,
        groups: Weak<dyn crate::vfs::ProcessGroups + Send + Sync>,
    ) -> Result<Arc<Pty>, String> {
        let ldisc = LineDiscipline::restored(&image.ldisc)?;
        let job = super::job::JobState {
            session: image.session,
            foreground: image.foreground,
            by_master: image.by_master,
        };
        Ok(Arc::new_cyclic(|me| Pty {
            index: image.index,
            state: Mutex::new(PtyState {
                ldisc,
                locked: image.locked,
                hung_up: image.hung_up,
                slaves: 0,
                slave_opened: image.slave_opened,
                packet: image.packet,
                packet_status: image.packet_status,
            }),
            master_queue: WaitQueue::new(),
            slave_queue: WaitQueue::new(),
            job: Job::restored(job, groups),
            owner,
            me: me.clone(),
        }))
    }

    /// The master end of a restored pair (made once).
    pub fn restored_master(self: &Arc<Self>) -> Arc<Master> {
        self.master()
    }

    /// An open of the slave end of a restored pair, locked or hung up as it may be now.
    pub fn restored_slave(self: &Arc<Self>) -> Arc<Slave> {
        self.lock().slaves += 1;
        Arc::new(Slave { pty: self.clone() })
    }

    /// The session this pair controls (0: none).
    pub fn controlled_session(&self) -> i32 {
        self.job.state().session
    }
}

/// The pair an open file of the sentry's ptys opens, and which end.
pub fn pair_of(ops: &dyn FileOps) -> Option<(&Arc<Pty>, super::image::PtyEnd)> {
    let any = ops.checkpoint_any()?;
    if let Some(m) = any.downcast_ref::<Master>() {
        return Some((&m.pty, super::image::PtyEnd::Master));
    }
    any.downcast_ref::<Slave>()
        .map(|s| (&s.pty, super::image::PtyEnd::Slave))
}

impl ControllingTerminal for Pty {
    fn reopen(&self) -> Result<Arc<dyn FileOps>, Errno> {
        let me = self.me.upgrade().ok_or(Errno::EIO)?;
        Ok(me.open_slave()?)
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

/// The master end.
#[derive(Debug)]
pub struct Master {
    pty: Arc<Pty>,
}

impl Drop for Master {
    fn drop(&mut self) {
        self.pty.lock().hung_up = true;
        // The session's SIGHUP before the readers wake: a reader blocked on the terminal then
        // takes the signal (as it does on Linux) instead of returning end of file first.
        self.pty.job.hangup();
        self.pty.notify_both();
        if let Some(owner) = self.pty.owner.upgrade() {
            owner.released(self.pty.index);
        }
    }
}

impl FileOps for Master {
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
        self.pty.master_read(t, f, dst).map(|n| n as usize)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        self.pty.master_write(t, f, src).map(|n| n as usize)
    }

    fn ioctl(&self, t: &mut dyn Context, _f: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        let pty = &self.pty;
        match u64::from(cmd) {
            libc::TIOCGPTN => {
                t.mm().write_obj(UserAddr(arg), &pty.index)?;
                Ok(0)
            }
            libc::TIOCSPTLCK => {
                let v: i32 = t.mm().read_obj(UserAddr(arg))?;
                pty.lock().locked = v != 0;
                Ok(0)
            }
            libc::TIOCGPTLCK => {
                let v = i32::from(pty.lock().locked);
                t.mm().write_obj(UserAddr(arg), &v)?;
                Ok(0)
            }
            TIOCPKT => {
                let v: i32 = t.mm().read_obj(UserAddr(arg))?;
                let mut s = pty.lock();
                s.packet = v != 0;
                s.packet_status = 0;
                Ok(0)
            }
            TIOCGPKT => {
                let v = i32::from(pty.lock().packet);
                t.mm().write_obj(UserAddr(arg), &v)?;
                Ok(0)
            }
            libc::FIONREAD => {
                let n = pty.lock().ldisc.output_available() as i32;
                t.mm().write_obj(UserAddr(arg), &n)?;
                Ok(0)
            }
            libc::TIOCOUTQ => {
                let n = pty.lock().ldisc.input_held() as i32;
                t.mm().write_obj(UserAddr(arg), &n)?;
                Ok(0)
            }
            c => pty
                .common_ioctl(t, true, c, arg)
                .unwrap_or(Err(Errno::ENOTTY)),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.pty.stat(true))
    }

    fn readiness(&self) -> u32 {
        self.pty.master_readiness()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.master_queue)
    }

    fn open_peer(&self, _flags: u32) -> Result<(Arc<dyn FileOps>, Vec<u8>), Errno> {
        let slave: Arc<dyn FileOps> = self.pty.open_slave()?;
        Ok((slave, self.pty.index.to_string().into_bytes()))
    }
}

/// One open of the slave end.
#[derive(Debug)]
pub struct Slave {
    pty: Arc<Pty>,
}

impl Drop for Slave {
    fn drop(&mut self) {
        self.pty.lock().slaves -= 1;
        self.pty.notify_both();
    }
}

impl FileOps for Slave {
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
        self.pty.slave_read(t, f, dst).map(|n| n as usize)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        src: &mut dyn IoSrc,
        _offset: Option<u64>,
    ) -> Result<usize, Errno> {
        self.pty.slave_write(t, f, src).map(|n| n as usize)
    }

    fn ioctl(&self, t: &mut dyn Context, _f: &OpenFile, cmd: u32, arg: u64) -> SysResult {
        let pty = &self.pty;
        if pty.lock().hung_up {
            return Err(Errno::EIO);
        }
        match u64::from(cmd) {
            libc::FIONREAD => {
                let n = pty.lock().ldisc.input_available() as i32;
                t.mm().write_obj(UserAddr(arg), &n)?;
                Ok(0)
            }
            libc::TIOCOUTQ => {
                let n = pty.lock().ldisc.output_available() as i32;
                t.mm().write_obj(UserAddr(arg), &n)?;
                Ok(0)
            }
            c => pty
                .common_ioctl(t, false, c, arg)
                .unwrap_or(Err(Errno::ENOTTY)),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.pty.stat(false))
    }

    fn readiness(&self) -> u32 {
        self.pty.slave_readiness()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.slave_queue)
    }

    fn opened(&self, t: &mut dyn Context, flags: u32) -> Result<Option<Arc<dyn FileOps>>, Errno> {
        if flags & libc::O_NOCTTY as u32 == 0 {
            self.pty.job.acquire_on_open(t, self.pty.weak_terminal());
        }
        Ok(None)
    }
}
