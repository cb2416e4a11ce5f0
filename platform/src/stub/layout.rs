//! The layout of a systrap message region, shared by the stub's signal handler (assembly in
//! the parent module) and the systrap platform's sentry side.
//!
//! | offset | content |
//! |---|---|
//! | [`OFF_FP_DIRTY`] | the sentry wrote new FP state: the handler copies it into the signal frame |
//! | [`OFF_FSGSBASE`] | the handler reads and writes fs/gs base with `rdfsbase`/`wrfsbase` (else `arch_prctl(ARCH_SET_FS)`) |
//! | [`OFF_FP_LEN`] | bytes of FP state the handler saved |
//! | [`OFF_SPIN`] | how many `pause` iterations the handler polls before sleeping |
//! | [`OFF_KIND`] | what published the event: [`KIND_SIGNAL`] (the handler: siginfo and frame) or [`KIND_FAST_SYSCALL`] (the fast entry of a patched system call) |
//! | [`OFF_FS_BASE`], [`OFF_GS_BASE`] | segment bases |
//! | [`OFF_XSAVE_SIZE`] | bytes `xsave` writes here (set by the sentry; the fast entry copies it to [`OFF_FP_LEN`] when it saves) |
//! | [`OFF_FP_AT`] | where in the region they are: the handler's signal frame, or [`OFF_FP`] (the fast entry's `xsave`) |
//! | [`OFF_SIGINFO`] | the first [`SIGINFO_SAVED`] bytes of the signal's `siginfo_t` (signo, code, and the address or seccomp fields) |
//! | [`OFF_INTERRUPTED`] | set by the stub when the sentry's interrupt signal reached it in its own code and was dropped; the stub reports an interrupt before it next returns to the application, and clears it |
//! | [`OFF_STATE`] | on the [`CONTROL_LINE`]: [`STATE_EVENT`] (stub: "stopped, registers saved") or [`STATE_RESUME`] (sentry: "registers loaded, run") |
//! | [`OFF_STUB_SLEEPING`], [`OFF_SENTRY_SLEEPING`] | on the control line: set by a side before it sleeps on the state word: the other side then issues `FUTEX_WAKE` |
//! | [`OFF_FP_REQUEST`] | on the control line: set by the sentry before a resume that only asks for the FP state: the stub saves it (the fast entry with `xsave`) and publishes the same event again |
//! | [`OFF_GREGS`] | the signal frame's `mcontext` general registers (23 words) |
//! | [`OFF_PICKUPS`] | on a line of its own: how many resumes the stub has taken (it adds one as it leaves its hand-off); the sentry reads it only when it gives up polling |
//! | [`OFF_FP`] | the fast entry's XSAVE area, and the FP state the sentry sets (at most [`FP_MAX`] bytes) |
//! | [`ALT_STACK`].. | the alternate signal stack (the set-up's `stack_t` at [`SCRATCH`] before first use) |

pub(crate) const REGION_SIZE: u64 = 0x1_0000;
/// Application address of the first region (4 GiB above the stub pages; the space between
/// is unused).
pub(crate) const REGIONS_BASE: u64 = crate::MAX_USER_ADDRESS + 0x1_0000_0000;
/// Regions in the message file, so stub threads per platform.
pub(crate) const MAX_SLOTS: u32 = 8192;
/// The *control line*: the 64-byte cache line of the words a side polls or reads right
/// after it sees the other's store ([`OFF_STATE`], the sleeping flags, [`OFF_FP_REQUEST`]),
/// written only at a hand-off or before a side sleeps. Nothing else shares it, so the
/// writes each side makes to the registers and the other fields before it flips the state
/// never pull the polled line away from the poller and back (a cross-CPU transfer each);
/// a polled hand-off moves this line once each way.
pub(crate) const CONTROL_LINE: usize = 128;
pub(crate) const OFF_STATE: usize = CONTROL_LINE;
pub(crate) const OFF_STUB_SLEEPING: usize = CONTROL_LINE + 4;
pub(crate) const OFF_SENTRY_SLEEPING: usize = CONTROL_LINE + 8;
pub(crate) const OFF_FP_REQUEST: usize = CONTROL_LINE + 12;
pub(crate) const CONTROL_END: usize = CONTROL_LINE + 16;
const _: () = assert!(CONTROL_LINE.is_multiple_of(64) && CONTROL_END <= CONTROL_LINE + 64);
const _: () = assert!(OFF_INTERRUPTED + 4 <= CONTROL_LINE && CONTROL_LINE + 64 <= OFF_GREGS);
pub(crate) const OFF_FP_DIRTY: usize = 12;
pub(crate) const OFF_FSGSBASE: usize = 16;
pub(crate) const OFF_FP_LEN: usize = 20;
pub(crate) const OFF_SPIN: usize = 24;
pub(crate) const OFF_KIND: usize = 28;
pub(crate) const OFF_XSAVE_SIZE: usize = 48;
pub(crate) const OFF_FP_AT: usize = 56;
pub(crate) const OFF_FS_BASE: usize = 32;
pub(crate) const OFF_GS_BASE: usize = 40;
pub(crate) const OFF_SIGINFO: usize = 64;
pub(crate) const OFF_GREGS: usize = 192;
/// The stub's count of the resumes it took, alone on its cache line (after the registers,
/// before the FP area): the stub's add stays in its own CPU's cache, and the sentry pulls
/// the line only when a poll of its own ran out (to tell a stub that is running application
/// code from one that never took the resume).
pub(crate) const OFF_PICKUPS: usize = 448;
const _: () = assert!(OFF_GREGS + GREGS_LEN <= OFF_PICKUPS - OFF_PICKUPS % 64);
const _: () = assert!(OFF_PICKUPS.is_multiple_of(64) && OFF_PICKUPS + 64 <= OFF_FP);
/// Bytes of `siginfo_t` the handler saves: `si_signo`, `si_errno`, `si_code`, then `si_addr`
/// (faults) or `si_call_addr`, `si_syscall` and `si_arch` (seccomp), all the sentry reads.
pub(crate) const SIGINFO_SAVED: usize = 32;
pub(crate) const OFF_INTERRUPTED: usize = OFF_SIGINFO + SIGINFO_SAVED;
pub(crate) const OFF_FP: usize = 512;
pub(crate) const ALT_STACK: usize = 0x4000;
pub(crate) const FP_MAX: usize = ALT_STACK - OFF_FP;
/// Where a fresh stub's set-up code builds the `stack_t` of its `sigaltstack` (the rest of
/// its set-up data is on the read-only setup page, see `stub`); inside the alternate stack,
/// unused before the first signal.
pub(crate) const SCRATCH: usize = 0x8000;

/// asm/prctl.h and asm/signal.h values the libc crate does not export.
pub(crate) const ARCH_SET_FS: u64 = 0x1002;
pub(crate) const SA_RESTORER: u64 = 0x0400_0000;

pub(crate) const KIND_SIGNAL: u32 = 0;
pub(crate) const KIND_FAST_SYSCALL: u32 = 1;

pub(crate) const STATE_EVENT: u32 = 1;
pub(crate) const STATE_RESUME: u32 = 2;

/// `mcontext` general registers (`gregs[23]`) saved from the frame.
pub(crate) const GREGS_LEN: usize = 23 * 8;
/// The handler restores r8..eflags (18 words); cs/ss, error code, trap number, old mask and
/// cr2 stay as the kernel put them in the frame.
pub(crate) const GREGS_RESTORED: usize = 18 * 8;
/// The flags a return without `rt_sigreturn` takes from the sentry's eflags: those
/// `rt_sigreturn` takes from a frame (the kernel's `FIX_EFLAGS`: CF, PF, AF, ZF, SF, DF,
/// OF, AC; RF cannot be set from user mode) but TF, which only the slow path sets. The others
/// (IF, IOPL, NT, ID...) stay as they are, as `rt_sigreturn` leaves them.
pub(crate) const EFLAGS_FROM_SENTRY: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x400 | 0x800 | 0x4_0000;
/// Offsets in `ucontext_t`: `uc_mcontext.gregs` and `uc_mcontext.fpregs`.
pub(crate) const UC_GREGS: usize = 40;
pub(crate) const UC_FPSTATE: usize = UC_GREGS + GREGS_LEN;
/// The legacy FXSAVE region; its bytes from [`FP_SW_RESERVED`] hold the kernel's
/// `_fpx_sw_bytes` (magic, sizes), never overwritten by the handler.
pub(crate) const FP_LEGACY: usize = 512;
pub(crate) const FP_SW_RESERVED: usize = 464;
pub(crate) const FP_SW_XSTATE_SIZE: usize = FP_SW_RESERVED + 16;
/// `_fpx_sw_bytes.xfeatures`: the XSAVE features the kernel saved in the frame.
pub(crate) const FP_SW_XFEATURES: usize = FP_SW_RESERVED + 8;
pub(crate) const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// The XSAVE header's `XSTATE_BV` (the components the image holds state for, the others being
/// in their init state), right after the legacy area.
pub(crate) const FP_XSTATE_BV: usize = FP_LEGACY;
/// Components the fast return restores even when the image says they are in their init
/// state: SSE (`xrstor` loads MXCSR, which has no init tracking, only with SSE or AVX
/// requested; Linux sets the FP and SSE bits in every signal frame anyway) and PKRU (the
/// kernel runs a signal handler with its default PKRU, not the init value 0).
pub(crate) const XFEATURES_ALWAYS_RESTORED: u32 = 1 << 1 | 1 << 9;
