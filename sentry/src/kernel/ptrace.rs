//! ptrace(2) between sandboxed tasks: the tracee's side (its stops and how it resumes) and
//! the bookkeeping the tracer's requests and `wait` need. Nothing here reaches the host's
//! ptrace; the tracer is another task of the sandbox.
//!
//! A tracee's ptrace state lives in its [`TaskHandle`] (`TaskHandle::ptrace`), because the
//! tracer reads and changes it from its own thread. A tracee in a ptrace-stop parks in its
//! own thread ([`Task::ptrace_stop`]) with a copy of its registers in the [`Stop`]: the
//! tracer reads and writes that copy, and the tracee takes it back when it is resumed
//! (`PTRACE_CONT` and friends set [`Stop::resume`] and wake it). The process table keeps the
//! index of traced tasks, [`Tree::ptraced`], which `wait` scans for the tracer and which
//! keeps an exited tracee until its tracer has collected the exit.
//!
//! The stops, where the run loop enters them:
//!
//! | stop | where | wait status (bits 8..) |
//! |---|---|---|
//! | signal-delivery-stop | `Interrupted`, for each signal dequeued (SIGKILL never) | the signal |
//! | group-stop | `Interrupted`, once per group stop, instead of sleeping in it | the stop signal (`\| PTRACE_EVENT_STOP << 8` when seized) |
//! | `PTRACE_EVENT_STOP` | `Interrupted`, after `PTRACE_INTERRUPT` or when a `PTRACE_LISTEN` ends | `SIGTRAP \| 128 << 8` |
//! | syscall-enter/exit-stop | around the system call (`PTRACE_SYSCALL`, `PTRACE_SYSEMU`) | `SIGTRAP` (`\| 0x80` with `PTRACE_O_TRACESYSGOOD`) |
//! | fork, vfork, clone, vfork-done, exec events | inside those calls, when the option asks | `SIGTRAP \| event << 8` |
//! | exit event | as the thread exits (even when SIGKILLed) | `SIGTRAP \| 6 << 8` |
//!
//! Differences from Linux: any thread of the tracing process may issue requests for its
//! tracees (Linux accepts only the tracing thread); segment selectors are read but not
//! written; no hardware breakpoints (debug registers read as 0, only 0 can be written);
//! `PTRACE_EVENT_SECCOMP` is not offered; a kernel pause (checkpoint) times out while a
//! tracee is in a ptrace-stop. A non-leader thread's execve gives it the leader's ID, as on
//! Linux ([`super::pids::Tree::take_leader_id`]); the exec event's message is its former ID.
//!
//! # Lock order
//! `Kernel::tree` → `ThreadGroup::sig` → `TaskHandle::ptrace`; nothing is locked under
//! `TaskHandle::ptrace` but a task's `Waiter` (to wake it).

use std::sync::Arc;

use platform::CpuState;

use super::pids::{ChildState, Tree};
use super::signal::{self, bit, SigInfo, SA_NOCLDSTOP, SI_USER};
use super::task::TaskHandle;
use super::{ExitStatus, Task};

pub const EVENT_FORK: u32 = 1;
pub const EVENT_VFORK: u32 = 2;
pub const EVENT_CLONE: u32 = 3;
pub const EVENT_EXEC: u32 = 4;
pub const EVENT_VFORK_DONE: u32 = 5;
pub const EVENT_EXIT: u32 = 6;
pub const EVENT_STOP: u32 = 128;

pub const O_TRACESYSGOOD: u32 = 1;
pub const O_TRACEFORK: u32 = 2;
pub const O_TRACEVFORK: u32 = 4;
pub const O_TRACECLONE: u32 = 8;
pub const O_TRACEEXEC: u32 = 0x10;
pub const O_TRACEVFORKDONE: u32 = 0x20;
pub const O_TRACEEXIT: u32 = 0x40;
pub const O_EXITKILL: u32 = 0x10_0000;
/// The options `PTRACE_SETOPTIONS` and `PTRACE_SEIZE` accept (`PTRACE_O_TRACESECCOMP` and
/// `PTRACE_O_SUSPEND_SECCOMP` are not offered).
pub const O_SUPPORTED: u32 = 0x7f | O_EXITKILL;

/// `CLD_TRAPPED`: a tracee stopped (`si_code` of SIGCHLD and waitid).
pub const CLD_TRAPPED: i32 = 4;

/// `si_code` of the SIGTRAP a single step raises.
pub const TRAP_TRACE: i32 = 2;

/// The trap flag of `eflags`.
const EFLAGS_TF: u64 = 0x100;

/// Linux's ERESTART* codes, as a syscall-exit-stop shows them in `rax`.
const ERESTARTSYS: i64 = 512;
const ERESTARTNOINTR: i64 = 513;
const ERESTARTNOHAND: i64 = 514;
const ERESTART_RESTARTBLOCK: i64 = 516;

/// Who traces a task: the thread that attached and its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracer {
    pub tid: i32,
    pub tgid: i32,
}

/// How a resumed tracee runs until its next stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    /// `PTRACE_CONT`: until a signal or event.
    #[default]
    Continue,
    /// `PTRACE_SYSCALL`: also stop at system call entry and exit.
    Syscall,
    /// `PTRACE_SINGLESTEP`: stop after one instruction.
    SingleStep,
    /// `PTRACE_SYSEMU`: stop at system call entry and skip the call.
    Sysemu,
    /// `PTRACE_SYSEMU_SINGLESTEP`.
    SysemuSingleStep,
}

impl Step {
    fn single(self) -> bool {
        matches!(self, Step::SingleStep | Step::SysemuSingleStep)
    }

    fn emulates(self) -> bool {
        matches!(self, Step::Sysemu | Step::SysemuSingleStep)
    }
}

/// What the tracer asked of a stopped tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Run on, delivering signal `sig` (0: none).
    Run { sig: i32, step: Step },
    /// Stop being traced, delivering `sig`.
    Detach { sig: i32 },
    /// `PTRACE_LISTEN`: stay in the group stop, untrapped, until it ends.
    Listen,
}

impl Resume {
    fn sig(self) -> i32 {
        match self {
            Resume::Run { sig, .. } | Resume::Detach { sig } => sig,
            Resume::Listen => 0,
        }
    }
}

/// Which ptrace-stop a tracee is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Signal,
    Group,
    SyscallEnter,
    SyscallExit,
    Event(u32),
}

/// A tracee's ptrace-stop.
#[derive(Debug)]
pub struct Stop {
    pub kind: StopKind,
    /// The wait status above its low byte: the signal, and an event shifted by 8.
    pub code: i32,
    /// A `wait` of the tracer has reported this stop.
    pub reported: bool,
    /// The tracee's registers, which the tracer reads and writes.
    pub cpu: CpuState,
    /// What `PTRACE_GETSIGINFO` answers; None in a group-stop of a task not seized.
    pub siginfo: Option<SigInfo>,
    /// Set by the tracer's request that ends the stop.
    pub resume: Option<Resume>,
}

/// A task's ptrace state (`TaskHandle::ptrace`).
#[derive(Debug, Default)]
pub struct PtraceState {
    pub tracer: Option<Tracer>,
    /// Attached with `PTRACE_SEIZE`.
    pub seized: bool,
    pub options: u32,
    /// What `PTRACE_GETEVENTMSG` answers.
    pub event_msg: u64,
    pub stop: Option<Stop>,
    /// `PTRACE_INTERRUPT` asked for a `PTRACE_EVENT_STOP`.
    pub interrupt: bool,
    /// The tracee exited with this status, which its tracer has not collected yet.
    pub exited: Option<ExitStatus>,
    /// The debug registers as the tracer set them (`u_debugreg`); no breakpoint is ever
    /// enabled.
    pub debugreg: [u64; 8],
}

impl PtraceState {
    /// The stop the tracer may act on: one not resumed yet.
    pub fn stopped(&mut self) -> Option<&mut Stop> {
        self.stop.as_mut().filter(|s| s.resume.is_none())
    }
}

/// The tracee's own part of its ptrace state, kept in its [`Task`].
#[derive(Debug, Default)]
pub struct Local {
    /// How the last resumption asked the task to run.
    pub step: Step,
    /// The current group stop has been reported to the tracer (the tracee runs on in it).
    group_stop_seen: bool,
    /// After `PTRACE_LISTEN`: sleeping in the group stop, to re-trap when it ends.
    listening: bool,
    /// The trap flag was set for a single step (and is hidden from the tracer).
    set_tf: bool,
}

/// Makes `target` a tracee of `tracer`. `stop` sends it SIGSTOP (`PTRACE_ATTACH`);
/// `seize` holds the options of `PTRACE_SEIZE`.
///
/// # Errors
/// EPERM when it is traced already or exiting.
pub fn attach(
    tree: &mut Tree,
    target: &Arc<TaskHandle>,
    tracer: Tracer,
    stop: bool,
    seize: Option<u32>,
) -> Result<(), crate::abi::Errno> {
    {
        let s = target.tg.sig();
        if s.exit.is_some() || s.threads.get(&target.tid()).is_none_or(|t| t.exiting) {
            return Err(crate::abi::Errno::EPERM);
        }
    }
    {
        let mut st = target.ptrace.lock().unwrap();
        if st.tracer.is_some() {
            return Err(crate::abi::Errno::EPERM);
        }
        // A stop left by a former tracer (resumed, the tracee not yet out of it) stays.
        st.tracer = Some(tracer);
        st.seized = seize.is_some();
        st.options = seize.unwrap_or(0);
        st.interrupt = false;
        st.event_msg = 0;
        st.exited = None;
        st.debugreg = [0; 8];
    }
    tree.ptraced.insert(target.tid(), target.clone());
    if stop {
        let pid = target.tg.pidns.id_of(tracer.tgid).unwrap_or(0);
        tree.send_thread(
            target,
            SigInfo::from_user(libc::SIGSTOP, SI_USER, pid, 0),
            true,
        );
    }
    // A group-stopped tracee reports the stop to its new tracer.
    target.kick();
    Ok(())
}

/// Ends the tracing of `target` by its tracer (`PTRACE_DETACH`), resuming it with `sig`.
pub fn detach(tree: &mut Tree, target: &Arc<TaskHandle>, sig: i32) {
    {
        let mut st = target.ptrace.lock().unwrap();
        st.tracer = None;
        st.seized = false;
        st.options = 0;
        st.interrupt = false;
        if let Some(stop) = st.stop.as_mut() {
            stop.resume.get_or_insert(Resume::Detach { sig });
        }
    }
    tree.ptraced.remove(&target.tid());
    target.waiter.notify();
}

/// Resumes the stopped `target` as `how`.
pub fn resume(target: &TaskHandle, how: Resume) {
    if let Some(stop) = target.ptrace.lock().unwrap().stopped() {
        stop.resume = Some(how);
    }
    target.waiter.notify();
}

/// Tells `tracer` that tracee `tid` changed state: SIGCHLD (unless it asked for none with
/// SA_NOCLDSTOP for a stop) and a wake-up of its `wait`.
fn notify_tracer(tree: &Tree, tracer: Tracer, tid: i32, state: ChildState) {
    let Some(p) = tree.procs.get(&tracer.tgid) else {
        return;
    };
    let ptg = p.tg.clone();
    let stop = !matches!(state, ChildState::Exited(_));
    let quiet = stop && ptg.sig().action(libc::SIGCHLD).flags & SA_NOCLDSTOP != 0;
    if !quiet {
        let (code, status) = state.code_status();
        let pid = ptg.pidns.id_of(tid).unwrap_or(0);
        // SIGCHLD carries the stop signal only; `waitid` reports the event bits too.
        let status = if stop { status & 0x7f } else { status };
        tree.send_group(
            &ptg,
            SigInfo::child(libc::SIGCHLD, code, pid, 0, status),
            true,
        );
    }
    ptg.child_events.notify_all();
}

/// Thread `h` is leaving the process table with `status`; `last` when it is its process's
/// last thread. Its tracees are let go (SIGKILLed with `PTRACE_O_EXITKILL`), and if it is
/// traced its exit waits for its tracer's `wait`, except for a process whose tracer is its
/// parent (the parent's ordinary wait reports it once).
pub fn task_exited(tree: &mut Tree, h: &Arc<TaskHandle>, status: ExitStatus, last: bool) {
    let tgid = h.tg.tgid;
    let mine: Vec<Arc<TaskHandle>> = tree
        .ptraced
        .values()
        .filter(|t| {
            t.ptrace
                .lock()
                .unwrap()
                .tracer
                .is_some_and(|tr| tr.tid == h.tid() || (last && tr.tgid == tgid))
        })
        .cloned()
        .collect();
    for t in mine {
        let (kill, exited) = {
            let st = t.ptrace.lock().unwrap();
            (st.options & O_EXITKILL != 0, st.exited.is_some())
        };
        if kill {
            tree.send_group(&t.tg, SigInfo::kernel(libc::SIGKILL), true);
        }
        detach(tree, &t, 0);
        t.ptrace.lock().unwrap().exited = None;
        if exited {
            collected(tree, &t);
        }
    }
    let Some(tracer) = h.ptrace.lock().unwrap().tracer else {
        return;
    };
    let parent = tree.procs.get(&tgid).map_or(0, |p| p.parent);
    // The last thread stands for the process (whose leader thread may have exited first).
    if (h.tid() == tgid || last) && parent == tracer.tgid {
        detach(tree, h, 0);
        return;
    }
    h.ptrace.lock().unwrap().exited = Some(status);
    notify_tracer(tree, tracer, h.tid(), ChildState::Exited(status));
}

/// The task `tid` names for ptrace and `wait`: the thread of that ID, or for a process
/// whose leader thread is gone, its one remaining thread.
pub fn task_for(tree: &Tree, tid: i32) -> Option<Arc<TaskHandle>> {
    if let Some(h) = tree.tasks.get(&tid) {
        return Some(h.clone());
    }
    let p = tree.live(tid)?;
    let s = p.tg.sig();
    let mut threads = s.threads.values();
    match (threads.next(), threads.next()) {
        (Some(only), None) => Some(only.handle.clone()),
        _ => None,
    }
}

/// The ID a tracee reports to `wait` under: its TID, as Linux reports every traced thread,
/// whether or not its leader thread is still there; its process's only when the wait named
/// that process (`named`) and the thread stands for it, its leader thread being gone (see
/// [`task_for`]).
fn wait_id(tree: &Tree, tid: i32, tgid: i32, named: Option<i32>) -> i32 {
    if named == Some(tgid)
        && tid != tgid
        && !tree.tasks.contains_key(&tgid)
        && tree.procs.contains_key(&tgid)
    {
        tgid
    } else {
        tid
    }
}

/// The non-leader thread `h`, whose ID is `former`, has execed and takes its leader's ID
/// ([`Tree::take_leader_id`]): the exited leader's tracer no longer waits for it (Linux
/// releases the old leader at once), and the tracees `h` itself traces name its new ID.
pub(super) fn leader_replaced(tree: &mut Tree, h: &Arc<TaskHandle>, former: i32) {
    let leader = h.tg.tgid;
    if let Some(old) = tree.ptraced.remove(&leader) {
        let tracer = old.ptrace.lock().unwrap().tracer.take();
        if let Some(p) = tracer.and_then(|tr| tree.procs.get(&tr.tgid)) {
            p.tg.child_events.notify_all();
        }
    }
    if let Some(me) = tree.ptraced.remove(&former) {
        tree.ptraced.insert(leader, me);
    }
    for tracee in tree.ptraced.values() {
        let mut st = tracee.ptrace.lock().unwrap();
        if let Some(tr) = st.tracer.as_mut().filter(|tr| tr.tid == former) {
            tr.tid = leader;
        }
    }
}

/// The tracer has collected the exit of `h` (or let it go): its parent may now see it.
fn collected(tree: &mut Tree, h: &Arc<TaskHandle>) {
    tree.ptraced.remove(&h.tid());
    let tgid = h.tg.tgid;
    if h.tid() != tgid {
        return;
    }
    if let Some(pp) = tree
        .procs
        .get(&tgid)
        .and_then(|p| tree.procs.get(&p.parent))
    {
        pp.tg.child_events.notify_all();
    }
}

/// Whether the parent's `wait` must not see the zombie `tgid` yet: its tracer has not
/// collected its exit.
pub fn exit_held(tree: &Tree, tgid: i32) -> bool {
    tree.ptraced
        .get(&tgid)
        .is_some_and(|h| h.ptrace.lock().unwrap().exited.is_some())
}

/// One step of a `wait` for the tracees of process `me`: (whether any tracee matches
/// `pick`, a reportable state of one). `pick` says whether a tracee (by TID and process)
/// is selected; `named` is the ID the wait names, if it names one.
pub fn wait_tracee(
    tree: &mut Tree,
    me: i32,
    pick: impl Fn(&Tree, i32, i32) -> bool,
    named: Option<i32>,
    exited: bool,
    nowait: bool,
) -> (bool, Option<(i32, ChildState, Arc<TaskHandle>)>) {
    let mut any = false;
    let mut found = None;
    for (&tid, h) in &tree.ptraced {
        let mut st = h.ptrace.lock().unwrap();
        if st.tracer.is_none_or(|t| t.tgid != me) || !pick(tree, tid, h.tg.tgid) {
            continue;
        }
        any = true;
        if let Some(status) = st.exited {
            if exited {
                if !nowait {
                    st.exited = None;
                    st.tracer = None;
                }
                found = Some((
                    wait_id(tree, tid, h.tg.tgid, named),
                    ChildState::Exited(status),
                    h.clone(),
                ));
                break;
            }
            continue;
        }
        if let Some(stop) = st.stopped().filter(|s| !s.reported) {
            if !nowait {
                stop.reported = true;
            }
            found = Some((
                wait_id(tree, tid, h.tg.tgid, named),
                ChildState::Trapped(stop.code),
                h.clone(),
            ));
            break;
        }
    }
    if let Some((_, ChildState::Exited(_), h)) = &found {
        if !nowait {
            let h = h.clone();
            collected(tree, &h);
        }
    }
    (any, found)
}

/// Sets up the tracing of a new task `child` of tracee `parent` (`PTRACE_O_TRACEFORK` and
/// friends, or CLONE_PTRACE): same tracer and options, and it starts in a stop (SIGSTOP
/// queued, or `PTRACE_EVENT_STOP` when seized).
pub fn trace_child(tree: &mut Tree, parent: &TaskHandle, child: &Arc<TaskHandle>) {
    let (tracer, seized, options) = {
        let st = parent.ptrace.lock().unwrap();
        let Some(tracer) = st.tracer else {
            return;
        };
        (tracer, st.seized, st.options)
    };
    *child.ptrace.lock().unwrap() = PtraceState {
        tracer: Some(tracer),
        seized,
        options,
        interrupt: seized,
        ..PtraceState::default()
    };
    if !seized {
        if let Some(t) = child.tg.sig().threads.get_mut(&child.tid()) {
            t.pending.push(SigInfo::new(libc::SIGSTOP, SI_USER));
        }
    }
    tree.ptraced.insert(child.tid(), child.clone());
}

/// The event a clone with `flags` and `exit_signal` reports to the tracer of `parent`, if
/// its options ask for it (the new task is then traced too), and whether the new task is
/// traced (CLONE_PTRACE traces it without an event).
pub fn clone_event(parent: &TaskHandle, flags: u64, exit_signal: i32) -> (Option<u32>, bool) {
    let st = parent.ptrace.lock().unwrap();
    if st.tracer.is_none() || flags & libc::CLONE_UNTRACED as u64 != 0 {
        return (None, false);
    }
    let (event, option) = if flags & libc::CLONE_VFORK as u64 != 0 {
        (EVENT_VFORK, O_TRACEVFORK)
    } else if exit_signal != libc::SIGCHLD {
        (EVENT_CLONE, O_TRACECLONE)
    } else {
        (EVENT_FORK, O_TRACEFORK)
    };
    if st.options & option != 0 {
        (Some(event), true)
    } else {
        (None, flags & libc::CLONE_PTRACE as u64 != 0)
    }
}

impl Task {
    /// Whether a tracer traces this task.
    pub fn ptraced(&self) -> bool {
        self.handle.ptrace.lock().unwrap().tracer.is_some()
    }

    /// Whether this thread must die rather than stop (SIGKILL, group exit, another thread's
    /// execve).
    fn must_die(&self) -> bool {
        let s = self.tg.sig();
        s.must_die(self.tid) || s.exec_killer.is_some_and(|k| k != self.tid)
    }

    /// Enters a ptrace-stop of `kind` and sleeps until the tracer resumes it. Returns how
    /// (with the stop's siginfo, which the tracer may have changed), or None when the task
    /// is not traced or must die instead (an exit-event stop waits even then).
    fn ptrace_stop(
        &mut self,
        kind: StopKind,
        code: i32,
        siginfo: Option<SigInfo>,
    ) -> Option<(Resume, Option<SigInfo>)> {
        let exit_event = kind == StopKind::Event(EVENT_EXIT);
        // The tracer sees and may change the FP state too.
        let _ = self.pull_fp();
        {
            let tree = self.kernel.tree();
            if !exit_event && self.must_die() {
                return None;
            }
            let tracer = {
                let mut st = self.handle.ptrace.lock().unwrap();
                let tracer = st.tracer?;
                st.interrupt = false;
                st.stop = Some(Stop {
                    kind,
                    code,
                    reported: false,
                    cpu: self.cpu.clone(),
                    siginfo,
                    resume: None,
                });
                tracer
            };
            notify_tracer(&tree, tracer, self.tid, ChildState::Trapped(code));
        }
        loop {
            let die = !exit_event && self.must_die();
            {
                let mut st = self.handle.ptrace.lock().unwrap();
                let resumed = st.stop.as_ref().and_then(|s| s.resume);
                let gone = st.tracer.is_none();
                if resumed.is_some() || gone || die {
                    let stop = st.stop.take();
                    drop(st);
                    let siginfo = stop.and_then(|stop| {
                        self.cpu = stop.cpu;
                        stop.siginfo
                    });
                    if die {
                        return None;
                    }
                    let how = resumed.unwrap_or(Resume::Detach { sig: 0 });
                    self.ptrace.step = match how {
                        Resume::Run { step, .. } => step,
                        _ => Step::Continue,
                    };
                    self.ptrace.listening = how == Resume::Listen;
                    return Some((how, siginfo));
                }
            }
            self.handle.waiter.wait(None);
        }
    }

    /// A stop that is not a signal-delivery-stop ended: a signal the tracer gave goes to
    /// this thread.
    fn inject(&mut self, resumed: Option<(Resume, Option<SigInfo>)>) {
        let Some((how, _)) = resumed else {
            return;
        };
        let sig = how.sig();
        if (1..=signal::NSIG).contains(&sig) {
            self.signal_self(SigInfo::new(sig, SI_USER));
        }
    }

    /// A `PTRACE_EVENT_*` stop with event message `msg`, if the options ask for it.
    pub fn ptrace_event(&mut self, event: u32, msg: u64) {
        {
            let mut st = self.handle.ptrace.lock().unwrap();
            if st.tracer.is_none() {
                return;
            }
            st.event_msg = msg;
        }
        let code = libc::SIGTRAP | (event << 8) as i32;
        let info = SigInfo::from_user(libc::SIGTRAP, code, self.vtid(), self.creds.uid);
        let r = self.ptrace_stop(StopKind::Event(event), code, Some(info));
        self.inject(r);
    }

    /// The ID of global `tid` as this task's tracer sees it (event messages).
    pub fn tracer_view_of(&self, tid: i32) -> u64 {
        let Some(tracer) = self.handle.ptrace.lock().unwrap().tracer else {
            return 0;
        };
        let tree = self.kernel.tree();
        tree.procs
            .get(&tracer.tgid)
            .and_then(|p| p.tg.pidns.id_of(tid))
            .unwrap_or(0) as u64
    }

    /// After a successful execve: `PTRACE_EVENT_EXEC` with `PTRACE_O_TRACEEXEC`, else a
    /// SIGTRAP for a tracee attached without `PTRACE_SEIZE`. The event's message is
    /// `former_tid_seen`: the thread's ID before the exec as the tracer sees it (a
    /// non-leader's execve has since given it the leader's).
    pub fn ptrace_exec(&mut self, former_tid_seen: u64) {
        let (traced, options, seized) = {
            let st = self.handle.ptrace.lock().unwrap();
            (st.tracer.is_some(), st.options, st.seized)
        };
        if !traced {
            return;
        }
        if options & O_TRACEEXEC != 0 {
            self.ptrace_event(EVENT_EXEC, former_tid_seen);
        } else if !seized {
            self.signal_self(SigInfo::new(libc::SIGTRAP, SI_USER));
        }
    }

    /// Whether the option bit `option` is set for this tracee.
    pub fn ptrace_option(&self, option: u32) -> bool {
        let st = self.handle.ptrace.lock().unwrap();
        st.tracer.is_some() && st.options & option != 0
    }

    /// The exit-event stop (`PTRACE_O_TRACEEXIT`), entered as the thread exits.
    pub(super) fn ptrace_exit_event(&mut self, status: ExitStatus) {
        if self.ptrace_option(O_TRACEEXIT) {
            self.ptrace_event(EVENT_EXIT, status.wait_status() as u64);
        }
    }

    /// Stops the run loop makes in `Interrupted` before delivering signals: a pending
    /// `PTRACE_INTERRUPT`, a group stop to report, the end of a `PTRACE_LISTEN`. True when
    /// the task sleeps in the group stop instead (untraced, or listening).
    pub(super) fn ptrace_before_signals(&mut self, group_stopped: bool) -> Option<bool> {
        let (traced, seized, interrupt) = {
            let st = self.handle.ptrace.lock().unwrap();
            (st.tracer.is_some(), st.seized, st.interrupt)
        };
        if !traced {
            self.ptrace = Local::default();
            return Some(group_stopped);
        }
        if group_stopped {
            if self.ptrace.listening {
                return Some(true);
            }
            if !self.ptrace.group_stop_seen {
                self.ptrace.group_stop_seen = true;
                let sig = self.tg.sig().stop_signal;
                let (code, info) = if seized {
                    let code = sig | (EVENT_STOP << 8) as i32;
                    (
                        code,
                        Some(SigInfo::from_user(sig, code, self.vtid(), self.creds.uid)),
                    )
                } else {
                    (sig, None)
                };
                let r = self.ptrace_stop(StopKind::Group, code, info);
                self.inject(r);
                return None;
            }
            return Some(false);
        }
        self.ptrace.group_stop_seen = false;
        if self.ptrace.listening || interrupt {
            self.ptrace.listening = false;
            let code = libc::SIGTRAP | (EVENT_STOP << 8) as i32;
            let info = SigInfo::from_user(libc::SIGTRAP, code, self.vtid(), self.creds.uid);
            let r = self.ptrace_stop(StopKind::Event(EVENT_STOP), code, Some(info));
            self.inject(r);
            return None;
        }
        Some(false)
    }

    /// The signal-delivery-stop for `info`: the signal to deliver as the tracer left it
    /// (None: suppressed, requeued because now blocked, or the task must die).
    pub(super) fn ptrace_signal(&mut self, info: SigInfo) -> Option<SigInfo> {
        if info.signo == libc::SIGKILL || !self.ptraced() {
            return Some(info);
        }
        let (how, changed) = self.ptrace_stop(StopKind::Signal, info.signo, Some(info))?;
        let sig = how.sig();
        if !(1..=signal::NSIG).contains(&sig) {
            return None;
        }
        let mut info = changed.unwrap_or(info);
        if info.signo != sig {
            info = SigInfo::new(sig, SI_USER);
        }
        let blocked = self
            .tg
            .sig()
            .threads
            .get(&self.tid)
            .is_some_and(|t| t.mask & bit(sig) != 0);
        if blocked {
            self.signal_self(info);
            return None;
        }
        Some(info)
    }

    /// Runs the system call just trapped with the syscall-stops its tracer asked for
    /// (`PTRACE_SYSCALL`, `PTRACE_SYSEMU`), or plainly when none.
    pub(super) fn traced_syscall(&mut self, dispatch: fn(&mut Task)) {
        let step = self.ptrace.step;
        if !matches!(step, Step::Syscall | Step::Sysemu | Step::SysemuSingleStep) {
            dispatch(self);
            return;
        }
        self.cpu.regs.rax = (-libc::ENOSYS) as i64 as u64;
        let code = self.syscall_stop_code();
        let info = SigInfo::from_user(libc::SIGTRAP, code, self.vtid(), self.creds.uid);
        let r = self.ptrace_stop(StopKind::SyscallEnter, code, Some(info));
        if r.is_none() {
            return;
        }
        self.inject(r);
        // The tracer skips the call by making its number invalid (-1).
        if step.emulates() || self.cpu.regs.orig_rax == u64::MAX {
            return;
        }
        dispatch(self);
        self.syscall_exit_stop();
    }

    /// The syscall-exit-stop, if the tracer's last resumption (which may have happened
    /// inside the call, at an event stop) asked for syscall-stops.
    pub(super) fn syscall_exit_stop(&mut self) {
        if self.ptrace.step != Step::Syscall {
            return;
        }
        if let Some(r) = self.restart {
            self.cpu.regs.rax = (-match r {
                super::task::Restart::Sys => ERESTARTSYS,
                super::task::Restart::NoIntr => ERESTARTNOINTR,
                super::task::Restart::NoHand => ERESTARTNOHAND,
                super::task::Restart::Block => ERESTART_RESTARTBLOCK,
            }) as u64;
        }
        let code = self.syscall_stop_code();
        let info = SigInfo::from_user(libc::SIGTRAP, code, self.vtid(), self.creds.uid);
        let r = self.ptrace_stop(StopKind::SyscallExit, code, Some(info));
        // The tracer may have changed the result, and with it whether the call restarts.
        self.restart = match -(self.cpu.regs.rax as i64) {
            ERESTARTSYS => Some(super::task::Restart::Sys),
            ERESTARTNOINTR => Some(super::task::Restart::NoIntr),
            ERESTARTNOHAND => Some(super::task::Restart::NoHand),
            ERESTART_RESTARTBLOCK => Some(super::task::Restart::Block),
            _ => None,
        };
        if self.restart.is_some() {
            self.cpu.regs.rax = (-libc::EINTR) as i64 as u64;
        }
        self.inject(r);
    }

    fn syscall_stop_code(&self) -> i32 {
        if self.ptrace_option(O_TRACESYSGOOD) {
            libc::SIGTRAP | 0x80
        } else {
            libc::SIGTRAP
        }
    }

    /// Before switching into the application: the trap flag for a single step.
    pub(super) fn ptrace_before_switch(&mut self) {
        if self.ptrace.step.single() && self.cpu.regs.eflags & EFLAGS_TF == 0 {
            self.cpu.regs.eflags |= EFLAGS_TF;
            self.ptrace.set_tf = true;
        }
    }

    /// Back from the application: hides the trap flag a single step set; after a system
    /// call made in a single step, the SIGTRAP the step owes (the CPU raised none).
    pub(super) fn ptrace_after_switch(&mut self, syscall: bool) {
        if std::mem::take(&mut self.ptrace.set_tf) {
            self.cpu.regs.eflags &= !EFLAGS_TF;
            if syscall && self.ptrace.step.single() {
                self.force_signal(SigInfo::fault(libc::SIGTRAP, TRAP_TRACE, self.cpu.regs.rip));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pids::{WaitOpts, WaitSel};
    use super::super::{PidNamespace, ThreadGroup};
    use super::*;
    use crate::abi::Errno;

    /// Adds a one-thread process with parent `parent`; returns its handle.
    fn spawn(t: &mut Tree, ns: &Arc<PidNamespace>, parent: i32) -> Arc<TaskHandle> {
        let pid = ns.alloc(true).unwrap();
        let tg = Arc::new(ThreadGroup::new(pid, ns.clone(), "c".into()));
        t.add_proc(tg.clone(), parent, libc::SIGCHLD);
        let h = TaskHandle::new(pid, tg, b"t".to_vec());
        super::super::task::register_thread(&h, 0);
        t.tasks.insert(pid, h.clone());
        h
    }

    /// The only thread of `h`'s process exits with `status` (as `thread_finished` does).
    fn exit(t: &mut Tree, h: &Arc<TaskHandle>, status: ExitStatus) {
        t.tasks.remove(&h.tid());
        h.tg.sig().threads.remove(&h.tid());
        task_exited(t, h, status, true);
        t.process_exited(h.tg.tgid, status);
    }

    fn exited() -> WaitOpts {
        WaitOpts {
            exited: true,
            ..WaitOpts::default()
        }
    }

    fn tracer(h: &TaskHandle) -> Tracer {
        Tracer {
            tid: h.tid(),
            tgid: h.tid(),
        }
    }

    #[test]
    fn the_parent_sees_a_traced_exit_after_the_tracer() {
        let ns = PidNamespace::new_root();
        let mut t = Tree::default();
        let init = spawn(&mut t, &ns, 0);
        let child = spawn(&mut t, &ns, init.tid());
        let tracer_proc = spawn(&mut t, &ns, init.tid());
        attach(&mut t, &child, tracer(&tracer_proc), false, None).unwrap();
        assert_eq!(
            attach(&mut t, &child, tracer(&init), false, None),
            Err(Errno::EPERM),
            "one tracer at a time"
        );
        exit(&mut t, &child, ExitStatus::Exited(5));
        let pid = WaitSel::Pid(child.tid());
        assert_eq!(t.wait_child(init.tid(), pid, exited()), Ok(None), "held");
        let got = t
            .wait_child(tracer_proc.tid(), pid, exited())
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.0, got.1),
            (child.tid(), ChildState::Exited(ExitStatus::Exited(5)))
        );
        assert_eq!(
            t.wait_child(tracer_proc.tid(), pid, exited()),
            Err(Errno::ECHILD),
            "collected once"
        );
        let got = t.wait_child(init.tid(), pid, exited()).unwrap().unwrap();
        assert_eq!(got.1, ChildState::Exited(ExitStatus::Exited(5)));
    }

    #[test]
    fn a_parent_tracing_its_child_sees_its_exit_once() {
        let ns = PidNamespace::new_root();
        let mut t = Tree::default();
        let init = spawn(&mut t, &ns, 0);
        let child = spawn(&mut t, &ns, init.tid());
        attach(&mut t, &child, tracer(&init), false, None).unwrap();
        exit(&mut t, &child, ExitStatus::Exited(2));
        let pid = WaitSel::Pid(child.tid());
        assert!(t.wait_child(init.tid(), pid, exited()).unwrap().is_some());
        assert_eq!(t.wait_child(init.tid(), pid, exited()), Err(Errno::ECHILD));
        assert!(t.ptraced.is_empty());
    }

    #[test]
    fn a_tracer_exit_lets_its_tracees_go() {
        let ns = PidNamespace::new_root();
        let mut t = Tree::default();
        let init = spawn(&mut t, &ns, 0);
        let child = spawn(&mut t, &ns, init.tid());
        let tracer_proc = spawn(&mut t, &ns, init.tid());
        attach(
            &mut t,
            &child,
            tracer(&tracer_proc),
            false,
            Some(O_EXITKILL),
        )
        .unwrap();
        exit(&mut t, &tracer_proc, ExitStatus::Exited(0));
        assert!(child.ptrace.lock().unwrap().tracer.is_none());
        assert!(t.ptraced.is_empty());
        assert_eq!(
            child.tg.sig().exit,
            Some(ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false
            }),
            "PTRACE_O_EXITKILL"
        );
    }
}
