//! kcmp(2): whether two tasks share a kernel resource (an open file description, address
//! space, fd table, filesystem context, signal handlers, I/O context, System V semaphore
//! undo list) or whether a file is a target of an epoll instance.
//!
//! Linux orders unequal resources by their obfuscated kernel addresses, so only equality
//! is dependable; here unequal resources are ordered by a keyed hash of the sentry object's
//! address (a key drawn once per sandbox), which is as consistent and leaks no address.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use super::pidfd::may_ptrace;
use crate::abi::{Errno, SysResult};
use crate::kernel::task::TaskView;
use crate::kernel::{Task, ThreadGroup};
use crate::mm::usermem::UserAddr;
use crate::vfs::FileKind;

const KCMP_FILE: i32 = 0;
const KCMP_VM: i32 = 1;
const KCMP_FILES: i32 = 2;
const KCMP_FS: i32 = 3;
const KCMP_SIGHAND: i32 = 4;
const KCMP_IO: i32 = 5;
const KCMP_SYSVSEM: i32 = 6;
const KCMP_EPOLL_TFD: i32 = 7;

/// `struct kcmp_epoll_slot`: the epoll fd in the second task, the target fd registered in
/// it, and which of that fd's registrations (there may be several files under one number).
#[derive(
    Debug, Clone, Copy, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct EpollSlot {
    efd: u32,
    tfd: u32,
    toff: u32,
}

/// One of the tasks compared: its process (for handlers and semaphore undo), its global
/// TID (for the I/O context) and its published resources.
struct Subject {
    tid: i32,
    tg: Arc<ThreadGroup>,
    view: TaskView,
}

fn subject(t: &Task, pid: i32) -> Result<Subject, Errno> {
    let tid = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    let tree = t.kernel.tree();
    let h = tree.tasks.get(&tid).ok_or(Errno::ESRCH)?;
    let view = h.view.lock().unwrap().clone().ok_or(Errno::ESRCH)?;
    Ok(Subject {
        tid,
        tg: h.tg.clone(),
        view,
    })
}

/// Linux's kcmp_ptr: 0 when equal, else 1 or 2 as the (obfuscated) addresses order.
fn order(a: usize, b: usize) -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let key = KEY.get_or_init(RandomState::new);
    if a == b {
        0
    } else if key.hash_one(a) < key.hash_one(b) {
        1
    } else {
        2
    }
}

fn addr<T: ?Sized>(p: &Arc<T>) -> usize {
    Arc::as_ptr(p).cast::<()>() as usize
}

/// kcmp(2). Both tasks must be ones the caller may inspect as ptrace's
/// PTRACE_MODE_READ_REALCREDS allows (else EPERM); KCMP_IO counts every task's I/O context
/// as its own (CLONE_IO sharing is not tracked) and KCMP_SYSVSEM a process's undo list as
/// shared by its threads.
pub fn kcmp(t: &mut Task, pid1: i32, pid2: i32, ty: i32, idx1: u64, idx2: u64) -> SysResult {
    let a = subject(t, pid1)?;
    let b = subject(t, pid2)?;
    for s in [&a, &b] {
        if !Arc::ptr_eq(&s.tg, &t.tg) && !may_ptrace(&t.creds, &s.view.creds, s.tg.dumpable()) {
            return Err(Errno::EPERM);
        }
    }
    let file_of = |s: &Subject, fd: u64| {
        let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
        s.view.fds.get(fd).map_err(|_| Errno::EBADF)
    };
    Ok(match ty {
        KCMP_FILE => order(addr(&file_of(&a, idx1)?), addr(&file_of(&b, idx2)?)),
        KCMP_VM => order(addr(&a.view.mm), addr(&b.view.mm)),
        KCMP_FILES => order(addr(&a.view.fds), addr(&b.view.fds)),
        KCMP_FS => order(addr(&a.view.fs), addr(&b.view.fs)),
        KCMP_SIGHAND | KCMP_SYSVSEM => order(addr(&a.tg), addr(&b.tg)),
        KCMP_IO => order(a.tid as usize, b.tid as usize),
        KCMP_EPOLL_TFD => {
            let file = file_of(&a, idx1)?;
            let slot: EpollSlot = t.mm.read_obj(UserAddr(idx2))?;
            let ep = file_of(&b, u64::from(slot.efd))?;
            let FileKind::Epoll(ep) = ep.kind() else {
                return Err(Errno::EINVAL);
            };
            let target = ep
                .saved()
                .into_iter()
                .filter(|(fd, ..)| i64::from(*fd) == i64::from(slot.tfd))
                .nth(slot.toff as usize)
                .map(|(_, f, ..)| f)
                .ok_or(Errno::ENOENT)?;
            order(addr(&file), addr(&target))
        }
        _ => return Err(Errno::EINVAL),
    })
}

#[cfg(test)]
mod tests {
    use super::order;

    #[test]
    fn equal_is_zero_and_unequal_orders_consistently() {
        assert_eq!(order(0x1000, 0x1000), 0);
        for (a, b) in [(0x1000, 0x2000), (8, 16), (usize::MAX, 0)] {
            let ab = order(a, b);
            assert!(ab == 1 || ab == 2, "{ab}");
            assert_eq!(order(b, a), 3 - ab);
            assert_eq!(order(a, b), ab, "the key is drawn once");
        }
    }
}
