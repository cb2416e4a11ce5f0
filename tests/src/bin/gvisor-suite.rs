//! gvisor-suite: maintains the expectations of gVisor's syscall test suite under runsc-rs
//! (see `runsc_rs_tests::gvisor`; the check itself is the integration test `gvisor_suite`).
//!
//! ```text
//! gvisor-suite update [--accept-regressions] [--retry-excluded]
//!     runs the suite and moves tests/gvisor/expectations.txt forward
//! gvisor-suite record [LOGS]
//!     moves the expectations forward from the logs of the last run (the CI check's), without
//!     running anything
//! gvisor-suite readme [RESULTS.tsv]
//!     prints the README's compatibility figures from the last run's results
//! ```

use anyhow::{bail, Context, Result};
use runsc_rs_tests::gvisor::{self, Expectations, Runner, Suite, UpdateOptions};
use runsc_rs_tests::{find_runsc_rs_bin, workspace_dir};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = workspace_dir().join(gvisor::EXPECTATIONS_FILE);
    let old = if file.exists() {
        Expectations::load(&file)?
    } else {
        Expectations::default()
    };
    match args.first().map(String::as_str) {
        Some("update") => {
            let mut options = UpdateOptions::default();
            for arg in &args[1..] {
                match arg.as_str() {
                    "--accept-regressions" => options.accept_regressions = true,
                    "--retry-excluded" => options.retry_excluded = true,
                    other => bail!("unknown option {other}"),
                }
            }
            let suite = Suite::find().map_err(anyhow::Error::msg)?;
            let runner = Runner {
                suite,
                runsc_rs: find_runsc_rs_bin().map_err(anyhow::Error::msg)?,
                logs: gvisor::default_logs(),
            };
            let (new, report) = gvisor::update(&runner, &old, options)?;
            std::fs::write(&file, new.render())
                .with_context(|| format!("writing {}", file.display()))?;
            eprint!("{}", report.render());
            eprintln!(
                "wrote {} ({} programs); results in {}",
                file.display(),
                new.programs.len(),
                gvisor::results_path(&runner.logs).display()
            );
        }
        Some("record") => {
            let logs = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(gvisor::default_logs);
            let (new, moved) = gvisor::record(&logs, &old)?;
            std::fs::write(&file, new.render())
                .with_context(|| format!("writing {}", file.display()))?;
            for line in &moved {
                eprintln!("recorded {line}");
            }
            eprintln!(
                "wrote {}: {} moves from the logs in {}",
                file.display(),
                moved.len(),
                logs.display()
            );
        }
        Some("readme") => {
            let results = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| gvisor::results_path(&gvisor::default_logs()));
            print!("{}", gvisor::readme_figures(&results, &old)?);
        }
        _ => bail!("usage: gvisor-suite update [--accept-regressions] [--retry-excluded] | record [LOGS] | readme [RESULTS.tsv]"),
    }
    Ok(())
}
