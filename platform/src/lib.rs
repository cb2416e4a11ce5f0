//! How application code is run and stopped.
//!
//! One responsibility: run application (guest) code on the host until it does something the
//! sentry must handle, and map ranges of the sentry's memory file into application address
//! spaces. The platform knows registers, faults and host signals; it knows nothing of Linux
//! system-call semantics.
//!
//! # Contract
//! - [`Platform`] creates [`AddressSpace`]s and [`Context`]s.
//! - [`AddressSpace::map`] maps a range of the memory file (the memfd handed to the platform at
//!   creation) into one application address space; [`AddressSpace::unmap`] removes it. Both are
//!   synchronous: when they return, no application thread of that address space can reach the
//!   old mapping.
//! - [`Context::switch`] runs one application thread until it comes back for one of the reasons
//!   in [`Exit`]. Every way back is a variant of that enum.
//! - A `Context` belongs to the host thread that created it: `switch` and the address-space
//!   calls must be made from that thread (ptrace tracer relationships are per host thread).
//!   [`Interrupter`]s are the only part that crosses threads.
//!
//! # Safety model
//! All `unsafe` of the platform lives in this crate; every block carries a `// SAFETY:` comment.
//! Application memory is never dereferenced here: the sentry copies through its own mapping of
//! the memory file.
#![allow(unsafe_code)]

pub mod patch;
pub mod ptrace;
mod stub;
mod stub_filter;
pub mod systrap;
#[cfg(test)]
mod testing;

use std::os::fd::BorrowedFd;
use std::sync::Arc;

pub use libc::user_regs_struct as Regs;

/// Page size of every platform we support.
pub const PAGE_SIZE: u64 = 4096;

/// Highest application address (exclusive). Everything the platform itself needs in an
/// application address space (the ptrace stub pages) lives at or above this address.
pub const MAX_USER_ADDRESS: u64 = 0x7ffe_0000_0000;

/// A system call made with the `syscall` instruction itself, returning the kernel's raw
/// result (`-errno` on failure): no C library code, no `errno`, nothing read through the
/// global offset table. A new stub factory makes only these: it has no copy of any loaded
/// object's writable data (see `ptrace::factory`).
///
/// # Safety
/// As for the system call `nr` with `args`.
#[inline(always)]
pub(crate) unsafe fn raw_syscall(nr: libc::c_long, args: [libc::c_long; 6]) -> libc::c_long {
    let ret;
    // SAFETY: the caller answers for the call itself; the instruction changes only rax, rcx
    // and r11 (declared) and the kernel does not use the user stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Errors of the platform layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("host call {call} failed: {source}")]
    Host {
        call: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("stub process {pid} died unexpectedly ({status})")]
    StubDied { pid: i32, status: String },
    #[error("injected {call} in stub returned errno {errno}")]
    Injected { call: &'static str, errno: i32 },
    #[error("platform {0} is not available here: {1}")]
    Unavailable(&'static str, String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Memory protection of a mapping, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Perms {
    pub const NONE: Perms = Perms {
        read: false,
        write: false,
        exec: false,
    };
    pub const R: Perms = Perms {
        read: true,
        write: false,
        exec: false,
    };
    pub const RW: Perms = Perms {
        read: true,
        write: true,
        exec: false,
    };
    pub const RX: Perms = Perms {
        read: true,
        write: false,
        exec: true,
    };
    pub const RWX: Perms = Perms {
        read: true,
        write: true,
        exec: true,
    };

    /// The host `PROT_*` bits for these permissions.
    pub fn prot(self) -> i32 {
        let mut p = libc::PROT_NONE;
        if self.read {
            p |= libc::PROT_READ;
        }
        if self.write {
            p |= libc::PROT_WRITE;
        }
        if self.exec {
            p |= libc::PROT_EXEC;
        }
        p
    }
}

/// What kind of access caused a fault, when the platform can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
    /// The platform cannot tell (ptrace: the x86 error code is not visible to a tracer).
    Unknown,
}

/// A host signal that stopped application code, decoded from its `siginfo_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalInfo {
    pub signo: i32,
    pub code: i32,
    /// `si_addr` for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGTRAP.
    pub addr: u64,
}

/// `AUDIT_ARCH_X86_64`: how seccomp and `PTRACE_GET_SYSCALL_INFO` name the 64-bit system-call
/// ABI. A call through another one (`int 0x80`, `sysenter`, or `syscall` from a 32-bit code
/// segment: the i386 ABI) is not an [`Exit::Syscall`].
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// What a system call through a 32-bit ABI becomes: the general-protection fault Linux gives
/// when it has no 32-bit ABI (`SIGSEGV`, `SI_KERNEL`, no address), with `rip` back at the
/// two-byte instruction as for a fault. The sentry supports only the 64-bit ABI, so a
/// 32-bit call must never run as the 64-bit call of the same number.
pub(crate) fn refuse_32bit_syscall(regs: &mut Regs) -> Exit {
    regs.rip = regs.rip.wrapping_sub(2);
    Exit::Signal(SignalInfo {
        signo: libc::SIGSEGV,
        code: libc::SI_KERNEL,
        addr: 0,
    })
}

/// The legacy vsyscall page (one page; Linux's VSYSCALL_ADDR).
pub const VSYSCALL_PAGE: u64 = 0xffff_ffff_ff60_0000;

/// Why [`Context::switch`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The application executed `syscall`. The number is in `orig_rax`, arguments in
    /// rdi, rsi, rdx, r10, r8, r9; the sentry writes the result into `rax` and switches back.
    /// `rip` already points after the instruction.
    Syscall,
    /// The application called the legacy vsyscall page (`gettimeofday`, `time` or `getcpu`
    /// at [`VSYSCALL_PAGE`]): the host emulated the call up to the trap and then its `ret`,
    /// so `rip` is the caller's return address; the number and arguments are as for
    /// [`Exit::Syscall`]. Unlike a system call, a result the kernel cannot store is a
    /// SIGSEGV, not EFAULT (Linux's `emulate_vsyscall`). Only platforms that can tell report
    /// it (systrap and ptrace, from the SIGSYS's `si_call_addr`).
    Vsyscall,
    /// The application touched `addr`, which is unmapped or mapped without the needed
    /// permission in the host address space. The sentry maps it (or delivers SIGSEGV/SIGBUS)
    /// and switches back to retry the instruction.
    Fault {
        addr: u64,
        access: Access,
        info: SignalInfo,
    },
    /// A synchronous signal other than a page fault: SIGILL, SIGFPE, SIGTRAP, SIGBUS
    /// (`int3`, `ud2`, divide by zero...). The sentry delivers it as a Linux signal.
    Signal(SignalInfo),
    /// Another sentry thread called [`Interrupter::interrupt`] (signal delivery, stop, exit),
    /// or a spurious wake-up happened. The registers are valid; the sentry checks its pending
    /// work and switches back.
    Interrupted,
}

/// Extended (x87/SSE/AVX) register state as the `xsave` area layout, with its sync state.
#[derive(Clone)]
pub struct FpState {
    /// The XSAVE area bytes (legacy region, header, extended components).
    pub area: Vec<u8>,
    /// `area` holds the thread's current state (pulled since the application last ran, or
    /// set by the sentry).
    pub valid: bool,
    /// The sentry changed `area`; the platform loads it before the application runs next.
    pub dirty: bool,
}

impl FpState {
    /// The state of a freshly `execve`d thread: x87 control word 0x37f, MXCSR 0x1f80.
    pub fn initial() -> FpState {
        let mut area = vec![0u8; xsave_size()];
        area[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        area[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        area[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        // XSTATE_BV: x87 and SSE components present.
        area[512..520].copy_from_slice(&3u64.to_le_bytes());
        FpState {
            area,
            valid: true,
            dirty: true,
        }
    }
}

impl std::fmt::Debug for FpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FpState")
            .field("len", &self.area.len())
            .field("valid", &self.valid)
            .field("dirty", &self.dirty)
            .finish()
    }
}

/// Size of the XSAVE area for the features the host enabled (CPUID leaf 0xD, sub-leaf 0, EBX).
pub fn xsave_size() -> usize {
    let r = std::arch::x86_64::__cpuid_count(0xd, 0);
    (r.ebx as usize).max(576)
}

/// The state components the host enabled for user mode (XCR0): the XSAVE features an
/// application's state may hold, and what a signal frame's `_fpx_sw_bytes.xfeatures` reports.
pub fn xfeatures() -> u64 {
    static XCR0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *XCR0.get_or_init(|| {
        if !std::arch::is_x86_feature_detected!("xsave") {
            // x87 and SSE only: what FXSAVE holds.
            return 3;
        }
        // SAFETY: `xgetbv` with ECX=0 reads XCR0; the CPU supports it when CPUID reports
        // OSXSAVE, which `is_x86_feature_detected!("xsave")` checks (it requires both XSAVE
        // and OSXSAVE before reporting the feature).
        unsafe { xgetbv0() }
    })
}

/// # Safety
/// The CPU must support XSAVE and the OS must have enabled it (CPUID.1:ECX.OSXSAVE).
#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller guarantees XSAVE is enabled, which makes `xgetbv` valid.
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

/// The registers of one application thread.
#[derive(Clone, Debug)]
pub struct CpuState {
    /// General registers, including `fs_base`/`gs_base`, `orig_rax`, `rip`, `eflags`.
    pub regs: Regs,
    pub fp: FpState,
}

impl CpuState {
    /// Registers of a thread about to start at `entry` with stack pointer `sp`.
    pub fn new(entry: u64, sp: u64) -> CpuState {
        CpuState {
            regs: initial_regs(entry, sp),
            fp: FpState::initial(),
        }
    }
}

/// General registers of a 64-bit thread about to start at `entry` with stack pointer `sp`:
/// user code and stack segments, interrupts enabled, everything else zero.
pub(crate) fn initial_regs(entry: u64, sp: u64) -> Regs {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    regs.rip = entry;
    regs.rsp = sp;
    regs.eflags = 0x202;
    regs.cs = 0x33;
    regs.ss = 0x2b;
    regs
}

/// Lets another host thread stop a running [`Context::switch`]. Cheap to clone.
pub trait Interrupter: Send + Sync {
    /// Makes the current or next `switch` of the context return [`Exit::Interrupted`].
    fn interrupt(&self);
}

/// One change to an application address space: what [`AddressSpace::map`],
/// [`AddressSpace::unmap`] and [`AddressSpace::protect`] do, as an item of a batch for
/// [`AddressSpace::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOp {
    Map {
        addr: u64,
        len: u64,
        file_offset: u64,
        perms: Perms,
    },
    Unmap {
        addr: u64,
        len: u64,
    },
    Protect {
        addr: u64,
        len: u64,
        perms: Perms,
    },
}

/// [`AddressSpace::apply`] stopped at `ops[index]`, which failed with `error`: the
/// operations before it took effect, it and those after it did not.
#[derive(Debug, thiserror::Error)]
#[error("operation {index} of a batch failed: {error}")]
pub struct BatchError {
    pub index: usize,
    #[source]
    pub error: Error,
}

/// An application address space.
pub trait AddressSpace: Send + Sync {
    /// Maps `len` bytes of the memory file at `file_offset` at application address `addr`
    /// with `perms`, replacing whatever was mapped there. All arguments page aligned.
    ///
    /// # Errors
    /// Host failures of the injected map.
    fn map(&self, addr: u64, len: u64, file_offset: u64, perms: Perms) -> Result<()>;

    /// Removes any mapping in `[addr, addr+len)`.
    ///
    /// # Errors
    /// Host failures of the injected unmap.
    fn unmap(&self, addr: u64, len: u64) -> Result<()>;

    /// Changes the permissions of what [`AddressSpace::map`] mapped in `[addr, addr+len)`
    /// to `perms`; every page of the range must be mapped. All arguments page aligned.
    ///
    /// # Errors
    /// Host failures of the injected change (ENOMEM where part of the range is unmapped).
    fn protect(&self, addr: u64, len: u64, perms: Perms) -> Result<()>;

    /// Applies `ops` in order, as the calls of the same names would one after the other,
    /// stopping at the first that fails. Platforms that pay a round trip per call run
    /// several in one.
    ///
    /// # Errors
    /// The index of the operation that failed and its error ([`BatchError`]).
    fn apply(&self, ops: &[MapOp]) -> std::result::Result<(), BatchError> {
        for (index, op) in ops.iter().enumerate() {
            match *op {
                MapOp::Map {
                    addr,
                    len,
                    file_offset,
                    perms,
                } => self.map(addr, len, file_offset, perms),
                MapOp::Unmap { addr, len } => self.unmap(addr, len),
                MapOp::Protect { addr, len, perms } => self.protect(addr, len, perms),
            }
            .map_err(|error| BatchError { index, error })?;
        }
        Ok(())
    }

    /// Releases host resources early (also done on drop).
    fn release(&self);
}

/// One application thread's way onto the CPU.
pub trait Context {
    /// Runs the application with `state` in `address_space` until it exits for a reason in
    /// [`Exit`]. `state` is updated with the registers at the exit.
    ///
    /// # Errors
    /// Host failures (the stub died, a ptrace call failed): the task cannot continue.
    fn switch(
        &mut self,
        address_space: &Arc<dyn AddressSpace>,
        state: &mut CpuState,
    ) -> Result<Exit>;

    /// Fills `state.fp` with the thread's current FP state if it is not already valid.
    ///
    /// # Errors
    /// Host failures reading the state.
    fn pull_fp(
        &mut self,
        address_space: &Arc<dyn AddressSpace>,
        state: &mut CpuState,
    ) -> Result<()>;

    /// A handle other threads use to interrupt this context.
    fn interrupter(&self) -> Arc<dyn Interrupter>;

    /// Where patched system calls of this context enter ([`patch`]), None when the context
    /// cannot take them (the ptrace platform; systrap without `fsgsbase`/`xsave`, or with
    /// patching turned off). The sentry may then rewrite `mov $NR,%eax; syscall` sites of
    /// private code pages of address spaces this context runs in.
    fn syscall_patch_entry(&self) -> Option<u64> {
        None
    }
}

/// A way to run application code.
pub trait Platform: Send + Sync {
    /// The platform's name as used on the command line (`ptrace`, `systrap`, `kvm`).
    fn name(&self) -> &'static str;

    /// Creates an empty address space.
    ///
    /// # Errors
    /// Host failures creating the stub process (or VM).
    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>>;

    /// Creates a context bound to the calling host thread.
    ///
    /// # Errors
    /// Host failures.
    fn new_context(&self) -> Result<Box<dyn Context>>;

    /// Host system calls the platform itself performs from the sentry process, by name, each
    /// with the code path that needs it. Merged into the sandbox's seccomp allowlist.
    fn host_syscalls(&self) -> Vec<(&'static str, &'static str)>;
}

/// Creates the platform named `name` over the memory file `memfd`.
///
/// # Errors
/// Unknown name, or the platform cannot run on this host.
pub fn create(name: &str, memfd: BorrowedFd<'_>) -> Result<Arc<dyn Platform>> {
    match name {
        "ptrace" => Ok(Arc::new(ptrace::Ptrace::new(memfd)?)),
        "systrap" => Ok(Arc::new(systrap::Systrap::with_tuning(
            memfd,
            systrap::Tuning::from_env(),
        )?)),
        other => Err(Error::Unavailable(
            if other == "kvm" { "kvm" } else { "unknown" },
            format!("platform {other:?} is not built; use --platform ptrace or systrap"),
        )),
    }
}

/// Changes the mode of exactly the inode `fd` refers to (an `O_PATH` fd included):
/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`. The sentry's hostfs needs it because `fchmod`
/// refuses `O_PATH` fds and `fchmodat` by name would follow a symlink swapped in after the
/// lookup; neither libc crate wraps `fchmodat2`, which needs the raw system call.
///
/// # Errors
/// The host's: ENOSYS before Linux 6.6, EOPNOTSUPP for a symbolic link.
pub fn fchmod_inode(fd: BorrowedFd<'_>, mode: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fchmodat2 reads only the NUL-terminated path (a static empty C string that
    // outlives the call) and writes no memory; `fd` is a borrowed, open descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `membarrier(2)` commands the platform uses.
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;

/// Whether the host offers [`global_memory_barrier`] (asked once).
pub fn have_global_memory_barrier() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| {
        // SAFETY: membarrier with MEMBARRIER_CMD_QUERY reads and writes no memory.
        let mask = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) };
        mask > 0 && mask & MEMBARRIER_CMD_GLOBAL != 0
    })
}

/// Returns once every thread of the host, and so every thread running application code (in
/// processes of its own on every platform), has passed a full memory barrier: the host's
/// `membarrier(MEMBARRIER_CMD_GLOBAL)`, which waits for a scheduler grace period
/// (milliseconds).
///
/// # Errors
/// The host's: EINVAL where it has no such barrier (see [`have_global_memory_barrier`]).
pub fn global_memory_barrier() -> std::io::Result<()> {
    // SAFETY: membarrier with MEMBARRIER_CMD_GLOBAL reads and writes no memory.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Opens an `AF_PACKET` `SOCK_RAW` socket on host link `ifindex` for the sentry's network
/// stack: every Ethernet frame of the link (`ETH_P_ALL`), nonblocking and close-on-exec, not
/// reading back frames the host itself sends (`PACKET_IGNORE_OUTGOING`), with a receive
/// buffer of `rcvbuf` bytes (`SO_RCVBUFFORCE`, else `SO_RCVBUF` capped by the host's
/// `rmem_max`). The socket is created with protocol 0 and only bound to the link with
/// `ETH_P_ALL`, so no frame of another link is queued in between. Neither libc crate wraps
/// `sockaddr_ll` or `PACKET_IGNORE_OUTGOING` safely, hence this lives here.
///
/// # Errors
/// The host's: EPERM without CAP_NET_RAW, ENODEV for an unknown link.
pub fn open_packet_socket(ifindex: i32, rcvbuf: usize) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: socket(2) takes no pointers; the descriptor it returns is new and owned by
    // nobody else, so `OwnedFd` may take it.
    let fd = unsafe {
        OwnedFd::from_raw_fd(check(libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    let setsockopt = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: the kernel reads `size_of::<c_int>()` bytes from `&value`, a live local.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
    };
    let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
    if setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
        setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, size)?;
    }
    setsockopt(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
    // SAFETY: sockaddr_ll is plain data for which all zero bytes are a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: the kernel reads `size_of::<sockaddr_ll>()` bytes from `&addr`, a live local.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// The most descriptors [`fork_fd_holder`] keeps.
pub const FD_HOLDER_MAX: usize = 64;

/// Forks a process that only holds descriptors: it keeps `keep` and `until` open, closes
/// every other descriptor it inherited, blocks every signal that can be blocked, names itself
/// `name` (its `comm`; the first 15 bytes), and exits once a read of `until` ends (end of
/// file when every write end of that pipe is closed, or an error), which closes what it held.
/// Returns its pid; nobody waits for it here (its parent, or once orphaned its reaper, does).
///
/// The child execs nothing: it shares the caller's pages copy-on-write, and drops its share
/// of every private writable mapping but its stack (the caller's heap and data: no page is
/// then copied when the caller writes it). It takes no lock and allocates nothing (raw system
/// calls on its stack), so the caller may have other threads.
///
/// # Errors
/// EINVAL for more than [`FD_HOLDER_MAX`] descriptors; the host's, from clone.
pub fn fork_fd_holder(
    keep: &[BorrowedFd<'_>],
    until: BorrowedFd<'_>,
    name: &std::ffi::CStr,
) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut open = [libc::c_long::MAX; FD_HOLDER_MAX + 1];
    if keep.len() >= open.len() {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (slot, fd) in open.iter_mut().zip(keep.iter().chain([&until])) {
        *slot = libc::c_long::from(fd.as_raw_fd());
    }
    open.sort_unstable();
    let mut comm = [0u8; 16];
    for (c, &b) in comm.iter_mut().zip(name.to_bytes().iter().take(15)) {
        *c = b;
    }
    let until = libc::c_long::from(until.as_raw_fd());
    // SAFETY: a fork-like clone (no CLONE_VM: the child has its own copy of the address space,
    // and only the calling thread); no C library code runs in it (no atfork handlers, nothing
    // copied from another thread's lock or allocator state is used): it runs only
    // `hold_fds`, which makes raw system calls on its stack and never returns.
    let pid = unsafe {
        raw_syscall(
            libc::SYS_clone,
            [libc::c_long::from(libc::SIGCHLD), 0, 0, 0, 0, 0],
        )
    };
    if pid == 0 {
        // SAFETY: we are that child.
        unsafe { hold_fds(&open, until, &comm) }
    }
    if pid < 0 {
        return Err(std::io::Error::from_raw_os_error(-pid as i32));
    }
    Ok(pid as u32)
}

/// [`fork_fd_holder`]'s child: `open` (ascending, padded with `c_long::MAX`) stays open.
///
/// # Safety
/// Only in the child of a fork-like clone.
unsafe fn hold_fds(open: &[libc::c_long], until: libc::c_long, comm: &[u8; 16]) -> ! {
    use libc::c_long;
    let all: u64 = !0;
    // SAFETY: each call reads only the stack buffers named (the signal set, `comm`) or writes
    // only `byte`; closing descriptors this process has no use for is harmless; after
    // `drop_private_copies` only this stack is touched (`byte`, `until`); exit_group ends it.
    unsafe {
        raw_syscall(
            libc::SYS_rt_sigprocmask,
            [
                c_long::from(libc::SIG_SETMASK),
                &all as *const u64 as c_long,
                0,
                8,
                0,
                0,
            ],
        );
        raw_syscall(
            libc::SYS_prctl,
            [
                c_long::from(libc::PR_SET_NAME),
                comm.as_ptr() as c_long,
                0,
                0,
                0,
                0,
            ],
        );
        // Closes the gaps below each kept descriptor; the padding, everything above the last.
        let mut first: c_long = 0;
        for &fd in open {
            let end = fd.min(c_long::from(u32::MAX));
            if end > first {
                raw_syscall(libc::SYS_close_range, [first, end - 1, 0, 0, 0, 0]);
            }
            first = first.max(end + 1);
        }
        let mut byte = 0u8;
        drop_private_copies(&byte as *const u8 as usize);
        loop {
            let r = raw_syscall(
                libc::SYS_read,
                [until, &mut byte as *mut u8 as c_long, 1, 0, 0, 0],
            );
            if r <= 0 && r != -c_long::from(libc::EINTR) {
                break;
            }
        }
        raw_syscall(libc::SYS_exit_group, [0; 6]);
    }
    unreachable!("exit_group returned")
}

/// The most mappings [`drop_private_copies`] drops.
const DROP_MAX: usize = 256;

/// Drops (`MADV_DONTNEED`) this process's pages of every private writable mapping but the one
/// holding `stack`: in a fork's child that needs none of them, those are its share of the
/// parent's heap and data, and each page either side writes would otherwise be copied for the
/// other. The mappings are read from `/proc/self/maps` into stack buffers. Best effort: no
/// /proc, a line longer than the buffer or more than [`DROP_MAX`] mappings end the list.
///
/// # Safety
/// Only in the child of a fork-like clone, which afterwards touches no memory but the stack
/// mapping that holds `stack` (raw system calls on its stack).
unsafe fn drop_private_copies(stack: usize) {
    use libc::c_long;
    let mut ranges = [(0usize, 0usize); DROP_MAX];
    let mut count = 0;
    // SAFETY: opens with a static NUL-terminated path; the reads write only into `buf`
    // past `len`, at most its free space.
    let fd = unsafe {
        raw_syscall(
            libc::SYS_openat,
            [
                c_long::from(libc::AT_FDCWD),
                c"/proc/self/maps".as_ptr() as c_long,
                c_long::from(libc::O_RDONLY | libc::O_CLOEXEC),
                0,
                0,
                0,
            ],
        )
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() && count < DROP_MAX {
        let free = &mut buf[len..];
        // SAFETY: as above.
        let n = unsafe {
            raw_syscall(
                libc::SYS_read,
                [
                    fd,
                    free.as_mut_ptr() as c_long,
                    free.len() as c_long,
                    0,
                    0,
                    0,
                ],
            )
        };
        if n <= 0 {
            break;
        }
        len += n as usize;
        // Each complete line; the partial last one moves to the front.
        let mut start = 0;
        for i in 0..len {
            if buf[i] != b'\n' {
                continue;
            }
            match private_writable(&buf[start..i]) {
                Some((lo, hi)) if !(lo..hi).contains(&stack) && count < DROP_MAX => {
                    ranges[count] = (lo, hi);
                    count += 1;
                }
                _ => {}
            }
            start = i + 1;
        }
        buf.copy_within(start..len, 0);
        len -= start;
    }
    // SAFETY: closes our descriptor of the maps; each madvise drops pages of a private
    // writable mapping that is not the stack, which the caller no longer touches (of a
    // mapping since gone, harmlessly, whatever is there now: nothing else runs here).
    unsafe {
        raw_syscall(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
        for &(lo, hi) in &ranges[..count] {
            raw_syscall(
                libc::SYS_madvise,
                [
                    lo as c_long,
                    (hi - lo) as c_long,
                    c_long::from(libc::MADV_DONTNEED),
                    0,
                    0,
                    0,
                ],
            );
        }
    }
}

/// The address range of a `/proc/PID/maps` line whose mapping is private and writable.
fn private_writable(line: &[u8]) -> Option<(usize, usize)> {
    let mut fields = line.split(|&b| b == b' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    if perms.get(1) != Some(&b'w') || perms.get(3) != Some(&b'p') {
        return None;
    }
    let mut ends = range.split(|&b| b == b'-');
    let hex = |digits: &[u8]| {
        digits.iter().try_fold(0usize, |v, &d| {
            let digit = char::from(d).to_digit(16)? as usize;
            v.checked_mul(16)?.checked_add(digit)
        })
    };
    let (lo, hi) = (hex(ends.next()?)?, hex(ends.next()?)?);
    (lo < hi).then_some((lo, hi))
}

/// The host CPU's time-stamp counter, plain `rdtsc` with no fences: for time stamps a few
/// cycles of reordering cannot matter to (CPU-time accounting), where [`rdtsc`]'s fences
/// double the cost (14-24 against 29-48 ns on the development VM).
#[inline]
pub fn rdtsc_unordered() -> u64 {
    // SAFETY: rdtsc reads no memory and writes none; every x86-64 CPU has it.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// The host CPU's time-stamp counter, read after every earlier load has completed and
/// before any later one starts (`lfence; rdtsc; lfence`, Linux's `rdtsc_ordered`).
pub fn rdtsc() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: lfence and rdtsc read no memory and write none; every x86-64 CPU has both
    // (SSE2 is part of the base ISA).
    unsafe {
        _mm_lfence();
        let tsc = _rdtsc();
        _mm_lfence();
        tsc
    }
}

/// CPUID `leaf`/`subleaf` of the host CPU as (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = std::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

#[cfg(test)]
mod fd_holder_tests {
    use std::os::fd::{AsFd, OwnedFd};

    use nix::fcntl::OFlag;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::wait::{waitpid, WaitStatus};

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2")
    }

    /// Whether every write end of the pipe whose read end is `r` is closed, waiting up to
    /// `ms` for it.
    fn hung_up(r: &OwnedFd, ms: u16) -> bool {
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).expect("poll");
        fds[0]
            .revents()
            .is_some_and(|e| e.contains(PollFlags::POLLHUP))
    }

    /// The holder keeps what it is given and nothing else, names itself, and exits (closing
    /// what it kept) once its pipe's write end is closed; its heap copy is dropped.
    #[test]
    fn holds_until_its_pipe_closes() {
        let (kept_r, kept_w) = pipe();
        let (other_r, other_w) = pipe();
        let (until_r, until_w) = pipe();
        // Heap the holder must not keep a copy of: written after the fork.
        let mut heap = vec![1u8; 1 << 20];
        let pid = super::fork_fd_holder(&[kept_w.as_fd()], until_r.as_fd(), c"fd-holder-test")
            .expect("fork_fd_holder");
        drop((kept_w, other_w, until_r));
        heap.iter_mut().step_by(4096).for_each(|b| *b = 2);
        // The holder closes every other descriptor before it reads its pipe.
        assert!(
            hung_up(&other_r, 10_000),
            "the holder kept a descriptor it was not given"
        );
        assert!(
            !hung_up(&kept_r, 0),
            "the holder closed what it was to keep"
        );
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), "fd-holder-test");
        // Its copy of the heap is dropped (not copied when we wrote it): well under 1 MiB of
        // private memory. Dropping follows the closes; wait for it by polling its rollup.
        let private_kib = || -> u64 {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
            rollup
                .lines()
                .filter(|l| l.starts_with("Private_"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        };
        let mut tries = 0;
        while private_kib() >= 512 {
            tries += 1;
            assert!(tries < 1000, "the holder kept its copy of the heap");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(until_w);
        assert!(
            hung_up(&kept_r, 10_000),
            "the holder did not exit at its pipe's end"
        );
        let status = waitpid(nix::unistd::Pid::from_raw(pid as i32), None).unwrap();
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        drop(heap);
    }
}
