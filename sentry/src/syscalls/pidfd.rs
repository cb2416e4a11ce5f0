//! Process file descriptors: pidfd_open, pidfd_send_signal, pidfd_getfd, and the hooks
//! `clone3(CLONE_PIDFD)` and `waitid(P_PIDFD)` use. The file itself is
//! [`crate::kernel::pidfd::PidFd`].

use std::sync::Arc;

use super::fd::nofile_limit;
use super::signal::send_to_groups;
use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::auth::Creds;
use crate::kernel::pidfd::PidFd;
use crate::kernel::signal::{SigInfo, SI_TKILL};
use crate::kernel::{Task, ThreadGroup};
use crate::mm::usermem::UserAddr;
use crate::vfs::{FileKind, OpenFile};

/// pidfd_send_signal: signal the whole thread group (the default for process pidfds).
const PIDFD_SIGNAL_THREAD_GROUP: u32 = 2;

/// CAP_SYS_PTRACE: pidfd_getfd of another user's process.
const CAP_SYS_PTRACE: u32 = 19;

/// A new pidfd for `tg`, installed close-on-exec (as Linux always does).
fn install(t: &mut Task, tg: &Arc<ThreadGroup>, nonblock: bool) -> Result<i32, Errno> {
    let ops = Arc::new(PidFd::new(&t.kernel, tg));
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
    // PIDFD_THREAD (pidfds of single threads) is not offered: EINVAL, as kernels before 6.9.
    if flags & !(libc::O_NONBLOCK as u32) != 0 || pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let global = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    let tg = {
        let tree = t.kernel.tree();
        match tree.procs.get(&global) {
            Some(p) => p.tg.clone(),
            // A thread other than a group leader: not a process.
            None if tree.tasks.contains_key(&global) => return Err(Errno::EINVAL),
            None => return Err(Errno::ESRCH),
        }
    };
    Ok(install(t, &tg, flags & libc::O_NONBLOCK as u32 != 0)? as u64)
}

/// pidfd_send_signal(2)
pub fn pidfd_send_signal(t: &mut Task, fd: Fd, sig: i32, uinfo: UserAddr, flags: u32) -> SysResult {
    // Of the PIDFD_SIGNAL_* scopes (kernel 6.9) only the default one, the thread group, is
    // offered.
    if flags & !PIDFD_SIGNAL_THREAD_GROUP != 0 {
        return Err(Errno::EINVAL);
    }
    if !(0..=64).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    let (tg, zombie) = target(t, fd)?;
    let info = if uinfo.is_null() {
        None
    } else {
        let mut info: SigInfo = t.mm.read_obj(uinfo)?;
        if info.signo != sig {
            return Err(Errno::EINVAL);
        }
        // Only the kernel may claim kernel or kill(2) origins toward another process.
        if tg.tgid != t.tg.tgid && (info.code >= 0 || info.code == SI_TKILL) {
            return Err(Errno::EPERM);
        }
        info.signo = sig;
        Some(info)
    };
    if zombie {
        // A zombie takes signals and discards them, as Linux.
        return Ok(0);
    }
    send_to_groups(t, &[tg], sig, info)
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
