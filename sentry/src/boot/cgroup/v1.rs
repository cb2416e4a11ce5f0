//! cgroup v1: one directory per controller the sandbox uses.

use std::path::{Path, PathBuf};

use containerd_shim::protos::cgroups::metrics as pb;
use containerd_shim::protos::protobuf::MessageField;
use oci_spec::runtime::LinuxResources;

use super::{io_err, keyed_value, mounts, pids_max, read_keyed, read_u64, wait_for};
use crate::error::{Error, Result};

/// The controllers the sandbox is placed in.
const CONTROLLERS: [&str; 5] = ["freezer", "memory", "cpu", "cpuacct", "pids"];

/// `USER_HZ`: the unit of `cpuacct.stat`.
const USER_HZ: u64 = 100;

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

    pub(super) fn metrics(&self) -> pb::Metrics {
        let mut m = pb::Metrics::new();
        if let Some(d) = self.dir("pids") {
            m.pids = MessageField::some(pb::PidsStat {
                current: read_u64(&d.join("pids.current")).unwrap_or(0),
                limit: read_u64(&d.join("pids.max")).unwrap_or(0),
                ..Default::default()
            });
        }
        let mut cpu = pb::CPUStat::new();
        if let Some(d) = self.dir("cpuacct") {
            let per_cpu = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let ticks_to_ns = 1_000_000_000 / USER_HZ;
            let stat = read_keyed(&d.join("cpuacct.stat"));
            let ticks = |key| stat.as_ref().map_or(0, |s| s(key));
            cpu.usage = MessageField::some(pb::CPUUsage {
                total: read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
                kernel: ticks("system") * ticks_to_ns,
                user: ticks("user") * ticks_to_ns,
                per_cpu,
                ..Default::default()
            });
        }
        if let Some(stat) = self
            .dir("cpu")
            .and_then(|d| read_keyed(&d.join("cpu.stat")))
        {
            cpu.throttling = MessageField::some(pb::Throttle {
                periods: stat("nr_periods"),
                throttled_periods: stat("nr_throttled"),
                throttled_time: stat("throttled_time"),
                ..Default::default()
            });
        }
        m.cpu = MessageField::some(cpu);
        if let Some(d) = self.dir("memory") {
            let text = std::fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
            let stat = |key| keyed_value(&text, key).unwrap_or(0);
            let entry = |prefix: &str| pb::MemoryEntry {
                usage: read_u64(&d.join(format!("{prefix}usage_in_bytes"))).unwrap_or(0),
                limit: read_u64(&d.join(format!("{prefix}limit_in_bytes"))).unwrap_or(0),
                max: read_u64(&d.join(format!("{prefix}max_usage_in_bytes"))).unwrap_or(0),
                failcnt: read_u64(&d.join(format!("{prefix}failcnt"))).unwrap_or(0),
                ..Default::default()
            };
            m.memory = MessageField::some(pb::MemoryStat {
                cache: stat("cache"),
                rss: stat("rss"),
                rss_huge: stat("rss_huge"),
                mapped_file: stat("mapped_file"),
                dirty: stat("dirty"),
                writeback: stat("writeback"),
                pg_fault: stat("pgfault"),
                pg_maj_fault: stat("pgmajfault"),
                inactive_anon: stat("inactive_anon"),
                active_anon: stat("active_anon"),
                inactive_file: stat("inactive_file"),
                active_file: stat("active_file"),
                unevictable: stat("unevictable"),
                hierarchical_memory_limit: stat("hierarchical_memory_limit"),
                total_cache: stat("total_cache"),
                total_rss: stat("total_rss"),
                total_inactive_file: stat("total_inactive_file"),
                usage: MessageField::some(entry("memory.")),
                swap: MessageField::some(entry("memory.memsw.")),
                kernel: MessageField::some(entry("memory.kmem.")),
                ..Default::default()
            });
        }
        m
    }

    pub(super) fn update(&self, r: &LinuxResources) -> Result<()> {
        if let Some(mem) = r.memory() {
            if let Some(limit) = mem.limit() {
                self.write("memory", "memory.limit_in_bytes", &limit.to_string())?;
            }
            if let Some(swap) = mem.swap() {
                // Absent on kernels without swap accounting; the memory limit still holds.
                if let Err(e) =
                    self.write("memory", "memory.memsw.limit_in_bytes", &swap.to_string())
                {
                    log::warn!("memory+swap limit: {e}");
                }
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares() {
                self.write("cpu", "cpu.shares", &shares.to_string())?;
            }
            if let Some(period) = cpu.period() {
                self.write("cpu", "cpu.cfs_period_us", &period.to_string())?;
            }
            if let Some(quota) = cpu.quota() {
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
