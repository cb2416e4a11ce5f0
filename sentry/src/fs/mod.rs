//! Filesystems: `hostfs` (directfs over host directory fds), `tmpfs`, `overlay` (tmpfs over
//! a read-only lower layer), `dev`, `devpts`, `sys` and `fuse`, plus the synthetic-file helpers they share
//! (`/proc`, which needs the kernel, is the `procfs` module, above the kernel).
//!
//! Layer: above `vfs`, below `kernel`: filesystems see their caller only through
//! `vfs::Context` and `vfs::Caller`.

pub mod dev;
pub mod devpts;
pub mod fuse;
pub mod hostfs;
pub mod memfd;
pub mod overlay;
pub mod synth;
pub mod sys;
pub mod tmpfs;

use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh anonymous device number (major 0), one per filesystem instance, as Linux gives
/// tmpfs, proc and overlay mounts.
pub fn anon_dev() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x20);
    let minor = NEXT.fetch_add(1, Ordering::Relaxed);
    libc::makedev(0, minor as u32)
}
