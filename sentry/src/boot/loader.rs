//! The Loader: one sandbox kernel and the containers and processes running in it.
//!
//! Mirrors gVisor's `runsc/boot/loader.go`. The containerd shim drives it over the control
//! channel ([`super::control`]); each shim Task call maps onto one method here:
//! [`Loader::create_container`], [`Loader::start_container`], [`Loader::add_exec`] +
//! [`Loader::execute_async`], [`Loader::signal`], [`Loader::wait_pid`],
//! [`Loader::processes`], [`Loader::destroy_container`].
//!
//! Every process the Loader starts (a container's init or an exec) is a new init-like thread
//! group in the same kernel: its own address space, fd table and credentials.
//!
//! # Interim limits (until the kernel grows them)
//! - Executables are read from the container's rootfs directory on the host, resolving
//!   symlinks as if the rootfs were `/`; the running program's own file accesses are whatever
//!   the sentry's filesystem layer does (the `--rootfs` lower layer is landing separately).
//! - The kernel has no signal delivery yet. [`Loader::signal`] applies the default action of
//!   the signal: ignore-by-default signals are dropped, stop signals are refused, the rest
//!   terminate the thread group (its exit status is recorded at once, its fd table is emptied
//!   so its output streams close, and its threads stop at their next return to the sentry).
//! - [`Loader::processes`] lists the processes the Loader started, not their children.
//!
//! # Lock order
//! `Loader::inner` → kernel locks (`ThreadGroup::state`, `FdTable::files`, ...).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use platform::CpuState;
use serde::{Deserialize, Serialize};

use crate::kernel::task::Creds;
use crate::kernel::{ExitStatus, FdTable, Kernel, KernelConfig, Task, TaskInit, ThreadGroup};
use crate::loader::{self as elf, AuxIds, ExecArgs};
use crate::memory::MemoryFile;
use crate::mm::MemoryManager;
use crate::vfs::host::HostFile;
use crate::vfs::OpenFile;

/// Most symbolic links followed while resolving one path (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// `PATH` used when the spec's environment has none (runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors of Loader calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} not found")]
    NoContainer(String),
    #[error("process {1:?} of container {0:?} not found")]
    NoProcess(String, ProcessRef),
    #[error("{0}: executable file not found in the container")]
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
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Load { path: PathBuf, source: elf::Error },
    #[error("starting a task: {0}")]
    Spawn(std::io::Error),
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
    pub umask: Option<u32>,
    pub terminal: bool,
}

/// A container as the sandbox needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The container's root filesystem (a host directory the shim prepared).
    pub rootfs: PathBuf,
    /// `uname` nodename; the first container's hostname names the sandbox.
    pub hostname: Option<String>,
    pub process: ProcessSpec,
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
    /// PID inside the sandbox.
    pub pid: i32,
    pub process: ProcessRef,
    /// The command (argv\[0\]).
    pub cmd: String,
}

/// How the Loader's kernel is built.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Platform name (`ptrace`).
    pub platform: String,
    /// Print one line per system call.
    pub strace: bool,
}

/// A thread group the Loader started.
struct Running {
    pid: i32,
    tg: Arc<ThreadGroup>,
    fds: Arc<FdTable>,
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
    rootfs: PathBuf,
    processes: HashMap<ProcessRef, Process>,
}

#[derive(Default)]
struct Inner {
    containers: HashMap<String, Container>,
}

/// The sandbox's kernel and everything running in it.
pub struct Loader {
    kernel: Arc<Kernel>,
    inner: Mutex<Inner>,
    /// Signalled whenever a process's state becomes `Exited`.
    exited: Condvar,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

/// What the default action of `signo` is, as signal(7) lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultAction {
    Ignore,
    Stop,
    Terminate,
}

fn default_action(signo: i32) -> DefaultAction {
    match signo {
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH => DefaultAction::Ignore,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => DefaultAction::Stop,
        _ => DefaultAction::Terminate,
    }
}

impl Loader {
    /// Creates the memory file, the platform and the kernel.
    ///
    /// # Errors
    /// Host setup failures (memfd, platform).
    pub fn new(config: &LoaderConfig) -> Result<Arc<Loader>, Error> {
        let memory = Arc::new(MemoryFile::new()?);
        let platform = platform::create(&config.platform, memory.fd())?;
        let kernel = Kernel::new(
            platform,
            memory,
            KernelConfig {
                strace: config.strace,
                hostname: "runsc-rs".into(),
            },
        );
        Ok(Arc::new(Loader {
            kernel,
            inner: Mutex::new(Inner::default()),
            exited: Condvar::new(),
        }))
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
        spec: ContainerSpec,
        stdio: Stdio,
    ) -> Result<(), Error> {
        check_process(&spec.process)?;
        find_executable(&spec.rootfs, &spec.process)?;
        let mut inner = self.lock();
        if inner.containers.contains_key(id) {
            return Err(Error::Exists(id.to_owned()));
        }
        if inner.containers.is_empty() {
            if let Some(h) = spec.hostname.as_ref().filter(|h| !h.is_empty()) {
                h.clone_into(&mut self.kernel.hostname.lock().unwrap());
            }
        }
        let init = Process {
            spec: spec.process,
            state: ProcessState::Created(stdio),
        };
        inner.containers.insert(
            id.to_owned(),
            Container {
                rootfs: spec.rootfs,
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
        if !matches!(
            c.processes.get(&ProcessRef::Init).map(|p| &p.state),
            Some(ProcessState::Running(_))
        ) {
            return Err(Error::NotRunning(id.to_owned(), ProcessRef::Init));
        }
        find_executable(&c.rootfs, &spec)?;
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
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        let rootfs = c.rootfs.clone();
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
        let running = match self.spawn(&rootfs, &p.spec, stdio) {
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
            for p in c.processes.values_mut() {
                terminate(p, libc::SIGKILL);
            }
        }
        self.exited.notify_all();
    }

    /// Sends `signo` to `target` in container `id` (see the module doc for what delivery means
    /// today). Signal 0 only checks that the target exists.
    ///
    /// # Errors
    /// `NoContainer`, `NoProcess`, `NotRunning`, `BadSignal`, `Unsupported` (stop signals).
    pub fn signal(&self, id: &str, target: &SignalTarget, signo: i32) -> Result<(), Error> {
        if !(0..=64).contains(&signo) {
            return Err(Error::BadSignal(signo));
        }
        let action = default_action(signo);
        if action == DefaultAction::Stop {
            return Err(Error::Unsupported("job-control stop signals"));
        }
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        match target {
            SignalTarget::All => {
                if signo != 0 && action == DefaultAction::Terminate {
                    for p in c.processes.values_mut() {
                        terminate(p, signo);
                    }
                }
            }
            SignalTarget::Process(which) => {
                let p = c
                    .processes
                    .get_mut(which)
                    .ok_or_else(|| Error::NoProcess(id.to_owned(), which.clone()))?;
                match &p.state {
                    ProcessState::Exited(_) => {
                        return Err(Error::NotRunning(id.to_owned(), which.clone()))
                    }
                    ProcessState::Created(_) if signo == 0 => {
                        return Err(Error::NotRunning(id.to_owned(), which.clone()))
                    }
                    _ => {}
                }
                if signo != 0 && action == DefaultAction::Terminate {
                    terminate(p, signo);
                    if *which == ProcessRef::Init {
                        for p in c.processes.values_mut() {
                            terminate(p, libc::SIGKILL);
                        }
                    }
                }
            }
        }
        self.exited.notify_all();
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

    /// The running processes of container `id`.
    ///
    /// # Errors
    /// `NoContainer`.
    pub fn processes(&self, id: &str) -> Result<Vec<ProcessInfo>, Error> {
        let mut inner = self.lock();
        let c = container(&mut inner, id)?;
        let mut list: Vec<ProcessInfo> = c
            .processes
            .iter()
            .filter_map(|(which, p)| match &p.state {
                ProcessState::Running(r) => Some(ProcessInfo {
                    pid: r.pid,
                    process: which.clone(),
                    cmd: p.spec.args.first().cloned().unwrap_or_default(),
                }),
                _ => None,
            })
            .collect();
        list.sort_by_key(|p| p.pid);
        Ok(list)
    }

    /// Kills every process of container `id` and forgets it.
    ///
    /// # Errors
    /// `NoContainer`.
    pub fn destroy_container(&self, id: &str) -> Result<(), Error> {
        let mut inner = self.lock();
        let mut c = inner
            .containers
            .remove(id)
            .ok_or_else(|| Error::NoContainer(id.to_owned()))?;
        for p in c.processes.values_mut() {
            terminate(p, libc::SIGKILL);
        }
        self.exited.notify_all();
        log::info!("container {id} destroyed");
        Ok(())
    }

    /// True when no container is left.
    pub fn is_empty(&self) -> bool {
        self.lock().containers.is_empty()
    }

    /// Loads `spec`'s executable from `rootfs` into a new address space and starts it as a
    /// new thread group.
    fn spawn(&self, rootfs: &Path, spec: &ProcessSpec, stdio: Stdio) -> Result<Running, Error> {
        let kernel = &self.kernel;
        let (host_path, guest_path) = find_executable(rootfs, spec)?;
        let image = std::fs::read(&host_path).map_err(|source| Error::Read {
            path: host_path.clone(),
            source,
        })?;
        let mm = Arc::new(MemoryManager::new(
            kernel.memory.clone(),
            kernel.platform.new_address_space()?,
        ));
        let argv: Vec<Vec<u8>> = spec.args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let envp: Vec<Vec<u8>> = spec.env.iter().map(|e| e.as_bytes().to_vec()).collect();
        let mut random = [0u8; 16];
        rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).ok();
        let creds = Creds {
            uid: spec.uid,
            euid: spec.uid,
            suid: spec.uid,
            gid: spec.gid,
            egid: spec.gid,
            sgid: spec.gid,
        };
        let args = ExecArgs {
            image: &image,
            argv: &argv,
            envp: &envp,
            execfn: guest_path.as_bytes(),
            image_name: &guest_path,
            ids: AuxIds {
                uid: creds.uid,
                euid: creds.euid,
                gid: creds.gid,
                egid: creds.egid,
            },
            random,
        };
        let read_interp = |p: &str| {
            let host = resolve_in_root(rootfs, p).ok_or(nix::errno::Errno::ENOENT)?;
            std::fs::read(host)
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))
        };
        let loaded = elf::load(&mm, &args, &read_interp).map_err(|source| Error::Load {
            path: PathBuf::from(&guest_path),
            source,
        })?;
        if spec.cwd != "/" && !spec.cwd.is_empty() {
            log::debug!("cwd {:?} not applied: no filesystem layer yet", spec.cwd);
        }

        let fds = Arc::new(FdTable::new());
        let streams = [
            (stdio.stdin, libc::O_RDONLY),
            (stdio.stdout, libc::O_WRONLY),
            (stdio.stderr, libc::O_WRONLY),
        ];
        for (fd, (host, flags)) in (0..).zip(streams) {
            if let Some(host) = host {
                let file = OpenFile::new(Arc::new(HostFile::new(host)), flags as u32);
                fds.install_at(fd, file, false);
            }
        }

        let pid = kernel.alloc_tid();
        let tg = Arc::new(ThreadGroup::new(pid, 0));
        let init = TaskInit {
            kernel: kernel.clone(),
            tid: pid,
            tg: tg.clone(),
            mm,
            cpu: CpuState::new(loaded.entry, loaded.sp),
            fds: fds.clone(),
            creds,
            umask: spec.umask.unwrap_or(0o022),
        };
        // The task thread runs detached; the reaper waits on the thread group instead.
        drop(Task::spawn(init).map_err(Error::Spawn)?);
        Ok(Running { pid, tg, fds })
    }
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
    if spec.terminal {
        return Err(Error::Unsupported("terminal=true (no tty layer yet)"));
    }
    Ok(())
}

/// Ends `p` by `signo`'s default action (the interim delivery described in the module doc).
/// A created process that never ran ends as if killed before its first instruction.
fn terminate(p: &mut Process, signo: i32) {
    let status = ExitStatus::Signaled { signo, core: false };
    match &p.state {
        ProcessState::Running(r) => {
            r.tg.set_exit(status);
            // Closing the fds ends the process's hold on its stdio even while one of its
            // threads is parked in a blocking system call.
            r.fds.close_range(0, i32::MAX, false);
        }
        ProcessState::Created(_) => {}
        ProcessState::Exited(_) => return,
    }
    p.state = ProcessState::Exited(status);
}

/// Finds the executable of `spec` inside `rootfs`: `args[0]` as a path if it has a slash
/// (relative to the spec's cwd), else the first match on the spec's `PATH`. Returns the host
/// path and the path the container sees.
fn find_executable(rootfs: &Path, spec: &ProcessSpec) -> Result<(PathBuf, String), Error> {
    let cmd = spec
        .args
        .first()
        .ok_or(Error::BadSpec("args must not be empty"))?;
    let candidates: Vec<String> = if cmd.contains('/') {
        if cmd.starts_with('/') {
            vec![cmd.clone()]
        } else {
            vec![format!("{}/{cmd}", spec.cwd.trim_end_matches('/'))]
        }
    } else {
        let path_var = spec
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path_var
            .split(':')
            .map(|d| format!("{}/{cmd}", if d.is_empty() { "." } else { d }))
            .collect()
    };
    candidates
        .into_iter()
        .find_map(|guest| {
            let host = resolve_in_root(rootfs, &guest)?;
            host.is_file().then_some((host, guest))
        })
        .ok_or_else(|| Error::NotFound(cmd.clone()))
}

/// Resolves `path` as a process whose root directory is `root` would: symbolic links
/// (absolute ones relative to `root`) and `..` never leave `root`. Returns the host path of
/// an existing file, or `None`.
fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    // Components still to walk, the next one last.
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let host = resolved
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&c);
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return None;
            }
            let target = std::fs::read_link(&host).ok()?;
            let target = target.to_str()?;
            if target.starts_with('/') {
                resolved.clear();
            }
            pending.extend(target.split('/').rev().map(str::to_owned));
        } else {
            resolved.push(c);
        }
    }
    Some(resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loader-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::write(dir.join("bin/busybox"), b"\x7fELF").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", dir.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("../../bin/busybox", dir.join("usr/bin/env")).unwrap();
        std::os::unix::fs::symlink("../../../../../bin/busybox", dir.join("usr/bin/up")).unwrap();
        std::os::unix::fs::symlink("/bin", dir.join("sbin")).unwrap();
        dir
    }

    fn spec(args: &[&str]) -> ProcessSpec {
        ProcessSpec {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/usr/bin:/sbin".into()],
            cwd: "/".into(),
            ..ProcessSpec::default()
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = rootfs("resolve");
        let busybox = root.join("bin/busybox");
        assert_eq!(resolve_in_root(&root, "/bin/sh"), Some(busybox.clone()));
        assert_eq!(
            resolve_in_root(&root, "/usr/bin/env"),
            Some(busybox.clone())
        );
        assert_eq!(resolve_in_root(&root, "/usr/bin/up"), Some(busybox.clone()));
        assert_eq!(resolve_in_root(&root, "/../../sbin/sh"), Some(busybox));
        assert_eq!(resolve_in_root(&root, "/bin/nope"), None);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn executables_are_found_on_the_spec_path() {
        let root = rootfs("path");
        let (host, guest) = find_executable(&root, &spec(&["sh", "-c", "true"])).unwrap();
        assert_eq!(host, root.join("bin/busybox"));
        assert_eq!(guest, "/sbin/sh");
        let (_, guest) = find_executable(&root, &spec(&["/bin/sh"])).unwrap();
        assert_eq!(guest, "/bin/sh");
        assert!(matches!(
            find_executable(&root, &spec(&["nope"])),
            Err(Error::NotFound(_))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn default_actions_follow_signal_7() {
        assert_eq!(default_action(libc::SIGKILL), DefaultAction::Terminate);
        assert_eq!(default_action(libc::SIGTERM), DefaultAction::Terminate);
        assert_eq!(default_action(libc::SIGWINCH), DefaultAction::Ignore);
        assert_eq!(default_action(libc::SIGTSTP), DefaultAction::Stop);
    }

    #[test]
    fn terminal_is_refused() {
        let mut s = spec(&["sh"]);
        s.terminal = true;
        assert!(matches!(check_process(&s), Err(Error::Unsupported(_))));
        assert!(matches!(check_process(&spec(&[])), Err(Error::BadSpec(_))));
    }
}
