//! clone: new threads and processes.
//!
//! A thread (CLONE_THREAD) joins the caller's group and shares its memory, files and signal
//! dispositions; a process gets a copy-on-write copy of the address space (unless CLONE_VM)
//! and of the fd table (unless CLONE_FILES). Each new task runs on its own host thread.
//! CLONE_NEWPID puts the new process in a new PID namespace under the caller's, as its init.
//! CLONE_NEWUSER gives it a new user namespace (owned by the caller's effective user, with
//! every capability in it) and CLONE_NEWUTS, CLONE_NEWIPC and CLONE_NEWNET new namespaces of
//! those kinds ([`super::ns`]), owned by its user namespace.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::task::{register_thread, TaskInit, VforkDone, DISABLED_ALTSTACK};
use super::{Task, TaskHandle, ThreadGroup};
use crate::abi::Errno;
use crate::mm::usermem::UserAddr;

const CLONE_VM: u64 = libc::CLONE_VM as u64;
const CLONE_FS: u64 = libc::CLONE_FS as u64;
const CLONE_FILES: u64 = libc::CLONE_FILES as u64;
const CLONE_SIGHAND: u64 = libc::CLONE_SIGHAND as u64;
const CLONE_PIDFD: u64 = libc::CLONE_PIDFD as u64;
const CLONE_PTRACE: u64 = libc::CLONE_PTRACE as u64;
const CLONE_VFORK: u64 = libc::CLONE_VFORK as u64;
const CLONE_PARENT: u64 = libc::CLONE_PARENT as u64;
const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;
const CLONE_SYSVSEM: u64 = libc::CLONE_SYSVSEM as u64;
const CLONE_SETTLS: u64 = libc::CLONE_SETTLS as u64;
const CLONE_PARENT_SETTID: u64 = libc::CLONE_PARENT_SETTID as u64;
const CLONE_CHILD_CLEARTID: u64 = libc::CLONE_CHILD_CLEARTID as u64;
const CLONE_DETACHED: u64 = libc::CLONE_DETACHED as u64;
const CLONE_UNTRACED: u64 = libc::CLONE_UNTRACED as u64;
const CLONE_CHILD_SETTID: u64 = libc::CLONE_CHILD_SETTID as u64;
const CLONE_IO: u64 = libc::CLONE_IO as u64;
const CLONE_NEWPID: u64 = libc::CLONE_NEWPID as u64;
const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
const CLONE_NEWUTS: u64 = libc::CLONE_NEWUTS as u64;
const CLONE_NEWIPC: u64 = libc::CLONE_NEWIPC as u64;
const CLONE_NEWNET: u64 = libc::CLONE_NEWNET as u64;
const CLONE_NEWCGROUP: u64 = libc::CLONE_NEWCGROUP as u64;

use super::pidns::MAX_LEVEL as MAX_PIDNS_LEVEL;

/// Flags accepted (of the namespaces all but mount and time; pidfds are not offered yet).
const SUPPORTED: u64 = CLONE_VM
    | CLONE_NEWPID
    | CLONE_NEWCGROUP
    | CLONE_NEWUSER
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWNET
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_PTRACE
    | CLONE_VFORK
    | CLONE_PARENT
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_UNTRACED
    | CLONE_CHILD_SETTID
    | CLONE_IO;

/// The arguments of clone/clone3, decoded.
#[derive(Debug, Clone, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub exit_signal: i32,
    /// New stack pointer (0: the caller's).
    pub stack: u64,
    pub parent_tid: UserAddr,
    pub child_tid: UserAddr,
    pub tls: u64,
    /// clone3's CLONE_INTO_CGROUP: the new process's cgroup (else its parent's).
    pub cgroup: Option<Arc<super::cgroup::Cgroup>>,
}

/// Creates the task; returns its TID in the caller's namespace.
///
/// # Errors
/// EINVAL for inconsistent flags, ENOMEM/EAGAIN for resource failures.
pub fn clone(t: &mut Task, a: CloneArgs) -> Result<i32, Errno> {
    let f = a.flags;
    if f & !SUPPORTED != 0 {
        if f & CLONE_PIDFD != 0 {
            return Err(Errno::EINVAL);
        }
        return Err(Errno::EPERM);
    }
    if (f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0)
        || (f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0)
        || !(0..=super::signal::NSIG).contains(&a.exit_signal)
    {
        return Err(Errno::EINVAL);
    }
    // A thread stays in its process's PID namespace.
    if (f & CLONE_THREAD != 0 && t.ns.pid_for_children.is_some())
        || (f & CLONE_NEWUSER != 0 && f & (CLONE_THREAD | CLONE_FS) != 0)
        || (f & CLONE_NEWIPC != 0 && f & CLONE_SYSVSEM != 0)
    {
        return Err(Errno::EINVAL);
    }
    // The new user namespace comes first: the other new namespaces are its.
    let creds = if f & CLONE_NEWUSER != 0 {
        if t.creds.user_ns.level >= crate::auth::MAX_USER_NS_LEVEL {
            return Err(Errno::EUSERS);
        }
        let userns = crate::auth::UserNs::new_child(&t.creds.user_ns, t.creds.euid, t.creds.egid);
        t.creds.entering(userns)
    } else {
        t.creds.clone()
    };
    let new_ns = super::ns::NewNamespaces::from_flags(f);
    if (new_ns.any() || f & CLONE_NEWPID != 0)
        && !creds.has_cap_in(&creds.user_ns, crate::auth::cap::SYS_ADMIN)
    {
        return Err(Errno::EPERM);
    }
    if f & CLONE_NEWPID != 0 {
        if f & CLONE_THREAD != 0 {
            return Err(Errno::EINVAL);
        }
        if t.ns
            .pid_for_children
            .as_ref()
            .unwrap_or(&t.tg.pidns)
            .level()
            >= MAX_PIDNS_LEVEL
        {
            return Err(Errno::ENOSPC);
        }
    }
    // A namespace init's siblings would be outside its namespace.
    if f & CLONE_PARENT != 0 && t.tg.unkillable.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_SIGHAND != 0 && f & CLONE_THREAD == 0 {
        log::debug!("CLONE_SIGHAND without CLONE_THREAD: dispositions are copied, not shared");
    }
    t.pull_fp().map_err(|_| Errno::EAGAIN)?;
    let kernel = t.kernel.clone();
    let mm = if f & CLONE_VM != 0 {
        if f & CLONE_THREAD == 0 {
            t.mm.mark_vm_shared();
        }
        t.mm.clone()
    } else {
        let space = kernel
            .platform
            .new_address_space()
            .map_err(|_| Errno::ENOMEM)?;
        Arc::new(t.mm.fork(space)?)
    };
    let fds = if f & CLONE_FILES != 0 {
        t.fds.clone()
    } else {
        Arc::new(t.fds.fork())
    };
    if f & CLONE_SETTLS != 0 && a.tls >= platform::MAX_USER_ADDRESS {
        return Err(Errno::EPERM);
    }
    // A new process goes into the namespace setns(CLONE_NEWPID) chose for children, if any.
    let base =
        t.ns.pid_for_children
            .clone()
            .unwrap_or_else(|| t.tg.pidns.clone());
    let ns = if f & CLONE_NEWPID != 0 {
        base.new_child()
    } else {
        base
    };
    let tid = ns.alloc(f & CLONE_THREAD == 0)?;
    // The caller's view of the new task, and the task's own (1 in a new namespace).
    let vtid = t.vpid_of(tid);
    let own_vtid = ns.id_of(tid).unwrap_or(0);
    let tg = if f & CLONE_THREAD != 0 {
        t.tg.clone()
    } else {
        let tg = Arc::new(ThreadGroup::fork_from(tid, &t.tg, ns.clone()));
        // An inherited RLIMIT_CPU keeps counting in the child.
        super::cpu_timers::arm(&t.kernel, &tg);
        tg
    };
    let comm = t.handle.comm.lock().unwrap().clone();
    let handle = TaskHandle::new(tid, tg.clone(), comm);
    *handle.sched.lock().unwrap() = t.handle.sched.lock().unwrap().for_child();
    handle.seccomp.inherit_from(&t.handle.seccomp);
    handle.personality.store(
        t.handle.personality.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    *handle.mempolicy.lock().unwrap() = *t.handle.mempolicy.lock().unwrap();
    *handle.session_keyring.lock().unwrap() = t.handle.session_keyring.lock().unwrap().clone();

    let mut cpu = t.cpu.clone();
    cpu.regs.rax = 0;
    if a.stack != 0 {
        cpu.regs.rsp = a.stack;
    }
    if f & CLONE_SETTLS != 0 {
        cpu.regs.fs_base = a.tls;
    }
    cpu.fp.dirty = true;

    let settid = (|| {
        if f & CLONE_PARENT_SETTID != 0 {
            t.mm.write_obj(a.parent_tid, &vtid)?;
        }
        if f & CLONE_CHILD_SETTID != 0 {
            mm.write_obj(a.child_tid, &own_vtid)?;
        }
        Ok::<(), Errno>(())
    })();
    if let Err(e) = settid {
        ns.release(tid);
        return Err(e);
    }
    // A tracee's child is traced too when its tracer's options (or CLONE_PTRACE) say so.
    let (event, traced) = super::ptrace::clone_event(&t.handle, f, a.exit_signal);
    let new_process = f & CLONE_THREAD == 0;
    let charged = kernel
        .cgroups
        .fork(&t.tg, new_process.then_some(&*tg), a.cgroup.as_ref());
    if let Err(e) = charged {
        ns.release(tid);
        return Err(e);
    }
    {
        let mut tree = kernel.tree();
        if f & CLONE_THREAD == 0 {
            let parent = if f & CLONE_PARENT != 0 {
                tree.procs.get(&t.tg.tgid).map_or(0, |p| p.parent)
            } else {
                t.tg.tgid
            };
            tree.add_proc(tg.clone(), parent, a.exit_signal);
            if f & CLONE_PARENT == 0 {
                if let Some(p) = tree.procs.get_mut(&tid) {
                    p.parent_thread = t.tid;
                }
            }
        } else if t.tg.sig().exit.is_some() {
            drop(tree);
            kernel.cgroups.fork_failed(&tg, false);
            ns.release(tid);
            return Err(Errno::EINTR);
        }
        tree.tasks.insert(tid, handle.clone());
        register_thread(&handle, t.sigmask());
        if traced {
            super::ptrace::trace_child(&mut tree, &t.handle, &handle);
        }
    }
    let vfork_done = (f & CLONE_VFORK != 0).then(|| VforkDone::new(t.handle.waiter.clone(), t.tid));
    let altstack = if f & CLONE_VM != 0 && f & CLONE_VFORK == 0 {
        DISABLED_ALTSTACK
    } else {
        t.altstack
    };
    let init = TaskInit {
        kernel: kernel.clone(),
        handle,
        mm,
        cpu,
        fds,
        ns: super::ns::Namespaces {
            pid_for_children: None,
            ..t.ns
                .unshared(new_ns, &creds.user_ns, || kernel.cgroups.of(&t.tg))
        },
        creds,
        fs: if f & CLONE_FS != 0 {
            t.fs.clone()
        } else {
            t.fs.fork()
        },
        clear_child_tid: if f & CLONE_CHILD_CLEARTID != 0 {
            a.child_tid.0
        } else {
            0
        },
        altstack,
        vfork_done: vfork_done.clone(),
    };
    if let Err(e) = Task::spawn(init) {
        log::warn!("cannot start a host thread for task {tid}: {e}");
        let mut tree = kernel.tree();
        tree.tasks.remove(&tid);
        tg.sig().threads.remove(&tid);
        if f & CLONE_THREAD == 0 {
            tree.reap(tid);
        }
        tree.forget_id(tid, &ns);
        drop(tree);
        kernel.cgroups.fork_failed(&tg, new_process);
        return Err(Errno::EAGAIN);
    }
    let msg = if traced || event.is_some() || t.ptraced() {
        t.tracer_view_of(tid)
    } else {
        0
    };
    if let Some(event) = event {
        t.ptrace_event(event, msg);
    }
    if let Some(done) = vfork_done {
        t.wait_vfork(&done, tid, u64::try_from(vtid).unwrap_or_default());
        if t.ptrace_option(super::ptrace::O_TRACEVFORKDONE) {
            t.ptrace_event(super::ptrace::EVENT_VFORK_DONE, msg);
        }
    }
    Ok(vtid)
}
