#!/usr/bin/env bash
# Prints the README's figures for gVisor's syscall test suite (markdown) from the last run's
# results (target/gvisor-suite/results.tsv, written by the gvisor_suite test and by
# update-expectations.sh), or from the results file given.
#   tests/gvisor/readme-figures.sh [RESULTS.tsv]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
cargo run --release -q -p runsc-rs-tests --bin gvisor-suite -- readme "$@"
