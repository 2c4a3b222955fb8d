#!/usr/bin/env bash
# Runs every test of the workspace from a fresh clone: unit, property, storage-suite and
# multi-process integration tests (which start `rookery` processes on loopback ports, and
# PostgreSQL servers for the state tests), the Python example app's test (grpcio from PyPI),
# and builds the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
python3 -m pip install --quiet --disable-pip-version-check -r examples/dapr-python/requirements.txt
# The Python app test skips without grpcio on a developer's machine; here it must run.
export ROOKERY_TEST_REQUIRE_PYTHON=1
# The state tests start private PostgreSQL servers (Debian's postgresql package: initdb and
# postgres, run as the postgres user under root); install it where it is missing.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
export ROOKERY_TEST_REQUIRE_POSTGRES=1
# tests/certs.rs checks the certificates `rookery certs` writes with OpenSSL's command.
if ! command -v openssl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
fi
# The runtime's layers: no import cycle, no layer using one below it.
python3 scripts/check_layers.py
# The Kubernetes manifests render and validate offline (deploy/kubernetes, deploy/grafana).
scripts/check-kubernetes.sh
cargo test --workspace --all-targets --locked
