//! System V IPC system calls: shared memory, semaphores, message queues. The objects live in
//! the kernel's IPC namespace ([`crate::kernel::ipc`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::Perms;

use crate::abi::{Errno, SysResult, Timespec, PAGE_SIZE};
use crate::kernel::ipc::sem::SemBuf;
use crate::kernel::ipc::shm::{CtlReply, ShmidDs};
use crate::kernel::Task;
use crate::mm::filemap::{FileMapping, Mappable};
use crate::mm::usermem::UserAddr;
use crate::mm::{MmapRequest, Placement, VmaKind};

/// `shmat` flags.
const SHM_RDONLY: i32 = 0o10000;
const SHM_RND: i32 = 0o20000;
const SHM_REMAP: i32 = 0o40000;
const SHM_EXEC: i32 = 0o100000;
/// Attach addresses are multiples of this (x86-64: the page size).
const SHMLBA: u64 = PAGE_SIZE;

/// shmget(2)
pub fn shmget(t: &mut Task, key: i32, size: usize, flags: i32) -> SysResult {
    let pid = t.vtgid();
    let mf = t.kernel.memory.clone();
    let id =
        t.ns.ipc
            .shm
            .get(&mf, &t.creds, pid, key, size as u64, flags)?;
    Ok(id as u64)
}

/// shmat(2)
pub fn shmat(t: &mut Task, id: i32, addr: UserAddr, flags: i32) -> SysResult {
    let mut at = addr.0;
    if !at.is_multiple_of(SHMLBA) {
        if flags & SHM_RND == 0 {
            return Err(Errno::EINVAL);
        }
        at &= !(SHMLBA - 1);
        if at == 0 && flags & SHM_REMAP != 0 {
            return Err(Errno::EINVAL);
        }
    }
    let read_only = flags & SHM_RDONLY != 0;
    let exec = flags & SHM_EXEC != 0;
    let seg = t.ns.ipc.shm.for_attach(&t.creds, id, read_only, exec)?;
    // An address (even one SHM_RND rounds down to zero) is where the segment goes; SHM_REMAP
    // lets it replace mappings there and needs an address.
    let placement = match addr.0 {
        0 if flags & SHM_REMAP != 0 => return Err(Errno::EINVAL),
        0 => Placement::Hint(0),
        _ if flags & SHM_REMAP != 0 => Placement::Fixed(at),
        _ => Placement::FixedNoReplace(at),
    };
    let file: Arc<dyn Mappable> = seg.clone();
    let mapped = t.mm.mmap(MmapRequest {
        placement,
        len: seg.mapped_len(),
        perms: Perms {
            read: true,
            write: !read_only,
            exec,
        },
        shared: true,
        kind: VmaKind::Named(format!("/SYSV{:08x} (deleted)", seg.key() as u32)),
        file: Some(FileMapping {
            file,
            offset: 0,
            may_write: !read_only,
            may_exec: true,
            dev: 0,
            ino: id as u64,
            writer: None,
        }),
    });
    // Without SHM_REMAP an address in use is refused, not replaced.
    let mapped = mapped.map_err(|e| if e == Errno::EEXIST { Errno::EINVAL } else { e })?;
    seg.attached(t.vtgid());
    Ok(mapped)
}

/// shmdt(2)
pub fn shmdt(t: &mut Task, addr: UserAddr) -> SysResult {
    if !addr.0.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let segments = t.ns.ipc.shm.segments();
    let same =
        |f: &Arc<dyn Mappable>, s: &Arc<_>| std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(s));
    let file =
        t.mm.detach_file(addr.0, &|f| segments.iter().any(|s| same(f, s)))?
            .ok_or(Errno::EINVAL)?;
    if let Some(seg) = segments.iter().find(|s| same(&file, s)) {
        seg.detached(t.vtgid());
    }
    Ok(0)
}

/// shmctl(2)
pub fn shmctl(t: &mut Task, id: i32, cmd: i32, buf: UserAddr) -> SysResult {
    let set = if cmd == crate::kernel::ipc::IPC_SET {
        Some(t.mm.read_obj::<ShmidDs>(buf)?)
    } else {
        None
    };
    let reply = t.ns.ipc.shm.ctl(&t.creds, id, cmd, set.as_ref())?;
    let ret = match reply {
        CtlReply::Value(v) => v,
        CtlReply::Stat(ds, v) => {
            t.mm.write_obj(buf, &ds)?;
            v
        }
        CtlReply::Info(info, v) => {
            t.mm.write_obj(buf, &info)?;
            v
        }
        CtlReply::Usage(usage, v) => {
            t.mm.write_obj(buf, &usage)?;
            v
        }
    };
    Ok(ret as u64)
}

/// semget(2)
pub fn semget(t: &mut Task, key: i32, nsems: i32, flags: i32) -> SysResult {
    let ipc = t.ns.ipc.clone();
    ipc.sem.get(t, key, nsems, flags).map(|id| id as u64)
}

/// semop(2)
pub fn semop(t: &mut Task, id: i32, sops: UserAddr, nsops: usize) -> SysResult {
    semtimedop(t, id, sops, nsops, UserAddr::NULL)
}

/// semtimedop(2)
pub fn semtimedop(
    t: &mut Task,
    id: i32,
    sops: UserAddr,
    nsops: usize,
    timeout: UserAddr,
) -> SysResult {
    if nsops == 0 || id < 0 {
        return Err(Errno::EINVAL);
    }
    if nsops > crate::kernel::ipc::sem::SEMOPM {
        return Err(Errno::E2BIG);
    }
    let ops: Vec<SemBuf> = t.mm.read_slice(sops, nsops)?;
    let deadline = if timeout.is_null() {
        None
    } else {
        let ts: Timespec = t.mm.read_obj(timeout)?;
        let ns = ts.to_nanos()?;
        Some(Instant::now() + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
    };
    let ipc = t.ns.ipc.clone();
    ipc.sem.op(t, id, &ops, deadline).map(|()| 0)
}

/// semctl(2)
pub fn semctl(t: &mut Task, id: i32, semnum: i32, cmd: i32, arg: u64) -> SysResult {
    let ipc = t.ns.ipc.clone();
    ipc.sem.ctl(t, id, semnum, cmd, arg)
}

/// msgget(2)
pub fn msgget(t: &mut Task, key: i32, flags: i32) -> SysResult {
    let ipc = t.ns.ipc.clone();
    ipc.msg.get(t, key, flags).map(|id| id as u64)
}

/// msgsnd(2)
pub fn msgsnd(t: &mut Task, id: i32, msgp: UserAddr, size: i64, flags: i32) -> SysResult {
    let ipc = t.ns.ipc.clone();
    ipc.msg.send(t, id, msgp, size, flags)
}

/// msgrcv(2)
pub fn msgrcv(t: &mut Task, id: i32, msgp: UserAddr, size: i64, typ: i64, flags: i32) -> SysResult {
    let ipc = t.ns.ipc.clone();
    ipc.msg.receive(t, id, msgp, size, typ, flags)
}

/// msgctl(2)
pub fn msgctl(t: &mut Task, id: i32, cmd: i32, buf: UserAddr) -> SysResult {
    let ipc = t.ns.ipc.clone();
    ipc.msg.ctl(t, id, cmd, buf)
}
