//! Signal-driven I/O (`O_ASYNC`, `F_SETOWN`, `F_SETSIG`; Linux's `f_setown` and
//! `send_sigio`, gVisor's kernel/fasync): a description with `O_ASYNC` on signals its owner
//! whenever the file's wait queue announces readiness.
//!
//! The vfs keeps each description's owner and signal ([`IoSignal`]) as global IDs; turning
//! `O_ASYNC` on puts a [`Sigio`] hook on the file's wait queue
//! ([`crate::waiter::WakeHook`]), which resolves the owner in the process table each time it
//! fires. One hook serves every file that announces readiness on a queue (sockets of every
//! family, pipes and FIFOs, ptys, tun devices, inotify), so no file type sends the signal
//! itself.
//!
//! # Lock order
//! A hook runs with no queue lock held and takes the description's settings alone, then
//! `Kernel::tree` (and under it what signal delivery takes). A queue with a hook is
//! therefore never notified under `Kernel::tree`: the files with signal-driven I/O are not
//! notified by exit or signal delivery (signalfd and pidfd, which are, have none).

use std::sync::{Arc, Mutex, Weak};

use super::signal::SigInfo;
use super::{Kernel, Task};
use crate::abi::Errno;
use crate::auth::Creds;
use crate::vfs::{FileOwner, IoSignal, OpenFile, OwnerKind};
use crate::waiter::{Wake, WakeHook};

// Commands the libc crate lacks for x86-64 glibc (values from linux/fcntl.h, asm/sockios.h
// and asm-generic/ioctls.h).
pub const F_SETSIG: i32 = 10;
pub const F_GETSIG: i32 = 11;
pub const F_SETOWN_EX: i32 = 15;
pub const F_GETOWN_EX: i32 = 16;
pub const F_OWNER_TID: i32 = 0;
pub const F_OWNER_PID: i32 = 1;
pub const F_OWNER_PGRP: i32 = 2;
pub const FIOSETOWN: u64 = 0x8901;
pub const SIOCSPGRP: u64 = 0x8902;
pub const FIOGETOWN: u64 = 0x8903;
pub const SIOCGPGRP: u64 = 0x8904;

/// `si_code` of an I/O signal sent with `F_SETSIG`: the file became readable.
pub const POLL_IN: i32 = 1;
/// The file became writable.
pub const POLL_OUT: i32 = 2;

/// `si_band` for each `si_code` (Linux's `band_table`, as poll bits).
fn band(code: i32) -> i64 {
    let bits = if code == POLL_IN {
        libc::POLLIN | libc::POLLRDNORM
    } else {
        libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND
    };
    i64::from(bits)
}

/// The hook a description with `O_ASYNC` has on its file's wait queue.
pub struct Sigio {
    kernel: Weak<Kernel>,
    settings: Arc<Mutex<IoSignal>>,
    /// The fd `O_ASYNC` was turned on through (`si_fd`, as Linux's `fasync_helper` keeps).
    fd: i32,
    /// The description's access mode: a wake-up about the side it cannot use (a pipe's
    /// other end) is not its to signal.
    readable: bool,
    writable: bool,
}

impl WakeHook for Sigio {
    fn woken(&self, kind: Wake) {
        // As Linux's pipes: a hang-up or error tells readers POLL_IN, writers POLL_OUT.
        let code = match kind {
            Wake::Readable if self.readable => POLL_IN,
            Wake::Writable if self.writable => POLL_OUT,
            Wake::Any if self.readable => POLL_IN,
            Wake::Any => POLL_OUT,
            _ => return,
        };
        let IoSignal {
            kind,
            owner,
            signal,
        } = self.settings.lock().unwrap().clone();
        let (Some(owner), Some(kernel)) = (owner, self.kernel.upgrade()) else {
            return;
        };
        let info = if signal == 0 {
            SigInfo::kernel(libc::SIGIO)
        } else {
            let mut info = SigInfo::new(signal, code);
            info.fields[0] = band(code) as u64;
            info.fields[1] = u64::from(self.fd as u32);
            info
        };
        let tree = kernel.tree();
        match kind {
            OwnerKind::Thread => {
                if let Some(h) = tree.tasks.get(&owner.id) {
                    if Arc::as_ptr(h) as usize == owner.token && permitted(&owner, &h.tg) {
                        tree.send_thread(h, info, false);
                    }
                }
            }
            OwnerKind::Process => {
                if let Some(p) = tree.live(owner.id) {
                    if Arc::as_ptr(&p.tg) as usize == owner.token && permitted(&owner, &p.tg) {
                        tree.send_group(&p.tg, info, false);
                    }
                }
            }
            OwnerKind::ProcessGroup => {
                for tg in tree.pgrp_members(owner.id) {
                    if permitted(&owner, &tg) {
                        tree.send_group(&tg, info, false);
                    }
                }
            }
        }
    }
}

/// Whether whoever set `owner` may send it I/O signals (Linux's `sigio_perm`): root, or a
/// real or effective user ID equal to the target's real or saved one. A process with no
/// published credentials is exiting: it is not signalled.
fn permitted(owner: &FileOwner, tg: &super::ThreadGroup) -> bool {
    let creds: Option<Creds> = tg.published_creds();
    creds.is_some_and(|c| {
        owner.euid == 0
            || [owner.uid, owner.euid]
                .iter()
                .any(|u| *u == c.uid || *u == c.suid)
    })
}

/// Turns `O_ASYNC` on or off for `f`, which fd `fd` names. Returns false, changing nothing,
/// for files without signal-driven I/O ([`OpenFile::can_signal_io`]).
pub fn set_async(t: &Task, f: &OpenFile, fd: i32, on: bool) -> bool {
    if !f.can_signal_io() {
        return false;
    }
    let hook = on.then(|| {
        Arc::new(Sigio {
            kernel: Arc::downgrade(&t.kernel),
            settings: f.io_signal_settings(),
            fd,
            readable: f.readable(),
            writable: f.writable(),
        }) as Arc<dyn WakeHook>
    });
    f.set_async_hook(hook);
    true
}

/// `F_SETOWN_EX` (and `F_SETOWN`, `FIOSETOWN`, `SIOCSPGRP`): makes the `kind` named `id` in
/// the caller's PID namespace the owner; 0 clears the owner.
///
/// # Errors
/// ESRCH when nothing is named `id`.
pub fn set_owner(t: &Task, f: &OpenFile, kind: OwnerKind, id: i32) -> Result<(), Errno> {
    let owner = if id == 0 {
        None
    } else {
        let global = t.lookup_pid(id).ok_or(Errno::ESRCH)?;
        let tree = t.kernel.tree();
        let (token, pin): (usize, Option<Arc<dyn Send + Sync>>) = match kind {
            OwnerKind::Thread => {
                let h = tree.tasks.get(&global).ok_or(Errno::ESRCH)?;
                (Arc::as_ptr(h) as usize, Some(Arc::new(Arc::downgrade(h))))
            }
            OwnerKind::Process => {
                let tg = tree.live(global).ok_or(Errno::ESRCH)?.tg.clone();
                (
                    Arc::as_ptr(&tg) as usize,
                    Some(Arc::new(Arc::downgrade(&tg))),
                )
            }
            OwnerKind::ProcessGroup => {
                if tree.pgrp_members(global).is_empty() {
                    return Err(Errno::ESRCH);
                }
                (0, None)
            }
        };
        Some(FileOwner {
            id: global,
            token,
            pin,
            uid: t.creds.uid,
            euid: t.creds.euid,
        })
    };
    f.update_io_signal(|s| {
        s.kind = kind;
        s.owner = owner;
    });
    Ok(())
}

/// `F_GETOWN_EX`: the owner's kind and its ID in the caller's PID namespace (0 when there
/// is none, or it has gone).
pub fn owner(t: &Task, f: &OpenFile) -> (OwnerKind, i32) {
    let IoSignal { kind, owner, .. } = f.io_signal();
    let Some(owner) = owner else {
        return (kind, 0);
    };
    let alive = {
        let tree = t.kernel.tree();
        match kind {
            OwnerKind::Thread => tree
                .tasks
                .get(&owner.id)
                .is_some_and(|h| Arc::as_ptr(h) as usize == owner.token),
            OwnerKind::Process => tree
                .live(owner.id)
                .is_some_and(|p| Arc::as_ptr(&p.tg) as usize == owner.token),
            OwnerKind::ProcessGroup => !tree.pgrp_members(owner.id).is_empty(),
        }
    };
    (kind, if alive { t.vpid_of(owner.id) } else { 0 })
}

/// `F_GETOWN` (and `FIOGETOWN`, `SIOCGPGRP`): the owner's ID, negated for a process group.
pub fn getown(t: &Task, f: &OpenFile) -> i32 {
    match owner(t, f) {
        (OwnerKind::ProcessGroup, id) => -id,
        (_, id) => id,
    }
}

/// `F_SETOWN` (and `FIOSETOWN`, `SIOCSPGRP`): a process, or with a negative `who` the
/// process group `-who`.
///
/// # Errors
/// ESRCH when nothing is named `who`, EINVAL for `INT_MIN`.
pub fn setown(t: &Task, f: &OpenFile, who: i32) -> Result<(), Errno> {
    if who < 0 {
        let pgid = who.checked_neg().ok_or(Errno::EINVAL)?;
        set_owner(t, f, OwnerKind::ProcessGroup, pgid)
    } else {
        set_owner(t, f, OwnerKind::Process, who)
    }
}

/// `F_SETOWN_EX`'s `struct f_owner_ex` as (type, pid).
///
/// # Errors
/// EINVAL for an unknown type, ESRCH when nothing is named `pid`.
pub fn setown_ex(t: &Task, f: &OpenFile, kind: i32, pid: i32) -> Result<(), Errno> {
    let kind = match kind {
        F_OWNER_TID => OwnerKind::Thread,
        F_OWNER_PID => OwnerKind::Process,
        F_OWNER_PGRP => OwnerKind::ProcessGroup,
        _ => return Err(Errno::EINVAL),
    };
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    set_owner(t, f, kind, pid)
}

/// `F_GETOWN_EX` as `struct f_owner_ex` (type, pid).
pub fn getown_ex(t: &Task, f: &OpenFile) -> [i32; 2] {
    let (kind, id) = owner(t, f);
    let kind = match kind {
        OwnerKind::Thread => F_OWNER_TID,
        OwnerKind::Process => F_OWNER_PID,
        OwnerKind::ProcessGroup => F_OWNER_PGRP,
    };
    [kind, id]
}

/// `F_SETSIG`: the signal to send (0: SIGIO without details).
///
/// # Errors
/// EINVAL for a number that is no signal.
pub fn set_signal(f: &OpenFile, signal: u64) -> Result<(), Errno> {
    let signal = i32::try_from(signal)
        .ok()
        .filter(|s| (0..=super::signal::NSIG).contains(s))
        .ok_or(Errno::EINVAL)?;
    f.update_io_signal(|s| s.signal = signal);
    Ok(())
}
