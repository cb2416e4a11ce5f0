//! Host Unix sockets and FIFOs reached from the sandbox: Debian's curl and python3 in the
//! sandbox talk to servers of this test on the host through volumes (a directory at its own
//! path, `--volume DIR:DIR`, and a single socket, `--volume SOCKET:GUEST`, the
//! `-v /run/docker.sock:/run/docker.sock` of containers), compared with the same programs
//! run natively. Outside a volume, a host socket under the host's `/` (which `runsc-rs do`
//! shows read-only) is not reached.
//!
//! Needs a built `runsc-rs`, `/usr/bin/curl` and `/usr/bin/python3` (tests/run.sh installs
//! both); a missing program prints `SKIPPED: reason`.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use runsc_rs_tests::{skip, Outcome, Run, Scratch};

const CURL: &str = "/usr/bin/curl";
const PYTHON: &str = "/usr/bin/python3";

/// How long a serving thread blocks before it looks at its stop flag again.
const TICK: Duration = Duration::from_millis(100);

/// A server thread of the test, stopped and joined on drop.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn spawn(work: impl FnOnce(&AtomicBool) + Send + 'static) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Server {
            stop,
            thread: Some(std::thread::spawn(move || work(&flag))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `--volume DIR:DIR`: the scratch directory in the sandbox at its host path.
fn volume_of(dir: &Scratch) -> String {
    let dir = dir.path().display();
    format!("{dir}:{dir}")
}

fn have(program: &str) -> bool {
    if Path::new(program).is_file() {
        return true;
    }
    skip(&format!("{program} is not installed"));
    false
}

fn check(what: &str, out: &Outcome) -> String {
    assert_eq!(
        out.status,
        0,
        "{what}: exit {}; stderr: {}",
        out.status,
        out.stderr_text()
    );
    out.stdout_text()
}

/// A Unix socket of type `ty` bound at `path`, whose accepts and receives time out after
/// [`TICK`] (so that its server thread sees the stop flag).
fn bound(path: &Path, ty: SockType) -> OwnedFd {
    let fd = socket::socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None).unwrap();
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    let tick = nix::sys::time::TimeVal::new(0, TICK.as_micros() as i64);
    socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &tick).unwrap();
    fd
}

/// Serves each connection to `listener` with `serve` until stopped.
fn accept_loop(
    listener: OwnedFd,
    serve: impl Fn(&mut std::os::unix::net::UnixStream) + Send + 'static,
) -> Server {
    socket::listen(&listener, socket::Backlog::new(8).unwrap()).unwrap();
    let listener = UnixListener::from(listener);
    Server::spawn(move |stop| {
        while !stop.load(Ordering::Relaxed) {
            if let Ok((mut conn, _)) = listener.accept() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                serve(&mut conn);
            }
        }
    })
}

/// curl's HTTP over a host Unix socket, as a client of the Docker API socket does: in a
/// directory volume and through a volume of the socket alone; not without a volume.
#[test]
fn curl_talks_http_to_a_host_unix_socket() {
    if !have(CURL) {
        return;
    }
    let dir = Scratch::new("external-http");
    let sock = dir.join("api.sock");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let _server = accept_loop(bound(&sock, SockType::Stream), move |conn| {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let line = String::from_utf8_lossy(&request)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let body = format!("served {line}\n");
        let _ = write!(
            conn,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        seen.lock().unwrap().push(line);
    });
    let sock_arg = sock.to_str().unwrap();
    let curl = |path: &str| {
        Run::new(&[
            CURL,
            "-sS",
            "--unix-socket",
            path,
            "http://localhost/v1.43/version",
        ])
    };
    let native = check("native curl", &curl(sock_arg).native());
    assert_eq!(native, "served GET /v1.43/version HTTP/1.1\n");
    let dir_volume = volume_of(&dir);
    let sandboxed = check(
        "curl in the sandbox",
        &curl(sock_arg).sandbox(&["--volume", &dir_volume]),
    );
    assert_eq!(sandboxed, native);
    let unreached = curl(sock_arg).sandbox(&[]);
    assert_eq!(
        unreached.status,
        7,
        "curl without a volume: the host's socket must not be reached (stdout {:?}, stderr {})",
        unreached.stdout_text(),
        unreached.stderr_text()
    );
    let volume = format!("{sock_arg}:/run/runsc-rs-test-api.sock");
    let through_volume = check(
        "curl in the sandbox, through a volume",
        &curl("/run/runsc-rs-test-api.sock").sandbox(&["--volume", &volume]),
    );
    assert_eq!(through_volume, native);
    assert_eq!(
        requests.lock().unwrap().len(),
        3,
        "each run reached the host server"
    );
}

/// Stream and seqpacket echo, a datagram to a host socket (connected, and by sendto), a
/// connection refused by a bound socket that does not listen; each as natively. Passing an
/// fd to a host socket is refused honestly in the sandbox (EOPNOTSUPP), not dropped.
#[test]
fn python_sockets_reach_host_sockets() {
    if !have(PYTHON) {
        return;
    }
    let dir = Scratch::new("external-py");
    let echo = |conn: &mut std::os::unix::net::UnixStream| {
        let mut buf = [0u8; 512];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    };
    let _stream = accept_loop(bound(&dir.join("stream"), SockType::Stream), echo);
    let _seqpacket = accept_loop(bound(&dir.join("seqpacket"), SockType::SeqPacket), echo);
    let _nonlistening = bound(&dir.join("nonlistening"), SockType::Stream);
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = UnixDatagram::bind(dir.join("dgram")).unwrap();
    sink.set_read_timeout(Some(TICK)).unwrap();
    let received = got.clone();
    let _dgram = Server::spawn(move |stop| {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = sink.recv(&mut buf) {
                received.lock().unwrap().push(buf[..n].to_vec());
            }
        }
    });
    let script = r#"
import os, socket, sys
d = sys.argv[1]
for kind, name in [(socket.SOCK_STREAM, "stream"), (socket.SOCK_SEQPACKET, "seqpacket")]:
    s = socket.socket(socket.AF_UNIX, kind)
    s.connect(os.path.join(d, name))
    s.sendall(b"x" * 64)
    print(name, len(s.recv(64)), s.getpeername() == os.path.join(d, name))
    s.shutdown(socket.SHUT_WR)
    print(name, "after shutdown", s.recv(64))
    s.close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.path.join(d, "dgram"))
print("dgram sent", s.send(b"connected"))
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
print("dgram sendto", u.sendto(b"unconnected", os.path.join(d, "dgram")))
try:
    socket.socket(socket.AF_UNIX).connect(os.path.join(d, "nonlistening"))
except OSError as e:
    print("nonlistening", e.errno == 111)
s = socket.socket(socket.AF_UNIX)
s.connect(os.path.join(d, "stream"))
try:
    socket.send_fds(s, [b"fd"], [0])
    print("fd passing: sent")
except OSError as e:
    print("fd passing:", os.strerror(e.errno))
"#;
    let run = Run::new(&[PYTHON, "-c", script, dir.path().to_str().unwrap()]);
    let native = check("native python3", &run.native());
    let sandboxed = check(
        "python3 in the sandbox",
        &run.sandbox(&["--volume", &volume_of(&dir)]),
    );
    let expected_common = "stream 64 True\nstream after shutdown b''\nseqpacket 64 True\n\
                           seqpacket after shutdown b''\ndgram sent 9\ndgram sendto 11\n\
                           nonlistening True\n";
    assert_eq!(native, format!("{expected_common}fd passing: sent\n"));
    assert_eq!(
        sandboxed,
        format!("{expected_common}fd passing: Operation not supported\n")
    );
    // Both runs' datagrams reached the host sink; the last may still be on its way.
    for _ in 0..50 {
        if got.lock().unwrap().len() == 4 {
            break;
        }
        std::thread::sleep(TICK);
    }
    let mut got = got.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            b"connected".to_vec(),
            b"connected".to_vec(),
            b"unconnected".to_vec(),
            b"unconnected".to_vec()
        ]
    );
}

/// Opens the FIFO at `path` nonblocking (writing needs a reader: retried until `stop`).
fn open_fifo(path: &Path, write: bool, stop: &AtomicBool) -> Option<std::fs::File> {
    while !stop.load(Ordering::Relaxed) {
        let f = std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        match f {
            Ok(f) => return Some(f),
            Err(_) => std::thread::sleep(TICK / 4),
        }
    }
    None
}

/// A host FIFO in each direction: `cat` in the sandbox reads what a host writer sends (its
/// open waits for the writer), and a shell's redirection writes to a host reader.
#[test]
fn host_fifos_carry_data_both_ways() {
    let dir = Scratch::new("external-fifo");
    let (to_sandbox, from_sandbox) = (dir.join("to-sandbox"), dir.join("from-sandbox"));
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    nix::unistd::mkfifo(&to_sandbox, mode).unwrap();
    nix::unistd::mkfifo(&from_sandbox, mode).unwrap();
    // One message for each reader the test announces (the native run's, then the
    // sandbox's): a reader only opens the FIFO after the previous one has exited.
    let (announce, readers) = std::sync::mpsc::channel::<()>();
    let path = to_sandbox.clone();
    let _writer = Server::spawn(move |stop| {
        while !stop.load(Ordering::Relaxed) {
            if readers.recv_timeout(TICK).is_err() {
                continue;
            }
            let Some(mut f) = open_fifo(&path, true, stop) else {
                return;
            };
            let _ = f.write_all(b"from the host\n");
        }
    });
    let got = Arc::new(Mutex::new(Vec::new()));
    let received = got.clone();
    let path = from_sandbox.clone();
    let _reader = Server::spawn(move |stop| {
        let Some(mut f) = open_fifo(&path, false, stop) else {
            return;
        };
        let mut buf = [0u8; 256];
        while !stop.load(Ordering::Relaxed) {
            match f.read(&mut buf) {
                Ok(0) => std::thread::sleep(TICK / 4),
                Ok(n) => received.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 4),
                Err(_) => return,
            }
        }
    });
    let cat = Run::new(&["/usr/bin/cat", to_sandbox.to_str().unwrap()]);
    announce.send(()).unwrap();
    let native = check("native cat", &cat.native());
    assert_eq!(native, "from the host\n");
    announce.send(()).unwrap();
    let fifo_volume = volume_of(&dir);
    let sandboxed = check(
        "cat in the sandbox",
        &cat.sandbox(&["--volume", &fifo_volume]),
    );
    assert_eq!(sandboxed, native);

    let script = format!("echo from the sandbox > {}", from_sandbox.display());
    let echo = Run::new(&["/bin/sh", "-c", &script]);
    check(
        "sh in the sandbox",
        &echo.sandbox(&["--volume", &fifo_volume]),
    );
    for _ in 0..50 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(TICK);
    }
    assert_eq!(&*got.lock().unwrap(), b"from the sandbox\n");
}
