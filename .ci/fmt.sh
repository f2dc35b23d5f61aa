#!/usr/bin/env bash
# Formatting check: the workspace and the fuzz crate (which is outside the workspace) must be `cargo fmt`-clean.
#
# Usage: .ci/fmt.sh          (fix with `cargo fmt --all` and `cargo fmt --manifest-path fuzz/Cargo.toml`)
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

run() {
    echo "+ $*" >&2
    "$@"
}

if ! cargo fmt --version >/dev/null 2>&1; then
    run rustup component add rustfmt
fi

run cargo fmt --all --check
if [[ -f fuzz/Cargo.toml ]]; then
    run cargo fmt --manifest-path fuzz/Cargo.toml --all --check
fi
