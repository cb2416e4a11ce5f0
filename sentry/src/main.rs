//! `runsc-rs`: run a command in a sandbox (`do`), list the system-call table (`syscalls`).

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs CMD in a sandbox: every system call is handled by the sentry.
    Do {
        /// How application code is run: ptrace.
        #[arg(long, default_value = "ptrace")]
        platform: String,
        /// Print one line per system call to stderr.
        #[arg(long)]
        strace: bool,
        /// Use DIR (read-only, under an in-memory writable layer) as the root instead of `/`.
        #[arg(long, value_name = "DIR")]
        rootfs: Option<std::path::PathBuf>,
        /// Make host directory HOST visible at GUEST (`:ro` for read-only); repeatable.
        #[arg(long = "volume", value_name = "HOST:GUEST[:ro]")]
        volumes: Vec<sentry::boot::Volume>,
        /// Write the sentry's log (debug level) to FILE.
        #[arg(long, value_name = "FILE")]
        debug_log: Option<std::path::PathBuf>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Lists every x86-64 system call with its support level.
    Syscalls,
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

fn init_logging(debug_log: Option<&std::path::Path>) -> anyhow::Result<()> {
    let file = match debug_log {
        Some(p) => Some(Mutex::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
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

fn print_syscalls() {
    let inv = sentry::syscalls::inventory();
    let mut out = std::io::stdout().lock();
    for (nr, name, support) in &inv {
        let (level, note) = match support {
            Support::Full => ("full", ""),
            Support::Partial(n) => ("partial", *n),
            Support::Unsupported(n) => ("unsupported", *n),
        };
        let _ = writeln!(out, "{nr:>4} {name:<24} {level:<12} {note}");
    }
    let count = |f: fn(&Support) -> bool| inv.iter().filter(|(_, _, s)| f(s)).count();
    let _ = writeln!(
        out,
        "# {} full, {} partial, {} unsupported of {}",
        count(|s| matches!(s, Support::Full)),
        count(|s| matches!(s, Support::Partial(_))),
        count(|s| matches!(s, Support::Unsupported(_))),
        inv.len()
    );
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Syscalls => {
            print_syscalls();
            0
        }
        Command::Do {
            platform,
            strace,
            rootfs,
            volumes,
            debug_log,
            cmd,
        } => {
            if let Err(e) = init_logging(debug_log.as_deref()) {
                eprintln!("runsc-rs: {e:#}");
                std::process::exit(125);
            }
            let cfg = sentry::boot::RunConfig {
                platform,
                strace,
                argv: cmd,
                env: std::env::vars().map(|(k, v)| format!("{k}={v}")).collect(),
                rootfs,
                volumes,
            };
            match sentry::boot::run_command(&cfg) {
                Ok(status) => status.shell_code(),
                Err(e @ sentry::boot::Error::NotFound(_)) => {
                    eprintln!("runsc-rs: {e}");
                    127
                }
                Err(e) => {
                    eprintln!("runsc-rs: {e}");
                    126
                }
            }
        }
    };
    std::process::exit(code);
}
