#!/usr/bin/env bash
# The chart checks that need no cluster and no container engine:
#   1. helm lint --strict of charts/edge-gateway with the defaults, each ci/*.yaml and the
#      Tilt dev values;
#   2. helm unittest (the suites under charts/edge-gateway/tests/);
#   3. helm template --include-crds of the same values files piped through
#      kubernetes-validate --strict (offline schemas shipped in the PyPI package) for the
#      oldest supported Kubernetes (1.27: native gRPC probes are GA) and the newest the
#      package knows; the GatewayRoute CustomResourceDefinition itself is validated too.
#      Kinds defined by CRDs (GRPCRoute, HTTPRoute, ServiceMonitor) have no schema there:
#      they are reported as warnings and covered by helm unittest and tests/k8s.
# Installs the pinned helm + helm-unittest first (scripts/k8s-tools.sh, cached).
# Run it inside the project venv (kubernetes-validate must be on PATH):
#   uv run --no-sync scripts/k8s-chart-test.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
CHART=charts/edge-gateway
KUBE_VERSIONS=(1.27.0 "${EDGE_KUBE_VALIDATE_LATEST:-1.37.0}")

say() { printf 'k8s-chart-test: %s\n' "$*" >&2; }
die() {
    printf 'k8s-chart-test: FAILED: %s\n' "$*" >&2
    exit 1
}

t0=$SECONDS
eval "$(scripts/k8s-tools.sh --env)"
command -v kubernetes-validate >/dev/null 2>&1 \
    || die "kubernetes-validate is not on PATH (dev dependency; run through 'uv run')"

value_sets=("")
for f in "$CHART"/ci/*.yaml "$CHART"/values-dev.yaml; do
    value_sets+=("$f")
done

checks=0
for values in "${value_sets[@]}"; do
    label="${values:-defaults}"
    args=()
    [[ -z "$values" ]] || args=(-f "$values")
    helm lint --strict "${args[@]}" "$CHART" >/tmp/k8s-chart-lint.$$ 2>&1 \
        || {
            cat /tmp/k8s-chart-lint.$$ >&2
            rm -f /tmp/k8s-chart-lint.$$
            die "helm lint --strict ($label)"
        }
    rm -f /tmp/k8s-chart-lint.$$
    say "helm lint --strict ($label): ok"
    checks=$((checks + 1))
    for kv in "${KUBE_VERSIONS[@]}"; do
        helm template edge-gateway "$CHART" --namespace galaxy --kube-version "$kv" --include-crds "${args[@]}" \
            | kubernetes-validate --strict --quiet --no-warn -k "$kv" - \
            || die "kubernetes-validate -k $kv of helm template ($label)"
        checks=$((checks + 1))
    done
    say "helm template --include-crds ($label) | kubernetes-validate --strict -k ${KUBE_VERSIONS[*]}: ok"
done

helm unittest --color=false "$CHART" >&2 || die "helm unittest"
say "helm unittest: ok"

# The plain closing line CI reads (see the README's test section).
printf 'k8s-chart: %d passed, 0 failed\n' "$((checks + 1))"
say "done in $((SECONDS - t0)) s"
