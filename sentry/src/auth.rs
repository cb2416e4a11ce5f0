//! Credentials: who a task is for permission checks (gVisor's kernel/auth).
//!
//! Layer: below `vfs`, `net`, `tty` and `kernel`; imports nothing of the sentry. Tasks own
//! their [`Creds`]; file, socket and terminal code receives them through the caller's
//! context.

/// User and group identity of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
}
