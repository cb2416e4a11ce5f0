//! execve: replace the calling process's program.
//!
//! Everything that can fail (reading the executable and its interpreter, loading into a
//! fresh address space) happens before the point of no return; after it the other threads
//! are killed (a caller that is not the leader takes the leader's ID, as on Linux), robust
//! futexes and `clear_child_tid` released under that ID, close-on-exec fds closed, caught
//! signals reset, and the task starts the new program with fresh registers.

use std::sync::Arc;

use platform::CpuState;

use super::task::DISABLED_ALTSTACK;
use super::Task;
use crate::abi::Errno;
use crate::auth::SetIdExec;
use crate::elf::{self, AuxIds, ExecArgs, ExecFile, Program};
use crate::mm::MemoryManager;
use crate::vfs::{Caller, Dentry};

/// Replaces the program of `t`'s process with `target`.
///
/// # Errors
/// Before the point of no return: the errno execve(2) reports.
pub fn execve(
    t: &mut Task,
    target: ExecFile,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> Result<(), Errno> {
    let name = target.name.clone();
    let comm_from_file = target.comm_from_file;
    let Program {
        exe,
        image,
        file,
        argv,
    } = elf::read_program(&t.fs, &Caller::of(t), &t.kernel.memory, target, &argv)
        .map_err(|(_, e)| e)?;
    // ETXTBSY for a program open for writing; denies writes to it while the image runs.
    let exe_deny = match exe.inode.ident() {
        Ok(key) => Some(Arc::new(t.kernel.write_access.deny_write(key)?)),
        Err(_) => None,
    };
    let resolved = String::from_utf8_lossy(&exe.path).into_owned();
    let (creds, secure) = t.creds.after_setid_exec(setid_of(t, &exe));

    // A process that shares its mm with no other process hands the host address space on
    // to the new program (`MemoryManager::take_host_for_exec`) instead of making a new one;
    // until then the program is loaded into an mm without one (loading makes no host call).
    let reuse = !t.mm.vm_shared();
    let mut mm = if reuse {
        MemoryManager::new_unbacked(t.kernel.memory.clone())
    } else {
        let space = t
            .kernel
            .platform
            .new_address_space()
            .map_err(|_| Errno::ENOMEM)?;
        MemoryManager::new(t.kernel.memory.clone(), space)
    };
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
        .map_err(|_| Errno::EIO)?;
    let vdso = t.kernel.vdso.get(&t.kernel.memory)?;
    let args = ExecArgs {
        image: &image,
        argv: &argv,
        envp: &envp,
        execfn: &name,
        image_name: &resolved,
        image_file: file,
        ids: AuxIds {
            uid: creds.uid,
            euid: creds.euid,
            gid: creds.gid,
            egid: creds.egid,
            secure,
        },
        random,
        stack_size: elf::stack_size(t.tg.limits.lock().unwrap()[libc::RLIMIT_STACK as usize].cur),
        min_sigstack: crate::kernel::sigframe::max_frame_size(),
        vdso: Some(&vdso),
    };
    let read_interp = |p: &str| elf::read_interp(&t.fs, &Caller::of(t), &t.kernel.memory, p);
    // A segment that cannot be mapped fails past the point of no return, as in Linux: the
    // exec completes and the process dies of SIGSEGV before running anything.
    let loaded = match elf::load(&mm, &args, &read_interp) {
        Ok(l) => Some(l),
        Err(e @ elf::Error::Segment(_)) => {
            log::debug!(
                "execve {}: {e}; the process gets SIGSEGV",
                name.escape_ascii()
            );
            None
        }
        Err(e) => {
            log::debug!("execve {}: {e}", name.escape_ascii());
            return Err(e.errno());
        }
    };

    let segv = loaded.is_none();
    kill_other_threads(t)?;
    // Read before the thread may give its ID up for the leader's (below).
    let former_tid_seen = t.tracer_view_of(t.tid);
    take_leader_id(t);
    if reuse {
        // The process is single-threaded now; a sibling sharing the mm (a clone(CLONE_VM)
        // another thread made meanwhile) or a failed clear means a new host address space.
        let (space, stale) = match t.mm.take_host_for_exec() {
            Some(space) => (space, true),
            None => (
                t.kernel
                    .platform
                    .new_address_space()
                    .map_err(|_| Errno::ENOMEM)?,
                false,
            ),
        };
        mm.set_address_space(space, stale);
    }
    let mm = Arc::new(mm);
    // Point of no return.
    t.sample_rss();
    t.exit_mm();
    t.mm = mm;
    let fds = Arc::new(t.fds.fork());
    let closed = fds.close_on_exec();
    super::fd_table::release_posix_locks(&t.kernel.locks, t.tg.tgid, closed);
    t.fds = fds;
    {
        let mut s = t.tg.sig();
        for a in s.actions.iter_mut() {
            if a.handler > super::signal::SIG_IGN {
                *a = super::signal::SigAction::default();
            }
        }
    }
    let posix_timers = std::mem::take(&mut t.tg.timers.lock().unwrap().posix);
    drop(posix_timers);
    t.altstack = DISABLED_ALTSTACK;
    t.creds = creds;
    let dumpable = t.creds.euid == t.creds.uid && t.creds.egid == t.creds.gid;
    t.tg.dumpable
        .store(dumpable.into(), std::sync::atomic::Ordering::Relaxed);
    let (entry, sp) = loaded.as_ref().map_or((0, 0), |l| (l.entry, l.sp));
    t.cpu = CpuState::new(entry, sp);
    // Clears the former program's host mappings (in the prefault's batch when there is
    // one); should that fail, they must never show through: the process dies, as Linux
    // kills an exec that fails past the point of no return.
    let cleared = if segv {
        t.mm.clear_stale_host()
    } else {
        t.mm.prefault_program()
    };
    if let Err(e) = &cleared {
        log::warn!(
            "execve {}: clearing the old program's host mappings failed: {e}",
            String::from_utf8_lossy(&name)
        );
    }
    let base = if comm_from_file {
        &exe.name[..]
    } else {
        name.rsplit(|&b| b == b'/').next().unwrap_or(&name)
    };
    *t.handle.comm.lock().unwrap() = base[..base.len().min(15)].to_vec();
    let (strings, auxv) = loaded.map(|l| (l.strings, l.auxv)).unwrap_or_default();
    *t.tg.image.lock().unwrap() = super::thread_group::ExecImage {
        exe: Some(exe),
        exe_deny,
        strings,
        auxv,
    };
    t.publish_view();
    if let Some(p) = t.kernel.tree().procs.get_mut(&t.tg.tgid) {
        p.did_exec = true;
        if secure {
            // A secure exec forgets the parent-death signal (prctl(2) PR_SET_PDEATHSIG).
            p.pdeathsig = 0;
        }
    }
    t.ptrace_exec(former_tid_seen);
    if cleared.is_err() {
        t.force_signal(super::signal::SigInfo::kernel(libc::SIGKILL));
    } else if segv {
        t.force_signal(super::signal::SigInfo::kernel(libc::SIGSEGV));
    }
    Ok(())
}

/// The effective IDs a set-user-ID file, or a set-group-ID and group-executable one, gives
/// at execve, as Linux's bprm_fill_uid: none on a `nosuid` mount, under `no_new_privs`, for an
/// owner without a mapping in the caller's user namespace, or for a traced task (Linux
/// honours them there for a tracer with CAP_SYS_PTRACE only; here never).
fn setid_of(t: &Task, exe: &Dentry) -> SetIdExec {
    if exe.mount.flags & libc::MS_NOSUID != 0 || t.handle.seccomp.no_new_privs() || t.ptraced() {
        return SetIdExec::default();
    }
    let Ok(st) = exe.inode.stat() else {
        return SetIdExec::default();
    };
    let ns = &t.creds.user_ns;
    let sgid = libc::S_ISGID | libc::S_IXGRP;
    SetIdExec {
        euid: (st.mode & libc::S_ISUID != 0 && ns.from_kernel(st.uid, false).is_some())
            .then_some(st.uid),
        egid: (st.mode & sgid == sgid && ns.from_kernel(st.gid, true).is_some()).then_some(st.gid),
    }
}

/// De-threads the process: every other thread exits, this one waits for them.
///
/// # Errors
/// EINTR when the process is being killed meanwhile.
fn kill_other_threads(t: &mut Task) -> Result<(), Errno> {
    {
        let mut s = t.tg.sig();
        if s.threads.len() <= 1 {
            return Ok(());
        }
        if s.exit.is_some() || s.exec_killer.is_some() {
            return Err(Errno::EINTR);
        }
        s.exec_killer = Some(t.tid);
        s.kick_all();
    }
    let tg = t.tg.clone();
    let r = t.block_on(&[&tg.child_events], None, |t| {
        (t.tg.sig().threads.len() == 1).then_some(Ok(()))
    });
    tg.sig().exec_killer = None;
    t.restart = None;
    r
}

/// A non-leader caller, alone in its process now, becomes its leader: its thread ID turns
/// into the process ID ([`super::pids::Tree::take_leader_id`]). Before the old memory is
/// released, as Linux's de_thread comes before exec_mmap: robust futexes are checked
/// against the new ID.
fn take_leader_id(t: &mut Task) {
    if t.tid == t.tg.tgid {
        return;
    }
    let former = t.tid;
    t.kernel.tree().take_leader_id(&t.handle);
    t.tid = t.handle.tid();
    log::debug!("execve: thread {former} becomes the leader {}", t.tid);
}
