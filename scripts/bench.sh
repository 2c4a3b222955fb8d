#!/usr/bin/env bash
# The benchmark suite in one command (benches/README.md, "Suite"): builds in release mode, then
#   1. the `invoke` bench: embedded actors over gRPC against bare tonic, in process;
#   2. the `state` bench (sled and a private PostgreSQL) and the `reminders` bench;
#   3. the peer actor crates (actix, ractor, kameo; benches/peers, a workspace of its own);
#   4. Ray actors (benches/peers/ray_bench.py; installs `ray` from PyPI if missing, and skips
#      Ray if that fails);
#   5. the suite: 1 placement node + 3 hosts of the `rookery` binary with their apps as
#      processes, against a bare tonic echo server and proxy, folding in 1-4.
# Results: target/bench-results/ (suite.json, suite.md, suite-latency.png,
# suite-throughput.png, invoke.json, peers.json, ray.json, state.json, reminders.json,
# suite-logs/).
#
# Options: --no-peers (skip 3 and 4), --quick (a short smoke run of the suite; skips 1 and 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
results="$CARGO_TARGET_DIR/bench-results"
mkdir -p "$results"
peers=1
for arg in "$@"; do
  case "$arg" in
    --no-peers) peers=0 ;;
    --quick) export ROOKERY_SUITE_QUICK=1 ;;
    *) echo "usage: $0 [--no-peers] [--quick]" >&2; exit 2 ;;
  esac
done

# The plots' text (titles, axes, legends) is drawn in DejaVu Sans (benches/suite/report.rs).
if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ -z "${ROOKERY_PLOT_FONT:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null || true
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null || true
  fi
fi

echo "== build (release): rookery, the counter example, the benches"
cargo build --release --bin rookery --example counter
# Build the benches once and run those executables, so every step of one run measures the
# same code even while the working tree changes.
bench_exe() {
  cargo bench --no-run --bench "$1" --message-format=json-render-diagnostics |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1"
}
invoke_exe="$(bench_exe invoke)"
state_exe="$(bench_exe state)"
reminders_exe="$(bench_exe reminders)"
suite_exe="$(bench_exe suite)"

if [ -z "${ROOKERY_SUITE_QUICK:-}" ]; then
  echo "== invoke bench (embedded actors over gRPC, in process)"
  "$invoke_exe" --bench
  echo "== state transactions (sled, PostgreSQL)"
  "$state_exe" --bench
  echo "== reminders (registration, firing, stored memory)"
  "$reminders_exe" --bench
fi

if [ "$peers" = 1 ]; then
  echo "== peer actor crates: actix, ractor, kameo"
  cargo run --release --manifest-path benches/peers/Cargo.toml
  echo "== Ray actors"
  if ! python3 -c 'import ray' 2>/dev/null; then
    python3 -m pip install --quiet ray || echo "pip install ray failed: Ray skipped"
  fi
  if python3 -c 'import ray' 2>/dev/null; then
    python3 benches/peers/ray_bench.py || echo "the Ray bench failed: Ray skipped"
    # Ray's worker processes take a while to exit; the suite must not share the cores with
    # them (they once left a load average of 19 behind).
    for _ in $(seq 60); do
      pgrep -f 'ray::|raylet|gcs_server' >/dev/null || break
      sleep 1
    done
    sleep 10
  else
    rm -f "$results/ray.json"
  fi
fi

echo "== suite (cluster processes, bare tonic, peers folded in)"
"$suite_exe" --bench
echo "== results in $results"
