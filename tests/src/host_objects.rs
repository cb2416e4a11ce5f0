//! Host objects that gVisor's test runner (`test/runner/main.go`, `test/uds`) makes for the
//! suite's programs that talk to the host from inside the sandbox, made here the same way in
//! a fresh directory of the run, served by threads of the harness that stop (and the
//! directory goes) when the [`HostObjects`] is dropped:
//! - `connect_external`: a tree of bound host Unix sockets (`TEST_UDS_TREE`):
//!   `stream/echo`, `seqpacket/echo` (echo servers), `stream/nonlistening`,
//!   `seqpacket/nonlistening` (bound, not listening), `dgram/null` (a sink);
//! - `pipe_external`: host FIFOs (`TEST_FIFO_TREE`): `in`, written by the host with the bytes
//!   0, 1, 2, ... (wrapping) for each reader, and `out`, read by the host;
//! - `bind_external`: a tree for the sandbox to bind sockets in (`TEST_CONNECTOR_TREE`, gVisor's
//!   `--add-host-connector`), `stream/` and `seqpacket/`, with an echo client of the host for
//!   each of `created-in-sandbox` and `created-in-sandbox-epoll` in them: it tries to connect
//!   every [`TICK`] until a socket listens there, then sends back what it receives until the
//!   connection ends. gVisor's runner, and this harness ([`HostObjects::runner_args`]), run
//!   the program with `--host-uds=create` (a bind in the tree makes a host socket).
//!
//! The tree is a volume of the sandbox at its own path (`--volume DIR:DIR`,
//! [`HostObjects::volume`]): only a volume's host sockets and FIFOs are the host's. gVisor
//! mounts each tree a second time (`..._ATTACH_TREE`); here both variables name the one
//! directory.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::time::TimeVal;

use crate::scratch::Scratch;

/// How long a serving thread blocks before it looks at the stop flag again.
const TICK: Duration = Duration::from_millis(100);

/// The host objects of one run of a program, and the environment that names them.
pub struct HostObjects {
    env: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Sockets only held (bound, not listening).
    _held: Vec<OwnedFd>,
    dir: Scratch,
}

impl HostObjects {
    /// The objects program `name` needs (None: it needs none).
    ///
    /// # Errors
    /// A socket or FIFO cannot be made.
    pub fn for_program(name: &str) -> std::io::Result<Option<HostObjects>> {
        let (tag, vars): (&str, &[&str]) = match name {
            "connect_external" => ("uds", &["TEST_UDS_TREE", "TEST_UDS_ATTACH_TREE"]),
            "pipe_external" => ("fifos", &["TEST_FIFO_TREE", "TEST_FIFO_ATTACH_TREE"]),
            "bind_external" => ("connectors", &["TEST_CONNECTOR_TREE"]),
            _ => return Ok(None),
        };
        let dir = Scratch::new(tag);
        let root = dir.path().display().to_string();
        let mut objects = HostObjects {
            env: vars.iter().map(|v| (v.to_string(), root.clone())).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            _held: Vec::new(),
            dir,
        };
        let root = Path::new(&root);
        match name {
            "connect_external" => objects.uds_tree(root)?,
            "bind_external" => objects.connector_tree(root)?,
            _ => objects.fifo_tree(root)?,
        }
        Ok(Some(objects))
    }

    /// The variables to set for the program.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The options of `runsc-rs do` the program needs besides the volume, as gVisor's runner
    /// gives them: `--host-uds=create` for the tree the sandbox binds sockets in.
    pub fn runner_args(&self) -> &'static [&'static str] {
        match self.env.first().map(|(v, _)| v.as_str()) {
            Some("TEST_CONNECTOR_TREE") => &["--host-uds=create"],
            _ => &[],
        }
    }

    /// The `--volume` argument that shows the tree in the sandbox at its host path.
    pub fn volume(&self) -> String {
        let dir = self.dir.path().display();
        format!("{dir}:{dir}")
    }

    fn spawn(&mut self, work: impl FnOnce(Arc<AtomicBool>) + Send + 'static) {
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || work(stop)));
    }

    fn uds_tree(&mut self, root: &Path) -> std::io::Result<()> {
        for (dir, ty) in [
            ("stream", SockType::Stream),
            ("seqpacket", SockType::SeqPacket),
        ] {
            std::fs::create_dir(root.join(dir))?;
            let echo = bound_socket(&root.join(dir).join("echo"), ty)?;
            socket::listen(
                &echo,
                socket::Backlog::new(16).map_err(std::io::Error::from)?,
            )?;
            self.spawn(move |stop| serve_echo(&echo, &stop));
            self._held
                .push(bound_socket(&root.join(dir).join("nonlistening"), ty)?);
        }
        std::fs::create_dir(root.join("dgram"))?;
        let null = UnixDatagram::bind(root.join("dgram/null"))?;
        null.set_read_timeout(Some(TICK))?;
        self.spawn(move |stop| {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                let _ = null.recv(&mut buf);
            }
        });
        Ok(())
    }

    fn connector_tree(&mut self, root: &Path) -> std::io::Result<()> {
        for (dir, ty) in [
            ("stream", SockType::Stream),
            ("seqpacket", SockType::SeqPacket),
        ] {
            std::fs::create_dir(root.join(dir))?;
            for name in ["created-in-sandbox", "created-in-sandbox-epoll"] {
                let path = root.join(dir).join(name);
                self.spawn(move |stop| echo_client(&path, ty, &stop));
            }
        }
        Ok(())
    }

    fn fifo_tree(&mut self, root: &Path) -> std::io::Result<()> {
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
        let (input, output) = (root.join("in"), root.join("out"));
        nix::unistd::mkfifo(&input, mode)?;
        nix::unistd::mkfifo(&output, mode)?;
        self.spawn(move |stop| write_sequences(&input, &stop));
        self.spawn(move |stop| read_sequences(&output, &stop));
        Ok(())
    }
}

impl Drop for HostObjects {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A Unix socket of type `ty` bound at `path`, whose accepts and receives time out after
/// [`TICK`].
fn bound_socket(path: &Path, ty: SockType) -> std::io::Result<OwnedFd> {
    let fd = socket::socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    let tick = TimeVal::new(0, TICK.as_micros() as i64);
    socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &tick)?;
    Ok(fd)
}

/// Accepts connections one at a time and sends back what each sends (512 bytes a read, as
/// gVisor's echo server) until it closes.
fn serve_echo(listener: &OwnedFd, stop: &AtomicBool) {
    let listener = UnixListener::from(listener.try_clone().expect("dup of a listener"));
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut conn, _)) = listener.accept() else {
            continue;
        };
        let _ = conn.set_read_timeout(Some(TICK));
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    }
}

/// Connects a socket of type `ty` to `path`, trying again every [`TICK`] until something
/// listens there, then sends back what it receives until the connection ends (gVisor's echo
/// client, which serves one connection).
fn echo_client(path: &Path, ty: SockType, stop: &AtomicBool) {
    let Ok(addr) = UnixAddr::new(path) else {
        return;
    };
    let conn = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(fd) = socket::socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None) else {
            return;
        };
        if socket::connect(fd.as_raw_fd(), &addr).is_ok() {
            break std::os::unix::net::UnixStream::from(fd);
        }
        std::thread::sleep(TICK);
    };
    let mut conn = conn;
    let _ = conn.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Opens the FIFO at `path` with `write` or for reading, nonblocking, retrying (a writer
/// needs a reader first) until it opens or the run stops.
fn open_fifo(path: &Path, write: bool, stop: &AtomicBool) -> Option<std::fs::File> {
    while !stop.load(Ordering::Relaxed) {
        match std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return Some(f),
            Err(_) => std::thread::sleep(TICK / 4),
        }
    }
    None
}

/// Waits up to [`TICK`] for `f` to be ready for `events`.
fn wait_for(f: &std::fs::File, events: nix::poll::PollFlags) {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(f.as_fd(), events)];
    let _ = nix::poll::poll(
        &mut fds,
        nix::poll::PollTimeout::from(TICK.as_millis() as u16),
    );
}

/// For each reader of the FIFO at `path`: writes 0, 1, 2, ... (a byte each, wrapping) until
/// it goes away.
fn write_sequences(path: &Path, stop: &AtomicBool) {
    while let Some(mut f) = open_fifo(path, true, stop) {
        let mut next = 0u8;
        let mut chunk = [0u8; 4096];
        'reader: while !stop.load(Ordering::Relaxed) {
            for b in chunk.iter_mut() {
                *b = next;
                next = next.wrapping_add(1);
            }
            let mut at = 0;
            while at < chunk.len() {
                match f.write(&chunk[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        wait_for(&f, nix::poll::PollFlags::POLLOUT);
                    }
                    // EPIPE: the reader went away; the next one starts at 0 again.
                    Err(_) => break 'reader,
                }
            }
        }
    }
}

/// For each writer of the FIFO at `path`: reads what it writes, checking it is 0, 1, 2, ...
/// (a byte each, wrapping), as gVisor's reader does.
fn read_sequences(path: &Path, stop: &AtomicBool) {
    let Some(mut f) = open_fifo(path, false, stop) else {
        return;
    };
    let mut expected = 0u8;
    let mut seen_writer = false;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match f.read(&mut buf) {
            Ok(0) if seen_writer => {
                // The writer closed: the next one starts at 0 again.
                seen_writer = false;
                expected = 0;
            }
            Ok(0) => std::thread::sleep(TICK / 4),
            Ok(n) => {
                seen_writer = true;
                for &b in &buf[..n] {
                    if b != expected {
                        eprintln!("host FIFO reader: got byte {b}, expected {expected}");
                        return;
                    }
                    expected = expected.wrapping_add(1);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                seen_writer = true;
                wait_for(&f, nix::poll::PollFlags::POLLIN);
            }
            Err(_) => return,
        }
    }
    drop(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Natively, a socket bound and listening in the connector tree gets the host's echo
    /// client, for both types, as the sandbox's would with gVisor's `--host-uds=create`.
    #[test]
    fn the_connector_tree_echoes_what_a_bound_socket_sends() {
        let objects = HostObjects::for_program("bind_external")
            .unwrap()
            .expect("bind_external has host objects");
        let [(var, root)] = objects.env() else {
            panic!("one variable: {:?}", objects.env());
        };
        assert_eq!(var, "TEST_CONNECTOR_TREE");
        for (dir, ty) in [
            ("stream", SockType::Stream),
            ("seqpacket", SockType::SeqPacket),
        ] {
            let path = Path::new(root).join(dir).join("created-in-sandbox");
            let listener =
                socket::socket(AddressFamily::Unix, ty, SockFlag::empty(), None).unwrap();
            socket::bind(listener.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
            socket::listen(&listener, socket::Backlog::new(1).unwrap()).unwrap();
            // Without a client the accept fails (EAGAIN after 10 s) rather than hangs.
            socket::setsockopt(
                &listener,
                socket::sockopt::ReceiveTimeout,
                &TimeVal::new(10, 0),
            )
            .unwrap();
            // std's accept serves a listening socket of either type.
            let (mut conn, _) = UnixListener::from(listener).accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let sent = [b'a'; 64];
            conn.write_all(&sent).unwrap();
            let mut got = [0u8; 64];
            conn.read_exact(&mut got).unwrap();
            assert_eq!(got, sent, "{dir}");
        }
        assert!(HostObjects::for_program("bind").unwrap().is_none());
    }
}
