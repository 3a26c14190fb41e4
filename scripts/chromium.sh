#!/usr/bin/env bash
# Make sure a Chromium for the browser tests is installed, idempotently, and print its path.
#
#   CHROMIUM="$(scripts/chromium.sh)"    # -> /usr/bin/chromium
#
# Order:
#   1. EDGE_CHROMIUM names an executable                  -> use it
#   2. /usr/bin/chromium, or chromium / chromium-browser on PATH -> use it
#   3. otherwise, as root with apt-get: install Debian's `chromium` package
#      (apt-get update + install --no-install-recommends, bounded retries)
#   4. otherwise fail, saying what to install.
#
# stdout carries only the path; progress goes to stderr. We never download a test tool's
# own browser build (Playwright's `install` cannot reach its CDN here): the tests launch
# this Chromium through Playwright's `executable_path`.
#
# Environment knobs:
#   EDGE_CHROMIUM              an explicit Chromium executable (skips the lookup and install)
#   EDGE_CHROMIUM_APT_ATTEMPTS how many times apt-get update/install is tried (default 3)
set -euo pipefail

ATTEMPTS="${EDGE_CHROMIUM_APT_ATTEMPTS:-3}"

log() { printf 'chromium: %s\n' "$*" >&2; }
die() {
    printf 'chromium: ERROR: %s\n' "$*" >&2
    exit 1
}

find_chromium() {
    local candidate
    if [[ -x /usr/bin/chromium ]]; then
        printf '%s\n' /usr/bin/chromium
        return 0
    fi
    for candidate in chromium chromium-browser; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# retry WHAT CMD... -> run CMD up to $ATTEMPTS times, pausing between tries
retry() {
    local what="$1" n=1
    shift
    until "$@" >&2; do
        if ((n >= ATTEMPTS)); then
            log "$what failed $n times"
            return 1
        fi
        log "$what failed (attempt $n of $ATTEMPTS); retrying in $((n * 5)) s"
        sleep $((n * 5))
        n=$((n + 1))
    done
}

install_chromium() {
    [[ "$(id -u)" == "0" ]] \
        || die "Chromium is not installed and this is not root: install Debian's 'chromium' package (or set EDGE_CHROMIUM)"
    command -v apt-get >/dev/null 2>&1 \
        || die "Chromium is not installed and apt-get is not available: install Chromium yourself and set EDGE_CHROMIUM"
    log "not found: installing Debian's chromium package (apt-get, non-interactive)"
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    retry "apt-get update" apt-get update -qq || die "apt-get update failed"
    retry "apt-get install chromium" apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        chromium || die "apt-get install chromium failed"
    log "installed in $((SECONDS - t0)) s"
}

if [[ -n "${EDGE_CHROMIUM:-}" ]]; then
    [[ -f "$EDGE_CHROMIUM" && -x "$EDGE_CHROMIUM" ]] || die "EDGE_CHROMIUM=$EDGE_CHROMIUM is not an executable file"
    printf '%s\n' "$EDGE_CHROMIUM"
    exit 0
fi
if path="$(find_chromium)"; then
    printf '%s\n' "$path"
    exit 0
fi
install_chromium
path="$(find_chromium)" || die "chromium is still not found after apt-get install"
log "$("$path" --version 2>/dev/null || echo "$path")"
printf '%s\n' "$path"
