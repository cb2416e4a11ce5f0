//! Fresh directories of a test's own, so that no test depends on what the machine's `/tmp`
//! holds or on another test's leftovers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A new, empty directory, removed with everything in it on drop. The path is unique per
/// process, call and moment (`<base>/runsc-rs-<tag>-<pid>-<n>-<nanos>`), so tests running in
/// parallel, and leftovers of a killed earlier run, never meet.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A scratch directory under the system's temporary directory.
    pub fn new(tag: &str) -> Scratch {
        Scratch::under(&std::env::temp_dir(), tag)
    }

    /// A scratch directory under `base` (e.g. a test binary's `CARGO_TARGET_TMPDIR`, on the
    /// workspace's file system rather than a tmpfs).
    pub fn under(base: &Path, tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("runsc-rs-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `rel` inside the directory.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }

    /// The directory as a string (test paths are UTF-8).
    pub fn str(&self) -> &str {
        self.0.to_str().expect("scratch paths are UTF-8")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
