#!/usr/bin/env bash
# Renders every kustomize overlay under deploy/kubernetes/overlays and validates the result
# offline against the Kubernetes schemas (kubernetes-validate from PyPI bundles them), strict:
# unknown fields fail too. Also checks that the Grafana dashboards under deploy/grafana parse.
# Installs kubernetes-validate when missing; renders with `kubectl kustomize`, or a
# standalone `kustomize` when kubectl is absent. Exits non-zero on any invalid manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The API version the manifests target (they use the pod-index label, 1.28+, and the
# preStop sleep action, 1.30+).
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33.0}"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
if command -v kubectl >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null 2>&1; then
  render() { kustomize build "$1"; }
else
  echo "check-kubernetes: neither kubectl nor kustomize is installed" >&2
  exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for overlay in deploy/kubernetes/overlays/*/; do
  name="$(basename "$overlay")"
  if ! render "$overlay" >"$out/$name.yaml"; then
    echo "check-kubernetes: $overlay does not render" >&2
    status=1
    continue
  fi
  if kubernetes-validate --quiet --strict -k "$KUBERNETES_VERSION" "$out/$name.yaml"; then
    echo "check-kubernetes: $overlay: $(grep -c '^kind:' "$out/$name.yaml") resources valid"
  else
    echo "check-kubernetes: $overlay: invalid manifests" >&2
    status=1
  fi
done

for dashboard in deploy/grafana/*.json; do
  [ -e "$dashboard" ] || continue
  if python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d.get("panels"), "no panels"' "$dashboard"; then
    echo "check-kubernetes: $dashboard parses"
  else
    echo "check-kubernetes: $dashboard is not a valid dashboard" >&2
    status=1
  fi
done
exit "$status"
