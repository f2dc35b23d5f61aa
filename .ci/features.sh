#!/usr/bin/env bash
# The tests of optional features that the README's test command (`cargo test --workspace`, default features)
# leaves off: pools' `serde`, circuit's `tokio` and `tower`, mvcc-store's `durable` and `stream` (whose test files
# declare them as required features, so the README command skips them), and the orchestrator's `otel` (its OTLP
# export test, `tests/otlp.rs`, needs it).
#
# Usage: .ci/features.sh
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

run() {
    echo "+ $*" >&2
    "$@"
}

failed=0
run cargo test -p pools --features serde || failed=1
run cargo test -p circuit --features tokio,tower || failed=1
run cargo test -p mvcc-store --all-features || failed=1
run cargo test -p orchestrator --features otel --test otlp || failed=1
exit "$failed"
