#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target in fuzz/fuzz_targets for FUZZ_SECONDS each (default 20).
#
# Usage: .ci/fuzz.sh [TARGET...]      (default: every target; FUZZ_SECONDS=600 for a longer hunt)
#
# Each target compares a data structure with a std model (see the target's docs). A crash leaves the input in
# fuzz/artifacts/<target>/; reproduce it with `cargo +nightly fuzz run <target> <file>` from fuzz/ and print
# it with `cargo +nightly fuzz fmt <target> <file>`. The corpus grows in fuzz/corpus/ (gitignored), so
# repeated local runs start where the last one stopped.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)/fuzz"

run() {
    echo "+ $*" >&2
    "$@"
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    run rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    run cargo install cargo-fuzz --locked
fi

seconds=${FUZZ_SECONDS:-20}
if (($#)); then
    targets=("$@")
else
    targets=()
    for file in fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi

run cargo +nightly fuzz build
failed=()
for target in "${targets[@]}"; do
    if ! run cargo +nightly fuzz run "$target" -- -max_total_time="$seconds"; then
        failed+=("$target")
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: failing targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
