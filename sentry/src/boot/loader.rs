//! The Loader: one sandbox kernel and the containers and processes running in it.
//!
//! Mirrors gVisor's `runsc/boot/loader.go`. It is the one boot path: the containerd shim drives
//! it over the control channel ([`super::control`]) and `runsc-rs do` in-process
//! ([`super::run_command`]); each shim Task call maps onto one method here:
//! [`Loader::create_container`], [`Loader::start_container`], [`Loader::add_exec`] +
//! [`Loader::execute_async`], [`Loader::signal`], [`Loader::wait_pid`],
//! [`Loader::processes`], [`Loader::destroy_container`].
//!
//! Every process the Loader starts (a container's init or an exec) is a new init-like thread
//! group in the same kernel: its own address space, fd table and credentials.
//!
//! Each container runs in a PID namespace under the kernel's root namespace
//! ([`PidNamespaceSpec`]): its own (its init is PID 1 there) or another container's (a pod's
//! shared one). Every process is tagged with its container (children inherit the tag), so
//! [`Loader::processes`], [`SignalTarget::All`] and [`Loader::destroy_container`] reach all
//! of a container's processes; the PIDs the Loader reports are in the container's namespace.
//!
//! Each container has its own mount namespace: an overlay of its rootfs (read-only lower
//! layer reached through a directory fd, in-memory upper layer) with `/proc`, `/dev`, `/sys`
//! and `/tmp`. Signals go through the kernel's signal delivery.
//!
//! # Lock order
//! `Loader::inner` → kernel locks (`ThreadGroup::state`, `FdTable::files`, ...).
//! `Loader::root` is a leaf, taken alone.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};

use crate::auth::{CapSet, Caps, Creds};
use crate::fs::devpts::DevPts;
use crate::kernel::seccomp::SockFilter;
use crate::kernel::signal::SigInfo;
use crate::kernel::{ExitStatus, FdTable, Kernel, KernelConfig, PidNamespace, ThreadGroup};
use crate::memory::MemoryFile;
use crate::tty::HostTty;
use crate::vfs::host::HostFile;
use crate::vfs::{Caller, FsContext, OpenFile};

/// Errors of Loader calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} not found")]
    NoContainer(String),
    #[error("process {1:?} of container {0:?} not found")]
    NoProcess(String, ProcessRef),
    /// runc's words, which engines look for.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("{0:?} already exists")]
    Exists(String),
    #[error("process {1:?} of container {0:?} was already started")]
    NotCreated(String, ProcessRef),
    #[error("process {1:?} of container {0:?} is not running")]
    NotRunning(String, ProcessRef),
    #[error("invalid process spec: {0}")]
    BadSpec(&'static str),
    #[error("invalid signal {0}")]
    BadSignal(i32),
    #[error("not supported by runsc-rs yet: {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Memory(#[from] crate::memory::Error),
    #[error(transparent)]
    Platform(#[from] platform::Error),
    #[error(transparent)]
    Boot(Box<super::Error>),
    #[error("starting a thread: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Pause(#[from] crate::kernel::freeze::PauseError),
    #[error(transparent)]
    Checkpoint(#[from] crate::kernel::checkpoint::CheckpointError),
    #[error(transparent)]
    Restore(#[from] crate::kernel::restore::RestoreError),
}

impl From<super::Error> for Error {
    fn from(e: super::Error) -> Error {
        match e {
            super::Error::NotFound(cmd) => Error::NotFound(cmd),
            other => Error::Boot(Box::new(other)),
        }
    }
}

/// Which process of a container a call is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessRef {
    /// The container's init process.
    Init,
    /// A process started with exec, by its containerd exec id.
    Exec(String),
}

/// Who receives a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalTarget {
    /// One process (thread group).
    Process(ProcessRef),
    /// Every process of the container.
    All,
}

/// The process part of an OCI spec, as the sandbox needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// `process.capabilities`: capability names per set. None: the default, every
    /// capability for root and none for other users.
    #[serde(default)]
    pub capabilities: Option<SpecCapabilities>,
    pub umask: Option<u32>,
    pub terminal: bool,
    /// `process.rlimits`: the process's initial limits where they differ from the defaults
    /// (for `runsc-rs do`, every limit of the caller).
    #[serde(default)]
    pub rlimits: Vec<SpecRlimit>,
    /// `process.noNewPrivileges`: the process starts with `no_new_privs` set (set-ID bits
    /// and file capabilities then give nothing on execve).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The container's seccomp program ([`ContainerSpec::seccomp`]), given to every process
    /// of the container by the Loader (never sent: an exec process cannot choose its own).
    #[serde(skip)]
    pub seccomp: Option<Arc<[SockFilter]>>,
}

/// One resource limit of a process spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRlimit {
    /// The RLIMIT_* number.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

impl From<&oci_spec::runtime::PosixRlimit> for SpecRlimit {
    /// An entry of an OCI spec's `process.rlimits` (RLIM_INFINITY is u64::MAX there too).
    fn from(r: &oci_spec::runtime::PosixRlimit) -> SpecRlimit {
        use oci_spec::runtime::PosixRlimitType as T;
        let resource = match r.typ() {
            T::RlimitCpu => libc::RLIMIT_CPU,
            T::RlimitFsize => libc::RLIMIT_FSIZE,
            T::RlimitData => libc::RLIMIT_DATA,
            T::RlimitStack => libc::RLIMIT_STACK,
            T::RlimitCore => libc::RLIMIT_CORE,
            T::RlimitRss => libc::RLIMIT_RSS,
            T::RlimitNproc => libc::RLIMIT_NPROC,
            T::RlimitNofile => libc::RLIMIT_NOFILE,
            T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
            T::RlimitAs => libc::RLIMIT_AS,
            T::RlimitLocks => libc::RLIMIT_LOCKS,
            T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
            T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
            T::RlimitNice => libc::RLIMIT_NICE,
            T::RlimitRtprio => libc::RLIMIT_RTPRIO,
            T::RlimitRttime => libc::RLIMIT_RTTIME,
        };
        SpecRlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        }
    }
}

/// The capability sets of an OCI process spec, by name (`CAP_CHOWN`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecCapabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
}

impl From<&oci_spec::runtime::LinuxCapabilities> for SpecCapabilities {
    /// `process.capabilities` of an OCI spec, by name.
    fn from(c: &oci_spec::runtime::LinuxCapabilities) -> SpecCapabilities {
        let names = |set: &Option<oci_spec::runtime::Capabilities>| -> Vec<String> {
            let mut v: Vec<String> = set.iter().flatten().map(ToString::to_string).collect();
            v.sort();
            v
        };
        SpecCapabilities {
            bounding: names(c.bounding()),
            effective: names(c.effective()),
            permitted: names(c.permitted()),
            inheritable: names(c.inheritable()),
            ambient: names(c.ambient()),
        }
    }
}

impl SpecCapabilities {
    /// The sets as bit sets; unknown names are left out with a warning.
    fn caps(&self) -> Caps {
        let set = |names: &[String]| {
            let (set, unknown) = CapSet::from_names(names);
            if !unknown.is_empty() {
                log::warn!("unknown capabilities in the spec, left out: {unknown:?}");
            }
            set
        };
        Caps {
            bounding: set(&self.bounding),
            effective: set(&self.effective),
            permitted: set(&self.permitted),
            inheritable: set(&self.inheritable),
            ambient: set(&self.ambient),
        }
    }
}

/// A container as the sandbox needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The container's root filesystem: the host directory the shim prepared (for logs; the
    /// sandbox reaches it only through the directory fd in [`ContainerFds`]).
    pub rootfs: PathBuf,
    /// `uname` nodename; the first container's hostname names the sandbox.
    pub hostname: Option<String>,
    pub process: ProcessSpec,
    /// Mounts from the OCI spec the sentry provides, in spec order (the sentry's own
    /// `/proc`, `/sys`, `/dev`, `/dev/shm` and `/tmp` are always there).
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// The container's PID namespace.
    #[serde(default)]
    pub pid_namespace: PidNamespaceSpec,
    /// `linux.seccomp` as a BPF program ([`super::oci_seccomp`]), checked again here and
    /// installed on the init and every exec process.
    #[serde(default)]
    pub seccomp: Option<Vec<SockFilter>>,
}

/// Which PID namespace a container's processes live in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PidNamespaceSpec {
    /// A new namespace under the sandbox's root namespace; the container's init is its PID 1.
    #[default]
    New,
    /// The sandbox's root namespace, for `runsc-rs do`: the command is PID 1 there but, like a
    /// program run on the host, not a namespace init that ignores handler-less signals sent
    /// from inside (`kill -9 $$` and `timeout` behave as natively).
    Root,
    /// The namespace of container `id` (the empty id: the sandbox's first container). When
    /// that is the container being created (the first one, or a pod's sandbox container
    /// naming itself), the namespace is new.
    Share(String),
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute path in the container.
    pub destination: String,
    pub kind: MountKind,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host directory, regular file or Unix socket, reached through the next fd of
    /// [`ContainerFds::binds`] (opened by [`super::open_bind_source`]: a directory fd, the
    /// file open for I/O, or the socket's `O_PATH` fd).
    Bind { source: PathBuf, readonly: bool },
    /// A fresh sentry tmpfs whose root has this mode.
    Tmpfs { mode: u32 },
    /// A host directory as a read-only lower layer under an in-memory upper one, like the
    /// rootfs, reached through the next fd of [`ContainerFds::binds`] (an `O_PATH` directory
    /// fd). `runsc-rs do` on the host `/` sends the host's other mounts this way: the rootfs
    /// fd, opened after the pivot, no longer reaches them.
    HostLower { source: PathBuf },
}

impl MountKind {
    /// A tmpfs mount from an OCI mount's options: the root's mode from `mode=` (octal), else
    /// 01777 as Linux's tmpfs.
    pub fn tmpfs(options: &[String]) -> MountKind {
        let mode = options
            .iter()
            .find_map(|o| o.strip_prefix("mode="))
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o1777);
        MountKind::Tmpfs { mode }
    }
}

/// The host directories and files of a container, opened by the shim (directories
/// `O_PATH|O_DIRECTORY`, bind-mounted files for I/O) before they crossed into the sandbox,
/// which has no host filesystem of its own.
#[derive(Debug)]
pub struct ContainerFds {
    pub rootfs: OwnedFd,
    /// One per [`MountKind::Bind`] and [`MountKind::HostLower`] of the spec, in order.
    pub binds: Vec<OwnedFd>,
}

/// Host descriptors that become a process's fds 0, 1 and 2.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// One row of [`Loader::processes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// PID in the container's PID namespace.
    pub pid: i32,
    /// The Loader's process it is; None for a process one of them started.
    pub process: Option<ProcessRef>,
    /// The command (argv\[0\] for the Loader's processes, `comm` for the others).
    pub cmd: String,
}

/// How long a pause waits for every task to reach a safe point.
const PAUSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How the process is isolated before the Loader's kernel exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Not at all, and capabilities are kept: only for tests that boot a Loader in the test
    /// process.
    None,
    /// The containerd shim's sandbox process ([`super::sandbox::enter_without_rootfs`]):
    /// mount, IPC, UTS and network namespaces (`network`), an empty root, dropped
    /// capabilities. Every container's rootfs arrives later as an fd from the shim; the
    /// process ends with its control channel.
    Sandbox { network: super::sandbox::Network },
    /// `runsc-rs do` ([`super::sandbox::enter`]): as `Sandbox`, but `rootfs` is opened inside
    /// the new mount namespace before the pivot, so the tree its fd reaches keeps none of the
    /// host's submounts (the host `/` has `/proc`, `/sys`, ... under it), and the process dies
    /// with its monitor. The fd is the first container's to take ([`Loader::take_root`]).
    SandboxWithRoot(super::sandbox::SandboxConfig),
}

/// The platform a sandbox runs on unless told otherwise: `$RUNSC_RS_PLATFORM` (in the
/// environment of whoever starts it: `runsc-rs`, the shim, the OCI runtime CLI), else systrap.
pub fn default_platform() -> String {
    std::env::var("RUNSC_RS_PLATFORM").unwrap_or_else(|_| "systrap".into())
}

/// How the Loader's kernel is built. The shim and `runsc-rs do` differ only in these inputs.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Platform name (`ptrace`).
    pub platform: String,
    /// Print one line per system call.
    pub strace: bool,
    pub isolation: Isolation,
    /// What the seccomp allowlist does with a violation; `None`: no filter.
    pub seccomp: Option<super::seccomp::Mode>,
    /// The process serves the shim's control channel, so the allowlist adds its system calls
    /// ([`super::seccomp::Allowlist::with_control_channel`]); `runsc-rs do` has no channel and
    /// installs the plain list `runsc-rs syscalls --host` prints.
    pub control_channel: bool,
    /// Test hook (`runsc-rs do --test-only-seccomp-violation`): right after installing the
    /// filter, make a host system call outside the allowlist.
    pub test_seccomp_violation: bool,
    /// Record the system calls applications make, for a learned seccomp profile
    /// ([`Loader::recorded_syscalls`], [`super::profile`]).
    pub record_syscalls: bool,
    /// `--host-uds`: whether the sandbox's AF_UNIX sockets may connect to host sockets in
    /// volumes (`open`) and make host sockets there by bind (`create`, which adds
    /// [`super::seccomp::Allowlist::with_host_uds_create`]'s host calls).
    pub host_uds: crate::net::HostUds,
}

/// A thread group the Loader started.
struct Running {
    /// PID in the container's namespace.
    pid: i32,
    tg: Arc<ThreadGroup>,
    /// Its terminal (`terminal: true`), for SIGWINCH. Weak: the application's fds alone
    /// keep the host pty slave open, so the shim sees the terminal close when they do.
    tty: Option<Weak<HostTty>>,
}

enum ProcessState {
    Created(Stdio),
    Running(Running),
    Exited(ExitStatus),
}

struct Process {
    spec: ProcessSpec,
    state: ProcessState,
}

struct Container {
    /// The container's mount namespace (root at its rootfs) as its init sees it.
    fs: Arc<FsContext>,
    /// The PID namespace its processes live in.
    pidns: Arc<PidNamespace>,
    /// Its `/dev/pts`, where a process's host terminal appears.
    devpts: Arc<DevPts>,
    /// Its seccomp program, for each process it starts.
    seccomp: Option<Arc<[SockFilter]>>,
    processes: HashMap<ProcessRef, Process>,
}

#[derive(Default)]
struct Inner {
    containers: HashMap<String, Container>,
    /// The first container created (the pod's sandbox), for [`PidNamespaceSpec::Share`]
    /// with an empty id.
    first: Option<String>,
}

/// The sandbox's kernel and everything running in it.
pub struct Loader {
    kernel: Arc<Kernel>,
    inner: Mutex<Inner>,
    /// Signalled whenever a process's state becomes `Exited`.
    exited: Condvar,
    /// See [`Loader::take_root`].
    root: Mutex<Option<OwnedFd>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// Creates the memory file, the platform and the kernel.
    ///
    /// # Errors
    /// Host setup failures (memfd, platform).
    pub fn new(config: &LoaderConfig) -> Result<Arc<Loader>, Error> {
        use super::sandbox;
        // Host facts first: after isolation there is no host /proc to read them from.
        crate::procfs::prime_host_info();
        crate::fs::hostfs::read_watch_limits();
        crate::vdso::clock::start();
        let network = match &config.isolation {
            Isolation::Sandbox { network } => *network,
            Isolation::SandboxWithRoot(cfg) => cfg.network,
            Isolation::None => sandbox::Network::None,
        };
        // Before the namespaces change: the host's /proc tells whether this is the host's
        // own network namespace, and taking links needs capabilities dropped below.
        let net = match network {
            sandbox::Network::None => crate::net::config::Network::Loopback,
            // A container's namespace may have only a loopback (`docker --network none`, a
            // pod without CNI links): it then gets the loopback. `runsc-rs do --network
            // sandbox` asked for links explicitly, and says when there is none.
            sandbox::Network::Sandbox => super::netconf::take_links(matches!(
                config.isolation,
                Isolation::SandboxWithRoot(_)
            ))
            .map_err(super::Error::from)?,
            sandbox::Network::Host => crate::net::config::Network::Host {
                config: super::netconf::read_host().map_err(super::Error::from)?,
            },
        };
        let root = match &config.isolation {
            Isolation::None => None,
            Isolation::Sandbox { network } => {
                sandbox::enter_without_rootfs(*network).map_err(super::Error::from)?;
                None
            }
            Isolation::SandboxWithRoot(cfg) => {
                Some(sandbox::enter(cfg).map_err(super::Error::from)?.into_fd())
            }
        };
        let memory = Arc::new(MemoryFile::new()?);
        if config.isolation != Isolation::None {
            sandbox::drop_privileges().map_err(super::Error::from)?;
        }
        let platform = platform::create(&config.platform, memory.fd())?;
        // Before the allowlist, whose inotify rules name the instance's fd.
        crate::fs::hostfs::start_watching();
        let allowlist = if config.control_channel {
            super::seccomp::Allowlist::with_control_channel(&*platform)
        } else {
            super::seccomp::Allowlist::new(&*platform)
        }
        .map_err(super::Error::from)?;
        let allowlist = if matches!(net, crate::net::config::Network::Host { .. }) {
            allowlist.with_host_network()
        } else if matches!(net, crate::net::config::Network::Sandbox { .. }) {
            allowlist.with_port_forwarding()
        } else {
            allowlist
        };
        crate::net::set_host_uds_policy(config.host_uds);
        let allowlist = if config.host_uds.create {
            allowlist.with_host_uds_create()
        } else {
            allowlist
        };
        let kernel = Kernel::new(
            platform,
            memory,
            KernelConfig {
                strace: config.strace,
                hostname: "runsc-rs".into(),
                record_syscalls: config.record_syscalls,
            },
            crate::syscalls::dispatch,
            crate::net::Namespace::new(net),
        );
        crate::fs::hostfs::set_cache_budget();
        crate::vfs::walk::set_dentry_cache_budget();
        // Before any container (and so any address space or application instruction)
        // exists; every thread, stub factory and stub made later inherits the filter.
        match config.seccomp {
            Some(mode) => allowlist.install(mode).map_err(super::Error::from)?,
            None => log::warn!("seccomp: the sandbox runs without its allowlist"),
        }
        if config.test_seccomp_violation {
            log::warn!("seccomp: test hook: calling chroot(2), which is outside the allowlist");
            let _ = nix::unistd::chroot("/");
        }
        Ok(Arc::new(Loader {
            kernel,
            inner: Mutex::new(Inner::default()),
            exited: Condvar::new(),
            root: Mutex::new(root),
        }))
    }

    /// The system-call numbers the sandbox's applications made so far (ascending), when
    /// [`LoaderConfig::record_syscalls`]; the flag says numbers past the recorder's range
    /// were left out.
    pub fn recorded_syscalls(&self) -> Option<(Vec<u64>, bool)> {
        self.kernel.seen_syscalls.as_ref().map(|s| s.numbers())
    }

    /// The rootfs [`Isolation::SandboxWithRoot`] opened, once.
    pub fn take_root(&self) -> Option<OwnedFd> {
        self.root.lock().unwrap().take()
    }

    /// Waits up to `timeout` for every task of the sandbox to leave (after the last
    /// container's init exited, its other processes are being killed); true if they did.
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        self.kernel.wait_all_exited(timeout)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Records container `id`; its init runs on [`Loader::start_container`].
    ///
    /// # Errors
    /// `Exists`, `BadSpec`, `Unsupported` (terminal), `NotFound` (no such executable).
    pub fn create_container(
        &self,
        id: &str,
        mut spec: ContainerSpec,
        fds: ContainerFds,
        stdio: Stdio,
    ) -> Result<(), Error> {
        check_process(&spec.process)?;
        let seccomp: Option<Arc<[SockFilter]>> = match spec.seccomp.take() {
            Some(prog) => {
                crate::kernel::seccomp::validate(&prog)
                    .map_err(|_| Error::BadSpec("the seccomp program is not valid"))?;
                Some(prog.into())
            }
            None => None,
        };
        let pidns = match &spec.pid_namespace {
            PidNamespaceSpec::New => self.kernel.root_pidns.new_child(),
            PidNamespaceSpec::Root => self.kernel.root_pidns.clone(),
            PidNamespaceSpec::Share(other) => {
                let mut inner = self.lock();
                let other = match (other.as_str(), &inner.first) {
                    ("", Some(first)) => first.clone(),
                    _ => other.clone(),
                };
                if other.is_empty() || other == id {
                    // The sandbox's first container, or the pod's own sandbox container:
                    // this one, so the namespace is new.
                    self.kernel.root_pidns.new_child()
                } else {
                    container(&mut inner, &other)?.pidns.clone()
                }
            }
        };
        let (fs, devpts) = container_filesystem(&self.kernel, &spec, fds, &pidns)?;
        // As runc, whose `create` fails for a program that is not there (engines tell a
        // missing command, 127, from a runtime failure by the message create reports).
        let init_fs = process_fs(&fs, &spec.process)?;
        super::find_program(&init_fs, &spec.process.args, &spec.process.env)?;
        let mut inner = self.lock();
        if inner.containers.contains_key(id) {
            return Err(Error::Exists(id.to_owned()));
        }
        inner.first.get_or_insert_with(|| id.to_owned());
        if inner.containers.is_empty() {
            if let Some(h) = spec.hostname.as_ref().filter(|h| !h.is_empty()) {
                h.clone_into(&mut self.kernel.uts.names().hostname);
            }
        }
        let init = Process {
            spec: ProcessSpec {
                seccomp: seccomp.clone(),
                ..spec.process
            },
            state: ProcessState::Created(stdio),
        };
        inner.containers.insert(
            id.to_owned(),
            Container {
                fs,
                pidns,
                devpts,
                seccomp,
                processes: HashMap::from([(ProcessRef::Init, init)]),
            },
        );
        log::info!("container {id} created");
        Ok(())
    }

    /// Starts container `id`'s init; returns its PID in the sandbox.
    ///
    /// # Errors
    /// `NoContainer`, `NotCreated`, load and spawn failures.
    pub fn start_container(self: &Arc<Self>, id: &str) -> Result<i32, Error> {
        self.start(id, &ProcessRef::Init)
    }

    /// Records an exec process in running container `id`; it runs on [`Loader::execute_async`].
    ///
    /// # Errors
    /// `NoContainer`, `NotRunning` (init not running), `Exists`, bad spec, `NotFound`.
    pub fn add_exec(
        &self,
        id: &str,
        exec_id: &str,
        spec: ProcessSpec,
        stdio: Stdio,
    ) -> Result<(), Error> {
        check_process(&spec)?;
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        let spec = ProcessSpec {
            seccomp: c.seccomp.clone(),
            ..spec
        };
        if !matches!(
            c.processes.get(&ProcessRef::Init).map(|p| &p.state),
            Some(ProcessState::Running(_))
        ) {
            return Err(Error::NotRunning(id.to_owned(), ProcessRef::Init));
        }
        process_fs(&c.fs, &spec)?;
        let key = ProcessRef::Exec(exec_id.to_owned());
        // An exec id may be reused once its process has exited (containerd deleted it).
        if c.processes
            .get(&key)
            .is_some_and(|p| !matches!(p.state, ProcessState::Exited(_)))
        {
            return Err(Error::Exists(exec_id.to_owned()));
        }
        c.processes.insert(
            key,
            Process {
                spec,
                state: ProcessState::Created(stdio),
            },
        );
        Ok(())
    }

    /// Starts exec process `exec_id` of container `id`; returns its PID in the sandbox.
    ///
    /// # Errors
    /// `NoContainer`, `NoProcess`, `NotCreated`, load and spawn failures.
    pub fn execute_async(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<i32, Error> {
        self.start(id, &ProcessRef::Exec(exec_id.to_owned()))
    }

    fn start(self: &Arc<Self>, id: &str, which: &ProcessRef) -> Result<i32, Error> {
        self.start_with(id, which, |loader, fs, pidns, devpts, spec, stdio| {
            let terminal = TerminalPlace {
                devpts,
                console: *which == ProcessRef::Init,
            };
            loader.spawn(id, fs, pidns, terminal, spec, stdio)
        })
    }

    /// Starts container `id` from a checkpoint image instead of running its init's program:
    /// the image's processes continue where they stopped ([`crate::kernel::restore`]), in
    /// the container as created from the bundle (its mounts, PID namespace and stdio).
    /// Returns the PID of the image's first process, which stands for init.
    ///
    /// With a terminal, the new one (its node in `/dev/pts` and over `/dev/console`, as
    /// at start) becomes the saved console.
    ///
    /// # Errors
    /// `NoContainer`, `NotCreated`; `Restore` for an image this sandbox cannot continue.
    pub fn restore_container(
        self: &Arc<Self>,
        id: &str,
        state: OwnedFd,
        memory: OwnedFd,
    ) -> Result<i32, Error> {
        use crate::kernel::restore::RestoreTarget;
        let begin = std::time::Instant::now();
        let pid = self.start_with(
            id,
            &ProcessRef::Init,
            |loader, fs, pidns, devpts, spec, mut stdio| {
                let console = if spec.terminal {
                    let slave = stdio
                        .stdin
                        .take()
                        .ok_or(Error::BadSpec("terminal=true without a terminal fd"))?;
                    let tty = HostTty::console(slave);
                    let place = TerminalPlace {
                        devpts,
                        console: true,
                    };
                    terminal_file(fs, place, &tty, spec);
                    Some(tty)
                } else {
                    None
                };
                let target = RestoreTarget {
                    container: id.into(),
                    fs: fs.clone(),
                    pidns: pidns.clone(),
                    stdio: [stdio.stdin, stdio.stdout, stdio.stderr],
                    devpts: Some(devpts.clone()),
                    console: console.clone(),
                };
                let mut state = std::io::BufReader::new(std::fs::File::from(state));
                let mut memory =
                    std::io::BufReader::with_capacity(1 << 20, std::fs::File::from(memory));
                let restored = loader.kernel.restore(&mut state, &mut memory, target)?;
                log::info!(
                    "container {id}: restored {} processes, {} threads",
                    restored.processes,
                    restored.tasks
                );
                Ok(Running {
                    pid: restored.init_pid,
                    tg: restored.init,
                    tty: console.as_ref().map(Arc::downgrade),
                })
            },
        )?;
        log::info!("container {id} restored in {:?}", begin.elapsed());
        Ok(pid)
    }

    /// Starts process `which` of container `id` with `run` (which makes its thread group)
    /// and waits for its end on a reaper thread.
    fn start_with(
        self: &Arc<Self>,
        id: &str,
        which: &ProcessRef,
        run: impl FnOnce(
            &Arc<Self>,
            &Arc<FsContext>,
            &Arc<PidNamespace>,
            &Arc<DevPts>,
            &ProcessSpec,
            Stdio,
        ) -> Result<Running, Error>,
    ) -> Result<i32, Error> {
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        let fs = c.fs.clone();
        let pidns = c.pidns.clone();
        let devpts = c.devpts.clone();
        let p = c
            .processes
            .get_mut(which)
            .ok_or_else(|| Error::NoProcess(id.to_owned(), which.clone()))?;
        let stdio =
            match std::mem::replace(&mut p.state, ProcessState::Exited(ExitStatus::Exited(0))) {
                ProcessState::Created(stdio) => stdio,
                other => {
                    p.state = other;
                    return Err(Error::NotCreated(id.to_owned(), which.clone()));
                }
            };
        let running = match run(self, &fs, &pidns, &devpts, &p.spec, stdio) {
            Ok(r) => r,
            Err(e) => {
                // A process that cannot start is finished, as a failed execve would leave it.
                p.state = ProcessState::Exited(ExitStatus::Exited(127));
                self.exited.notify_all();
                return Err(e);
            }
        };
        let (pid, tg) = (running.pid, running.tg.clone());
        p.state = ProcessState::Running(running);
        drop(inner);
        log::info!("container {id}: {which:?} started as pid {pid}");

        let (loader, id, which) = (self.clone(), id.to_owned(), which.clone());
        std::thread::Builder::new()
            .name(format!("reap-{pid}"))
            .spawn(move || {
                let status = tg.wait();
                loader.finish(&id, &which, pid, status);
            })
            .map_err(Error::Spawn)?;
        Ok(pid)
    }

    /// Records that `pid` (process `which` of `id`) ended with `status`. When a container's
    /// init ends, the rest of the container goes with it (its PID namespace dies).
    fn finish(&self, id: &str, which: &ProcessRef, pid: i32, status: ExitStatus) {
        let mut inner = self.lock();
        let Some(c) = inner.containers.get_mut(id) else {
            return;
        };
        let Some(p) = c.processes.get_mut(which) else {
            return;
        };
        if matches!(&p.state, ProcessState::Running(r) if r.pid == pid) {
            log::info!("container {id}: {which:?} (pid {pid}) exited: {status:?}");
            p.state = ProcessState::Exited(status);
        }
        if *which == ProcessRef::Init {
            self.send_all(id, libc::SIGKILL);
        }
        self.exited.notify_all();
    }

    /// Queues `signo` for thread group `tg`. SIGKILL is forced (as from the kernel: a
    /// namespace's init cannot ignore it); other signals follow the process's dispositions.
    fn send_group(&self, tg: &Arc<ThreadGroup>, signo: i32) {
        let info = SigInfo::from_user(signo, 0, 0, 0);
        self.kernel
            .tree()
            .send_group(tg, info, signo == libc::SIGKILL);
    }

    /// Queues `signo` for process `p` if it runs.
    fn send(&self, p: &Process, signo: i32) {
        if let ProcessState::Running(r) = &p.state {
            self.send_group(&r.tg, signo);
        }
    }

    /// The live processes tagged with container `id`, by global PID.
    fn members(&self, id: &str) -> Vec<Arc<ThreadGroup>> {
        let tree = self.kernel.tree();
        let mut v: Vec<Arc<ThreadGroup>> = tree
            .procs
            .values()
            .filter(|p| p.zombie.is_none() && &*p.tg.container == id)
            .map(|p| p.tg.clone())
            .collect();
        v.sort_by_key(|tg| tg.tgid);
        v
    }

    /// Queues `signo` for every process of container `id`.
    fn send_all(&self, id: &str, signo: i32) {
        for tg in self.members(id) {
            self.send_group(&tg, signo);
        }
    }

    /// Sends `signo` to `target` in container `id`. Signal 0 only checks that the target
    /// exists.
    ///
    /// # Errors
    /// `NoContainer`, `NoProcess`, `NotRunning`, `BadSignal`.
    pub fn signal(&self, id: &str, target: &SignalTarget, signo: i32) -> Result<(), Error> {
        if !(0..=64).contains(&signo) {
            return Err(Error::BadSignal(signo));
        }
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        match target {
            SignalTarget::All => {
                if signo != 0 {
                    drop(inner);
                    self.send_all(id, signo);
                    return Ok(());
                }
            }
            SignalTarget::Process(which) => {
                let p = c
                    .processes
                    .get(which)
                    .ok_or_else(|| Error::NoProcess(id.to_owned(), which.clone()))?;
                if !matches!(p.state, ProcessState::Running(_)) {
                    return Err(Error::NotRunning(id.to_owned(), which.clone()));
                }
                if signo != 0 {
                    self.send(p, signo);
                }
            }
        }
        Ok(())
    }

    /// Sends `signo` to the foreground process group of process `which`'s terminal (the
    /// shim's SIGWINCH after a resize, SIGINT for a typed `^C`, ...).
    ///
    /// # Errors
    /// `NoContainer`, `NoProcess`, `NotRunning`, `BadSignal`; `BadSpec` when it has no
    /// terminal.
    pub fn signal_foreground(&self, id: &str, which: &ProcessRef, signo: i32) -> Result<(), Error> {
        if !(1..=64).contains(&signo) {
            return Err(Error::BadSignal(signo));
        }
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        let p = c
            .processes
            .get(which)
            .ok_or_else(|| Error::NoProcess(id.to_owned(), which.clone()))?;
        let ProcessState::Running(r) = &p.state else {
            return Err(Error::NotRunning(id.to_owned(), which.clone()));
        };
        let tty = r
            .tty
            .as_ref()
            .ok_or(Error::BadSpec("the process has no terminal"))?;
        if let Some(tty) = tty.upgrade() {
            drop(inner);
            tty.signal_foreground(&*self.kernel, signo);
        }
        Ok(())
    }

    /// Blocks until process `which` of container `id` has exited; returns how.
    ///
    /// # Errors
    /// `NoContainer` / `NoProcess`, also when the container is destroyed while waiting.
    pub fn wait_pid(&self, id: &str, which: &ProcessRef) -> Result<ExitStatus, Error> {
        let mut inner = self.lock();
        loop {
            let c = container(&mut inner, id)?;
            let p = c
                .processes
                .get(which)
                .ok_or_else(|| Error::NoProcess(id.to_owned(), which.clone()))?;
            if let ProcessState::Exited(status) = p.state {
                return Ok(status);
            }
            inner = self.exited.wait(inner).unwrap();
        }
    }

    /// Every live process of container `id` (the ones the Loader started and all their
    /// descendants), with PIDs in the container's namespace.
    ///
    /// # Errors
    /// `NoContainer`.
    pub fn processes(&self, id: &str) -> Result<Vec<ProcessInfo>, Error> {
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        let started: Vec<(&ProcessRef, &Process, &Arc<ThreadGroup>)> = c
            .processes
            .iter()
            .filter_map(|(which, p)| match &p.state {
                ProcessState::Running(r) => Some((which, p, &r.tg)),
                _ => None,
            })
            .collect();
        let mut list: Vec<ProcessInfo> = Vec::new();
        for tg in self.members(id) {
            let Some(pid) = c.pidns.id_of(tg.tgid) else {
                continue;
            };
            let info = match started.iter().find(|(_, _, t)| Arc::ptr_eq(t, &tg)) {
                Some((which, p, _)) => ProcessInfo {
                    pid,
                    process: Some((*which).clone()),
                    cmd: p.spec.args.first().cloned().unwrap_or_default(),
                },
                None => ProcessInfo {
                    pid,
                    process: None,
                    cmd: self.comm(&tg),
                },
            };
            list.push(info);
        }
        list.sort_by_key(|p| p.pid);
        Ok(list)
    }

    /// The `comm` of process `tg` (of its first live thread).
    fn comm(&self, tg: &ThreadGroup) -> String {
        let tree = self.kernel.tree();
        let tid = tg.sig().threads.keys().next().copied();
        tid.and_then(|t| tree.tasks.get(&t))
            .map(|h| String::from_utf8_lossy(&h.comm.lock().unwrap()).into_owned())
            .unwrap_or_default()
    }

    /// Kills every process of container `id` and forgets it.
    ///
    /// # Errors
    /// `NoContainer`.
    pub fn destroy_container(&self, id: &str) -> Result<(), Error> {
        let mut inner = self.lock();
        let c = inner
            .containers
            .remove(id)
            .ok_or_else(|| Error::NoContainer(id.to_owned()))?;
        for p in c.processes.values() {
            self.send(p, libc::SIGKILL);
        }
        self.send_all(id, libc::SIGKILL);
        self.exited.notify_all();
        log::info!("container {id} destroyed");
        Ok(())
    }

    /// Pauses the sandbox that runs container `id` ([`crate::kernel::freeze`]): the whole
    /// kernel stops, every container of a pod with it (as gVisor's `runsc pause`).
    ///
    /// # Errors
    /// `NoContainer`; `Pause` when it is already paused or a task did not stop in time.
    pub fn pause(&self, id: &str) -> Result<(), Error> {
        self.known_container(id)?;
        let stopped = self.kernel.pause(PAUSE_TIMEOUT)?;
        log::info!("container {id} paused ({stopped:?})");
        Ok(())
    }

    /// Resumes the sandbox that runs container `id`.
    ///
    /// # Errors
    /// `NoContainer`; `Pause` when it is not paused.
    pub fn resume(&self, id: &str) -> Result<(), Error> {
        self.known_container(id)?;
        self.kernel.resume()?;
        log::info!("container {id} resumed");
        Ok(())
    }

    /// Checkpoints the sandbox that runs container `id`: pauses it (unless it is paused
    /// already), writes `kernel.json` to `state` and the memory to `memory`
    /// ([`crate::kernel::checkpoint`]). The kernel is resumed afterwards if `leave_running`
    /// or if the checkpoint failed (and it was not paused before); otherwise it stays
    /// paused for the caller to end it, so nothing runs after the image was taken.
    ///
    /// # Errors
    /// `NoContainer`; `Pause`; `Checkpoint` for state the image cannot hold and I/O errors.
    pub fn checkpoint(
        &self,
        id: &str,
        state: OwnedFd,
        memory: OwnedFd,
        leave_running: bool,
    ) -> Result<crate::kernel::checkpoint::Summary, Error> {
        self.known_container(id)?;
        let was_paused = self.kernel.is_paused();
        if !was_paused {
            self.kernel.pause(PAUSE_TIMEOUT)?;
        }
        let start = std::time::Instant::now();
        let mut state = std::io::BufWriter::new(std::fs::File::from(state));
        let mut memory = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::from(memory));
        let result = self.kernel.checkpoint(&mut state, &mut memory);
        if !was_paused && (leave_running || result.is_err()) {
            let _ = self.kernel.resume();
        }
        let summary = result?;
        log::info!(
            "container {id} checkpointed in {:?}: {summary:?}",
            start.elapsed()
        );
        Ok(summary)
    }

    fn known_container(&self, id: &str) -> Result<(), Error> {
        if self.lock().containers.contains_key(id) {
            Ok(())
        } else {
            Err(Error::NoContainer(id.to_owned()))
        }
    }

    /// True when no container is left.
    pub fn is_empty(&self) -> bool {
        self.lock().containers.is_empty()
    }

    /// Starts `spec` as a new thread group of container `id`, whose filesystem is `fs` and
    /// PID namespace `pidns`; a terminal appears as `terminal` says.
    fn spawn(
        &self,
        id: &str,
        fs: &Arc<FsContext>,
        pidns: &Arc<PidNamespace>,
        terminal: TerminalPlace<'_>,
        spec: &ProcessSpec,
        stdio: Stdio,
    ) -> Result<Running, Error> {
        let fds = Arc::new(FdTable::new());
        let ctty = if spec.terminal {
            // The terminal arrives as stdin and is the process's stdin, stdout and stderr.
            let slave = stdio
                .stdin
                .ok_or(Error::BadSpec("terminal=true without a terminal fd"))?;
            let tty = if terminal.console {
                HostTty::console(slave)
            } else {
                HostTty::new(slave)
            };
            let file = terminal_file(fs, terminal, &tty, spec);
            for fd in 0..3 {
                fds.install_at(fd, file.clone(), false);
            }
            Some(tty)
        } else {
            let streams = [
                (stdio.stdin, libc::O_RDONLY),
                (stdio.stdout, libc::O_WRONLY),
                (stdio.stderr, libc::O_WRONLY),
            ];
            for (fd, (host, flags)) in (0..).zip(streams) {
                if let Some(host) = host {
                    let file = OpenFile::new(Arc::new(HostFile::donated(host)), flags as u32);
                    fds.install_at(fd, file, false);
                }
            }
            None
        };
        let mut creds = Creds::new(spec.uid, spec.gid, &spec.additional_gids, CapSet::FULL);
        if let Some(c) = &spec.capabilities {
            // As runc: the spec's sets are installed, then the program's execve transforms
            // them (root gets its bounding set permitted, others keep only ambient ones).
            creds = creds.with_spec_caps(c.caps()).after_exec();
        }
        let started = super::start_process(
            &self.kernel,
            super::ProcessArgs {
                argv: &spec.args,
                env: &spec.env,
                creds,
                fds,
                fs: process_fs(fs, spec)?,
                ctty: ctty.clone(),
                pidns: pidns.clone(),
                container: id.into(),
                rlimits: &spec.rlimits,
                no_new_privs: spec.no_new_privileges,
                seccomp: spec.seccomp.as_deref(),
            },
        )?;
        Ok(Running {
            pid: pidns.id_of(started.pid).unwrap_or(0),
            tg: started.tg,
            tty: ctty.as_ref().map(Arc::downgrade),
        })
    }
}

/// Where a process's host terminal appears in its container.
#[derive(Clone, Copy)]
struct TerminalPlace<'a> {
    /// The container's `/dev/pts`.
    devpts: &'a DevPts,
    /// Also bound over `/dev/console` (runc does that for the init's terminal).
    console: bool,
}

/// The open file of a process's host terminal: opened as node `/dev/pts/N` of the
/// container's devpts, as runc's console is a pty of the container's own devpts (so `tty`
/// and `/proc/self/fd/0` name it, and `stat` of the path is `fstat` of the fd). Without
/// that node (the numbers used up, `/dev/pts` covered) the terminal has no path.
fn terminal_file(
    fs: &FsContext,
    place: TerminalPlace<'_>,
    tty: &Arc<HostTty>,
    spec: &ProcessSpec,
) -> Arc<OpenFile> {
    let flags = libc::O_RDWR as u32;
    let opened = place
        .devpts
        .add_host_terminal(tty, spec.uid, spec.gid)
        .and_then(|n| {
            let cx = Caller::kernel();
            let d = fs.resolve(&cx, format!("/dev/pts/{n}").as_bytes())?;
            let ops = d.inode.open(&cx, flags)?;
            if place.console {
                if let Err(e) = super::bind_console(fs, d.inode.clone()) {
                    log::debug!("binding the terminal over /dev/console: {e}");
                }
            }
            Ok(OpenFile::with_dentry(ops, flags, d))
        });
    opened.unwrap_or_else(|e| {
        log::debug!("the terminal has no /dev/pts node: {e}");
        OpenFile::new(tty.clone(), flags)
    })
}

/// Destinations the sentry always provides itself; the spec's mounts there (containerd's
/// default spec has a tmpfs at `/dev`, for one) are left to the sentry's.
const SENTRY_MOUNTS: [&str; 4] = ["/proc", "/sys", "/dev", "/dev/shm"];

/// The container's mount namespace: an overlay over its rootfs fd, the sentry's standard
/// mounts, then the spec's tmpfs and bind mounts.
///
/// # Errors
/// `BadSpec` when the bind mounts and their fds disagree; mount failures.
fn container_filesystem(
    kernel: &Arc<Kernel>,
    spec: &ContainerSpec,
    fds: ContainerFds,
    pidns: &Arc<PidNamespace>,
) -> Result<(Arc<FsContext>, Arc<DevPts>), Error> {
    let mut binds = fds.binds.into_iter();
    let mut lowers = Vec::new();
    let mut tmpfs = Vec::new();
    let mut volumes = Vec::new();
    for m in &spec.mounts {
        let dest = super::normalize_guest(&m.destination);
        let provided = SENTRY_MOUNTS.contains(&dest.as_str());
        let over_sentry = provided || dest == "/";
        match &m.kind {
            MountKind::Tmpfs { .. } if over_sentry => {
                log::debug!("tmpfs at {dest}: the sentry's own mount serves it");
            }
            MountKind::Tmpfs { mode } => tmpfs.push((dest, *mode)),
            MountKind::Bind { source, readonly } => {
                let fd = next_fd(&mut binds)?;
                if over_sentry {
                    log::info!("bind mount over the sentry's {dest} ignored");
                    continue;
                }
                let volume = super::Volume {
                    host: source.clone(),
                    guest: dest,
                    readonly: *readonly,
                };
                volumes.push((volume, fd));
            }
            MountKind::HostLower { .. } => {
                let fd = next_fd(&mut binds)?;
                if over_sentry {
                    log::info!("host lower layer over the sentry's {dest} ignored");
                    continue;
                }
                lowers.push((dest, fd));
            }
        }
    }
    if binds.next().is_some() {
        return Err(Error::BadSpec("more bind mount fds than bind mounts"));
    }
    let (fs, devpts) = super::build_filesystem(
        &kernel.memory,
        fds.rootfs,
        lowers,
        &tmpfs,
        volumes,
        crate::procfs::new_proc(Arc::downgrade(kernel), pidns.clone()),
        &kernel.notify,
    )?;
    // The kernel's cgroup hierarchy where programs look for it (systemd, JVMs and Go
    // runtimes size themselves from it), as gVisor provides.
    fs.ns.mount(
        b"/sys/fs/cgroup",
        crate::cgroupfs::new_root(kernel, kernel.cgroups.root().clone()),
        "cgroup2",
        "cgroup2",
        false,
    );
    Ok((fs, devpts))
}

/// The fd of the spec's next bind mount or host lower layer.
fn next_fd(binds: &mut impl Iterator<Item = OwnedFd>) -> Result<OwnedFd, Error> {
    binds
        .next()
        .ok_or(Error::BadSpec("fewer bind mount fds than bind mounts"))
}

/// The filesystem context of a new process of the container: its own cwd (from the spec)
/// and umask in the container's mount namespace.
///
/// # Errors
/// The spec's cwd does not exist or is not a directory.
fn process_fs(fs: &FsContext, spec: &ProcessSpec) -> Result<Arc<FsContext>, Error> {
    let own = fs.fork();
    own.swap_umask(spec.umask.unwrap_or(0o022));
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    let d = own
        .resolve(&Caller::kernel(), cwd.as_bytes())
        .map_err(|_| Error::BadSpec("cwd does not exist in the container"))?;
    if d.inode.file_type() != Ok(crate::vfs::FileType::Directory) {
        return Err(Error::BadSpec("cwd is not a directory"));
    }
    own.set_cwd(d);
    Ok(own)
}

fn container<'a>(inner: &'a mut Inner, id: &str) -> Result<&'a mut Container, Error> {
    inner
        .containers
        .get_mut(id)
        .ok_or_else(|| Error::NoContainer(id.to_owned()))
}

fn check_process(spec: &ProcessSpec) -> Result<(), Error> {
    if spec.args.first().is_none_or(String::is_empty) {
        return Err(Error::BadSpec("args must not be empty"));
    }
    // As runc, whose setrlimit(2) refuses these.
    for r in &spec.rlimits {
        if r.resource as usize >= crate::kernel::thread_group::RLIM_NLIMITS {
            return Err(Error::BadSpec("rlimits: unknown resource"));
        }
        if r.soft > r.hard {
            return Err(Error::BadSpec("rlimits: a soft limit above its hard limit"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str]) -> ProcessSpec {
        ProcessSpec {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/usr/bin:/sbin".into()],
            cwd: "/".into(),
            ..ProcessSpec::default()
        }
    }

    #[test]
    fn empty_args_are_refused() {
        assert!(check_process(&spec(&["sh"])).is_ok());
        assert!(matches!(check_process(&spec(&[])), Err(Error::BadSpec(_))));
    }

    #[test]
    fn rlimits_runc_would_refuse_are_refused() {
        let with = |resource, soft, hard| ProcessSpec {
            rlimits: vec![SpecRlimit {
                resource,
                soft,
                hard,
            }],
            ..spec(&["sh"])
        };
        assert!(check_process(&with(libc::RLIMIT_NOFILE, 10, 10)).is_ok());
        assert!(matches!(
            check_process(&with(libc::RLIMIT_NOFILE, 11, 10)),
            Err(Error::BadSpec(_))
        ));
        assert!(matches!(
            check_process(&with(16, 1, 1)),
            Err(Error::BadSpec(_))
        ));
    }

    /// A loader on the ptrace platform with no isolation, for the tests that run busybox on
    /// the host's `/`; None (after a SKIPPED line) without a static /bin/busybox.
    fn busybox_loader() -> Option<Arc<Loader>> {
        if !std::path::Path::new("/bin/busybox").is_file() {
            println!("SKIPPED: no static /bin/busybox");
            return None;
        }
        let config = LoaderConfig {
            platform: "ptrace".into(),
            strace: false,
            isolation: Isolation::None,
            seccomp: None,
            control_channel: false,
            test_seccomp_violation: false,
            record_syscalls: false,
            host_uds: crate::net::HostUds::DEFAULT,
        };
        Some(Loader::new(&config).unwrap())
    }

    /// Creates and starts container `id` running `script` under busybox sh on the host's
    /// `/`; returns the read end of its stdout.
    fn run(loader: &Arc<Loader>, id: &str, ns: PidNamespaceSpec, script: &str) -> OwnedFd {
        let process = spec(&["/bin/busybox", "sh", "-c", script]);
        run_process(loader, id, ns, process)
    }

    /// [`run`] for a prepared process spec.
    fn run_process(
        loader: &Arc<Loader>,
        id: &str,
        ns: PidNamespaceSpec,
        process: ProcessSpec,
    ) -> OwnedFd {
        let root = super::super::sandbox::RootFs::open(std::path::Path::new("/"))
            .unwrap()
            .into_fd();
        let (r, w) = nix::unistd::pipe().unwrap();
        let c = ContainerSpec {
            rootfs: "/".into(),
            hostname: None,
            process,
            mounts: Vec::new(),
            pid_namespace: ns,
            seccomp: None,
        };
        let fds = ContainerFds {
            rootfs: root,
            binds: Vec::new(),
        };
        let stdio = Stdio {
            stdout: Some(w),
            ..Stdio::default()
        };
        loader.create_container(id, c, fds, stdio).unwrap();
        loader.start_container(id).unwrap();
        r
    }

    /// Reads `fd` until `want` appears in it (or EOF); returns what was read.
    fn read_until(fd: &OwnedFd, want: &str) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&out).contains(want) {
            match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fd), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn the_specs_capabilities_and_groups_reach_the_process() {
        let Some(loader) = busybox_loader() else {
            return;
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut process = spec(&[
            "/bin/busybox",
            "grep",
            "-E",
            "^(Groups|Cap)",
            "/proc/self/status",
        ]);
        process.additional_gids = vec![20, 10];
        process.capabilities = Some(SpecCapabilities {
            bounding: names(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            effective: names(&["CAP_CHOWN"]),
            permitted: names(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]),
            inheritable: names(&["CAP_NET_BIND_SERVICE"]),
            ambient: names(&["CAP_NET_BIND_SERVICE", "CAP_KILL"]),
        });
        let out = run_process(&loader, "caps", PidNamespaceSpec::New, process);
        let text = read_until(&out, "CapAmb");
        // After the execve of grep as root: permitted is bounding | inheritable, effective
        // the same; the ambient CAP_KILL was dropped as neither permitted nor inheritable.
        assert_eq!(
            text.lines().take(5).collect::<Vec<_>>(),
            [
                "Groups:\t10 20 ",
                "CapInh:\t0000000000000400",
                "CapPrm:\t0000000000000421",
                "CapEff:\t0000000000000421",
                "CapBnd:\t0000000000000421",
            ],
            "{text:?}"
        );
        assert!(text.contains("CapAmb:\t0000000000000400"), "{text:?}");
    }

    #[test]
    fn containers_have_their_own_pid_namespaces_unless_shared() {
        let Some(loader) = busybox_loader() else {
            return;
        };
        // a: a shell with two children, all in a's new namespace.
        let a = run(
            &loader,
            "a",
            PidNamespaceSpec::New,
            "/bin/busybox sleep 30 & /bin/busybox sleep 30 & echo A $$; wait",
        );
        assert!(
            read_until(&a, "\n").starts_with("A 1\n"),
            "a's init is PID 1"
        );
        let probe = |who: &str| {
            format!(
                "echo {who} $$ $PPID /proc/[0-9]*; kill -0 2 2>/dev/null; echo kill=$?; \
                 read -r pid rest </proc/self/stat; echo self=$pid; \
                 echo ns=$(/bin/busybox readlink /proc/1/ns/pid)"
            )
        };
        // b: a namespace of its own: only itself, PID 1, and a's PID 2 is not there.
        let b = run(&loader, "b", PidNamespaceSpec::New, &probe("B"));
        let b_out = read_until(&b, "]\n");
        assert!(
            b_out.starts_with("B 1 0 /proc/1\nkill=1\nself=1"),
            "b sees only itself: {b_out:?}"
        );
        // c: a's namespace: a's three processes and itself (the fourth).
        let c = run(
            &loader,
            "c",
            PidNamespaceSpec::Share("a".into()),
            &probe("C"),
        );
        let c_out = read_until(&c, "]\n");
        assert!(
            c_out.starts_with("C 4 0 /proc/1 /proc/2 /proc/3 /proc/4\nkill=0\nself=4"),
            "c shares a's namespace: {c_out:?}"
        );
        let ns = |out: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix("ns=pid:["))
                .map(str::to_owned)
        };
        assert!(
            ns(&b_out).is_some() && ns(&c_out).is_some(),
            "{b_out:?} {c_out:?}"
        );
        assert_ne!(
            ns(&b_out),
            ns(&c_out),
            "b's namespace is not a's: {c_out:?}"
        );
        assert_eq!(
            loader.wait_pid("b", &ProcessRef::Init).unwrap(),
            ExitStatus::Exited(0)
        );
        assert_eq!(
            loader.wait_pid("c", &ProcessRef::Init).unwrap(),
            ExitStatus::Exited(0)
        );

        // a's children count as a's processes, with PIDs in a's namespace.
        let procs = loader.processes("a").unwrap();
        let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 2, 3], "{procs:?}");
        assert_eq!(procs[0].process, Some(ProcessRef::Init));
        assert_eq!(
            (procs[1].process.clone(), procs[1].cmd.as_str()),
            (None, "busybox")
        );
        assert!(matches!(
            loader.create_container(
                "d",
                ContainerSpec {
                    rootfs: "/".into(),
                    hostname: None,
                    process: spec(&["/bin/busybox", "true"]),
                    mounts: Vec::new(),
                    pid_namespace: PidNamespaceSpec::Share("nope".into()),
                    seccomp: None,
                },
                ContainerFds {
                    rootfs: super::super::sandbox::RootFs::open(std::path::Path::new("/"))
                        .unwrap()
                        .into_fd(),
                    binds: Vec::new(),
                },
                Stdio::default(),
            ),
            Err(Error::NoContainer(_))
        ));
        // Every process of a, children included, goes with SignalTarget::All.
        loader
            .signal("a", &SignalTarget::All, libc::SIGKILL)
            .unwrap();
        assert_eq!(
            loader.wait_pid("a", &ProcessRef::Init).unwrap(),
            ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false
            }
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !loader.processes("a").unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "a's children survive");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for id in ["a", "b", "c"] {
            loader.destroy_container(id).unwrap();
        }
    }
}
