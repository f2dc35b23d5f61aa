#!/usr/bin/env bash
# ThreadSanitizer on the concurrent tests of ws-deque, pools, circuit and mvcc-store, the long `#[ignore]`d ones
# included.
#
# Usage: .ci/tsan.sh [TEST_FILTER...]
#
#   TSAN_TESTS     test files of crates/ws-deque/tests to run (default: stress); missing ones are skipped
#   TSAN_CRATES    crates to run (default: ws-deque pools circuit mvcc-store). For pools, circuit and mvcc-store
#                  (with its `stream` feature) every test file but
#                  `loom.rs` (and mvcc-store's `durable.rs`) runs (the multi-threaded tests sit beside the single-threaded ones, which cost
#                  little)
#   STRESS_SCALE   exported for the stress tests, default 0.1. A stress test may multiply its iteration
#                  counts by it (TSan slows code 5-15x); tests that ignore it still run, only slower.
#
# No suppressions file: measured on this machine kind (nightly 1.97), TSan reports nothing on crossbeam-epoch
# or crossbeam-deque stress tests, and our own code must be race-free. If one is ever needed, it goes in
# .ci/tsan-suppressions.txt with one line per dependency and a comment saying why that report is a false
# positive; never for this workspace's code.
#
# TSan must instrument std too (`-Zbuild-std`, which needs the nightly `rust-src` component), and an explicit
# `--target` keeps the sanitizer flags off build scripts and proc-macros. Own target directory (target/tsan):
# these flags rebuild everything. Optimised, with debug assertions on (CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS):
# the `debug_assert!`s state the invariants the stress tests must keep, and `--release` alone drops them.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"

run() {
    echo "+ $*" >&2
    "$@"
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    run rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    run rustup component add --toolchain nightly rust-src
fi

target=$(rustup run nightly rustc -vV | sed -n 's/^host: //p')
tests_of() {
    local crate=$1 name file
    case $crate in
    ws-deque)
        for name in ${TSAN_TESTS:-stress}; do
            if [[ -f crates/ws-deque/tests/$name.rs ]]; then
                echo "--test $name"
            else
                echo "tsan: crates/ws-deque/tests/$name.rs does not exist; skipped" >&2
            fi
        done
        ;;
    pools | circuit | mvcc-store)
        for file in crates/$crate/tests/*.rs; do
            name=$(basename "$file" .rs)
            # mvcc-store's `durable.rs` reopens stores from disk thousands of times and kills a child
            # process: its concurrency (group commit) is covered by `concurrent.rs`; too slow under TSan.
            [[ $name == loom || ($crate == mvcc-store && $name == durable) ]] || echo "--test $name"
        done
        ;;
    *) echo "tsan: no tests defined for '$crate'" >&2 ;;
    esac
}

export RUSTFLAGS="-Zsanitizer=thread${RUSTFLAGS:+ $RUSTFLAGS}"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
export CARGO_TARGET_DIR=${TSAN_TARGET_DIR:-$root/target/tsan}
export STRESS_SCALE=${STRESS_SCALE:-0.1}
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
failed=0
for crate in ${TSAN_CRATES:-ws-deque pools circuit mvcc-store}; do
    read -r -a tests <<<"$(tests_of "$crate" | tr '\n' ' ')"
    if ((${#tests[@]} == 0)); then
        echo "tsan: no test to run for $crate" >&2
        continue
    fi
    echo "+ RUSTFLAGS=\"$RUSTFLAGS\" TSAN_OPTIONS=\"$TSAN_OPTIONS\" STRESS_SCALE=$STRESS_SCALE" \
        "CARGO_TARGET_DIR=$CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true cargo +nightly test -Zbuild-std --target $target --release" \
        "-p $crate ${tests[*]} -- --include-ignored $*" >&2
    features=()
    # The test files that need a feature declare it as required: turn those features on.
    [[ $crate == mvcc-store ]] && features=(--features stream)
    cargo +nightly test -Zbuild-std --target "$target" --release -p "$crate" "${features[@]}" "${tests[@]}" \
        -- --include-ignored "$@" ||
        failed=1
done
exit "$failed"
