#!/usr/bin/env bash
# Install the pinned Kubernetes chart tools into .tools/ (git-ignored), idempotently.
#
#   scripts/k8s-tools.sh            # build what is missing or stale; print nothing else on stdout
#   scripts/k8s-tools.sh --env      # same, then print `export PATH=... HELM_PLUGINS=...` lines
#   scripts/k8s-tools.sh --force    # rebuild both
#
# What it installs, from the Go module proxy only (no release downloads):
#   .tools/bin/helm                              go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
#   .tools/helm-plugins/unittest/untt            built from tools/go.mod (helm-unittest pinned there;
#   .tools/helm-plugins/unittest/plugin.yaml     that module repeats helm-unittest's `replace`
#                                                of yaml-jsonpath, which a dependent must restate)
#   .tools/bin/helm-unittest                     symlink to the same binary (standalone use)
#
# `helm unittest CHART` then works with HELM_PLUGINS=.tools/helm-plugins.
# A stamp file records the versions and a hash of tools/go.mod + go.sum: a second run with
# nothing changed does no work (well under a second). The Go module and build caches
# (go env GOMODCACHE / GOCACHE) make a rebuild after a version bump cheap too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
HELM_VERSION="v3.21.3" # the helm library version helm-unittest v1.1.2 is built against
TOOLS="${EDGE_K8S_TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS/bin"
PLUGINS="$TOOLS/helm-plugins"
PLUGIN_DIR="$PLUGINS/unittest"
STAMP="$TOOLS/k8s-tools.stamp"

log() { printf 'k8s-tools: %s\n' "$*" >&2; }
die() {
    printf 'k8s-tools: ERROR: %s\n' "$*" >&2
    exit 1
}

FORCE=0
PRINT_ENV=0
while (($#)); do
    case "$1" in
        --force) FORCE=1 ;;
        --env) PRINT_ENV=1 ;;
        -h | --help)
            sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.26 builds helm and helm-unittest)"

unittest_version="$(awk '$1 == "require" && $2 == "github.com/helm-unittest/helm-unittest" {print $3}' \
    "$ROOT/tools/go.mod")"
[[ -n "$unittest_version" ]] || die "tools/go.mod does not require github.com/helm-unittest/helm-unittest"
want="helm=$HELM_VERSION unittest=$unittest_version go=$(go env GOVERSION) mod=$(cat "$ROOT/tools/go.mod" "$ROOT/tools/go.sum" | sha256sum | cut -c1-16)"

mkdir -p "$BIN" "$PLUGIN_DIR"
exec 9>"$TOOLS/.k8s-tools.lock"
flock -w 900 9 || die "could not take $TOOLS/.k8s-tools.lock within 900 s"

if ((FORCE == 0)) && [[ -x "$BIN/helm" && -x "$PLUGIN_DIR/untt" && -f "$PLUGIN_DIR/plugin.yaml" \
    && "$(cat "$STAMP" 2>/dev/null || true)" == "$want" ]]; then
    log "up to date ($want)"
else
    t0=$SECONDS
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false" GOTOOLCHAIN=local
    log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION -> $BIN/helm"
    GOBIN="$BIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 \
        || die "go install helm failed"
    log "building helm-unittest $unittest_version from tools/go.mod -> $PLUGIN_DIR/untt"
    (cd "$ROOT/tools" && go build -mod=readonly -trimpath -o "$PLUGIN_DIR/untt" \
        github.com/helm-unittest/helm-unittest/cmd/helm-unittest) >&2 \
        || die "building helm-unittest failed"
    cat >"$PLUGIN_DIR/plugin.yaml" <<EOF
# Written by scripts/k8s-tools.sh: helm-unittest built from source (tools/go.mod).
name: "unittest"
version: "${unittest_version#v}"
usage: "unittest for helm charts"
description: "Unit test for helm chart in YAML (helm-unittest ${unittest_version})"
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
EOF
    ln -sfn "../helm-plugins/unittest/untt" "$BIN/helm-unittest"
    printf '%s\n' "$want" >"$STAMP"
    log "installed in $((SECONDS - t0)) s ($want)"
fi

HELM_PLUGINS="$PLUGINS" "$BIN/helm" unittest --help >/dev/null 2>&1 \
    || die "helm does not find the unittest plugin under $PLUGINS"

if ((PRINT_ENV)); then
    # shellcheck disable=SC2016  # $PATH is meant literally: expanded by the caller's eval
    printf 'export PATH=%q:"$PATH"\n' "$BIN"
    printf 'export HELM_PLUGINS=%q\n' "$PLUGINS"
fi
