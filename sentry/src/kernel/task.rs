//! Tasks (application threads) and their run loop.

use std::sync::Arc;

use platform::{Context, CpuState, Exit};

use super::{ExitStatus, FdTable, Kernel, ThreadGroup};
use crate::mm::MemoryManager;
use crate::syscalls;
use crate::vfs::FsContext;

/// User and group identity of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
}

/// `stack_t` with `ss_flags = SS_DISABLE`.
const DISABLED_ALTSTACK: [u8; 24] = {
    let mut s = [0u8; 24];
    s[8] = 2;
    s
};

/// What the run loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    /// Switch into the application.
    App,
    /// The task is finished with this status.
    Exited(ExitStatus),
}

/// Everything needed to start a task; the platform context is created on the task's own
/// host thread, which is why this is separate from [`Task`].
pub struct TaskInit {
    pub kernel: Arc<Kernel>,
    pub tid: i32,
    pub tg: Arc<ThreadGroup>,
    pub mm: Arc<MemoryManager>,
    pub cpu: CpuState,
    pub fds: Arc<FdTable>,
    pub creds: Creds,
    /// Root, cwd and umask (shared with CLONE_FS).
    pub fs: Arc<FsContext>,
}

/// One application thread.
pub struct Task {
    pub kernel: Arc<Kernel>,
    pub tid: i32,
    pub tg: Arc<ThreadGroup>,
    pub mm: Arc<MemoryManager>,
    pub cpu: CpuState,
    pub fds: Arc<FdTable>,
    pub creds: Creds,
    /// Root, cwd and umask (shared with CLONE_FS).
    pub fs: Arc<FsContext>,
    /// `set_tid_address`: cleared (and woken) when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// Blocked signals (`rt_sigprocmask`).
    pub sigmask: u64,
    /// The alternate signal stack as `stack_t` bytes (`sigaltstack`).
    pub altstack: [u8; 24],
    ctx: Box<dyn Context>,
    state: RunState,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("tid", &self.tid)
            .field("tgid", &self.tg.tgid)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// Starts `init` on a new host thread; returns its join handle.
    ///
    /// # Errors
    /// The host thread could not be created.
    pub fn spawn(init: TaskInit) -> std::io::Result<std::thread::JoinHandle<()>> {
        init.tg.add_thread();
        let name = format!("task-{}", init.tid);
        std::thread::Builder::new()
            .name(name)
            .stack_size(1 << 20)
            .spawn(move || {
                let tg = init.tg.clone();
                let status = match init.kernel.platform.new_context() {
                    Ok(ctx) => Task::from_init(init, ctx).run(),
                    Err(e) => {
                        log::error!("creating a platform context: {e}");
                        ExitStatus::Signaled {
                            signo: libc::SIGKILL,
                            core: false,
                        }
                    }
                };
                tg.thread_exited(status);
            })
    }

    fn from_init(i: TaskInit, ctx: Box<dyn Context>) -> Task {
        Task {
            kernel: i.kernel,
            tid: i.tid,
            tg: i.tg,
            mm: i.mm,
            cpu: i.cpu,
            fds: i.fds,
            creds: i.creds,
            fs: i.fs,
            clear_child_tid: 0,
            robust_list: (0, 0),
            sigmask: 0,
            altstack: DISABLED_ALTSTACK,
            ctx,
            state: RunState::App,
        }
    }

    /// The run loop: runs until the task exits and returns how.
    pub fn run(mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.tg.exit_status() {
                // Another thread ran exit_group (or the group was killed).
                self.state = RunState::Exited(status);
            }
            match self.state {
                RunState::Exited(status) => return status,
                RunState::App => {}
            }
            let exit = match self.ctx.switch(self.mm.address_space(), &mut self.cpu) {
                Ok(exit) => exit,
                Err(e) => {
                    log::error!("task {}: platform failure: {e}", self.tid);
                    self.exit_group(ExitStatus::Signaled {
                        signo: libc::SIGKILL,
                        core: false,
                    });
                    continue;
                }
            };
            match exit {
                Exit::Syscall => syscalls::dispatch(&mut self),
                Exit::Fault { addr, access, .. } => {
                    if let Err(code) = self.mm.handle_fault(addr, access) {
                        log::debug!("task {}: SIGSEGV at {addr:#x} ({code:?})", self.tid);
                        self.force_signal(libc::SIGSEGV);
                    }
                }
                Exit::Signal(info) => self.force_signal(info.signo),
                Exit::Interrupted => {}
            }
        }
    }

    /// A synchronous signal the application caused (fault, trap). Handlers for these arrive
    /// with signal delivery; until then the default action applies: terminate with a core.
    fn force_signal(&mut self, signo: i32) {
        let core = matches!(
            signo,
            libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
                | libc::SIGTRAP
                | libc::SIGSYS
                | libc::SIGABRT
        );
        self.exit_group(ExitStatus::Signaled { signo, core });
    }

    /// Ends this thread only (`exit(2)`).
    pub fn exit_thread(&mut self, status: ExitStatus) {
        self.state = RunState::Exited(status);
    }

    /// Ends the whole thread group (`exit_group(2)`, fatal signals).
    pub fn exit_group(&mut self, status: ExitStatus) {
        self.tg.set_exit(status);
        self.state = RunState::Exited(status);
    }

    /// Platform access for handlers that need the FP state (signal frames, fork).
    pub fn context(&mut self) -> &mut dyn Context {
        self.ctx.as_mut()
    }

    /// Reads the FP state into `self.cpu.fp` if the platform holds a newer one.
    ///
    /// # Errors
    /// Platform failures.
    pub fn pull_fp(&mut self) -> Result<(), platform::Error> {
        self.ctx.pull_fp(self.mm.address_space(), &mut self.cpu)
    }
}
