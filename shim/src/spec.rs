//! OCI runtime spec → what the sandbox's Loader needs.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};
use sentry::boot::loader::{ContainerSpec, ProcessSpec};

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
/// `BadSpec` when there is no process; `Unsupported` for `terminal: true`.
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
    })
}

/// The process part of a spec (the container's or an exec's).
///
/// # Errors
/// `BadSpec` for empty args; `Unsupported` for `terminal: true`.
pub fn process_spec(p: &Process) -> Result<ProcessSpec> {
    let terminal = p.terminal().unwrap_or(false);
    if terminal {
        return Err(Error::Unsupported("terminal=true (no tty layer yet)"));
    }
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
    fn terminal_and_empty_args_are_refused() {
        let tty = PROCESS.replace(r#""terminal":false"#, r#""terminal":true"#);
        assert!(matches!(
            exec_process(tty.as_bytes()),
            Err(Error::Unsupported(_))
        ));
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
}
