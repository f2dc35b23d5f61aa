#!/usr/bin/env bash
# Lints and docs, warnings as errors: clippy on every target of the workspace, clippy on the no_std build of
# ws-deque (`--no-default-features`: the bounded deque alone), clippy on pools with its `serde` feature, on
# circuit with `tokio` and `tower`, on mvcc-store with all its features and on the orchestrator with `otel`, clippy
# on the fuzz crate, and rustdoc on the library crates (broken intra-doc links, missing docs).
#
# Usage: .ci/clippy.sh
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

run() {
    echo "+ $*" >&2
    "$@"
}

if ! cargo clippy --version >/dev/null 2>&1; then
    run rustup component add clippy
fi

run cargo clippy --workspace --all-targets -- -D warnings
run cargo clippy -p ws-deque --no-default-features -- -D warnings
run cargo clippy -p pools --all-targets --features serde -- -D warnings
run cargo clippy -p circuit --all-targets --features tokio,tower -- -D warnings
run cargo clippy -p mvcc-store --all-targets --all-features -- -D warnings
run cargo clippy -p orchestrator --all-targets --features otel -- -D warnings
if [[ -f fuzz/Cargo.toml ]]; then
    # The fuzz crate builds on stable for checking (only running it needs nightly); its own target dir.
    # With `--cfg fuzzing`, as cargo-fuzz builds it: the crates' fuzzing hooks exist only under it.
    RUSTFLAGS="--cfg fuzzing" run cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
fi
docs=(cargo doc -p ws-deque -p pools -p circuit -p mvcc-store -p opencode-client -p orchestrator
    --features pools/serde,circuit/tokio,circuit/tower,mvcc-store/durable,mvcc-store/stream,opencode-client/testkit,orchestrator/otel --no-deps)
echo "+ RUSTDOCFLAGS=-Dwarnings ${docs[*]}" >&2
RUSTDOCFLAGS=-Dwarnings "${docs[@]}"
