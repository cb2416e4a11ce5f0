//! AF_UNIX sockets, timers and Python: real programs natively and in the sandbox, compared on
//! stdout and exit status.
//!
//! Needs a built `runsc-rs` (`cargo build --release -p sentry`; found through RUNSC_RS_BIN,
//! CARGO_TARGET_DIR or `<workspace>/target/release`), Debian's python3 (`/usr/bin/python3.11`
//! or `/usr/bin/python3`), bash, busybox and `cc`. A missing piece prints `SKIPPED: reason`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runsc() -> Option<PathBuf> {
    // The harness's lookup: a runsc-rs that was not built fails the test, it is not skipped.
    Some(runsc_rs_tests::runsc_rs_bin())
}

fn script(name: &str) -> String {
    workspace()
        .join("tests/scripts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn python() -> Option<&'static str> {
    ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

/// (stdout, exit code) of `argv` in `dir`, through `runsc-rs do` when `bin` is given.
fn run(bin: Option<&Path>, argv: &[&str], dir: &Path) -> (String, i32) {
    let mut cmd = match bin {
        Some(b) => {
            let mut c = Command::new(b);
            c.arg("do").arg("--").args(argv);
            c
        }
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let out = cmd.current_dir(dir).output().expect("spawn");
    let code = out.status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
    });
    (String::from_utf8_lossy(&out.stdout).into_owned(), code)
}

fn assert_same(argv: &[&str]) {
    let Some(bin) = runsc() else {
        runsc_rs_tests::skip("runsc-rs is not built (cargo build --release -p sentry)");
        return;
    };
    if !Path::new(argv[0]).exists() {
        runsc_rs_tests::skip(&format!("{} is not installed", argv[0]));
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let native = run(None, argv, &dir);
    let sandbox = run(Some(&bin), argv, &dir);
    assert_eq!(native, sandbox, "native vs sandbox for {argv:?}");
}

fn assert_same_python(args: &[&str]) {
    let Some(py) = python() else {
        runsc_rs_tests::skip("Debian's python3 is not installed");
        return;
    };
    let mut argv = vec![py];
    argv.extend_from_slice(args);
    assert_same(&argv);
}

/// Compiles `tests/programs/<name>.c`; None (after printing SKIPPED) without cc.
fn program(name: &str) -> Option<String> {
    let src = workspace().join(format!("tests/programs/{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    match Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(out.to_string_lossy().into_owned()),
        _ => {
            runsc_rs_tests::skip(&format!("cannot build {name}.c with cc"));
            None
        }
    }
}

#[test]
fn python_print() {
    assert_same_python(&["-c", "print(1)"]);
}

#[test]
fn python_subprocess_threads_fork_alarm_json_hashlib() {
    assert_same_python(&[&script("py_basic.py")]);
}

#[test]
fn python_unix_sockets() {
    let sock = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py_socket.sock");
    assert_same_python(&[&script("py_socket.py"), &sock.to_string_lossy()]);
}

/// write(2) on a stream socket whose peer is gone fails with EPIPE and raises SIGPIPE, for
/// AF_UNIX and (over the sandbox's loopback) AF_INET alike: with SIGPIPE ignored the write
/// says EPIPE; with the default action the process dies of it.
#[test]
fn socket_write_after_peer_close_raises_sigpipe() {
    let code = "import os, signal, socket, sys\n\
a, b = socket.socketpair()\n\
b.close()\n\
try:\n os.write(a.fileno(), b'x')\nexcept OSError as e:\n print('ignored:', e.errno)\n\
sys.stdout.flush()\n\
signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n\
os.write(a.fileno(), b'x')\n\
print('not reached')";
    assert_same_python(&["-c", code]);
}

#[test]
fn python_inet6_over_the_loopback_matches_native() {
    // An AF_INET6 TCP round trip over ::1, and a v4-mapped peer on a dual-stack listener.
    let code = "import socket\n\
for host, fam in (('::1', socket.AF_INET6), ('127.0.0.1', socket.AF_INET)):\n\
 ls = socket.socket(socket.AF_INET6)\n\
 ls.bind(('::', 0)); ls.listen(1)\n\
 c = socket.socket(fam); c.connect((host, ls.getsockname()[1]))\n\
 s, peer = ls.accept()\n\
 c.sendall(b'ping'); print(peer[0], s.recv(4))\n\
 for x in (c, s, ls): x.close()";
    assert_same_python(&["-c", code]);
}

#[test]
fn timers_timerfd_signalfd() {
    if let Some(p) = program("timers") {
        assert_same(&[&p]);
    }
}

#[test]
fn busybox_timeout_kills_sleep() {
    assert_same(&["/bin/busybox", "timeout", "1", "/bin/busybox", "sleep", "5"]);
}

#[test]
fn coreutils_timeout_exits_124() {
    assert_same(&["/usr/bin/timeout", "1", "/bin/sleep", "5"]);
}

#[test]
fn bash_substitution_pipeline_xargs_wait_n() {
    assert_same(&["/bin/bash", &script("shell_jobs.sh")]);
}
