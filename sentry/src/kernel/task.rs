//! Tasks (application threads) and their run loop.
//!
//! Other threads reach a task only through its [`TaskHandle`]: they queue signals in the
//! thread group's signal state and `kick` it.
//!
//! # The run loop
//! A state machine owned by the task's host thread ([`Task::run`]): the current [`RunState`]
//! is a local of the loop and each step is a function from one state to the next.
//!
//! | state | step | next |
//! |---|---|---|
//! | `Interrupted(restart)` (the first state) | check the thread group, then deliver one pending signal | group exit: `Exiting(group status)`; another thread's execve: `Exiting(0)`; group stop: `GroupStopped(restart)`; kernel paused: `Frozen(restart)`; ignored signal: `Interrupted(restart)`; stop signal: enter group stop, `Interrupted(restart)`; fatal signal or unbuildable frame: end the group, `Exiting`; handler: finish the interrupted call (SA_RESTART or EINTR), push the frame, `Running`; nothing pending: finish the interrupted call (restart, `restart_syscall`, restore a temporary mask), `Running` |
//! | `Frozen(restart)` | park until the kernel resumes ([`super::freeze`]) | `Interrupted(restart)` |
//! | `GroupStopped(restart)` | sleep until kicked (SIGCONT, SIGKILL, group exit) | `Interrupted(restart)` |
//! | `Running` | switch into the application, handle how it came back (system call through the kernel's syscall table, or, when a signal, stop, exit or freeze is already pending, not run but set to restart always; fault, signal, kick) | `Exiting(status)` if the call was `exit`/`exit_group` or the platform failed; else `Interrupted(restart)` with the restart behaviour the call left in [`Task::restart`] |
//! | `Exiting(status)` | leave the tables ([`thread_finished`]) | the loop ends |
//!
//! # A panicking task
//! A panic in the sentry is a bug, and after one nothing the task held can be trusted: its
//! locks are poisoned, its thread group and parent would wait forever for an exit it never
//! reaches. So a task thread that panics ends the whole sandbox at once ([`Task::spawn`]):
//! one `error!` line names the task and the panic, and the sandbox process exits with the
//! status of a SIGKILLed program (128 + 9), which is what its waiter reports. The kernel's
//! timer thread follows the same policy: without it, every timer would stop firing.
//!
//! A traced task ([`super::ptrace`]) makes its ptrace-stops inside these steps: in
//! `Interrupted` a group stop is reported to the tracer once (and then run through, as Linux
//! does after `PTRACE_CONT`) instead of sleeping in `GroupStopped`, and every dequeued signal
//! first passes a signal-delivery-stop; in `Running` the syscall-stops wrap the dispatch; at
//! `Exiting` the exit event stop comes before leaving the tables.
//!
//! A system call reaches the loop only through two outputs: [`Task::restart`] (how an
//! interrupted call continues, Linux's ERESTART* codes) and the exit request of
//! [`Task::exit_thread`] / [`Task::exit_group`].
//!
//! # The lock-free common path
//! Looking at the thread group's signal state takes its lock (and the ptrace lock) several
//! times, which a trivial system call cannot afford. So each task has an *attention* flag
//! ([`TaskHandle::needs_attention`]), and a call that finished with nothing to restart and
//! the flag down goes straight back to `Running`, taking no lock. The flag is raised by
//! everything that can give `Interrupted` something to do: [`TaskHandle::kick`] (which every
//! sender, group exit, group stop, execve, freeze and ptrace request already calls after
//! changing the state), a signal the task forces on itself, and a mask change that unblocks
//! a pending signal. `Interrupted` lowers it *before* it takes the lock to look, so a change
//! made after the look raises it again, and raises it again itself unless the look found
//! nothing at all for an untraced task (a traced task, or one that delivered a signal and may
//! have more, looks again after its next call).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use platform::{Context, CpuState, Exit, Interrupter};

use super::keys::Key;
use super::pidns::PidNamespace;
use super::pids::ChildState;
use super::ptrace::{self, PtraceState};
use super::sched::SchedAttr;
use super::seccomp::SeccompState;
use super::signal::{self, bit, Disposition, SigInfo, StopEvent, ThreadSig, UNBLOCKABLE};
use super::usage::{Accountant, CpuTimes, TaskClock};
use super::{sigframe, ExitStatus, FdTable, Kernel, ThreadGroup};
use crate::abi::Errno;
use crate::auth::Creds;
use crate::mm::usermem::UserAddr;
use crate::mm::{MemoryManager, NumaPolicy};
use crate::vfs::FsContext;
use crate::waiter::{WaitQueue, Waiter};

/// `stack_t` with `ss_flags = SS_DISABLE`.
pub const DISABLED_ALTSTACK: [u8; 24] = {
    let mut s = [0u8; 24];
    s[8] = 2;
    s
};

/// A deliverable signal of thread `tid` whose action is to terminate without a core dump
/// (Linux makes it the group's exit when it is sent; the sentry when the thread looks).
fn terminating_signal(s: &signal::SigState, tid: i32) -> Option<i32> {
    let ready = s.deliverable(tid);
    (1..=signal::NSIG)
        .filter(|&sig| ready & bit(sig) != 0)
        .find(|&sig| {
            signal::disposition(sig, &s.action(sig)) == Disposition::Terminate { core: false }
        })
}

/// A task's host thread as the waits without a task see it
/// ([`crate::waiter::wait_killable`]: a FUSE page fill in fault handling).
struct ThreadTask(Arc<TaskHandle>);

impl crate::waiter::ThreadOwner for ThreadTask {
    fn waiter(&self) -> &Arc<Waiter> {
        &self.0.waiter
    }

    /// Dying: its group exits, another thread's execve kills it, or a SIGKILL or another
    /// signal that terminates without a handler is deliverable to it (what ends a vfork
    /// wait). The group's `sig` is only tried: such a wait may hold locks ordered after it
    /// (the address space's).
    fn dying(&self) -> Option<bool> {
        let s = match self.0.tg.sig.try_lock() {
            Ok(s) => s,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let tid = self.0.tid();
        Some(
            s.must_die(tid)
                || s.exec_killer.is_some_and(|k| k != tid)
                || terminating_signal(&s, tid).is_some(),
        )
    }
}

/// The end of a vfork child's hold on its parent (it exec'd or exited). Completing it wakes
/// the parent through the parent's own [`Waiter`], so that the parent's wait is also woken by
/// what wakes any blocked task: a SIGKILL, a group exit, a fatal signal.
#[derive(Debug)]
pub struct VforkDone {
    done: AtomicBool,
    parent: Arc<Waiter>,
    /// The parent's global TID (a checkpoint records the link from the child).
    pub parent_tid: i32,
}

impl VforkDone {
    pub fn new(parent: Arc<Waiter>, parent_tid: i32) -> Arc<VforkDone> {
        Arc::new(VforkDone {
            done: AtomicBool::new(false),
            parent,
            parent_tid,
        })
    }

    pub fn complete(&self) {
        self.done.store(true, Ordering::SeqCst);
        self.parent.notify();
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// Where a task's run loop is; the module documentation lists the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    /// Switch into the application and handle how it came back.
    Running,
    /// Back from the application (or from a stop): check for group exit, execve and group
    /// stop, deliver pending signals, then finish the system call that was interrupted with
    /// this restart behaviour, if any.
    Interrupted(Option<Restart>),
    /// The kernel is paused: parked out of the application, with the interrupted call's
    /// restart behaviour kept for when the kernel resumes.
    Frozen(Option<Restart>),
    /// In a group stop: waiting to be kicked by SIGCONT, SIGKILL or group exit, with the
    /// interrupted call's restart behaviour kept for when the task resumes.
    GroupStopped(Option<Restart>),
    /// The task is finished with this status.
    Exiting(ExitStatus),
}

/// How an interrupted system call continues (Linux's ERESTART* codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// ERESTARTSYS: restart unless a handler without SA_RESTART runs.
    Sys,
    /// ERESTARTNOINTR: always restart.
    NoIntr,
    /// ERESTARTNOHAND: restart only if no handler runs.
    NoHand,
    /// ERESTART_RESTARTBLOCK: if no handler runs, continue through `restart_syscall` with
    /// [`Task::restart_block`].
    Block,
}

/// Entries of a task's caches of unpatchable and of once-trapped system-call sites.
const PATCH_REFUSED_SLOTS: usize = 64;

/// What `restart_syscall(2)` resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartBlock {
    /// A relative sleep: the absolute monotonic deadline and where to report the remainder.
    Sleep { deadline: Instant, rem: UserAddr },
}

/// What a task rebuilt from a checkpoint resumes with besides its registers
/// ([`Task::spawn_restored`]).
#[derive(Debug, Clone, Default)]
pub struct Resumed {
    /// How the system call the checkpoint interrupted continues.
    pub restart: Option<Restart>,
    /// A vfork parent's wait for its child (by global TID; the return value is already in
    /// rax): waited for before the task returns to the application.
    pub vfork_wait: Option<(Arc<VforkDone>, i32)>,
    pub restart_block: Option<RestartBlock>,
    pub saved_mask: Option<u64>,
    pub robust_list: (u64, u64),
}

/// The part of a task other host threads may touch.
pub struct TaskHandle {
    /// The global TID ([`TaskHandle::tid`]); changed only by a non-leader's execve, which
    /// takes over the leader's ID with the process table and the group's `sig` locked.
    tid: AtomicI32,
    pub tg: Arc<ThreadGroup>,
    pub waiter: Arc<Waiter>,
    interrupter: OnceLock<Arc<dyn Interrupter>>,
    /// Raised when the task must look at its signal state before it next returns to the
    /// application (see the module documentation); SeqCst, like the state changes and
    /// interrupts it is ordered with.
    attention: AtomicBool,
    /// `comm` (PR_SET_NAME, the executable's base name).
    pub comm: Mutex<Vec<u8>>,
    /// What `/proc` shows of the task; None until it starts and after it exits (so an
    /// exited task holds no address space).
    pub view: Mutex<Option<TaskView>>,
    /// When the task was created (`/proc/[pid]/stat` starttime).
    pub start: Instant,
    /// The task's CPU time ([`super::usage`]).
    pub clock: TaskClock,
    /// The task's read and write calls (`/proc/[pid]/io`).
    pub io: super::usage::IoCounts,
    /// Scheduling policy, priority, nice value and affinity ([`super::sched`]); a leaf lock.
    pub sched: Mutex<SchedAttr>,
    /// seccomp filters and `no_new_privs` ([`super::seccomp`]): here, not in the `Task`,
    /// because TSYNC installs a filter on the other threads of the group.
    pub seccomp: SeccompState,
    /// The execution domain personality(2) set (`PER_LINUX` = 0 by default); a child starts
    /// with its parent's and execve keeps it.
    pub personality: AtomicU32,
    /// The thread's NUMA policy (set_mempolicy); a child starts with its parent's. A leaf
    /// lock.
    pub mempolicy: Mutex<NumaPolicy>,
    /// The thread's session keyring ([`super::keys`]); None until it joins one or first
    /// needs the initial one. A child starts with its parent's. A leaf lock.
    pub session_keyring: Mutex<Option<Arc<Key>>>,
    /// Who traces the task and its ptrace-stop ([`super::ptrace`]); after `sig` in the lock
    /// order, a leaf.
    pub ptrace: Mutex<PtraceState>,
}

/// The task state other tasks may inspect through `/proc`: the task publishes it when it
/// starts, on execve and when its credentials change.
#[derive(Clone)]
pub struct TaskView {
    pub mm: Arc<MemoryManager>,
    pub fds: Arc<FdTable>,
    pub fs: Arc<FsContext>,
    pub creds: Creds,
    pub ns: super::ns::Namespaces,
}

impl std::fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("tid", &self.tid())
            .finish_non_exhaustive()
    }
}

impl TaskHandle {
    pub fn new(tid: i32, tg: Arc<ThreadGroup>, comm: Vec<u8>) -> Arc<TaskHandle> {
        Arc::new(TaskHandle {
            tid: AtomicI32::new(tid),
            tg,
            waiter: Waiter::new(),
            interrupter: OnceLock::new(),
            attention: AtomicBool::new(true),
            comm: Mutex::new(comm),
            view: Mutex::new(None),
            start: Instant::now(),
            clock: TaskClock::default(),
            io: Default::default(),
            sched: Mutex::new(SchedAttr::default()),
            seccomp: SeccompState::default(),
            personality: AtomicU32::new(0),
            mempolicy: Mutex::new(NumaPolicy::default()),
            session_keyring: Mutex::new(None),
            ptrace: Mutex::new(PtraceState::default()),
        })
    }

    /// The task's global TID. It changes once at most: when a thread that is not its
    /// group's leader calls execve, it takes the leader's ID ([`super::exec`]); read it under
    /// `Kernel::tree` or the group's `sig` to see it consistent with the tables.
    pub fn tid(&self) -> i32 {
        self.tid.load(Ordering::Relaxed)
    }

    /// Gives the task the ID `tid` (see [`TaskHandle::tid`]).
    pub(super) fn set_tid(&self, tid: i32) {
        self.tid.store(tid, Ordering::Relaxed);
    }

    /// Makes the task look at its signal state: wakes a blocking wait and interrupts the
    /// application if it is running. Call it after changing the state the task is to see.
    pub fn kick(&self) {
        self.attend();
        self.waiter.notify();
        if let Some(i) = self.interrupter.get() {
            i.interrupt();
        }
    }

    /// Makes the task look at its signal state before it next returns to the application,
    /// without waking or interrupting it.
    fn attend(&self) {
        self.attention.store(true, Ordering::SeqCst);
    }

    /// Whether something may be pending for the task (a signal, an exit, a stop, a freeze,
    /// a tracer's request) since it last looked; false means it certainly has nothing to do.
    pub fn needs_attention(&self) -> bool {
        self.attention.load(Ordering::SeqCst)
    }
}

/// Everything needed to start a task; the platform context is created on the task's own
/// host thread, which is why this is separate from [`Task`]. The caller has already entered
/// the task in the process table and in its group's signal state.
pub struct TaskInit {
    pub kernel: Arc<Kernel>,
    pub handle: Arc<TaskHandle>,
    pub mm: Arc<MemoryManager>,
    pub cpu: CpuState,
    pub fds: Arc<FdTable>,
    pub creds: Creds,
    /// Root, cwd and umask (shared with CLONE_FS).
    pub fs: Arc<FsContext>,
    pub ns: super::ns::Namespaces,
    pub clear_child_tid: u64,
    pub altstack: [u8; 24],
    /// Completed when the task execs or exits (vfork parent waits on it).
    pub vfork_done: Option<Arc<VforkDone>>,
}

/// One application thread.
pub struct Task {
    pub kernel: Arc<Kernel>,
    pub tid: i32,
    pub tg: Arc<ThreadGroup>,
    pub handle: Arc<TaskHandle>,
    pub mm: Arc<MemoryManager>,
    pub cpu: CpuState,
    pub fds: Arc<FdTable>,
    pub creds: Creds,
    /// Root, cwd and umask (shared with CLONE_FS).
    pub fs: Arc<FsContext>,
    /// The UTS, IPC and network namespaces (the thread's own, as on Linux).
    pub ns: super::ns::Namespaces,
    /// `set_tid_address`: cleared (and woken) when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// The alternate signal stack as `stack_t` bytes (`sigaltstack`).
    pub altstack: [u8; 24],
    /// Set by a handler that was interrupted by a signal (it returned EINTR).
    pub restart: Option<Restart>,
    /// What `restart_syscall` continues.
    pub restart_block: Option<RestartBlock>,
    /// The mask to restore after a temporary one (sigsuspend, ppoll, pselect6).
    pub saved_mask: Option<u64>,
    pub vfork_done: Option<Arc<VforkDone>>,
    ctx: Box<dyn Context>,
    /// Set by `exit`/`exit_group` during a system call: the run loop ends the thread with
    /// this status once the call returns, delivering no more signals.
    exit_request: Option<ExitStatus>,
    /// Charges this thread's time to `handle.clock`.
    acct: Accountant,
    /// Return addresses of system calls found unpatchable, direct-mapped (a stale entry only
    /// leaves a site trapping): spares such calls the mm lock on every trap.
    patch_refused: [u64; PATCH_REFUSED_SLOTS],
    /// Return addresses of system calls that trapped once in this thread (direct-mapped): a
    /// site is patched when it traps again. Patching costs host calls (un-sharing the code
    /// page, the thunk table) worth tens of trapped calls, and most sites of a short-lived
    /// process (its start-up, a shell's fork and exec) run once.
    patch_seen: [u64; PATCH_REFUSED_SLOTS],
    /// The tracee's own ptrace state: how it was resumed, group-stop and listen progress.
    pub(super) ptrace: ptrace::Local,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("tid", &self.tid)
            .field("tgid", &self.tg.tgid)
            .finish_non_exhaustive()
    }
}

/// Enters a new thread into its group's signal state with signal mask `mask`.
pub fn register_thread(handle: &Arc<TaskHandle>, mask: u64) {
    handle.tg.sig().threads.insert(
        handle.tid(),
        ThreadSig {
            mask,
            pending: signal::Pending::default(),
            handle: handle.clone(),
            real_blocked: 0,
            exiting: false,
        },
    );
}

impl Task {
    /// Starts `init` on a host thread of its own (a parked one if any, see
    /// [`super::host_threads`]).
    ///
    /// # Errors
    /// No host thread could be created.
    pub fn spawn(init: TaskInit) -> std::io::Result<()> {
        Task::spawn_with(init, None)
    }

    /// Starts a task rebuilt from a checkpoint: it continues its interrupted system call as
    /// `resumed` says, then returns to the application where it stopped.
    ///
    /// # Errors
    /// No host thread could be created.
    pub fn spawn_restored(init: TaskInit, resumed: Resumed) -> std::io::Result<()> {
        Task::spawn_with(init, Some(resumed))
    }

    fn spawn_with(init: TaskInit, resumed: Option<Resumed>) -> std::io::Result<()> {
        *init.handle.view.lock().unwrap() = Some(TaskView {
            mm: init.mm.clone(),
            fds: init.fds.clone(),
            fs: init.fs.clone(),
            creds: init.creds.clone(),
            ns: init.ns.clone(),
        });
        let name = format!("task-{}", init.handle.tid());
        super::host_threads::run(
            name,
            Box::new(move || {
                let handle = init.handle.clone();
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Task::start(init, resumed);
                }));
                if let Err(payload) = ran {
                    abort_sandbox(&handle, payload.as_ref());
                }
                // The thread may run another task next: nothing of this one's stays on it.
                platform::ptrace::release_thread_stubs();
            }),
        )
    }

    /// The body of a task's host thread: creates its platform context and runs it.
    fn start(init: TaskInit, resumed: Option<Resumed>) {
        match init.kernel.platform.new_context() {
            Ok(ctx) => {
                let mut task = Task::from_init(init, ctx);
                let restart = resumed.and_then(|r| {
                    task.restart_block = r.restart_block;
                    task.saved_mask = r.saved_mask;
                    task.robust_list = r.robust_list;
                    if let Some((done, child)) = &r.vfork_wait {
                        let ret = task.cpu.regs.rax;
                        task.wait_vfork(done, *child, ret);
                    }
                    r.restart
                });
                task.run_from(RunState::Interrupted(restart));
            }
            Err(e) => {
                log::error!("creating a platform context: {e}");
                let status = ExitStatus::Signaled {
                    signo: libc::SIGKILL,
                    core: false,
                };
                let view = init.handle.view.lock().unwrap().take();
                thread_finished(&init.kernel, &init.handle, view, status);
                if let Some(v) = init.vfork_done {
                    v.complete();
                }
            }
        }
    }

    fn from_init(i: TaskInit, ctx: Box<dyn Context>) -> Task {
        let _ = i.handle.interrupter.set(ctx.interrupter());
        let acct = Accountant::start(i.handle.waiter.slept());
        Task {
            kernel: i.kernel,
            tid: i.handle.tid(),
            tg: i.handle.tg.clone(),
            handle: i.handle,
            mm: i.mm,
            cpu: i.cpu,
            fds: i.fds,
            creds: i.creds,
            fs: i.fs,
            ns: i.ns,
            clear_child_tid: i.clear_child_tid,
            robust_list: (0, 0),
            altstack: i.altstack,
            restart: None,
            restart_block: None,
            saved_mask: None,
            vfork_done: i.vfork_done,
            ctx,
            exit_request: None,
            acct,
            patch_refused: [0; PATCH_REFUSED_SLOTS],
            patch_seen: [0; PATCH_REFUSED_SLOTS],
            ptrace: ptrace::Local::default(),
        }
    }

    /// The run loop: runs until the task exits, then leaves the process table.
    pub fn run(self) {
        self.run_from(RunState::Interrupted(None));
    }

    fn run_from(mut self, mut state: RunState) {
        crate::waiter::set_thread_owner(Some(Arc::new(ThreadTask(self.handle.clone()))));
        let status = loop {
            state = match state {
                RunState::Running => self.run_app(),
                RunState::Interrupted(restart) => self.handle_interrupt(restart),
                RunState::GroupStopped(restart) => self.wait_stopped(restart),
                RunState::Frozen(restart) => {
                    self.park_frozen(restart);
                    RunState::Interrupted(restart)
                }
                RunState::Exiting(status) => break status,
            };
        };
        self.finish(status);
        crate::waiter::set_thread_owner(None);
    }

    /// `Running`: switches into the application and handles how it came back.
    fn run_app(&mut self) -> RunState {
        self.ptrace_before_switch();
        self.acct
            .enter_app(&self.handle.clock, self.handle.waiter.slept());
        let switched = self.ctx.switch(self.mm.address_space(), &mut self.cpu);
        self.acct
            .leave_app(&self.handle.clock, self.handle.waiter.slept());
        self.ptrace_after_switch(matches!(switched, Ok(Exit::Syscall)));
        let exit = match switched {
            Ok(exit) => exit,
            Err(e) => {
                log::error!("task {}: platform failure: {e}", self.tid);
                return RunState::Exiting(self.end_group(ExitStatus::Signaled {
                    signo: libc::SIGKILL,
                    core: false,
                }));
            }
        };
        match exit {
            Exit::Syscall => {
                if self.kernel.test_panic_syscall == Some(self.cpu.regs.orig_rax) {
                    panic!("test hook: system call {}", self.cpu.regs.orig_rax);
                }
                let dispatch = self.kernel.syscalls;
                if self.ptrace.step == ptrace::Step::Continue {
                    self.maybe_patch_syscall();
                    if self.handle.needs_attention() && self.interrupted() {
                        // A signal (or a stop, exit or freeze) came while the application
                        // ran, before this call: as on Linux, where it is handled on the way
                        // back to user mode before the `syscall` instruction, it is handled
                        // first and the call then made afresh, instead of the call starting
                        // with the signal pending and failing with EINTR.
                        self.restart = Some(Restart::NoIntr);
                    } else {
                        dispatch(self);
                        // Resumed with PTRACE_SYSCALL at an event stop inside the call.
                        if self.ptrace.step != ptrace::Step::Continue {
                            self.syscall_exit_stop();
                        }
                    }
                } else {
                    // Syscall-stops; a traced call site stays unpatched for the tracer.
                    self.traced_syscall(dispatch);
                }
                if let Some(status) = self.exit_request.take() {
                    return RunState::Exiting(status);
                }
            }
            Exit::Fault { addr, access, info } => {
                if let Err(code) = self.mm.handle_fault(addr, access) {
                    log::debug!("task {}: fault at {addr:#x} ({code:?})", self.tid);
                    let signal = match code {
                        // A page fill given up because this task is dying: no signal; the
                        // interruption check below ends the task.
                        crate::mm::SegvCode::Dying => None,
                        _ if info.signo == libc::SIGBUS => Some((libc::SIGBUS, info.code)),
                        // BUS_ADRERR
                        crate::mm::SegvCode::BusErr => Some((libc::SIGBUS, 2)),
                        // SEGV_MAPERR, SEGV_ACCERR
                        crate::mm::SegvCode::MapErr => Some((libc::SIGSEGV, 1)),
                        crate::mm::SegvCode::AccErr => Some((libc::SIGSEGV, 2)),
                    };
                    match signal {
                        Some((signo, si_code)) => {
                            self.force_signal(SigInfo::fault(signo, si_code, addr));
                        }
                        None => self.handle.attend(),
                    }
                }
            }
            Exit::Signal(info) => {
                if !(info.signo == libc::SIGILL && self.resume_patched_site()) {
                    self.force_signal(SigInfo::fault(info.signo, info.code, info.addr));
                }
                if let Some(status) = self.exit_request.take() {
                    return RunState::Exiting(status);
                }
            }
            Exit::Vsyscall => {
                // Linux emulates a vsyscall without syscall stops and kills the caller with
                // SIGSEGV where the call would store its result at a bad address.
                (self.kernel.syscalls)(self);
                if self.cpu.regs.rax == (-libc::EFAULT) as i64 as u64 {
                    // SEGV_MAPERR at the first pointer argument.
                    self.force_signal(SigInfo::fault(libc::SIGSEGV, 1, self.cpu.regs.rdi));
                }
                if let Some(status) = self.exit_request.take() {
                    return RunState::Exiting(status);
                }
            }
            Exit::Interrupted => {}
        }
        let restart = self.restart.take();
        if restart.is_none() && self.saved_mask.is_none() && !self.handle.needs_attention() {
            // Nothing to finish and nothing pending: `Interrupted` would find nothing.
            return RunState::Running;
        }
        RunState::Interrupted(restart)
    }

    /// Rewrites the `mov $NR,%eax; syscall` site of the system call just trapped (for the
    /// second time in this thread) into a jump to the platform's fast entry, when the
    /// platform takes them
    /// (`platform::patch`; off with `RUNSC_RS_SYSCALL_PATCH=0`).
    fn maybe_patch_syscall(&mut self) {
        let Some(entry) = self.ctx.syscall_patch_entry() else {
            return;
        };
        let (rip, nr) = (self.cpu.regs.rip, self.cpu.regs.orig_rax);
        let slot = (rip as usize) % PATCH_REFUSED_SLOTS;
        if self.patch_refused[slot] == rip {
            return;
        }
        if self.patch_seen[slot] != rip {
            self.patch_seen[slot] = rip;
            return;
        }
        if self.mm.patch_syscall(rip, nr, entry) {
            log::debug!(
                "task {}: patched system call {nr} at {:#x}",
                self.tid,
                rip - 7
            );
        } else {
            self.patch_refused[slot] = rip;
        }
    }

    /// A SIGILL on the 0x06 byte of a site patched after this thread ran its old `mov` (or
    /// after a system call made through it was rewound for a restart): runs the site again
    /// from its start; `restart_syscall` (which no site's thunk makes) runs as the call
    /// itself. False when the SIGILL is the application's.
    fn resume_patched_site(&mut self) -> bool {
        let Some(site) = self.mm.patched_site_before(self.cpu.regs.rip) else {
            return false;
        };
        let regs = &mut self.cpu.regs;
        if regs.rax == libc::SYS_restart_syscall as u64 {
            regs.rip = site + platform::patch::SITE_LEN as u64;
            regs.orig_rax = regs.rax;
            regs.rax = (-libc::ENOSYS) as i64 as u64;
            let dispatch = self.kernel.syscalls;
            dispatch(self);
        } else {
            regs.rip = site;
        }
        true
    }

    /// `GroupStopped`: sleeps until kicked, then looks at the thread group again.
    fn wait_stopped(&mut self, restart: Option<Restart>) -> RunState {
        self.handle.waiter.wait(None);
        RunState::Interrupted(restart)
    }

    /// Thread exit: clear_child_tid, vfork completion, leave the tables.
    fn finish(mut self, status: ExitStatus) {
        self.ptrace_exit_event(status);
        if let Some(t) = self.tg.sig().threads.get_mut(&self.tid) {
            t.exiting = true;
        }
        self.sample_rss();
        self.exit_mm();
        self.acct
            .charge_sys(&self.handle.clock, self.handle.waiter.slept());
        let (kernel, handle) = (self.kernel.clone(), self.handle.clone());
        // As Linux's exit_mm and exit_files before exit_notify: the address space and files
        // are released before a parent can see the exit (a waiter then finds the shared
        // memory detached, `shm_nattch`).
        let view = handle.view.lock().unwrap().take();
        drop(self);
        thread_finished(&kernel, &handle, view, status);
    }

    /// Records the address space's resident set in the process's peak (`ru_maxrss`).
    pub fn sample_rss(&self) {
        let rss = self.mm.resident();
        self.tg.usage.lock().unwrap().sample_rss(rss);
    }

    /// This thread's CPU time up to now (system time charged up to this call).
    pub fn thread_times(&mut self) -> CpuTimes {
        self.acct
            .charge_sys(&self.handle.clock, self.handle.waiter.slept());
        self.handle.clock.times()
    }

    /// Releases this thread's hold on its memory: robust futexes, `clear_child_tid`
    /// (cleared and woken, as futex waiters in pthread_join expect), the vfork parent.
    pub fn exit_mm(&mut self) {
        super::futex::exit_robust_list(self);
        if self.clear_child_tid != 0 {
            let addr = UserAddr(self.clear_child_tid);
            if self.mm.write_obj(addr, &0u32).is_ok() {
                let key = super::futex::key(&self.mm, addr.0, false);
                if let Ok(k) = key {
                    // As Linux, the wake's EINVAL (PI waiters on the word) is ignored.
                    let _ = self.kernel.futexes.wake(k, 1, u32::MAX);
                }
            }
            self.clear_child_tid = 0;
        }
        if let Some(v) = self.vfork_done.take() {
            v.complete();
        }
    }

    /// A synchronous signal the application caused (fault, trap): delivered even if blocked
    /// or ignored (then with the default action, as Linux's force_sig).
    pub fn force_signal(&mut self, info: SigInfo) {
        let sig = info.signo;
        let mut s = self.tg.sig();
        let act = s.action(sig);
        let blocked = s
            .threads
            .get(&self.tid)
            .is_some_and(|t| t.mask & bit(sig) != 0);
        if blocked || act.handler == signal::SIG_IGN {
            s.actions[(sig - 1) as usize] = signal::SigAction::default();
        }
        if let Some(t) = s.threads.get_mut(&self.tid) {
            t.mask &= !bit(sig);
            t.pending.push(info);
        }
        self.handle.attend();
    }

    /// Sends `info` to this thread (SIGPIPE, SIGXFSZ...).
    pub fn signal_self(&mut self, info: SigInfo) {
        let tree = self.kernel.tree();
        tree.send_thread(&self.handle, info, true);
    }

    /// `Interrupted`: handles group exit, execve by another thread and group stop, then
    /// delivers one pending signal; with none left, finishes the interrupted system call
    /// (`restart`) and returns to the application.
    ///
    /// The attention flag is lowered before the look, so whatever changes after it raises
    /// the flag again; the look raises it itself for a tracee and after dequeuing a signal
    /// (more may wait). Every other state it returns but `Running` comes back here.
    fn handle_interrupt(&mut self, restart: Option<Restart>) -> RunState {
        self.handle.attention.store(false, Ordering::SeqCst);
        let stopped = {
            let s = self.tg.sig();
            if let Some(status) = s.exit {
                return RunState::Exiting(status);
            }
            if s.exec_killer.is_some_and(|k| k != self.tid) {
                // Killed by another thread's execve: no group status.
                return RunState::Exiting(ExitStatus::Exited(0));
            }
            if self.kernel.freezer.is_frozen() && !s.must_die(self.tid) {
                return RunState::Frozen(restart);
            }
            s.stopped
        };
        // A tracee reports a group stop (and PTRACE_INTERRUPT) to its tracer and runs on
        // when resumed; anyone else sleeps in it.
        match self.ptrace_before_signals(stopped) {
            None => return RunState::Interrupted(restart),
            Some(true) => return RunState::GroupStopped(restart),
            Some(false) => {}
        }
        let traced = self.ptraced();
        if traced {
            self.handle.attend();
        }
        let next = {
            let mut s = self.tg.sig();
            let Some(me) = s.threads.get(&self.tid) else {
                self.handle.attend();
                return RunState::Running;
            };
            let mask = me.mask;
            let info = match s
                .threads
                .get_mut(&self.tid)
                .and_then(|t| t.pending.pop(mask))
            {
                Some(i) => Some(i),
                None => s.shared.pop(mask),
            };
            if info.is_some() {
                self.handle.attend();
            }
            let next = info.map(|i| (i, s.action(i.signo)));
            // A stop signal enters the group stop under the lock that dequeued it (as Linux),
            // so that a SIGCONT sent meanwhile finds the stop and ends it. A tracee's tracer
            // sees the signal first.
            match next {
                Some((i, act))
                    if !traced && signal::disposition(i.signo, &act) == Disposition::Stop =>
                {
                    Some(Err(enter_group_stop(&mut s, i.signo)))
                }
                n => n.map(Ok),
            }
        };
        let next = match next {
            Some(Err(stopped)) => {
                if let Some(sig) = stopped {
                    let tree = self.kernel.tree();
                    tree.notify_parent(self.tg.tgid, ChildState::Stopped(sig));
                }
                return RunState::Interrupted(restart);
            }
            Some(Ok(n)) => Some(n),
            None => None,
        };
        let Some((info, act)) = next else {
            self.finish_without_handler(restart);
            return RunState::Running;
        };
        // A tracee's signals go through its tracer first (signal-delivery-stop).
        let (info, act) = match self.ptrace_signal(info) {
            Some(i) if i == info => (i, act),
            Some(i) => (i, self.tg.sig().action(i.signo)),
            None => return RunState::Interrupted(restart),
        };
        match signal::disposition(info.signo, &act) {
            Disposition::Ignore => RunState::Interrupted(restart),
            Disposition::Stop => {
                self.group_stop(info.signo);
                RunState::Interrupted(restart)
            }
            // A core action dumps nothing (the sandbox writes no core files), and Linux
            // reports a core dump (WCOREDUMP, CLD_DUMPED) only for one written.
            Disposition::Terminate { .. } => {
                RunState::Exiting(self.end_group(ExitStatus::Signaled {
                    signo: info.signo,
                    core: false,
                }))
            }
            Disposition::Handler(act) => {
                if let Some(r) = restart {
                    let again = match r {
                        Restart::Sys => act.flags & signal::SA_RESTART != 0,
                        Restart::NoIntr => true,
                        Restart::NoHand | Restart::Block => false,
                    };
                    if again {
                        self.rewind_syscall(self.cpu.regs.orig_rax);
                    } else {
                        self.cpu.regs.rax = (-(Errno::EINTR as i64)) as u64;
                    }
                }
                match sigframe::setup(self, &info, &act) {
                    Ok(()) => RunState::Running,
                    Err(e) => {
                        log::debug!("task {}: cannot build signal frame: {e}", self.tid);
                        RunState::Exiting(self.end_group(ExitStatus::Signaled {
                            signo: libc::SIGSEGV,
                            core: false,
                        }))
                    }
                }
            }
        }
    }

    /// Finishes an interrupted system call when no handler runs: it restarts (through
    /// `restart_syscall` for [`Restart::Block`]), and a temporary signal mask is restored.
    fn finish_without_handler(&mut self, restart: Option<Restart>) {
        match restart {
            Some(Restart::Block) => self.rewind_syscall(libc::SYS_restart_syscall as u64),
            Some(_) => self.rewind_syscall(self.cpu.regs.orig_rax),
            None => {}
        }
        if let Some(m) = self.saved_mask.take() {
            self.set_sigmask(m);
        }
    }

    /// Makes the application execute its `syscall` instruction again, as `nr`.
    fn rewind_syscall(&mut self, nr: u64) {
        self.cpu.regs.rax = nr;
        self.cpu.regs.rip -= 2;
    }

    /// Enters group stop for `sig` and tells the parent.
    fn group_stop(&mut self, sig: i32) {
        let tree = self.kernel.tree();
        if enter_group_stop(&mut self.tg.sig(), sig).is_some() {
            tree.notify_parent(self.tg.tgid, ChildState::Stopped(sig));
        }
    }

    /// Ends this thread only (`exit(2)`) when the current system call returns.
    pub fn exit_thread(&mut self, status: ExitStatus) {
        self.exit_request = Some(status);
    }

    /// Ends the whole thread group (`exit_group(2)`); this thread ends when the current
    /// system call returns.
    pub fn exit_group(&mut self, status: ExitStatus) {
        self.exit_request = Some(self.end_group(status));
    }

    /// Sets the group's exit status (the first one wins, which this returns) and kicks the
    /// other threads out of the application and out of blocking waits.
    fn end_group(&self, status: ExitStatus) -> ExitStatus {
        let mut s = self.tg.sig();
        let status = *s.exit.get_or_insert(status);
        s.kick_all();
        status
    }

    /// The calling thread's signal mask.
    pub fn sigmask(&self) -> u64 {
        self.tg.sig().threads.get(&self.tid).map_or(0, |t| t.mask)
    }

    /// Sets the signal mask (SIGKILL and SIGSTOP are never blocked).
    ///
    /// A pending signal it unblocks is delivered before the next return to the application;
    /// process-wide pending signals it blocks go to the other threads that can take them
    /// (kicked, as Linux's `retarget_shared_pending`).
    pub fn set_sigmask(&mut self, mask: u64) {
        let mut s = self.tg.sig();
        let Some(t) = s.threads.get_mut(&self.tid) else {
            return;
        };
        let old = std::mem::replace(&mut t.mask, mask & !UNBLOCKABLE);
        t.real_blocked = 0;
        let newly_blocked = t.mask & !old;
        if s.deliverable(self.tid) != 0 {
            self.handle.attend();
        }
        let orphaned = s.shared.set() & newly_blocked;
        if orphaned != 0 {
            s.threads
                .values()
                .filter(|t| t.handle.tid() != self.tid && orphaned & !t.mask != 0)
                .for_each(|t| t.handle.kick());
        }
    }

    /// Unblocks `wanted` for a `rt_sigtimedwait`, remembering the mask in force as the one
    /// that decides whether a signal is dropped as ignored; returns that mask, which
    /// [`Task::set_sigmask`] restores afterwards.
    pub fn unblock_for_sigwait(&mut self, wanted: u64) -> u64 {
        let mut s = self.tg.sig();
        let Some(t) = s.threads.get_mut(&self.tid) else {
            return 0;
        };
        let old = t.mask;
        t.real_blocked = old;
        t.mask = old & !wanted;
        old
    }

    /// Whether a blocking wait must stop: a deliverable signal, group exit or stop, or a
    /// kernel pause.
    pub fn interrupted(&self) -> bool {
        if self.kernel.freezer.is_frozen() || self.handle.ptrace.lock().unwrap().interrupt {
            return true;
        }
        let s = self.tg.sig();
        s.exit.is_some()
            || s.stopped
            || s.exec_killer.is_some_and(|k| k != self.tid)
            || s.deliverable(self.tid) != 0
    }

    /// Blocks until `ready` returns a result, registered on `queues`.
    ///
    /// # Errors
    /// EINTR when a signal (or exit, stop) interrupts the wait; the handler's restart
    /// behaviour is [`Restart::Sys`] unless the caller changes `self.restart`. ETIMEDOUT when
    /// `deadline` passes first.
    pub fn block_on<T>(
        &mut self,
        queues: &[&WaitQueue],
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut Task) -> Option<Result<T, Errno>>,
    ) -> Result<T, Errno> {
        let waiter = self.handle.waiter.clone();
        for q in queues {
            q.add(&waiter);
        }
        let r = loop {
            if let Some(r) = ready(self) {
                break r;
            }
            if self.interrupted() {
                self.restart = Some(Restart::Sys);
                break Err(Errno::EINTR);
            }
            if !waiter.wait(deadline) {
                break Err(Errno::ETIMEDOUT);
            }
        };
        for q in queues {
            q.remove(&waiter);
        }
        r
    }

    /// Waits until the vfork child `done` belongs to execs or exits. As Linux's killable
    /// wait, only what ends this thread ends the wait early: SIGKILL or another group exit,
    /// an execve in another thread, or a pending signal whose action is to terminate without
    /// a core dump (which becomes the group's exit here, as Linux makes it at send time).
    /// Other signals stay pending until the call returns.
    ///
    /// A pause parks the waiting task here, recorded for a checkpoint as waiting for
    /// `child` (global TID) with `ret`, what vfork returns to it, in rax.
    pub fn wait_vfork(&mut self, done: &VforkDone, child: i32, ret: u64) {
        self.kernel.freezer.enter_vfork_wait();
        self.wait_vfork_child(done, child, ret);
        self.kernel.freezer.leave_vfork_wait();
    }

    fn wait_vfork_child(&mut self, done: &VforkDone, child: i32, ret: u64) {
        while !done.is_done() {
            let fatal = {
                let s = self.tg.sig();
                if s.exit.is_some() || s.exec_killer.is_some_and(|k| k != self.tid) {
                    return;
                }
                terminating_signal(&s, self.tid)
            };
            if let Some(signo) = fatal {
                self.end_group(ExitStatus::Signaled { signo, core: false });
                return;
            }
            if self.kernel.freezer.is_frozen() {
                // Returns at once only when thawed or dying, and the checks above end the
                // wait of a dying task: no spin.
                self.park_in_vfork(child, ret);
                continue;
            }
            self.handle.waiter.wait(None);
        }
    }

    /// Sleeps until `deadline` (or forever), interruptibly.
    ///
    /// # Errors
    /// EINTR when interrupted.
    pub fn sleep_until(&mut self, deadline: Option<Instant>) -> Result<(), Errno> {
        match self.block_on::<()>(&[], deadline, |_| None) {
            Err(Errno::ETIMEDOUT) => Ok(()),
            r => r,
        }
    }

    /// The task's PID namespace.
    pub fn pidns(&self) -> &Arc<PidNamespace> {
        &self.tg.pidns
    }

    /// What this task calls the task, process, group or session whose global ID is
    /// `global`: its ID in this task's PID namespace, 0 when it is not visible there.
    pub fn vpid_of(&self, global: i32) -> i32 {
        self.tg.pidns.id_of(global).unwrap_or(0)
    }

    /// The global ID of what this task calls `local`; None when nothing visible to it is.
    pub fn lookup_pid(&self, local: i32) -> Option<i32> {
        if local <= 0 {
            return None;
        }
        self.tg.pidns.lookup(local)
    }

    /// This process's PID in its own namespace (getpid).
    pub fn vtgid(&self) -> i32 {
        self.vpid_of(self.tg.tgid)
    }

    /// This thread's TID in its own namespace (gettid).
    pub fn vtid(&self) -> i32 {
        self.vpid_of(self.tid)
    }

    /// Publishes the task's memory, files, filesystem context and credentials for `/proc`
    /// (after execve or a credential change).
    pub fn publish_view(&self) {
        *self.handle.view.lock().unwrap() = Some(TaskView {
            mm: self.mm.clone(),
            fds: self.fds.clone(),
            fs: self.fs.clone(),
            creds: self.creds.clone(),
            ns: self.ns.clone(),
        });
    }

    /// Republishes the credentials (after a set*id system call).
    pub fn sync_creds(&self) {
        if let Some(view) = self.handle.view.lock().unwrap().as_mut() {
            view.creds = self.creds.clone();
        }
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

/// Puts the thread group whose signal state is `s` into a group stop for `sig` (unless it is
/// exiting); Some(sig) when it did, and the parent is to be told.
fn enter_group_stop(s: &mut signal::SigState, sig: i32) -> Option<i32> {
    if s.exit.is_some() {
        return None;
    }
    s.stopped = true;
    s.stop_signal = sig;
    s.stop_event = Some(StopEvent::Stopped(sig));
    s.kick_all();
    Some(sig)
}

/// Ends the sandbox after task `handle` panicked (see the module documentation): the panic
/// cannot be contained, since the task's locks and waiters are left in an unknown state.
fn abort_sandbox(handle: &TaskHandle, payload: &(dyn std::any::Any + Send)) -> ! {
    let comm = handle
        .comm
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |c| c.clone());
    let who = format!(
        "task {} ({}) of process {}",
        handle.tid(),
        String::from_utf8_lossy(&comm),
        handle.tg.tgid
    );
    abort_after_panic(&who, payload)
}

/// Ends the sandbox after the sentry thread `who` panicked: one `error!` line naming it and
/// the panic, then the exit status of a SIGKILLed program. For every sentry thread the
/// kernel runs (tasks, the timer thread), as none of them can be restarted safely.
pub(super) fn abort_after_panic(who: &str, payload: &(dyn std::any::Any + Send)) -> ! {
    // A panic payload is `dyn Any`: `panic!` makes it a &str or a String.
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    log::error!("{who} panicked: {what}; ending the sandbox as if SIGKILLed");
    log::logger().flush();
    std::process::exit(128 + libc::SIGKILL)
}

/// A thread is gone: remove it from its group and the process table; the last thread makes
/// the process a zombie. `view` is what the thread showed last (taken off its handle).
fn thread_finished(
    kernel: &Arc<Kernel>,
    handle: &Arc<TaskHandle>,
    view: Option<TaskView>,
    status: ExitStatus,
) {
    let tg = &handle.tg;
    // The thread's last hold on its memory, files and filesystem context goes here, before
    // the process table's lock and the exit notification: releasing the process's address
    // space (killing its host processes) and closing its files (a pipe's last writer) then
    // happen before a parent can see the exit, as Linux's exit_mm and exit_files come before
    // exit_notify, and not under the lock the woken parent's wait takes first.
    let (creds, ipc) = view.map(|v| (v.creds, v.ns.ipc.clone())).unzip();
    let mut tree = kernel.tree();
    tree.tasks.remove(&handle.tid());
    tree.forget_id(handle.tid(), &tg.pidns);
    let last = {
        let mut s = tg.sig();
        s.threads.remove(&handle.tid());
        // Under `sig`, so a reader summing the live threads and the exited ones counts
        // this thread exactly once.
        {
            let mut u = tg.usage.lock().unwrap();
            u.exited += handle.clock.times();
            u.exited_io += handle.io.totals();
        }
        if s.exec_killer.is_some() {
            tg.child_events.notify_all();
        }
        s.threads.is_empty().then(|| s.exit.unwrap_or(status))
    };
    ptrace::task_exited(&mut tree, handle, last.unwrap_or(status), last.is_some());
    if last.is_none() {
        tree.parent_thread_exited(tg.tgid, handle.tid());
    }
    // The process's CPU time, read before the hierarchy's lock (its lock order).
    let final_cpu = last.map(|_| tg.cpu_times());
    kernel.cgroups.thread_exited(tg, final_cpu);
    // A session leader's terminal, held until the table is unlocked (its last reference may
    // go with it), and the foreground group to hang up.
    let mut hangup = None;
    if let Some(final_status) = last {
        if tree.procs.get(&tg.tgid).is_some_and(|p| p.sid == tg.tgid) {
            // Before the leader becomes reapable: its parent's wait must find the terminal
            // free for a new session (the terminals' table and state locks are leaves).
            let term = kernel.terminals.lock().unwrap().remove(&tg.tgid);
            if let Some(term) = term.and_then(|w| w.upgrade()) {
                let foreground = term.session_leader_exited(tg.tgid);
                hangup = Some((term, foreground));
            }
        }
        kernel.locks.release_process(tg.tgid);
        kernel.ipc.process_exited(tg.tgid);
        if let Some(ipc) = ipc.filter(|ipc| !Arc::ptr_eq(ipc, &kernel.ipc)) {
            ipc.process_exited(tg.tgid);
        }
        // The program's denial of writes ends with the process, before a parent can see
        // the zombie (Linux's exit_mm drops the mm's exe_file before exit_notify). The
        // image's lock and the write-access table's are leaves.
        tg.image.lock().unwrap().exe_deny = None;
        tree.process_exited(tg.tgid, final_status);
        if let Some(p) = tree.procs.get_mut(&tg.tgid) {
            p.remains = creds.map(|c| (c, handle.sched.lock().unwrap().nice));
        }
        tg.set_done(final_status);
    }
    let empty = tree.tasks.is_empty();
    drop(tree);
    if let Some((_term, Some(foreground))) = &hangup {
        // Not under the process table's lock: signals go through it.
        crate::vfs::ProcessGroups::signal_process_group(&**kernel, *foreground, libc::SIGHUP);
    }
    drop(hangup);
    if empty {
        kernel.all_exited.notify_all();
    }
}
