#!/usr/bin/env bash
# The runsc-rs test command: installs what the tests need (Debian bookworm, as root; quick when
# everything is present), checks formatting and lints, builds the workspace once in release and
# runs every test. Extra arguments go to `cargo test` (e.g. `./tests/run.sh --test programs`).
#
# Environment: CARGO_TARGET_DIR (build location), RUNSC_RS_BIN (test another runsc-rs),
# RUNSC_RS_TEST_PLATFORM (pass --platform to `runsc-rs do`), RUNSC_RS_TEST_TIMEOUT (seconds per
# run, default 60), RUNSC_RS_FUZZ_ITERATIONS / RUNSC_RS_FUZZ_SEED.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# --- System packages --------------------------------------------------------------------------
# containerd, runc: end-to-end tests and runc comparisons; busybox-static: a static workload;
# gcc, libc6-dev: static C test programs (and the Rust linker); python3: test tooling and a
# workload; python3-grpcio, python3-grpc-tools: the CRI client of the pod test; sqlite3: a
# workload; tmux: drives `ctr run -t` in the containerd end-to-end test; libbenchmark1debian:
# every program of gVisor's syscall test suite links it (gvisor_suite test); podman, docker.io:
# the OCI runtime CLI's end-to-end tests drive real podman and dockerd; iproute2, curl, procps:
# the network tests make namespaces and veth pairs (`ip`), fetch with curl, set sysctls;
# strace: the ptrace test traces a shell and its child with the real strace in the sandbox;
# iptables: the netfilter test lists and changes tables with iptables-legacy and
# ip6tables-legacy in the sandbox and in a fresh namespace of the host; bindfs: the FUSE test
# mounts a directory with it in the sandbox and natively.
packages=(containerd runc busybox-static gcc libc6-dev python3 python3-grpcio python3-grpc-tools sqlite3 tmux containernetworking-plugins libbenchmark1debian podman docker.io iproute2 curl procps strace iptables bindfs)

step "system packages"
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "all present: ${packages[*]}"
elif ! command -v apt-get >/dev/null; then
    echo "warning: no apt-get; missing ${missing[*]}; tests that need them will be SKIPPED" >&2
else
    sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null; then
            sudo=(sudo)
        else
            echo "warning: not root and no sudo; cannot install ${missing[*]}" >&2
        fi
    fi
    if ((EUID == 0)) || ((${#sudo[@]} > 0)); then
        echo "installing: ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

# --- Rust toolchain ---------------------------------------------------------------------------
# rust-toolchain.toml pins the version; rustup installs it on first use.
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    step "rust toolchain"
    "$root/packaging/install.sh" --toolchain-only
    export PATH="$HOME/.cargo/bin:$PATH"
fi

target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target"
log="$target/run-tests.log"
started=$SECONDS

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo build --release"
cargo build --release --workspace

step "cargo test --release"
# --no-fail-fast: one failing test binary must not hide the results of the others.
status=0
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

skipped="$(grep -a 'SKIPPED:' "$log" || true)"
if [[ -n "$skipped" ]]; then
    step "skipped tests (this machine lacks what they need)"
    echo "$skipped"
fi
step "done in $((SECONDS - started)) s: $([[ $status == 0 ]] && echo PASSED || echo "FAILED (exit $status)")"
exit "$status"
