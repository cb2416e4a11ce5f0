//! Test harness for runsc-rs: runs a command natively and under `runsc-rs do`, and compares
//! what the two print and how they exit.
//!
//! - Binaries: `runsc-rs` is `$RUNSC_RS_BIN` if set, else `<target>/release/runsc-rs`, where
//!   `<target>` is `$CARGO_TARGET_DIR` (relative to the workspace) or `<workspace>/target`. The
//!   shim is found the same way (`$RUNSC_RS_SHIM_BIN`).
//! - Test programs: `tests/programs/NAME.c` is compiled once per run with `cc -static -O2` into
//!   `<target>/test-programs/NAME` ([`program`]); a binary newer than its source is reused.
//! - Every run has a timeout ([`timeout`], `$RUNSC_RS_TEST_TIMEOUT` seconds, default 60): a hang
//!   kills the process group and fails the test instead of hanging CI.
//! - Exit status as a shell reports it: the exit code, or 128+N when killed by signal N.
//! - A test that needs something this machine lacks calls [`skip`] and returns; it never passes
//!   silently.
//!
//! ```no_run
//! use runsc_rs_tests::{assert_same, program};
//! let Some(hello) = program("hello") else { return };
//! assert_same(&[hello.to_str().unwrap(), "7", "argument"]);
//! ```

pub mod containerd;
pub mod gvisor;
pub mod host_objects;
pub mod netns;
mod scratch;
pub mod tmux;

pub use scratch::Scratch;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Environment variables set for both sides of every run, so that programs which print their
/// environment (`hello`) see the same values natively and in the sandbox.
pub const TEST_ENV: &[(&str, &str)] = &[("HELLO_GREETING", "hi there"), ("HELLO_EMPTY", "")];

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Everything the process wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the process wrote to stderr.
    pub stderr: Vec<u8>,
    /// The exit code, or 128+N when the process was killed by signal N.
    pub status: i32,
    /// The signal that killed the process we started, if one did. For a sandbox run this is
    /// `runsc-rs` itself, which should instead exit with 128+N when its program is killed.
    pub killed_by: Option<i32>,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Where the input of a run comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Input {
    /// `/dev/null`: reads see end of file at once.
    #[default]
    Null,
    /// Inherit the test process's stdin.
    Inherit,
}

/// A command to run natively or in the sandbox, with its options.
#[derive(Clone, Debug)]
pub struct Run {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Input,
    timeout: Duration,
}

impl Run {
    /// A run of `argv` (program path first) with [`TEST_ENV`], stdin from `/dev/null` and the
    /// default [`timeout`].
    pub fn new<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> Self {
        assert!(!argv.is_empty(), "a run needs at least a program");
        Self {
            argv: argv.iter().map(|a| a.as_ref().to_owned()).collect(),
            env: TEST_ENV.iter().map(|(k, v)| (k.into(), v.into())).collect(),
            stdin: Input::Null,
            timeout: timeout(),
        }
    }

    /// Adds an environment variable for the program.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Chooses where stdin comes from.
    pub fn stdin(mut self, input: Input) -> Self {
        self.stdin = input;
        self
    }

    /// Overrides the timeout after which the run is killed and the test fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the command directly on the host.
    pub fn native(&self) -> Outcome {
        self.spawn(&self.argv)
    }

    /// Runs the command as `runsc-rs do [platform flag] [flags] -- argv`, and fails the test if
    /// the sentry panicked.
    pub fn sandbox(&self, flags: &[&str]) -> Outcome {
        let mut argv: Vec<OsString> = vec![runsc_rs_bin().into(), "do".into()];
        if let Some(platform) = test_platform() {
            argv.push("--platform".into());
            argv.push(platform.into());
        }
        argv.extend(flags.iter().map(OsString::from));
        argv.push("--".into());
        argv.extend(self.argv.iter().cloned());
        let outcome = self.spawn(&argv);
        assert_no_sentry_panic(&argv, &outcome);
        outcome
    }

    fn spawn(&self, argv: &[OsString]) -> Outcome {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(match self.stdin {
                Input::Null => Stdio::null(),
                Input::Inherit => Stdio::inherit(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill everything it started.
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", show_argv(argv)));
        let pid = child.id() as libc::pid_t;
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));

        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // The receiver is gone only if the test already failed; nothing to report then.
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(self.timeout) {
            Ok(result) => result.unwrap_or_else(|e| panic!("waiting for {}: {e}", show_argv(argv))),
            Err(_) => {
                kill_group(pid);
                // Reap it, so that the pipes close and its output can be shown.
                let _ = rx.recv_timeout(Duration::from_secs(5));
                let out = stdout.finish();
                let err = stderr.finish();
                panic!(
                    "timed out after {:?}, killed: {}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
                    self.timeout,
                    show_argv(argv),
                    tail(&out, 2000),
                    tail(&err, 4000)
                );
            }
        };
        let elapsed = started.elapsed();
        // A process left behind in the group (a stray stub) would hold the pipes open: kill it.
        // Only then, because the group id is certain to be in use only while it has members.
        if !(stdout.closed_within(STRAY_GRACE) && stderr.closed_within(STRAY_GRACE)) {
            kill_group(pid);
        }
        Outcome {
            stdout: stdout.finish(),
            stderr: stderr.finish(),
            status: shell_status(status),
            killed_by: status.signal(),
            elapsed,
        }
    }
}

/// Runs `argv` natively (see [`Run::native`]).
pub fn run_native(argv: &[&str]) -> Outcome {
    Run::new(argv).native()
}

/// Runs `argv` under `runsc-rs do` with extra `flags` before `--` (see [`Run::sandbox`]).
pub fn run_sandbox(argv: &[&str], flags: &[&str]) -> Outcome {
    Run::new(argv).sandbox(flags)
}

/// Runs `script` with `sh -c` natively in a new network namespace with `lo` up, and in the
/// sandbox (`--network none`); `None` (after a skip) when the namespace cannot be made here.
pub fn netns_and_sandbox(script: &str) -> Option<(Outcome, Outcome)> {
    let native_script = format!("ip link set lo up || exit 99\n{script}");
    let native = run_native(&["unshare", "-n", "sh", "-c", &native_script]);
    if native.status == 99 || native.stderr_text().contains("unshare failed") {
        skip(&format!(
            "cannot make a network namespace here: {}",
            native.stderr_text()
        ));
        return None;
    }
    let sandbox = run_sandbox(&["sh", "-c", script], &["--network", "none"]);
    Some((native, sandbox))
}

/// Fails with a diff (and both stderrs) unless the native and sandbox runs of `script` agree
/// in stdout and exit status; returns the native stdout.
pub fn assert_same_outcomes(script: &str, (native, sandbox): (Outcome, Outcome)) -> String {
    assert!(
        native.stdout == sandbox.stdout && native.status == sandbox.status,
        "{script}: native (status {}) and sandbox (status {}) differ (- native, + sandbox):\n{}\n\
         --- native stderr ---\n{}\n--- sandbox stderr ---\n{}",
        native.status,
        sandbox.status,
        diff(&native.stdout, &sandbox.stdout),
        native.stderr_text(),
        sandbox.stderr_text()
    );
    native.stdout_text()
}

/// Runs `argv` natively and in the sandbox and fails with a readable diff unless stdout and the
/// exit status are the same. Returns both outcomes (native, sandbox) for further checks.
pub fn assert_same(argv: &[&str]) -> (Outcome, Outcome) {
    assert_same_run(&Run::new(argv), &[])
}

/// [`assert_same`] for a prepared [`Run`] and extra sandbox flags.
pub fn assert_same_run(run: &Run, flags: &[&str]) -> (Outcome, Outcome) {
    let native = run.native();
    let sandbox = run.sandbox(flags);
    let mut problems = String::new();
    if native.stdout != sandbox.stdout {
        let _ = writeln!(
            problems,
            "stdout differs (- native, + sandbox):\n{}",
            diff(&native.stdout, &sandbox.stdout)
        );
    }
    if native.status != sandbox.status {
        let _ = writeln!(
            problems,
            "exit status differs: native {}, sandbox {}{}",
            native.status,
            sandbox.status,
            match sandbox.killed_by {
                Some(sig) => format!(" (runsc-rs itself was killed by signal {sig})"),
                None => String::new(),
            }
        );
    }
    if !problems.is_empty() {
        panic!(
            "native and sandbox runs of {} disagree\n{problems}--- sandbox stderr (tail) ---\n{}",
            show_argv(&run.argv),
            tail(&sandbox.stderr, 4000)
        );
    }
    (native, sandbox)
}

/// Fails the test if `outcome` shows that the sentry panicked (Rust's panic message on stderr).
pub fn assert_no_sentry_panic(argv: &[OsString], outcome: &Outcome) {
    let err = outcome.stderr_text();
    if err.contains("panicked at") {
        panic!(
            "the sentry panicked running {}:\n{}",
            show_argv(argv),
            tail(&outcome.stderr, 8000)
        );
    }
}

/// Reports that a test cannot run here. Prints `SKIPPED: reason` straight to the process's
/// stderr (bypassing the test harness's output capture, so it shows in CI logs); the caller
/// then returns.
pub fn skip(reason: &str) {
    let name = thread::current().name().unwrap_or("test").to_owned();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "SKIPPED: {name}: {reason}");
}

/// The per-run timeout: `$RUNSC_RS_TEST_TIMEOUT` seconds, default 60.
pub fn timeout() -> Duration {
    let secs = std::env::var("RUNSC_RS_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// The platform `runsc-rs do` uses when given no `--platform`.
pub const DEFAULT_PLATFORM: &str = "systrap";

/// The platform the sandboxes of this run use: `$RUNSC_RS_TEST_PLATFORM`, else the default.
pub fn effective_platform() -> String {
    test_platform().unwrap_or_else(|| DEFAULT_PLATFORM.into())
}

/// The host system calls in the table `runsc-rs syscalls --host` prints, `text` (the names
/// on its lines that start with a number).
pub fn host_calls_listed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<u32>().ok()?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// The host system calls a sandbox's seccomp filter allows, from its debug log, `log`.
///
/// # Panics
/// The log names no allowlist.
pub fn host_calls_installed(log: &str) -> BTreeSet<String> {
    log.lines()
        .find_map(|l| l.split("seccomp: allowed host system calls: ").nth(1))
        .unwrap_or_else(|| panic!("no allowlist in the debug log:\n{log}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `--platform` to pass to `runsc-rs do`: `$RUNSC_RS_TEST_PLATFORM` if set, else none (the
/// default platform).
pub fn test_platform() -> Option<String> {
    std::env::var("RUNSC_RS_TEST_PLATFORM")
        .ok()
        .filter(|p| !p.is_empty())
}

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ lies inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative paths are relative to the
/// workspace) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => workspace_dir().join(dir),
        None => workspace_dir().join("target"),
    }
}

/// Path of the `runsc-rs` binary under test. Fails the test if it has not been built: a missing
/// product is a failure, not a skip.
pub fn runsc_rs_bin() -> PathBuf {
    find_runsc_rs_bin().unwrap_or_else(|e| panic!("{e}"))
}

/// Path of the containerd shim binary under test (same rules as [`runsc_rs_bin`]).
pub fn shim_bin() -> PathBuf {
    find_release_bin("RUNSC_RS_SHIM_BIN", "containerd-shim-runsc-rs-v2")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Where `runsc-rs` is: `$RUNSC_RS_BIN`, else `<target>/release/runsc-rs`.
///
/// # Errors
/// Says where it looked when the binary is not there.
pub fn find_runsc_rs_bin() -> Result<PathBuf, String> {
    find_release_bin("RUNSC_RS_BIN", "runsc-rs")
}

fn find_release_bin(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("${env} = {} does not exist", path.display()))
        };
    }
    let path = target_dir().join("release").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release --workspace) or set ${env}",
            path.display()
        ))
    }
}

/// Path of the statically linked test program built from `tests/programs/NAME.c`, compiling it
/// first if needed. Returns `None` after a [`skip`] when this machine has no C compiler;
/// a compile error fails the test.
pub fn program(name: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    // Held while compiling: each program is built once per run, and threads wait for it.
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let result = built
        .entry(name.to_owned())
        .or_insert_with(|| build_program(name))
        .clone();
    drop(built);
    match result {
        Ok(path) => Some(path),
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

/// Runs test program `name` (`tests/programs/NAME.c`) with `args` natively and in the
/// sandbox (the runs must match, see [`assert_same`]) and checks the native run itself, so
/// that a broken program cannot hide a sandbox bug: it exits 0, its output holds each of
/// `expect` and ends with `done`. Returns the native run; `None` after a skip.
pub fn assert_same_program(name: &str, args: &[&str], expect: &[&str]) -> Option<Outcome> {
    let prog = program_str(name)?;
    let mut argv = vec![prog.as_str()];
    argv.extend_from_slice(args);
    let (native, _) = assert_same(&argv);
    assert_eq!(
        native.status,
        0,
        "{}{}",
        native.stdout_text(),
        native.stderr_text()
    );
    let text = native.stdout_text();
    for line in expect {
        assert!(text.contains(line), "native output lacks {line:?}:\n{text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
    Some(native)
}

/// `program(name)` as a string for argv; `None` after a skip.
pub fn program_str(name: &str) -> Option<String> {
    program(name).map(|p| p.to_str().expect("UTF-8 target path").to_owned())
}

fn c_compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cc".to_owned())
}

fn build_program(name: &str) -> Result<PathBuf, String> {
    let source = workspace_dir()
        .join("tests/programs")
        .join(format!("{name}.c"));
    assert!(source.is_file(), "no test program {}", source.display());
    let out_dir = target_dir().join("test-programs");
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let output = out_dir.join(name);
    // A program is stale when its source or any shared header (tests/programs/*.h) is newer.
    let headers = std::fs::read_dir(source.parent().expect("programs directory"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .filter_map(|p| modified(&p));
    let newest = headers.chain(modified(&source)).max();
    if matches!((modified(&output), newest), (Some(built), Some(src)) if built >= src) {
        return Ok(output);
    }
    // Build under a unique name and rename: concurrent test processes never see a partial file.
    let temp = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let cc = c_compiler();
    let result = Command::new(&cc)
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&temp)
        .arg(&source)
        .output();
    let result = match result {
        Ok(result) => result,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no C compiler `{cc}` to build test program {name} (apt-get install gcc libc6-dev)"
            ));
        }
        Err(e) => panic!("cannot run {cc}: {e}"),
    };
    if !result.status.success() {
        let _ = std::fs::remove_file(&temp);
        panic!(
            "{cc} -static failed for {} (is libc6-dev installed?):\n{}",
            source.display(),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    std::fs::rename(&temp, &output).unwrap_or_else(|e| {
        panic!(
            "cannot rename {} to {}: {e}",
            temp.display(),
            output.display()
        )
    });
    Ok(output)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// How long after exit the output pipes may stay open before the rest of the group is killed.
const STRAY_GRACE: Duration = Duration::from_millis(500);

/// A thread draining a pipe into a buffer.
struct Collector {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
    closed: std::cell::Cell<bool>,
}

impl Collector {
    /// Whether every writer has closed the pipe, waiting up to `wait` for it.
    fn closed_within(&self, wait: Duration) -> bool {
        if !self.closed.get() && self.done.recv_timeout(wait).is_ok() {
            self.closed.set(true);
        }
        self.closed.get()
    }

    /// The collected bytes, once the writers closed the pipe or 5 s passed (a process outside
    /// the group may hold the pipe open; what arrived until then is returned).
    fn finish(&self) -> Vec<u8> {
        self.closed_within(Duration::from_secs(5));
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn collect<R: Read + Send + 'static>(mut pipe: R) -> Collector {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let (tx, done) = mpsc::channel();
    let sink = Arc::clone(&buffer);
    thread::spawn(move || {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    Collector {
        buffer,
        done,
        closed: std::cell::Cell::new(false),
    }
}

fn kill_group(pgid: libc::pid_t) {
    // The group may already be gone (ESRCH); that is the normal case.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// Exit status as a shell reports it: the code, or 128+N for death by signal N.
pub fn shell_status(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => unreachable!("a waited-for process has a code or a signal"),
    }
}

/// A readable difference between two outputs: a line diff for modest text, otherwise sizes and
/// the first differing byte with context.
pub fn diff(expected: &[u8], actual: &[u8]) -> String {
    const MAX_LINES: usize = 400;
    let (Ok(e), Ok(a)) = (std::str::from_utf8(expected), std::str::from_utf8(actual)) else {
        return byte_diff(expected, actual);
    };
    let e: Vec<&str> = e.split_inclusive('\n').collect();
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    if e.len() > MAX_LINES || a.len() > MAX_LINES {
        return byte_diff(expected, actual);
    }
    // Longest common subsequence table, then walk it to print - / + / context lines.
    let mut lcs = vec![vec![0usize; a.len() + 1]; e.len() + 1];
    for i in (0..e.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    let line = |prefix: char, text: &str| {
        let text = text
            .strip_suffix('\n')
            .map_or_else(|| format!("{text}  (no newline at end)"), str::to_owned);
        format!("{prefix} {text}\n")
    };
    while i < e.len() || j < a.len() {
        if i < e.len() && j < a.len() && e[i] == a[j] {
            out += &line(' ', e[i]);
            i += 1;
            j += 1;
        } else if i < e.len() && (j == a.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &line('-', e[i]);
            i += 1;
        } else {
            out += &line('+', a[j]);
            j += 1;
        }
    }
    out
}

fn byte_diff(expected: &[u8], actual: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(actual)
        .position(|(x, y)| x != y)
        .unwrap_or(expected.len().min(actual.len()));
    let from = first.saturating_sub(32);
    format!(
        "native {} bytes, sandbox {} bytes; first difference at byte {first}\n  native:  {}\n  sandbox: {}\n",
        expected.len(),
        actual.len(),
        escape(&expected[from.min(expected.len())..(first + 32).min(expected.len())]),
        escape(&actual[from.min(actual.len())..(first + 32).min(actual.len())]),
    )
}

fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&bytes[start..]);
    if start > 0 {
        format!("[... {start} bytes before]\n{text}")
    } else {
        text.into_owned()
    }
}

fn show_argv<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Debian's python3 (`/usr/bin/python3.11`, else `/usr/bin/python3`), or `None` after a
/// [`skip`].
pub fn debian_python() -> Option<&'static str> {
    let py = ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    if py.is_none() {
        skip("Debian's python3 is not installed");
    }
    py
}

/// Asserts that `o` exited 0; else fails naming `what`, with both outputs.
pub fn assert_exit_ok(what: &str, o: &Outcome) {
    assert_eq!(
        o.status,
        0,
        "{what} failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.stdout_text(),
        o.stderr_text()
    );
}

/// Path of a statically linked busybox (Debian's `busybox-static`), or `None` after a [`skip`].
/// The sandbox runs static programs first; a dynamic busybox would test the dynamic loader.
pub fn static_busybox() -> Option<&'static str> {
    const BUSYBOX: &str = "/bin/busybox";
    match std::fs::read(BUSYBOX) {
        Ok(elf) if !has_interpreter(&elf) => Some(BUSYBOX),
        Ok(_) => {
            skip("/bin/busybox is dynamically linked (apt-get install busybox-static)");
            None
        }
        Err(e) => {
            skip(&format!(
                "cannot read {BUSYBOX}: {e} (apt-get install busybox-static)"
            ));
            None
        }
    }
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program header.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |off: usize| {
        elf.get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |off: usize| {
        elf.get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |off: usize| {
        elf.get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .map(|phoff| phoff + i * usize::from(phentsize))
            .and_then(u32_at)
            == Some(PT_INTERP)
    })
}

/// One line of `runsc-rs syscalls`: `NUMBER NAME LEVEL [NOTE...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallEntry {
    /// The x86-64 syscall number.
    pub number: u32,
    /// The Linux name, e.g. `getpid`.
    pub name: String,
    /// `full`, `partial` or `unsupported`.
    pub level: SupportLevel,
    /// The rest of the line, if any (what is partial, or why unsupported).
    pub note: String,
}

/// How much of a syscall the sentry implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupportLevel {
    /// Implemented as Linux does.
    Full,
    /// Implemented with documented gaps.
    Partial,
    /// Returns an error (ENOSYS unless the note says otherwise).
    Unsupported,
}

impl SupportLevel {
    /// Whether a handler exists (full or partial).
    pub fn implemented(self) -> bool {
        matches!(self, Self::Full | Self::Partial)
    }
}

/// Parses the output of `runsc-rs syscalls`. Lines that do not start with a number (headers,
/// blank lines) are ignored; a numbered line with an unknown level is an error.
///
/// # Errors
/// Returns the offending line when a numbered line is malformed.
pub fn parse_syscall_table(text: &str) -> Result<Vec<SyscallEntry>, String> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(Ok(number)) = words.next().map(str::parse::<u32>) else {
            continue;
        };
        let (Some(name), Some(level)) = (words.next(), words.next()) else {
            return Err(format!("short line: {line:?}"));
        };
        let level = match level.to_ascii_lowercase().as_str() {
            "full" => SupportLevel::Full,
            "partial" => SupportLevel::Partial,
            "unsupported" => SupportLevel::Unsupported,
            other => return Err(format!("unknown support level {other:?} in {line:?}")),
        };
        entries.push(SyscallEntry {
            number,
            name: name.to_owned(),
            level,
            note: words.collect::<Vec<_>>().join(" "),
        });
    }
    Ok(entries)
}

/// Runs `runsc-rs syscalls` and parses its table; fails the test if it cannot.
pub fn syscall_table() -> Vec<SyscallEntry> {
    let bin = runsc_rs_bin();
    let out = Run::new(&[bin.as_os_str(), "syscalls".as_ref()]).native();
    assert_eq!(
        out.status,
        0,
        "runsc-rs syscalls failed:\n{}",
        out.stderr_text()
    );
    parse_syscall_table(&out.stdout_text())
        .unwrap_or_else(|e| panic!("cannot parse `runsc-rs syscalls`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_syscall_table_lines() {
        let table = "NR  NAME  LEVEL\n  39 getpid                 full\n   0 read  partial  pipes and files only\n 206 io_setup unsupported\n";
        let entries = parse_syscall_table(table).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].number, 39);
        assert_eq!(entries[0].name, "getpid");
        assert_eq!(entries[0].level, SupportLevel::Full);
        assert_eq!(entries[1].note, "pipes and files only");
        assert_eq!(entries[2].level, SupportLevel::Unsupported);
        assert!(parse_syscall_table("1 write sometimes").is_err());
    }

    #[test]
    fn line_diff_marks_changes() {
        let d = diff(b"a\nb\nc\n", b"a\nx\nc\n");
        assert_eq!(d, "  a\n- b\n+ x\n  c\n");
    }

    #[test]
    fn byte_diff_finds_first_difference() {
        let d = diff(&[0xff, 1, 2, 3], &[0xff, 1, 9, 3]);
        assert!(d.contains("first difference at byte 2"), "{d}");
    }

    #[test]
    fn native_run_reports_code_signal_and_output() {
        let out = run_native(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status, 3);
        let out = run_native(&["/bin/sh", "-c", "kill -SEGV $$"]);
        assert_eq!(out.status, 139);
        assert_eq!(out.killed_by, Some(libc::SIGSEGV));
    }

    #[test]
    fn finds_interpreter_header() {
        let sh = std::fs::read("/bin/sh").unwrap();
        assert!(
            has_interpreter(&sh),
            "/bin/sh is dynamically linked on Debian"
        );
        assert!(!has_interpreter(b"not an elf"));
    }

    #[test]
    fn native_run_times_out() {
        let run = Run::new(&["/bin/sleep", "30"]).timeout(Duration::from_millis(300));
        let err = std::panic::catch_unwind(|| run.native()).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("timed out"), "{msg}");
    }
}
