//! ptrace(2): the tracer's requests. The tracee's side (its stops) and the tracing
//! bookkeeping are the kernel's ([`crate::kernel::ptrace`]); this file decodes requests,
//! checks them as Linux does and moves registers, memory words and siginfo between the
//! tracer's memory and the tracee's stop.

use std::sync::Arc;

use crate::abi::{Errno, SysResult};
use crate::kernel::ptrace::{self as kp, Resume, Step, StopKind, Tracer};
use crate::kernel::signal::{SigInfo, UNBLOCKABLE};
use crate::kernel::{Task, TaskHandle};
use crate::mm::usermem::UserAddr;
use crate::mm::MemoryManager;

const TRACEME: i64 = 0;
const PEEKTEXT: i64 = 1;
const PEEKDATA: i64 = 2;
const PEEKUSR: i64 = 3;
const POKETEXT: i64 = 4;
const POKEDATA: i64 = 5;
const POKEUSR: i64 = 6;
const CONT: i64 = 7;
const KILL: i64 = 8;
const SINGLESTEP: i64 = 9;
const GETREGS: i64 = 12;
const SETREGS: i64 = 13;
const GETFPREGS: i64 = 14;
const SETFPREGS: i64 = 15;
const ATTACH: i64 = 16;
const DETACH: i64 = 17;
const SYSCALL: i64 = 24;
const SYSEMU: i64 = 31;
const SYSEMU_SINGLESTEP: i64 = 32;
const SETOPTIONS: i64 = 0x4200;
const GETEVENTMSG: i64 = 0x4201;
const GETSIGINFO: i64 = 0x4202;
const SETSIGINFO: i64 = 0x4203;
const GETREGSET: i64 = 0x4204;
const SETREGSET: i64 = 0x4205;
const SEIZE: i64 = 0x4206;
const INTERRUPT: i64 = 0x4207;
const LISTEN: i64 = 0x4208;
const GETSIGMASK: i64 = 0x420a;
const SETSIGMASK: i64 = 0x420b;
const GET_SYSCALL_INFO: i64 = 0x420e;

/// Register sets of GETREGSET/SETREGSET.
const NT_PRSTATUS: u64 = 1;
const NT_PRFPREG: u64 = 2;
const NT_X86_XSTATE: u64 = 0x202;

/// `sizeof(struct user_regs_struct)`.
const REGS_SIZE: usize = 27 * 8;
/// `sizeof(struct user_fpregs_struct)`: the FXSAVE image.
const FPREGS_SIZE: usize = 512;
/// `offsetof(struct user, u_debugreg)` and `sizeof(struct user)`.
const USER_DEBUGREG: u64 = 848;
const USER_SIZE: u64 = 912;
/// Where the XSAVE area's software-reserved bytes hold XCR0 (`xstate_fx_sw_bytes`).
const XSAVE_SW_XCR0: usize = 464;

/// `eflags` bits a tracer may change (Linux's FLAG_MASK).
const FLAG_MASK: u64 = 0x50dd5;
/// The first address past user space (TASK_SIZE_MAX): fs_base and gs_base stay below it.
const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;

/// ptrace(2)
pub fn ptrace(t: &mut Task, request: i64, pid: i32, addr: UserAddr, data: u64) -> SysResult {
    match request {
        TRACEME => traceme(t),
        ATTACH => attach(t, pid, None),
        SEIZE => {
            if addr.0 != 0 {
                return Err(Errno::EIO);
            }
            let options = u32::try_from(data).map_err(|_| Errno::EINVAL)?;
            if options & !kp::O_SUPPORTED != 0 {
                return Err(Errno::EINVAL);
            }
            attach(t, pid, Some(options))
        }
        _ => {
            let h = tracee(t, pid)?;
            request_on(t, &h, request, addr, data)
        }
    }
}

/// PTRACE_TRACEME: the parent traces the caller.
fn traceme(t: &mut Task) -> SysResult {
    let mut tree = t.kernel.tree();
    let parent = tree.procs.get(&t.tg.tgid).map_or(0, |p| p.parent);
    if tree.live(parent).is_none() {
        return Err(Errno::EPERM);
    }
    let tracer = Tracer {
        tid: parent,
        tgid: parent,
    };
    let me = t.handle.clone();
    kp::attach(&mut tree, &me, tracer, false, None)?;
    Ok(0)
}

/// PTRACE_ATTACH (`seize` None) and PTRACE_SEIZE.
fn attach(t: &mut Task, pid: i32, seize: Option<u32>) -> SysResult {
    let tid = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    let mut tree = t.kernel.tree();
    let target = tree.tasks.get(&tid).ok_or(Errno::ESRCH)?.clone();
    if Arc::ptr_eq(&target.tg, &t.tg) {
        return Err(Errno::EPERM);
    }
    let creds = target
        .view
        .lock()
        .unwrap()
        .as_ref()
        .map(|v| v.creds.clone())
        .ok_or(Errno::ESRCH)?;
    if !t.creds.may_ptrace_attach(&creds, false) {
        return Err(Errno::EPERM);
    }
    let tracer = Tracer {
        tid: t.tid,
        tgid: t.tg.tgid,
    };
    kp::attach(&mut tree, &target, tracer, seize.is_none(), seize)?;
    Ok(0)
}

/// The task `pid` names, if the caller's process traces it.
fn tracee(t: &Task, pid: i32) -> Result<Arc<TaskHandle>, Errno> {
    let tid = t.lookup_pid(pid).ok_or(Errno::ESRCH)?;
    let h = kp::task_for(&t.kernel.tree(), tid).ok_or(Errno::ESRCH)?;
    let traced_by_me = h
        .ptrace
        .lock()
        .unwrap()
        .tracer
        .is_some_and(|tr| tr.tgid == t.tg.tgid);
    if !traced_by_me {
        return Err(Errno::ESRCH);
    }
    Ok(h)
}

/// Runs `f` on the tracee's ptrace state while it is in a ptrace-stop.
///
/// # Errors
/// ESRCH when it is not stopped; `f`'s errors.
fn in_stop<R>(
    h: &TaskHandle,
    f: impl FnOnce(&mut kp::PtraceState) -> Result<R, Errno>,
) -> Result<R, Errno> {
    let mut st = h.ptrace.lock().unwrap();
    if st.stopped().is_none() {
        return Err(Errno::ESRCH);
    }
    f(&mut st)
}

/// The stopped tracee's stop (which [`in_stop`] guarantees).
fn stop_of(st: &mut kp::PtraceState) -> &mut kp::Stop {
    st.stopped().expect("checked by in_stop")
}

/// The tracee's address space.
fn tracee_mm(h: &TaskHandle) -> Result<Arc<MemoryManager>, Errno> {
    h.view
        .lock()
        .unwrap()
        .as_ref()
        .map(|v| v.mm.clone())
        .ok_or(Errno::ESRCH)
}

fn resume_sig(data: u64) -> Result<i32, Errno> {
    let sig = i32::try_from(data).map_err(|_| Errno::EIO)?;
    if !(0..=crate::kernel::signal::NSIG).contains(&sig) {
        return Err(Errno::EIO);
    }
    Ok(sig)
}

fn request_on(
    t: &mut Task,
    h: &Arc<TaskHandle>,
    request: i64,
    addr: UserAddr,
    data: u64,
) -> SysResult {
    let out = UserAddr(data);
    match request {
        KILL => {
            let tree = t.kernel.tree();
            tree.send_group(&h.tg, SigInfo::kernel(libc::SIGKILL), true);
            Ok(0)
        }
        INTERRUPT => {
            let mut st = h.ptrace.lock().unwrap();
            if !st.seized {
                return Err(Errno::EIO);
            }
            if st.stop.is_none() {
                st.interrupt = true;
                drop(st);
                h.kick();
            }
            Ok(0)
        }
        CONT | SYSCALL | SINGLESTEP | SYSEMU | SYSEMU_SINGLESTEP => {
            let sig = resume_sig(data)?;
            let step = match request {
                CONT => Step::Continue,
                SYSCALL => Step::Syscall,
                SINGLESTEP => Step::SingleStep,
                SYSEMU => Step::Sysemu,
                _ => Step::SysemuSingleStep,
            };
            in_stop(h, |_| Ok(()))?;
            kp::resume(h, Resume::Run { sig, step });
            Ok(0)
        }
        LISTEN => {
            in_stop(h, |st| {
                let seized = st.seized;
                let stop = stop_of(st);
                let event_stop =
                    stop.kind == StopKind::Group || stop.kind == StopKind::Event(kp::EVENT_STOP);
                if !seized || !event_stop {
                    return Err(Errno::EIO);
                }
                stop.resume = Some(Resume::Listen);
                Ok(())
            })?;
            h.waiter.notify();
            Ok(0)
        }
        DETACH => {
            let sig = resume_sig(data)?;
            in_stop(h, |_| Ok(()))?;
            let mut tree = t.kernel.tree();
            kp::detach(&mut tree, h, sig);
            Ok(0)
        }
        PEEKTEXT | PEEKDATA => {
            in_stop(h, |_| Ok(()))?;
            let mut word = [0u8; 8];
            if tracee_mm(h)?.copy_in_force(addr.0, &mut word) != Ok(8) {
                return Err(Errno::EIO);
            }
            t.mm.write_obj(out, &u64::from_le_bytes(word))?;
            Ok(0)
        }
        POKETEXT | POKEDATA => {
            in_stop(h, |_| Ok(()))?;
            if tracee_mm(h)?.copy_out_force(addr.0, &data.to_le_bytes()) != Ok(8) {
                return Err(Errno::EIO);
            }
            Ok(0)
        }
        PEEKUSR => {
            let off = addr.0;
            if !off.is_multiple_of(8) || off >= USER_SIZE {
                return Err(Errno::EIO);
            }
            let word = in_stop(h, |st| {
                let debugreg = st.debugreg;
                let stop = stop_of(st);
                Ok(if off < REGS_SIZE as u64 {
                    regs_words(&stop.cpu.regs)[(off / 8) as usize]
                } else if off >= USER_DEBUGREG {
                    debugreg[((off - USER_DEBUGREG) / 8) as usize]
                } else {
                    0
                })
            })?;
            t.mm.write_obj(out, &word)?;
            Ok(0)
        }
        POKEUSR => {
            let off = addr.0;
            if !off.is_multiple_of(8) || off >= USER_SIZE {
                return Err(Errno::EIO);
            }
            in_stop(h, |st| {
                if off < REGS_SIZE as u64 {
                    set_reg(&mut stop_of(st).cpu.regs, (off / 8) as usize, data)
                } else if off >= USER_DEBUGREG {
                    set_debugreg(&mut st.debugreg, ((off - USER_DEBUGREG) / 8) as usize, data)
                } else {
                    Err(Errno::EIO)
                }
            })?;
            Ok(0)
        }
        GETREGS => {
            let regs = in_stop(h, |st| Ok(regs_words(&stop_of(st).cpu.regs)))?;
            t.mm.write_bytes(out, &words_bytes(&regs))?;
            Ok(0)
        }
        SETREGS => {
            let bytes = t.mm.read_bytes(out, REGS_SIZE)?;
            in_stop(h, |st| set_regs(&mut stop_of(st).cpu.regs, &bytes))?;
            Ok(0)
        }
        GETFPREGS => {
            let fp = in_stop(h, |st| Ok(stop_of(st).cpu.fp.area[..FPREGS_SIZE].to_vec()))?;
            t.mm.write_bytes(out, &fp)?;
            Ok(0)
        }
        SETFPREGS => {
            let bytes = t.mm.read_bytes(out, FPREGS_SIZE)?;
            in_stop(h, |st| {
                set_fxsave(&mut stop_of(st).cpu.fp, &bytes);
                Ok(())
            })?;
            Ok(0)
        }
        GETREGSET => get_regset(t, h, addr.0, out),
        SETREGSET => set_regset(t, h, addr.0, out),
        GETSIGINFO => {
            let info = in_stop(h, |st| stop_of(st).siginfo.ok_or(Errno::EINVAL))?;
            t.mm.write_obj(out, &info)?;
            Ok(0)
        }
        SETSIGINFO => {
            let info: SigInfo = t.mm.read_obj(out)?;
            in_stop(h, |st| {
                let stop = stop_of(st);
                if stop.siginfo.is_none() {
                    return Err(Errno::EINVAL);
                }
                stop.siginfo = Some(info);
                Ok(())
            })?;
            Ok(0)
        }
        GETEVENTMSG => {
            let msg = in_stop(h, |st| Ok(st.event_msg))?;
            t.mm.write_obj(out, &msg)?;
            Ok(0)
        }
        SETOPTIONS => {
            let options = u32::try_from(data).map_err(|_| Errno::EINVAL)?;
            if options & !kp::O_SUPPORTED != 0 {
                return Err(Errno::EINVAL);
            }
            in_stop(h, |st| {
                st.options = options;
                Ok(())
            })?;
            Ok(0)
        }
        GETSIGMASK | SETSIGMASK => {
            if addr.0 != 8 {
                return Err(Errno::EINVAL);
            }
            in_stop(h, |_| Ok(()))?;
            if request == GETSIGMASK {
                let mask = h.tg.sig().threads.get(&h.tid()).map_or(0, |th| th.mask);
                t.mm.write_obj(out, &mask)?;
            } else {
                let mask: u64 = t.mm.read_obj(out)?;
                if let Some(th) = h.tg.sig().threads.get_mut(&h.tid()) {
                    th.mask = mask & !UNBLOCKABLE;
                }
            }
            Ok(0)
        }
        GET_SYSCALL_INFO => get_syscall_info(t, h, addr.0 as usize, out),
        _ => Err(Errno::EIO),
    }
}

/// PTRACE_GETREGSET: writes up to `iov_len` bytes of the set and the length written back.
fn get_regset(t: &mut Task, h: &TaskHandle, set: u64, iov_addr: UserAddr) -> SysResult {
    let iov: crate::abi::Iovec = t.mm.read_obj(iov_addr)?;
    let bytes = in_stop(h, |st| {
        let cpu = &stop_of(st).cpu;
        Ok(match set {
            NT_PRSTATUS => words_bytes(&regs_words(&cpu.regs)),
            NT_PRFPREG => cpu.fp.area[..FPREGS_SIZE].to_vec(),
            NT_X86_XSTATE => {
                let mut area = cpu.fp.area.clone();
                area[XSAVE_SW_XCR0..XSAVE_SW_XCR0 + 8]
                    .copy_from_slice(&platform::xfeatures().to_le_bytes());
                area
            }
            _ => return Err(Errno::EINVAL),
        })
    })?;
    let len = bytes.len().min(iov.len as usize);
    t.mm.write_bytes(UserAddr(iov.base), &bytes[..len])?;
    t.mm.write_obj(
        iov_addr,
        &crate::abi::Iovec {
            base: iov.base,
            len: len as u64,
        },
    )?;
    Ok(0)
}

/// PTRACE_SETREGSET: the whole set (a shorter general-register buffer changes the registers
/// it covers, as Linux's regset copy does).
fn set_regset(t: &mut Task, h: &TaskHandle, set: u64, iov_addr: UserAddr) -> SysResult {
    let iov: crate::abi::Iovec = t.mm.read_obj(iov_addr)?;
    let want = match set {
        NT_PRSTATUS => REGS_SIZE,
        NT_PRFPREG => FPREGS_SIZE,
        NT_X86_XSTATE => platform::xsave_size(),
        _ => return Err(Errno::EINVAL),
    };
    let len = want.min(iov.len as usize);
    let bytes = t.mm.read_bytes(UserAddr(iov.base), len)?;
    in_stop(h, |st| {
        let cpu = &mut stop_of(st).cpu;
        match set {
            NT_PRSTATUS => {
                let mut full = words_bytes(&regs_words(&cpu.regs));
                full[..len].copy_from_slice(&bytes);
                set_regs(&mut cpu.regs, &full)
            }
            NT_PRFPREG => {
                let mut full = cpu.fp.area[..FPREGS_SIZE].to_vec();
                full[..len].copy_from_slice(&bytes);
                set_fxsave(&mut cpu.fp, &full);
                Ok(())
            }
            _ => {
                if len < FPREGS_SIZE + 64 {
                    return Err(Errno::EINVAL);
                }
                let bv = u64::from_le_bytes(bytes[512..520].try_into().expect("8 bytes"));
                if bv & !platform::xfeatures() != 0 {
                    return Err(Errno::EINVAL);
                }
                let fp = &mut cpu.fp;
                fp.area[..len].copy_from_slice(&bytes);
                mask_mxcsr(&mut fp.area);
                fp.valid = true;
                fp.dirty = true;
                Ok(())
            }
        }
    })?;
    t.mm.write_obj(
        iov_addr,
        &crate::abi::Iovec {
            base: iov.base,
            len: len as u64,
        },
    )?;
    Ok(0)
}

/// `struct ptrace_syscall_info` op values.
const SYSCALL_INFO_NONE: u8 = 0;
const SYSCALL_INFO_ENTRY: u8 = 1;
const SYSCALL_INFO_EXIT: u8 = 2;
/// AUDIT_ARCH_X86_64.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// PTRACE_GET_SYSCALL_INFO: the stop's system call as `struct ptrace_syscall_info`,
/// truncated to `size`; returns the full size of what there is to say.
fn get_syscall_info(t: &mut Task, h: &TaskHandle, size: usize, out: UserAddr) -> SysResult {
    let (kind, regs) = in_stop(h, |st| {
        let stop = stop_of(st);
        Ok((stop.kind, stop.cpu.regs))
    })?;
    let mut b = Vec::with_capacity(88);
    let op = match kind {
        StopKind::SyscallEnter => SYSCALL_INFO_ENTRY,
        StopKind::SyscallExit => SYSCALL_INFO_EXIT,
        _ => SYSCALL_INFO_NONE,
    };
    b.push(op);
    b.extend_from_slice(&[0u8; 3]);
    b.extend_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
    b.extend_from_slice(&regs.rip.to_le_bytes());
    b.extend_from_slice(&regs.rsp.to_le_bytes());
    match op {
        SYSCALL_INFO_ENTRY => {
            b.extend_from_slice(&regs.orig_rax.to_le_bytes());
            for a in [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] {
                b.extend_from_slice(&a.to_le_bytes());
            }
        }
        SYSCALL_INFO_EXIT => {
            let rval = regs.rax as i64;
            b.extend_from_slice(&rval.to_le_bytes());
            let is_error = u8::from((-4095..0).contains(&rval));
            b.push(is_error);
            b.extend_from_slice(&[0u8; 7]);
        }
        _ => {}
    }
    let n = size.min(b.len());
    t.mm.write_bytes(out, &b[..n])?;
    Ok(b.len() as u64)
}

/// `struct user_regs_struct` as words, in its field order.
fn regs_words(r: &platform::Regs) -> [u64; 27] {
    [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ]
}

fn words_bytes(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Word indexes of the segment selectors in `struct user_regs_struct`.
const SEGMENTS: [usize; 6] = [17, 20, 23, 24, 25, 26];
const EFLAGS: usize = 18;
const FS_BASE: usize = 21;
const GS_BASE: usize = 22;

/// Writes register `i` of `struct user_regs_struct` as Linux's putreg: only the flags a
/// program may change, bases inside user space. Segment selectors are checked and kept
/// (the platform runs every task with the standard 64-bit selectors).
fn set_reg(r: &mut platform::Regs, i: usize, v: u64) -> Result<(), Errno> {
    if SEGMENTS.contains(&i) {
        // A null selector or one with the user privilege level; CS and SS never null.
        let null_ok = !matches!(i, 17 | 20);
        return if (v == 0 && null_ok) || (v != 0 && v & 3 == 3 && v <= 0xffff) {
            Ok(())
        } else {
            Err(Errno::EIO)
        };
    }
    if matches!(i, FS_BASE | GS_BASE) && v >= TASK_SIZE_MAX {
        return Err(Errno::EIO);
    }
    let slot = match i {
        0 => &mut r.r15,
        1 => &mut r.r14,
        2 => &mut r.r13,
        3 => &mut r.r12,
        4 => &mut r.rbp,
        5 => &mut r.rbx,
        6 => &mut r.r11,
        7 => &mut r.r10,
        8 => &mut r.r9,
        9 => &mut r.r8,
        10 => &mut r.rax,
        11 => &mut r.rcx,
        12 => &mut r.rdx,
        13 => &mut r.rsi,
        14 => &mut r.rdi,
        15 => &mut r.orig_rax,
        16 => &mut r.rip,
        EFLAGS => {
            r.eflags = (r.eflags & !FLAG_MASK) | (v & FLAG_MASK);
            return Ok(());
        }
        19 => &mut r.rsp,
        FS_BASE => &mut r.fs_base,
        GS_BASE => &mut r.gs_base,
        _ => return Err(Errno::EIO),
    };
    *slot = v;
    Ok(())
}

/// Sets every register from a `struct user_regs_struct` image, or none if one is refused.
fn set_regs(r: &mut platform::Regs, bytes: &[u8]) -> Result<(), Errno> {
    let mut new = *r;
    for (i, w) in bytes.chunks_exact(8).enumerate().take(27) {
        set_reg(
            &mut new,
            i,
            u64::from_le_bytes(w.try_into().expect("8 bytes")),
        )?;
    }
    *r = new;
    Ok(())
}

/// Debug register `i` (`u_debugreg`): addresses in user space for DR0-3, DR6 as given,
/// DR7 only with every breakpoint disabled (the sandbox has no hardware breakpoints).
fn set_debugreg(regs: &mut [u64; 8], i: usize, v: u64) -> Result<(), Errno> {
    match i {
        0..=3 if v < TASK_SIZE_MAX => regs[i] = v,
        0..=3 => return Err(Errno::EINVAL),
        6 => regs[i] = v,
        7 if v & 0xff == 0 => regs[i] = v,
        _ => return Err(Errno::EIO),
    }
    Ok(())
}

/// Replaces the FXSAVE part of the XSAVE area (MXCSR's reserved bits cleared, as Linux
/// does) and marks x87 and SSE state present.
fn set_fxsave(fp: &mut platform::FpState, bytes: &[u8]) {
    fp.area[..FPREGS_SIZE].copy_from_slice(bytes);
    mask_mxcsr(&mut fp.area);
    let mut bv = u64::from_le_bytes(fp.area[512..520].try_into().expect("8 bytes"));
    bv |= 3;
    fp.area[512..520].copy_from_slice(&bv.to_le_bytes());
    fp.valid = true;
    fp.dirty = true;
}

fn mask_mxcsr(area: &mut [u8]) {
    let mxcsr = u32::from_le_bytes(area[24..28].try_into().expect("4 bytes")) & 0xffff;
    area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
}
