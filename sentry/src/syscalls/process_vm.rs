//! process_vm_readv(2), process_vm_writev(2): copying between the caller's memory and
//! another process's, with Linux's ptrace-attach permission check and partial transfers.

use crate::abi::{Errno, Iovec, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::mm::MemoryManager;

/// The most bytes staged in the sentry at a time.
const CHUNK: usize = 64 << 10;

/// Which way the data moves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// From the remote process into the caller (`process_vm_readv`).
    Read,
    /// From the caller into the remote process (`process_vm_writev`).
    Write,
}

/// process_vm_readv(2)
pub fn process_vm_readv(
    t: &mut Task,
    pid: i32,
    local: UserAddr,
    liovcnt: u64,
    remote: UserAddr,
    riovcnt: u64,
    flags: u64,
) -> SysResult {
    transfer(
        t,
        pid,
        local,
        liovcnt,
        remote,
        riovcnt,
        flags,
        Direction::Read,
    )
}

/// process_vm_writev(2)
pub fn process_vm_writev(
    t: &mut Task,
    pid: i32,
    local: UserAddr,
    liovcnt: u64,
    remote: UserAddr,
    riovcnt: u64,
    flags: u64,
) -> SysResult {
    transfer(
        t,
        pid,
        local,
        liovcnt,
        remote,
        riovcnt,
        flags,
        Direction::Write,
    )
}

#[allow(clippy::too_many_arguments)]
fn transfer(
    t: &mut Task,
    pid: i32,
    local: UserAddr,
    liovcnt: u64,
    remote: UserAddr,
    riovcnt: u64,
    flags: u64,
    dir: Direction,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let count = |n: u64| usize::try_from(n).map_err(|_| Errno::EINVAL);
    // As Linux: nothing to copy on either side is 0, before the target is looked up.
    let liov = t.mm.read_iovecs(local, count(liovcnt)?)?;
    if liov.iter().all(|v| v.len == 0) {
        return Ok(0);
    }
    let riov = t.mm.read_iovecs(remote, count(riovcnt)?)?;
    if riov.iter().all(|v| v.len == 0) {
        return Ok(0);
    }
    let target = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    let handle = t
        .kernel
        .tree()
        .tasks
        .get(&target)
        .cloned()
        .ok_or(Errno::ESRCH)?;
    let view = handle.view.lock().unwrap().clone().ok_or(Errno::ESRCH)?;
    if !std::sync::Arc::ptr_eq(&handle.tg, &t.tg) && !t.creds.may_ptrace_attach(&view.creds, false)
    {
        return Err(Errno::EPERM);
    }
    let (src, src_iov, dst, dst_iov) = match dir {
        Direction::Read => (&view.mm, &riov, &t.mm, &liov),
        Direction::Write => (&t.mm, &liov, &view.mm, &riov),
    };
    let done = copy_iovecs(src, src_iov, dst, dst_iov);
    match done {
        0 => Err(Errno::EFAULT),
        n => Ok(n as u64),
    }
}

/// Copies from `src`'s memory described by `src_iov` to `dst`'s described by `dst_iov`, in
/// order, until either list ends or a fault stops it; returns the bytes copied.
fn copy_iovecs(
    src: &MemoryManager,
    src_iov: &[Iovec],
    dst: &MemoryManager,
    dst_iov: &[Iovec],
) -> usize {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0usize;
    let (mut si, mut soff) = (0usize, 0u64);
    let (mut di, mut doff) = (0usize, 0u64);
    loop {
        while si < src_iov.len() && soff == src_iov[si].len {
            si += 1;
            soff = 0;
        }
        while di < dst_iov.len() && doff == dst_iov[di].len {
            di += 1;
            doff = 0;
        }
        let (Some(s), Some(d)) = (src_iov.get(si), dst_iov.get(di)) else {
            return total;
        };
        let n = (s.len - soff).min(d.len - doff).min(CHUNK as u64) as usize;
        let got = src
            .copy_in(s.base.wrapping_add(soff), &mut buf[..n])
            .unwrap_or(0);
        let put = if got == 0 {
            0
        } else {
            dst.copy_out(d.base.wrapping_add(doff), &buf[..got])
                .unwrap_or(0)
        };
        total += put;
        if put < n {
            return total;
        }
        soff += n as u64;
        doff += n as u64;
    }
}
