//! x86-64 signal frames: `rt_sigframe` (return address, `ucontext`, `siginfo`) with the
//! XSAVE state above it, built on handler entry and read back by `rt_sigreturn`.
//!
//! Layout (as Linux's arch/x86/kernel/signal_64.c):
//! ```text
//! frame+0    pretcode (sa_restorer)        <- rsp at handler entry (rsp+8 is 16-aligned)
//! frame+8    ucontext: uc_flags, uc_link, uc_stack (24), uc_mcontext (256), uc_sigmask
//! frame+312  siginfo (128)
//! ...        XSAVE area, 64-byte aligned, followed by FP_XSTATE_MAGIC2
//! ```

use platform::FpState;

use super::signal::{SigAction, SigInfo, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTORER};
use super::Task;
use crate::abi::Errno;
use crate::mm::usermem::UserAddr;

const UC_OFFSET: u64 = 8;
const MCONTEXT_OFFSET: usize = 40;
const SIGMASK_OFFSET: usize = 296;
const UCONTEXT_SIZE: usize = 304;
const INFO_OFFSET: u64 = UC_OFFSET + UCONTEXT_SIZE as u64;
const FRAME_SIZE: u64 = INFO_OFFSET + 128;
const REDZONE: u64 = 128;

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const SS_AUTODISARM: i32 = 1 << 31;
/// The smallest alternate stack `sigaltstack` accepts (Linux's MINSIGSTKSZ).
const MINSIGSTKSZ: u64 = 2048;

/// Flags `rt_sigreturn` may change (Linux's FIX_EFLAGS: AC OF DF TF SF ZF AF PF CF RF).
const FIX_EFLAGS: u64 = 0x40dd5;
const EFLAGS_TF: u64 = 0x100;
const EFLAGS_DF: u64 = 0x400;
const EFLAGS_RF: u64 = 0x10000;

/// The most stack a signal frame can take (what AT_MINSIGSTKSZ advertises, as Linux computes
/// it): the frame, the host's XSAVE area with its trailing magic, and the worst alignment
/// padding of each, rounded up to 16.
pub fn max_frame_size() -> u64 {
    let fp = platform::xsave_size() as u64 + 4;
    (8 + FRAME_SIZE + 15 + fp + 63).next_multiple_of(16)
}

/// The alternate stack as (sp, flags, size).
pub fn altstack(raw: &[u8; 24]) -> (u64, i32, u64) {
    (
        u64::from_le_bytes(raw[0..8].try_into().expect("8 bytes")),
        i32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")),
        u64::from_le_bytes(raw[16..24].try_into().expect("8 bytes")),
    )
}

/// Whether `sp` is on the alternate stack (Linux's on_sig_stack). A stack armed with
/// SS_AUTODISARM never counts as in use: it is disarmed on every handler entry, so a thread
/// that runs on it set it up again there, and a corrupted stack pointer near it must not
/// keep signals from being handled.
pub fn on_altstack(raw: &[u8; 24], sp: u64) -> bool {
    let (ss_sp, flags, size) = altstack(raw);
    flags & SS_AUTODISARM == 0 && size != 0 && sp > ss_sp && sp - ss_sp <= size
}

/// `ss_flags` as Linux's sas_ss_flags reports the stack for a thread at `sp`, without the
/// flag bits.
fn mode_at(raw: &[u8; 24], sp: u64) -> i32 {
    let (_, _, size) = altstack(raw);
    if size == 0 {
        SS_DISABLE
    } else if on_altstack(raw, sp) {
        SS_ONSTACK
    } else {
        0
    }
}

/// `stack_t` as `sigaltstack(old)` reports it for a thread at `sp`: the mode the thread is
/// in, plus SS_AUTODISARM when the stack was armed with it.
pub fn altstack_report(raw: &[u8; 24], sp: u64) -> [u8; 24] {
    let mut out = *raw;
    let (_, flags, _) = altstack(raw);
    let shown = mode_at(raw, sp) | flags & SS_AUTODISARM;
    out[8..12].copy_from_slice(&shown.to_le_bytes());
    out
}

/// Installs `new` as the alternate stack of a thread at `sp` (Linux's do_sigaltstack, for
/// `sigaltstack(2)` and `rt_sigreturn`). The flags are kept as given (SS_ONSTACK included),
/// as Linux keeps them and writes them back into the next frame's `uc_stack`.
///
/// # Errors
/// EPERM while the thread runs on its alternate stack, EINVAL for an unknown mode, ENOMEM
/// for a stack smaller than MINSIGSTKSZ.
pub fn set_altstack(current: &mut [u8; 24], new: &[u8; 24], sp: u64) -> Result<(), Errno> {
    if on_altstack(current, sp) {
        return Err(Errno::EPERM);
    }
    let (_, flags, size) = altstack(new);
    let mode = flags & !SS_AUTODISARM;
    if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
        return Err(Errno::EINVAL);
    }
    let mut stored = *new;
    if mode == SS_DISABLE {
        stored[0..8].fill(0);
        stored[16..24].fill(0);
    } else if size < MINSIGSTKSZ {
        return Err(Errno::ENOMEM);
    }
    stored[12..16].fill(0);
    *current = stored;
    Ok(())
}

fn put(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
}

/// Builds the frame for `info` handled by `act` and points the registers at the handler.
///
/// # Errors
/// EFAULT when the frame cannot be written (the caller kills the process with SIGSEGV).
pub fn setup(t: &mut Task, info: &SigInfo, act: &SigAction) -> Result<(), Errno> {
    if act.flags & SA_RESTORER == 0 {
        return Err(Errno::EFAULT);
    }
    t.pull_fp().map_err(|_| Errno::EFAULT)?;
    let regs = t.cpu.regs;
    let old_mask = t.saved_mask.take().unwrap_or_else(|| t.sigmask());
    let (ss_sp, ss_flags, ss_size) = altstack(&t.altstack);
    let nested = on_altstack(&t.altstack, regs.rsp);
    let mut sp = regs.rsp.wrapping_sub(REDZONE);
    let mut entering = false;
    if act.flags & SA_ONSTACK != 0 && mode_at(&t.altstack, sp) == 0 {
        sp = ss_sp.wrapping_add(ss_size);
        entering = true;
    }
    let fp = &t.cpu.fp.area;
    let fp_size = fp.len() as u64 + 4;
    let fpstate = sp.wrapping_sub(fp_size) & !63;
    let frame = (fpstate.wrapping_sub(FRAME_SIZE) & !15).wrapping_sub(8);
    // A frame that would overflow the alternate stack is not written below it: the thread
    // dies of SIGSEGV instead, as on Linux.
    if (nested || entering) && !(frame > ss_sp && frame - ss_sp <= ss_size) {
        return Err(Errno::EFAULT);
    }

    let mut fpbuf = fp.clone();
    // Software-reserved bytes of the legacy area describe the extended state (_fpx_sw_bytes):
    // as on Linux, every feature the host enabled, whichever the thread uses now.
    let xfeatures = platform::xfeatures();
    fpbuf[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    fpbuf[468..472].copy_from_slice(&(fp_size as u32).to_le_bytes());
    fpbuf[472..480].copy_from_slice(&xfeatures.to_le_bytes());
    fpbuf[480..484].copy_from_slice(&(fp.len() as u32).to_le_bytes());
    fpbuf.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());

    let mut f = vec![0u8; FRAME_SIZE as usize];
    put(&mut f, 0, act.restorer);
    let uc = UC_OFFSET as usize;
    put(
        &mut f,
        uc,
        UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
    );
    // uc_stack holds the stack as it was armed (flags as given), which is what
    // rt_sigreturn reinstalls.
    f[uc + 16..uc + 40].copy_from_slice(&t.altstack);
    let mc = uc + MCONTEXT_OFFSET;
    let gp = [
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
    for (i, v) in gp.iter().enumerate() {
        put(&mut f, mc + i * 8, *v);
    }
    put(
        &mut f,
        mc + 18 * 8,
        regs.cs & 0xffff
            | (regs.gs & 0xffff) << 16
            | (regs.fs & 0xffff) << 32
            | (regs.ss & 0xffff) << 48,
    );
    let (trapno, cr2) = match info.signo {
        libc::SIGSEGV | libc::SIGBUS => (14, info.addr()),
        _ => (0, 0),
    };
    put(&mut f, mc + 20 * 8, trapno);
    put(&mut f, mc + 21 * 8, old_mask);
    put(&mut f, mc + 22 * 8, cr2);
    put(&mut f, mc + 23 * 8, fpstate);
    put(&mut f, uc + SIGMASK_OFFSET, old_mask);
    f[INFO_OFFSET as usize..].copy_from_slice(zerocopy::IntoBytes::as_bytes(info));

    t.mm.write_bytes(UserAddr(fpstate), &fpbuf)?;
    t.mm.write_bytes(UserAddr(frame), &f)?;

    let r = &mut t.cpu.regs;
    r.rip = act.handler;
    r.rsp = frame;
    r.rdi = info.signo as u64;
    r.rsi = frame + INFO_OFFSET;
    r.rdx = frame + UC_OFFSET;
    r.rax = 0;
    r.eflags &= !(EFLAGS_DF | EFLAGS_RF | EFLAGS_TF);
    r.cs = 0x33;
    r.ss = 0x2b;
    t.cpu.fp = FpState::initial();

    let mut mask = old_mask | act.mask;
    if act.flags & SA_NODEFER == 0 {
        mask |= super::signal::bit(info.signo);
    }
    t.set_sigmask(mask);
    if ss_flags & SS_AUTODISARM != 0 {
        t.altstack = super::task::DISABLED_ALTSTACK;
    }
    if act.flags & SA_RESETHAND != 0 {
        t.tg.sig().actions[(info.signo - 1) as usize] = SigAction::default();
    }
    Ok(())
}

/// `rt_sigreturn`: restores registers, FP state, mask and alternate stack from the frame
/// the handler returned through. Returns the restored rax.
///
/// # Errors
/// EFAULT when the frame is unreadable (the caller kills the process with SIGSEGV).
pub fn restore(t: &mut Task) -> Result<u64, Errno> {
    let uc_addr = t.cpu.regs.rsp;
    let uc = t.mm.read_bytes(UserAddr(uc_addr), UCONTEXT_SIZE)?;
    let mc = MCONTEXT_OFFSET;
    let g = |i: usize| get(&uc, mc + i * 8);
    let fpstate = g(23);
    let fp = if fpstate == 0 {
        FpState::initial()
    } else {
        let cur_len = t.cpu.fp.area.len();
        let mut area = t.mm.read_bytes(UserAddr(fpstate), cur_len)?;
        sanitize_xsave(&mut area, &t.cpu.fp.area, platform::xfeatures());
        FpState {
            area,
            valid: true,
            dirty: true,
        }
    };
    let r = &mut t.cpu.regs;
    r.r8 = g(0);
    r.r9 = g(1);
    r.r10 = g(2);
    r.r11 = g(3);
    r.r12 = g(4);
    r.r13 = g(5);
    r.r14 = g(6);
    r.r15 = g(7);
    r.rdi = g(8);
    r.rsi = g(9);
    r.rbp = g(10);
    r.rbx = g(11);
    r.rdx = g(12);
    r.rax = g(13);
    r.rcx = g(14);
    r.rsp = g(15);
    r.rip = g(16);
    r.eflags = (r.eflags & !FIX_EFLAGS) | (g(17) & FIX_EFLAGS);
    r.cs = 0x33;
    r.ss = 0x2b;
    r.orig_rax = u64::MAX;
    let rax = r.rax;
    t.cpu.fp = fp;
    t.set_sigmask(get(&uc, SIGMASK_OFFSET));
    let mut stack = [0u8; 24];
    stack.copy_from_slice(&uc[16..40]);
    // As Linux, judged at the stack the handler returned on, and a refused stack (EPERM
    // while still on the alternate stack, a bad mode or size) leaves the current one.
    let _ = set_altstack(&mut t.altstack, &stack, uc_addr);
    Ok(rax)
}

/// Makes an application-supplied XSAVE image safe to load: MXCSR reserved bits cleared,
/// only features the host enabled (`host_features`, XCR0), compacted-format and reserved
/// header bytes zero. As Linux, a frame without FP_XSTATE_MAGIC1 holds only the legacy
/// x87/SSE state, and the state components its `_fpx_sw_bytes` leaves out are reset.
///
/// The features allowed are the host's, never those the current (handler's) state happens
/// to use: a handler starts with the initial state (no AVX in use), and masking with it
/// would drop the interrupted code's AVX registers on return (glibc's string functions keep
/// heap data in them: issue 12's heap corruption).
fn sanitize_xsave(area: &mut [u8], current: &[u8], host_features: u64) {
    let mxcsr_mask = match u32::from_le_bytes(current[28..32].try_into().expect("4 bytes")) {
        0 => 0xffbf,
        m => m,
    };
    let mxcsr = u32::from_le_bytes(area[24..28].try_into().expect("4 bytes")) & mxcsr_mask;
    area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    area[28..32].copy_from_slice(&current[28..32]);
    if area.len() >= 576 {
        let magic = u32::from_le_bytes(area[464..468].try_into().expect("4 bytes"));
        let allowed = if magic == FP_XSTATE_MAGIC1 {
            host_features & (u64::from_le_bytes(area[472..480].try_into().expect("8 bytes")) | 3)
        } else {
            3
        };
        let bv = u64::from_le_bytes(area[512..520].try_into().expect("8 bytes")) & allowed;
        area[512..520].copy_from_slice(&bv.to_le_bytes());
        area[520..576].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants_match_linux() {
        // struct ucontext: flags, link, stack_t, sigcontext (32 words), sigset.
        assert_eq!(UCONTEXT_SIZE, 8 + 8 + 24 + 256 + 8);
        assert_eq!(FRAME_SIZE, 440);
    }

    #[test]
    fn altstack_reporting() {
        let mut raw = [0u8; 24];
        raw[0..8].copy_from_slice(&0x1000u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x2000u64.to_le_bytes());
        assert!(on_altstack(&raw, 0x1800));
        assert!(!on_altstack(&raw, 0x4000));
        assert_eq!(altstack(&altstack_report(&raw, 0x1800)).1, SS_ONSTACK);
        assert_eq!(altstack(&altstack_report(&raw, 0x9000)).1, 0);
    }
}
