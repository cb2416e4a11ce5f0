//! Booting a sandbox: memory file, platform, kernel, the first process.
//!
//! There is one boot path, the [`Loader`]: the containerd shim's sandbox process drives it
//! over the control channel ([`control`]), and `runsc-rs do` ([`run_command`]) drives it
//! in-process with the same calls (create, start, wait, destroy a container).
//!
//! Order of a boot ([`Loader::new`]): read (and for `--network sandbox` take) the host
//! namespace's network ([`netconf`]), isolate the process ([`sandbox`]: namespaces, an empty
//! root), create the memory file, drop capabilities, create the platform, install the seccomp
//! allowlist ([`seccomp`]). Then, per container: build its filesystem from host fds, load the
//! program through it, create its first address space and start the first application
//! instruction, all under the filter.

pub mod cgroup;
pub mod control;
pub mod loader;
pub mod netconf;
pub mod oci_seccomp;
pub mod profile;
pub mod sandbox;
pub mod seccomp;
pub mod spec;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use platform::CpuState;

use crate::auth::Creds;
use crate::elf::{self, AuxIds, ExecArgs, Program};
use crate::kernel::task::{register_thread, DISABLED_ALTSTACK};
use crate::kernel::{ExitStatus, FdTable, Kernel, Task, TaskHandle, TaskInit, ThreadGroup};
use crate::memory::MemoryFile;
use crate::mm::MemoryManager;
use crate::procfs;
use crate::vfs::inotify::FsNotify;
use crate::vfs::{
    Caller, Dentry, FileType, FsContext, Inode, MountNamespace, NewAttrs, NewNode, Resolver,
};
use loader::{
    ContainerFds, ContainerSpec, Isolation, Loader, LoaderConfig, MountKind, MountSpec,
    PidNamespaceSpec, ProcessRef, ProcessSpec, SpecRlimit, Stdio,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    #[error("installing the container's seccomp program: {0}")]
    TaskSeccomp(String),
    #[error("duplicating stdio: {0}")]
    Stdio(std::io::Error),
    #[error("{path}: {errno}")]
    Exec {
        path: String,
        errno: nix::errno::Errno,
    },
    #[error("setting up the filesystem: {what}: {errno}")]
    Mount {
        what: String,
        errno: nix::errno::Errno,
    },
    #[error("bad --volume {0:?}: expected HOST:GUEST[:ro] with an absolute GUEST")]
    BadVolume(String),
    #[error(
        "volume {0}: the host path is a symbolic link; name the file or directory it points to"
    )]
    VolumeSymlink(PathBuf),
    #[error(transparent)]
    Sandbox(#[from] sandbox::Error),
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    #[error(transparent)]
    Network(#[from] netconf::Error),
    #[error(transparent)]
    Profile(#[from] profile::Error),
    #[error("the PID namespace's init has exited")]
    PidNamespaceDead,
}

/// A host directory, regular file or Unix socket made visible in the sandbox (`--volume
/// HOST:GUEST[:ro]`, an OCI bind mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path (for messages and `/proc/mounts`: the sandbox gets it as an fd from
    /// [`open_bind_source`]).
    pub host: PathBuf,
    /// Absolute path in the sandbox.
    pub guest: String,
    pub readonly: bool,
}

impl std::str::FromStr for Volume {
    type Err = Error;

    fn from_str(s: &str) -> Result<Volume, Error> {
        let bad = || Error::BadVolume(s.to_string());
        let mut parts = s.split(':');
        let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let guest = parts
            .next()
            .filter(|g| g.starts_with('/'))
            .ok_or_else(bad)?;
        let readonly = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Volume {
            host: PathBuf::from(host),
            guest: normalize_guest(guest),
            readonly,
        })
    }
}

/// `/a//b/./c/` → `/a/b/c` (`..` is rejected by keeping it, which then fails to mount).
pub(crate) fn normalize_guest(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// What `runsc-rs do` runs: the caller's command in the caller's context.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub platform: String,
    pub strace: bool,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub volumes: Vec<Volume>,
    pub sandbox: sandbox::SandboxConfig,
    /// What the seccomp filter does with a violation; `None` only with
    /// `--unsafe-disable-seccomp`.
    pub seccomp: Option<seccomp::Mode>,
    /// Test hook: right after installing the filter, make a host system call outside the
    /// allowlist (`--test-only-seccomp-violation`).
    pub test_seccomp_violation: bool,
    /// Working directory of the first process, in the sandbox.
    pub cwd: PathBuf,
    /// The sandbox's hostname (`uname -n`).
    pub hostname: String,
    /// The first process's umask.
    pub umask: u32,
    /// The first process's resource limits: the caller's own.
    pub rlimits: Vec<SpecRlimit>,
    /// `--seccomp-profile-out`: where to write the seccomp profile learned from the
    /// system calls the sandbox's programs made ([`profile`]).
    pub seccomp_profile_out: Option<PathBuf>,
    /// `--host-uds`: what AF_UNIX sockets may do with host sockets in volumes.
    pub host_uds: crate::net::HostUds,
}

/// Finds `cmd` on `PATH` in the sandbox's filesystem, the way execvp does (names with a
/// slash are used as given).
fn resolve(fs: &FsContext, cmd: &str, path_var: &str) -> Option<Arc<Dentry>> {
    let cx = Caller::kernel();
    if cmd.contains('/') {
        return fs.resolve(&cx, cmd.as_bytes()).ok();
    }
    path_var.split(':').find_map(|d| {
        let dir = if d.is_empty() { "." } else { d };
        let d = fs.resolve(&cx, format!("{dir}/{cmd}").as_bytes()).ok()?;
        let st = d.inode.stat().ok()?;
        (FileType::from_mode(st.mode) == FileType::Regular && st.mode & 0o111 != 0).then_some(d)
    })
}

fn mount_err(what: &str) -> impl FnOnce(nix::errno::Errno) -> Error + '_ {
    move |errno| Error::Mount {
        what: what.to_string(),
        errno,
    }
}

/// The sandbox's mounts: an overlay of the root (host `/` or `--rootfs`) with a tmpfs upper
/// layer, more such overlays at `lowers` (the host's other filesystems under `/`, for
/// `runsc-rs do`), `/proc`, `/sys`, `/dev`, tmpfs at `/dev/shm`, devpts at `/dev/pts`, more tmpfs at `tmpfs`
/// (absolute, normalized paths with their root directory's mode), and the volumes; `/proc`
/// is `proc_root`. File data
/// of the tmpfs mounts and the overlays' upper layers lives in `memory`. `/tmp` is the root's
/// (writes to it stay in memory), as with runc. Returns the context and the `/dev/pts`
/// instance (where the container's host terminals get their numbers).
pub fn build_filesystem(
    memory: &Arc<MemoryFile>,
    root: OwnedFd,
    lowers: Vec<(String, OwnedFd)>,
    tmpfs: &[(String, u32)],
    volumes: Vec<(Volume, OwnedFd)>,
    proc_root: Arc<dyn Inode>,
    notify: &Arc<FsNotify>,
) -> Result<(Arc<FsContext>, Arc<crate::fs::devpts::DevPts>), Error> {
    use crate::fs::{dev, devpts, hostfs::HostNode, overlay, sys, tmpfs::TmpFs};
    let lower = HostNode::new_root(root, false).map_err(mount_err("opening the root"))?;
    let ovl = overlay::new_overlay(memory, lower).map_err(mount_err("creating the overlay"))?;
    let ns = MountNamespace::new(ovl, "overlay", "overlay", notify);
    let mount = |path: &str, root: Arc<dyn Inode>, fs_type, source: &str, ro| {
        let kind = root.file_type().map_err(mount_err(path))?;
        make_mountpoint(&ns, path.as_bytes(), kind).map_err(mount_err(path))?;
        ns.mount(path.as_bytes(), root, fs_type, source, ro);
        Ok::<(), Error>(())
    };
    for (path, fd) in lowers {
        let lower = HostNode::new_root(fd, false).map_err(mount_err(&path))?;
        let ovl = overlay::new_overlay(memory, lower).map_err(mount_err(&path))?;
        mount(&path, ovl, "overlay", "overlay", false)?;
    }
    mount("/proc", proc_root, "proc", "proc", false)?;
    mount(
        "/sys",
        sys::new_sys(procfs::host_cpus()),
        "sysfs",
        "sysfs",
        true,
    )?;
    let devfs: Arc<dyn Inode> = dev::new_dev(memory).map_err(mount_err("building /dev"))?;
    mount("/dev", devfs, "tmpfs", "devtmpfs", false)?;
    mount(
        "/dev/shm",
        TmpFs::new_root(memory, 0o1777),
        "tmpfs",
        "shm",
        false,
    )?;
    // As the OCI spec's default `/dev/pts` mount (containers and `runsc-rs do` alike).
    let devpts = devpts::DevPts::new(memory, devpts::DevPtsOptions::container())
        .map(Arc::new)
        .map_err(mount_err("building /dev/pts"))?;
    mount("/dev/pts", devpts.root(), "devpts", "devpts", false)?;
    for (path, mode) in tmpfs {
        mount(
            path,
            TmpFs::new_root(memory, *mode),
            "tmpfs",
            "tmpfs",
            false,
        )?;
    }
    for (v, fd) in volumes {
        let what = format!("volume {}", v.host.display());
        let root = HostNode::new_bind_root(fd, !v.readonly).map_err(mount_err(&what))?;
        let readonly = v.readonly || !root.writable();
        mount(
            &v.guest,
            root,
            "hostfs",
            &v.host.to_string_lossy(),
            readonly,
        )?;
    }
    Ok((FsContext::new(ns, 0o022), devpts))
}

/// Filesystems the sentry provides itself: host mounts at or under these are never shown.
const SENTRY_PROVIDED: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The host's other directory mounts under `/` (from `/proc/self/mountinfo`), opened before
/// the sandbox loses sight of them: after `pivot_root` the root fd reaches only the root
/// filesystem itself, so a host whose `/tmp` or `/home` is a separate filesystem would
/// otherwise show empty directories there. Each becomes a read-only lower layer under an
/// in-memory upper one, like `/`. Mounts that cannot be opened are left out (logged).
fn open_host_submounts() -> Vec<(String, OwnedFd)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<(String, OwnedFd)> = Vec::new();
    for line in info.lines() {
        // Field 5 is the mount point, with spaces and such escaped as octal (\040).
        let Some(raw) = line.split(' ').nth(4) else {
            continue;
        };
        let path = unescape_mountinfo(raw);
        let provided = SENTRY_PROVIDED
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")));
        if path == "/" || provided || out.iter().any(|(p, _)| *p == path) {
            continue;
        }
        match rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => out.push((path, fd)),
            Err(e) => log::debug!("host mount {path} left out of the sandbox: {e}"),
        }
    }
    out
}

/// `\040` → space, as /proc/self/mountinfo escapes mount points.
fn unescape_mountinfo(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How [`open_bind_source`] treats symbolic links in the source path.
#[derive(Debug, Clone, Copy)]
pub enum SourceWalk<'a> {
    /// Follow every symlink, as runc's mount(2) of a source does: the absolute path of an OCI
    /// spec written by containerd (the shim runs as root on the host, like runc).
    FollowAll,
    /// Refuse a symlink at the last component (ELOOP): `--volume HOST`, where whoever
    /// controls HOST's directory could otherwise swap the file the operator named for a
    /// link to one they did not (`/etc/shadow`) between the command line and the open.
    RefuseLastLink,
    /// Resolve the relative path beneath this directory (`openat2` `RESOLVE_BENEATH`, no magic
    /// links: `..` and absolute symlinks cannot leave it, EXDEV) and refuse a symlink at the
    /// last component: spec sources inside the bundle, whose rootfs is image content.
    Beneath(std::os::fd::BorrowedFd<'a>),
}

/// Opens the source of a bind mount for the sandbox, which has no host filesystem to open it
/// itself: a directory as an `O_PATH|O_DIRECTORY` fd (the root of a hostfs tree, walked one
/// component at a time by the sentry), a regular file open for I/O because it cannot be
/// reopened later: `O_RDONLY` when `readonly`, else `O_RDWR`, or `O_RDONLY` when the host
/// refuses writing (permissions, a read-only filesystem; logged), which makes the sentry
/// mount it read-only ([`crate::fs::hostfs::HostNode::new_file`] reads the access mode off
/// the fd).
///
/// The path is first opened `O_PATH`, and a regular file is reopened from that fd through
/// `/proc/self/fd` only after its type is checked, so a device, FIFO or socket is never
/// opened (opening one can block or have effects). A Unix socket is returned as that
/// `O_PATH` fd: the sandbox connects to it (`fs::hostfs::special`).
///
/// # Errors
/// The host's errors; ELOOP for a symlink `walk` refuses; ENXIO for a source that is
/// neither a directory, a regular file nor a Unix socket.
pub fn open_bind_source(
    path: &std::path::Path,
    readonly: bool,
    walk: SourceWalk<'_>,
) -> Result<OwnedFd, nix::errno::Errno> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let herr = |e: rustix::io::Errno| nix::errno::Errno::from_raw(e.raw_os_error());
    let o_path = OFlags::PATH | OFlags::CLOEXEC;
    let fd = match walk {
        SourceWalk::FollowAll => rustix::fs::open(path, o_path, Mode::empty()),
        SourceWalk::RefuseLastLink => {
            rustix::fs::open(path, o_path | OFlags::NOFOLLOW, Mode::empty())
        }
        SourceWalk::Beneath(dir) => rustix::fs::openat2(
            dir,
            path,
            o_path | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ),
    }
    .map_err(herr)?;
    let st = rustix::fs::fstat(&fd).map_err(herr)?;
    match st.st_mode & libc::S_IFMT {
        // A host Unix socket stays O_PATH: the sandbox connects through it, never opens it.
        libc::S_IFDIR | libc::S_IFSOCK => return Ok(fd),
        libc::S_IFREG => {}
        libc::S_IFLNK => return Err(nix::errno::Errno::ELOOP),
        _ => return Err(nix::errno::Errno::ENXIO),
    }
    let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let reopen = |access: OFlags| {
        rustix::fs::open(
            by_fd.as_str(),
            access | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
    };
    let file = if readonly {
        reopen(OFlags::RDONLY)
    } else {
        match reopen(OFlags::RDWR) {
            Err(
                e @ (rustix::io::Errno::ACCESS
                | rustix::io::Errno::ROFS
                | rustix::io::Errno::PERM
                | rustix::io::Errno::TXTBSY),
            ) => {
                log::warn!(
                    "bind mount source {}: the host refuses writing ({e}); mounted read-only",
                    path.display()
                );
                reopen(OFlags::RDONLY)
            }
            other => other,
        }
    }
    .map_err(herr)?;
    let got = rustix::fs::fstat(&file).map_err(herr)?;
    if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino) {
        return Err(nix::errno::Errno::ESTALE);
    }
    Ok(file)
}

/// Opens each volume's host directory or file (before the sandbox loses sight of the host).
fn open_volumes(volumes: &[Volume]) -> Result<Vec<(Volume, OwnedFd)>, Error> {
    volumes
        .iter()
        .map(|v| {
            let fd = open_bind_source(&v.host, v.readonly, SourceWalk::RefuseLastLink).map_err(
                |errno| match errno {
                    nix::errno::Errno::ELOOP => Error::VolumeSymlink(v.host.clone()),
                    errno => Error::Mount {
                        what: format!("volume {}", v.host.display()),
                        errno,
                    },
                },
            )?;
            Ok((v.clone(), fd))
        })
        .collect()
}

/// Makes `path` ready to have a filesystem whose root is of type `kind` mounted on it:
/// creates its missing parents as directories and `path` itself (in the overlay's upper
/// layer or an already mounted tmpfs) as a directory, or, for a file mount, as an empty
/// regular file, as runc does, so the mountpoint shows up in its parent's listing.
///
/// # Errors
/// ENOTDIR when `path` exists as a directory and `kind` is not one or the other way round
/// (Linux refuses such a mount the same way); the walk's and the filesystem's errors.
/// Binds `node` (the devpts node of a container's terminal) over `/dev/console` of `fs`, as
/// runc binds the console of a container's init there.
///
/// # Errors
/// Making the mountpoint failed.
pub fn bind_console(fs: &FsContext, node: Arc<dyn Inode>) -> Result<(), nix::errno::Errno> {
    make_mountpoint(&fs.ns, b"/dev/console", FileType::CharDevice)?;
    fs.ns
        .mount(b"/dev/console", node, "devpts", "devpts", false);
    Ok(())
}

fn make_mountpoint(
    ns: &MountNamespace,
    path: &[u8],
    kind: FileType,
) -> Result<(), nix::errno::Errno> {
    let r = Resolver::new(Caller::kernel(), ns.root(), ns);
    let mut cur = ns.root();
    let names: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let want_dir = !last || kind == FileType::Directory;
        cur = match r.child(&cur, name) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENOENT) => {
                let attrs = NewAttrs {
                    mode: if want_dir { 0o755 } else { 0o644 },
                    uid: 0,
                    gid: 0,
                };
                let node = if want_dir {
                    NewNode::Directory
                } else {
                    NewNode::Regular
                };
                cur.inode.create(&Caller::kernel(), name, node, attrs)?;
                r.child(&cur, name)?
            }
            Err(e) => return Err(e),
        };
        if last {
            // A symlink there is covered by the mount, as the path names it.
            let is_dir = cur.inode.file_type()? == FileType::Directory;
            let is_link = cur.inode.file_type()? == FileType::Symlink;
            if !is_link && is_dir != (kind == FileType::Directory) {
                return Err(nix::errno::Errno::ENOTDIR);
            }
        }
    }
    Ok(())
}

/// Duplicates one of our stdio descriptors for the sandbox's first process.
fn dup_stdio(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    fd.try_clone_to_owned().map_err(Error::Stdio)
}

/// The id `runsc-rs do` gives its one container.
const DO_CONTAINER: &str = "do";

/// `runsc-rs do`: boots a sandbox through the same [`Loader`] the containerd shim drives,
/// runs `cfg.argv` as the init of its one container and returns how it ended.
///
/// What differs from the shim's sandbox is input, not code: the rootfs is opened by
/// [`Isolation::SandboxWithRoot`] instead of arriving over a control channel, the seccomp
/// allowlist has no control-channel calls, the host's other mounts under `/` are read-only
/// lower layers ([`MountKind::HostLower`]), and the process spec is the caller's (hostname,
/// environment, working directory, umask).
///
/// # Errors
/// Failures before the program starts (no such command, bad executable, host setup).
pub fn run_command(cfg: &RunConfig) -> Result<ExitStatus, loader::Error> {
    // Opened while the host's filesystem is in sight and with the caller's privileges.
    let profile_out = match &cfg.seccomp_profile_out {
        Some(path) => Some(profile::ProfileFile::create(path).map_err(Error::from)?),
        None => None,
    };
    let volumes = open_volumes(&cfg.volumes)?;
    let lowers = if cfg.sandbox.rootfs == std::path::Path::new("/") {
        open_host_submounts()
    } else {
        Vec::new()
    };
    let stdio = Stdio {
        stdin: Some(dup_stdio(std::io::stdin().as_fd())?),
        stdout: Some(dup_stdio(std::io::stdout().as_fd())?),
        stderr: Some(dup_stdio(std::io::stderr().as_fd())?),
    };
    let loader = Loader::new(&LoaderConfig {
        platform: cfg.platform.clone(),
        strace: cfg.strace,
        isolation: Isolation::SandboxWithRoot(cfg.sandbox.clone()),
        seccomp: cfg.seccomp,
        control_channel: false,
        test_seccomp_violation: cfg.test_seccomp_violation,
        record_syscalls: profile_out.is_some(),
        host_uds: cfg.host_uds,
    })?;
    let rootfs = loader.take_root().ok_or(loader::Error::BadSpec(
        "the sandbox was entered without a rootfs",
    ))?;
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    for (path, fd) in lowers {
        mounts.push(MountSpec {
            kind: MountKind::HostLower {
                source: PathBuf::from(&path),
            },
            destination: path,
        });
        binds.push(fd);
    }
    for (v, fd) in volumes {
        mounts.push(MountSpec {
            destination: v.guest,
            kind: MountKind::Bind {
                source: v.host,
                readonly: v.readonly,
            },
        });
        binds.push(fd);
    }
    let spec = ContainerSpec {
        rootfs: cfg.sandbox.rootfs.clone(),
        hostname: Some(cfg.hostname.clone()),
        process: ProcessSpec {
            args: cfg.argv.clone(),
            env: cfg.env.clone(),
            cwd: cfg.cwd.to_string_lossy().into_owned(),
            umask: Some(cfg.umask),
            rlimits: cfg.rlimits.clone(),
            ..ProcessSpec::default()
        },
        mounts,
        pid_namespace: PidNamespaceSpec::Root,
        seccomp: None,
    };
    loader.create_container(DO_CONTAINER, spec, ContainerFds { rootfs, binds }, stdio)?;
    loader.start_container(DO_CONTAINER)?;
    let status = loader.wait_pid(DO_CONTAINER, &ProcessRef::Init)?;
    loader.destroy_container(DO_CONTAINER)?;
    // Init's exit killed every other process; give their threads a moment to leave.
    if !loader.wait_idle(std::time::Duration::from_secs(5)) {
        log::warn!("tasks still running after init exited");
    }
    if let Some(out) = profile_out {
        out.finish(&loader);
    }
    Ok(status)
}

/// A process to start in a booted kernel (a container's init, an exec, `runsc-rs do`'s
/// command).
pub struct ProcessArgs<'a> {
    /// argv; argv\[0\] is looked up on the environment's `PATH` as execvp does.
    pub argv: &'a [String],
    pub env: &'a [String],
    pub creds: Creds,
    pub fds: Arc<FdTable>,
    /// Root, cwd and umask.
    pub fs: Arc<FsContext>,
    /// The process's controlling terminal: it starts as the leader of a new session that
    /// this terminal controls, with itself in the foreground (as runc's `setsid()` +
    /// `TIOCSCTTY` before `execve`).
    pub ctty: Option<Arc<crate::tty::HostTty>>,
    /// The PID namespace the process lives in.
    pub pidns: Arc<crate::kernel::PidNamespace>,
    /// The Loader's container it belongs to.
    pub container: Arc<str>,
    /// Limits that differ from the defaults (checked: known resources, soft <= hard).
    pub rlimits: &'a [SpecRlimit],
    /// Starts with `no_new_privs` set.
    pub no_new_privs: bool,
    /// A validated seccomp program the process starts under.
    pub seccomp: Option<&'a [crate::kernel::seccomp::SockFilter]>,
}

/// A process [`start_process`] started.
pub struct Started {
    pub pid: i32,
    pub tg: Arc<ThreadGroup>,
}

/// `PATH` used when the environment has none (runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The file `argv[0]` names, found as execvp finds it (on `env`'s `PATH`, else runc's
/// default, unless the name has a slash), with `fs`'s root and cwd.
///
/// # Errors
/// NotFound when there is none.
pub fn find_program(fs: &FsContext, argv: &[String], env: &[String]) -> Result<Arc<Dentry>, Error> {
    let cmd = argv.first().ok_or_else(|| Error::NotFound(String::new()))?;
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    resolve(fs, cmd, path_var).ok_or_else(|| Error::NotFound(cmd.clone()))
}

/// Starts a new process (a new thread group with no parent in the sandbox) running `p.argv`.
///
/// # Errors
/// NotFound when argv\[0\] does not resolve, exec errors of the image and its interpreter,
/// platform and thread failures.
pub fn start_process(kernel: &Arc<Kernel>, p: ProcessArgs<'_>) -> Result<Started, Error> {
    let found = find_program(&p.fs, p.argv, p.env)?;
    let cmd = &p.argv[0];
    let argv: Vec<Vec<u8>> = p.argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let Program {
        exe,
        image,
        file,
        argv,
    } = elf::read_program(
        &p.fs,
        &Caller::kernel(),
        &kernel.memory,
        elf::ExecFile {
            name: found.path.clone(),
            dentry: found,
            name_inaccessible: false,
            comm_from_file: false,
        },
        &argv,
    )
    .map_err(|(path, errno)| Error::Exec {
        path: String::from_utf8_lossy(&path).into_owned(),
        errno,
    })?;
    let path = PathBuf::from(String::from_utf8_lossy(&exe.path).into_owned());

    let mm = Arc::new(MemoryManager::new(
        kernel.memory.clone(),
        kernel.platform.new_address_space()?,
    ));
    let envp: Vec<Vec<u8>> = p.env.iter().map(|e| e.as_bytes().to_vec()).collect();
    let mut limits = crate::kernel::thread_group::default_limits();
    for r in p.rlimits {
        if let Some(l) = limits.get_mut(r.resource as usize) {
            *l = crate::abi::Rlimit {
                cur: r.soft,
                max: r.hard,
            };
        }
    }
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).ok();
    let ids = AuxIds {
        uid: p.creds.uid,
        euid: p.creds.euid,
        gid: p.creds.gid,
        egid: p.creds.egid,
        secure: false,
    };
    let vdso = kernel
        .vdso
        .get(&kernel.memory)
        .map_err(|errno| Error::Exec {
            path: path.to_string_lossy().into_owned(),
            errno,
        })?;
    let args = ExecArgs {
        image: &image,
        argv: &argv,
        envp: &envp,
        execfn: cmd.as_bytes(),
        image_name: &path.to_string_lossy(),
        image_file: file,
        ids,
        random,
        stack_size: elf::stack_size(limits[libc::RLIMIT_STACK as usize].cur),
        min_sigstack: crate::kernel::sigframe::max_frame_size(),
        vdso: Some(&vdso),
    };
    let read_interp = |i: &str| elf::read_interp(&p.fs, &Caller::kernel(), &kernel.memory, i);
    let loaded = elf::load(&mm, &args, &read_interp).map_err(|source| Error::Load {
        path: path.clone(),
        source,
    })?;

    let pid = p.pidns.alloc(true).map_err(|_| Error::PidNamespaceDead)?;
    if let Some(tty) = &p.ctty {
        // A process without a parent in the sandbox leads its own session and group.
        tty.set_controlling(pid, pid);
    }
    let tg = Arc::new(ThreadGroup::new(pid, p.pidns.clone(), p.container.clone()));
    *tg.limits.lock().unwrap() = limits;
    crate::kernel::cpu_timers::arm(kernel, &tg);
    *tg.image.lock().unwrap() = crate::kernel::thread_group::ExecImage {
        exe: Some(exe),
        exe_deny: None,
        strings: loaded.strings,
        auxv: loaded.auxv.clone(),
    };
    let base = cmd.rsplit('/').next().unwrap_or(cmd).as_bytes();
    let handle = TaskHandle::new(pid, tg.clone(), base[..base.len().min(15)].to_vec());
    if p.no_new_privs {
        handle.seccomp.set_no_new_privs();
    }
    if let Some(prog) = p.seccomp {
        handle
            .seccomp
            .install(prog.to_vec())
            .map_err(|e| Error::TaskSeccomp(format!("{e:?}")))?;
    }
    {
        let mut tree = kernel.tree();
        tree.add_proc(tg.clone(), 0, libc::SIGCHLD);
        tree.tasks.insert(pid, handle.clone());
        register_thread(&handle, 0);
    }
    kernel.cgroups.enter_root(&tg);
    let init = TaskInit {
        kernel: kernel.clone(),
        handle,
        mm,
        cpu: CpuState::new(loaded.entry, loaded.sp),
        fds: p.fds,
        creds: p.creds,
        fs: p.fs,
        ns: kernel.initial_namespaces(),
        clear_child_tid: 0,
        altstack: DISABLED_ALTSTACK,
        vfork_done: None,
    };
    Task::spawn(init).map_err(Error::Spawn)?;
    Ok(Started { pid, tg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }

    #[test]
    fn volume_parsing() {
        let v: Volume = "/h:/g//x/:ro".parse().unwrap();
        assert_eq!(v.guest, "/g/x");
        assert!(v.readonly);
        assert!("/h:rel".parse::<Volume>().is_err());
        assert!("/h:/g:bad".parse::<Volume>().is_err());
    }

    #[test]
    fn filesystem_layout_with_rootfs_and_volume() {
        let base = std::env::temp_dir().join(format!("runsc-rs-boot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/etc")).unwrap();
        std::fs::create_dir_all(base.join("vol")).unwrap();
        std::fs::write(base.join("vol/data"), b"v").unwrap();
        let volumes: Vec<Volume> = vec![format!("{}:/mnt/vol:ro", base.join("vol").display())
            .parse()
            .unwrap()];
        let root = sandbox::RootFs::open(&base.join("root")).unwrap().into_fd();
        let memory = Arc::new(MemoryFile::new().unwrap());
        let (fs, _) = build_filesystem(
            &memory,
            root,
            Vec::new(),
            &[("/run".into(), 0o755)],
            open_volumes(&volumes).unwrap(),
            procfs::new_proc(
                std::sync::Weak::new(),
                crate::kernel::PidNamespace::new_root(),
            ),
            &Arc::default(),
        )
        .unwrap();
        let cx = Caller::kernel();
        let names = |p: &str| {
            let mut v: Vec<String> = fs
                .resolve(&cx, p.as_bytes())
                .unwrap()
                .inode
                .readdir(&cx)
                .unwrap()
                .into_iter()
                .map(|e| String::from_utf8(e.name).unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("/"), ["dev", "etc", "mnt", "proc", "run", "sys"]);
        assert_eq!(names("/mnt/vol"), ["data"]);
        assert!(names("/dev").contains(&"null".to_string()));
        let vol = fs.resolve(&cx, b"/mnt/vol").unwrap();
        assert!(vol.mount.readonly);
        assert_eq!(fs.resolve(&cx, b"/mnt/vol/..").unwrap().path, b"/mnt");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn file_volumes_mount_on_new_or_existing_files() {
        let base = std::env::temp_dir().join(format!("runsc-rs-bootfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/etc/dir")).unwrap();
        std::fs::write(base.join("root/etc/hostname"), b"image\n").unwrap();
        std::fs::write(base.join("motd"), b"from the host\n").unwrap();
        std::fs::write(base.join("hostname"), b"box\n").unwrap();
        let spec = |host: &str, guest: &str| -> Volume {
            format!("{}:{guest}", base.join(host).display())
                .parse()
                .unwrap()
        };
        let volumes = vec![
            spec("motd", "/etc/new/motd.test:ro"),
            spec("hostname", "/etc/hostname"),
        ];
        let root = sandbox::RootFs::open(&base.join("root")).unwrap().into_fd();
        let memory = Arc::new(MemoryFile::new().unwrap());
        let (fs, _) = build_filesystem(
            &memory,
            root,
            Vec::new(),
            &[],
            open_volumes(&volumes).unwrap(),
            procfs::new_proc(
                std::sync::Weak::new(),
                crate::kernel::PidNamespace::new_root(),
            ),
            &Arc::default(),
        )
        .unwrap();
        let cx = Caller::kernel();
        let names = |p: &str| -> Vec<Vec<u8>> {
            let d = fs.resolve(&cx, p.as_bytes()).unwrap();
            d.inode
                .readdir(&cx)
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect()
        };
        // A missing mountpoint is created as an empty file (and its directory), so listings
        // show it; stat through the path is the host file's.
        assert!(names("/etc/new").contains(&b"motd.test".to_vec()));
        let motd = fs.resolve(&cx, b"/etc/new/motd.test").unwrap();
        assert_eq!(motd.inode.stat().unwrap().size, 14);
        assert_eq!(motd.inode.contents().unwrap(), b"from the host\n");
        assert!(motd.mount.readonly);
        assert_eq!(motd.mount.fs_type, "hostfs");
        let host = fs.resolve(&cx, b"/etc/hostname").unwrap();
        assert_eq!(host.inode.contents().unwrap(), b"box\n");
        assert!(!host.mount.readonly);
        assert_eq!(
            names("/etc").iter().filter(|n| *n == b"hostname").count(),
            1
        );

        // A file cannot cover a directory, nor a directory a file (ENOTDIR, as Linux).
        for (host, guest) in [("motd", "/etc/dir"), ("", "/etc/hostname")] {
            let v = spec(host, guest);
            let root = sandbox::RootFs::open(&base.join("root")).unwrap().into_fd();
            let err = build_filesystem(
                &memory,
                root,
                Vec::new(),
                &[],
                open_volumes(&[v]).unwrap(),
                procfs::new_proc(
                    std::sync::Weak::new(),
                    crate::kernel::PidNamespace::new_root(),
                ),
                &Arc::default(),
            )
            .err();
            assert!(
                matches!(
                    err,
                    Some(Error::Mount {
                        errno: nix::errno::Errno::ENOTDIR,
                        ..
                    })
                ),
                "{guest}: {err:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn bind_sources_open_by_kind_and_symlink_rule() {
        use std::os::fd::AsRawFd;
        let base = std::env::temp_dir().join(format!("runsc-rs-source-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let file = base.join("file");
        std::fs::write(&file, b"x").unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let access = |fd: &OwnedFd| {
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap()
        };
        let open = |p: &std::path::Path, ro, walk| open_bind_source(p, ro, walk);

        let rw = open(&file, false, SourceWalk::RefuseLastLink).unwrap();
        assert_eq!(access(&rw) & libc::O_ACCMODE, libc::O_RDWR);
        let ro = open(&file, true, SourceWalk::RefuseLastLink).unwrap();
        assert_eq!(access(&ro) & libc::O_ACCMODE, libc::O_RDONLY);
        let dir = open(&base, false, SourceWalk::RefuseLastLink).unwrap();
        assert_ne!(access(&dir) & libc::O_PATH, 0);
        // A symlink at the last component: refused for --volume, followed for a spec's path.
        assert_eq!(
            open(&link, true, SourceWalk::RefuseLastLink).err(),
            Some(nix::errno::Errno::ELOOP)
        );
        assert!(matches!(
            open_volumes(&[format!("{}:/x", link.display()).parse().unwrap()]),
            Err(Error::VolumeSymlink(_))
        ));
        assert!(open(&link, true, SourceWalk::FollowAll).is_ok());
        // A FIFO is never opened (that would block); devices neither.
        let fifo = base.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            open(&fifo, true, SourceWalk::FollowAll).err(),
            Some(nix::errno::Errno::ENXIO)
        );
        assert_eq!(
            open(
                std::path::Path::new("/dev/null"),
                true,
                SourceWalk::FollowAll
            )
            .err(),
            Some(nix::errno::Errno::ENXIO)
        );
        // A file the host will not open for writing (a running executable: ETXTBSY) is
        // opened read-only instead, which the sentry mounts read-only.
        let exe = std::env::current_exe().unwrap();
        let fd = open(&exe, false, SourceWalk::FollowAll).unwrap();
        assert_eq!(access(&fd) & libc::O_ACCMODE, libc::O_RDONLY);
        let node = crate::fs::hostfs::HostNode::new_file(fd, true).unwrap();
        assert!(!node.writable());
        let _ = std::fs::remove_dir_all(&base);
    }
}
