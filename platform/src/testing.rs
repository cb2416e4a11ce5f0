//! Test support shared by the platforms' tests: a memory file mapped in the test process,
//! hand-assembled application code, the [`Setup`] fixture, and the tests both platforms run
//! ([`shared`]), each given the platform's way to make a fixture.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::{AddressSpace, Context, CpuState, Exit, Perms, Platform, PAGE_SIZE};

pub(crate) mod shared;

pub(crate) const MEMFD_SIZE: usize = 16 << 20;
/// `si_code`s of SIGSEGV (asm-generic/siginfo.h).
pub(crate) const SEGV_MAPERR: i32 = 1;
pub(crate) const SEGV_ACCERR: i32 = 2;
pub(crate) const CODE: u64 = 0x40_0000;
pub(crate) const DATA: u64 = 0x50_0000;

/// `mov eax, 39; syscall; mov rdi, rax; mov eax, 60; syscall`
pub(crate) const GETPID_THEN_EXIT: &[u8] = &[
    0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0x48, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05,
];
/// `loop: mov eax, 39; syscall; jmp loop`
pub(crate) const GETPID_LOOP: &[u8] = &[0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
/// `jmp $`
pub(crate) const SPIN: &[u8] = &[0xeb, 0xfe];
pub(crate) const UD2: &[u8] = &[0x0f, 0x0b];
pub(crate) const INT3: &[u8] = &[0xcc];
/// `xor ecx, ecx; div ecx`
pub(crate) const DIVIDE_BY_ZERO: &[u8] = &[0x31, 0xc9, 0xf7, 0xf1];
/// `movq rax, xmm0; movq xmm1, rdi; syscall`
pub(crate) const FP_PROGRAM: &[u8] = &[
    0x66, 0x48, 0x0f, 0x7e, 0xc0, 0x66, 0x48, 0x0f, 0x6e, 0xcf, 0x0f, 0x05,
];
/// `mov rax, fs:[0]; syscall`
pub(crate) const LOAD_FS0: &[u8] = &[0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x0f, 0x05];
/// `movabs rax, [0x8000_0000_0000]; syscall` (non-canonical: general-protection fault)
pub(crate) const NON_CANONICAL_LOAD: &[u8] = &[0x48, 0xa1, 0, 0, 0, 0, 0, 0x80, 0, 0, 0x0f, 0x05];

/// `mov rax, [addr]; syscall` (`addr` below 2 GiB)
pub(crate) fn load(addr: u64) -> Vec<u8> {
    let mut code = vec![0x48, 0x8b, 0x04, 0x25];
    code.extend_from_slice(&u32::try_from(addr).unwrap().to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]);
    code
}

/// `mov rax, value; mov [addr], rax; syscall` (`addr` below 2 GiB)
pub(crate) fn store(addr: u64, value: u64) -> Vec<u8> {
    let mut code = vec![0x48, 0xb8];
    code.extend_from_slice(&value.to_le_bytes());
    code.extend_from_slice(&[0x48, 0x89, 0x04, 0x25]);
    code.extend_from_slice(&u32::try_from(addr).unwrap().to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]);
    code
}

/// A memory file, also mapped in the test process to write code and data into it.
pub(crate) struct Guest {
    pub(crate) memfd: OwnedFd,
    mem: *mut u8,
}

impl Guest {
    pub(crate) fn new() -> Guest {
        // SAFETY: plain memfd_create with a NUL-terminated name.
        let fd = unsafe { libc::memfd_create(c"ptrace-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", Errno::last());
        // SAFETY: fd was just created and is owned by nobody else.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        nix::unistd::ftruncate(&memfd, MEMFD_SIZE as i64).unwrap();
        // SAFETY: a fresh shared mapping of the whole memfd, placed by the kernel.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEMFD_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(mem, libc::MAP_FAILED, "mmap: {}", Errno::last());
        Guest {
            memfd,
            mem: mem.cast(),
        }
    }

    pub(crate) fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(offset as usize + bytes.len() <= MEMFD_SIZE);
        // SAFETY: the range is inside our mapping of the memfd (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.mem.add(offset as usize),
                bytes.len(),
            )
        }
    }

    pub(crate) fn read(&self, offset: u64, bytes: &mut [u8]) {
        assert!(offset as usize + bytes.len() <= MEMFD_SIZE);
        // SAFETY: the range is inside our mapping of the memfd (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.mem.add(offset as usize),
                bytes.as_mut_ptr(),
                bytes.len(),
            )
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; nothing refers to it any more.
        unsafe { libc::munmap(self.mem.cast(), MEMFD_SIZE) };
    }
}

/// The host processes behind a platform's address space (factory and stubs), for tests that
/// check they live or are gone.
pub(crate) trait Processes {
    fn pids(&self) -> Vec<Pid>;
}

/// A platform, one address space with some code mapped at [`CODE`], and a context of this
/// thread.
pub(crate) struct Setup<P, A> {
    pub(crate) guest: Guest,
    pub(crate) platform: P,
    pub(crate) address_space: Arc<A>,
    pub(crate) dyn_space: Arc<dyn AddressSpace>,
    pub(crate) context: Box<dyn Context>,
}

impl<P: Platform, A: AddressSpace + Processes + 'static> Setup<P, A> {
    /// Writes `code` at offset 0 of `guest`, makes an address space of `platform` with
    /// `create` and maps the code page there at [`CODE`].
    pub(crate) fn with(
        guest: Guest,
        platform: P,
        code: &[u8],
        create: impl FnOnce(&P) -> Arc<A>,
    ) -> Setup<P, A> {
        guest.write(0, code);
        let address_space = create(&platform);
        let dyn_space: Arc<dyn AddressSpace> = address_space.clone();
        dyn_space.map(CODE, PAGE_SIZE, 0, Perms::RX).unwrap();
        let context = platform.new_context().unwrap();
        Setup {
            guest,
            platform,
            address_space,
            dyn_space,
            context,
        }
    }

    pub(crate) fn switch(&mut self, state: &mut CpuState) -> Exit {
        self.context.switch(&self.dyn_space, state).unwrap()
    }

    /// Every host process of the address space.
    pub(crate) fn pids(&self) -> Vec<Pid> {
        self.address_space.pids()
    }
}

pub(crate) fn gone(pid: Pid) -> bool {
    kill(pid, None) == Err(Errno::ESRCH)
}

/// Whether `pid`, killed by a release, is reaped by the platform's reaper thread within 10 s
/// (it normally takes well under a millisecond; the bound only ends a broken test).
pub(crate) fn reaped(pid: Pid) -> bool {
    for _ in 0..10_000 {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
}
