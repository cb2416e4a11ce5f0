//! gVisor's system-call test suite (212 prebuilt googletest programs, kept beside the
//! repository in `shared/gvisor-syscall-tests`) run under `runsc-rs do`, and compared with the
//! forward-only expectations file `tests/gvisor/expectations.txt`.
//!
//! - [`Suite`] finds the programs; [`Runner`] runs them (two at a time, each with a timeout and
//!   its own process group) and parses gtest's output into a [`ProgramRun`].
//! - [`Expectations`] is the file: per program the status it reaches, the cases that pass, the
//!   failures allowed (grouped by a one-line reason) and the cases left out of every run because
//!   they hang or kill the program.
//! - [`check`] runs the suite against the expectations ([`Report`]): a case expected to pass that
//!   does not is run again alone before it counts as a regression, and so is a program whose
//!   status got worse. [`update`] moves the expectations forward from a run and refuses to move
//!   them back.
//!
//! The integration test `tests/tests/gvisor_suite.rs` calls [`check`]; the `gvisor-suite` binary
//! (`tests/gvisor/update-expectations.sh`, `tests/gvisor/readme-figures.sh`) calls [`update`] and
//! [`readme_figures`]. Every run also writes `<target>/gvisor-suite/results.tsv` in the format of
//! the suite's own `run.sh`, which the README figures are made from.

use crate::host_objects::HostObjects;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where the expectations live, relative to the workspace.
pub const EXPECTATIONS_FILE: &str = "tests/gvisor/expectations.txt";

/// Timeout of a program that the expectations give none: the slowest passing programs take
/// about 40 s natively (`ppoll`, `pselect`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeout of a single case run again alone: long enough for the slowest single cases.
const RERUN_TIMEOUT: Duration = Duration::from_secs(45);

/// A program silent this long is killed as hung (the slowest single cases take a few seconds).
const STALL: Duration = Duration::from_secs(25);

/// Programs run at the same time: the CI machine has two cores.
const PARALLEL: usize = 2;

/// More cases than this missing from one program are not re-run one by one (a program that
/// lost that many cases regressed as a whole); the rest are re-run together in one run.
const MAX_ALONE_RERUNS: usize = 30;

/// How many times [`update`] leaves out the case a crashing or hanging program was running and
/// tries again.
const ISOLATION_ROUNDS: usize = 4;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "the expectations would move backwards; rerun with --accept-regressions to allow it:\n{0}"
    )]
    Backwards(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// How a program run ended, as the suite's `run.sh` classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// gtest printed its final summary (failures possible).
    Ok,
    /// gtest started but the program died before its summary.
    Crash,
    /// Killed by the timeout.
    Timeout,
    /// gtest never started: the runner or the dynamic loader failed.
    NoGtest,
}

impl Status {
    /// `ok`, `crash`, `timeout`, `nogtest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Crash => "crash",
            Status::Timeout => "timeout",
            Status::NoGtest => "nogtest",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Status::Ok, Status::Crash, Status::Timeout, Status::NoGtest]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Worse is higher. A crash and a timeout are equally bad: both lose the cases after them.
    fn badness(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Crash | Status::Timeout => 1,
            Status::NoGtest => 2,
        }
    }
}

/// The suite's folder: `bin/` with the programs, `runfiles/` with data they execute.
#[derive(Clone, Debug)]
pub struct Suite {
    pub dir: PathBuf,
}

impl Suite {
    /// `$GVISOR_SYSCALL_TESTS`, else the nearest `shared/gvisor-syscall-tests` beside the
    /// workspace or one of its ancestors (CI lays `shared/` beside the clone; a developer's
    /// worktree may sit deeper). `Err` says where it looked.
    ///
    /// # Errors
    /// The folder is not there.
    pub fn find() -> Result<Self, String> {
        if let Some(dir) = std::env::var_os("GVISOR_SYSCALL_TESTS").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            return if dir.join("bin").is_dir() {
                Ok(Self { dir })
            } else {
                Err(format!(
                    "$GVISOR_SYSCALL_TESTS = {} has no bin/",
                    dir.display()
                ))
            };
        }
        let workspace = crate::workspace_dir();
        workspace
            .ancestors()
            .skip(1)
            .map(|a| a.join("shared/gvisor-syscall-tests"))
            .find(|d| d.join("bin").is_dir())
            .map(|dir| Self { dir })
            .ok_or_else(|| {
                format!(
                    "no shared/gvisor-syscall-tests beside {} or its ancestors, and \
                     $GVISOR_SYSCALL_TESTS is unset",
                    workspace.display()
                )
            })
    }

    /// The program names, sorted; only those named in `$GVISOR_SUITE_ONLY` (comma-separated)
    /// when it is set, to try a few programs quickly.
    ///
    /// # Errors
    /// `bin/` cannot be read.
    pub fn programs(&self) -> Result<Vec<String>, Error> {
        let only = std::env::var("GVISOR_SUITE_ONLY").unwrap_or_default();
        let only: BTreeSet<&str> = only.split(',').filter(|n| !n.is_empty()).collect();
        let bin = self.dir.join("bin");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&bin).map_err(io_error(&bin))? {
            let entry = entry.map_err(io_error(&bin))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.retain(|n| only.is_empty() || only.contains(n.as_str()));
        names.sort();
        Ok(names)
    }
}

/// What one run of one program showed.
#[derive(Clone, Debug)]
pub struct ProgramRun {
    pub status: Status,
    /// Cases gtest reported `[       OK ]`.
    pub passed: BTreeSet<String>,
    /// Cases gtest reported `[  FAILED  ]`, each with a one-line reason.
    pub failed: BTreeMap<String, String>,
    /// The case that was running when the program died or was killed.
    pub unfinished: Option<String>,
    /// Why the program ended early (crash or timeout), one line.
    pub ending: String,
    pub seconds: f64,
}

impl ProgramRun {
    /// One run from two shards of a program: every case of both, the worse ending.
    fn merge(self, other: ProgramRun) -> ProgramRun {
        let seconds = self.seconds.max(other.seconds);
        let (mut worse, better) = if other.status.badness() > self.status.badness() {
            (other, self)
        } else {
            (self, other)
        };
        worse.passed.extend(better.passed);
        worse.failed.extend(better.failed);
        worse.seconds = seconds;
        worse
    }

    /// Parses the output of a googletest program. `timed_out` and `exit` (the shell's exit
    /// status) say how it ended.
    pub fn parse(output: &str, timed_out: bool, exit: i32, seconds: f64) -> Self {
        let mut passed = BTreeSet::new();
        let mut failed = BTreeMap::new();
        let mut running: Option<String> = None;
        let mut lines_of_case: Vec<&str> = Vec::new();
        let mut started = false;
        let mut finished = false;
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("[ RUN      ] ") {
                running = Some(rest.trim().to_owned());
                lines_of_case.clear();
            } else if let Some(name) = result_line(line, "[       OK ] ") {
                passed.insert(name);
                running = None;
            } else if let Some(name) = result_line(line, "[  FAILED  ] ") {
                failed.insert(name, failure_reason(&lines_of_case));
                running = None;
            } else if result_line(line, "[  SKIPPED ] ").is_some() {
                running = None;
            } else if line.starts_with("[==========] Running ") {
                started = true;
            } else if line.starts_with("[==========] ") && line.contains(" ran.") {
                finished = true;
            } else if running.is_some() {
                lines_of_case.push(line);
            }
        }
        let status = if timed_out {
            Status::Timeout
        } else if finished {
            Status::Ok
        } else if started {
            Status::Crash
        } else {
            Status::NoGtest
        };
        let ending = match status {
            Status::Ok => String::new(),
            Status::Timeout => "killed by the timeout".to_owned(),
            Status::Crash | Status::NoGtest => {
                let last = output
                    .lines()
                    .rev()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .unwrap_or("no output");
                format!("{} ({})", one_line(last, 140), exit_text(exit))
            }
        };
        Self {
            status,
            passed,
            failed,
            unfinished: running,
            ending,
            seconds,
        }
    }
}

/// The case name of a per-case result line (`[  FAILED  ] Suite.Case, where GetParam() = ...
/// (3 ms)`); gtest's closing summary repeats FAILED names without a time, which is not one.
fn result_line(line: &str, prefix: &str) -> Option<String> {
    let rest = line.strip_prefix(prefix)?;
    let line = line.trim_end();
    if !(line.ends_with(" ms)") && line.contains(" (")) {
        return None;
    }
    let name = rest.split([' ', ',']).next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// One line that says why a case failed: where the first assertion failed and what it saw (the
/// errno when there is one). Values that differ between instances of a parameterised case
/// (`Which is: ...`) are left out so that those instances share a reason.
fn failure_reason(lines: &[&str]) -> String {
    let Some(at) = lines.iter().position(|l| l.ends_with(": Failure")) else {
        let first = lines.iter().map(|l| l.trim()).find(|l| !l.is_empty());
        return one_line(first.unwrap_or("failed without a message"), 160);
    };
    let location = lines[at]
        .trim_end_matches(": Failure")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let message: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty() && !l.ends_with(": Failure"))
        .map(|l| l.trim())
        .collect();
    let errno = message.iter().find_map(|l| {
        let start = l.find("errno=")?;
        let rest = &l[start..];
        let end = rest.find(')').unwrap_or(rest.len());
        let call = rest[end..].trim_start_matches(')').trim();
        Some(if call.is_empty() {
            rest[..end].to_owned()
        } else {
            format!("{call}: {}", &rest[..end])
        })
    });
    let what = match (errno, message.first()) {
        (Some(errno), _) => errno,
        (None, Some(&"Expected equality of these values:")) => {
            let operands: Vec<&str> = message[1..]
                .iter()
                .filter(|l| !l.starts_with("Which is:"))
                .take(2)
                .copied()
                .collect();
            format!("expected {}", operands.join(" == "))
        }
        (None, Some(first)) => match message.iter().find(|l| l.starts_with("Expected:")) {
            Some(expected) if first.starts_with("Value of:") => format!("{first}; {expected}"),
            _ => (*first).to_owned(),
        },
        (None, None) => "failed".to_owned(),
    };
    one_line(&format!("{location}: {what}"), 160)
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &flat[..i]),
        None => flat,
    }
}

fn exit_text(exit: i32) -> String {
    match exit {
        129..=191 => format!("exit {exit}, signal {}", exit - 128),
        _ => format!("exit {exit}"),
    }
}

/// Runs the suite's programs under `runsc-rs do`, as the suite's `run.sh` does: in `/tmp`,
/// with the environment gVisor's test runner gives them, output to `<logs>/NAME.log`.
#[derive(Clone, Debug)]
pub struct Runner {
    pub suite: Suite,
    pub runsc_rs: PathBuf,
    pub logs: PathBuf,
}

/// Variables gVisor's own test runner uses; cleared so that the caller's cannot leak in.
const CLEARED_ENV: &[&str] = &[
    "TEST_ON_GVISOR",
    "GVISOR_NETWORK",
    "GVISOR_RUNTIME",
    "GVISOR_PLATFORM_SUPPORT",
    "IOURING_ENABLED",
    "GVISOR_FUSE_TEST",
    "GVISOR_SAVE_TEST",
    "GVISOR_HOST_KERNEL_VERSION",
    "GTEST_SHARD_INDEX",
    "GTEST_TOTAL_SHARDS",
    "GTEST_FILTER",
    "XML_OUTPUT_FILE",
    "GTEST_OUTPUT",
    "TEST_PREMATURE_EXIT_FILE",
];

/// What the platform under test supports: the sandbox runs no 32-bit code (the suite's README).
const PLATFORM_SUPPORT: &str =
    "32BIT:FALSE,ALIGNMENT_CHECK:TRUE,INT3:TRUE,MULTIPROCESS:TRUE,VSYSCALL:TRUE";

impl Runner {
    /// Runs program `name` with an optional gtest filter; the log is `<logs>/<log_name>.log`.
    ///
    /// # Errors
    /// The log cannot be written or the sandbox cannot be started.
    pub fn run(
        &self,
        name: &str,
        filter: Option<&str>,
        timeout: Duration,
        log_name: &str,
    ) -> Result<ProgramRun, Error> {
        self.run_shard(name, filter, timeout, log_name, None)
    }

    /// Like [`Runner::run`], split into `shards` runs at the same time with googletest's
    /// sharding (`GTEST_TOTAL_SHARDS`, `GTEST_SHARD_INDEX`), for programs whose cases mostly
    /// sleep (natively `socket_inet_loopback` takes four minutes). The runs are merged into one
    /// [`ProgramRun`] (the worst status, the longest time) and their logs into
    /// `<logs>/<log_name>.log`, as one run would have written it.
    ///
    /// # Errors
    /// As [`Runner::run`].
    pub fn run_sharded(
        &self,
        name: &str,
        filter: Option<&str>,
        timeout: Duration,
        log_name: &str,
        shards: u32,
    ) -> Result<ProgramRun, Error> {
        if shards <= 1 {
            return self.run(name, filter, timeout, log_name);
        }
        let runs: Vec<Result<ProgramRun, Error>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..shards)
                .map(|index| {
                    scope.spawn(move || {
                        self.run_shard(
                            name,
                            filter,
                            timeout,
                            &format!("{log_name}.shard{index}"),
                            Some((index, shards)),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a shard's thread does not panic"))
                .collect()
        });
        let mut merged: Option<ProgramRun> = None;
        for run in runs {
            let run = run?;
            merged = Some(match merged {
                None => run,
                Some(m) => m.merge(run),
            });
        }
        let merged = merged.expect("at least two shards ran");
        let log_path = self.logs.join(format!("{log_name}.log"));
        let mut log = File::create(&log_path).map_err(io_error(&log_path))?;
        for index in 0..shards {
            let shard = self.logs.join(format!("{log_name}.shard{index}.log"));
            let text = std::fs::read(&shard).map_err(io_error(&shard))?;
            writeln!(log, "# shard {index} of {shards}").map_err(io_error(&log_path))?;
            log.write_all(&text).map_err(io_error(&log_path))?;
            std::fs::remove_file(&shard).map_err(io_error(&shard))?;
        }
        writeln!(
            log,
            "# exit=0 seconds={:.1} status={}",
            merged.seconds,
            merged.status.as_str()
        )
        .map_err(io_error(&log_path))?;
        Ok(merged)
    }

    fn run_shard(
        &self,
        name: &str,
        filter: Option<&str>,
        timeout: Duration,
        log_name: &str,
        shard: Option<(u32, u32)>,
    ) -> Result<ProgramRun, Error> {
        std::fs::create_dir_all(&self.logs).map_err(io_error(&self.logs))?;
        let log_path = self.logs.join(format!("{log_name}.log"));
        let mut log = File::create(&log_path).map_err(io_error(&log_path))?;
        // Host sockets and FIFOs the program talks to, served until the run ends.
        let host_objects = HostObjects::for_program(name).map_err(|source| Error::Spawn {
            program: name.to_owned(),
            source,
        })?;
        let mut cmd = Command::new(&self.runsc_rs);
        cmd.arg("do");
        if let Some(platform) = crate::test_platform() {
            cmd.args(["--platform", &platform]);
        }
        if let Some(objects) = &host_objects {
            cmd.args(["--volume", &objects.volume()]);
            cmd.args(objects.runner_args());
        }
        cmd.arg("--")
            .arg(self.suite.dir.join("bin").join(name))
            .arg("--gtest_color=no");
        if let Some(filter) = filter {
            cmd.arg(format!("--gtest_filter={filter}"));
        }
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("TEST_TMPDIR", "/tmp")
            .env("GVISOR_PLATFORM_SUPPORT", PLATFORM_SUPPORT)
            .env("GVT_RUNFILES_DIR", self.suite.dir.join("runfiles"))
            .current_dir("/tmp");
        if let Some((index, total)) = shard {
            cmd.env("GTEST_SHARD_INDEX", index.to_string())
                .env("GTEST_TOTAL_SHARDS", total.to_string());
        }
        for (var, value) in host_objects.iter().flat_map(HostObjects::env) {
            cmd.env(var, value);
        }
        writeln!(log, "# cmd: {cmd:?}").map_err(io_error(&log_path))?;
        let err = log.try_clone().map_err(io_error(&log_path))?;
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group, so that a timeout kills everything the program started.
            .process_group(0);

        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            program: name.to_owned(),
            source,
        })?;
        let group = Pid::from_raw(child.id() as i32);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // The receiver only goes away after it has its answer or gave up on a killed group.
            let _ = tx.send(child.wait());
        });
        // A program that prints nothing for STALL is stuck in one case: waiting for the whole
        // timeout would only cost CI time.
        let mut killed = None;
        let mut last_size = 0;
        let mut last_output = Instant::now();
        let status = loop {
            if let Ok(status) = rx.recv_timeout(Duration::from_secs(1)) {
                break status;
            }
            let size = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
            if size != last_size {
                last_size = size;
                last_output = Instant::now();
            }
            if started.elapsed() >= timeout {
                killed = Some(format!("killed by the {} s timeout", timeout.as_secs()));
            } else if last_output.elapsed() >= STALL {
                killed = Some(format!("killed after {} s without output", STALL.as_secs()));
            }
            if killed.is_some() {
                // Like `timeout --kill-after`: a chance to exit cleanly, then SIGKILL.
                let _ = killpg(group, Signal::SIGTERM);
                break rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
                    let _ = killpg(group, Signal::SIGKILL);
                    rx.recv().expect("the waiting thread reports the exit")
                });
            }
        };
        // Whatever the program left behind in its group (the sandbox's stubs) goes with it. The
        // group's id cannot be reused while members remain; with none this is ESRCH.
        let _ = killpg(group, Signal::SIGKILL);
        drop(host_objects);
        let seconds = started.elapsed().as_secs_f64();
        let exit = status
            .map(crate::shell_status)
            .map_err(io_error(&log_path))?;
        let output = std::fs::read(&log_path).map_err(io_error(&log_path))?;
        let mut run = ProgramRun::parse(
            &String::from_utf8_lossy(&output),
            killed.is_some(),
            exit,
            seconds,
        );
        if let Some(killed) = killed {
            run.ending = killed;
        }
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io_error(&log_path))?;
        writeln!(
            log,
            "# exit={exit} seconds={seconds:.1} status={}",
            run.status.as_str()
        )
        .map_err(io_error(&log_path))?;
        Ok(run)
    }

    /// Runs `job` for every program of `plan` ([`PARALLEL`] at a time, longest expected first)
    /// and prints one line per program on stderr as it finishes. `job` runs the program and
    /// may run it again; what it returns besides the final run is kept with it.
    fn run_all<T: Send>(
        &self,
        plan: &[Planned],
        job: impl Fn(&Planned) -> Result<(ProgramRun, T), Error> + Sync,
    ) -> Result<BTreeMap<String, (ProgramRun, T)>, Error> {
        let mut order: Vec<&Planned> = plan.iter().collect();
        order.sort_by(|a, b| b.expected_seconds.total_cmp(&a.expected_seconds));
        let queue = Mutex::new(order.into_iter());
        let results = Mutex::new(BTreeMap::new());
        let failure = Mutex::new(None);
        let done = Mutex::new(0usize);
        thread::scope(|scope| {
            for _ in 0..PARALLEL {
                scope.spawn(|| loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(p) = next else { return };
                    match job(p) {
                        Ok((run, extra)) => {
                            let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                            *done += 1;
                            progress(&format!(
                                "gvisor suite: [{}/{}] {} {} ({} passed, {} failed, {:.0} s)",
                                *done,
                                plan.len(),
                                p.name,
                                run.status.as_str(),
                                run.passed.len(),
                                run.failed.len(),
                                run.seconds
                            ));
                            results
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(p.name.clone(), (run, extra));
                        }
                        Err(e) => {
                            *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            return;
                        }
                    }
                });
            }
        });
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(results.into_inner().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

/// Progress goes straight to stderr, past the test harness's capture, so CI logs show it.
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// One program to run: which cases to leave out, how long it may take.
#[derive(Clone, Debug)]
struct Planned {
    name: String,
    excluded: Vec<String>,
    /// Cases left out of the whole run and run each in a sandbox of its own.
    alone: Vec<String>,
    timeout: Duration,
    shards: u32,
    expected_seconds: f64,
}

impl Planned {
    /// The gtest filter of the program's whole run: without its excluded and alone cases.
    fn filter(&self) -> Option<String> {
        let out: Vec<String> = self.excluded.iter().chain(&self.alone).cloned().collect();
        leave_out(&out)
    }
}

/// A gtest filter that runs every case but `cases` (None: no filter).
fn leave_out(cases: &[String]) -> Option<String> {
    (!cases.is_empty()).then(|| format!("-{}", cases.join(":")))
}

/// What the expectations say about one program.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub status: Status,
    /// Seconds the last update took (to run the slow programs first).
    pub seconds: u64,
    /// A timeout other than [`DEFAULT_TIMEOUT`].
    pub timeout: Option<u64>,
    /// Runs at the same time, each with a share of the cases ([`Runner::run_sharded`]).
    pub shards: Option<u32>,
    /// Why the program crashes or times out.
    pub note: String,
    pub passes: BTreeSet<String>,
    /// Allowed failures: reason -> cases.
    pub failures: BTreeMap<String, BTreeSet<String>>,
    /// Cases left out of every run: reason -> cases.
    pub excluded: BTreeMap<String, BTreeSet<String>>,
    /// Cases left out of the program's whole run and run each by itself, in a sandbox of its
    /// own (as gVisor's runner runs every case), because an earlier case's leftovers make
    /// them fail in one process, natively too: reason -> cases. Whether they pass is in the
    /// `pass` lines and `fail` groups as for any case.
    pub alone: BTreeMap<String, BTreeSet<String>>,
}

impl Expected {
    fn new(status: Status) -> Self {
        Self {
            status,
            seconds: 0,
            timeout: None,
            shards: None,
            note: String::new(),
            passes: BTreeSet::new(),
            failures: BTreeMap::new(),
            excluded: BTreeMap::new(),
            alone: BTreeMap::new(),
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    fn excluded_cases(&self) -> Vec<String> {
        self.excluded.values().flatten().cloned().collect()
    }

    fn alone_cases(&self) -> Vec<String> {
        self.alone.values().flatten().cloned().collect()
    }
}

/// The expectations file: one entry per program.
///
/// ```text
/// program NAME: STATUS, N s[, timeout N s][, shards N][ -- why it crashes or times out]
///   pass CASE
///   fail REASON
///     CASE
///   exclude REASON
///     CASE
///   alone REASON
///     CASE
/// ```
/// Lines starting with `#` and blank lines are comments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expectations {
    pub programs: BTreeMap<String, Expected>,
}

impl Expectations {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// It cannot be read or does not parse.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        Self::parse(&text, path)
    }

    /// Parses the text of an expectations file (`path` only names it in errors).
    ///
    /// # Errors
    /// A line that is not one of the forms above.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        enum Group {
            None,
            Fail(String),
            Exclude(String),
            Alone(String),
        }
        let mut programs = BTreeMap::new();
        let mut current: Option<(String, Expected)> = None;
        let mut group = Group::None;
        for (index, line) in text.lines().enumerate() {
            let syntax = |message: &str| Error::Syntax {
                path: path.to_owned(),
                line: index + 1,
                message: message.to_owned(),
            };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("program ") {
                if let Some((name, expected)) = current.take() {
                    programs.insert(name, expected);
                }
                current = Some(parse_program_line(rest).ok_or_else(|| {
                    syntax(
                        "expected `program NAME: STATUS, N s[, timeout N s][, shards N][ -- note]`",
                    )
                })?);
                group = Group::None;
                continue;
            }
            let Some((_, expected)) = current.as_mut() else {
                return Err(syntax("a case before the first `program` line"));
            };
            if let Some(case) = line.strip_prefix("    ") {
                let case = case.trim().to_owned();
                match &group {
                    Group::Fail(reason) => {
                        expected
                            .failures
                            .entry(reason.clone())
                            .or_default()
                            .insert(case);
                    }
                    Group::Exclude(reason) => {
                        expected
                            .excluded
                            .entry(reason.clone())
                            .or_default()
                            .insert(case);
                    }
                    Group::Alone(reason) => {
                        expected
                            .alone
                            .entry(reason.clone())
                            .or_default()
                            .insert(case);
                    }
                    Group::None => {
                        return Err(syntax(
                            "a case outside a `fail`, `exclude` or `alone` group",
                        ))
                    }
                }
            } else if let Some(case) = line.strip_prefix("  pass ") {
                expected.passes.insert(case.trim().to_owned());
                group = Group::None;
            } else if let Some(reason) = line.strip_prefix("  fail ") {
                group = Group::Fail(reason.trim().to_owned());
            } else if let Some(reason) = line.strip_prefix("  exclude ") {
                group = Group::Exclude(reason.trim().to_owned());
            } else if let Some(reason) = line.strip_prefix("  alone ") {
                group = Group::Alone(reason.trim().to_owned());
            } else {
                return Err(syntax(
                    "expected `  pass CASE`, `  fail REASON`, `  exclude REASON`, \
                     `  alone REASON` or `    CASE`",
                ));
            }
        }
        if let Some((name, expected)) = current {
            programs.insert(name, expected);
        }
        Ok(Self { programs })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(EXPECTATIONS_HEADER);
        for (name, e) in &self.programs {
            let _ = write!(
                out,
                "\nprogram {name}: {}, {} s",
                e.status.as_str(),
                e.seconds
            );
            if let Some(timeout) = e.timeout {
                let _ = write!(out, ", timeout {timeout} s");
            }
            if let Some(shards) = e.shards {
                let _ = write!(out, ", shards {shards}");
            }
            if !e.note.is_empty() {
                let _ = write!(out, " -- {}", e.note);
            }
            out.push('\n');
            for case in &e.passes {
                let _ = writeln!(out, "  pass {case}");
            }
            for (keyword, groups) in [
                ("fail", &e.failures),
                ("exclude", &e.excluded),
                ("alone", &e.alone),
            ] {
                for (reason, cases) in groups {
                    let _ = writeln!(out, "  {keyword} {reason}");
                    for case in cases {
                        let _ = writeln!(out, "    {case}");
                    }
                }
            }
        }
        out
    }

    fn plan(&self, programs: &[String]) -> Vec<Planned> {
        programs
            .iter()
            .map(|name| match self.programs.get(name) {
                Some(e) => Planned {
                    name: name.clone(),
                    excluded: e.excluded_cases(),
                    alone: e.alone_cases(),
                    timeout: e.timeout(),
                    shards: e.shards.unwrap_or(1),
                    expected_seconds: e.seconds as f64,
                },
                None => Planned {
                    name: name.clone(),
                    excluded: Vec::new(),
                    alone: Vec::new(),
                    timeout: DEFAULT_TIMEOUT,
                    shards: 1,
                    expected_seconds: 0.0,
                },
            })
            .collect()
    }
}

const EXPECTATIONS_HEADER: &str = "\
# What gVisor's syscall test suite (shared/gvisor-syscall-tests) does under runsc-rs.
# Generated by tests/gvisor/update-expectations.sh from a run; checked by
# tests/tests/gvisor_suite.rs, which fails when a `pass` case stops passing (after one re-run
# alone) or a program's status gets worse. The file only moves forward: the update refuses to
# drop a pass unless told to (--accept-regressions).
#
#   program NAME: STATUS, SECONDS s[, timeout N s][, shards N][ -- why it crashes or times out]
#     pass CASE          the case passes
#     fail REASON        these cases may fail (REASON: where the first assertion failed and
#       CASE             what it saw, from the last update's run)
#     exclude REASON     these cases are left out of every run (--gtest_filter=-...) because
#       CASE             they hang or kill the program under runsc-rs
#     alone REASON       these cases are left out of the whole run and run each by itself (a
#       CASE             sandbox of its own, as gVisor's runner runs every case) because an
#                        earlier case's leftovers make them fail in one process, natively too
";

fn parse_program_line(rest: &str) -> Option<(String, Expected)> {
    let (head, note) = match rest.split_once(" -- ") {
        Some((head, note)) => (head, note.trim().to_owned()),
        None => (rest, String::new()),
    };
    let (name, fields) = head.split_once(": ")?;
    let mut fields = fields.split(", ");
    let mut expected = Expected::new(Status::parse(fields.next()?.trim())?);
    expected.note = note;
    expected.seconds = fields.next()?.strip_suffix(" s")?.parse().ok()?;
    for field in fields {
        if let Some(shards) = field.strip_prefix("shards ") {
            expected.shards = Some(shards.parse().ok().filter(|&n| n >= 1)?);
        } else {
            let secs = field.strip_prefix("timeout ")?.strip_suffix(" s")?;
            expected.timeout = Some(secs.parse().ok()?);
        }
    }
    Some((name.trim().to_owned(), expected))
}

/// A way the run fell short of the expectations.
#[derive(Clone, Debug)]
pub enum Regression {
    /// The program ended worse than expected, also when run again.
    Status {
        program: String,
        expected: Status,
        got: Status,
        ending: String,
    },
    /// A case expected to pass did not, also when run again alone.
    Case {
        program: String,
        case: String,
        why: String,
    },
    /// The expectations name a program the suite does not have.
    MissingProgram { program: String },
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Regression::Status {
                program,
                expected,
                got,
                ending,
            } => write!(
                f,
                "{program}: status {} (expected {}): {ending}",
                got.as_str(),
                expected.as_str()
            ),
            Regression::Case { program, case, why } => {
                write!(f, "{program}: {case} no longer passes: {why}")
            }
            Regression::MissingProgram { program } => {
                write!(f, "{program}: in the expectations but not in the suite")
            }
        }
    }
}

/// The outcome of [`check`].
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Final results per program (re-runs merged in).
    pub runs: BTreeMap<String, ProgramRun>,
    pub regressions: Vec<Regression>,
    /// Cases that failed and then passed alone: `program: case`.
    pub flaky: Vec<String>,
    /// Cases passing that the expectations do not list as passing: `program: case`.
    pub newly_passing: Vec<String>,
    /// Programs whose status is better than expected: `program: old -> new`.
    pub better: Vec<String>,
    pub seconds: f64,
}

impl Report {
    /// Total cases passed and failed.
    pub fn totals(&self) -> (usize, usize) {
        self.runs
            .values()
            .fold((0, 0), |(p, f), r| (p + r.passed.len(), f + r.failed.len()))
    }

    /// The summary for the test's output, regressions listed one per line.
    pub fn render(&self) -> String {
        let (passed, failed) = self.totals();
        let mut out = format!("gvisor suite: {passed} passed, {failed} failed\n");
        let count = |s: Status| self.runs.values().filter(|r| r.status == s).count();
        let _ = writeln!(
            out,
            "gvisor suite: {} programs: {} ok, {} crash, {} timeout, {} nogtest; {:.0} s wall time",
            self.runs.len(),
            count(Status::Ok),
            count(Status::Crash),
            count(Status::Timeout),
            count(Status::NoGtest),
            self.seconds
        );
        for flaky in &self.flaky {
            let _ = writeln!(
                out,
                "gvisor suite: flaky (failed, then passed alone): {flaky}"
            );
        }
        if !self.newly_passing.is_empty() || !self.better.is_empty() {
            let _ = writeln!(
                out,
                "gvisor suite: {} cases newly pass, {} programs end better; move the expectations \
                 forward with tests/gvisor/update-expectations.sh --from-last-run",
                self.newly_passing.len(),
                self.better.len()
            );
            for line in self.better.iter().chain(self.newly_passing.iter().take(50)) {
                let _ = writeln!(out, "  better: {line}");
            }
        }
        if !self.regressions.is_empty() {
            let _ = writeln!(out, "gvisor suite: {} REGRESSIONS:", self.regressions.len());
            for r in &self.regressions {
                let _ = writeln!(out, "  REGRESSION {r}");
            }
        }
        out
    }
}

/// Runs the suite and compares it with `expected`; see the module doc for the rules. Also
/// writes `<target>/gvisor-suite/results.tsv`.
///
/// # Errors
/// A program could not be started or its log written.
pub fn check(runner: &Runner, expected: &Expectations) -> Result<Report, Error> {
    let started = Instant::now();
    let programs = runner.suite.programs()?;
    let mut report = Report::default();
    let everything = std::env::var_os("GVISOR_SUITE_ONLY").is_none();
    for name in expected.programs.keys() {
        if everything && !programs.contains(name) {
            report.regressions.push(Regression::MissingProgram {
                program: name.clone(),
            });
        }
    }
    let plan = expected.plan(&programs);
    let mut runs: BTreeMap<String, ProgramRun> = runner
        .run_all(&plan, |p| {
            let mut run =
                runner.run_sharded(&p.name, p.filter().as_deref(), p.timeout, &p.name, p.shards)?;
            run_alone(runner, p, &mut run)?;
            Ok((run, ()))
        })?
        .into_iter()
        .map(|(name, (run, ()))| (name, run))
        .collect();
    for planned in &plan {
        let name = &planned.name;
        let Some(run) = runs.get_mut(name) else {
            continue;
        };
        let Some(e) = expected.programs.get(name) else {
            report
                .newly_passing
                .extend(run.passed.iter().map(|c| format!("{name}: {c}")));
            report.better.push(format!(
                "{name}: not in the expectations -> {}",
                run.status.as_str()
            ));
            continue;
        };
        if run.status.badness() > e.status.badness() {
            progress(&format!(
                "gvisor suite: {name} ended {} (expected {}); running it again",
                run.status.as_str(),
                e.status.as_str()
            ));
            let again = runner.run_sharded(
                name,
                planned.filter().as_deref(),
                planned.timeout,
                &format!("{name}.again"),
                planned.shards,
            )?;
            if again.status.badness() <= run.status.badness() {
                let first = std::mem::replace(run, again);
                keep_alone(&first, run, &planned.alone);
            }
            if run.status.badness() > e.status.badness() {
                report.regressions.push(Regression::Status {
                    program: name.clone(),
                    expected: e.status,
                    got: run.status,
                    ending: format!(
                        "{}{}",
                        run.ending,
                        run.unfinished
                            .as_ref()
                            .map(|c| format!(" while running {c}"))
                            .unwrap_or_default()
                    ),
                });
            }
        } else if run.status.badness() < e.status.badness() {
            report.better.push(format!(
                "{name}: {} -> {}",
                e.status.as_str(),
                run.status.as_str()
            ));
        }
        let missing = rerun_missing(runner, name, e, run, &mut report.flaky)?;
        for (case, why) in missing {
            report.regressions.push(Regression::Case {
                program: name.clone(),
                case,
                why,
            });
        }
        report.newly_passing.extend(
            run.passed
                .difference(&e.passes)
                .map(|c| format!("{name}: {c}")),
        );
    }
    report.runs = runs;
    report.seconds = started.elapsed().as_secs_f64();
    write_results(&runner.logs, &report.runs)?;
    Ok(report)
}

/// Runs each of `p`'s `alone` cases by itself (log `NAME.aloneN.log`) and adds its outcome to
/// `run`, the program's whole run, which left them out: a case that does not finish is a
/// failure, with how its run ended.
fn run_alone(runner: &Runner, p: &Planned, run: &mut ProgramRun) -> Result<(), Error> {
    for (i, case) in p.alone.iter().enumerate() {
        let again = runner.run(
            &p.name,
            Some(case),
            RERUN_TIMEOUT,
            &format!("{}.alone{i}", p.name),
        )?;
        if again.passed.contains(case) {
            run.failed.remove(case);
            run.passed.insert(case.clone());
        } else {
            run.passed.remove(case);
            let why =
                again.failed.get(case).cloned().unwrap_or_else(|| {
                    format!("alone: {} {}", again.status.as_str(), again.ending)
                });
            run.failed.insert(case.clone(), why);
        }
    }
    Ok(())
}

/// Copies the outcomes of the `alone` cases from `from` into `to` (a whole run again, which
/// left them out).
fn keep_alone(from: &ProgramRun, to: &mut ProgramRun, alone: &[String]) {
    for case in alone {
        if from.passed.contains(case) {
            to.passed.insert(case.clone());
        } else if let Some(why) = from.failed.get(case) {
            to.failed.insert(case.clone(), why.clone());
        }
    }
}

/// Runs again the cases `e` expects to pass that `run` did not pass: each alone (up to
/// [`MAX_ALONE_RERUNS`]), the rest together. Merges what passes now into `run` (those go to
/// `flaky`) and returns the cases that still do not pass, each with why.
fn rerun_missing(
    runner: &Runner,
    name: &str,
    e: &Expected,
    run: &mut ProgramRun,
    flaky: &mut Vec<String>,
) -> Result<Vec<(String, String)>, Error> {
    let missing: Vec<String> = e.passes.difference(&run.passed).cloned().collect();
    let mut still = Vec::new();
    let (alone, together) = missing.split_at(missing.len().min(MAX_ALONE_RERUNS));
    let mut batches: Vec<Vec<String>> = alone.iter().map(|c| vec![c.clone()]).collect();
    if !together.is_empty() {
        batches.push(together.to_vec());
    }
    for (i, batch) in batches.iter().enumerate() {
        let again = runner.run(
            name,
            Some(&batch.join(":")),
            RERUN_TIMEOUT.max(runner_timeout_for(batch.len())),
            &format!("{name}.rerun{i}"),
        )?;
        for case in batch {
            let first = run
                .failed
                .get(case)
                .cloned()
                .unwrap_or_else(|| match &run.unfinished {
                    Some(u) if u == case => {
                        format!("was running when the program ended: {}", run.ending)
                    }
                    _ => "did not run".to_owned(),
                });
            if again.passed.contains(case) {
                flaky.push(format!("{name}: {case} (first run: {first})"));
                run.failed.remove(case);
                run.passed.insert(case.clone());
            } else {
                let alone = match again.failed.get(case) {
                    Some(reason) => format!("failed alone too: {reason}"),
                    None => format!("alone: {} {}", again.status.as_str(), again.ending),
                };
                still.push((case.clone(), format!("{first}; {alone}")));
            }
        }
    }
    Ok(still)
}

/// A re-run of `cases` cases together gets a few seconds each on top of [`RERUN_TIMEOUT`].
fn runner_timeout_for(cases: usize) -> Duration {
    RERUN_TIMEOUT + Duration::from_secs(2 * cases as u64)
}

/// Writes `<logs>/../results.tsv` in the format of the suite's `run.sh`: one line per program
/// (name, passed, failed, status, seconds) and a TOTAL line.
fn write_results(logs: &Path, runs: &BTreeMap<String, ProgramRun>) -> Result<(), Error> {
    let path = results_path(logs);
    let mut out = String::from("name\tpassed\tfailed\tstatus\tseconds\n");
    let (mut passed, mut failed, mut ok, mut seconds) = (0, 0, 0, 0.0);
    for (name, run) in runs {
        let _ = writeln!(
            out,
            "{name}\t{}\t{}\t{}\t{:.1}",
            run.passed.len(),
            run.failed.len(),
            run.status.as_str(),
            run.seconds
        );
        passed += run.passed.len();
        failed += run.failed.len();
        ok += usize::from(run.status == Status::Ok);
        seconds += run.seconds;
    }
    let _ = writeln!(
        out,
        "TOTAL\t{passed}\t{failed}\t{ok}/{}\t{seconds:.1}",
        runs.len()
    );
    std::fs::write(&path, out).map_err(io_error(&path))
}

/// The results file beside a logs directory.
pub fn results_path(logs: &Path) -> PathBuf {
    logs.parent().unwrap_or(logs).join("results.tsv")
}

/// Where runs keep their logs: `<target>/gvisor-suite/logs`.
pub fn default_logs() -> PathBuf {
    crate::target_dir().join("gvisor-suite").join("logs")
}

/// What [`update`] is told.
#[derive(Clone, Copy, Debug, Default)]
pub struct UpdateOptions {
    /// Let passes that no longer pass become failures.
    pub accept_regressions: bool,
    /// Run the excluded cases again (they may not hang any more).
    pub retry_excluded: bool,
}

/// Runs the suite and returns the expectations moved forward from `old`: the passes and
/// statuses seen now, failures grouped by reason. A program that crashes or times out is run
/// again without the case it was running (up to [`ISOLATION_ROUNDS`] times), and those cases
/// are excluded from then on. Refuses ([`Error::Backwards`]) to drop a pass or worsen a status
/// that a re-run confirms, unless `options.accept_regressions`.
///
/// # Errors
/// A program could not be started, or the expectations would move backwards.
pub fn update(
    runner: &Runner,
    old: &Expectations,
    options: UpdateOptions,
) -> Result<(Expectations, Report), Error> {
    let started = Instant::now();
    let programs = runner.suite.programs()?;
    let mut plan = old.plan(&programs);
    if options.retry_excluded {
        for p in &mut plan {
            p.excluded.clear();
        }
    }
    let mut runs = runner.run_all(&plan, |p| {
        let mut excluded: BTreeMap<String, BTreeSet<String>> = match old.programs.get(&p.name) {
            Some(e) if !options.retry_excluded => e.excluded.clone(),
            _ => BTreeMap::new(),
        };
        let mut run = isolate(runner, p, &mut excluded)?;
        run_alone(runner, p, &mut run)?;
        Ok((run, excluded))
    })?;
    // With $GVISOR_SUITE_ONLY the programs not run keep what they had.
    let mut new = old.clone();
    new.programs
        .retain(|name, _| runner.suite.dir.join("bin").join(name).exists());
    let mut backwards = String::new();
    let mut flaky = Vec::new();
    let mut finals = BTreeMap::new();
    for p in &plan {
        let Some((mut run, excluded)) = runs.remove(&p.name) else {
            continue;
        };
        let mut expected = Expected::new(run.status);
        expected.seconds = run.seconds.round() as u64;
        expected.timeout = old.programs.get(&p.name).and_then(|e| e.timeout);
        expected.shards = old.programs.get(&p.name).and_then(|e| e.shards);
        expected.excluded = excluded;
        expected.alone = old
            .programs
            .get(&p.name)
            .map(|e| e.alone.clone())
            .unwrap_or_default();
        if let Some(e) = old.programs.get(&p.name) {
            for (case, why) in rerun_missing(runner, &p.name, e, &mut run, &mut flaky)? {
                let _ = writeln!(backwards, "  {}: {case}: {why}", p.name);
            }
            if run.status.badness() > e.status.badness() {
                let _ = writeln!(
                    backwards,
                    "  {}: status {} -> {} ({})",
                    p.name,
                    e.status.as_str(),
                    run.status.as_str(),
                    run.ending
                );
            }
        }
        if run.status != Status::Ok {
            expected.note = status_note(&p.name, &run);
        }
        expected.passes = run.passed.clone();
        for (case, reason) in &run.failed {
            expected
                .failures
                .entry(reason.clone())
                .or_default()
                .insert(case.clone());
        }
        new.programs.insert(p.name.clone(), expected);
        finals.insert(p.name.clone(), run);
    }
    if !backwards.is_empty() && !options.accept_regressions {
        return Err(Error::Backwards(backwards));
    }
    let report = Report {
        runs: finals,
        flaky,
        seconds: started.elapsed().as_secs_f64(),
        ..Report::default()
    };
    write_results(&runner.logs, &report.runs)?;
    Ok((new, report))
}

/// Moves `old` forward from the logs a finished run (the CI check's or an update's) left in
/// `logs`, without running anything: a case that some log of a program shows passing becomes a
/// pass (and leaves its failure group), and a program whose run ended better than expected
/// takes that status. Excluded cases stay excluded; nothing moves backwards. Returns the new
/// expectations and the moves, one line each (`program: case`, `program: old -> new`).
///
/// # Errors
/// The logs directory or a log cannot be read.
pub fn record(logs: &Path, old: &Expectations) -> Result<(Expectations, Vec<String>), Error> {
    let mut new = old.clone();
    let mut moved = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(logs)
        .map_err(io_error(logs))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for (program, e) in &mut new.programs {
        let mut passed = BTreeSet::new();
        let mut best: Option<Status> = None;
        for log in names.iter().filter(|n| is_log_of(n, program)) {
            let path = logs.join(log);
            let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
            passed.extend(ProgramRun::parse(&text, false, 0, 0.0).passed);
            // Only whole runs (not the re-runs of single cases) say how the program ends.
            let whole = log == &format!("{program}.log") || log == &format!("{program}.again.log");
            if let Some(status) = text.lines().rev().find_map(logged_status).filter(|_| whole) {
                best = Some(best.map_or(status, |b| b.min(status)));
            }
        }
        let excluded: BTreeSet<String> = e.excluded_cases().into_iter().collect();
        for case in passed {
            if excluded.contains(&case) || !e.passes.insert(case.clone()) {
                continue;
            }
            for cases in e.failures.values_mut() {
                cases.remove(&case);
            }
            moved.push(format!("{program}: {case}"));
        }
        e.failures.retain(|_, cases| !cases.is_empty());
        if let Some(status) = best.filter(|s| s.badness() < e.status.badness()) {
            moved.push(format!(
                "{program}: {} -> {}",
                e.status.as_str(),
                status.as_str()
            ));
            e.status = status;
            if status == Status::Ok {
                e.note.clear();
            }
        }
    }
    Ok((new, moved))
}

/// Whether `log` is one of `program`'s logs: `NAME.log`, `NAME.again.log`, `NAME.rerunN.log`,
/// `NAME.aloneN.log`.
fn is_log_of(log: &str, program: &str) -> bool {
    let Some(rest) = log
        .strip_prefix(program)
        .and_then(|r| r.strip_suffix(".log"))
    else {
        return false;
    };
    let numbered = |prefix: &str| {
        rest.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    rest.is_empty() || rest == ".again" || numbered(".rerun") || numbered(".alone")
}

/// The status in a log's last line, `# exit=N seconds=S status=STATUS` (see [`Runner::run`]).
fn logged_status(line: &str) -> Option<Status> {
    let rest = line.strip_prefix("# exit=")?;
    Status::parse(rest.rsplit_once(" status=")?.1.trim())
}

/// Runs `p`; while it crashes or hangs, runs it again without the case it was in (up to
/// [`ISOLATION_ROUNDS`] times), adding that case to `excluded` with why.
fn isolate(
    runner: &Runner,
    p: &Planned,
    excluded: &mut BTreeMap<String, BTreeSet<String>>,
) -> Result<ProgramRun, Error> {
    // The alone cases are left out too: [`run_alone`] runs them.
    let mut filter_cases: Vec<String> = excluded
        .values()
        .flatten()
        .chain(&p.alone)
        .cloned()
        .collect();
    let mut run = runner.run_sharded(
        &p.name,
        leave_out(&filter_cases).as_deref(),
        p.timeout,
        &p.name,
        p.shards,
    )?;
    for _ in 0..ISOLATION_ROUNDS {
        if run.status == Status::Ok {
            break;
        }
        let Some(case) = run.unfinished.clone() else {
            break;
        };
        let reason = match run.status {
            Status::Timeout => format!("hangs ({})", run.ending),
            _ => format!("kills the program: {}", run.ending),
        };
        excluded.entry(reason).or_default().insert(case.clone());
        progress(&format!(
            "gvisor suite: {} {}: running it again without {case}",
            p.name,
            run.status.as_str()
        ));
        filter_cases.push(case);
        run = runner.run_sharded(
            &p.name,
            leave_out(&filter_cases).as_deref(),
            p.timeout,
            &p.name,
            p.shards,
        )?;
    }
    Ok(run)
}

/// Programs the suite's README ran natively, all to the end (`ok`).
const NATIVE_OK: &[&str] = &[
    "accept_bind",
    "accept_bind_stream",
    "aio",
    "bad",
    "bind",
    "brk",
    "chmod",
    "chown",
    "clock_getres",
    "close_range",
    "creat",
    "deleted",
    "dev",
    "exceptions",
    "exec_binary",
    "fadvise64",
    "fallocate",
    "fault",
    "fchdir",
    "fifo",
    "fpsig_fork",
    "fpsig_mut",
    "fpsig_nested",
    "fsync",
    "getrandom",
    "madvise",
    "memfd",
    "mincore",
    "mremap",
    "msync",
    "munmap",
    "open_create",
    "partial_bad_buffer",
    "ppoll",
    "preadv",
    "preadv2",
    "pselect",
    "pwrite64",
    "pwritev2",
    "readahead",
    "rseq",
    "select",
    "sigreturn",
    "socket_unix_dgram_local",
    "socket_unix_pair",
    "splice",
    "tgkill",
    "tkill",
    "utimes",
    "xattr",
];

/// Programs the suite's README says reach the 90 s timeout under gVisor's runsc too.
const GVISOR_TIMEOUTS: &[&str] = &[
    "itimer",
    "socket_inet_loopback",
    "socket_inet_loopback_isolated",
    "socket_ip_tcp_generic_loopback",
    "socket_unix_dgram_local",
];

/// Why a program does not finish, and how it fares natively and under gVisor (from the suite's
/// README), for the expectations.
fn status_note(name: &str, run: &ProgramRun) -> String {
    let what = format!(
        "{}{}",
        run.ending,
        run.unfinished
            .as_ref()
            .map(|c| format!(" in {c}"))
            .unwrap_or_default()
    );
    let native = if NATIVE_OK.contains(&name) {
        "finishes natively"
    } else {
        "not run natively"
    };
    let gvisor = if GVISOR_TIMEOUTS.contains(&name) {
        "times out under gVisor too"
    } else {
        "finishes under gVisor"
    };
    format!("{what}; {native}, {gvisor} (suite README)")
}

/// gVisor's runsc on the same suite (systrap, gVisor's CI environment), as measured for
/// issue 12: cases passed and failed; the suite's README lists five programs that reach the
/// 90 s timeout there.
const GVISOR_PASSED: usize = 10_541;
const GVISOR_FAILED: usize = 522;

/// The README's compatibility figures, from a results file written by [`check`] or
/// [`update`].
///
/// # Errors
/// The file cannot be read.
pub fn readme_figures(results: &Path, expectations: &Expectations) -> Result<String, Error> {
    let text = std::fs::read_to_string(results).map_err(io_error(results))?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut passed, mut failed, mut programs) = (0usize, 0usize, 0usize);
    let mut unfinished = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 4 || fields[0] == "TOTAL" {
            continue;
        }
        programs += 1;
        passed += fields[1].parse::<usize>().unwrap_or(0);
        failed += fields[2].parse::<usize>().unwrap_or(0);
        *counts.entry(fields[3]).or_default() += 1;
        if fields[3] != "ok" {
            unfinished.push(format!("`{}` ({})", fields[0], fields[3]));
        }
    }
    let excluded: usize = expectations
        .programs
        .values()
        .map(|e| e.excluded.values().map(BTreeSet::len).sum::<usize>())
        .sum();
    let alone: usize = expectations
        .programs
        .values()
        .map(|e| e.alone.values().map(BTreeSet::len).sum::<usize>())
        .sum();
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "gVisor's own system-call test suite ({programs} programs of `test/syscalls/linux`, \
         googletest; `tests/tests/gvisor_suite.rs` runs it in CI against \
         `tests/gvisor/expectations.txt`). Test cases, each expecting Linux's behaviour:"
    );
    out.push('\n');
    out.push_str("| sandbox | cases passed | cases failed | programs ok | crash | timeout |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| runsc-rs | {passed} | {failed} | {} | {} | {} |",
        count("ok"),
        count("crash") + count("nogtest"),
        count("timeout")
    );
    let _ = writeln!(
        out,
        "| gVisor runsc (systrap) | {GVISOR_PASSED} | {GVISOR_FAILED} | n/a | n/a | {} (at 90 s) |",
        GVISOR_TIMEOUTS.len()
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "runsc-rs: {excluded} cases are left out of the runs (listed in the expectations with \
         why: slow by design past the runner's limits, racy, or hanging under runsc-rs){}. gVisor was measured with its CI environment \
         (`TEST_ON_GVISOR=systrap`), where a few cases are skipped rather than failed.",
        if alone > 0 {
            format!(
                "; {alone} run each in a sandbox of its own, as gVisor's runner runs every case \
                 (earlier cases' leftovers make them fail in one process, natively too)"
            )
        } else {
            String::new()
        }
    );
    if !unfinished.is_empty() {
        let _ = writeln!(
            out,
            "Programs that do not finish under runsc-rs: {}.",
            unfinished.join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
# cmd: runsc-rs do -- bind
[==========] Running 4 tests from 1 test suite.
[ RUN      ] A/B.Passes/0
[       OK ] A/B.Passes/0 (0 ms)
[ RUN      ] A/B.Fails/1
test/syscalls/linux/x.cc:69: Failure
Expected equality of these values:
  addr_len
    Which is: 0
  other_len
    Which is: 46

[  FAILED  ] A/B.Fails/1, where GetParam() = 80-byte object <90-FB> (0 ms)
[ RUN      ] C.Errno
test/util/y.h:141: Failure
Value of: _expr_result
Expected: is OK
  Actual: PosixError(errno=38 Function not implemented) syscall(__NR_capget, &header, &caps)

[  FAILED  ] C.Errno (1 ms)
[ RUN      ] C.Skipped
[  SKIPPED ] C.Skipped (0 ms)
[==========] 4 tests from 1 test suite ran. (5 ms total)
[  FAILED  ] 2 tests, listed below:
[  FAILED  ] A/B.Fails/1, where GetParam() = 80-byte object <90-FB>
[  FAILED  ] C.Errno
";

    #[test]
    fn parses_results_and_reasons() {
        let run = ProgramRun::parse(LOG, false, 1, 0.5);
        assert_eq!(run.status, Status::Ok);
        assert_eq!(run.passed.iter().collect::<Vec<_>>(), ["A/B.Passes/0"]);
        assert_eq!(
            run.failed.get("A/B.Fails/1").map(String::as_str),
            Some("x.cc:69: expected addr_len == other_len")
        );
        assert_eq!(
            run.failed.get("C.Errno").map(String::as_str),
            Some(
                "y.h:141: syscall(__NR_capget, &header, &caps): errno=38 Function not implemented"
            )
        );
        assert_eq!(run.failed.len(), 2);
        assert_eq!(run.unfinished, None);
    }

    #[test]
    fn a_program_that_dies_is_a_crash_with_its_last_case() {
        let log = "[==========] Running 2 tests from 1 test suite.\n[ RUN      ] A.Ok\n\
                   [       OK ] A.Ok (0 ms)\n[ RUN      ] A.Dies\nCheck failed: x\n";
        let run = ProgramRun::parse(log, false, 134, 0.1);
        assert_eq!(run.status, Status::Crash);
        assert_eq!(run.unfinished.as_deref(), Some("A.Dies"));
        assert_eq!(run.ending, "Check failed: x (exit 134, signal 6)");
        assert_eq!(
            ProgramRun::parse(log, true, 124, 60.0).status,
            Status::Timeout
        );
        assert_eq!(
            ProgramRun::parse("no such file", false, 127, 0.0).status,
            Status::NoGtest
        );
    }

    #[test]
    fn expectations_render_and_parse_back() {
        let mut e = Expected::new(Status::Crash);
        e.seconds = 3;
        e.timeout = Some(20);
        e.shards = Some(4);
        e.note = "Check failed: x (exit 134, signal 6) in A.Dies".to_owned();
        e.passes.insert("A/B.Passes/0".to_owned());
        e.failures
            .entry("x.cc:69: expected a == b".to_owned())
            .or_default()
            .extend(["A/B.Fails/1".to_owned(), "A/B.Fails/2".to_owned()]);
        e.excluded
            .entry("hangs (60 s timeout)".to_owned())
            .or_default()
            .insert("A.Hangs".to_owned());
        e.alone
            .entry("an earlier case's address stays".to_owned())
            .or_default()
            .insert("A/B.Passes/0".to_owned());
        let mut all = Expectations::default();
        all.programs.insert("bind".to_owned(), e);
        all.programs
            .insert("brk".to_owned(), Expected::new(Status::Ok));
        let text = all.render();
        assert_eq!(Expectations::parse(&text, Path::new("x")).unwrap(), all);
        assert!(Expectations::parse("  pass A.B\n", Path::new("x")).is_err());
        assert!(Expectations::parse("program a: bad, 1 s\n", Path::new("x")).is_err());
        assert!(Expectations::parse("program a: ok, 1 s, shards 0\n", Path::new("x")).is_err());
    }

    #[test]
    fn shards_merge_into_one_run() {
        let ok = ProgramRun::parse(
            "[==========] Running 1 test from 1 test suite.\n[ RUN      ] A.One\n\
             [       OK ] A.One (1 ms)\n[==========] 1 test from 1 test suite ran. (1 ms total)\n",
            false,
            0,
            2.0,
        );
        let dead = ProgramRun::parse(
            "[==========] Running 2 tests from 1 test suite.\n[ RUN      ] A.Two\n\
             [       OK ] A.Two (1 ms)\n[ RUN      ] A.Dies\n",
            false,
            134,
            1.0,
        );
        assert_eq!(ok.status, Status::Ok);
        let merged = ok.merge(dead);
        assert_eq!(merged.status, Status::Crash);
        assert_eq!(merged.unfinished.as_deref(), Some("A.Dies"));
        assert_eq!(merged.passed.len(), 2);
        assert_eq!(merged.seconds, 2.0);
    }

    #[test]
    fn record_moves_passes_and_statuses_forward_from_logs() {
        let dir = std::env::temp_dir().join(format!("gvisor-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The whole run timed out after C.Errno failed; a re-run alone passed A/B.Fails/1.
        std::fs::write(
            dir.join("bind.log"),
            format!("{LOG}# exit=0 seconds=1.0 status=ok\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("bind.rerun0.log"),
            "[ RUN      ] A/B.Fails/1\n[       OK ] A/B.Fails/1 (0 ms)\n\
             # exit=0 seconds=0.1 status=crash\n",
        )
        .unwrap();
        // Not bind's: a program whose name starts with bind's.
        std::fs::write(
            dir.join("bind_more.log"),
            "[ RUN      ] C.Errno\n[       OK ] C.Errno (0 ms)\n",
        )
        .unwrap();
        let mut e = Expected::new(Status::Timeout);
        e.note = "killed".to_owned();
        e.failures
            .entry("x".to_owned())
            .or_default()
            .extend(["A/B.Fails/1".to_owned(), "C.Errno".to_owned()]);
        e.excluded
            .entry("hangs".to_owned())
            .or_default()
            .insert("A/B.Passes/0".to_owned());
        let mut old = Expectations::default();
        old.programs.insert("bind".to_owned(), e);

        let (new, moved) = record(&dir, &old).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let bind = &new.programs["bind"];
        // The excluded case stays excluded even though a log shows it passing.
        assert_eq!(bind.passes.iter().collect::<Vec<_>>(), ["A/B.Fails/1"]);
        assert_eq!(bind.failures["x"].iter().collect::<Vec<_>>(), ["C.Errno"]);
        assert_eq!(bind.status, Status::Ok);
        assert!(bind.note.is_empty());
        assert_eq!(moved, ["bind: A/B.Fails/1", "bind: timeout -> ok"]);
    }

    #[test]
    fn alone_cases_leave_the_whole_run_and_keep_their_outcome() {
        let p = Planned {
            name: "bind".to_owned(),
            excluded: vec!["A.Hangs".to_owned()],
            alone: vec!["A.Alone".to_owned(), "A.AloneFails".to_owned()],
            timeout: DEFAULT_TIMEOUT,
            shards: 1,
            expected_seconds: 0.0,
        };
        assert_eq!(p.filter().as_deref(), Some("-A.Hangs:A.Alone:A.AloneFails"));
        let none = Planned {
            excluded: Vec::new(),
            alone: Vec::new(),
            ..p.clone()
        };
        assert_eq!(none.filter(), None);
        let mut first = ProgramRun::parse(
            "[ RUN      ] A.Other\n[       OK ] A.Other (0 ms)\n",
            false,
            0,
            0.0,
        );
        first.passed.insert("A.Alone".to_owned());
        first
            .failed
            .insert("A.AloneFails".to_owned(), "x.cc:1: no".to_owned());
        let mut again = ProgramRun::parse("", false, 0, 0.0);
        keep_alone(&first, &mut again, &p.alone);
        assert_eq!(again.passed.iter().collect::<Vec<_>>(), ["A.Alone"]);
        assert_eq!(again.failed["A.AloneFails"], "x.cc:1: no");
        assert!(!again.passed.contains("A.Other"));
    }

    #[test]
    fn the_expectations_file_is_as_the_update_writes_it() {
        let path = crate::workspace_dir().join(EXPECTATIONS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = Expectations::parse(&text, &path).unwrap();
        assert!(parsed.programs["socket_stress"]
            .alone
            .values()
            .all(|c| !c.is_empty()));
        assert_eq!(parsed.render(), text);
    }

    #[test]
    fn logs_of_a_program() {
        assert!(is_log_of("bind.log", "bind"));
        assert!(is_log_of("bind.again.log", "bind"));
        assert!(is_log_of("bind.rerun12.log", "bind"));
        assert!(is_log_of("bind.alone3.log", "bind"));
        assert!(!is_log_of("bind.rerun.log", "bind"));
        assert!(!is_log_of("bind.alone.log", "bind"));
        assert!(!is_log_of("bind_more.log", "bind"));
        assert_eq!(
            logged_status("# exit=134 seconds=2.0 status=crash"),
            Some(Status::Crash)
        );
        assert_eq!(logged_status("[ RUN      ] A"), None);
    }
}
