#!/usr/bin/env bash
# Runs gVisor's syscall test suite (shared/gvisor-syscall-tests) under target/release/runsc-rs
# and moves tests/gvisor/expectations.txt forward: new passes are recorded, a program that
# crashes or hangs is run again without the case it was in (that case is then excluded). It
# refuses to drop a pass that a re-run alone confirms failing, unless --accept-regressions.
#   tests/gvisor/update-expectations.sh [--accept-regressions] [--retry-excluded]
# --retry-excluded runs the excluded cases again, to see whether they still hang.
# Takes about as long as the CI check (minutes); logs in target/gvisor-suite/logs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
cargo build --release -q -p sentry
cargo run --release -q -p runsc-rs-tests --bin gvisor-suite -- update "$@"
