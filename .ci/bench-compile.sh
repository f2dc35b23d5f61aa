#!/usr/bin/env bash
# Compiles the benchmarks and runs each once, without timing, as CI does (CI never asserts timings).
#
# Usage: .ci/bench-compile.sh        (BENCH=<name> to smoke-run one bench target of the `benches` crate)
#
# `ws_deque_instructions` counts instructions under valgrind's callgrind (its `--test` run does one round of
# each workload, so the harness and the table are checked); valgrind is installed with apt-get when missing
# and this runs as root, as .ci/prereqs.sh does.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind with apt-get" >&2
    if [[ $(id -u) != 0 ]]; then
        echo "not root: install valgrind by hand (Debian: apt-get install valgrind)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends valgrind >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends valgrind >/dev/null; }
fi

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
