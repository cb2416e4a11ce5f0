//! The ptrace platform: application code runs in stub processes traced by sentry threads.
//!
//! # Shape
//! - Every application thread runs in its own **stub** process. The stubs of one address space
//!   share memory (`clone(CLONE_VM)` without `CLONE_THREAD`, so each is its own thread group
//!   and signals to it affect it alone). A stub starts with nothing mapped but the two stub
//!   pages at [`MAX_USER_ADDRESS`](crate::MAX_USER_ADDRESS) ([`crate::stub`]) and the memory file
//!   as fd 0.
//! - Each address space has one untraced **factory** process that creates its stubs on
//!   request (`factory.rs`). Factories are forked by a **zygote** that one **master** thread
//!   of the platform forks when the platform is created, before the sentry installs its
//!   seccomp filter.
//! - Every factory installs the stub filter of `filter.rs` before it serves requests, so it
//!   and its stubs may make only the host calls they really make (the factory loop, a new
//!   stub's first steps, the injected `mmap`/`munmap`/`close`); anything else kills the
//!   process with `SIGSYS`. Application system calls, stopped by `PTRACE_SYSEMU`, never reach
//!   that filter, nor the sentry's.
//! - Each sentry host thread traces its own stub in each address space it uses (a ptrace
//!   tracer is a thread, not a process); the stubs live in a thread-local table.
//!   `map`/`unmap` run `mmap`/`munmap` in the calling thread's stub by register injection.
//! - [`Context::switch`](crate::Context::switch) loads the registers and resumes the stub
//!   with `PTRACE_SYSEMU`, so application system calls stop before the host executes them.
//!
//! # Lock order
//! `Shared::address_spaces` and an address space's `inner` are never held together. The
//! factory master's request channel lock is held only to send a request.
//!
//! # Cleanup
//! Releasing an address space kills its stubs and factory at once; the platform's reaper
//! thread (`reaper.rs`) reaps them and only then frees what they mapped of the sentry's
//! (command page, systrap message regions), so the releasing thread does not wait for them. A host thread that exits
//! kills the stubs it traced (thread-local destructor, and `PTRACE_O_EXITKILL` as a backstop);
//! one that finishes a task and lives on to run another does it in [`release_thread_stubs`].
//! Factories and stubs get `SIGKILL` when the master thread exits (`PR_SET_PDEATHSIG`); the
//! zygote is killed when the platform is dropped.

pub(crate) mod address_space;
pub(crate) mod context;
pub(crate) mod factory;
mod filter;
mod mapper;
pub(crate) mod reaper;
pub(crate) mod sys;
#[cfg(test)]
mod tests;

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use self::address_space::{PtraceAddressSpace, Registry};
use self::context::PtraceContext;
use self::factory::{dup_cloexec, FactoryMaster};
use self::reaper::Reaper;
use crate::stub;
use crate::{AddressSpace, Context, Platform, Result};

/// The ptrace platform.
pub struct Ptrace {
    shared: Arc<Shared>,
}

/// State shared by the platform, its address spaces and its contexts.
pub(crate) struct Shared {
    master: FactoryMaster,
    /// Reaps the processes of released address spaces.
    pub(crate) reaper: Reaper,
    /// Live address spaces by key, so a context can find the address space behind an
    /// `&Arc<dyn AddressSpace>` (see `address_space::stub_of`).
    address_spaces: Registry,
}

impl Ptrace {
    /// Creates the platform over the memory file `memfd` (duplicated; the caller keeps its fd).
    /// Forks the zygote now: call this before the sentry installs its seccomp filter. Whether
    /// ptrace itself is allowed shows on first use.
    ///
    /// # Errors
    /// The stub pages cannot be mapped at their fixed address, `memfd` cannot be duplicated,
    /// or the zygote cannot be started.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Ptrace> {
        stub::install()?;
        // A thread runs application code in its one stub and injects through it.
        let master = FactoryMaster::start(
            dup_cloexec(memfd)?,
            None,
            Some(filter::program()),
            1,
            false,
            None,
        )?;
        Ok(Ptrace {
            shared: Arc::new(Shared::new(master)),
        })
    }
}

/// The calling host thread is done with its task and will run another one: retires the
/// stubs it traces (a stub's tracer is a thread, and an exiting thread's stubs are retired by
/// its thread-local destructor; a thread that lives on must do it here). For every platform
/// of this crate that injects through ptrace stubs (ptrace and systrap).
pub fn release_thread_stubs() {
    address_space::retire_local_stubs();
}

impl Shared {
    /// State over `master`, with no address spaces yet.
    pub(crate) fn new(master: FactoryMaster) -> Shared {
        Shared {
            master,
            reaper: Reaper::start(),
            address_spaces: Mutex::default(),
        }
    }
}

#[cfg(test)]
impl Shared {
    /// The pids of the next spare factory, its prepared stubs and its prepared mapper (last),
    /// once the master thread has made one (within 10 s: it normally takes a few
    /// milliseconds; the bound only ends a broken test).
    pub(crate) fn wait_for_spare(&self) -> Vec<nix::unistd::Pid> {
        for _ in 0..10_000 {
            if let Some(pids) = self.master.spare_pids() {
                return pids;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("no spare factory after 10 s");
    }
}

impl Platform for Ptrace {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>> {
        Ok(PtraceAddressSpace::create(&self.shared)?)
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(PtraceContext::new(self.shared.clone())))
    }

    fn host_syscalls(&self) -> Vec<(&'static str, &'static str)> {
        host_syscalls()
    }
}

/// The host system calls of the ptrace machinery in the sentry process (see
/// [`Platform::host_syscalls`]). Only the sentry's own threads need them after the sentry's
/// filter is on: the master thread and the zygote were started before it, and factories and
/// stubs carry their own filter instead (`filter.rs`).
pub(crate) fn host_syscalls() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "ptrace",
            "seizing stubs, running them (PTRACE_SYSEMU), injecting calls, registers, FP \
             state, signal info",
        ),
        (
            "wait4",
            "waiting for stub stops; reaping stubs, factories and the zygote",
        ),
        ("waitid", "learning how a stub factory died (WNOWAIT)"),
        (
            "kill",
            "interrupting a running stub (SIGUSR2); killing stubs, factories and the zygote",
        ),
        ("gettid", "binding a context to its host thread"),
        (
            "pidfd_open",
            "a mapper's pidfd: its death ends a wait for it",
        ),
        (
            "pidfd_getfd",
            "taking a new mapper's seccomp listener (mapper.rs)",
        ),
        (
            "ioctl",
            "SECCOMP_IOCTL_NOTIF_RECV/SEND/SET_FLAGS on a mapper's listener",
        ),
        (
            "ppoll",
            "waiting for a mapper's notification or death, with a deadline",
        ),
        (
            "futex",
            "requests to the factory master thread; address-space locks",
        ),
        (
            "sched_setaffinity",
            "keeping the zygote's background fork off the CPU of the thread that took the \
             spare factory",
        ),
        (
            "getcpu",
            "the CPU of the thread that took the spare factory (sched_getcpu, when neither \
             rseq nor the vDSO tells)",
        ),
        ("socketpair", "the request socket of a new stub factory"),
        (
            "setsockopt",
            "SO_PASSCRED on the factory socket: the kernel names each new stub",
        ),
        (
            "sendmsg",
            "handing the zygote a new factory's socket (SCM_RIGHTS)",
        ),
        ("read", "the zygote's answer (the new factory's pid)"),
        ("sendto", "asking a factory for a stub"),
        ("recvmsg", "receiving a new stub's credentials"),
        (
            "close",
            "closing factory sockets (ours on release, the factory's end once handed over)",
        ),
    ]
}
