//! Futexes: wait queues keyed by user address, and robust lists at thread exit.
//!
//! Private futexes (and any futex in private memory) are keyed by (address space, address);
//! futexes in shared mappings by memory-file offset, so processes sharing the mapping meet.
//! The check of the futex word and the enqueue happen under one lock, so a wake between
//! them is never lost.
//!
//! Priority-inheritance futexes (FUTEX_LOCK_PI and friends) keep their own queues: the word
//! holds the owner's TID with FUTEX_WAITERS and FUTEX_OWNER_DIED, changed by atomic
//! compare-and-exchange on the application's memory; an unlock hands the lock to the first
//! waiter by writing its TID. Priorities are not boosted (the sentry schedules no real-time
//! tasks), so "priority inheritance" is only the ownership protocol.
//!
//! # Lock order
//! `Futexes::buckets` or `Futexes::pi` (never both) → `MemoryManager::inner` (reading the
//! futex word) → `Waiter`. The task tree is looked up before `Futexes::pi`, never under it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Task;
use crate::abi::Errno;
use crate::mm::usermem::UserAddr;
use crate::mm::MemoryManager;
use crate::waiter::Waiter;

/// What a futex is identified by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FutexKey {
    Private { mm: usize, addr: u64 },
    Shared { offset: u64 },
}

/// The key of the futex at `addr` in `mm`.
///
/// # Errors
/// EINVAL for a misaligned address, EFAULT for an unmapped one.
pub fn key(mm: &Arc<MemoryManager>, addr: u64, private: bool) -> Result<FutexKey, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let private_key = FutexKey::Private {
        mm: Arc::as_ptr(mm) as usize,
        addr,
    };
    if private {
        return Ok(private_key);
    }
    Ok(match mm.shared_offset(addr)? {
        Some(offset) => FutexKey::Shared { offset },
        None => private_key,
    })
}

#[derive(Debug)]
struct FutexWaiter {
    waiter: Arc<Waiter>,
    bitset: u32,
    woken: Arc<AtomicBool>,
}

/// A thread blocked in FUTEX_LOCK_PI(2): the TID the lock's word gets when it is handed to
/// it, and the flag set (after that write) when it is woken.
#[derive(Debug)]
struct PiWaiter {
    waiter: Arc<Waiter>,
    tid: u32,
    woken: Arc<AtomicBool>,
    /// Where the waiter sees the lock's word, for a handoff at its owner's exit.
    mm: Arc<MemoryManager>,
    addr: u64,
}

/// All futex wait queues of the kernel.
#[derive(Debug, Default)]
pub struct Futexes {
    buckets: Mutex<HashMap<FutexKey, Vec<FutexWaiter>>>,
    /// Waiters of PI futexes, first come first served.
    pi: Mutex<HashMap<FutexKey, VecDeque<PiWaiter>>>,
}

/// `FUTEX_WAKE_OP` operation, decoded.
#[derive(Debug, Clone, Copy)]
pub struct WakeOp {
    pub op: u32,
    pub oparg: u32,
    pub cmp: u32,
    pub cmparg: u32,
}

impl WakeOp {
    pub fn decode(v: u32) -> WakeOp {
        let shift = v >> 31 != 0;
        let op = (v >> 28) & 7;
        let mut oparg = (v >> 12) & 0xfff;
        if shift {
            oparg = 1u32.checked_shl(oparg).unwrap_or(0);
        }
        WakeOp {
            op,
            oparg,
            cmp: (v >> 24) & 0xf,
            cmparg: v & 0xfff,
        }
    }

    /// The new value of the word.
    ///
    /// # Errors
    /// ENOSYS for an unknown operation.
    pub fn apply(&self, old: u32) -> Result<u32, Errno> {
        Ok(match self.op {
            0 => self.oparg,
            1 => old.wrapping_add(self.oparg),
            2 => old | self.oparg,
            3 => old & !self.oparg,
            4 => old ^ self.oparg,
            _ => return Err(Errno::ENOSYS),
        })
    }

    /// Whether the second futex is woken, from the old value.
    ///
    /// # Errors
    /// ENOSYS for an unknown comparison.
    pub fn compare(&self, old: u32) -> Result<bool, Errno> {
        let (a, b) = (old as i32, self.cmparg as i32);
        Ok(match self.cmp {
            0 => a == b,
            1 => a != b,
            2 => a < b,
            3 => a <= b,
            4 => a > b,
            5 => a >= b,
            _ => return Err(Errno::ENOSYS),
        })
    }
}

impl Futexes {
    /// FUTEX_WAIT(_BITSET): sleeps while the word at `addr` equals `val`.
    ///
    /// # Errors
    /// EAGAIN when the word differs, ETIMEDOUT, EINTR (interrupted), EFAULT.
    pub fn wait(
        &self,
        t: &mut Task,
        key: FutexKey,
        addr: u64,
        val: u32,
        bitset: u32,
        deadline: Option<Instant>,
    ) -> Result<(), Errno> {
        let woken = Arc::new(AtomicBool::new(false));
        let waiter = t.handle.waiter.clone();
        {
            let mut b = self.buckets.lock().unwrap();
            let cur: u32 = t.mm.read_obj(UserAddr(addr))?;
            if cur != val {
                return Err(Errno::EAGAIN);
            }
            b.entry(key).or_default().push(FutexWaiter {
                waiter: waiter.clone(),
                bitset,
                woken: woken.clone(),
            });
        }
        loop {
            if woken.load(Ordering::Acquire) {
                return Ok(());
            }
            let interrupted = t.interrupted();
            if interrupted || !waiter.wait(deadline) {
                if self.dequeue(&woken) {
                    if interrupted {
                        t.restart = Some(super::task::Restart::Sys);
                        return Err(Errno::EINTR);
                    }
                    return Err(Errno::ETIMEDOUT);
                }
                return Ok(());
            }
        }
    }

    /// futex_waitv(2): sleeps on every futex of `futexes` (key, address, expected value)
    /// at once, while each word holds its value, until one is woken; returns the index of
    /// the woken one (the highest, if wakes raced, as Linux).
    ///
    /// # Errors
    /// EAGAIN when a word differs, ETIMEDOUT, EINTR (restartable), EFAULT.
    pub fn wait_multiple(
        &self,
        t: &mut Task,
        futexes: &[(FutexKey, u64, u32)],
        deadline: Option<Instant>,
    ) -> Result<usize, Errno> {
        let waiter = t.handle.waiter.clone();
        let flags: Vec<Arc<AtomicBool>> = futexes
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        {
            let mut b = self.buckets.lock().unwrap();
            for &(_, addr, val) in futexes {
                let cur: u32 = t.mm.read_obj(UserAddr(addr))?;
                if cur != val {
                    return Err(Errno::EAGAIN);
                }
            }
            for (&(key, _, _), woken) in futexes.iter().zip(&flags) {
                b.entry(key).or_default().push(FutexWaiter {
                    waiter: waiter.clone(),
                    bitset: u32::MAX,
                    woken: woken.clone(),
                });
            }
        }
        loop {
            let any_woken = flags.iter().any(|w| w.load(Ordering::Acquire));
            let interrupted = !any_woken && t.interrupted();
            if any_woken || interrupted || !waiter.wait(deadline) {
                let mut last_woken = None;
                for (i, woken) in flags.iter().enumerate() {
                    if !self.dequeue(woken) {
                        last_woken = Some(i);
                    }
                }
                return match last_woken {
                    Some(i) => Ok(i),
                    None if interrupted => {
                        t.restart = Some(super::task::Restart::Sys);
                        Err(Errno::EINTR)
                    }
                    None => Err(Errno::ETIMEDOUT),
                };
            }
        }
    }

    /// Removes the waiter with flag `woken` wherever requeues moved it; false if a wake
    /// already took it.
    fn dequeue(&self, woken: &Arc<AtomicBool>) -> bool {
        let mut b = self.buckets.lock().unwrap();
        if woken.load(Ordering::Acquire) {
            return false;
        }
        let mut found = None;
        for (k, v) in b.iter_mut() {
            if let Some(i) = v.iter().position(|w| Arc::ptr_eq(&w.woken, woken)) {
                v.remove(i);
                found = Some(*k);
                break;
            }
        }
        if let Some(k) = found {
            if b.get(&k).is_some_and(Vec::is_empty) {
                b.remove(&k);
            }
        }
        found.is_some()
    }

    fn wake_locked(
        b: &mut HashMap<FutexKey, Vec<FutexWaiter>>,
        key: FutexKey,
        n: u32,
        bitset: u32,
    ) -> u32 {
        let Some(v) = b.get_mut(&key) else {
            return 0;
        };
        let mut woke = 0;
        let mut i = 0;
        while i < v.len() && woke < n {
            if v[i].bitset & bitset != 0 {
                let w = v.remove(i);
                w.woken.store(true, Ordering::Release);
                w.waiter.notify();
                woke += 1;
            } else {
                i += 1;
            }
        }
        if v.is_empty() {
            b.remove(&key);
        }
        woke
    }

    /// FUTEX_WAKE(_BITSET): wakes up to `n` waiters whose bitset intersects `bitset`.
    ///
    /// # Errors
    /// EINVAL when threads wait on the futex as a PI lock (FUTEX_LOCK_PI), as Linux's wake
    /// refuses a queue holding PI waiters: they are woken only by FUTEX_UNLOCK_PI.
    pub fn wake(&self, key: FutexKey, n: u32, bitset: u32) -> Result<u32, Errno> {
        if self.has_pi_waiters(key) {
            return Err(Errno::EINVAL);
        }
        Ok(Self::wake_locked(
            &mut self.buckets.lock().unwrap(),
            key,
            n,
            bitset,
        ))
    }

    /// Whether a FUTEX_LOCK_PI waiter is queued on `key`.
    fn has_pi_waiters(&self, key: FutexKey) -> bool {
        self.pi
            .lock()
            .unwrap()
            .get(&key)
            .is_some_and(|v| !v.is_empty())
    }

    /// FUTEX_(CMP_)REQUEUE: wakes `nwake` waiters of `from`, moves up to `nmove` of the rest
    /// to `to`. With `expect`, first checks the word at `addr` (EAGAIN if it differs).
    ///
    /// # Errors
    /// EAGAIN, EFAULT.
    #[allow(clippy::too_many_arguments)]
    pub fn requeue(
        &self,
        t: &Task,
        from: FutexKey,
        to: FutexKey,
        addr: u64,
        nwake: u32,
        nmove: u32,
        expect: Option<u32>,
    ) -> Result<u32, Errno> {
        let mut b = self.buckets.lock().unwrap();
        if let Some(e) = expect {
            let cur: u32 = t.mm.read_obj(UserAddr(addr))?;
            if cur != e {
                return Err(Errno::EAGAIN);
            }
        }
        let woke = Self::wake_locked(&mut b, from, nwake, u32::MAX);
        let mut moved = Vec::new();
        if let Some(v) = b.get_mut(&from) {
            let k = (nmove as usize).min(v.len());
            moved = v.drain(..k).collect();
            if v.is_empty() {
                b.remove(&from);
            }
        }
        let n = moved.len() as u32;
        if !moved.is_empty() {
            b.entry(to).or_default().extend(moved);
        }
        Ok(woke + n)
    }

    /// FUTEX_WAKE_OP. The read-modify-write of the second word is atomic with respect to
    /// other futex operations, not to application stores.
    ///
    /// # Errors
    /// EFAULT, ENOSYS for unknown operations, EINVAL for PI waiters on either futex.
    #[allow(clippy::too_many_arguments)]
    pub fn wake_op(
        &self,
        t: &Task,
        key1: FutexKey,
        key2: FutexKey,
        addr2: u64,
        n1: u32,
        n2: u32,
        op: WakeOp,
    ) -> Result<u32, Errno> {
        if self.has_pi_waiters(key1) || self.has_pi_waiters(key2) {
            return Err(Errno::EINVAL);
        }
        let mut b = self.buckets.lock().unwrap();
        let old: u32 = t.mm.read_obj(UserAddr(addr2))?;
        let new = op.apply(old)?;
        t.mm.write_obj(UserAddr(addr2), &new)?;
        let mut woke = Self::wake_locked(&mut b, key1, n1, u32::MAX);
        if op.compare(old)? {
            woke += Self::wake_locked(&mut b, key2, n2, u32::MAX);
        }
        Ok(woke)
    }
}

const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Rounds of a PI operation lost to concurrent changes of the word before it gives up with
/// EAGAIN, so that an application rewriting the word cannot keep the sentry looping.
const PI_RETRIES: u32 = 128;

impl Futexes {
    /// FUTEX_LOCK_PI(2) and FUTEX_TRYLOCK_PI: takes the PI lock at `addr` for the caller,
    /// sleeping (until `deadline`) while another thread holds it. A lock whose word holds
    /// no TID is taken as is, keeping FUTEX_OWNER_DIED for the C library to report.
    ///
    /// # Errors
    /// EDEADLK when the caller holds it, ESRCH when the owner TID names no thread, EAGAIN
    /// for a held lock with `try_only` (or a word changing under every attempt),
    /// ETIMEDOUT, EINTR (restarted), EFAULT.
    pub fn lock_pi(
        &self,
        t: &mut Task,
        key: FutexKey,
        addr: u64,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<(), Errno> {
        let tid = t.vtid() as u32;
        let at = UserAddr(addr);
        let mut lost = 0;
        loop {
            lost += 1;
            if lost > PI_RETRIES {
                return Err(Errno::EAGAIN);
            }
            let seen: u32 = t.mm.read_obj(at)?;
            let owner = seen & FUTEX_TID_MASK;
            if owner == tid {
                return Err(Errno::EDEADLK);
            }
            if owner != 0 && !thread_exists(t, owner) {
                return Err(Errno::ESRCH);
            }
            let woken = Arc::new(AtomicBool::new(false));
            {
                let mut q = self.pi.lock().unwrap();
                let cur: u32 = t.mm.read_obj(at)?;
                if cur & FUTEX_TID_MASK == 0 {
                    let waiters = q.get(&key).is_some_and(|v| !v.is_empty());
                    let new =
                        (cur & FUTEX_OWNER_DIED) | tid | if waiters { FUTEX_WAITERS } else { 0 };
                    if t.mm.compare_exchange_u32(at, cur, new)? == cur {
                        return Ok(());
                    }
                    continue;
                }
                if cur & FUTEX_TID_MASK != owner {
                    continue;
                }
                if cur & FUTEX_WAITERS == 0
                    && t.mm.compare_exchange_u32(at, cur, cur | FUTEX_WAITERS)? != cur
                {
                    continue;
                }
                if try_only {
                    return Err(Errno::EAGAIN);
                }
                q.entry(key).or_default().push_back(PiWaiter {
                    waiter: t.handle.waiter.clone(),
                    tid,
                    woken: woken.clone(),
                    mm: t.mm.clone(),
                    addr,
                });
            }
            let waiter = t.handle.waiter.clone();
            loop {
                if woken.load(Ordering::Acquire) {
                    break;
                }
                let interrupted = t.interrupted();
                // The owner was looked up before this waiter queued: had it exited in
                // between, its exit handed nothing to this waiter. So the wait looks again
                // now and then, and leaves as Linux's LOCK_PI finds a dead owner (ESRCH).
                let recheck = Instant::now() + PI_OWNER_RECHECK;
                let until = deadline.map_or(recheck, |d| d.min(recheck));
                if !interrupted && waiter.wait(Some(until)) {
                    continue;
                }
                let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                let gone = if interrupted || timed_out {
                    None
                } else {
                    match t.mm.read_obj::<u32>(at) {
                        Err(e) => Some(e),
                        Ok(cur) if cur & FUTEX_TID_MASK == owner && !thread_exists(t, owner) => {
                            Some(Errno::ESRCH)
                        }
                        Ok(_) => continue,
                    }
                };
                if self.pi_dequeue(key, &woken) {
                    if interrupted {
                        t.restart = Some(super::task::Restart::NoIntr);
                        return Err(Errno::EINTR);
                    }
                    return Err(gone.unwrap_or(Errno::ETIMEDOUT));
                }
                break;
            }
            // Woken: either the unlock handed the lock over (the word holds our TID), or
            // its owner died and the lock is free to take again.
            let cur: u32 = t.mm.read_obj(at)?;
            if cur & FUTEX_TID_MASK == tid {
                return Ok(());
            }
            lost = 0;
        }
    }

    /// Removes the PI waiter with flag `woken` from `key`'s queue; false if an unlock or
    /// an owner's death already took it.
    fn pi_dequeue(&self, key: FutexKey, woken: &Arc<AtomicBool>) -> bool {
        let mut q = self.pi.lock().unwrap();
        if woken.load(Ordering::Acquire) {
            return false;
        }
        let Some(v) = q.get_mut(&key) else {
            return false;
        };
        let Some(i) = v.iter().position(|w| Arc::ptr_eq(&w.woken, woken)) else {
            return false;
        };
        v.remove(i);
        if v.is_empty() {
            q.remove(&key);
        }
        true
    }

    /// FUTEX_UNLOCK_PI(2): releases the caller's PI lock at `addr`, handing it to the first
    /// waiter (its TID and FUTEX_WAITERS in the word, as Linux) or leaving the word 0.
    ///
    /// # Errors
    /// EPERM unless the word names the caller, EAGAIN when it changed meanwhile, EFAULT.
    pub fn unlock_pi(&self, t: &Task, key: FutexKey, addr: u64) -> Result<(), Errno> {
        let tid = t.vtid() as u32;
        let at = UserAddr(addr);
        let mut q = self.pi.lock().unwrap();
        let cur: u32 = t.mm.read_obj(at)?;
        if cur & FUTEX_TID_MASK != tid {
            return Err(Errno::EPERM);
        }
        let next = q.get(&key).and_then(|v| v.front()).map(|w| w.tid);
        let new = next.map_or(0, |n| n | FUTEX_WAITERS);
        if t.mm.compare_exchange_u32(at, cur, new)? != cur {
            return Err(Errno::EAGAIN);
        }
        if next.is_some() {
            Self::pi_wake_locked(&mut q, key, 1);
        }
        Ok(())
    }

    /// Wakes up to `n` PI waiters of `key`, first come first served.
    fn pi_wake_locked(q: &mut HashMap<FutexKey, VecDeque<PiWaiter>>, key: FutexKey, n: usize) {
        let Some(v) = q.get_mut(&key) else {
            return;
        };
        for w in v.drain(..n.min(v.len())) {
            w.woken.store(true, Ordering::Release);
            w.waiter.notify();
        }
        if v.is_empty() {
            q.remove(&key);
        }
    }

    /// Hands each PI lock the exiting thread `t` still holds and others wait for to its
    /// first waiter, with FUTEX_OWNER_DIED and FUTEX_WAITERS, as Linux's exit does for the
    /// PI locks a task owns (robust ones were released by the robust list before). A lock
    /// in private memory is only looked for in `t`'s own address space.
    pub fn exit_pi(&self, t: &Task) {
        let tid = t.vtid() as u32;
        let own_mm = Arc::as_ptr(&t.mm) as usize;
        let mut q = self.pi.lock().unwrap();
        let mut handed = Vec::new();
        for (key, v) in q.iter() {
            if matches!(key, FutexKey::Private { mm, .. } if *mm != own_mm) {
                continue;
            }
            let Some(w) = v.front() else {
                continue;
            };
            let at = UserAddr(w.addr);
            let Ok(mut cur) = w.mm.read_obj::<u32>(at) else {
                continue;
            };
            for _ in 0..PI_RETRIES {
                if cur & FUTEX_TID_MASK != tid {
                    break;
                }
                let new = w.tid | FUTEX_WAITERS | FUTEX_OWNER_DIED;
                match w.mm.compare_exchange_u32(at, cur, new) {
                    Ok(old) if old == cur => {
                        handed.push(*key);
                        break;
                    }
                    Ok(old) => cur = old,
                    Err(_) => break,
                }
            }
        }
        for key in handed {
            Self::pi_wake_locked(&mut q, key, 1);
        }
    }

    /// Wakes the first PI waiter of `key` to try the lock again (its owner died).
    fn pi_wake_one(&self, key: FutexKey) {
        Self::pi_wake_locked(&mut self.pi.lock().unwrap(), key, 1);
    }
}

/// Whether `tid` (as the caller's PID namespace sees it) names a live thread.
fn thread_exists(t: &Task, tid: u32) -> bool {
    let Ok(local) = i32::try_from(tid) else {
        return false;
    };
    t.lookup_pid(local)
        .is_some_and(|g| t.kernel.tree().tasks.contains_key(&g))
}
/// How often a PI waiter checks that the owner it queued behind still exists.
const PI_OWNER_RECHECK: std::time::Duration = std::time::Duration::from_millis(200);
/// Longest robust list walked (Linux's ROBUST_LIST_LIMIT).
const ROBUST_LIST_LIMIT: usize = 2048;

/// Marks the robust futexes the exiting thread holds as OWNER_DIED and wakes a waiter of
/// each (robust_list(2) semantics), then hands the other PI locks it holds to their waiters
/// ([`Futexes::exit_pi`]). A corrupt list just ends the walk.
pub fn exit_robust_list(t: &mut Task) {
    walk_robust_list(t);
    t.kernel.futexes.exit_pi(t);
}

fn walk_robust_list(t: &mut Task) {
    let (head, _) = t.robust_list;
    if head == 0 {
        return;
    }
    let Ok(words) = t.mm.read_obj::<[u64; 3]>(UserAddr(head)) else {
        return;
    };
    let (mut entry, offset, pending) = (words[0], words[1] as i64, words[2]);
    let mut seen = 0;
    while entry != head && entry != 0 && seen < ROBUST_LIST_LIMIT {
        let next = t.mm.read_obj::<u64>(UserAddr(entry)).unwrap_or(0);
        if entry != pending {
            handle_robust_entry(t, entry & !1, offset);
        }
        entry = next;
        seen += 1;
    }
    if pending != 0 {
        handle_robust_entry(t, pending & !1, offset);
    }
    t.robust_list = (0, 0);
}

/// Marks one robust futex of the exiting thread OWNER_DIED (atomically, as the other
/// threads change the word with their own atomics) and wakes one waiter of it: a FUTEX_WAIT
/// waiter, or a FUTEX_LOCK_PI waiter, which then takes the lock with OWNER_DIED kept.
fn handle_robust_entry(t: &Task, entry: u64, offset: i64) {
    let addr = entry.wrapping_add(offset as u64);
    let at = UserAddr(addr);
    let Ok(mut val) = t.mm.read_obj::<u32>(at) else {
        return;
    };
    for _ in 0..PI_RETRIES {
        if val & FUTEX_TID_MASK != t.vtid() as u32 {
            return;
        }
        let new = (val & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        match t.mm.compare_exchange_u32(at, val, new) {
            Ok(old) if old == val => break,
            Ok(old) => val = old,
            Err(_) => return,
        }
    }
    if val & FUTEX_WAITERS != 0 {
        if let Ok(k) = key(&t.mm, addr, false) {
            let futexes = &t.kernel.futexes;
            // A PI lock's waiters refuse the plain wake (EINVAL) and take the PI one.
            if futexes.wake(k, 1, u32::MAX).is_err() {
                futexes.pi_wake_one(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_respects_count_and_bitset() {
        let f = Futexes::default();
        let k = FutexKey::Private { mm: 1, addr: 8 };
        let mut flags = Vec::new();
        {
            let mut b = f.buckets.lock().unwrap();
            for bits in [1u32, 2, 1, 3] {
                let woken = Arc::new(AtomicBool::new(false));
                flags.push(woken.clone());
                b.entry(k).or_default().push(FutexWaiter {
                    waiter: Waiter::new(),
                    bitset: bits,
                    woken,
                });
            }
        }
        assert_eq!(f.wake(k, 1, 2), Ok(1));
        assert!(flags[1].load(Ordering::Relaxed));
        assert_eq!(f.wake(k, 10, 1), Ok(3));
        assert_eq!(f.wake(k, 10, u32::MAX), Ok(0));
        assert!(!f.dequeue(&flags[0]));
    }

    #[test]
    fn wake_op_decoding() {
        // FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_GT, 0)
        let op = WakeOp::decode((1 << 28) | (1 << 12) | (4 << 24));
        assert_eq!(op.apply(5).unwrap(), 6);
        assert!(op.compare(5).unwrap());
        assert!(!op.compare(0).unwrap());
    }
}
