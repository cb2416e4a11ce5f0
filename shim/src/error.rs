//! The shim's errors and their one mapping onto ttrpc status codes.

use std::path::PathBuf;

use containerd_shim::protos::ttrpc::{self, Code};
use sentry::boot::cgroup::Error as CgroupError;
use sentry::boot::control::{CallError, ErrorKind};
use sentry::boot::spec::Error as SpecError;

/// Errors of Task calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0} not found")]
    NoContainer(String),
    #[error("process {exec_id} of container {id} not found")]
    NoProcess { id: String, exec_id: String },
    #[error("container {0} already exists")]
    Exists(String),
    #[error("process {0} was already started")]
    AlreadyStarted(String),
    #[error("process {0} is still running")]
    StillRunning(String),
    #[error("process {0} has already finished")]
    Finished(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Cgroup(#[from] sentry::boot::cgroup::Error),
    #[error("not supported by runsc-rs yet: {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("invalid OCI spec: {0}")]
    BadSpec(&'static str),
    #[error("{path} is not a checkpoint image this runsc-rs can restore: {why}")]
    BadImage { path: PathBuf, why: String },
    #[error("invalid checkpoint options: {0}")]
    BadOptions(String),
    #[error("invalid resources for update: {0}")]
    BadResources(#[source] serde_json::Error),
    #[error("mounting the rootfs at {path}: {source}")]
    Mount {
        path: PathBuf,
        source: containerd_shim::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the sandbox process: {0}")]
    Launch(#[source] std::io::Error),
    #[error("the sandbox process is gone")]
    SandboxGone,
    #[error("sandbox: {0}")]
    Sandbox(#[from] CallError),
    #[error(transparent)]
    Shim(#[from] containerd_shim::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn code(&self) -> Code {
        match self {
            Error::NoContainer(_) | Error::NoProcess { .. } | Error::Finished(_) => Code::NOT_FOUND,
            Error::Exists(_) => Code::ALREADY_EXISTS,
            Error::AlreadyStarted(_)
            | Error::StillRunning(_)
            | Error::NotRunning(_)
            | Error::SandboxGone
            | Error::Cgroup(CgroupError::NoController(_)) => Code::FAILED_PRECONDITION,
            Error::Cgroup(CgroupError::BadSpec(_)) => Code::INVALID_ARGUMENT,
            Error::Cgroup(CgroupError::Io { .. }) => Code::INTERNAL,
            Error::Unsupported(_) => Code::UNIMPLEMENTED,
            Error::Spec(SpecError::Open { .. }) => Code::INTERNAL,
            Error::Spec(_)
            | Error::BadSpec(_)
            | Error::BadResources(_)
            | Error::BadImage { .. }
            | Error::BadOptions(_) => Code::INVALID_ARGUMENT,
            Error::Sandbox(e) => match e.kind {
                ErrorKind::NotFound => Code::NOT_FOUND,
                ErrorKind::AlreadyExists => Code::ALREADY_EXISTS,
                ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
                ErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
                ErrorKind::Unimplemented => Code::UNIMPLEMENTED,
                ErrorKind::Internal => Code::INTERNAL,
            },
            Error::Mount { .. } | Error::Io { .. } | Error::Launch(_) | Error::Shim(_) => {
                Code::INTERNAL
            }
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> ttrpc::Error {
        log::debug!("task call failed: {e}");
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_errors_keep_their_kind() {
        let e = Error::Sandbox(CallError {
            kind: ErrorKind::NotFound,
            message: "x".into(),
        });
        assert_eq!(e.code(), Code::NOT_FOUND);
        assert_eq!(Error::Unsupported("pause").code(), Code::UNIMPLEMENTED);
        let ttrpc::Error::RpcStatus(s) = ttrpc::Error::from(Error::Finished("t1".into())) else {
            panic!("not a status");
        };
        assert_eq!(s.code(), Code::NOT_FOUND);
    }
}
