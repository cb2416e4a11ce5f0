//! The stub code page: the only code of ours that exists in an application address space.
//!
//! Four pages at [`STUB_BASE`] are mapped into the sentry once per process, before any factory
//! is forked, so every factory and stub inherits them at the same address:
//! - page 0 (read + execute) holds the position-independent code below, and at its end the
//!   seccomp filter of the mapper (`ptrace::mapper`), written before the page is sealed;
//! - page 1 (read + write) is the factory's scratch buffer and stack;
//! - page 2 (read only once sealed) is the systrap *setup page*: the `struct sigaction` of
//!   the stub's handler, the list of signals it handles and the stub's seccomp filter, which a
//!   fresh systrap stub reads while it sets itself up ([`seal_systrap_setup`]);
//! - page 3 (read only) is the *command page* of batched injections ([`CMD_PAGE`]): each
//!   factory replaces the inherited copy with a read-only shared mapping of its own sealed
//!   memfd, which the sentry maps read-write (`ptrace::factory::CommandPage`), so the
//!   sentry writes a batch with plain memory writes and the stub's batch loop reads it.
//!
//! The application can read and write page 1, so nothing the sentry trusts ever goes through
//! it: a stub's pid reaches the sentry as the kernel-attested sender of a socket message (see
//! `factory.rs`), never as bytes in memory. Pages 0, 2 and 3 are read-only in every stub, and
//! the application cannot change that (its `mprotect`/`mmap` are the sentry's, which refuses
//! the stub range): what a stub installs or maps from them is what the sentry wrote.

use std::arch::global_asm;
use std::sync::OnceLock;

use nix::errno::Errno;

pub(crate) mod layout;

use self::layout as sysmsg;
use crate::{stub_filter, Error, Result, MAX_USER_ADDRESS, PAGE_SIZE};

/// Where the stub pages live in the sentry, in every factory and in every stub.
pub(crate) const STUB_BASE: u64 = MAX_USER_ADDRESS;
const STUB_LEN: u64 = 4 * PAGE_SIZE;
/// The factory's read buffer; also the bottom of its stack.
const DATA_PAGE: u64 = STUB_BASE + PAGE_SIZE;
/// Top of the factory's stack.
const DATA_END: u64 = DATA_PAGE + PAGE_SIZE;
/// The systrap setup page (see the module documentation and [`seal_systrap_setup`]).
pub(crate) const SETUP_PAGE: u64 = DATA_END;
const STUB_END: u64 = STUB_BASE + STUB_LEN;
/// The command page of batched injections (see [`batch_entry`] and [`encode_command`]).
pub(crate) const CMD_PAGE: u64 = SETUP_PAGE + PAGE_SIZE;
/// Bytes of one command on the command page.
pub(crate) const CMD_SIZE: u64 = 24;
/// Commands the command page holds.
pub(crate) const CMD_CAPACITY: usize = (PAGE_SIZE / CMD_SIZE) as usize;
/// Setup page layout: the kernel `struct sigaction` (handler, flags, restorer, mask) of every
/// handled signal but SIGSYS: all signals blocked while the handler runs.
const SETUP_SIGACTION: u64 = 0;
/// Its mask word, all ones: also what the SIGSYS handler blocks before it returns through
/// `rt_sigreturn`.
const SETUP_ALL_SIGNALS: u64 = SETUP_SIGACTION + 24;
/// `struct sock_fprog` (length, padding, pointer to [`SETUP_FILTER`]).
const SETUP_FPROG: u64 = 32;
/// The handled signal numbers, one byte each, ending with 0.
const SETUP_SIGNALS: u64 = 48;
const SETUP_SIGNALS_MAX: usize = 15;
/// SIGSYS's `struct sigaction`: with FSGSBASE `SA_NODEFER` and an empty mask, so that the
/// handler runs with the application's mask and can return without `rt_sigreturn` (see
/// "Leaving the handler" in `systrap`'s documentation); else the same as the others.
const SETUP_SIGACTION_SIGSYS: u64 = 64;
/// The seccomp filter's instructions.
pub(crate) const SETUP_FILTER: u64 = 96;
/// Exit status of a systrap stub whose set-up failed (what a factory's child uses, too).
pub(crate) const SETUP_FAILED: i32 = 126;
/// End of the x86-64 user address range with 4-level paging (`TASK_SIZE_MAX`).
pub(crate) const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// A stub shares its factory's memory (`CLONE_VM`) and is a child of the sentry
/// (`CLONE_PARENT`), with exit signal 0 so its death sends the sentry nothing.
pub(crate) const STUB_CLONE_FLAGS: i32 = libc::CLONE_VM | libc::CLONE_PARENT;

// Entry points:
// - `runsc_ptrace_stub_syscall`: `syscall; int3`. The sentry points a stopped stub's rip here
//   with a system call in the registers to run that call in the stub (`inject`).
// - `runsc_ptrace_stub_batch`: the same for several calls in one stop (see `batch_entry`).
// - `runsc_ptrace_stub_factory`: entered once by a freshly forked factory with fd 0 = memory
//   file and fd 1 = its socket. It drops every mapping except the stub pages, then serves
//   requests: each request read from fd 1 creates one stub, a one-byte request a plain stub,
//   a two-byte one a mapper (see `MAPPER_REQUEST`). The stub writes one byte to fd 1 (the
//   kernel stamps it with the stub's pid), closes its fd 1 and waits in pause() to be seized;
//   a tracer that stops it before the close closes fd 1 by injection (see
//   `address_space.rs`). A failed
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
    ".globl runsc_ptrace_stub_batch",
    ".hidden runsc_ptrace_stub_batch",
    ".globl runsc_ptrace_site_batch",
    ".hidden runsc_ptrace_site_batch",
    ".globl runsc_ptrace_stub_trap",
    ".hidden runsc_ptrace_stub_trap",
    ".globl runsc_mapper_setup",
    ".hidden runsc_mapper_setup",
    ".globl runsc_mapper_site_no_new_privs",
    ".hidden runsc_mapper_site_no_new_privs",
    ".globl runsc_mapper_site_seccomp",
    ".hidden runsc_mapper_site_seccomp",
    ".globl runsc_mapper_site_close",
    ".hidden runsc_mapper_site_close",
    ".globl runsc_mapper_site_write_ready",
    ".hidden runsc_mapper_site_write_ready",
    ".globl runsc_mapper_site_close_socket",
    ".hidden runsc_mapper_site_close_socket",
    ".globl runsc_mapper_site_notify",
    ".hidden runsc_mapper_site_notify",
    ".globl runsc_ptrace_site_munmap_low",
    ".hidden runsc_ptrace_site_munmap_low",
    ".globl runsc_ptrace_site_munmap_high",
    ".hidden runsc_ptrace_site_munmap_high",
    ".globl runsc_ptrace_site_read",
    ".hidden runsc_ptrace_site_read",
    ".globl runsc_ptrace_site_clone",
    ".hidden runsc_ptrace_site_clone",
    ".globl runsc_ptrace_site_write_error",
    ".hidden runsc_ptrace_site_write_error",
    ".globl runsc_ptrace_site_exit_group",
    ".hidden runsc_ptrace_site_exit_group",
    ".globl runsc_ptrace_site_prctl",
    ".hidden runsc_ptrace_site_prctl",
    ".globl runsc_ptrace_site_write_ready",
    ".hidden runsc_ptrace_site_write_ready",
    ".globl runsc_ptrace_site_close",
    ".hidden runsc_ptrace_site_close",
    ".globl runsc_ptrace_site_pause",
    ".hidden runsc_ptrace_site_pause",
    ".globl runsc_ptrace_stub_end",
    ".hidden runsc_ptrace_stub_end",
    "runsc_ptrace_stub_start:",
    "runsc_ptrace_stub_syscall:",
    "    syscall",
    "runsc_ptrace_stub_trap:",
    "    int3",
    // Batched injection: the first call in the registers as for `syscall; int3`, r12 = how
    // many more follow on the command page, r14 = where to go when done (the `int3` above
    // for an injection, the mapper's report for the mapper). Ends at the first failure or
    // after the last call, with r13 = the index of the call whose result is in rax.
    "runsc_ptrace_stub_batch:",
    "    mov rbx, {cmd_page}",
    "    xor r13d, r13d",
    ".Lbatch_call:",
    "    syscall",
    "runsc_ptrace_site_batch:",
    "    cmp rax, -4095",
    "    jae .Lbatch_stop",
    "    cmp r13, r12",
    "    jae .Lbatch_stop",
    ".Lbatch_next:",
    "    mov rdi, [rbx]",
    "    mov rsi, [rbx + 8]",
    "    mov r9, [rbx + 16]",
    "    mov eax, edi",
    "    and eax, 15",
    "    mov edx, edi",
    "    shr edx, 4",
    "    and edx, 7",
    "    and rdi, -4096",
    "    mov r10d, {map_shared_fixed}",
    "    xor r8d, r8d",
    "    add rbx, {cmd_size}",
    "    inc r13",
    "    jmp .Lbatch_call",
    ".Lbatch_stop:",
    "    jmp r14",
    // The mapper (`ptrace::mapper`). Set-up, run by a new stub of the factory right after
    // its death signal when the request was two bytes (r15 = 2): it installs the mapper
    // filter of the code page with a new listener, keeps the listener's fd in r15 and only
    // then writes its answer to fd 1 (so the sentry, which learns its pid from that answer,
    // finds the listener there to copy with `pidfd_getfd`) and closes fd 1. Its first notify
    // call reports the listener's fd; once that is answered (the sentry has its copy) it
    // closes its own. The loop reports (index reached, last result) in the arguments of its
    // notify call, which its own filter turns into a user notification; the answer (rax) is
    // how many commands the command page holds for the next batch, all run by the batch loop
    // above from the page. No memory but the read-only code and command pages is read and
    // none is written: everything lives in registers.
    "runsc_mapper_setup:",
    "    mov eax, {sys_prctl}",
    "    mov edi, {pr_set_no_new_privs}",
    "    mov esi, 1",
    "    xor edx, edx",
    "    xor r10d, r10d",
    "    xor r8d, r8d",
    "    syscall",
    "runsc_mapper_site_no_new_privs:",
    "    mov eax, {sys_seccomp}",
    "    mov edi, {seccomp_set_mode_filter}",
    "    mov esi, {seccomp_new_listener}",
    "    mov rdx, {mapper_fprog}",
    "    syscall",
    "runsc_mapper_site_seccomp:",
    "    mov r15, rax",
    "    mov eax, {sys_write}",
    "    mov edi, 1",
    "    mov rsi, {stub_base}",
    "    mov edx, 1",
    "    syscall",
    "runsc_mapper_site_write_ready:",
    "    mov eax, {sys_close}",
    "    mov edi, 1",
    "    syscall",
    "runsc_mapper_site_close_socket:",
    "    lea r14, [rip + .Lmapper_report]",
    "    mov r13, r15",
    "    xor eax, eax",
    ".Lmapper_report:",
    "    mov rdi, r13",
    "    mov rsi, rax",
    "    mov eax, {mapper_notify}",
    "    syscall",
    "runsc_mapper_site_notify:",
    "    test r15, r15",
    "    js .Lmapper_batch",
    "    mov rbx, rax",
    "    mov edi, r15d",
    "    mov eax, {sys_close}",
    "    syscall",
    "runsc_mapper_site_close:",
    "    mov rax, rbx",
    "    mov r15, -1",
    ".Lmapper_batch:",
    "    lea r12, [rax - 1]",
    "    cmp r12, {cmd_last}",
    "    ja .Lmapper_refuse",
    "    mov rbx, {cmd_page}",
    "    mov r13, -1",
    "    jmp .Lbatch_next",
    // An error answer (or no listener any more: ENOSYS) ends the mapper.
    ".Lmapper_refuse:",
    "    ud2",
    "runsc_ptrace_stub_factory:",
    "    mov rsp, {data_end}",
    "    mov eax, {sys_munmap}",
    "    xor edi, edi",
    "    mov rsi, {stub_base}",
    "    syscall",
    "runsc_ptrace_site_munmap_low:",
    "    mov eax, {sys_munmap}",
    "    mov rdi, {stub_end}",
    "    mov rsi, {upper_len}",
    "    syscall",
    "runsc_ptrace_site_munmap_high:",
    "runsc_ptrace_stub_wait_request:",
    "    mov eax, {sys_read}",
    "    mov edi, 1",
    "    mov rsi, {data_page}",
    "    mov edx, 2",
    "    syscall",
    "runsc_ptrace_site_read:",
    "    test rax, rax",
    "    jle runsc_ptrace_stub_factory_exit",
    // The request's length (a register: the data page is the application's) says what to
    // make: one byte a stub, two a mapper. The clone keeps it in the child's r15.
    "    mov r15, rax",
    "    mov eax, {sys_clone}",
    "    mov edi, {clone_flags}",
    "    xor esi, esi",
    "    xor edx, edx",
    "    xor r10d, r10d",
    "    xor r8d, r8d",
    "    syscall",
    "runsc_ptrace_site_clone:",
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
    "runsc_ptrace_site_write_error:",
    "    jmp runsc_ptrace_stub_wait_request",
    "runsc_ptrace_stub_factory_exit:",
    "    mov eax, {sys_exit_group}",
    "    xor edi, edi",
    "    syscall",
    "runsc_ptrace_site_exit_group:",
    "    ud2",
    "runsc_ptrace_stub_new_stub:",
    "    mov eax, {sys_prctl}",
    "    mov edi, {pr_set_pdeathsig}",
    "    mov esi, {sigkill}",
    "    syscall",
    "runsc_ptrace_site_prctl:",
    "    cmp r15, 2",
    "    je runsc_mapper_setup",
    "    mov eax, {sys_write}",
    "    mov edi, 1",
    "    mov rsi, {stub_base}",
    "    mov edx, 1",
    "    syscall",
    "runsc_ptrace_site_write_ready:",
    "    mov eax, {sys_close}",
    "    mov edi, 1",
    "    syscall",
    "runsc_ptrace_site_close:",
    "runsc_ptrace_stub_pause:",
    "    mov eax, {sys_pause}",
    "    syscall",
    "runsc_ptrace_site_pause:",
    "    jmp runsc_ptrace_stub_pause",
    // The systrap platform's signal handler (see `layout`); r12 = message region.
    ".globl runsc_systrap_entry",
    ".hidden runsc_systrap_entry",
    ".globl runsc_systrap_handler",
    ".hidden runsc_systrap_handler",
    ".globl runsc_systrap_restorer",
    ".hidden runsc_systrap_restorer",
    ".globl runsc_systrap_fast_start",
    ".hidden runsc_systrap_fast_start",
    ".globl runsc_systrap_fast_entry",
    ".hidden runsc_systrap_fast_entry",
    ".globl runsc_systrap_fast_slow_resume",
    ".hidden runsc_systrap_fast_slow_resume",
    ".globl runsc_systrap_fast_refuse",
    ".hidden runsc_systrap_fast_refuse",
    ".globl runsc_systrap_fast_end",
    ".hidden runsc_systrap_fast_end",
    ".globl runsc_systrap_site_wake",
    ".hidden runsc_systrap_site_wake",
    ".globl runsc_systrap_site_wait",
    ".hidden runsc_systrap_site_wait",
    ".globl runsc_systrap_site_arch_prctl",
    ".hidden runsc_systrap_site_arch_prctl",
    ".globl runsc_systrap_site_sigreturn",
    ".hidden runsc_systrap_site_sigreturn",
    ".globl runsc_systrap_site_sigprocmask",
    ".hidden runsc_systrap_site_sigprocmask",
    ".globl runsc_systrap_return_window",
    ".hidden runsc_systrap_return_window",
    ".globl runsc_systrap_return_window_end",
    ".hidden runsc_systrap_return_window_end",
    // A fresh stub's set-up, entered once (the sentry points a seized stub here and
    // detaches it) with rdi = its message region's address, rsi = the region's offset in the
    // message file (fd 2). It closes its factory socket (fd 1), maps the region, sets the
    // alternate signal stack inside it, installs the handler for each signal of the setup
    // page, then the setup page's seccomp filter, and runs into the entry `ud2`; any failure
    // ends the process with SETUP_FAILED. No stack is used: the only memory it reads is the
    // read-only setup page, and the stack_t it writes into its own region.
    ".globl runsc_systrap_setup",
    ".hidden runsc_systrap_setup",
    "runsc_systrap_setup:",
    "    mov r12, rdi",
    "    mov r13, rsi",
    "    mov eax, {sys_close}",
    "    mov edi, 1",
    "    syscall",
    "    mov eax, {sys_mmap}",
    "    mov rdi, r12",
    "    mov esi, {region_size}",
    "    mov edx, {prot_rw}",
    "    mov r10d, {map_shared_fixed}",
    "    mov r8d, 2",
    "    mov r9, r13",
    "    syscall",
    "    cmp rax, r12",
    "    jne .Lsetup_failed",
    "    lea rax, [r12 + {alt_stack}]",
    "    mov [r12 + {scratch}], rax",
    "    mov qword ptr [r12 + {scratch} + 8], 0",
    "    mov qword ptr [r12 + {scratch} + 16], {alt_stack_size}",
    "    mov eax, {sys_sigaltstack}",
    "    lea rdi, [r12 + {scratch}]",
    "    xor esi, esi",
    "    syscall",
    "    test rax, rax",
    "    jnz .Lsetup_failed",
    "    mov rbx, {setup_signals}",
    ".Lsetup_next_signal:",
    "    movzx edi, byte ptr [rbx]",
    "    test edi, edi",
    "    jz .Lsetup_filter",
    "    mov eax, {sys_rt_sigaction}",
    "    mov rsi, {setup_sigaction}",
    "    cmp edi, {sigsys}",
    "    jne .Lsetup_sigaction",
    "    mov rsi, {setup_sigaction_sigsys}",
    ".Lsetup_sigaction:",
    "    xor edx, edx",
    "    mov r10d, 8",
    "    syscall",
    "    test rax, rax",
    "    jnz .Lsetup_failed",
    "    inc rbx",
    "    jmp .Lsetup_next_signal",
    ".Lsetup_filter:",
    "    mov eax, {sys_prctl}",
    "    mov edi, {pr_set_no_new_privs}",
    "    mov esi, 1",
    "    xor edx, edx",
    "    xor r10d, r10d",
    "    xor r8d, r8d",
    "    syscall",
    "    test rax, rax",
    "    jnz .Lsetup_failed",
    "    mov eax, {sys_seccomp}",
    "    mov edi, {seccomp_set_mode_filter}",
    "    xor esi, esi",
    "    mov rdx, {setup_fprog}",
    "    syscall",
    "    test rax, rax",
    "    jz runsc_systrap_entry",
    ".Lsetup_failed:",
    "    mov eax, {sys_exit_group}",
    "    mov edi, {setup_failed}",
    "    syscall",
    "    ud2",
    "runsc_systrap_entry:",
    "    ud2",
    "runsc_systrap_handler:",
    // Where the signal found the thread (rax) says what it means (see "Leaving the handler"
    // in the systrap module's documentation):
    // - the return window (the last steps of a return without `rt_sigreturn`): the
    //   application's registers are the region's, its FP state and bases already loaded, so
    //   the frame becomes the application's state at its resume point and an interrupt is an
    //   event like any other;
    // - the slow-resume `ud2` of the fast entry (SIGILL): resumes through this frame;
    // - anywhere else in the systrap code (SIGUSR2 only reaches it in the SIGSYS handler, which
    //   blocks no signal, or in the fast entry): the stub is on its way to the sentry or back;
    //   SIGUSR2 is noted in the region (`off_interrupted`) for the return to report, and dropped.
    // Anything else is an event.
    "    mov rax, [rdx + {uc_gregs} + {greg_rip}]",
    "    lea rcx, [rip + runsc_systrap_return_window]",
    "    cmp rax, rcx",
    "    jb .Lsystrap_not_window",
    "    lea rcx, [rip + runsc_systrap_return_window_end]",
    "    cmp rax, rcx",
    "    jae .Lsystrap_not_window",
    "    cmp edi, {sigusr2}",
    "    jne .Lsystrap_body",
    "    mov rbx, rsi",
    "    lea rdi, [rdx + {uc_gregs}]",
    "    mov rsi, rsp",
    "    and rsi, {region_mask}",
    "    add rsi, {off_gregs}",
    "    mov ecx, {gregs_restored}",
    "    rep movsb",
    "    mov rsi, rbx",
    "    mov edi, {sigusr2}",
    "    jmp .Lsystrap_body",
    ".Lsystrap_not_window:",
    "    lea rcx, [rip + runsc_systrap_handler]",
    "    cmp rax, rcx",
    "    jb .Lsystrap_body",
    "    lea rcx, [rip + runsc_systrap_fast_end]",
    "    cmp rax, rcx",
    "    jae .Lsystrap_body",
    "    lea rcx, [rip + runsc_systrap_fast_slow_resume]",
    "    cmp rax, rcx",
    "    jne .Lsystrap_not_slow_resume",
    "    cmp edi, {sigill}",
    "    jne .Lsystrap_body",
    "    mov r12, rsp",
    "    and r12, {region_mask}",
    "    mov r13, rdx",
    "    mov r14d, edi",
    "    jmp .Lsystrap_return",
    ".Lsystrap_not_slow_resume:",
    "    cmp edi, {sigusr2}",
    "    jne .Lsystrap_body",
    "    mov rax, rsp",
    "    and rax, {region_mask}",
    "    mov dword ptr [rax + {off_interrupted}], 1",
    "    ret",
    ".Lsystrap_body:",
    "    mov r12, rsp",
    "    and r12, {region_mask}",
    "    mov r13, rdx",
    // The signal number decides how the handler may return (see `.Lsystrap_return`).
    "    mov r14d, edi",
    // Only the siginfo words the sentry reads (`layout::SIGINFO_SAVED`). Here and below a
    // word is written only when it changed: a cache line the stub leaves alone stays valid
    // in the sentry's CPU's cache, and a hand-off moves fewer lines between CPUs (the same
    // call from the same place changes few registers).
    "    xor ecx, ecx",
    ".Lsystrap_save_siginfo:",
    "    mov rax, [rsi + rcx*8]",
    "    cmp [r12 + {off_siginfo} + rcx*8], rax",
    "    je .Lsystrap_siginfo_kept",
    "    mov [r12 + {off_siginfo} + rcx*8], rax",
    ".Lsystrap_siginfo_kept:",
    "    inc ecx",
    "    cmp ecx, {siginfo_words}",
    "    jb .Lsystrap_save_siginfo",
    ".Lsystrap_save_frame:",
    "    xor ecx, ecx",
    ".Lsystrap_save_greg:",
    "    mov rax, [r13 + {uc_gregs} + rcx*8]",
    "    cmp [r12 + {off_gregs} + rcx*8], rax",
    "    je .Lsystrap_greg_kept",
    "    mov [r12 + {off_gregs} + rcx*8], rax",
    ".Lsystrap_greg_kept:",
    "    inc ecx",
    "    cmp ecx, {gregs_words}",
    "    jb .Lsystrap_save_greg",
    // The FP state stays in the frame (inside the region, on the alternate stack) until the
    // stub resumes: the sentry reads it there when it needs it.
    "    mov rsi, [r13 + {uc_fpstate}]",
    "    cmp [r12 + {off_fp_at}], rsi",
    "    je .Lsystrap_fp_at_kept",
    "    mov [r12 + {off_fp_at}], rsi",
    ".Lsystrap_fp_at_kept:",
    "    xor ecx, ecx",
    "    test rsi, rsi",
    "    jz .Lsystrap_fp_saved",
    "    call .Lsystrap_fp_len",
    ".Lsystrap_fp_saved:",
    "    cmp dword ptr [r12 + {off_fp_len}], ecx",
    "    je .Lsystrap_fp_len_kept",
    "    mov dword ptr [r12 + {off_fp_len}], ecx",
    ".Lsystrap_fp_len_kept:",
    "    cmp dword ptr [r12 + {off_fsgsbase}], 0",
    "    je .Lsystrap_publish",
    "    call .Lsystrap_save_bases",
    ".Lsystrap_publish:",
    "    cmp dword ptr [r12 + {off_kind}], {kind_signal}",
    "    je .Lsystrap_kind_kept",
    "    mov dword ptr [r12 + {off_kind}], {kind_signal}",
    ".Lsystrap_kind_kept:",
    "    call .Lsystrap_handoff",
    // Leaving: straight back to the application (SIGSYS only, whose handler blocks no
    // signal, so the mask is already the application's) when the frame holds what `xrstor`
    // needs and the sentry changed nothing that only `rt_sigreturn` applies; else block every
    // signal (so none is lost between the last look at `off_interrupted` and the return) and
    // return through the frame.
    ".Lsystrap_return:",
    "    cmp r14d, {sigsys}",
    "    jne .Lsystrap_slow",
    // Without FSGSBASE SIGSYS blocks every signal (`seal_systrap_setup`).
    "    cmp dword ptr [r12 + {off_fsgsbase}], 0",
    "    je .Lsystrap_slow",
    "    cmp [r12 + {off_gs_base}], r12",
    "    jne .Lsystrap_block",
    "    cmp dword ptr [r12 + {off_fp_dirty}], 0",
    "    jne .Lsystrap_block",
    "    test qword ptr [r12 + {off_gregs} + 17*8], {eflags_tf}",
    "    jnz .Lsystrap_block",
    "    mov rsi, [r13 + {uc_fpstate}]",
    "    test rsi, rsi",
    "    jz .Lsystrap_block",
    "    test rsi, 63",
    "    jnz .Lsystrap_block",
    "    cmp dword ptr [rsi + {fp_sw_reserved}], {fp_magic1}",
    "    jne .Lsystrap_block",
    // The kernel's own XSAVE image of the application's FP state, restricted to the
    // components in use in it (`XSTATE_BV`), SSE (whose bit also loads MXCSR) and PKRU: the
    // kernel gave the handler every other component in its init state, which is what
    // `xrstor` would load for a component whose `XSTATE_BV` bit is clear, and the stub never
    // touches FP state. A restore of AVX-512 state in init costs ~200 cycles more.
    "    mov eax, dword ptr [rsi + {fp_xstate_bv}]",
    "    mov edx, dword ptr [rsi + {fp_xstate_bv} + 4]",
    "    or eax, {xfeatures_always}",
    "    and eax, dword ptr [rsi + {fp_sw_xfeatures}]",
    "    and edx, dword ptr [rsi + {fp_sw_xfeatures} + 4]",
    "    xrstor64 [rsi]",
    "    call .Lsystrap_load_bases",
    "    jmp runsc_systrap_return_window",
    ".Lsystrap_block:",
    "    mov eax, {sys_rt_sigprocmask}",
    "    mov edi, {sig_block}",
    "    mov rsi, {all_signals}",
    "    xor edx, edx",
    "    mov r10d, 8",
    "    syscall",
    "runsc_systrap_site_sigprocmask:",
    "    xor r14d, r14d",
    ".Lsystrap_slow:",
    "    cmp dword ptr [r12 + {off_interrupted}], 0",
    "    jne .Lsystrap_interrupt_event",
    "    call .Lsystrap_apply",
    "    ret",
    // An interrupt the stub noted on its way: reported as one that reached the application
    // at its resume point (the frame gets the state it would resume with), then the handler
    // returns again.
    ".Lsystrap_interrupt_event:",
    "    mov dword ptr [r12 + {off_interrupted}], 0",
    "    call .Lsystrap_apply",
    "    mov dword ptr [r12 + {off_siginfo}], {sigusr2}",
    "    mov dword ptr [r12 + {off_siginfo} + 4], 0",
    "    mov dword ptr [r12 + {off_siginfo} + 8], {si_tkill}",
    "    jmp .Lsystrap_save_frame",
    // Writes the region's state into the frame: general registers, the FP state if the
    // sentry set it, and the bases (loaded right away).
    ".Lsystrap_apply:",
    "    lea rdi, [r13 + {uc_gregs}]",
    "    lea rsi, [r12 + {off_gregs}]",
    "    mov ecx, {gregs_restored}",
    "    rep movsb",
    "    cmp dword ptr [r12 + {off_fp_dirty}], 0",
    "    je .Lsystrap_bases",
    "    mov rsi, [r13 + {uc_fpstate}]",
    "    test rsi, rsi",
    "    jz .Lsystrap_bases",
    // The legacy area up to the software-reserved bytes, then the rest: the kernel's own
    // format words (magic, sizes) in the frame are never replaced.
    "    mov rdi, rsi",
    "    lea rsi, [r12 + {off_fp}]",
    "    mov ecx, {fp_sw_reserved}",
    "    rep movsb",
    "    mov rsi, [r13 + {uc_fpstate}]",
    "    call .Lsystrap_fp_len",
    "    sub ecx, {fp_legacy}",
    "    jbe .Lsystrap_bases",
    "    mov rdi, [r13 + {uc_fpstate}]",
    "    add rdi, {fp_legacy}",
    "    lea rsi, [r12 + {off_fp} + {fp_legacy}]",
    "    rep movsb",
    ".Lsystrap_bases:",
    "    cmp dword ptr [r12 + {off_fsgsbase}], 0",
    "    jne .Lsystrap_load_bases",
    "    mov eax, {sys_arch_prctl}",
    "    mov edi, {arch_set_fs}",
    "    mov rsi, [r12 + {off_fs_base}]",
    "    syscall",
    "runsc_systrap_site_arch_prctl:",
    "    ret",
    // ecx = bytes of the frame's FP area at rsi to copy: the XSAVE size the kernel recorded
    // (bounded by the message area), or the 512-byte legacy area without the XSAVE magic.
    ".Lsystrap_fp_len:",
    "    mov ecx, {fp_legacy}",
    "    cmp dword ptr [rsi + {fp_sw_reserved}], {fp_magic1}",
    "    jne .Lsystrap_fp_len_done",
    "    mov ecx, dword ptr [rsi + {fp_sw_xstate_size}]",
    "    cmp ecx, {fp_max}",
    "    jbe .Lsystrap_fp_len_done",
    "    mov ecx, {fp_max}",
    ".Lsystrap_fp_len_done:",
    "    ret",
    "runsc_systrap_restorer:",
    "    mov eax, {sys_rt_sigreturn}",
    "    syscall",
    "runsc_systrap_site_sigreturn:",
    "    ud2",
    // The fast path of patched system calls (platform/src/patch.rs): entered by a jump from
    // a patch thunk with rax = system call number, rcx = return address, and r11 free (as
    // after `syscall`); gs base = this stub's region. Saves the general registers into the
    // region as the handler would (kind KIND_FAST_SYSCALL), hands off, and returns straight to the
    // application unless the sentry changed the FP state, the gs base or set TF, or an
    // interrupt was noted (then the slow-resume `ud2` restores through a signal frame). The
    // arithmetic flags are the check's, not the application's (no compiled code keeps flags
    // across `syscall`).
    "runsc_systrap_fast_start:",
    "runsc_systrap_fast_entry:",
    "    rdgsbase r11",
    "    test r11d, {region_low_mask}",
    "    jnz runsc_systrap_fast_refuse",
    "    shr r11, {region_shift}",
    "    sub r11, {regions_first}",
    "    cmp r11, {max_slots}",
    "    jae runsc_systrap_fast_refuse",
    "    rdgsbase r11",
    "    mov [r11 + {off_gregs} + 15*8], rsp",
    "    lea rsp, [r11 + {fast_stack_top}]",
    "    pushfq",
    "    pop qword ptr [r11 + {off_gregs} + 17*8]",
    "    mov [r11 + {off_gregs} + 0*8], r8",
    "    mov [r11 + {off_gregs} + 1*8], r9",
    "    mov [r11 + {off_gregs} + 2*8], r10",
    "    mov [r11 + {off_gregs} + 4*8], r12",
    "    mov [r11 + {off_gregs} + 5*8], r13",
    "    mov [r11 + {off_gregs} + 6*8], r14",
    "    mov [r11 + {off_gregs} + 7*8], r15",
    "    mov [r11 + {off_gregs} + 8*8], rdi",
    "    mov [r11 + {off_gregs} + 9*8], rsi",
    "    mov [r11 + {off_gregs} + 10*8], rbp",
    "    mov [r11 + {off_gregs} + 11*8], rbx",
    "    mov [r11 + {off_gregs} + 12*8], rdx",
    "    mov [r11 + {off_gregs} + 13*8], rax",
    "    mov [r11 + {off_gregs} + 14*8], rcx",
    "    mov [r11 + {off_gregs} + 16*8], rcx",
    "    mov rax, [r11 + {off_gregs} + 17*8]",
    "    mov [r11 + {off_gregs} + 3*8], rax",
    // The FP state stays in the registers (nothing on this path touches it): it is saved
    // only when the sentry asks for it (`.Lsystrap_fp_request`).
    "    mov r12, r11",
    "    call .Lsystrap_save_bases",
    "    cmp dword ptr [r12 + {off_kind}], {kind_fast}",
    "    je .Lsystrap_fast_kind_kept",
    "    mov dword ptr [r12 + {off_kind}], {kind_fast}",
    ".Lsystrap_fast_kind_kept:",
    "    call .Lsystrap_handoff",
    "    cmp [r12 + {off_gs_base}], r12",
    "    jne runsc_systrap_fast_slow_resume",
    "    cmp dword ptr [r12 + {off_fp_dirty}], 0",
    "    jne runsc_systrap_fast_slow_resume",
    "    test qword ptr [r12 + {off_gregs} + 17*8], {eflags_tf}",
    "    jnz runsc_systrap_fast_slow_resume",
    "    call .Lsystrap_load_bases",
    // The return window, shared by the fast entry and the SIGSYS handler: r12 = region (also
    // gs base), the FP state and fs base are the application's. An interrupt noted before the
    // first instruction is reported from here; one that arrives inside is handled by the
    // handler (the window's start and end are what it checks). The flags become what
    // `rt_sigreturn` would make them (only the bits it takes from the frame, never TF, which
    // needs the slow path's single step). Then the general registers, rsp last but r12, and a
    // jump through gs: nothing is pushed on the application's stack, its red zone is intact.
    "runsc_systrap_return_window:",
    "    cmp dword ptr [r12 + {off_interrupted}], 0",
    "    jne .Lsystrap_window_interrupted",
    "    pushfq",
    "    mov rax, [r12 + {off_gregs} + 17*8]",
    "    xor rax, [rsp]",
    "    and rax, {eflags_fix}",
    "    xor [rsp], rax",
    "    popfq",
    "    mov r8, [r12 + {off_gregs} + 0*8]",
    "    mov r9, [r12 + {off_gregs} + 1*8]",
    "    mov r10, [r12 + {off_gregs} + 2*8]",
    "    mov r11, [r12 + {off_gregs} + 3*8]",
    "    mov r13, [r12 + {off_gregs} + 5*8]",
    "    mov r14, [r12 + {off_gregs} + 6*8]",
    "    mov r15, [r12 + {off_gregs} + 7*8]",
    "    mov rdi, [r12 + {off_gregs} + 8*8]",
    "    mov rsi, [r12 + {off_gregs} + 9*8]",
    "    mov rbp, [r12 + {off_gregs} + 10*8]",
    "    mov rbx, [r12 + {off_gregs} + 11*8]",
    "    mov rdx, [r12 + {off_gregs} + 12*8]",
    "    mov rax, [r12 + {off_gregs} + 13*8]",
    "    mov rcx, [r12 + {off_gregs} + 14*8]",
    "    mov rsp, [r12 + {off_gregs} + 15*8]",
    "    mov r12, gs:[{off_gregs} + 4*8]",
    "    jmp qword ptr gs:[{off_gregs} + 16*8]",
    "runsc_systrap_return_window_end:",
    // The fast entry leaves through a signal frame (the noted interrupt stays noted, and the
    // slow path reports it); the SIGSYS handler reports it now.
    ".Lsystrap_window_interrupted:",
    "    cmp dword ptr [r12 + {off_kind}], {kind_fast}",
    "    jne .Lsystrap_interrupt_event",
    "runsc_systrap_fast_slow_resume:",
    "    ud2",
    "runsc_systrap_fast_refuse:",
    "    ud2",
    // Loads fs and gs base from the region at r12 where they differ from the thread's
    // (clobbers rax and rcx): a write costs 18-50 ns on the development VM, a read 2-4, and
    // the bases rarely change between a trap and its return (the kernel's signal delivery
    // keeps them, the stub never sets them, the sentry seldom changes them).
    ".Lsystrap_load_bases:",
    "    mov rax, [r12 + {off_fs_base}]",
    "    rdfsbase rcx",
    "    cmp rax, rcx",
    "    je .Lsystrap_fs_loaded",
    "    wrfsbase rax",
    ".Lsystrap_fs_loaded:",
    "    mov rax, [r12 + {off_gs_base}]",
    "    rdgsbase rcx",
    "    cmp rax, rcx",
    "    je .Lsystrap_gs_loaded",
    "    wrgsbase rax",
    ".Lsystrap_gs_loaded:",
    "    ret",
    // Saves fs and gs base into the region at r12 where they changed (clobbers rax).
    ".Lsystrap_save_bases:",
    "    rdfsbase rax",
    "    cmp [r12 + {off_fs_base}], rax",
    "    je .Lsystrap_fs_kept",
    "    mov [r12 + {off_fs_base}], rax",
    ".Lsystrap_fs_kept:",
    "    rdgsbase rax",
    "    cmp [r12 + {off_gs_base}], rax",
    "    je .Lsystrap_gs_kept",
    "    mov [r12 + {off_gs_base}], rax",
    ".Lsystrap_gs_kept:",
    "    ret",
    // Publishes the event saved in the region at r12 and waits until the sentry resumes
    // it: polls for the budget the sentry set, then sleeps on the state word.
    ".Lsystrap_handoff:",
    "    mov eax, {event}",
    "    xchg dword ptr [r12 + {off_state}], eax",
    "    cmp dword ptr [r12 + {off_sentry_sleeping}], 0",
    "    je .Lsystrap_spin_start",
    "    mov eax, {sys_futex}",
    "    lea rdi, [r12 + {off_state}]",
    "    mov esi, {futex_wake}",
    "    mov edx, 1",
    "    syscall",
    "runsc_systrap_site_wake:",
    ".Lsystrap_spin_start:",
    "    mov ecx, dword ptr [r12 + {off_spin}]",
    ".Lsystrap_spin:",
    "    cmp dword ptr [r12 + {off_state}], {resume}",
    "    je .Lsystrap_resumed",
    "    test ecx, ecx",
    "    jz .Lsystrap_sleep",
    "    dec ecx",
    "    pause",
    "    jmp .Lsystrap_spin",
    ".Lsystrap_sleep:",
    "    mov eax, 1",
    "    xchg dword ptr [r12 + {off_stub_sleeping}], eax",
    "    cmp dword ptr [r12 + {off_state}], {resume}",
    "    je .Lsystrap_awake",
    "    mov eax, {sys_futex}",
    "    lea rdi, [r12 + {off_state}]",
    "    mov esi, {futex_wait}",
    "    mov edx, {event}",
    "    xor r10d, r10d",
    "    syscall",
    "runsc_systrap_site_wait:",
    "    jmp .Lsystrap_sleep",
    ".Lsystrap_awake:",
    "    mov dword ptr [r12 + {off_stub_sleeping}], 0",
    ".Lsystrap_resumed:",
    // Counts the resume taken (the sentry's test of whether a stub it gave up polling for
    // was running at all; a line only the stub writes).
    "    inc dword ptr [r12 + {off_pickups}]",
    "    cmp dword ptr [r12 + {off_fp_request}], 0",
    "    jne .Lsystrap_fp_request",
    "    ret",
    // The sentry asks for the FP state of the stopped thread and publishes the same event
    // again when it has it. After the fast entry the state is still in the registers; the
    // handler's events leave it in their frame.
    ".Lsystrap_fp_request:",
    "    mov dword ptr [r12 + {off_fp_request}], 0",
    "    cmp dword ptr [r12 + {off_kind}], {kind_fast}",
    "    jne .Lsystrap_handoff",
    "    lea rax, [r12 + {off_fp}]",
    "    mov [r12 + {off_fp_at}], rax",
    "    mov eax, -1",
    "    mov edx, -1",
    "    xsave64 [r12 + {off_fp}]",
    "    mov eax, dword ptr [r12 + {off_xsave_size}]",
    "    mov dword ptr [r12 + {off_fp_len}], eax",
    "    jmp .Lsystrap_handoff",
    "runsc_systrap_fast_end:",
    "runsc_ptrace_stub_end:",
    ".popsection",
    stub_base = const STUB_BASE,
    stub_end = const STUB_END,
    cmd_page = const CMD_PAGE,
    cmd_size = const CMD_SIZE,
    cmd_last = const CMD_CAPACITY - 1,
    mapper_notify = const MAPPER_NOTIFY_NR,
    mapper_fprog = const MAPPER_FPROG,
    seccomp_new_listener = const libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
    data_end = const DATA_END,
    data_page = const DATA_PAGE,
    sys_close = const libc::SYS_close,
    sys_mmap = const libc::SYS_mmap,
    sys_sigaltstack = const libc::SYS_sigaltstack,
    sys_rt_sigaction = const libc::SYS_rt_sigaction,
    sys_seccomp = const libc::SYS_seccomp,
    region_size = const sysmsg::REGION_SIZE,
    prot_rw = const libc::PROT_READ | libc::PROT_WRITE,
    map_shared_fixed = const libc::MAP_SHARED | libc::MAP_FIXED,
    alt_stack = const sysmsg::ALT_STACK,
    alt_stack_size = const sysmsg::REGION_SIZE - sysmsg::ALT_STACK as u64,
    scratch = const sysmsg::SCRATCH,
    setup_signals = const SETUP_PAGE + SETUP_SIGNALS,
    setup_sigaction = const SETUP_PAGE + SETUP_SIGACTION,
    setup_sigaction_sigsys = const SETUP_PAGE + SETUP_SIGACTION_SIGSYS,
    setup_fprog = const SETUP_PAGE + SETUP_FPROG,
    pr_set_no_new_privs = const libc::PR_SET_NO_NEW_PRIVS,
    seccomp_set_mode_filter = const libc::SECCOMP_SET_MODE_FILTER,
    setup_failed = const SETUP_FAILED,
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
    region_mask = const -(sysmsg::REGION_SIZE as i64),
    off_state = const sysmsg::OFF_STATE,
    off_stub_sleeping = const sysmsg::OFF_STUB_SLEEPING,
    off_sentry_sleeping = const sysmsg::OFF_SENTRY_SLEEPING,
    off_fp_dirty = const sysmsg::OFF_FP_DIRTY,
    off_fsgsbase = const sysmsg::OFF_FSGSBASE,
    off_fp_len = const sysmsg::OFF_FP_LEN,
    off_spin = const sysmsg::OFF_SPIN,
    off_kind = const sysmsg::OFF_KIND,
    off_xsave_size = const sysmsg::OFF_XSAVE_SIZE,
    off_fp_request = const sysmsg::OFF_FP_REQUEST,
    off_pickups = const sysmsg::OFF_PICKUPS,
    off_fp_at = const sysmsg::OFF_FP_AT,
    kind_signal = const sysmsg::KIND_SIGNAL,
    kind_fast = const sysmsg::KIND_FAST_SYSCALL,
    greg_rip = const 16 * 8,
    sigill = const libc::SIGILL,
    sigusr2 = const libc::SIGUSR2,
    region_low_mask = const sysmsg::REGION_SIZE - 1,
    region_shift = const sysmsg::REGION_SIZE.trailing_zeros(),
    regions_first = const sysmsg::REGIONS_BASE >> sysmsg::REGION_SIZE.trailing_zeros(),
    max_slots = const sysmsg::MAX_SLOTS,
    fast_stack_top = const sysmsg::REGION_SIZE - 64,
    eflags_tf = const 0x100,
    off_fs_base = const sysmsg::OFF_FS_BASE,
    off_gs_base = const sysmsg::OFF_GS_BASE,
    off_siginfo = const sysmsg::OFF_SIGINFO,
    off_gregs = const sysmsg::OFF_GREGS,
    off_fp = const sysmsg::OFF_FP,
    fp_max = const sysmsg::FP_MAX,
    gregs_words = const sysmsg::GREGS_LEN / 8,
    siginfo_words = const sysmsg::SIGINFO_SAVED / 8,
    gregs_restored = const sysmsg::GREGS_RESTORED,
    uc_gregs = const sysmsg::UC_GREGS,
    uc_fpstate = const sysmsg::UC_FPSTATE,
    fp_legacy = const sysmsg::FP_LEGACY,
    fp_sw_reserved = const sysmsg::FP_SW_RESERVED,
    fp_sw_xstate_size = const sysmsg::FP_SW_XSTATE_SIZE,
    fp_magic1 = const sysmsg::FP_XSTATE_MAGIC1,
    event = const sysmsg::STATE_EVENT,
    resume = const sysmsg::STATE_RESUME,
    futex_wake = const libc::FUTEX_WAKE,
    futex_wait = const libc::FUTEX_WAIT,
    arch_set_fs = const sysmsg::ARCH_SET_FS,
    sys_futex = const libc::SYS_futex,
    sys_arch_prctl = const libc::SYS_arch_prctl,
    sys_rt_sigreturn = const libc::SYS_rt_sigreturn,
    sys_rt_sigprocmask = const libc::SYS_rt_sigprocmask,
    sig_block = const libc::SIG_BLOCK,
    all_signals = const SETUP_PAGE + SETUP_ALL_SIGNALS,
    sigsys = const libc::SIGSYS,
    si_tkill = const libc::SI_TKILL,
    off_interrupted = const sysmsg::OFF_INTERRUPTED,
    fp_sw_xfeatures = const sysmsg::FP_SW_XFEATURES,
    fp_xstate_bv = const sysmsg::FP_XSTATE_BV,
    xfeatures_always = const sysmsg::XFEATURES_ALWAYS_RESTORED,
    eflags_fix = const sysmsg::EFLAGS_FROM_SENTRY,
);

extern "C" {
    static runsc_ptrace_stub_start: u8;
    static runsc_ptrace_stub_syscall: u8;
    static runsc_ptrace_stub_factory: u8;
    static runsc_ptrace_stub_batch: u8;
    static runsc_ptrace_site_batch: u8;
    static runsc_ptrace_stub_trap: u8;
    static runsc_mapper_site_no_new_privs: u8;
    static runsc_mapper_site_seccomp: u8;
    static runsc_mapper_site_close: u8;
    static runsc_mapper_site_write_ready: u8;
    static runsc_mapper_site_close_socket: u8;
    static runsc_mapper_site_notify: u8;
    static runsc_systrap_setup: u8;
    static runsc_systrap_handler: u8;
    static runsc_systrap_restorer: u8;
    static runsc_systrap_fast_entry: u8;
    static runsc_systrap_fast_refuse: u8;
    static runsc_systrap_site_wake: u8;
    static runsc_systrap_site_wait: u8;
    static runsc_systrap_site_arch_prctl: u8;
    static runsc_systrap_site_sigreturn: u8;
    static runsc_systrap_site_sigprocmask: u8;
    static runsc_ptrace_site_munmap_low: u8;
    static runsc_ptrace_site_munmap_high: u8;
    static runsc_ptrace_site_read: u8;
    static runsc_ptrace_site_clone: u8;
    static runsc_ptrace_site_write_error: u8;
    static runsc_ptrace_site_exit_group: u8;
    static runsc_ptrace_site_prctl: u8;
    static runsc_ptrace_site_write_ready: u8;
    static runsc_ptrace_site_close: u8;
    static runsc_ptrace_site_pause: u8;
    static runsc_ptrace_stub_end: u8;
}

/// Addresses of the systrap platform's code in every stub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystrapCode {
    /// A fresh stub's set-up (`runsc_systrap_setup`): rdi = region address, rsi = region
    /// offset in the message file; ends at the entry `ud2` (the stub enters its handler
    /// once and parks in it), or exits with [`SETUP_FAILED`].
    pub(crate) setup: u64,
    /// The signal handler (`sa_handler`, with `SA_SIGINFO | SA_ONSTACK`).
    pub(crate) handler: u64,
    /// `rt_sigreturn` (`sa_restorer`).
    pub(crate) restorer: u64,
    /// Where patched system calls enter (platform/src/patch.rs).
    pub(crate) fast_entry: u64,
    /// The `ud2` the fast entry runs into when gs base is not a region: a system call to
    /// report as if trapped, returning to rcx.
    pub(crate) fast_refuse: u64,
    /// The instruction after each system call the handler makes: the instruction pointer
    /// seccomp reports for it.
    pub(crate) site_wake: u64,
    pub(crate) site_wait: u64,
    pub(crate) site_arch_prctl: u64,
    pub(crate) site_sigreturn: u64,
    /// The SIGSYS handler blocking every signal before it returns through `rt_sigreturn`.
    pub(crate) site_sigprocmask: u64,
}

/// Where the systrap handler's pieces are in every stub.
pub(crate) fn systrap_code() -> SystrapCode {
    SystrapCode {
        setup: stub_addr(&raw const runsc_systrap_setup),
        handler: stub_addr(&raw const runsc_systrap_handler),
        restorer: stub_addr(&raw const runsc_systrap_restorer),
        fast_entry: stub_addr(&raw const runsc_systrap_fast_entry),
        fast_refuse: stub_addr(&raw const runsc_systrap_fast_refuse),
        site_wake: stub_addr(&raw const runsc_systrap_site_wake),
        site_wait: stub_addr(&raw const runsc_systrap_site_wait),
        site_arch_prctl: stub_addr(&raw const runsc_systrap_site_arch_prctl),
        site_sigreturn: stub_addr(&raw const runsc_systrap_site_sigreturn),
        site_sigprocmask: stub_addr(&raw const runsc_systrap_site_sigprocmask),
    }
}

/// Offset of a stub symbol from the start of the code blob.
fn offset_of(symbol: *const u8) -> u64 {
    symbol as u64 - (&raw const runsc_ptrace_stub_start) as u64
}

/// Where a stub symbol is in every stub (the code blob is mapped at [`STUB_BASE`]).
fn stub_addr(symbol: *const u8) -> u64 {
    STUB_BASE + offset_of(symbol)
}

/// Address of `syscall; int3` in every stub.
pub(crate) fn syscall_insn() -> u64 {
    stub_addr(&raw const runsc_ptrace_stub_syscall)
}

/// Where a batched injection starts: the first call in the registers as for
/// [`syscall_insn`], `r12` = how many more calls follow on the command page ([`CMD_PAGE`],
/// at most [`CMD_CAPACITY`], each as [`encode_command`] wrote it), `r14` = [`batch_trap`].
/// The stub runs them in order and stops (`int3`) at the first that fails or after the
/// last, with `r13` = the index of the call whose result is in `rax` (0 = the one in the
/// registers).
pub(crate) fn batch_entry() -> u64 {
    stub_addr(&raw const runsc_ptrace_stub_batch)
}

/// The instruction after the batch loop's `syscall`: the instruction pointer seccomp reports
/// for every call of a batch.
pub(crate) fn batch_site() -> u64 {
    stub_addr(&raw const runsc_ptrace_site_batch)
}

/// Where an injected batch ends ([`batch_entry`] jumps to `r14` when done): the `int3`
/// after [`syscall_insn`]'s `syscall`, which stops the stub.
pub(crate) fn batch_trap() -> u64 {
    stub_addr(&raw const runsc_ptrace_stub_trap)
}

/// The system-call number of the mapper's notify call. No host system call has it (x86-64
/// numbers end far below), so a stub that makes it without the mapper's filter only gets
/// ENOSYS, which ends the mapper loop.
pub(crate) const MAPPER_NOTIFY_NR: i64 = 0x3ff;
/// Room for the mapper's filter at the end of the code page.
const MAPPER_FILTER_ROOM: u64 = 1024;
/// The mapper filter's instructions, in the read-only code page.
const MAPPER_FILTER: u64 = STUB_BASE + PAGE_SIZE - MAPPER_FILTER_ROOM;
/// Its `struct sock_fprog`, just before it: what the mapper's `seccomp` call installs.
pub(crate) const MAPPER_FPROG: u64 = MAPPER_FILTER - 16;

/// The instructions after the system calls of the mapper's set-up (see [`MAPPER_REQUEST`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapperSites {
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)`.
    pub(crate) no_new_privs: u64,
    /// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, MAPPER_FPROG)`.
    pub(crate) seccomp: u64,
    /// `write(1, ..., 1)`: the mapper's answer to its factory request, after the seccomp call.
    pub(crate) write_ready: u64,
    /// `close(1)`.
    pub(crate) close_socket: u64,
    /// `close(<the listener fd>)`, after the first notify call was answered.
    pub(crate) close: u64,
    /// The notify call.
    pub(crate) notify: u64,
}

/// Where the mapper's system calls are in every stub.
pub(crate) fn mapper_sites() -> MapperSites {
    MapperSites {
        no_new_privs: stub_addr(&raw const runsc_mapper_site_no_new_privs),
        seccomp: stub_addr(&raw const runsc_mapper_site_seccomp),
        write_ready: stub_addr(&raw const runsc_mapper_site_write_ready),
        close_socket: stub_addr(&raw const runsc_mapper_site_close_socket),
        close: stub_addr(&raw const runsc_mapper_site_close),
        notify: stub_addr(&raw const runsc_mapper_site_notify),
    }
}

/// The length of a factory request for a mapper (a stub's is 1). The new stub sets its death
/// signal as every stub does, then sets no_new_privs and installs the mapper filter with a
/// new listener (the lowest free fd of its table, which is its factory's), and only then
/// answers the request as a stub does (`write` to fd 1, `close(1)`): whoever learns its pid
/// finds the listener in it. It makes its notify call at once with `rdi` = the listener's fd
/// (or the seccomp call's negated errno), `rsi` = 0, and closes that fd once the call is
/// answered; then after each batch with `rdi` = the index of the call whose result is `rsi`
/// (as [`batch_entry`]'s `r13` and `rax`: the first that failed, or the last), and runs as
/// many commands of the command page as the answer says (1 to [`CMD_CAPACITY`]). No ptrace
/// stop is involved.
pub(crate) const MAPPER_REQUEST: usize = 2;

/// The mapper's own seccomp filter: the batch loop's `mmap` of the memory file (fd 0,
/// shared and fixed), `munmap` and `mprotect` from their one site, the notify call from its
/// site answered by the listener (`SECCOMP_RET_USER_NOTIF`), and the set-up's calls after
/// the filter: its answer to the factory request (`write` to fd 1), `close(1)` and the
/// `close` of the mapper's copy of the listener, each from its site; anything else kills it.
pub(crate) fn mapper_filter() -> Vec<stub_filter::Insn> {
    use stub_filter::Rule;
    let site = batch_site();
    let sites = mapper_sites();
    let rules = [
        Rule::any(libc::SYS_write).at(sites.write_ready).arg(0, 1),
        Rule::any(libc::SYS_close).at(sites.close_socket).arg(0, 1),
        Rule::any(libc::SYS_close).at(sites.close),
        Rule::any(libc::SYS_mmap)
            .at(site)
            .arg(3, (libc::MAP_SHARED | libc::MAP_FIXED) as u64)
            .arg(4, 0),
        Rule::any(libc::SYS_munmap).at(site),
        Rule::any(libc::SYS_mprotect).at(site),
        Rule::any(MAPPER_NOTIFY_NR)
            .at(sites.notify)
            .answer(libc::SECCOMP_RET_USER_NOTIF),
    ];
    stub_filter::program(&rules, libc::SECCOMP_RET_KILL_PROCESS)
}

/// The command-page words of one call of a batch: `mmap(addr, len, prot, MAP_SHARED |
/// MAP_FIXED, 0, offset)`, `munmap(addr, len)` or `mprotect(addr, len, prot)` (the loop
/// passes the same registers to each; the calls ignore what they do not take). `addr` is
/// page aligned, so its low bits carry the call number (4 bits) and `prot` (3 bits).
pub(crate) fn encode_command(
    nr: libc::c_long,
    addr: u64,
    len: u64,
    prot: i32,
    offset: u64,
) -> [u64; 3] {
    debug_assert!(
        addr.is_multiple_of(PAGE_SIZE) && (0..16).contains(&nr) && (0..8).contains(&prot)
    );
    [addr | nr as u64 | ((prot as u64) << 4), len, offset]
}

/// The instruction after each system call of the factory loop and of a new stub before its
/// first stop: the instruction pointer seccomp reports for it (see `ptrace::filter`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FactorySites {
    pub(crate) munmap_low: u64,
    pub(crate) munmap_high: u64,
    pub(crate) read: u64,
    /// Also where the new stub starts (`clone` returns there in both processes).
    pub(crate) clone: u64,
    pub(crate) write_error: u64,
    pub(crate) exit_group: u64,
    pub(crate) prctl: u64,
    pub(crate) write_ready: u64,
    /// The stub's own `close(1)`; from here to `pause` its factory socket is closed.
    pub(crate) close: u64,
    pub(crate) pause: u64,
}

/// Where the factory's and the new stub's system calls are in every stub.
pub(crate) fn factory_sites() -> FactorySites {
    FactorySites {
        munmap_low: stub_addr(&raw const runsc_ptrace_site_munmap_low),
        munmap_high: stub_addr(&raw const runsc_ptrace_site_munmap_high),
        read: stub_addr(&raw const runsc_ptrace_site_read),
        clone: stub_addr(&raw const runsc_ptrace_site_clone),
        write_error: stub_addr(&raw const runsc_ptrace_site_write_error),
        exit_group: stub_addr(&raw const runsc_ptrace_site_exit_group),
        prctl: stub_addr(&raw const runsc_ptrace_site_prctl),
        write_ready: stub_addr(&raw const runsc_ptrace_site_write_ready),
        close: stub_addr(&raw const runsc_ptrace_site_close),
        pause: stub_addr(&raw const runsc_ptrace_site_pause),
    }
}

/// Where the all-ones signal set of the setup page is (the SIGSYS handler blocks it).
pub(crate) fn all_signals_set() -> u64 {
    SETUP_PAGE + SETUP_ALL_SIGNALS
}

/// Address a forked factory jumps to.
pub(crate) fn factory_entry() -> u64 {
    stub_addr(&raw const runsc_ptrace_stub_factory)
}

/// Maps the stub pages into this process (once; later calls return the first outcome).
///
/// # Errors
/// [`Error::Unavailable`] when something of the sentry already occupies [`STUB_BASE`];
/// [`Error::Host`] when the mapping fails otherwise.
pub(crate) fn install() -> Result<()> {
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
        STUB_BASE + code_len <= MAPPER_FPROG,
        "ptrace stub code leaves no room for the mapper filter in its page"
    );
    let filter: Vec<u8> = mapper_filter().iter().flat_map(|i| i.to_bytes()).collect();
    assert!(
        filter.len() as u64 <= MAPPER_FILTER_ROOM,
        "the mapper filter is larger than its room"
    );
    let mut fprog = [0u8; 16];
    fprog[..8].copy_from_slice(&((filter.len() / 8) as u64).to_le_bytes());
    fprog[8..].copy_from_slice(&MAPPER_FILTER.to_le_bytes());
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
    // destination is the fresh writable page at STUB_BASE, at least `code_len` long. The
    // mapper's fprog and filter go to the end of that page, past the code (asserted above).
    unsafe {
        std::ptr::copy_nonoverlapping(
            &raw const runsc_ptrace_stub_start,
            addr.cast::<u8>(),
            code_len as usize,
        );
        std::ptr::copy_nonoverlapping(fprog.as_ptr(), MAPPER_FPROG as *mut u8, fprog.len());
        std::ptr::copy_nonoverlapping(filter.as_ptr(), MAPPER_FILTER as *mut u8, filter.len());
    }
    // SAFETY: changes the protection of our own fresh code page only.
    let rc = unsafe { libc::mprotect(addr, PAGE_SIZE as usize, libc::PROT_READ | libc::PROT_EXEC) };
    Errno::result(rc)?;
    // SAFETY: changes the protection of the fresh command page of the same mapping only.
    let rc = unsafe {
        libc::mprotect(
            CMD_PAGE as *mut libc::c_void,
            PAGE_SIZE as usize,
            libc::PROT_READ,
        )
    };
    Errno::result(rc).map(drop)
}

/// Writes the systrap setup page (see the module documentation) and makes it read-only:
/// the handler's `struct sigaction` for each of `signals`, and the seccomp filter `filter`.
/// `sigsys_nodefer`: SIGSYS's handler blocks no signal (it may return without
/// `rt_sigreturn`: only with FSGSBASE, see `systrap`), else every signal as the others do.
/// Once per process (later calls return the first outcome); call it after [`install`] and
/// before forking the factories whose stubs use it.
///
/// # Errors
/// The filter or the signal list does not fit the page, or the page cannot be sealed.
pub(crate) fn seal_systrap_setup(
    signals: &[i32],
    filter: &[stub_filter::Insn],
    sigsys_nodefer: bool,
) -> Result<()> {
    static SEALED: OnceLock<std::result::Result<(), Errno>> = OnceLock::new();
    let outcome = *SEALED.get_or_init(|| {
        let filter_bytes: Vec<u8> = filter.iter().flat_map(|i| i.to_bytes()).collect();
        let fits = SETUP_FILTER as usize + filter_bytes.len() <= PAGE_SIZE as usize
            && signals.len() <= SETUP_SIGNALS_MAX
            && signals.iter().all(|&s| (1..=64).contains(&s));
        if !fits {
            return Err(Errno::E2BIG);
        }
        let code = systrap_code();
        let mut page = vec![0u8; PAGE_SIZE as usize];
        let flags = (libc::SA_SIGINFO | libc::SA_ONSTACK) as u64 | sysmsg::SA_RESTORER;
        // All signals blocked while the handler runs, but for SIGSYS: none more than the
        // application's (see `SETUP_SIGACTION_SIGSYS`).
        let block_all = [code.handler, flags, code.restorer, u64::MAX];
        let sigsys = if sigsys_nodefer {
            [
                code.handler,
                flags | libc::SA_NODEFER as u64,
                code.restorer,
                0,
            ]
        } else {
            block_all
        };
        for (offset, words) in [
            (SETUP_SIGACTION, block_all),
            (SETUP_SIGACTION_SIGSYS, sigsys),
        ] {
            for (i, word) in words.into_iter().enumerate() {
                let at = offset as usize + 8 * i;
                page[at..at + 8].copy_from_slice(&word.to_le_bytes());
            }
        }
        let fprog = SETUP_FPROG as usize;
        page[fprog..fprog + 8].copy_from_slice(&(filter.len() as u64).to_le_bytes());
        page[fprog + 8..fprog + 16].copy_from_slice(&(SETUP_PAGE + SETUP_FILTER).to_le_bytes());
        for (i, &signo) in signals.iter().enumerate() {
            page[SETUP_SIGNALS as usize + i] = signo as u8;
        }
        let at = SETUP_FILTER as usize;
        page[at..at + filter_bytes.len()].copy_from_slice(&filter_bytes);
        // SAFETY: SETUP_PAGE is the third page of the stub mapping `install` made read +
        // write in this process and nothing else uses yet; `page` is one page long. Then
        // only its protection changes.
        let rc = unsafe {
            std::ptr::copy_nonoverlapping(page.as_ptr(), SETUP_PAGE as *mut u8, page.len());
            libc::mprotect(
                SETUP_PAGE as *mut libc::c_void,
                PAGE_SIZE as usize,
                libc::PROT_READ,
            )
        };
        Errno::result(rc).map(drop)
    });
    outcome.map_err(|source| Error::Host {
        call: "systrap setup page",
        source,
    })
}
