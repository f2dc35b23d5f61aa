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
#   CALLGRIND=0     for BENCH=ws_deque, skip the instruction counts (see below); TIMINGS=0 skips criterion
#
# `BASE` is checked out into a temporary git worktree and benchmarked there with `--save-baseline`, using
# this checkout's target directory, so the baseline lands in the same `target/criterion`. The working tree
# (committed or not) is then benchmarked with `--baseline-lenient`, so a benchmark that `BASE` lacks is
# reported as new instead of failing the run. For BENCH=ws_deque it then runs `ws_deque_instructions` (callgrind
# instruction counts per operation, which unlike timings repeat exactly on a shared machine) on both trees
# and prints the two tables side by side with the change. Timings are noisy: the script reports, it never fails on a
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

git worktree add --detach --quiet "$worktree" "$base"
if [[ ! -f $worktree/benches/benches/$bench.rs ]]; then
    echo "error: $base has no benches/benches/$bench.rs, so there is nothing to compare against" >&2
    exit 1
fi

# Instruction counts: `ws_deque_instructions` prints a markdown table (workload, unit, one column per deque).
if [[ $bench == ws_deque && ${CALLGRIND:-1} != 0 ]]; then
    counts=(cargo bench -p benches --bench ws_deque_instructions --)
    [[ -n $filter ]] && counts+=("$filter")
    if [[ -f $worktree/benches/benches/ws_deque_instructions.rs ]]; then
        echo "==> counting instructions on $base" >&2
        (cd "$worktree" && "${counts[@]}") >"$scratch/base-instructions.md"
    else
        echo "==> $base has no ws_deque_instructions bench: its column stays empty" >&2
        : >"$scratch/base-instructions.md"
    fi
    echo "==> counting instructions on the working tree" >&2
    "${counts[@]}" >"$scratch/current-instructions.md"
    echo
    echo "Instructions per operation (callgrind), '$base' -> working tree (negative is fewer):"
    awk -F'|' '
        function trim(s) { gsub(/^ +| +$/, "", s); return s }
        { file = FILENAME == ARGV[1] ? 1 : 2 }
        /^\| [a-z_]+\// {
            key = trim($2)
            for (i = 4; i < NF; i++) {
                if (file == 1) base[key, i] = trim($i); else current[key, i] = trim($i)
            }
            if (file == 2) order[++n] = key
            next
        }
        /^\| workload/ && file == 2 { for (i = 4; i < NF; i++) name[i] = trim($i); columns = NF }
        END {
            printf "%-40s", "workload"
            for (i = 4; i < columns; i++) printf " %28s", name[i]
            printf "\n"
            for (k = 1; k <= n; k++) {
                key = order[k]
                printf "%-40s", key
                for (i = 4; i < columns; i++) {
                    now = current[key, i]; was = base[key, i]
                    if (was ~ /^[0-9.]+$/ && now ~ /^[0-9.]+$/ && was > 0) {
                        cell = sprintf("%s -> %s (%+.1f%%)", was, now, 100 * (now - was) / was)
                    } else {
                        cell = now
                    }
                    printf " %28s", cell
                }
                printf "\n"
            }
        }
    ' "$scratch/base-instructions.md" "$scratch/current-instructions.md"
    echo
fi
if [[ ${TIMINGS:-1} == 0 ]]; then
    exit 0
fi

echo "==> benchmarking $base ($(git rev-parse --short "$base^{commit}")) as baseline '$baseline'" >&2
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
