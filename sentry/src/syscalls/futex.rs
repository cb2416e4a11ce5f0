//! futex(2) and the futex2 calls futex_wake(2), futex_wait(2), futex_waitv(2) and
//! futex_requeue(2).

use std::time::{Duration, Instant};

use crate::abi::{Errno, SysResult, Timespec};
use crate::kernel::futex::{key, WakeOp};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_LOCK_PI: i32 = 6;
const FUTEX_UNLOCK_PI: i32 = 7;
const FUTEX_TRYLOCK_PI: i32 = 8;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_LOCK_PI2: i32 = 13;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

/// The deadline for a futex wait: relative for FUTEX_WAIT, absolute (monotonic, or realtime
/// with FUTEX_CLOCK_REALTIME) for FUTEX_WAIT_BITSET.
fn deadline(
    t: &Task,
    timeout: UserAddr,
    absolute: bool,
    realtime: bool,
) -> Result<Option<Instant>, Errno> {
    if timeout.is_null() {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(timeout)?;
    let ns = ts.to_nanos()?;
    let rel = if absolute {
        let clock = if realtime {
            nix::time::ClockId::CLOCK_REALTIME
        } else {
            nix::time::ClockId::CLOCK_MONOTONIC
        };
        let now = nix::time::clock_gettime(clock).map_err(|_| Errno::EINVAL)?;
        let now = now.tv_sec() as u128 * 1_000_000_000 + now.tv_nsec() as u128;
        ns.saturating_sub(now)
    } else {
        ns
    };
    let d = Duration::from_nanos(rel.min(u64::MAX as u128) as u64);
    Ok(Some(Instant::now().checked_add(d).unwrap_or_else(|| {
        Instant::now() + Duration::from_secs(1 << 40)
    })))
}

/// futex(2)
pub fn futex(
    t: &mut Task,
    uaddr: UserAddr,
    op: i32,
    val: u32,
    timeout: UserAddr,
    uaddr2: UserAddr,
    val3: u32,
) -> SysResult {
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if realtime && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT && cmd != FUTEX_LOCK_PI2 {
        return Err(Errno::ENOSYS);
    }
    let kernel = t.kernel.clone();
    let futexes = &kernel.futexes;
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let k = key(&t.mm, uaddr.0, private)?;
            let d = deadline(t, timeout, cmd == FUTEX_WAIT_BITSET, realtime)?;
            futexes.wait(t, k, uaddr.0, val, bitset, d)?;
            Ok(0)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let k = key(&t.mm, uaddr.0, private)?;
            Ok(u64::from(futexes.wake(
                k,
                wake_count(val as i32),
                bitset,
            )?))
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            // The timeout argument carries the requeue count.
            let nmove = timeout.0 as u32;
            if (val as i32) < 0 || (nmove as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            let k1 = key(&t.mm, uaddr.0, private)?;
            let k2 = key(&t.mm, uaddr2.0, private)?;
            let expect = (cmd == FUTEX_CMP_REQUEUE).then_some(val3);
            Ok(futexes.requeue(t, k1, k2, uaddr.0, val, nmove, expect)? as u64)
        }
        FUTEX_WAKE_OP => {
            let k1 = key(&t.mm, uaddr.0, private)?;
            let k2 = key(&t.mm, uaddr2.0, private)?;
            let n2 = timeout.0 as u32;
            Ok(futexes.wake_op(t, k1, k2, uaddr2.0, val, n2, WakeOp::decode(val3))? as u64)
        }
        FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_TRYLOCK_PI => {
            let k = key(&t.mm, uaddr.0, private)?;
            // The timeout is absolute: on CLOCK_REALTIME for FUTEX_LOCK_PI, on the clock
            // FUTEX_CLOCK_REALTIME chooses for FUTEX_LOCK_PI2; FUTEX_TRYLOCK_PI has none.
            let d = if cmd == FUTEX_TRYLOCK_PI {
                None
            } else {
                deadline(t, timeout, true, realtime || cmd == FUTEX_LOCK_PI)?
            };
            futexes.lock_pi(t, k, uaddr.0, d, cmd == FUTEX_TRYLOCK_PI)?;
            Ok(0)
        }
        FUTEX_UNLOCK_PI => {
            let k = key(&t.mm, uaddr.0, private)?;
            futexes.unlock_pi(t, k, uaddr.0)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// How many waiters a wake of `nr` wakes at most: Linux's loop wakes before it counts, so a
/// count of 0 or below wakes one (futex_wake(2) returns early for 0 instead).
fn wake_count(nr: i32) -> u32 {
    u32::try_from(nr).map_or(1, |n| n.max(1))
}

/// futex2 flags: the futex's size (only 32 bits is offered, as Linux), NUMA placement
/// (not offered) and the private flag.
const FUTEX2_SIZE_U32: u32 = 0x02;
const FUTEX2_SIZE_MASK: u32 = 0x03;
const FUTEX2_NUMA: u32 = 0x04;
const FUTEX2_MPOL: u32 = 0x08;
const FUTEX2_PRIVATE: u32 = 128;

/// The futex2 `flags` decoded: whether the futex is private. EINVAL for unknown flags, a
/// size other than 32 bits, NUMA placement (not offered), or `vals` wider than 32 bits.
fn futex2_flags(flags: u32, vals: &[u64]) -> Result<bool, Errno> {
    if flags & !(FUTEX2_SIZE_MASK | FUTEX2_NUMA | FUTEX2_MPOL | FUTEX2_PRIVATE) != 0
        || flags & FUTEX2_SIZE_MASK != FUTEX2_SIZE_U32
        || flags & (FUTEX2_NUMA | FUTEX2_MPOL) != 0
        || vals.iter().any(|&v| v > u64::from(u32::MAX))
    {
        return Err(Errno::EINVAL);
    }
    Ok(flags & FUTEX2_PRIVATE != 0)
}

/// The deadline of a futex2 wait: `timeout`, if not null, is absolute on `clockid`
/// (CLOCK_MONOTONIC or CLOCK_REALTIME, else EINVAL; not checked without a timeout).
fn futex2_deadline(t: &Task, timeout: UserAddr, clockid: i32) -> Result<Option<Instant>, Errno> {
    if timeout.is_null() {
        return Ok(None);
    }
    let realtime = match clockid {
        libc::CLOCK_MONOTONIC => false,
        libc::CLOCK_REALTIME => true,
        _ => return Err(Errno::EINVAL),
    };
    deadline(t, timeout, true, realtime)
}

/// futex_wake(2): wakes up to `nr` waiters whose bitset meets `mask`; unlike FUTEX_WAKE,
/// `nr` 0 wakes nobody.
pub fn futex_wake(t: &mut Task, uaddr: UserAddr, mask: u64, nr: i32, flags: u32) -> SysResult {
    let private = futex2_flags(flags, &[mask])?;
    if mask == 0 {
        return Err(Errno::EINVAL);
    }
    let k = key(&t.mm, uaddr.0, private)?;
    if nr == 0 {
        return Ok(0);
    }
    Ok(u64::from(t.kernel.futexes.wake(
        k,
        wake_count(nr),
        mask as u32,
    )?))
}

/// futex_wait(2): FUTEX_WAIT_BITSET with the futex2 flags; the timeout is absolute on
/// `clockid` (CLOCK_MONOTONIC or CLOCK_REALTIME, else EINVAL).
pub fn futex_wait(
    t: &mut Task,
    uaddr: UserAddr,
    val: u64,
    mask: u64,
    flags: u32,
    timeout: UserAddr,
    clockid: i32,
) -> SysResult {
    let private = futex2_flags(flags, &[val, mask])?;
    if mask == 0 {
        return Err(Errno::EINVAL);
    }
    let d = futex2_deadline(t, timeout, clockid)?;
    let k = key(&t.mm, uaddr.0, private)?;
    let kernel = t.kernel.clone();
    kernel
        .futexes
        .wait(t, k, uaddr.0, val as u32, mask as u32, d)?;
    Ok(0)
}

/// `struct futex_waitv`: one futex of a futex2 vector call.
#[derive(
    Debug, Clone, Copy, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// futex_requeue(2): wakes up to `nr_wake` waiters of `waiters[0]` and moves up to
/// `nr_requeue` more to `waiters[1]`, if `waiters[0]`'s word still holds its `val` (else
/// EAGAIN); each futex carries its own futex2 flags.
pub fn futex_requeue(
    t: &mut Task,
    waiters: UserAddr,
    flags: u32,
    nr_wake: i32,
    nr_requeue: i32,
) -> SysResult {
    if flags != 0 || waiters.is_null() {
        return Err(Errno::EINVAL);
    }
    let v: [FutexWaitv; 2] = t.mm.read_obj(waiters)?;
    let mut keys = Vec::with_capacity(2);
    for w in &v {
        if w.reserved != 0 {
            return Err(Errno::EINVAL);
        }
        keys.push(futex2_flags(w.flags, &[w.val])?);
    }
    let (Ok(nr_wake), Ok(nr_requeue)) = (u32::try_from(nr_wake), u32::try_from(nr_requeue)) else {
        return Err(Errno::EINVAL);
    };
    let from = key(&t.mm, v[0].uaddr, keys[0])?;
    let to = key(&t.mm, v[1].uaddr, keys[1])?;
    let kernel = t.kernel.clone();
    let n = kernel.futexes.requeue(
        t,
        from,
        to,
        v[0].uaddr,
        nr_wake,
        nr_requeue,
        Some(v[0].val as u32),
    )?;
    Ok(u64::from(n))
}

/// Most futexes one futex_waitv(2) waits on (Linux's FUTEX_WAITV_MAX).
const FUTEX_WAITV_MAX: u32 = 128;

/// futex_waitv(2): waits on up to 128 futexes at once, each with its futex2 flags, until
/// one is woken (its index is returned) or the absolute `timeout` on `clockid` passes.
pub fn futex_waitv(
    t: &mut Task,
    waiters: UserAddr,
    nr_futexes: u32,
    flags: u32,
    timeout: UserAddr,
    clockid: i32,
) -> SysResult {
    if flags != 0 || nr_futexes == 0 || nr_futexes > FUTEX_WAITV_MAX || waiters.is_null() {
        return Err(Errno::EINVAL);
    }
    let d = futex2_deadline(t, timeout, clockid)?;
    let mut futexes = Vec::with_capacity(nr_futexes as usize);
    for i in 0..u64::from(nr_futexes) {
        let at = UserAddr(waiters.0.wrapping_add(i * size_of::<FutexWaitv>() as u64));
        let w: FutexWaitv = t.mm.read_obj(at)?;
        if w.reserved != 0 {
            return Err(Errno::EINVAL);
        }
        let private = futex2_flags(w.flags, &[w.val])?;
        futexes.push((key(&t.mm, w.uaddr, private)?, w.uaddr, w.val as u32));
    }
    let kernel = t.kernel.clone();
    let woken = kernel.futexes.wait_multiple(t, &futexes, d)?;
    Ok(woken as u64)
}
