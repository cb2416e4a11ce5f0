//! Namespaces: unshare(2), setns(2) (with a `/proc/[pid]/ns/*` file or a pidfd), and the
//! UTS namespace's names (uname(2), sethostname(2), setdomainname(2)). The namespaces
//! themselves are [`crate::kernel::ns`] and [`crate::auth::UserNs`].

use std::sync::Arc;

use super::{Fd, Flags};
use crate::abi::{Errno, SysResult, Utsname, RELEASE, VERSION};
use crate::auth::{cap, UserNs, MAX_USER_NS_LEVEL};
use crate::kernel::ns::{NewNamespaces, NsRef, UtsName, UTS_NAME_MAX};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::FileKind;

/// The namespace kinds `setns` takes.
const NS_FLAGS: i32 = libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | 0x80; // CLONE_NEWTIME

/// What unshare(2) takes; anything else is EINVAL.
const UNSHARE_FLAGS: u64 = (libc::CLONE_THREAD
    | libc::CLONE_FS
    | libc::CLONE_NEWNS
    | libc::CLONE_SIGHAND
    | libc::CLONE_VM
    | libc::CLONE_FILES
    | libc::CLONE_SYSVSEM
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWCGROUP
    | 0x80) as u64; // CLONE_NEWTIME

/// unshare(2): a private fd table (CLONE_FILES), filesystem context (CLONE_FS), mount
/// namespace (CLONE_NEWNS, a copy of the caller's), user namespace (CLONE_NEWUSER: owned by
/// the caller, which gets every capability in it and must be single-threaded), and UTS,
/// IPC, network and cgroup namespaces (owned by the caller's user namespace, the new one if
/// both are asked; a cgroup namespace is rooted at the caller's cgroup). CLONE_THREAD,
/// CLONE_SIGHAND and CLONE_VM succeed only for a single-threaded process, where there is
/// nothing to unshare. CLONE_NEWPID makes a PID namespace under the caller's for its next
/// children (`pid_for_children`; the caller stays where it is): EINVAL when its children
/// already go elsewhere, ENOSPC past the deepest level. New time namespaces and
/// CLONE_SYSVSEM are not offered: EINVAL.
pub fn unshare(t: &mut Task, flags: Flags) -> SysResult {
    let mut f = flags.0;
    if f & !UNSHARE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let has = |f: u64, flag: i32| f & flag as u64 != 0;
    // The implications Linux applies before checking.
    if has(f, libc::CLONE_NEWUSER) {
        f |= (libc::CLONE_THREAD | libc::CLONE_FS) as u64;
    }
    if has(f, libc::CLONE_VM) {
        f |= libc::CLONE_SIGHAND as u64;
    }
    if has(f, libc::CLONE_SIGHAND) {
        f |= libc::CLONE_THREAD as u64;
    }
    if has(f, libc::CLONE_NEWNS) {
        f |= libc::CLONE_FS as u64;
    }
    if has(f, libc::CLONE_THREAD) && t.tg.sig().threads.len() > 1 {
        return Err(Errno::EINVAL);
    }
    let creds = if has(f, libc::CLONE_NEWUSER) {
        if t.creds.user_ns.level >= MAX_USER_NS_LEVEL {
            return Err(Errno::EUSERS);
        }
        let ns = UserNs::new_child(&t.creds.user_ns, t.creds.euid, t.creds.egid);
        t.creds.entering(ns)
    } else {
        t.creds.clone()
    };
    // Any namespace but a user one takes CAP_SYS_ADMIN (in the new user namespace if one is
    // made), checked before whether it is offered, as Linux checks it before making any.
    let namespaces = f & (NS_FLAGS & !libc::CLONE_NEWUSER) as u64;
    if namespaces != 0 && !creds.has_cap_in(&creds.user_ns, cap::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let unsupported = 0x80 | libc::CLONE_SYSVSEM;
    if has(f, unsupported) {
        log::debug!("unshare: {:#x} not offered", f & unsupported as u64);
        return Err(Errno::EINVAL);
    }
    let new_ns = NewNamespaces::from_flags(f);
    let pid_for_children = if has(f, libc::CLONE_NEWPID) {
        if t.ns.pid_for_children.is_some() {
            return Err(Errno::EINVAL);
        }
        if t.tg.pidns.level() >= crate::kernel::pidns::MAX_LEVEL {
            return Err(Errno::ENOSPC);
        }
        Some(t.tg.pidns.new_child())
    } else {
        None
    };
    if has(f, libc::CLONE_FILES) {
        t.fds = Arc::new(t.fds.fork());
    }
    if has(f, libc::CLONE_NEWNS) {
        t.fs = t.fs.with_namespace(t.fs.ns.copy(&creds.user_ns), false);
    } else if has(f, libc::CLONE_FS) {
        t.fs = t.fs.fork();
    }
    if new_ns.any() {
        t.ns =
            t.ns.unshared(new_ns, &creds.user_ns, || t.kernel.cgroups.of(&t.tg));
    }
    if pid_for_children.is_some() {
        t.ns.pid_for_children = pid_for_children;
    }
    t.creds = creds;
    t.publish_view();
    Ok(0)
}

/// setns(2). `fd` is a namespace file (`/proc/[pid]/ns/*`; `nstype` 0 or its kind) or a
/// pidfd (`nstype` the kinds to join of that process's). Joining takes CAP_SYS_ADMIN over
/// the namespace and in the caller's own user namespace; a user namespace must not be the
/// caller's own and the caller must be single-threaded. A PID namespace must be the
/// caller's or one below it, and becomes its new processes' (`pid_for_children`).
pub fn setns(t: &mut Task, fd: Fd, nstype: i32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let targets = if let FileKind::PidFd(_) = f.kind() {
        if nstype == 0 || nstype & !NS_FLAGS != 0 {
            return Err(Errno::EINVAL);
        }
        let (tg, zombie) = super::pidfd::target(t, fd)?;
        if zombie {
            return Err(Errno::ESRCH);
        }
        let view = tg
            .sig()
            .threads
            .values()
            .find_map(|th| th.handle.view.lock().unwrap().clone())
            .ok_or(Errno::ESRCH)?;
        if tg.tgid != t.tg.tgid && !super::pidfd::may_ptrace(&t.creds, &view.creds, tg.dumpable()) {
            return Err(Errno::EPERM);
        }
        let mut targets = Vec::new();
        // The user namespace first: the others are checked with its capabilities.
        if nstype & libc::CLONE_NEWUSER != 0 {
            targets.push(NsRef::User(view.creds.user_ns.clone()));
        }
        for (flag, ns) in [
            (libc::CLONE_NEWNS, NsRef::Mnt(view.fs.ns.clone())),
            (libc::CLONE_NEWUTS, NsRef::Uts(view.ns.uts.clone())),
            (libc::CLONE_NEWIPC, NsRef::Ipc(view.ns.ipc.clone())),
            (libc::CLONE_NEWNET, NsRef::Net(view.ns.net.clone())),
            (libc::CLONE_NEWPID, NsRef::Pid(tg.pidns.clone())),
            (libc::CLONE_NEWCGROUP, NsRef::Cgroup(view.ns.cgroup.clone())),
        ] {
            if nstype & flag != 0 {
                targets.push(ns);
            }
        }
        if nstype & 0x80 != 0 && !t.creds.has_cap(cap::SYS_ADMIN) {
            return Err(Errno::EPERM);
        }
        targets
    } else {
        let inode = f.ops().namespace_inode().ok_or(Errno::EINVAL)?;
        let ns = t.kernel.ns_files.find(inode).ok_or(Errno::EINVAL)?;
        if nstype != 0 && nstype != ns.clone_flag() {
            return Err(Errno::EINVAL);
        }
        vec![ns]
    };
    for ns in targets {
        join(t, ns)?;
    }
    t.publish_view();
    Ok(0)
}

/// Moves the caller into `ns` (setns's checks for one kind).
fn join(t: &mut Task, ns: NsRef) -> Result<(), Errno> {
    let admin_here = t.creds.has_cap_in(&t.creds.user_ns, cap::SYS_ADMIN);
    let admin_over = |t: &Task, owner: &Arc<UserNs>| {
        if t.creds.has_cap_in(owner, cap::SYS_ADMIN) && admin_here {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    };
    match ns {
        NsRef::User(ns) => {
            if Arc::ptr_eq(&ns, &t.creds.user_ns) {
                return Err(Errno::EINVAL);
            }
            if t.tg.sig().threads.len() > 1 || fs_shared(t) {
                return Err(Errno::EINVAL);
            }
            if !t.creds.has_cap_in(&ns, cap::SYS_ADMIN) {
                return Err(Errno::EPERM);
            }
            t.creds = t.creds.entering(ns);
        }
        NsRef::Uts(ns) => {
            admin_over(t, &ns.owner)?;
            t.ns.uts = ns;
        }
        NsRef::Ipc(ns) => {
            admin_over(t, &ns.owner)?;
            t.ns.ipc = ns;
        }
        NsRef::Net(ns) => {
            admin_over(t, &ns.owner)?;
            t.ns.net = ns;
        }
        NsRef::Mnt(ns) => {
            if !t.creds.has_cap(cap::SYS_ADMIN) || !t.creds.has_cap(cap::SYS_CHROOT) {
                return Err(Errno::EPERM);
            }
            if !Arc::ptr_eq(&ns, &t.fs.ns) {
                t.fs = t.fs.with_namespace(ns, true);
            }
        }
        NsRef::Pid(ns) => {
            if !t.creds.has_cap(cap::SYS_ADMIN) {
                return Err(Errno::EPERM);
            }
            // The caller's own namespace or one below it, for its new processes.
            let mut cur = Some(&ns);
            while let Some(n) = cur.filter(|n| !Arc::ptr_eq(n, &t.tg.pidns)) {
                cur = n.parent();
            }
            if cur.is_none() {
                return Err(Errno::EINVAL);
            }
            t.ns.pid_for_children = (!Arc::ptr_eq(&ns, &t.tg.pidns)).then_some(ns);
        }
        NsRef::Cgroup(ns) => {
            admin_over(t, &ns.owner)?;
            t.ns.cgroup = ns;
        }
    }
    Ok(())
}

/// Whether another task shares the caller's filesystem context (CLONE_FS).
fn fs_shared(t: &Task) -> bool {
    t.kernel.tree().tasks.values().any(|h| {
        h.tid() != t.tid
            && h.view
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|v| Arc::ptr_eq(&v.fs, &t.fs))
    })
}

fn field(s: &str) -> [u8; 65] {
    let mut f = [0u8; 65];
    let b = s.as_bytes();
    let n = b.len().min(64);
    f[..n].copy_from_slice(&b[..n]);
    f
}

/// uname(2): the caller's UTS namespace's names.
pub fn uname(t: &mut Task, buf: UserAddr) -> SysResult {
    let names = t.ns.uts.names().clone();
    let u = Utsname {
        sysname: field("Linux"),
        nodename: field(&names.hostname),
        release: field(RELEASE),
        version: field(VERSION),
        machine: field("x86_64"),
        domainname: field(&names.domainname),
    };
    t.mm.write_obj(buf, &u)?;
    Ok(0)
}

/// The name sethostname and setdomainname set: checked and read from the caller.
fn new_name(t: &Task, name: UserAddr, len: i32) -> Result<String, Errno> {
    if !t.creds.has_cap_in(&t.ns.uts.owner, cap::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    if len > UTS_NAME_MAX {
        return Err(Errno::EINVAL);
    }
    let bytes = t.mm.read_bytes(name, len)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// sethostname(2): in the caller's UTS namespace, with CAP_SYS_ADMIN over it.
pub fn sethostname(t: &mut Task, name: UserAddr, len: i32) -> SysResult {
    let name = new_name(t, name, len)?;
    t.ns.uts.names().hostname = name;
    t.kernel.uts_events.note(UtsName::Host);
    Ok(0)
}

/// setdomainname(2): in the caller's UTS namespace, with CAP_SYS_ADMIN over it.
pub fn setdomainname(t: &mut Task, name: UserAddr, len: i32) -> SysResult {
    let name = new_name(t, name, len)?;
    t.ns.uts.names().domainname = name;
    t.kernel.uts_events.note(UtsName::Domain);
    Ok(0)
}
