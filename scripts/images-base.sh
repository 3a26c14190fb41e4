#!/usr/bin/env bash
# Make the local stand-in for `python:3.11-slim`: a minimal Debian bookworm root filesystem
# (debootstrap --variant=minbase + python3, which is 3.11 on bookworm, and libpython3.11)
# imported as an image.
#
#   scripts/images-base.sh [--tag IMAGE] [--force]     # prints nothing on stdout
#
# No registry is reachable on this workplace, so no base image can be pulled; Debian's
# package mirrors are. The service Dockerfiles take their base as `ARG BASE_IMAGE`
# (default python:3.11-slim) and scripts/images-build.sh passes this image instead, with
# the Dockerfiles unchanged. Where a registry is reachable, nothing here is needed.
#
# Cached twice, both keyed on the package list (PACKAGES below): the image itself (nothing
# is done while it exists and its label records the same list, unless --force), and the
# rootfs tarball under .tools/images/ with the list beside it in <tarball>.packages
# (re-imported without debootstrap when the engine's storage was wiped; debootstrapped
# again when the list changed).
#
# Needs root (debootstrap), debootstrap (installed with apt-get when missing), podman
# (scripts/container-engine.sh installs it), and a Docker-API engine in DOCKER_HOST.
#
# Environment knobs:
#   EDGE_BASE_IMAGE     tag (default localhost/galaxy-python-base:3.11-bookworm; --tag wins)
#   EDGE_DEBIAN_MIRROR  mirror (default http://deb.debian.org/debian)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TAG="${EDGE_BASE_IMAGE:-localhost/galaxy-python-base:3.11-bookworm}"
MIRROR="${EDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="$ROOT/.tools/images"
FORCE=0
# What python:3.11-slim also has that the services need: CA certificates, tzdata,
# python3 itself (the venv module is in libpython3.11-stdlib; pip is not needed: the
# Dockerfiles run pip from its wheel in the wheelhouse), and the shared libpython
# (libpython3.11.so.1.0, /usr/local/lib in python:3.11-slim): edge-grpc and push-hub run
# in pyvoy, an Envoy that embeds Python by loading it. Debian's python3.11 binary is
# linked statically, so nothing else pulls libpython3.11 in.
PACKAGES="python3,libpython3.11,ca-certificates,tzdata"
# The image label recording PACKAGES (the image cache's key), "+" for "," so that no
# layer of --change parsing can split the value.
PACKAGES_LABEL="io.galaxy.edge.base-packages"
PACKAGES_LABEL_VALUE="${PACKAGES//,/+}"

log() { printf 'images-base: %s\n' "$*" >&2; }
die() {
    printf 'images-base: ERROR: %s\n' "$*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
        --tag)
            [[ $# -ge 2 ]] || die "--tag needs a value"
            TAG="$2"
            shift
            ;;
        --force) FORCE=1 ;;
        -h | --help)
            sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

# shellcheck disable=SC2016  # the $(...) is meant literally: a command for the user
[[ -n "${DOCKER_HOST:-}" ]] || die 'DOCKER_HOST is not set (eval "$(scripts/container-engine.sh)")'
command -v podman >/dev/null 2>&1 || die "podman is not installed (scripts/container-engine.sh installs it)"
PODMAN=(podman --remote --url "$DOCKER_HOST")

mkdir -p "$CACHE"
exec 9>"$CACHE/.base.lock"
flock -w 1200 9 || die "could not take $CACHE/.base.lock within 1200 s"

if ((FORCE == 0)) && "${PODMAN[@]}" image exists "$TAG"; then
    have="$("${PODMAN[@]}" image inspect --format "{{index .Labels \"$PACKAGES_LABEL\"}}" "$TAG" 2>/dev/null || true)"
    if [[ "$have" == "$PACKAGES_LABEL_VALUE" ]]; then
        log "image $TAG already exists (packages $PACKAGES): nothing to do"
        exit 0
    fi
    log "image $TAG was made from packages '${have:-unknown}', not '$PACKAGES_LABEL_VALUE': making it again"
fi

TARBALL="$CACHE/bookworm-python3-rootfs.tar"
# The package list the tarball was made from, written only after the tarball is complete.
TARBALL_PACKAGES="$TARBALL.packages"
t0=$SECONDS
if ((FORCE == 0)) && [[ -s "$TARBALL" ]] \
    && [[ "$(cat "$TARBALL_PACKAGES" 2>/dev/null || true)" != "$PACKAGES" ]]; then
    log "cached rootfs $TARBALL was made from other packages than '$PACKAGES': debootstrap again"
    rm -f "$TARBALL" "$TARBALL_PACKAGES"
fi
if ((FORCE == 1)) || [[ ! -s "$TARBALL" ]]; then
    [[ "$(id -u)" == "0" ]] || die "debootstrap needs root"
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends debootstrap >&2 \
            || die "apt-get install debootstrap failed"
    fi
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/galaxy-base.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    log "debootstrap --variant=minbase --include=$PACKAGES bookworm ($MIRROR)"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$WORK/rootfs" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 \
        || {
            tail -n 30 "$CACHE/debootstrap.log" >&2
            die "debootstrap failed (log: $CACHE/debootstrap.log)"
        }
    # Slim it the way the official slim images are slimmed: no apt lists, caches, docs.
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin \
        "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/usr/share/doc/"* \
        "$WORK/rootfs/usr/share/man/"* "$WORK/rootfs/usr/share/info/"* \
        "$WORK/rootfs/var/log/"*.log "$WORK/rootfs/debootstrap"
    "$WORK/rootfs/usr/bin/python3" --version >&2 || die "no python3 in the rootfs"
    compgen -G "$WORK/rootfs/usr/lib/*-linux-gnu/libpython3.11.so.1.0" >/dev/null \
        || die "no libpython3.11.so.1.0 in the rootfs (package libpython3.11)"
    rm -f "$TARBALL_PACKAGES"
    tar -C "$WORK/rootfs" --numeric-owner -cf "$TARBALL.tmp" .
    mv -f "$TARBALL.tmp" "$TARBALL"
    printf '%s\n' "$PACKAGES" >"$TARBALL_PACKAGES"
    log "rootfs cached at $TARBALL ($(du -h "$TARBALL" | cut -f1)) after $((SECONDS - t0)) s"
fi

log "podman import -> $TAG"
"${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL $PACKAGES_LABEL=$PACKAGES_LABEL_VALUE" \
    --message "debootstrap bookworm minbase + $PACKAGES (scripts/images-base.sh)" \
    "$TARBALL" "$TAG" >/dev/null || die "podman import failed"
"${PODMAN[@]}" image exists "$TAG" || die "import reported success but $TAG is missing"
log "built $TAG in $((SECONDS - t0)) s"
