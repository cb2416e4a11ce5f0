//! The shim's bootstrap: flags, signals, the `start`/`delete` actions and the ttrpc server.
//!
//! This is what `containerd-shim` 0.11's `run()` does for a synchronous Linux shim, written
//! here because `run()` registers the Task service under one ttrpc name only,
//! `containerd.task.v2.Task`, and has no hook for a second. We serve the same handlers under
//! [`TASK_V2`] and [`TASK_V3`]: containerd 1.6 and 1.7 call v2, containerd 2.x calls v2 for a
//! shim that answers `start` with a bare address and v3 for one that announces protocol
//! version 3. `start` keeps printing a bare address, the one answer containerd 1.6 reads
//! (0.12's `run()` prints a JSON document instead, which 1.6 takes as the address).
//!
//! From the crate we use its public pieces: flag parsing, [`StartOpts`], the [`Shim`] trait
//! (this module is generic over it and never names our implementation, which `main` picks:
//! its `start` spawns the server, `delete` cleans up, `wait` blocks until Shutdown), `spawn`, `write_address`/`read_address`,
//! [`RemotePublisher`], the logger and the exit monitor. Its private parts are re-implemented
//! here: the signal loop that reaps children, the listener and the stale-socket retry, the
//! subreaper `prctl`, and handing stdout over to stderr once the server listens (which tells
//! the `start` process, copying our stdout, that we are up).
//!
//! The ttrpc server looks a request up by the path `/SERVICE/METHOD` in one map of
//! handlers; [`task_methods`] builds that map with every v2 path and its v3 twin, both
//! pointing at the one service object.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::protobuf::{self, Message};
use containerd_shim::protos::shim::shim_ttrpc::create_task;
use containerd_shim::protos::ttrpc::{self, MethodHandler, Server};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::synchronous::monitor::monitor_notify_by_pid;
use containerd_shim::{Config, Flags, Shim, StartOpts, Task};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGINT, SIGPIPE, SIGTERM};
use signal_hook::iterator::Signals;

/// The ttrpc service name containerd 1.6 and 1.7 call (and 2.x for a bare-address shim).
pub const TASK_V2: &str = "containerd.task.v2.Task";
/// The ttrpc service name of containerd 2.x's task API v3: the same methods and messages.
pub const TASK_V3: &str = "containerd.task.v3.Task";

/// The environment variable holding containerd's ttrpc socket, for events.
const TTRPC_ADDRESS: &str = "TTRPC_ADDRESS";

/// The handlers the ttrpc server dispatches to, by `/SERVICE/METHOD`.
pub type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// Errors of the bootstrap; `run` prints them and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parsing the shim flags: {0}")]
    Flags(#[source] containerd_shim::Error),
    #[error("the -namespace flag is missing or empty")]
    NoNamespace,
    #[error("the -socket flag is missing or empty")]
    NoSocket,
    #[error("{TTRPC_ADDRESS}: {0}")]
    TtrpcAddress(#[source] std::env::VarError),
    #[error("installing the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("becoming the child subreaper: {0}")]
    Subreaper(#[source] Errno),
    #[error("the {action} action: {source}")]
    Action {
        action: &'static str,
        source: containerd_shim::Error,
    },
    #[error("writing the socket address to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("writing the DeleteResponse to stdout: {0}")]
    DeleteResponse(#[source] protobuf::Error),
    #[error("setting up the log: {0}")]
    Logger(#[source] containerd_shim::Error),
    #[error("connecting to containerd's ttrpc socket {address}: {source}")]
    Publisher {
        address: String,
        source: containerd_shim::Error,
    },
    #[error("listening on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("removing the stale socket {path}: {source}")]
    RemoveSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the address file: {0}")]
    WriteAddress(#[source] containerd_shim::Error),
    #[error("ttrpc server: {0}")]
    Server(#[source] ttrpc::Error),
    #[error("task method {0} is not a {TASK_V2} path")]
    UnexpectedMethod(String),
    #[error("pointing stdout at stderr: {0}")]
    ReleaseStdout(#[source] std::io::Error),
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The shim's entry point: runs the action containerd asked for, and on an error prints it
/// to stderr and exits 1.
pub fn run<S: Shim + Send + Sync + 'static>(runtime_id: &str) {
    if let Err(e) = bootstrap::<S>(runtime_id) {
        eprintln!("{runtime_id}: {e}");
        std::process::exit(1);
    }
}

fn bootstrap<S: Shim + Send + Sync + 'static>(runtime_id: &str) -> Result<()> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let flags = containerd_shim::parse(&args).map_err(Error::Flags)?;
    if flags.namespace.is_empty() {
        return Err(Error::NoNamespace);
    }
    let ttrpc_address = std::env::var(TTRPC_ADDRESS).map_err(Error::TtrpcAddress)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(Error::Subreaper)?;
    // `delete` and the server catch SIGTERM and SIGINT rather than end, and reap children
    // on SIGCHLD: registered at the start of their arms, before any thread exists
    // (signal-hook's advice), and read by a thread that keeps them to the end. `start`
    // registers nothing: its handlers would outlive the reader when `start` returns, and
    // the SIGCHLD of the server it spawned, arriving then, made the handler write to a
    // closed socket, whose SIGPIPE ran the handler again, forever (containerd killed the
    // `start` of a pod's second container after 60 s).
    let catch = || Signals::new([SIGTERM, SIGINT, SIGPIPE, SIGCHLD]).map_err(Error::Signals);

    let mut config = Config::default();
    let mut shim = S::new(runtime_id, &flags, &mut config);
    match flags.action.as_str() {
        "start" => {
            let opts = StartOpts {
                id: flags.id,
                publish_binary: flags.publish_binary,
                address: flags.address,
                ttrpc_address,
                namespace: flags.namespace,
                debug: flags.debug,
            };
            let address = shim.start_shim(opts).map_err(|source| Error::Action {
                action: "start",
                source,
            })?;
            // Bare, without a newline: containerd 1.6 takes all of stdout as the address.
            let mut out = std::io::stdout().lock();
            out.write_all(address.as_bytes())
                .and_then(|()| out.flush())
                .map_err(Error::Stdout)
        }
        "delete" => {
            let signals = catch()?;
            std::thread::spawn(move || handle_signals(signals));
            let response = shim.delete_shim().map_err(|source| Error::Action {
                action: "delete",
                source,
            })?;
            let mut out = std::io::stdout().lock();
            response
                .write_to_writer(&mut out)
                .map_err(Error::DeleteResponse)?;
            out.flush().map_err(Error::Stdout)
        }
        _ => {
            let signals = catch()?;
            serve(&mut shim, &config, &flags, &ttrpc_address, signals)
        }
    }
}

/// The server: serves the Task service on `flags.socket` until the shim's `wait` returns (after
/// Shutdown), then removes the socket.
fn serve<S: Shim + Send + Sync + 'static>(
    shim: &mut S,
    config: &Config,
    flags: &Flags,
    ttrpc_address: &str,
    signals: Signals,
) -> Result<()> {
    let socket = flags.socket.as_str();
    if socket.is_empty() {
        return Err(Error::NoSocket);
    }
    if !config.no_setup_logger {
        containerd_shim::logger::init(
            flags.debug,
            &config.default_log_level,
            &flags.namespace,
            &flags.id,
        )
        .map_err(Error::Logger)?;
    }
    let publisher = RemotePublisher::new(ttrpc_address).map_err(|source| Error::Publisher {
        address: ttrpc_address.to_owned(),
        source,
    })?;
    let service: Arc<dyn Task + Send + Sync> = Arc::new(shim.create_task_service(publisher));
    let methods = task_methods(&service)?;
    let Some(server) = create_server_with_retry(socket)? else {
        // Another server already answers on this socket; `start` reports its address.
        return release_stdout();
    };
    let mut server = server.register_service(methods);
    server.start().map_err(Error::Server)?;
    release_stdout()?;

    log::info!("serving {TASK_V2} and {TASK_V3} on {socket}");
    std::thread::spawn(move || handle_signals(signals));
    shim.wait();

    log::info!("shutting down the shim");
    server.shutdown();
    // If the server died instead (the OOM killer), the socket stays behind; `start` of the
    // next shim for this group removes it as stale.
    match containerd_shim::util::read_address() {
        Ok(address) => remove_socket_quietly(&address),
        Err(e) => log::warn!("reading the address file: {e}"),
    }
    Ok(())
}

/// The Task handlers of `service` under both service names: every `/TASK_V2/M` path of
/// the generated service and its `/TASK_V3/M` twin, all calling the same object.
///
/// # Errors
/// A generated path that is not under [`TASK_V2`] (a protos crate that changed its names).
pub fn task_methods(service: &Arc<dyn Task + Send + Sync>) -> Result<Methods> {
    let v2_prefix = format!("/{TASK_V2}/");
    let v2 = create_task(Arc::clone(service));
    let mut methods = Methods::with_capacity(2 * v2.len());
    for (path, handler) in create_task(Arc::clone(service)) {
        let method = path
            .strip_prefix(&v2_prefix)
            .ok_or_else(|| Error::UnexpectedMethod(path.clone()))?;
        methods.insert(format!("/{TASK_V3}/{method}"), handler);
    }
    methods.extend(v2);
    Ok(methods)
}

/// The filesystem path of a `unix://` socket address.
fn socket_path(address: &str) -> &Path {
    Path::new(address.strip_prefix("unix://").unwrap_or(address))
}

/// Binds `socket` (creating its directory) and makes a server listening on it.
fn create_server(socket: &str) -> Result<Server> {
    let path = socket_path(socket);
    let listen_error = |source| Error::Listen {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(listen_error)?;
    }
    let listener = UnixListener::bind(path).map_err(listen_error)?;
    Server::new()
        .add_listener(listener.into_raw_fd())
        .map_err(Error::Server)
}

/// [`create_server`], or `None` if a live server already answers on `socket` (containerd
/// raced two `start`s for one group; the address file then names it). A socket nobody
/// answers on is stale: it is removed and bound again.
fn create_server_with_retry(socket: &str) -> Result<Option<Server>> {
    match create_server(socket) {
        Err(Error::Listen { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
            if socket_answers(socket, 200, Duration::from_millis(5)) {
                containerd_shim::util::write_address(socket).map_err(Error::WriteAddress)?;
                return Ok(None);
            }
            remove_socket(socket)?;
            create_server(socket).map(Some)
        }
        other => other.map(Some),
    }
}

/// Whether a ttrpc server accepts on `socket` within `tries` attempts `interval` apart.
fn socket_answers(socket: &str, tries: u32, interval: Duration) -> bool {
    for _ in 0..tries {
        if ttrpc::Client::connect(socket).is_ok() {
            return true;
        }
        std::thread::sleep(interval);
    }
    false
}

/// Removes the socket file of `address` if it is a socket.
fn remove_socket(address: &str) -> Result<()> {
    let path = socket_path(address);
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| Error::RemoveSocket {
                path: path.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

fn remove_socket_quietly(address: &str) {
    if let Err(e) = remove_socket(address) {
        log::warn!("{e}");
    }
}

/// Points stdout at stderr. `start` copies the server's stdout to its own stderr until the
/// pipe closes; replacing our only copy of the pipe closes it and lets `start` report the
/// address.
fn release_stdout() -> Result<()> {
    rustix::stdio::dup2_stdout(std::io::stderr()).map_err(|e| Error::ReleaseStdout(e.into()))
}

/// The signal thread: logs SIGTERM/SIGINT/SIGPIPE (they do not end the shim: Shutdown
/// does) and reaps every exited child on SIGCHLD, handing its status to the exit monitor.
fn handle_signals(mut signals: Signals) {
    for signal in signals.forever() {
        match signal {
            SIGCHLD => reap_children(),
            other => log::debug!("received signal {other}"),
        }
    }
}

/// Reaps every child that has exited: the sandbox process (the shim learns of its end from
/// the control channel) and, as the subreaper, orphans of our descendants.
fn reap_children() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => notify_exit(pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                log::debug!("child {pid} killed by {signal}");
                notify_exit(pid, 128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            // Stops and continues are not reported without WUNTRACED/WCONTINUED.
            Ok(_) => {}
            Err(e) => log::warn!("waitpid: {e}"),
        }
    }
}

fn notify_exit(pid: Pid, code: i32) {
    if let Err(e) = monitor_notify_by_pid(pid.as_raw(), code) {
        log::error!("publishing the exit of {pid}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use containerd_shim::api::{StateRequest, StateResponse};
    use containerd_shim::{TtrpcContext, TtrpcResult};
    use ttrpc::{Code, Request};

    /// Answers State with the id it was asked for and a fixed pid.
    struct EchoState;

    impl Task for EchoState {
        fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
            Ok(StateResponse {
                id: req.id,
                pid: 4242,
                ..Default::default()
            })
        }
    }

    fn service() -> Arc<dyn Task + Send + Sync> {
        Arc::new(EchoState)
    }

    #[test]
    fn every_v2_method_has_a_v3_twin() {
        let v2 = create_task(service());
        let methods = task_methods(&service()).unwrap();
        assert_eq!(methods.len(), 2 * v2.len());
        for path in v2.keys() {
            let method = path.strip_prefix(&format!("/{TASK_V2}/")).unwrap();
            assert!(methods.contains_key(path), "{path} missing");
            let twin = format!("/{TASK_V3}/{method}");
            assert!(methods.contains_key(&twin), "{twin} missing");
        }
        assert!(methods.contains_key("/containerd.task.v3.Task/State"));
        assert!(methods.contains_key("/containerd.task.v2.Task/Shutdown"));
    }

    fn call_state(client: &ttrpc::Client, service: &str) -> ttrpc::Result<StateResponse> {
        let req = StateRequest {
            id: "c1".into(),
            ..Default::default()
        };
        let request = Request {
            service: service.into(),
            method: "State".into(),
            payload: req.write_to_bytes().unwrap(),
            timeout_nano: Duration::from_secs(5).as_nanos() as i64,
            ..Default::default()
        };
        let response = client.request(request)?;
        Ok(StateResponse::parse_from_bytes(&response.payload).unwrap())
    }

    #[test]
    fn a_server_answers_both_names_and_refuses_others() {
        let dir = std::env::temp_dir().join(format!("shim-bootstrap-{}", std::process::id()));
        let socket = format!("unix://{}/s/sock", dir.display());
        let mut server = create_server_with_retry(&socket)
            .unwrap()
            .expect("no server on a fresh socket")
            .register_service(task_methods(&service()).unwrap());
        server.start().unwrap();

        let client = ttrpc::Client::connect(&socket).unwrap();
        let v2 = call_state(&client, TASK_V2).unwrap();
        let v3 = call_state(&client, TASK_V3).unwrap();
        assert_eq!((v2.id.as_str(), v2.pid), ("c1", 4242));
        assert_eq!(v2, v3);
        match call_state(&client, "containerd.task.v9.Task") {
            Err(ttrpc::Error::RpcStatus(status)) => {
                assert_eq!(status.code(), Code::INVALID_ARGUMENT);
                assert!(status.message().contains("does not exist"), "{status:?}");
            }
            other => panic!("an unknown service answered: {other:?}"),
        }

        // No `server.shutdown()`: ttrpc 0.9's can hang while a client connection is being
        // torn down (its reaper joins the connection's thread under the connections lock).
        // The servers' threads end with the test process.
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let dir = std::env::temp_dir().join(format!("shim-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        // A socket file whose listener is gone, as a killed shim leaves it.
        drop(UnixListener::bind(&path).unwrap());
        assert!(ttrpc::Client::connect(&format!("unix://{}", path.display())).is_err());

        let socket = format!("unix://{}", path.display());
        let mut server = create_server_with_retry(&socket)
            .unwrap()
            .expect("a stale socket was taken for a live server");
        server.start().unwrap();
        assert!(ttrpc::Client::connect(&socket).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
