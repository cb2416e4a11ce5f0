//! Memory system calls: brk, mmap family, madvise, process_madvise, mincore, cachestat, the
//! mlock family.

use std::sync::Arc;

use platform::Perms;

use super::{Fd, Flags};
use crate::abi::{page_up, Errno, SysResult, PAGE_SIZE};
use crate::auth::cap;
use crate::fs::tmpfs::{SEAL_FUTURE_WRITE, SEAL_WRITE};
use crate::kernel::Task;
use crate::mm::filemap::{FileMapping, WritableMapping};
use crate::mm::usermem::{access_ok, UserAddr};
use crate::mm::{ForkAdvice, MemoryManager, MmapRequest, Placement, Remap, VmaKind};
use crate::vfs::FileType;

fn prot_perms(prot: u64) -> Result<Perms, Errno> {
    let known = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    let growsdown_up = (libc::PROT_GROWSDOWN | libc::PROT_GROWSUP) as u64;
    if prot & !(known | growsdown_up) != 0 {
        return Err(Errno::EINVAL);
    }
    // As asked: the memory manager adds the read access x86 implies.
    Ok(Perms {
        read: prot & libc::PROT_READ as u64 != 0,
        write: prot & libc::PROT_WRITE as u64 != 0,
        exec: prot & libc::PROT_EXEC as u64 != 0,
    })
}

/// brk(2)
pub fn brk(t: &mut Task, addr: UserAddr) -> SysResult {
    Ok(t.mm.brk(addr.0))
}

/// mmap(2)
pub fn mmap(
    t: &mut Task,
    addr: UserAddr,
    len: u64,
    prot: Flags,
    flags: Flags,
    fd: Fd,
    off: u64,
) -> SysResult {
    let flags = flags.0 as i32;
    let perms = prot_perms(prot.0)?;
    if len == 0 || !off.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let shared = match flags & libc::MAP_SHARED_VALIDATE {
        libc::MAP_PRIVATE => false,
        libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE => true,
        _ => return Err(Errno::EINVAL),
    };
    let placement = if flags & libc::MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace(addr.0)
    } else if flags & libc::MAP_FIXED != 0 {
        Placement::Fixed(addr.0)
    } else {
        Placement::Hint(addr.0)
    };
    if matches!(placement, Placement::Fixed(a) | Placement::FixedNoReplace(a) if !a.is_multiple_of(PAGE_SIZE))
    {
        return Err(Errno::EINVAL);
    }
    let locked = flags & libc::MAP_LOCKED != 0;
    if locked {
        // Linux: EPERM without any right to lock, EAGAIN past RLIMIT_MEMLOCK.
        if let Some(limit) = memlock_limit(t)? {
            if t.mm.locked_bytes(0).0.saturating_add(len) > limit {
                return Err(Errno::EAGAIN);
            }
        }
    }
    let addr = if flags & libc::MAP_ANONYMOUS == 0 {
        mmap_file(t, placement, len, perms, shared, fd, off)?
    } else {
        t.mm.mmap(MmapRequest {
            placement,
            len,
            perms,
            shared,
            kind: VmaKind::Anon,
            file: None,
        })?
    };
    if locked {
        // The limit was checked above; a PROT_NONE mapping is locked but not populated,
        // which MAP_LOCKED does not report.
        let _ = t.mm.mlock(addr, len, true, None);
    }
    // MAP_POPULATE commits writable mappings at once (a read-only private one would only
    // see the shared zero page on Linux, which is not counted as resident). Failing to
    // populate is not an error of mmap: the pages come on first touch instead.
    if flags & libc::MAP_POPULATE != 0 && perms.write {
        let _ = t.mm.prefault(addr, len);
    }
    Ok(addr)
}

/// The RLIMIT_MEMLOCK bytes the caller may lock, None with CAP_IPC_LOCK.
///
/// # Errors
/// EPERM when it may lock nothing at all (a zero limit and no CAP_IPC_LOCK).
fn memlock_limit(t: &Task) -> Result<Option<u64>, Errno> {
    if t.creds.has_cap(CAP_IPC_LOCK) {
        return Ok(None);
    }
    match t.tg.limits.lock().unwrap()[libc::RLIMIT_MEMLOCK as usize].cur {
        0 => Err(Errno::EPERM),
        u64::MAX => Ok(None),
        limit => Ok(Some(limit)),
    }
}

/// CAP_IPC_LOCK: lock memory past RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

/// `mlock2` flag: lock pages as they are faulted in.
const MLOCK_ONFAULT: u32 = 1;

/// Pages whose residency mincore(2) reports per round (a bounded buffer; the mm lock is
/// released between rounds, as Linux does between its chunks).
const MINCORE_CHUNK: u64 = 64 * 1024;

/// mincore(2)
pub fn mincore(t: &mut Task, addr: UserAddr, len: u64, vec: UserAddr) -> SysResult {
    if !addr.0.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    access_ok(addr, len).map_err(|_| Errno::ENOMEM)?;
    let pages = len.div_ceil(PAGE_SIZE);
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(MINCORE_CHUNK);
        let resident = t.mm.mincore(addr.0 + done * PAGE_SIZE, n)?;
        t.mm.write_bytes(vec.offset(done)?, &resident)?;
        done += n;
    }
    Ok(0)
}

/// mlock(2). Pages are locked as far as the sandbox can say: the sentry never swaps them
/// out, and the locked state shows where Linux shows it (MADV_DONTNEED and
/// msync(MS_INVALIDATE) refuse locked pages, RLIMIT_MEMLOCK counts them).
pub fn mlock(t: &mut Task, addr: UserAddr, len: usize) -> SysResult {
    mlock2(t, addr, len, 0)
}

/// mlock2(2)
pub fn mlock2(t: &mut Task, addr: UserAddr, len: usize, flags: u32) -> SysResult {
    if flags & !MLOCK_ONFAULT != 0 {
        return Err(Errno::EINVAL);
    }
    let limit = memlock_limit(t)?;
    t.mm.mlock(addr.0, len as u64, true, limit).map(|()| 0)
}

/// munlock(2)
pub fn munlock(t: &mut Task, addr: UserAddr, len: usize) -> SysResult {
    t.mm.mlock(addr.0, len as u64, false, None).map(|()| 0)
}

/// mlockall(2)
pub fn mlockall(t: &mut Task, flags: i32) -> SysResult {
    let known = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;
    if flags & !known != 0 || flags & (libc::MCL_CURRENT | libc::MCL_FUTURE) == 0 {
        return Err(Errno::EINVAL);
    }
    let limit = memlock_limit(t)?;
    t.mm.mlockall(
        flags & libc::MCL_CURRENT != 0,
        flags & libc::MCL_FUTURE != 0,
        limit,
    )
    .map(|()| 0)
}

/// munlockall(2)
pub fn munlockall(t: &mut Task) -> SysResult {
    t.mm.mlockall(false, false, None).map(|()| 0)
}

/// A file mapping: the VMA maps the file's pages (tmpfs) or the page cache's (host files),
/// copy-on-write when private. Files that cannot be mapped are ENODEV; a writable shared
/// mapping needs a file open for writing whose pages take stores (an overlay file open for
/// writing was copied up on open, so the host file never sees the stores).
fn mmap_file(
    t: &mut Task,
    placement: Placement,
    len: u64,
    perms: Perms,
    shared: bool,
    fd: Fd,
    off: u64,
) -> SysResult {
    let f = t.fds.get_io(fd.0)?;
    if !f.readable() {
        return Err(Errno::EACCES);
    }
    if shared && perms.write && !f.writable() {
        return Err(Errno::EACCES);
    }
    if let Some(buffer) = f.ops().mmap_buffer(page_up(len).ok_or(Errno::ENOMEM)?, off) {
        let st = f.ops().stat()?;
        return t.mm.mmap(MmapRequest {
            placement,
            len,
            perms,
            shared,
            kind: VmaKind::Named(format!("socket:[{}]", st.ino)),
            file: Some(FileMapping {
                file: buffer?,
                offset: off,
                may_write: true,
                may_exec: true,
                dev: st.dev,
                ino: st.ino,
                writer: None,
            }),
        });
    }
    let d = f.dentry.clone().ok_or(Errno::ENODEV)?;
    if perms.exec && d.mount.noexec() {
        return Err(Errno::EPERM);
    }
    let st = f.ops().stat()?;
    if FileType::from_mode(st.mode) != FileType::Regular {
        return Err(Errno::ENODEV);
    }
    let file = f.ops().mappable(t.mm.memory_file()).ok_or(Errno::ENODEV)?;
    if shared && (perms.write && !file.shared_writable() || !file.shared_mappable()) {
        return Err(Errno::ENODEV);
    }
    off.checked_add(len).ok_or(Errno::EOVERFLOW)?;
    // Counted before the seals are read, so F_SEAL_WRITE either sees this mapping (EBUSY)
    // or this call sees the seal.
    let writer =
        (shared && f.writable() && file.shared_writable()).then(|| WritableMapping::new(&file));
    // A memfd sealed against writing refuses new writable shared mappings, now and later.
    let write_sealed = f.ops().seals().unwrap_or(0) & (SEAL_WRITE | SEAL_FUTURE_WRITE) != 0;
    if shared && perms.write && write_sealed {
        return Err(Errno::EPERM);
    }
    let may_write = f.writable() && file.shared_writable() && !(shared && write_sealed);
    let writer = writer.filter(|_| may_write);
    let name = String::from_utf8_lossy(&d.path).into_owned();
    t.mm.mmap(MmapRequest {
        placement,
        len,
        perms,
        shared,
        kind: VmaKind::Named(name),
        file: Some(FileMapping {
            file,
            offset: off,
            may_write,
            may_exec: !d.mount.noexec(),
            dev: st.dev,
            ino: st.ino,
            writer,
        }),
    })
}

/// msync(2): shared file pages are the file's pages already, so there is nothing to write
/// back; the range and flags are validated as Linux does.
pub fn msync(t: &mut Task, addr: UserAddr, len: u64, flags: Flags) -> SysResult {
    let flags = flags.0 as i32;
    if flags & !(libc::MS_ASYNC | libc::MS_SYNC | libc::MS_INVALIDATE) != 0
        || flags & libc::MS_ASYNC != 0 && flags & libc::MS_SYNC != 0
        || !addr.0.is_multiple_of(PAGE_SIZE)
    {
        return Err(Errno::EINVAL);
    }
    t.mm.msync(addr.0, len, flags & libc::MS_INVALIDATE != 0)?;
    Ok(0)
}

/// munmap(2)
pub fn munmap(t: &mut Task, addr: UserAddr, len: u64) -> SysResult {
    t.mm.munmap(addr.0, len).map(|_| 0)
}

/// mprotect(2)
pub fn mprotect(t: &mut Task, addr: UserAddr, len: u64, prot: Flags) -> SysResult {
    let perms = prot_perms(prot.0)?;
    t.mm.mprotect(addr.0, len, perms).map(|_| 0)
}

/// mremap(2)
pub fn mremap(
    t: &mut Task,
    old: UserAddr,
    old_len: u64,
    new_len: u64,
    flags: Flags,
    new_addr: UserAddr,
) -> SysResult {
    let flags = flags.0 as i32;
    if flags & !(libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP) != 0 {
        return Err(Errno::EINVAL);
    }
    let may_move = flags & libc::MREMAP_MAYMOVE != 0;
    let fixed = flags & libc::MREMAP_FIXED != 0;
    let dontunmap = flags & libc::MREMAP_DONTUNMAP != 0;
    if (fixed || dontunmap) && !may_move {
        return Err(Errno::EINVAL);
    }
    // MREMAP_DONTUNMAP always moves, and never resizes.
    if dontunmap && old_len != new_len {
        return Err(Errno::EINVAL);
    }
    let how = match (dontunmap, fixed, may_move) {
        (true, _, _) => Remap::DontUnmap(fixed.then_some(new_addr.0)),
        (false, true, _) => Remap::Fixed(new_addr.0),
        (false, false, true) => Remap::MayMove,
        (false, false, false) => Remap::InPlace,
    };
    // Growing a locked mapping locks the new part: RLIMIT_MEMLOCK applies (EAGAIN).
    let (locked, old_locked) = t.mm.locked_bytes(old.0);
    if old_locked && new_len > old_len && !t.creds.has_cap(CAP_IPC_LOCK) {
        let limit = t.tg.limits.lock().unwrap()[libc::RLIMIT_MEMLOCK as usize].cur;
        if locked.saturating_add(new_len - old_len) > limit {
            return Err(Errno::EAGAIN);
        }
    }
    t.mm.mremap(old.0, old_len, new_len, how)
}

/// madvise(2)
pub fn madvise(t: &mut Task, addr: UserAddr, len: u64, advice: i32) -> SysResult {
    let fork_advice: Option<fn(&mut ForkAdvice)> = match advice {
        libc::MADV_DONTFORK => Some(|f| f.dontfork = true),
        libc::MADV_DOFORK => Some(|f| f.dontfork = false),
        libc::MADV_WIPEONFORK => Some(|f| f.wipe = true),
        libc::MADV_KEEPONFORK => Some(|f| f.wipe = false),
        libc::MADV_DONTNEED
        | libc::MADV_FREE
        | libc::MADV_NORMAL
        | libc::MADV_RANDOM
        | libc::MADV_SEQUENTIAL
        | libc::MADV_WILLNEED
        | libc::MADV_MERGEABLE
        | libc::MADV_UNMERGEABLE
        | libc::MADV_HUGEPAGE
        | libc::MADV_NOHUGEPAGE
        | libc::MADV_DONTDUMP
        | libc::MADV_DODUMP => None,
        _ => return Err(Errno::EINVAL),
    };
    if !addr.0.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    // The length is rounded up to pages; a length that wraps doing so is EINVAL, and an
    // empty range succeeds whatever lies there.
    let end = page_up(len)
        .and_then(|l| addr.0.checked_add(l))
        .ok_or(Errno::EINVAL)?;
    if end == addr.0 {
        return Ok(0);
    }
    match (advice, fork_advice) {
        (_, Some(set)) => t.mm.advise_fork(addr.0, end, set).map(|_| 0),
        (libc::MADV_DONTNEED | libc::MADV_FREE, None) => t.mm.dontneed(addr.0, len).map(|_| 0),
        _ => Ok(0),
    }
}

/// process_madvise(2): `advice` for the ranges `vec` names in the memory of the process
/// `pidfd` refers to; returns the bytes advised before the first range that fails (that
/// range's error when it is the first). Another process's memory needs PTRACE_MODE_READ
/// (EACCES) and CAP_SYS_NICE (EPERM), and takes only the advices that change no contents
/// (MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED, MADV_COLLAPSE): the sentry keeps no swap, no
/// readahead the application could see and no huge pages, so for these, as Linux does when it
/// finds nothing to do, a mapped range is advised and an unmapped part is ENOMEM. The
/// caller's own memory takes any madvise(2) advice.
pub fn process_madvise(
    t: &mut Task,
    pidfd: Fd,
    vec: UserAddr,
    vlen: usize,
    advice: i32,
    flags: u32,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let iovs = t.mm.read_iovecs(vec, vlen)?;
    let (tg, zombie) = super::pidfd::target(t, pidfd)?;
    let view = {
        let tree = t.kernel.tree();
        let leader = tree.tasks.get(&tg.tgid).ok_or(Errno::ESRCH)?;
        let view = leader.view.lock().unwrap().clone();
        view.ok_or(Errno::ESRCH)?
    };
    if zombie {
        return Err(Errno::ESRCH);
    }
    let own = Arc::ptr_eq(&view.mm, &t.mm);
    if !own && !super::pidfd::may_ptrace(&t.creds, &view.creds, tg.dumpable()) {
        return Err(Errno::EACCES);
    }
    let hint = matches!(
        advice,
        libc::MADV_COLD | libc::MADV_PAGEOUT | libc::MADV_WILLNEED | MADV_COLLAPSE
    );
    if !own && !hint {
        return Err(Errno::EINVAL);
    }
    if !own && !t.creds.has_cap(cap::SYS_NICE) {
        return Err(Errno::EPERM);
    }
    let mut done = 0u64;
    for iov in &iovs {
        let advised = if hint {
            advise_hint(&view.mm, iov.base, iov.len)
        } else {
            madvise(t, UserAddr(iov.base), iov.len, advice).map(drop)
        };
        match advised {
            Ok(()) => done += iov.len,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// MADV_COLLAPSE (Linux 6.1; not in the libc crate).
const MADV_COLLAPSE: i32 = 25;

/// A hint that changes nothing the application can observe, for `[addr, addr + len)` of
/// `mm`: the range's checks as madvise(2) makes them (an unaligned start or a wrapping length
/// is EINVAL, an unmapped part ENOMEM, an empty range 0).
fn advise_hint(mm: &MemoryManager, addr: u64, len: u64) -> Result<(), Errno> {
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let end = page_up(len)
        .and_then(|l| addr.checked_add(l))
        .ok_or(Errno::EINVAL)?;
    let pages = (end - addr) / PAGE_SIZE;
    let mut checked = 0;
    while checked < pages {
        let n = (pages - checked).min(MINCORE_CHUNK);
        mm.mincore(addr + checked * PAGE_SIZE, n)?;
        checked += n;
    }
    Ok(())
}

/// `struct cachestat_range`.
#[derive(
    Debug, Clone, Copy, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat`.
#[derive(Debug, Clone, Copy, Default, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// cachestat(2): how many pages of the range the file's memory holds. A tmpfs file (memfd
/// too) holds the pages written or faulted in, a host file the pages the sentry's page cache
/// filled for mappings; nothing is ever dirty, under writeback or evicted (tmpfs pages are
/// not written back, cached host pages are only read), and other files keep no pages: all
/// zeros, as Linux reports for an uncached file. Needs a writable open, ownership or write
/// permission (EPERM, Linux 6.14); O_PATH descriptors are EBADF.
pub fn cachestat(t: &mut Task, fd: Fd, range: UserAddr, out: UserAddr, flags: u32) -> SysResult {
    let f = t.fds.get_io(fd.0)?;
    let may_write = f.flags() & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32;
    if !may_write {
        let st = f.ops().stat()?;
        let owner = t.creds.fsuid == st.uid || t.creds.has_cap(cap::FOWNER);
        if !owner && !crate::vfs::inode::may_access(&st, &t.creds, 2, false) {
            return Err(Errno::EPERM);
        }
    }
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let r: CachestatRange = t.mm.read_obj(range)?;
    let first = r.off / PAGE_SIZE;
    let last = if r.len == 0 {
        u64::MAX
    } else {
        r.off.saturating_add(r.len - 1) / PAGE_SIZE
    };
    let nr_cache = f
        .ops()
        .mappable(t.mm.memory_file())
        .map_or(0, |m| m.cached_pages(first, last));
    t.mm.write_obj(
        out,
        &Cachestat {
            nr_cache,
            ..Cachestat::default()
        },
    )?;
    Ok(0)
}
