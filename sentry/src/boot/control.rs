//! The control channel between the containerd shim and the sandbox process.
//!
//! One responsibility: carry typed [`Loader`] calls from the shim to the sandbox process and
//! the answers and process exits back. The channel is a `SOCK_SEQPACKET` socketpair (each
//! message is one JSON document, message boundaries kept by the kernel); stdio file
//! descriptors travel alongside as `SCM_RIGHTS`.
//!
//! ```text
//! shim                                   sandbox process
//! Client::call(Request) ── Call{seq} ──▶ serve(): Loader method
//!                       ◀─ Reply{seq} ──
//! event thread          ◀─ Event ─────── exit watchers (one per started process)
//! ```
//!
//! Calls may be made from several shim threads at once: replies are matched by sequence
//! number. The sandbox handles calls one at a time on its control thread; nothing it does
//! there blocks on the application (waiting for exits happens on watcher threads, which
//! report with [`Event::Exited`]).
//!
//! # Example
//! ```no_run
//! use sentry::boot::control::{Channel, Client, ProcessRef, Request, Response};
//! let (shim_end, _sandbox_end) = Channel::pair().unwrap();
//! let (client, _events) = Client::new(shim_end).unwrap();
//! let reply = client.call(&Request::Processes { id: "c1".into() }, &[]);
//! assert!(matches!(reply, Ok(Response::Processes(_)) | Err(_)));
//! # let _ = ProcessRef::Init;
//! ```

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags,
    SocketType,
};
use serde::{Deserialize, Serialize};

pub use super::loader::ProcessRef;
use super::loader::{
    self, ContainerFds, ContainerSpec, Loader, MountKind, ProcessInfo, ProcessSpec, SignalTarget,
    Stdio,
};
use crate::kernel::ExitStatus;

/// Largest message either side sends (a process spec with a large environment fits easily).
const MAX_MESSAGE: usize = 1 << 20;

/// Most file descriptors attached to one message: a container's rootfs, its bind mounts and
/// stdin, stdout, stderr.
pub const MAX_FDS: usize = 32;

/// Errors of the channel itself (not of the calls it carries).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("control channel {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("control channel: bad message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("control channel: message of {0} bytes is too large")]
    TooLarge(usize),
    #[error("control channel closed (the sandbox process is gone)")]
    Closed,
    #[error("control channel: {expected} fds expected, {got} received")]
    Fds { expected: usize, got: usize },
}

/// Which stdio streams ride along with a message as fds, in the order stdin, stdout, stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioPresent {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl StdioPresent {
    fn count(self) -> usize {
        usize::from(self.stdin) + usize::from(self.stdout) + usize::from(self.stderr)
    }
}

/// A call from the shim: one per [`Loader`] method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Fds: the rootfs directory, one directory per bind mount of `spec.mounts` (in order),
    /// then the stdio streams `stdio` announces.
    CreateContainer {
        id: String,
        spec: ContainerSpec,
        stdio: StdioPresent,
    },
    StartContainer {
        id: String,
    },
    /// Fds: `kernel.json` and `memory.bin` of a checkpoint image. Starts created container
    /// `id` from the image instead of its init's program ([`Loader::restore_container`]);
    /// answered with the `Pid` standing for init.
    RestoreContainer {
        id: String,
    },
    /// Records an exec process; it runs on [`Request::StartExec`].
    AddExec {
        id: String,
        exec_id: String,
        spec: ProcessSpec,
        stdio: StdioPresent,
    },
    StartExec {
        id: String,
        exec_id: String,
    },
    Signal {
        id: String,
        target: SignalTarget,
        signo: i32,
    },
    Processes {
        id: String,
    },
    /// Signals the foreground process group of a process's terminal: SIGWINCH after the
    /// shim resized the host pty, SIGINT/SIGQUIT/SIGTSTP for a typed `^C`/`^\`/`^Z`.
    SignalForeground {
        id: String,
        process: ProcessRef,
        signo: i32,
    },
    DestroyContainer {
        id: String,
    },
    /// Stops every task of the sandbox running container `id` ([`Loader::pause`]).
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Fds: `kernel.json` and `memory.bin` of the image to write ([`Loader::checkpoint`]).
    Checkpoint {
        id: String,
        leave_running: bool,
    },
    /// Ends the sandbox process after the reply.
    Shutdown,
}

/// A successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Done,
    /// The sandbox-internal PID of a started process.
    Pid(i32),
    Processes(Vec<ProcessInfo>),
    Checkpointed(crate::kernel::checkpoint::Summary),
}

/// What went wrong with a call, in the terms the shim maps onto ttrpc status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Unimplemented,
    Internal,
}

/// A failed call: kind plus the sandbox's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<&loader::Error> for ErrorKind {
    fn from(e: &loader::Error) -> ErrorKind {
        use loader::Error as E;
        match e {
            E::NoContainer(_) | E::NoProcess(..) | E::NotFound(_) => ErrorKind::NotFound,
            E::Exists(_) => ErrorKind::AlreadyExists,
            E::NotCreated(..) | E::NotRunning(..) => ErrorKind::FailedPrecondition,
            E::BadSpec(_) | E::BadSignal(_) => ErrorKind::InvalidArgument,
            E::Unsupported(_) => ErrorKind::Unimplemented,
            E::Pause(crate::kernel::freeze::PauseError::Timeout { .. })
            | E::Memory(_)
            | E::Platform(_)
            | E::Boot(_)
            | E::Spawn(_) => ErrorKind::Internal,
            E::Pause(_) => ErrorKind::FailedPrecondition,
            E::Checkpoint(crate::kernel::checkpoint::CheckpointError::Unsupported { .. }) => {
                ErrorKind::Unimplemented
            }
            E::Checkpoint(_) => ErrorKind::Internal,
            E::Restore(crate::kernel::restore::RestoreError::Unsupported(_)) => {
                ErrorKind::Unimplemented
            }
            E::Restore(crate::kernel::restore::RestoreError::Changed { .. }) => {
                ErrorKind::FailedPrecondition
            }
            E::Restore(_) => ErrorKind::InvalidArgument,
        }
    }
}

impl From<loader::Error> for CallError {
    fn from(e: loader::Error) -> CallError {
        CallError {
            kind: ErrorKind::from(&e),
            message: e.to_string(),
        }
    }
}

/// Something the sandbox reports without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A process started through the Loader has exited.
    Exited {
        id: String,
        process: ProcessRef,
        status: WireExitStatus,
    },
}

/// [`ExitStatus`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireExitStatus {
    Exited(u8),
    Signaled(i32),
}

impl WireExitStatus {
    /// The code containerd reports: the exit code, or 128 + signal.
    pub fn code(self) -> u32 {
        match self {
            WireExitStatus::Exited(c) => u32::from(c),
            WireExitStatus::Signaled(s) => 128 + s.unsigned_abs(),
        }
    }
}

impl From<ExitStatus> for WireExitStatus {
    fn from(s: ExitStatus) -> WireExitStatus {
        match s {
            ExitStatus::Exited(c) => WireExitStatus::Exited(c),
            ExitStatus::Signaled { signo, .. } => WireExitStatus::Signaled(signo),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum ToSandbox {
    Call { seq: u64, request: Request },
}

#[derive(Debug, Serialize, Deserialize)]
enum FromSandbox {
    Reply {
        seq: u64,
        result: Result<Response, CallError>,
    },
    Event(Event),
}

/// One end of the socketpair.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair (both ends close-on-exec; clear it on the end a child inherits).
    ///
    /// # Errors
    /// `socketpair(2)` failed.
    pub fn pair() -> Result<(Channel, Channel), Error> {
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|source| Error::Io {
            op: "socketpair",
            source,
        })?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// The end inherited as `fd` (the sandbox's `--control-fd`).
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    /// The descriptor itself (to hand to a child process).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends one message with `fds` attached (also used by the OCI CLI's own protocol).
    ///
    /// # Errors
    /// Encoding or `sendmsg(2)` failed.
    pub fn send<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg)?;
        if bytes.len() > MAX_MESSAGE {
            return Err(Error::TooLarge(bytes.len()));
        }
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        loop {
            match sendmsg(
                &self.fd,
                &[IoSlice::new(&bytes)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(source) => {
                    return Err(Error::Io {
                        op: "sendmsg",
                        source,
                    })
                }
            }
        }
    }

    /// Receives one message and the fds attached to it.
    ///
    /// # Errors
    /// `Closed` at end of stream; `recvmsg(2)` or decoding failed.
    pub fn recv<T: for<'de> Deserialize<'de>>(
        &self,
        buf: &mut [u8],
    ) -> Result<(T, Vec<OwnedFd>), Error> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = loop {
            match recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(msg) => break msg,
                Err(rustix::io::Errno::INTR) => continue,
                Err(source) => {
                    return Err(Error::Io {
                        op: "recvmsg",
                        source,
                    })
                }
            }
        };
        let mut fds = Vec::new();
        for c in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = c {
                fds.extend(received);
            }
        }
        if msg.flags.contains(ReturnFlags::TRUNC) {
            return Err(Error::TooLarge(msg.bytes));
        }
        if msg.bytes == 0 {
            return Err(Error::Closed);
        }
        Ok((serde_json::from_slice(&buf[..msg.bytes])?, fds))
    }
}

type Waiters = Mutex<HashMap<u64, mpsc::Sender<Result<Response, CallError>>>>;

/// The shim's typed handle on the sandbox's Loader.
#[derive(Debug)]
pub struct Client {
    channel: Arc<Channel>,
    next_seq: AtomicU64,
    waiters: Arc<Waiters>,
}

impl Client {
    /// Starts the reader thread; events (process exits, then `None` once the sandbox is
    /// gone) arrive on the returned receiver.
    ///
    /// # Errors
    /// The reader thread could not be started.
    pub fn new(channel: Channel) -> std::io::Result<(Client, mpsc::Receiver<Option<Event>>)> {
        let channel = Arc::new(channel);
        let waiters: Arc<Waiters> = Arc::default();
        let (events_tx, events_rx) = mpsc::channel();
        let (ch, w) = (channel.clone(), waiters.clone());
        std::thread::Builder::new()
            .name("control-reader".into())
            .spawn(move || Client::read_loop(&ch, &w, &events_tx))?;
        Ok((
            Client {
                channel,
                next_seq: AtomicU64::new(1),
                waiters,
            },
            events_rx,
        ))
    }

    fn read_loop(channel: &Channel, waiters: &Waiters, events: &mpsc::Sender<Option<Event>>) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            match channel.recv::<FromSandbox>(&mut buf) {
                Ok((FromSandbox::Reply { seq, result }, _)) => {
                    if let Some(tx) = waiters.lock().unwrap().remove(&seq) {
                        let _ = tx.send(result);
                    }
                }
                Ok((FromSandbox::Event(e), _)) => {
                    let _ = events.send(Some(e));
                }
                Err(e) => {
                    if !matches!(e, Error::Closed) {
                        log::warn!("{e}");
                    }
                    break;
                }
            }
        }
        // Dropping the senders fails every pending and future call.
        waiters.lock().unwrap().clear();
        let _ = events.send(None);
    }

    /// Sends `request` with `fds` attached and waits for the answer.
    ///
    /// # Errors
    /// The call failed in the sandbox ([`CallError`]) or the channel broke (kind `Internal`).
    pub fn call(&self, request: &Request, fds: &[BorrowedFd<'_>]) -> Result<Response, CallError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.waiters.lock().unwrap().insert(seq, tx);
        let msg = ToSandbox::Call {
            seq,
            request: request.clone(),
        };
        if let Err(e) = self.channel.send(&msg, fds) {
            self.waiters.lock().unwrap().remove(&seq);
            return Err(CallError {
                kind: ErrorKind::Internal,
                message: e.to_string(),
            });
        }
        rx.recv().unwrap_or_else(|_| {
            Err(CallError {
                kind: ErrorKind::Internal,
                message: Error::Closed.to_string(),
            })
        })
    }
}

/// Splits the fds of a `CreateContainer` into the container's directories and its stdio.
fn take_container_fds(
    spec: &ContainerSpec,
    present: StdioPresent,
    mut fds: Vec<OwnedFd>,
) -> Result<(ContainerFds, Stdio), Error> {
    let binds = spec
        .mounts
        .iter()
        .filter(|m| !matches!(m.kind, MountKind::Tmpfs { .. }))
        .count();
    let expected = 1 + binds + present.count();
    if fds.len() != expected {
        return Err(Error::Fds {
            expected,
            got: fds.len(),
        });
    }
    let stdio = take_stdio(present, fds.split_off(1 + binds))?;
    let mut dirs = fds.into_iter();
    let rootfs = dirs.next().ok_or(Error::Fds { expected, got: 0 })?;
    Ok((
        ContainerFds {
            rootfs,
            binds: dirs.collect(),
        },
        stdio,
    ))
}

/// Takes the fds announced by `present` off `fds`, in stdin, stdout, stderr order.
fn take_stdio(present: StdioPresent, fds: Vec<OwnedFd>) -> Result<Stdio, Error> {
    if fds.len() != present.count() {
        return Err(Error::Fds {
            expected: present.count(),
            got: fds.len(),
        });
    }
    let mut it = fds.into_iter();
    let mut next = |on: bool| if on { it.next() } else { None };
    Ok(Stdio {
        stdin: next(present.stdin),
        stdout: next(present.stdout),
        stderr: next(present.stderr),
    })
}

/// The sandbox side: answers calls on `channel` with `loader` until the shim asks for
/// shutdown or goes away.
///
/// # Errors
/// The channel broke (the caller should end the sandbox).
pub fn serve(channel: Channel, loader: Arc<Loader>) -> Result<(), Error> {
    let channel = Arc::new(channel);
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (ToSandbox::Call { seq, request }, fds) = match channel.recv::<ToSandbox>(&mut buf) {
            Ok(m) => m,
            Err(Error::Closed) => {
                log::info!("control channel closed by the shim");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        log::debug!("control call {seq}: {}", request_name(&request));
        let shutdown = matches!(request, Request::Shutdown);
        let result = dispatch(&channel, &loader, request, fds);
        channel.send(&FromSandbox::Reply { seq, result }, &[])?;
        if shutdown {
            return Ok(());
        }
    }
}

/// The sandbox side when the Loader could not boot: every call fails with `why`, so the
/// shim reports the cause, until the shim asks for shutdown or goes away.
///
/// # Errors
/// The channel broke.
pub fn serve_boot_failure(channel: Channel, why: &str) -> Result<(), Error> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (ToSandbox::Call { seq, request }, _fds) = match channel.recv::<ToSandbox>(&mut buf) {
            Ok(m) => m,
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        let shutdown = matches!(request, Request::Shutdown);
        let result = if shutdown {
            Ok(Response::Done)
        } else {
            Err(CallError {
                kind: ErrorKind::Internal,
                message: format!("the sandbox failed to boot: {why}"),
            })
        };
        channel.send(&FromSandbox::Reply { seq, result }, &[])?;
        if shutdown {
            return Ok(());
        }
    }
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::CreateContainer { .. } => "create_container",
        Request::StartContainer { .. } => "start_container",
        Request::RestoreContainer { .. } => "restore_container",
        Request::AddExec { .. } => "add_exec",
        Request::StartExec { .. } => "start_exec",
        Request::Signal { .. } => "signal",
        Request::Processes { .. } => "processes",
        Request::SignalForeground { .. } => "signal_foreground",
        Request::DestroyContainer { .. } => "destroy_container",
        Request::Pause { .. } => "pause",
        Request::Resume { .. } => "resume",
        Request::Checkpoint { .. } => "checkpoint",
        Request::Shutdown => "shutdown",
    }
}

fn dispatch(
    channel: &Arc<Channel>,
    loader: &Arc<Loader>,
    request: Request,
    fds: Vec<OwnedFd>,
) -> Result<Response, CallError> {
    let bad_fds = |e: Error| CallError {
        kind: ErrorKind::InvalidArgument,
        message: e.to_string(),
    };
    match request {
        Request::CreateContainer { id, spec, stdio } => {
            let (dirs, stdio) = take_container_fds(&spec, stdio, fds).map_err(bad_fds)?;
            loader.create_container(&id, spec, dirs, stdio)?;
            Ok(Response::Done)
        }
        Request::StartContainer { id } => {
            let pid = loader.start_container(&id)?;
            watch_exit(channel, loader, id, ProcessRef::Init);
            Ok(Response::Pid(pid))
        }
        Request::RestoreContainer { id } => {
            let got = fds.len();
            let [state, memory]: [OwnedFd; 2] = fds
                .try_into()
                .map_err(|_| bad_fds(Error::Fds { expected: 2, got }))?;
            let pid = loader.restore_container(&id, state, memory)?;
            watch_exit(channel, loader, id, ProcessRef::Init);
            Ok(Response::Pid(pid))
        }
        Request::AddExec {
            id,
            exec_id,
            spec,
            stdio,
        } => {
            let stdio = take_stdio(stdio, fds).map_err(bad_fds)?;
            loader.add_exec(&id, &exec_id, spec, stdio)?;
            Ok(Response::Done)
        }
        Request::StartExec { id, exec_id } => {
            let pid = loader.execute_async(&id, &exec_id)?;
            watch_exit(channel, loader, id, ProcessRef::Exec(exec_id));
            Ok(Response::Pid(pid))
        }
        Request::Signal { id, target, signo } => {
            loader.signal(&id, &target, signo)?;
            Ok(Response::Done)
        }
        Request::Processes { id } => Ok(Response::Processes(loader.processes(&id)?)),
        Request::SignalForeground { id, process, signo } => {
            loader.signal_foreground(&id, &process, signo)?;
            Ok(Response::Done)
        }
        Request::DestroyContainer { id } => {
            loader.destroy_container(&id)?;
            Ok(Response::Done)
        }
        Request::Pause { id } => {
            loader.pause(&id)?;
            Ok(Response::Done)
        }
        Request::Resume { id } => {
            loader.resume(&id)?;
            Ok(Response::Done)
        }
        Request::Checkpoint { id, leave_running } => {
            let got = fds.len();
            let [state, memory]: [OwnedFd; 2] = fds
                .try_into()
                .map_err(|_| bad_fds(Error::Fds { expected: 2, got }))?;
            let summary = loader.checkpoint(&id, state, memory, leave_running)?;
            Ok(Response::Checkpointed(summary))
        }
        Request::Shutdown => Ok(Response::Done),
    }
}

/// Reports the exit of a just-started process as an [`Event`].
fn watch_exit(channel: &Arc<Channel>, loader: &Arc<Loader>, id: String, process: ProcessRef) {
    let (channel, loader) = (channel.clone(), loader.clone());
    let spawned = std::thread::Builder::new()
        .name("exit-watch".into())
        .spawn(move || {
            let status = match loader.wait_pid(&id, &process) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("waiting for {id}/{process:?}: {e}");
                    return;
                }
            };
            let event = Event::Exited {
                id,
                process,
                status: status.into(),
            };
            if let Err(e) = channel.send(&FromSandbox::Event(event), &[]) {
                log::warn!("reporting an exit: {e}");
            }
        });
    if let Err(e) = spawned {
        log::error!("starting an exit watcher: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross_the_channel() {
        let (a, b) = Channel::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let msg = ToSandbox::Call {
            seq: 7,
            request: Request::Signal {
                id: "c".into(),
                target: SignalTarget::All,
                signo: 9,
            },
        };
        use std::os::fd::AsFd;
        a.send(&msg, &[w.as_fd()]).unwrap();
        drop(w);
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (got, fds): (ToSandbox, _) = b.recv(&mut buf).unwrap();
        let ToSandbox::Call { seq, request } = got;
        assert_eq!(seq, 7);
        assert!(matches!(request, Request::Signal { signo: 9, .. }));
        assert_eq!(fds.len(), 1);
        assert_eq!(rustix::io::write(&fds[0], b"x").unwrap(), 1);
        let mut one = [0u8; 1];
        assert_eq!(rustix::io::read(&r, &mut one).unwrap(), 1);
        drop(a);
        assert!(matches!(b.recv::<ToSandbox>(&mut buf), Err(Error::Closed)));
    }

    #[test]
    fn stdio_fds_are_assigned_in_order() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let w2 = w.try_clone().unwrap();
        let present = StdioPresent {
            stdin: false,
            stdout: true,
            stderr: true,
        };
        let s = take_stdio(present, vec![w, w2]).unwrap();
        assert!(s.stdin.is_none() && s.stdout.is_some() && s.stderr.is_some());
        assert!(take_stdio(present, vec![]).is_err());
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(WireExitStatus::Exited(7).code(), 7);
        assert_eq!(WireExitStatus::Signaled(9).code(), 137);
    }
}
