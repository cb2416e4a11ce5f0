//! Thread groups (processes): identity, limits, signal state, exit status.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::pidns::PidNamespace;
use super::signal::SigState;
use super::timer::ProcessTimers;
use super::usage::{CpuTimes, GroupUsage, Rusage};
use crate::abi::Rlimit;
use crate::elf::ArgArea;
use crate::vfs::Dentry;
use crate::waiter::WaitQueue;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(u8),
    Signaled { signo: i32, core: bool },
}

impl ExitStatus {
    /// The status a shell reports: the code, or 128 + signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c as i32,
            ExitStatus::Signaled { signo, .. } => 128 + signo,
        }
    }

    /// The `wait4` status word.
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => (c as i32) << 8,
            ExitStatus::Signaled { signo, core } => signo | if core { 0x80 } else { 0 },
        }
    }
}

/// What execve set up: the executable and where its argument strings are.
#[derive(Debug, Clone, Default)]
pub struct ExecImage {
    pub exe: Option<Arc<Dentry>>,
    /// The denial of writes to `exe` while this image runs (shared by the processes forked
    /// from it; None for the first process, whose program the sandbox was given).
    pub exe_deny: Option<Arc<crate::vfs::write_access::Access>>,
    pub strings: ArgArea,
    /// The auxiliary vector the program started with (`/proc/[pid]/auxv`).
    pub auxv: Vec<(u64, u64)>,
}

/// Linux's default `coredump_filter`: private and shared anonymous memory, ELF headers and
/// private huge pages (`MMF_DUMP_FILTER_DEFAULT`).
pub const DEFAULT_COREDUMP_FILTER: u32 = 0x33;

/// The bits `coredump_filter` keeps (`MMF_DUMP_FILTER_MASK`).
pub const COREDUMP_FILTER_MASK: u32 = 0x1ff;

/// Number of resource limits (RLIM_NLIMITS).
pub const RLIM_NLIMITS: usize = 16;

/// A process: the threads sharing a PID.
///
/// Lock order: the kernel's process tree → `sig` → `usage` → task clocks; `sig` → waiters.
/// `limits` and `done` are leaves.
#[derive(Debug)]
pub struct ThreadGroup {
    /// The global PID (the process table's key); see [`super::pidns`].
    pub tgid: i32,
    /// The PID namespace the process lives in (fixed for its lifetime).
    pub pidns: Arc<PidNamespace>,
    /// The Loader's container the process belongs to (empty outside the Loader); inherited
    /// by children.
    pub container: Arc<str>,
    pub limits: Mutex<[Rlimit; RLIM_NLIMITS]>,
    /// Signal dispositions, pending signals, thread masks, group exit and stop.
    pub sig: Mutex<SigState>,
    /// Woken when a child changes state (exit, stop, continue): `wait4` sleeps here.
    pub child_events: WaitQueue,
    /// Notified whenever a signal is queued to the process or one of its threads (signalfd).
    pub signal_events: WaitQueue,
    /// Interval and POSIX timers.
    pub timers: Mutex<ProcessTimers>,
    /// Signals without a handler sent from inside its PID namespace are dropped (a
    /// namespace's init).
    pub unkillable: AtomicBool,
    /// The program the process runs (`/proc/[pid]/exe`, `cmdline`, `environ`).
    pub image: Mutex<ExecImage>,
    /// When the process was created (`/proc/[pid]/stat` starttime).
    pub start: Instant,
    /// CPU time of exited threads and reaped children, peak RSS ([`super::usage`]).
    pub usage: Mutex<GroupUsage>,
    /// `/proc/[pid]/oom_score_adj` (-1000..=1000): recorded and shown; the sandbox has no
    /// OOM killer of its own to weigh it. Inherited by fork.
    pub oom_score_adj: AtomicI32,
    /// `/proc/[pid]/coredump_filter` (the `MMF_DUMP_*` bits): recorded and inherited by
    /// fork; the sandbox writes no core files.
    pub coredump_filter: AtomicU32,
    /// `prctl(PR_SET_DUMPABLE)`'s flag (SUID_DUMP_DISABLE 0 or SUID_DUMP_USER 1): inherited
    /// by fork, 1 again after an exec that leaves the real and effective IDs equal, 0 when
    /// the effective IDs change (Linux's suid_dumpable default).
    pub dumpable: AtomicU8,
    /// Its cgroup (None: never placed, counted in the root); see [`super::cgroup`]. A leaf
    /// lock, taken under `Hierarchy::inner`.
    pub cgroup: Mutex<Option<super::cgroup::Membership>>,
    /// Set once the last thread has exited, with the final status.
    done: Mutex<Option<ExitStatus>>,
    done_cv: Condvar,
}

/// The limits of a process that no spec or caller gave any (Linux's defaults for init).
pub fn default_limits() -> [Rlimit; RLIM_NLIMITS] {
    const INF: u64 = u64::MAX;
    let mut l = [Rlimit { cur: INF, max: INF }; RLIM_NLIMITS];
    l[libc::RLIMIT_STACK as usize] = Rlimit {
        cur: 8 << 20,
        max: INF,
    };
    l[libc::RLIMIT_CORE as usize] = Rlimit { cur: 0, max: INF };
    l[libc::RLIMIT_NOFILE as usize] = Rlimit {
        cur: 1024,
        max: 1 << 20,
    };
    l[libc::RLIMIT_NPROC as usize] = Rlimit {
        cur: 1 << 16,
        max: 1 << 16,
    };
    l[libc::RLIMIT_MEMLOCK as usize] = Rlimit {
        cur: 8 << 20,
        max: 8 << 20,
    };
    l[libc::RLIMIT_SIGPENDING as usize] = Rlimit {
        cur: 1 << 16,
        max: 1 << 16,
    };
    l[libc::RLIMIT_MSGQUEUE as usize] = Rlimit {
        cur: 819_200,
        max: 819_200,
    };
    l[libc::RLIMIT_NICE as usize] = Rlimit { cur: 0, max: 0 };
    l[libc::RLIMIT_RTPRIO as usize] = Rlimit { cur: 0, max: 0 };
    l
}

impl ThreadGroup {
    /// Whether the process is dumpable (SUID_DUMP_USER): others' ptrace-style access to it
    /// needs CAP_SYS_PTRACE when it is not.
    pub fn dumpable(&self) -> bool {
        self.dumpable.load(Ordering::Relaxed) == 1
    }

    pub fn new(tgid: i32, pidns: Arc<PidNamespace>, container: Arc<str>) -> ThreadGroup {
        ThreadGroup {
            tgid,
            pidns,
            container,
            limits: Mutex::new(default_limits()),
            sig: Mutex::new(SigState::new()),
            child_events: WaitQueue::new(),
            signal_events: WaitQueue::new(),
            timers: Mutex::new(ProcessTimers::default()),
            unkillable: AtomicBool::new(false),
            image: Mutex::new(ExecImage::default()),
            start: Instant::now(),
            usage: Mutex::new(GroupUsage::default()),
            oom_score_adj: AtomicI32::new(0),
            coredump_filter: AtomicU32::new(DEFAULT_COREDUMP_FILTER),
            dumpable: AtomicU8::new(1),
            cgroup: Mutex::new(None),
            done: Mutex::new(None),
            done_cv: Condvar::new(),
        }
    }

    /// A child process's group in PID namespace `pidns`: container, limits and dispositions
    /// inherited from `parent` (fork without CLONE_THREAD).
    pub fn fork_from(tgid: i32, parent: &ThreadGroup, pidns: Arc<PidNamespace>) -> ThreadGroup {
        let tg = ThreadGroup::new(tgid, pidns, parent.container.clone());
        *tg.limits.lock().unwrap() = *parent.limits.lock().unwrap();
        tg.sig.lock().unwrap().actions = parent.sig.lock().unwrap().actions;
        *tg.image.lock().unwrap() = parent.image.lock().unwrap().clone();
        let adj = parent.oom_score_adj.load(Ordering::Relaxed);
        tg.oom_score_adj.store(adj, Ordering::Relaxed);
        let filter = parent.coredump_filter.load(Ordering::Relaxed);
        tg.coredump_filter.store(filter, Ordering::Relaxed);
        let dumpable = parent.dumpable.load(Ordering::Relaxed);
        tg.dumpable.store(dumpable, Ordering::Relaxed);
        tg
    }

    pub fn sig(&self) -> MutexGuard<'_, SigState> {
        self.sig.lock().unwrap()
    }

    /// The credentials one of its threads last published (what permission checks against
    /// the process use); None for a process whose threads have all left (it is exiting).
    pub fn published_creds(&self) -> Option<crate::auth::Creds> {
        let s = self.sig();
        s.threads.values().find_map(|th| {
            th.handle
                .view
                .lock()
                .unwrap()
                .as_ref()
                .map(|v| v.creds.clone())
        })
    }

    /// The group's exit status once exit_group or a fatal signal set it.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.sig().exit
    }

    /// Records that every thread has exited; the process's timers stop.
    pub fn set_done(&self, status: ExitStatus) {
        let timers = std::mem::take(&mut *self.timers.lock().unwrap());
        drop(timers);
        *self.done.lock().unwrap() = Some(status);
        self.done_cv.notify_all();
    }

    /// The process's own CPU time: its live threads' and its exited threads'.
    pub fn cpu_times(&self) -> CpuTimes {
        let s = self.sig();
        let live = s
            .threads
            .values()
            .fold(CpuTimes::default(), |acc, t| acc + t.handle.clock.times());
        live + self.usage.lock().unwrap().exited
    }

    /// The process's read and write calls: its live threads' and its exited threads'.
    pub fn io_totals(&self) -> super::usage::IoTotals {
        let s = self.sig();
        let mut io = self.usage.lock().unwrap().exited_io;
        for t in s.threads.values() {
            io += t.handle.io.totals();
        }
        io
    }

    /// `RUSAGE_SELF`: the process's own times and sampled peak RSS.
    pub fn rusage_self(&self) -> Rusage {
        let times = self.cpu_times();
        Rusage {
            times,
            maxrss_kb: self.usage.lock().unwrap().maxrss_kb,
        }
    }

    /// `RUSAGE_CHILDREN`: the reaped, waited-for descendants.
    pub fn rusage_children(&self) -> Rusage {
        self.usage.lock().unwrap().children
    }

    /// The process's own usage merged with its children's (what a wait reports, and what a
    /// parent adds to its children's totals when it reaps this process).
    pub fn rusage_both(&self) -> Rusage {
        let mut r = self.rusage_self();
        r.merge(self.rusage_children());
        r
    }

    /// Blocks until every thread has exited; returns the status.
    pub fn wait(&self) -> ExitStatus {
        let mut d = self.done.lock().unwrap();
        loop {
            if let Some(s) = *d {
                return s;
            }
            d = self.done_cv.wait(d).unwrap();
        }
    }
}
