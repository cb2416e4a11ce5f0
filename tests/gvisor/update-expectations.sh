#!/usr/bin/env bash
# Runs gVisor's syscall test suite (shared/gvisor-syscall-tests) under target/release/runsc-rs
# and moves tests/gvisor/expectations.txt forward: new passes are recorded, a program that
# crashes or hangs is run again without the case it was in (that case is then excluded). It
# refuses to drop a pass that a re-run alone confirms failing, unless --accept-regressions.
#   tests/gvisor/update-expectations.sh [--accept-regressions] [--retry-excluded]
#   tests/gvisor/update-expectations.sh --from-last-run
# --retry-excluded runs the excluded cases again, to see whether they still hang.
# --from-last-run runs nothing: it records what the logs of the last run (the CI check's, in
# target/gvisor-suite/logs) show passing; use it right after that run.
# Takes about as long as the CI check (minutes); logs in target/gvisor-suite/logs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ "${1:-}" == --from-last-run ]]; then
    exec cargo run --release -q -p runsc-rs-tests --bin gvisor-suite -- record
fi
cargo build --release -q -p sentry
cargo run --release -q -p runsc-rs-tests --bin gvisor-suite -- update "$@"
