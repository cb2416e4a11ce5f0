//! gVisor's syscall test suite under `runsc-rs do`, compared with the forward-only
//! `tests/gvisor/expectations.txt` (see `runsc_rs_tests::gvisor`). Fails when a case expected to
//! pass does not pass, also when run again alone, or a program ends worse than expected. Newly
//! passing cases are only reported: `tests/gvisor/update-expectations.sh --from-last-run` records
//! them from this run's logs.

use runsc_rs_tests::gvisor::{self, Expectations, Runner, Suite};
use runsc_rs_tests::{find_runsc_rs_bin, skip, workspace_dir};
use std::io::Write as _;

#[test]
fn gvisor_syscall_suite() {
    let suite = match Suite::find() {
        Ok(suite) => suite,
        Err(reason) => return skip(&reason),
    };
    if !nix::unistd::Uid::effective().is_root() {
        return skip("the expectations were recorded as root; most of the suite's cases need it");
    }
    let runner = Runner {
        suite,
        runsc_rs: find_runsc_rs_bin().unwrap_or_else(|e| panic!("{e}")),
        logs: gvisor::default_logs(),
    };
    let file = workspace_dir().join(gvisor::EXPECTATIONS_FILE);
    let expected = Expectations::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let report = gvisor::check(&runner, &expected).unwrap_or_else(|e| panic!("{e}"));
    let summary = report.render();
    // Straight to stderr, past the harness's capture: CI logs show the summary of a pass too.
    let _ = std::io::stderr().lock().write_all(summary.as_bytes());
    assert!(
        report.regressions.is_empty(),
        "gVisor's syscall suite regressed (logs in {}):\n{summary}",
        runner.logs.display()
    );
}
