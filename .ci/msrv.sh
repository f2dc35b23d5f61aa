#!/usr/bin/env bash
# The workspace's minimum supported Rust version: the `rust-version` of the root Cargo.toml, checked by building
# every library and binary with that toolchain (what a user who depends on a crate compiles). Edition 2024 and
# let-chains need 1.88; the benches crate is left out (its peers, e.g. surrealmx, need newer compilers, and
# nobody depends on it).
#
# Usage: .ci/msrv.sh      (installs the toolchain with rustup when it is missing)
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
if [[ -z $msrv ]]; then
    echo "msrv: no rust-version in Cargo.toml" >&2
    exit 1
fi
toolchain=$msrv
# rustup names toolchains by full version.
[[ $toolchain =~ ^[0-9]+\.[0-9]+$ ]] && toolchain=$toolchain.0
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "+ rustup toolchain install $toolchain --profile minimal" >&2
    rustup toolchain install "$toolchain" --profile minimal
fi
export CARGO_TARGET_DIR=${MSRV_TARGET_DIR:-$root/target/msrv}
echo "+ cargo +$toolchain check --workspace --exclude benches --lib --bins" >&2
cargo "+$toolchain" check --workspace --exclude benches --lib --bins
