#!/usr/bin/env bash
# Runs every test of the workspace from a fresh clone: unit, property, storage-suite and
# multi-process integration tests (which start `rookery` processes on loopback ports), the
# Python example app's test (grpcio from PyPI), and builds the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
# The Python app test skips without grpcio on a developer's machine; here it must run.
export ROOKERY_TEST_REQUIRE_PYTHON=1
cargo test --workspace --all-targets --locked
