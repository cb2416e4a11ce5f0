//! The sandbox process's cgroup (cgroup v1): placement, freezing, metrics, resource updates.
//!
//! The whole sandbox (the sentry, its ptrace stubs, every application process they run) is
//! one process tree, so it lives in one cgroup: the `linux.cgroupsPath` of the spec that
//! started it (the first container, or a pod's sandbox container), created under each v1
//! controller this shim uses. Everything forked in the sandbox later inherits it.
//!
//! - Pause/Resume: the freezer controller freezes every task of the sandbox at once,
//!   ptrace stops included, and thaws them (runc does the same for its containers).
//! - Stats: `io.containerd.cgroups.v1.Metrics` from `cpuacct`, `cpu`, `memory` and `pids`.
//!   Containers of one pod share the sandbox, so they report the same numbers.
//! - Update: the spec's memory, CPU and pids limits written to the controllers.
//!
//! Only cgroup v1 (and the v1 half of a hybrid layout) is handled; on a pure cgroup v2 host
//! the sandbox is not placed and these calls answer Unimplemented.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim::protos::protobuf::MessageField;
use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

/// The v1 controllers the sandbox is placed in.
const CONTROLLERS: [&str; 5] = ["freezer", "memory", "cpu", "cpuacct", "pids"];

/// `USER_HZ`: the unit of `cpuacct.stat`.
const USER_HZ: u64 = 100;

/// The sandbox's cgroup directories, one per controller.
#[derive(Debug)]
pub struct SandboxCgroup {
    /// Controller name → its directory for the sandbox.
    dirs: Vec<(&'static str, PathBuf)>,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount points of the v1 controllers, from `/proc/self/mountinfo`.
fn v1_mounts() -> Vec<(String, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found = Vec::new();
    for line in info.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.get(sep + 1) != Some(&"cgroup") {
            continue;
        }
        let (Some(mount_point), Some(options)) = (fields.get(4), fields.get(sep + 3)) else {
            continue;
        };
        for option in options.split(',') {
            if CONTROLLERS.contains(&option) {
                found.push((option.to_owned(), PathBuf::from(mount_point)));
            }
        }
    }
    found
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat) as a lookup.
fn read_keyed(path: &Path) -> impl Fn(&str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    move |key| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0)
    }
}

impl SandboxCgroup {
    /// Creates `cgroups_path` (absolute, as containerd's cgroupfs paths are) under each
    /// controller. `None` when there is nothing to do: no path, a systemd-style
    /// `slice:prefix:name` path, or no v1 controllers.
    ///
    /// # Errors
    /// A directory could not be created.
    pub fn create(cgroups_path: &str) -> Result<Option<SandboxCgroup>> {
        let relative = cgroups_path.trim_start_matches('/');
        if relative.is_empty() || cgroups_path.contains(':') {
            log::info!("cgroups path {cgroups_path:?}: the sandbox is not placed in a cgroup");
            return Ok(None);
        }
        if relative.split('/').any(|c| c == "..") {
            return Err(Error::BadSpec("linux.cgroupsPath must not contain .."));
        }
        let mut dirs = Vec::new();
        for (controller, mount) in v1_mounts() {
            let controller = CONTROLLERS
                .into_iter()
                .find(|c| *c == controller)
                .expect("v1_mounts returns known controllers");
            let dir = mount.join(relative);
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            dirs.push((controller, dir));
        }
        if dirs.is_empty() {
            log::info!("no cgroup v1 controllers: the sandbox is not placed in a cgroup");
            return Ok(None);
        }
        Ok(Some(SandboxCgroup { dirs }))
    }

    /// The `tasks` files that move one thread in: the thread that spawns the sandbox joins
    /// first, so the sandbox is born inside and nothing it forks can escape.
    pub fn task_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.dirs.iter().map(|(_, d)| d.join("tasks")).collect();
        files.dedup();
        files
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    fn write(&self, controller: &'static str, file: &str, value: &str) -> Result<()> {
        let dir = self.dir(controller).ok_or(Error::Unsupported(
            "a cgroup controller this host does not mount",
        ))?;
        let path = dir.join(file);
        std::fs::write(&path, value).map_err(io_err("writing", &path))
    }

    /// Freezes (`true`) or thaws every task of the sandbox and waits until the kernel says
    /// it is done.
    ///
    /// # Errors
    /// No freezer, or the state file could not be written.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        self.write("freezer", "freezer.state", want)?;
        let state = self
            .dir("freezer")
            .expect("written above")
            .join("freezer.state");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = std::fs::read_to_string(&state).map_err(io_err("reading", &state))?;
            if now.trim() == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Io {
                    op: "waiting for",
                    path: state,
                    source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                });
            }
            // FREEZING: tasks are still being stopped; writing again retries them.
            std::thread::sleep(Duration::from_millis(10));
            self.write("freezer", "freezer.state", want)?;
        }
    }

    /// The sandbox's resource usage.
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new();
        if let Some(d) = self.dir("pids") {
            let limit = std::fs::read_to_string(d.join("pids.max"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            m.pids = MessageField::some(PidsStat {
                current: read_u64(&d.join("pids.current")).unwrap_or(0),
                limit,
                ..Default::default()
            });
        }
        let mut cpu = CPUStat::new();
        if let Some(d) = self.dir("cpuacct") {
            let stat = read_keyed(&d.join("cpuacct.stat"));
            let per_cpu = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let ticks_to_ns = 1_000_000_000 / USER_HZ;
            cpu.usage = MessageField::some(CPUUsage {
                total: read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
                kernel: stat("system") * ticks_to_ns,
                user: stat("user") * ticks_to_ns,
                per_cpu,
                ..Default::default()
            });
        }
        if let Some(d) = self.dir("cpu") {
            let stat = read_keyed(&d.join("cpu.stat"));
            cpu.throttling = MessageField::some(Throttle {
                periods: stat("nr_periods"),
                throttled_periods: stat("nr_throttled"),
                throttled_time: stat("throttled_time"),
                ..Default::default()
            });
        }
        m.cpu = MessageField::some(cpu);
        if let Some(d) = self.dir("memory") {
            let stat = read_keyed(&d.join("memory.stat"));
            let entry = |prefix: &str| MemoryEntry {
                usage: read_u64(&d.join(format!("{prefix}usage_in_bytes"))).unwrap_or(0),
                limit: read_u64(&d.join(format!("{prefix}limit_in_bytes"))).unwrap_or(0),
                max: read_u64(&d.join(format!("{prefix}max_usage_in_bytes"))).unwrap_or(0),
                failcnt: read_u64(&d.join(format!("{prefix}failcnt"))).unwrap_or(0),
                ..Default::default()
            };
            m.memory = MessageField::some(MemoryStat {
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

    /// Writes the memory, CPU and pids limits of `r`.
    ///
    /// # Errors
    /// A limit could not be written (for example a memory limit below current usage).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
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
            let limit = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".to_owned()
            };
            self.write("pids", "pids.max", &limit)?;
        }
        Ok(())
    }

    /// Removes the directories once the sandbox is gone (best effort: the kernel refuses
    /// while a task is still inside, so this retries for a moment).
    pub fn remove(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        for (_, dir) in &self.dirs {
            while dir.exists() {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        log::warn!("removing cgroup {}: {e}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let dir = std::env::temp_dir().join(format!("shim-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), "user 12\nsystem 3\n").unwrap();
        let stat = read_keyed(&dir.join("stat"));
        assert_eq!((stat("user"), stat("system"), stat("none")), (12, 3, 0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unusable_paths_are_not_placed() {
        assert!(SandboxCgroup::create("").unwrap().is_none());
        assert!(SandboxCgroup::create("system.slice:runsc:x")
            .unwrap()
            .is_none());
        assert!(matches!(
            SandboxCgroup::create("/a/../../etc"),
            Err(Error::BadSpec(_))
        ));
    }
}
