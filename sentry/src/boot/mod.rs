//! Booting a sandbox: memory file, platform, kernel, the first process.
//!
//! `runsc-rs do` runs [`run_command`] in-process; the containerd shim's sandbox process will
//! drive the same pieces through a `Loader`.

pub mod control;
pub mod loader;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform::CpuState;

use crate::kernel::task::Creds;
use crate::kernel::{ExitStatus, FdTable, Kernel, KernelConfig, Task, TaskInit, ThreadGroup};
use crate::loader::{self as elf, AuxIds, ExecArgs};
use crate::memory::MemoryFile;
use crate::mm::MemoryManager;
use crate::vfs::host::HostFile;
use crate::vfs::OpenFile;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Memory(#[from] crate::memory::Error),
    #[error(transparent)]
    Platform(#[from] platform::Error),
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Load { path: PathBuf, source: elf::Error },
    #[error("starting the init task: {0}")]
    Spawn(std::io::Error),
    #[error("duplicating stdio: {0}")]
    Stdio(std::io::Error),
}

/// What `runsc-rs do` runs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub platform: String,
    pub strace: bool,
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

/// Finds `cmd` on `PATH` the way execvp does (names with a slash are used as given).
fn resolve(cmd: &str, path_var: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    path_var
        .split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(cmd))
        .find(|p| p.is_file())
}

fn stdio_file(fd: std::os::fd::BorrowedFd<'_>, flags: i32) -> Result<Arc<OpenFile>, Error> {
    let owned: OwnedFd = fd.try_clone_to_owned().map_err(Error::Stdio)?;
    Ok(OpenFile::new(Arc::new(HostFile::new(owned)), flags as u32))
}

/// Boots a sandbox, runs `cfg.argv` as its init and returns how it ended.
///
/// # Errors
/// Failures before the program starts (no such command, bad executable, host setup).
pub fn run_command(cfg: &RunConfig) -> Result<ExitStatus, Error> {
    let memory = Arc::new(MemoryFile::new()?);
    let platform = platform::create(&cfg.platform, memory.fd())?;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "runsc-rs".into());
    let kernel = Kernel::new(
        platform.clone(),
        memory.clone(),
        KernelConfig {
            strace: cfg.strace,
            hostname,
        },
    );

    let cmd = cfg
        .argv
        .first()
        .ok_or_else(|| Error::NotFound(String::new()))?;
    let path_var = cfg
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let path = resolve(cmd, path_var).ok_or_else(|| Error::NotFound(cmd.clone()))?;
    let image = std::fs::read(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;

    let mm = Arc::new(MemoryManager::new(
        memory.clone(),
        platform.new_address_space()?,
    ));
    let argv: Vec<Vec<u8>> = cfg.argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = cfg.env.iter().map(|e| e.as_bytes().to_vec()).collect();
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).ok();
    let creds = Creds::default();
    let ids = AuxIds {
        uid: creds.uid,
        euid: creds.euid,
        gid: creds.gid,
        egid: creds.egid,
    };
    let args = ExecArgs {
        image: &image,
        argv: &argv,
        envp: &envp,
        execfn: cmd.as_bytes(),
        image_name: &path.to_string_lossy(),
        ids,
        random,
    };
    let read_interp = |p: &str| {
        std::fs::read(p)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))
    };
    let loaded = elf::load(&mm, &args, &read_interp).map_err(|source| Error::Load {
        path: path.clone(),
        source,
    })?;

    let fds = Arc::new(FdTable::new());
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    fds.install_at(0, stdio_file(stdin.as_fd(), libc::O_RDONLY)?, false);
    fds.install_at(1, stdio_file(stdout.as_fd(), libc::O_WRONLY)?, false);
    fds.install_at(2, stdio_file(stderr.as_fd(), libc::O_WRONLY)?, false);

    let tid = kernel.alloc_tid();
    let tg = Arc::new(ThreadGroup::new(tid, 0));
    let init = TaskInit {
        kernel: kernel.clone(),
        tid,
        tg: tg.clone(),
        mm,
        cpu: CpuState::new(loaded.entry, loaded.sp),
        fds,
        creds,
        umask: 0o022,
    };
    let handle = Task::spawn(init).map_err(Error::Spawn)?;
    let status = tg.wait();
    let _ = handle.join();
    Ok(status)
}
