//! `/sys`: the few files programs read to size themselves (CPU lists), and an empty
//! `fs/cgroup`, where boot mounts the cgroup2 hierarchy (`cgroupfs`).

use std::sync::Arc;

use super::synth::{SynthDir, SynthFile, SynthFs};
use crate::vfs::Inode;

/// SYSFS_MAGIC.
pub const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Builds `/sys` for a machine with `ncpu` CPUs.
pub fn new_sys(ncpu: usize) -> Arc<dyn Inode> {
    let fs = SynthFs::new(SYSFS_MAGIC);
    let list = if ncpu > 1 {
        format!("0-{}\n", ncpu - 1)
    } else {
        "0\n".to_string()
    };
    let cpu: Arc<dyn Inode> = SynthDir::fixed(
        &fs,
        vec![
            ("online", SynthFile::fixed(&fs, list.clone())),
            ("possible", SynthFile::fixed(&fs, list.clone())),
            ("present", SynthFile::fixed(&fs, list)),
        ],
    );
    let system: Arc<dyn Inode> = SynthDir::fixed(&fs, vec![("cpu", cpu)]);
    let devices: Arc<dyn Inode> = SynthDir::fixed(&fs, vec![("system", system)]);
    let cgroup: Arc<dyn Inode> = SynthDir::fixed(&fs, vec![]);
    let fsdir: Arc<dyn Inode> = SynthDir::fixed(&fs, vec![("cgroup", cgroup)]);
    SynthDir::fixed(&fs, vec![("devices", devices), ("fs", fsdir)])
}
