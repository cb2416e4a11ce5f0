//! A bundle's `config.json` → what the sandbox's Loader needs, and the `runsc-rs spec`
//! template.
//!
//! The same mapping the containerd shim makes: bind mounts of host directories and regular
//! files and tmpfs mounts reach the sandbox; `proc`, `sysfs`, `devpts`, `mqueue` and
//! `cgroup` are the sentry's own.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use oci_spec::runtime::{Mount, Process, Spec};
use sentry::boot::loader::{
    ContainerSpec, MountKind, MountSpec, PidNamespaceSpec, ProcessSpec, SpecCapabilities,
    SpecRlimit,
};
use sentry::boot::{open_bind_source, SourceWalk};

/// Reads `bundle/config.json`.
pub fn load(bundle: &Path) -> anyhow::Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).with_context(|| format!("loading {}", path.display()))
}

/// The container's root directory on the host: `root.path`, relative to the bundle.
pub fn rootfs(spec: &Spec, bundle: &Path) -> PathBuf {
    spec.root()
        .as_ref()
        .map(|r| bundle.join(r.path()))
        .unwrap_or_else(|| bundle.join("rootfs"))
}

/// The container as the Loader sees it. Each container has a sandbox of its own, so its PID
/// namespace is always new.
pub fn container(spec: &Spec, bundle: &Path) -> anyhow::Result<ContainerSpec> {
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
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
        pid_namespace: PidNamespaceSpec::New,
    })
}

/// The network namespace the spec names: the path of its `network` entry of
/// `linux.namespaces` (a namespace the engine or CNI prepared), if any.
pub fn network_namespace(spec: &Spec) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network)?
        .path()
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
}

/// The process part of a spec (the container's or an exec's).
pub fn process_spec(p: &Process) -> anyhow::Result<ProcessSpec> {
    let args = p.args().clone().unwrap_or_default();
    if args.first().is_none_or(String::is_empty) {
        bail!("process.args is empty");
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
        terminal: p.terminal().unwrap_or(false),
    })
}

fn mount_spec(m: &Mount) -> Option<MountSpec> {
    let destination = m.destination().to_string_lossy().into_owned();
    let options = m.options().clone().unwrap_or_default();
    let has = |o: &str| options.iter().any(|x| x == o);
    let typ = m.typ().as_deref().unwrap_or("");
    let kind = if typ == "bind" || has("bind") || has("rbind") {
        let source = m.source().clone()?;
        // Device nodes, FIFOs and sockets never reach the sandbox (Docker binds none by
        // default; the sentry's /dev has its own).
        if std::fs::metadata(&source).is_ok_and(|meta| !meta.is_dir() && !meta.is_file()) {
            log::info!("bind of {} at {destination} skipped", source.display());
            return None;
        }
        MountKind::Bind {
            source,
            readonly: has("ro"),
        }
    } else if typ == "tmpfs" {
        MountKind::tmpfs(&options)
    } else {
        return None;
    };
    Some(MountSpec { destination, kind })
}

/// The host fds the sandbox receives for a container: the rootfs directory (`O_PATH`), then
/// each bind mount's source in spec order. A source inside the bundle is resolved beneath it
/// (a symlink planted in image content must not lead to a host file); others are followed,
/// as runc's mount(2) follows them: the engine wrote them.
pub fn open_sources(c: &ContainerSpec, bundle: &Path) -> anyhow::Result<Vec<OwnedFd>> {
    let rootfs = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&c.rootfs)
        .with_context(|| format!("opening the rootfs {}", c.rootfs.display()))?;
    let mut fds = vec![OwnedFd::from(rootfs)];
    for m in &c.mounts {
        let MountKind::Bind { source, readonly } = &m.kind else {
            continue;
        };
        let inside = if source.is_relative() {
            Some(source.as_path())
        } else {
            source.strip_prefix(bundle).ok()
        };
        let fd = match inside {
            Some(rel) => {
                let dir = std::fs::File::open(bundle)
                    .with_context(|| format!("opening {}", bundle.display()))?;
                let rel = if rel.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    rel
                };
                open_bind_source(rel, *readonly, SourceWalk::Beneath(dir.as_fd()))
            }
            None => open_bind_source(source, *readonly, SourceWalk::FollowAll),
        };
        fds.push(fd.with_context(|| format!("opening the mount source {}", source.display()))?);
    }
    Ok(fds)
}

/// `runsc-rs spec`: runc's default configuration (a `sh` on a terminal in `rootfs`), which
/// users edit.
pub fn template() -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    serde_json::json!({
        "ociVersion": super::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runsc-rs",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}
