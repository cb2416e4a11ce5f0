//! cgroup v2: one directory in the unified hierarchy.

use std::fs::File;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{io_err, keyed_value, pids_max, wait_for, Error, Result};

/// The controllers enabled for the sandbox when the host offers them (freezing and CPU
/// usage are core features of every v2 cgroup).
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// The sandbox's directory in the unified hierarchy.
#[derive(Debug)]
pub(super) struct V2 {
    dir: PathBuf,
}

/// cgroup v2 `memory.swap.max` for OCI's memory and memory+swap limits: v2 limits swap
/// alone, so it is their difference (runc converts the same way). `None`: leave it.
fn v2_swap_max(memory: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    let Some(swap) = swap else {
        return Ok(None);
    };
    match (memory, swap) {
        // Memory unlimited, swap unset: both unlimited.
        (Some(-1), 0) | (_, -1) => Ok(Some("max".to_owned())),
        (_, 0) => Ok(None),
        (None | Some(-1 | 0), _) => Err(Error::BadSpec(
            "a memory+swap limit needs a memory limit on cgroup v2",
        )),
        (Some(m), s) if s < m => Err(Error::BadSpec(
            "the memory+swap limit is below the memory limit",
        )),
        (Some(m), s) => Ok(Some((s - m).to_string())),
    }
}

/// cgroup v2 `cpu.weight` (1..=10000) for v1 `cpu.shares` (2..=262144), the mapping runc
/// uses.
fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// cgroup v2 `cpu.max` for a CFS quota and period (microseconds); `None`: leave it.
fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let quota = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_owned(),
    };
    Some(match period {
        Some(p) => format!("{quota} {p}"),
        None => quota,
    })
}

/// Enables [`CONTROLLERS`] for the children of `dir` where the kernel offers them and
/// they are not on yet. Refusals are not errors: the kernel refuses when `dir` holds
/// processes itself (the no-internal-processes rule) or when delegation forbids it, and the
/// sandbox then simply lacks those controllers.
fn enable_controllers(dir: &Path) {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in CONTROLLERS {
        let has = |text: &str| text.split_whitespace().any(|c| c == controller);
        if !has(&available) || has(&enabled) {
            continue;
        }
        let control = dir.join("cgroup.subtree_control");
        if let Err(e) = std::fs::write(&control, format!("+{controller}")) {
            log::debug!("enabling {controller} in {}: {e}", control.display());
        }
    }
}

impl V2 {
    /// Creates `relative` under the hierarchy mounted at `root`, enabling [`CONTROLLERS`] in
    /// each ancestor.
    pub(super) fn create(root: &Path, relative: &str) -> Result<V2> {
        let dir = root.join(relative);
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let mut parent = root.to_path_buf();
        for component in Path::new(relative).components() {
            enable_controllers(&parent);
            parent.push(component);
        }
        log::debug!("sandbox cgroup (v2): {}", dir.display());
        Ok(V2 { dir })
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `cgroup.procs`, opened for writing.
    pub(super) fn open_procs(&self) -> Result<File> {
        let procs = self.dir.join("cgroup.procs");
        File::options()
            .write(true)
            .open(&procs)
            .map_err(io_err("opening", &procs))
    }

    /// Writes `value` to `file`; a missing file means the cgroup lacks `controller`.
    fn write(&self, controller: &'static str, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        if !path.exists() {
            return Err(Error::NoController(controller));
        }
        log::debug!("cgroup: {} = {value}", path.display());
        std::fs::write(&path, value).map_err(io_err("writing", &path))
    }

    pub(super) fn freeze(&self, frozen: bool) -> Result<()> {
        self.write("freezer", "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let events = self.dir.join("cgroup.events");
        let want = u64::from(frozen);
        wait_for(&events, || {
            let text = std::fs::read_to_string(&events).map_err(io_err("reading", &events))?;
            Ok(keyed_value(&text, "frozen") == Some(want))
        })
    }

    pub(super) fn update(&self, r: &LinuxResources) -> Result<()> {
        if let Some(mem) = r.memory() {
            // Swap first: memory.swap.max does not depend on memory.max, but a lowered
            // memory limit is the write that can fail on usage.
            if let Some(swap) = v2_swap_max(mem.limit(), mem.swap())? {
                self.write("memory", "memory.swap.max", &swap)?;
            }
            if let Some(limit) = mem.limit().filter(|v| *v != 0) {
                let value = if limit < 0 {
                    "max".to_owned()
                } else {
                    limit.to_string()
                };
                self.write("memory", "memory.max", &value)?;
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
                self.write("cpu", "cpu.weight", &shares_to_weight(shares).to_string())?;
            }
            // 0 means unset, as for runc (engines send every field).
            let quota = cpu.quota().filter(|v| *v != 0);
            if let Some(max) = cpu_max(quota, cpu.period().filter(|v| *v != 0)) {
                self.write("cpu", "cpu.max", &max)?;
            }
        }
        if let Some(pids) = r.pids() {
            self.write("pids", "pids.max", &pids_max(pids.limit()))?;
        }
        Ok(())
    }

    /// `memory.events`: its `oom_kill` counter and the file to watch; `None` without the
    /// memory controller.
    pub(super) fn memory_events(&self) -> Option<PathBuf> {
        Some(self.dir.join("memory.events")).filter(|p| p.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_dir;
    use super::super::SandboxCgroup;
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    #[test]
    fn v2_conversions_follow_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).unwrap(),
            "50000 100000"
        );
        assert_eq!(cpu_max(Some(-1), Some(100_000)).unwrap(), "max 100000");
        assert_eq!(cpu_max(None, Some(20_000)).unwrap(), "max 20000");
        assert_eq!(cpu_max(Some(30_000), None).unwrap(), "30000");
        assert!(cpu_max(None, None).is_none());
        let mib = 1 << 20;
        assert_eq!(
            v2_swap_max(Some(64 * mib), Some(96 * mib)).unwrap(),
            Some((32 * mib).to_string())
        );
        assert_eq!(
            v2_swap_max(Some(64 * mib), Some(-1)).unwrap().unwrap(),
            "max"
        );
        assert_eq!(v2_swap_max(Some(-1), Some(0)).unwrap().unwrap(), "max");
        assert_eq!(v2_swap_max(Some(64 * mib), Some(0)).unwrap(), None);
        assert_eq!(v2_swap_max(Some(64 * mib), None).unwrap(), None);
        assert!(v2_swap_max(Some(64 * mib), Some(mib)).is_err());
        assert!(v2_swap_max(None, Some(mib)).is_err());
    }

    /// A fake v2 cgroup directory (plain files) to check what updates write and what the
    /// metrics read.
    #[test]
    fn v2_files_are_written_and_read() {
        let root = temp_dir("v2files");
        let cg = SandboxCgroup::create_v2(&root, "/ns/c1").unwrap().unwrap();
        let dir = root.join("ns/c1");
        for (file, text) in [
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.current", "4096\n"),
            ("memory.stat", "anon 100\nfile 200\nshmem 50\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"),
            ("cpu.stat", "usage_usec 7\nuser_usec 5\nsystem_usec 2\n"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(128 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        cg.update(&resources).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), (64 << 20).to_string());
        // No cpu or pids controller here: updating them names the controller.
        let cpu = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().shares(1024u64).build().unwrap())
            .build()
            .unwrap();
        assert!(matches!(cg.update(&cpu), Err(Error::NoController("cpu"))));
        let pids = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .build()
            .unwrap();
        assert!(matches!(cg.update(&pids), Err(Error::NoController("pids"))));

        assert_eq!(cg.oom_kills(), Some(1));
        std::fs::remove_dir_all(root).unwrap();
    }
}
