//! The sandbox cgroup's usage as containerd's metrics messages (`Stats`). The cgroup itself
//! (placement, freezing, limits, OOM) is `sentry::boot::cgroup`, shared with the OCI CLI.

use std::path::Path;

use containerd_shim::protos::cgroups::metrics as v1_pb;
use containerd_shim::protos::cgroups_v2::metrics as v2_pb;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use sentry::boot::cgroup::{keyed_value, read_keyed, read_limit, read_u64, Layout, SandboxCgroup};

use crate::error::{Error, Result};

/// `USER_HZ`: the unit of `cpuacct.stat`.
const USER_HZ: u64 = 100;

/// The sandbox's resource usage in its layout's message.
#[derive(Debug)]
pub enum CgroupMetrics {
    V1(v1_pb::Metrics),
    V2(v2_pb::Metrics),
}

impl CgroupMetrics {
    /// The usage of `cg`, from whichever files this host provides (a missing controller
    /// leaves its part of the message out).
    pub fn of(cg: &SandboxCgroup) -> CgroupMetrics {
        match cg.layout() {
            layout @ Layout::V1(_) => CgroupMetrics::V1(v1_metrics(layout)),
            Layout::V2(dir) => CgroupMetrics::V2(v2_metrics(dir)),
        }
    }

    /// The message as the `Any` containerd expects in a Stats answer.
    ///
    /// # Errors
    /// The message could not be encoded.
    pub fn into_any(self) -> Result<Any> {
        let (type_url, value) = match self {
            CgroupMetrics::V1(m) => ("io.containerd.cgroups.v1.Metrics", m.write_to_bytes()),
            CgroupMetrics::V2(m) => ("io.containerd.cgroups.v2.Metrics", m.write_to_bytes()),
        };
        let value = value.map_err(|e| Error::Shim(containerd_shim::Error::Other(e.to_string())))?;
        Ok(Any {
            type_url: type_url.to_owned(),
            value,
            ..Default::default()
        })
    }
}

fn v1_metrics(layout: Layout<'_>) -> v1_pb::Metrics {
    let mut m = v1_pb::Metrics::new();
    if let Some(d) = layout.dir("pids") {
        m.pids = MessageField::some(v1_pb::PidsStat {
            current: read_u64(&d.join("pids.current")).unwrap_or(0),
            limit: read_u64(&d.join("pids.max")).unwrap_or(0),
            ..Default::default()
        });
    }
    let mut cpu = v1_pb::CPUStat::new();
    if let Some(d) = layout.dir("cpuacct") {
        let per_cpu = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let ticks_to_ns = 1_000_000_000 / USER_HZ;
        let stat = read_keyed(&d.join("cpuacct.stat"));
        let ticks = |key| stat.as_ref().map_or(0, |s| s(key));
        cpu.usage = MessageField::some(v1_pb::CPUUsage {
            total: read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
            kernel: ticks("system") * ticks_to_ns,
            user: ticks("user") * ticks_to_ns,
            per_cpu,
            ..Default::default()
        });
    }
    if let Some(stat) = layout
        .dir("cpu")
        .and_then(|d| read_keyed(&d.join("cpu.stat")))
    {
        cpu.throttling = MessageField::some(v1_pb::Throttle {
            periods: stat("nr_periods"),
            throttled_periods: stat("nr_throttled"),
            throttled_time: stat("throttled_time"),
            ..Default::default()
        });
    }
    m.cpu = MessageField::some(cpu);
    if let Some(d) = layout.dir("memory") {
        let text = std::fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
        let stat = |key| keyed_value(&text, key).unwrap_or(0);
        let entry = |prefix: &str| v1_pb::MemoryEntry {
            usage: read_u64(&d.join(format!("{prefix}usage_in_bytes"))).unwrap_or(0),
            limit: read_u64(&d.join(format!("{prefix}limit_in_bytes"))).unwrap_or(0),
            max: read_u64(&d.join(format!("{prefix}max_usage_in_bytes"))).unwrap_or(0),
            failcnt: read_u64(&d.join(format!("{prefix}failcnt"))).unwrap_or(0),
            ..Default::default()
        };
        m.memory = MessageField::some(v1_pb::MemoryStat {
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

fn v2_metrics(dir: &Path) -> v2_pb::Metrics {
    let mut m = v2_pb::Metrics::new();
    if let Some(current) = read_u64(&dir.join("pids.current")) {
        m.pids = MessageField::some(v2_pb::PidsStat {
            current,
            limit: read_limit(&dir.join("pids.max")).unwrap_or(0),
            ..Default::default()
        });
    }
    if let Some(stat) = read_keyed(&dir.join("cpu.stat")) {
        m.cpu = MessageField::some(v2_pb::CPUStat {
            usage_usec: stat("usage_usec"),
            user_usec: stat("user_usec"),
            system_usec: stat("system_usec"),
            nr_periods: stat("nr_periods"),
            nr_throttled: stat("nr_throttled"),
            throttled_usec: stat("throttled_usec"),
            nr_bursts: stat("nr_bursts"),
            burst_usec: stat("burst_usec"),
            ..Default::default()
        });
    }
    if let Some(usage) = read_u64(&dir.join("memory.current")) {
        let text = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        let stat = |key| keyed_value(&text, key).unwrap_or(0);
        let file = |name: &str| read_limit(&dir.join(name)).unwrap_or(0);
        m.memory = MessageField::some(v2_pb::MemoryStat {
            anon: stat("anon"),
            file: stat("file"),
            kernel_stack: stat("kernel_stack"),
            slab: stat("slab"),
            sock: stat("sock"),
            shmem: stat("shmem"),
            file_mapped: stat("file_mapped"),
            file_dirty: stat("file_dirty"),
            file_writeback: stat("file_writeback"),
            anon_thp: stat("anon_thp"),
            inactive_anon: stat("inactive_anon"),
            active_anon: stat("active_anon"),
            inactive_file: stat("inactive_file"),
            active_file: stat("active_file"),
            unevictable: stat("unevictable"),
            slab_reclaimable: stat("slab_reclaimable"),
            slab_unreclaimable: stat("slab_unreclaimable"),
            pgfault: stat("pgfault"),
            pgmajfault: stat("pgmajfault"),
            workingset_refault: stat("workingset_refault"),
            workingset_activate: stat("workingset_activate"),
            workingset_nodereclaim: stat("workingset_nodereclaim"),
            pgrefill: stat("pgrefill"),
            pgscan: stat("pgscan"),
            pgsteal: stat("pgsteal"),
            pgactivate: stat("pgactivate"),
            pgdeactivate: stat("pgdeactivate"),
            pglazyfree: stat("pglazyfree"),
            pglazyfreed: stat("pglazyfreed"),
            thp_fault_alloc: stat("thp_fault_alloc"),
            thp_collapse_alloc: stat("thp_collapse_alloc"),
            usage,
            usage_limit: file("memory.max"),
            swap_usage: file("memory.swap.current"),
            swap_limit: file("memory.swap.max"),
            max_usage: file("memory.peak"),
            swap_max_usage: file("memory.swap.peak"),
            ..Default::default()
        });
    }
    if let Some(events) = read_keyed(&dir.join("memory.events")) {
        m.memory_events = MessageField::some(v2_pb::MemoryEvents {
            low: events("low"),
            high: events("high"),
            max: events("max"),
            oom: events("oom"),
            oom_kill: events("oom_kill"),
            oom_group_kill: events("oom_group_kill"),
            ..Default::default()
        });
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake v2 cgroup directory (plain files): what the metrics read.
    #[test]
    fn v2_files_are_read() {
        let root = std::env::temp_dir().join(format!("shim-metrics-{}", std::process::id()));
        let cg = SandboxCgroup::create_v2(&root, "/ns/c1").unwrap().unwrap();
        let dir = root.join("ns/c1");
        for (file, text) in [
            ("memory.max", "67108864\n"),
            ("memory.current", "4096\n"),
            ("memory.stat", "anon 100\nfile 200\nshmem 50\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"),
            ("cpu.stat", "usage_usec 7\nuser_usec 5\nsystem_usec 2\n"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let CgroupMetrics::V2(m) = CgroupMetrics::of(&cg) else {
            panic!("v1 metrics from a v2 cgroup");
        };
        assert!(m.pids.is_none());
        assert_eq!(m.cpu.usage_usec, 7);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.usage_limit, 64 << 20);
        assert_eq!((m.memory.anon, m.memory.shmem), (100, 50));
        assert_eq!((m.memory_events.max, m.memory_events.oom_kill), (3, 1));
        let any = CgroupMetrics::V2(m).into_any().unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        std::fs::remove_dir_all(root).unwrap();
    }
}
