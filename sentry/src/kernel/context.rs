//! The kernel's side of [`vfs::Context`]: what file, socket and terminal code may ask of
//! the task that calls it, answered from the task and the process table.

use std::sync::Arc;
use std::time::Instant;

use super::signal::{SigInfo, SI_USER};
use super::{Kernel, Task};
use crate::abi::Errno;
use crate::auth::Creds;
use crate::mm::MemoryManager;
use crate::vfs::{self, Caller, ControllingTerminal, FsContext, JobIds, ProcessGroups, TaskIds};
use crate::waiter::WaitQueue;

impl ProcessGroups for Kernel {
    fn signal_process_group(&self, pgid: i32, signo: i32) {
        let tree = self.tree();
        for tg in tree.pgrp_members(pgid) {
            tree.send_group(&tg, SigInfo::kernel(signo), false);
        }
    }
}

impl vfs::Context for Task {
    fn creds(&self) -> Creds {
        self.creds.clone()
    }

    fn caller(&self) -> Caller {
        Caller {
            creds: self.creds.clone(),
            task: Some(TaskIds {
                tid: self.tid,
                tgid: self.tg.tgid,
            }),
        }
    }

    fn fs(&self) -> &Arc<FsContext> {
        &self.fs
    }

    fn mm(&self) -> &MemoryManager {
        &self.mm
    }

    fn block(
        &mut self,
        queues: &[&WaitQueue],
        deadline: Option<Instant>,
        ready: &mut dyn FnMut() -> bool,
    ) -> Result<(), Errno> {
        self.block_on(queues, deadline, |_| ready().then_some(Ok(())))
    }

    fn clear_restart(&mut self) {
        self.restart = None;
    }

    fn raise_signal(&mut self, signo: i32) {
        let (pid, uid) = (self.vtgid(), self.creds.uid);
        self.signal_self(SigInfo::from_user(signo, SI_USER, pid, uid));
    }

    fn tid(&self) -> i32 {
        self.tid
    }

    fn tgid(&self) -> i32 {
        self.tg.tgid
    }

    fn vpid_of(&self, global: i32) -> i32 {
        Task::vpid_of(self, global)
    }

    fn lookup_pid(&self, local: i32) -> Option<i32> {
        Task::lookup_pid(self, local)
    }

    fn job_ids(&self) -> Result<JobIds, Errno> {
        let tree = self.kernel.tree();
        let p = tree.procs.get(&self.tg.tgid).ok_or(Errno::ESRCH)?;
        Ok(JobIds {
            tgid: self.tg.tgid,
            pgid: p.pgid,
            sid: p.sid,
        })
    }

    fn group_in_session(&self, pgid: i32, sid: i32) -> Result<bool, Errno> {
        let tree = self.kernel.tree();
        let mut named = false;
        for p in tree.procs.values() {
            if p.pgid == pgid && p.sid == sid && p.zombie.is_none() {
                return Ok(true);
            }
            named |= p.tg.tgid == pgid || p.pgid == pgid || p.sid == pgid;
        }
        if named {
            Ok(false)
        } else {
            Err(Errno::ESRCH)
        }
    }

    fn process_groups(&self) -> &dyn ProcessGroups {
        &*self.kernel
    }

    fn process_groups_weak(&self) -> std::sync::Weak<dyn ProcessGroups + Send + Sync> {
        let weak: std::sync::Weak<Kernel> = Arc::downgrade(&self.kernel);
        weak
    }

    fn session_terminal(&self, sid: i32) -> Option<Arc<dyn ControllingTerminal>> {
        self.kernel.terminals.lock().unwrap().get(&sid)?.upgrade()
    }

    fn set_session_terminal(&self, sid: i32, term: std::sync::Weak<dyn ControllingTerminal>) {
        let mut all = self.kernel.terminals.lock().unwrap();
        all.retain(|_, w| w.strong_count() > 0);
        all.insert(sid, term);
    }

    fn open_net_tun(&self) -> Arc<dyn vfs::FileOps> {
        let net = &self.ns.net;
        // The links route through the namespace's stack, which must run to take the
        // packets written to them.
        net.inet();
        Arc::new(crate::net::tun::TunFile::new(
            net.tun.clone(),
            net.owner.clone(),
        ))
    }

    fn signal_would_act(&self, signo: i32) -> bool {
        let s = self.tg.sig();
        let blocked = s
            .threads
            .get(&self.tid)
            .is_some_and(|t| t.mask & super::signal::bit(signo) != 0);
        !blocked && !super::signal::is_ignored(signo, &s.action(signo))
    }
}
