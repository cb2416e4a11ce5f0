//! The process table: tasks by TID, processes by PID, the parent/child tree, process groups
//! and sessions, zombies, reparenting, and sending signals.
//!
//! Every ID in the table is global (the root PID namespace's); [`super::pidns`] translates
//! them for the guest. Orphans go to the nearest subreaper in their own PID namespace, else to
//! that namespace's init; when a namespace's init exits, everything in the namespace and below
//! it is killed.
//!
//! One lock, [`Kernel::tree`](super::Kernel::tree), guards the table and the tree (as
//! Linux's tasklist_lock and gVisor's TaskSet mutex). Every signal is sent with it held, so
//! sending is ordered against exit and reparenting.
//!
//! # Lock order
//! `Kernel::tree` → `ThreadGroup::sig` → `ThreadGroup::usage`; `ThreadGroup::sig` → `Waiter`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::pidns::PidNamespace;
use super::signal::{
    self, bit, SigInfo, StopEvent, CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED,
    SA_NOCLDSTOP, SA_NOCLDWAIT, SIG_IGN, STOP_SIGNALS,
};
use super::task::TaskHandle;
use super::usage::Rusage;
use super::{ExitStatus, ThreadGroup};
use crate::abi::Errno;

/// One process in the tree.
#[derive(Debug)]
pub struct Proc {
    pub tg: Arc<ThreadGroup>,
    /// Parent's PID; 0 for a process the Loader started (its parent is outside the sandbox)
    /// and for one whose parent exited with no reaper left.
    pub parent: i32,
    pub children: BTreeSet<i32>,
    pub pgid: i32,
    pub sid: i32,
    /// Signal sent to the parent at exit (SIGCHLD; 0 or another for clone children).
    pub exit_signal: i32,
    /// Set when every thread has exited: a zombie until reaped.
    pub zombie: Option<ExitStatus>,
    /// A zombie's last thread's credentials and nice value: Linux still finds an unreaped
    /// process's leader by its PID (get/setpriority on it).
    pub remains: Option<(crate::auth::Creds, i32)>,
    /// PR_SET_CHILD_SUBREAPER.
    pub subreaper: bool,
    /// PR_SET_PDEATHSIG: sent to this process when its parent exits.
    pub pdeathsig: i32,
    /// The thread of the parent that made this process (0: none known). Linux's parent is
    /// that thread: when it exits while others of its group live on, the process is
    /// handed to one of them and gets its PR_SET_PDEATHSIG signal.
    pub parent_thread: i32,
    /// The process has called execve (setpgid on it by the parent fails with EACCES).
    pub did_exec: bool,
}

/// What `wait` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    Exited(ExitStatus),
    Stopped(i32),
    Continued,
    /// A tracee's ptrace-stop, with the status bits above the low byte (signal and event).
    Trapped(i32),
}

impl ChildState {
    /// The `wait4` status word.
    pub fn wait_status(self) -> i32 {
        match self {
            ChildState::Exited(s) => s.wait_status(),
            ChildState::Stopped(sig) => 0x7f | (sig << 8),
            ChildState::Continued => 0xffff,
            ChildState::Trapped(code) => 0x7f | (code << 8),
        }
    }

    /// `si_code` and `si_status` for waitid and SIGCHLD.
    pub fn code_status(self) -> (i32, i32) {
        match self {
            ChildState::Exited(ExitStatus::Exited(c)) => (CLD_EXITED, c as i32),
            ChildState::Exited(ExitStatus::Signaled { signo, core }) => {
                (if core { CLD_DUMPED } else { CLD_KILLED }, signo)
            }
            ChildState::Stopped(sig) => (CLD_STOPPED, sig),
            ChildState::Continued => (CLD_CONTINUED, libc::SIGCONT),
            ChildState::Trapped(code) => (super::ptrace::CLD_TRAPPED, code),
        }
    }
}

/// Which children a wait accepts (the pid argument of wait4, idtype/id of waitid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitSel {
    Any,
    Pid(i32),
    Pgid(i32),
}

/// Options of a wait.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitOpts {
    pub exited: bool,
    pub stopped: bool,
    pub continued: bool,
    pub nowait: bool,
    /// __WCLONE: only children whose exit signal is not SIGCHLD.
    pub clone: bool,
    /// __WALL: every child.
    pub all: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Tree {
    pub tasks: HashMap<i32, Arc<TaskHandle>>,
    pub procs: HashMap<i32, Proc>,
    /// Traced tasks by TID ([`super::ptrace`]), kept after their exit until the tracer's
    /// `wait` collects it.
    pub ptraced: HashMap<i32, Arc<TaskHandle>>,
}

impl Tree {
    /// Adds a new process (its threads are added with [`Tree::tasks`]). The init of a child
    /// PID namespace ignores signals without a handler sent from inside it.
    pub fn add_proc(&mut self, tg: Arc<ThreadGroup>, parent: i32, exit_signal: i32) {
        let tgid = tg.tgid;
        if tg.pidns.level() > 0 && tg.pidns.init() == Some(tgid) {
            tg.unkillable.store(true, Ordering::Relaxed);
        }
        let (pgid, sid) = match self.procs.get_mut(&parent) {
            Some(p) => {
                p.children.insert(tgid);
                (p.pgid, p.sid)
            }
            None => (tgid, tgid),
        };
        self.procs.insert(
            tgid,
            Proc {
                tg,
                parent,
                children: BTreeSet::new(),
                pgid,
                sid,
                exit_signal,
                zombie: None,
                remains: None,
                subreaper: false,
                pdeathsig: 0,
                parent_thread: 0,
                did_exec: false,
            },
        );
    }

    /// The live process `pid` (zombies excluded).
    pub fn live(&self, pid: i32) -> Option<&Proc> {
        self.procs.get(&pid).filter(|p| p.zombie.is_none())
    }

    /// The thread group a `kill` pid names: a process, or the process of a thread id.
    pub fn group_of(&self, pid: i32) -> Option<Arc<ThreadGroup>> {
        if let Some(p) = self.live(pid) {
            return Some(p.tg.clone());
        }
        self.tasks.get(&pid).map(|h| h.tg.clone())
    }

    /// Live processes in process group `pgid`.
    pub fn pgrp_members(&self, pgid: i32) -> Vec<Arc<ThreadGroup>> {
        self.procs
            .values()
            .filter(|p| p.pgid == pgid && p.zombie.is_none())
            .map(|p| p.tg.clone())
            .collect()
    }

    /// Sends `info` to process `tg` (any thread that does not block it takes it).
    pub fn send_group(&self, tg: &Arc<ThreadGroup>, info: SigInfo, from_kernel: bool) {
        self.send(tg, None, info, from_kernel);
    }

    /// Sends `info` to one thread.
    pub fn send_thread(&self, h: &Arc<TaskHandle>, info: SigInfo, from_kernel: bool) {
        self.send(&h.tg, Some(h.tid()), info, from_kernel);
    }

    fn send(&self, tg: &Arc<ThreadGroup>, target: Option<i32>, info: SigInfo, from_kernel: bool) {
        let sig = info.signo;
        if !(1..=signal::NSIG).contains(&sig) {
            return;
        }
        let continued;
        {
            let mut s = tg.sig();
            if s.exit.is_some() || s.threads.values().all(|t| t.exiting) {
                return;
            }
            let unkillable = tg.unkillable.load(Ordering::Relaxed);
            if sig == libc::SIGKILL && (from_kernel || !unkillable) {
                s.exit = Some(ExitStatus::Signaled {
                    signo: libc::SIGKILL,
                    core: false,
                });
                s.stopped = false;
                s.kick_all();
                return;
            }
            continued = if sig == libc::SIGCONT {
                s.shared.discard(STOP_SIGNALS);
                for t in s.threads.values_mut() {
                    t.pending.discard(STOP_SIGNALS);
                }
                let was = s.stopped;
                if was {
                    s.stopped = false;
                    s.stop_event = Some(StopEvent::Continued);
                    s.kick_all();
                }
                was
            } else {
                if bit(sig) & STOP_SIGNALS != 0 {
                    s.shared.discard(bit(libc::SIGCONT));
                    for t in s.threads.values_mut() {
                        t.pending.discard(bit(libc::SIGCONT));
                    }
                }
                false
            };
            let act = s.action(sig);
            let probe = target
                .or_else(|| s.threads.contains_key(&tg.tgid).then_some(tg.tgid))
                .or_else(|| s.threads.keys().next().copied());
            let blocked = probe
                .and_then(|tid| s.threads.get(&tid))
                .is_some_and(|t| (t.mask | t.real_blocked) & bit(sig) != 0);
            // Blocked signals are never dropped (Linux's sig_ignored): the handler may change
            // before they are unblocked, and sigtimedwait/signalfd take them while blocked.
            // Nor are ignored ones for a tracee: its tracer sees every signal but SIGKILL.
            let traced = probe
                .and_then(|tid| s.threads.get(&tid))
                .is_some_and(|t| t.handle.ptrace.lock().unwrap().tracer.is_some());
            let dropped = !blocked
                && !traced
                && (signal::is_ignored(sig, &act)
                    || (unkillable && act.handler == signal::SIG_DFL && !from_kernel));
            if !dropped {
                let receiver = match target {
                    Some(tid) => {
                        if let Some(t) = s.threads.get_mut(&tid) {
                            t.pending.push(info);
                        }
                        Some(tid)
                    }
                    None => {
                        s.shared.push(info);
                        s.threads
                            .iter()
                            .find(|(_, t)| t.mask & bit(sig) == 0)
                            .map(|(&tid, _)| tid)
                    }
                };
                if let Some(t) = receiver.and_then(|tid| s.threads.get(&tid)) {
                    t.handle.kick();
                }
                tg.signal_events.notify_all();
            }
        }
        if continued {
            self.notify_parent(tg.tgid, ChildState::Continued);
        }
    }

    /// Tells the parent of `tgid` about a stop or continue (SIGCHLD unless SA_NOCLDSTOP).
    pub fn notify_parent(&self, tgid: i32, state: ChildState) {
        let Some(p) = self.procs.get(&tgid) else {
            return;
        };
        let Some(parent) = self.procs.get(&p.parent) else {
            return;
        };
        let nocldstop = parent.tg.sig().action(libc::SIGCHLD).flags & SA_NOCLDSTOP != 0;
        if !nocldstop {
            let (code, status) = state.code_status();
            let pid = parent.tg.pidns.id_of(tgid).unwrap_or(0);
            self.send_group(
                &parent.tg,
                SigInfo::child(libc::SIGCHLD, code, pid, 0, status),
                true,
            );
        }
        parent.tg.child_events.notify_all();
    }

    /// Thread `tid` of `tgid` exited while others of its group live on: the processes it
    /// made now belong to the group's other threads, and each one that asked for
    /// PR_SET_PDEATHSIG gets its signal (Linux sends it when the parent thread exits).
    pub fn parent_thread_exited(&mut self, tgid: i32, tid: i32) {
        let Some(p) = self.procs.get(&tgid) else {
            return;
        };
        let orphans: Vec<i32> = p
            .children
            .iter()
            .copied()
            .filter(|c| self.procs.get(c).is_some_and(|cp| cp.parent_thread == tid))
            .collect();
        for c in orphans {
            let Some(cp) = self.procs.get_mut(&c) else {
                continue;
            };
            cp.parent_thread = 0;
            let (pdeathsig, zombie, ctg) = (cp.pdeathsig, cp.zombie.is_some(), cp.tg.clone());
            if pdeathsig != 0 && !zombie {
                self.send_group(&ctg, SigInfo::kernel(pdeathsig), true);
            }
        }
    }

    /// The last thread of `tgid` exited with `status`: make it a zombie, hand its children to
    /// a reaper, tell its parent. When a namespace's init exits, every other process of the
    /// namespace and of the namespaces below it is killed.
    pub fn process_exited(&mut self, tgid: i32, status: ExitStatus) {
        let reaper = self.find_reaper(tgid);
        let Some(p) = self.procs.get_mut(&tgid) else {
            return;
        };
        p.zombie = Some(status);
        let ns = p.tg.pidns.clone();
        let children = std::mem::take(&mut p.children);
        let parent = p.parent;
        let exit_signal = p.exit_signal;
        for c in children {
            let Some(cp) = self.procs.get_mut(&c) else {
                continue;
            };
            cp.parent = reaper;
            let pdeathsig = cp.pdeathsig;
            let zombie = cp.zombie.is_some();
            let ctg = cp.tg.clone();
            if pdeathsig != 0 {
                self.send_group(&ctg, SigInfo::kernel(pdeathsig), true);
            }
            match self.procs.get_mut(&reaper) {
                Some(r) => {
                    r.children.insert(c);
                    if zombie {
                        r.tg.child_events.notify_all();
                    }
                }
                None if zombie => self.reap(c),
                None => {}
            }
        }
        match self.procs.get(&parent) {
            Some(pp) => {
                let act = pp.tg.sig().action(libc::SIGCHLD);
                let autoreap = exit_signal == libc::SIGCHLD
                    && (act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0);
                if exit_signal > 0 {
                    let (code, st) = ChildState::Exited(status).code_status();
                    let ptg = pp.tg.clone();
                    let pid = ptg.pidns.id_of(tgid).unwrap_or(0);
                    self.send_group(&ptg, SigInfo::child(exit_signal, code, pid, 0, st), true);
                }
                pp.tg.child_events.notify_all();
                if autoreap {
                    self.reap(tgid);
                }
            }
            None => self.reap(tgid),
        }
        if ns.init() == Some(tgid) {
            ns.kill();
            let inside: Vec<Arc<ThreadGroup>> = self
                .procs
                .values()
                .filter(|p| ns.contains(&p.tg.pidns))
                .map(|p| p.tg.clone())
                .collect();
            for tg in inside {
                self.send_group(&tg, SigInfo::kernel(libc::SIGKILL), true);
            }
        }
    }

    /// Where the orphans of `tgid` go: the nearest live subreaper ancestor in its PID
    /// namespace, else the namespace's init; 0 (nobody: zombies are reaped at once) when
    /// `tgid` is that init or the namespace has none.
    fn find_reaper(&self, tgid: i32) -> i32 {
        let Some(p) = self.procs.get(&tgid) else {
            return 0;
        };
        let ns = &p.tg.pidns;
        let init = ns.init();
        if init == Some(tgid) {
            return 0;
        }
        let mut at = p.parent;
        while let Some(a) = self.procs.get(&at) {
            if !Arc::ptr_eq(&a.tg.pidns, ns) {
                break;
            }
            if a.subreaper && a.zombie.is_none() {
                return at;
            }
            at = a.parent;
        }
        match init {
            Some(i) if self.live(i).is_some() => i,
            _ => 0,
        }
    }

    /// Removes the zombie `tgid` and forgets the IDs it was the last user of.
    pub fn reap(&mut self, tgid: i32) {
        if let Some(p) = self.procs.remove(&tgid) {
            if let Some(pp) = self.procs.get_mut(&p.parent) {
                pp.children.remove(&tgid);
            }
            for id in [tgid, p.pgid, p.sid] {
                self.forget_id(id, &p.tg.pidns);
            }
        }
    }

    /// A thread that is not its group's leader has execed and is the group's only thread
    /// now: it takes over the leader's ID (execve(2): its thread ID becomes the PID, in
    /// every PID namespace it is seen from, since those IDs are the process's) and the ID it
    /// had is released. Its pending signals, children and tracees follow it.
    pub fn take_leader_id(&mut self, h: &Arc<TaskHandle>) {
        let tg = &h.tg;
        let (former, leader) = (h.tid(), tg.tgid);
        if former == leader {
            return;
        }
        super::ptrace::leader_replaced(self, h, former);
        self.tasks.remove(&former);
        self.tasks.insert(leader, h.clone());
        {
            let mut s = tg.sig();
            if let Some(th) = s.threads.remove(&former) {
                s.threads.insert(leader, th);
            }
            h.set_tid(leader);
        }
        let children: Vec<i32> = self
            .procs
            .get(&leader)
            .map(|p| p.children.iter().copied().collect())
            .unwrap_or_default();
        for c in children {
            if let Some(cp) = self
                .procs
                .get_mut(&c)
                .filter(|cp| cp.parent_thread == former)
            {
                cp.parent_thread = leader;
            }
        }
        self.forget_id(former, &tg.pidns);
    }

    /// Releases `id` in namespace `ns` (and its ancestors) once no task, process, process
    /// group or session uses it.
    pub fn forget_id(&self, id: i32, ns: &PidNamespace) {
        let used = self.tasks.contains_key(&id)
            || self.procs.contains_key(&id)
            || self.procs.values().any(|p| p.pgid == id || p.sid == id);
        if !used {
            ns.release(id);
        }
    }

    /// One step of `wait4`/`waitid` for process `me`: a child in a reportable state (with
    /// its PID in `me`'s namespace, taken before a reap releases it, and its resource usage
    /// including its own reaped children's), None if there are matching children but none is
    /// ready. Reaping a zombie adds its usage to `me`'s children's totals.
    ///
    /// # Errors
    /// ECHILD when no child matches.
    pub fn wait_child(
        &mut self,
        me: i32,
        sel: WaitSel,
        opts: WaitOpts,
    ) -> Result<Option<(i32, ChildState, Rusage)>, Errno> {
        let Some(p) = self.procs.get(&me) else {
            return Err(Errno::ECHILD);
        };
        let my_pgid = p.pgid;
        let my_ns = p.tg.pidns.clone();
        let seen = |c: i32| my_ns.id_of(c).unwrap_or(0);
        // Tracees first: their stops are reported whatever WUNTRACED says, and whatever
        // their exit signal (as with __WALL).
        let pick = |tree: &Tree, tid: i32, tgid: i32| match sel {
            WaitSel::Any => true,
            WaitSel::Pid(pid) => tid == pid || (tgid == pid && !tree.tasks.contains_key(&pid)),
            WaitSel::Pgid(g) => {
                let g = if g == 0 { my_pgid } else { g };
                tree.procs.get(&tgid).is_some_and(|p| p.pgid == g)
            }
        };
        let named = match sel {
            WaitSel::Pid(pid) => Some(pid),
            _ => None,
        };
        let (tracees, traced) =
            super::ptrace::wait_tracee(self, me, pick, named, opts.exited, opts.nowait);
        if let Some((tid, state, h)) = traced {
            return Ok(Some((seen(tid), state, h.tg.rusage_both())));
        }
        let Some(p) = self.procs.get(&me) else {
            return Err(Errno::ECHILD);
        };
        let candidates: Vec<i32> = p
            .children
            .iter()
            .copied()
            .filter(|c| {
                let Some(cp) = self.procs.get(c) else {
                    return false;
                };
                let sel_ok = match sel {
                    WaitSel::Any => true,
                    WaitSel::Pid(pid) => *c == pid,
                    WaitSel::Pgid(0) => cp.pgid == my_pgid,
                    WaitSel::Pgid(g) => cp.pgid == g,
                };
                let clone_child = cp.exit_signal != libc::SIGCHLD;
                // Without WEXITED a zombie can never be reported: like Linux, it does not
                // count as a child to wait for (ECHILD when only such remain).
                let reportable = opts.exited || cp.zombie.is_none();
                sel_ok && reportable && (opts.all || clone_child == opts.clone)
            })
            .collect();
        if candidates.is_empty() {
            return if tracees {
                Ok(None)
            } else {
                Err(Errno::ECHILD)
            };
        }
        for c in candidates {
            let cp = &self.procs[&c];
            if let Some(st) = cp.zombie {
                if !opts.exited || super::ptrace::exit_held(self, c) {
                    continue;
                }
                let pid = seen(c);
                let usage = cp.tg.rusage_both();
                if !opts.nowait {
                    let waiter = self.procs[&me].tg.clone();
                    waiter.usage.lock().unwrap().children.merge(usage);
                    self.reap(c);
                }
                return Ok(Some((pid, ChildState::Exited(st), usage)));
            }
            let ctg = cp.tg.clone();
            let mut s = ctg.sig();
            let found = match s.stop_event {
                Some(StopEvent::Stopped(sig)) if opts.stopped => Some(ChildState::Stopped(sig)),
                Some(StopEvent::Continued) if opts.continued => Some(ChildState::Continued),
                _ => None,
            };
            if let Some(state) = found {
                if !opts.nowait {
                    s.stop_event = None;
                }
                drop(s);
                return Ok(Some((seen(c), state, ctg.rusage_both())));
            }
        }
        Ok(None)
    }

    /// Number of live processes (sysinfo).
    pub fn live_count(&self) -> usize {
        self.procs.values().filter(|p| p.zombie.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds a process (with one thread) in `ns` with parent `parent`; returns its global PID.
    fn spawn(t: &mut Tree, ns: &Arc<PidNamespace>, parent: i32, exit_signal: i32) -> i32 {
        let pid = ns.alloc(true).unwrap();
        let tg = Arc::new(ThreadGroup::new(pid, ns.clone(), "c".into()));
        t.add_proc(tg.clone(), parent, exit_signal);
        let h = TaskHandle::new(pid, tg, b"t".to_vec());
        super::super::task::register_thread(&h, 0);
        t.tasks.insert(pid, h);
        pid
    }

    /// The only thread of `pid` exits (as `thread_finished` does).
    fn exit(t: &mut Tree, pid: i32, status: ExitStatus) {
        t.tasks.remove(&pid);
        let tg = t.procs[&pid].tg.clone();
        tg.sig().threads.remove(&pid);
        t.process_exited(pid, status);
    }

    fn tree_with(kids: usize) -> (Tree, Arc<PidNamespace>) {
        let ns = PidNamespace::new_root();
        let mut t = Tree::default();
        let init = spawn(&mut t, &ns, 0, libc::SIGCHLD);
        for _ in 0..kids {
            spawn(&mut t, &ns, init, libc::SIGCHLD);
        }
        (t, ns)
    }

    fn exited() -> WaitOpts {
        WaitOpts {
            exited: true,
            ..WaitOpts::default()
        }
    }

    fn killed(t: &Tree, pid: i32) -> bool {
        t.procs[&pid].tg.exit_status()
            == Some(ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false,
            })
    }

    #[test]
    fn a_non_leader_exec_takes_the_leader_id_at_every_level() {
        let root = PidNamespace::new_root();
        let mut t = Tree::default();
        let init = spawn(&mut t, &root, 0, libc::SIGCHLD);
        let (mid, inner) = {
            let mid = root.new_child();
            let inner = mid.new_child();
            (mid, inner)
        };
        let pid = spawn(&mut t, &inner, init, libc::SIGCHLD);
        let tg = t.procs[&pid].tg.clone();
        let tid = inner.alloc(false).unwrap();
        let h = TaskHandle::new(tid, tg.clone(), b"t".to_vec());
        super::super::task::register_thread(&h, 0);
        t.tasks.insert(tid, h.clone());
        let grandchild = spawn(&mut t, &inner, pid, libc::SIGCHLD);
        t.procs.get_mut(&grandchild).unwrap().parent_thread = tid;
        let seen = (inner.id_of(pid), mid.id_of(pid));
        // The leader thread has exited (as `thread_finished` leaves it).
        t.tasks.remove(&pid);
        tg.sig().threads.remove(&pid);

        t.take_leader_id(&h);
        assert_eq!(h.tid(), pid);
        assert!(Arc::ptr_eq(&t.tasks[&pid], &h));
        assert!(!t.tasks.contains_key(&tid));
        assert_eq!(tg.sig().threads.keys().copied().collect::<Vec<_>>(), [pid]);
        assert_eq!((inner.id_of(pid), mid.id_of(pid)), seen);
        assert_eq!((inner.id_of(tid), mid.id_of(tid)), (None, None));
        assert_eq!(t.procs[&grandchild].parent_thread, pid);
    }

    #[test]
    fn wait_reaps_zombies_once() {
        let (mut t, _) = tree_with(2);
        assert_eq!(t.wait_child(1, WaitSel::Any, exited()), Ok(None));
        t.process_exited(3, ExitStatus::Exited(7));
        assert_eq!(
            t.wait_child(1, WaitSel::Any, exited()),
            Ok(Some((
                3,
                ChildState::Exited(ExitStatus::Exited(7)),
                Rusage::default()
            )))
        );
        assert_eq!(
            t.wait_child(1, WaitSel::Pid(3), exited()),
            Err(Errno::ECHILD)
        );
        assert_eq!(t.wait_child(1, WaitSel::Pid(2), exited()), Ok(None));
        assert_eq!(t.wait_child(2, WaitSel::Any, exited()), Err(Errno::ECHILD));
    }

    #[test]
    fn waiting_adds_the_childs_usage_to_the_parents_children() {
        let (mut t, ns) = tree_with(1);
        let grandchild = spawn(&mut t, &ns, 2, libc::SIGCHLD);
        let secs = |s: u64| crate::kernel::usage::CpuTimes {
            user: std::time::Duration::from_secs(s),
            sys: std::time::Duration::from_secs(s * 10),
        };
        t.procs[&grandchild].tg.usage.lock().unwrap().exited = secs(1);
        t.procs[&2].tg.usage.lock().unwrap().exited = secs(2);
        exit(&mut t, grandchild, ExitStatus::Exited(0));
        let got = t.wait_child(2, WaitSel::Any, exited()).unwrap().unwrap();
        assert_eq!(got.2.times, secs(1));
        exit(&mut t, 2, ExitStatus::Exited(0));
        let nowait = WaitOpts {
            nowait: true,
            ..exited()
        };
        let peek = t.wait_child(1, WaitSel::Any, nowait).unwrap().unwrap();
        assert_eq!(
            peek.2.times,
            secs(3),
            "the child's own and its reaped child's"
        );
        assert_eq!(t.procs[&1].tg.rusage_children(), Rusage::default());
        let got = t.wait_child(1, WaitSel::Any, exited()).unwrap().unwrap();
        assert_eq!(got.2.times, secs(3));
        assert_eq!(t.procs[&1].tg.rusage_children().times, secs(3));
        assert_eq!(
            t.procs[&1].tg.cpu_times(),
            crate::kernel::usage::CpuTimes::default()
        );
    }

    #[test]
    fn orphans_go_to_init_and_subreapers() {
        let (mut t, ns) = tree_with(1);
        let three = spawn(&mut t, &ns, 2, libc::SIGCHLD);
        let four = spawn(&mut t, &ns, three, libc::SIGCHLD);
        t.procs.get_mut(&2).unwrap().subreaper = true;
        t.process_exited(three, ExitStatus::Exited(0));
        assert_eq!(t.procs[&four].parent, 2);
        t.process_exited(2, ExitStatus::Exited(0));
        assert_eq!(t.procs[&four].parent, 1);
        assert!(t.procs[&1].children.contains(&four));
    }

    #[test]
    fn clone_children_need_wclone_or_wall() {
        let (mut t, ns) = tree_with(0);
        let five = spawn(&mut t, &ns, 1, 0);
        t.process_exited(five, ExitStatus::Exited(1));
        assert_eq!(t.wait_child(1, WaitSel::Any, exited()), Err(Errno::ECHILD));
        let all = WaitOpts {
            all: true,
            ..exited()
        };
        assert!(matches!(
            t.wait_child(1, WaitSel::Any, all),
            Ok(Some((f, _, _))) if f == five
        ));
    }

    #[test]
    fn status_words() {
        assert_eq!(ChildState::Stopped(libc::SIGTSTP).wait_status(), 0x147f);
        assert_eq!(ChildState::Continued.wait_status(), 0xffff);
        assert_eq!(
            ChildState::Exited(ExitStatus::Exited(3)).wait_status(),
            0x300
        );
    }

    /// Two containers' namespaces under a root without processes of its own (the Loader's
    /// layout): (tree, root, a, b, init of a, init of b).
    fn two_namespaces() -> (
        Tree,
        Arc<PidNamespace>,
        Arc<PidNamespace>,
        Arc<PidNamespace>,
    ) {
        let root = PidNamespace::new_root();
        let (a, b) = (root.new_child(), root.new_child());
        let mut t = Tree::default();
        spawn(&mut t, &a, 0, libc::SIGCHLD);
        spawn(&mut t, &b, 0, libc::SIGCHLD);
        (t, root, a, b)
    }

    #[test]
    fn each_namespace_has_its_own_init() {
        let (mut t, root, a, b) = two_namespaces();
        let (ia, ib) = (a.lookup(1).unwrap(), b.lookup(1).unwrap());
        assert_ne!(ia, ib);
        assert_eq!(root.init(), None, "the root has no process of its own");
        let child = spawn(&mut t, &a, ia, libc::SIGCHLD);
        assert_eq!(a.id_of(child), Some(2));
        assert_eq!(b.id_of(child), None);
        assert!(t.procs[&ia].tg.unkillable.load(Ordering::Relaxed));
        assert!(!t.procs[&child].tg.unkillable.load(Ordering::Relaxed));
        // A signal without a handler from inside is dropped for init, not for the child.
        t.send_group(
            &t.procs[&ia].tg.clone(),
            SigInfo::kernel(libc::SIGTERM),
            false,
        );
        assert!(t.procs[&ia].tg.sig().shared.set() == 0);
        // ...unless init blocks it: blocked signals are queued (for sigtimedwait, signalfd).
        let tg = t.procs[&ia].tg.clone();
        for th in tg.sig().threads.values_mut() {
            th.mask = bit(libc::SIGTERM);
        }
        t.send_group(&tg, SigInfo::kernel(libc::SIGTERM), false);
        assert!(tg.sig().shared.set() & bit(libc::SIGTERM) != 0);
        t.send_group(
            &t.procs[&ia].tg.clone(),
            SigInfo::kernel(libc::SIGKILL),
            true,
        );
        assert!(killed(&t, ia));
    }

    #[test]
    fn orphans_stay_in_their_namespace() {
        let (mut t, _root, a, b) = two_namespaces();
        let ia = a.lookup(1).unwrap();
        let ib = b.lookup(1).unwrap();
        // An exec'd process of b (no parent) with a child: the orphan goes to b's init.
        let exec = spawn(&mut t, &b, 0, libc::SIGCHLD);
        let grandchild = spawn(&mut t, &b, exec, libc::SIGCHLD);
        exit(&mut t, exec, ExitStatus::Exited(0));
        assert_eq!(t.procs[&grandchild].parent, ib);
        assert!(!t.procs.contains_key(&exec), "no parent: reaped at once");
        assert_eq!(
            b.id_of(exec),
            Some(2),
            "the orphan's group and session keep the ID"
        );
        assert_eq!(b.id_of(ia), None, "another namespace's init is not visible");
    }

    #[test]
    fn init_exit_kills_its_namespace_only() {
        let (mut t, root, a, b) = two_namespaces();
        let ia = a.lookup(1).unwrap();
        let ib = b.lookup(1).unwrap();
        let ka = spawn(&mut t, &a, ia, libc::SIGCHLD);
        let inner = a.new_child();
        let deep = spawn(&mut t, &inner, ka, libc::SIGCHLD);
        let kb = spawn(&mut t, &b, ib, libc::SIGCHLD);
        exit(&mut t, ia, ExitStatus::Exited(0));
        assert!(killed(&t, ka) && killed(&t, deep));
        assert!(!killed(&t, kb) && !killed(&t, ib));
        assert_eq!(
            a.alloc(true),
            Err(Errno::ENOMEM),
            "a dead namespace takes no one"
        );
        assert!(b.alloc(true).is_ok());
        assert_eq!(t.procs[&ka].parent, 0);
        // The dead init's zombie children are reaped at once, not left to a reaper.
        exit(&mut t, ka, ExitStatus::Exited(0));
        assert!(!t.procs.contains_key(&ka));
        let _ = root;
    }

    #[test]
    fn sigchld_carries_the_parents_view_of_the_child() {
        let (mut t, _root, a, _b) = two_namespaces();
        let ia = a.lookup(1).unwrap();
        let kid = spawn(&mut t, &a, ia, libc::SIGCHLD);
        t.procs[&ia].tg.sig().actions[(libc::SIGCHLD - 1) as usize].handler = 0x1000;
        exit(&mut t, kid, ExitStatus::Exited(0));
        let info = t.procs[&ia].tg.sig().shared.pop(0).unwrap();
        assert_eq!(info.signo, libc::SIGCHLD);
        assert_eq!(
            info.fields[0] as u32, 2,
            "si_pid in the namespace, not {kid}"
        );
    }

    #[test]
    fn wait_reports_the_waiters_view_of_the_child() {
        let (mut t, _root, a, _b) = two_namespaces();
        let ia = a.lookup(1).unwrap();
        let kid = spawn(&mut t, &a, ia, libc::SIGCHLD);
        assert_ne!(kid, 2);
        exit(&mut t, kid, ExitStatus::Exited(4));
        assert_eq!(
            t.wait_child(ia, WaitSel::Pid(kid), exited()),
            Ok(Some((
                2,
                ChildState::Exited(ExitStatus::Exited(4)),
                Rusage::default()
            )))
        );
        assert_eq!(a.id_of(kid), None, "reaped: the ID is free");
    }

    #[test]
    fn process_group_ids_outlive_their_leader() {
        let (mut t, _root, a, _b) = two_namespaces();
        let ia = a.lookup(1).unwrap();
        let leader = spawn(&mut t, &a, ia, libc::SIGCHLD);
        let member = spawn(&mut t, &a, leader, libc::SIGCHLD);
        t.procs.get_mut(&leader).unwrap().pgid = leader;
        t.procs.get_mut(&member).unwrap().pgid = leader;
        exit(&mut t, leader, ExitStatus::Exited(0));
        t.reap(leader);
        assert_eq!(a.id_of(leader), Some(2), "the group still uses the ID");
        exit(&mut t, member, ExitStatus::Exited(0));
        t.reap(member);
        assert_eq!(a.id_of(leader), None);
    }
}
