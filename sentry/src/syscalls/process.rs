//! Process identity, exit, limits, arch_prctl and signal bookkeeping.

use crate::abi::{Errno, Rlimit, SysResult};
use crate::kernel::thread_group::RLIM_NLIMITS;
use crate::kernel::{ExitStatus, Task};
use crate::mm::usermem::UserAddr;

/// getpid(2)
pub fn getpid(t: &mut Task) -> SysResult {
    Ok(t.tg.tgid as u64)
}

/// gettid(2)
pub fn gettid(t: &mut Task) -> SysResult {
    Ok(t.tid as u64)
}

/// getppid(2)
pub fn getppid(t: &mut Task) -> SysResult {
    Ok(t.tg.ppid as u64)
}

/// getuid(2)
pub fn getuid(t: &mut Task) -> SysResult {
    Ok(t.creds.uid as u64)
}

/// geteuid(2)
pub fn geteuid(t: &mut Task) -> SysResult {
    Ok(t.creds.euid as u64)
}

/// getgid(2)
pub fn getgid(t: &mut Task) -> SysResult {
    Ok(t.creds.gid as u64)
}

/// getegid(2)
pub fn getegid(t: &mut Task) -> SysResult {
    Ok(t.creds.egid as u64)
}

/// getgroups(2): tasks have no supplementary groups yet.
pub fn getgroups(_t: &mut Task, size: i32, _list: UserAddr) -> SysResult {
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
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

/// sched_yield(2)
pub fn sched_yield(_t: &mut Task) -> SysResult {
    std::thread::yield_now();
    Ok(0)
}

/// set_tid_address(2)
pub fn set_tid_address(t: &mut Task, tidptr: UserAddr) -> SysResult {
    t.clear_child_tid = tidptr.0;
    Ok(t.tid as u64)
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

/// prlimit64(2) for the calling process (other pids arrive with process management).
pub fn prlimit64(t: &mut Task, pid: i32, res: u32, new: UserAddr, old: UserAddr) -> SysResult {
    let r = resource(res)?;
    if pid != 0 && pid != t.tg.tgid {
        return Err(Errno::ESRCH);
    }
    let new_limit: Option<Rlimit> = if new.is_null() {
        None
    } else {
        Some(t.mm.read_obj(new)?)
    };
    let mut limits = t.tg.limits.lock().unwrap();
    let cur = limits[r];
    if let Some(n) = new_limit {
        if n.cur > n.max {
            return Err(Errno::EINVAL);
        }
        if n.max > cur.max && t.creds.euid != 0 {
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
    }
    Ok(0)
}

/// Size of the kernel's sigset_t.
const SIGSET_SIZE: usize = 8;

/// rt_sigaction(2): validates and records; delivery of caught signals is not here yet.
pub fn rt_sigaction(
    t: &mut Task,
    sig: i32,
    act: UserAddr,
    oact: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    if sigsetsize != SIGSET_SIZE || !(1..=64).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    if !act.is_null() && (sig == libc::SIGKILL || sig == libc::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    // struct sigaction { handler, flags, restorer, mask }
    const SIZE: usize = 32;
    let new = if act.is_null() {
        None
    } else {
        Some(t.mm.read_bytes(act, SIZE)?)
    };
    let mut actions = t.tg.sigactions.lock().unwrap();
    let slot = &mut actions[(sig - 1) as usize];
    if !oact.is_null() {
        t.mm.write_bytes(oact, slot)?;
    }
    if let Some(n) = new {
        slot.copy_from_slice(&n);
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
    if !oset.is_null() {
        let old = t.sigmask;
        t.mm.write_obj(oset, &old)?;
    }
    if let Some(n) = new {
        let unblockable = (1u64 << (libc::SIGKILL - 1)) | (1u64 << (libc::SIGSTOP - 1));
        t.sigmask = match how {
            libc::SIG_BLOCK => t.sigmask | n,
            libc::SIG_UNBLOCK => t.sigmask & !n,
            libc::SIG_SETMASK => n,
            _ => return Err(Errno::EINVAL),
        } & !unblockable;
    }
    Ok(0)
}

/// sigaltstack(2): records the alternate stack.
pub fn sigaltstack(t: &mut Task, ss: UserAddr, old: UserAddr) -> SysResult {
    // stack_t { sp, flags (int + pad), size }
    const SIZE: usize = 24;
    if !old.is_null() {
        let cur = t.altstack;
        t.mm.write_bytes(old, &cur)?;
    }
    if !ss.is_null() {
        let new = t.mm.read_bytes(ss, SIZE)?;
        let flags = i32::from_le_bytes(new[8..12].try_into().expect("4 bytes"));
        const SS_DISABLE: i32 = 2;
        const SS_AUTODISARM: i32 = 1 << 31;
        if flags & !(SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(Errno::EINVAL);
        }
        let size = u64::from_le_bytes(new[16..24].try_into().expect("8 bytes"));
        if flags & SS_DISABLE == 0 && size < 2048 {
            return Err(Errno::ENOMEM);
        }
        t.altstack.copy_from_slice(&new);
    }
    Ok(0)
}
