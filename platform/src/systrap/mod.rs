//! The systrap platform: application system calls trap into a signal handler in the stub,
//! which hands the registers to the sentry through shared memory; no ptrace stop per call.
//!
//! # Shape
//! - Address spaces, factories and stubs are the ptrace platform's ([`crate::ptrace`]); a
//!   [`SystrapAddressSpace`](address_space::SystrapAddressSpace) wraps a ptrace address
//!   space. `map`/`unmap` are the ptrace platform's: `mmap`/`munmap` injected by ptrace into
//!   a stub traced by the calling thread, so they are complete when they return.
//! - Each [`Context`] gets its own **systrap stub** per address space. The context's thread
//!   seizes a fresh stub once, injects its setup (map its message region, alternate signal
//!   stack, handlers for SIGSYS, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP and SIGUSR2, then
//!   the seccomp filter of `filter.rs`), and detaches. The stub then parks in its handler.
//! - A switch writes the registers into the stub's message region (`sysmsg.rs`), flips the
//!   state word to RESUME, and waits for EVENT. The handler copies the registers into its
//!   signal frame and returns into application code through `rt_sigreturn`. The next system
//!   call (seccomp `SECCOMP_RET_TRAP`), fault, or interrupt (SIGUSR2 from the sentry) enters
//!   the handler again, which saves the frame's registers and flips the state to EVENT.
//! - Both sides poll the state word for a while before sleeping on it with `FUTEX_WAIT`
//!   (wake-ups of an idle vCPU are very expensive on virtual machines), and `FUTEX_WAKE`
//!   only a side that said it sleeps.
//! - Factories are forked by a zygote made at platform creation, before the sentry installs
//!   its own seccomp filter: a stub that inherited the sentry's filter would be killed
//!   (`SECCOMP_RET_KILL_PROCESS` wins over `SECCOMP_RET_TRAP`) on any application system
//!   call outside the sentry's allowlist.
//!
//! # Lock order
//! A context's stubs are its own (no lock). `Shared::address_spaces`, an address space's
//! `slots`, and the message file's slot pool are leaf locks, never held together.
//!
//! # Cleanup
//! A context kills its stubs when dropped; releasing an address space kills every stub of it
//! (they are registered with the wrapped ptrace address space) and returns its message
//! regions once no process maps them.

mod address_space;
mod context;
mod filter;
pub(crate) mod sysmsg;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, Weak};

use self::address_space::SystrapAddressSpace;
use self::context::SystrapContext;
use self::sysmsg::SysmsgFile;
use crate::ptrace::factory::{dup_cloexec, FactoryMaster};
use crate::ptrace::stub;
use crate::{AddressSpace, Context, Platform, Result};

/// The systrap platform.
pub struct Systrap {
    shared: Arc<Shared>,
}

/// State shared by the platform, its address spaces and its contexts.
struct Shared {
    ptrace: Arc<crate::ptrace::Shared>,
    sysmsg: SysmsgFile,
    /// The handler uses `rdfsbase`/`wrfsbase`.
    fsgsbase: bool,
    /// Polling budgets before sleeping: the sentry's in iterations of `spin_loop`, the
    /// stub's in `pause` instructions.
    sentry_spin: u32,
    stub_spin: u32,
    /// Live address spaces by key (the address of the value), so a context can find the
    /// address space behind an `&Arc<dyn AddressSpace>`.
    address_spaces: Mutex<HashMap<usize, Weak<SystrapAddressSpace>>>,
}

/// Default polling budgets. On a virtual machine waking a halted vCPU costs tens of
/// microseconds; a few microseconds of polling covers a typical system call's handling.
const SENTRY_SPIN: u32 = 20_000;
const STUB_SPIN: u32 = 20_000;

impl Systrap {
    /// Creates the platform over the memory file `memfd` (duplicated; the caller keeps its
    /// fd). Forks the zygote now: call this before the sentry installs its seccomp filter.
    ///
    /// # Errors
    /// The stub pages cannot be mapped at their fixed address, the message file cannot be
    /// created, or the zygote cannot be started.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Systrap> {
        Self::with_spin(memfd, SENTRY_SPIN, STUB_SPIN)
    }

    /// Like [`Systrap::new`] with explicit polling budgets (0: sleep right away).
    ///
    /// # Errors
    /// As for [`Systrap::new`].
    pub fn with_spin(memfd: BorrowedFd<'_>, sentry_spin: u32, stub_spin: u32) -> Result<Systrap> {
        stub::install()?;
        let sysmsg = SysmsgFile::new()?;
        let master = FactoryMaster::with_zygote(dup_cloexec(memfd)?, dup_cloexec(sysmsg.fd())?)?;
        let fsgsbase = sysmsg::fsgsbase_available();
        log::info!(
            "systrap: platform ready (fs base via {})",
            if fsgsbase { "wrfsbase" } else { "arch_prctl" }
        );
        Ok(Systrap {
            shared: Arc::new(Shared {
                ptrace: Arc::new(crate::ptrace::Shared::new(master)),
                sysmsg,
                fsgsbase,
                sentry_spin,
                stub_spin,
                address_spaces: Mutex::default(),
            }),
        })
    }
}

impl Platform for Systrap {
    fn name(&self) -> &'static str {
        "systrap"
    }

    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>> {
        Ok(SystrapAddressSpace::create(&self.shared)?)
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(SystrapContext::new(self.shared.clone())))
    }

    fn host_syscalls(&self) -> Vec<(&'static str, &'static str)> {
        // The zygote, factories and stubs carry no filter of the sentry; what is listed is
        // what the sentry's own threads call (the ptrace machinery's list covers more).
        let mut calls = crate::ptrace::host_syscalls();
        calls.extend([
            (
                "sendmsg",
                "handing the zygote a new factory's socket (SCM_RIGHTS)",
            ),
            (
                "futex",
                "systrap hand-offs with stubs on their message regions",
            ),
            (
                "kill",
                "systrap: interrupting a running stub (SIGUSR2)",
            ),
            (
                "waitid",
                "systrap: checking that a stub that does not answer is still alive",
            ),
            ("read", "the zygote's answer"),
        ]);
        calls
    }
}
