//! The kernel proper: `Kernel`, tasks and thread groups, the process table, signals, futexes,
//! pipes, fd tables.
//!
//! Layer: above `vfs`, `fs`, `net`, `elf`, `mm`, `auth` and `waiter`; it implements what
//! those layers declare for it ([`vfs::Context`](crate::vfs::Context) for `Task`, in
//! [`context`]; the timerfd and signalfd file kinds). Only `procfs`, `syscalls` and `boot`
//! sit above it. The kernel owns what its tasks share: the process table, the file-lock
//! table, the network namespace and the IPC namespace.
//!
//! Task model: one sentry host thread per application thread. Its run loop (in [`task`]) is a
//! state machine: deliver signals, switch into the application, handle the exit (syscall,
//! fault, signal), repeat until the task exits. Blocking system calls sleep on the task's
//! [`crate::waiter::Waiter`], which signal delivery and exit also wake.
//!
//! The kernel does not know the system calls: boot gives it the table ([`SyscallTable`]) at
//! construction, and the run loop hands each application system call to it.
//!
//! # Lock order
//! `Kernel::tree` → `cgroup::Hierarchy` → `ThreadGroup::cgroup`;
//! `Kernel::tree` → `ThreadGroup::sig` → `FdTable::files` → `Futexes` → `MemoryManager::inner`
//! → `MemoryFile` allocator; `ThreadGroup::sig` → `ThreadGroup::usage` (see [`usage`]; a
//! `TaskClock` is a sequence lock, no lock at all). Pipe, wait-queue and `PidNamespace` locks
//! are leaves.

pub mod aio;
pub mod cgroup;
pub mod checkpoint;
pub mod clone;
pub mod context;
pub mod cpu_timers;
pub mod epoll;
pub mod exec;
pub mod fasync;
pub mod fd_table;
pub mod freeze;
pub mod futex;
pub mod host_threads;
pub mod ipc;
pub mod keys;
pub mod ns;
pub mod pidfd;
pub mod pidns;
pub mod pids;
pub mod pipe;
pub mod ptrace;
pub mod restore;
pub mod sched;
pub mod seccomp;
pub mod sigframe;
pub mod signal;
pub mod signalfd;
pub mod syscall_set;
pub mod task;
pub mod thread_group;
pub mod timer;
pub mod usage;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use platform::Platform;

use crate::memory::MemoryFile;

pub use fd_table::FdTable;
pub use pidns::PidNamespace;
pub use pids::Tree;
pub use task::{Task, TaskHandle, TaskInit};
pub use thread_group::{ExitStatus, ThreadGroup};

/// Settings fixed at boot.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    /// Print one line per system call (`--strace`).
    pub strace: bool,
    /// `uname` nodename and `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// Record the numbers of the system calls applications make (`seen_syscalls`).
    pub record_syscalls: bool,
}

/// The system-call table: runs the system call in the task's registers and leaves its
/// result there (or in the task's restart and exit requests). Boot passes the syscalls
/// module's `dispatch`.
pub type SyscallTable = fn(&mut Task);

/// The sandbox's kernel: everything tasks share.
pub struct Kernel {
    pub platform: Arc<dyn Platform>,
    pub memory: Arc<MemoryFile>,
    /// The vDSO every exec maps ([`crate::vdso`]), made by the first.
    pub vdso: crate::vdso::VdsoSlot,
    pub config: KernelConfig,
    /// Where the run loop sends application system calls.
    pub syscalls: SyscallTable,
    /// Sandbox boot time, for uptime.
    pub boot: Instant,
    /// The initial UTS namespace: the sandbox's hostname (`uname -n`).
    pub uts: Arc<ns::UtsNs>,
    /// How often a host name and a domain name were set, in any UTS namespace: what a poll
    /// of `/proc/sys/kernel/{hostname,domainname}` reports (Linux's `uts_proc_notify`).
    pub uts_events: ns::UtsEvents,
    /// The root PID namespace: its IDs are the process table's keys.
    pub root_pidns: Arc<PidNamespace>,
    /// The process table; see [`pids`].
    tree: Mutex<Tree>,
    /// Notified (with `tree`) when the last task leaves the table.
    pub all_exited: Condvar,
    pub futexes: futex::Futexes,
    /// Fires armed timers (itimers, POSIX timers, timerfds).
    pub timers: Arc<timer::TimerService>,
    /// Advisory file locks (flock, POSIX and OFD record locks).
    pub locks: Arc<crate::vfs::lock::Locks>,
    /// Write access against execution (ETXTBSY).
    pub write_access: Arc<crate::vfs::write_access::WriteAccess>,
    /// The pipes behind the FIFOs that are open, by the FIFO's (device, inode).
    pub fifos: pipe::Fifos,
    /// The internal filesystem of `memfd_create`'s files.
    pub memfds: crate::fs::memfd::MemfdFs,
    /// The inotify watches on every file of this kernel (every mount holds it).
    pub notify: Arc<crate::vfs::inotify::FsNotify>,
    /// Each session's controlling terminal, by session ID (global). A leaf lock.
    pub terminals: Mutex<BTreeMap<i32, Weak<dyn crate::vfs::ControllingTerminal>>>,
    /// The initial network namespace: AF_UNIX names and the internet stack on the pod's
    /// link or the host's (tasks may hold others, [`ns`]).
    pub net: Arc<ns::NetNs>,
    /// The initial IPC namespace: System V shared memory, semaphores and message queues.
    pub ipc: Arc<ns::IpcNs>,
    /// The namespaces open `/proc/[pid]/ns/*` files name ([`ns::NsFiles`]).
    pub ns_files: ns::NsFiles,
    /// The cgroup v2 hierarchy: which process is in which group, the controllers' counts.
    pub cgroups: cgroup::Hierarchy,
    /// Native AIO contexts (io_setup).
    pub aio: aio::Contexts,
    /// Keyrings (keyctl).
    pub keys: keys::Keys,
    /// Every system-call number applications made, when `config.record_syscalls`.
    pub seen_syscalls: Option<syscall_set::SyscallSet>,
    /// Pause and resume ([`freeze`]).
    freezer: freeze::Freezer,
    /// System-call numbers already reported as unsupported (logged once each).
    warned: Mutex<HashSet<u64>>,
    /// Test hook ([`TEST_PANIC_SYSCALL_ENV`]): the task that makes this system call panics.
    pub test_panic_syscall: Option<u64>,
}

/// Test hook: when the sandbox's environment sets this to a system-call number, a task that
/// makes that call panics in the run loop, so tests can check what a sentry bug does to the
/// sandbox ([`task`] documents the policy). Only whoever starts the sandbox sets its
/// environment; the application cannot.
pub const TEST_PANIC_SYSCALL_ENV: &str = "RUNSC_RS_TEST_ONLY_PANIC_SYSCALL";

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
        syscalls: SyscallTable,
        net: crate::net::Namespace,
    ) -> Arc<Kernel> {
        let notify = Arc::new(crate::vfs::inotify::FsNotify::default());
        let memfds = crate::fs::memfd::MemfdFs::new(&memory, &notify);
        let cgroups = cgroup::Hierarchy::new(notify.clone());
        let seen_syscalls = config
            .record_syscalls
            .then(syscall_set::SyscallSet::default);
        Arc::new(Kernel {
            platform,
            memory,
            vdso: Default::default(),
            syscalls,
            uts: ns::Ns::with_inode(
                Mutex::new(ns::Uts {
                    hostname: config.hostname.clone(),
                    domainname: "(none)".into(),
                }),
                crate::auth::UserNs::initial(),
                ns::INITIAL_UTS_INODE,
            ),
            uts_events: ns::UtsEvents::default(),
            config,
            boot: Instant::now(),
            root_pidns: PidNamespace::new_root(),
            tree: Mutex::new(Tree::default()),
            all_exited: Condvar::new(),
            futexes: futex::Futexes::default(),
            timers: Arc::default(),
            locks: Arc::default(),
            write_access: Arc::default(),
            fifos: pipe::Fifos::default(),
            memfds,
            notify,
            terminals: Mutex::default(),
            net: ns::Ns::with_inode(net, crate::auth::UserNs::initial(), ns::INITIAL_NET_INODE),
            ipc: ns::Ns::with_inode(
                ipc::Namespace::default(),
                crate::auth::UserNs::initial(),
                ns::INITIAL_IPC_INODE,
            ),
            ns_files: ns::NsFiles::default(),
            cgroups,
            aio: aio::Contexts::default(),
            keys: keys::Keys::default(),
            seen_syscalls,
            freezer: freeze::Freezer::default(),
            warned: Mutex::new(HashSet::new()),
            test_panic_syscall: std::env::var(TEST_PANIC_SYSCALL_ENV)
                .ok()
                .and_then(|v| v.parse().ok()),
        })
    }

    /// The namespaces the first task of every container starts in.
    pub fn initial_namespaces(&self) -> ns::Namespaces {
        ns::Namespaces {
            uts: self.uts.clone(),
            ipc: self.ipc.clone(),
            net: self.net.clone(),
            cgroup: self.cgroups.initial_ns().clone(),
            pid_for_children: None,
        }
    }

    /// The namespaces task `tid` (global) holds, while it runs.
    pub fn namespaces_of(&self, tid: i32) -> Option<ns::Namespaces> {
        let handle = self.tree().tasks.get(&tid)?.clone();
        let view = handle.view.lock().unwrap();
        view.as_ref().map(|v| v.ns.clone())
    }

    /// Locks the process table.
    pub fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap()
    }

    /// Waits up to `timeout` for every task to leave the process table; true if they did.
    pub fn wait_all_exited(&self, timeout: Duration) -> bool {
        let tree = self.tree();
        let (tree, _) = self
            .all_exited
            .wait_timeout_while(tree, timeout, |t| !t.tasks.is_empty())
            .unwrap();
        tree.tasks.is_empty()
    }

    /// True the first time `nr` is reported as unsupported.
    pub fn first_unsupported(&self, nr: u64) -> bool {
        self.warned.lock().unwrap().insert(nr)
    }
}
