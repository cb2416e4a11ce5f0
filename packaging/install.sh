#!/usr/bin/env bash
# Builds runsc-rs in release mode and installs `runsc-rs` and `containerd-shim-runsc-rs-v2` into
# $PREFIX/bin (default /usr/local/bin). On a fresh Debian machine it first installs the C
# toolchain Rust links with, busybox-static (the README's demo runs /bin/busybox) and, if cargo
# is missing, rustup (rust-toolchain.toml then picks the version).
#
#   ./packaging/install.sh                  build and install
#   PREFIX=$HOME/.local ./packaging/install.sh
#   ./packaging/install.sh --toolchain-only make sure gcc and cargo exist, nothing else
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
prefix="${PREFIX:-/usr/local}"
toolchain_only=false
case "${1:-}" in
    "") ;;
    --toolchain-only) toolchain_only=true ;;
    *) echo "usage: $0 [--toolchain-only]" >&2; exit 2 ;;
esac

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "error: need root for: $*" >&2
        return 1
    fi
}

apt_install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    if ! command -v apt-get >/dev/null; then
        echo "warning: cannot install ${missing[*]} without apt-get" >&2
        return 0
    fi
    echo "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Rust links through the system C compiler.
apt_install_missing gcc libc6-dev
# The README's first command runs /bin/busybox in the sandbox; a fresh Debian has none.
$toolchain_only || apt_install_missing busybox-static

if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    apt_install_missing curl ca-certificates
    echo "installing rustup (the toolchain version comes from rust-toolchain.toml)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --default-toolchain none
    export PATH="$HOME/.cargo/bin:$PATH"
fi
# The pinned toolchain (and its rustfmt/clippy components) is installed on first use.
cargo --version

$toolchain_only && exit 0

cargo build --release -p sentry -p shim
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

bindir="$prefix/bin"
install_cmd=(install -D -m 0755)
if ! { mkdir -p "$bindir" 2>/dev/null && [[ -w "$bindir" ]]; }; then
    install_cmd=(as_root install -D -m 0755)
fi
for bin in runsc-rs containerd-shim-runsc-rs-v2; do
    "${install_cmd[@]}" "$target/release/$bin" "$bindir/$bin"
    echo "installed $bindir/$bin"
done
case ":$PATH:" in
    *":$bindir:"*) ;;
    *) echo "note: $bindir is not on PATH" ;;
esac
