//! Isolation of the sandbox process: namespaces, an empty root, capabilities.
//!
//! The sentry is the attack surface, so the process it runs in is shaped to reach almost
//! nothing of the host even if an application takes it over:
//!
//! - **Namespaces.** `runsc-rs do` (the *monitor*, on the host side) unshares a PID namespace
//!   for its children (and a user namespace first when it is not root) and re-executes itself
//!   as the sandbox process ([`spawn`]). That process is PID 1 of the new PID namespace; it
//!   unshares mount, IPC, UTS and network namespaces itself ([`enter`]). Every other process
//!   of the namespace is a direct child of the sentry (ptrace stub factories are forked by it,
//!   stubs are cloned with `CLONE_PARENT`) and the platform reaps them, so no orphan is ever
//!   adopted by our PID 1. When the sentry exits the kernel kills the whole namespace.
//! - **Empty root.** The rootfs (the host `/` for `do`) is opened as an `O_PATH` directory fd,
//!   then the process `pivot_root`s into an empty read-only tmpfs and detaches the old root.
//!   The rootfs is reached only through that fd ([`RootFs`]); the host's submounts (`/proc`,
//!   `/sys`, `/dev`...) are disconnected from the detached tree, so no host `/proc` is visible.
//! - **Capabilities.** [`drop_privileges`] keeps only what fd-relative filesystem access
//!   (directfs) needs, empties the bounding and ambient sets and sets `no_new_privs`.
//!
//! The seccomp allowlist ([`super::seccomp`]) is the last layer, installed right before the
//! first application instruction.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;
use rustix::fs::{Mode, OFlags};
use rustix::thread::{CapabilitySet, CapabilitySets};

/// Errors setting up the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox setup: {step}: {source}")]
    Setup { step: &'static str, source: Errno },
    #[error("starting the sandbox process: {0}")]
    Spawn(std::io::Error),
    #[error("waiting for the sandbox process: {0}")]
    Wait(Errno),
}

fn step(step: &'static str) -> impl FnOnce(Errno) -> Error {
    move |source| Error::Setup { step, source }
}

fn rustix_step(name: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |e| Error::Setup {
        step: name,
        source: Errno::from_raw(e.raw_os_error()),
    }
}

/// The network the sandbox process lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// A new, empty network namespace (only a down loopback): no host networking at all; the
    /// sentry's stack offers loopback only.
    #[default]
    None,
    /// The network namespace the process was started in, kept, with its links taken by the
    /// sentry's own stack (`--network sandbox`, [`super::netconf::take_links`]): a pod's
    /// when the shim starts the sandbox in the namespace the OCI spec names (CNI set it up,
    /// and tools find the pod's network through the sandbox PID's namespace).
    Sandbox,
    /// The network namespace the process was started in, kept as is, its sockets host
    /// sockets (`--network host`, hostinet).
    Host,
}

impl Network {
    /// Its name on command lines (`--network NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Sandbox => "sandbox",
            Network::Host => "host",
        }
    }

    /// The network named `name` (see [`Network::name`]).
    pub fn from_name(name: &str) -> Option<Network> {
        [Network::None, Network::Sandbox, Network::Host]
            .into_iter()
            .find(|n| n.name() == name)
    }
}

/// How the sandbox process is isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The directory the application sees as `/` (the host `/` for `runsc-rs do`).
    pub rootfs: PathBuf,
    pub network: Network,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            rootfs: PathBuf::from("/"),
            network: Network::None,
        }
    }
}

/// How the sandbox process ended, as the monitor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxExit {
    /// The sandbox exited with this code (the application's shell code: 128+N for signals).
    Exited(i32),
    /// The sandbox process itself was killed by this host signal (SIGSYS: seccomp violation).
    Killed(i32),
    /// The monitor got this signal and killed the sandbox.
    Interrupted(i32),
}

impl SandboxExit {
    /// The exit code of `runsc-rs do` for this outcome (shell convention).
    pub fn shell_code(self) -> i32 {
        match self {
            SandboxExit::Exited(code) => code,
            SandboxExit::Killed(sig) | SandboxExit::Interrupted(sig) => 128 + sig,
        }
    }
}

/// Signals that end the sandbox when the monitor receives them. The sentry is PID 1 of its
/// namespace and the kernel drops signals without a handler sent to it, so the monitor turns
/// them into a SIGKILL of the whole sandbox.
const TERMINATING: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Monitor side: runs `exe args` (this binary in its sandbox role) as PID 1 of a new PID
/// namespace and waits for it. stdio and the environment are inherited. Returns how it ended
/// and its host pid.
///
/// Call while the process is single-threaded: `unshare(CLONE_NEWUSER)` demands it, and after
/// `unshare(CLONE_NEWPID)` the caller can no longer create threads.
///
/// # Errors
/// The namespaces cannot be created or the process cannot be started.
pub fn spawn(exe: &Path, args: &[OsString]) -> Result<(SandboxExit, u32), Error> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    if !uid.is_root() {
        // Unprivileged: a user namespace in which we are root lets us create the others.
        unshare(CloneFlags::CLONE_NEWUSER).map_err(step("unshare(CLONE_NEWUSER)"))?;
        write_id_maps(uid.as_raw(), gid.as_raw())?;
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for sig in TERMINATING {
        mask.add(sig);
    }
    // Blocked here so they queue for `wait` below (and a thread started here inherits the
    // mask); std's spawn gives the child an empty mask.
    mask.thread_block().map_err(step("sigprocmask"))?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(step("unshare(CLONE_NEWPID)"))?;

    let mut child = Command::new(exe).args(args).spawn().map_err(Error::Spawn)?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut interrupted = None;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Wait(Errno::from_raw(e.raw_os_error().unwrap_or(libc::ECHILD))))?
        {
            let exit = match (interrupted, status.code(), status.signal()) {
                (Some(sig), _, _) => SandboxExit::Interrupted(sig),
                (None, Some(code), _) => SandboxExit::Exited(code),
                (None, None, Some(sig)) => SandboxExit::Killed(sig),
                (None, None, None) => SandboxExit::Exited(128),
            };
            return Ok((exit, child.id()));
        }
        let sig = mask.wait().map_err(Error::Wait)?;
        if sig != Signal::SIGCHLD && interrupted.is_none() {
            log::info!("monitor: {sig} received, killing the sandbox");
            interrupted = Some(sig as i32);
            // Fails only if the child is already gone, which the next try_wait sees.
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// The holder's name (its `comm`, as `ps` and /proc/PID/comm show it).
pub const HOLDER_NAME: &std::ffi::CStr = c"watch-holder";

/// The sandbox's option naming the instance's descriptor it inherits ([`WatchHolder::fd`]).
pub const WATCH_FD_ARG: &str = "--hostfs-watch-fd";

/// Spawner side, shared by [`WatchHolder`] and [`KeptWatch`]: a sandbox's hostfs inotify
/// instance (see [`crate::fs::hostfs::WATCH_ENV`]), made before the sandbox, which inherits it
/// and finds its number after [`WATCH_FD_ARG`].
#[derive(Debug)]
struct SandboxInstance(OwnedFd);

impl SandboxInstance {
    /// Makes the instance and its reserve (`crate::fs::hostfs::HostInstance`), whose closes
    /// can wait for the host too: each owner decides where the reserve goes. None when
    /// watching is off or the host user has too few instances left.
    fn new() -> Option<(SandboxInstance, Vec<OwnedFd>)> {
        let made = crate::fs::hostfs::watch_instance_for_sandbox()?;
        Some((SandboxInstance(made.fd), made.reserve))
    }

    fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    /// The sandbox's options naming the instance ([`WATCH_FD_ARG`]).
    fn sandbox_args(&self) -> [String; 2] {
        [WATCH_FD_ARG.to_string(), self.fd().to_string()]
    }
}

/// Monitor side: the hostfs inotify instance of a sandbox (see
/// [`crate::fs::hostfs::WATCH_ENV`]), made before the sandbox and passed to it by
/// inheritance, and the holder process that keeps a reference to it and closes the last one,
/// after the monitor exited. Closing an instance with watches waits for the host's SRCU grace
/// period; the holder takes that wait off the sandbox's exit and the monitor's, which are
/// what callers wait for. The holder is a fork of this process that execs nothing
/// ([`platform::fork_fd_holder`], named [`HOLDER_NAME`]): it shares this process's pages and
/// costs only the few either side writes afterwards. It holds the instance and its reserve
/// from its first instruction (so no close of the monitor's is the last), keeps no other
/// descriptor of ours (a caller waiting for the end of a pipe it gave us must not wait for
/// the holder), and exits when its pipe from this process reaches its end, which the
/// monitor's exit does; once orphaned, the nearest subreaper or init reaps it.
#[derive(Debug)]
pub struct WatchHolder {
    /// Dropped by [`WatchHolder::release`], once the sandbox has its copy.
    instance: SandboxInstance,
    /// The write end of the holder's pipe: it closes when this process exits.
    to_holder: OwnedFd,
}

impl WatchHolder {
    /// Makes the instance (with its reserve) and forks the holder; None when watching is off,
    /// the host user has too few instances left or no holder could be made (the sandbox then
    /// makes its own instance). Call before this process enters the sandbox's PID namespace
    /// (whose end kills every process in it) or joins a cgroup the holder must not be in.
    pub fn new() -> Option<WatchHolder> {
        let (instance, reserve) = SandboxInstance::new()?;
        let (holders_end, to_holder) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .inspect_err(|e| log::info!("hostfs: no pipe to a watch holder ({e})"))
            .ok()?;
        let keep: Vec<BorrowedFd<'_>> = std::iter::once(&instance.0)
            .chain(&reserve)
            .map(AsFd::as_fd)
            .collect();
        platform::fork_fd_holder(&keep, holders_end.as_fd(), HOLDER_NAME)
            .inspect_err(|e| log::info!("hostfs: no holder for the inotify instance ({e})"))
            .ok()?;
        // Our copies of the reserve and of the pipe's read end go now: the holder's stay.
        Some(WatchHolder {
            instance,
            to_holder,
        })
    }

    /// The instance's descriptor, which the sandbox inherits and takes
    /// ([`adopt_watch`]).
    pub fn fd(&self) -> i32 {
        self.instance.fd()
    }

    /// The sandbox's options naming the instance ([`WATCH_FD_ARG`]).
    pub fn sandbox_args(&self) -> [String; 2] {
        self.instance.sandbox_args()
    }

    /// Once the sandbox was spawned (it holds its copy): drops this process's reference. The
    /// holder's stay, the last; its pipe closes when this process exits, and only then the
    /// holder exits.
    pub fn release(self) {
        drop(self.instance);
        std::mem::forget(self.to_holder);
    }
}

/// The descriptor `args` name after [`WATCH_FD_ARG`], if they do (for [`adopt_watch`]).
pub fn watch_fd_arg(args: &[String]) -> Option<i32> {
    let i = args.iter().position(|a| a == WATCH_FD_ARG)?;
    args.get(i + 1)?.parse().ok()
}

/// Sandbox side, before anything forks: takes the inherited instance `fd` names, if it names
/// one ([`crate::fs::hostfs::adopt_watch_instance`]). Every sandbox entry calls it: `do`'s
/// with its parsed option, the OCI CLI's and the shim's through [`watch_fd_arg`].
pub fn adopt_watch(fd: Option<i32>) {
    if let Some(fd) = fd {
        crate::fs::hostfs::adopt_watch_instance(fd);
    }
}

/// Spawner side, for a spawner that outlives its sandbox (the containerd shim): the sandbox's
/// hostfs inotify instance, made here and inherited as [`WatchHolder`]'s is, with no holder
/// process: this process keeps a reference and closes it from a thread of its own when
/// dropped (once the sandbox is gone), so neither the sandbox's exit nor anyone waiting for
/// it waits for the host's SRCU grace period that last close takes.
#[derive(Debug)]
pub struct KeptWatch {
    /// Taken by the drop.
    instance: Option<SandboxInstance>,
}

impl KeptWatch {
    /// Makes the instance; None when watching is off or the host user has too few instances
    /// left. The reserve that proved the latter is closed at once, off this thread.
    pub fn new() -> Option<KeptWatch> {
        let (instance, reserve) = SandboxInstance::new()?;
        close_off_thread(reserve);
        Some(KeptWatch {
            instance: Some(instance),
        })
    }

    /// The sandbox's options naming the instance it inherits ([`WATCH_FD_ARG`]).
    pub fn sandbox_args(&self) -> Vec<String> {
        self.instance
            .iter()
            .flat_map(SandboxInstance::sandbox_args)
            .collect()
    }

    /// Once the sandbox was spawned: this process's copy becomes close-on-exec, so no later
    /// child of this process inherits it.
    pub fn spawned(&self) {
        if let Some(instance) = &self.instance {
            let _ = nix::fcntl::fcntl(
                instance.fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
    }
}

impl Drop for KeptWatch {
    fn drop(&mut self) {
        close_off_thread(self.instance.take().map(|i| i.0).into_iter().collect());
    }
}

/// Closes `fds` from a new thread (inline if none can be made: a failed spawn drops the
/// closure, and the descriptors with it, here): closing an inotify instance can wait for the
/// host's mark reaper or an SRCU grace period.
fn close_off_thread(fds: Vec<OwnedFd>) {
    if fds.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("watch-close".into())
        .spawn(move || drop(fds));
}

/// The kernel's audit records of seccomp actions (`type=1326`), read from `/dev/kmsg`: how the
/// monitor names the system call that killed the sandbox, or those a `--debug` run logged.
/// Best effort: without access to the kernel log it reports nothing.
#[derive(Debug)]
pub struct KernelLog {
    file: Option<std::fs::File>,
}

impl KernelLog {
    /// Starts reading at the current end of the kernel log.
    pub fn open() -> KernelLog {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok();
        if let Some(f) = &file {
            // Skips the records already there.
            let _ = rustix::fs::seek(f, rustix::fs::SeekFrom::End(0));
        }
        KernelLog { file }
    }

    /// Numbers of the system calls the kernel logged a seccomp action for, for process `pid`
    /// (host pid), in order of first appearance.
    pub fn seccomp_syscalls(&mut self, pid: u32) -> Vec<u64> {
        let Some(file) = &mut self.file else {
            return Vec::new();
        };
        let pid_field = format!(" pid={pid} ");
        let mut found = Vec::new();
        let mut record = [0u8; 8192];
        loop {
            match file.read(&mut record) {
                Ok(0) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(&record[..n]);
                    if !text.contains("type=1326") || !text.contains(&pid_field) {
                        continue;
                    }
                    let nr = text
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("syscall="))
                        .and_then(|n| n.parse().ok());
                    if let Some(nr) = nr {
                        if !found.contains(&nr) {
                            found.push(nr);
                        }
                    }
                }
                // EPIPE: records were overwritten under us; the read position moved on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        found
    }
}

/// Maps our own uid/gid to root in the fresh user namespace.
fn write_id_maps(uid: u32, gid: u32) -> Result<(), Error> {
    let write = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| Error::Setup {
            step: "writing user namespace id maps",
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)),
        })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))
}

/// The container's root directory, held as an `O_PATH` fd: the only way the sandbox process
/// reaches files. The sentry's hostfs resolves paths under it one component at a time with
/// `O_NOFOLLOW` (symbolic links are followed by the sentry and never leave the root), the
/// way the seccomp rules for `openat` expect.
#[derive(Debug)]
pub struct RootFs {
    fd: OwnedFd,
}

impl RootFs {
    /// Opens `path` of the host as the root.
    ///
    /// # Errors
    /// `path` is not a directory we can open.
    pub fn open(path: &Path) -> Result<RootFs, Error> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(rustix_step("opening the rootfs"))?;
        Ok(RootFs { fd })
    }

    /// The root directory fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The root directory fd, for the sandbox's root filesystem to own.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Sandbox side: moves the calling process into its own mount, IPC, UTS and (for
/// [`Network::None`]) network namespaces, opens the rootfs, and `pivot_root`s into an empty
/// read-only tmpfs. Returns the rootfs.
///
/// Call first thing, while the process is single-threaded (`unshare(CLONE_NEWNS)` requires an
/// unshared filesystem context). Files the sentry needs from the host (the debug log) must be
/// open before.
///
/// # Errors
/// Any step failing; the sandbox must not start half isolated.
pub fn enter(cfg: &SandboxConfig) -> Result<RootFs, Error> {
    // The monitor is our parent; if it dies, so do we (and with us the PID namespace).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(step("PR_SET_PDEATHSIG"))?;
    unshare_namespaces(cfg.network)?;
    let root = RootFs::open(&cfg.rootfs)?;
    pivot_to_empty_root()?;
    log::info!(
        "sandbox: in new mount/pid/ipc/uts{} namespaces, root {} held as fd",
        net_suffix(cfg.network),
        cfg.rootfs.display()
    );
    Ok(root)
}

/// Sandbox side for the containerd shim's sandbox process: as [`enter`], but no rootfs is
/// opened (each container's rootfs and bind mounts arrive later as fds over the control
/// channel), and the process is not tied to its parent's death: it ends with its control
/// channel. The PID namespace is the shim's doing (it spawns us as PID 1 of a new one).
///
/// Call first thing, while the process is single-threaded.
///
/// # Errors
/// Any step failing; the sandbox must not start half isolated.
pub fn enter_without_rootfs(network: Network) -> Result<(), Error> {
    unshare_namespaces(network)?;
    pivot_to_empty_root()?;
    log::info!(
        "sandbox: in new mount/ipc/uts{} namespaces under an empty root",
        net_suffix(network)
    );
    Ok(())
}

fn net_suffix(network: Network) -> &'static str {
    if network == Network::None {
        "/net"
    } else {
        ""
    }
}

/// New mount, IPC, UTS (and for [`Network::None`] network) namespaces, with every mount
/// private so nothing propagates back to the host.
fn unshare_namespaces(network: Network) -> Result<(), Error> {
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(step("unshare(mount, ipc, uts, net)"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(step("making mounts private"))
}

/// `pivot_root`s into an empty read-only tmpfs and detaches the old root: from here on the
/// host's files are reachable only through fds opened before.
fn pivot_to_empty_root() -> Result<(), Error> {
    let new_root = ["/tmp", "/mnt", "/run", "/var/tmp"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .ok_or(Error::Setup {
            step: "finding a directory to mount the empty root on",
            source: Errno::ENOENT,
        })?;
    mount(
        Some("runsc-rs-root"),
        new_root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,mode=0555"),
    )
    .map_err(step("mounting the empty root"))?;
    mount_private_proc(Path::new(new_root));
    nix::unistd::chdir(new_root).map_err(step("chdir(new root)"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves the
    // empty tmpfs. Fds opened before keep their trees alive, without the host's submounts.
    nix::unistd::pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detaching the old root"))?;
    nix::unistd::chdir("/").map_err(step("chdir(/)"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(step("remounting the empty root read-only"))
}

/// Mounts a procfs of the sandbox's own PID namespace with process directories only
/// (`subset=pid`: no `/proc/sys`, no `sysrq-trigger`) at `crate::fs::hostfs::HOST_PROC` of
/// the empty root: the sentry connects to host Unix sockets through `/proc/self/fd/N` of
/// their `O_PATH` fds (`fs::hostfs::special`), never by a name. It must be mounted while the
/// host's `/proc` is still visible (a user namespace may only mount a procfs it could see).
/// Without it host sockets are unreachable (EOPNOTSUPP), which is logged.
fn mount_private_proc(new_root: &Path) {
    let target = new_root.join(crate::fs::hostfs::HOST_PROC.trim_start_matches('/'));
    let made =
        std::fs::create_dir(&target).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    let mounted = made.and_then(|()| {
        mount(
            Some("proc"),
            &target,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("subset=pid"),
        )
    });
    if let Err(e) = mounted {
        log::warn!("sandbox: no private procfs ({e}): host Unix sockets cannot be connected to");
    }
}

/// Capabilities the sandbox keeps: what fd-relative host filesystem access (directfs) needs
/// to act for any application user, as gVisor's directfs sandbox does. Tracing our own stubs
/// needs none (same uid, our children).
pub const KEPT_CAPABILITIES: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::DAC_READ_SEARCH)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::FSETID);

/// Drops every capability but [`KEPT_CAPABILITIES`] (from the effective, permitted,
/// inheritable, ambient and bounding sets) and sets `no_new_privs`.
///
/// # Errors
/// A prctl or capset failing.
pub fn drop_privileges() -> Result<(), Error> {
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if KEPT_CAPABILITIES.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            // Past the last capability this kernel knows.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(rustix_step("dropping the capability bounding set")(e)),
        }
    }
    rustix::thread::clear_ambient_capability_set()
        .map_err(rustix_step("clearing ambient capabilities"))?;
    let current = rustix::thread::capabilities(None).map_err(rustix_step("capget"))?;
    let kept = current.permitted & KEPT_CAPABILITIES;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(rustix_step("capset"))?;
    rustix::thread::set_no_new_privs(true).map_err(rustix_step("PR_SET_NO_NEW_PRIVS"))?;
    log::info!("sandbox: capabilities limited to {kept:?}; no_new_privs set");
    Ok(())
}
