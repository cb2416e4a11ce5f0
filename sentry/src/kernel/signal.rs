//! Signals: sets, `siginfo_t`, dispositions, pending queues and default actions.
//!
//! Per-process signal state (dispositions, the shared pending queue, each thread's mask and
//! private queue, group exit and group stop) lives in one lock, [`ThreadGroup::sig`], so a
//! sender can pick the receiving thread atomically. Senders hold the kernel's process-tree
//! lock (see [`super::pids`]), which orders them against exit and reparenting.
//!
//! [`ThreadGroup::sig`]: super::ThreadGroup::sig

use std::collections::BTreeMap;
use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::task::TaskHandle;
use super::ExitStatus;

/// Number of signals (1..=64).
pub const NSIG: i32 = 64;

/// The bit of `sig` in a signal set.
pub const fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals that can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = bit(libc::SIGKILL) | bit(libc::SIGSTOP);

/// Signals the CPU raises; dequeued before others (as Linux's SYNCHRONOUS_MASK).
pub const SYNCHRONOUS: u64 = bit(libc::SIGSEGV)
    | bit(libc::SIGBUS)
    | bit(libc::SIGILL)
    | bit(libc::SIGTRAP)
    | bit(libc::SIGFPE)
    | bit(libc::SIGSYS);

/// Default-stop signals.
pub const STOP_SIGNALS: u64 =
    bit(libc::SIGSTOP) | bit(libc::SIGTSTP) | bit(libc::SIGTTIN) | bit(libc::SIGTTOU);

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SA_NOCLDSTOP: u64 = 1;
pub const SA_NOCLDWAIT: u64 = 2;
pub const SA_SIGINFO: u64 = 4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TKILL: i32 = -6;
/// `si_code` of a POSIX timer's signal; its `si_timerid` and `si_overrun` share the first
/// word of the union.
pub const SI_TIMER: i32 = -2;

/// The first real-time signal as the kernel numbers them (glibc keeps 32 and 33 for itself
/// and reports 34 from `SIGRTMIN`, but they queue as every real-time signal does).
pub const SIGRTMIN: i32 = 32;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// `struct sigaction` as the kernel ABI lays it out (`rt_sigaction`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// `siginfo_t` (128 bytes). The union is kept as words; constructors fill the layouts Linux
/// uses for each kind of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    pad: i32,
    pub fields: [u64; 14],
}

impl SigInfo {
    pub fn new(signo: i32, code: i32) -> SigInfo {
        SigInfo {
            signo,
            errno: 0,
            code,
            pad: 0,
            fields: [0; 14],
        }
    }

    /// Sent by a process (`kill`, `tgkill`: `code` SI_USER or SI_TKILL).
    pub fn from_user(signo: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
        let mut i = SigInfo::new(signo, code);
        i.fields[0] = pid as u32 as u64 | (uid as u64) << 32;
        i
    }

    /// Raised by the kernel (SI_KERNEL).
    pub fn kernel(signo: i32) -> SigInfo {
        SigInfo::new(signo, SI_KERNEL)
    }

    /// A fault at `addr` (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).
    pub fn fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        let mut i = SigInfo::new(signo, code);
        i.fields[0] = addr;
        i
    }

    /// SIGCHLD about `pid`: `status` is the exit code or the signal.
    pub fn child(signo: i32, code: i32, pid: i32, uid: u32, status: i32) -> SigInfo {
        let mut i = SigInfo::from_user(signo, code, pid, uid);
        i.fields[1] = status as u32 as u64;
        i
    }

    /// `si_addr` of a fault.
    pub fn addr(&self) -> u64 {
        self.fields[0]
    }
}

/// What the default disposition of a signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    Core,
    Ignore,
    Stop,
    Continue,
}

/// The default action of `sig` (signal(7)).
pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH => DefaultAction::Ignore,
        libc::SIGCONT => DefaultAction::Continue,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => DefaultAction::Stop,
        libc::SIGQUIT
        | libc::SIGILL
        | libc::SIGTRAP
        | libc::SIGABRT
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGSEGV
        | libc::SIGXCPU
        | libc::SIGXFSZ
        | libc::SIGSYS => DefaultAction::Core,
        _ => DefaultAction::Terminate,
    }
}

/// How a dequeued signal is to be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Handler(SigAction),
    Ignore,
    Stop,
    Terminate { core: bool },
}

/// Whether `act` for `sig` discards the signal (SIG_IGN, or SIG_DFL with an ignoring default).
pub fn is_ignored(sig: i32, act: &SigAction) -> bool {
    match act.handler {
        SIG_IGN => true,
        SIG_DFL => matches!(
            default_action(sig),
            DefaultAction::Ignore | DefaultAction::Continue
        ),
        _ => false,
    }
}

/// What to do with `sig` under `act`.
pub fn disposition(sig: i32, act: &SigAction) -> Disposition {
    match act.handler {
        SIG_IGN => Disposition::Ignore,
        SIG_DFL => match default_action(sig) {
            DefaultAction::Ignore | DefaultAction::Continue => Disposition::Ignore,
            DefaultAction::Stop => Disposition::Stop,
            DefaultAction::Terminate => Disposition::Terminate { core: false },
            DefaultAction::Core => Disposition::Terminate { core: true },
        },
        _ => Disposition::Handler(*act),
    }
}

/// A pending-signal queue: standard signals at most once, real-time signals queued.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    set: u64,
    queue: Vec<SigInfo>,
}

impl Pending {
    pub fn set(&self) -> u64 {
        self.set
    }

    /// The queued signals in arrival order (for a checkpoint).
    pub fn queued(&self) -> &[SigInfo] {
        &self.queue
    }

    /// Queues `info`; a standard signal already pending is merged (dropped). A POSIX
    /// timer's signal is queued at most once, real-time or not, as on Linux: while it is
    /// pending, later expirations only add to its `si_overrun`.
    pub fn push(&mut self, info: SigInfo) {
        let b = bit(info.signo);
        if info.code == SI_TIMER {
            let timer = info.fields[0] as u32;
            let queued = self.queue.iter_mut().find(|q| {
                q.signo == info.signo && q.code == SI_TIMER && q.fields[0] as u32 == timer
            });
            if let Some(q) = queued {
                let overrun = |i: &SigInfo| (i.fields[0] >> 32) as u32 as i32;
                let total = overrun(q)
                    .saturating_add(overrun(&info))
                    .saturating_add(1)
                    .max(0);
                q.fields[0] = u64::from(timer) | u64::from(total as u32) << 32;
                return;
            }
        }
        if info.signo < SIGRTMIN && self.set & b != 0 {
            return;
        }
        self.set |= b;
        self.queue.push(info);
    }

    /// Removes and returns the next signal not in `blocked`: synchronous signals first, then
    /// the lowest number, in arrival order within one number.
    pub fn pop(&mut self, blocked: u64) -> Option<SigInfo> {
        let ready = self.set & !blocked;
        if ready == 0 {
            return None;
        }
        let pick = if ready & SYNCHRONOUS != 0 {
            ready & SYNCHRONOUS
        } else {
            ready
        };
        let sig = pick.trailing_zeros() as i32 + 1;
        let idx = self.queue.iter().position(|i| i.signo == sig)?;
        let info = self.queue.remove(idx);
        if !self.queue.iter().any(|i| i.signo == sig) {
            self.set &= !bit(sig);
        }
        Some(info)
    }

    /// Drops every queued instance of the signals in `mask`.
    pub fn discard(&mut self, mask: u64) {
        self.queue.retain(|i| bit(i.signo) & mask == 0);
        self.set &= !mask;
    }
}

/// One thread's signal state.
#[derive(Debug)]
pub struct ThreadSig {
    pub mask: u64,
    /// While `rt_sigtimedwait` waits with the waited-for signals unblocked, the mask it
    /// will restore (Linux's `real_blocked`): a signal blocked there is never dropped as
    /// ignored, so a default-ignored SIGWINCH or SIGCHLD still reaches the waiter. 0
    /// otherwise.
    pub real_blocked: u64,
    pub pending: Pending,
    pub handle: Arc<TaskHandle>,
    /// The thread is on its way out (releasing its memory and files): a SIGKILL that finds
    /// only such threads has nobody left to kill and leaves the exit status alone.
    pub exiting: bool,
}

/// A stop or continue the parent has not collected with `wait` yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopEvent {
    Stopped(i32),
    Continued,
}

/// Everything about signals one process shares; see the module documentation.
#[derive(Debug)]
pub struct SigState {
    pub actions: [SigAction; NSIG as usize],
    pub shared: Pending,
    pub threads: BTreeMap<i32, ThreadSig>,
    /// Set by exit_group or a fatal signal: every thread exits with this status.
    pub exit: Option<ExitStatus>,
    /// Group stop in effect (SIGSTOP and friends until SIGCONT).
    pub stopped: bool,
    /// The signal that began the last group stop.
    pub stop_signal: i32,
    /// Stop/continue not yet reported to the parent's `wait`.
    pub stop_event: Option<StopEvent>,
    /// An execve in another thread is killing this one (it exits without a group status).
    pub exec_killer: Option<i32>,
}

impl SigState {
    pub fn new() -> SigState {
        SigState {
            actions: [SigAction::default(); NSIG as usize],
            shared: Pending::default(),
            threads: BTreeMap::new(),
            exit: None,
            stopped: false,
            stop_signal: libc::SIGSTOP,
            stop_event: None,
            exec_killer: None,
        }
    }

    pub fn action(&self, sig: i32) -> SigAction {
        self.actions[(sig - 1) as usize]
    }

    /// Signals `tid` could take now (pending for it or the process, not blocked).
    pub fn deliverable(&self, tid: i32) -> u64 {
        self.threads
            .get(&tid)
            .map_or(0, |t| (t.pending.set() | self.shared.set()) & !t.mask)
    }

    /// Whether thread `tid` is bound to die: its group is exiting or a SIGKILL waits for
    /// it (a paused kernel still lets such a thread go, [`super::freeze`]).
    pub fn must_die(&self, tid: i32) -> bool {
        self.exit.is_some() || self.deliverable(tid) & bit(libc::SIGKILL) != 0
    }

    /// Wakes every thread (group exit, stop, continue).
    pub fn kick_all(&self) {
        for t in self.threads.values() {
            t.handle.kick();
        }
    }
}

impl Default for SigState {
    fn default() -> Self {
        SigState::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signals_merge_rt_queue() {
        let mut p = Pending::default();
        p.push(SigInfo::kernel(libc::SIGUSR1));
        p.push(SigInfo::kernel(libc::SIGUSR1));
        let rt = SIGRTMIN;
        p.push(SigInfo::kernel(rt));
        p.push(SigInfo::kernel(rt));
        assert_eq!(p.pop(0).unwrap().signo, libc::SIGUSR1);
        assert_eq!(p.pop(0).unwrap().signo, rt);
        assert_eq!(p.pop(0).unwrap().signo, rt);
        assert!(p.pop(0).is_none());
    }

    #[test]
    fn a_timer_signal_is_queued_once_with_its_overruns() {
        let rt = SIGRTMIN + 2;
        let timer = |id: u64, over: u64| {
            let mut i = SigInfo::new(rt, SI_TIMER);
            i.fields[0] = id | over << 32;
            i
        };
        let mut p = Pending::default();
        p.push(timer(3, 0));
        p.push(timer(3, 2));
        p.push(timer(4, 0));
        let first = p.pop(0).unwrap();
        assert_eq!(
            first.fields[0],
            3 | 3 << 32,
            "timer 3, 1 + 2 overruns merged"
        );
        assert_eq!(p.pop(0).unwrap().fields[0], 4);
        assert!(p.pop(0).is_none());
        p.push(timer(3, 0));
        assert_eq!(p.pop(0).unwrap().fields[0], 3, "queued again once taken");
    }

    #[test]
    fn order_synchronous_then_lowest_and_mask() {
        let mut p = Pending::default();
        p.push(SigInfo::kernel(libc::SIGTERM));
        p.push(SigInfo::kernel(libc::SIGSEGV));
        p.push(SigInfo::kernel(libc::SIGHUP));
        assert_eq!(p.pop(0).unwrap().signo, libc::SIGSEGV);
        assert_eq!(p.pop(bit(libc::SIGHUP)).unwrap().signo, libc::SIGTERM);
        assert!(p.pop(bit(libc::SIGHUP)).is_none());
        assert_eq!(p.pop(0).unwrap().signo, libc::SIGHUP);
    }

    #[test]
    fn dispositions() {
        let dfl = SigAction::default();
        assert_eq!(disposition(libc::SIGCHLD, &dfl), Disposition::Ignore);
        assert_eq!(disposition(libc::SIGTSTP, &dfl), Disposition::Stop);
        assert_eq!(
            disposition(libc::SIGSEGV, &dfl),
            Disposition::Terminate { core: true }
        );
        assert_eq!(
            disposition(libc::SIGTERM, &dfl),
            Disposition::Terminate { core: false }
        );
        assert!(is_ignored(libc::SIGWINCH, &dfl));
        let h = SigAction {
            handler: 0x1000,
            ..dfl
        };
        assert_eq!(disposition(libc::SIGTERM, &h), Disposition::Handler(h));
    }

    #[test]
    fn siginfo_is_128_bytes() {
        assert_eq!(size_of::<SigInfo>(), 128);
        assert_eq!(size_of::<SigAction>(), 32);
    }
}
