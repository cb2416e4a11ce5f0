//! Linux native AIO: io_setup, io_destroy, io_submit, io_getevents, io_cancel. Requests run
//! synchronously inside io_submit (as the file's pread/pwrite/fsync would), and their
//! completions land in the context's ring ([`crate::kernel::aio`]), where io_getevents (or
//! libaio, reading the ring itself) finds them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::Perms;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{fd, sync, Fd};
use crate::abi::{Errno, Iovec, SysResult, Timespec};
use crate::kernel::aio::{Context, IoEvent, RING_NAME};
use crate::kernel::Task;
use crate::mm::filemap::FileMapping;
use crate::mm::usermem::UserAddr;
use crate::mm::{MmapRequest, Placement, VmaKind};

const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_PWRITE: u16 = 1;
const IOCB_CMD_FSYNC: u16 = 2;
const IOCB_CMD_FDSYNC: u16 = 3;
const IOCB_CMD_PREADV: u16 = 7;
const IOCB_CMD_PWRITEV: u16 = 8;
/// Vectored requests take at most this many segments (UIO_MAXIOV).
const UIO_MAXIOV: u64 = 1024;
/// The end of the user address range (x86-64 TASK_SIZE).
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// `struct iocb` (x86-64, little endian).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: i32,
    lio_opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// The context `ctx` names: the ring mapped at that address in the caller's address space.
///
/// # Errors
/// EINVAL when there is none or its header cannot be read (a ring made inaccessible).
fn lookup(t: &Task, ctx: u64) -> Result<Arc<Context>, Errno> {
    let id =
        t.mm.maps()
            .into_iter()
            .find(|m| m.start == ctx && matches!(&m.kind, VmaKind::Named(n) if n == RING_NAME))
            .map(|m| m.ino)
            .ok_or(Errno::EINVAL)?;
    t.mm.read_obj::<u32>(UserAddr(ctx))
        .map_err(|_| Errno::EINVAL)?;
    t.kernel.aio.get(id).ok_or(Errno::EINVAL)
}

/// io_setup(2)
pub fn io_setup(t: &mut Task, nr: u32, ctxp: UserAddr) -> SysResult {
    let cur: u64 = t.mm.read_obj(ctxp)?;
    if cur != 0 {
        return Err(Errno::EINVAL);
    }
    let cpus = u32::try_from(crate::procfs::host_cpus()).unwrap_or(u32::MAX);
    let mf = t.kernel.memory.clone();
    let ctx = t.kernel.aio.create(&mf, nr, cpus)?;
    let len = ctx.ring_len();
    let addr = t.mm.mmap(MmapRequest {
        placement: Placement::Hint(0),
        len,
        perms: Perms::RW,
        shared: true,
        kind: VmaKind::Named(RING_NAME.into()),
        file: Some(FileMapping {
            file: ctx.mappable(),
            offset: 0,
            may_write: true,
            may_exec: true,
            dev: 0,
            ino: ctx.id,
            writer: None,
        }),
    });
    let addr = match addr {
        Ok(a) => a,
        Err(e) => {
            t.kernel.aio.remove(ctx.id);
            return Err(if e == Errno::ENOMEM { Errno::EAGAIN } else { e });
        }
    };
    if let Err(e) = t.mm.write_obj(ctxp, &addr) {
        t.kernel.aio.remove(ctx.id);
        let _ = t.mm.munmap(addr, len);
        return Err(e);
    }
    Ok(0)
}

/// io_destroy(2)
pub fn io_destroy(t: &mut Task, ctx: u64) -> SysResult {
    let c = lookup(t, ctx)?;
    t.kernel.aio.remove(c.id);
    t.mm.munmap(ctx, c.ring_len())?;
    Ok(0)
}

/// io_submit(2)
pub fn io_submit(t: &mut Task, ctx: u64, nr: i64, iocbpp: UserAddr) -> SysResult {
    if nr < 0 {
        return Err(Errno::EINVAL);
    }
    let c = lookup(t, ctx)?;
    let mut done = 0u64;
    for i in 0..nr as u64 {
        let r = iocbpp
            .offset(i * 8)
            .and_then(|at| t.mm.read_obj::<u64>(at))
            .and_then(|ptr| {
                let cb: Iocb = t.mm.read_obj(UserAddr(ptr))?;
                submit_one(t, &c, ptr, &cb)
            });
        match r {
            Ok(()) => done += 1,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Checks one request, runs it and queues its completion.
fn submit_one(t: &mut Task, c: &Context, ptr: u64, cb: &Iocb) -> Result<(), Errno> {
    // IOCB_FLAG_RESFD (an eventfd to signal) and IOCB_FLAG_IOPRIO are not offered.
    if cb.reserved2 != 0 || cb.flags != 0 || cb.rw_flags != 0 {
        return Err(Errno::EINVAL);
    }
    c.reserve()?;
    let fd = Fd(cb.fildes as i32);
    t.fds.get(fd.0)?;
    let res = match cb.lio_opcode {
        IOCB_CMD_PREAD | IOCB_CMD_PWRITE => {
            if cb.offset < 0 {
                return Err(Errno::EINVAL);
            }
            let buf = UserAddr(cb.buf);
            let len = cb.nbytes as usize;
            if cb.lio_opcode == IOCB_CMD_PREAD {
                fd::pread64(t, fd, buf, len, cb.offset)
            } else {
                fd::pwrite64(t, fd, buf, len, cb.offset)
            }
        }
        IOCB_CMD_PREADV | IOCB_CMD_PWRITEV => {
            if cb.offset < 0 || cb.nbytes > UIO_MAXIOV {
                return Err(Errno::EINVAL);
            }
            let iov: Vec<Iovec> = t.mm.read_slice(UserAddr(cb.buf), cb.nbytes as usize)?;
            if iov
                .iter()
                .any(|v| v.base.checked_add(v.len).is_none_or(|e| e > TASK_SIZE))
            {
                return Err(Errno::EFAULT);
            }
            vectored(t, fd, &iov, cb.offset, cb.lio_opcode == IOCB_CMD_PWRITEV)
        }
        IOCB_CMD_FSYNC => sync::fsync(t, fd),
        IOCB_CMD_FDSYNC => sync::fdatasync(t, fd),
        _ => return Err(Errno::EINVAL),
    };
    let res = match res {
        Ok(n) => n as i64,
        Err(e) => -(e as i64),
    };
    c.complete(IoEvent {
        data: cb.data,
        obj: ptr,
        res,
        res2: 0,
    });
    Ok(())
}

/// PREADV/PWRITEV: segment by segment, stopping at the first short transfer.
fn vectored(t: &mut Task, fd: Fd, iov: &[Iovec], offset: i64, write: bool) -> SysResult {
    let mut total = 0u64;
    for v in iov {
        let off = offset.saturating_add(total as i64);
        let r = if write {
            fd::pwrite64(t, fd, UserAddr(v.base), v.len as usize, off)
        } else {
            fd::pread64(t, fd, UserAddr(v.base), v.len as usize, off)
        };
        match r {
            Ok(n) => {
                total += n;
                if n < v.len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// io_getevents(2)
pub fn io_getevents(
    t: &mut Task,
    ctx: u64,
    min_nr: i64,
    nr: i64,
    events: UserAddr,
    timeout: UserAddr,
) -> SysResult {
    let c = lookup(t, ctx)?;
    if min_nr < 0 || nr < 0 || min_nr > nr {
        return Err(Errno::EINVAL);
    }
    let deadline = if timeout.is_null() {
        None
    } else {
        let ts: Timespec = t.mm.read_obj(timeout)?;
        let ns = u64::try_from(ts.to_nanos()?).unwrap_or(u64::MAX);
        Some(
            Instant::now()
                .checked_add(Duration::from_nanos(ns))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32)),
        )
    };
    let (min, max) = (min_nr as usize, nr as usize);
    let mut got: Vec<IoEvent> = Vec::new();
    let r = t.block_on(&[&c.events], deadline, |_| {
        got.extend(c.take(max - got.len()));
        (got.len() >= min).then_some(Ok(()))
    });
    match r {
        Ok(()) | Err(Errno::ETIMEDOUT) => {}
        Err(_) if !got.is_empty() => {}
        Err(e) => return Err(e),
    }
    t.mm.write_bytes(events, got.as_slice().as_bytes())?;
    Ok(got.len() as u64)
}

/// `struct __aio_sigset`: the temporary signal mask of io_pgetevents.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct AioSigset {
    sigmask: u64,
    sigsetsize: u64,
}

/// io_pgetevents(2): io_getevents with the signal mask `usig` names (none: the caller's)
/// in force while it waits, as ppoll's.
pub fn io_pgetevents(
    t: &mut Task,
    ctx: u64,
    min_nr: i64,
    nr: i64,
    events: UserAddr,
    timeout: UserAddr,
    usig: UserAddr,
) -> SysResult {
    let mask = if usig.is_null() {
        None
    } else {
        let s: AioSigset = t.mm.read_obj(usig)?;
        let size = usize::try_from(s.sigsetsize).map_err(|_| Errno::EINVAL)?;
        super::signal::read_temp_mask(t, UserAddr(s.sigmask), size)?
    };
    super::signal::apply_temp_mask(t, mask);
    io_getevents(t, ctx, min_nr, nr, events, timeout)
}

/// io_cancel(2): every request completed at submission, so none can be cancelled.
pub fn io_cancel(t: &mut Task, ctx: u64, _iocb: UserAddr, _result: UserAddr) -> SysResult {
    lookup(t, ctx)?;
    Err(Errno::EINVAL)
}
