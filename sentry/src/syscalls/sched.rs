//! Scheduling: get/setpriority, the sched_* policy, parameter and attribute calls,
//! sched_rr_get_interval, CPU affinity, ioprio_get/ioprio_set, sched_yield and getcpu.
//!
//! The values are recorded per thread ([`crate::kernel::sched`]) with Linux's checks and
//! permission rules; the host schedules the sentry's threads as it likes.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{Errno, SysResult, Timespec};
use crate::auth::{cap, Creds};
use crate::kernel::sched::{
    SchedAttr, MAX_NICE, MAX_RT_PRIORITY, MIN_NICE, SCHED_BATCH, SCHED_FIFO, SCHED_IDLE,
    SCHED_OTHER, SCHED_RESET_ON_FORK, SCHED_RR,
};
use crate::kernel::task::TaskHandle;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

const PRIO_PROCESS: i32 = 0;
const PRIO_PGRP: i32 = 1;
const PRIO_USER: i32 = 2;

/// The time slice of SCHED_RR threads (Linux's default `sched_rr_timeslice_ms`).
const RR_TIMESLICE_NS: u128 = 100_000_000;

/// The thread a pid argument names: the caller for 0, else a thread visible in the caller's
/// PID namespace.
///
/// # Errors
/// ESRCH when there is none (also for negative IDs: callers that answer EINVAL check first).
pub(super) fn thread_arg(t: &Task, pid: i32) -> Result<Arc<TaskHandle>, Errno> {
    if pid == 0 {
        return Ok(t.handle.clone());
    }
    let tid = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    t.kernel.tree().tasks.get(&tid).cloned().ok_or(Errno::ESRCH)
}

/// The credentials of the thread `h` (the caller's own are current; others' as published).
pub(super) fn creds_of(t: &Task, h: &TaskHandle) -> Option<Creds> {
    if h.tid() == t.tid {
        return Some(t.creds.clone());
    }
    h.view.lock().unwrap().as_ref().map(|v| v.creds.clone())
}

/// Linux's `check_same_owner`: the caller's effective UID is the target's real or effective
/// UID. Acting on a thread that fails it needs CAP_SYS_NICE.
fn same_owner(t: &Task, h: &TaskHandle) -> bool {
    creds_of(t, h).is_some_and(|c| owns(t, &c))
}

/// Whether the caller's effective UID is the real or effective UID of `c`.
fn owns(t: &Task, c: &Creds) -> bool {
    t.creds.euid == c.uid || t.creds.euid == c.euid
}

/// Whether the caller may give `h` the nice value `nice`: within the target's RLIMIT_NICE
/// (whose value 1..40 stands for nice 19..-20), or with CAP_SYS_NICE.
fn can_nice(t: &Task, h: &TaskHandle, nice: i32) -> bool {
    let limit = h.tg.limits.lock().unwrap()[libc::RLIMIT_NICE as usize].cur;
    (20 - nice) as u64 <= limit || t.creds.has_cap(cap::SYS_NICE)
}

/// An exited, unreaped process a PRIO_PROCESS `who` names that no live thread answers to:
/// Linux still finds its leader. Its last credentials, nice value and RLIMIT_NICE.
fn zombie_target(t: &Task, which: i32, who: i32) -> Option<(Creds, i32, u64)> {
    if which != PRIO_PROCESS {
        return None;
    }
    zombie_remains(t, who)
}

/// An exited, unreaped process `pid` names that no live thread answers to (Linux still finds
/// its leader until it is reaped): its last credentials, nice value and RLIMIT_NICE.
fn zombie_remains(t: &Task, pid: i32) -> Option<(Creds, i32, u64)> {
    if pid == 0 || thread_arg(t, pid).is_ok() {
        return None;
    }
    let tgid = t.lookup_pid(pid)?;
    let tree = t.kernel.tree();
    let p = tree.procs.get(&tgid).filter(|p| p.zombie.is_some())?;
    let (creds, nice) = p.remains.clone()?;
    let limit = p.tg.limits.lock().unwrap()[libc::RLIMIT_NICE as usize].cur;
    Some((creds, nice, limit))
}

/// The threads a get/setpriority `(which, who)` names.
///
/// # Errors
/// EINVAL for an unknown `which`.
fn prio_targets(t: &Task, which: i32, who: i32) -> Result<Vec<Arc<TaskHandle>>, Errno> {
    match which {
        PRIO_PROCESS => Ok(thread_arg(t, who).into_iter().collect()),
        PRIO_PGRP => {
            let tree = t.kernel.tree();
            let pgid = if who == 0 {
                tree.procs.get(&t.tg.tgid).map(|p| p.pgid)
            } else {
                t.lookup_pid(who)
            };
            let Some(pgid) = pgid else {
                return Ok(Vec::new());
            };
            Ok(tree
                .tasks
                .values()
                .filter(|h| tree.procs.get(&h.tg.tgid).is_some_and(|p| p.pgid == pgid))
                .cloned()
                .collect())
        }
        PRIO_USER => {
            let uid = if who == 0 { t.creds.uid } else { who as u32 };
            let all: Vec<Arc<TaskHandle>> = t.kernel.tree().tasks.values().cloned().collect();
            Ok(all
                .into_iter()
                .filter(|h| creds_of(t, h).is_some_and(|c| c.uid == uid))
                .collect())
        }
        _ => Err(Errno::EINVAL),
    }
}

/// getpriority(2): the raw system call's 20 - nice of the highest-priority match (1..=40).
pub fn getpriority(t: &mut Task, which: i32, who: i32) -> SysResult {
    if let Some((_, nice, _)) = zombie_target(t, which, who) {
        return Ok((20 - nice) as u64);
    }
    prio_targets(t, which, who)?
        .iter()
        .map(|h| 20 - h.sched.lock().unwrap().nice)
        .max()
        .map(|p| p as u64)
        .ok_or(Errno::ESRCH)
}

/// setpriority(2): `niceval` clamped to -20..=19 on every match. Another user's thread needs
/// CAP_SYS_NICE (EPERM); lowering the nice value beyond RLIMIT_NICE needs it too (EACCES). As
/// Linux, a failure on one match sticks and later matches are still changed.
pub fn setpriority(t: &mut Task, which: i32, who: i32, niceval: i32) -> SysResult {
    let nice = niceval.clamp(MIN_NICE, MAX_NICE);
    if let Some((creds, current, limit)) = zombie_target(t, which, who) {
        // The checks of a live target; the value then dies with the process.
        let owner = t.creds.euid == creds.uid || t.creds.euid == creds.euid;
        let nice_cap = t.creds.has_cap(cap::SYS_NICE);
        if !owner && !nice_cap {
            return Err(Errno::EPERM);
        }
        if nice < current && (20 - nice) as u64 > limit && !nice_cap {
            return Err(Errno::EACCES);
        }
        return Ok(0);
    }
    let mut result = Err(Errno::ESRCH);
    for h in prio_targets(t, which, who)? {
        if !same_owner(t, &h) && !t.creds.has_cap(cap::SYS_NICE) {
            result = Err(Errno::EPERM);
            continue;
        }
        let current = h.sched.lock().unwrap().nice;
        if nice < current && !can_nice(t, &h, nice) {
            result = Err(Errno::EACCES);
            continue;
        }
        h.sched.lock().unwrap().nice = nice;
        if result == Err(Errno::ESRCH) {
            result = Ok(0);
        }
    }
    result
}

const IOPRIO_WHO_PROCESS: i32 = 1;
const IOPRIO_WHO_PGRP: i32 = 2;
const IOPRIO_WHO_USER: i32 = 3;
const IOPRIO_CLASS_SHIFT: u32 = 13;
const IOPRIO_CLASS_NONE: u32 = 0;
const IOPRIO_CLASS_RT: u32 = 1;
const IOPRIO_CLASS_BE: u32 = 2;
const IOPRIO_CLASS_IDLE: u32 = 3;
/// Levels of the RT and BE classes (IOPRIO_NR_LEVELS).
const IOPRIO_LEVELS: u32 = 8;

/// The threads an ioprio_get/ioprio_set `(which, who)` names: the same sets as
/// get/setpriority, under other numbers.
fn ioprio_targets(t: &Task, which: i32, who: i32) -> Result<Vec<Arc<TaskHandle>>, Errno> {
    let which = match which {
        IOPRIO_WHO_PROCESS => PRIO_PROCESS,
        IOPRIO_WHO_PGRP => PRIO_PGRP,
        IOPRIO_WHO_USER => PRIO_USER,
        _ => return Err(Errno::EINVAL),
    };
    prio_targets(t, which, who)
}

/// ioprio_set(2): the RT class needs CAP_SYS_NICE or CAP_SYS_ADMIN; another user's thread
/// needs CAP_SYS_NICE. Stops at the first thread it may not change, as Linux.
pub fn ioprio_set(t: &mut Task, which: i32, who: i32, ioprio: i32) -> SysResult {
    let ioprio = ioprio as u32;
    let class = (ioprio >> IOPRIO_CLASS_SHIFT) & 7;
    let level = ioprio & ((1 << IOPRIO_CLASS_SHIFT) - 1);
    match class {
        IOPRIO_CLASS_RT | IOPRIO_CLASS_BE => {
            if class == IOPRIO_CLASS_RT
                && !t.creds.has_cap(cap::SYS_NICE)
                && !t.creds.has_cap(cap::SYS_ADMIN)
            {
                return Err(Errno::EPERM);
            }
            if level >= IOPRIO_LEVELS {
                return Err(Errno::EINVAL);
            }
        }
        IOPRIO_CLASS_IDLE => {}
        IOPRIO_CLASS_NONE if level == 0 => {}
        _ => return Err(Errno::EINVAL),
    }
    let mut result = Err(Errno::ESRCH);
    for h in ioprio_targets(t, which, who)? {
        // Linux's set_task_ioprio compares the target's real UID with the caller's.
        let allowed = t.creds.has_cap(cap::SYS_NICE)
            || creds_of(t, &h).is_some_and(|c| c.uid == t.creds.euid || c.uid == t.creds.uid);
        if !allowed {
            return Err(Errno::EPERM);
        }
        h.sched.lock().unwrap().ioprio = ioprio;
        result = Ok(0);
    }
    result
}

/// ioprio_get(2): the thread's I/O priority; for a group or user the highest (lowest
/// value) of theirs.
pub fn ioprio_get(t: &mut Task, which: i32, who: i32) -> SysResult {
    ioprio_targets(t, which, who)?
        .iter()
        .map(|h| h.sched.lock().unwrap().ioprio)
        .min()
        .map(u64::from)
        .ok_or(Errno::ESRCH)
}

/// A change of scheduling attributes; `None` keeps the thread's current value.
struct SchedChange {
    policy: Option<u32>,
    rt_priority: u32,
    nice: Option<i32>,
    reset_on_fork: Option<bool>,
}

/// Linux's `__sched_setscheduler` for the policies the sentry records: validates the change,
/// then applies Linux's permission rules unless the caller has CAP_SYS_NICE.
///
/// # Errors
/// EINVAL for an unknown policy or a priority that does not fit it; EPERM when the caller may
/// not make the change.
fn set_sched(t: &Task, h: &TaskHandle, change: SchedChange) -> Result<(), Errno> {
    let privileged = t.creds.has_cap(cap::SYS_NICE);
    let owner = privileged || same_owner(t, h);
    let limits = *h.tg.limits.lock().unwrap();
    let rtprio_limit = limits[libc::RLIMIT_RTPRIO as usize].cur;
    let nice_allowed =
        |nice: i32| privileged || (20 - nice) as u64 <= limits[libc::RLIMIT_NICE as usize].cur;

    let mut cur = h.sched.lock().unwrap();
    let policy = change.policy.unwrap_or(cur.policy);
    let reset_on_fork = change.reset_on_fork.unwrap_or(cur.reset_on_fork);
    if ![SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE].contains(&policy) {
        return Err(Errno::EINVAL);
    }
    let rt = SchedAttr::is_rt_policy(policy);
    if change.rt_priority > MAX_RT_PRIORITY || rt != (change.rt_priority != 0) {
        return Err(Errno::EINVAL);
    }
    // Only the fair policies take a nice value; sched_setscheduler keeps the current one.
    let nice = match change.nice {
        Some(n) if !rt => n.clamp(MIN_NICE, MAX_NICE),
        _ => cur.nice,
    };
    if !privileged {
        let denied = (!rt && nice < cur.nice && !nice_allowed(nice))
            || (rt && policy != cur.policy && rtprio_limit == 0)
            || (rt
                && change.rt_priority > cur.rt_priority
                && u64::from(change.rt_priority) > rtprio_limit)
            || (cur.policy == SCHED_IDLE && policy != SCHED_IDLE && !nice_allowed(cur.nice))
            || !owner
            || (cur.reset_on_fork && !reset_on_fork);
        if denied {
            return Err(Errno::EPERM);
        }
    }
    cur.policy = policy;
    cur.rt_priority = change.rt_priority;
    cur.nice = nice;
    cur.reset_on_fork = reset_on_fork;
    Ok(())
}

/// The priority in a `struct sched_param`. Linux reads the int as unsigned, so a negative
/// one fails the range check (EINVAL) like any other priority that does not fit.
fn read_param(t: &Task, param: UserAddr) -> Result<u32, Errno> {
    Ok(t.mm.read_obj::<i32>(param)? as u32)
}

/// sched_setscheduler(2)
pub fn sched_setscheduler(t: &mut Task, pid: i32, policy: i32, param: UserAddr) -> SysResult {
    if policy < 0 || pid < 0 || param.is_null() {
        return Err(Errno::EINVAL);
    }
    let prio = read_param(t, param)?;
    let h = thread_arg(t, pid)?;
    let policy = policy as u32;
    let change = SchedChange {
        policy: Some(policy & !SCHED_RESET_ON_FORK),
        rt_priority: prio,
        nice: None,
        reset_on_fork: Some(policy & SCHED_RESET_ON_FORK != 0),
    };
    set_sched(t, &h, change)?;
    Ok(0)
}

/// sched_setparam(2): the priority under the thread's current policy.
pub fn sched_setparam(t: &mut Task, pid: i32, param: UserAddr) -> SysResult {
    if pid < 0 || param.is_null() {
        return Err(Errno::EINVAL);
    }
    let prio = read_param(t, param)?;
    let h = thread_arg(t, pid)?;
    let change = SchedChange {
        policy: None,
        rt_priority: prio,
        nice: None,
        reset_on_fork: None,
    };
    set_sched(t, &h, change)?;
    Ok(0)
}

/// sched_getscheduler(2): the policy, with SCHED_RESET_ON_FORK when it is set.
pub fn sched_getscheduler(t: &mut Task, pid: i32) -> SysResult {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let s = thread_arg(t, pid)?.sched.lock().unwrap().clone();
    let flag = if s.reset_on_fork {
        SCHED_RESET_ON_FORK
    } else {
        0
    };
    Ok(u64::from(s.policy | flag))
}

/// sched_getparam(2)
pub fn sched_getparam(t: &mut Task, pid: i32, param: UserAddr) -> SysResult {
    if pid < 0 || param.is_null() {
        return Err(Errno::EINVAL);
    }
    let prio = thread_arg(t, pid)?.sched.lock().unwrap().rt_priority as i32;
    t.mm.write_obj(param, &prio)?;
    Ok(0)
}

/// sched_get_priority_max(2)
pub fn sched_get_priority_max(_t: &mut Task, policy: i32) -> SysResult {
    match policy as u32 {
        SCHED_FIFO | SCHED_RR => Ok(u64::from(MAX_RT_PRIORITY)),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// sched_get_priority_min(2)
pub fn sched_get_priority_min(_t: &mut Task, policy: i32) -> SysResult {
    match policy as u32 {
        SCHED_FIFO | SCHED_RR => Ok(1),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// SCHED_DEADLINE: known to the priority-range calls, refused (EINVAL) as a policy to set.
const SCHED_DEADLINE: u32 = 6;

/// sched_rr_get_interval(2): SCHED_RR's time slice; 0 for the other policies (FIFO has none,
/// and the fair class reports none on current kernels).
pub fn sched_rr_get_interval(t: &mut Task, pid: i32, tp: UserAddr) -> SysResult {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let policy = thread_arg(t, pid)?.sched.lock().unwrap().policy;
    let slice = if policy == SCHED_RR {
        RR_TIMESLICE_NS
    } else {
        0
    };
    t.mm.write_obj(tp, &Timespec::from_nanos(slice))?;
    Ok(0)
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SchedAttrAbi {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const SCHED_ATTR_SIZE_VER0: u32 = 48;
const SCHED_ATTR_SIZE: u32 = std::mem::size_of::<SchedAttrAbi>() as u32;
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
const SCHED_FLAG_UTIL_CLAMP: u64 = 0x60;
/// Every flag Linux knows (SCHED_FLAG_ALL and SCHED_FLAG_SUGOV).
const SCHED_FLAGS_KNOWN: u64 = 0x7f | 0x1000_0000;

/// Reads a `struct sched_attr` of the size it declares, as Linux's `sched_copy_attr`.
///
/// # Errors
/// E2BIG (after writing the size the sentry knows into `size`) for a size below the first
/// version or above a page, or for nonzero bytes past the fields the sentry knows.
fn read_sched_attr(t: &Task, uattr: UserAddr) -> Result<SchedAttrAbi, Errno> {
    let size = match t.mm.read_obj::<u32>(uattr)? {
        0 => SCHED_ATTR_SIZE_VER0,
        n => n,
    };
    let too_big = |t: &Task| {
        // Linux ignores a fault on this write-back too.
        let _ = t.mm.write_obj(uattr, &SCHED_ATTR_SIZE);
        Errno::E2BIG
    };
    if !(SCHED_ATTR_SIZE_VER0..=4096).contains(&size) {
        return Err(too_big(t));
    }
    let bytes = t.mm.read_bytes(uattr, size as usize)?;
    let known = (size.min(SCHED_ATTR_SIZE)) as usize;
    if bytes[known..].iter().any(|&b| b != 0) {
        return Err(too_big(t));
    }
    let mut raw = [0u8; SCHED_ATTR_SIZE as usize];
    raw[..known].copy_from_slice(&bytes[..known]);
    let mut attr = SchedAttrAbi::read_from_bytes(&raw).expect("sized");
    attr.size = size;
    Ok(attr)
}

/// sched_setattr(2) for SCHED_OTHER, BATCH, IDLE, FIFO and RR. SCHED_DEADLINE is EINVAL and
/// utilization clamping EOPNOTSUPP, as on a kernel built without them.
pub fn sched_setattr(t: &mut Task, pid: i32, uattr: UserAddr, flags: u32) -> SysResult {
    if uattr.is_null() || pid < 0 || flags != 0 {
        return Err(Errno::EINVAL);
    }
    let attr = read_sched_attr(t, uattr)?;
    if attr.flags & SCHED_FLAG_UTIL_CLAMP != 0 && attr.size < SCHED_ATTR_SIZE {
        return Err(Errno::EINVAL);
    }
    if (attr.policy as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let h = thread_arg(t, pid)?;
    if attr.flags & !SCHED_FLAGS_KNOWN != 0 {
        return Err(Errno::EINVAL);
    }
    if attr.flags & SCHED_FLAG_UTIL_CLAMP != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let keep_policy = attr.flags & SCHED_FLAG_KEEP_POLICY != 0;
    let change = if attr.flags & SCHED_FLAG_KEEP_PARAMS != 0 {
        let cur = h.sched.lock().unwrap().clone();
        SchedChange {
            policy: (!keep_policy).then_some(attr.policy),
            rt_priority: cur.rt_priority,
            nice: None,
            reset_on_fork: Some(attr.flags & SCHED_FLAG_RESET_ON_FORK != 0),
        }
    } else {
        SchedChange {
            policy: (!keep_policy).then_some(attr.policy),
            rt_priority: attr.priority,
            nice: Some(attr.nice),
            reset_on_fork: Some(attr.flags & SCHED_FLAG_RESET_ON_FORK != 0),
        }
    };
    set_sched(t, &h, change)?;
    Ok(0)
}

/// sched_getattr(2): `size` bytes at most, with `size` set to what was written.
pub fn sched_getattr(t: &mut Task, pid: i32, uattr: UserAddr, size: u32, flags: u32) -> SysResult {
    if uattr.is_null() || pid < 0 || !(SCHED_ATTR_SIZE_VER0..=4096).contains(&size) || flags != 0 {
        return Err(Errno::EINVAL);
    }
    let s = thread_arg(t, pid)?.sched.lock().unwrap().clone();
    let rt = SchedAttr::is_rt_policy(s.policy);
    let out = SchedAttrAbi {
        size: size.min(SCHED_ATTR_SIZE),
        policy: s.policy,
        flags: if s.reset_on_fork {
            SCHED_FLAG_RESET_ON_FORK
        } else {
            0
        },
        nice: if rt { 0 } else { s.nice },
        priority: s.rt_priority,
        ..SchedAttrAbi::default()
    };
    t.mm.write_bytes(uattr, &out.as_bytes()[..out.size as usize])?;
    Ok(0)
}

/// The sandbox's CPUs as an affinity mask of `words` 64-bit words.
fn sandbox_mask() -> Vec<u64> {
    let ncpu = crate::procfs::host_cpus();
    (0..ncpu.div_ceil(64))
        .map(|w| {
            let bits = (ncpu - w * 64).min(64);
            if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            }
        })
        .collect()
}

/// The thread's affinity within the sandbox's CPUs.
fn affinity_of(h: &TaskHandle) -> Vec<u64> {
    let all = sandbox_mask();
    match &h.sched.lock().unwrap().affinity {
        Some(mask) => mask.iter().zip(&all).map(|(m, a)| m & a).collect(),
        None => all,
    }
}

/// sched_getaffinity(2): the thread's CPUs; returns the size of the kernel's mask (a whole
/// number of words covering the sandbox's CPUs).
pub fn sched_getaffinity(t: &mut Task, pid: i32, len: usize, mask: UserAddr) -> SysResult {
    let ncpu = crate::procfs::host_cpus();
    if len.saturating_mul(8) < ncpu || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let h = thread_arg(t, pid)?;
    let bytes: Vec<u8> = affinity_of(&h)
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let n = bytes.len().min(len);
    t.mm.write_bytes(mask, &bytes[..n])?;
    Ok(n as u64)
}

/// sched_setaffinity(2): the mask is limited to the sandbox's CPUs; nothing left is EINVAL.
/// Another user's thread needs CAP_SYS_NICE (EPERM). An exited, unreaped process is still
/// found, as Linux finds its leader: the call is checked the same way and, as the process
/// never runs again, changes nothing.
pub fn sched_setaffinity(t: &mut Task, pid: i32, len: usize, mask: UserAddr) -> SysResult {
    let all = sandbox_mask();
    let want = len.min(all.len() * 8);
    let mut bytes = t.mm.read_bytes(mask, want)?;
    bytes.resize(all.len() * 8, 0);
    let target = match thread_arg(t, pid) {
        Ok(h) => {
            let owned = same_owner(t, &h);
            (Some(h), owned)
        }
        Err(e) => {
            let (creds, _, _) = zombie_remains(t, pid).ok_or(e)?;
            (None, owns(t, &creds))
        }
    };
    if !target.1 && !t.creds.has_cap(cap::SYS_NICE) {
        return Err(Errno::EPERM);
    }
    let new: Vec<u64> = bytes
        .chunks_exact(8)
        .zip(&all)
        .map(|(c, a)| u64::from_le_bytes(c.try_into().expect("8 bytes")) & a)
        .collect();
    if new.iter().all(|&w| w == 0) {
        return Err(Errno::EINVAL);
    }
    if let Some(h) = target.0 {
        h.sched.lock().unwrap().affinity = Some(new);
    }
    Ok(0)
}

/// sched_yield(2)
pub fn sched_yield(_t: &mut Task) -> SysResult {
    std::thread::yield_now();
    Ok(0)
}

/// getcpu(2): the lowest CPU the thread may run on, node 0.
pub fn getcpu(t: &mut Task, cpu: UserAddr, node: UserAddr) -> SysResult {
    if !cpu.is_null() {
        let first = affinity_of(&t.handle)
            .iter()
            .enumerate()
            .find(|(_, &w)| w != 0)
            .map_or(0, |(i, w)| i as u32 * 64 + w.trailing_zeros());
        t.mm.write_obj(cpu, &first)?;
    }
    if !node.is_null() {
        t.mm.write_obj(node, &0u32)?;
    }
    Ok(0)
}
