//! runsc-rs-bench: measures runsc-rs against native Linux and runc and prints a markdown table
//! for the README (progress goes to stderr, the table to stdout).
//!
//! ```text
//! cargo run --release -p runsc-rs-tests --bin runsc-rs-bench [-- --platform ptrace ...]
//! ```
//!
//! Figures: ns per `getpid`, `clock_gettime` (through libc: the vDSO's, no trap), `stat` and
//! `open`+`read`+`close`, µs per `fork`+`exec`+`wait` and per one-byte pipe round trip between
//! two processes, ms to move 1 GiB through a pipe and to fault in 256 MiB
//! (tests/programs/syscall_bench.c; its `getpid` goes through libc's `syscall()`, which no
//! platform patches), ns per `getpid` from a `mov $39,%eax; syscall` site that systrap patches
//! (tests/programs/patch_getpid.c), ms per start of `busybox true` (median), ms per
//! `python3 -S -c pass` and per Python loop of 200,000 `os.getppid()` (the system's Python,
//! median of 3), MiB of PSS for an
//! idle `busybox sleep` (sum over the process tree, from /proc/PID/smaps_rollup). Each
//! runsc-rs platform is measured twice: free to use both CPUs, and pinned to one CPU with
//! `taskset` (the sentry and its stubs then hand off without waking another vCPU, which on
//! nested VMs is the expensive part). Through containerd (a private one under a temporary root,
//! `runsc_rs_tests::containerd`): ms per `ctr run --rm ... /bin/true` with runc's shim and with
//! runsc-rs's, alternating, median and min. Over a network (tests/programs/net_bench.c): TCP
//! throughput and connect+request+close latency from a client network namespace to a native
//! server in a peer namespace, joined by a veth pair the benchmark makes (private addresses
//! inside those namespaces only); runsc-rs runs the client with `--network sandbox`, its own
//! TCP/IP stack on the namespace's link. Nothing here asserts a time; a tool that is missing or
//! fails gives `n/a (reason)` in its cell.
//!
//! Checkpoint and restore (runsc-rs columns only; `--checkpoint-only` measures just these):
//! through the OCI CLI (`checkpoint --image-path`, then `restore -d` in a new sandbox; pause,
//! sandbox start and container creation included), ms for each and the image's size, for an
//! idle shell and for a process holding 256 MiB (`dd`'s buffer, filled from /dev/zero,
//! blocked writing to a pipe nobody reads). One run each.
//!
//! `--gvisor PATH` adds a column for gVisor's own `runsc` at PATH (the user's; none is installed
//! here): `runsc --network=none --platform=systrap do -- CMD`, the host's `/` under a memory
//! overlay like `runsc-rs do`. Its network, checkpoint and containerd cells are not measured.

use anyhow::{bail, ensure, Context, Result};
use runsc_rs_tests::containerd::{self, Env};
use runsc_rs_tests::netns::{self, Netns};
use runsc_rs_tests::{find_runsc_rs_bin, program, static_busybox};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const START_RUNS: usize = 20;
/// Runs of syscall_bench per figure (the median is reported).
const OP_RUNS: usize = 3;

/// An operation of syscall_bench: (argument, row label, repetitions natively, in a sandbox,
/// divisor that turns ns into the row's unit).
/// `site` runs tests/programs/patch_getpid.c instead: getpid from a `mov $39,%eax; syscall`
/// site, which the systrap platform patches (see `platform::patch`).
/// `pipebulk` and `fault` take MiB instead of repetitions and time the whole run.
const OPS: [(&str, &str, u32, u32, f64); 9] = [
    ("getpid", "`getpid` (ns per call)", 1_000_000, 20_000, 1.0),
    (
        "clock",
        "`clock_gettime(CLOCK_MONOTONIC)` through libc: the vDSO (ns per call)",
        10_000_000,
        1_000_000,
        1.0,
    ),
    (
        "site",
        "`getpid` from a patchable `mov $39,%eax; syscall` site (ns per call)",
        1_000_000,
        20_000,
        1.0,
    ),
    ("stat", "`stat` (ns per call)", 200_000, 5_000, 1.0),
    (
        "openrc",
        "`open`+`read`+`close` (ns per iteration)",
        100_000,
        2_000,
        1.0,
    ),
    (
        "forkexec",
        "`fork`+`exec`+`wait` of `busybox true` (µs per iteration)",
        1_000,
        1_000,
        1e3,
    ),
    (
        "pipe",
        "pipe ping-pong between two processes, one byte each way (µs per round trip)",
        50_000,
        5_000,
        1e3,
    ),
    (
        "pipebulk",
        "1 GiB through a pipe from another process, 64 KiB writes (ms)",
        1024,
        1024,
        1e6,
    ),
    (
        "fault",
        "fault in 256 MiB of anonymous memory, one write per page, mmap to munmap (ms)",
        256,
        256,
        1e6,
    ),
];
/// `ctr run --rm` runs per runtime (after one warm-up each), alternating the runtimes.
const CTR_RUNS: usize = 7;
/// The image the `ctr run --rm` figures run (`tests/e2e/build-image.sh`).
const CTR_IMAGE: &str = "docker.io/library/runsc-rs-bench:latest";
/// The platform the shim's sandboxes use by default (`boot::loader::default_platform`): its
/// `ctr run` figure goes in that platform's unpinned column.
const SHIM_PLATFORM: &str = "systrap";
const IDLE_SECONDS: u64 = 3;
/// How long after start the idle sandbox is measured (it must still be running).
const IDLE_SETTLE: Duration = Duration::from_millis(1500);

/// How to start a command in one of the compared environments.
enum Runtime {
    Native,
    Runc(RuncBundles),
    RunscRs {
        bin: PathBuf,
        platform: String,
        /// Run under `taskset -c 0`: the sentry and every stub on one CPU.
        pinned: bool,
    },
    /// gVisor's `runsc do` (`--gvisor PATH`): the host's `/` under a memory overlay, as ours,
    /// on gVisor's systrap platform with no network; its state under `state`.
    Gvisor {
        bin: PathBuf,
        state: PathBuf,
    },
}

impl Runtime {
    /// A command that runs `argv` (a static program and its arguments) in this environment.
    fn command(&self, argv: &[&str]) -> Result<Command> {
        match self {
            Self::Native => {
                let mut cmd = Command::new(argv[0]);
                cmd.args(&argv[1..]);
                Ok(cmd)
            }
            Self::Runc(bundles) => bundles.command(argv),
            Self::RunscRs {
                bin,
                platform,
                pinned,
            } => {
                let mut cmd = if *pinned {
                    let mut c = Command::new(which("taskset")?);
                    c.args(["-c", "0"]).arg(bin);
                    c
                } else {
                    Command::new(bin)
                };
                cmd.args(["do", "--platform", platform, "--"]).args(argv);
                Ok(cmd)
            }
            Self::Gvisor { bin, state } => {
                let mut cmd = Command::new(bin);
                cmd.arg("--root")
                    .arg(state)
                    .args(["--network=none", "--platform=systrap", "do", "--"])
                    .args(argv);
                Ok(cmd)
            }
        }
    }
}

/// The two network namespaces of the network figures, joined by a veth pair, with a native
/// `net_bench serve` in the server one. Everything is removed on drop.
struct NetPair {
    server: Child,
    /// Kept for its drop (the namespace goes, and the veth with it).
    _server_ns: Netns,
    client_ns: Netns,
}

/// Addresses inside the namespaces [`NetPair`] makes (never anything outside them).
const NET_SERVER: &str = "10.252.77.1";
const NET_CLIENT_CIDR: &str = "10.252.77.2/24";
const NET_PORT: &str = "5201";
const NET_SERVER_DEV: &str = "bench-s";
const NET_CLIENT_DEV: &str = "bench-c";
const NET_SEND_MIB: u32 = 256;
const NET_RR_NATIVE: u32 = 2_000;
const NET_RR_SANDBOX: u32 = 300;

impl NetPair {
    fn new(bench: &Path) -> Result<NetPair> {
        if let Some(why) = netns::unavailable() {
            bail!("{why}");
        }
        let server_ns = Netns::new("bench-s").map_err(anyhow::Error::msg)?;
        let client_ns = Netns::new("bench-c").map_err(anyhow::Error::msg)?;
        server_ns
            .veth(NET_SERVER_DEV, &client_ns, NET_CLIENT_DEV, &[])
            .map_err(anyhow::Error::msg)?;
        server_ns
            .ip(&[
                "addr",
                "add",
                &format!("{NET_SERVER}/24"),
                "dev",
                NET_SERVER_DEV,
            ])
            .map_err(anyhow::Error::msg)?;
        let mut server = server_ns
            .command(bench)
            .args(["serve", NET_PORT])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = server.stdout.take();
        let pair = NetPair {
            server,
            _server_ns: server_ns,
            client_ns,
        };
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(stdout.context("server stdout")?),
            &mut line,
        )?;
        ensure!(line.trim() == "listening", "net_bench serve: {line:?}");
        Ok(pair)
    }

    /// `argv` run in the client namespace by `runtime` (`None` for runc: its containers use
    /// the host kernel's stack, the native figure). The address is (re)set first:
    /// `--network sandbox` takes it from the host kernel, as gVisor does.
    fn command(&self, runtime: &Runtime, argv: &[&str]) -> Result<Option<Command>> {
        self.client_ns
            .ip(&["addr", "replace", NET_CLIENT_CIDR, "dev", NET_CLIENT_DEV])
            .map_err(anyhow::Error::msg)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client_ns.name]);
        match runtime {
            Runtime::Native => {}
            Runtime::Runc(_) => return Ok(None),
            Runtime::Gvisor { .. } => {
                bail!("not measured: gVisor's `runsc do` sets up a network of its own")
            }
            Runtime::RunscRs {
                bin,
                platform,
                pinned,
            } => {
                if *pinned {
                    cmd.arg(which("taskset")?).args(["-c", "0"]);
                }
                cmd.arg(bin)
                    .args(["do", "--network", "sandbox", "--platform", platform, "--"]);
            }
        }
        cmd.args(argv);
        Ok(Some(cmd))
    }

    /// (MiB/s sending NET_SEND_MIB, µs per connect+request+close); `None` for runc.
    fn measure(&self, runtime: &Runtime, bench: &Path) -> Option<(Result<f64>, Result<f64>)> {
        let bench = bench.to_str()?;
        let mib = NET_SEND_MIB.to_string();
        let rr = match runtime {
            Runtime::Native => NET_RR_NATIVE,
            _ => NET_RR_SANDBOX,
        }
        .to_string();
        let run = |argv: &[&str]| -> Result<Option<f64>> {
            let mut values = Vec::new();
            for _ in 0..OP_RUNS {
                let Some(mut cmd) = self.command(runtime, argv)? else {
                    return Ok(None);
                };
                let out = cmd.stderr(Stdio::piped()).output()?;
                ensure!(
                    out.status.success(),
                    "net_bench {}: {}",
                    argv[1],
                    first_line(&String::from_utf8_lossy(&out.stderr))
                );
                values.push(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>()?);
            }
            Ok(Some(median(values)))
        };
        let send = run(&[bench, "send", NET_SERVER, NET_PORT, &mib]);
        if matches!(send, Ok(None)) {
            return None;
        }
        let throughput = send.map(|ns| f64::from(NET_SEND_MIB) / (ns.unwrap_or(f64::NAN) / 1e9));
        let latency =
            run(&[bench, "rr", NET_SERVER, NET_PORT, &rr]).map(|ns| ns.unwrap_or(f64::NAN) / 1e3);
        Some((throughput, latency))
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // The namespaces go next (field drops), and the veth pair with them.
    }
}

/// OCI bundles for `runc run`, made on demand in a temporary directory: a rootfs holding only
/// the static busybox, and a config from `runc spec` with the process args replaced.
struct RuncBundles {
    dir: PathBuf,
    busybox: PathBuf,
    made: std::cell::Cell<u32>,
}

impl RuncBundles {
    fn new(busybox: &Path) -> Result<Self> {
        which("runc").context("runc not installed")?;
        ensure!(nix::unistd::geteuid().is_root(), "runc needs root");
        let dir = std::env::temp_dir().join(format!("runsc-rs-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            busybox: busybox.to_owned(),
            made: std::cell::Cell::new(0),
        })
    }

    fn command(&self, argv: &[&str]) -> Result<Command> {
        ensure!(
            Path::new(argv[0]) == self.busybox,
            "the runc bundle only holds busybox"
        );
        let n = self.made.get() + 1;
        self.made.set(n);
        let bundle = self.dir.join(format!("bundle-{n}"));
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin"))?;
        for dir in ["proc", "dev", "sys", "tmp"] {
            std::fs::create_dir_all(rootfs.join(dir))?;
        }
        std::fs::copy(&self.busybox, rootfs.join("bin/busybox"))?;
        let status = Command::new("runc")
            .arg("spec")
            .current_dir(&bundle)
            .stderr(Stdio::piped())
            .output()?;
        ensure!(
            status.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        );
        let config_path = bundle.join("config.json");
        let config = std::fs::read_to_string(&config_path)?;
        let mut args = vec!["/bin/busybox".to_owned()];
        args.extend(argv[1..].iter().map(|a| a.to_string()));
        std::fs::write(&config_path, patch_runc_config(&config, &args)?)?;
        let mut cmd = Command::new("runc");
        cmd.arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(format!("runsc-rs-bench-{}-{n}", std::process::id()));
        Ok(cmd)
    }
}

impl Drop for RuncBundles {
    fn drop(&mut self) {
        // Best effort: a leftover temp directory is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `--gvisor` argument: gVisor's `runsc` binary, which must exist and be executable
/// (this machine has none: the user brings their own).
fn gvisor_runsc(arg: Option<String>) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from(arg.context("--gvisor needs the path of gVisor's runsc binary")?);
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("--gvisor {}: no such file", path.display()))?;
    ensure!(
        meta.is_file() && meta.permissions().mode() & 0o111 != 0,
        "--gvisor {}: not an executable file",
        path.display()
    );
    Ok(path)
}

/// Replaces `"terminal": true` and the process args in `runc spec`'s default config.
fn patch_runc_config(config: &str, args: &[String]) -> Result<String> {
    let config = config.replacen("\"terminal\": true", "\"terminal\": false", 1);
    let start = config
        .find("\"args\": [")
        .context("no \"args\" in runc spec output")?;
    let end = start + config[start..].find(']').context("unterminated args")? + 1;
    let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    Ok(format!(
        "{}\"args\": [{}]{}",
        &config[..start],
        quoted.join(", "),
        &config[end..]
    ))
}

fn which(tool: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .with_context(|| format!("{tool} not found on PATH"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Runs a command to completion with its output discarded; fails unless it exits 0.
fn run_quietly(mut cmd: Command) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).stdout(Stdio::null()).output()?;
    ensure!(
        out.status.success(),
        "{}: {}",
        out.status,
        first_line(&String::from_utf8_lossy(&out.stderr))
    );
    Ok(())
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut short: String = line.chars().take(100).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// ns per repetition of `op`: the median over [`OP_RUNS`] runs of syscall_bench.
fn op_ns(runtime: &Runtime, bench: &Path, op: &str, reps: u32) -> Result<f64> {
    let prog = bench.to_str().context("UTF-8 path")?;
    let reps = reps.to_string();
    let mut samples = Vec::new();
    for _ in 0..OP_RUNS {
        let out = runtime
            .command(&[prog, op, &reps])?
            .stdin(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "{}: {}",
            out.status,
            first_line(&String::from_utf8_lossy(&out.stderr))
        );
        let ns = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ns_per_op="))
            .with_context(|| format!("unexpected syscall_bench output {text:?}"))?;
        samples.push(ns.parse()?);
    }
    Ok(median(samples))
}

/// The syscall-heavy Python loop: `os.getppid()` [`PY_LOOP_CALLS`] times.
const PY_LOOP_CALLS: u32 = 200_000;
/// Runs of each Python figure (the median is reported).
const PY_RUNS: usize = 3;

/// ms per run of `python3 -c CODE` (spawn to exit): the median over [`PY_RUNS`] runs after one
/// warm-up. Python is the host's (`python3` on PATH), dynamically linked: the sandbox loads it
/// and its libraries through its own loader and file system.
fn python_ms(runtime: &Runtime, python: &Path, code: &str) -> Result<f64> {
    let python = python.to_str().context("UTF-8 path")?;
    run_quietly(runtime.command(&[python, "-S", "-c", code])?)?;
    let mut samples = Vec::new();
    for _ in 0..PY_RUNS {
        let cmd = runtime.command(&[python, "-S", "-c", code])?;
        let started = Instant::now();
        run_quietly(cmd)?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(samples))
}

/// ms per start of `busybox true`: the median over [`START_RUNS`] runs, spawn to exit.
fn start_ms(runtime: &Runtime, busybox: &str) -> Result<f64> {
    // One warm-up run (page cache, first-use costs), not counted.
    run_quietly(runtime.command(&[busybox, "true"])?)?;
    let mut samples = Vec::new();
    for _ in 0..START_RUNS {
        let cmd = runtime.command(&[busybox, "true"])?;
        let started = Instant::now();
        run_quietly(cmd)?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(samples))
}

/// MiB of PSS of an idle `busybox sleep`, summed over the process tree of what was started.
fn idle_mib(runtime: &Runtime, busybox: &str) -> Result<f64> {
    let seconds = IDLE_SECONDS.to_string();
    let mut child = runtime
        .command(&[busybox, "sleep", &seconds])?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    thread::sleep(IDLE_SETTLE);
    let measured = match child.try_wait()? {
        Some(status) => Err(anyhow::anyhow!("exited early: {status}")),
        None => tree_pss_kib(child.id()),
    };
    let status = finish(&mut child)?;
    let kib = measured?;
    ensure!(status.success(), "{status}");
    Ok(kib as f64 / 1024.0)
}

fn finish(child: &mut Child) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(IDLE_SECONDS + 30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill()?;
            bail!("did not exit");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sum of `Pss:` in /proc/PID/smaps_rollup over `root` and all its descendants, in KiB.
fn tree_pss_kib(root: u32) -> Result<u64> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // Processes come and go while we look; a vanished one is simply not counted.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may contain spaces.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        children.entry(ppid).or_default().push(pid);
    }
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
        total += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no Pss line in smaps_rollup")?;
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    Ok(total)
}

/// The median and the fastest of a set of times, in ms.
struct Spread {
    median: f64,
    min: f64,
}

/// ms per `ctr run --rm` of `/bin/true`, as median and min, for runc's shim and runsc-rs's,
/// measured in turns through one private containerd. Either is `Err` with the reason it could
/// not be measured (not root, no containerd, no runc, the shim not built, a failed run).
fn ctr_run_ms() -> (Result<Spread>, Result<Spread>) {
    let env = containerd::check_prerequisites()
        .and_then(|()| containerd::find_shim_dir())
        .and_then(|shim_dir| Env::try_start(&shim_dir, "runsc-rs-bench", None))
        .and_then(|env| {
            env.try_build_image(CTR_IMAGE, r#"["/bin/true"]"#)
                .map(|()| env)
        });
    let env = match env {
        Ok(env) => env,
        Err(reason) => {
            eprintln!("skipping `ctr run --rm`: {}", first_line(&reason));
            return (
                Err(anyhow::anyhow!("{reason}")),
                Err(anyhow::anyhow!("{reason}")),
            );
        }
    };
    let runtimes = [containerd::RUNC_RUNTIME, containerd::RUNTIME];
    let mut samples: [Result<Vec<f64>>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
    // Run 0 of each runtime is the warm-up (snapshot, first start of the shim binary).
    for run in 0..=CTR_RUNS {
        for (n, runtime) in runtimes.iter().enumerate() {
            let Ok(times) = &mut samples[n] else {
                continue;
            };
            let id = format!("bench-{n}-{run}");
            let started = Instant::now();
            let out = env.ctr(&[
                "run",
                "--rm",
                "--runtime",
                runtime,
                CTR_IMAGE,
                &id,
                "/bin/true",
            ]);
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if !out.status.success() {
                samples[n] = Err(anyhow::anyhow!(
                    "{runtime}: {}: {}",
                    out.status,
                    first_line(&String::from_utf8_lossy(&out.stderr))
                ));
            } else if run > 0 {
                times.push(ms);
            }
        }
    }
    let [runc, runsc_rs] = samples.map(|times| {
        times.map(|t| {
            let min = t.iter().copied().fold(f64::INFINITY, f64::min);
            Spread {
                median: median(t),
                min,
            }
        })
    });
    (runc, runsc_rs)
}

fn median_min_cell(result: &Result<Spread>) -> String {
    match result {
        Ok(Spread { median, min }) => format!("{median:.0} (min {min:.0})"),
        Err(e) => format!("n/a ({})", first_line(&format!("{e:#}"))),
    }
}

fn cell(result: Result<f64>, decimals: usize) -> String {
    match result {
        Ok(value) => format!("{value:.decimals$}"),
        Err(e) => format!("n/a ({})", first_line(&format!("{e:#}"))),
    }
}

/// Today's date (UTC) as YYYY-MM-DD, from the days-since-epoch civil calendar algorithm.
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".into(), |(_, m)| m.trim().to_owned());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    // What else ran shapes every figure on a small machine; the 1-minute load says how much.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .map_or_else(String::new, |l| format!(", load average {l} at the start"));
    format!("Linux {kernel}, {model} ({cpus} CPUs){load}")
}

fn runsc_rs_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "runsc-rs (version unknown)".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// The workloads of the checkpoint rows: (what, shell script that prints `ready` once set).
const CHECKPOINT_WORKLOADS: [(&str, &str); 2] = [
    ("an idle shell", "echo ready; exec sleep 1000"),
    (
        "a process holding 256 MiB",
        "dd if=/dev/zero bs=256M count=1 2>/dev/null | (sleep 8; echo ready; exec sleep 1000)",
    ),
];

/// The runsc-rs CLI with state directory `root` on `platform`, pinned to CPU 0 or not.
fn oci_cli(bin: &Path, platform: &str, pinned: bool, root: &Path) -> Result<Command> {
    let mut cmd = if pinned {
        let mut c = Command::new(which("taskset")?);
        c.args(["-c", "0"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.env("RUNSC_RS_PLATFORM", platform)
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null());
    Ok(cmd)
}

/// Runs an OCI command to its end; fails with what it printed.
fn oci_run(mut cmd: Command) -> Result<()> {
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "{}",
        first_line(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    );
    Ok(())
}

/// Checkpoint and restore of `script` (a busybox shell script that prints `ready`) through
/// the OCI CLI: (checkpoint ms, restore ms, image MiB).
fn checkpoint_figures(
    bin: &Path,
    platform: &str,
    pinned: bool,
    busybox: &str,
    script: &str,
) -> Result<(f64, f64, f64)> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("runsc-rs-bench-ckpt-{}-{n}", std::process::id()));
    std::fs::create_dir_all(dir.join("bundle/rootfs/bin"))?;
    let root = dir.join("root");
    let ids = [
        format!("bench-ckpt-{n}"),
        format!("bench-ckpt-{n}-restored"),
    ];
    let result = (|| {
        let bundle = dir.join("bundle");
        std::fs::copy(busybox, bundle.join("rootfs/bin/busybox"))?;
        for applet in ["sh", "sleep", "echo", "dd"] {
            std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin").join(applet))?;
        }
        let mut spec = oci_cli(bin, platform, pinned, &root)?;
        spec.args(["spec", "--bundle"]).arg(&bundle);
        oci_run(spec)?;
        let path = bundle.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        std::fs::write(&path, config.to_string())?;
        let out = dir.join("out");
        let mut run = oci_cli(bin, platform, pinned, &root)?;
        run.args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(&ids[0])
            .stdout(std::fs::File::create(&out)?)
            .stderr(Stdio::null());
        ensure!(run.status()?.success(), "run -d failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains("ready")
        {
            ensure!(Instant::now() < deadline, "the workload never got ready");
            thread::sleep(Duration::from_millis(20));
        }
        let image = dir.join("image");
        let mut ckpt = oci_cli(bin, platform, pinned, &root)?;
        ckpt.args(["checkpoint", "--image-path"])
            .arg(&image)
            .arg(&ids[0]);
        let started = Instant::now();
        oci_run(ckpt)?;
        let checkpoint_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut bytes = 0;
        for entry in std::fs::read_dir(&image)? {
            bytes += entry?.metadata()?.len();
        }
        let mut restore = oci_cli(bin, platform, pinned, &root)?;
        restore
            .args(["restore", "-d", "--image-path"])
            .arg(&image)
            .arg("--bundle")
            .arg(&bundle)
            .arg(&ids[1])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        ensure!(restore.status()?.success(), "restore -d failed");
        let restore_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok((checkpoint_ms, restore_ms, bytes as f64 / (1024.0 * 1024.0)))
    })();
    for id in &ids {
        if let Ok(mut delete) = oci_cli(bin, platform, pinned, &root) {
            delete.args(["delete", "--force", id]);
            let _ = delete.output();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The checkpoint rows: (label, one cell per runtime column).
fn checkpoint_rows(
    runtimes: &[(String, Result<Runtime>)],
    busybox: &str,
) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    for (what, script) in CHECKPOINT_WORKLOADS {
        let mut ckpt = Vec::new();
        let mut restore = Vec::new();
        for (column, runtime) in runtimes {
            match runtime {
                Ok(Runtime::RunscRs {
                    bin,
                    platform,
                    pinned,
                }) => {
                    eprintln!("checkpoint of {what} on {column}...");
                    match checkpoint_figures(bin, platform, *pinned, busybox, script) {
                        Ok((c, r, mib)) => {
                            ckpt.push(format!("{c:.0} ({mib:.1} MiB)"));
                            restore.push(format!("{r:.0}"));
                        }
                        Err(e) => {
                            let na = format!("n/a ({})", first_line(&format!("{e:#}")));
                            ckpt.push(na.clone());
                            restore.push(na);
                        }
                    }
                }
                _ => {
                    ckpt.push("—".to_owned());
                    restore.push("—".to_owned());
                }
            }
        }
        rows.push((
            format!("`checkpoint` of {what} through the OCI CLI (ms; image size)"),
            ckpt,
        ));
        rows.push((
            format!("`restore -d` of {what} through the OCI CLI (ms)"),
            restore,
        ));
    }
    rows
}

fn main() -> Result<()> {
    let mut platforms = Vec::new();
    let mut checkpoint_only = false;
    let mut gvisor = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--platform" => platforms.push(args.next().context("--platform needs a value")?),
            "--checkpoint-only" => checkpoint_only = true,
            "--gvisor" => gvisor = Some(gvisor_runsc(args.next())?),
            "-h" | "--help" => {
                println!(
                    "usage: runsc-rs-bench [--platform NAME]... [--gvisor PATH-TO-RUNSC] [--checkpoint-only]  (default: ptrace and systrap)"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if platforms.is_empty() {
        // Both, so that their figures come from one run on the same (noisy) machine.
        platforms.extend(["ptrace".into(), "systrap".into()]);
    }

    let machine = machine();
    let busybox = static_busybox().context("a static /bin/busybox is needed")?;
    let bench = program("syscall_bench").context("a C compiler is needed")?;
    let site_bench = program("patch_getpid").context("a C compiler is needed")?;
    let net_bench = program("net_bench").context("a C compiler is needed")?;
    let bin = find_runsc_rs_bin();

    let mut runtimes: Vec<(String, Result<Runtime>)> = vec![
        ("native".into(), Ok(Runtime::Native)),
        (
            "runc".into(),
            RuncBundles::new(Path::new(busybox)).map(Runtime::Runc),
        ),
    ];
    for platform in &platforms {
        for pinned in [false, true] {
            let runtime = match &bin {
                Ok(bin) => Ok(Runtime::RunscRs {
                    bin: bin.clone(),
                    platform: platform.clone(),
                    pinned,
                }),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            let name = if pinned {
                format!("runsc-rs ({platform}, 1 CPU)")
            } else {
                format!("runsc-rs ({platform})")
            };
            runtimes.push((name, runtime));
        }
    }
    // Its state directory goes when the benchmark ends (a leftover is harmless).
    let gvisor_state =
        std::env::temp_dir().join(format!("runsc-rs-bench-gvisor-{}", std::process::id()));
    if let Some(bin) = gvisor {
        let runtime = std::fs::create_dir_all(&gvisor_state)
            .map(|()| Runtime::Gvisor {
                bin,
                state: gvisor_state.clone(),
            })
            .map_err(anyhow::Error::from);
        runtimes.push(("gVisor (systrap)".into(), runtime));
    }

    let columns: Vec<&str> = runtimes.iter().map(|(c, _)| c.as_str()).collect();
    if checkpoint_only {
        println!("| | {} |", columns.join(" | "));
        println!("|---|{}", "---:|".repeat(columns.len()));
        for (label, cells) in checkpoint_rows(&runtimes, busybox) {
            println!("| {label} | {} |", cells.join(" | "));
        }
        return Ok(());
    }
    let net_pair = NetPair::new(&net_bench);
    let mut ops: Vec<Vec<String>> = vec![Vec::new(); OPS.len()];
    let mut start = Vec::new();
    let mut py_pass = Vec::new();
    let mut py_loop = Vec::new();
    // The system's Python: a `python3` earlier on PATH may be a version manager's shell shim.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("python3 not found in /usr/bin or /usr/local/bin");
    let py_loop_code = format!("import os\nfor _ in range({PY_LOOP_CALLS}): os.getppid()");
    let mut idle = Vec::new();
    let mut tcp_rate = Vec::new();
    let mut tcp_rr = Vec::new();
    for (column, runtime) in &runtimes {
        eprintln!("measuring {column}...");
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => {
                let na = format!("n/a ({})", first_line(&format!("{e:#}")));
                for row in ops.iter_mut().chain([
                    &mut start,
                    &mut py_pass,
                    &mut py_loop,
                    &mut idle,
                    &mut tcp_rate,
                    &mut tcp_rr,
                ]) {
                    row.push(na.clone());
                }
                continue;
            }
        };
        for (row, (op, _, native_reps, sandbox_reps, unit)) in ops.iter_mut().zip(OPS) {
            let (bench, op) = if op == "site" {
                (&site_bench, "bench")
            } else {
                (&bench, op)
            };
            row.push(match runtime {
                Runtime::Native => cell(
                    op_ns(runtime, bench, op, native_reps).map(|ns| ns / unit),
                    1,
                ),
                Runtime::Runc(_) => "= native (host kernel)".to_owned(),
                Runtime::RunscRs { .. } | Runtime::Gvisor { .. } => cell(
                    op_ns(runtime, bench, op, sandbox_reps).map(|ns| ns / unit),
                    1,
                ),
            });
        }
        start.push(cell(start_ms(runtime, busybox), 1));
        for (row, code) in [
            (&mut py_pass, "pass"),
            (&mut py_loop, py_loop_code.as_str()),
        ] {
            row.push(match &python {
                Ok(python) => cell(python_ms(runtime, python, code), 0),
                Err(e) => format!("n/a ({})", first_line(&format!("{e:#}"))),
            });
        }
        idle.push(cell(idle_mib(runtime, busybox), 1));
        match &net_pair {
            Err(e) => {
                let na = format!("n/a ({})", first_line(&format!("{e:#}")));
                tcp_rate.push(na.clone());
                tcp_rr.push(na);
            }
            Ok(pair) => match pair.measure(runtime, &net_bench) {
                None => {
                    tcp_rate.push("= native (host kernel)".to_owned());
                    tcp_rr.push("= native (host kernel)".to_owned());
                }
                Some((rate, rr)) => {
                    tcp_rate.push(cell(rate, 0));
                    tcp_rr.push(cell(rr, 1));
                }
            },
        }
    }
    drop(net_pair);
    let checkpoint = checkpoint_rows(&runtimes, busybox);
    eprintln!("measuring `ctr run --rm` through containerd...");
    let (ctr_runc, ctr_runsc_rs) = ctr_run_ms();
    let shim_column = format!("runsc-rs ({SHIM_PLATFORM})");
    let ctr_row: Vec<String> = runtimes
        .iter()
        .map(|(column, runtime)| match runtime {
            Ok(Runtime::Runc(_)) => median_min_cell(&ctr_runc),
            Ok(Runtime::RunscRs { .. }) if *column == shim_column => median_min_cell(&ctr_runsc_rs),
            _ => "—".to_owned(),
        })
        .collect();

    let version = bin
        .as_deref()
        .map_or_else(|_| "runsc-rs (not built)".into(), runsc_rs_version);
    let invocation: String = std::env::args()
        .skip(1)
        .fold(String::from(" --"), |line, arg| line + " " + &arg);
    let invocation = if invocation == " --" { "" } else { &invocation };
    println!(
        "Measured {} on {machine}; {version}; `cargo run --release -p runsc-rs-tests --bin runsc-rs-bench{invocation}`.\n",
        today(),
    );
    println!("| | {} |", columns.join(" | "));
    println!("|---|{}", "---:|".repeat(columns.len()));
    for (row, (_, label, ..)) in ops.iter().zip(OPS) {
        println!("| {label} | {} |", row.join(" | "));
    }
    println!(
        "| start `busybox true` (ms, median of {START_RUNS}) | {} |",
        start.join(" | ")
    );
    println!(
        "| `python3 -S -c pass` (ms, median of {PY_RUNS}) | {} |",
        py_pass.join(" | ")
    );
    println!(
        "| Python loop of {PY_LOOP_CALLS} `os.getppid()` (ms, median of {PY_RUNS}) | {} |",
        py_loop.join(" | ")
    );
    println!(
        "| idle `busybox sleep` (MiB PSS, process tree) | {} |",
        idle.join(" | ")
    );
    println!(
        "| TCP throughput to a peer namespace over a veth ({NET_SEND_MIB} MiB, MiB/s) | {} |",
        tcp_rate.join(" | ")
    );
    println!(
        "| TCP connect + 64-byte request/answer + close over a veth (µs per iteration) | {} |",
        tcp_rr.join(" | ")
    );
    for (label, cells) in &checkpoint {
        println!("| {label} | {} |", cells.join(" | "));
    }
    println!(
        "| `ctr run --rm ... /bin/true` through containerd (ms, median of {CTR_RUNS}; the shim runs {SHIM_PLATFORM}) | {} |",
        ctr_row.join(" | ")
    );
    let _ = std::fs::remove_dir_all(&gvisor_state);
    if !columns.contains(&shim_column.as_str()) {
        println!(
            "\n`ctr run --rm` with runsc-rs (its shim runs {SHIM_PLATFORM}, not measured above): {}",
            median_min_cell(&ctr_runsc_rs)
        );
    }
    Ok(())
}
