//! Process file descriptors: pidfd_open, pidfd_send_signal, pidfd_getfd, and the hooks
//! `clone3(CLONE_PIDFD)` and `waitid(P_PIDFD)` use. The file itself is
//! [`crate::kernel::pidfd::PidFd`].

use std::sync::Arc;

use super::fd::nofile_limit;
use super::signal::{send_to_groups, send_to_task};
use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::auth::Creds;
use crate::kernel::pidfd::PidFd;
use crate::kernel::signal::{SigInfo, SI_TKILL};
use crate::kernel::task::TaskHandle;
use crate::kernel::{Task, ThreadGroup};
use crate::mm::usermem::UserAddr;
use crate::vfs::{FileKind, OpenFile};

/// pidfd_open: a pidfd of one thread (Linux's value, O_EXCL).
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// pidfd_send_signal: signal the thread (the default for thread pidfds).
const PIDFD_SIGNAL_THREAD: u32 = 1;
/// pidfd_send_signal: signal the whole thread group (the default for process pidfds).
const PIDFD_SIGNAL_THREAD_GROUP: u32 = 2;
/// pidfd_send_signal: signal the process group the target leads.
const PIDFD_SIGNAL_PROCESS_GROUP: u32 = 4;

/// CAP_SYS_PTRACE: pidfd_getfd of another user's process.
const CAP_SYS_PTRACE: u32 = 19;

/// A new pidfd for `tg`, installed close-on-exec (as Linux always does).
fn install(t: &mut Task, tg: &Arc<ThreadGroup>, nonblock: bool) -> Result<i32, Errno> {
    install_ops(t, PidFd::new(&t.kernel, tg), nonblock)
}

fn install_ops(t: &mut Task, ops: PidFd, nonblock: bool) -> Result<i32, Errno> {
    let ops = Arc::new(ops);
    let mut flags = libc::O_RDWR as u32;
    if nonblock {
        flags |= libc::O_NONBLOCK as u32;
    }
    let f = OpenFile::of_kind(FileKind::PidFd(ops), flags);
    let limit = nofile_limit(t);
    t.fds.install(f, 0, true, limit)
}

/// The process a pidfd names and whether it has exited (a zombie).
///
/// # Errors
/// EBADF when `fd` is not a pidfd, ESRCH once the process has been reaped.
pub(super) fn target(t: &Task, fd: Fd) -> Result<(Arc<ThreadGroup>, bool), Errno> {
    let f = t.fds.get(fd.0)?;
    let FileKind::PidFd(p) = f.kind() else {
        return Err(Errno::EBADF);
    };
    let (tgid, identity) = p.target();
    let tree = t.kernel.tree();
    let proc = tree
        .procs
        .get(&tgid)
        .filter(|p| PidFd::identity(&p.tg) == identity)
        .ok_or(Errno::ESRCH)?;
    Ok((proc.tg.clone(), proc.zombie.is_some()))
}

/// Linux's ptrace access check with real credentials (PTRACE_MODE_*_REALCREDS), without
/// the LSM parts: the caller's real IDs match every target ID, or it has CAP_SYS_PTRACE
/// over the target's user namespace; a target that is not dumpable (`them_dumpable`:
/// `PR_SET_DUMPABLE` 0, a set-ID exec) needs that capability anyway; and then, in the
/// capability check,
/// the target is in the caller's user namespace with no capability the caller lacks, or
/// the caller has CAP_SYS_PTRACE over the target's user namespace.
pub(super) fn may_ptrace(me: &Creds, them: &Creds, them_dumpable: bool) -> bool {
    let over_them = me.has_cap_in(&them.user_ns, CAP_SYS_PTRACE);
    let same_user = [them.uid, them.euid, them.suid]
        .iter()
        .all(|&u| u == me.uid)
        && [them.gid, them.egid, them.sgid]
            .iter()
            .all(|&g| g == me.gid);
    let ids_allow = same_user && them_dumpable;
    if !ids_allow && !over_them {
        return false;
    }
    (Arc::ptr_eq(&me.user_ns, &them.user_ns) && them.caps.permitted.is_subset_of(me.caps.permitted))
        || over_them
}

/// pidfd_open(2)
pub fn pidfd_open(t: &mut Task, pid: i32, flags: u32) -> SysResult {
    if flags & !(libc::O_NONBLOCK as u32 | PIDFD_THREAD) != 0 || pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let nonblock = flags & libc::O_NONBLOCK as u32 != 0;
    let global = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    let ops = {
        let tree = t.kernel.tree();
        match (tree.procs.get(&global), tree.tasks.get(&global)) {
            (Some(p), _) if flags & PIDFD_THREAD == 0 => PidFd::new(&t.kernel, &p.tg),
            // The leader, running or exited (a zombie until its group has exited too).
            (Some(p), _) => PidFd::of_leader(&t.kernel, &p.tg),
            (None, Some(h)) if flags & PIDFD_THREAD != 0 => PidFd::of_thread(&t.kernel, h),
            // A thread other than a group leader is not a process: EINVAL, as the kernels
            // of the release we report (6.15 made it ENOENT).
            (None, Some(_)) => return Err(Errno::EINVAL),
            (None, None) => return Err(Errno::ESRCH),
        }
    };
    Ok(install_ops(t, ops, nonblock)? as u64)
}

/// The thread a `PIDFD_THREAD` pidfd `fd` names, if it still runs (None for a leader that
/// has exited while its group lives on).
///
/// # Errors
/// ESRCH once the thread (a leader: its whole group) has exited.
fn thread_target(
    t: &Task,
    (tid, identity): (i32, usize),
    tg: &Arc<ThreadGroup>,
) -> Result<Option<Arc<TaskHandle>>, Errno> {
    let tree = t.kernel.tree();
    let h = tree
        .tasks
        .get(&tid)
        .filter(|h| Arc::ptr_eq(&h.tg, tg))
        .filter(|h| identity == 0 || PidFd::thread_identity(h) == identity);
    match h {
        Some(h) => Ok(Some(h.clone())),
        None if identity == 0 => Ok(None),
        None => Err(Errno::ESRCH),
    }
}

/// pidfd_send_signal(2)
pub fn pidfd_send_signal(t: &mut Task, fd: Fd, sig: i32, uinfo: UserAddr, flags: u32) -> SysResult {
    let scopes = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP;
    if flags & !scopes != 0 || flags.count_ones() > 1 {
        return Err(Errno::EINVAL);
    }
    if !(0..=64).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    let thread = {
        let f = t.fds.get(fd.0)?;
        let FileKind::PidFd(p) = f.kind() else {
            return Err(Errno::EBADF);
        };
        p.thread()
    };
    let (tg, zombie) = target(t, fd)?;
    let scope = match (flags, thread) {
        (0, Some(_)) => PIDFD_SIGNAL_THREAD,
        (0, None) => PIDFD_SIGNAL_THREAD_GROUP,
        (f, _) => f,
    };
    let task = match thread {
        Some(th) => thread_target(t, th, &tg)?,
        None => None,
    };
    let info = if uinfo.is_null() {
        None
    } else {
        let mut info: SigInfo = t.mm.read_obj(uinfo)?;
        if info.signo != sig {
            return Err(Errno::EINVAL);
        }
        // Only the kernel may claim kernel or kill(2) origins toward another thread (or
        // toward a process group, the caller's own included).
        let to_self = match &task {
            Some(h) => h.tid() == t.tid,
            None => tg.tgid == t.tg.tgid,
        };
        if (!to_self || scope == PIDFD_SIGNAL_PROCESS_GROUP)
            && (info.code >= 0 || info.code == SI_TKILL)
        {
            return Err(Errno::EPERM);
        }
        info.signo = sig;
        Some(info)
    };
    if scope == PIDFD_SIGNAL_PROCESS_GROUP {
        // The group whose ID is the target's PID (ESRCH when it leads none).
        let members = t.kernel.tree().pgrp_members(tg.tgid);
        return send_to_groups(t, &members, sig, info);
    }
    if zombie {
        // A zombie takes signals and discards them, as Linux.
        return Ok(0);
    }
    match (scope, task) {
        (PIDFD_SIGNAL_THREAD, Some(h)) => send_to_task(t, &h, sig, info),
        // A thread pidfd's leader that has exited while its group runs on: its signals go
        // nowhere (Linux's zombie leader).
        (PIDFD_SIGNAL_THREAD, None) if thread.is_some() => Ok(0),
        // A process pidfd: its thread is the group's leader, if it still runs.
        (PIDFD_SIGNAL_THREAD, None) => {
            let leader = t.kernel.tree().tasks.get(&tg.tgid).cloned();
            match leader {
                Some(h) => send_to_task(t, &h, sig, info),
                None => Ok(0),
            }
        }
        _ => send_to_groups(t, &[tg], sig, info),
    }
}

/// pidfd_getfd(2)
pub fn pidfd_getfd(t: &mut Task, fd: Fd, target_fd: i32, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (tg, zombie) = target(t, fd)?;
    if zombie {
        return Err(Errno::ESRCH);
    }
    let view = {
        let tree = t.kernel.tree();
        let leader = tree.tasks.get(&tg.tgid).ok_or(Errno::ESRCH)?;
        let view = leader.view.lock().unwrap().clone();
        view.ok_or(Errno::ESRCH)?
    };
    if tg.tgid != t.tg.tgid && !may_ptrace(&t.creds, &view.creds, tg.dumpable()) {
        return Err(Errno::EPERM);
    }
    let file = view.fds.get(target_fd)?;
    let limit = nofile_limit(t);
    Ok(t.fds.install(file, 0, true, limit)? as u64)
}

/// process_mrelease(2): a process that is exiting has its memory released by that exit
/// already, so there is nothing left to hurry: 0. A process still running is EINVAL, as
/// Linux's for one whose memory will not be freed, and one that has no memory any more (a
/// zombie) ESRCH.
pub fn process_mrelease(t: &mut Task, fd: Fd, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (tg, zombie) = target(t, fd)?;
    if zombie {
        return Err(Errno::ESRCH);
    }
    if tg.exit_status().is_some() {
        return Ok(0);
    }
    Err(Errno::EINVAL)
}

/// `clone3(CLONE_PIDFD)` before the child exists: the pidfd slot must be writable (EFAULT
/// otherwise, and no child is made).
///
/// # Errors
/// EFAULT.
pub(super) fn check_slot(t: &mut Task, slot: UserAddr) -> Result<(), Errno> {
    t.mm.write_obj(slot, &-1i32)
}

/// `clone3(CLONE_PIDFD)` after the child `vpid` exists: its pidfd goes into `slot`.
///
/// # Errors
/// EMFILE, EFAULT.
pub(super) fn give_child_pidfd(t: &mut Task, vpid: i32, slot: UserAddr) -> Result<(), Errno> {
    let tg = t
        .lookup_pid(vpid)
        .and_then(|g| t.kernel.tree().procs.get(&g).map(|p| p.tg.clone()))
        .ok_or(Errno::ESRCH)?;
    let fd = install(t, &tg, false)?;
    t.mm.write_obj(slot, &fd)
}

/// `waitid(P_PIDFD, fd)`: the global PID of the process to wait for, and whether the pidfd
/// is non-blocking (a wait that would block is EAGAIN).
///
/// # Errors
/// EBADF when `fd` is not a pidfd, ECHILD when its process is gone.
pub(super) fn wait_target(t: &Task, fd: i32) -> Result<(i32, bool), Errno> {
    let f = t.fds.get(fd)?;
    let FileKind::PidFd(p) = f.kind() else {
        return Err(Errno::EBADF);
    };
    if p.thread().is_some_and(|(tid, _)| tid != p.target().0) {
        // A thread that does not lead its group is nobody's child.
        return Err(Errno::ECHILD);
    }
    let (tgid, identity) = p.target();
    let alive = t
        .kernel
        .tree()
        .procs
        .get(&tgid)
        .is_some_and(|p| PidFd::identity(&p.tg) == identity);
    if !alive {
        return Err(Errno::ECHILD);
    }
    Ok((tgid, f.nonblocking()))
}
