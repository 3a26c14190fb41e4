#!/usr/bin/env bash
# Build the five images (public-rest, edge-grpc, push-hub, edge-operator, mock-backend) for real.
#
#   scripts/images-build.sh [--target runtime|dev] [--tag TAG] [IMAGE...]
#
# Steps, each cached and idempotent:
#   1. a container engine (scripts/container-engine.sh: podman's Docker API here);
#   2. the base image: EDGE_BASE_IMAGE if it is set and exists, else the local Debian
#      bookworm base (scripts/images-base.sh: debootstrap + podman import), because no
#      registry is reachable here to pull python:3.11-slim from;
#   3. the wheelhouse from uv.lock (scripts/images-wheelhouse.sh);
#   4. `podman --remote build` (or `docker build` when podman is not installed) of
#      services/<image>/Dockerfile with the repository root as context and
#      --build-arg BASE_IMAGE=<base>; the Dockerfiles are the same ones a plain
#      `docker build` uses with the default base. The engine's layer cache makes a
#      rebuild with unchanged sources take seconds.
#
# Tags: localhost/galaxy-<image>:<TAG> (TAG default: dev; EDGE_IMAGE_TAG overrides).
# The last line on stdout is `export DOCKER_HOST=...`, so a caller can
#   eval "$(scripts/images-build.sh)"
# Environment knobs:
#   EDGE_BASE_IMAGE         base image to build FROM (default: the local bookworm base)
#   EDGE_IMAGE_PREFIX       tag prefix (default localhost/galaxy-)
#   EDGE_IMAGE_TAG          tag (default dev)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
ALL_IMAGES=(public-rest edge-grpc push-hub edge-operator mock-backend)
LOCAL_BASE="localhost/galaxy-python-base:3.11-bookworm"
PREFIX="${EDGE_IMAGE_PREFIX:-localhost/galaxy-}"
TAG="${EDGE_IMAGE_TAG:-dev}"
TARGET="runtime"

log() { printf 'images-build: %s\n' "$*" >&2; }
die() {
    printf 'images-build: ERROR: %s\n' "$*" >&2
    exit 1
}

images=()
while (($#)); do
    case "$1" in
        --target)
            [[ $# -ge 2 ]] || die "--target needs a value"
            TARGET="$2"
            shift
            ;;
        --tag)
            [[ $# -ge 2 ]] || die "--tag needs a value"
            TAG="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            exit 0
            ;;
        -*) die "unknown option: $1 (try --help)" ;;
        *)
            [[ " ${ALL_IMAGES[*]} " == *" $1 "* ]] || die "unknown image: $1 (one of ${ALL_IMAGES[*]})"
            images+=("$1")
            ;;
    esac
    shift
done
((${#images[@]})) || images=("${ALL_IMAGES[@]}")

t_all=$SECONDS
mkdir -p "$ROOT/.tools/images"
engine_env="$(scripts/container-engine.sh)" || die "no container engine came up"
eval "$engine_env"

if command -v podman >/dev/null 2>&1; then
    ENGINE=(podman --remote --url "$DOCKER_HOST")
    BUILD_EXTRA=(--pull=never --layers)
else
    ENGINE=(docker)
    BUILD_EXTRA=()
fi

BASE="${EDGE_BASE_IMAGE:-}"
if [[ -z "$BASE" ]]; then
    BASE="$LOCAL_BASE"
    scripts/images-base.sh --tag "$BASE" || die "the local base image did not build"
elif ! "${ENGINE[@]}" image inspect "$BASE" >/dev/null 2>&1; then
    log "EDGE_BASE_IMAGE=$BASE is not present locally: the build will try to pull it"
    BUILD_EXTRA=()
fi

scripts/images-wheelhouse.sh || die "the wheelhouse did not build"

for image in "${images[@]}"; do
    ref="$PREFIX$image:$TAG"
    t0=$SECONDS
    log "build $ref (target $TARGET, BASE_IMAGE=$BASE)"
    if ! "${ENGINE[@]}" build "${BUILD_EXTRA[@]}" \
        --build-arg "BASE_IMAGE=$BASE" \
        --target "$TARGET" \
        -f "services/$image/Dockerfile" \
        -t "$ref" \
        . >"$ROOT/.tools/images/build-$image.log" 2>&1; then
        tail -n 40 "$ROOT/.tools/images/build-$image.log" >&2
        die "build of $ref failed (log: .tools/images/build-$image.log)"
    fi
    log "built $ref in $((SECONDS - t0)) s"
done
log "all images built in $((SECONDS - t_all)) s"
printf '%s\n' "$engine_env" | tail -n 1
