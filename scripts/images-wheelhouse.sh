#!/usr/bin/env bash
# Build the wheelhouse the service images install from, on the host, from uv.lock.
#
#   scripts/images-wheelhouse.sh [--force]      # prints nothing on stdout
#
# Writes docker/wheelhouse/ (git-ignored by docker/.gitignore, inside the build context):
#   requirements/<image>.txt   `uv export --frozen --no-dev --package <dist> --no-emit-workspace`:
#                              the third-party dependencies of that image, pinned and hashed
#                              exactly as uv.lock has them (the build installs them with
#                              pip --require-hashes, so a wheel that is not the locked one fails)
#   *.whl                      those wheels (binary only, for this host's platform and
#                              CPython 3.11), plus pip and the build backend (hatchling),
#                              used only in the images' builder stage
#
# The workspace members themselves (edgecore and the service) are NOT prebuilt here: the
# Dockerfiles build them from the source in the build context, so the image always holds
# the source it was built from (and Tilt's live_update syncs the same tree).
#
# The image build then needs no network at all (pip --no-index --find-links).
# Idempotent: a stamp holding a hash of uv.lock and the tool pins skips all work when
# nothing changed; wheels already present are not downloaded again.
#
# Environment knobs:
#   EDGE_WHEELHOUSE      output folder (default <repo>/docker/wheelhouse)
#   EDGE_WHEEL_PLATFORM  download for another platform (e.g. manylinux_2_36_aarch64 to build
#                        arm64 images); default: this host's
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OUT="${EDGE_WHEELHOUSE:-$ROOT/docker/wheelhouse}"
PLATFORM="${EDGE_WHEEL_PLATFORM:-}"
# Tools used inside the builder stage only (not locked by uv.lock: they are build-time).
PIP_VERSION="25.3"
HATCHLING_VERSION="1.28.0"
# image name -> distribution (workspace member) whose dependencies the image needs
IMAGES=(public-rest:galaxy-public-rest edge-grpc:galaxy-edge-grpc push-hub:galaxy-push-hub
    edge-operator:galaxy-edge-operator mock-backend:galaxy-mock-backend)
FORCE=0

log() { printf 'images-wheelhouse: %s\n' "$*" >&2; }
die() {
    printf 'images-wheelhouse: ERROR: %s\n' "$*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
        --force) FORCE=1 ;;
        -h | --help)
            sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

command -v uv >/dev/null 2>&1 || UV="$ROOT/.tools/uv/bin/uv"
UV="${UV:-uv}"
"$UV" --version >/dev/null 2>&1 || die "uv not found (make setup installs it into .tools/uv)"
export UV_PYTHON_DOWNLOADS=never

mkdir -p "$OUT/requirements"
exec 9>"$OUT/.lock"
flock -w 900 9 || die "could not take $OUT/.lock within 900 s"

want="$( (
    cat "$ROOT/uv.lock"
    echo "pip=$PIP_VERSION hatchling=$HATCHLING_VERSION platform=$PLATFORM ${IMAGES[*]}"
) | sha256sum | cut -c1-32)"
if ((FORCE == 0)) && [[ "$(cat "$OUT/.stamp" 2>/dev/null || true)" == "$want" ]]; then
    log "up to date ($OUT)"
    exit 0
fi
t0=$SECONDS
((FORCE == 0)) || find "$OUT" -maxdepth 1 -name '*.whl' -delete

for entry in "${IMAGES[@]}"; do
    image="${entry%%:*}"
    dist="${entry#*:}"
    "$UV" export --project "$ROOT" --frozen --no-dev --package "$dist" --no-emit-workspace \
        --no-header --no-annotate --format requirements-txt \
        -o "$OUT/requirements/$image.txt" >/dev/null 2>&1 \
        || die "uv export --package $dist failed"
done

# One download for the union of all images (pip de-duplicates). --require-hashes makes pip
# check every downloaded file against the hashes uv.lock recorded.
all="$OUT/requirements/.all.txt"
# The per-image files are complete requirement sets; the union is only for downloading:
# merge entries (a requirement line with its hash lines), not raw lines.
python3 - "$OUT/requirements" "$all" <<'EOF'
import pathlib, sys
entries = {}
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.txt")):
    current = None
    for line in path.read_text().splitlines():
        if line and not line[0].isspace():
            current = line.rstrip(" \\")
            # The image's interpreter may be an older 3.11 than the host's (bookworm: 3.11.2):
            # download what a python_full_version marker selects whatever the host is.
            if ";" in current and "python_full_version" in current:
                current = current.split(";", 1)[0].strip()
            entries.setdefault(current, [])
        elif current is not None and line.strip().startswith("--hash"):
            h = line.strip().rstrip(" \\")
            if h not in entries[current]:
                entries[current].append(h)
out = []
for req, hashes in sorted(entries.items()):
    out.append(" \\\n    ".join([req, *hashes]))
pathlib.Path(sys.argv[2]).write_text("\n".join(out) + "\n")
EOF

PIP=("$UV" tool run --python 3.11 --from "pip==$PIP_VERSION" pip)
platform_args=()
if [[ -n "$PLATFORM" ]]; then
    platform_args=(--platform "$PLATFORM" --implementation cp --python-version 3.11 --abi cp311)
fi
log "pip download (binary only) of $(grep -c '^[A-Za-z0-9]' "$all") locked requirements -> $OUT"
"${PIP[@]}" download --disable-pip-version-check --quiet --only-binary=:all: --require-hashes \
    "${platform_args[@]}" -d "$OUT" -r "$all" >&2 || die "pip download of the locked requirements failed"
log "pip download pip==$PIP_VERSION hatchling==$HATCHLING_VERSION (builder-stage tools)"
"${PIP[@]}" download --disable-pip-version-check --quiet --only-binary=:all: \
    "${platform_args[@]}" -d "$OUT" "pip==$PIP_VERSION" "hatchling==$HATCHLING_VERSION" >&2 \
    || die "pip download of pip/hatchling failed"
# A fixed name for the pip wheel, so the Dockerfiles can run pip from it (python pip.whl/pip).
cp -f "$OUT/pip-$PIP_VERSION-py3-none-any.whl" "$OUT/pip.whl"
rm -f "$all"

printf '%s\n' "$want" >"$OUT/.stamp"
log "wheelhouse ready in $((SECONDS - t0)) s: $(find "$OUT" -maxdepth 1 -name '*.whl' | wc -l) wheels, $(du -sh "$OUT" | cut -f1)"
