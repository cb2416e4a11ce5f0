//! The kernel proper: `Kernel`, tasks and thread groups, fd tables.
//!
//! Task model: one sentry host thread per application thread. Its run loop (in [`task`]) is a
//! state machine: switch into the application, handle the exit (syscall, fault, signal),
//! repeat until the task exits.
//!
//! # Lock order
//! `ThreadGroup::state` → `FdTable::files` → `MemoryManager::inner` → `MemoryFile` allocator.

pub mod fd_table;
pub mod task;
pub mod thread_group;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use platform::Platform;

use crate::memory::MemoryFile;

pub use fd_table::FdTable;
pub use task::{Task, TaskInit};
pub use thread_group::{ExitStatus, ThreadGroup};

/// Settings fixed at boot.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    /// Print one line per system call (`--strace`).
    pub strace: bool,
    /// `uname` nodename and `/proc/sys/kernel/hostname`.
    pub hostname: String,
}

/// The sandbox's kernel: everything tasks share.
pub struct Kernel {
    pub platform: Arc<dyn Platform>,
    pub memory: Arc<MemoryFile>,
    pub config: KernelConfig,
    /// Sandbox boot time, for uptime.
    pub boot: Instant,
    pub hostname: Mutex<String>,
    next_tid: AtomicI32,
    /// System-call numbers already reported as unsupported (logged once each).
    warned: Mutex<HashSet<u64>>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("platform", &self.platform.name())
            .finish_non_exhaustive()
    }
}

impl Kernel {
    pub fn new(
        platform: Arc<dyn Platform>,
        memory: Arc<MemoryFile>,
        config: KernelConfig,
    ) -> Arc<Kernel> {
        Arc::new(Kernel {
            platform,
            memory,
            hostname: Mutex::new(config.hostname.clone()),
            config,
            boot: Instant::now(),
            next_tid: AtomicI32::new(1),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// A new thread/process id (the first is 1: the container's init).
    pub fn alloc_tid(&self) -> i32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// True the first time `nr` is reported as unsupported.
    pub fn first_unsupported(&self, nr: u64) -> bool {
        self.warned.lock().unwrap().insert(nr)
    }
}
