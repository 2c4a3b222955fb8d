#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ (cargo-fuzz, nightly) and runs each for FUZZ_SECONDS
# (default 30), one fuzzer process at a time. Exits non-zero as soon as a target crashes;
# the crashing input is then in fuzz/artifacts/<target>/.
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh            # every target
#   scripts/fuzz.sh schedule proto_decode      # only these
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-30}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustup toolchain list | grep -q "^${TOOLCHAIN}"; then
    rustup toolchain install "${TOOLCHAIN}" --profile minimal
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+${TOOLCHAIN}" fuzz list --fuzz-dir fuzz)
fi

# One build of every target (cargo fuzz builds them all when given none).
cargo "+${TOOLCHAIN}" fuzz build --fuzz-dir fuzz

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/${target}"
    echo "== ${target}: ${SECONDS_EACH}s" >&2
    # Fuzz into a scratch corpus seeded from the committed seeds, so that generated inputs
    # never land among them. One process (libFuzzer's default, no -jobs/-workers).
    work="$(mktemp -d)"
    if ! cargo "+${TOOLCHAIN}" fuzz run --fuzz-dir fuzz "${target}" "${work}" "fuzz/corpus/${target}" -- \
        -max_total_time="${SECONDS_EACH}" -print_final_stats=1; then
        failed+=("${target}")
    fi
    rm -rf "${work}"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "every fuzz target ran ${SECONDS_EACH}s without a crash" >&2
