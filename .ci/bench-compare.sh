#!/usr/bin/env bash
# Regression check: benchmark `main` and the working tree with criterion, then print each benchmark's change.
#
# Usage (from anywhere in the repository):
#
#     .ci/bench-compare.sh [FILTER]
#
#   FILTER          optional criterion filter, e.g. `push_pop/lifo` or `fork_join/2_threads`
#   BENCH=<name>    the bench target of the `benches` crate (default: ws_deque)
#   BASE=<git ref>  what to compare against (default: main); it becomes the criterion baseline's name
#
# `BASE` is checked out into a temporary git worktree and benchmarked there with `--save-baseline`, using
# this checkout's target directory, so the baseline lands in the same `target/criterion`. The working tree
# (committed or not) is then benchmarked with `--baseline-lenient`, so a benchmark that `BASE` lacks is
# reported as new instead of failing the run. Timings are noisy: the script reports, it never fails on a
# regression (CI only compiles and smoke-runs benchmarks; it never asserts timings).
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"

bench=${BENCH:-ws_deque}
base=${BASE:-main}
filter=${1:-}
# Criterion keeps baselines in directories named after them.
baseline=$(printf '%s' "$base" | tr -c 'A-Za-z0-9._-' '_')

target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target_dir"
CARGO_TARGET_DIR=$(cd "$target_dir" && pwd)
export CARGO_TARGET_DIR
# Both runs must read and write the same criterion directory, wherever cargo runs from.
export CRITERION_HOME=${CRITERION_HOME:-$CARGO_TARGET_DIR/criterion}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
worktree=$scratch/base
log=$scratch/current.log
cleanup() {
    if [[ -d $worktree ]]; then
        git -C "$root" worktree remove --force "$worktree" || true
    fi
    git -C "$root" worktree prune || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# No plots: the table below is the report, and plotting every benchmark twice costs minutes.
criterion_args=(--color never --noplot)
if [[ -n $filter ]]; then
    criterion_args+=("$filter")
fi

echo "==> benchmarking $base ($(git rev-parse --short "$base^{commit}")) as baseline '$baseline'" >&2
git worktree add --detach --quiet "$worktree" "$base"
if [[ ! -f $worktree/benches/benches/$bench.rs ]]; then
    echo "error: $base has no benches/benches/$bench.rs, so there is nothing to compare against" >&2
    exit 1
fi
(cd "$worktree" && cargo bench -p benches --bench "$bench" -- --save-baseline "$baseline" "${criterion_args[@]}")

echo "==> benchmarking the working tree against '$baseline'" >&2
cargo bench -p benches --bench "$bench" -- --baseline-lenient "$baseline" "${criterion_args[@]}" | tee "$log"

# Criterion prints, per benchmark: its id (alone on a line when longer than 23 characters, else followed by
# `time:`), then either `change: [low mean high] (p = ...)` or, with a throughput, `change:` and an indented
# `time: [low mean high] (p = ...)`, then a verdict. The mean's relative change is the middle value.
echo
echo "Change of the mean time against '$baseline' (negative is faster; 95% interval in brackets):"
awk '
    function flush() {
        if (name == "") return
        printf "%-50s %9s  %-24s %-7s %s\n", name, change, interval, p, verdict
        if (verdict == "regressed") regressed++
        if (verdict == "improved") improved++
        name = ""
    }
    BEGIN {
        printf "%-50s %9s  %-24s %-7s %s\n", "benchmark", "change", "interval", "p", "verdict"
    }
    { gsub(/\033\[[0-9;]*m/, ""); gsub(/\342\210\222/, "-") }
    /^(Benchmarking|Found|Gnuplot|WARNING|Warning)/ { next }
    /^[^ ]/ {
        flush()
        name = $0
        sub(/[ ]+time:.*$/, "", name)
        change = "-"; interval = "(no baseline)"; p = "-"; verdict = "new"
        want_change = 0
        next
    }
    /^ +change:$/ { want_change = 1; next }
    (want_change && /^ +time: +\[/) || /^ +change: \[/ {
        want_change = 0
        inner = $0
        sub(/^[^[]*\[/, "", inner)
        sub(/\].*$/, "", inner)
        split(inner, bounds, " ")
        change = bounds[2]
        interval = "[" bounds[1] " " bounds[3] "]"
        p = $0
        sub(/^.*p = /, "", p)
        sub(/ .*$/, "", p)
        verdict = "?"
        next
    }
    /No change in performance detected/ { verdict = "no change"; next }
    /Change within noise threshold/ { verdict = "noise"; next }
    /Performance has improved/ { verdict = "improved"; next }
    /Performance has regressed/ { verdict = "regressed"; next }
    END {
        flush()
        printf "\n%d regressed, %d improved (criterion: p < 0.05 and beyond its noise threshold)\n", regressed, improved
    }
' "$log"
