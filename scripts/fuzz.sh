#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ and runs each for FUZZ_SECONDS (default 30), one libFuzzer
# process at a time. Exits non-zero as soon as a target crashes; the crashing input is then in
# fuzz/artifacts/<target>/.
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh            # every target
#   scripts/fuzz.sh schedule proto_decode      # only these
#
# Two builds, by FUZZ_SANITIZER:
#   address (default)  cargo-fuzz on a nightly toolchain (FUZZ_TOOLCHAIN, default nightly),
#                      with AddressSanitizer; installs cargo-fuzz when it is missing.
#   none               the stable toolchain and plain cargo, with the coverage instrumentation
#                      cargo-fuzz passes to rustc (sancov, inline 8-bit counters, PC table,
#                      compare tracing, `--cfg fuzzing`) plus debug assertions and overflow
#                      checks, and no sanitizer: nothing to install, so CI runs this one.
#                      Panics, failed assertions and overflows are found alike; memory
#                      errors in unsafe code would need AddressSanitizer.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-30}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGET_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
# cargo-fuzz builds into fuzz/target too; the binaries are run from there.
export CARGO_TARGET_DIR="${PWD}/fuzz/target"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for source in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "${source}" .rs)")
    done
fi

# One build of every target.
case "${SANITIZER}" in
    address)
        TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
        if ! cargo fuzz --version >/dev/null 2>&1; then
            echo "installing cargo-fuzz" >&2
            cargo install cargo-fuzz --locked
        fi
        if ! rustup toolchain list | grep -q "^${TOOLCHAIN}"; then
            rustup toolchain install "${TOOLCHAIN}" --profile minimal
        fi
        cargo "+${TOOLCHAIN}" fuzz build --fuzz-dir fuzz
        ;;
    none)
        # `--target` keeps the flags off build scripts and proc macros, as cargo-fuzz does.
        # Without debug info: it only slows the link.
        (cd fuzz && CARGO_PROFILE_RELEASE_DEBUG=0 RUSTFLAGS="-Cpasses=sancov-module \
            -Cllvm-args=-sanitizer-coverage-level=4 \
            -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
            -Cllvm-args=-sanitizer-coverage-pc-table \
            -Cllvm-args=-sanitizer-coverage-trace-compares \
            --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
            cargo build --release --locked --target "${TARGET_TRIPLE}" --bins)
        ;;
    *)
        echo "FUZZ_SANITIZER is address or none, not '${SANITIZER}'" >&2
        exit 2
        ;;
esac
binaries="fuzz/target/${TARGET_TRIPLE}/release"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/${target}" "fuzz/artifacts/${target}"
    echo "== ${target}: ${SECONDS_EACH}s (${SANITIZER})" >&2
    # Fuzz into a scratch corpus seeded from the committed seeds, so that generated inputs
    # never land among them. One process (libFuzzer's default, no -jobs/-workers).
    work="$(mktemp -d)"
    if ! "${binaries}/${target}" -artifact_prefix="fuzz/artifacts/${target}/" \
        -max_total_time="${SECONDS_EACH}" -print_final_stats=1 \
        "${work}" "fuzz/corpus/${target}"; then
        failed+=("${target}")
    fi
    rm -rf "${work}"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "every fuzz target ran ${SECONDS_EACH}s without a crash" >&2
