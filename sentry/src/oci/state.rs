//! A container's state directory, `ROOT/ID/`: outlives every CLI invocation.
//!
//! - `state.json`: what `state` reports that never changes ([`Saved`]), written once the
//!   container exists;
//! - `status`: `created`, `running`, `paused` or `stopped` plus, once stopped, init's exit status;
//! - `ctl.sock`: the monitor's socket while it runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sentry::boot::control::WireExitStatus;
use serde::{Deserialize, Serialize};

/// The fixed part of a container's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    /// The monitor's PID: the process that ends with the container's init.
    pub pid: u32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: HashMap<String, String>,
    /// The cgroupfs path of the container's cgroup, if it has one.
    #[serde(default)]
    pub cgroup: Option<String>,
}

impl Saved {
    /// Writes `state.json` (atomically: a reader never sees half of it).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_atomic(dir, "state.json", &serde_json::to_vec(self)?)
    }

    pub fn read(dir: &Path) -> anyhow::Result<Saved> {
        let bytes = std::fs::read(dir.join("state.json"))
            .with_context(|| format!("container {} does not exist", name(dir)))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_atomic(dir: &Path, file: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(file)).with_context(|| format!("renaming {}", tmp.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    /// Every task stopped by `pause` until `resume`.
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StatusFile {
    status: Status,
    exit: Option<WireExitStatus>,
}

pub fn set_status(dir: &Path, status: Status, exit: Option<WireExitStatus>) -> anyhow::Result<()> {
    write_atomic(
        dir,
        "status",
        &serde_json::to_vec(&StatusFile { status, exit })?,
    )
}

/// The recorded status; `stopped` also when the monitor is gone without recording it (it was
/// killed), since the sandbox ends with it.
pub fn status(dir: &Path) -> Status {
    let recorded = std::fs::read(dir.join("status"))
        .ok()
        .and_then(|b| serde_json::from_slice::<StatusFile>(&b).ok())
        .map_or(Status::Stopped, |s| s.status);
    let alive = Saved::read(dir).is_ok_and(|s| monitor_alive(s.pid));
    if alive {
        recorded
    } else {
        Status::Stopped
    }
}

/// True while `pid` is a live monitor (a zombie has no command line, and a recycled PID
/// names some other program).
pub fn monitor_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(super::monitor::MONITOR_ARG.as_bytes()))
}

/// Now as RFC 3339 UTC with nanoseconds, as runc's `created`.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar, counting
/// in 400-year eras that start on March 1st (so the leap day ends a year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_425), (2025, 12, 3));
    }
}
