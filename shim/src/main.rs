//! `containerd-shim-runsc-rs-v2`: the containerd shim v2 of runsc-rs.
//!
//! containerd runs it with the shim v2 actions (`start`, `delete`, or none for the ttrpc
//! server); the server re-executes the same binary as `containerd-shim-runsc-rs-v2 sandbox`
//! for the sandbox process (the Loader and the sentry), see [`sandbox`].
//!
//! Bootstrap: our own ([`bootstrap`]), driving [`shim::RunscShim`] through the
//! `containerd_shim::Shim` trait: `start` prints a bare socket address (what containerd 1.6
//! reads) and the server answers the Task service as both `containerd.task.v2.Task` and
//! `containerd.task.v3.Task`.

mod bootstrap;
mod cgroup;
mod error;
mod image;
mod io;
mod sandbox;
mod service;
mod shim;

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use sentry::boot::control::{self, Channel};
use sentry::boot::loader::{Isolation, Loader, LoaderConfig};
use sentry::boot::profile::ProfileFile;
use sentry::boot::sandbox::Network;
use sentry::boot::seccomp;

/// The runtime name containerd knows this shim by.
const RUNTIME_ID: &str = "io.containerd.runsc-rs.v2";

/// Logs to stderr (the bundle's `log` FIFO) at `level`.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "runsc-rs sandbox[{}] {} {}: {}",
                std::process::id(),
                r.level(),
                r.target(),
                r.args()
            );
        }
    }

    fn flush(&self) {}
}

/// The sandbox process: serve the Loader on the control channel (stdin) until told to stop.
fn sandbox_main(args: &[String]) -> i32 {
    let debug = args.iter().any(|a| a == "--debug");
    let level = if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(level);
    }
    // Before anything forks: the hostfs inotify instance the shim made for us.
    sentry::boot::sandbox::adopt_watch(sentry::boot::sandbox::watch_fd_arg(args));
    // cgroup v2 placement, before anything is forked: stdout is our cgroup's `cgroup.procs`.
    if args.iter().any(|a| a == "--join-cgroup") {
        if let Err(e) = sentry::boot::cgroup::join_through_stdout() {
            log::error!("joining the sandbox cgroup: {e}");
            return 1;
        }
    }
    // The sandbox ends with the shim through the control channel: when the shim is gone its
    // end of the socket closes and `serve` returns. (PR_SET_PDEATHSIG would be wrong here: it
    // fires when the *thread* that spawned us exits, and the shim spawns from a short-lived
    // thread.)
    let fd = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("taking the control channel: {e}");
            return 1;
        }
    };
    // Isolated and filtered before the first container exists: namespaces, an empty root,
    // dropped capabilities, then the seccomp allowlist (logging instead of killing with
    // --debug, as `runsc-rs do --debug`).
    // `--network sandbox`: the shim started us in the pod's network namespace, whose links
    // the sentry's own stack takes. Otherwise a new empty one with loopback only: the host's
    // namespace would only be attack surface.
    let network = match args.iter().position(|a| a == "--network") {
        None => Network::None,
        Some(i) => match args.get(i + 1).and_then(|n| Network::from_name(n)) {
            Some(n) => n,
            None => {
                log::error!("--network: expected none, sandbox or host");
                return 1;
            }
        },
    };
    // Before the Loader isolates this process: the annotation's host path (the shim's cwd
    // is the bundle, but the path must be absolute).
    let profile = ProfileFile::from_sandbox_args(args);
    let config = LoaderConfig {
        platform: sentry::boot::loader::default_platform(),
        strace: false,
        isolation: Isolation::Sandbox { network },
        seccomp: Some(if debug {
            seccomp::Mode::Log
        } else {
            seccomp::Mode::Enforce
        }),
        control_channel: true,
        test_seccomp_violation: false,
        record_syscalls: matches!(profile, Ok(Some(_))),
        host_uds: sentry::net::HostUds::DEFAULT,
    };
    let channel = Channel::from_fd(fd);
    let booted = match profile {
        Ok(profile) => Loader::new(&config)
            .map(|loader| (loader, profile))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let served = match booted {
        Ok((loader, profile)) => {
            let served = control::serve(channel, Arc::clone(&loader));
            if let Some(profile) = profile {
                profile.finish(&loader);
            }
            served
        }
        Err(e) => {
            log::error!("booting the sandbox: {e}");
            control::serve_boot_failure(channel, &e)
        }
    };
    match served {
        Ok(()) => 0,
        Err(e) => {
            log::error!("control channel: {e}");
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("sandbox") {
        // Exit without unwinding: application task threads may still be parked in the
        // sentry, and the process's end is what stops them.
        std::process::exit(sandbox_main(&args[2..]));
    }
    bootstrap::run::<shim::RunscShim>(RUNTIME_ID);
}
