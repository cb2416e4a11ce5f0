//! `MemoryManager`: an application's virtual memory.
//!
//! VMAs say what the application asked for (`mmap`, `brk`, stack); PMAs say which memory-file
//! pages back which addresses. PMAs are created lazily, on an application fault or when the
//! sentry copies into user memory, in chunks of up to [`FAULT_CHUNK`] so one fault maps many
//! pages (the host only materialises pages that are touched). Private PMAs are shared
//! copy-on-write after `fork`; a write fault gives the writer its own copy.
//!
//! A file VMA ([`filemap::FileMapping`]) takes its PMAs from the file: a tmpfs file's own
//! pages or the page cache's copy of a host file's (a fault fills only the
//! [`pagecache::READAHEAD_PAGES`] window around it from the host, and maps what the cache
//! already holds in the rest of its chunk). Private file mappings map them
//! copy-on-write (the first write copies the page); shared mappings of tmpfs files map them
//! as they are, so stores are the file's data for `read(2)` and every other mapping.
//!
//! # Lock order
//! `MemoryManager::inner` → (platform address-space calls) → file page locks (tmpfs node,
//! page cache) → `MemoryFile` allocator.
//!
//! Handlers never see raw pointers: they call the user-memory API in [`usermem`].

pub mod filemap;
pub mod pagecache;
pub mod usermem;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use platform::{Access, AddressSpace, MapOp, Perms};

use crate::abi::{page_down, page_up, Errno, PAGE_SIZE};
use crate::memory::{FileRange, MemoryFile};
use filemap::FileMapping;

/// Largest range one fault populates.
pub const FAULT_CHUNK: u64 = 2 << 20;
/// Pages `fork` copies for the child at most, instead of sharing them copy-on-write: pages the
/// parent has mapped writable, whose sharing costs a host unmap and refaults in the parent
/// (see `MemoryManager::copy_for_child`).
pub const FORK_COPY_PAGES: u64 = 32;
/// Pages a write fault on a copy-on-write page of a private file mapping copies at once: the
/// aligned block of this many pages around the faulting one, so a program that writes its
/// data downwards takes as few faults as one writing upwards (see
/// `MemoryManager::handle_fault`).
pub const FILE_COW_PAGES: u64 = 16;
/// Host mappings one fault makes at most: the faulting PMA and up to this many less one of
/// the PMAs near it that are populated but not mapped (see `MemoryManager::fault_around`).
pub const FAULT_AROUND_OPS: usize = 32;
/// PMAs `MemoryManager::fault_around` looks at on each side of a fault at most.
const FAULT_AROUND_SCAN: usize = 64;
/// Host mappings `MemoryManager::prefault_program` makes at most.
pub const PREFAULT_OPS: usize = 128;
/// Top of the application stack.
pub const STACK_TOP: u64 = platform::MAX_USER_ADDRESS - PAGE_SIZE;
/// The default RLIMIT_STACK; the stack itself is as large as the limit at exec, up to the
/// 128 MiB gap left above `mmap`'s area.
pub const STACK_SIZE: u64 = 8 << 20;
/// Top-down `mmap` allocations start below this address.
pub const MMAP_BASE: u64 = STACK_TOP - STACK_SIZE - (128 << 20);
/// `/proc/[pid]/maps` name of the system-call patch table (`platform::patch`).
pub const PATCH_TABLE_NAME: &str = "[syscall-patch]";
/// Lowest address `mmap` hands out without MAP_FIXED (vm.mmap_min_addr).
pub const MMAP_MIN_ADDR: u64 = 0x10000;
/// Load address of static-PIE executables (Linux's ELF_ET_DYN_BASE for x86-64).
pub const PIE_BASE: u64 = 0x5555_5555_4000;

/// What a VMA maps, for `/proc/[pid]/maps` names and fork semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmaKind {
    Anon,
    Heap,
    Stack,
    /// An image or file mapping: name shown in maps.
    Named(String),
}

#[derive(Debug, Clone)]
struct Vma {
    end: u64,
    /// The access the pages allow: `prot` with the read access x86 implies.
    perms: Perms,
    /// The protection mmap or mprotect asked for (VM_READ/VM_WRITE/VM_EXEC), which maps and
    /// smaps show.
    prot: Perms,
    /// MAP_SHARED: pages stay shared with fork children instead of copy-on-write.
    shared: bool,
    kind: VmaKind,
    /// The file mapped (None: anonymous memory).
    file: Option<FileMapping>,
    /// VM_LOCKED (mlock, MAP_LOCKED, mlockall): never dropped by MADV_DONTNEED or
    /// msync(MS_INVALIDATE); not inherited by fork children.
    locked: bool,
    /// The NUMA policy `mbind` gave the range (the sandbox has one node, so it only reads
    /// back).
    numa: NumaPolicy,
    /// What `fork` does with the mapping (`madvise`).
    fork: ForkAdvice,
}

/// The access x86 gives pages of protection `prot`: readable whenever writable or
/// executable, as its MMU cannot express otherwise.
fn x86_access(prot: Perms) -> Perms {
    Perms {
        read: prot.read || prot.write || prot.exec,
        ..prot
    }
}

/// `madvise` flags for `fork`: MADV_DONTFORK (VM_DONTCOPY) leaves the mapping out of the
/// child; MADV_WIPEONFORK (private anonymous memory only) gives the child zeroed memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForkAdvice {
    pub dontfork: bool,
    pub wipe: bool,
}

/// A NUMA memory policy as `set_mempolicy`/`mbind` take it: the mode with its mode flags
/// and the node mask. The sandbox has one node, so the mask is 0 or 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NumaPolicy {
    pub mode: i32,
    pub nodes: u64,
}

impl Vma {
    /// Whether PMAs of this VMA may be written in place: anonymous memory and shared
    /// mappings of files that take stores. Everything else maps file pages copy-on-write.
    fn writes_in_place(&self) -> bool {
        match &self.file {
            None => true,
            Some(f) => self.shared && f.file.shared_writable(),
        }
    }

    /// Whether `mprotect` may make this VMA writable.
    fn may_write(&self) -> bool {
        match &self.file {
            Some(f) if self.shared => f.may_write,
            _ => true,
        }
    }

    /// Whether `mprotect` may make this VMA executable.
    fn may_exec(&self) -> bool {
        self.file.as_ref().is_none_or(|f| f.may_exec)
    }

    /// File offset of `addr` (in this VMA, which starts at `start`).
    fn file_offset(&self, start: u64, addr: u64) -> Option<u64> {
        self.file.as_ref().map(|f| f.offset + (addr - start))
    }
}

#[derive(Debug, Clone, Copy)]
struct Pma {
    end: u64,
    file_offset: u64,
    /// Shared with another address space copy-on-write: must be copied before a write.
    cow: bool,
    /// What is currently mapped in the platform address space (NONE = nothing).
    mapped: Perms,
}

/// One mapping as `/proc/[pid]/maps` shows it.
#[derive(Debug, Clone)]
pub struct MapsEntry {
    pub start: u64,
    pub end: u64,
    pub perms: Perms,
    pub shared: bool,
    pub kind: VmaKind,
    /// File offset, device and inode of a file mapping (zero for anonymous memory).
    pub offset: u64,
    pub dev: u64,
    pub ino: u64,
    /// Whether a file backs the mapping (anonymous memory may have a name too).
    pub is_file: bool,
    /// Whether the mapping may be made writable (VM_MAYWRITE: not a shared mapping of a
    /// file opened read-only).
    pub may_write: bool,
    /// VM_LOCKED.
    pub locked: bool,
}

/// The program break and the patch table's fill: what a checkpoint saves of an address
/// space besides its mappings and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BrkState {
    pub brk_start: u64,
    pub brk: u64,
    pub patch_next: u64,
}

/// One mapping of an address space being restored from a checkpoint.
#[derive(Debug, Clone)]
pub struct RestoredVma {
    pub start: u64,
    pub end: u64,
    pub perms: Perms,
    pub shared: bool,
    pub kind: VmaKind,
    pub file: Option<FileMapping>,
}

/// Where a fault lands, when it cannot be resolved: the `si_code` of the SIGSEGV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegvCode {
    /// SEGV_MAPERR: nothing mapped there.
    MapErr,
    /// SEGV_ACCERR: mapped without the needed permission.
    AccErr,
    /// SIGBUS (BUS_ADRERR): a file mapping's page lies past the end of the file.
    BusErr,
    /// No signal: filling the page was given up because the faulting task is dying (a
    /// FUSE daemon that does not answer); the task exits at its next look at its signal
    /// state.
    Dying,
}

#[derive(Debug)]
struct Inner {
    vmas: BTreeMap<u64, Vma>,
    pmas: BTreeMap<u64, Pma>,
    brk_start: u64,
    brk: u64,
    /// mlockall(MCL_FUTURE): new mappings are locked.
    lock_future: bool,
    /// Thunks used in the patch table (`platform::patch`), header included; 0 before the
    /// table is mapped. Fork children inherit the table and this count.
    patch_next: u64,
    /// The host address space went to the program an `execve` started
    /// ([`MemoryManager::take_host_for_exec`]): nothing of this mm is mapped there any more
    /// and no host call may reach it from here.
    detached: bool,
    /// The host address space was handed on by `execve` with the former program's mappings
    /// still in it ([`MemoryManager::set_address_space`]): the first host batch of this mm,
    /// [`MemoryManager::prefault_program`]'s, clears them first, saving a stop of its own.
    host_stale: bool,
}

thread_local! {
    /// The last fault of an unknown access this host thread (one task's) found already
    /// resolved and retried: (mm id, page). See [`MemoryManager::stale_fault`].
    static RETRIED_FAULT: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// The host address space of an mm [`MemoryManager::new_unbacked`] made, until it gets a
/// real one: refuses every call, so a host call made too early fails instead of landing in
/// some other program's address space.
struct Unbacked;

impl AddressSpace for Unbacked {
    fn map(&self, _: u64, _: u64, _: u64, _: Perms) -> platform::Result<()> {
        Err(platform::Error::Injected {
            call: "mmap (address space not attached yet)",
            errno: libc::EFAULT,
        })
    }

    fn unmap(&self, _: u64, _: u64) -> platform::Result<()> {
        Err(platform::Error::Injected {
            call: "munmap (address space not attached yet)",
            errno: libc::EFAULT,
        })
    }

    fn protect(&self, _: u64, _: u64, _: Perms) -> platform::Result<()> {
        Err(platform::Error::Injected {
            call: "mprotect (address space not attached yet)",
            errno: libc::EFAULT,
        })
    }

    fn release(&self) {}
}

/// Changes to make to host mappings, as runs of adjacent PMAs that get the same
/// permissions: (start, end, new host permissions). [`Perms::NONE`] unmaps.
#[derive(Default)]
struct HostRuns(Vec<(u64, u64, Perms)>);

impl HostRuns {
    /// Adds `[start, end)`, merged with the last run when adjacent and alike.
    fn push(&mut self, start: u64, end: u64, perms: Perms) {
        match self.0.last_mut() {
            Some(run) if run.1 == start && run.2 == perms => run.1 = end,
            _ => self.0.push((start, end, perms)),
        }
    }

    /// Makes the changes in `space`, one host operation per run, all in one batch.
    fn apply(self, space: &dyn AddressSpace) -> Result<(), Errno> {
        let ops: Vec<MapOp> = self
            .0
            .into_iter()
            .map(|(start, end, perms)| {
                let len = end - start;
                if perms == Perms::NONE {
                    MapOp::Unmap { addr: start, len }
                } else {
                    MapOp::Protect {
                        addr: start,
                        len,
                        perms,
                    }
                }
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        space.apply(&ops).map_err(|e| platform_err(e.error))
    }
}

/// Source of [`MemoryManager`] ids.
static NEXT_MM_ID: AtomicU64 = AtomicU64::new(1);

/// See the module documentation.
pub struct MemoryManager {
    /// Unique among the sentry's address spaces (never reused).
    id: u64,
    mf: Arc<MemoryFile>,
    space: Arc<dyn AddressSpace>,
    /// A process other than this mm's own threads shares it (`clone(CLONE_VM)` without
    /// `CLONE_THREAD`, `vfork`): set once, never cleared. Such an mm never gives its host
    /// address space to an `execve`.
    vm_shared: AtomicBool,
    /// A thread registered the process for `MEMBARRIER_CMD_PRIVATE_EXPEDITED`
    /// (`membarrier(2)`): set once, never cleared; a fork's copy of the mm keeps it, an
    /// exec's new mm starts without it, as Linux's.
    membarrier_private: AtomicBool,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager").finish_non_exhaustive()
    }
}

fn platform_err(e: platform::Error) -> Errno {
    log::error!("platform address-space call failed: {e}");
    Errno::EFAULT
}

impl MemoryManager {
    /// An empty address space.
    pub fn new(mf: Arc<MemoryFile>, space: Arc<dyn AddressSpace>) -> MemoryManager {
        MemoryManager {
            id: NEXT_MM_ID.fetch_add(1, Ordering::Relaxed),
            mf,
            space,
            vm_shared: AtomicBool::new(false),
            membarrier_private: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                vmas: BTreeMap::new(),
                pmas: BTreeMap::new(),
                brk_start: 0,
                brk: 0,
                lock_future: false,
                patch_next: 0,
                detached: false,
                host_stale: false,
            }),
        }
    }

    /// An empty address space not yet backed by a host one: what `execve` loads a program
    /// into before it knows whether the old program's host address space can be reused. Every
    /// host call fails until [`MemoryManager::set_address_space`] gives it one (loading makes
    /// none: nothing is mapped on the host before the program first runs).
    pub fn new_unbacked(mf: Arc<MemoryFile>) -> MemoryManager {
        MemoryManager::new(mf, Arc::new(Unbacked))
    }

    /// Gives an mm made by [`MemoryManager::new_unbacked`] its host address space. The mm
    /// is not shared yet (`&mut`), and none of its pages is mapped on the host. `stale`: the
    /// space still holds another program's mappings (from
    /// [`MemoryManager::take_host_for_exec`]); they go before this mm's first mapping there
    /// ([`MemoryManager::prefault_program`] or [`MemoryManager::clear_stale_host`], which the
    /// exec must call before the program runs).
    pub fn set_address_space(&mut self, space: Arc<dyn AddressSpace>, stale: bool) {
        let i = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        i.host_stale = stale;
        debug_assert!(i.pmas.values().all(|p| p.mapped == Perms::NONE));
        for p in i.pmas.values_mut() {
            p.mapped = Perms::NONE;
        }
        self.space = space;
    }

    /// Records that another process shares this mm (see `vm_shared`).
    pub fn mark_vm_shared(&self) {
        self.vm_shared.store(true, Ordering::SeqCst);
    }

    /// Whether a thread registered the process for `MEMBARRIER_CMD_PRIVATE_EXPEDITED`.
    pub fn membarrier_private(&self) -> bool {
        self.membarrier_private.load(Ordering::Relaxed)
    }

    /// Registers this mm for `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (see
    /// [`MemoryManager::membarrier_private`]).
    pub fn register_membarrier_private(&self) {
        self.membarrier_private.store(true, Ordering::Relaxed);
    }

    /// Whether another process may share this mm (see `vm_shared`).
    pub fn vm_shared(&self) -> bool {
        self.vm_shared.load(Ordering::SeqCst)
    }

    /// Hands this mm's host address space to the program an `execve` of its only process
    /// (single-threaded by then) is starting, with this mm's mappings still in it: the new
    /// mm clears the application range there in its first host batch (see
    /// [`MemoryManager::set_address_space`]), and this mm, which /proc or a tracer may
    /// still hold, makes no host call from now on (its memory stays readable and writable
    /// through the memory file). Saves the new program a host address space of its own
    /// (on systrap a factory and two stubs, and the set-up of each).
    ///
    /// None when another process shares the mm or it was handed over already.
    pub fn take_host_for_exec(&self) -> Option<Arc<dyn AddressSpace>> {
        let mut i = self.lock();
        if self.vm_shared() || i.detached {
            return None;
        }
        for p in i.pmas.values_mut() {
            p.mapped = Perms::NONE;
        }
        i.detached = true;
        Some(self.space.clone())
    }

    /// The platform address space applications of this mm run in.
    pub fn address_space(&self) -> &Arc<dyn AddressSpace> {
        &self.space
    }

    /// The memory file behind this mm.
    pub fn memory_file(&self) -> &Arc<MemoryFile> {
        &self.mf
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Sets the initial program break (end of the executable's bss).
    pub fn set_brk_start(&self, addr: u64) {
        let mut i = self.lock();
        let a = page_up(addr).unwrap_or(addr);
        i.brk_start = a;
        i.brk = a;
    }

    /// `brk(2)`: moves the break; returns the new (or unchanged) break.
    pub fn brk(&self, addr: u64) -> u64 {
        let mut i = self.lock();
        let (start, cur) = (i.brk_start, i.brk);
        if addr < start {
            return cur;
        }
        let (Some(old_end), Some(new_end)) = (page_up(cur), page_up(addr)) else {
            return cur;
        };
        if new_end > old_end {
            if new_end > MMAP_BASE || i.vmas_overlap(old_end, new_end) {
                return cur;
            }
            let locked = i.lock_future;
            i.insert_vma(
                old_end,
                Vma {
                    end: new_end,
                    perms: Perms::RW,
                    prot: Perms::RW,
                    shared: false,
                    kind: VmaKind::Heap,
                    file: None,
                    locked,
                    numa: NumaPolicy::default(),
                    fork: ForkAdvice::default(),
                },
            );
        } else if new_end < old_end
            && self
                .unmap_locked(&mut i, new_end, old_end - new_end)
                .is_err()
        {
            return cur;
        }
        i.brk = addr;
        drop(i);
        if new_end > old_end {
            // The program grows its heap to write there (malloc's first use is right after
            // its brk): the first new page is faulted in now, as its first write would, in
            // the host call the fault would make but without the fault's round trip. A
            // failure (no memory) is left to that fault.
            let _ = self.handle_fault(old_end, Access::Write);
        }
        addr
    }

    /// `mmap(2)` of anonymous memory or of a file (`req.file`).
    ///
    /// # Errors
    /// ENOMEM when no room; EEXIST for MAP_FIXED_NOREPLACE over existing mappings.
    pub fn mmap(&self, req: MmapRequest) -> Result<u64, Errno> {
        let len = page_up(req.len).filter(|&l| l > 0).ok_or(Errno::ENOMEM)?;
        if let Some(f) = &req.file {
            f.offset.checked_add(len).ok_or(Errno::EOVERFLOW)?;
        }
        let mut i = self.lock();
        let addr = match req.placement {
            Placement::Fixed(a) => {
                let end = a
                    .checked_add(len)
                    .filter(|&e| e <= platform::MAX_USER_ADDRESS)
                    .ok_or(Errno::ENOMEM)?;
                self.unmap_locked(&mut i, a, end - a)?;
                a
            }
            Placement::FixedNoReplace(a) => {
                let end = a
                    .checked_add(len)
                    .filter(|&e| e <= platform::MAX_USER_ADDRESS)
                    .ok_or(Errno::ENOMEM)?;
                if i.vmas_overlap(a, end) {
                    return Err(Errno::EEXIST);
                }
                a
            }
            Placement::Hint(h) => {
                let h = page_down(h);
                if h >= MMAP_MIN_ADDR
                    && h.checked_add(len).is_some_and(|e| e <= MMAP_BASE)
                    && !i.vmas_overlap(h, h + len)
                {
                    h
                } else {
                    i.find_gap(len).ok_or(Errno::ENOMEM)?
                }
            }
        };
        let locked = i.lock_future;
        i.insert_vma(
            addr,
            Vma {
                end: addr + len,
                perms: x86_access(req.perms),
                prot: req.perms,
                shared: req.shared,
                kind: req.kind,
                file: req.file.clone(),
                locked,
                numa: NumaPolicy::default(),
                fork: ForkAdvice::default(),
            },
        );
        if req.shared && req.file.is_none() {
            // Shared pages must be the same pages in every fork child: back them now (the
            // host materialises them only when touched).
            self.back_shared(&mut i, addr, addr + len)?;
        }
        Ok(addr)
    }

    /// `munmap(2)`.
    ///
    /// # Errors
    /// EINVAL for unaligned or out-of-range arguments.
    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        if addr
            .checked_add(len)
            .is_none_or(|e| e > platform::MAX_USER_ADDRESS)
        {
            return Err(Errno::EINVAL);
        }
        let mut i = self.lock();
        self.unmap_locked(&mut i, addr, len)
    }

    /// Unmaps `[addr, addr+len)`: EINVAL, before anything changes, when the range leaves
    /// the application's address space (as Linux's munmap; mremap's shrinking of a garbage
    /// old size reaches here unchecked).
    fn unmap_locked(&self, i: &mut Inner, addr: u64, len: u64) -> Result<(), Errno> {
        let end = addr
            .checked_add(len)
            .filter(|&e| e <= platform::MAX_USER_ADDRESS)
            .ok_or(Errno::EINVAL)?;
        i.split_vmas_at(addr);
        i.split_vmas_at(end);
        let starts: Vec<u64> = i.vmas.range(addr..end).map(|(&s, _)| s).collect();
        for s in starts {
            i.vmas.remove(&s);
        }
        self.drop_pmas(i, addr, end)
    }

    /// Removes the PMAs in `[addr, end)`, unmapping them from the address space and
    /// dropping their memory-file references.
    fn drop_pmas(&self, i: &mut Inner, addr: u64, end: u64) -> Result<(), Errno> {
        i.split_pmas_at(addr);
        i.split_pmas_at(end);
        let removed: Vec<(u64, Pma)> = i.pmas.range(addr..end).map(|(&s, &p)| (s, p)).collect();
        if !i.detached && removed.iter().any(|(_, p)| p.mapped != Perms::NONE) {
            self.space.unmap(addr, end - addr).map_err(platform_err)?;
        }
        for (s, p) in removed {
            i.pmas.remove(&s);
            self.mf.dec_ref(FileRange {
                offset: p.file_offset,
                len: p.end - s,
            });
        }
        Ok(())
    }

    /// `mprotect(2)`.
    ///
    /// # Errors
    /// EINVAL for unaligned addresses, ENOMEM if part of the range is unmapped, EACCES for
    /// write access to a shared mapping that may not be written or execute access to a
    /// file on a `noexec` mount.
    pub fn mprotect(&self, addr: u64, len: u64, perms: Perms) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut i = self.lock();
        if !i.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        if i.vmas.range(..end).any(|(_, v)| {
            v.end > addr && (perms.write && !v.may_write() || perms.exec && !v.may_exec())
        }) {
            return Err(Errno::EACCES);
        }
        i.split_vmas_at(addr);
        i.split_vmas_at(end);
        let access = x86_access(perms);
        for (_, v) in i.vmas.range_mut(addr..end) {
            v.perms = access;
            v.prot = perms;
        }
        i.split_pmas_at(addr);
        i.split_pmas_at(end);
        if i.detached {
            return Ok(());
        }
        self.reprotect_mapped(&mut i, addr, end, access)
    }

    /// Gives the host mappings of the PMAs in `[addr, end)` (split there) what a fault would
    /// map them with under VMA permissions `perms`, in one host call per run of adjacent PMAs
    /// that end up alike, rather than an unmap and a fault per PMA later (a program's
    /// read-only-after-relocation `mprotect`). Runs that become inaccessible are unmapped:
    /// a PMA mapped `Perms::NONE` is one the host does not map.
    fn reprotect_mapped(
        &self,
        i: &mut Inner,
        addr: u64,
        end: u64,
        perms: Perms,
    ) -> Result<(), Errno> {
        let mut runs = HostRuns::default();
        for (&s, p) in i.pmas.range_mut(addr..end) {
            let eff = Perms {
                write: perms.write && !p.cow,
                ..perms
            };
            if p.mapped == Perms::NONE || p.mapped == eff {
                continue;
            }
            p.mapped = eff;
            runs.push(s, p.end, eff);
        }
        runs.apply(self.space.as_ref())
    }

    /// `madvise(MADV_DONTNEED)`: private anonymous memory reads as zero afterwards, private
    /// file mappings lose their copies (and show the file again); shared mappings keep their
    /// contents.
    ///
    /// # Errors
    /// EINVAL for unaligned addresses, ENOMEM for unmapped parts.
    pub fn dontneed(&self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        let mut i = self.lock();
        if !i.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        if i.any_locked(addr, end) {
            return Err(Errno::EINVAL);
        }
        // Shared pages keep their contents (Linux re-reads them from the shared object).
        let private: Vec<(u64, u64)> = i
            .vmas
            .range(..end)
            .filter(|(&s, v)| v.end > addr && s < end && !v.shared)
            .map(|(&s, v)| (s.max(addr), v.end.min(end)))
            .collect();
        for (s, e) in private {
            self.drop_pmas(&mut i, s, e)?;
        }
        Ok(())
    }

    /// `msync(2)`: shared file mappings are the file's pages; the files of those in the
    /// range whose data lives elsewhere (FUSE) write their stores back
    /// ([`filemap::Mappable::sync`]), after the address space's lock is dropped (a
    /// write-back waits for a daemon).
    ///
    /// # Errors
    /// ENOMEM when part of the range is unmapped, EIO when a write-back failed.
    pub fn msync(&self, addr: u64, len: u64, invalidate: bool) -> Result<(), Errno> {
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let files = {
            let i = self.lock();
            if !i.fully_mapped(addr, end) {
                return Err(Errno::ENOMEM);
            }
            // Locked pages cannot be invalidated (Linux: EBUSY).
            if invalidate && i.any_locked(addr, end) {
                return Err(Errno::EBUSY);
            }
            Self::shared_files_in(&i, addr, end)
        };
        let mut result = Ok(());
        for f in files {
            if let Err(e) = f.sync() {
                result = Err(e);
            }
        }
        result
    }

    /// The files of the shared file mappings in `[addr, end)`, each once.
    fn shared_files_in(i: &Inner, addr: u64, end: u64) -> Vec<Arc<dyn filemap::Mappable>> {
        let mut files: Vec<Arc<dyn filemap::Mappable>> = Vec::new();
        for (_, v) in i
            .vmas
            .range(..end)
            .filter(|(_, v)| v.end > addr && v.shared)
        {
            if let Some(f) = &v.file {
                if !files.iter().any(|g| Arc::ptr_eq(g, &f.file)) {
                    files.push(f.file.clone());
                }
            }
        }
        files
    }

    /// `mlock(2)`/`munlock(2)` of `[addr, addr+len)` (page-rounded outwards); `limit` is the
    /// RLIMIT_MEMLOCK bytes the caller may have locked (None: CAP_IPC_LOCK, no limit).
    ///
    /// # Errors
    /// ENOMEM when part of the range is unmapped, when locking would pass `limit`, or (after
    /// locking, as Linux) when part of the range is PROT_NONE and cannot be populated.
    pub fn mlock(&self, addr: u64, len: u64, lock: bool, limit: Option<u64>) -> Result<(), Errno> {
        let start = page_down(addr);
        let end = addr
            .checked_add(len)
            .and_then(page_up)
            .ok_or(Errno::ENOMEM)?;
        if start == end {
            return Ok(());
        }
        let mut i = self.lock();
        if !i.fully_mapped(start, end) {
            return Err(Errno::ENOMEM);
        }
        if lock {
            if let Some(limit) = limit {
                let newly: u64 = i
                    .vmas
                    .range(..end)
                    .filter(|(_, v)| v.end > start && !v.locked)
                    .map(|(&s, v)| v.end.min(end) - s.max(start))
                    .sum();
                if i.locked_bytes() + newly > limit {
                    return Err(Errno::ENOMEM);
                }
            }
        }
        i.split_vmas_at(start);
        i.split_vmas_at(end);
        let mut inaccessible = false;
        for (_, v) in i.vmas.range_mut(start..end) {
            v.locked = lock;
            inaccessible |= v.perms == Perms::NONE;
        }
        if lock && inaccessible {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// `mlockall(2)`: `current` locks every mapping (within `limit`, as [`Self::mlock`]),
    /// `future` every later one; `munlockall(2)` is both false.
    ///
    /// # Errors
    /// ENOMEM when locking every mapping would pass `limit`.
    pub fn mlockall(&self, current: bool, future: bool, limit: Option<u64>) -> Result<(), Errno> {
        let mut i = self.lock();
        if current {
            let total: u64 = i.vmas.iter().map(|(&s, v)| v.end - s).sum();
            if limit.is_some_and(|l| total > l) {
                return Err(Errno::ENOMEM);
            }
        }
        if current || !future {
            for v in i.vmas.values_mut() {
                v.locked = current;
            }
        }
        i.lock_future = future;
        Ok(())
    }

    /// Bytes of locked mappings (what RLIMIT_MEMLOCK counts), and whether the mapping at
    /// `addr` is locked.
    pub fn locked_bytes(&self, addr: u64) -> (u64, bool) {
        let i = self.lock();
        let here = i.vma_at(addr).is_some_and(|(_, v)| v.locked);
        (i.locked_bytes(), here)
    }

    /// `mincore(2)` for the `pages` pages from `addr` (page-aligned, the caller checked):
    /// one byte per page, 1 where the page is resident. A page is resident when this address
    /// space holds memory-file pages for it (it was touched, or populated with a neighbour).
    ///
    /// # Errors
    /// ENOMEM when part of the range is unmapped.
    pub fn mincore(&self, addr: u64, pages: u64) -> Result<Vec<u8>, Errno> {
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|l| addr.checked_add(l))
            .ok_or(Errno::ENOMEM)?;
        let i = self.lock();
        if !i.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let mut vec = vec![0u8; pages as usize];
        for (&s, p) in i.pmas.range(..end) {
            if p.end <= addr {
                continue;
            }
            let first = (s.max(addr) - addr) / PAGE_SIZE;
            let last = (p.end.min(end) - addr) / PAGE_SIZE;
            vec[first as usize..last as usize].fill(1);
        }
        Ok(vec)
    }

    /// `mbind(2)`: gives `[addr, addr+len)` the NUMA policy `policy`.
    ///
    /// # Errors
    /// EINVAL for an unaligned address, EFAULT when part of the range is unmapped (as
    /// Linux's mbind).
    pub fn set_numa_policy(&self, addr: u64, len: u64, policy: NumaPolicy) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Ok(());
        }
        let mut i = self.lock();
        if !i.fully_mapped(addr, end) {
            return Err(Errno::EFAULT);
        }
        i.split_vmas_at(addr);
        i.split_vmas_at(end);
        for (_, v) in i.vmas.range_mut(addr..end) {
            v.numa = policy;
        }
        Ok(())
    }

    /// The NUMA policy of the mapping at `addr` (`get_mempolicy(MPOL_F_ADDR)`).
    ///
    /// # Errors
    /// EFAULT when nothing is mapped there.
    pub fn numa_policy(&self, addr: u64) -> Result<NumaPolicy, Errno> {
        let i = self.lock();
        i.vma_at(addr).map(|(_, v)| v.numa).ok_or(Errno::EFAULT)
    }

    /// `madvise(2)` with MADV_DONTFORK/DOFORK/WIPEONFORK/KEEPONFORK: `set` changes the fork
    /// advice of the mappings in `[addr, end)` (page aligned, the caller checked).
    ///
    /// # Errors
    /// EINVAL for MADV_WIPEONFORK of a shared or file mapping (nothing changes then); ENOMEM
    /// when part of the range is unmapped (the mapped parts change, as Linux).
    pub fn advise_fork(
        &self,
        addr: u64,
        end: u64,
        set: impl Fn(&mut ForkAdvice),
    ) -> Result<(), Errno> {
        let mut i = self.lock();
        let mut probe = ForkAdvice::default();
        set(&mut probe);
        if probe.wipe
            && i.vmas
                .range(..end)
                .any(|(_, v)| v.end > addr && (v.shared || v.file.is_some()))
        {
            return Err(Errno::EINVAL);
        }
        i.split_vmas_at(addr);
        i.split_vmas_at(end);
        // fork decides per PMA from the VMA it lies in: PMAs must not straddle the edges.
        i.split_pmas_at(addr);
        i.split_pmas_at(end);
        for (_, v) in i.vmas.range_mut(addr..end) {
            set(&mut v.fork);
        }
        if i.fully_mapped(addr, end) {
            Ok(())
        } else {
            Err(Errno::ENOMEM)
        }
    }

    /// `mremap(2)`: resizes or moves `[old, old+old_len)`, in Linux's order of checks and
    /// side effects.
    ///
    /// An old size of 0 maps the pages of a shared mapping a second time. Growing a shared
    /// anonymous mapping backs the new part with new shared pages (Linux maps past the end
    /// of the mapping's shmem object there, so touching it raises SIGBUS).
    ///
    /// # Errors
    /// EINVAL/EFAULT/ENOMEM as Linux.
    pub fn mremap(&self, old: u64, old_len: u64, new_len: u64, how: Remap) -> Result<u64, Errno> {
        if !old.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let mut old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).filter(|&l| l > 0).ok_or(Errno::EINVAL)?;
        let mut i = self.lock();
        let dontunmap = matches!(how, Remap::DontUnmap(_));
        match how {
            Remap::Fixed(new) | Remap::DontUnmap(Some(new)) => {
                let new_end = new
                    .checked_add(new_len)
                    .filter(|&e| new.is_multiple_of(PAGE_SIZE) && e <= platform::MAX_USER_ADDRESS)
                    .ok_or(Errno::EINVAL)?;
                if new < old.saturating_add(old_len) && old < new_end {
                    return Err(Errno::EINVAL);
                }
                // Checked before anything is unmapped (Linux 6.17 on; before, a failure here
                // came after the unmaps): only the part that moves must lie in one VMA.
                let (vstart, vma) =
                    i.vma_to_resize(old, old_len.min(new_len), new_len, dontunmap)?;
                self.unmap_locked(&mut i, new, new_len)?;
                if old_len > new_len {
                    self.unmap_locked(&mut i, old + new_len, old_len - new_len)?;
                    old_len = new_len;
                }
                self.move_locked(&mut i, old, old_len, new, new_len, vstart, vma, dontunmap)
            }
            Remap::DontUnmap(None) => {
                let (vstart, vma) = i.vma_to_resize(old, old_len, new_len, true)?;
                let new = i.find_gap(new_len).ok_or(Errno::ENOMEM)?;
                self.move_locked(&mut i, old, old_len, new, new_len, vstart, vma, true)
            }
            Remap::InPlace | Remap::MayMove => {
                // Shrinking only unmaps the tail, whatever lies there.
                if old_len >= new_len {
                    if old_len > new_len {
                        self.unmap_locked(&mut i, old + new_len, old_len - new_len)?;
                    }
                    return Ok(old);
                }
                let (vstart, vma) = i.vma_to_resize(old, old_len, new_len, false)?;
                let old_end = old + old_len;
                let grow_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
                if vma.end == old_end
                    && grow_end <= platform::MAX_USER_ADDRESS
                    && !i.vmas_overlap(old_end, grow_end)
                {
                    let mut file = vma.file.clone();
                    if let Some(f) = &mut file {
                        f.offset += old_end - vstart;
                    }
                    let shared_anon = vma.shared && file.is_none();
                    i.insert_vma(
                        old_end,
                        Vma {
                            end: grow_end,
                            file,
                            ..vma
                        },
                    );
                    if shared_anon {
                        self.back_shared(&mut i, old_end, grow_end)?;
                    }
                    return Ok(old);
                }
                if how != Remap::MayMove {
                    return Err(Errno::ENOMEM);
                }
                let new = i.find_gap(new_len).ok_or(Errno::ENOMEM)?;
                self.move_locked(&mut i, old, old_len, new, new_len, vstart, vma, false)
            }
        }
    }

    /// Moves `[old, old+old_len)` of the VMA `vma` (starting at `vstart`) to `new`, as a
    /// mapping of `new_len` bytes, for [`Self::mremap`]; `new` is free. Pages of a shared
    /// anonymous mapping that stays mapped (an old size of 0, MREMAP_DONTUNMAP) are mapped at
    /// both places; everything else moves, and MREMAP_DONTUNMAP leaves the old range mapped
    /// but empty (anonymous memory reads as zero, file mappings show the file again).
    #[allow(clippy::too_many_arguments)]
    fn move_locked(
        &self,
        i: &mut Inner,
        old: u64,
        old_len: u64,
        new: u64,
        new_len: u64,
        vstart: u64,
        mut vma: Vma,
        dontunmap: bool,
    ) -> Result<u64, Errno> {
        if let Some(f) = &mut vma.file {
            f.offset += old - vstart;
        }
        let shared_anon = vma.shared && vma.file.is_none();
        // The source pages the new mapping takes: a duplicate of a shared mapping covers as
        // much of the old VMA as it can.
        let (src_len, share) = if old_len == 0 {
            (new_len.min(vma.end - old), true)
        } else {
            (old_len.min(new_len), shared_anon && dontunmap)
        };
        i.split_pmas_at(old);
        i.split_pmas_at(old + src_len);
        let pages: Vec<(u64, Pma)> = i
            .pmas
            .range(old..old + src_len)
            .map(|(&s, &p)| (s, p))
            .collect();
        if !share && !i.detached && pages.iter().any(|(_, p)| p.mapped != Perms::NONE) {
            self.space.unmap(old, src_len).map_err(platform_err)?;
        }
        for (s, p) in pages {
            if share {
                self.mf.inc_ref(FileRange {
                    offset: p.file_offset,
                    len: p.end - s,
                });
            } else {
                i.pmas.remove(&s);
            }
            i.pmas.insert(
                new + (s - old),
                Pma {
                    end: new + (p.end - old),
                    mapped: Perms::NONE,
                    ..p
                },
            );
        }
        if !dontunmap {
            self.unmap_locked(i, old, old_len)?;
        }
        i.insert_vma(
            new,
            Vma {
                end: new + new_len,
                ..vma
            },
        );
        if shared_anon && src_len < new_len {
            self.back_shared(i, new + src_len, new + new_len)?;
        }
        Ok(new)
    }

    /// Backs `[start, end)` of a shared anonymous mapping with new pages now, so fork
    /// children share them.
    fn back_shared(&self, i: &mut Inner, start: u64, end: u64) -> Result<(), Errno> {
        self.back_anon(i, start, end)
    }

    /// Backs `[start, end)`, which no PMA covers, with new zeroed pages of the memory file.
    fn back_anon(&self, i: &mut Inner, start: u64, end: u64) -> Result<(), Errno> {
        let r = self.mf.allocate(end - start).map_err(|_| Errno::ENOMEM)?;
        i.pmas.insert(
            start,
            Pma {
                end,
                file_offset: r.offset,
                cow: false,
                mapped: Perms::NONE,
            },
        );
        Ok(())
    }

    /// `MAP_POPULATE` of a writable mapping: backs every page of `[addr, addr+len)` with
    /// memory now (counted in the resident set, as Linux commits them); the application's
    /// address space maps them on first touch, as after any fault.
    ///
    /// # Errors
    /// ENOMEM when the memory file cannot grow.
    pub fn prefault(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let mut i = self.lock();
        let mut page = page_down(addr);
        let end = addr.saturating_add(len);
        while page < end {
            if i.vma_at(page).is_none() {
                break;
            }
            let start = self.populate(&mut i, page, true)?;
            let next = i.pmas.get(&start).map_or(page + PAGE_SIZE, |p| p.end);
            page = next.max(page + PAGE_SIZE);
        }
        Ok(())
    }

    /// Resolves an application fault at `addr`.
    ///
    /// # Errors
    /// The SIGSEGV code when the access is not allowed.
    pub fn handle_fault(&self, addr: u64, access: Access) -> Result<(), SegvCode> {
        let mut i = self.lock();
        let page = page_down(addr);
        let (vstart, vma) = i
            .vma_at(page)
            .map(|(s, v)| (s, v.clone()))
            .ok_or(SegvCode::MapErr)?;
        let allowed = match access {
            Access::Read => vma.perms.read,
            Access::Write => vma.perms.write,
            Access::Exec => vma.perms.exec,
            Access::Unknown => vma.perms != Perms::NONE,
        };
        if !allowed {
            return Err(SegvCode::AccErr);
        }
        if i.beyond_eof(page) {
            return Err(SegvCode::BusErr);
        }
        // A file that has no room for the page (a tmpfs at its size limit) or cannot be read
        // (EIO: a FUSE daemon gone) is SIGBUS; a fill the dying faulting task gave up (EINTR)
        // is no signal.
        self.populate(&mut i, page, false).map_err(|e| {
            if e == Errno::ENOSPC || e == Errno::EIO {
                SegvCode::BusErr
            } else if e == Errno::EINTR {
                SegvCode::Dying
            } else {
                SegvCode::MapErr
            }
        })?;
        // Map no further than this VMA: its neighbours may have other permissions.
        i.split_pmas_at(vstart);
        i.split_pmas_at(vma.end);
        let p = *i.pma_at(page).expect("populated").1;
        let wants_write =
            access == Access::Write || (access == Access::Unknown && p.mapped != Perms::NONE);
        if p.cow && vma.perms.write && !wants_write && p.mapped == Perms::NONE {
            // A read of copy-on-write memory nobody else refers to any more (the other side
            // of a fork exited or exec'd): take it over now, as the write fault that usually
            // follows would, and map it writable in this one host call instead of two.
            let pstart = i.pma_at(page).expect("populated").0;
            if self.sole_owner(pstart, &i.pmas[&pstart]) {
                i.pmas.get_mut(&pstart).expect("present").cow = false;
            }
        }
        if p.cow && vma.perms.write && wants_write {
            // A written page of a private file mapping (a program's data) usually has written
            // neighbours to come, on either side: copying them now, mapped with this one,
            // saves each its own fault. Memory shared copy-on-write by fork is copied a page
            // at a time.
            let window = if vma.file.is_some() {
                let block = page & !(FILE_COW_PAGES * PAGE_SIZE - 1);
                block.max(vstart)..(block + FILE_COW_PAGES * PAGE_SIZE).min(vma.end)
            } else {
                page..page + PAGE_SIZE
            };
            self.break_cow(&mut i, page, window)
                .map_err(|_| SegvCode::MapErr)?;
        } else if p.mapped != Perms::NONE {
            // Already mapped with everything the VMA allows: a real protection fault, or a
            // fault another thread of this mm resolved while this one waited for the lock
            // (two threads writing one copy-on-write page).
            return if self.stale_fault(page, access, p.mapped) {
                Ok(())
            } else {
                Err(SegvCode::AccErr)
            };
        }
        RETRIED_FAULT.set(None);
        let pstart = i.pma_at(page).expect("populated").0;
        let p = i.pmas[&pstart];
        let eff = Perms {
            write: vma.perms.write && !p.cow,
            ..vma.perms
        };
        if i.detached {
            // No task runs this mm any more; a stray fault here is not mapped anywhere.
            return Err(SegvCode::MapErr);
        }
        let mut ops = vec![MapOp::Map {
            addr: pstart,
            len: p.end - pstart,
            file_offset: p.file_offset,
            perms: eff,
        }];
        ops.extend(self.fault_around(&mut i, pstart, p.end));
        let done = match self.space.apply(&ops) {
            Ok(()) => ops.len(),
            Err(e) if e.index > 0 => {
                // The fault's own mapping is in; a neighbour's failure is only a later fault.
                log::warn!("mapping around the fault at {addr:#x}: {}", e.error);
                e.index
            }
            Err(e) => {
                log::error!("mapping fault at {addr:#x}: {}", e.error);
                return Err(SegvCode::MapErr);
            }
        };
        for op in &ops[..done] {
            if let MapOp::Map { addr, perms, .. } = *op {
                i.pmas.get_mut(&addr).expect("present").mapped = perms;
            }
        }
        Ok(())
    }

    /// Host mappings for PMAs near the faulting one at `[start, end)` that are populated but
    /// not mapped (a fork child's, the other runs of a file chunk one fault populated, pages
    /// the sentry copied into): each, mapped now in the same batch as the fault's, saves its
    /// own fault later (a round trip to the sentry and a host call). Nearest first on either
    /// side, at most [`FAULT_AROUND_OPS`] less one, each as a read fault would map it:
    /// with what its VMA allows, read-only while copy-on-write unless nobody else refers to
    /// it any more (then it is taken over). PMAs that straddle a VMA boundary, lie in an
    /// inaccessible VMA or past the end of their file are left to their own faults.
    fn fault_around(&self, i: &mut Inner, start: u64, end: u64) -> Vec<MapOp> {
        let mut below = i.pmas.range(..start).rev().take(FAULT_AROUND_SCAN);
        let mut above = i.pmas.range(end..).take(FAULT_AROUND_SCAN);
        let mut picked = Vec::new();
        'scan: loop {
            let (b, a) = (below.next(), above.next());
            if b.is_none() && a.is_none() {
                break;
            }
            for pick in [b, a]
                .into_iter()
                .flatten()
                .filter_map(|(&s, p)| i.mappable_unmapped(s, p))
            {
                if picked.len() + 1 >= FAULT_AROUND_OPS {
                    break 'scan;
                }
                picked.push(pick);
            }
        }
        picked
            .into_iter()
            .map(|(s, perms)| self.read_fault_op(i, s, perms))
            .collect()
    }

    /// The host mapping a read fault would make for the populated PMA at `s` in a VMA that
    /// allows `perms`: read-only while copy-on-write, unless nobody else refers to its pages
    /// any more (then it is taken over and mapped with everything the VMA allows).
    fn read_fault_op(&self, i: &mut Inner, s: u64, perms: Perms) -> MapOp {
        let p = i.pmas[&s];
        let own = !p.cow || (perms.write && self.sole_owner(s, &p));
        if p.cow && own {
            i.pmas.get_mut(&s).expect("present").cow = false;
        }
        MapOp::Map {
            addr: s,
            len: p.end - s,
            file_offset: p.file_offset,
            perms: Perms {
                write: perms.write && own,
                ..perms
            },
        }
    }

    /// Maps, in one batch before a freshly loaded program first runs, the pages it is about
    /// to touch, instead of a fault (a round trip to the sentry and a host stop) each: the
    /// first chunk of every mapping the loader made but the stack (its segments, bss, the
    /// vDSO), populated as a first fault there populates it; the copy-on-write file pages of
    /// a writable private segment (a program's data, written by its start-up code) copied
    /// from its start up to [`FILE_COW_PAGES`], as its first write fault would; and
    /// every page populated by then, the stack pages the loader wrote included. At most
    /// [`PREFAULT_OPS`] mappings, in address order; a failure leaves the rest to their
    /// faults, as before. A stale host address space is cleared first, in the same batch.
    ///
    /// # Errors
    /// The former program's mappings could not be cleared (see
    /// [`MemoryManager::clear_stale_host`]).
    pub fn prefault_program(&self) -> Result<(), platform::Error> {
        let mut i = self.lock();
        if i.detached {
            return Ok(());
        }
        let vmas: Vec<(u64, Vma)> = i.vmas.iter().map(|(&s, v)| (s, v.clone())).collect();
        for (vstart, v) in vmas {
            if v.perms == Perms::NONE || v.kind == VmaKind::Stack || i.beyond_eof(vstart) {
                continue;
            }
            if self.populate(&mut i, vstart, false).is_err() {
                continue;
            }
            let cow = i.pma_at(vstart).is_some_and(|(_, p)| p.cow);
            if cow && v.perms.write && v.file.is_some() {
                // As the write fault would: a failure (no memory) leaves it to that fault.
                let window = vstart..(vstart + FILE_COW_PAGES * PAGE_SIZE).min(v.end);
                let _ = self.break_cow(&mut i, vstart, window);
            }
            i.split_pmas_at(vstart);
            i.split_pmas_at(v.end);
        }
        let picked: Vec<(u64, Perms)> = i
            .pmas
            .iter()
            .filter_map(|(&s, p)| i.mappable_unmapped(s, p))
            .take(PREFAULT_OPS)
            .collect();
        let ops: Vec<MapOp> = picked
            .into_iter()
            .map(|(s, perms)| self.read_fault_op(&mut i, s, perms))
            .collect();
        // The clear, when due, leads the batch: nothing is mapped unless it went first.
        let clear = usize::from(i.host_stale);
        let batch: Vec<MapOp> = i
            .host_stale
            .then_some(MapOp::Unmap {
                addr: 0,
                len: platform::MAX_USER_ADDRESS,
            })
            .into_iter()
            .chain(ops)
            .collect();
        let done = match self.space.apply(&batch) {
            Ok(()) => batch.len(),
            Err(e) => {
                log::debug!("prefaulting a new program: {}", e.error);
                e.index
            }
        };
        if done > 0 {
            i.host_stale = false;
        }
        for op in &batch[clear.min(done)..done] {
            if let MapOp::Map { addr, perms, .. } = *op {
                i.pmas.get_mut(&addr).expect("present").mapped = perms;
            }
        }
        Self::clear_stale(&self.space, &mut i)
    }

    /// Clears the former program's mappings from a host address space `execve` handed on
    /// (see [`MemoryManager::set_address_space`]), when [`MemoryManager::prefault_program`]
    /// did not: for a program that is not run (it dies of SIGSEGV first).
    ///
    /// # Errors
    /// The host refused the unmap: the old program's pages are still visible there, so the
    /// caller must make sure the new program never runs (execve kills it, as Linux does past
    /// its point of no return).
    pub fn clear_stale_host(&self) -> Result<(), platform::Error> {
        Self::clear_stale(&self.space, &mut self.lock())
    }

    fn clear_stale(space: &Arc<dyn AddressSpace>, i: &mut Inner) -> Result<(), platform::Error> {
        if i.host_stale {
            space.unmap(0, platform::MAX_USER_ADDRESS)?;
            i.host_stale = false;
        }
        Ok(())
    }

    /// Whether every memory-file page behind the PMA `p` starting at `start` has this PMA as
    /// its only reference (what `break_cow` checks before taking a page over instead of
    /// copying it). PMAs of more than 64 pages are not scanned: their write faults decide.
    fn sole_owner(&self, start: u64, p: &Pma) -> bool {
        const MAX_PAGES: u64 = 64;
        let pages = (p.end - start) / PAGE_SIZE;
        pages <= MAX_PAGES && (0..pages).all(|n| self.mf.refs(p.file_offset + n * PAGE_SIZE) == 1)
    }

    /// Whether a fault at `page`, mapped with `mapped` already, was resolved meanwhile and the
    /// access should simply be retried. A known access is stale when the mapping allows it.
    /// An unknown one (the ptrace platform cannot tell) is retried once: if the same page of
    /// this mm faults again straight away, it is a real protection fault.
    fn stale_fault(&self, page: u64, access: Access, mapped: Perms) -> bool {
        match access {
            Access::Read => mapped.read,
            Access::Write => mapped.write,
            Access::Exec => mapped.exec,
            Access::Unknown => {
                let key = (self.id, page);
                let again = RETRIED_FAULT.get() == Some(key);
                RETRIED_FAULT.set((!again).then_some(key));
                !again
            }
        }
    }

    /// Ensures a PMA covers `page` (which must be in a VMA), allocating up to
    /// [`FAULT_CHUNK`] around it. Returns the PMA's start.
    fn populate(&self, i: &mut Inner, page: u64, _write: bool) -> Result<u64, Errno> {
        if let Some((s, _)) = i.pma_at(page) {
            return Ok(s);
        }
        let (vstart, v) = i.vma_at(page).ok_or(Errno::EFAULT)?;
        let v = v.clone();
        let vend = v.end;
        let mut start = page_down(page & !(FAULT_CHUNK - 1)).max(vstart);
        let mut end = (page & !(FAULT_CHUNK - 1))
            .saturating_add(FAULT_CHUNK)
            .min(vend);
        if let Some((_, p)) = i.pmas.range(..page).next_back() {
            start = start.max(p.end);
        }
        if let Some((&s, _)) = i.pmas.range(page..).next() {
            end = end.min(s);
        }
        let Some(fm) = v.file.clone() else {
            self.back_anon(i, start, end)?;
            return Ok(start);
        };
        let cow = !v.writes_in_place();
        // VMAs are page aligned in the file, so addresses and file pages line up.
        let first = (fm.offset + (start - vstart)) / PAGE_SIZE;
        let page_idx = (fm.offset + (page - vstart)) / PAGE_SIZE;
        let mut runs = fm
            .file
            .fault_pages(first, (end - start) / PAGE_SIZE, page_idx);
        // A file may give fewer pages than asked (a tmpfs at its size limit): then the
        // faulting page alone, whose failure is the fault's.
        let covered = runs.as_ref().is_ok_and(|r| {
            r.iter()
                .any(|(idx, fr)| *idx <= page_idx && page_idx < idx + fr.len / PAGE_SIZE)
        });
        if !covered && page_idx != first {
            if let Ok(r) = runs {
                self.insert_file_pmas(i, vstart, &fm, r, cow);
            }
            runs = fm.file.pages(page_idx, 1);
        }
        self.insert_file_pmas(i, vstart, &fm, runs?, cow);
        // The file may have shrunk since the caller checked: no page, no mapping.
        i.pma_at(page).map(|(s, _)| s).ok_or(Errno::EFAULT)
    }

    /// Records PMAs for `runs` of the file mapped at `vstart` by `fm`.
    fn insert_file_pmas(
        &self,
        i: &mut Inner,
        vstart: u64,
        fm: &FileMapping,
        runs: Vec<(u64, FileRange)>,
        cow: bool,
    ) {
        for (idx, r) in runs {
            let at = vstart + (idx * PAGE_SIZE - fm.offset);
            i.pmas.insert(
                at,
                Pma {
                    end: at + r.len,
                    file_offset: r.offset,
                    cow,
                    mapped: Perms::NONE,
                },
            );
        }
    }

    /// Gives the page at `page` its own copy (or takes sole ownership if nobody else refers
    /// to it any more). A copy takes the pages of `window` (which holds `page`) that are
    /// shared copy-on-write alike on both sides of `page` into one new range of the memory
    /// file: across the PMAs that follow one another there (a private file mapping's pages
    /// come in runs of the page cache), so one host mapping covers them all afterwards.
    fn break_cow(&self, i: &mut Inner, page: u64, window: Range<u64>) -> Result<(), Errno> {
        let (pstart, whole) = i.pma_at(page).map(|(s, p)| (s, *p)).ok_or(Errno::EFAULT)?;
        if self.mf.refs(whole.file_offset + (page - pstart)) <= 1 {
            i.split_pmas_at(page);
            i.split_pmas_at(page + PAGE_SIZE);
            i.pmas.get_mut(&page).expect("present").cow = false;
            return Ok(());
        }
        // Neighbouring PMAs join while they are shared copy-on-write and mapped alike (the
        // new PMA keeps one host mapping state).
        let joins = |p: &Pma, at: u64| {
            p.cow && p.mapped == whole.mapped && self.mf.refs(p.file_offset + at) > 1
        };
        let want = window.end.max(page + PAGE_SIZE);
        let mut end = whole.end.min(want);
        while end < want {
            match i.pmas.get(&end) {
                Some(next) if joins(next, 0) => end = next.end.min(want),
                _ => break,
            }
        }
        let floor = window.start.min(page);
        let mut begin = pstart.max(floor);
        while begin > floor {
            match i.pmas.range(..begin).next_back() {
                Some((&s, prev)) if prev.end == begin && joins(prev, begin - PAGE_SIZE - s) => {
                    begin = s.max(floor);
                }
                _ => break,
            }
        }
        let r = self.mf.allocate(end - begin).map_err(|_| Errno::ENOMEM)?;
        i.split_pmas_at(begin);
        i.split_pmas_at(end);
        let pieces: Vec<(u64, Pma)> = i.pmas.range(begin..end).map(|(&s, &p)| (s, p)).collect();
        for (s, p) in pieces {
            let len = p.end - s;
            self.mf.copy(p.file_offset, r.offset + (s - begin), len);
            self.mf.dec_ref(FileRange {
                offset: p.file_offset,
                len,
            });
            i.pmas.remove(&s);
        }
        i.pmas.insert(
            begin,
            Pma {
                end,
                file_offset: r.offset,
                cow: false,
                mapped: whole.mapped,
            },
        );
        Ok(())
    }

    /// Finds the memory-file offset backing `addr` for a sentry copy, creating or un-sharing
    /// pages as needed. Returns (file offset, bytes available in that PMA from `addr`).
    ///
    /// A write that copies a page the host still maps (the shared copy) maps the page's own
    /// copy over it at once, or, given `stale`, adds that mapping there for the caller to
    /// make before it lets go of the lock (see [`MemoryManager::map_batch`]).
    fn translate(
        &self,
        i: &mut Inner,
        addr: u64,
        write: bool,
        force: bool,
        stale: Option<&mut Vec<MapOp>>,
    ) -> Result<(u64, u64), Errno> {
        let page = page_down(addr);
        let (_, v) = i.vma_at(page).ok_or(Errno::EFAULT)?;
        let perms = v.perms;
        let ok = force || if write { perms.write } else { perms.read };
        if !ok || i.beyond_eof(page) {
            return Err(Errno::EFAULT);
        }
        let mut pstart = self.populate(i, page, write)?;
        if write && i.pmas[&pstart].cow {
            let mapped = i.pmas[&pstart].mapped;
            self.break_cow(i, page, page..page + PAGE_SIZE)?;
            if mapped != Perms::NONE && !i.detached {
                // The host mapping still shows the shared page: map the page's own copy over
                // it, with all the VMA allows (as a fault would), in one host call rather
                // than an unmap and a fault later (a patched system-call site, a ptrace poke).
                let own = i.pmas[&page];
                let op = MapOp::Map {
                    addr: page,
                    len: PAGE_SIZE,
                    file_offset: own.file_offset,
                    perms,
                };
                match stale {
                    Some(stale) => stale.push(op),
                    None => {
                        self.space
                            .map(page, PAGE_SIZE, own.file_offset, perms)
                            .map_err(platform_err)?;
                        i.pmas.get_mut(&page).expect("present").mapped = perms;
                    }
                }
            }
            pstart = page;
        }
        let p = i.pmas[&pstart];
        Ok((p.file_offset + (addr - pstart), p.end - addr))
    }

    /// Copies user memory at `addr` into `dst`; returns bytes copied (partial on a fault).
    ///
    /// # Errors
    /// EFAULT when nothing could be copied.
    pub fn copy_in(&self, addr: u64, dst: &mut [u8]) -> Result<usize, Errno> {
        self.copy(addr, dst.len(), false, false, |off, done, n| {
            self.mf.read(off, &mut dst[done..done + n])
        })
    }

    /// Copies user memory at `addr` into `dst` ignoring VMA permissions (a debugger's peek);
    /// returns bytes copied (partial at an unmapped page).
    ///
    /// # Errors
    /// EFAULT when `addr` is not mapped.
    pub fn copy_in_force(&self, addr: u64, dst: &mut [u8]) -> Result<usize, Errno> {
        self.copy(addr, dst.len(), false, true, |off, done, n| {
            self.mf.read(off, &mut dst[done..done + n])
        })
    }

    /// Copies `src` to user memory at `addr`; returns bytes copied (partial on a fault).
    ///
    /// # Errors
    /// EFAULT when nothing could be copied.
    pub fn copy_out(&self, addr: u64, src: &[u8]) -> Result<usize, Errno> {
        self.copy(addr, src.len(), true, false, |off, done, n| {
            self.mf.write(off, &src[done..done + n])
        })
    }

    /// Writes `src` at `addr` ignoring VMA permissions (loader filling a read-only segment,
    /// like a debugger's poke).
    ///
    /// # Errors
    /// EFAULT when `addr` is not mapped.
    pub fn copy_out_force(&self, addr: u64, src: &[u8]) -> Result<usize, Errno> {
        self.copy(addr, src.len(), true, true, |off, done, n| {
            self.mf.write(off, &src[done..done + n])
        })
    }

    fn copy(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        force: bool,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<usize, Errno> {
        if len == 0 {
            return Ok(0);
        }
        let mut i = self.lock();
        let mut done = 0usize;
        while done < len {
            let Some(a) = addr
                .checked_add(done as u64)
                .filter(|&a| a < platform::MAX_USER_ADDRESS)
            else {
                break;
            };
            match self.translate(&mut i, a, write, force, None) {
                Ok((off, avail)) => {
                    let n = (len - done).min(avail as usize);
                    f(off, done, n);
                    done += n;
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// The compare-and-exchange of [`MemoryManager::compare_exchange_u32`] on the word at
    /// `addr` (4-aligned, so within one page), under the lock that keeps its page in place.
    pub(super) fn atomic_u32(&self, addr: u64, old: u32, new: u32) -> Result<u32, Errno> {
        if addr >= platform::MAX_USER_ADDRESS {
            return Err(Errno::EFAULT);
        }
        let mut i = self.lock();
        let (off, _) = self.translate(&mut i, addr, true, false, None)?;
        Ok(self.mf.compare_exchange_u32(off, old, new))
    }

    /// Rewrites the trapped system call returning to `ret` (number `sysno`) into a jump to
    /// the platform's fast entry `entry` (`platform::patch`), when the 7 bytes before `ret`
    /// are `mov $sysno,%eax; syscall` in private executable memory. Only this address
    /// space's own (copy-on-write) copy of the page changes, never a file's page or a
    /// shared mapping. True when the site is patched now.
    pub fn patch_syscall(&self, ret: u64, sysno: u64, entry: u64) -> bool {
        use platform::patch;
        let mut i = self.lock();
        let mut maps = Vec::new();
        let thunk = self.patch_locked(&mut i, ret, sysno, entry, &mut maps);
        // The thread jumps to its thunk next, which reads the table's header: their pages
        // go in the batch that maps the site's new copy, one host stop and no faults.
        if let Some(thunk) = thunk {
            for page in [patch::TABLE_ADDR, page_down(thunk)] {
                if let Some(op) = self.unmapped_pma_op(&mut i, page) {
                    if !maps.contains(&op) {
                        maps.push(op);
                    }
                }
            }
        }
        self.map_batch(&mut i, &maps);
        thunk.is_some()
    }

    /// The host mapping a read fault at `page` would make when its PMA is populated, not
    /// copy-on-write and mapped nowhere yet (at most to the end of its VMA); `None` otherwise.
    fn unmapped_pma_op(&self, i: &mut Inner, page: u64) -> Option<MapOp> {
        let (vstart, vend, perms) = i.vma_at(page).map(|(s, v)| (s, v.end, v.perms))?;
        i.split_pmas_at(vstart);
        i.split_pmas_at(vend);
        let (pstart, p) = i.pma_at(page).map(|(s, p)| (s, *p))?;
        (!p.cow && p.mapped == Perms::NONE && perms != Perms::NONE).then_some(MapOp::Map {
            addr: pstart,
            len: p.end - pstart,
            file_offset: p.file_offset,
            perms,
        })
    }

    /// Makes the host mappings `maps` (of whole PMAs) in one batch and records them. A
    /// mapping that failed is a fault later, except where the host still shows a page's
    /// shared copy (a [`MemoryManager::poke_locked`]): that one is unmapped instead, so that
    /// no thread goes on reading a page this address space no longer holds.
    fn map_batch(&self, i: &mut Inner, maps: &[MapOp]) {
        if maps.is_empty() || i.detached {
            return;
        }
        let done = match self.space.apply(maps) {
            Ok(()) => maps.len(),
            Err(e) => {
                log::warn!("mapping patched code: {}", e.error);
                e.index
            }
        };
        for (n, op) in maps.iter().enumerate() {
            let MapOp::Map {
                addr, len, perms, ..
            } = *op
            else {
                continue;
            };
            let Some(p) = i.pmas.get_mut(&addr) else {
                continue;
            };
            if n < done {
                p.mapped = perms;
            } else if p.mapped != Perms::NONE {
                if let Err(e) = self.space.unmap(addr, len) {
                    log::error!("unmapping a stale page at {addr:#x}: {e}");
                }
                p.mapped = Perms::NONE;
            }
        }
    }

    /// [`MemoryManager::patch_syscall`] with the lock held; the new copies' host mappings
    /// go to `maps`. The thunk's address when the site is patched now.
    fn patch_locked(
        &self,
        i: &mut Inner,
        ret: u64,
        sysno: u64,
        entry: u64,
        maps: &mut Vec<MapOp>,
    ) -> Option<u64> {
        use platform::patch;
        let site = ret.checked_sub(patch::SITE_LEN as u64)?;
        let private_code = |i: &Inner, a: u64| {
            i.vma_at(a)
                .is_some_and(|(_, v)| !v.shared && v.perms.exec && v.perms.read)
        };
        if !private_code(i, site) || !private_code(i, ret - 1) {
            return None;
        }
        let mut code = [0u8; patch::SITE_LEN];
        if self.peek_locked(i, site, &mut code).is_err() || !patch::is_patchable(&code, sysno) {
            return None;
        }
        if i.patch_next == 0 {
            if i.vmas_overlap(patch::TABLE_ADDR, patch::TABLE_ADDR + patch::TABLE_LEN) {
                return None;
            }
            i.insert_vma(
                patch::TABLE_ADDR,
                Vma {
                    end: patch::TABLE_ADDR + patch::TABLE_LEN,
                    perms: Perms::RX,
                    prot: Perms::RX,
                    shared: false,
                    kind: VmaKind::Named(PATCH_TABLE_NAME.into()),
                    file: None,
                    locked: false,
                    numa: NumaPolicy::default(),
                    fork: ForkAdvice::default(),
                },
            );
            i.patch_next = 1;
            if self
                .poke_locked(i, patch::TABLE_ADDR, &patch::table_header(entry), maps)
                .is_err()
            {
                return None;
            }
        }
        // The table must still be the one mapped here (the application may have unmapped
        // it or mapped something else over it: then nothing more is patched).
        let ours = i.vma_at(patch::TABLE_ADDR).is_some_and(|(s, v)| {
            s == patch::TABLE_ADDR
                && v.end == patch::TABLE_ADDR + patch::TABLE_LEN
                && v.file.is_none()
                && !v.shared
                && v.kind == VmaKind::Named(PATCH_TABLE_NAME.into())
        });
        let thunk = patch::thunk_addr(i.patch_next).filter(|_| ours)?;
        if self
            .poke_locked(i, thunk, &patch::thunk(thunk, sysno as u32, site), maps)
            .is_err()
        {
            return None;
        }
        i.patch_next += 1;
        // The rewrite order that keeps every interleaving valid (see `platform::patch`).
        let new = patch::site(thunk);
        let fault = patch::SITE_FAULT_OFFSET;
        let steps: [(usize, usize); 3] = [(fault, fault + 1), (1, patch::SITE_LEN), (0, 1)];
        for (from, to) in steps {
            if self
                .poke_locked(i, site + from as u64, &new[from..to], maps)
                .is_err()
            {
                log::warn!("syscall patch at {site:#x} left half done");
                return None;
            }
        }
        Some(thunk)
    }

    /// Whether a SIGILL at `rip` is a thread that ran the old `mov` of a site patched since
    /// (it faults on the jump's 0x06 byte where `syscall` was): the site's address then.
    pub fn patched_site_before(&self, rip: u64) -> Option<u64> {
        use platform::patch;
        let site = rip.checked_sub(patch::SITE_FAULT_OFFSET as u64)?;
        let mut code = [0u8; patch::SITE_LEN];
        let mut i = self.lock();
        self.peek_locked(&mut i, site, &mut code).ok()?;
        patch::is_patched_site(&code).then_some(site)
    }

    /// Reads `dst.len()` bytes at `addr` ignoring permissions, with the lock held.
    fn peek_locked(&self, i: &mut Inner, addr: u64, dst: &mut [u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < dst.len() {
            let (off, avail) = self.translate(i, addr + done as u64, false, true, None)?;
            let n = (dst.len() - done).min(avail as usize);
            self.mf.read(off, &mut dst[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Writes `src` at `addr` ignoring permissions (copy-on-write pages are copied first),
    /// with the lock held. The host mappings of the copies go to `stale`, for the caller's
    /// [`MemoryManager::map_batch`].
    fn poke_locked(
        &self,
        i: &mut Inner,
        addr: u64,
        src: &[u8],
        stale: &mut Vec<MapOp>,
    ) -> Result<(), Errno> {
        let mut done = 0;
        while done < src.len() {
            let (off, avail) =
                self.translate(i, addr + done as u64, true, true, Some(&mut *stale))?;
            let n = (src.len() - done).min(avail as usize);
            self.mf.write(off, &src[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// The memory-file offset behind `addr` if it lies in a shared mapping (futex keys of
    /// shared mappings must match across address spaces); None for private memory.
    ///
    /// # Errors
    /// EFAULT when `addr` is not mapped.
    pub fn shared_offset(&self, addr: u64) -> Result<Option<u64>, Errno> {
        let mut i = self.lock();
        let shared = i.vma_at(page_down(addr)).ok_or(Errno::EFAULT)?.1.shared;
        if !shared {
            return Ok(None);
        }
        Ok(Some(self.translate(&mut i, addr, false, true, None)?.0))
    }

    /// A copy of this address space for `fork`: private memory becomes copy-on-write in
    /// both, shared memory stays shared.
    ///
    /// # Errors
    /// Platform failures downgrading the parent's mappings.
    pub fn fork(&self, space: Arc<dyn AddressSpace>) -> Result<MemoryManager, Errno> {
        let mut i = self.lock();
        let mut child_pmas = BTreeMap::new();
        let starts: Vec<u64> = i.pmas.keys().copied().collect();
        // Writable private mappings of the parent become read-only (a write faults and copies);
        // adjacent ones in one host call, since each costs a call injected into a stub.
        let mut downgrade = HostRuns::default();
        let mut copy_budget = FORK_COPY_PAGES * PAGE_SIZE;
        for s in starts {
            let (shared, fork) = i
                .vma_at(s)
                .map_or((false, ForkAdvice::default()), |(_, v)| (v.shared, v.fork));
            // The child has none of these pages: its copy of a wiped mapping is new memory.
            if fork.dontfork || fork.wipe {
                continue;
            }
            let p = i.pmas.get_mut(&s).expect("present");
            if !shared && p.mapped.write {
                if let Some(copy) = self.copy_for_child(s, p, &mut copy_budget) {
                    child_pmas.insert(s, copy);
                    continue;
                }
            }
            self.mf.inc_ref(FileRange {
                offset: p.file_offset,
                len: p.end - s,
            });
            if !shared {
                p.cow = true;
                if p.mapped.write {
                    p.mapped.write = false;
                    downgrade.push(s, p.end, p.mapped);
                }
            }
            child_pmas.insert(
                s,
                Pma {
                    mapped: Perms::NONE,
                    ..*p
                },
            );
        }
        // Memory locks are not inherited (VM_LOCKED is cleared in the child, as is MCL_FUTURE).
        let mut vmas = i.vmas.clone();
        vmas.retain(|_, v| !v.fork.dontfork);
        for v in vmas.values_mut() {
            v.locked = false;
        }
        let inner = Inner {
            vmas,
            pmas: child_pmas,
            brk_start: i.brk_start,
            brk: i.brk,
            lock_future: false,
            patch_next: i.patch_next,
            detached: false,
            host_stale: false,
        };
        // Made before the downgrades: on a failure, dropping it gives back the references
        // taken.
        let child = MemoryManager {
            id: NEXT_MM_ID.fetch_add(1, Ordering::Relaxed),
            mf: self.mf.clone(),
            space,
            vm_shared: AtomicBool::new(false),
            membarrier_private: AtomicBool::new(self.membarrier_private()),
            inner: Mutex::new(inner),
        };
        if !i.detached {
            downgrade.apply(self.space.as_ref())?;
        }
        Ok(child)
    }

    /// The child's own copy of the parent's private PMA `p` at `start`, which the parent has
    /// mapped writable, when it fits in `budget` (bytes, reduced by what is copied) and the
    /// memory file has room. The parent then keeps its mapping: copying a few pages costs
    /// far less than the host unmap and the write faults that copy-on-write would bring
    /// (each a round trip to a stub); both sides see the same bytes either way.
    fn copy_for_child(&self, start: u64, p: &Pma, budget: &mut u64) -> Option<Pma> {
        let len = p.end - start;
        if len > *budget {
            return None;
        }
        let r = self.mf.allocate(len).ok()?;
        self.mf.copy(p.file_offset, r.offset, len);
        *budget -= len;
        Some(Pma {
            end: p.end,
            file_offset: r.offset,
            cow: false,
            mapped: Perms::NONE,
        })
    }

    /// `shmdt(2)`: unmaps one attachment at `addr`. The first VMA at or above `addr` that
    /// maps a file `is_target` accepts, at file offset `start - addr`, names the file; then
    /// every VMA of that file lying as it was attached (file offset = distance from `addr`)
    /// within the file's page-rounded size of `addr` goes. Returns the file, None when no
    /// VMA qualifies.
    ///
    /// # Errors
    /// Platform failures unmapping.
    pub fn detach_file(
        &self,
        addr: u64,
        is_target: &dyn Fn(&Arc<dyn filemap::Mappable>) -> bool,
    ) -> Result<Option<Arc<dyn filemap::Mappable>>, Errno> {
        let mut i = self.lock();
        let attached_here = |s: u64, f: &FileMapping| f.offset == s - addr;
        let Some(file) = i
            .vmas
            .range(addr..)
            .filter_map(|(&s, v)| v.file.as_ref().map(|f| (s, f)))
            .find(|&(s, f)| attached_here(s, f) && is_target(&f.file))
            .map(|(_, f)| f.file.clone())
        else {
            return Ok(None);
        };
        let limit = addr.saturating_add(page_up(file.size()).unwrap_or(u64::MAX));
        let ranges: Vec<(u64, u64)> = i
            .vmas
            .range(addr..limit)
            .filter(|(&s, v)| {
                v.end <= limit
                    && v.file.as_ref().is_some_and(|f| {
                        std::ptr::addr_eq(Arc::as_ptr(&f.file), Arc::as_ptr(&file))
                            && attached_here(s, f)
                    })
            })
            .map(|(&s, v)| (s, v.end))
            .collect();
        for (s, e) in ranges {
            self.unmap_locked(&mut i, s, e - s)?;
        }
        Ok(Some(file))
    }

    /// The present page ranges as (start, end, memory-file offset, copy-on-write), in
    /// address order (for a checkpoint).
    pub fn present_ranges(&self) -> Vec<(u64, u64, u64, bool)> {
        let inner = self.inner.lock().unwrap();
        inner
            .pmas
            .iter()
            .map(|(&start, p)| (start, p.end, p.file_offset, p.cow))
            .collect()
    }

    /// The mappings, for `/proc/[pid]/maps`.
    pub fn maps(&self) -> Vec<MapsEntry> {
        let i = self.lock();
        i.vmas
            .iter()
            .map(|(&s, v)| MapsEntry {
                start: s,
                end: v.end,
                perms: v.prot,
                shared: v.shared,
                kind: v.kind.clone(),
                offset: v.file_offset(s, s).unwrap_or(0),
                dev: v.file.as_ref().map_or(0, |f| f.dev),
                ino: v.file.as_ref().map_or(0, |f| f.ino),
                is_file: v.file.is_some(),
                may_write: v.may_write(),
                locked: v.locked,
            })
            .collect()
    }

    /// Bytes of `[start, end)` backed by memory now (one mapping's `Rss` in smaps).
    pub fn resident_in(&self, start: u64, end: u64) -> u64 {
        self.lock()
            .pmas
            .range(..end)
            .map(|(&s, p)| p.end.min(end).saturating_sub(s.max(start)))
            .sum()
    }

    /// The file each file mapping maps, by its start address (a checkpoint recognises the
    /// System V shared memory segments among them).
    pub fn mapped_files(&self) -> Vec<(u64, Arc<dyn filemap::Mappable>)> {
        self.lock()
            .vmas
            .iter()
            .filter_map(|(&s, v)| v.file.as_ref().map(|f| (s, f.file.clone())))
            .collect()
    }

    /// The program break and patch-table fill (for a checkpoint).
    pub fn brk_state(&self) -> BrkState {
        let i = self.lock();
        BrkState {
            brk_start: i.brk_start,
            brk: i.brk,
            patch_next: i.patch_next,
        }
    }

    /// Rebuilds an address space from a checkpoint: the mappings, then the present pages
    /// `(start, end, memory-file offset, copy-on-write)`, each of which takes a reference on
    /// its memory-file range (the restore claimed the ranges before). Nothing is mapped in
    /// the platform address space yet: the first faults map the pages.
    ///
    /// # Errors
    /// EINVAL for mappings or pages that overlap, are unaligned or lie outside a mapping.
    pub fn restore(
        &self,
        vmas: Vec<RestoredVma>,
        pages: &[(u64, u64, u64, bool)],
        brk: BrkState,
    ) -> Result<(), Errno> {
        let mut i = self.lock();
        let aligned = |a: u64| a.is_multiple_of(PAGE_SIZE);
        for v in vmas {
            if !aligned(v.start)
                || !aligned(v.end)
                || v.start >= v.end
                || v.end > platform::MAX_USER_ADDRESS
                || i.vmas_overlap(v.start, v.end)
            {
                return Err(Errno::EINVAL);
            }
            i.insert_vma(
                v.start,
                Vma {
                    end: v.end,
                    perms: x86_access(v.perms),
                    prot: v.perms,
                    shared: v.shared,
                    kind: v.kind,
                    file: v.file,
                    // mlock is not in the image: restored pages are unlocked.
                    locked: false,
                    numa: NumaPolicy::default(),
                    fork: ForkAdvice::default(),
                },
            );
        }
        for &(start, end, file_offset, cow) in pages {
            let inside = i.fully_mapped(start, end);
            let free = i
                .pmas
                .range(..end)
                .next_back()
                .is_none_or(|(_, p)| p.end <= start);
            if !aligned(start) || !aligned(end) || start >= end || !inside || !free {
                return Err(Errno::EINVAL);
            }
            self.mf.inc_ref(FileRange {
                offset: file_offset,
                len: end - start,
            });
            i.pmas.insert(
                start,
                Pma {
                    end,
                    file_offset,
                    cow,
                    mapped: Perms::NONE,
                },
            );
        }
        i.brk_start = brk.brk_start;
        i.brk = brk.brk;
        i.patch_next = brk.patch_next;
        Ok(())
    }

    /// Bytes of memory-file pages this mm refers to (an RSS upper bound).
    pub fn resident(&self) -> u64 {
        self.lock().pmas.iter().map(|(&s, p)| p.end - s).sum()
    }
}

impl Drop for MemoryManager {
    fn drop(&mut self) {
        let i = self.inner.get_mut().unwrap();
        for (&s, p) in &i.pmas {
            self.mf.dec_ref(FileRange {
                offset: p.file_offset,
                len: p.end - s,
            });
        }
    }
}

/// Where an `mmap` goes.
#[derive(Debug, Clone, Copy)]
pub enum Placement {
    Hint(u64),
    Fixed(u64),
    FixedNoReplace(u64),
}

/// A mapping request: anonymous memory, or `file`.
#[derive(Debug, Clone)]
pub struct MmapRequest {
    pub placement: Placement,
    pub len: u64,
    pub perms: Perms,
    pub shared: bool,
    pub kind: VmaKind,
    pub file: Option<FileMapping>,
}

/// How `mremap` may place the result (its flags, decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remap {
    /// No flags: resize where it is.
    InPlace,
    /// MREMAP_MAYMOVE: resize in place if there is room, else move anywhere.
    MayMove,
    /// MREMAP_MAYMOVE | MREMAP_FIXED: move to this address, replacing what is there.
    Fixed(u64),
    /// MREMAP_MAYMOVE | MREMAP_DONTUNMAP (with MREMAP_FIXED: the address): move the pages
    /// and leave the old range mapped.
    DontUnmap(Option<u64>),
}

impl Inner {
    fn vma_at(&self, addr: u64) -> Option<(u64, &Vma)> {
        self.vmas
            .range(..=addr)
            .next_back()
            .filter(|(_, v)| v.end > addr)
            .map(|(&s, v)| (s, v))
    }

    fn pma_at(&self, addr: u64) -> Option<(u64, &Pma)> {
        self.pmas
            .range(..=addr)
            .next_back()
            .filter(|(_, p)| p.end > addr)
            .map(|(&s, p)| (s, p))
    }

    /// Whether the PMA `p` at `s` may be mapped before anything faults on it: populated
    /// but not mapped, inside one VMA that allows some access, not past the end of its
    /// file. Returns its start and what the VMA allows.
    fn mappable_unmapped(&self, s: u64, p: &Pma) -> Option<(u64, Perms)> {
        if p.mapped != Perms::NONE {
            return None;
        }
        let (vstart, v) = self.vma_at(s)?;
        if s < vstart || p.end > v.end || v.perms == Perms::NONE {
            return None;
        }
        if v.file.is_some() && self.beyond_eof(p.end - PAGE_SIZE) {
            return None;
        }
        Some((s, v.perms))
    }

    /// Whether `page` lies in a file VMA past the end of its file (SIGBUS, as Linux).
    fn beyond_eof(&self, page: u64) -> bool {
        let Some((s, v)) = self.vma_at(page) else {
            return false;
        };
        match &v.file {
            Some(f) => f.offset + (page - s) >= page_up(f.file.size()).unwrap_or(u64::MAX),
            None => false,
        }
    }

    /// The VMA that `mremap` resizes (Linux's checks, in its order): it holds `old` and
    /// the whole old range; an old size of 0 (a second mapping) needs a shared mapping.
    /// Returns its start and a copy.
    fn vma_to_resize(
        &self,
        old: u64,
        old_len: u64,
        new_len: u64,
        dontunmap: bool,
    ) -> Result<(u64, Vma), Errno> {
        let (vstart, vma) = self.vma_at(old).ok_or(Errno::EFAULT)?;
        if old_len == 0 && !vma.shared {
            return Err(Errno::EINVAL);
        }
        let fixed_size = vma
            .file
            .as_ref()
            .is_some_and(|f| f.file.fixed_size_mapping());
        if dontunmap && fixed_size {
            return Err(Errno::EINVAL);
        }
        if vma.end - old < old_len {
            return Err(Errno::EFAULT);
        }
        if new_len != old_len || dontunmap {
            if let Some(f) = &vma.file {
                (f.offset + (old - vstart))
                    .checked_add(new_len)
                    .ok_or(Errno::EINVAL)?;
            }
        }
        if new_len != old_len && fixed_size {
            return Err(Errno::EFAULT);
        }
        Ok((vstart, vma.clone()))
    }

    fn vmas_overlap(&self, start: u64, end: u64) -> bool {
        self.vmas
            .range(..end)
            .next_back()
            .is_some_and(|(_, v)| v.end > start)
    }

    fn any_locked(&self, start: u64, end: u64) -> bool {
        self.vmas
            .range(..end)
            .any(|(_, v)| v.end > start && v.locked)
    }

    fn locked_bytes(&self) -> u64 {
        self.vmas
            .iter()
            .filter(|(_, v)| v.locked)
            .map(|(&s, v)| v.end - s)
            .sum()
    }

    fn fully_mapped(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.vma_at(at) {
                Some((_, v)) => at = v.end,
                None => return false,
            }
        }
        true
    }

    /// Highest gap of `len` bytes below [`MMAP_BASE`].
    fn find_gap(&self, len: u64) -> Option<u64> {
        let mut top = MMAP_BASE;
        for (&s, v) in self.vmas.range(..MMAP_BASE).rev() {
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(s);
        }
        (top >= MMAP_MIN_ADDR + len).then(|| top - len)
    }

    fn insert_vma(&mut self, start: u64, vma: Vma) {
        self.vmas.insert(start, vma);
    }

    fn split_vmas_at(&mut self, at: u64) {
        if let Some((s, v)) = self.vma_at(at) {
            if s < at {
                let mut right = v.clone();
                if let Some(f) = &mut right.file {
                    f.offset += at - s;
                }
                self.vmas.get_mut(&s).expect("present").end = at;
                self.vmas.insert(at, right);
            }
        }
    }

    fn split_pmas_at(&mut self, at: u64) {
        if let Some((s, &p)) = self.pma_at(at) {
            if s < at {
                self.pmas.get_mut(&s).expect("present").end = at;
                self.pmas.insert(
                    at,
                    Pma {
                        file_offset: p.file_offset + (at - s),
                        ..p
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address space that accepts every mapping (the tests look at the mm's bookkeeping).
    struct NullSpace;

    impl AddressSpace for NullSpace {
        fn map(&self, _: u64, _: u64, _: u64, _: Perms) -> platform::Result<()> {
            Ok(())
        }
        fn unmap(&self, _: u64, _: u64) -> platform::Result<()> {
            Ok(())
        }
        fn protect(&self, _: u64, _: u64, _: Perms) -> platform::Result<()> {
            Ok(())
        }
        fn release(&self) {}
    }

    /// A file whose pages live in the memory file, contiguously (as cached pages may).
    struct OnePage {
        mf: Arc<MemoryFile>,
        page: FileRange,
    }

    impl filemap::Mappable for OnePage {
        fn size(&self) -> u64 {
            self.page.len
        }
        fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
            let end = (first + count).min(self.page.len / PAGE_SIZE);
            if first >= end {
                return Ok(Vec::new());
            }
            let r = FileRange {
                offset: self.page.offset + first * PAGE_SIZE,
                len: (end - first) * PAGE_SIZE,
            };
            self.mf.inc_ref(r);
            Ok(vec![(first, r)])
        }
        fn shared_writable(&self) -> bool {
            false
        }
    }

    /// Maps `file` privately and writable (copy-on-write) at `addr`.
    fn map_private_file(mm: &MemoryManager, addr: u64, len: u64, file: Arc<dyn filemap::Mappable>) {
        mm.mmap(MmapRequest {
            placement: Placement::Fixed(addr),
            len,
            perms: Perms::RW,
            shared: false,
            kind: VmaKind::Named("f".into()),
            file: Some(FileMapping {
                file,
                offset: 0,
                may_write: false,
                may_exec: true,
                dev: 0,
                ino: 1,
                writer: None,
            }),
        })
        .unwrap();
    }

    #[test]
    fn a_fault_another_thread_resolved_is_retried_not_a_segv() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let page = mf.allocate(PAGE_SIZE).unwrap();
        mf.write(page.offset, b"file");
        let file = Arc::new(OnePage {
            mf: mf.clone(),
            page,
        });
        let mm = MemoryManager::new(mf.clone(), Arc::new(NullSpace));
        let addr = 0x40_0000;
        map_private_file(&mm, addr, PAGE_SIZE, file);
        // Two threads write the copy-on-write page at once: the first fault copies it, the
        // second (handled after) finds it writable already and retries.
        mm.handle_fault(addr, Access::Write).unwrap();
        mm.handle_fault(addr, Access::Write).unwrap();
        mm.copy_out(addr, b"mine").unwrap();
        let mut buf = [0u8; 4];
        mf.read(page.offset, &mut buf);
        assert_eq!(&buf, b"file", "the file's page must stay untouched");
        // Without the access kind, a fault on a fully mapped page is retried once; the same
        // fault again is a real protection fault.
        assert_eq!(mm.handle_fault(addr, Access::Unknown), Ok(()));
        assert_eq!(
            mm.handle_fault(addr, Access::Unknown),
            Err(SegvCode::AccErr)
        );
        // A read-only mapping still refuses writes outright.
        mm.mprotect(addr, PAGE_SIZE, Perms::R).unwrap();
        assert_eq!(mm.handle_fault(addr, Access::Write), Err(SegvCode::AccErr));
        drop(mm);
        mf.dec_ref(page);
    }

    /// An address space that records the permissions of every host mapping (or change of
    /// permissions) it is asked for.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, Perms)>>);

    impl AddressSpace for Recorder {
        fn map(&self, addr: u64, _: u64, _: u64, perms: Perms) -> platform::Result<()> {
            self.0.lock().unwrap().push((addr, perms));
            Ok(())
        }
        fn unmap(&self, _: u64, _: u64) -> platform::Result<()> {
            Ok(())
        }
        fn protect(&self, addr: u64, _: u64, perms: Perms) -> platform::Result<()> {
            self.0.lock().unwrap().push((addr, perms));
            Ok(())
        }
        fn release(&self) {}
    }

    /// Takes the calls `space` recorded so far.
    fn log(space: &Recorder) -> Vec<(u64, Perms)> {
        std::mem::take(&mut *space.0.lock().unwrap())
    }

    #[test]
    fn prefaulting_a_program_maps_its_segments_in_one_batch_and_copies_its_data() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let text = mf.allocate(2 * PAGE_SIZE).unwrap();
        let data = mf.allocate(2 * PAGE_SIZE).unwrap();
        mf.write(data.offset, b"data");
        let space = Arc::new(Recorder::default());
        let mut mm = MemoryManager::new_unbacked(mf.clone());
        let (code, rw, bss, stack) = (0x40_0000, 0x60_0000, 0x60_2000, 0x7000_0000);
        let file = |page| -> Arc<dyn filemap::Mappable> {
            Arc::new(OnePage {
                mf: mf.clone(),
                page,
            })
        };
        map_private_file(&mm, code, 2 * PAGE_SIZE, file(text));
        mm.mprotect(code, 2 * PAGE_SIZE, Perms::RX).unwrap();
        map_private_file(&mm, rw, 2 * PAGE_SIZE, file(data));
        for (addr, len, kind) in [
            (bss, PAGE_SIZE, VmaKind::Anon),
            (stack, 2 * FAULT_CHUNK, VmaKind::Stack),
        ] {
            mm.mmap(MmapRequest {
                placement: Placement::Fixed(addr),
                len,
                perms: Perms::RW,
                shared: false,
                kind,
                file: None,
            })
            .unwrap();
        }
        // What a loader writes: the top of the stack (populating the chunk around it).
        let top = stack + 2 * FAULT_CHUNK - PAGE_SIZE;
        let top_chunk = stack + FAULT_CHUNK;
        mm.copy_out(top, b"argv").unwrap();
        mm.set_address_space(space.clone(), false);
        mm.prefault_program().unwrap();
        let mut mapped = log(&space);
        mapped.sort_by_key(|&(addr, _)| addr);
        assert_eq!(
            mapped,
            vec![
                (code, Perms::RX),
                (rw, Perms::RW),
                (bss, Perms::RW),
                (top_chunk, Perms::RW),
            ],
            "every segment, writable data as its own copy, and only the stack the loader wrote"
        );
        // The data pages are the program's own copies now: the file keeps its bytes.
        mm.copy_out(rw, b"mine").unwrap();
        let mut buf = [0u8; 4];
        mf.read(data.offset, &mut buf);
        assert_eq!(&buf, b"data");
        assert!(log(&space).is_empty(), "the write needed no new mapping");
        // Nothing left to fault in: a fault there finds the page mapped and maps nothing.
        for addr in [code, rw + PAGE_SIZE, bss, top] {
            assert_eq!(mm.handle_fault(addr, Access::Read), Ok(()));
        }
        assert!(log(&space).is_empty(), "a touched page was not mapped");
        // The rest of the stack is left to its faults.
        assert_eq!(mm.handle_fault(stack, Access::Write), Ok(()));
        assert_eq!(log(&space), vec![(stack, Perms::RW)]);
        drop(mm);
        mf.dec_ref(text);
        mf.dec_ref(data);
    }

    /// An address space that records every batch it is asked to apply, and whose unmaps
    /// fail while `refuse_unmap` is set.
    #[derive(Default)]
    struct Batches {
        batches: Mutex<Vec<Vec<MapOp>>>,
        refuse_unmap: AtomicBool,
    }

    impl AddressSpace for Batches {
        fn map(&self, addr: u64, len: u64, file_offset: u64, perms: Perms) -> platform::Result<()> {
            self.apply(&[MapOp::Map {
                addr,
                len,
                file_offset,
                perms,
            }])
            .map_err(|e| e.error)
        }
        fn unmap(&self, addr: u64, len: u64) -> platform::Result<()> {
            self.apply(&[MapOp::Unmap { addr, len }])
                .map_err(|e| e.error)
        }
        fn protect(&self, addr: u64, len: u64, perms: Perms) -> platform::Result<()> {
            self.apply(&[MapOp::Protect { addr, len, perms }])
                .map_err(|e| e.error)
        }
        fn apply(&self, ops: &[MapOp]) -> std::result::Result<(), platform::BatchError> {
            self.batches.lock().unwrap().push(ops.to_vec());
            let refused = self.refuse_unmap.load(Ordering::SeqCst);
            match ops
                .iter()
                .position(|op| refused && matches!(op, MapOp::Unmap { .. }))
            {
                Some(index) => Err(platform::BatchError {
                    index,
                    error: platform::Error::Injected {
                        call: "munmap",
                        errno: libc::ENOMEM,
                    },
                }),
                None => Ok(()),
            }
        }
        fn release(&self) {}
    }

    /// A program loaded into a fresh mm, as execve does: one anonymous page the loader wrote.
    fn loaded_program(mf: &Arc<MemoryFile>, space: Arc<Batches>, stale: bool) -> MemoryManager {
        let mut mm = MemoryManager::new_unbacked(mf.clone());
        mm.mmap(MmapRequest {
            placement: Placement::Fixed(0x40_0000),
            len: PAGE_SIZE,
            perms: Perms::RW,
            shared: false,
            kind: VmaKind::Anon,
            file: None,
        })
        .unwrap();
        mm.copy_out(0x40_0000, b"prog").unwrap();
        mm.set_address_space(space, stale);
        mm
    }

    #[test]
    fn a_patched_site_and_the_patch_table_are_mapped_in_one_batch() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let space = Arc::new(Batches::default());
        let mm = MemoryManager::new(mf, space.clone());
        mm.mmap(MmapRequest {
            placement: Placement::Fixed(0x40_0000),
            len: PAGE_SIZE,
            perms: Perms::RX,
            shared: false,
            kind: VmaKind::Anon,
            file: None,
        })
        .unwrap();
        // `mov $12, %eax; syscall`, shared copy-on-write with a forked child that runs it.
        let code = [0xb8, 12, 0, 0, 0, 0x0f, 0x05];
        mm.copy_out_force(0x40_0100, &code).unwrap();
        let child = mm.fork(space.clone()).unwrap();
        child.handle_fault(0x40_0100, Access::Exec).unwrap();
        space.batches.lock().unwrap().clear();
        assert!(child.patch_syscall(0x40_0107, 12, 0x7fff_0000));
        let batches = std::mem::take(&mut *space.batches.lock().unwrap());
        assert_eq!(batches.len(), 1, "one host batch: {batches:?}");
        let mapped: Vec<(u64, Perms)> = batches[0]
            .iter()
            .filter_map(|op| match *op {
                MapOp::Map { addr, perms, .. } => Some((addr, perms)),
                _ => None,
            })
            .collect();
        assert!(mapped.contains(&(0x40_0000, Perms::RX)), "{batches:?}");
        assert!(
            mapped.contains(&(platform::patch::TABLE_ADDR, Perms::RX)),
            "{batches:?}"
        );
        // Recorded as mapped: the thread's jump to its thunk is no fault of ours.
        let i = child.lock();
        assert_eq!(
            i.pma_at(platform::patch::TABLE_ADDR).unwrap().1.mapped,
            Perms::RX
        );
        assert_eq!(i.pma_at(0x40_0000).unwrap().1.mapped, Perms::RX);
        drop(i);
        // Only the child's copy changed.
        let mut seen = [0u8; 7];
        mm.copy_in_force(0x40_0100, &mut seen).unwrap();
        assert_eq!(seen, code);
        child.copy_in_force(0x40_0100, &mut seen).unwrap();
        assert_eq!(&seen[..3], &[0xff, 0x24, 0x25]);
    }

    #[test]
    fn an_inherited_host_address_space_is_cleared_in_the_prefault_batch() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let all = MapOp::Unmap {
            addr: 0,
            len: platform::MAX_USER_ADDRESS,
        };
        // Handed on by an exec: the clear leads the one batch, and is not made again.
        let space = Arc::new(Batches::default());
        let mm = loaded_program(&mf, space.clone(), true);
        mm.prefault_program().unwrap();
        mm.clear_stale_host().unwrap();
        let batches = std::mem::take(&mut *space.batches.lock().unwrap());
        assert_eq!(batches.len(), 1, "one host batch: {batches:?}");
        assert_eq!(batches[0][0], all);
        assert!(matches!(
            batches[0][1],
            MapOp::Map {
                addr: 0x40_0000,
                ..
            }
        ));
        drop(mm);
        // A fresh one needs no clear.
        let mm = loaded_program(&mf, space.clone(), false);
        mm.prefault_program().unwrap();
        let batches = std::mem::take(&mut *space.batches.lock().unwrap());
        assert!(!batches.concat().contains(&all), "{batches:?}");
        drop(mm);
        // A program that is not run (SIGSEGV at exec) still gets the clear.
        let mm = loaded_program(&mf, space.clone(), true);
        mm.clear_stale_host().unwrap();
        assert_eq!(*space.batches.lock().unwrap(), vec![vec![all]]);
        space.batches.lock().unwrap().clear();
        drop(mm);
        // A clear the host refuses is an error (execve kills the process), nothing is
        // recorded as mapped, and a later clear is tried again.
        space.refuse_unmap.store(true, Ordering::SeqCst);
        let mm = loaded_program(&mf, space.clone(), true);
        assert!(mm.prefault_program().is_err());
        assert!(mm.clear_stale_host().is_err());
        assert!(mm.lock().pmas.values().all(|p| p.mapped == Perms::NONE));
        space.refuse_unmap.store(false, Ordering::SeqCst);
        mm.clear_stale_host().unwrap();
        assert_eq!(space.batches.lock().unwrap().last(), Some(&vec![all]));
        drop(mm);
    }

    #[test]
    fn growing_the_break_maps_its_first_new_page_and_shrinking_maps_nothing() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let space = Arc::new(Recorder::default());
        let mm = MemoryManager::new(mf, space.clone());
        let start = 0x60_0000;
        mm.set_brk_start(start);
        assert_eq!(mm.brk(start + 0x21000), start + 0x21000);
        assert_eq!(log(&space), vec![(start, Perms::RW)]);
        // malloc's first write there needs no fault: the page is mapped writable already.
        assert_eq!(mm.handle_fault(start + 0x10, Access::Write), Ok(()));
        assert!(log(&space).is_empty());
        assert_eq!(mm.brk(start + 0x1000), start + 0x1000);
        assert!(log(&space).is_empty(), "a shrink maps nothing");
        assert_eq!(mm.brk(start + 0x3000), start + 0x3000);
        assert_eq!(log(&space), vec![(start + 0x1000, Perms::RW)]);
    }

    #[test]
    fn a_read_of_copy_on_write_memory_nobody_shares_maps_it_writable() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let space = Arc::new(Recorder::default());
        let parent = MemoryManager::new(mf.clone(), space.clone());
        let (a, b) = (0x40_0000, 0x60_0000);
        for addr in [a, b] {
            parent
                .mmap(MmapRequest {
                    placement: Placement::Fixed(addr),
                    len: PAGE_SIZE,
                    perms: Perms::RW,
                    shared: false,
                    kind: VmaKind::Named("anon".into()),
                    file: None,
                })
                .unwrap();
            parent.copy_out(addr, b"data").unwrap();
        }
        // While the child shares the pages, a read maps them read-only (a write must copy):
        // the faulting one, and the other one around it in the same batch.
        let child_space = Arc::new(Recorder::default());
        let child = parent.fork(child_space.clone()).unwrap();
        parent.handle_fault(a, Access::Read).unwrap();
        assert_eq!(log(&space), [(a, Perms::R), (b, Perms::R)]);
        // Once the parent is gone, a read fault of the child takes the pages over and maps
        // them writable in one go, with the contents they had.
        drop(parent);
        child.handle_fault(b, Access::Read).unwrap();
        assert_eq!(log(&child_space), [(b, Perms::RW), (a, Perms::RW)]);
        let mut buf = [0u8; 4];
        child.copy_in(a, &mut buf).unwrap();
        assert_eq!(&buf, b"data");
        // Both are writable already: a write needs no mapping.
        child.handle_fault(a, Access::Write).unwrap();
        assert!(log(&child_space).is_empty());
    }

    #[test]
    fn mprotect_changes_mapped_pages_in_place_and_keeps_copy_on_write_read_only() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let len = 3 * PAGE_SIZE;
        let pages = mf.allocate(len).unwrap();
        let file = Arc::new(OnePage {
            mf: mf.clone(),
            page: pages,
        });
        let space = Arc::new(Recorder::default());
        let mm = MemoryManager::new(mf.clone(), space.clone());
        let addr = 0x40_0000;
        let third = addr + 2 * PAGE_SIZE;
        map_private_file(&mm, addr, len, file);
        // The first two pages get copies of their own, the third stays the file's
        // (copy-on-write).
        mm.copy_out(addr, b"own").unwrap();
        mm.copy_out(addr + PAGE_SIZE, b"own").unwrap();
        for page in [addr, addr + PAGE_SIZE, third] {
            mm.handle_fault(page, Access::Read).unwrap();
        }
        assert_eq!(
            log(&space),
            [
                (addr, Perms::RW),
                (addr + PAGE_SIZE, Perms::RW),
                (third, Perms::R)
            ]
        );
        // Read-only: one change for the two adjacent copies (the file's page is read-only
        // already), and no fault needed to see them again.
        mm.mprotect(addr, len, Perms::R).unwrap();
        assert_eq!(log(&space), [(addr, Perms::R)]);
        assert_eq!(mm.handle_fault(addr, Access::Write), Err(SegvCode::AccErr));
        // Writable again: only the copies may be written in place; the file's page stays
        // read-only and its write fault copies it.
        mm.mprotect(addr, len, Perms::RW).unwrap();
        assert_eq!(log(&space), [(addr, Perms::RW)]);
        mm.handle_fault(third, Access::Write).unwrap();
        assert_eq!(log(&space), [(third, Perms::RW)]);
        // Inaccessible: the host mappings go, and every access is refused.
        mm.mprotect(addr, len, Perms::NONE).unwrap();
        assert!(log(&space).is_empty());
        assert_eq!(mm.handle_fault(addr, Access::Read), Err(SegvCode::AccErr));
        let mut buf = [0u8; 3];
        mm.copy_in_force(addr + PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(&buf, b"own");
        drop(mm);
        mf.dec_ref(pages);
    }

    #[test]
    fn a_write_to_a_private_file_mapping_copies_its_aligned_block_on_both_sides() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let block = FILE_COW_PAGES * PAGE_SIZE;
        let len = 2 * block;
        let pages = mf.allocate(len).unwrap();
        mf.write(pages.offset + block + PAGE_SIZE, b"file");
        let file = Arc::new(OnePage {
            mf: mf.clone(),
            page: pages,
        });
        let space = Arc::new(Recorder::default());
        let mm = MemoryManager::new(mf.clone(), space.clone());
        let addr = 0x40_0000;
        map_private_file(&mm, addr, len, file);
        // A write to the second block's second page copies that whole block, the page below
        // the fault included (a program writing its data downwards), into one mapping; the
        // first block is mapped around the fault, read-only (still the file's).
        mm.handle_fault(addr + block + PAGE_SIZE, Access::Write)
            .unwrap();
        assert_eq!(log(&space), [(addr + block, Perms::RW), (addr, Perms::R)]);
        for page in [block, block + PAGE_SIZE, len - PAGE_SIZE] {
            mm.handle_fault(addr + page, Access::Write).unwrap();
            assert!(
                log(&space).is_empty(),
                "{page:#x} was copied with the fault"
            );
        }
        // The copies hold the file's data, and writes to them never reach the file.
        let mut buf = [0u8; 4];
        mm.copy_in(addr + block + PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(&buf, b"file");
        mm.copy_out(addr + block + PAGE_SIZE, b"mine").unwrap();
        mf.read(pages.offset + block + PAGE_SIZE, &mut buf);
        assert_eq!(&buf, b"file");
        // The first block is still the file's: a write to its last page copies that block
        // alone.
        mm.handle_fault(addr + block - PAGE_SIZE, Access::Write)
            .unwrap();
        assert_eq!(log(&space), [(addr, Perms::RW)]);
        drop(mm);
        mf.dec_ref(pages);
    }

    /// A file whose two pages live apart in the memory file (two runs, as a page cache may
    /// hold them).
    struct TwoRuns {
        mf: Arc<MemoryFile>,
        runs: [FileRange; 2],
    }

    impl filemap::Mappable for TwoRuns {
        fn size(&self) -> u64 {
            2 * PAGE_SIZE
        }
        fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
            let end = (first + count).min(2);
            Ok((first..end)
                .map(|idx| {
                    let r = self.runs[idx as usize];
                    self.mf.inc_ref(r);
                    (idx, r)
                })
                .collect())
        }
        fn shared_writable(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_write_to_a_private_file_mapping_copies_across_page_cache_runs_into_one_mapping() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let first = mf.allocate(PAGE_SIZE).unwrap();
        let _gap = mf.allocate(PAGE_SIZE).unwrap();
        let runs = [first, mf.allocate(PAGE_SIZE).unwrap()];
        mf.write(runs[1].offset, b"two");
        let file = Arc::new(TwoRuns {
            mf: mf.clone(),
            runs,
        });
        let space = Arc::new(Recorder::default());
        let mm = MemoryManager::new(mf.clone(), space.clone());
        let addr = 0x40_0000;
        map_private_file(&mm, addr, 2 * PAGE_SIZE, file);
        // One write fault copies both runs into one range: one mapping, writable, and the
        // second page needs no fault of its own.
        mm.handle_fault(addr, Access::Write).unwrap();
        assert_eq!(log(&space), [(addr, Perms::RW)]);
        mm.handle_fault(addr + PAGE_SIZE, Access::Write).unwrap();
        assert!(log(&space).is_empty());
        let mut buf = [0u8; 3];
        mm.copy_in(addr + PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(&buf, b"two");
        mm.copy_out(addr + PAGE_SIZE, b"own").unwrap();
        mf.read(runs[1].offset, &mut buf);
        assert_eq!(&buf, b"two", "the file's page stays untouched");
    }

    #[test]
    fn fork_copies_small_writable_mappings_and_shares_large_ones_copy_on_write() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let space = Arc::new(Recorder::default());
        let parent = MemoryManager::new(mf.clone(), space.clone());
        let (small, large) = (0x40_0000, 0x80_0000);
        let large_len = (FORK_COPY_PAGES + 1) * PAGE_SIZE;
        for (addr, len) in [(small, PAGE_SIZE), (large, large_len)] {
            parent
                .mmap(MmapRequest {
                    placement: Placement::Fixed(addr),
                    len,
                    perms: Perms::RW,
                    shared: false,
                    kind: VmaKind::Named("anon".into()),
                    file: None,
                })
                .unwrap();
            parent.handle_fault(addr, Access::Write).unwrap();
            parent.copy_out(addr, b"before").unwrap();
        }
        space.0.lock().unwrap().clear();
        let child = parent.fork(Arc::new(NullSpace)).unwrap();
        // The large one stays mapped in the parent, read-only: reads need no fault.
        assert_eq!(space.0.lock().unwrap().pop(), Some((large, Perms::R)));
        // The small mapping stays mapped writable in the parent: its write needs no fault.
        parent.handle_fault(small, Access::Write).unwrap();
        assert_eq!(space.0.lock().unwrap().pop(), None);
        // The large one went copy-on-write: the parent's write maps a copy of its own.
        parent.handle_fault(large, Access::Write).unwrap();
        assert_eq!(space.0.lock().unwrap().pop(), Some((large, Perms::RW)));
        // Either way, each side sees only its own writes.
        for addr in [small, large] {
            parent.copy_out(addr, b"parent").unwrap();
            child.copy_out(addr + 8, b"child").unwrap();
            let mut buf = [0u8; 13];
            child.copy_in(addr, &mut buf).unwrap();
            assert_eq!(&buf, b"before\0\0child");
            parent.copy_in(addr, &mut buf).unwrap();
            assert_eq!(&buf, b"parent\0\0\0\0\0\0\0");
        }
    }
}
