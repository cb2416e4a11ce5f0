//! Checkpoint image directories as containerd hands them to the shim.
//!
//! Task.Checkpoint names a directory (`CheckpointTaskRequest.path`) that containerd then
//! packs into its content store; CreateTaskRequest.checkpoint names a directory where it
//! unpacked such an image. The shim only moves files: it creates `kernel.json` and
//! `memory.bin` for the sandbox to fill (the sentry writes them through the fds, over the
//! control channel), writes `header.json` last from the sandbox's answer, and for a restore
//! checks the header and opens the two files for the sandbox to read. What is in them is
//! the sentry's business (`sentry::kernel::checkpoint`).

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::Path;

use sentry::kernel::checkpoint::{Header, Summary};

use crate::error::{Error, Result};

const HEADER: &str = "header.json";
const KERNEL: &str = "kernel.json";
const MEMORY: &str = "memory.bin";

/// The `CheckpointOptions` of containerd's runc shim (`containerd.runc.v1.CheckpointOptions`),
/// the one options type containerd's clients send with Task.Checkpoint.
const RUNC_CHECKPOINT_OPTIONS: &str = "containerd.runc.v1.CheckpointOptions";

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Makes `dir` (and its parents) and the two files the sandbox writes, removing an old
/// `header.json` first so that a failed checkpoint never leaves a valid-looking image.
///
/// # Errors
/// The directory or the files could not be created.
pub fn create(dir: &Path) -> Result<[OwnedFd; 2]> {
    std::fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
    let header = dir.join(HEADER);
    match std::fs::remove_file(&header) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error("removing", &header)(e))
        }
        _ => {}
    }
    let create = |name: &str| -> Result<OwnedFd> {
        let path = dir.join(name);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map(OwnedFd::from)
            .map_err(|e| io_error("creating", &path)(e))
    };
    Ok([create(KERNEL)?, create(MEMORY)?])
}

/// Completes the image in `dir`: its header, written last.
///
/// # Errors
/// The header could not be written.
pub fn finish(dir: &Path, summary: &Summary) -> Result<()> {
    let path = dir.join(HEADER);
    let bytes = serde_json::to_vec_pretty(&Header::current(summary))
        .map_err(|e| io_error("encoding", &path)(std::io::Error::other(e)))?;
    std::fs::write(&path, bytes).map_err(io_error("writing", &path))
}

/// Checks the header of the image in `dir` and opens `kernel.json` and `memory.bin`.
///
/// # Errors
/// `BadImage` when `dir` holds no image this build can restore; `Io` when a file cannot be
/// opened.
pub fn open(dir: &Path) -> Result<[OwnedFd; 2]> {
    let path = dir.join(HEADER);
    let bytes = std::fs::read(&path).map_err(|e| Error::BadImage {
        path: dir.to_path_buf(),
        why: format!("no {HEADER}: {e}"),
    })?;
    Header::check(&bytes).map_err(|e| Error::BadImage {
        path: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    let open = |name: &str| -> Result<OwnedFd> {
        let path = dir.join(name);
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| io_error("opening", &path)(e))
    };
    Ok([open(KERNEL)?, open(MEMORY)?])
}

/// Whether the options of a Task.Checkpoint ask for the task to stop afterwards: the `exit`
/// field (number 1, a bool) of runc's `CheckpointOptions`. Other options types, and
/// runc's other fields (TCP, external sockets, CRIU paths), mean nothing here; an
/// options message that does not decode is refused.
///
/// # Errors
/// `BadOptions` for a malformed `CheckpointOptions`.
pub fn exit_requested(type_url: &str, value: &[u8]) -> Result<bool> {
    use containerd_shim::protos::protobuf::CodedInputStream;
    if !type_url.ends_with(RUNC_CHECKPOINT_OPTIONS) {
        if !type_url.is_empty() {
            log::info!("checkpoint options of type {type_url} ignored");
        }
        return Ok(false);
    }
    let bad = |e: containerd_shim::protos::protobuf::Error| Error::BadOptions(e.to_string());
    let mut input = CodedInputStream::from_bytes(value);
    let mut exit = false;
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        if tag == (1 << 3) {
            exit = input.read_bool().map_err(bad)?;
        } else {
            containerd_shim::protos::protobuf::rt::skip_field_for_tag(tag, &mut input)
                .map_err(bad)?;
        }
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_field_of_runc_options() {
        let url = "type.googleapis.com/containerd.runc.v1.CheckpointOptions";
        // exit = true, then file_locks (5) = true and image_path (8) = "/x".
        let value = [0x08, 0x01, 0x28, 0x01, 0x42, 0x02, b'/', b'x'];
        assert!(exit_requested(url, &value).unwrap());
        assert!(!exit_requested(url, &value[2..]).unwrap());
        assert!(!exit_requested(url, &[]).unwrap());
        assert!(!exit_requested("", &[]).unwrap());
        assert!(exit_requested(url, &[0x08]).is_err());
    }

    #[test]
    fn image_round_trip() {
        let dir = std::env::temp_dir().join(format!("shim-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _files = create(&dir).unwrap();
        assert!(matches!(open(&dir), Err(Error::BadImage { .. })));
        finish(&dir, &Summary::default()).unwrap();
        assert!(open(&dir).is_ok());
        std::fs::write(dir.join(HEADER), br#"{"format_version": 1}"#).unwrap();
        assert!(matches!(open(&dir), Err(Error::BadImage { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
