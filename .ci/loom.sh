#!/usr/bin/env bash
# Loom model checking, one crate at a time (never the whole workspace under `--cfg loom`: it would change the
# build of every dependency that knows the cfg).
#
# Usage: .ci/loom.sh [TEST_FILTER...]
#
#   CRATES                 crates that have loom models in `tests/loom.rs` (default: ws-deque pools circuit
#                          mvcc-store)
#   LOOM_TARGET_DIR        target directory (default: target/loom)
#   LOOM_MAX_PREEMPTIONS   bound on preemptions per execution (default 2, what CI runs). 3 explores much more
#                          and is runnable by hand, e.g. `LOOM_MAX_PREEMPTIONS=3 .ci/loom.sh steal_batch`; it
#                          takes far longer than CI's budget for the whole suite.
#
# `--cfg loom` changes every crate's build, so it gets its own target directory (target/loom) and does not
# invalidate the normal build. Loom's own knobs (LOOM_LOG, LOOM_CHECKPOINT_FILE, ...) pass through.
#
# Optimised (loom explores thousands of executions) but with debug assertions on: the `debug_assert!`s state
# the invariants the models must keep (for example ws-deque's LIFO tag, the owner's pop count), and
# `--release` alone would compile them out.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"

crates=${CRATES:-ws-deque pools circuit mvcc-store}
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
export RUSTFLAGS="--cfg loom${RUSTFLAGS:+ $RUSTFLAGS}"
export CARGO_TARGET_DIR=${LOOM_TARGET_DIR:-$root/target/loom}
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true

for crate in $crates; do
    if [[ ! -f crates/$crate/tests/loom.rs ]]; then
        echo "loom: crates/$crate/tests/loom.rs does not exist; nothing to run for $crate" >&2
        continue
    fi
    echo "+ RUSTFLAGS=\"$RUSTFLAGS\" LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS CARGO_TARGET_DIR=$CARGO_TARGET_DIR" \
        "CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true" \
        "cargo test -p $crate --features loom --test loom --release -- $*" >&2
    cargo test -p "$crate" --features loom --test loom --release -- "$@"
done
