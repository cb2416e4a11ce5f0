//! cgroup v1: one directory per controller the sandbox uses.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{io_err, mounts, pids_max, wait_for, Error, Result};

/// The controllers the sandbox is placed in.
const CONTROLLERS: [&str; 5] = ["freezer", "memory", "cpu", "cpuacct", "pids"];

/// The sandbox's directories, one per mounted controller.
#[derive(Debug)]
pub(super) struct V1 {
    /// Controller name → its directory for the sandbox.
    dirs: Vec<(&'static str, PathBuf)>,
}

/// Mount points of the controllers this shim uses.
fn controller_mounts() -> Vec<(&'static str, PathBuf)> {
    let mut found = Vec::new();
    for (point, fstype, options) in mounts() {
        if fstype != "cgroup" {
            continue;
        }
        for option in options.split(',') {
            if let Some(c) = CONTROLLERS.into_iter().find(|c| *c == option) {
                found.push((c, point.clone()));
            }
        }
    }
    found
}

impl V1 {
    /// Creates `relative` under each mounted controller; `None` when none is mounted.
    pub(super) fn create(relative: &str) -> Result<Option<V1>> {
        let mut dirs = Vec::new();
        for (controller, mount) in controller_mounts() {
            let dir = mount.join(relative);
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            dirs.push((controller, dir));
        }
        if dirs.is_empty() {
            log::info!("no cgroup mounted: the sandbox is not placed in a cgroup");
            return Ok(None);
        }
        Ok(Some(V1 { dirs }))
    }

    /// Every directory (for removal).
    pub(super) fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// (controller, directory) pairs.
    pub(super) fn controller_dirs(&self) -> &[(&'static str, PathBuf)] {
        &self.dirs
    }

    /// The `tasks` files a thread joins.
    pub(super) fn tasks_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.dirs().map(|d| d.join("tasks")).collect();
        files.dedup();
        files
    }

    pub(super) fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    fn write(&self, controller: &'static str, file: &str, value: &str) -> Result<()> {
        let path = self
            .dir(controller)
            .ok_or(Error::NoController(controller))?
            .join(file);
        log::debug!("cgroup: {} = {value}", path.display());
        std::fs::write(&path, value).map_err(io_err("writing", &path))
    }

    pub(super) fn freeze(&self, frozen: bool) -> Result<()> {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        self.write("freezer", "freezer.state", want)?;
        let state = self
            .dir("freezer")
            .expect("written above")
            .join("freezer.state");
        wait_for(&state, || {
            let now = std::fs::read_to_string(&state).map_err(io_err("reading", &state))?;
            if now.trim() == want {
                return Ok(true);
            }
            // FREEZING: tasks are still being stopped; writing again retries them.
            self.write("freezer", "freezer.state", want)?;
            Ok(false)
        })
    }

    pub(super) fn update(&self, r: &LinuxResources) -> Result<()> {
        if let Some(mem) = r.memory() {
            // The kernel keeps memory.limit <= memory.memsw.limit at every write: raising
            // both writes memsw first, lowering writes memory first (as runc orders them).
            let memsw_now = self
                .dir("memory")
                .and_then(|d| super::read_u64(&d.join("memory.memsw.limit_in_bytes")));
            let swap = mem.swap().filter(|v| *v != 0);
            let swap_first = match (swap, memsw_now) {
                (Some(-1), _) => true,
                (Some(swap), Some(now)) => u64::try_from(swap).is_ok_and(|s| s > now),
                _ => false,
            };
            let write_swap = |swap: i64| {
                // Absent on kernels without swap accounting; the memory limit still holds.
                if let Err(e) =
                    self.write("memory", "memory.memsw.limit_in_bytes", &swap.to_string())
                {
                    log::warn!("memory+swap limit: {e}");
                }
            };
            if let Some(swap) = swap.filter(|_| swap_first) {
                write_swap(swap);
            }
            // 0 means unset, as for runc (engines send every field).
            if let Some(limit) = mem.limit().filter(|v| *v != 0) {
                self.write("memory", "memory.limit_in_bytes", &limit.to_string())?;
            }
            if let Some(swap) = swap.filter(|_| !swap_first) {
                write_swap(swap);
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares().filter(|v| *v != 0) {
                self.write("cpu", "cpu.shares", &shares.to_string())?;
            }
            if let Some(period) = cpu.period().filter(|v| *v != 0) {
                self.write("cpu", "cpu.cfs_period_us", &period.to_string())?;
            }
            if let Some(quota) = cpu.quota().filter(|v| *v != 0) {
                self.write("cpu", "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if let Some(pids) = r.pids() {
            self.write("pids", "pids.max", &pids_max(pids.limit()))?;
        }
        Ok(())
    }

    /// `memory.oom_control`: its `oom_kill` counter (kernel ≥ 4.13) and the file the OOM
    /// eventfd is registered for.
    pub(super) fn oom_control(&self) -> Option<PathBuf> {
        Some(self.dir("memory")?.join("memory.oom_control"))
    }
}
