//! The sandbox process: launching it and the typed handle on its Loader.
//!
//! The sandbox is this same binary re-executed as `containerd-shim-runsc-rs-v2 sandbox`
//! (the hidden subcommand in `main.rs`), with the control channel as its stdin and the
//! bundle's `log` FIFO as its stderr; its stdout is `/dev/null`, or on cgroup v2 its
//! cgroup's `cgroup.procs` until it has joined (see [`sentry::boot::cgroup`]). It is a separate process because the sentry is a
//! ptrace tracer and the shim's child reaper (`waitpid(-1)`) would steal its ptrace stops,
//! and because the sentry must not share a process with the containerd socket.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use sentry::boot::control::{self, Channel, Client, Event, Request, Response};

use crate::error::{Error, Result};
use sentry::boot::cgroup::{Placement, SandboxCgroup};
use sentry::boot::sandbox::KeptWatch;

/// Name of the file in the bundle that records the sandbox's host PID, for the `delete`
/// action when the shim is gone.
pub const PID_FILE: &str = "sandbox.pid";

/// A running sandbox process.
#[derive(Debug)]
pub struct Sandbox {
    client: Client,
    pid: u32,
    /// The sandbox's hostfs inotify instance, closed off-thread when this is dropped.
    _watch: Option<KeptWatch>,
}

/// Where the sandbox's log goes: the bundle's `log` FIFO containerd reads, or nowhere.
/// It stays non-blocking: a log line lost while containerd is away is better than a sandbox
/// stalled on a full FIFO.
fn log_sink(bundle: &Path) -> Stdio {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(bundle.join("log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl Sandbox {
    /// Starts the sandbox process, in `cgroup` and in the network namespace `netns` (a
    /// namespace file such as `/var/run/netns/NAME`, whose links the sentry's stack then
    /// takes: `--network sandbox`) or else a new one with loopback only; its events
    /// (process exits, then `None` when it is gone) arrive on the returned receiver.
    /// `profile` is passed on to the sandbox
    /// ([`sentry::boot::profile::ProfileFile::sandbox_args`]).
    ///
    /// # Errors
    /// The process or the channel could not be set up, the cgroup or the namespace could
    /// not be entered.
    pub fn launch(
        bundle: &Path,
        debug: bool,
        cgroup: Option<&SandboxCgroup>,
        netns: Option<&Path>,
        profile: &[String],
    ) -> Result<(Sandbox, mpsc::Receiver<Option<Event>>)> {
        let (ours, theirs) = Channel::pair().map_err(|e| match e {
            control::Error::Io { source, .. } => Error::Launch(source.into()),
            other => Error::Launch(std::io::Error::other(other)),
        })?;
        let mut cmd = Command::new("/proc/self/exe");
        // No environment: the sandbox must not learn containerd's addresses. The one variable
        // it gets caps glibc's malloc arenas: without a cap, once a process has more than 8
        // arenas (busy pods have many threads) glibc counts the CPUs by opening
        // /sys/devices/system/cpu/online and /proc/stat by path, host calls the seccomp
        // allowlist kills the sandbox for.
        cmd.arg("sandbox")
            .env_clear()
            .env("MALLOC_ARENA_MAX", "8")
            .current_dir(bundle)
            .stdin(Stdio::from(theirs.into_fd()))
            .stdout(Stdio::null())
            .stderr(log_sink(bundle));
        if debug {
            cmd.arg("--debug");
        }
        // `--seccomp-profile-out PATH`: the spec's learned-profile annotation.
        cmd.args(profile);
        let mut entry = Entry::default();
        match cgroup.map(SandboxCgroup::placement).transpose()? {
            Some(Placement::JoinThread(tasks)) => entry.cgroup_tasks = tasks,
            Some(Placement::ProcsOnStdout(procs)) => {
                cmd.arg("--join-cgroup").stdout(Stdio::from(procs));
            }
            None => {}
        }
        if let Some(path) = netns {
            let file = std::fs::File::open(path).map_err(|source| Error::Io {
                op: "opening the network namespace",
                path: path.to_path_buf(),
                source,
            })?;
            entry.netns = Some((file, path.to_path_buf()));
            cmd.args(["--network", "sandbox"]);
        }
        // The hostfs inotify instance: made here, so that its last close (slow: see
        // `KeptWatch`) is ours, after the sandbox is gone, and not the sandbox's exit.
        let watch = KeptWatch::new();
        if let Some(w) = &watch {
            cmd.args(w.sandbox_args());
        }
        let pid = spawn_in_new_pid_namespace(cmd, entry)?;
        if let Some(w) = &watch {
            w.spawned();
        }
        let (client, events) = Client::new(ours).map_err(Error::Launch)?;
        log::info!("sandbox process {pid} started");
        if let Err(e) = std::fs::write(bundle.join(PID_FILE), pid.to_string()) {
            log::warn!("recording the sandbox pid: {e}");
        }
        Ok((
            Sandbox {
                client,
                pid,
                _watch: watch,
            },
            events,
        ))
    }

    /// The sandbox process's host PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// One Loader call.
    ///
    /// # Errors
    /// The call failed in the sandbox, or the sandbox is gone.
    pub fn call(&self, request: &Request, fds: &[OwnedFd]) -> Result<Response> {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        Ok(self.client.call(request, &borrowed)?)
    }

    /// A call that answers with a PID.
    ///
    /// # Errors
    /// As [`Sandbox::call`].
    pub fn call_pid(&self, request: &Request) -> Result<i32> {
        self.call_pid_with(request, &[])
    }

    /// A call with `fds` that answers with a PID.
    ///
    /// # Errors
    /// As [`Sandbox::call`].
    pub fn call_pid_with(&self, request: &Request, fds: &[OwnedFd]) -> Result<i32> {
        match self.call(request, fds)? {
            Response::Pid(pid) => Ok(pid),
            other => {
                log::warn!("unexpected answer {other:?}");
                Err(Error::SandboxGone)
            }
        }
    }
}

/// What the spawning thread enters before it spawns, for the child to inherit.
#[derive(Debug, Default)]
struct Entry {
    /// cgroup v1 `tasks` files the thread joins.
    cgroup_tasks: Vec<PathBuf>,
    /// The network namespace to join (and its path, for errors); none: the sandbox makes a
    /// new empty one itself.
    netns: Option<(std::fs::File, PathBuf)>,
}

/// Starts `cmd` as PID 1 of a new PID namespace: the sandbox sees no host process, and when
/// it ends the kernel kills everything left in it (its ptrace stubs). The namespace is
/// unshared by a short-lived thread, so only that thread's children land in it; the shim's
/// own threads keep creating children in the host namespace. The same thread first joins
/// the cgroup v1 `tasks` files and the pod's network namespace (`setns` also changes only
/// the calling thread), so the sandbox is born in them.
///
/// The shim's reaper collects the process; the control channel's EOF tells us it is gone.
fn spawn_in_new_pid_namespace(mut cmd: Command, entry: Entry) -> Result<u32> {
    let spawner = std::thread::Builder::new()
        .name("sandbox-spawn".into())
        .spawn(move || {
            let tid = nix::unistd::gettid().to_string();
            for tasks in &entry.cgroup_tasks {
                std::fs::write(tasks, &tid).map_err(|source| Error::Io {
                    op: "joining",
                    path: tasks.clone(),
                    source,
                })?;
            }
            if let Some((netns, path)) = &entry.netns {
                nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    Error::Io {
                        op: "joining the network namespace",
                        path: path.clone(),
                        source: e.into(),
                    }
                })?;
            }
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::Launch(e.into()))?;
            cmd.spawn().map(|c| c.id()).map_err(Error::Launch)
        })
        .map_err(Error::Launch)?;
    spawner
        .join()
        .map_err(|_| Error::Launch(std::io::Error::other("the spawner thread panicked")))?
}

/// Cleans up after a sandbox whose shim is gone: kills it if it still runs.
pub fn kill_recorded(bundle: &Path) {
    let Ok(text) = std::fs::read_to_string(bundle.join(PID_FILE)) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    // Only kill it if the PID still names one of our sandbox processes.
    let is_ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).nth(1) == Some(b"sandbox".as_slice()))
        .unwrap_or(false);
    if is_ours {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_file(bundle.join(PID_FILE));
}
