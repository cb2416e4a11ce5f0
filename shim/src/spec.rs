//! OCI runtime spec → what the sandbox's Loader needs.

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Mount, Process, Spec};
use sentry::boot::loader::{ContainerSpec, MountKind, MountSpec, PidNamespaceSpec, ProcessSpec};

use crate::error::{Error, Result};

/// Reads `bundle/config.json`.
///
/// # Errors
/// A missing or malformed spec.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).map_err(|source| Error::Spec { path, source })
}

/// The container as the Loader sees it; the rootfs is the spec's `root.path` (relative to
/// the bundle), `bundle/rootfs` by default.
///
/// # Errors
/// `BadSpec` when there is no process.
pub fn container(spec: &Spec, bundle: &Path) -> Result<ContainerSpec> {
    let process = spec
        .process()
        .as_ref()
        .ok_or(Error::BadSpec("no process"))?;
    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| bundle.join(r.path()))
        .unwrap_or_else(|| bundle.join("rootfs"));
    Ok(ContainerSpec {
        rootfs,
        hostname: spec.hostname().clone(),
        process: process_spec(process)?,
        mounts: spec
            .mounts()
            .iter()
            .flatten()
            .filter_map(mount_spec)
            .collect(),
        pid_namespace: pid_namespace(spec),
    })
}

/// The annotation naming the pod (CRI) a container belongs to.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

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

/// The sandbox's view of one OCI mount: bind mounts of host directories and tmpfs; the
/// rest is the sentry's own (`proc`, `sysfs`, `devpts`, `mqueue`, `cgroup`) or unsupported.
fn mount_spec(m: &Mount) -> Option<MountSpec> {
    let destination = m.destination().to_string_lossy().into_owned();
    let options = m.options().clone().unwrap_or_default();
    let has = |o: &str| options.iter().any(|x| x == o);
    let typ = m.typ().as_deref().unwrap_or("");
    let kind = if typ == "bind" || has("bind") || has("rbind") {
        let source = m.source().clone()?;
        if !source.is_dir() {
            log::info!(
                "bind mount of {} at {destination} skipped: only directories can be bound yet",
                source.display()
            );
            return None;
        }
        MountKind::Bind {
            source,
            readonly: has("ro"),
        }
    } else if typ == "tmpfs" {
        let mode = options
            .iter()
            .find_map(|o| o.strip_prefix("mode="))
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o1777);
        MountKind::Tmpfs { mode }
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
        .map_err(|source| Error::Io {
            op: "opening",
            path: path.to_path_buf(),
            source,
        })
}

/// The container's host directories as the sandbox receives them: the rootfs, then the
/// source of each bind mount in spec order.
///
/// # Errors
/// A directory cannot be opened.
pub fn open_dirs(c: &ContainerSpec) -> Result<Vec<OwnedFd>> {
    let binds = c.mounts.iter().filter_map(|m| match &m.kind {
        MountKind::Bind { source, .. } => Some(source.as_path()),
        MountKind::Tmpfs { .. } => None,
    });
    std::iter::once(c.rootfs.as_path())
        .chain(binds)
        .map(open_dir)
        .collect()
}

/// The process part of a spec (the container's or an exec's).
///
/// # Errors
/// `BadSpec` for empty args.
pub fn process_spec(p: &Process) -> Result<ProcessSpec> {
    let terminal = p.terminal().unwrap_or(false);
    let args = p.args().clone().unwrap_or_default();
    if args.first().is_none_or(String::is_empty) {
        return Err(Error::BadSpec("process.args is empty"));
    }
    let user = p.user();
    Ok(ProcessSpec {
        args,
        env: p.env().clone().unwrap_or_default(),
        cwd: p.cwd().to_string_lossy().into_owned(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        terminal,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
    fn terminal_passes_and_empty_args_are_refused() {
        let tty = PROCESS.replace(r#""terminal":false"#, r#""terminal":true"#);
        assert!(exec_process(tty.as_bytes()).unwrap().terminal);
        let empty = PROCESS.replace(r#"["/bin/sh","-c","echo hi"]"#, "[]");
        assert!(matches!(
            exec_process(empty.as_bytes()),
            Err(Error::BadSpec(_))
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
            ]
        );
        let mut c = c;
        c.rootfs = PathBuf::from("/");
        assert_eq!(open_dirs(&c).unwrap().len(), 2);
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
