//! The stub code page: the only code of ours that exists in an application address space.
//!
//! Two pages at [`STUB_BASE`] are mapped into the sentry once per process, before any factory
//! is forked, so every factory and stub inherits them at the same address:
//! - page 0 (read + execute) holds the position-independent code below;
//! - page 1 (read + write) is the factory's scratch buffer and stack.
//!
//! The application can read and write page 1, so nothing the sentry trusts ever goes through
//! it: a stub's pid reaches the sentry as the kernel-attested sender of a socket message (see
//! `factory.rs`), never as bytes in memory.

use std::arch::global_asm;
use std::sync::OnceLock;

use nix::errno::Errno;

use crate::{Error, Result, MAX_USER_ADDRESS, PAGE_SIZE};

/// Where the stub pages live in the sentry, in every factory and in every stub.
pub(super) const STUB_BASE: u64 = MAX_USER_ADDRESS;
const STUB_LEN: u64 = 2 * PAGE_SIZE;
/// The factory's read buffer; also the bottom of its stack.
const DATA_PAGE: u64 = STUB_BASE + PAGE_SIZE;
const STUB_END: u64 = STUB_BASE + STUB_LEN;
/// End of the x86-64 user address range with 4-level paging (`TASK_SIZE_MAX`).
const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// A stub shares its factory's memory (`CLONE_VM`) and is a child of the sentry
/// (`CLONE_PARENT`), with exit signal 0 so its death sends the sentry nothing.
const STUB_CLONE_FLAGS: i32 = libc::CLONE_VM | libc::CLONE_PARENT;

// Entry points:
// - `runsc_ptrace_stub_syscall`: `syscall; int3`. The sentry points a stopped stub's rip here
//   with a system call in the registers to run that call in the stub (`inject`).
// - `runsc_ptrace_stub_factory`: entered once by a freshly forked factory with fd 0 = memory
//   file and fd 1 = its socket. It drops every mapping except the stub pages, then serves
//   requests: each byte read from fd 1 creates one stub. The stub writes one byte to fd 1 (the
//   kernel stamps it with the stub's pid) and waits in pause() to be seized; its tracer then
//   closes the stub's fd 1 by injection (see `address_space.rs`). A failed
//   clone is reported by the factory itself writing the errno as one byte. End of file on fd 1
//   ends the factory.
// Only registers are trusted here: the data page may be written by the application at any time.
global_asm!(
    ".pushsection .rodata.runsc_ptrace_stub, \"a\"",
    ".balign 16",
    ".globl runsc_ptrace_stub_start",
    ".hidden runsc_ptrace_stub_start",
    ".globl runsc_ptrace_stub_syscall",
    ".hidden runsc_ptrace_stub_syscall",
    ".globl runsc_ptrace_stub_factory",
    ".hidden runsc_ptrace_stub_factory",
    ".globl runsc_ptrace_stub_end",
    ".hidden runsc_ptrace_stub_end",
    "runsc_ptrace_stub_start:",
    "runsc_ptrace_stub_syscall:",
    "    syscall",
    "    int3",
    "runsc_ptrace_stub_factory:",
    "    mov rsp, {stub_end}",
    "    mov eax, {sys_munmap}",
    "    xor edi, edi",
    "    mov rsi, {stub_base}",
    "    syscall",
    "    mov eax, {sys_munmap}",
    "    mov rdi, {stub_end}",
    "    mov rsi, {upper_len}",
    "    syscall",
    "runsc_ptrace_stub_wait_request:",
    "    mov eax, {sys_read}",
    "    mov edi, 1",
    "    mov rsi, {data_page}",
    "    mov edx, 1",
    "    syscall",
    "    test rax, rax",
    "    jle runsc_ptrace_stub_factory_exit",
    "    mov eax, {sys_clone}",
    "    mov edi, {clone_flags}",
    "    xor esi, esi",
    "    xor edx, edx",
    "    xor r10d, r10d",
    "    xor r8d, r8d",
    "    syscall",
    "    test rax, rax",
    "    jz runsc_ptrace_stub_new_stub",
    "    jns runsc_ptrace_stub_wait_request",
    "    neg eax",
    "    mov rsi, {data_page}",
    "    mov byte ptr [rsi], al",
    "    mov eax, {sys_write}",
    "    mov edi, 1",
    "    mov edx, 1",
    "    syscall",
    "    jmp runsc_ptrace_stub_wait_request",
    "runsc_ptrace_stub_factory_exit:",
    "    mov eax, {sys_exit_group}",
    "    xor edi, edi",
    "    syscall",
    "    ud2",
    "runsc_ptrace_stub_new_stub:",
    "    mov eax, {sys_prctl}",
    "    mov edi, {pr_set_pdeathsig}",
    "    mov esi, {sigkill}",
    "    syscall",
    "    mov eax, {sys_write}",
    "    mov edi, 1",
    "    mov rsi, {stub_base}",
    "    mov edx, 1",
    "    syscall",
    "runsc_ptrace_stub_pause:",
    "    mov eax, {sys_pause}",
    "    syscall",
    "    jmp runsc_ptrace_stub_pause",
    "runsc_ptrace_stub_end:",
    ".popsection",
    stub_base = const STUB_BASE,
    stub_end = const STUB_END,
    data_page = const DATA_PAGE,
    upper_len = const TASK_SIZE - STUB_END,
    clone_flags = const STUB_CLONE_FLAGS,
    pr_set_pdeathsig = const libc::PR_SET_PDEATHSIG,
    sigkill = const libc::SIGKILL,
    sys_munmap = const libc::SYS_munmap,
    sys_read = const libc::SYS_read,
    sys_write = const libc::SYS_write,
    sys_clone = const libc::SYS_clone,
    sys_prctl = const libc::SYS_prctl,
    sys_pause = const libc::SYS_pause,
    sys_exit_group = const libc::SYS_exit_group,
);

extern "C" {
    static runsc_ptrace_stub_start: u8;
    static runsc_ptrace_stub_syscall: u8;
    static runsc_ptrace_stub_factory: u8;
    static runsc_ptrace_stub_end: u8;
}

/// Offset of a stub symbol from the start of the code blob.
fn offset_of(symbol: *const u8) -> u64 {
    symbol as u64 - (&raw const runsc_ptrace_stub_start) as u64
}

/// Address of `syscall; int3` in every stub.
pub(super) fn syscall_insn() -> u64 {
    STUB_BASE + offset_of(&raw const runsc_ptrace_stub_syscall)
}

/// Address a forked factory jumps to.
pub(super) fn factory_entry() -> u64 {
    STUB_BASE + offset_of(&raw const runsc_ptrace_stub_factory)
}

/// Maps the stub pages into this process (once; later calls return the first outcome).
///
/// # Errors
/// [`Error::Unavailable`] when something of the sentry already occupies [`STUB_BASE`];
/// [`Error::Host`] when the mapping fails otherwise.
pub(super) fn install() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), Errno>> = OnceLock::new();
    match *INSTALLED.get_or_init(map_stub_pages) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => Err(Error::Unavailable(
            "ptrace",
            format!("the stub address {STUB_BASE:#x} is already mapped in the sentry"),
        )),
        Err(source) => Err(Error::Host {
            call: "mmap (ptrace stub pages)",
            source,
        }),
    }
}

fn map_stub_pages() -> std::result::Result<(), Errno> {
    let code_len = offset_of(&raw const runsc_ptrace_stub_end);
    assert!(
        code_len <= PAGE_SIZE,
        "ptrace stub code is larger than a page"
    );
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no memory this
    // process uses is affected; the new anonymous mapping is ours alone.
    let addr = unsafe {
        libc::mmap(
            STUB_BASE as *mut libc::c_void,
            STUB_LEN as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    if addr as u64 != STUB_BASE {
        // Kernels before 4.17 treat MAP_FIXED_NOREPLACE as a hint and map elsewhere.
        // SAFETY: `addr` is the mapping just created above, used by nothing else.
        unsafe { libc::munmap(addr, STUB_LEN as usize) };
        return Err(Errno::EEXIST);
    }
    // SAFETY: the source is the `code_len` bytes of the stub blob in our read-only data; the
    // destination is the fresh writable page at STUB_BASE, at least `code_len` long.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &raw const runsc_ptrace_stub_start,
            addr.cast::<u8>(),
            code_len as usize,
        );
    }
    // SAFETY: changes the protection of our own fresh code page only.
    let rc = unsafe { libc::mprotect(addr, PAGE_SIZE as usize, libc::PROT_READ | libc::PROT_EXEC) };
    Errno::result(rc).map(drop)
}
