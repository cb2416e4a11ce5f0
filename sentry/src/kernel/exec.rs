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
use crate::elf::{self, AuxIds, ExecArgs, Program};
use crate::mm::MemoryManager;
use crate::vfs::Caller;

/// Replaces the program of `t`'s process with `path`.
///
/// # Errors
/// Before the point of no return: the errno execve(2) reports.
pub fn execve(
    t: &mut Task,
    path: &str,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> Result<(), Errno> {
    let Program {
        exe,
        image,
        file,
        argv,
    } = elf::read_program(
        &t.fs,
        &Caller::of(t),
        &t.kernel.memory,
        path.as_bytes(),
        &argv,
    )
    .map_err(|(_, e)| e)?;
    let resolved = String::from_utf8_lossy(&exe.path).into_owned();

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
        execfn: path.as_bytes(),
        image_name: &resolved,
        image_file: file,
        ids: AuxIds {
            uid: t.creds.uid,
            euid: t.creds.euid,
            gid: t.creds.gid,
            egid: t.creds.egid,
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
            log::debug!("execve {path}: {e}; the process gets SIGSEGV");
            None
        }
        Err(e) => {
            log::debug!("execve {path}: {e}");
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
        let space = match t.mm.take_host_for_exec() {
            Some(space) => space,
            None => t
                .kernel
                .platform
                .new_address_space()
                .map_err(|_| Errno::ENOMEM)?,
        };
        mm.set_address_space(space);
    }
    let mm = Arc::new(mm);
    // Point of no return.
    t.sample_rss();
    t.exit_mm();
    t.mm = mm;
    let fds = Arc::new(t.fds.fork());
    fds.close_on_exec();
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
    t.creds = t.creds.after_exec();
    let dumpable = t.creds.euid == t.creds.uid && t.creds.egid == t.creds.gid;
    t.tg.dumpable
        .store(dumpable.into(), std::sync::atomic::Ordering::Relaxed);
    let (entry, sp) = loaded.as_ref().map_or((0, 0), |l| (l.entry, l.sp));
    t.cpu = CpuState::new(entry, sp);
    let base = path.rsplit('/').next().unwrap_or(path).as_bytes();
    *t.handle.comm.lock().unwrap() = base[..base.len().min(15)].to_vec();
    let (strings, auxv) = loaded.map(|l| (l.strings, l.auxv)).unwrap_or_default();
    *t.tg.image.lock().unwrap() = super::thread_group::ExecImage {
        exe: Some(exe),
        strings,
        auxv,
    };
    t.publish_view();
    if let Some(p) = t.kernel.tree().procs.get_mut(&t.tg.tgid) {
        p.did_exec = true;
    }
    t.ptrace_exec(former_tid_seen);
    if segv {
        t.force_signal(super::signal::SigInfo::kernel(libc::SIGSEGV));
    }
    Ok(())
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
