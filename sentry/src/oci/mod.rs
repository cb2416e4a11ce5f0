//! `runsc-rs` as an OCI runtime with runc's command line, for Docker and Podman.
//!
//! Each container is one sandbox process booted as the containerd shim boots it, watched by
//! a monitor process ([`monitor`]) that later invocations reach through the state directory
//! (`--root`, [`state`]). Semantics follow runc: `create` leaves init waiting for `start`;
//! the container is `stopped` once init has exited; `delete` refuses a running container
//! without `--force`.

mod cgroup;
mod console;
mod monitor;
mod spec;
mod state;

use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use clap::Subcommand;
use sentry::boot::control::{Channel, StdioPresent};
use serde_json::json;

use monitor::{Call, Reply};
pub use monitor::{MONITOR_ARG, SANDBOX_ARG};
use state::{Saved, Status};

/// The runtime-spec version the runtime implements.
const OCI_VERSION: &str = "1.0.2";

/// runc's global options.
pub struct Globals {
    /// The state directory.
    pub root: PathBuf,
    /// Where errors are logged besides stderr.
    pub log: Option<PathBuf>,
    /// `--log-format json`: one JSON object per line.
    pub log_json: bool,
    /// `--network`: what the sandbox does with the network namespace the spec names
    /// ([`monitor`] joins it): `Sandbox` takes its links, `Host` uses host sockets in it
    /// (in the runtime's own namespace when the spec names none), `None` (and `Sandbox`
    /// without a named namespace) gives the sandbox a new one with loopback only.
    pub network: sentry::boot::sandbox::Network,
    /// `--host-uds`: host Unix sockets in the container's bind mounts (`open`, `create`,
    /// `all`, `none`), as `runsc-rs do --host-uds`.
    pub host_uds: sentry::net::HostUds,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

#[derive(Subcommand)]
pub enum OciCommand {
    /// Creates container ID from a bundle; its process waits for `start`.
    Create {
        #[command(flatten)]
        new: NewArgs,
    },
    /// Starts the process of a created container.
    Start { id: String },
    /// Creates and starts a container; waits for it unless --detach.
    Run {
        #[command(flatten)]
        new: NewArgs,
        /// Do not wait for the container's process.
        #[arg(short, long)]
        detach: bool,
    },
    /// Prints the state of a container as JSON.
    State { id: String },
    /// Sends a signal (name or number, default SIGTERM) to the container's init.
    Kill {
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Deletes a stopped or created container (--force: a running one too).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Runs a new process in a running container.
    Exec {
        /// The process as OCI JSON (instead of CMD).
        #[arg(short, long, value_name = "FILE")]
        process: Option<PathBuf>,
        /// Do not wait for the process.
        #[arg(short, long)]
        detach: bool,
        /// Give the process a terminal (its master goes to --console-socket).
        #[arg(short, long)]
        tty: bool,
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<String>,
        /// KEY=VALUE added to the container's environment (repeatable).
        #[arg(short, long)]
        env: Vec<String>,
        /// UID[:GID].
        #[arg(short, long)]
        user: Option<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Lists the processes of a container: the table has their PIDs inside the sandbox;
    /// `--format json` the host PID standing for them (the monitor's).
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Accepted for runc compatibility; ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Stops every process of a running container (runc's `pause`).
    Pause { id: String },
    /// Lets the processes of a paused container run again.
    Resume { id: String },
    /// Saves a running container to an image directory (the image format:
    /// `sentry::kernel::checkpoint`); the container stops unless --leave-running.
    Checkpoint {
        #[arg(long, value_name = "DIR")]
        image_path: PathBuf,
        #[arg(long)]
        leave_running: bool,
        id: String,
    },
    /// Creates container ID from its bundle and starts it from a checkpoint image (as
    /// `run`, its processes continuing where the checkpoint stopped them); waits for it
    /// unless --detach.
    Restore {
        #[arg(long, value_name = "DIR")]
        image_path: PathBuf,
        #[command(flatten)]
        new: NewArgs,
        #[arg(short, long)]
        detach: bool,
    },
    /// Prints the container's resource usage as runc does: one stats object with --stats,
    /// else one every --interval and an `oom` event for each OOM kill, until it stops.
    Events {
        #[arg(long)]
        stats: bool,
        /// Between stats objects (`5s`, `500ms`, `1m`).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Changes the limits of the container's cgroup.
    Update {
        /// OCI `linux.resources` JSON (`-`: stdin); the options below override it.
        #[arg(short, long, value_name = "FILE")]
        resources: Option<PathBuf>,
        /// Memory limit in bytes (suffixes k, m, g; -1: none).
        #[arg(long)]
        memory: Option<String>,
        /// Memory plus swap limit (as --memory).
        #[arg(long)]
        memory_swap: Option<String>,
        /// CFS quota in microseconds per period (-1: none).
        #[arg(long)]
        cpu_quota: Option<i64>,
        /// CFS period in microseconds.
        #[arg(long)]
        cpu_period: Option<u64>,
        /// Relative CPU weight (cgroup v1 shares).
        #[arg(long)]
        cpu_shares: Option<u64>,
        /// Most tasks (-1 or 0: none).
        #[arg(long)]
        pids_limit: Option<i64>,
        id: String,
    },
    /// Lists the containers under --root.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Writes a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Accepted for runc compatibility.
        #[arg(long)]
        rootless: bool,
    },
    /// Prints what this runtime supports, as JSON.
    Features,
}

/// The options of `create` and `run`.
#[derive(clap::Args)]
pub struct NewArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when the process has a terminal.
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (the sandbox never pivots on the host).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    no_new_keyring: bool,
    /// Accepted for runc compatibility; no extra fds are passed.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

/// Runs one OCI command; returns the exit code.
pub fn run(g: &Globals, cmd: OciCommand) -> i32 {
    close_inherited_fds();
    match dispatch(g, cmd) {
        Ok(code) => code,
        Err(e) => {
            report(g, &format!("{e:#}"));
            1
        }
    }
}

/// Marks every fd but stdio close-on-exec, as runc does without `--preserve-fds`: what the
/// engine left open must not live on in the monitor, the sandbox or the exec waiter (an fd
/// into the container's mounts would keep the engine from unmounting them).
fn close_inherited_fds() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // Fails harmlessly for the directory fd read_dir had open.
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
}

/// An error to stderr and, with --log, to the log (where engines look for it).
fn report(g: &Globals, msg: &str) {
    eprintln!("runsc-rs: {msg}");
    let Some(path) = &g.log else { return };
    let line = if g.log_json {
        json!({"level": "error", "msg": msg, "time": state::now_rfc3339()}).to_string()
    } else {
        format!("{} error: {msg}", state::now_rfc3339())
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The monitor and sandbox processes run the hidden subcommands, without clap.
/// `init_logging` sends their errors to stderr (the log, or nowhere).
pub fn hidden_main(arg: &str, init_logging: impl FnOnce() -> anyhow::Result<()>) -> Option<i32> {
    if [MONITOR_ARG, SANDBOX_ARG, EXEC_WAIT_ARG].contains(&arg) {
        let _ = init_logging();
    }
    match arg {
        MONITOR_ARG => Some(monitor::main()),
        SANDBOX_ARG => Some(monitor::sandbox_main()),
        EXEC_WAIT_ARG => Some(exec_wait_main()),
        _ => None,
    }
}

fn dispatch(g: &Globals, cmd: OciCommand) -> anyhow::Result<i32> {
    match cmd {
        OciCommand::Create { new } => create(g, &new).map(|_| 0),
        OciCommand::Run { new, detach } => {
            let mut child = create(g, &new)?;
            start(g, &new.id)?;
            if detach {
                return Ok(0);
            }
            let status = child.wait()?;
            // As runc: a container run in the foreground is deleted when it ends.
            delete(g, &new.id, true)?;
            Ok(status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            }))
        }
        OciCommand::Start { id } => start(g, &id).map(|()| 0),
        OciCommand::State { id } => {
            let dir = container_dir(g, &id)?;
            let out = serde_json::to_string_pretty(&state_json(&dir)?)?;
            println!("{out}");
            Ok(0)
        }
        OciCommand::Kill { all, id, signal } => {
            let dir = container_dir(g, &id)?;
            let signo = parse_signal(&signal)?;
            if state::status(&dir) == Status::Stopped {
                bail!("container {id} is not running");
            }
            let conn = monitor::connect(&dir)?;
            monitor::call(&conn, &Call::Kill { signo, all }, &[])?;
            Ok(0)
        }
        OciCommand::Delete { force, id } => delete(g, &id, force).map(|()| 0),
        OciCommand::Exec {
            process,
            detach,
            tty,
            console_socket,
            pid_file,
            cwd,
            env,
            user,
            id,
            cmd,
        } => {
            let dir = container_dir(g, &id)?;
            let mut size = None;
            let mut spec = match process {
                Some(file) => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let p: oci_spec::runtime::Process = serde_json::from_slice(&bytes)
                        .with_context(|| format!("parsing {}", file.display()))?;
                    size = p.console_size();
                    spec::process_spec(&p)?
                }
                None => exec_from_args(&dir, cmd, cwd, env, user)?,
            };
            if tty {
                spec.terminal = true;
            }
            exec(
                &dir,
                spec,
                detach,
                (console_socket.as_deref(), size),
                pid_file.as_deref(),
            )
        }
        OciCommand::Ps { format, id, .. } => {
            let dir = container_dir(g, &id)?;
            let conn = monitor::connect(&dir)?;
            let Reply::Processes(list) = monitor::call(&conn, &Call::Ps, &[])? else {
                bail!("unexpected answer to ps");
            };
            let mut out = std::io::stdout().lock();
            if format == "json" {
                // Engines read these as host PIDs (`docker top` runs the host's ps on them).
                // The container's processes have none: the host process standing for them
                // all is the monitor.
                let saved = Saved::read(&dir)?;
                writeln!(out, "{}", serde_json::to_string(&[saved.pid])?)?;
            } else {
                writeln!(out, "{:>7} CMD", "PID")?;
                for p in &list {
                    writeln!(out, "{:>7} {}", p.pid, p.cmd)?;
                }
            }
            Ok(0)
        }
        OciCommand::Pause { id } => freeze_call(g, &id, &Call::Pause).map(|()| 0),
        OciCommand::Resume { id } => freeze_call(g, &id, &Call::Resume).map(|()| 0),
        OciCommand::Checkpoint {
            image_path,
            leave_running,
            id,
        } => checkpoint(g, &id, &image_path, leave_running).map(|()| 0),
        OciCommand::Restore {
            image_path,
            new,
            detach,
        } => {
            let files = open_image(&new.id, &image_path)?;
            let mut child = create(g, &new)?;
            if let Err(e) = restore(g, &new.id, files) {
                let _ = delete(g, &new.id, true);
                let _ = child.wait();
                return Err(e);
            }
            if detach {
                return Ok(0);
            }
            let status = child.wait()?;
            delete(g, &new.id, true)?;
            Ok(status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            }))
        }
        OciCommand::Events {
            stats,
            interval,
            id,
        } => events(g, &id, stats, &interval).map(|()| 0),
        OciCommand::Update {
            resources,
            memory,
            memory_swap,
            cpu_quota,
            cpu_period,
            cpu_shares,
            pids_limit,
            id,
        } => {
            let dir = container_dir(g, &id)?;
            let mut r: oci_spec::runtime::LinuxResources = match resources {
                None => oci_spec::runtime::LinuxResources::default(),
                Some(file) => {
                    let bytes = if file.as_os_str() == "-" {
                        let mut v = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                        v
                    } else {
                        std::fs::read(&file)
                            .with_context(|| format!("reading {}", file.display()))?
                    };
                    serde_json::from_slice(&bytes).context("parsing the resources")?
                }
            };
            if memory.is_some() || memory_swap.is_some() {
                let mut m = (*r.memory()).unwrap_or_default();
                if let Some(v) = memory {
                    m.set_limit(Some(parse_bytes(&v)?));
                }
                if let Some(v) = memory_swap {
                    m.set_swap(Some(parse_bytes(&v)?));
                }
                r.set_memory(Some(m));
            }
            if cpu_quota.is_some() || cpu_period.is_some() || cpu_shares.is_some() {
                let mut c = r.cpu().clone().unwrap_or_default();
                if cpu_quota.is_some() {
                    c.set_quota(cpu_quota);
                }
                if cpu_period.is_some() {
                    c.set_period(cpu_period);
                }
                if cpu_shares.is_some() {
                    c.set_shares(cpu_shares);
                }
                r.set_cpu(Some(c));
            }
            if let Some(limit) = pids_limit {
                let mut p = oci_spec::runtime::LinuxPids::default();
                p.set_limit(limit);
                r.set_pids(Some(p));
            }
            let cg = container_cgroup(&dir)?;
            cg.update(&r).context("updating the cgroup")?;
            Ok(0)
        }
        OciCommand::List { format, quiet } => list(g, &format, quiet).map(|()| 0),
        OciCommand::Spec { bundle, .. } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} exists; remove it first", path.display());
            }
            std::fs::write(&path, serde_json::to_string_pretty(&spec::template())?)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
        OciCommand::Features => {
            let features = json!({
                "ociVersionMin": "1.0.0",
                "ociVersionMax": OCI_VERSION,
                "hooks": [],
                "mountOptions": ["bind", "rbind", "ro", "rw", "mode"],
                "linux": {
                    "namespaces": ["pid", "network", "ipc", "uts", "mount"],
                    "capabilities": [],
                    "cgroup": {"v1": true, "v2": true, "systemd": false},
                    "seccomp": {"enabled": false},
                    "apparmor": {"enabled": false},
                    "selinux": {"enabled": false}
                },
                "annotations": {"io.github.runsc-rs.sandbox": "sentry"}
            });
            println!("{}", serde_json::to_string_pretty(&features)?);
            Ok(0)
        }
    }
}

/// Container ids name directories: runc's alphabet, no `..` games.
fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        bail!("invalid container id {id:?}")
    }
}

fn container_dir(g: &Globals, id: &str) -> anyhow::Result<PathBuf> {
    check_id(id)?;
    let dir = g.root.join(id);
    if !dir.join("state.json").exists() {
        bail!("container {id} does not exist");
    }
    Ok(dir)
}

fn create(g: &Globals, new: &NewArgs) -> anyhow::Result<std::process::Child> {
    check_id(&new.id)?;
    let bundle = std::path::absolute(&new.bundle)?;
    let config = spec::load(&bundle)?;
    let terminal = config
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let size = config.process().as_ref().and_then(|p| p.console_size());
    std::fs::create_dir_all(&g.root).with_context(|| format!("creating {}", g.root.display()))?;
    let dir = g.root.join(&new.id);
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!("container {} already exists", new.id),
        _ => anyhow!(e).context(format!("creating {}", dir.display())),
    })?;
    let made = (|| {
        let stdio = container_stdio(terminal, new.console_socket.as_deref(), size)?;
        let (ours, theirs) = Channel::pair()?;
        let log = if g.log_json { None } else { g.log.as_deref() };
        let mut child = monitor::spawn(theirs, log)?;
        let borrowed: Vec<BorrowedFd<'_>> = stdio.iter().map(AsFd::as_fd).collect();
        let created = monitor::call(
            &ours,
            &Call::Create {
                id: new.id.clone(),
                bundle: bundle.clone(),
                state_dir: dir.clone(),
                network: g.network,
                host_uds: g.host_uds.name().to_owned(),
                systemd_cgroup: g.systemd_cgroup,
            },
            &borrowed,
        );
        if let Err(e) = created {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(Ok(Some(cg))) =
                cgroup::path(&config, g.systemd_cgroup).map(|p| cgroup::open(&p))
            {
                cg.remove();
            }
            return Err(e);
        }
        if let Some(p) = &new.pid_file {
            write_pid_file(p, child.id())?;
        }
        Ok(child)
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    made
}

/// The container's stdio: ours, or with a terminal a new pty's slave (its master goes to
/// the console socket, for the engine to drive), of the process's `consoleSize` as runc
/// makes it (the engine may resize it later through the master).
fn container_stdio(
    terminal: bool,
    console: Option<&Path>,
    size: Option<oci_spec::runtime::Box>,
) -> anyhow::Result<Vec<OwnedFd>> {
    if !terminal {
        return [
            std::io::stdin().as_fd(),
            std::io::stdout().as_fd(),
            std::io::stderr().as_fd(),
        ]
        .into_iter()
        .map(|fd| fd.try_clone_to_owned().context("duplicating stdio"))
        .collect();
    }
    let console = console.context("the process has a terminal: --console-socket is required")?;
    let winsize = size.map(|b| nix::pty::Winsize {
        ws_row: u16::try_from(b.height()).unwrap_or(u16::MAX),
        ws_col: u16::try_from(b.width()).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = nix::pty::openpty(winsize.as_ref(), None).context("opening a pty")?;
    send_console(console, pty.master)?;
    Ok(vec![pty.slave])
}

/// Hands a pty master to the console socket, as runc does (SCM_RIGHTS over a stream socket).
fn send_console(path: &Path, master: OwnedFd) -> anyhow::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let stream = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connecting to the console socket {}", path.display()))?;
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[std::io::IoSlice::new(b"/dev/ptmx")],
        &mut control,
        SendFlags::empty(),
    )
    .context("sending the pty master")?;
    Ok(())
}

fn write_pid_file(path: &Path, pid: u32) -> anyhow::Result<()> {
    // Written whole then renamed: engines poll for the file and read it at once.
    let tmp = path.with_extension("runsc-rs-tmp");
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `pause` or `resume` (the monitor checks the state and records the new one).
fn freeze_call(g: &Globals, id: &str, call: &Call) -> anyhow::Result<()> {
    let dir = container_dir(g, id)?;
    let conn = monitor::connect(&dir)?;
    monitor::call(&conn, call, &[])?;
    Ok(())
}

/// `checkpoint`: the image's files are made here (with the caller's view of the path and
/// its permissions) and handed to the sandbox as fds; `header.json` is written last, once
/// the rest is complete.
fn checkpoint(g: &Globals, id: &str, image: &Path, leave_running: bool) -> anyhow::Result<()> {
    use sentry::kernel::checkpoint::Header;
    let dir = container_dir(g, id)?;
    std::fs::create_dir_all(image).with_context(|| format!("creating {}", image.display()))?;
    let header = image.join("header.json");
    match std::fs::remove_file(&header) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", header.display()))
        }
        _ => {}
    }
    let create = |name: &str| -> anyhow::Result<OwnedFd> {
        let path = image.join(name);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(f.into())
    };
    let (state, memory) = (create("kernel.json")?, create("memory.bin")?);
    let conn = monitor::connect(&dir)?;
    let reply = monitor::call(
        &conn,
        &Call::Checkpoint { leave_running },
        &[state.as_fd(), memory.as_fd()],
    )?;
    let Reply::Checkpointed(summary) = reply else {
        bail!("unexpected answer to checkpoint");
    };
    let bytes = serde_json::to_vec_pretty(&Header::current(&summary))?;
    std::fs::write(&header, bytes).with_context(|| format!("writing {}", header.display()))?;
    if !leave_running {
        // The monitor stops the container after its answer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state::status(&dir) != Status::Stopped && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Checks the image at `image` (a clear refusal for another format version) and opens its
/// `kernel.json` and `memory.bin`, before anything is created.
fn open_image(id: &str, image: &Path) -> anyhow::Result<[OwnedFd; 2]> {
    use sentry::kernel::checkpoint::Header;
    check_id(id)?;
    let path = image.join("header.json");
    let bytes = std::fs::read(&path)
        .with_context(|| format!("{} is not a checkpoint image", image.display()))?;
    Header::check(&bytes)
        .with_context(|| format!("cannot restore {id} from {}", path.display()))?;
    let open = |name: &str| -> anyhow::Result<OwnedFd> {
        let path = image.join(name);
        let f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(f.into())
    };
    Ok([open("kernel.json")?, open("memory.bin")?])
}

/// `restore`'s start: the created container continues from the image.
fn restore(g: &Globals, id: &str, files: [OwnedFd; 2]) -> anyhow::Result<()> {
    let dir = container_dir(g, id)?;
    let conn = monitor::connect(&dir)?;
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(AsFd::as_fd).collect();
    monitor::call(&conn, &Call::Restore, &fds)?;
    Ok(())
}

fn start(g: &Globals, id: &str) -> anyhow::Result<()> {
    let dir = container_dir(g, id)?;
    match state::status(&dir) {
        Status::Created => {}
        other => bail!("cannot start a container that is {}", other.as_str()),
    }
    let conn = monitor::connect(&dir)?;
    monitor::call(&conn, &Call::Start, &[])?;
    Ok(())
}

fn state_json(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let saved = Saved::read(dir)?;
    let status = state::status(dir);
    let mut v = json!({
        "ociVersion": OCI_VERSION,
        "id": saved.id,
        "pid": if status == Status::Stopped { 0 } else { saved.pid },
        "status": status.as_str(),
        "bundle": saved.bundle,
        "rootfs": saved.rootfs,
        "created": saved.created,
        "owner": "",
    });
    if !saved.annotations.is_empty() {
        v["annotations"] = json!(saved.annotations);
    }
    Ok(v)
}

fn delete(g: &Globals, id: &str, force: bool) -> anyhow::Result<()> {
    check_id(id)?;
    let dir = g.root.join(id);
    let saved = match Saved::read(&dir) {
        Ok(s) => s,
        // A directory left by a create that never finished is removed too.
        Err(_) if dir.exists() || force => {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = state::status(&dir);
    if matches!(status, Status::Running | Status::Paused) && !force {
        bail!(
            "cannot delete container {id} that is not stopped: {}",
            status.as_str()
        );
    }
    if status != Status::Stopped {
        let conn = monitor::connect(&dir)?;
        // The monitor answers, then ends the sandbox and itself.
        let _ = monitor::call(&conn, &Call::Delete, &[]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state::monitor_alive(saved.pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    if let Some(path) = &saved.cgroup {
        // Empty now that the monitor and its sandbox are gone.
        if let Ok(Some(cg)) = cgroup::open(path) {
            cg.remove();
        }
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
}

/// The cgroup of a container that is not stopped.
fn container_cgroup(dir: &Path) -> anyhow::Result<sentry::boot::cgroup::SandboxCgroup> {
    let saved = Saved::read(dir)?;
    if state::status(dir) == Status::Stopped {
        bail!("container {} is not running", saved.id);
    }
    let path = saved
        .cgroup
        .with_context(|| format!("container {} has no cgroup", saved.id))?;
    cgroup::open(&path)?.with_context(|| format!("no cgroup at {path}"))
}

/// `events`: runc's JSON objects, one a line.
fn events(g: &Globals, id: &str, once: bool, interval: &str) -> anyhow::Result<()> {
    let dir = container_dir(g, id)?;
    let interval = parse_duration(interval)?;
    let cg = container_cgroup(&dir)?;
    let mut out = std::io::stdout();
    let mut oom_kills = cg.oom_kills().unwrap_or(0);
    loop {
        let stats = json!({"type": "stats", "id": id, "data": cgroup::stats(&cg)});
        writeln!(out, "{stats}")?;
        if once {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + interval;
        while std::time::Instant::now() < deadline {
            if state::status(&dir) == Status::Stopped {
                return Ok(());
            }
            let now = cg.oom_kills().unwrap_or(0);
            if now > oom_kills {
                oom_kills = now;
                writeln!(out, "{}", json!({"type": "oom", "id": id}))?;
            }
            std::thread::sleep(std::time::Duration::from_millis(100).min(interval));
        }
    }
}

/// `64m`, `1g`, `4096`, `-1`: bytes as runc's `update --memory` reads them.
fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        Some('t') => (&lower[..lower.len() - 1], 40),
        _ => (lower, 0),
    };
    let n: i64 = digits.parse().map_err(|_| anyhow!("invalid size {s:?}"))?;
    if n < 0 {
        return Ok(-1);
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| anyhow!("size {s:?} is too large"))
}

/// `5s`, `500ms`, `1m`, `1h`.
fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| anyhow!("duration {s:?} needs a unit (ms, s, m, h)"))?;
    let n: u64 = s[..split]
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?}"))?;
    let ms = match &s[split..] {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => bail!("invalid duration {s:?}"),
    };
    if ms == 0 {
        bail!("the interval must be positive");
    }
    Ok(std::time::Duration::from_millis(ms))
}

fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow!("unknown signal {s:?}"))
}

/// `exec ID CMD...`: the container's process settings with CMD and the given overrides.
fn exec_from_args(
    dir: &Path,
    cmd: Vec<String>,
    cwd: Option<String>,
    env: Vec<String>,
    user: Option<String>,
) -> anyhow::Result<sentry::boot::loader::ProcessSpec> {
    if cmd.is_empty() {
        bail!("exec needs a command or --process");
    }
    let saved = Saved::read(dir)?;
    let config = spec::load(&saved.bundle)?;
    let base = config
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let mut p = spec::process_spec(base)?;
    p.args = cmd;
    p.terminal = false;
    p.env.extend(env);
    if let Some(cwd) = cwd {
        p.cwd = cwd;
    }
    if let Some(user) = user {
        let mut parts = user.splitn(2, ':');
        p.uid = parts.next().unwrap_or("0").parse().context("--user UID")?;
        p.gid = parts
            .next()
            .map_or(Ok(0), str::parse)
            .context("--user GID")?;
    }
    Ok(p)
}

fn exec(
    dir: &Path,
    spec: sentry::boot::loader::ProcessSpec,
    detach: bool,
    (console, size): (Option<&Path>, Option<oci_spec::runtime::Box>),
    pid_file: Option<&Path>,
) -> anyhow::Result<i32> {
    if state::status(dir) != Status::Running {
        bail!("cannot exec in a container that is not running");
    }
    let stdio = container_stdio(spec.terminal, console, size)?;
    let present = StdioPresent {
        stdin: true,
        stdout: !spec.terminal,
        stderr: !spec.terminal,
    };
    let terminal = spec.terminal;
    let conn = monitor::connect(dir)?;
    let borrowed: Vec<BorrowedFd<'_>> = stdio.iter().map(AsFd::as_fd).collect();
    let Reply::Pid(pid) = monitor::call(
        &conn,
        &Call::Exec {
            spec: Box::new(spec),
            stdio: present,
        },
        &borrowed,
    )?
    else {
        bail!("unexpected answer to exec");
    };
    if detach || terminal {
        // A waiter process holds the connection and ends with the process: its PID is the
        // one engines wait for. With a terminal it is also the pty's controlling process,
        // which forwards what the host raises on it (see `console`).
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg(EXEC_WAIT_ARG)
            .stdin(std::process::Stdio::from(conn.into_fd()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(slave) = stdio.into_iter().next().filter(|_| terminal) {
            cmd.arg(dir).arg(pid.to_string());
            cmd.stdout(std::process::Stdio::from(slave));
        }
        let mut waiter = cmd.spawn().context("starting the exec waiter")?;
        if detach {
            if let Some(p) = pid_file {
                write_pid_file(p, waiter.id())?;
            }
            return Ok(0);
        }
        if let Some(p) = pid_file {
            write_pid_file(p, std::process::id())?;
        }
        let status = waiter.wait()?;
        return Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }));
    }
    drop(stdio);
    if let Some(p) = pid_file {
        write_pid_file(p, std::process::id())?;
    }
    match monitor::read_reply(&conn)? {
        Reply::Exited(status) => Ok(i32::try_from(status.code()).unwrap_or(255)),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// The hidden subcommand of the exec waiter.
pub const EXEC_WAIT_ARG: &str = "oci-exec-wait";

/// The waiter: the connection is its stdin; it ends as the exec process ended. With a
/// terminal its arguments are the state directory and the process's PID in the sandbox, and
/// its stdout is the pty slave, which becomes its controlling terminal.
pub fn exec_wait_main() -> i32 {
    console::block_terminal_signals();
    let _ = nix::unistd::setsid();
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return 255;
    };
    let args: Vec<String> = std::env::args().skip(2).collect();
    if let [dir, pid] = args.as_slice() {
        let (dir, pid) = (PathBuf::from(dir), pid.parse().ok());
        let forward = move |signo| {
            if let Ok(conn) = monitor::connect(&dir) {
                let _ = monitor::call(
                    &conn,
                    &Call::SignalForeground {
                        exec_pid: pid,
                        signo,
                    },
                    &[],
                );
            }
        };
        if let Err(e) = console::take_terminal(std::io::stdout().as_fd(), forward) {
            log::warn!("{e:#}");
        }
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(&null);
        }
    }
    match monitor::read_reply(&Channel::from_fd(fd)) {
        Ok(Reply::Exited(status)) => monitor::exit_like(status),
        _ => 255,
    }
}

fn list(g: &Globals, format: &str, quiet: bool) -> anyhow::Result<()> {
    let mut states = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&g.root) {
        for e in entries.flatten() {
            if let Ok(s) = state_json(&e.path()) {
                states.push(s);
            }
        }
    }
    states.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            writeln!(out, "{}", s["id"].as_str().unwrap_or_default())?;
        }
    } else if format == "json" {
        writeln!(out, "{}", serde_json::to_string(&states)?)?;
    } else {
        writeln!(out, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")?;
        for s in &states {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                s["id"].as_str().unwrap_or_default(),
                s["pid"],
                s["status"].as_str().unwrap_or_default(),
                s["bundle"].as_str().unwrap_or_default(),
                s["created"].as_str().unwrap_or_default(),
                s["owner"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
