#!/usr/bin/env bash
# Runs every test of the workspace from a fresh clone: unit, property, storage-suite and
# multi-process integration tests (which start `rookery` processes on loopback ports), and
# builds the benchmarks. Needs only the Rust toolchain so far.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets --locked
