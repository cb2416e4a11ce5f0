//! The containerd Task service: each call maps onto Loader calls in the sandbox process.
//!
//! State machine per process: `Created` → (Start) → `Running` → (exit event) → `Stopped`
//! → (Delete) gone. A `Created` process that is killed goes straight to `Stopped`.
//!
//! PIDs: a container's init reports the sandbox process's host PID (what containerd and
//! its cgroup/netns plumbing expect of a task PID); exec processes report their PID inside
//! the sandbox, as gVisor's shim does.
//!
//! OOM: the sandbox's cgroup is shared by all its containers, so when the kernel's OOM
//! killer strikes in it, every container with a running process gets TaskOOM. A watcher
//! thread per sandbox cgroup publishes it as soon as the kernel notifies, and an exit that
//! may come from an OOM kill (a SIGKILL status, the sandbox process gone) re-checks the
//! cgroup's OOM-kill count first, so TaskOOM always precedes the TaskExit it caused.
//!
//! # Lock order
//! `Shared::state` is held across sandbox calls so that a process's exit event (handled on
//! the event thread, which takes the same lock) is never published before the call that
//! started the process has published TaskStart. TaskOOM is published under it too.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, Status,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::event::Event as TaskEvent;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::shim::shim::CheckpointTaskRequest;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Context, ExitSignal, Task, TtrpcContext, TtrpcResult};
use sentry::boot::control::{Event, ProcessRef, Request, Response};
use sentry::boot::loader::SignalTarget;
use sentry::boot::profile::ProfileFile;

use oci_spec::runtime::{LinuxResources, Spec};

use crate::cgroup::CgroupMetrics;
use crate::error::{Error, Result};
use crate::image;
use crate::io::{self, Console, Opened, StdinHandle};
use crate::sandbox::{self, Sandbox};
use sentry::boot::cgroup::SandboxCgroup;
use sentry::boot::spec;

/// The CRI annotation saying whether a container is a pod's sandbox container.
const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";

/// Lifecycle of one process as containerd sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcStatus {
    Created,
    Running,
    Stopped,
}

#[derive(Debug)]
struct Proc {
    pid: u32,
    status: ProcStatus,
    exit_status: u32,
    exited_at: Option<Timestamp>,
    stdin: String,
    stdout: String,
    stderr: String,
    stdin_handle: StdinHandle,
    /// The host pty of a `terminal: true` process.
    console: Option<Arc<Console>>,
}

impl Proc {
    fn new(
        stdin: &str,
        stdout: &str,
        stderr: &str,
        stdin_handle: StdinHandle,
        console: Option<Console>,
    ) -> Proc {
        Proc {
            console: console.map(Arc::new),
            pid: 0,
            status: ProcStatus::Created,
            exit_status: 0,
            exited_at: None,
            stdin: stdin.to_owned(),
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            stdin_handle,
        }
    }

    /// Marks the process finished with `code`; false if it already was.
    fn stop(&mut self, code: u32) -> bool {
        if self.status == ProcStatus::Stopped {
            return false;
        }
        self.status = ProcStatus::Stopped;
        self.exit_status = code;
        self.exited_at = Some(now());
        self.stdin_handle.close();
        true
    }
}

#[derive(Debug)]
struct Container {
    bundle: PathBuf,
    /// Where the shim mounted `CreateTaskRequest.rootfs`, if it did.
    mounted_rootfs: Option<PathBuf>,
    init: Proc,
    execs: HashMap<String, Proc>,
    /// `kernel.json` and `memory.bin` of the checkpoint image the container was created
    /// from (CreateTaskRequest.checkpoint), opened at Create: its Start restores them
    /// instead of running the init's program.
    restore_from: Option<[OwnedFd; 2]>,
}

impl Container {
    fn process(&self, id: &str, exec_id: &str) -> Result<&Proc> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| Error::NoProcess {
            id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        })
    }

    fn process_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs.get_mut(exec_id).ok_or_else(|| Error::NoProcess {
            id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        })
    }
}

#[derive(Debug, Default)]
struct State {
    sandbox: Option<Arc<Sandbox>>,
    /// The sandbox's cgroup, when it has one (see [`sentry::boot::cgroup`]).
    cgroup: Option<SandboxCgroup>,
    /// The sandbox is frozen (Pause): every running process reports PAUSED.
    paused: bool,
    /// The cgroup's OOM-kill count already reported with TaskOOM.
    oom_kills: u64,
    containers: HashMap<String, Container>,
}

impl State {
    fn container(&mut self, id: &str) -> Result<&mut Container> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Error::NoContainer(id.to_owned()))
    }

    fn sandbox(&self) -> Result<Arc<Sandbox>> {
        self.sandbox.clone().ok_or(Error::SandboxGone)
    }

    fn cgroup(&self) -> Result<&SandboxCgroup> {
        self.cgroup.as_ref().ok_or(Error::Unsupported(
            "the sandbox has no cgroup (no usable linux.cgroupsPath)",
        ))
    }

    /// The sandbox process is gone: its cgroup can go too.
    fn remove_cgroup(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
        self.paused = false;
    }
}

struct Shared {
    namespace: String,
    publisher: RemotePublisher,
    debug: bool,
    exit: Arc<ExitSignal>,
    state: Mutex<State>,
    /// Signalled whenever a process stops.
    stopped: Condvar,
}

/// The Task service of one shim (one sandbox).
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Timestamp::new();
    t.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    t.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    t
}

fn exec_ref(exec_id: &str) -> ProcessRef {
    if exec_id.is_empty() {
        ProcessRef::Init
    } else {
        ProcessRef::Exec(exec_id.to_owned())
    }
}

/// The `INFO` of an exec process in `ctr task ps`: runc's `containerd.runc.v1.ProcessDetails`
/// (`message ProcessDetails { string exec_id = 1; }`), which containerd's clients know how to
/// decode. The crate has no type for it; one length-delimited field is encoded by hand.
fn process_details(exec_id: &str) -> Any {
    let mut value = vec![0x0a]; // field 1, wire type 2 (length-delimited)
    let mut len = exec_id.len();
    while len >= 0x80 {
        value.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    value.push(len as u8);
    value.extend_from_slice(exec_id.as_bytes());
    Any {
        type_url: "containerd.runc.v1.ProcessDetails".to_owned(),
        value,
        ..Default::default()
    }
}

/// How long an exit waits for the process's terminal output to drain into its FIFO.
const CONSOLE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

fn unmount(rootfs: &Path) {
    if let Err(e) = containerd_shim::mount::umount_recursive(rootfs.to_str(), libc::MNT_DETACH) {
        log::warn!("unmounting {}: {e}", rootfs.display());
    }
}

impl Service {
    /// A service publishing events to containerd in `namespace`; `exit` is signalled when the
    /// shim may stop.
    pub fn new(
        namespace: &str,
        publisher: RemotePublisher,
        debug: bool,
        exit: Arc<ExitSignal>,
    ) -> Service {
        Service {
            shared: Arc::new(Shared {
                namespace: namespace.to_owned(),
                publisher,
                debug,
                exit,
                state: Mutex::new(State::default()),
                stopped: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    fn publish(&self, event: impl TaskEvent + 'static) {
        let topic = event.topic();
        if let Err(e) = self.shared.publisher.publish(
            Context::default(),
            &topic,
            &self.shared.namespace,
            Box::new(event),
        ) {
            log::warn!("publishing {topic}: {e}");
        }
    }

    /// Returns the sandbox, launching it (and its event thread) on first use, in the cgroup
    /// and with the resources of `oci` (the spec of the container that starts it).
    fn sandbox_for(&self, st: &mut State, bundle: &Path, oci: &Spec) -> Result<Arc<Sandbox>> {
        if let Some(s) = &st.sandbox {
            return Ok(s.clone());
        }
        let linux = oci.linux().as_ref();
        let cgroup = match linux.and_then(|l| l.cgroups_path().as_ref()) {
            Some(path) => SandboxCgroup::create(&path.to_string_lossy())?,
            None => None,
        };
        // A pod's sandbox ("pause") container carries tiny limits of its own (cpu.shares 2)
        // meant for the pause process alone; the sandbox runs the whole pod, so they are not
        // applied to it.
        let is_pod_sandbox = oci
            .annotations()
            .as_ref()
            .and_then(|a| a.get(CONTAINER_TYPE_ANNOTATION))
            .is_some_and(|t| t == "sandbox");
        if let (Some(cg), Some(resources), false) = (
            &cgroup,
            linux.and_then(|l| l.resources().as_ref()),
            is_pod_sandbox,
        ) {
            cg.update(resources)?;
        }
        let netns = spec::network_namespace(oci);
        let oom_notifier = match cgroup.as_ref().map(SandboxCgroup::oom_notifier) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                log::warn!("no OOM notifications for the sandbox: {e}");
                None
            }
            None => None,
        };
        // The learned-profile annotation of the container that starts the sandbox (a pod's
        // sandbox container) covers every container the sandbox runs.
        let profile = ProfileFile::sandbox_args(oci.annotations().as_ref());
        let (sandbox, events) = Sandbox::launch(
            bundle,
            self.shared.debug,
            cgroup.as_ref(),
            netns.as_deref(),
            &profile,
        )?;
        st.oom_kills = cgroup
            .as_ref()
            .and_then(SandboxCgroup::oom_kills)
            .unwrap_or(0);
        st.cgroup = cgroup;
        st.paused = false;
        if let Some(notifier) = oom_notifier {
            let this = self.clone();
            let watcher = std::thread::Builder::new()
                .name("sandbox-oom".into())
                .spawn(move || {
                    while notifier.wait() {
                        this.publish_ooms(&mut this.lock());
                    }
                });
            // Without it, the exit paths still report the OOM before the exit.
            if let Err(e) = watcher {
                log::warn!("no OOM watcher for the sandbox: {e}");
            }
        }
        let sandbox = Arc::new(sandbox);
        st.sandbox = Some(sandbox.clone());
        let (this, pid) = (self.clone(), sandbox.pid());
        std::thread::Builder::new()
            .name("sandbox-events".into())
            .spawn(move || this.event_loop(pid, &events))
            .map_err(Error::Launch)?;
        Ok(sandbox)
    }

    fn event_loop(&self, sandbox_pid: u32, events: &mpsc::Receiver<Option<Event>>) {
        while let Ok(Some(event)) = events.recv() {
            match event {
                Event::Exited {
                    id,
                    process,
                    status,
                } => {
                    // Everything the process wrote to its terminal reaches containerd
                    // before its exit does.
                    if let Some(console) = self.console_of(&id, &process) {
                        console.wait_output(CONSOLE_DRAIN);
                    }
                    self.process_exited(&id, &process, status.code());
                }
            }
        }
        self.sandbox_gone(sandbox_pid);
    }

    /// A process's stdio: containerd's FIFOs, or a host pty for `terminal: true`, whose
    /// typed `^C` and friends become signals to the terminal's foreground group.
    fn open_stdio(
        &self,
        id: &str,
        exec_id: &str,
        terminal: bool,
        (stdin, stdout, stderr): (&str, &str, &str),
    ) -> Result<(Opened, Option<Console>)> {
        if !terminal {
            return Ok((io::open(stdin, stdout, stderr)?, None));
        }
        let (this, id, process) = (self.clone(), id.to_owned(), exec_ref(exec_id));
        let signal_foreground = Box::new(move |signo: i32| {
            let Ok(sandbox) = this.lock().sandbox() else {
                return;
            };
            let request = Request::SignalForeground {
                id: id.clone(),
                process: process.clone(),
                signo,
            };
            if let Err(e) = sandbox.call(&request, &[]) {
                log::debug!("typed signal {signo} for {id}: {e}");
            }
        });
        let (opened, console) = io::open_console(stdin, stdout, signal_foreground)?;
        Ok((opened, Some(console)))
    }

    fn console_of(&self, id: &str, process: &ProcessRef) -> Option<Arc<Console>> {
        let mut st = self.lock();
        let exec_id = match process {
            ProcessRef::Init => "",
            ProcessRef::Exec(e) => e.as_str(),
        };
        let c = st.container(id).ok()?;
        c.process(id, exec_id).ok()?.console.clone()
    }

    /// Publishes TaskOOM for every container with a running process if the sandbox cgroup's
    /// OOM-kill count went up since the last look.
    fn publish_ooms(&self, st: &mut State) {
        let Some(count) = st.cgroup.as_ref().and_then(SandboxCgroup::oom_kills) else {
            return;
        };
        if count <= st.oom_kills {
            return;
        }
        log::info!(
            "the OOM killer struck in the sandbox's cgroup ({} kill(s))",
            count - st.oom_kills
        );
        st.oom_kills = count;
        for (id, c) in &st.containers {
            let running = std::iter::once(&c.init)
                .chain(c.execs.values())
                .any(|p| p.status == ProcStatus::Running);
            if running {
                self.publish(TaskOOM {
                    container_id: id.clone(),
                    ..Default::default()
                });
            }
        }
    }

    fn process_exited(&self, id: &str, process: &ProcessRef, code: u32) {
        let mut st = self.lock();
        if code == 128 + libc::SIGKILL as u32 {
            self.publish_ooms(&mut st);
        }
        let Some(c) = st.containers.get_mut(id) else {
            return;
        };
        let exec_id = match process {
            ProcessRef::Init => "",
            ProcessRef::Exec(e) => e.as_str(),
        };
        let Ok(p) = c.process_mut(id, exec_id) else {
            return;
        };
        if p.stop(code) {
            let pid = p.pid;
            let exited_at = p.exited_at.clone();
            self.publish_exit(id, exec_id, pid, code, exited_at);
        }
        self.shared.stopped.notify_all();
    }

    fn publish_exit(&self, id: &str, exec_id: &str, pid: u32, code: u32, at: Option<Timestamp>) {
        self.publish(TaskExit {
            container_id: id.to_owned(),
            id: if exec_id.is_empty() { id } else { exec_id }.to_owned(),
            pid,
            exit_status: code,
            exited_at: MessageField::from_option(at),
            ..Default::default()
        });
    }

    /// Sandbox `pid` is gone: every process still in it is finished (as if SIGKILLed).
    fn sandbox_gone(&self, pid: u32) {
        let mut st = self.lock();
        log::info!("sandbox process {pid} gone");
        match &st.sandbox {
            Some(s) if s.pid() == pid => st.sandbox = None,
            // Shut down after its last container was deleted; a later one may be running.
            _ => return,
        }
        self.publish_ooms(&mut st);
        let mut exits = Vec::new();
        for (id, c) in &mut st.containers {
            let procs = std::iter::once(("", &mut c.init))
                .chain(c.execs.iter_mut().map(|(e, p)| (e.as_str(), p)));
            for (exec_id, p) in procs {
                let was_running = p.status == ProcStatus::Running;
                if p.stop(128 + libc::SIGKILL as u32) && was_running {
                    exits.push((id.clone(), exec_id.to_owned(), p.pid, p.exited_at.clone()));
                }
            }
        }
        for (id, exec_id, pid, at) in exits {
            self.publish_exit(&id, &exec_id, pid, 128 + libc::SIGKILL as u32, at);
        }
        self.shared.stopped.notify_all();
    }

    fn do_create(&self, req: &CreateTaskRequest) -> Result<u32> {
        // Restore: the image is checked and opened now (containerd may remove its unpacked
        // copy), and restored at Start, when a runc task would run `runc restore`.
        let restore_from = if req.checkpoint.is_empty() {
            None
        } else {
            Some(image::open(Path::new(&req.checkpoint))?)
        };
        let bundle = PathBuf::from(&req.bundle);
        let mut st = self.lock();
        if st.containers.contains_key(&req.id) {
            return Err(Error::Exists(req.id.clone()));
        }
        let oci = spec::load(&bundle)?;
        let mut container = spec::container(&oci, &bundle)?;
        let mounted_rootfs = if req.rootfs.is_empty() {
            None
        } else {
            let target = bundle.join("rootfs");
            for m in &req.rootfs {
                if let Err(source) = containerd_shim::mount::mount_rootfs(
                    Some(m.type_.as_str()).filter(|t| !t.is_empty()),
                    Some(m.source.as_str()).filter(|s| !s.is_empty()),
                    &m.options,
                    &target,
                ) {
                    unmount(&target);
                    return Err(Error::Mount {
                        path: target,
                        source,
                    });
                }
            }
            container.rootfs.clone_from(&target);
            Some(target)
        };
        let cleanup = |e: Error| {
            if let Some(r) = &mounted_rootfs {
                unmount(r);
            }
            e
        };
        // The sandbox has no host filesystem: the rootfs and bind mount sources go as fds.
        let mut fds = spec::open_sources(&container, &bundle).map_err(|e| cleanup(e.into()))?;
        // containerd 1.6 (`ctr containers restore`) creates a restored task with FIFOs and
        // no terminal whatever its process had: the checkpointed console comes back on a pty
        // of the shim's all the same, whose FIFOs `ctr task attach` then reaches as a terminal.
        let terminal = req.terminal || (restore_from.is_some() && container.process.terminal);
        let stdio = (req.stdin.as_str(), req.stdout.as_str(), req.stderr.as_str());
        let (opened, console) = self
            .open_stdio(&req.id, "", terminal, stdio)
            .map_err(cleanup)?;
        fds.extend(opened.fds);
        let sandbox = self.sandbox_for(&mut st, &bundle, &oci).map_err(cleanup)?;
        sandbox
            .call(
                &Request::CreateContainer {
                    id: req.id.clone(),
                    spec: container,
                    stdio: opened.present,
                },
                &fds,
            )
            .map_err(cleanup)?;
        let mut init = Proc::new(&req.stdin, &req.stdout, &req.stderr, opened.stdin, console);
        init.pid = sandbox.pid();
        st.containers.insert(
            req.id.clone(),
            Container {
                bundle,
                mounted_rootfs,
                init,
                execs: HashMap::new(),
                restore_from,
            },
        );
        self.publish(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal,
                ..Default::default()
            }),
            pid: sandbox.pid(),
            ..Default::default()
        });
        log::info!("container {} created", req.id);
        Ok(sandbox.pid())
    }

    fn do_start(&self, id: &str, exec_id: &str) -> Result<u32> {
        let mut st = self.lock();
        let sandbox = st.sandbox();
        let c = st.container(id)?;
        let p = c.process(id, exec_id)?;
        match p.status {
            ProcStatus::Created => {}
            ProcStatus::Running => return Err(Error::AlreadyStarted(id.to_owned())),
            ProcStatus::Stopped => return Err(Error::Finished(id.to_owned())),
        }
        let restore_from = if exec_id.is_empty() {
            c.restore_from.take()
        } else {
            None
        };
        let request = if restore_from.is_some() {
            Request::RestoreContainer { id: id.to_owned() }
        } else if exec_id.is_empty() {
            Request::StartContainer { id: id.to_owned() }
        } else {
            Request::StartExec {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            }
        };
        let sandbox = sandbox?;
        let result = match &restore_from {
            Some(files) => sandbox.call_pid_with(&request, files),
            None => sandbox.call_pid(&request),
        };
        let p = c.process_mut(id, exec_id)?;
        let inner_pid = match result {
            Ok(pid) => pid,
            Err(e) => {
                // The process can never run now; containerd still deletes it.
                p.stop(127);
                self.shared.stopped.notify_all();
                return Err(e);
            }
        };
        let pid = if exec_id.is_empty() {
            sandbox.pid()
        } else {
            u32::try_from(inner_pid).unwrap_or(0)
        };
        p.pid = pid;
        if p.status == ProcStatus::Created {
            p.status = ProcStatus::Running;
        }
        if exec_id.is_empty() {
            self.publish(TaskStart {
                container_id: id.to_owned(),
                pid,
                ..Default::default()
            });
        } else {
            self.publish(TaskExecStarted {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
                pid,
                ..Default::default()
            });
        }
        Ok(pid)
    }

    fn do_exec(&self, req: &ExecProcessRequest) -> Result<()> {
        let process = spec::exec_process(&req.spec.value)?;
        let mut st = self.lock();
        let sandbox = st.sandbox();
        let c = st.container(&req.id)?;
        if c.init.status != ProcStatus::Running {
            return Err(Error::NotRunning(req.id.clone()));
        }
        if c.execs.contains_key(&req.exec_id) {
            return Err(Error::Exists(req.exec_id.clone()));
        }
        let sandbox = sandbox?;
        let stdio = (req.stdin.as_str(), req.stdout.as_str(), req.stderr.as_str());
        let (opened, console) = self.open_stdio(&req.id, &req.exec_id, req.terminal, stdio)?;
        sandbox.call(
            &Request::AddExec {
                id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                spec: process,
                stdio: opened.present,
            },
            &opened.fds,
        )?;
        c.execs.insert(
            req.exec_id.clone(),
            Proc::new(&req.stdin, &req.stdout, &req.stderr, opened.stdin, console),
        );
        self.publish(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        });
        Ok(())
    }

    fn do_kill(&self, req: &KillRequest) -> Result<()> {
        let signo = i32::try_from(req.signal).map_err(|_| Error::BadSpec("signal out of range"))?;
        let mut st = self.lock();
        let sandbox = st.sandbox();
        let c = st.container(&req.id)?;
        let p = c.process(&req.id, &req.exec_id)?;
        let name = if req.exec_id.is_empty() {
            &req.id
        } else {
            &req.exec_id
        };
        if p.status == ProcStatus::Stopped && !req.all {
            return Err(Error::Finished(name.clone()));
        }
        let target = if req.all && req.exec_id.is_empty() {
            SignalTarget::All
        } else {
            SignalTarget::Process(exec_ref(&req.exec_id))
        };
        let was_created = p.status == ProcStatus::Created;
        sandbox?.call(
            &Request::Signal {
                id: req.id.clone(),
                target,
                signo,
            },
            &[],
        )?;
        // A process that never started has no exit watcher in the sandbox: finish it here.
        let p = c.process_mut(&req.id, &req.exec_id)?;
        if was_created && signo != 0 && p.stop(128 + req.signal) {
            let (pid, at) = (p.pid, p.exited_at.clone());
            self.publish_exit(&req.id, &req.exec_id, pid, 128 + req.signal, at);
            self.shared.stopped.notify_all();
        }
        Ok(())
    }

    fn do_delete(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        let mut st = self.lock();
        let sandbox = st.sandbox.clone();
        let c = st.container(id)?;
        let p = c.process(id, exec_id)?;
        if p.status == ProcStatus::Running {
            return Err(Error::StillRunning(
                if exec_id.is_empty() { id } else { exec_id }.to_owned(),
            ));
        }
        let mut resp = DeleteResponse::new();
        resp.pid = p.pid;
        resp.exit_status = p.exit_status;
        resp.exited_at = MessageField::from_option(p.exited_at.clone());
        if !exec_id.is_empty() {
            c.execs.remove(exec_id);
            return Ok(resp);
        }
        if let Some(s) = &sandbox {
            if let Err(e) = s.call(&Request::DestroyContainer { id: id.to_owned() }, &[]) {
                log::warn!("destroying {id} in the sandbox: {e}");
            }
        }
        let c = st.containers.remove(id).expect("looked up above");
        if let Some(r) = &c.mounted_rootfs {
            unmount(r);
        }
        if st.containers.is_empty() {
            if let Some(s) = st.sandbox.take() {
                if let Err(e) = s.call(&Request::Shutdown, &[]) {
                    log::debug!("shutting the sandbox down: {e}");
                }
            }
            st.remove_cgroup();
            let _ = std::fs::remove_file(c.bundle.join(sandbox::PID_FILE));
        }
        self.publish(TaskDelete {
            container_id: id.to_owned(),
            pid: resp.pid,
            exit_status: resp.exit_status,
            exited_at: resp.exited_at.clone(),
            id: id.to_owned(),
            ..Default::default()
        });
        log::info!("container {id} deleted");
        Ok(resp)
    }

    fn do_state(&self, req: &StateRequest) -> Result<StateResponse> {
        let mut st = self.lock();
        let paused = st.paused;
        let c = st.container(&req.id)?;
        let bundle = c.bundle.to_string_lossy().into_owned();
        let p = c.process(&req.id, &req.exec_id)?;
        let status = match p.status {
            ProcStatus::Created => Status::CREATED,
            ProcStatus::Running if paused => Status::PAUSED,
            ProcStatus::Running => Status::RUNNING,
            ProcStatus::Stopped => Status::STOPPED,
        };
        Ok(StateResponse {
            id: req.id.clone(),
            bundle,
            pid: p.pid,
            status: status.into(),
            stdin: p.stdin.clone(),
            stdout: p.stdout.clone(),
            stderr: p.stderr.clone(),
            terminal: p.console.is_some(),
            exit_status: p.exit_status,
            exited_at: MessageField::from_option(p.exited_at.clone()),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn do_wait(&self, id: &str, exec_id: &str) -> Result<WaitResponse> {
        let mut st = self.lock();
        loop {
            let c = st.container(id)?;
            let p = c.process(id, exec_id)?;
            if p.status == ProcStatus::Stopped {
                return Ok(WaitResponse {
                    exit_status: p.exit_status,
                    exited_at: MessageField::from_option(p.exited_at.clone()),
                    ..Default::default()
                });
            }
            st = self.shared.stopped.wait(st).unwrap();
        }
    }

    fn do_pids(&self, id: &str) -> Result<PidsResponse> {
        let mut st = self.lock();
        let sandbox = st.sandbox.clone();
        st.container(id)?;
        let mut resp = PidsResponse::new();
        let Some(sandbox) = sandbox else {
            return Ok(resp);
        };
        if let Response::Processes(list) =
            sandbox.call(&Request::Processes { id: id.to_owned() }, &[])?
        {
            resp.processes = list
                .into_iter()
                .map(|p| ProcessInfo {
                    pid: u32::try_from(p.pid).unwrap_or(0),
                    info: match &p.process {
                        Some(ProcessRef::Exec(exec_id)) => {
                            MessageField::some(process_details(exec_id))
                        }
                        _ => MessageField::none(),
                    },
                    ..Default::default()
                })
                .collect();
        }
        Ok(resp)
    }

    fn do_close_io(&self, req: &CloseIORequest) -> Result<()> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        let p = c.process(&req.id, &req.exec_id)?;
        if req.stdin {
            p.stdin_handle.close();
        }
        Ok(())
    }

    fn do_resize_pty(&self, req: &ResizePtyRequest) -> Result<()> {
        let mut st = self.lock();
        let sandbox = st.sandbox();
        let c = st.container(&req.id)?;
        let p = c.process(&req.id, &req.exec_id)?;
        // runc's shim answers a resize of a terminal-less process with success too.
        let Some(console) = &p.console else {
            return Ok(());
        };
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        console.resize(clamp(req.width), clamp(req.height))?;
        if p.status == ProcStatus::Running {
            sandbox?.call(
                &Request::SignalForeground {
                    id: req.id.clone(),
                    process: exec_ref(&req.exec_id),
                    signo: libc::SIGWINCH,
                },
                &[],
            )?;
        }
        Ok(())
    }

    /// Pause (`frozen`) or Resume: the whole sandbox, every container of a pod with it.
    fn do_freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let mut st = self.lock();
        if st.container(id)?.init.status != ProcStatus::Running {
            return Err(Error::NotRunning(id.to_owned()));
        }
        if st.paused == frozen {
            return Ok(());
        }
        // The sentry stops its tasks at safe points (out of the application, blocking
        // calls to be restarted), which a checkpoint needs and a host freezer cannot give;
        // the host freezer then stops the sentry's own threads too (no CPU used while
        // paused), and is thawed first so that the sentry can answer Resume.
        let sandbox = st.sandbox()?;
        if frozen {
            sandbox.call(&Request::Pause { id: id.to_owned() }, &[])?;
            if let Some(cg) = st.cgroup.as_ref() {
                if let Err(e) = cg.freeze(true) {
                    let _ = sandbox.call(&Request::Resume { id: id.to_owned() }, &[]);
                    return Err(e.into());
                }
            }
        } else {
            if let Some(cg) = st.cgroup.as_ref() {
                cg.freeze(false)?;
            }
            sandbox.call(&Request::Resume { id: id.to_owned() }, &[])?;
        }
        st.paused = frozen;
        if frozen {
            self.publish(TaskPaused {
                container_id: id.to_owned(),
                ..Default::default()
            });
        } else {
            self.publish(TaskResumed {
                container_id: id.to_owned(),
                ..Default::default()
            });
        }
        log::info!(
            "container {id} {}",
            if frozen { "paused" } else { "resumed" }
        );
        Ok(())
    }

    /// Task.Checkpoint: the sandbox writes its image into `req.path` (see [`image`]);
    /// with runc's `exit` option the container then stops, otherwise it goes on as it was
    /// (paused if containerd paused it first, as its clients do).
    fn do_checkpoint(&self, req: &CheckpointTaskRequest) -> Result<()> {
        let exit = match req.options.as_ref() {
            Some(any) => image::exit_requested(&any.type_url, &any.value)?,
            None => false,
        };
        let mut st = self.lock();
        if st.container(&req.id)?.init.status != ProcStatus::Running {
            return Err(Error::NotRunning(req.id.clone()));
        }
        let sandbox = st.sandbox()?;
        let dir = PathBuf::from(&req.path);
        let files = image::create(&dir)?;
        // A paused sandbox is frozen in its cgroup too: thawed for the sentry to answer (its
        // tasks stay parked in the sentry), and frozen again afterwards.
        let frozen = st.paused && st.cgroup.is_some();
        if let (true, Some(cg)) = (frozen, st.cgroup.as_ref()) {
            cg.freeze(false)?;
        }
        let request = Request::Checkpoint {
            id: req.id.clone(),
            leave_running: !exit,
        };
        let result = sandbox.call(&request, &files);
        if exit && result.is_ok() {
            // Nothing runs after the image was taken: SIGKILL reaches parked tasks.
            let kill = Request::Signal {
                id: req.id.clone(),
                target: SignalTarget::All,
                signo: libc::SIGKILL,
            };
            if let Err(e) = sandbox.call(&kill, &[]) {
                log::warn!("stopping {} after its checkpoint: {e}", req.id);
            }
            // Unless containerd paused it (and resumes it next), the rest of the sandbox
            // goes on.
            if !st.paused {
                let resume = Request::Resume { id: req.id.clone() };
                if let Err(e) = sandbox.call(&resume, &[]) {
                    log::warn!("resuming the sandbox after checkpointing {}: {e}", req.id);
                }
            }
        } else if let (true, Some(cg)) = (frozen, st.cgroup.as_ref()) {
            cg.freeze(true)?;
        }
        let summary = match result? {
            Response::Checkpointed(summary) => summary,
            other => {
                log::warn!("unexpected answer {other:?}");
                return Err(Error::SandboxGone);
            }
        };
        image::finish(&dir, &summary)?;
        log::info!(
            "container {} checkpointed into {}: {summary:?}",
            req.id,
            dir.display()
        );
        Ok(())
    }

    fn do_update(&self, req: &UpdateTaskRequest) -> Result<()> {
        let resources: LinuxResources =
            serde_json::from_slice(&req.resources.value).map_err(Error::BadResources)?;
        let mut st = self.lock();
        st.container(&req.id)?;
        Ok(st.cgroup()?.update(&resources)?)
    }

    fn do_stats(&self, id: &str) -> Result<StatsResponse> {
        let mut st = self.lock();
        st.container(id)?;
        let stats = CgroupMetrics::of(st.cgroup()?).into_any()?;
        Ok(StatsResponse {
            stats: MessageField::some(stats),
            ..Default::default()
        })
    }

    fn do_connect(&self, id: &str) -> ConnectResponse {
        let mut st = self.lock();
        let task_pid = st.container(id).map(|c| c.init.pid).unwrap_or(0);
        ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: concat!("runsc-rs ", env!("CARGO_PKG_VERSION")).to_owned(),
            ..Default::default()
        }
    }

    fn do_shutdown(&self, now: bool) {
        let mut st = self.lock();
        if !st.containers.is_empty() && !now {
            return;
        }
        if let Some(s) = st.sandbox.take() {
            let _ = s.call(&Request::Shutdown, &[]);
        }
        st.remove_cgroup();
        self.shared.exit.signal();
    }
}

impl Task for Service {
    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        let pid = self.do_create(&req)?;
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        let pid = self.do_start(&req.id, &req.exec_id)?;
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        self.do_exec(&req)?;
        Ok(Empty::new())
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.do_kill(&req)?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        Ok(self.do_wait(&req.id, &req.exec_id)?)
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        Ok(self.do_delete(&req.id, &req.exec_id)?)
    }

    fn state(&self, _: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        Ok(self.do_state(&req)?)
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        Ok(self.do_pids(&req.id)?)
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        self.do_close_io(&req)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        self.do_resize_pty(&req)?;
        Ok(Empty::new())
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.do_freeze(&req.id, true)?;
        Ok(Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.do_freeze(&req.id, false)?;
        Ok(Empty::new())
    }

    fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        self.do_checkpoint(&req)?;
        Ok(Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.do_update(&req)?;
        Ok(Empty::new())
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        Ok(self.do_stats(&req.id)?)
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        Ok(self.do_connect(&req.id))
    }

    fn shutdown(&self, _: &TtrpcContext, req: ShutdownRequest) -> TtrpcResult<Empty> {
        self.do_shutdown(req.now);
        Ok(Empty::new())
    }
}
