//! Processes: identity, clone/fork/vfork, execve, exit, wait, process groups and sessions,
//! limits, prctl (its capability options are in `creds`), arch_prctl. Scheduling is in `sched`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::path::{lookup_at, read_path, Target, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::{Fd, Flags, PathArg};
use crate::abi::{Errno, Rlimit, SysResult};
use crate::elf::ExecFile;
use crate::kernel::clone::CloneArgs;
use crate::kernel::pids::{ChildState, WaitOpts, WaitSel};
use crate::kernel::thread_group::RLIM_NLIMITS;
use crate::kernel::usage::{self, Rusage};
use crate::kernel::{clone, exec, signal, ExitStatus, Task};
use crate::mm::usermem::UserAddr;

/// getpid(2)
pub fn getpid(t: &mut Task) -> SysResult {
    Ok(t.vtgid() as u64)
}

/// gettid(2)
pub fn gettid(t: &mut Task) -> SysResult {
    Ok(t.vtid() as u64)
}

/// getppid(2): 0 when the parent is outside the caller's PID namespace (a namespace init).
pub fn getppid(t: &mut Task) -> SysResult {
    let parent = t
        .kernel
        .tree()
        .procs
        .get(&t.tg.tgid)
        .map_or(0, |p| p.parent);
    Ok(t.vpid_of(parent) as u64)
}

/// exit(2)
pub fn exit(t: &mut Task, code: i32) -> SysResult {
    t.exit_thread(ExitStatus::Exited(code as u8));
    Ok(0)
}

/// exit_group(2)
pub fn exit_group(t: &mut Task, code: i32) -> SysResult {
    t.exit_group(ExitStatus::Exited(code as u8));
    Ok(0)
}

/// set_tid_address(2)
pub fn set_tid_address(t: &mut Task, tidptr: UserAddr) -> SysResult {
    t.clear_child_tid = tidptr.0;
    Ok(t.vtid() as u64)
}

/// get_robust_list(2) for the calling thread.
pub fn get_robust_list(t: &mut Task, pid: i32, head: UserAddr, len: UserAddr) -> SysResult {
    if pid != 0 && t.lookup_pid(pid) != Some(t.tid) {
        return Err(Errno::EPERM);
    }
    let (h, l) = t.robust_list;
    t.mm.write_obj(head, &h)?;
    t.mm.write_obj(len, &if l == 0 { 24u64 } else { l })?;
    Ok(0)
}

/// set_robust_list(2)
pub fn set_robust_list(t: &mut Task, head: UserAddr, len: usize) -> SysResult {
    // sizeof(struct robust_list_head)
    if len != 24 {
        return Err(Errno::EINVAL);
    }
    t.robust_list = (head.0, len as u64);
    Ok(0)
}

/// arch_prctl(2)
pub fn arch_prctl(t: &mut Task, code: i32, addr: u64) -> SysResult {
    const ARCH_SET_GS: i32 = 0x1001;
    const ARCH_SET_FS: i32 = 0x1002;
    const ARCH_GET_FS: i32 = 0x1003;
    const ARCH_GET_GS: i32 = 0x1004;
    let canonical = |a: u64| a < platform::MAX_USER_ADDRESS;
    match code {
        ARCH_SET_FS if canonical(addr) => t.cpu.regs.fs_base = addr,
        ARCH_SET_GS if canonical(addr) => t.cpu.regs.gs_base = addr,
        ARCH_SET_FS | ARCH_SET_GS => return Err(Errno::EPERM),
        ARCH_GET_FS => {
            let v = t.cpu.regs.fs_base;
            t.mm.write_obj(UserAddr(addr), &v)?;
        }
        ARCH_GET_GS => {
            let v = t.cpu.regs.gs_base;
            t.mm.write_obj(UserAddr(addr), &v)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

fn resource(r: u32) -> Result<usize, Errno> {
    let r = r as usize;
    if r >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    Ok(r)
}

/// getrlimit(2)
pub fn getrlimit(t: &mut Task, res: u32, rlim: UserAddr) -> SysResult {
    prlimit64(t, 0, res, UserAddr::NULL, rlim)
}

/// setrlimit(2)
pub fn setrlimit(t: &mut Task, res: u32, rlim: UserAddr) -> SysResult {
    prlimit64(t, 0, res, rlim, UserAddr::NULL)
}

/// prlimit64(2): the limits of the caller's process or, with Linux's permission rule,
/// another one's (the caller's real, effective and saved UIDs and GIDs all equal the
/// target's real UID and GID, or CAP_SYS_RESOURCE).
pub fn prlimit64(t: &mut Task, pid: i32, res: u32, new: UserAddr, old: UserAddr) -> SysResult {
    let r = resource(res)?;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let target = super::sched::thread_arg(t, pid)?;
    let tg = target.tg.clone();
    if !Arc::ptr_eq(&tg, &t.tg) && !t.creds.has_cap(crate::auth::cap::SYS_RESOURCE) {
        let c = &t.creds;
        let other = super::sched::creds_of(t, &target).ok_or(Errno::ESRCH)?;
        let same_user = [c.uid, c.euid, c.suid].iter().all(|&u| u == other.uid)
            && [c.gid, c.egid, c.sgid].iter().all(|&g| g == other.gid);
        if !same_user {
            return Err(Errno::EPERM);
        }
    }
    let new_limit: Option<Rlimit> = if new.is_null() {
        None
    } else {
        Some(t.mm.read_obj(new)?)
    };
    let mut limits = tg.limits.lock().unwrap();
    let cur = limits[r];
    if let Some(n) = new_limit {
        if n.cur > n.max {
            return Err(Errno::EINVAL);
        }
        if n.max > cur.max && !t.creds.has_cap(crate::auth::cap::SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        if r == libc::RLIMIT_NOFILE as usize && n.max > 1 << 20 {
            return Err(Errno::EPERM);
        }
    }
    if !old.is_null() {
        t.mm.write_obj(old, &cur)?;
    }
    if let Some(n) = new_limit {
        limits[r] = n;
        drop(limits);
        if r == libc::RLIMIT_CPU as usize {
            crate::kernel::cpu_timers::arm(&t.kernel, &tg);
        }
    }
    Ok(0)
}

/// RLIMIT_NPROC, checked before each new task as Linux's `copy_process` does: a user other
/// than root without CAP_SYS_RESOURCE or CAP_SYS_ADMIN may not have more tasks (threads
/// count) than the limit.
///
/// # Errors
/// EAGAIN at the limit.
fn check_nproc(t: &Task) -> Result<(), Errno> {
    let limit = t.tg.limits.lock().unwrap()[libc::RLIMIT_NPROC as usize].cur;
    let exempt = t.creds.uid == 0
        || t.creds.has_cap(crate::auth::cap::SYS_RESOURCE)
        || t.creds.has_cap(crate::auth::cap::SYS_ADMIN);
    if exempt || limit == u64::MAX {
        return Ok(());
    }
    let handles: Vec<_> = t.kernel.tree().tasks.values().cloned().collect();
    let uid = t.creds.uid;
    let count = handles
        .iter()
        .filter(|h| {
            h.view
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|v| v.creds.uid == uid)
        })
        .count();
    if count as u64 >= limit {
        return Err(Errno::EAGAIN);
    }
    Ok(())
}

/// clone(2): x86-64 argument order (flags, stack, parent_tid, child_tid, tls).
pub fn clone(
    t: &mut Task,
    flags: Flags,
    stack: UserAddr,
    parent_tid: UserAddr,
    child_tid: UserAddr,
    tls: u64,
) -> SysResult {
    let args = CloneArgs {
        flags: flags.0 & !0xff,
        exit_signal: (flags.0 & 0xff) as i32,
        stack: stack.0,
        parent_tid,
        child_tid,
        tls,
        cgroup: None,
    };
    check_nproc(t)?;
    Ok(clone::clone(t, args)? as u64)
}

/// `struct clone_args` (the fields clone3 reads, up to CLONE_ARGS_SIZE_VER0 = 64 bytes).
#[derive(
    Debug, Clone, Copy, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct CloneArgs3 {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// clone3(2)
pub fn clone3(t: &mut Task, uargs: UserAddr, size: usize) -> SysResult {
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let a: CloneArgs3 = t.mm.read_obj(uargs)?;
    let mut cgroup_fd = 0u64;
    if size > 64 {
        let mut rest = t.mm.read_bytes(uargs.offset(64)?, size - 64)?;
        // `cgroup` (bytes 80..88) is read; set_tid and what follows are not offered and
        // must be zero.
        if rest.len() >= 24 {
            let field: [u8; 8] = rest[16..24].try_into().map_err(|_| Errno::EINVAL)?;
            cgroup_fd = u64::from_ne_bytes(field);
            rest[16..24].fill(0);
        }
        if rest.iter().any(|&b| b != 0) {
            return Err(Errno::EINVAL);
        }
    }
    if a.exit_signal > 64 || a.flags & 0xff != 0 {
        return Err(Errno::EINVAL);
    }
    let cgroup = if a.flags & CLONE_INTO_CGROUP != 0 {
        if size < 88 {
            return Err(Errno::EINVAL);
        }
        Some(into_cgroup(t, cgroup_fd)?)
    } else {
        None
    };
    let stack = match (a.stack, a.stack_size) {
        (0, 0) => 0,
        (0, _) | (_, 0) => return Err(Errno::EINVAL),
        (s, n) => s.checked_add(n).ok_or(Errno::EINVAL)?,
    };
    let pidfd_slot = (a.flags & CLONE_PIDFD != 0).then_some(UserAddr(a.pidfd));
    if let Some(slot) = pidfd_slot {
        if a.flags & libc::CLONE_THREAD as u64 != 0 {
            return Err(Errno::EINVAL);
        }
        super::pidfd::check_slot(t, slot)?;
    }
    let args = CloneArgs {
        flags: a.flags & !(CLONE_PIDFD | CLONE_INTO_CGROUP),
        exit_signal: a.exit_signal as i32,
        stack,
        parent_tid: UserAddr(a.parent_tid),
        child_tid: UserAddr(a.child_tid),
        tls: a.tls,
        cgroup,
    };
    check_nproc(t)?;
    let child = clone::clone(t, args)?;
    if let Some(slot) = pidfd_slot {
        super::pidfd::give_child_pidfd(t, child, slot)?;
    }
    Ok(child as u64)
}

/// clone3's CLONE_PIDFD: a pidfd of the child is stored at `clone_args.pidfd`.
const CLONE_PIDFD: u64 = 0x1000;
/// clone3's CLONE_INTO_CGROUP: the child starts in the cgroup whose directory is open at
/// `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The cgroup of CLONE_INTO_CGROUP's fd: EINVAL for a number no fd can have, EBADF for an fd
/// that is not a cgroup2 directory, ENOENT for a removed cgroup, or what moving a process
/// there through `cgroup.procs` would fail with (EACCES, ENOENT across an nsdelegate
/// boundary).
fn into_cgroup(t: &Task, fd: u64) -> Result<Arc<crate::kernel::cgroup::Cgroup>, Errno> {
    let fd = i32::try_from(fd).map_err(|_| Errno::EINVAL)?;
    let file = t.fds.get(fd)?;
    let dentry = file.dentry.clone().ok_or(Errno::EBADF)?;
    let cg = crate::cgroupfs::cgroup_of(&dentry.inode).ok_or(Errno::EBADF)?;
    if cg.is_deleted() {
        return Err(Errno::ENOENT);
    }
    let from = t.kernel.cgroups.of(&t.tg);
    crate::cgroupfs::may_migrate(&t.kernel, &t.creds, &t.ns.cgroup, &from, &cg)?;
    Ok(cg)
}

/// fork(2)
pub fn fork(t: &mut Task) -> SysResult {
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD,
        ..CloneArgs::default()
    };
    check_nproc(t)?;
    Ok(clone::clone(t, args)? as u64)
}

/// vfork(2)
pub fn vfork(t: &mut Task) -> SysResult {
    let args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
        exit_signal: libc::SIGCHLD,
        ..CloneArgs::default()
    };
    check_nproc(t)?;
    Ok(clone::clone(t, args)? as u64)
}

/// Largest argv+envp accepted (Linux's ARG_MAX default: a quarter of an 8 MiB stack).
const ARG_MAX: usize = 2 << 20;

/// execve(2)
pub fn execve(t: &mut Task, path: PathArg, argv: UserAddr, envp: UserAddr) -> SysResult {
    exec_at(t, Fd(AT_FDCWD), path, argv, envp, 0)
}

/// execveat(2): `path` looked up from `dirfd` (or the cwd, or `/`), or with AT_EMPTY_PATH
/// and an empty path the file open at `dirfd` (glibc's fexecve); AT_SYMLINK_NOFOLLOW refuses
/// a final symlink with ELOOP.
pub fn execveat(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    argv: UserAddr,
    envp: UserAddr,
    flags: Flags,
) -> SysResult {
    exec_at(t, dirfd, path, argv, envp, flags.0)
}

/// Both execs, in Linux's order: the name, the flags, the file, then the strings.
fn exec_at(
    t: &mut Task,
    dirfd: Fd,
    path: PathArg,
    argv: UserAddr,
    envp: UserAddr,
    flags: u64,
) -> SysResult {
    let path = read_path(t, path)?;
    if path.is_empty() && flags & AT_EMPTY_PATH == 0 {
        return Err(Errno::ENOENT);
    }
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let target = exec_file(t, dirfd, path, flags)?;
    let argv = t.mm.read_string_array(argv, ARG_MAX)?;
    let envp = t.mm.read_string_array(envp, ARG_MAX)?;
    exec::execve(t, target, argv, envp)?;
    Ok(0)
}

/// The file an exec names and the name the new program gets (Linux's alloc_bprm): the path
/// as given when it is absolute or relative to the cwd, else `/dev/fd/N` (empty path) or
/// `/dev/fd/N/PATH`, which a script can only be run by when fd N survives the exec.
fn exec_file(t: &Task, dirfd: Fd, path: Vec<u8>, flags: u64) -> Result<ExecFile, Errno> {
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    let dentry = match lookup_at(t, dirfd, &path, follow, true)? {
        Target::Path(d) => d,
        // A pipe or a socket: not a regular file.
        Target::File(_) => return Err(Errno::EACCES),
    };
    if dirfd.0 == AT_FDCWD || path.first() == Some(&b'/') {
        return Ok(ExecFile {
            dentry,
            name: path,
            name_inaccessible: false,
            comm_from_file: false,
        });
    }
    let mut name = format!("/dev/fd/{}", dirfd.0).into_bytes();
    if !path.is_empty() {
        name.push(b'/');
        name.extend_from_slice(&path);
    }
    Ok(ExecFile {
        dentry,
        name,
        name_inaccessible: t.fds.cloexec(dirfd.0)?,
        comm_from_file: path.is_empty(),
    })
}

/// Writes `usage` as `struct rusage` at `addr` unless it is null.
fn write_rusage(t: &Task, addr: UserAddr, usage: Rusage) -> Result<(), Errno> {
    if !addr.is_null() {
        t.mm.write_obj(addr, &usage.to_abi())?;
    }
    Ok(())
}

const WNOHANG: i32 = 1;
const WUNTRACED: i32 = 2;
const WEXITED: i32 = 4;
const WCONTINUED: i32 = 8;
const WNOWAIT: i32 = 0x0100_0000;
const WNOTHREAD: i32 = 0x2000_0000;
const WALL: i32 = 0x4000_0000;
const WCLONE: i32 = 0x8000_0000u32 as i32;

fn wait_common(
    t: &mut Task,
    sel: WaitSel,
    opts: WaitOpts,
    nohang: bool,
) -> Result<Option<(i32, ChildState, Rusage)>, Errno> {
    let tg = t.tg.clone();
    let me = tg.tgid;
    t.block_on(&[&tg.child_events], None, |t| {
        match t.kernel.tree().wait_child(me, sel, opts) {
            Err(e) => Some(Err(e)),
            Ok(Some(found)) => Some(Ok(Some(found))),
            Ok(None) if nohang => Some(Ok(None)),
            Ok(None) => None,
        }
    })
}

/// wait4(2)
pub fn wait4(
    t: &mut Task,
    pid: i32,
    status: UserAddr,
    options: i32,
    rusage: UserAddr,
) -> SysResult {
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return Err(Errno::EINVAL);
    }
    // An ID not visible in the caller's namespace names no child of it.
    let sel = match pid {
        -1 => WaitSel::Any,
        0 => WaitSel::Pgid(0),
        p if p < -1 => WaitSel::Pgid(
            p.checked_neg()
                .and_then(|g| t.lookup_pid(g))
                .ok_or(Errno::ECHILD)?,
        ),
        p => WaitSel::Pid(t.lookup_pid(p).ok_or(Errno::ECHILD)?),
    };
    let opts = WaitOpts {
        exited: true,
        stopped: options & WUNTRACED != 0,
        continued: options & WCONTINUED != 0,
        nowait: false,
        clone: options & WCLONE != 0,
        all: options & WALL != 0,
    };
    match wait_common(t, sel, opts, options & WNOHANG != 0)? {
        None => Ok(0),
        Some((pid, st, usage)) => {
            if !status.is_null() {
                t.mm.write_obj(status, &st.wait_status())?;
            }
            write_rusage(t, rusage, usage)?;
            Ok(pid as u64)
        }
    }
}

/// waitid(2) (P_ALL, P_PID, P_PGID, P_PIDFD).
pub fn waitid(
    t: &mut Task,
    idtype: i32,
    id: i32,
    infop: UserAddr,
    options: i32,
    rusage: UserAddr,
) -> SysResult {
    if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE)
        != 0
        || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL);
    }
    // P_ALL, P_PID, P_PGID, P_PIDFD
    let mut nonblock_fd = false;
    let sel = match idtype {
        0 => WaitSel::Any,
        1 if id > 0 => WaitSel::Pid(t.lookup_pid(id).ok_or(Errno::ECHILD)?),
        2 if id == 0 => WaitSel::Pgid(0),
        2 if id > 0 => WaitSel::Pgid(t.lookup_pid(id).ok_or(Errno::ECHILD)?),
        3 => {
            let (pid, nonblock) = super::pidfd::wait_target(t, id)?;
            nonblock_fd = nonblock;
            WaitSel::Pid(pid)
        }
        _ => return Err(Errno::EINVAL),
    };
    let opts = WaitOpts {
        exited: options & WEXITED != 0,
        stopped: options & WUNTRACED != 0,
        continued: options & WCONTINUED != 0,
        nowait: options & WNOWAIT != 0,
        clone: options & WCLONE != 0,
        all: options & WALL != 0,
    };
    let nohang = options & WNOHANG != 0;
    let found = wait_common(t, sel, opts, nohang || nonblock_fd)?;
    // A non-blocking pidfd turns a wait that would block into EAGAIN.
    if found.is_none() && nonblock_fd && !nohang {
        return Err(Errno::EAGAIN);
    }
    if !infop.is_null() {
        let info = match found {
            Some((pid, st, _)) => {
                let (code, status) = st.code_status();
                signal::SigInfo::child(libc::SIGCHLD, code, pid, 0, status)
            }
            None => signal::SigInfo::new(0, 0),
        };
        t.mm.write_obj(infop, &info)?;
    }
    // WNOHANG with nothing ready reports an all-zero rusage, as Linux.
    let usage = found.map_or_else(Rusage::default, |(_, _, u)| u);
    write_rusage(t, rusage, usage)?;
    Ok(0)
}

/// The global PID a pid argument names: the caller for 0.
///
/// # Errors
/// ESRCH when nothing of that ID is visible in the caller's namespace.
fn pid_arg(t: &Task, pid: i32) -> Result<i32, Errno> {
    if pid == 0 {
        return Ok(t.tg.tgid);
    }
    t.lookup_pid(pid).ok_or(Errno::ESRCH)
}

/// getpgid(2)
pub fn getpgid(t: &mut Task, pid: i32) -> SysResult {
    let pid = pid_arg(t, pid)?;
    let pgid = t
        .kernel
        .tree()
        .procs
        .get(&pid)
        .map(|p| p.pgid)
        .ok_or(Errno::ESRCH)?;
    Ok(t.vpid_of(pgid) as u64)
}

/// getpgrp(2)
pub fn getpgrp(t: &mut Task) -> SysResult {
    getpgid(t, 0)
}

/// getsid(2)
pub fn getsid(t: &mut Task, pid: i32) -> SysResult {
    let pid = pid_arg(t, pid)?;
    let sid = t
        .kernel
        .tree()
        .procs
        .get(&pid)
        .map(|p| p.sid)
        .ok_or(Errno::ESRCH)?;
    Ok(t.vpid_of(sid) as u64)
}

/// setpgid(2)
pub fn setpgid(t: &mut Task, pid: i32, pgid: i32) -> SysResult {
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let me = t.tg.tgid;
    let pid = pid_arg(t, pid)?;
    let pgid = if pgid == 0 {
        pid
    } else {
        t.lookup_pid(pgid).ok_or(Errno::EPERM)?
    };
    let mut tree = t.kernel.tree();
    let my_sid = tree.procs.get(&me).map_or(0, |p| p.sid);
    let target = tree.procs.get(&pid).ok_or(Errno::ESRCH)?;
    if pid != me {
        if target.parent != me {
            return Err(Errno::ESRCH);
        }
        if target.did_exec {
            return Err(Errno::EACCES);
        }
    }
    if target.sid != my_sid {
        return Err(Errno::EPERM);
    }
    if target.sid == pid {
        // A session leader cannot change its group.
        return Err(Errno::EPERM);
    }
    if pgid != pid
        && !tree
            .procs
            .values()
            .any(|p| p.pgid == pgid && p.sid == my_sid)
    {
        return Err(Errno::EPERM);
    }
    let old = std::mem::replace(&mut tree.procs.get_mut(&pid).expect("checked").pgid, pgid);
    tree.forget_id(old, &t.tg.pidns);
    Ok(0)
}

/// setsid(2)
pub fn setsid(t: &mut Task) -> SysResult {
    let me = t.tg.tgid;
    let mut tree = t.kernel.tree();
    if tree.procs.values().any(|p| p.pgid == me)
        && tree.procs.get(&me).is_some_and(|p| p.pgid == me)
    {
        return Err(Errno::EPERM);
    }
    if tree.procs.values().any(|p| p.pgid == me && p.tg.tgid != me) {
        return Err(Errno::EPERM);
    }
    let p = tree.procs.get_mut(&me).ok_or(Errno::ESRCH)?;
    let old = (p.pgid, p.sid);
    p.pgid = me;
    p.sid = me;
    tree.forget_id(old.0, &t.tg.pidns);
    tree.forget_id(old.1, &t.tg.pidns);
    drop(tree);
    Ok(t.vtgid() as u64)
}

/// vhangup(2): with CAP_SYS_TTY_CONFIG (else EPERM), hangs up the caller's controlling
/// terminal, if it has one: the session loses it, and the session's leader and foreground
/// group get SIGHUP and SIGCONT. Descriptors open on the terminal keep working (Linux turns
/// them into hung-up files: reads see end of file, writes EIO).
pub fn vhangup(t: &mut Task) -> SysResult {
    if !t.creds.has_cap(crate::auth::cap::SYS_TTY_CONFIG) {
        return Err(Errno::EPERM);
    }
    if let Some(terminal) = crate::tty::job::controlling_terminal(t) {
        terminal.hang_up();
    }
    Ok(0)
}

/// getrusage(2): RUSAGE_SELF (the process's threads, live and exited), RUSAGE_THREAD (the
/// caller), RUSAGE_CHILDREN (reaped, waited-for descendants); see [`crate::kernel::usage`].
pub fn getrusage(t: &mut Task, who: i32, usage: UserAddr) -> SysResult {
    let r = match who {
        libc::RUSAGE_SELF => {
            // Charge the caller's sentry time so far and take a fresh RSS sample.
            t.thread_times();
            t.sample_rss();
            t.tg.rusage_self()
        }
        libc::RUSAGE_THREAD => {
            t.sample_rss();
            Rusage {
                times: t.thread_times(),
                maxrss_kb: t.tg.usage.lock().unwrap().maxrss_kb,
            }
        }
        libc::RUSAGE_CHILDREN => t.tg.rusage_children(),
        _ => return Err(Errno::EINVAL),
    };
    t.mm.write_obj(usage, &r.to_abi())?;
    Ok(0)
}

/// times(2): the process's and its waited-for children's CPU times in clock ticks, and the
/// ticks since boot.
pub fn times(t: &mut Task, buf: UserAddr) -> SysResult {
    if !buf.is_null() {
        t.thread_times();
        let own = t.tg.cpu_times();
        let kids = t.tg.rusage_children().times;
        let tms: [u64; 4] = [
            usage::ticks(own.user),
            usage::ticks(own.sys),
            usage::ticks(kids.user),
            usage::ticks(kids.sys),
        ];
        t.mm.write_obj(buf, &tms)?;
    }
    let ticks = usage::ticks(t.kernel.boot.elapsed());
    Ok(ticks)
}

/// prctl(2): the common options.
pub fn prctl(t: &mut Task, option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> SysResult {
    if let Some(r) = super::creds::prctl_caps(t, option, [arg2, arg3, arg4, arg5]) {
        return r;
    }
    if let Some(r) = super::seccomp::prctl_seccomp(t, option, [arg2, arg3, arg4, arg5]) {
        return r;
    }
    match option {
        libc::PR_SET_NAME => {
            let name = t.mm.read_cstring(UserAddr(arg2), 16).or_else(|e| {
                if e == Errno::ENAMETOOLONG {
                    t.mm.read_bytes(UserAddr(arg2), 15)
                } else {
                    Err(e)
                }
            })?;
            let n = name.len().min(15);
            *t.handle.comm.lock().unwrap() = name[..n].to_vec();
            Ok(0)
        }
        libc::PR_GET_NAME => {
            let mut buf = [0u8; 16];
            let comm = t.handle.comm.lock().unwrap().clone();
            buf[..comm.len()].copy_from_slice(&comm);
            t.mm.write_bytes(UserAddr(arg2), &buf)?;
            Ok(0)
        }
        libc::PR_SET_PDEATHSIG => {
            if arg2 > 64 {
                return Err(Errno::EINVAL);
            }
            if let Some(p) = t.kernel.tree().procs.get_mut(&t.tg.tgid) {
                p.pdeathsig = arg2 as i32;
            }
            Ok(0)
        }
        libc::PR_GET_PDEATHSIG => {
            let v = t
                .kernel
                .tree()
                .procs
                .get(&t.tg.tgid)
                .map_or(0, |p| p.pdeathsig);
            t.mm.write_obj(UserAddr(arg2), &v)?;
            Ok(0)
        }
        libc::PR_SET_CHILD_SUBREAPER => {
            if let Some(p) = t.kernel.tree().procs.get_mut(&t.tg.tgid) {
                p.subreaper = arg2 != 0;
            }
            Ok(0)
        }
        libc::PR_GET_CHILD_SUBREAPER => {
            let v = t
                .kernel
                .tree()
                .procs
                .get(&t.tg.tgid)
                .is_some_and(|p| p.subreaper) as i32;
            t.mm.write_obj(UserAddr(arg2), &v)?;
            Ok(0)
        }
        // Rewriting the memory map's fields is not offered; Linux asks for the capability
        // before anything else.
        libc::PR_SET_MM if !t.creds.has_cap(crate::auth::cap::SYS_RESOURCE) => Err(Errno::EPERM),
        libc::PR_GET_DUMPABLE => Ok(t.tg.dumpable.load(Ordering::Relaxed).into()),
        libc::PR_SET_DUMPABLE => {
            // SUID_DUMP_DISABLE or SUID_DUMP_USER; SUID_DUMP_ROOT is not settable.
            if arg2 > 1 {
                return Err(Errno::EINVAL);
            }
            t.tg.dumpable.store(arg2 as u8, Ordering::Relaxed);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// personality(2)'s query value: returns the current personality and changes nothing.
const PERSONALITY_QUERY: u32 = 0xffff_ffff;
/// The flag bits the sentry honours by doing nothing: SHORT_INODE and WHOLE_SECONDS (legacy
/// in Linux too) and ADDR_NO_RANDOMIZE (the sentry never randomizes the address-space
/// layout).
const PERSONALITY_INERT_FLAGS: u32 = 0x0100_0000 | 0x0200_0000 | 0x0004_0000;
/// PER_LINUX32: a 32-bit `uname` machine, which the sentry does not offer.
const PER_LINUX32: u32 = 0x0008;

/// personality(2): the execution domain (low byte) and its flags. Domains other than
/// PER_LINUX32 change nothing on x86-64 and are recorded; flags that would change memory
/// layout, `mmap` or `uname` (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, UNAME26, ...) are not
/// implemented and refused with EINVAL rather than recorded without effect.
pub fn personality(t: &mut Task, persona: u64) -> SysResult {
    // Linux takes the argument as an unsigned int.
    let persona = persona as u32;
    let old = t.handle.personality.load(Ordering::Relaxed);
    if persona == PERSONALITY_QUERY {
        return Ok(u64::from(old));
    }
    if persona & 0xff == PER_LINUX32 || persona & !(0xff | PERSONALITY_INERT_FLAGS) != 0 {
        return Err(Errno::EINVAL);
    }
    t.handle.personality.store(persona, Ordering::Relaxed);
    Ok(u64::from(old))
}
