//! The systrap platform: application system calls trap into a signal handler in the stub,
//! which hands the registers to the sentry through shared memory; no ptrace stop per call.
//!
//! # Shape
//! - Address spaces and factories are the ptrace platform's ([`crate::ptrace`]), the stub code is
//!   the common [`crate::stub`]; a
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
//!   its own seccomp filter (`ptrace/factory.rs`): a stub that inherited the sentry's filter
//!   would be killed (`SECCOMP_RET_KILL_PROCESS` wins over `SECCOMP_RET_TRAP`) on any
//!   application system call outside the sentry's allowlist. Unlike the ptrace platform's,
//!   systrap factories install no filter of their own: a systrap stub's filter must trap
//!   application system calls, which a factory filter answering `SECCOMP_RET_KILL_PROCESS`
//!   would kill first, and a second filter answering `SECCOMP_RET_TRAP` would be evaluated
//!   on every application system call. So systrap factories and injection stubs (which run
//!   only the factory loop and injected calls, never application code) carry no filter.
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
use crate::stub;
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
    tuning: Tuning,
    /// Live address spaces by key (the address of the value), so a context can find the
    /// address space behind an `&Arc<dyn AddressSpace>`.
    address_spaces: Mutex<HashMap<usize, Weak<SystrapAddressSpace>>>,
}

/// How the sentry and the stubs wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Iterations of `spin_loop` the sentry polls for an event before sleeping.
    pub sentry_spin: u32,
    /// `pause` instructions a stub polls for "resume" before sleeping.
    pub stub_spin: u32,
    /// Keep each stub on the CPU its sentry thread last ran on (`sched_setaffinity` when
    /// that changes), so every hand-off is a same-CPU switch instead of a cross-CPU wake-up.
    pub follow_cpu: bool,
}

impl Default for Tuning {
    /// Same-CPU hand-offs, no polling: on virtual machines waking a halted vCPU costs tens
    /// of microseconds, and polling on a busy machine takes the CPU from the very thread
    /// being waited for (see the round-trip measurement in the tests).
    fn default() -> Tuning {
        Tuning {
            sentry_spin: 0,
            stub_spin: 0,
            follow_cpu: true,
        }
    }
}

impl Systrap {
    /// Creates the platform over the memory file `memfd` (duplicated; the caller keeps its
    /// fd). Forks the zygote now: call this before the sentry installs its seccomp filter.
    ///
    /// # Errors
    /// The stub pages cannot be mapped at their fixed address, the message file cannot be
    /// created, or the zygote cannot be started.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Systrap> {
        Self::with_tuning(memfd, Tuning::default())
    }

    /// Like [`Systrap::new`] with explicit waiting policy.
    ///
    /// # Errors
    /// As for [`Systrap::new`].
    pub fn with_tuning(memfd: BorrowedFd<'_>, tuning: Tuning) -> Result<Systrap> {
        stub::install()?;
        let sysmsg = SysmsgFile::new()?;
        let master =
            FactoryMaster::start(dup_cloexec(memfd)?, Some(dup_cloexec(sysmsg.fd())?), None)?;
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
                tuning,
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
        // The ptrace machinery's calls, and those of the systrap hand-offs.
        let mut calls = crate::ptrace::host_syscalls();
        calls.extend([
            (
                "futex",
                "systrap hand-offs with stubs on their message regions",
            ),
            ("kill", "systrap: interrupting a running stub (SIGUSR2)"),
            (
                "waitid",
                "systrap: checking that a stub that does not answer is still alive",
            ),
            (
                "sched_setaffinity",
                "systrap: keeping a stub on its sentry thread's CPU",
            ),
        ]);
        calls
    }
}
