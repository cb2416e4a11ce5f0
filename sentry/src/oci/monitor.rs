//! The per-container processes behind the OCI CLI.
//!
//! ```text
//! runsc-rs create ──spawns──▶ monitor (its PID is the container's PID) ──spawns──▶ sandbox
//!   Create + stdio fds ──▶      holds the control-channel Client             Loader, served
//! runsc-rs start/kill/exec/ps/delete ──▶ ctl.sock in the state dir            on its stdin
//! ```
//!
//! The sandbox is started exactly as the containerd shim starts it: this binary re-executed,
//! PID 1 of a new PID namespace, the control channel as its stdin, serving the same Loader.
//! The monitor plays the shim's part for one container: it is what later CLI invocations
//! talk to (through a `SOCK_SEQPACKET` socket in the state directory), and it is the process
//! whose PID `create --pid-file` reports, so an engine that waits for that PID (conmon,
//! containerd's runc shim, `run` itself) sees it exit with the container's init status.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context as _};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
use sentry::boot::control::{
    Channel, Client, Event, ProcessRef, Request, Response, StdioPresent, WireExitStatus,
};
use sentry::boot::loader::{
    Isolation, Loader, LoaderConfig, PidNamespaceSpec, ProcessInfo, ProcessSpec, SignalTarget,
};
use sentry::boot::profile::ProfileFile;
use sentry::boot::sandbox::{Network, WatchHolder};
use sentry::boot::seccomp;
use sentry::fs::hostfs::WATCH_ENV;
use serde::{Deserialize, Serialize};

use super::state::{self, Saved, Status};

/// Largest message on the CLI ↔ monitor socket (a process spec with its environment).
const BUF: usize = 1 << 20;

/// The hidden subcommand that is the monitor.
pub const MONITOR_ARG: &str = "oci-monitor";
/// The hidden subcommand that is the sandbox.
pub const SANDBOX_ARG: &str = "oci-sandbox";

/// A call from the CLI to a container's monitor.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Only from `create`, on the monitor's stdin. Fds: stdin, stdout, stderr, or the pty
    /// slave alone when the process has a terminal.
    Create {
        id: String,
        bundle: PathBuf,
        state_dir: PathBuf,
        /// The runtime's `--network`.
        network: Network,
        /// The runtime's `--host-uds` (`open`, `create`, `all`, `none`).
        host_uds: String,
        /// The runtime's `--systemd-cgroup`.
        systemd_cgroup: bool,
    },
    Start,
    /// Fds: the image's `kernel.json` and `memory.bin`. As `Start`, but the container
    /// continues from the checkpoint image instead of running its program.
    Restore,
    Kill {
        signo: i32,
        all: bool,
    },
    /// Fds: the stdio `stdio` announces. Answered with `Pid`, then `Exited` on the same
    /// connection when the process ends.
    Exec {
        spec: Box<ProcessSpec>,
        stdio: StdioPresent,
    },
    Ps,
    /// Stops every task of the container (`running` → `paused`).
    Pause,
    /// `paused` → `running`.
    Resume,
    /// Fds: the image's `kernel.json` and `memory.bin`, opened for writing. Answered with
    /// `Checkpointed`; without `leave_running` the container then stops.
    Checkpoint {
        leave_running: bool,
    },
    /// Signals the foreground process group of a terminal: init's, or that of the exec
    /// process whose PID in the sandbox is `exec_pid` (sent by its exec waiter).
    SignalForeground {
        exec_pid: Option<i32>,
        signo: i32,
    },
    /// Ends the container and the monitor (after the reply).
    Delete,
}

/// The monitor's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Done,
    /// The PID inside the sandbox of the process just started.
    Pid(i32),
    Processes(Vec<ProcessInfo>),
    Checkpointed(sentry::kernel::checkpoint::Summary),
    Exited(WireExitStatus),
    Failed(String),
}

/// Sends one call and reads one reply.
pub fn call(channel: &Channel, call: &Call, fds: &[BorrowedFd<'_>]) -> anyhow::Result<Reply> {
    channel
        .send(call, fds)
        .context("talking to the container")?;
    read_reply(channel)
}

/// Reads the next reply; a `Failed` one becomes an error.
pub fn read_reply(channel: &Channel) -> anyhow::Result<Reply> {
    let mut buf = vec![0u8; BUF];
    match channel.recv::<Reply>(&mut buf) {
        Ok((Reply::Failed(why), _)) => Err(anyhow!(why)),
        Ok((reply, _)) => Ok(reply),
        Err(e) => Err(anyhow!(e).context("the container's monitor is gone")),
    }
}

/// The control socket in a container's state directory, reached through an `O_PATH` fd of
/// the directory so that a deep `--root` does not hit the 108-byte limit of socket paths.
fn socket_path(dir: &Path) -> anyhow::Result<(OwnedFd, PathBuf)> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/ctl.sock", fd.as_raw_fd()));
    Ok((fd, path))
}

/// Connects to the monitor of the container whose state directory is `dir`.
pub fn connect(dir: &Path) -> anyhow::Result<Channel> {
    let (_dir, path) = socket_path(dir)?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(&path)?;
    rustix::net::connect(&sock, &addr).context("the container is not running")?;
    Ok(Channel::from_fd(sock))
}

/// Spawns the monitor for `create`: its stdin is `theirs`, its output goes to `log`.
pub fn spawn(theirs: Channel, log: Option<&Path>) -> anyhow::Result<std::process::Child> {
    let stderr = match log {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        None => Stdio::null(),
    };
    Command::new("/proc/self/exe")
        .arg(MONITOR_ARG)
        .stdin(Stdio::from(theirs.into_fd()))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("starting the container's monitor")
}

/// One container's monitor.
struct Monitor {
    client: Client,
    /// The sandbox process (our child).
    sandbox: nix::unistd::Pid,
    id: String,
    dir: PathBuf,
    /// Connections waiting for an exec process's exit, by exec id. Held while a process is
    /// started, and while its exit is reported, so that no exit is reported (nor the monitor
    /// gone) before the start is answered.
    waiters: Mutex<HashMap<String, Arc<Channel>>>,
    /// Exec ids by the PID in the sandbox of their process.
    execs: Mutex<HashMap<i32, String>>,
    next_exec: AtomicU64,
}

/// The monitor process: creates the container, then serves the CLI until the container's
/// init exits or it is deleted. Returns only on failure before the container existed.
pub fn main() -> i32 {
    // Before any thread exists: signals of the container's terminal are forwarded.
    super::console::block_terminal_signals();
    // Its own session: the terminal or process group `create` ran in must not signal it,
    // and the container's terminal can become its controlling one.
    let _ = nix::unistd::setsid();
    let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => Channel::from_fd(fd),
        Err(_) => return 1,
    };
    let mut buf = vec![0u8; BUF];
    let Ok((
        Call::Create {
            id,
            bundle,
            state_dir,
            network,
            host_uds,
            systemd_cgroup,
        },
        stdio,
    )) = stdin.recv::<Call>(&mut buf)
    else {
        return 1;
    };
    let options = (network, systemd_cgroup, host_uds);
    match create(&id, &bundle, &state_dir, options, stdio) {
        Ok((monitor, events, listener, terminal)) => {
            if let Some(slave) = terminal {
                let m = Arc::clone(&monitor);
                let forward = move |signo| {
                    let _ = m.client.call(
                        &Request::SignalForeground {
                            id: m.id.clone(),
                            process: ProcessRef::Init,
                            signo,
                        },
                        &[],
                    );
                };
                if let Err(e) = super::console::take_terminal(slave.as_fd(), forward) {
                    log::warn!("{e:#}");
                }
            }
            let _ = stdin.send(&Reply::Done, &[]);
            drop(stdin);
            serve(monitor, events, &listener)
        }
        Err(e) => {
            let _ = stdin.send(&Reply::Failed(format!("{e:#}")), &[]);
            1
        }
    }
}

type Events = mpsc::Receiver<Option<Event>>;

fn create(
    id: &str,
    bundle: &Path,
    dir: &Path,
    (network, systemd_cgroup, host_uds): (Network, bool, String),
    stdio: Vec<OwnedFd>,
) -> anyhow::Result<(Arc<Monitor>, Events, OwnedFd, Option<OwnedFd>)> {
    let spec = super::spec::load(bundle)?;
    let mut container = super::spec::container(&spec, bundle)?;
    // Each container has a sandbox of its own here: a PID namespace the spec names to join
    // (a pod's, or `docker run --pid container:X`) is not in it, so the container gets its own.
    container.pid_namespace = PidNamespaceSpec::New;
    let present = if container.process.terminal {
        StdioPresent {
            stdin: true,
            ..StdioPresent::default()
        }
    } else {
        StdioPresent {
            stdin: true,
            stdout: true,
            stderr: true,
        }
    };
    let expected = if container.process.terminal { 1 } else { 3 };
    if stdio.len() != expected {
        anyhow::bail!("{} stdio fds received, {expected} expected", stdio.len());
    }
    let terminal = match (container.process.terminal, stdio.first()) {
        (true, Some(slave)) => Some(slave.try_clone().context("duplicating the pty")?),
        _ => None,
    };
    let mut fds = super::spec::open_sources(&container, bundle)?;
    fds.extend(stdio);
    let netns = super::spec::network_namespace(&spec);
    let mut profile = ProfileFile::sandbox_args(spec.annotations().as_ref());
    profile.extend(["--host-uds".to_owned(), host_uds]);
    let cgroup = super::cgroup::path(&spec, systemd_cgroup);
    // Its holder is made outside the container's cgroup (and, from this thread, outside the
    // PID namespace the sandbox's spawning thread enters).
    let watch = WatchHolder::new();
    // Joined before the sandbox exists, which inherits it.
    let joined = match &cgroup {
        Some(path) => super::cgroup::create_and_join(&spec, path)?,
        None => None,
    };
    // On failure `create` removes the cgroup once we are gone.
    let (client, events, sandbox) = launch_sandbox(network, netns.as_deref(), &profile, watch)?;
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    client.call(
        &Request::CreateContainer {
            id: id.to_owned(),
            spec: container.clone(),
            stdio: present,
        },
        &borrowed,
    )?;
    drop(fds);
    let saved = Saved {
        id: id.to_owned(),
        pid: std::process::id(),
        bundle: bundle.to_path_buf(),
        rootfs: container.rootfs,
        created: state::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: joined.is_some().then_some(cgroup).flatten(),
    };
    // Listening before `create` returns: the next command may come at once.
    let (_dir, path) = socket_path(dir)?;
    let listener = listen(&path)?;
    saved.write(dir)?;
    state::set_status(dir, Status::Created, None)?;
    Ok((
        Arc::new(Monitor {
            client,
            sandbox,
            id: id.to_owned(),
            dir: dir.to_path_buf(),
            waiters: Mutex::default(),
            execs: Mutex::default(),
            next_exec: AtomicU64::new(1),
        }),
        events,
        listener,
        terminal,
    ))
}

/// Starts the sandbox process as the shim does: this binary, PID 1 of a new PID namespace
/// (unshared by a short-lived thread so only its child lands there), the control channel as
/// its stdin and no environment. With a network namespace `netns` (the spec's path) and a
/// network that uses one, the same thread joins it first (`setns` changes only the calling
/// thread), so the sandbox is born there. With `watch`, the sandbox inherits its hostfs
/// inotify instance, and this process lets go of it once the sandbox has it.
fn launch_sandbox(
    network: Network,
    netns: Option<&Path>,
    profile: &[String],
    watch: Option<WatchHolder>,
) -> anyhow::Result<(Client, Events, nix::unistd::Pid)> {
    let (network, netns) = match (network, netns) {
        (Network::None, _) | (Network::Sandbox, None) => (Network::None, None),
        (Network::Host, None) => (Network::Host, None),
        (mode, Some(path)) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("opening the network namespace {}", path.display()))?;
            (mode, Some(file))
        }
    };
    let (ours, theirs) = Channel::pair()?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(SANDBOX_ARG)
        .args(["--network", network.name()])
        .args(profile)
        .env_clear()
        .env("MALLOC_ARENA_MAX", "8")
        .stdin(Stdio::from(theirs.into_fd()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(w) = &watch {
        cmd.args(w.sandbox_args());
    }
    // Watching turned off here is off in the sandbox too.
    if let Ok(v) = std::env::var(WATCH_ENV) {
        cmd.env(WATCH_ENV, v);
    }
    let pid = std::thread::spawn(move || -> anyhow::Result<u32> {
        if let Some(ns) = &netns {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("joining the spec's network namespace")?;
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)?;
        Ok(cmd.spawn()?.id())
    })
    .join()
    .map_err(|_| anyhow!("the sandbox spawner panicked"))?
    .context("starting the sandbox process")?;
    if let Some(w) = watch {
        w.release();
    }
    let (client, events) = Client::new(ours)?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
    Ok((client, events, pid))
}

fn serve(monitor: Arc<Monitor>, events: Events, listener: &OwnedFd) -> ! {
    let m = Arc::clone(&monitor);
    std::thread::spawn(move || watch_exits(&m, &events));
    loop {
        let Ok(conn) = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC) else {
            continue;
        };
        let m = Arc::clone(&monitor);
        std::thread::spawn(move || m.connection(Arc::new(Channel::from_fd(conn))));
    }
}

fn listen(path: &Path) -> anyhow::Result<OwnedFd> {
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&sock, &SocketAddrUnix::new(path)?).context("binding ctl.sock")?;
    rustix::net::listen(&sock, 16)?;
    Ok(sock)
}

/// Forwards exits: an exec's to the connection waiting for it; init's ends the container.
fn watch_exits(monitor: &Monitor, events: &Events) {
    while let Ok(Some(Event::Exited {
        id: _,
        process,
        status,
    })) = events.recv()
    {
        match process {
            ProcessRef::Init => {
                let _started = monitor.waiters.lock().unwrap();
                monitor.finish(status)
            }
            ProcessRef::Exec(exec_id) => {
                monitor.execs.lock().unwrap().retain(|_, e| *e != exec_id);
                if let Some(conn) = monitor.waiters.lock().unwrap().remove(&exec_id) {
                    let _ = conn.send(&Reply::Exited(status), &[]);
                }
            }
        }
    }
    // The sandbox died without reporting init's exit.
    log::error!("the sandbox process of {} is gone", monitor.id);
    monitor.finish(WireExitStatus::Signaled(libc::SIGKILL));
}

impl Monitor {
    fn connection(&self, conn: Arc<Channel>) {
        let mut buf = vec![0u8; BUF];
        while let Ok((request, fds)) = conn.recv::<Call>(&mut buf) {
            let reply = match self.handle(request, fds, &conn) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => Reply::Failed(format!("{e:#}")),
            };
            let delete = matches!(reply, Reply::Exited(_));
            if conn.send(&reply, &[]).is_err() {
                return;
            }
            if delete {
                self.finish(WireExitStatus::Signaled(libc::SIGKILL));
            }
        }
    }

    /// One call; `None` when the reply was already sent.
    fn handle(
        &self,
        request: Call,
        fds: Vec<OwnedFd>,
        conn: &Arc<Channel>,
    ) -> anyhow::Result<Option<Reply>> {
        let id = self.id.clone();
        Ok(Some(match request {
            Call::Create { .. } => anyhow::bail!("the container already exists"),
            Call::Start => {
                if state::status(&self.dir) != Status::Created {
                    anyhow::bail!("cannot start a container that is not created");
                }
                let _started = self.waiters.lock().unwrap();
                let pid = self.pid(&Request::StartContainer { id })?;
                state::set_status(&self.dir, Status::Running, None)?;
                conn.send(&Reply::Pid(pid), &[])?;
                return Ok(None);
            }
            Call::Restore => {
                if state::status(&self.dir) != Status::Created {
                    anyhow::bail!("cannot restore into a container that is not created");
                }
                let _started = self.waiters.lock().unwrap();
                let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                let reply = self
                    .client
                    .call(&Request::RestoreContainer { id }, &borrowed)?;
                let Response::Pid(pid) = reply else {
                    anyhow::bail!("unexpected answer {reply:?}");
                };
                state::set_status(&self.dir, Status::Running, None)?;
                conn.send(&Reply::Pid(pid), &[])?;
                return Ok(None);
            }
            Call::Kill { signo, all } => {
                if state::status(&self.dir) == Status::Created {
                    // Init has not run: like runc's init waiting for `start`, it dies of a
                    // signal whose default action ends a process, and ignores the rest.
                    let ignored = [
                        0,
                        libc::SIGCHLD,
                        libc::SIGCONT,
                        libc::SIGURG,
                        libc::SIGWINCH,
                        libc::SIGSTOP,
                        libc::SIGTSTP,
                        libc::SIGTTIN,
                        libc::SIGTTOU,
                    ];
                    if !ignored.contains(&signo) {
                        self.finish(WireExitStatus::Signaled(signo));
                    }
                    return Ok(Some(Reply::Done));
                }
                let target = if all {
                    SignalTarget::All
                } else {
                    SignalTarget::Process(ProcessRef::Init)
                };
                self.client
                    .call(&Request::Signal { id, target, signo }, &[])?;
                Reply::Done
            }
            Call::Exec { spec, stdio } => {
                let exec_id = format!("exec-{}", self.next_exec.fetch_add(1, Ordering::Relaxed));
                let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                self.client.call(
                    &Request::AddExec {
                        id: id.clone(),
                        exec_id: exec_id.clone(),
                        spec: *spec,
                        stdio,
                    },
                    &borrowed,
                )?;
                drop(fds);
                let mut waiters = self.waiters.lock().unwrap();
                let pid = self.pid(&Request::StartExec {
                    id,
                    exec_id: exec_id.clone(),
                })?;
                conn.send(&Reply::Pid(pid), &[])?;
                self.execs.lock().unwrap().insert(pid, exec_id.clone());
                waiters.insert(exec_id, Arc::clone(conn));
                return Ok(None);
            }
            Call::Ps => match self.client.call(&Request::Processes { id }, &[])? {
                Response::Processes(list) => Reply::Processes(list),
                other => anyhow::bail!("unexpected answer {other:?}"),
            },
            Call::Pause => {
                if state::status(&self.dir) != Status::Running {
                    anyhow::bail!("cannot pause a container that is not running");
                }
                self.client.call(&Request::Pause { id }, &[])?;
                state::set_status(&self.dir, Status::Paused, None)?;
                Reply::Done
            }
            Call::Resume => {
                if state::status(&self.dir) != Status::Paused {
                    anyhow::bail!("cannot resume a container that is not paused");
                }
                self.client.call(&Request::Resume { id }, &[])?;
                state::set_status(&self.dir, Status::Running, None)?;
                Reply::Done
            }
            Call::Checkpoint { leave_running } => {
                let status = state::status(&self.dir);
                if !matches!(status, Status::Running | Status::Paused) {
                    anyhow::bail!("cannot checkpoint a container that is {}", status.as_str());
                }
                let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                let reply = self
                    .client
                    .call(&Request::Checkpoint { id, leave_running }, &borrowed)?;
                drop(borrowed);
                drop(fds);
                let Response::Checkpointed(summary) = reply else {
                    anyhow::bail!("unexpected answer {reply:?}");
                };
                if leave_running {
                    Reply::Checkpointed(summary)
                } else {
                    // As runc: the checkpointed container is stopped (its kernel is still
                    // paused, so nothing ran after the image was taken).
                    conn.send(&Reply::Checkpointed(summary), &[])?;
                    self.finish(WireExitStatus::Signaled(libc::SIGKILL))
                }
            }
            Call::SignalForeground { exec_pid, signo } => {
                let process = match exec_pid {
                    None => ProcessRef::Init,
                    Some(pid) => ProcessRef::Exec(
                        self.execs
                            .lock()
                            .unwrap()
                            .get(&pid)
                            .cloned()
                            .context("no such exec process")?,
                    ),
                };
                self.client
                    .call(&Request::SignalForeground { id, process, signo }, &[])?;
                Reply::Done
            }
            // Answered with Exited: `connection` ends the container after the reply.
            Call::Delete => Reply::Exited(WireExitStatus::Signaled(libc::SIGKILL)),
        }))
    }

    /// Waits for the sandbox to be gone (killing it after a grace period): until then it
    /// holds the container's mount sources open, and the engine unmounts them as soon as
    /// our exit tells it the container stopped.
    fn reap_sandbox(&self) {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            match waitpid(self.sandbox, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                _ => return,
            }
        }
        let _ = nix::sys::signal::kill(self.sandbox, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.sandbox, None);
    }

    fn pid(&self, request: &Request) -> anyhow::Result<i32> {
        match self.client.call(request, &[])? {
            Response::Pid(pid) => Ok(pid),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }

    /// The container is stopped: record how, end the sandbox and leave with init's status,
    /// which is what an engine waiting for our PID reads.
    fn finish(&self, status: WireExitStatus) -> ! {
        if let Err(e) = state::set_status(&self.dir, Status::Stopped, Some(status)) {
            log::error!("{e:#}");
        }
        let _ = std::fs::remove_file(self.dir.join("ctl.sock"));
        let _ = self.client.call(&Request::Shutdown, &[]);
        self.reap_sandbox();
        let _ = std::io::stderr().flush();
        exit_like(status)
    }
}

/// Ends this process the way the container's process ended: with its exit code, or killed
/// by its signal (the default action of a terminating signal; the rest cannot end a process
/// and fall back to the shell's 128 + N).
pub fn exit_like(status: WireExitStatus) -> ! {
    match status {
        WireExitStatus::Exited(code) => std::process::exit(i32::from(code)),
        WireExitStatus::Signaled(signo) => {
            if let Ok(sig) = nix::sys::signal::Signal::try_from(signo) {
                // A terminal's signals are blocked here (see `console`).
                let mut set = nix::sys::signal::SigSet::empty();
                set.add(sig);
                let _ = set.thread_unblock();
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), sig);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            std::process::exit(128 + signo)
        }
    }
}

/// The sandbox process: boot the Loader isolated and filtered, then serve it on the control
/// channel (stdin) until told to stop. The same boot as the shim's sandbox. Its options,
/// `--network NAME`, `--host-uds NAME` and [`sentry::boot::sandbox::WATCH_FD_ARG`] `FD`, come
/// from [`launch_sandbox`].
pub fn sandbox_main() -> i32 {
    // A session of its own: a container's host pty is the monitor's controlling terminal,
    // and what the host raises on it is the monitor's to forward, not ours.
    let _ = nix::unistd::setsid();
    let args: Vec<String> = std::env::args().collect();
    let network = match args.iter().position(|a| a == "--network") {
        None => Network::None,
        Some(i) => match args.get(i + 1).and_then(|n| Network::from_name(n)) {
            Some(n) => n,
            None => {
                log::error!("--network: expected none, sandbox or host");
                return 1;
            }
        },
    };
    let host_uds = match args.iter().position(|a| a == "--host-uds") {
        None => sentry::net::HostUds::DEFAULT,
        Some(i) => match args.get(i + 1).map(|n| n.parse()) {
            Some(Ok(h)) => h,
            _ => {
                log::error!("--host-uds: expected none, open, create or all");
                return 1;
            }
        },
    };
    sentry::boot::sandbox::adopt_watch(sentry::boot::sandbox::watch_fd_arg(&args));
    let fd = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("taking the control channel: {e}");
            return 1;
        }
    };
    // Before the Loader isolates this process: the annotation's host path.
    let profile = ProfileFile::from_sandbox_args(&args);
    let config = LoaderConfig {
        platform: sentry::boot::loader::default_platform(),
        strace: false,
        isolation: Isolation::Sandbox { network },
        seccomp: Some(seccomp::Mode::Enforce),
        control_channel: true,
        test_seccomp_violation: false,
        record_syscalls: matches!(profile, Ok(Some(_))),
        host_uds,
    };
    let channel = Channel::from_fd(fd);
    let booted = match profile {
        Ok(profile) => Loader::new(&config)
            .map(|loader| (loader, profile))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let served = match booted {
        Ok((loader, profile)) => {
            let served = sentry::boot::control::serve(channel, loader.clone());
            if let Some(profile) = profile {
                profile.finish(&loader);
            }
            served
        }
        Err(e) => {
            log::error!("booting the sandbox: {e}");
            sentry::boot::control::serve_boot_failure(channel, &e)
        }
    };
    match served {
        Ok(()) => 0,
        Err(e) => {
            log::error!("control channel: {e}");
            1
        }
    }
}
