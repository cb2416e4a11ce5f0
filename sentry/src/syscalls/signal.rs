//! Signal system calls: dispositions, masks, sending, waiting, sigreturn.

use std::sync::Arc;
use std::time::Instant;

use crate::abi::{Errno, SysResult, Timespec};
use crate::kernel::signal::{
    self, bit, SigAction, SigInfo, NSIG, SI_QUEUE, SI_TKILL, SI_USER, UNBLOCKABLE,
};
use crate::kernel::task::{Restart, RestartBlock, TaskHandle};
use crate::kernel::{sigframe, PidNamespace, Task, ThreadGroup, Tree};
use crate::mm::usermem::UserAddr;

/// Size of the kernel's sigset_t.
const SIGSET_SIZE: usize = 8;

fn valid_sig(sig: i32) -> Result<(), Errno> {
    if (1..=NSIG).contains(&sig) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// rt_sigaction(2)
pub fn rt_sigaction(
    t: &mut Task,
    sig: i32,
    act: UserAddr,
    oact: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    if sigsetsize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    valid_sig(sig)?;
    if !act.is_null() && (sig == libc::SIGKILL || sig == libc::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let new: Option<SigAction> = if act.is_null() {
        None
    } else {
        Some(t.mm.read_obj(act)?)
    };
    let old = {
        let mut s = t.tg.sig();
        let old = s.action(sig);
        if let Some(mut n) = new {
            n.mask &= !UNBLOCKABLE;
            s.actions[(sig - 1) as usize] = n;
            // Setting SIG_IGN (or an ignoring default) discards what is pending.
            if signal::is_ignored(sig, &n) {
                s.shared.discard(bit(sig));
                for th in s.threads.values_mut() {
                    th.pending.discard(bit(sig));
                }
            }
        }
        old
    };
    if !oact.is_null() {
        t.mm.write_obj(oact, &old)?;
    }
    Ok(0)
}

/// rt_sigprocmask(2)
pub fn rt_sigprocmask(
    t: &mut Task,
    how: i32,
    set: UserAddr,
    oset: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    if sigsetsize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new: Option<u64> = if set.is_null() {
        None
    } else {
        Some(t.mm.read_obj(set)?)
    };
    let old = t.sigmask();
    if let Some(n) = new {
        let mask = match how {
            libc::SIG_BLOCK => old | n,
            libc::SIG_UNBLOCK => old & !n,
            libc::SIG_SETMASK => n,
            _ => return Err(Errno::EINVAL),
        };
        t.set_sigmask(mask);
    }
    if !oset.is_null() {
        t.mm.write_obj(oset, &old)?;
    }
    Ok(0)
}

/// rt_sigreturn(2)
pub fn rt_sigreturn(t: &mut Task) -> SysResult {
    match sigframe::restore(t) {
        Ok(rax) => Ok(rax),
        Err(_) => {
            t.force_signal(SigInfo::kernel(libc::SIGSEGV));
            Ok(t.cpu.regs.rax)
        }
    }
}

/// sigaltstack(2)
pub fn sigaltstack(t: &mut Task, ss: UserAddr, old: UserAddr) -> SysResult {
    let sp = t.cpu.regs.rsp;
    let report = sigframe::altstack_report(&t.altstack, sp);
    if !ss.is_null() {
        let new: [u8; 24] = t.mm.read_obj(ss)?;
        sigframe::set_altstack(&mut t.altstack, &new, sp)?;
    }
    if !old.is_null() {
        t.mm.write_bytes(old, &report)?;
    }
    Ok(0)
}

/// The siginfo of a signal `t` sends to a process of namespace `to`: `si_pid` is the
/// sender's PID there (0 when the sender is not visible in it).
fn user_info(t: &Task, sig: i32, code: i32, to: &PidNamespace) -> SigInfo {
    let pid = to.id_of(t.tg.tgid).unwrap_or(0);
    SigInfo::from_user(sig, code, pid, t.creds.uid)
}

/// Whether a signal from `t` to `target` overrides a namespace init's protection: SIGKILL
/// and SIGSTOP from an ancestor namespace do, as in Linux.
fn forced(t: &Task, target: &ThreadGroup, sig: i32) -> bool {
    (sig == libc::SIGKILL || sig == libc::SIGSTOP) && !Arc::ptr_eq(&t.tg.pidns, &target.pidns)
}

/// Sends `sig` (siginfo from `info`, or kill(2)'s own when None) to every group.
pub(super) fn send_to_groups(
    t: &Task,
    groups: &[Arc<ThreadGroup>],
    sig: i32,
    info: Option<SigInfo>,
) -> SysResult {
    if groups.is_empty() {
        return Err(Errno::ESRCH);
    }
    let tree = t.kernel.tree();
    let mut sent = 0;
    for g in groups {
        if !may_signal(t, &tree, g, sig) {
            continue;
        }
        sent += 1;
        if sig != 0 {
            let i = info.unwrap_or_else(|| user_info(t, sig, SI_USER, &g.pidns));
            tree.send_group(g, i, forced(t, g, sig));
        }
    }
    // As Linux's group kills: success when any process could be signalled.
    if sent == 0 {
        return Err(Errno::EPERM);
    }
    Ok(0)
}

/// Sends `sig` to the one thread `h` (pidfd_send_signal's PIDFD_SIGNAL_THREAD), with the
/// permission check of the kill family; `info` None: a kill(2)-style siginfo.
pub(super) fn send_to_task(
    t: &Task,
    h: &Arc<TaskHandle>,
    sig: i32,
    info: Option<SigInfo>,
) -> SysResult {
    let tree = t.kernel.tree();
    if !may_signal(t, &tree, &h.tg, sig) {
        return Err(Errno::EPERM);
    }
    if sig != 0 {
        let i = info.unwrap_or_else(|| user_info(t, sig, SI_USER, &h.tg.pidns));
        tree.send_thread(h, i, forced(t, &h.tg, sig));
    }
    Ok(0)
}

/// Whether the caller may send `sig` to `target` (Linux's check_kill_permission): its
/// credentials allow it, or it is SIGCONT within the caller's session.
fn may_signal(t: &Task, tree: &Tree, target: &ThreadGroup, sig: i32) -> bool {
    if target.tgid == t.tg.tgid {
        return true;
    }
    if !super::landlock::may_signal(&t.creds, target) {
        return false;
    }
    let session = |tgid| tree.procs.get(&tgid).map(|p| p.sid);
    if sig == libc::SIGCONT && session(target.tgid) == session(t.tg.tgid) {
        return true;
    }
    let creds = target.published_creds();
    // A process with no published credentials is exiting: nothing to protect.
    creds.is_none_or(|c| t.creds.may_signal(&c))
}

/// kill(2)
pub fn kill(t: &mut Task, pid: i32, sig: i32) -> SysResult {
    if sig != 0 {
        valid_sig(sig)?;
    }
    let groups = {
        let tree = t.kernel.tree();
        match pid {
            // A zombie still has its PID until it is reaped: signalling it succeeds (and
            // changes nothing), as in Linux.
            p if p > 0 => t
                .lookup_pid(p)
                .and_then(|g| {
                    tree.group_of(g).or_else(|| {
                        tree.procs
                            .get(&g)
                            .filter(|z| z.zombie.is_some())
                            .map(|z| z.tg.clone())
                    })
                })
                .into_iter()
                .collect(),
            0 => {
                let pgid = tree.procs.get(&t.tg.tgid).map_or(0, |p| p.pgid);
                tree.pgrp_members(pgid)
            }
            // Every process the caller sees except its namespace's init and itself.
            -1 => tree
                .procs
                .values()
                .filter(|p| {
                    p.zombie.is_none() && t.vpid_of(p.tg.tgid) > 1 && p.tg.tgid != t.tg.tgid
                })
                .map(|p| p.tg.clone())
                .collect(),
            p => match p.checked_neg().and_then(|g| t.lookup_pid(g)) {
                Some(pgid) => tree.pgrp_members(pgid),
                None => Vec::new(),
            },
        }
    };
    send_to_groups(t, &groups, sig, None)
}

/// Sends to thread `tid` (of process `tgid`), both in the caller's namespace; `info` builds
/// the siginfo for the target's namespace.
fn send_thread(
    t: &Task,
    tgid: Option<i32>,
    tid: i32,
    sig: i32,
    info: impl Fn(&PidNamespace) -> SigInfo,
) -> SysResult {
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let tree = t.kernel.tree();
    let h = t
        .lookup_pid(tid)
        .and_then(|g| tree.tasks.get(&g))
        .ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| t.lookup_pid(g) != Some(h.tg.tgid)) {
        return Err(Errno::ESRCH);
    }
    if !may_signal(t, &tree, &h.tg, sig) {
        return Err(Errno::EPERM);
    }
    if sig != 0 {
        tree.send_thread(h, info(&h.tg.pidns), forced(t, &h.tg, sig));
    }
    Ok(0)
}

/// tkill(2)
pub fn tkill(t: &mut Task, tid: i32, sig: i32) -> SysResult {
    if sig != 0 {
        valid_sig(sig)?;
    }
    send_thread(t, None, tid, sig, |ns| user_info(t, sig, SI_TKILL, ns))
}

/// tgkill(2)
pub fn tgkill(t: &mut Task, tgid: i32, tid: i32, sig: i32) -> SysResult {
    if sig != 0 {
        valid_sig(sig)?;
    }
    if tgid <= 0 {
        return Err(Errno::EINVAL);
    }
    send_thread(t, Some(tgid), tid, sig, |ns| {
        user_info(t, sig, SI_TKILL, ns)
    })
}

fn queued_info(t: &Task, sig: i32, uinfo: UserAddr) -> Result<SigInfo, Errno> {
    valid_sig(sig)?;
    let mut info: SigInfo = t.mm.read_obj(uinfo)?;
    // Only the kernel may claim kernel or kill(2) origins for another process.
    if (info.code >= 0 || info.code == SI_TKILL) && info.code != SI_QUEUE {
        return Err(Errno::EPERM);
    }
    info.signo = sig;
    Ok(info)
}

/// rt_sigqueueinfo(2)
pub fn rt_sigqueueinfo(t: &mut Task, tgid: i32, sig: i32, uinfo: UserAddr) -> SysResult {
    let info = queued_info(t, sig, uinfo)?;
    let g = t
        .lookup_pid(tgid)
        .and_then(|g| t.kernel.tree().group_of(g))
        .ok_or(Errno::ESRCH)?;
    send_to_groups(t, &[g], sig, Some(info))
}

/// rt_tgsigqueueinfo(2)
pub fn rt_tgsigqueueinfo(
    t: &mut Task,
    tgid: i32,
    tid: i32,
    sig: i32,
    uinfo: UserAddr,
) -> SysResult {
    let info = queued_info(t, sig, uinfo)?;
    send_thread(t, Some(tgid), tid, sig, |_| info)
}

/// rt_sigpending(2)
pub fn rt_sigpending(t: &mut Task, set: UserAddr, sigsetsize: usize) -> SysResult {
    if sigsetsize > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let pending = {
        let s = t.tg.sig();
        let mine = s.threads.get(&t.tid).map_or(0, |th| th.pending.set());
        let mask = s.threads.get(&t.tid).map_or(0, |th| th.mask);
        (mine | s.shared.set()) & mask
    };
    t.mm.write_obj(set, &pending)?;
    Ok(0)
}

/// rt_sigsuspend(2)
pub fn rt_sigsuspend(t: &mut Task, mask: UserAddr, sigsetsize: usize) -> SysResult {
    if sigsetsize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new: u64 = t.mm.read_obj(mask)?;
    let old = t.sigmask();
    t.saved_mask = Some(old);
    t.set_sigmask(new);
    let r = t.sleep_until(None);
    t.restart = Some(Restart::NoHand);
    r.and(Err(Errno::EINTR))
}

/// pause(2)
pub fn pause(t: &mut Task) -> SysResult {
    let r = t.sleep_until(None);
    t.restart = Some(Restart::NoHand);
    r.and(Err(Errno::EINTR))
}

/// rt_sigtimedwait(2)
pub fn rt_sigtimedwait(
    t: &mut Task,
    set: UserAddr,
    info: UserAddr,
    timeout: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    if sigsetsize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let wanted: u64 = t.mm.read_obj::<u64>(set)? & !UNBLOCKABLE;
    let deadline = if timeout.is_null() {
        None
    } else {
        let ts: Timespec = t.mm.read_obj(timeout)?;
        Some(Instant::now() + std::time::Duration::from_nanos(ts.to_nanos()? as u64))
    };
    // The waited-for signals must wake this thread while it waits (Linux's real_blocked).
    let old = t.unblock_for_sigwait(wanted);
    let tid = t.tid;
    let r = t.block_on(&[], deadline, |t| {
        let mut s = t.tg.sig();
        let blocked = !wanted;
        let got = match s
            .threads
            .get_mut(&tid)
            .and_then(|th| th.pending.pop(blocked))
        {
            Some(i) => Some(i),
            None => s.shared.pop(blocked),
        };
        got.map(Ok)
    });
    t.set_sigmask(old);
    match r {
        Ok(i) => {
            if !info.is_null() {
                t.mm.write_obj(info, &i)?;
            }
            Ok(i.signo as u64)
        }
        Err(Errno::ETIMEDOUT) => Err(Errno::EAGAIN),
        Err(Errno::EINTR) => {
            t.restart = None;
            Err(Errno::EINTR)
        }
        Err(e) => Err(e),
    }
}

/// restart_syscall(2): continues what an interrupted sleep left.
pub fn restart_syscall(t: &mut Task) -> SysResult {
    match t.restart_block.take() {
        Some(RestartBlock::Sleep { deadline, rem }) => {
            super::time::sleep_until_restartable(t, deadline, rem)
        }
        None => Err(Errno::EINTR),
    }
}

/// Reads the temporary mask of ppoll/pselect6/epoll_pwait.
///
/// # Errors
/// EINVAL for a wrong size, EFAULT.
pub fn read_temp_mask(t: &Task, mask: UserAddr, size: usize) -> Result<Option<u64>, Errno> {
    if mask.is_null() {
        return Ok(None);
    }
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    Ok(Some(t.mm.read_obj(mask)?))
}

/// Installs a temporary signal mask for the duration of a wait; restored after the
/// handler frame is built (or at return when no handler runs).
pub fn apply_temp_mask(t: &mut Task, mask: Option<u64>) {
    if let Some(m) = mask {
        t.saved_mask = Some(t.sigmask());
        t.set_sigmask(m);
    }
}
