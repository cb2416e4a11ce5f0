//! execve: replace the calling process's program.
//!
//! Everything that can fail (reading the executable and its interpreter, loading into a
//! fresh address space) happens before the point of no return; after it the other threads
//! are killed, close-on-exec fds closed, caught signals reset, and the task starts the new
//! program with fresh registers.

use std::sync::Arc;

use platform::CpuState;

use super::task::DISABLED_ALTSTACK;
use super::Task;
use crate::abi::Errno;
use crate::loader::{self, AuxIds, ExecArgs};
use crate::mm::MemoryManager;

/// Nesting limit of `#!` interpreters (Linux allows a handful).
const MAX_SHEBANG_DEPTH: usize = 4;

/// Reads the executable at `path` for `execve`: its bytes and the path it was found at.
/// Today this reads the host path; the filesystem work switches it to the sandbox VFS.
///
/// # Errors
/// ENOENT, EACCES (not a regular file, no execute bit) and other open errors.
pub fn read_executable(_t: &Task, path: &str) -> Result<(Vec<u8>, String), Errno> {
    use std::os::unix::fs::PermissionsExt;
    let host_err = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT));
    let md = std::fs::metadata(path).map_err(host_err)?;
    if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    let data = std::fs::read(path).map_err(host_err)?;
    Ok((data, path.to_string()))
}

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
    let (mut image, mut resolved) = read_executable(t, path)?;
    let mut argv = argv;
    let mut depth = 0;
    while let Some((interp, arg)) = loader::parse_shebang(&image) {
        depth += 1;
        if depth > MAX_SHEBANG_DEPTH {
            return Err(Errno::ELOOP);
        }
        let interp_path = String::from_utf8_lossy(&interp).into_owned();
        let mut new_argv = vec![interp.clone()];
        new_argv.extend(arg);
        new_argv.push(path.as_bytes().to_vec());
        new_argv.extend(argv.into_iter().skip(1));
        argv = new_argv;
        (image, resolved) = read_executable(t, &interp_path)?;
    }

    let space = t
        .kernel
        .platform
        .new_address_space()
        .map_err(|_| Errno::ENOMEM)?;
    let mm = Arc::new(MemoryManager::new(t.kernel.memory.clone(), space));
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
        .map_err(|_| Errno::EIO)?;
    let args = ExecArgs {
        image: &image,
        argv: &argv,
        envp: &envp,
        execfn: path.as_bytes(),
        image_name: &resolved,
        ids: AuxIds {
            uid: t.creds.uid,
            euid: t.creds.euid,
            gid: t.creds.gid,
            egid: t.creds.egid,
        },
        random,
    };
    let read_interp = |p: &str| read_executable(t, p).map(|(d, _)| d);
    let loaded = loader::load(&mm, &args, &read_interp).map_err(|e| {
        log::debug!("execve {path}: {e}");
        e.errno()
    })?;

    kill_other_threads(t)?;
    // Point of no return.
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
    t.altstack = DISABLED_ALTSTACK;
    t.cpu = CpuState::new(loaded.entry, loaded.sp);
    let base = path.rsplit('/').next().unwrap_or(path).as_bytes();
    *t.handle.comm.lock().unwrap() = base[..base.len().min(15)].to_vec();
    if let Some(p) = t.kernel.tree().procs.get_mut(&t.tg.tgid) {
        p.did_exec = true;
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
