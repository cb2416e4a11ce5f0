//! Safe wrappers for the host calls nix does not cover the way the platform needs them.

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::Error;

/// `NT_X86_XSTATE`: the regset holding the XSAVE area.
const NT_X86_XSTATE: libc::c_int = 0x202;

/// Maps a nix error of `call` to the platform error.
pub(crate) fn host(call: &'static str) -> impl FnOnce(Errno) -> Error {
    move |source| Error::Host { call, source }
}

/// How a waited-for process changed state, decoded from the raw `wait4` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitStatus {
    /// In a ptrace stop. `signal` is the stop signal (`SIGTRAP | 0x80` for syscall stops);
    /// `event` is the `PTRACE_EVENT_*` of an event stop, 0 otherwise.
    Stopped {
        signal: i32,
        event: i32,
    },
    Exited(i32),
    Killed(i32),
}

impl WaitStatus {
    fn decode(status: i32) -> WaitStatus {
        if libc::WIFSTOPPED(status) {
            WaitStatus::Stopped {
                signal: libc::WSTOPSIG(status),
                event: status >> 16,
            }
        } else if libc::WIFSIGNALED(status) {
            WaitStatus::Killed(libc::WTERMSIG(status))
        } else {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// The status as the text of [`Error::StubDied`].
    pub(super) fn describe(self) -> String {
        match self {
            WaitStatus::Stopped { signal, event } => {
                format!("stopped by signal {signal} (event {event})")
            }
            WaitStatus::Exited(code) => format!("exited with status {code}"),
            WaitStatus::Killed(signal) => format!("killed by signal {signal}"),
        }
    }
}

/// `waitpid(pid, __WALL)`, retried on EINTR. Never waits for "any child": other parts of the
/// sentry own their children.
pub(super) fn wait(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer for the duration of the call.
        let rc = unsafe { libc::waitpid(pid.as_raw(), &mut status, libc::__WALL) };
        match Errno::result(rc) {
            Ok(_) => return Ok(WaitStatus::decode(status)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Kills `pid` and reaps it. Quiet if it is already gone or another thread reaped it.
pub(crate) fn kill_and_reap(pid: Pid) {
    kill_and_reap_all(&[pid]);
}

/// Kills every process of `pids`, then reaps them: signalled together, they die in parallel
/// rather than one after the other. Quiet for those already gone or reaped elsewhere.
pub(crate) fn kill_and_reap_all(pids: &[Pid]) {
    kill_all(pids);
    reap_all(pids);
}

/// Sends `SIGKILL` to every process of `pids`. Quiet for those already gone.
pub(crate) fn kill_all(pids: &[Pid]) {
    for &pid in pids {
        if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
            log::debug!("ptrace: kill({pid}) failed: {e}");
        }
    }
}

/// Waits for every process of `pids`, killed before, to die and reaps it. Quiet for those
/// already reaped elsewhere.
pub(crate) fn reap_all(pids: &[Pid]) {
    for &pid in pids {
        // A stop reported before the kill may come first; the exit follows.
        while let Ok(WaitStatus::Stopped { .. }) = wait(pid) {}
    }
}

/// Reads the stopped tracee's XSAVE area into `area` (PTRACE_GETREGSET, NT_X86_XSTATE).
pub(super) fn get_xstate(pid: Pid, area: &mut [u8]) -> nix::Result<()> {
    let mut iov = libc::iovec {
        iov_base: area.as_mut_ptr().cast(),
        iov_len: area.len(),
    };
    // SAFETY: `iov` describes `area`, writable for its whole length; the kernel writes at most
    // `iov_len` bytes and only during the call.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            pid.as_raw(),
            NT_X86_XSTATE,
            &mut iov,
        )
    };
    Errno::result(rc).map(drop)
}

/// Loads `area` as the stopped tracee's XSAVE area (PTRACE_SETREGSET, NT_X86_XSTATE).
pub(super) fn set_xstate(pid: Pid, area: &[u8]) -> nix::Result<()> {
    let mut iov = libc::iovec {
        iov_base: area.as_ptr().cast_mut().cast(),
        iov_len: area.len(),
    };
    // SAFETY: `iov` describes `area`, readable for its whole length; for SETREGSET the kernel
    // only reads through it, during the call.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            pid.as_raw(),
            NT_X86_XSTATE,
            &mut iov,
        )
    };
    Errno::result(rc).map(drop)
}

/// The system-call ABI (`AUDIT_ARCH_*`) of the system-call stop `pid` is in
/// (`PTRACE_GET_SYSCALL_INFO`, Linux 5.3).
pub(super) fn syscall_arch(pid: Pid) -> nix::Result<u32> {
    // `op` (u8), padding, then `arch` (u32): the kernel copies at most the size we pass.
    let mut head = [0u8; 8];
    // SAFETY: `head` is a valid out buffer of the length passed.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            pid.as_raw(),
            head.len(),
            head.as_mut_ptr(),
        )
    };
    Errno::result(rc)?;
    Ok(u32::from_ne_bytes([head[4], head[5], head[6], head[7]]))
}
