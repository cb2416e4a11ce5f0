//! The message regions shared by systrap stubs and the sentry.
//!
//! Every stub has one region of [`REGION_SIZE`] bytes of the platform's message file,
//! mapped at a [`REGION_SIZE`]-aligned address above the stub pages in the stub's address
//! space and once more (the whole file) in the sentry. The region is also the stub's
//! alternate signal stack, so the signal handler finds its region by rounding its stack
//! pointer down, without any thread-local storage.
//!
//! The region's layout is [`crate::stub::layout`] (shared with the stub code).
//!
//! The application can read and write its own stubs' regions (they are in its address
//! space): the sentry treats everything in them as application-controlled register values,
//! bounds every length it reads, and never trusts them for anything else.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;

use crate::ptrace::sys::host;
pub(crate) use crate::stub::layout::*;
use crate::stub::STUB_BASE;
use crate::{Error, Regs, Result};

const _: () = assert!(REGIONS_BASE == STUB_BASE + 0x1_0000_0000);
const FILE_SIZE: u64 = MAX_SLOTS as u64 * REGION_SIZE;

/// End of the x86-64 user address range with 4-level paging (`TASK_SIZE_MAX`).
const TASK_SIZE: u64 = 0x7fff_ffff_f000;
// The regions fit between the stub pages and the end of user space, aligned.
const _: () = assert!(REGIONS_BASE + FILE_SIZE <= TASK_SIZE);
const _: () = assert!(REGIONS_BASE.is_multiple_of(REGION_SIZE));
// Setup data (at most a page) lies in the stack part, clear of the message fields.
const _: () = assert!(SCRATCH >= ALT_STACK && SCRATCH + 4096 <= REGION_SIZE as usize);

/// `gregs` indices of `mcontext_t` (sys/ucontext.h `REG_*`).
mod greg {
    pub(super) const R8: usize = 0;
    pub(super) const R9: usize = 1;
    pub(super) const R10: usize = 2;
    pub(super) const R11: usize = 3;
    pub(super) const R12: usize = 4;
    pub(super) const R13: usize = 5;
    pub(super) const R14: usize = 6;
    pub(super) const R15: usize = 7;
    pub(super) const RDI: usize = 8;
    pub(super) const RSI: usize = 9;
    pub(super) const RBP: usize = 10;
    pub(super) const RBX: usize = 11;
    pub(super) const RDX: usize = 12;
    pub(super) const RAX: usize = 13;
    pub(super) const RCX: usize = 14;
    pub(super) const RSP: usize = 15;
    pub(super) const RIP: usize = 16;
    pub(super) const EFL: usize = 17;
    pub(super) const CSGSFS: usize = 18;
    pub(super) const ERR: usize = 19;
    pub(super) const TRAPNO: usize = 20;
}

/// One stub's region: its index in the message file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u32);

impl Slot {
    /// Where the region is mapped in the application address space.
    pub(crate) fn app_addr(self) -> u64 {
        REGIONS_BASE + u64::from(self.0) * REGION_SIZE
    }

    /// Where the region is in the message file.
    pub(crate) fn file_offset(self) -> u64 {
        u64::from(self.0) * REGION_SIZE
    }

    /// The slot's index, which [`Slot::from_index`] turns back into it.
    pub(crate) fn index(self) -> u32 {
        self.0
    }

    /// The slot of `index`, one that [`Slot::index`] returned.
    pub(crate) fn from_index(index: u32) -> Slot {
        debug_assert!(index < MAX_SLOTS);
        Slot(index)
    }
}

/// The platform's message file, mapped whole in the sentry, and its free regions.
pub(crate) struct SysmsgFile {
    fd: OwnedFd,
    base: *mut u8,
    /// Slots never handed out are `next..MAX_SLOTS`; `free` holds returned ones.
    slots: Mutex<SlotPool>,
}

#[derive(Default)]
struct SlotPool {
    next: u32,
    free: Vec<Slot>,
}

// SAFETY: `base` points to a shared mapping owned by this value for its whole life; all
// access through it goes through `Region`, whose methods use atomics or copies of plain
// bytes, so sharing the pointer between threads is sound.
unsafe impl Send for SysmsgFile {}
// SAFETY: see `Send`; the slot pool is behind a mutex.
unsafe impl Sync for SysmsgFile {}

impl SysmsgFile {
    /// Creates and maps the message file.
    ///
    /// # Errors
    /// memfd_create, ftruncate or mmap failed.
    pub(crate) fn new() -> Result<SysmsgFile> {
        // SAFETY: memfd_create with a NUL-terminated name; returns a new fd or -1.
        let raw = unsafe { libc::memfd_create(c"runsc-rs-systrap".as_ptr(), libc::MFD_CLOEXEC) };
        let raw = Errno::result(raw).map_err(host("memfd_create (systrap messages)"))?;
        // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        nix::unistd::ftruncate(&fd, FILE_SIZE as i64)
            .map_err(host("ftruncate (systrap messages)"))?;
        // SAFETY: a new shared mapping of the whole file, placed by the kernel; it replaces
        // nothing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::Host {
                call: "mmap (systrap messages)",
                source: Errno::last(),
            });
        }
        Ok(SysmsgFile {
            fd,
            base: base.cast(),
            slots: Mutex::default(),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Takes a free region.
    ///
    /// # Errors
    /// All [`MAX_SLOTS`] regions are in use.
    pub(crate) fn alloc(&self) -> Result<Slot> {
        let mut pool = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = pool.free.pop() {
            return Ok(slot);
        }
        if pool.next == MAX_SLOTS {
            return Err(Error::Host {
                call: "systrap message region",
                source: Errno::EAGAIN,
            });
        }
        pool.next += 1;
        Ok(Slot(pool.next - 1))
    }

    /// Returns regions no address space maps any more.
    pub(crate) fn free(&self, slots: impl IntoIterator<Item = Slot>) {
        let mut pool = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        pool.free.extend(slots);
    }

    /// The regions handed out and not returned.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> Vec<Slot> {
        let pool = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        (0..pool.next)
            .map(Slot)
            .filter(|s| !pool.free.contains(s))
            .collect()
    }

    /// The sentry's view of `slot`'s region.
    pub(crate) fn region(&self, slot: Slot) -> Region<'_> {
        debug_assert!(slot.0 < MAX_SLOTS);
        Region {
            // SAFETY: slot < MAX_SLOTS, so the region lies inside the mapping.
            base: unsafe { self.base.add(slot.file_offset() as usize) },
            _file: std::marker::PhantomData,
        }
    }
}

impl Drop for SysmsgFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; regions borrow `self`, so none
        // outlives it.
        unsafe { libc::munmap(self.base.cast(), FILE_SIZE as usize) };
    }
}

/// The sentry's view of one region. Another process (the stub, and application code in its
/// address space) writes the same memory concurrently: every access is an atomic of the
/// control words or a volatile copy of bytes whose values are never trusted.
pub(crate) struct Region<'a> {
    base: *mut u8,
    _file: std::marker::PhantomData<&'a SysmsgFile>,
}

impl Region<'_> {
    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(
            offset.is_multiple_of(4)
                && (offset < OFF_SIGINFO
                    || offset == OFF_INTERRUPTED
                    || offset == OFF_PICKUPS
                    || (CONTROL_LINE..CONTROL_END).contains(&offset))
        );
        // SAFETY: `offset` is one of the aligned control words inside the region, which
        // lives as long as the file borrowed by `self`; all access to it is atomic.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast()) }
    }

    pub(crate) fn state(&self) -> &AtomicU32 {
        self.word(OFF_STATE)
    }

    pub(crate) fn stub_sleeping(&self) -> &AtomicU32 {
        self.word(OFF_STUB_SLEEPING)
    }

    pub(crate) fn sentry_sleeping(&self) -> &AtomicU32 {
        self.word(OFF_SENTRY_SLEEPING)
    }

    /// How many resumes the stub has taken ([`OFF_PICKUPS`]).
    pub(crate) fn pickups(&self) -> u32 {
        self.word(OFF_PICKUPS).load(Ordering::Relaxed)
    }

    /// Set before a resume that only asks the stub to save its FP state and publish the same
    /// event again (cleared by the stub).
    pub(crate) fn fp_request(&self) -> &AtomicU32 {
        self.word(OFF_FP_REQUEST)
    }

    fn read_u64(&self, offset: usize) -> u64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= ALT_STACK);
        // SAFETY: an aligned word inside the region; a racing writer can only change the
        // value, which is untrusted anyway.
        unsafe { self.base.add(offset).cast::<u64>().read_volatile() }
    }

    fn write_u64(&self, offset: usize, value: u64) {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= ALT_STACK);
        // SAFETY: as in `read_u64`.
        unsafe { self.base.add(offset).cast::<u64>().write_volatile(value) }
    }

    fn read_u32(&self, offset: usize) -> u32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= ALT_STACK);
        // SAFETY: as in `read_u64`.
        unsafe { self.base.add(offset).cast::<u32>().read_volatile() }
    }

    fn write_u32(&self, offset: usize, value: u32) {
        self.word(offset).store(value, Ordering::Relaxed);
    }

    /// Writes `value` unless the word already holds it. A cache line the sentry only reads
    /// stays valid in the stub's CPU's cache, so the stub's next reads of it are hits instead
    /// of transfers from the sentry's CPU (most registers come back unchanged from a system
    /// call). What the stub then reads is the same as after an unconditional write.
    fn update_u64(&self, offset: usize, value: u64) {
        if self.read_u64(offset) != value {
            self.write_u64(offset, value);
        }
    }

    /// [`Region::update_u64`] for one of the 32-bit words of [`Region::word`].
    fn update_u32(&self, offset: usize, value: u32) {
        let word = self.word(offset);
        if word.load(Ordering::Relaxed) != value {
            word.store(value, Ordering::Relaxed);
        }
    }

    /// Prepares a fresh stub's region: not yet stopped, nobody sleeping, no polling.
    pub(crate) fn reset(&self, fsgsbase: bool) {
        let control = (CONTROL_LINE..CONTROL_END).step_by(4);
        for offset in (0..OFF_SIGINFO)
            .step_by(4)
            .chain([OFF_INTERRUPTED, OFF_PICKUPS])
            .chain(control)
        {
            self.write_u32(offset, 0);
        }
        self.write_u32(OFF_FSGSBASE, u32::from(fsgsbase));
        self.write_u32(
            OFF_XSAVE_SIZE,
            u32::try_from(crate::xsave_size().min(FP_MAX)).unwrap_or(0),
        );
    }

    /// Who published the event ([`KIND_SIGNAL`] or [`KIND_FAST_SYSCALL`]).
    pub(crate) fn kind(&self) -> u32 {
        self.word(OFF_KIND).load(Ordering::Relaxed)
    }

    /// How many `pause`s the stub polls for its next resume before sleeping.
    pub(crate) fn set_spin(&self, pauses: u32) {
        self.update_u32(OFF_SPIN, pauses);
    }

    /// Loads the registers the handler will return to (only the words that differ from what
    /// the region holds, see [`Region::update_u64`]). Writes `fp` (legacy area without its
    /// software-reserved bytes, and the extended area) when `Some`.
    pub(crate) fn store_regs(&self, regs: &Regs, fp: Option<&[u8]>) {
        let gregs = [
            regs.r8,
            regs.r9,
            regs.r10,
            regs.r11,
            regs.r12,
            regs.r13,
            regs.r14,
            regs.r15,
            regs.rdi,
            regs.rsi,
            regs.rbp,
            regs.rbx,
            regs.rdx,
            regs.rax,
            regs.rcx,
            regs.rsp,
            regs.rip,
            regs.eflags,
        ];
        for (i, value) in gregs.into_iter().enumerate() {
            self.update_u64(OFF_GREGS + 8 * i, value);
        }
        self.update_u64(OFF_FS_BASE, regs.fs_base);
        self.update_u64(OFF_GS_BASE, regs.gs_base);
        match fp {
            Some(area) => {
                let len = area.len().min(FP_MAX);
                let area = &area[..len];
                let head = &area[..FP_SW_RESERVED.min(len)];
                // SAFETY: `len <= FP_MAX`, so the destination stays inside the FP area of
                // the region; source and destination never overlap (different mappings).
                unsafe {
                    std::ptr::copy_nonoverlapping(head.as_ptr(), self.base.add(OFF_FP), head.len());
                    if len > FP_LEGACY {
                        std::ptr::copy_nonoverlapping(
                            area[FP_LEGACY..].as_ptr(),
                            self.base.add(OFF_FP + FP_LEGACY),
                            len - FP_LEGACY,
                        );
                    }
                }
                self.update_u32(OFF_FP_DIRTY, 1);
            }
            None => self.update_u32(OFF_FP_DIRTY, 0),
        }
    }

    /// The registers the handler saved. `fs_base`/`gs_base` are read only when the handler
    /// saves them (`fsgsbase`); otherwise the application cannot have changed them.
    pub(crate) fn load_regs(&self, regs: &mut Regs, fsgsbase: bool) {
        let g = |i: usize| self.read_u64(OFF_GREGS + 8 * i);
        regs.r8 = g(greg::R8);
        regs.r9 = g(greg::R9);
        regs.r10 = g(greg::R10);
        regs.r11 = g(greg::R11);
        regs.r12 = g(greg::R12);
        regs.r13 = g(greg::R13);
        regs.r14 = g(greg::R14);
        regs.r15 = g(greg::R15);
        regs.rdi = g(greg::RDI);
        regs.rsi = g(greg::RSI);
        regs.rbp = g(greg::RBP);
        regs.rbx = g(greg::RBX);
        regs.rdx = g(greg::RDX);
        regs.rax = g(greg::RAX);
        regs.rcx = g(greg::RCX);
        regs.rsp = g(greg::RSP);
        regs.rip = g(greg::RIP);
        regs.eflags = g(greg::EFL);
        let segments = g(greg::CSGSFS);
        regs.cs = segments & 0xffff;
        regs.gs = (segments >> 16) & 0xffff;
        regs.fs = (segments >> 32) & 0xffff;
        regs.ss = (segments >> 48) & 0xffff;
        if fsgsbase {
            regs.fs_base = self.read_u64(OFF_FS_BASE);
            regs.gs_base = self.read_u64(OFF_GS_BASE);
        }
    }

    /// The page-fault error code and trap number of the frame.
    pub(crate) fn fault_code(&self) -> (u64, u64) {
        (
            self.read_u64(OFF_GREGS + 8 * greg::ERR),
            self.read_u64(OFF_GREGS + 8 * greg::TRAPNO),
        )
    }

    /// `(si_signo, si_code, si_addr)` of the saved siginfo.
    pub(crate) fn siginfo(&self) -> (i32, i32, u64) {
        let signo = self.read_u32(OFF_SIGINFO);
        let code = self.read_u32(OFF_SIGINFO + 8);
        let addr = self.read_u64(OFF_SIGINFO + 16);
        (signo as i32, code as i32, addr)
    }

    /// `si_arch` of the saved siginfo (a seccomp `SIGSYS`: which system-call ABI was used).
    pub(crate) fn sigsys_arch(&self) -> u32 {
        const _: () = assert!(28 + 4 <= SIGINFO_SAVED);
        self.read_u32(OFF_SIGINFO + 28)
    }

    /// Copies the saved FP state into `area` (as much as both hold). It is where the stub
    /// said, in the region mapped at `app_addr` in the stub: the handler's signal frame or the
    /// fast entry's `xsave` area. The application can rewrite that address: one outside the
    /// region copies nothing.
    pub(crate) fn load_fp(&self, area: &mut [u8], app_addr: u64) {
        let saved = (self.read_u32(OFF_FP_LEN) as usize).min(FP_MAX);
        let len = saved.min(area.len());
        let offset = self.read_u64(OFF_FP_AT).wrapping_sub(app_addr);
        let Some(offset) = usize::try_from(offset).ok().filter(|&offset| {
            offset >= OFF_FP
                && offset
                    .checked_add(len)
                    .is_some_and(|end| end <= REGION_SIZE as usize)
        }) else {
            return;
        };
        // SAFETY: `offset + len` lies inside the region (checked above); `area` is at least
        // `len` long and is ours.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(offset), area.as_mut_ptr(), len) };
    }
}

/// Whether the CPU and kernel let user code use `rdfsbase`/`wrfsbase` (`HWCAP2_FSGSBASE`).
pub(crate) fn fsgsbase_available() -> bool {
    const HWCAP2_FSGSBASE: u64 = 1 << 1;
    // SAFETY: getauxval only reads the auxiliary vector.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    hwcap2 & HWCAP2_FSGSBASE != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucontext_offsets_match_the_c_library() {
        assert_eq!(
            std::mem::offset_of!(libc::ucontext_t, uc_mcontext),
            UC_GREGS
        );
        assert_eq!(
            std::mem::offset_of!(libc::ucontext_t, uc_mcontext)
                + std::mem::offset_of!(libc::mcontext_t, fpregs),
            UC_FPSTATE
        );
        assert_eq!(libc::REG_ERR as usize, greg::ERR);
        assert_eq!(libc::REG_CSGSFS as usize, greg::CSGSFS);
        assert_eq!(libc::REG_EFL as usize, greg::EFL);
        assert_eq!(libc::REG_RIP as usize, greg::RIP);
    }

    #[test]
    fn stored_registers_read_back_whichever_words_changed() {
        let file = SysmsgFile::new().unwrap();
        let slot = file.alloc().unwrap();
        let region = file.region(slot);
        let mut first = crate::initial_regs(0x40_1000, 0x7fff_0000);
        first.rax = 39;
        first.fs_base = 0x1234_5000;
        region.store_regs(&first, None);
        // A system call's return: only rax changes; then a signal frame: several do.
        let mut second = first;
        second.rax = 7;
        let mut third = second;
        third.rip = 0x40_2000;
        third.rsp = 0x7ffe_f000;
        third.r8 = u64::MAX;
        third.fs_base = 0;
        third.gs_base = 0x9000;
        for regs in [first, second, third, first] {
            region.store_regs(&regs, None);
            let mut back = crate::initial_regs(0, 0);
            region.load_regs(&mut back, true);
            let fields = |r: &Regs| (r.rax, r.rip, r.rsp, r.r8, r.fs_base, r.gs_base, r.eflags);
            assert_eq!(fields(&back), fields(&regs));
        }
        file.free([slot]);
    }

    #[test]
    fn the_fp_area_holds_this_cpus_xsave_state() {
        assert!(FP_MAX >= crate::xsave_size());
    }
}
