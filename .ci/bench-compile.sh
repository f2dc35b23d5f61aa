#!/usr/bin/env bash
# Compiles the benchmarks and runs each once, without timing, as CI does (CI never asserts timings).
#
# Usage: .ci/bench-compile.sh        (BENCH=<name> to smoke-run one bench target of the `benches` crate)
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

if [[ -n ${BENCH:-} ]]; then
    targets=(--bench "$BENCH")
else
    targets=(--benches)
fi

# Optimised, like a real run: the fork-join workloads are slow in the test profile.
cargo bench -p benches "${targets[@]}" --no-run
# Criterion's `--test` runs every benchmark once and checks it does not panic (the workloads assert their
# results).
cargo bench -p benches "${targets[@]}" -- --test
