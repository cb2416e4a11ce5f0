//! A container's cgroup under the OCI CLI: where it is, joining it, and what `events` and
//! `update` read and write (the cgroup code itself is `sentry::boot::cgroup`, shared with the
//! containerd shim).
//!
//! The monitor joins the cgroup before it starts the sandbox, so both are inside: the
//! sandbox holds the container's memory, and engines find the cgroup through the PID
//! `create` reports (containerd's runc shim watches its `memory.events` for OOM kills, as it
//! does for runc's init). `delete` removes it, as runc does.

use std::io::Write as _;

use anyhow::Context as _;
use oci_spec::runtime::Spec;
use sentry::boot::cgroup::{
    keyed_value, read_keyed, read_limit, read_u64, Layout, Placement, SandboxCgroup,
};
use serde_json::{json, Value};

/// The cgroupfs path of a container: `linux.cgroupsPath`; with `--systemd-cgroup` its
/// `slice:prefix:name` form is turned into the directories systemd would make
/// (`/a.slice/a-b.slice/prefix-name.scope`). `None`: no cgroup.
pub fn path(spec: &Spec, systemd: bool) -> Option<String> {
    let path = spec.linux().as_ref()?.cgroups_path().as_ref()?;
    let path = path.to_str()?;
    if path.is_empty() {
        return None;
    }
    if !systemd || !path.contains(':') {
        return Some(path.to_owned());
    }
    let mut parts = path.splitn(3, ':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    Some(format!(
        "{}/{}",
        expand_slice(slice),
        if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        }
    ))
}

/// systemd's nesting of slices: `a-b.slice` lives in `a.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> String {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return format!("/{slice}");
    };
    if stem == "-" {
        return String::new();
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    out
}

/// Opens (creating it when missing) the cgroup at `path`; `None` when the host has no
/// cgroups to place it in.
pub fn open(path: &str) -> anyhow::Result<Option<SandboxCgroup>> {
    SandboxCgroup::create(path).with_context(|| format!("cgroup {path}"))
}

/// Creates the container's cgroup, applies the spec's resources and moves this process
/// (the monitor, before it has children) into it.
///
/// # Errors
/// The cgroup could not be made, a limit not written, or the move was refused.
pub fn create_and_join(spec: &Spec, path: &str) -> anyhow::Result<Option<SandboxCgroup>> {
    let Some(cg) = open(path)? else {
        return Ok(None);
    };
    let made = (|| {
        if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            cg.update(r).context("applying linux.resources")?;
        }
        match cg.placement()? {
            Placement::ProcsOnStdout(mut procs) => procs.write_all(b"0")?,
            Placement::JoinThread(tasks) => {
                let pid = std::process::id().to_string();
                for t in tasks {
                    std::fs::write(t.with_file_name("cgroup.procs"), &pid)
                        .with_context(|| format!("joining {}", t.display()))?;
                }
            }
        }
        anyhow::Ok(())
    })();
    if let Err(e) = made {
        cg.remove();
        return Err(e);
    }
    Ok(Some(cg))
}

/// runc's `events --stats` data: `cpu`, `memory`, `pids` from the cgroup's files (cgroup v2
/// numbers converted as runc converts them: microseconds to nanoseconds, `max` as the
/// largest u64 for memory and as 0 for pids).
pub fn stats(cg: &SandboxCgroup) -> Value {
    match cg.layout() {
        Layout::V2(dir) => {
            let cpu = read_keyed(&dir.join("cpu.stat"));
            let c = |k: &str| cpu.as_ref().map_or(0, |s| s(k));
            let raw: serde_json::Map<String, Value> =
                std::fs::read_to_string(dir.join("memory.stat"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(' ')?;
                        Some((k.to_owned(), json!(v.trim().parse::<u64>().ok()?)))
                    })
                    .collect();
            let events = std::fs::read_to_string(dir.join("memory.events")).unwrap_or_default();
            let entry = |usage: &str, limit: &str, max: &str| {
                json!({
                    "usage": read_u64(&dir.join(usage)).unwrap_or(0),
                    "limit": read_limit(&dir.join(limit)).unwrap_or(0),
                    "max": read_u64(&dir.join(max)).unwrap_or(0),
                    "failcnt": keyed_value(&events, "max").unwrap_or(0),
                })
            };
            let pids_limit = match read_limit(&dir.join("pids.max")) {
                Some(u64::MAX) | None => 0,
                Some(n) => n,
            };
            json!({
                "cpu": {
                    "usage": {
                        "total": c("usage_usec") * 1000,
                        "kernel": c("system_usec") * 1000,
                        "user": c("user_usec") * 1000,
                    },
                    "throttling": {
                        "periods": c("nr_periods"),
                        "throttledPeriods": c("nr_throttled"),
                        "throttledTime": c("throttled_usec") * 1000,
                    },
                },
                "memory": {
                    "usage": entry("memory.current", "memory.max", "memory.peak"),
                    "swap": entry("memory.swap.current", "memory.swap.max", "memory.swap.peak"),
                    "kernel": {},
                    "kernelTCP": {},
                    "raw": raw,
                },
                "pids": {
                    "current": read_u64(&dir.join("pids.current")).unwrap_or(0),
                    "limit": pids_limit,
                },
                "blkio": {},
                "hugetlb": {},
            })
        }
        layout @ Layout::V1(_) => {
            let file = |c: &str, f: &str| layout.dir(c).map(|d| d.join(f));
            let num = |c: &str, f: &str| file(c, f).and_then(|p| read_u64(&p)).unwrap_or(0);
            let entry = |prefix: &str| {
                json!({
                    "usage": num("memory", &format!("{prefix}usage_in_bytes")),
                    "limit": num("memory", &format!("{prefix}limit_in_bytes")),
                    "max": num("memory", &format!("{prefix}max_usage_in_bytes")),
                    "failcnt": num("memory", &format!("{prefix}failcnt")),
                })
            };
            let throttle = file("cpu", "cpu.stat").and_then(|p| read_keyed(&p));
            let t = |k: &str| throttle.as_ref().map_or(0, |s| s(k));
            json!({
                "cpu": {
                    "usage": {"total": num("cpuacct", "cpuacct.usage")},
                    "throttling": {
                        "periods": t("nr_periods"),
                        "throttledPeriods": t("nr_throttled"),
                        "throttledTime": t("throttled_time"),
                    },
                },
                "memory": {
                    "usage": entry("memory."),
                    "swap": entry("memory.memsw."),
                    "kernel": entry("memory.kmem."),
                    "kernelTCP": {},
                },
                "pids": {
                    "current": num("pids", "pids.current"),
                    "limit": num("pids", "pids.max"),
                },
                "blkio": {},
                "hugetlb": {},
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expand_slice;

    #[test]
    fn systemd_slices_nest_as_systemd_nests_them() {
        assert_eq!(expand_slice("system.slice"), "/system.slice");
        assert_eq!(
            expand_slice("machine-libpod.slice"),
            "/machine.slice/machine-libpod.slice"
        );
        assert_eq!(expand_slice("-.slice"), "");
    }
}
