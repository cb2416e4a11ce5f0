//! The host side of a container's terminal under the OCI CLI.
//!
//! With `terminal: true` the engine gets a pty master through `--console-socket` and writes
//! the user's keys into it itself; unlike the containerd shim, nothing of ours sees the typed
//! bytes. So the host pty is made the controlling terminal of a process of ours that leads a
//! session of its own (the monitor for init, the exec waiter for an exec): the host line
//! discipline then raises `^C`/`^\`/`^Z` as SIGINT/SIGQUIT/SIGTSTP on that process, the
//! engine's resize (`TIOCSWINSZ` on the master) as SIGWINCH, and a closed master as SIGHUP.
//! That process blocks those signals from its first instruction, takes them with `sigwait`
//! on a thread, and asks the sandbox to signal the foreground process group of the
//! application's terminal, which only the sentry knows. The sandbox process itself leads
//! another session, so the host never signals it for the terminal.

use std::os::fd::BorrowedFd;

use anyhow::Context as _;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// The signals a controlling terminal raises on its foreground group that the application
/// must get instead of us.
const TERMINAL_SIGNALS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGWINCH,
    Signal::SIGHUP,
];

fn terminal_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in TERMINAL_SIGNALS {
        set.add(s);
    }
    set
}

/// Blocks the terminal's signals in the calling thread and so in every thread it starts
/// later. Call before the process starts any thread. (Children start with an empty mask:
/// `std::process::Command` clears it.)
pub fn block_terminal_signals() {
    let _ =
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&terminal_signals()), None);
}

/// Makes `slave` the controlling terminal of this process, which must lead a session
/// without one, and forwards the signals it raises to `forward` from a thread, for as long
/// as the process lives. [`block_terminal_signals`] must have run first.
///
/// # Errors
/// `TIOCSCTTY` was refused.
pub fn take_terminal(
    slave: BorrowedFd<'_>,
    forward: impl Fn(i32) + Send + 'static,
) -> anyhow::Result<()> {
    rustix::process::ioctl_tiocsctty(slave).context("making the pty our controlling terminal")?;
    let set = terminal_signals();
    std::thread::Builder::new()
        .name("terminal-signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => forward(sig as i32),
                Err(e) => {
                    log::warn!("waiting for terminal signals: {e}");
                    return;
                }
            }
        })
        .context("starting the terminal signal thread")?;
    Ok(())
}
