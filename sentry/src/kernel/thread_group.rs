//! Thread groups (processes): identity, limits, exit status.

use std::sync::{Condvar, Mutex};

use crate::abi::Rlimit;

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

/// Number of resource limits (RLIM_NLIMITS).
pub const RLIM_NLIMITS: usize = 16;

#[derive(Debug)]
struct State {
    exit: Option<ExitStatus>,
    live_threads: usize,
}

/// A process: the threads sharing a PID.
#[derive(Debug)]
pub struct ThreadGroup {
    pub tgid: i32,
    pub ppid: i32,
    pub limits: Mutex<[Rlimit; RLIM_NLIMITS]>,
    /// Signal dispositions as `struct sigaction` bytes, indexed by signal - 1.
    pub sigactions: Mutex<[[u8; 32]; 64]>,
    state: Mutex<State>,
    exited: Condvar,
}

fn default_limits() -> [Rlimit; RLIM_NLIMITS] {
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
    pub fn new(tgid: i32, ppid: i32) -> ThreadGroup {
        ThreadGroup {
            tgid,
            ppid,
            limits: Mutex::new(default_limits()),
            sigactions: Mutex::new([[0; 32]; 64]),
            state: Mutex::new(State {
                exit: None,
                live_threads: 0,
            }),
            exited: Condvar::new(),
        }
    }

    /// Counts a new live thread.
    pub fn add_thread(&self) {
        self.state.lock().unwrap().live_threads += 1;
    }

    /// Records the group's exit status (first caller wins, as exit_group does).
    pub fn set_exit(&self, status: ExitStatus) {
        let mut s = self.state.lock().unwrap();
        s.exit.get_or_insert(status);
    }

    /// The group's exit status once set.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.state.lock().unwrap().exit
    }

    /// A thread finished; when it was the last, the group is dead and waiters wake.
    pub fn thread_exited(&self, status: ExitStatus) {
        let mut s = self.state.lock().unwrap();
        s.live_threads -= 1;
        s.exit.get_or_insert(status);
        if s.live_threads == 0 {
            self.exited.notify_all();
        }
    }

    /// Blocks until every thread has exited; returns the status.
    pub fn wait(&self) -> ExitStatus {
        let mut s = self.state.lock().unwrap();
        while s.live_threads > 0 || s.exit.is_none() {
            s = self.exited.wait(s).unwrap();
        }
        s.exit.expect("checked")
    }
}
