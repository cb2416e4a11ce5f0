//! OCI runtime spec → what the sandbox's Loader needs: the one mapping, used by the
//! containerd shim and by the OCI runtime CLI (`runsc-rs create/run/exec`).
//!
//! Bind mounts of host directories and regular files and tmpfs mounts reach the sandbox;
//! `proc`, `sysfs`, `devpts`, `mqueue` and `cgroup` are the sentry's own. The host files a
//! container needs (its rootfs, bind sources) are opened here, by the caller that runs on the
//! host side ([`open_sources`]), and travel to the sandbox as file descriptors.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Process, Spec};

use super::loader::{
    ContainerSpec, MountKind, MountSpec, PidNamespaceSpec, ProcessSpec, SpecCapabilities,
    SpecRlimit,
};
use super::{open_bind_source, SourceWalk};

/// What can be wrong with a bundle's spec or the host paths it names.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the OCI spec {path}: {source}")]
    Load {
        path: PathBuf,
        source: oci_spec::OciSpecError,
    },
    #[error("invalid OCI spec: {0}")]
    Invalid(&'static str),
    #[error("invalid exec process spec: {0}")]
    BadExecSpec(#[source] serde_json::Error),
    #[error("linux.seccomp: {0}")]
    Seccomp(#[from] super::oci_seccomp::ProfileError),
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads `bundle/config.json`.
///
/// # Errors
/// A missing or malformed spec.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).map_err(|source| Error::Load { path, source })
}

/// The container's root directory on the host: `root.path`, relative to the bundle;
/// `bundle/rootfs` by default.
pub fn rootfs(spec: &Spec, bundle: &Path) -> PathBuf {
    spec.root()
        .as_ref()
        .map(|r| bundle.join(r.path()))
        .unwrap_or_else(|| bundle.join("rootfs"))
}

/// The container as the Loader sees it (rootfs as [`rootfs`]).
///
/// # Errors
/// `Invalid` when there is no process or its args are empty.
pub fn container(spec: &Spec, bundle: &Path) -> Result<ContainerSpec> {
    let process = spec
        .process()
        .as_ref()
        .ok_or(Error::Invalid("no process"))?;
    Ok(ContainerSpec {
        rootfs: rootfs(spec, bundle),
        hostname: spec.hostname().clone(),
        process: process_spec(process)?,
        mounts: spec
            .mounts()
            .iter()
            .flatten()
            .filter_map(mount_spec)
            .collect(),
        pid_namespace: pid_namespace(spec),
        seccomp: spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(super::oci_seccomp::compile)
            .transpose()?,
    })
}

/// The CRI annotation naming the pod a container belongs to: containers of one pod share
/// one shim (and one sandbox), and a pod's shared PID namespace is its sandbox container's.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The container's PID namespace from `linux.namespaces`: a `pid` entry with a `path` joins
/// an existing namespace, which in the sandbox is the pod's (the first container's, when the
/// spec does not name the pod); without a path, or without a `pid` entry, the container gets
/// its own.
fn pid_namespace(spec: &Spec) -> PidNamespaceSpec {
    let joins = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_some());
    if !joins {
        return PidNamespaceSpec::New;
    }
    let pod = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(SANDBOX_ID))
        .cloned()
        .unwrap_or_default();
    PidNamespaceSpec::Share(pod)
}

/// The sandbox's view of one OCI mount: bind mounts of host directories and regular files,
/// and tmpfs; the rest is the sentry's own (`proc`, `sysfs`, `devpts`, `mqueue`, `cgroup`) or
/// unsupported.
fn mount_spec(m: &Mount) -> Option<MountSpec> {
    let destination = m.destination().to_string_lossy().into_owned();
    let options = m.options().clone().unwrap_or_default();
    let has = |o: &str| options.iter().any(|x| x == o);
    let typ = m.typ().as_deref().unwrap_or("");
    let kind = if typ == "bind" || has("bind") || has("rbind") {
        let source = m.source().clone()?;
        // Device nodes, FIFOs and sockets are never opened for the sandbox (a bind of one is
        // left out); a missing source fails the create when it is opened, as with runc.
        if let Ok(meta) = std::fs::metadata(&source) {
            if !meta.is_dir() && !meta.is_file() {
                log::info!(
                    "bind mount of {} at {destination} skipped: only directories and regular \
                     files can be bound",
                    source.display()
                );
                return None;
            }
        }
        MountKind::Bind {
            source,
            readonly: has("ro"),
        }
    } else if typ == "tmpfs" {
        MountKind::tmpfs(&options)
    } else {
        log::debug!("{typ} mount at {destination}: provided by the sentry or ignored");
        return None;
    };
    Some(MountSpec { destination, kind })
}

/// Opens a directory of the host for the sandbox (`O_PATH|O_DIRECTORY`: a handle to walk
/// from, no access to its contents by itself).
fn open_dir(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Opens one bind mount source for the sandbox (see [`open_bind_source`]). Sources inside the
/// bundle (relative ones are relative to it) are resolved beneath it with a symlink at the
/// last component refused: the rootfs there is image content, and a link planted in it must
/// not lead the root-owned shim to a host file. Absolute sources elsewhere are followed as
/// runc's mount(2) follows them: containerd wrote them (CRI's `/etc/hosts`, `resolv.conf`,
/// volumes under its state directory) and the shim, like runc, runs as root on the host.
fn open_source(path: &Path, bundle: &Path, readonly: bool) -> Result<OwnedFd> {
    let io = |errno: nix::errno::Errno| Error::Open {
        path: path.to_path_buf(),
        source: errno.into(),
    };
    let inside = if path.is_relative() {
        Some(path)
    } else {
        path.strip_prefix(bundle).ok()
    };
    let fd = match inside {
        Some(rel) => {
            let dir = std::fs::File::open(bundle).map_err(|source| Error::Open {
                path: bundle.to_path_buf(),
                source,
            })?;
            let rel = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            open_bind_source(rel, readonly, SourceWalk::Beneath(dir.as_fd()))
        }
        None => open_bind_source(path, readonly, SourceWalk::FollowAll),
    };
    fd.map_err(io)
}

/// What the sandbox receives for a container's host paths: the rootfs directory, then the
/// source of each bind mount in spec order (a directory fd, or a regular file open for I/O:
/// `O_RDWR`, or `O_RDONLY` for `ro` binds and files the host will not let be written).
///
/// # Errors
/// A source cannot be opened.
pub fn open_sources(c: &ContainerSpec, bundle: &Path) -> Result<Vec<OwnedFd>> {
    let rootfs = open_dir(&c.rootfs)?;
    let binds = c.mounts.iter().filter_map(|m| match &m.kind {
        MountKind::Bind { source, readonly } => Some(open_source(source, bundle, *readonly)),
        MountKind::HostLower { source } => Some(open_dir(source)),
        MountKind::Tmpfs { .. } => None,
    });
    std::iter::once(Ok(rootfs)).chain(binds).collect()
}

/// The process part of a spec (the container's or an exec's).
///
/// # Errors
/// `Invalid` for empty args.
pub fn process_spec(p: &Process) -> Result<ProcessSpec> {
    let terminal = p.terminal().unwrap_or(false);
    let args = p.args().clone().unwrap_or_default();
    if args.first().is_none_or(String::is_empty) {
        return Err(Error::Invalid("process.args is empty"));
    }
    let user = p.user();
    Ok(ProcessSpec {
        args,
        env: p.env().clone().unwrap_or_default(),
        cwd: p.cwd().to_string_lossy().into_owned(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        capabilities: p.capabilities().as_ref().map(SpecCapabilities::from),
        rlimits: p.rlimits().iter().flatten().map(SpecRlimit::from).collect(),
        umask: user.umask(),
        terminal,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        seccomp: None,
    })
}

/// The exec process spec containerd sends (JSON of an OCI `Process`).
///
/// # Errors
/// Malformed JSON or an unsupported process.
pub fn exec_process(json: &[u8]) -> Result<ProcessSpec> {
    let p: Process = serde_json::from_slice(json).map_err(Error::BadExecSpec)?;
    process_spec(&p)
}

/// The network namespace the spec asks to join: a `network` entry of `linux.namespaces`
/// with a path (a CNI-prepared pod namespace, `ctr run --with-ns network:PATH`), whose links
/// the sandbox's own stack takes (`--network sandbox`). `None` for an entry without a path
/// (a new namespace) or no entry; either way the sandbox then makes a new one with loopback
/// only.
pub fn network_namespace(spec: &Spec) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|ns| ns.typ() == LinuxNamespaceType::Network)?
        .path()
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESS: &str = r#"{"terminal":false,"user":{"uid":1000,"gid":100,"additionalGids":[10]},
        "args":["/bin/sh","-c","echo hi"],"env":["PATH=/bin"],"cwd":"/tmp"}"#;

    #[test]
    fn exec_specs_convert() {
        let p = exec_process(PROCESS.as_bytes()).unwrap();
        assert_eq!(p.args, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(
            (p.uid, p.gid, p.additional_gids.as_slice()),
            (1000, 100, &[10][..])
        );
        assert_eq!(p.cwd, "/tmp");
        assert_eq!(p.env, ["PATH=/bin"]);
    }

    #[test]
    fn rlimits_pass_by_number_and_unlimited_stays_unlimited() {
        assert!(exec_process(PROCESS.as_bytes()).unwrap().rlimits.is_empty());
        let json = r#"{"user":{"uid":0,"gid":0},"args":["/bin/true"],"cwd":"/",
            "rlimits":[{"type":"RLIMIT_NOFILE","hard":4096,"soft":512},
            {"type":"RLIMIT_STACK","hard":18446744073709551615,"soft":1048576}]}"#;
        let limits = exec_process(json.as_bytes()).unwrap().rlimits;
        assert_eq!(
            limits,
            [
                SpecRlimit {
                    resource: libc::RLIMIT_NOFILE,
                    soft: 512,
                    hard: 4096
                },
                SpecRlimit {
                    resource: libc::RLIMIT_STACK,
                    soft: 1 << 20,
                    hard: u64::MAX
                },
            ]
        );
    }

    #[test]
    fn capabilities_pass_by_name_and_their_absence_is_none() {
        assert_eq!(exec_process(PROCESS.as_bytes()).unwrap().capabilities, None);
        let json = r#"{"user":{"uid":0,"gid":0},"args":["/bin/true"],"cwd":"/",
            "capabilities":{"bounding":["CAP_KILL","CAP_CHOWN"],"effective":["CAP_CHOWN"],
            "permitted":["CAP_CHOWN"]}}"#;
        let caps = exec_process(json.as_bytes()).unwrap().capabilities.unwrap();
        assert_eq!(caps.bounding, ["CHOWN", "KILL"]);
        assert_eq!(caps.effective, ["CHOWN"]);
        assert_eq!(caps.permitted, ["CHOWN"]);
        assert!(caps.inheritable.is_empty() && caps.ambient.is_empty());
    }

    #[test]
    fn terminal_passes_and_empty_args_are_refused() {
        let tty = PROCESS.replace(r#""terminal":false"#, r#""terminal":true"#);
        assert!(exec_process(tty.as_bytes()).unwrap().terminal);
        let empty = PROCESS.replace(r#"["/bin/sh","-c","echo hi"]"#, "[]");
        assert!(matches!(
            exec_process(empty.as_bytes()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn rootfs_is_relative_to_the_bundle() {
        let spec: Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"hostname":"box","process":{PROCESS}}}"#
        ))
        .unwrap();
        let c = container(&spec, Path::new("/b")).unwrap();
        assert_eq!(c.rootfs, Path::new("/b/rootfs"));
        assert_eq!(c.hostname.as_deref(), Some("box"));
    }

    #[test]
    fn bind_and_tmpfs_mounts_convert() {
        let dir = std::env::temp_dir();
        let spec: Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","process":{PROCESS},"mounts":[
                {{"destination":"/proc","type":"proc","source":"proc"}},
                {{"destination":"/run","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}},
                {{"destination":"/data","type":"bind","source":"{0}","options":["rbind","ro"]}},
                {{"destination":"/etc/hosts","type":"bind","source":"/etc/hosts","options":["rbind"]}}
            ]}}"#,
            dir.display()
        ))
        .unwrap();
        let c = container(&spec, Path::new("/b")).unwrap();
        assert_eq!(
            c.mounts,
            [
                MountSpec {
                    destination: "/run".into(),
                    kind: MountKind::Tmpfs { mode: 0o755 }
                },
                MountSpec {
                    destination: "/data".into(),
                    kind: MountKind::Bind {
                        source: dir.clone(),
                        readonly: true
                    }
                },
                MountSpec {
                    destination: "/etc/hosts".into(),
                    kind: MountKind::Bind {
                        source: "/etc/hosts".into(),
                        readonly: false
                    }
                },
            ]
        );
        let mut c = c;
        c.rootfs = PathBuf::from("/");
        let fds = open_sources(&c, Path::new("/b")).unwrap();
        assert_eq!(fds.len(), 3);
        // The file is open for I/O (the sandbox cannot reopen it), read-write as asked.
        assert_eq!(access_mode(&fds[2]), libc::O_RDWR);
    }

    fn access_mode(fd: &OwnedFd) -> i32 {
        use std::os::fd::AsRawFd;
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        fl & libc::O_ACCMODE
    }

    /// Sources inside the bundle resolve beneath it; a symlink at the last component or a
    /// `..` out of the bundle is refused, so image content cannot point the shim at a host
    /// file. Absolute sources elsewhere are followed (containerd wrote them).
    #[test]
    fn bundle_sources_cannot_escape() {
        let base = std::env::temp_dir().join(format!("runsc-rs-spec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let bundle = base.join("bundle");
        std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
        std::fs::write(base.join("outside"), b"host").unwrap();
        std::fs::write(bundle.join("note"), b"note").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), bundle.join("rootfs/etc/link")).unwrap();
        std::os::unix::fs::symlink("/", bundle.join("rootfs/root-link")).unwrap();
        let open = |p: &str, ro: bool| open_source(Path::new(p), &bundle, ro);

        let note = open("note", true).unwrap();
        assert_eq!(access_mode(&note), libc::O_RDONLY);
        let abs = bundle.join("note");
        assert!(open(abs.to_str().unwrap(), false).is_ok());
        let errno = |r: Result<OwnedFd>| match r {
            Err(Error::Open { source, .. }) => source.raw_os_error(),
            other => panic!("{other:?}"),
        };
        assert_eq!(errno(open("rootfs/etc/link", false)), Some(libc::ELOOP));
        let link = bundle.join("rootfs/etc/link");
        assert_eq!(
            errno(open(link.to_str().unwrap(), false)),
            Some(libc::ELOOP)
        );
        assert_eq!(errno(open("../outside", false)), Some(libc::EXDEV));
        assert_eq!(
            errno(open("rootfs/root-link/etc/hostname", true)),
            Some(libc::EXDEV)
        );
        // Outside the bundle: followed, as runc does.
        let outside_link = base.join("outside-link");
        std::os::unix::fs::symlink(base.join("outside"), &outside_link).unwrap();
        assert!(open(outside_link.to_str().unwrap(), true).is_ok());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn network_namespace_path_is_found() {
        let spec = |namespaces: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":{namespaces}}}}}"#
            ))
            .unwrap()
        };
        let joined = spec(r#"[{"type":"pid"},{"type":"network","path":"/var/run/netns/p1"}]"#);
        assert_eq!(
            network_namespace(&joined),
            Some(PathBuf::from("/var/run/netns/p1"))
        );
        assert_eq!(network_namespace(&spec(r#"[{"type":"network"}]"#)), None);
        assert_eq!(network_namespace(&spec(r#"[{"type":"pid"}]"#)), None);
    }

    fn with_linux(linux: &str, annotations: &str) -> PidNamespaceSpec {
        let spec: Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","process":{PROCESS},"linux":{linux}{annotations}}}"#
        ))
        .unwrap();
        container(&spec, Path::new("/b")).unwrap().pid_namespace
    }

    #[test]
    fn pid_namespace_maps_from_linux_namespaces() {
        let pod = r#","annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}"#;
        let own = r#"{"namespaces":[{"type":"mount"},{"type":"pid"}]}"#;
        let joined = r#"{"namespaces":[{"type":"pid","path":"/proc/42/ns/pid"},{"type":"ipc"}]}"#;
        let none = r#"{"namespaces":[{"type":"mount"},{"type":"network"}]}"#;
        assert_eq!(with_linux(own, pod), PidNamespaceSpec::New);
        assert_eq!(with_linux(own, ""), PidNamespaceSpec::New);
        assert_eq!(
            with_linux(joined, pod),
            PidNamespaceSpec::Share("pod1".into())
        );
        assert_eq!(
            with_linux(joined, ""),
            PidNamespaceSpec::Share(String::new())
        );
        assert_eq!(with_linux(none, pod), PidNamespaceSpec::New);
        assert_eq!(with_linux("{}", pod), PidNamespaceSpec::New);
    }
}
