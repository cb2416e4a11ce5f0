//! `--host-uds=create`: a stream or seqpacket socket the sandbox binds in a volume is a host
//! socket, which programs of the host connect to. Python in the sandbox serves on a volume
//! path (blocking accept, then a nonblocking one woken by select or epoll), this test
//! connects from the host; errors and the socket file's mode are compared with the same
//! script run natively. Without the flag a bind in a volume stays EPERM.
//!
//! Needs a built `runsc-rs` and `/usr/bin/python3`; without python3 it prints `SKIPPED`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use runsc_rs_tests::{host_calls_installed, host_calls_listed, skip, Outcome, Run, Scratch};

const PYTHON: &str = "/usr/bin/python3";

/// The sandbox's side. `serve DIR`: for each type, bind DIR/TYPE.sock, listen, print its
/// mode, accept one host connection (the stream one blocking, the seqpacket one after a
/// nonblocking accept's EAGAIN, the file TYPE.go made then, and an epoll wait), echo one
/// message upper-cased, unlink.
/// `errors DIR`: the errors of binds in DIR, one line each.
const SCRIPT: &str = r#"
import errno, os, select, socket, sys
cmd, d = sys.argv[1], sys.argv[2]
os.umask(0o027)
def err(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
if cmd == "serve":
    for name, ty in (("stream", socket.SOCK_STREAM), ("seqpacket", socket.SOCK_SEQPACKET)):
        p = os.path.join(d, name + ".sock")
        s = socket.socket(socket.AF_UNIX, ty)
        s.bind(p)
        s.listen(4)
        print(name, "mode", oct(os.stat(p).st_mode), "name", s.getsockname() == p, flush=True)
        if name == "stream":
            c, _ = s.accept()
        else:
            s.setblocking(False)
            print(name, "nonblocking accept", err(s.accept), flush=True)
            go = os.path.join(d, name + ".go")
            open(go, "w").close()
            ep = select.epoll()
            ep.register(s.fileno(), select.EPOLLIN)
            print(name, "epoll", ep.poll(60) == [(s.fileno(), select.EPOLLIN)], flush=True)
            c, _ = s.accept()
            c.setblocking(True)
            os.unlink(go)
        print(name, "accepted", c.getsockname() == p, c.get_inheritable(), flush=True)
        data = c.recv(100)
        c.sendall(data.upper())
        c.close()
        s.close()
        os.unlink(p)
        print(name, "served", data.decode(), os.path.exists(p), flush=True)
elif cmd == "errors":
    p = os.path.join(d, "twice.sock")
    a = socket.socket(socket.AF_UNIX)
    print("bind", err(lambda: a.bind(p)))
    b = socket.socket(socket.AF_UNIX)
    print("bind twice", err(lambda: b.bind(p)))
    print("rebind", err(lambda: a.bind(os.path.join(d, "other.sock"))))
    print("missing dir", err(lambda: b.bind(os.path.join(d, "no", "x.sock"))))
    f = os.path.join(d, "file")
    open(f, "w").close()
    print("over a file", err(lambda: b.bind(f)))
    print("under a file", err(lambda: b.bind(os.path.join(f, "x.sock"))))
    print("listen", err(lambda: a.listen(1)))
    print("mode", oct(os.stat(p).st_mode))
    os.unlink(p)
    print("unlinked", os.path.exists(p))
    os.unlink(f)
elif cmd == "one":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    print(err(lambda: s.bind(os.path.join(d, sys.argv[3]))))
"#;

fn have_python() -> bool {
    if Path::new(PYTHON).is_file() {
        return true;
    }
    skip("/usr/bin/python3 is not installed");
    false
}

fn script(args: &[&str]) -> Run {
    let mut argv = vec![PYTHON, "-c", SCRIPT];
    argv.extend_from_slice(args);
    Run::new(&argv).timeout(Duration::from_secs(120))
}

fn volume(dir: &Path, guest: &str, ro: bool) -> String {
    format!("{}:{guest}{}", dir.display(), if ro { ":ro" } else { "" })
}

fn ok(what: &str, out: &Outcome) -> String {
    assert_eq!(
        out.status,
        0,
        "{what}: exit {}; stdout: {}; stderr: {}",
        out.status,
        out.stdout_text(),
        out.stderr_text()
    );
    out.stdout_text()
}

/// Connects a host socket of type `ty` to `path` once something listens there (at most a
/// minute).
fn connect_when_listening(path: &Path, ty: SockType) -> OwnedFd {
    let start = Instant::now();
    loop {
        let fd = socket::socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None).unwrap();
        match socket::connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()) {
            Ok(()) => return fd,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(60),
                "nothing listened at {} within a minute: {e}",
                path.display()
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Host clients of the sandbox's stream and seqpacket servers on a volume: each sends a
/// message and gets it back upper-cased; the server's view (mode as Linux makes it with the
/// umask, getsockname, nonblocking accept, epoll readiness, close-on-exec of the accepted
/// socket, unlink removing the host name) is what the same script prints natively.
#[test]
fn host_clients_reach_a_sandbox_server() {
    if !have_python() {
        return;
    }
    let mut outputs = Vec::new();
    for sandboxed in [false, true] {
        let dir = Scratch::new("host-uds-serve");
        let guest = "/srv/uds";
        let host_dir = dir.path().to_owned();
        let run = script(&[
            "serve",
            if sandboxed {
                guest
            } else {
                host_dir.to_str().unwrap()
            },
        ]);
        let vol = volume(&host_dir, guest, false);
        let server = std::thread::spawn(move || {
            if sandboxed {
                run.sandbox(&["--host-uds=create", "--volume", &vol])
            } else {
                run.native()
            }
        });
        for (name, ty) in [
            ("stream", SockType::Stream),
            ("seqpacket", SockType::SeqPacket),
        ] {
            if ty == SockType::SeqPacket {
                // Only once the server's nonblocking accept found nothing.
                let go = host_dir.join(format!("{name}.go"));
                let start = Instant::now();
                while !go.exists() {
                    assert!(start.elapsed() < Duration::from_secs(60), "no {go:?}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let fd = connect_when_listening(&host_dir.join(format!("{name}.sock")), ty);
            let mut conn = UnixStream::from(fd);
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            conn.write_all(b"hello").unwrap();
            let mut got = [0u8; 16];
            let n = conn.read(&mut got).unwrap();
            assert_eq!(&got[..n], b"HELLO", "{name}, sandboxed {sandboxed}");
        }
        let out = server.join().unwrap();
        outputs.push(ok(&format!("serve, sandboxed {sandboxed}"), &out));
        let left: Vec<_> = std::fs::read_dir(&host_dir).unwrap().collect();
        assert!(left.is_empty(), "unlink removed the host names: {left:?}");
    }
    assert!(
        outputs[0].contains("stream served hello False"),
        "{}",
        outputs[0]
    );
    assert_eq!(outputs[1], outputs[0], "sandbox vs native");
}

/// A bind twice to one name, a second bind of a bound socket, a missing directory, a name
/// that is a file or under one, listen, the mode, unlink: as natively.
#[test]
fn bind_errors_match_native() {
    if !have_python() {
        return;
    }
    let native_dir = Scratch::new("host-uds-errors-native");
    let native = ok(
        "native",
        &script(&["errors", native_dir.path().to_str().unwrap()]).native(),
    );
    let dir = Scratch::new("host-uds-errors");
    let vol = volume(dir.path(), "/srv/uds", false);
    let sandboxed = ok(
        "sandbox",
        &script(&["errors", "/srv/uds"]).sandbox(&["--host-uds=all", "--volume", &vol]),
    );
    assert!(native.contains("bind twice EADDRINUSE"), "{native}");
    assert_eq!(sandboxed, native);
}

/// A read-only volume is EROFS; without `create` (the default, `open`, and `none`) a bind in
/// a volume is refused (EPERM) and makes no host file; a name whose host address
/// (`/proc/self/fd/N/NAME`) exceeds `sun_path` is ENAMETOOLONG, honestly, where Linux would
/// bind the sandbox's shorter path.
#[test]
fn refusals() {
    if !have_python() {
        return;
    }
    let dir = Scratch::new("host-uds-refusals");
    let rw = volume(dir.path(), "/v", false);
    let ro = volume(dir.path(), "/v", true);
    let one = |name: &str, flags: &[&str]| {
        let out = script(&["one", "/v", name]).sandbox(flags);
        ok("one bind", &out).trim().to_owned()
    };
    assert_eq!(
        one("a.sock", &["--host-uds=create", "--volume", &ro]),
        "EROFS"
    );
    assert_eq!(one("a.sock", &["--volume", &rw]), "EPERM");
    assert_eq!(
        one("a.sock", &["--host-uds=open", "--volume", &rw]),
        "EPERM"
    );
    assert_eq!(
        one("a.sock", &["--host-uds=none", "--volume", &rw]),
        "EPERM"
    );
    let long = "n".repeat(100);
    assert_eq!(
        one(&long, &["--host-uds=create", "--volume", &rw]),
        "ENAMETOOLONG"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no host file made: {left:?}");
    // The same short name binds with the flag (and the socket closes with the process).
    assert_eq!(one("a.sock", &["--host-uds=create", "--volume", &rw]), "ok");
    assert!(dir.path().join("a.sock").exists());
}

/// `--host-uds=none`: a host socket in a volume is not connected to (ECONNREFUSED, as for a
/// socket file nothing listens on); the default `open` reaches it.
#[test]
fn none_refuses_connecting_to_host_sockets() {
    if !have_python() {
        return;
    }
    let dir = Scratch::new("host-uds-none");
    let path = dir.path().join("l.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let vol = volume(dir.path(), "/v", false);
    let connect = r#"
import errno, socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("/v/l.sock")
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
"#;
    let run = Run::new(&[PYTHON, "-c", connect]).timeout(Duration::from_secs(120));
    let none = ok("none", &run.sandbox(&["--host-uds=none", "--volume", &vol]));
    assert_eq!(none.trim(), "ECONNREFUSED");
    let open = ok("open", &run.sandbox(&["--volume", &vol]));
    assert_eq!(open.trim(), "ok");
    drop(listener);
}

/// The host system calls `syscalls --host` lists with `--host-uds MODE`.
fn listed(host_uds: &str) -> BTreeSet<String> {
    let out = Run::new(&[
        runsc_rs_tests::runsc_rs_bin().as_os_str(),
        "syscalls".as_ref(),
        "--host".as_ref(),
        "--platform".as_ref(),
        runsc_rs_tests::effective_platform().as_ref(),
        "--host-uds".as_ref(),
        host_uds.as_ref(),
    ])
    .native();
    let text = ok("syscalls --host", &out);
    assert!(text.contains(&format!("host-uds {host_uds},")), "{text}");
    host_calls_listed(&text)
}

/// `create` (and `all`) add exactly bind, listen and accept4 to the sentry's host calls;
/// `open` and `none` add nothing; `do --host-uds=create` installs the list printed.
#[test]
fn create_alone_widens_the_seccomp_allowlist() {
    let open = listed("open");
    assert_eq!(listed("none"), open);
    let create = listed("create");
    assert_eq!(listed("all"), create);
    let added: Vec<&String> = create.difference(&open).collect();
    assert_eq!(added, ["accept4", "bind", "listen"], "{create:?}");
    assert!(open.is_subset(&create));
    let dir = Scratch::new("host-uds-seccomp");
    let log = dir.join("debug.log");
    let ran = Run::new(&["/bin/true"]).sandbox(&[
        "--host-uds=create",
        "--debug-log",
        log.to_str().unwrap(),
    ]);
    ok("do --host-uds=create", &ran);
    let text = std::fs::read_to_string(&log).unwrap();
    let installed = host_calls_installed(&text);
    assert_eq!(
        installed, create,
        "do installed another list than syscalls prints"
    );
}

/// The OCI CLI's global `--host-uds=create` reaches the sandbox: a container serving on a bind
/// mount of a host directory gets host clients; without it the bind is EPERM.
#[test]
fn oci_run_passes_host_uds_to_the_sandbox() {
    if !nix::unistd::geteuid().is_root() {
        skip("the OCI runtime needs root here");
        return;
    }
    let Some(server) = runsc_rs_tests::program("uds_echo_server") else {
        return;
    };
    let dir = Scratch::new("host-uds-oci");
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("srv")).unwrap();
    std::fs::copy(&server, rootfs.join("server")).unwrap();
    let root = dir.join("state");
    let bin = runsc_rs_tests::runsc_rs_bin();
    let spec = std::process::Command::new(&bin)
        .args(["spec", "--bundle", bundle.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(spec.success());
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/server", "/srv/s.sock"]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/srv",
            "type": "bind",
            "source": shared.to_str().unwrap(),
            "options": ["rbind", "rw"],
        }));
    std::fs::write(&config_path, config.to_string()).unwrap();
    let run = |id: &str, flags: &[&str]| {
        let mut argv: Vec<std::ffi::OsString> = vec![bin.clone().into()];
        argv.extend(["--root".into(), root.clone().into()]);
        argv.extend(flags.iter().map(Into::into));
        argv.extend([
            "run".into(),
            "--bundle".into(),
            bundle.clone().into(),
            id.into(),
        ]);
        Run::new(&argv).timeout(Duration::from_secs(120))
    };
    let refused = run("refused", &[]).native();
    assert_eq!(
        refused.stdout_text(),
        "bind: EPERM\n",
        "{}",
        refused.stderr_text()
    );
    let serving = run("serving", &["--host-uds=create"]);
    let container = std::thread::spawn(move || serving.native());
    let fd = connect_when_listening(&shared.join("s.sock"), SockType::Stream);
    let mut conn = UnixStream::from(fd);
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    conn.write_all(b"oci").unwrap();
    let mut got = [0u8; 3];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"OCI");
    drop(conn);
    let out = container.join().unwrap();
    assert_eq!(
        out.stdout_text(),
        "served 3\ndone\n",
        "{}",
        out.stderr_text()
    );
    for id in ["refused", "serving"] {
        let _ = std::process::Command::new(&bin)
            .arg("--root")
            .arg(&root)
            .args(["delete", "-f", id])
            .status();
    }
}

/// The sandbox's own clients of its host-backed listener (they connect through the host
/// socket): poll and select readiness, a blocking accept a signal interrupts (EINTR), a
/// datagram connect (EPROTOTYPE), the name left after close; as natively.
#[test]
fn sandbox_clients_and_signals_match_native() {
    if !have_python() {
        return;
    }
    let script = r#"
import errno, os, select, signal, socket, sys, time
d = sys.argv[1]
p = os.path.join(d, "s.sock")
s = socket.socket(socket.AF_UNIX)
s.bind(p)
s.listen(2)
po = select.poll()
po.register(s, select.POLLIN)
print("poll empty", po.poll(50))
c = socket.socket(socket.AF_UNIX)
c.connect(p)
print("poll ready", [e for _, e in po.poll(60000)])
print("select", select.select([s], [], [], 60)[0] == [s])
a, _ = s.accept()
c.sendall(b"x")
print("inner", a.recv(10))
def interrupt(*_):
    raise InterruptedError()
signal.signal(signal.SIGALRM, interrupt)
t = socket.socket(socket.AF_UNIX)
t.bind(os.path.join(d, "t.sock"))
t.listen(1)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    t.accept()
except InterruptedError:
    print("accept interrupted")
g = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    g.connect(p)
except OSError as e:
    print("dgram", errno.errorcode[e.errno])
s.close()
print("name after close", os.path.exists(p))
"#;
    let native_dir = Scratch::new("host-uds-inner-native");
    let native = ok(
        "native",
        &Run::new(&[PYTHON, "-c", script, native_dir.path().to_str().unwrap()])
            .timeout(Duration::from_secs(120))
            .native(),
    );
    assert!(native.contains("accept interrupted"), "{native}");
    let dir = Scratch::new("host-uds-inner");
    let vol = volume(dir.path(), "/v", false);
    let sandboxed = ok(
        "sandbox",
        &Run::new(&[PYTHON, "-c", script, "/v"])
            .timeout(Duration::from_secs(120))
            .sandbox(&["--host-uds=create", "--volume", &vol]),
    );
    assert_eq!(sandboxed, native);
}
