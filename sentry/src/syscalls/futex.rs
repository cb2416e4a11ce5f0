//! futex(2).

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
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
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
    if realtime && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
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
            Ok(futexes.wake(k, val, bitset) as u64)
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
        _ => Err(Errno::ENOSYS),
    }
}
