//! membarrier(2). The application's threads run in host processes of their own, so a barrier
//! on them is the host's global one (`platform::global_memory_barrier`), which the expedited
//! commands use too: stronger than they promise, and slower (a scheduler grace period).

use crate::abi::{Errno, SysResult};
use crate::kernel::Task;

const QUERY: i32 = 0;
const GLOBAL: i32 = 1;
const GLOBAL_EXPEDITED: i32 = 2;
const REGISTER_GLOBAL_EXPEDITED: i32 = 4;
const PRIVATE_EXPEDITED: i32 = 8;
const REGISTER_PRIVATE_EXPEDITED: i32 = 16;

/// The commands [`QUERY`] reports: all those above when the host has a global barrier.
const SUPPORTED: i32 = GLOBAL
    | GLOBAL_EXPEDITED
    | REGISTER_GLOBAL_EXPEDITED
    | PRIVATE_EXPEDITED
    | REGISTER_PRIVATE_EXPEDITED;

/// membarrier(2): QUERY, GLOBAL, the global and private expedited commands and their
/// registrations (PRIVATE_EXPEDITED is EPERM until the process registered for it). The
/// SYNC_CORE and RSEQ variants, GET_REGISTRATIONS and unknown commands are EINVAL, as Linux
/// answers commands it does not offer; so is every command but QUERY on a host without a
/// global barrier (which QUERY then reports as 0).
pub fn membarrier(t: &mut Task, cmd: i32, flags: u32, _cpu: i32) -> SysResult {
    let have = platform::have_global_memory_barrier();
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    match cmd {
        QUERY => Ok(if have { SUPPORTED as u64 } else { 0 }),
        _ if !have => Err(Errno::EINVAL),
        GLOBAL | GLOBAL_EXPEDITED | PRIVATE_EXPEDITED => {
            if cmd == PRIVATE_EXPEDITED && !t.mm.membarrier_private() {
                return Err(Errno::EPERM);
            }
            platform::global_memory_barrier()
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)))?;
            Ok(0)
        }
        REGISTER_GLOBAL_EXPEDITED => Ok(0),
        REGISTER_PRIVATE_EXPEDITED => {
            t.mm.register_membarrier_private();
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
