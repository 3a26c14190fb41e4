#!/usr/bin/env bash
# Bring a Docker-API container engine up, idempotently, and print how to reach it.
#
#   eval "$(scripts/container-engine.sh)"   # -> export DOCKER_HOST=unix://...
#   scripts/container-engine.sh --stop      # stop the podman service this script started
#   scripts/container-engine.sh --status    # exit 0 and print DOCKER_HOST if an engine answers
#
# Order:
#   1. DOCKER_HOST already points at an engine that answers /_ping  -> use it
#   2. /var/run/docker.sock answers                                 -> use it
#   3. our own podman service (socket under <repo>/.tools/podman)   -> use it if it answers
#   4. otherwise: install podman from Debian packages if missing (root + apt-get only),
#      write a project-local containers.conf + storage.conf, start
#      `podman system service --time=0 unix://<socket>` in the background and wait
#      (bounded) until /_ping answers.
#
# stdout carries only the final `export DOCKER_HOST=...` line; progress goes to stderr.
#
# Why the podman settings (see docs/testing-redis.md):
#   runtime = runc            crun is not installed and runc is what Debian ships/tests here
#   cgroup_manager = cgroupfs no systemd (PID 1 is not systemd), so the systemd manager fails
#   events_logger = file      no journald either
#   default_ulimits           podman's defaults (1048576) exceed the hard limits of this
#                             sandbox (no CAP_SYS_RESOURCE), and runc then fails in setrlimit
#   storage driver overlay    native kernel overlayfs works on the ext4 root here (vfs is
#                             the fallback: EDGE_PODMAN_STORAGE_DRIVER=vfs)
#
# Environment knobs:
#   EDGE_PODMAN_DIR            state folder (default <repo>/.tools/podman, git-ignored)
#   EDGE_PODMAN_STORAGE_DRIVER overlay (default) | vfs
#   EDGE_ENGINE_WAIT_SECONDS   how long to wait for /_ping (default 60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE_DIR="${EDGE_PODMAN_DIR:-$ROOT/.tools/podman}"
SOCK="$STATE_DIR/podman.sock"
PIDFILE="$STATE_DIR/service.pid"
LOGFILE="$STATE_DIR/service.log"
CONF="$STATE_DIR/containers.conf"
STORAGE_CONF="$STATE_DIR/storage.conf"
LOCKFILE="$STATE_DIR/.lock"
DRIVER="${EDGE_PODMAN_STORAGE_DRIVER:-overlay}"
WAIT_SECONDS="${EDGE_ENGINE_WAIT_SECONDS:-60}"

log() { printf 'container-engine: %s\n' "$*" >&2; }
die() {
    printf 'container-engine: ERROR: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

# ping_unix SOCKET_PATH -> 0 when the engine answers GET /_ping with OK
ping_unix() {
    local sock="$1"
    [[ -S "$sock" ]] || return 1
    if command -v curl >/dev/null 2>&1; then
        [[ "$(curl -sS --max-time 3 --unix-socket "$sock" http://d/_ping 2>/dev/null)" == "OK" ]]
    else
        python3 - "$sock" <<'EOF' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.exit(0 if data.split(b"\r\n", 1)[0].split()[1:2] == [b"200"] else 1)
EOF
    fi
}

# ping_host DOCKER_HOST_VALUE -> 0 when that engine answers
ping_host() {
    local host="$1"
    case "$host" in
        unix://*) ping_unix "${host#unix://}" ;;
        tcp://*)
            [[ "$(curl -sS --max-time 3 "http://${host#tcp://}/_ping" 2>/dev/null)" == "OK" ]]
            ;;
        *) return 1 ;;
    esac
}

emit() {
    printf 'export DOCKER_HOST=%s\n' "$1"
    exit 0
}

service_pid() {
    # Prints the pid of the podman service this script started, if it is still running.
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    # Make sure the pid was not recycled by an unrelated process.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "system service.*unix://$SOCK" || return 1
    printf '%s\n' "$pid"
}

stop_service() {
    local pid
    if ! pid="$(service_pid)"; then
        log "no podman service started by this script is running (pidfile $PIDFILE)"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping podman service pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [[ -d "/proc/$pid" ]] || break
        sleep 0.1
    done
    if [[ -d "/proc/$pid" ]]; then
        log "podman service pid $pid ignored SIGTERM for 5 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE" "$SOCK"
    log "stopped"
}

install_podman() {
    if command -v podman >/dev/null 2>&1; then
        return 0
    fi
    [[ "$(id -u)" == "0" ]] || die "podman is not installed and this is not root: install podman (and runc) yourself, or set DOCKER_HOST to a running engine"
    command -v apt-get >/dev/null 2>&1 || die "podman is not installed and apt-get is not available: install podman yourself, or set DOCKER_HOST"
    log "podman not found: installing it from Debian packages (apt-get, non-interactive)"
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    # --no-install-recommends keeps out buildah, dbus-user-session, fuse-overlayfs, slirp4netns
    # (rootless-only bits). netavark + aardvark-dns + iptables are what rootful bridge
    # networking with published ports needs; runc is the runtime we select.
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        podman runc conmon netavark aardvark-dns iptables catatonit >&2 \
        || die "apt-get install podman failed"
    command -v podman >/dev/null 2>&1 || die "podman still not on PATH after apt-get install"
    log "podman installed in $((SECONDS - t0)) s: $(podman --version 2>/dev/null)"
}

CONFIG_CHANGED=0
replace_if_changed() {
    if [[ -f "$2" ]] && cmp -s "$1" "$2"; then
        rm -f "$1"
    else
        mv -f "$1" "$2"
        CONFIG_CHANGED=1
    fi
}

write_config() {
    local hard_nofile hard_nproc
    hard_nofile="$(ulimit -Hn)"
    hard_nproc="$(ulimit -Hu)"
    # "unlimited" is not a number podman accepts as a ulimit; cap to sane values.
    if [[ "$hard_nofile" == "unlimited" ]]; then hard_nofile=1048576; fi
    if [[ "$hard_nproc" == "unlimited" ]]; then hard_nproc=4194304; fi
    # podman lowers its own RLIMIT_NPROC to kernel.pid_max when it starts (seen here:
    # ulimit -Hu 96364, pid_max 32768, podman service runs with nproc 32768), and runc
    # inherits that: a container nproc above it fails with "error setting rlimit type 6:
    # operation not permitted" because this sandbox has no CAP_SYS_RESOURCE.
    local pid_max
    pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo "$hard_nproc")"
    if ((pid_max < hard_nproc)); then hard_nproc="$pid_max"; fi
    local runtime="runc"
    command -v runc >/dev/null 2>&1 || die "runc is not installed (apt-get install runc)"

    local tmp
    tmp="$(mktemp "$STATE_DIR/.containers.conf.XXXXXX")"
    cat >"$tmp" <<EOF
# Written by scripts/container-engine.sh; read by the podman service it starts
# (CONTAINERS_CONF). Regenerated on each start: edit the script, not this file.
[containers]
# Container ulimits must not exceed the hard limits of the sandbox the engine runs in
# (ulimit -Hn, min(ulimit -Hu, kernel.pid_max)); podman's defaults (1048576) are higher
# and raising a hard limit needs CAP_SYS_RESOURCE, which this sandbox does not grant.
default_ulimits = [
  "nofile=$hard_nofile:$hard_nofile",
  "nproc=$hard_nproc:$hard_nproc",
]
log_driver = "k8s-file"

[engine]
runtime = "$runtime"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE_DIR/events.log"

[network]
# Debian's podman package ships a CNI config, but the CNI plugins are not installed;
# netavark (installed by this script) is the backend to use.
network_backend = "netavark"
EOF
    replace_if_changed "$tmp" "$CONF"

    tmp="$(mktemp "$STATE_DIR/.storage.conf.XXXXXX")"
    local graphroot="/var/lib/containers/storage"
    # A different driver needs its own graphroot: podman refuses to open a store that
    # was created with another driver.
    [[ "$DRIVER" == "overlay" ]] || graphroot="/var/lib/containers/storage-$DRIVER"
    cat >"$tmp" <<EOF
# Written by scripts/container-engine.sh (CONTAINERS_STORAGE_CONF for its podman service).
[storage]
driver = "$DRIVER"
runroot = "/run/containers/storage"
graphroot = "$graphroot"
EOF
    replace_if_changed "$tmp" "$STORAGE_CONF"
}

start_service() {
    local pid
    if pid="$(service_pid)"; then
        log "podman service pid $pid is running but $SOCK does not answer yet"
    else
        rm -f "$SOCK"
        log "starting: podman system service --time=0 unix://$SOCK (log: $LOGFILE)"
        # setsid: own session, so it outlives the calling shell/pytest and ignores its ^C.
        # 9>&-: the service must not inherit the bring-up lock.
        CONTAINERS_CONF="$CONF" CONTAINERS_STORAGE_CONF="$STORAGE_CONF" \
            setsid podman --log-level=warn system service --time=0 "unix://$SOCK" \
            </dev/null >>"$LOGFILE" 2>&1 9>&- &
        pid=$!
        printf '%s\n' "$pid" >"$PIDFILE"
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        if ping_unix "$SOCK"; then
            return 0
        fi
        if [[ ! -d "/proc/$pid" ]]; then
            tail -n 20 "$LOGFILE" >&2 || true
            die "podman service exited before answering on $SOCK (log above, full log: $LOGFILE)"
        fi
        sleep 0.2
    done
    tail -n 20 "$LOGFILE" >&2 || true
    die "podman service did not answer /_ping on $SOCK within ${WAIT_SECONDS}s (log: $LOGFILE)"
}

main() {
    local action="up"
    while (($#)); do
        case "$1" in
            --stop) action="stop" ;;
            --status) action="status" ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument: $1 (try --help)" ;;
        esac
        shift
    done

    mkdir -p "$STATE_DIR"

    if [[ "$action" == "stop" ]]; then
        exec 9>"$LOCKFILE"
        flock -w 30 9 || log "warning: $LOCKFILE is busy (a bring-up in progress?); stopping anyway"
        stop_service
        exit 0
    fi

    if [[ -n "${DOCKER_HOST:-}" ]]; then
        if ping_host "$DOCKER_HOST"; then
            log "DOCKER_HOST=$DOCKER_HOST answers: using it"
            emit "$DOCKER_HOST"
        fi
        log "DOCKER_HOST=$DOCKER_HOST does not answer /_ping: ignoring it"
    fi
    if ping_unix /var/run/docker.sock; then
        log "/var/run/docker.sock answers: using it"
        emit "unix:///var/run/docker.sock"
    fi
    if [[ "$action" != "status" ]] && ping_unix "$SOCK" && command -v podman >/dev/null 2>&1; then
        # Ours: keep it unless the configuration this script writes has changed.
        exec 9>"$LOCKFILE"
        flock -w 600 9 || die "could not take $LOCKFILE within 600 s"
        write_config
        if ((CONFIG_CHANGED)) && service_pid >/dev/null; then
            log "configuration changed: restarting the podman service"
            stop_service
        fi
    fi
    if ping_unix "$SOCK"; then
        log "podman service already answering on $SOCK"
        emit "unix://$SOCK"
    fi
    if [[ "$action" == "status" ]]; then
        log "no container engine answers"
        exit 1
    fi

    # Serialise concurrent bring-ups (parallel make targets, xdist workers).
    exec 9>"$LOCKFILE"
    flock -w 600 9 || die "could not take $LOCKFILE within 600 s"
    if ping_unix "$SOCK"; then
        log "podman service came up meanwhile on $SOCK"
        emit "unix://$SOCK"
    fi

    local t0=$SECONDS
    install_podman
    write_config
    start_service
    log "podman service answering on $SOCK after $((SECONDS - t0)) s"
    emit "unix://$SOCK"
}

main "$@"
