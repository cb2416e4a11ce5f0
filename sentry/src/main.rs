//! `runsc-rs`: run a command in a sandbox (`do`), list the system-call table (`syscalls`),
//! and be an OCI runtime with runc's command line ([`oci`]).

mod oci;

use std::io::Write;
use std::sync::Mutex;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sentry::syscalls::Support;

#[derive(Parser)]
#[command(
    name = "runsc-rs",
    version,
    about = "A gVisor-class sandboxed container runtime"
)]
struct Cli {
    /// OCI commands: the state directory.
    #[arg(long, default_value = "/run/runsc-rs")]
    root: std::path::PathBuf,
    /// OCI commands: also log errors to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    /// OCI commands: `text` or `json` (one object per line).
    #[arg(long, default_value = "text")]
    log_format: String,
    /// OCI commands: `linux.cgroupsPath` is systemd's `slice:prefix:name` (the cgroup is made
    /// where systemd would put it; systemd itself is not asked).
    #[arg(long)]
    systemd_cgroup: bool,
    /// OCI commands: the network of a container whose spec names a network namespace:
    /// `sandbox` (the sentry's own stack takes its links), `host` (host sockets), `none`
    /// (loopback only, as for a spec that names none).
    #[arg(long, value_enum, default_value = "sandbox")]
    network: NetworkArg,
    /// OCI commands: host Unix sockets in the container's bind mounts, as `do --host-uds`:
    /// `open` (the default), `create`, `all` or `none`.
    #[arg(long, value_name = "open|create|all|none", default_value = "open")]
    host_uds: sentry::net::HostUds,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs CMD in a sandbox: every system call is handled by the sentry.
    Do {
        /// How application code is run: ptrace or systrap (default: $RUNSC_RS_PLATFORM, else
        /// systrap).
        #[arg(long, default_value_t = sentry::boot::loader::default_platform())]
        platform: String,
        /// Print one line per system call to stderr.
        #[arg(long)]
        strace: bool,
        /// Use DIR (read-only, under an in-memory writable layer) as the root instead of `/`.
        #[arg(long, value_name = "DIR")]
        rootfs: Option<std::path::PathBuf>,
        /// Make host directory, regular file or Unix socket HOST visible at GUEST (`:ro` for
        /// read-only; HOST must not itself be a symbolic link); repeatable.
        #[arg(long = "volume", value_name = "HOST:GUEST[:ro]")]
        volumes: Vec<String>,
        /// Write the sentry's log (debug level) to FILE.
        #[arg(long, value_name = "FILE")]
        debug_log: Option<std::path::PathBuf>,
        /// Network of the sandbox: `none` (a new network namespace: loopback only), `sandbox`
        /// (the sentry's own stack takes the links of the current network namespace, whose
        /// addresses the host kernel loses while the sandbox runs; refused in the host's own
        /// namespace) or `host` (host sockets).
        #[arg(long, value_enum, default_value = "none")]
        network: NetworkArg,
        /// Host Unix sockets in volumes (gVisor's `--host-uds`): `open` (connect to them,
        /// the default), `create` (a bind of a stream or seqpacket socket in a writable volume
        /// makes a host socket there, which host programs can connect to; it widens the
        /// sentry's host system calls by bind, listen and accept4), `all` (both) or `none`.
        #[arg(long, value_name = "open|create|all|none", default_value = "open")]
        host_uds: sentry::net::HostUds,
        /// Keep the seccomp filter but let violations through; the kernel logs them and
        /// runsc-rs names them when the sandbox ends.
        #[arg(long)]
        debug: bool,
        /// Record the system calls the command (and every program it runs) makes and, when
        /// the sandbox ends, write FILE: a Docker/OCI seccomp profile allowing exactly those
        /// (plus what runc itself calls after installing it: `execve`, identity changes), for
        /// `docker run --security-opt seccomp=FILE`. Calls the sandbox refused are included, so that under
        /// runc the program gets the host kernel's answer. FILE is created or truncated
        /// (mode 0644 less the umask); a symbolic link or non-regular file there is refused.
        #[arg(long, value_name = "FILE")]
        seccomp_profile_out: Option<std::path::PathBuf>,
        /// Run the sentry without its seccomp allowlist. Unsafe: a compromised sentry could
        /// then make any host system call.
        #[arg(long)]
        unsafe_disable_seccomp: bool,
        /// Internal: this process is the sandbox (PID 1 of its namespace), not the monitor.
        #[arg(long, hide = true)]
        in_sandbox: bool,
        /// Internal: the hostfs inotify instance the monitor made, inherited as this fd.
        #[arg(long, hide = true)]
        hostfs_watch_fd: Option<i32>,
        /// Test hook: make the sentry perform a host system call outside its allowlist.
        #[arg(long, hide = true)]
        test_only_seccomp_violation: bool,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    #[command(flatten)]
    Oci(oci::OciCommand),
    /// Lists every x86-64 system call with its support level.
    Syscalls {
        /// Instead, list the host system calls the seccomp filter of `runsc-rs do` allows.
        #[arg(long)]
        host: bool,
        /// With --host: the platform whose host system calls are included (default as for
        /// `do`).
        #[arg(long, default_value_t = sentry::boot::loader::default_platform(), requires = "host")]
        platform: String,
        /// With --host: the `--network` of `do` whose list is shown (host mode adds the
        /// host socket calls; sandbox mode's packet sockets need only calls every mode has).
        #[arg(long, value_enum, default_value = "none", requires = "host")]
        network: NetworkArg,
        /// With --host: the `--host-uds` of `do` whose list is shown (`create` and `all` add
        /// bind, listen and accept4).
        #[arg(
            long,
            value_name = "open|create|all|none",
            default_value = "open",
            requires = "host"
        )]
        host_uds: sentry::net::HostUds,
        /// Print the table as markdown (the README's status section is generated this way).
        #[arg(long, conflicts_with = "host")]
        markdown: bool,
    },
}

/// The platform of `do` when `--platform` is not given: `RUNSC_RS_PLATFORM` (lets test
/// suites run every sandbox on another platform), else systrap.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NetworkArg {
    None,
    Sandbox,
    Host,
}

impl From<NetworkArg> for sentry::boot::sandbox::Network {
    fn from(n: NetworkArg) -> Self {
        match n {
            NetworkArg::None => sentry::boot::sandbox::Network::None,
            NetworkArg::Sandbox => sentry::boot::sandbox::Network::Sandbox,
            NetworkArg::Host => sentry::boot::sandbox::Network::Host,
        }
    }
}

/// Logs to a file at debug level, and errors to stderr.
struct Logger {
    file: Option<Mutex<std::fs::File>>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Error || (self.file.is_some() && m.level() <= log::Level::Debug)
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!(
            "{} {} {}: {}\n",
            now_secs(),
            r.level(),
            r.target(),
            r.args()
        );
        if let Some(f) = &self.file {
            let _ = f.lock().unwrap().write_all(line.as_bytes());
        }
        if r.level() <= log::Level::Error {
            eprint!("runsc-rs: {}", line);
        }
    }

    fn flush(&self) {}
}

fn now_secs() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// Starts logging. The monitor creates the debug log; the sandbox process appends to it.
fn init_logging(debug_log: Option<&std::path::Path>, append: bool) -> anyhow::Result<()> {
    let file = match debug_log {
        Some(p) => {
            if !append {
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            }
            Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening {}", p.display()))?,
            ))
        }
        None => None,
    };
    let level = if file.is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Error
    };
    log::set_boxed_logger(Box::new(Logger { file })).map(|()| log::set_max_level(level))?;
    Ok(())
}

fn print_syscalls(markdown: bool) {
    let inv = sentry::syscalls::inventory();
    let mut out = std::io::stdout().lock();
    let count = |f: fn(&Support) -> bool| inv.iter().filter(|(_, _, s)| f(s)).count();
    let summary = format!(
        "{} full, {} partial, {} unsupported of {}",
        count(|s| matches!(s, Support::Full)),
        count(|s| matches!(s, Support::Partial(_))),
        count(|s| matches!(s, Support::Unsupported(_))),
        inv.len()
    );
    if markdown {
        let _ = writeln!(
            out,
            "x86-64 system calls: {summary} (`runsc-rs syscalls`).\n"
        );
        let _ = writeln!(out, "| nr | name | support | note |\n|---:|---|---|---|");
    }
    for (nr, name, support) in &inv {
        let (level, note) = match support {
            Support::Full => ("full", ""),
            Support::Partial(n) => ("partial", *n),
            Support::Unsupported(n) => ("unsupported", *n),
        };
        if !markdown {
            let _ = writeln!(out, "{nr:>4} {name:<24} {level:<12} {note}");
        } else if !matches!(support, Support::Unsupported("not implemented")) {
            // Unimplemented numbers are left out of the markdown table: they are the rest.
            let _ = writeln!(out, "| {nr} | `{name}` | {level} | {note} |");
        }
    }
    if !markdown {
        let _ = writeln!(out, "# {summary}");
    }
}

/// `runsc-rs syscalls --host`: the seccomp allowlist `runsc-rs do` installs on `platform`
/// (the shim's sandbox adds its control channel's calls).
fn print_host_syscalls(
    platform: &str,
    network: NetworkArg,
    host_uds: sentry::net::HostUds,
) -> anyhow::Result<()> {
    let memory = sentry::memory::MemoryFile::new().context("creating the memory file")?;
    let platform = platform::create(platform, memory.fd()).context("creating the platform")?;
    let list = sentry::boot::seccomp::Allowlist::new(&*platform)?;
    let list = match network {
        NetworkArg::Host => list.with_host_network(),
        NetworkArg::Sandbox => list.with_port_forwarding(),
        NetworkArg::None => list,
    };
    let list = if host_uds.create {
        list.with_host_uds_create()
    } else {
        list
    };
    let mut out = std::io::stdout().lock();
    for a in list.entries() {
        let args = if a.args.is_empty() {
            "any arguments"
        } else {
            a.args
        };
        writeln!(out, "{:>4} {:<18} {args}", a.sysno.id(), a.sysno.name())?;
        for why in &a.why {
            writeln!(out, "     {:<18} - {why}", "")?;
        }
    }
    writeln!(
        out,
        "# {} host system calls allowed (platform {}, host-uds {}, network {})",
        list.len(),
        platform.name(),
        host_uds.name(),
        sentry::boot::sandbox::Network::from(network).name()
    )?;
    Ok(())
}

/// The options of `do`, as the monitor passes them to the sandbox process.
#[derive(Clone)]
struct DoArgs {
    platform: String,
    strace: bool,
    rootfs: Option<std::path::PathBuf>,
    /// `HOST:GUEST[:ro]` as given (parsed by the sandbox process).
    volumes: Vec<String>,
    debug_log: Option<std::path::PathBuf>,
    network: NetworkArg,
    host_uds: sentry::net::HostUds,
    debug: bool,
    unsafe_disable_seccomp: bool,
    test_only_seccomp_violation: bool,
    seccomp_profile_out: Option<std::path::PathBuf>,
    /// The inherited hostfs inotify instance (`--hostfs-watch-fd`; the sandbox's side).
    hostfs_watch_fd: Option<i32>,
    cmd: Vec<String>,
}

impl DoArgs {
    fn sandbox_argv(&self) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec!["do".into(), "--in-sandbox".into()];
        v.push("--platform".into());
        v.push(self.platform.clone().into());
        if self.strace {
            v.push("--strace".into());
        }
        if let Some(r) = &self.rootfs {
            v.push("--rootfs".into());
            v.push(r.clone().into());
        }
        for vol in &self.volumes {
            v.push("--volume".into());
            v.push(vol.into());
        }
        if let Some(p) = &self.debug_log {
            v.push("--debug-log".into());
            v.push(p.clone().into());
        }
        if let Some(p) = &self.seccomp_profile_out {
            v.push("--seccomp-profile-out".into());
            v.push(p.clone().into());
        }
        if let Some(fd) = self.hostfs_watch_fd {
            v.push(sentry::boot::sandbox::WATCH_FD_ARG.into());
            v.push(fd.to_string().into());
        }
        v.push("--network".into());
        v.push(
            sentry::boot::sandbox::Network::from(self.network)
                .name()
                .into(),
        );
        v.push("--host-uds".into());
        v.push(self.host_uds.name().into());
        for (on, flag) in [
            (self.debug, "--debug"),
            (self.unsafe_disable_seccomp, "--unsafe-disable-seccomp"),
            (
                self.test_only_seccomp_violation,
                "--test-only-seccomp-violation",
            ),
        ] {
            if on {
                v.push(flag.into());
            }
        }
        v.push("--".into());
        v.extend(self.cmd.iter().map(Into::into));
        v
    }
}

/// This process's umask (reading it means setting it: put back at once, while the process is
/// still single-threaded).
fn caller_umask() -> u32 {
    let mask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(mask);
    mask.as_raw_mode()
}

/// This process's resource limits, every one: `do` gives them to the command, so that
/// `ulimit -n` inside says what it says outside.
fn caller_rlimits() -> Vec<sentry::boot::loader::SpecRlimit> {
    use rustix::process::Resource as R;
    [
        R::Cpu,
        R::Fsize,
        R::Data,
        R::Stack,
        R::Core,
        R::Rss,
        R::Nproc,
        R::Nofile,
        R::Memlock,
        R::As,
        R::Locks,
        R::Sigpending,
        R::Msgqueue,
        R::Nice,
        R::Rtprio,
        R::Rttime,
    ]
    .into_iter()
    .map(|resource| {
        let r = rustix::process::getrlimit(resource);
        // rustix spells RLIM_INFINITY as None; the sentry, like the kernel, as u64::MAX.
        sentry::boot::loader::SpecRlimit {
            resource: resource as u32,
            soft: r.current.unwrap_or(u64::MAX),
            hard: r.maximum.unwrap_or(u64::MAX),
        }
    })
    .collect()
}

/// The sandbox process: boots the sentry and runs the command. Returns the exit code.
fn run_sandbox(args: DoArgs) -> i32 {
    // Before anything forks.
    sentry::boot::sandbox::adopt_watch(args.hostfs_watch_fd);
    // A sentry panic is a bug: report it plainly. The default hook's backtrace needs host
    // calls (getcwd, opening the binary) that the seccomp filter rightly refuses, which would
    // turn the report into a SIGSYS.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        eprintln!(
            "runsc-rs: sentry thread '{}' panicked at {info}",
            thread.name().unwrap_or("?")
        );
    }));
    let volumes: Result<Vec<sentry::boot::Volume>, _> =
        args.volumes.iter().map(|v| v.parse()).collect();
    let volumes = match volumes {
        Ok(v) => v,
        Err(e) => {
            eprintln!("runsc-rs: {e}");
            return 125;
        }
    };
    // `do` on the host root starts where the caller is, like any command; with --rootfs it
    // starts at the root, as a container does.
    let cwd = match args.rootfs {
        None => std::env::current_dir().unwrap_or_else(|_| "/".into()),
        Some(_) => "/".into(),
    };
    // The command runs as it would on the host: under the host's name (as gVisor's
    // `runsc do`) and with the caller's umask.
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "runsc-rs".into());
    let umask = caller_umask();
    let cfg = sentry::boot::RunConfig {
        platform: args.platform,
        strace: args.strace,
        argv: args.cmd,
        env: std::env::vars().map(|(k, v)| format!("{k}={v}")).collect(),
        volumes,
        cwd,
        sandbox: sentry::boot::sandbox::SandboxConfig {
            rootfs: args.rootfs.unwrap_or_else(|| std::path::PathBuf::from("/")),
            network: args.network.into(),
        },
        seccomp: match (args.unsafe_disable_seccomp, args.debug) {
            (true, _) => None,
            (false, true) => Some(sentry::boot::seccomp::Mode::Log),
            (false, false) => Some(sentry::boot::seccomp::Mode::Enforce),
        },
        test_seccomp_violation: args.test_only_seccomp_violation,
        hostname,
        umask,
        rlimits: caller_rlimits(),
        seccomp_profile_out: args.seccomp_profile_out,
        host_uds: args.host_uds,
    };
    match sentry::boot::run_command(&cfg) {
        Ok(status) => status.shell_code(),
        Err(sentry::boot::loader::Error::NotFound(cmd)) => {
            eprintln!("runsc-rs: {cmd}: command not found");
            127
        }
        Err(e) => {
            eprintln!("runsc-rs: {e}");
            126
        }
    }
}

/// The monitor: starts the sandbox process in its namespaces, waits, reports how it ended.
fn run_monitor(args: &DoArgs) -> i32 {
    use sentry::boot::sandbox::{self, SandboxExit};
    let exe = std::path::Path::new("/proc/self/exe");
    let mut kernel_log = sandbox::KernelLog::open();
    let watch = sandbox::WatchHolder::new();
    let argv = DoArgs {
        hostfs_watch_fd: watch.as_ref().map(sandbox::WatchHolder::fd),
        ..args.clone()
    }
    .sandbox_argv();
    let (exit, pid) = match sandbox::spawn(exe, &argv) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runsc-rs: {e}");
            return 125;
        }
    };
    if let Some(w) = watch {
        w.release();
    }
    let mut logged = || -> Vec<String> {
        kernel_log
            .seccomp_syscalls(pid)
            .into_iter()
            .map(|nr| {
                let name = syscalls::Sysno::new(nr as usize).map_or("?", |s| s.name());
                format!("{name} ({nr})")
            })
            .collect()
    };
    match exit {
        SandboxExit::Killed(sig) if sig == libc::SIGSYS => {
            let calls = logged();
            let detail = if calls.is_empty() {
                String::from("the sentry made a host system call outside its allowlist")
            } else {
                format!(
                    "host system call outside the allowlist: {}",
                    calls.join(", ")
                )
            };
            log::error!("sandbox killed by seccomp (SIGSYS): {detail}");
        }
        SandboxExit::Killed(sig) => {
            log::error!("sandbox killed by signal {sig}");
        }
        SandboxExit::Exited(_) | SandboxExit::Interrupted(_) => {
            if args.debug {
                let calls = logged();
                if !calls.is_empty() {
                    eprintln!(
                        "runsc-rs: seccomp (debug): host system calls outside the allowlist: {}",
                        calls.join(", ")
                    );
                }
            }
        }
    }
    exit.shell_code()
}

fn main() {
    // The OCI CLI's own processes (monitor, sandbox, exec waiter) take no options.
    if let Some(arg) = std::env::args().nth(1) {
        if let Some(code) = oci::hidden_main(&arg, || init_logging(None, true)) {
            std::process::exit(code);
        }
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Oci(cmd) => {
            let _ = init_logging(None, true);
            let globals = oci::Globals {
                root: cli.root,
                log: cli.log,
                log_json: cli.log_format == "json",
                systemd_cgroup: cli.systemd_cgroup,
                network: cli.network.into(),
                host_uds: cli.host_uds,
            };
            oci::run(&globals, cmd)
        }
        Command::Syscalls {
            host: false,
            markdown,
            ..
        } => {
            print_syscalls(markdown);
            0
        }
        Command::Syscalls {
            host: true,
            platform,
            network,
            host_uds,
            ..
        } => match print_host_syscalls(&platform, network, host_uds) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("runsc-rs: {e:#}");
                1
            }
        },
        Command::Do {
            platform,
            strace,
            rootfs,
            volumes,
            debug_log,
            network,
            host_uds,
            debug,
            unsafe_disable_seccomp,
            in_sandbox,
            hostfs_watch_fd,
            test_only_seccomp_violation,
            seccomp_profile_out,
            cmd,
        } => {
            if let Err(e) = init_logging(debug_log.as_deref(), in_sandbox) {
                eprintln!("runsc-rs: {e:#}");
                std::process::exit(125);
            }
            let args = DoArgs {
                platform,
                strace,
                rootfs,
                volumes,
                debug_log,
                network,
                host_uds,
                debug,
                unsafe_disable_seccomp,
                test_only_seccomp_violation,
                // The sandbox process starts in our working directory, but say it plainly.
                seccomp_profile_out: seccomp_profile_out.map(|p| match std::env::current_dir() {
                    Ok(cwd) if p.is_relative() => cwd.join(p),
                    _ => p,
                }),
                hostfs_watch_fd,
                cmd,
            };
            if in_sandbox {
                run_sandbox(args)
            } else {
                run_monitor(&args)
            }
        }
    };
    std::process::exit(code);
}
