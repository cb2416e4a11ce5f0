//! Contexts: running application code in the calling thread's stub with `PTRACE_SYSEMU`.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{gettid, Pid};

use super::address_space::{forget_dead_stub, stopped_stub_error, stub_of};
use super::sys::{self, host, WaitStatus};
use super::Shared;
use crate::{
    Access, AddressSpace, Context, CpuState, Error, Exit, Interrupter, Result, SignalInfo,
};

/// The host signal an [`Interrupter`] sends to a running stub.
/// The host signal that stops a running stub for [`Interrupter::interrupt`] (both platforms).
pub(crate) const INTERRUPT_SIGNAL: Signal = Signal::SIGUSR2;
/// Stop signal of a syscall stop with `PTRACE_O_TRACESYSGOOD`.
const SYSCALL_STOP: i32 = libc::SIGTRAP | 0x80;

/// One application thread's way onto the CPU, bound to the host thread that created it.
pub(super) struct PtraceContext {
    shared: Arc<Shared>,
    /// The creating host thread: the only one allowed to use this context.
    tid: Pid,
    interrupt: Arc<StubInterrupter>,
}

/// Interrupts a context from another thread.
///
/// `interrupt` sets `pending` then reads `running_pid`; `switch` stores `running_pid` then
/// reads `pending` (all SeqCst). So either the switch sees `pending` and does not run, or the
/// interrupter sees the stub's pid and signals it.
///
/// Shared by the ptrace and systrap platforms: both run application code in a stub process
/// that the signal stops.
#[derive(Default)]
pub(crate) struct StubInterrupter {
    pub(crate) pending: AtomicBool,
    /// The stub running this context's application code, 0 when none.
    pub(crate) running_pid: AtomicI32,
}

impl Interrupter for StubInterrupter {
    fn interrupt(&self) {
        self.pending.store(true, Ordering::SeqCst);
        let pid = self.running_pid.load(Ordering::SeqCst);
        if pid != 0 {
            // The stub may have stopped (or, with its address space released, died) meanwhile:
            // a stale signal only causes one spurious `Exit::Interrupted` later.
            if let Err(e) = kill(Pid::from_raw(pid), INTERRUPT_SIGNAL) {
                log::debug!("interrupting stub {pid} failed: {e}");
            }
        }
    }
}

impl PtraceContext {
    pub(super) fn new(shared: Arc<Shared>) -> PtraceContext {
        PtraceContext {
            shared,
            tid: gettid(),
            interrupt: Arc::default(),
        }
    }

    fn assert_owner(&self) {
        debug_assert_eq!(
            gettid(),
            self.tid,
            "ptrace context used from a thread that did not create it"
        );
    }

    /// Loads `state` into the stopped stub and runs it until a stop the sentry must see.
    fn run(pid: Pid, state: &mut CpuState) -> Result<Exit> {
        if state.fp.dirty {
            sys::set_xstate(pid, &state.fp.area).map_err(|e| {
                stopped_stub_error(pid, "ptrace(PTRACE_SETREGSET, NT_X86_XSTATE)", e)
            })?;
            state.fp.dirty = false;
        }
        ptrace::setregs(pid, state.regs)
            .map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_SETREGS)", e))?;
        loop {
            // Signal 0: whatever stopped the stub last time is never delivered to it.
            ptrace::sysemu(pid, None)
                .map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_SYSEMU)", e))?;
            let status = match sys::wait(pid) {
                Ok(status) => status,
                Err(nix::errno::Errno::ECHILD) => {
                    return Err(Error::StubDied {
                        pid: pid.as_raw(),
                        status: "reaped by another thread (address space released)".into(),
                    })
                }
                Err(e) => return Err(host("wait4 (stub)")(e)),
            };
            let (signal, event) = match status {
                WaitStatus::Stopped { signal, event } => (signal, event),
                died => {
                    return Err(Error::StubDied {
                        pid: pid.as_raw(),
                        status: died.describe(),
                    })
                }
            };
            state.fp.valid = false;
            if signal == SYSCALL_STOP {
                state.regs = ptrace::getregs(pid).map_err(host("ptrace(PTRACE_GETREGS)"))?;
                let arch =
                    sys::syscall_arch(pid).map_err(host("ptrace(PTRACE_GET_SYSCALL_INFO)"))?;
                if arch != crate::AUDIT_ARCH_X86_64 {
                    // Undo the syscall-entry stop's -ENOSYS: a fault leaves rax alone.
                    state.regs.rax = state.regs.orig_rax;
                    return Ok(crate::refuse_32bit_syscall(&mut state.regs));
                }
                return Ok(Exit::Syscall);
            }
            // The seize stop, if it was not the first stop we saw, or a SIGSTOP from outside:
            // nothing changed, run on.
            if event != 0 || signal == libc::SIGSTOP {
                log::trace!("ptrace: stub {pid}: spurious stop (signal {signal}, event {event})");
                continue;
            }
            state.regs = ptrace::getregs(pid).map_err(host("ptrace(PTRACE_GETREGS)"))?;
            let info = ptrace::getsiginfo(pid).map_err(host("ptrace(PTRACE_GETSIGINFO)"))?;
            if is_vsyscall(signal, &info) {
                // The host rolled rax back to the number and returned to the caller.
                state.regs.orig_rax = state.regs.rax;
                state.regs.rax = (-libc::ENOSYS) as i64 as u64;
                return Ok(Exit::Vsyscall);
            }
            return Ok(classify(pid, signal, &info));
        }
    }
}

/// `si_code` of a `SIGSYS` raised by seccomp.
const SYS_SECCOMP: i32 = 1;

/// The stop is the `SIGSYS` of the stub filter's `SECCOMP_RET_TRAP` for a call of the
/// vsyscall page (`filter.rs`): its `si_call_addr` lies on the page.
fn is_vsyscall(signal: i32, info: &libc::siginfo_t) -> bool {
    if signal != libc::SIGSYS || info.si_code != SYS_SECCOMP {
        return false;
    }
    // SAFETY: a seccomp SIGSYS (si_code SYS_SECCOMP, which only the kernel can set) fills the
    // sigsys member of the union, whose first field `_call_addr` lies where `si_addr` does.
    let addr = unsafe { info.si_addr() } as u64;
    (crate::VSYSCALL_PAGE..crate::VSYSCALL_PAGE + crate::PAGE_SIZE).contains(&addr)
}

/// Decides what a signal-delivery stop means for the sentry.
fn classify(pid: Pid, signal: i32, info: &libc::siginfo_t) -> Exit {
    let code = info.si_code;
    let synchronous = matches!(
        signal,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
    );
    // si_code <= 0: sent by kill/tgkill/sigqueue, not raised by an instruction.
    if !synchronous || code <= 0 {
        if signal != INTERRUPT_SIGNAL as i32 {
            log::debug!(
                "ptrace: stub {pid}: signal {signal} (code {code}) treated as an interrupt"
            );
        }
        return Exit::Interrupted;
    }
    // SAFETY: for the synchronous signals above, raised by the CPU (si_code > 0), the kernel
    // fills the sigfault member of the union.
    let addr = unsafe { info.si_addr() } as u64;
    let info = SignalInfo {
        signo: signal,
        code,
        addr,
    };
    // SIGSEGV with SI_KERNEL is a general-protection fault (privileged instruction,
    // non-canonical address), not an access the sentry could fix by mapping memory.
    if signal == libc::SIGSEGV && code != libc::SI_KERNEL {
        Exit::Fault {
            addr,
            access: Access::Unknown,
            info,
        }
    } else {
        Exit::Signal(info)
    }
}

impl Context for PtraceContext {
    fn switch(
        &mut self,
        address_space: &Arc<dyn AddressSpace>,
        state: &mut CpuState,
    ) -> Result<Exit> {
        self.assert_owner();
        let pid = stub_of(&self.shared, address_space)?;
        self.interrupt
            .running_pid
            .store(pid.as_raw(), Ordering::SeqCst);
        if self.interrupt.pending.swap(false, Ordering::SeqCst) {
            self.interrupt.running_pid.store(0, Ordering::SeqCst);
            return Ok(Exit::Interrupted);
        }
        let exit = Self::run(pid, state);
        self.interrupt.running_pid.store(0, Ordering::SeqCst);
        if let Err(Error::StubDied { .. }) = exit {
            forget_dead_stub(pid);
        }
        if let Ok(Exit::Interrupted) = exit {
            self.interrupt.pending.store(false, Ordering::SeqCst);
        }
        log::trace!("ptrace: stub {pid}: {exit:?} at rip {:#x}", state.regs.rip);
        exit
    }

    fn pull_fp(
        &mut self,
        address_space: &Arc<dyn AddressSpace>,
        state: &mut CpuState,
    ) -> Result<()> {
        self.assert_owner();
        if state.fp.valid {
            return Ok(());
        }
        let pid = stub_of(&self.shared, address_space)?;
        sys::get_xstate(pid, &mut state.fp.area)
            .map_err(host("ptrace(PTRACE_GETREGSET, NT_X86_XSTATE)"))?;
        state.fp.valid = true;
        Ok(())
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.interrupt.clone()
    }
}
