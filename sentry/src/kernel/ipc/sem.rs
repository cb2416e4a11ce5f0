//! System V semaphore sets (`semget`, `semop`/`semtimedop`, `semctl`).
//!
//! A `semop` applies all its operations or none. When one cannot proceed (a decrement below
//! zero, a wait for zero) the task sleeps on the set's wait queue and is counted in that
//! semaphore's `semncnt`/`semzcnt` until it retries successfully, times out, is interrupted
//! or the set is removed (EIDRM). SEM_UNDO adjustments are kept per process and set and
//! applied when the process exits.
//!
//! # Lock order
//! `Sem::inner` → a set's `WaitQueue`; process exit takes `Sem::inner` under `Kernel::tree`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{now, IpcPerm64, Lookup, Perm, Registry, IPC_NOWAIT};
use crate::abi::Errno;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::waiter::WaitQueue;

/// Linux's defaults (`include/uapi/linux/sem.h`).
pub const SEMMSL: i32 = 32000;
pub const SEMMNS: i64 = 1_024_000_000;
pub const SEMOPM: usize = 500;
pub const SEMMNI: usize = 32000;
pub const SEMVMX: i32 = 32767;
const SEMAEM: i32 = SEMVMX;
const SEMUSZ: i32 = 20;

/// `sem_flg`: undo at exit.
pub const SEM_UNDO: i16 = 0x1000;

/// `semctl` commands beyond the common ones.
const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETALL: i32 = 13;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;
const SETALL: i32 = 17;
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;

/// `struct sembuf`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SemBuf {
    pub num: u16,
    pub op: i16,
    pub flg: i16,
}

/// `struct semid64_ds` (x86-64).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SemidDs {
    perm: IpcPerm64,
    otime: i64,
    unused1: u64,
    ctime: i64,
    unused2: u64,
    nsems: u64,
    unused: [u64; 2],
}

/// `struct seminfo`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SemInfo {
    semmap: i32,
    semmni: i32,
    semmns: i32,
    semmnu: i32,
    semmsl: i32,
    semopm: i32,
    semume: i32,
    semusz: i32,
    semvmx: i32,
    semaem: i32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Semaphore {
    val: i32,
    /// The process that last changed it.
    pid: i32,
    /// Tasks waiting for it to grow (`semncnt`) or to reach zero (`semzcnt`).
    ncnt: u32,
    zcnt: u32,
}

#[derive(Debug)]
struct Set {
    perm: Perm,
    otime: i64,
    ctime: i64,
    sems: Vec<Semaphore>,
    /// Woken when a value changes or the set is removed.
    queue: Arc<WaitQueue>,
}

impl Set {
    fn stat(&self, id: i32) -> SemidDs {
        SemidDs {
            perm: self.perm.to_abi(id),
            otime: self.otime,
            ctime: self.ctime,
            nsems: self.sems.len() as u64,
            ..SemidDs::default()
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    sets: Registry<Set>,
    /// Semaphores in all sets (bounded by SEMMNS).
    total: i64,
    /// SEM_UNDO adjustments: (process, set) → one value per semaphore.
    undo: HashMap<(i32, i32), Vec<i32>>,
}

impl Inner {
    fn forget_undo(&mut self, id: i32, sem: Option<usize>) {
        match sem {
            None => self.undo.retain(|&(_, s), _| s != id),
            Some(n) => {
                for (_, adj) in self.undo.iter_mut().filter(|((_, s), _)| *s == id) {
                    adj[n] = 0;
                }
            }
        }
    }
}

/// A wait a `semop` is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// For semaphore `n` to grow.
    Grow(usize),
    /// For semaphore `n` to reach zero.
    Zero(usize),
}

/// A semaphore set in a checkpoint image: per semaphore its value and the process that
/// last changed it (waiters are not saved: a waiting `semop` is restarted and counts
/// itself again).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SetImage {
    pub perm: Perm,
    pub otime: i64,
    pub ctime: i64,
    pub sems: Vec<(i32, i32)>,
}

/// The semaphore sets and the SEM_UNDO adjustments of the namespace's processes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SemImage {
    pub sets: super::RegistryImage<SetImage>,
    /// (process, set identifier, one adjustment per semaphore).
    pub undo: Vec<(i32, i32, Vec<i32>)>,
}

/// The namespace's semaphore sets.
#[derive(Debug, Default)]
pub struct Sem {
    inner: Mutex<Inner>,
}

impl Sem {
    /// The sets and undo adjustments, for a checkpoint.
    pub fn saved(&self) -> SemImage {
        let g = self.lock();
        SemImage {
            sets: g.sets.saved(|s| SetImage {
                perm: s.perm,
                otime: s.otime,
                ctime: s.ctime,
                sems: s.sems.iter().map(|x| (x.val, x.pid)).collect(),
            }),
            undo: g
                .undo
                .iter()
                .map(|(&(tgid, id), adj)| (tgid, id, adj.clone()))
                .collect(),
        }
    }

    /// Puts back what [`Sem::saved`] gave.
    ///
    /// # Errors
    /// A malformed image (a value out of range, an adjustment of no set), or a namespace
    /// that has sets already.
    pub fn restore(&self, image: &SemImage) -> Result<(), String> {
        let mut g = self.lock();
        if !g.sets.is_empty() {
            return Err("the namespace has semaphore sets already".into());
        }
        let sets = Registry::restored(&image.sets, |s| {
            if s.sems.len() > SEMMSL as usize
                || s.sems.iter().any(|&(v, _)| !(0..=SEMVMX).contains(&v))
            {
                return Err("a semaphore set out of range".into());
            }
            Ok(Set {
                perm: s.perm,
                otime: s.otime,
                ctime: s.ctime,
                sems: s
                    .sems
                    .iter()
                    .map(|&(val, pid)| Semaphore {
                        val,
                        pid,
                        ..Semaphore::default()
                    })
                    .collect(),
                queue: Arc::default(),
            })
        })?;
        let mut undo = HashMap::new();
        for (tgid, id, adj) in &image.undo {
            let n = sets.get(*id).map_err(|_| "an undo of no set")?.sems.len();
            if adj.len() != n {
                return Err("an undo of the wrong length".into());
            }
            undo.insert((*tgid, *id), adj.clone());
        }
        g.total = sets.iter().map(|(_, s)| s.sems.len() as i64).sum();
        g.sets = sets;
        g.undo = undo;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// `semget(2)`.
    ///
    /// # Errors
    /// EINVAL (`nsems` out of range), ENOENT, EEXIST, EACCES, ENOSPC.
    pub fn get(&self, t: &Task, key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
        if !(0..=SEMMSL).contains(&nsems) {
            return Err(Errno::EINVAL);
        }
        let mut i = self.lock();
        match i.sets.lookup_key(key, flags)? {
            Lookup::Existing(id) => {
                let set = i.sets.get(id)?;
                if nsems as usize > set.sems.len() {
                    return Err(Errno::EINVAL);
                }
                set.perm.check(&t.creds, flags as u32)?;
                Ok(id)
            }
            Lookup::Create => {
                if nsems == 0 {
                    return Err(Errno::EINVAL);
                }
                if i.total + i64::from(nsems) > SEMMNS {
                    return Err(Errno::ENOSPC);
                }
                let set = Set {
                    perm: Perm::new(key, &t.creds, flags),
                    otime: 0,
                    ctime: now(),
                    sems: vec![Semaphore::default(); nsems as usize],
                    queue: Arc::default(),
                };
                let id = i.sets.insert(key, SEMMNI, set)?;
                i.total += i64::from(nsems);
                Ok(id)
            }
        }
    }

    /// `semop(2)`/`semtimedop(2)`: applies `ops` atomically, sleeping until they can be
    /// (or until `deadline`).
    ///
    /// # Errors
    /// E2BIG, EINVAL, EFBIG, EACCES, ERANGE, EAGAIN (IPC_NOWAIT or timeout), EIDRM (removed
    /// while waiting), EINTR (never restarted, as Linux).
    pub fn op(
        &self,
        t: &mut Task,
        id: i32,
        ops: &[SemBuf],
        deadline: Option<Instant>,
    ) -> Result<(), Errno> {
        if ops.len() > SEMOPM {
            return Err(Errno::E2BIG);
        }
        let pid = t.vtgid();
        let tgid = t.tg.tgid;
        let queue = {
            let i = self.lock();
            let set = i.sets.get(id)?;
            let max = ops.iter().map(|o| usize::from(o.num)).max().unwrap_or(0);
            if max >= set.sems.len() {
                return Err(Errno::EFBIG);
            }
            let alter = ops.iter().any(|o| o.op != 0);
            set.perm
                .check(&t.creds, if alter { 0o222 } else { 0o444 })?;
            set.queue.clone()
        };
        let mut counted: Option<Blocked> = None;
        let r = t.block_on(&[&queue], deadline, |_| {
            let mut i = self.lock();
            let r = match try_ops(&mut i, id, ops, pid, tgid) {
                Ok(None) => Some(Ok(())),
                Ok(Some((_, true))) => Some(Err(Errno::EAGAIN)),
                Ok(Some((b, false))) => {
                    if counted != Some(b) {
                        count(&mut i, id, counted, false);
                        count(&mut i, id, Some(b), true);
                        counted = Some(b);
                    }
                    None
                }
                Err(e) => Some(Err(e)),
            };
            if r.is_some() {
                count(&mut i, id, counted.take(), false);
            }
            r
        });
        if counted.is_some() {
            count(&mut self.lock(), id, counted, false);
        }
        match r {
            Err(Errno::ETIMEDOUT) => Err(Errno::EAGAIN),
            Err(Errno::EINTR) => {
                // Never restarted after a signal (signal(7)); a pause of the kernel (a
                // checkpoint) restarts it, unseen.
                if !t.kernel.freezer.is_frozen() {
                    t.restart = None;
                }
                Err(Errno::EINTR)
            }
            r => r,
        }
    }

    /// `semctl(2)`; `arg` is the `union semun` argument.
    ///
    /// # Errors
    /// EINVAL, EACCES, EPERM, ERANGE, EFAULT, EIDRM as Linux.
    pub fn ctl(
        &self,
        t: &mut Task,
        id: i32,
        semnum: i32,
        cmd: i32,
        arg: u64,
    ) -> Result<u64, Errno> {
        let ptr = UserAddr(arg);
        let pid = t.vtgid();
        match cmd {
            super::IPC_INFO | SEM_INFO => {
                let i = self.lock();
                let mut info = SemInfo {
                    semmap: SEMMNS as i32,
                    semmni: SEMMNI as i32,
                    semmns: SEMMNS as i32,
                    semmnu: SEMMNS as i32,
                    semmsl: SEMMSL,
                    semopm: SEMOPM as i32,
                    semume: SEMOPM as i32,
                    semusz: SEMUSZ,
                    semvmx: SEMVMX,
                    semaem: SEMAEM,
                };
                if cmd == SEM_INFO {
                    info.semusz = i.sets.len() as i32;
                    info.semaem = i.sets.iter().map(|(_, s)| s.sems.len() as i32).sum();
                }
                let max = i.sets.max_index();
                drop(i);
                t.mm.write_obj(ptr, &info)?;
                Ok(max as u64)
            }
            SEM_STAT | SEM_STAT_ANY | super::IPC_STAT => {
                let (ds, ret) = {
                    let i = self.lock();
                    let (real, set) = if cmd == super::IPC_STAT {
                        (id, i.sets.get(id)?)
                    } else {
                        i.sets.at_index(id)?
                    };
                    if cmd != SEM_STAT_ANY {
                        set.perm.check(&t.creds, 0o444)?;
                    }
                    (
                        set.stat(real),
                        if cmd == super::IPC_STAT { 0 } else { real },
                    )
                };
                t.mm.write_obj(ptr, &ds)?;
                Ok(ret as u64)
            }
            super::IPC_SET => {
                let new: SemidDs = t.mm.read_obj(ptr)?;
                let mut i = self.lock();
                let set = i.sets.get_mut(id)?;
                set.perm.check_owner(&t.creds)?;
                set.perm.set(&new.perm);
                set.ctime = now();
                Ok(0)
            }
            super::IPC_RMID => {
                let mut i = self.lock();
                i.sets.get(id)?.perm.check_owner(&t.creds)?;
                let set = i.sets.remove(id).ok_or(Errno::EINVAL)?;
                i.total -= set.sems.len() as i64;
                i.forget_undo(id, None);
                set.queue.notify_all();
                Ok(0)
            }
            GETVAL | GETPID | GETNCNT | GETZCNT => {
                let i = self.lock();
                let set = i.sets.get(id)?;
                set.perm.check(&t.creds, 0o444)?;
                let s = usize::try_from(semnum)
                    .ok()
                    .and_then(|n| set.sems.get(n))
                    .ok_or(Errno::EINVAL)?;
                Ok(match cmd {
                    GETVAL => s.val as u64,
                    GETPID => s.pid as u64,
                    GETNCNT => u64::from(s.ncnt),
                    _ => u64::from(s.zcnt),
                })
            }
            GETALL => {
                let vals: Vec<u16> = {
                    let i = self.lock();
                    let set = i.sets.get(id)?;
                    set.perm.check(&t.creds, 0o444)?;
                    set.sems.iter().map(|s| s.val as u16).collect()
                };
                t.mm.write_bytes(ptr, vals.as_bytes())?;
                Ok(0)
            }
            SETVAL => {
                let val = arg as i32;
                let mut i = self.lock();
                let set = i.sets.get_mut(id)?;
                let n = usize::try_from(semnum)
                    .ok()
                    .filter(|&n| n < set.sems.len())
                    .ok_or(Errno::EINVAL)?;
                set.perm.check(&t.creds, 0o222)?;
                if !(0..=SEMVMX).contains(&val) {
                    return Err(Errno::ERANGE);
                }
                set.sems[n].val = val;
                set.sems[n].pid = pid;
                set.ctime = now();
                set.queue.notify_all();
                i.forget_undo(id, Some(n));
                Ok(0)
            }
            SETALL => {
                let n = {
                    let i = self.lock();
                    let set = i.sets.get(id)?;
                    set.perm.check(&t.creds, 0o222)?;
                    set.sems.len()
                };
                let vals: Vec<u16> = t.mm.read_slice(ptr, n)?;
                if vals.iter().any(|&v| i32::from(v) > SEMVMX) {
                    return Err(Errno::ERANGE);
                }
                let mut i = self.lock();
                let set = i.sets.get_mut(id)?;
                if set.sems.len() != n {
                    return Err(Errno::EIDRM);
                }
                for (s, &v) in set.sems.iter_mut().zip(&vals) {
                    s.val = i32::from(v);
                    s.pid = pid;
                }
                set.ctime = now();
                set.queue.notify_all();
                i.forget_undo(id, None);
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Applies and forgets the SEM_UNDO adjustments of the process `tgid`, which exited.
    pub fn apply_undo(&self, tgid: i32) {
        let mut i = self.lock();
        if i.undo.is_empty() {
            return;
        }
        let mine: Vec<(i32, Vec<i32>)> = i
            .undo
            .iter()
            .filter(|((p, _), _)| *p == tgid)
            .map(|(&(_, id), adj)| (id, adj.clone()))
            .collect();
        i.undo.retain(|&(p, _), _| p != tgid);
        for (id, adj) in mine {
            let Ok(set) = i.sets.get_mut(id) else {
                continue;
            };
            for (s, a) in set.sems.iter_mut().zip(adj) {
                if a != 0 {
                    s.val = (s.val + a).clamp(0, SEMVMX);
                    s.pid = tgid;
                }
            }
            set.otime = now();
            set.queue.notify_all();
        }
    }

    /// `/proc/sysvipc/sem`.
    pub fn proc_table(&self) -> String {
        let mut out =
            String::from("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n");
        let i = self.lock();
        for (id, s) in i.sets.iter() {
            let p = s.perm;
            out.push_str(&format!(
                "{:10} {:10}  {:4o} {:10} {:5} {:5} {:5} {:5} {:10} {:10}\n",
                p.key,
                id,
                p.mode,
                s.sems.len(),
                p.uid,
                p.gid,
                p.cuid,
                p.cgid,
                s.otime,
                s.ctime
            ));
        }
        out
    }
}

/// Adds (`add`) or removes one task from the wait count `b` of set `id`, if it still exists.
fn count(i: &mut Inner, id: i32, b: Option<Blocked>, add: bool) {
    let (Some(b), Ok(set)) = (b, i.sets.get_mut(id)) else {
        return;
    };
    let c = match b {
        Blocked::Grow(n) => &mut set.sems[n].ncnt,
        Blocked::Zero(n) => &mut set.sems[n].zcnt,
    };
    *c = if add { *c + 1 } else { c.saturating_sub(1) };
}

/// One attempt at `ops`: Ok(None) when applied; Ok(Some((wait, nowait))) when an operation
/// must wait (`nowait`: its IPC_NOWAIT is set).
///
/// # Errors
/// EIDRM when the set is gone (the caller checked it existed), ERANGE past SEMVMX.
fn try_ops(
    i: &mut Inner,
    id: i32,
    ops: &[SemBuf],
    pid: i32,
    tgid: i32,
) -> Result<Option<(Blocked, bool)>, Errno> {
    let set = i.sets.get_mut(id).map_err(|_| Errno::EIDRM)?;
    let mut vals: Vec<i32> = set.sems.iter().map(|s| s.val).collect();
    for o in ops {
        let n = usize::from(o.num);
        let v = &mut vals[n];
        let nowait = o.flg & IPC_NOWAIT as i16 != 0;
        if o.op == 0 {
            if *v != 0 {
                return Ok(Some((Blocked::Zero(n), nowait)));
            }
            continue;
        }
        let next = *v + i32::from(o.op);
        if next < 0 {
            return Ok(Some((Blocked::Grow(n), nowait)));
        }
        if next > SEMVMX {
            return Err(Errno::ERANGE);
        }
        *v = next;
    }
    let mut changed = false;
    for o in ops.iter().filter(|o| o.op != 0) {
        let s = &mut set.sems[usize::from(o.num)];
        s.pid = pid;
        changed = true;
    }
    for (s, v) in set.sems.iter_mut().zip(vals) {
        s.val = v;
    }
    set.otime = now();
    let nsems = set.sems.len();
    if changed {
        set.queue.notify_all();
    }
    for o in ops.iter().filter(|o| o.flg & SEM_UNDO != 0 && o.op != 0) {
        let adj = i.undo.entry((tgid, id)).or_insert_with(|| vec![0; nsems]);
        adj[usize::from(o.num)] -= i32::from(o.op);
    }
    Ok(None)
}
