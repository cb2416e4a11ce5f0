#!/usr/bin/env bash
# Regenerates the README's generated sections from the built binaries:
#   tests/update-readme.sh            the syscall status table (`runsc-rs syscalls --markdown`)
#                                     and the figures of gVisor's syscall test suite from its
#                                     last run (tests/gvisor/readme-figures.sh), if there was one
#   tests/update-readme.sh --bench [ARGS...]
#                                     also the benchmark table: runs runsc-rs-bench with ARGS
#                                     (e.g. --platform ptrace --platform systrap), minutes; as
#                                     root with containerd and runc it includes `ctr run --rm`
# Each section sits between `<!-- NAME -->` and `<!-- /NAME -->` markers in README.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q -p sentry -p shim

replace() { # marker, file with the new content
    python3 - "$1" "$2" <<'PY'
import sys
marker, new = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open("README.md").read()
start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
i, j = text.index(start) + len(start), text.index(end)
open("README.md", "w").write(text[:i] + "\n" + new + "\n" + text[j:])
PY
}

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
{
    "$target/release/runsc-rs" syscalls --markdown | head -1
    echo
    echo "<details><summary>The table (implemented and deliberately refused calls)</summary>"
    echo
    "$target/release/runsc-rs" syscalls --markdown | tail -n +3
    echo
    echo "</details>"
} >"$tmp"
replace "SYSCALL STATUS" "$tmp"

# The gVisor suite takes minutes: its figures come from the last run (the gvisor_suite test or
# tests/gvisor/update-expectations.sh), not a new one.
if [[ -f "$target/gvisor-suite/results.tsv" ]]; then
    tests/gvisor/readme-figures.sh >"$tmp"
    replace "GVISOR SUITE" "$tmp"
else
    echo "no $target/gvisor-suite/results.tsv: gVisor suite figures left as they are" >&2
fi

if [[ "${1:-}" == "--bench" ]]; then
    cargo run --release -q -p runsc-rs-tests --bin runsc-rs-bench -- "${@:2}" >"$tmp"
    replace "BENCHMARKS" "$tmp"
fi
