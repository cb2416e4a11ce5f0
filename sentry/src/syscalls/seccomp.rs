//! seccomp(2), the seccomp and `no_new_privs` prctl options, and the check every system call
//! passes before its handler runs. The filters themselves are [`crate::kernel::seccomp`].

use zerocopy::FromBytes;

use crate::abi::{Errno, SysResult};
use crate::auth::cap;
use crate::kernel::seccomp::{self, Action, Mode, SockFilter};
use crate::kernel::signal::{SigAction, SigInfo};
use crate::kernel::{ExitStatus, Task};
use crate::mm::usermem::UserAddr;

const SECCOMP_SET_MODE_STRICT: u32 = 0;
const SECCOMP_SET_MODE_FILTER: u32 = 1;
const SECCOMP_GET_ACTION_AVAIL: u32 = 2;
const SECCOMP_GET_NOTIF_SIZES: u32 = 3;

const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_NEW_LISTENER: u32 = 8;
const FLAG_TSYNC_ESRCH: u32 = 16;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;
const FLAGS_KNOWN: u32 = FLAG_TSYNC
    | FLAG_LOG
    | FLAG_SPEC_ALLOW
    | FLAG_NEW_LISTENER
    | FLAG_TSYNC_ESRCH
    | FLAG_WAIT_KILLABLE_RECV;

/// `si_code` of a SIGSYS raised by a filter.
const SYS_SECCOMP: i32 = 1;

/// `PR_GET_SECCOMP`/`PR_SET_SECCOMP` modes.
const SECCOMP_MODE_STRICT: u64 = 1;
const SECCOMP_MODE_FILTER: u64 = 2;

/// seccomp(2).
pub fn seccomp(t: &mut Task, op: u32, flags: super::Flags, uargs: UserAddr) -> SysResult {
    // An `unsigned int` in Linux: the upper half of the register is not looked at.
    let flags = flags.0 as u32;
    match op {
        SECCOMP_SET_MODE_STRICT => {
            if flags != 0 || uargs.0 != 0 {
                return Err(Errno::EINVAL);
            }
            t.handle.seccomp.set_strict()?;
            Ok(0)
        }
        SECCOMP_SET_MODE_FILTER => install_filter(t, flags, uargs),
        SECCOMP_GET_ACTION_AVAIL => {
            if flags != 0 {
                return Err(Errno::EINVAL);
            }
            let action: u32 = t.mm.read_obj(uargs)?;
            if Action::available(action) {
                Ok(0)
            } else {
                Err(Errno::EOPNOTSUPP)
            }
        }
        SECCOMP_GET_NOTIF_SIZES => {
            if flags != 0 {
                return Err(Errno::EINVAL);
            }
            // struct seccomp_notif_sizes: seccomp_notif, seccomp_notif_resp, seccomp_data.
            let sizes: [u16; 3] = [80, 24, 64];
            t.mm.write_obj(uargs, &sizes)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `SECCOMP_SET_MODE_FILTER` (also `PR_SET_SECCOMP` with `SECCOMP_MODE_FILTER`, flags 0).
fn install_filter(t: &mut Task, flags: u32, uargs: UserAddr) -> SysResult {
    if flags & !FLAGS_KNOWN != 0 {
        return Err(Errno::EINVAL);
    }
    // No listener can be made here (see the kernel module's doc).
    if flags & FLAG_NEW_LISTENER != 0 {
        return Err(Errno::EINVAL);
    }
    // struct sock_fprog: u16 len, then the pointer at offset 8.
    let len: u16 = t.mm.read_obj(uargs)?;
    let ptr: u64 = t.mm.read_obj(UserAddr(uargs.0.wrapping_add(8)))?;
    let len = len as usize;
    if len == 0 || len > seccomp::MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    let bytes =
        t.mm.read_bytes(UserAddr(ptr), len * std::mem::size_of::<SockFilter>())?;
    let prog: Vec<SockFilter> = bytes
        .chunks_exact(std::mem::size_of::<SockFilter>())
        .filter_map(|c| SockFilter::read_from_bytes(c).ok())
        .collect();
    seccomp::validate(&prog)?;
    let nnp = t.handle.seccomp.no_new_privs();
    if !nnp && !t.creds.has_cap(cap::SYS_ADMIN) {
        return Err(Errno::EACCES);
    }
    if flags & FLAG_TSYNC == 0 {
        t.handle.seccomp.install(prog)?;
        return Ok(0);
    }
    // TSYNC: every other thread must be able to take the new filter, or none does. The
    // group's signal lock keeps the set of threads fixed meanwhile.
    let sig = t.tg.sig();
    let below = t.handle.seccomp.current();
    let conflict = sig
        .threads
        .iter()
        .find(|(&tid, th)| tid != t.tid && !th.handle.seccomp.can_take_filter_above(below.as_ref()))
        .map(|(&tid, _)| tid);
    if let Some(tid) = conflict {
        drop(sig);
        return if flags & FLAG_TSYNC_ESRCH != 0 {
            Err(Errno::ESRCH)
        } else {
            Ok(t.vpid_of(tid) as u64)
        };
    }
    let filter = t.handle.seccomp.install(prog)?;
    for (_, th) in sig.threads.iter().filter(|(&tid, _)| tid != t.tid) {
        th.handle.seccomp.sync_to(&filter, nnp);
    }
    Ok(0)
}

/// The seccomp and `no_new_privs` options of prctl(2); None for other options.
pub fn prctl_seccomp(t: &mut Task, option: i32, args: [u64; 4]) -> Option<SysResult> {
    let state = &t.handle.seccomp;
    Some(match option {
        libc::PR_GET_SECCOMP => Ok(state.mode() as u64),
        libc::PR_SET_SECCOMP => match args[0] {
            SECCOMP_MODE_STRICT => state.set_strict().map(|()| 0),
            SECCOMP_MODE_FILTER => install_filter(t, 0, UserAddr(args[1])),
            _ => Err(Errno::EINVAL),
        },
        libc::PR_SET_NO_NEW_PRIVS => {
            if args[0] != 1 || args[1..].iter().any(|&a| a != 0) {
                Err(Errno::EINVAL)
            } else {
                state.set_no_new_privs();
                Ok(0)
            }
        }
        libc::PR_GET_NO_NEW_PRIVS => {
            if args.iter().any(|&a| a != 0) {
                Err(Errno::EINVAL)
            } else {
                Ok(state.no_new_privs() as u64)
            }
        }
        _ => return None,
    })
}

/// Runs the task's filters on the system call it is making. None: run it. Some(result):
/// the filters decided, the handler does not run and `result` goes to `rax`.
pub fn gate(t: &mut Task, nr: u64, args: &[u64; 6]) -> Option<SysResult> {
    let ip = t.cpu.regs.rip;
    let action = t.handle.seccomp.check(nr, args, ip)?;
    match action {
        Action::Allow | Action::Log => None,
        // Any value up to 4095 becomes `-value` in rax, whether or not it names an errno.
        Action::Errno(e) => Some(Ok((-i64::from(e.min(4095))) as u64)),
        Action::Trace(_) | Action::UserNotif => Some(Err(Errno::ENOSYS)),
        Action::Trap(data) => {
            t.force_signal(sigsys(nr, ip, data));
            // Linux rolls `rax` back to the call's number for the handler to see.
            Some(Ok(nr))
        }
        Action::KillThread if t.handle.seccomp.mode() == Mode::Strict => {
            kill_thread(t, libc::SIGKILL, nr, ip);
            Some(Ok(nr))
        }
        Action::KillThread => {
            kill_thread(t, libc::SIGSYS, nr, ip);
            Some(Ok(nr))
        }
        Action::KillProcess => {
            kill_process(t, libc::SIGSYS, nr, ip);
            Some(Ok(nr))
        }
    }
}

/// The SIGSYS a filter raises: `si_call_addr`, `si_syscall`, `si_arch`, `si_errno` = data.
fn sigsys(nr: u64, ip: u64, data: u16) -> SigInfo {
    let mut info = SigInfo::new(libc::SIGSYS, SYS_SECCOMP);
    info.errno = i32::from(data);
    info.fields[0] = ip;
    info.fields[1] = (nr as u32 as u64) | (u64::from(seccomp::AUDIT_ARCH_X86_64) << 32);
    info
}

/// Ends the calling thread as if killed by `signo`; the whole process when it is the last
/// thread (then with the signal's default action, a core dump for SIGSYS, as Linux does).
fn kill_thread(t: &mut Task, signo: i32, nr: u64, ip: u64) {
    let alone = t.tg.sig().threads.len() <= 1;
    if alone {
        kill_process(t, signo, nr, ip);
    } else {
        t.exit_thread(ExitStatus::Signaled { signo, core: false });
    }
}

/// Kills the process with `signo` at its default action, whatever handler it installed.
fn kill_process(t: &mut Task, signo: i32, nr: u64, ip: u64) {
    t.tg.sig().actions[(signo - 1) as usize] = SigAction::default();
    let info = if signo == libc::SIGSYS {
        sigsys(nr, ip, 0)
    } else {
        SigInfo::kernel(signo)
    };
    t.force_signal(info);
}
