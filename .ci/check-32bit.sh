#!/usr/bin/env bash
# Builds the libraries for 32-bit targets, which the x86-64 tests never see: pointer-sized integers of 32
# bits, and (on a microcontroller) no 64-bit atomics.
#
# Usage: .ci/check-32bit.sh
#
#   i686-unknown-linux-gnu    ws-deque without default features (the no_std bounded deque) and with them (the
#                             growable deque and the injector), pools, circuit and mvcc-store: 32-bit `usize`,
#                             64-bit atomics present.
#   thumbv7em-none-eabihf     ws-deque without default features on a Cortex-M4, which has 32-bit atomics but
#                             no 64-bit ones: the deques are left out there (`target_has_atomic` gates them)
#                             and what is left must still build.
#
# `cargo check` only: nothing runs, so no 32-bit C library or emulator is needed. The targets' standard
# libraries are installed with rustup (CI installs nothing by hand).
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

run() {
    echo "+ $*" >&2
    "$@"
}

targets=(i686-unknown-linux-gnu thumbv7em-none-eabihf)
installed=$(rustup target list --installed)
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        run rustup target add "$target"
    fi
done

# Its own target directory: a build for another target shares nothing with the host build anyway, and this
# keeps `cargo clean -p` of the host build from touching it.
export CARGO_TARGET_DIR=${CHECK_32BIT_TARGET_DIR:-target/check-32bit}
# Warnings are errors: an item left unused on one target is a sign the `target_has_atomic` gates are wrong.
export RUSTFLAGS="-D warnings${RUSTFLAGS:+ $RUSTFLAGS}"
failed=0
run cargo check -p ws-deque --no-default-features --target i686-unknown-linux-gnu || failed=1
run cargo check -p ws-deque -p pools -p circuit -p mvcc-store --target i686-unknown-linux-gnu || failed=1
run cargo check -p ws-deque --no-default-features --target thumbv7em-none-eabihf || failed=1
exit "$failed"
