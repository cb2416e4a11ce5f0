//! The ptrace platform: application code runs in stub processes traced by sentry threads.
//!
//! # Shape
//! - Every application thread runs in its own **stub** process. The stubs of one address space
//!   share memory (`clone(CLONE_VM)` without `CLONE_THREAD`, so each is its own thread group
//!   and signals to it affect it alone). A stub starts with nothing mapped but the two stub
//!   pages at [`MAX_USER_ADDRESS`](crate::MAX_USER_ADDRESS) (`stub.rs`) and the memory file
//!   as fd 0.
//! - Each address space has one untraced **factory** process that creates its stubs on
//!   request (`factory.rs`). Factories are forked by one **master** thread of the platform.
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
//! Releasing an address space kills and reaps its stubs and factory. A host thread that exits
//! kills the stubs it traced (thread-local destructor, and `PTRACE_O_EXITKILL` as a backstop).
//! Factories and stubs get `SIGKILL` when the master thread exits (`PR_SET_PDEATHSIG`).

pub(crate) mod address_space;
pub(crate) mod context;
pub(crate) mod factory;
pub(crate) mod stub;
pub(crate) mod sys;
#[cfg(test)]
mod tests;

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use self::address_space::{PtraceAddressSpace, Registry};
use self::context::PtraceContext;
use self::factory::{dup_cloexec, FactoryMaster};
use crate::{AddressSpace, Context, Platform, Result};

/// The ptrace platform.
pub struct Ptrace {
    shared: Arc<Shared>,
}

/// State shared by the platform, its address spaces and its contexts.
pub(crate) struct Shared {
    master: FactoryMaster,
    /// Live address spaces by key, so a context can find the address space behind an
    /// `&Arc<dyn AddressSpace>` (see `address_space::stub_of`).
    address_spaces: Registry,
}

impl Ptrace {
    /// Creates the platform over the memory file `memfd` (duplicated; the caller keeps its fd).
    /// Whether ptrace itself is allowed shows on first use.
    ///
    /// # Errors
    /// The stub pages cannot be mapped at their fixed address, or `memfd` cannot be duplicated.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Ptrace> {
        stub::install()?;
        let memfd = dup_cloexec(memfd)?;
        Ok(Ptrace {
            shared: Arc::new(Shared::new(FactoryMaster::new(memfd))),
        })
    }
}

impl Shared {
    /// State over `master`, with no address spaces yet.
    pub(crate) fn new(master: FactoryMaster) -> Shared {
        Shared {
            master,
            address_spaces: Mutex::default(),
        }
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

/// The host system calls of the ptrace machinery (see [`Platform::host_syscalls`]).
pub(crate) fn host_syscalls() -> Vec<(&'static str, &'static str)> {
    // The factory and the stubs are forked from the sentry and inherit its seccomp
    // filter, so the calls they make are listed too.
    vec![
        (
            "ptrace",
            "seizing stubs, running them (PTRACE_SYSEMU), registers, FP state, signal info",
        ),
        (
            "wait4",
            "waiting for stub stops; reaping stubs and factories",
        ),
        ("waitid", "learning how a stub factory died (WNOWAIT)"),
        (
            "kill",
            "interrupting a running stub (SIGUSR2); killing stubs and factories",
        ),
        ("gettid", "binding a context to its host thread"),
        (
            "clone",
            "forking a stub factory (master thread); a factory creating a stub",
        ),
        ("clone3", "starting the factory master thread"),
        (
            "futex",
            "requests to the factory master thread; address-space locks",
        ),
        ("socketpair", "the request socket of a stub factory"),
        (
            "setsockopt",
            "SO_PASSCRED on the factory socket: the kernel names each new stub",
        ),
        ("sendto", "asking a factory for a stub"),
        ("recvmsg", "receiving a new stub's credentials"),
        (
            "close",
            "closing factory sockets; a new stub closing its copy of the factory socket",
        ),
        (
            "fcntl",
            "duplicating the memory file (F_DUPFD_CLOEXEC); factory fd setup (F_DUPFD)",
        ),
        (
            "dup2",
            "factory fd setup: memory file as fd 0, socket as fd 1",
        ),
        (
            "close_range",
            "factory fd setup: closing every other descriptor",
        ),
        ("prctl", "PR_SET_PDEATHSIG in factories and stubs"),
        (
            "getppid",
            "a new factory checking that the sentry is still alive",
        ),
        ("getpid", "forking a factory"),
        ("rt_sigprocmask", "factory setup: unblocking every signal"),
        ("rt_sigaction", "factory setup: default signal dispositions"),
        (
            "rseq",
            "factory setup: unregistering the inherited rseq area",
        ),
        (
            "capset",
            "factory setup: dropping every capability (stubs run with none)",
        ),
        (
            "mmap",
            "mapping the stub pages; injected map of memory-file ranges in stubs",
        ),
        (
            "mprotect",
            "making the stub code page read-only and executable",
        ),
        ("munmap", "factory setup; injected unmap in stubs"),
        ("read", "a factory waiting for requests"),
        ("write", "a factory or a new stub answering a request"),
        ("pause", "a new stub waiting to be seized"),
        ("exit_group", "a factory exiting when its socket closes"),
    ]
}
