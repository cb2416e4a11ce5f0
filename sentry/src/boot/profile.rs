//! Learned seccomp profiles: the system calls a workload made in the sandbox, written as a
//! Docker/OCI seccomp profile that allows exactly those (`runsc-rs do --seccomp-profile-out
//! FILE`, the [`ANNOTATION`] on a container's spec), ready for `docker run --security-opt
//! seccomp=FILE` or a runc bundle's `linux.seccomp`.
//!
//! The kernel records every number its tasks make ([`crate::kernel::syscall_set`]), also the
//! ones the sentry answers with ENOSYS or EPERM: under runc the workload must get the host
//! kernel's answer to them, not EPERM from the profile. Numbers the syscall table cannot
//! name are left out with a warning on stderr. The profile also allows
//! [`RUNTIME_SYSCALLS`]: what runc itself calls after it installs the filter and before the
//! workload's first instruction.
//!
//! The output file is opened by the sandbox process before it isolates itself and drops its
//! privileges ([`ProfileFile::create`]) and written through that fd when the sandbox ends, so
//! the path is the one the operator named (command line or spec), never one the guest chose.

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The OCI annotation naming the host path of a container's learned profile. The sandbox of
/// the container's pod (the shim's or the OCI CLI's) writes it when it ends.
pub const ANNOTATION: &str = "dev.runsc-rs.seccomp-profile-out";

/// The sandbox process's option (the shim's and the OCI CLI's) carrying the annotation's
/// path from the spec to [`ProfileFile::from_sandbox_args`].
pub const SANDBOX_OPTION: &str = "--seccomp-profile-out";

/// System calls runc makes between installing the profile and the workload's first
/// instruction, which the workload itself may never make, each with why. Measured with
/// runc 1.1.5 (`strace -f` of `runc run` from its `prctl(PR_SET_SECCOMP)` to the workload's
/// `execve`) for `noNewPrivileges` false (Docker's default: the filter goes on before the
/// capabilities and identity are set) and true, and checked by `tests/tests/seccomp_profile.rs`.
/// The last eight (from `rt_sigprocmask`) were not seen in those runs, but the Go runtime can
/// make them on init's thread at any moment (signals, spinning locks, allocation); a profile
/// without them would fail now and then.
pub const RUNTIME_SYSCALLS: &[(&str, &str)] = &[
    (
        "execve",
        "runc's init execs the workload after installing the filter",
    ),
    (
        "capget",
        "init drops capabilities after the filter (noNewPrivileges false)",
    ),
    (
        "capset",
        "init drops capabilities after the filter (noNewPrivileges false)",
    ),
    (
        "prctl",
        "PR_SET_KEEPCAPS, PR_CAPBSET_DROP and PR_SET_NO_NEW_PRIVS after the filter",
    ),
    (
        "setgroups",
        "init sets the additional groups (noNewPrivileges false)",
    ),
    (
        "setgid",
        "init sets the process's group (noNewPrivileges false)",
    ),
    (
        "setuid",
        "init sets the process's user (noNewPrivileges false)",
    ),
    (
        "getppid",
        "init checks its parent did not die while it changed identity",
    ),
    ("chdir", "init enters process.cwd after changing identity"),
    ("getcwd", "init checks process.cwd"),
    (
        "openat",
        "init lists /proc/self/fd to mark inherited fds close-on-exec, and opens the exec FIFO",
    ),
    ("fstatfs", "init checks /proc/self/fd is on procfs"),
    ("getdents64", "init lists /proc/self/fd"),
    ("fcntl", "init marks inherited fds close-on-exec"),
    ("fstat", "Go's os.File on the fds init opens"),
    (
        "newfstatat",
        "init's executable lookup (exec.LookPath) and checks of process.cwd",
    ),
    ("faccessat2", "init's executable lookup (exec.LookPath)"),
    ("read", "init reads its sync pipe"),
    (
        "write",
        "init reports to runc over its sync pipe and writes the exec FIFO",
    ),
    ("close", "init closes its sync and FIFO fds"),
    ("getpid", "init (and the Go runtime's signal code)"),
    ("epoll_ctl", "Go's poller registers the fds init opens"),
    (
        "futex",
        "the Go runtime of init wakes and parks its other threads",
    ),
    (
        "rt_sigreturn",
        "the Go runtime's preemption signal (SIGURG) on init's thread",
    ),
    (
        "rt_sigprocmask",
        "the Go runtime's signal handling on init's thread",
    ),
    (
        "sigaltstack",
        "the Go runtime's signal handling on init's thread",
    ),
    ("sched_yield", "the Go runtime's spinning locks"),
    ("nanosleep", "the Go runtime's spinning locks (usleep)"),
    (
        "tgkill",
        "the Go runtime preempting or signalling its threads",
    ),
    (
        "mmap",
        "the Go runtime's allocator, when init allocates after the filter",
    ),
    ("munmap", "the Go runtime's allocator"),
    ("madvise", "the Go runtime's allocator"),
];

/// The architectures Docker's default profile lists for x86-64 hosts: 32-bit and x32
/// programs get the same names, resolved to their own numbers.
const ARCHITECTURES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp profile {path}: {source}")]
    Open {
        path: PathBuf,
        source: rustix::io::Errno,
    },
    #[error("seccomp profile {0}: not a regular file")]
    NotRegular(PathBuf),
    #[error("seccomp profile {0}: the file changed while it was opened")]
    Changed(PathBuf),
    #[error("the {ANNOTATION} annotation must be an absolute path, not {0:?}")]
    RelativeAnnotation(String),
    #[error("writing the seccomp profile {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A learned profile: the names it allows and the numbers it could not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Sorted and unique: the workload's calls and [`RUNTIME_SYSCALLS`].
    pub names: Vec<&'static str>,
    /// Recorded numbers the table has no name for (left out of the profile).
    pub unnamed: Vec<u64>,
}

impl Profile {
    /// The profile allowing the recorded `numbers`.
    pub fn learned(numbers: &[u64]) -> Profile {
        let mut names: Vec<&'static str> = RUNTIME_SYSCALLS.iter().map(|(n, _)| *n).collect();
        let mut unnamed = Vec::new();
        for &nr in numbers {
            match crate::syscalls::name(nr) {
                "unknown" => unnamed.push(nr),
                name => names.push(name),
            }
        }
        names.sort_unstable();
        names.dedup();
        Profile { names, unnamed }
    }

    /// Docker's seccomp profile format, which is also the OCI `linux.seccomp` section:
    /// every other call fails with EPERM (`defaultErrnoRet` 1), as Docker's default profile.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ARCHITECTURES,
            "syscalls": [{"names": self.names, "action": "SCMP_ACT_ALLOW"}],
        })
    }
}

/// The profile's output file, opened before the sandbox isolates itself.
#[derive(Debug)]
pub struct ProfileFile {
    path: PathBuf,
    file: std::fs::File,
}

impl ProfileFile {
    /// Opens `path` for the profile: an existing regular file is truncated, a missing one is
    /// created (mode 0644 less the umask), as the caller (the user of `runsc-rs do`; root for
    /// a container's sandbox). A symbolic link at the last component is refused (ELOOP: whoever
    /// can write the directory must not redirect the write), as is anything but a regular file
    /// (a FIFO or device is never opened for writing).
    ///
    /// # Errors
    /// The host's errors, `NotRegular`, `Changed` (the file was replaced between the checks).
    pub fn create(path: &Path) -> Result<ProfileFile, Error> {
        use rustix::fs::{Mode, OFlags};
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let probe = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let fd: OwnedFd = match probe {
            Err(rustix::io::Errno::NOENT) => rustix::fs::open(
                path,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map_err(open_err)?,
            Err(e) => return Err(open_err(e)),
            Ok(probe) => {
                let st = rustix::fs::fstat(&probe).map_err(open_err)?;
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFREG => {}
                    libc::S_IFLNK => return Err(open_err(rustix::io::Errno::LOOP)),
                    _ => return Err(Error::NotRegular(path.to_path_buf())),
                }
                let by_fd = format!("/proc/self/fd/{}", probe.as_raw_fd());
                let fd = rustix::fs::open(
                    by_fd.as_str(),
                    OFlags::WRONLY | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .map_err(open_err)?;
                let got = rustix::fs::fstat(&fd).map_err(open_err)?;
                if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(Error::Changed(path.to_path_buf()));
                }
                fd
            }
        };
        Ok(ProfileFile {
            path: path.to_path_buf(),
            file: std::fs::File::from(fd),
        })
    }

    /// Opens the path a spec's [`ANNOTATION`] names, if it has one (absolute paths only: the
    /// sandbox's working directory is no business of whoever wrote the spec).
    ///
    /// # Errors
    /// A relative path; those of [`ProfileFile::create`].
    pub fn from_annotation(value: &str) -> Result<ProfileFile, Error> {
        if !value.starts_with('/') {
            return Err(Error::RelativeAnnotation(value.to_string()));
        }
        ProfileFile::create(Path::new(value))
    }

    /// The sandbox process's side of the annotation: opens the file its [`SANDBOX_OPTION`]
    /// names, if given (call before the Loader isolates the process).
    ///
    /// # Errors
    /// The option has no value; those of [`ProfileFile::from_annotation`].
    pub fn from_sandbox_args(args: &[String]) -> Result<Option<ProfileFile>, Error> {
        let Some(i) = args.iter().position(|a| a == SANDBOX_OPTION) else {
            return Ok(None);
        };
        let value = args.get(i + 1).map_or("", String::as_str);
        ProfileFile::from_annotation(value).map(Some)
    }

    /// The [`ANNOTATION`] of a spec's annotations, as the sandbox's arguments.
    pub fn sandbox_args(
        annotations: Option<&std::collections::HashMap<String, String>>,
    ) -> Vec<String> {
        match annotations.and_then(|a| a.get(ANNOTATION)) {
            Some(path) => vec![SANDBOX_OPTION.to_string(), path.clone()],
            None => Vec::new(),
        }
    }

    /// When the sandbox ends: writes the profile of what `loader`'s applications made,
    /// reporting a failure in the log (the sandbox's end is not changed by it).
    pub fn finish(self, loader: &super::loader::Loader) {
        if let Some((numbers, dropped)) = loader.recorded_syscalls() {
            if let Err(e) = self.write(&numbers, dropped) {
                log::error!("{e}");
            }
        }
    }

    /// Writes the profile allowing `numbers` (as [`crate::boot::loader::Loader::recorded_syscalls`]
    /// gives them) and warns on stderr about numbers it leaves out.
    ///
    /// # Errors
    /// The write failed.
    pub fn write(mut self, numbers: &[u64], dropped: bool) -> Result<Profile, Error> {
        let profile = Profile::learned(numbers);
        if !profile.unnamed.is_empty() || dropped {
            let list: Vec<String> = profile.unnamed.iter().map(|n| format!("{n:#x}")).collect();
            eprintln!(
                "runsc-rs: seccomp profile {}: left out system-call numbers without a name: {}{}",
                self.path.display(),
                list.join(", "),
                if dropped { " and more" } else { "" }
            );
        }
        let written = serde_json::to_writer_pretty(&mut self.file, &profile.to_json())
            .map_err(std::io::Error::from)
            .and_then(|()| self.file.write_all(b"\n"));
        written.map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        log::info!(
            "seccomp profile {}: {} system calls",
            self.path.display(),
            profile.names.len()
        );
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_calls_adds_the_runtime_and_skips_unknown_numbers() {
        let p = Profile::learned(&[0, 1, 1, 59, 101, 0x4000_0000, 999]);
        assert!(p.names.contains(&"read"));
        assert!(p.names.contains(&"write"));
        // ptrace is unsupported in the sentry, but the workload tried it: under runc it must
        // get the host kernel's answer, not the profile's EPERM.
        assert!(p.names.contains(&"ptrace"));
        assert_eq!(p.names.iter().filter(|n| **n == "execve").count(), 1);
        for (name, _) in RUNTIME_SYSCALLS {
            assert!(p.names.contains(name));
        }
        assert_eq!(p.unnamed, [0x4000_0000, 999]);
        let json = p.to_json();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        assert_eq!(json["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(
            json["syscalls"][0]["names"].as_array().unwrap().len(),
            p.names.len()
        );
    }

    #[test]
    fn output_file_rules() {
        let base = std::env::temp_dir().join(format!("runsc-rs-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let out = base.join("p.json");
        std::fs::write(&out, b"old contents that are longer").unwrap();
        ProfileFile::create(&out)
            .unwrap()
            .write(&[0], false)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert!(v["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .contains(&"read".into()));
        let link = base.join("link");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        assert!(matches!(
            ProfileFile::create(&link),
            Err(Error::Open {
                source: rustix::io::Errno::LOOP,
                ..
            })
        ));
        let fifo = base.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            ProfileFile::create(&fifo),
            Err(Error::NotRegular(_))
        ));
        assert!(matches!(
            ProfileFile::from_annotation("rel/p.json"),
            Err(Error::RelativeAnnotation(_))
        ));
        let _ = std::fs::remove_dir_all(&base);
    }
}
