#!/usr/bin/env bash
# A real, local Kubernetes control plane (etcd + kube-apiserver only) built from the Go
# module proxy: enough to test the edge-operator against a real API server (CRD validation,
# the status subresource, finalizers, RBAC, the TokenRequest API). No scheduler, kubelet or
# controller-manager: nothing runs pods, deletes namespaces or garbage-collects.
#
#   scripts/k8s-control-plane.sh build         # build etcd + kube-apiserver into .tools/k8s/bin
#                                              # (idempotent: a stamp makes a second run a no-op)
#   scripts/k8s-control-plane.sh start DIR     # start both in the background, return when ready
#   scripts/k8s-control-plane.sh run DIR       # same, but stay in the foreground: the servers
#                                              # die with this script (SIGTERM/SIGINT stops
#                                              # them cleanly; SIGKILL kills them through the
#                                              # parent-death signal); prints `ready` when ready
#   scripts/k8s-control-plane.sh stop DIR      # SIGTERM both (SIGKILL after 20 s)
#
# Versions are pinned in tools/control-plane/go.mod (k8s.io/kubernetes, the k8s.io/*
# staging modules at the matching v0.X.Y, etcd). Everything a control plane writes is under
# DIR: certs/ (a CA, the serving certificate for 127.0.0.1, the admin client certificate,
# the service-account signing key), etcd/ (data), *.log, *.pid, audit.log (the API server's
# audit log: every request's user, verb, resource and response code), and
#   DIR/admin.kubeconfig  cluster-admin (O=system:masters) by client certificate, all
#                         PEM inline (what kopf's login_with_kubeconfig understands)
#   DIR/env               APISERVER_URL=..., ETCD_URL=..., ETCD_PID=..., APISERVER_PID=...
# Ports are free loopback ports chosen at start (retried if one was taken meanwhile).
# Environment: EDGE_K8S_TOOLS_DIR (default .tools), EDGE_K8S_READY_TIMEOUT (default 180 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MODULE="$ROOT/tools/control-plane"
TOOLS="${EDGE_K8S_TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS/k8s/bin"
STAMP="$TOOLS/k8s/control-plane.stamp"
READY_TIMEOUT="${EDGE_K8S_READY_TIMEOUT:-180}"
SA_ISSUER="https://kubernetes.default.svc.cluster.local"

log() { printf 'k8s-control-plane: %s\n' "$*" >&2; }
die() {
    printf 'k8s-control-plane: ERROR: %s\n' "$*" >&2
    exit 1
}
usage() { # the header comment
    awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}" >&2
}

required_version() { # the version tools/control-plane/go.mod requires of module $1
    awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$MODULE/go.mod"
}

# ---------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------
cmd_build() {
    command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.26 builds the control plane)"
    local k8s etcd want t0 minor ldflags
    k8s="$(required_version k8s.io/kubernetes)"
    etcd="$(required_version go.etcd.io/etcd/server/v3)"
    [[ -n "$k8s" && -n "$etcd" ]] || die "tools/control-plane/go.mod must require k8s.io/kubernetes and go.etcd.io/etcd/server/v3"
    want="kubernetes=$k8s etcd=$etcd go=$(go env GOVERSION) mod=$(cat "$MODULE/go.mod" "$MODULE/go.sum" | sha256sum | cut -c1-16)"
    mkdir -p "$BIN"
    exec 8>"$TOOLS/k8s/.build.lock"
    flock -w 3600 8 || die "could not take $TOOLS/k8s/.build.lock within an hour"
    if [[ -x "$BIN/etcd" && -x "$BIN/kube-apiserver" && "$(cat "$STAMP" 2>/dev/null || true)" == "$want" ]]; then
        log "up to date ($want); took 0 s"
        return 0
    fi
    t0=$SECONDS
    export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly"
    minor="${k8s#v1.}"
    minor="${minor%%.*}"
    # What hack/lib/version.sh stamps into a release build (otherwise it says v0.0.0-master).
    ldflags="-s -w"
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    log "building etcd $etcd -> $BIN/etcd"
    (cd "$MODULE" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.new" go.etcd.io/etcd/server/v3) >&2 \
        || die "building etcd failed"
    log "building kube-apiserver $k8s -> $BIN/kube-apiserver (a cold build takes many minutes)"
    (cd "$MODULE" && go build -trimpath -ldflags "$ldflags" -o "$BIN/kube-apiserver.new" \
        k8s.io/kubernetes/cmd/kube-apiserver) >&2 || die "building kube-apiserver failed"
    mv -f "$BIN/etcd.new" "$BIN/etcd"
    mv -f "$BIN/kube-apiserver.new" "$BIN/kube-apiserver"
    printf '%s\n' "$want" >"$STAMP"
    log "built in $((SECONDS - t0)) s ($want)"
}

# ---------------------------------------------------------------------------------------
# start / run / stop
# ---------------------------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

gen_certs() { # $1: certs dir (kept if complete: a restart reuses the cluster's identity)
    local d="$1"
    [[ -s "$d/ca.crt" && -s "$d/admin.key" && -s "$d/sa.key" && -s "$d/apiserver.crt" ]] && return 0
    mkdir -p "$d"
    (
        cd "$d"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
            -subj "/CN=edge-gateway-local-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        # kube-apiserver's serving certificate: loopback only.
        openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
            -subj "/CN=kube-apiserver" 2>/dev/null
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
            "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" >apiserver.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out apiserver.crt -days 30 -extfile apiserver.ext 2>/dev/null
        # The admin identity: a client certificate in system:masters (cluster-admin).
        openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
            -subj "/O=system:masters/CN=edge-gateway-admin" 2>/dev/null
        printf '%s\n' "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment" >admin.ext
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out admin.crt -days 30 -extfile admin.ext 2>/dev/null
        # Service-account tokens (TokenRequest): signed with sa.key, verified with sa.pub.
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        rm -f ./*.csr ./*.ext ca.srl
    ) || die "generating certificates with openssl failed"
}

b64() { base64 -w0 <"$1"; }

write_kubeconfig() { # $1: dir, $2: server URL
    local d="$1" tmp
    tmp="$(mktemp "$d/.admin.kubeconfig.XXXXXX")"
    cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $2
    certificate-authority-data: $(b64 "$d/certs/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$d/certs/admin.crt")
    client-key-data: $(b64 "$d/certs/admin.key")
contexts:
- name: local
  context:
    cluster: local
    user: admin
    namespace: default
current-context: local
EOF
    chmod 600 "$tmp"
    mv -f "$tmp" "$d/admin.kubeconfig"
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# Start etcd and kube-apiserver once; 0 when ready, 2 when a port was taken (retry), 1 else.
# $1: dir, $2: "fg" (children die with this shell) or "bg" (detached into their own session).
start_once() {
    local d="$1" mode="$2" etcd_port peer_port api_port launch=()
    etcd_port="$(free_port)"
    peer_port="$(free_port)"
    api_port="$(free_port)"
    if [[ "$mode" == fg ]]; then
        launch=(setpriv --pdeathsig KILL --)
    else
        launch=(setsid)
    fi
    : >"$d/etcd.log"
    : >"$d/kube-apiserver.log"
    # Every request's metadata (who, verb, resource, response code) goes to DIR/audit.log:
    # how the tests see what the operator's ServiceAccount asked for and was refused.
    printf '%s\n' "apiVersion: audit.k8s.io/v1" "kind: Policy" "omitStages: [RequestReceived]" \
        "rules:" "- level: Metadata" >"$d/audit-policy.yaml"
    # --unsafe-no-fsync: a throw-away test cluster on a loaded machine; durability is moot.
    "${launch[@]}" "$BIN/etcd" \
        --name default --data-dir "$d/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "default=http://127.0.0.1:$peer_port" \
        --unsafe-no-fsync --log-level warn \
        </dev/null >>"$d/etcd.log" 2>&1 &
    ETCD_PID=$!
    echo "$ETCD_PID" >"$d/etcd.pid"
    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q '"health":"true"'; do
        if ! alive "$ETCD_PID"; then
            grep -qi 'address already in use' "$d/etcd.log" && return 2
            log "etcd exited; the end of $d/etcd.log:"
            tail -n 30 "$d/etcd.log" >&2
            return 1
        fi
        ((SECONDS < deadline)) || {
            log "etcd not healthy within $READY_TIMEOUT s"
            return 1
        }
        sleep 0.2
    done
    "${launch[@]}" "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
        --cert-dir "$d/certs" \
        --tls-cert-file "$d/certs/apiserver.crt" --tls-private-key-file "$d/certs/apiserver.key" \
        --client-ca-file "$d/certs/ca.crt" \
        --authorization-mode RBAC \
        --service-account-issuer "$SA_ISSUER" \
        --service-account-key-file "$d/certs/sa.pub" \
        --service-account-signing-key-file "$d/certs/sa.key" \
        --service-cluster-ip-range 10.96.0.0/24 \
        --endpoint-reconciler-type none \
        --storage-media-type application/json \
        --audit-policy-file "$d/audit-policy.yaml" --audit-log-path "$d/audit.log" \
        --audit-log-format json --audit-log-maxsize 100 \
        --profiling=false \
        --v 1 \
        </dev/null >>"$d/kube-apiserver.log" 2>&1 &
    APISERVER_PID=$!
    echo "$APISERVER_PID" >"$d/kube-apiserver.pid"
    local url="https://127.0.0.1:$api_port"
    {
        echo "APISERVER_URL=$url"
        echo "ETCD_URL=http://127.0.0.1:$etcd_port"
        echo "ETCD_PID=$ETCD_PID"
        echo "APISERVER_PID=$APISERVER_PID"
    } >"$d/env"
    write_kubeconfig "$d" "$url"
    # /readyz as the admin: every post-start hook done (RBAC bootstrap roles, CRD informers,
    # the default namespaces), etcd reachable.
    until curl -fsS --max-time 5 --cacert "$d/certs/ca.crt" --cert "$d/certs/admin.crt" \
        --key "$d/certs/admin.key" "$url/readyz" >/dev/null 2>&1; do
        if ! alive "$APISERVER_PID"; then
            grep -qi 'address already in use' "$d/kube-apiserver.log" && return 2
            log "kube-apiserver exited; the end of $d/kube-apiserver.log:"
            tail -n 40 "$d/kube-apiserver.log" >&2
            return 1
        fi
        ((SECONDS < deadline)) || {
            log "kube-apiserver not ready within $READY_TIMEOUT s; its /readyz says:"
            curl -sS --max-time 5 --cacert "$d/certs/ca.crt" --cert "$d/certs/admin.crt" \
                --key "$d/certs/admin.key" "$url/readyz?verbose" >&2 || true
            return 1
        }
        sleep 0.5
    done
    # The namespace "default" exists once the apiserver's bootstrap controller ran.
    until curl -fsS --max-time 5 --cacert "$d/certs/ca.crt" --cert "$d/certs/admin.crt" \
        --key "$d/certs/admin.key" "$url/api/v1/namespaces/default" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || {
            log "namespace default not created within $READY_TIMEOUT s"
            return 1
        }
        sleep 0.5
    done
    return 0
}

kill_pidfile() { # $1: pid file; SIGTERM, wait up to 20 s, then SIGKILL
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ -n "$pid" ]] || return 0
    # Only ever a server this script started: the pid must still run one of its binaries.
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$BIN/"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.2
        done
        if alive "$pid"; then
            log "pid $pid did not stop within 20 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$1"
}

cmd_stop() {
    local d="$1"
    [[ -d "$d" ]] || die "no such directory: $d"
    kill_pidfile "$d/kube-apiserver.pid"
    kill_pidfile "$d/etcd.pid"
}

cmd_start() { # $1: dir, $2: fg|bg
    local d="$1" mode="$2" t0=$SECONDS attempt rc
    [[ -x "$BIN/etcd" && -x "$BIN/kube-apiserver" ]] \
        || die "$BIN/etcd or $BIN/kube-apiserver missing: run '$0 build' first"
    command -v openssl >/dev/null 2>&1 || die "openssl is needed to generate the certificates"
    mkdir -p "$d"
    d="$(cd "$d" && pwd -P)"
    if alive "$(cat "$d/kube-apiserver.pid" 2>/dev/null || true)"; then
        die "a control plane already runs from $d (stop it first)"
    fi
    gen_certs "$d/certs"
    for attempt in 1 2 3; do
        rc=0
        start_once "$d" "$mode" || rc=$?
        ((rc == 0)) && break
        cmd_stop "$d"
        ((rc == 2)) || die "the control plane did not start (logs in $d)"
        log "a port was taken meanwhile (attempt $attempt); retrying on other ports"
    done
    ((rc == 0)) || die "the control plane did not start after 3 attempts (logs in $d)"
    log "ready in $((SECONDS - t0)) s: $(grep APISERVER_URL "$d/env" | cut -d= -f2), kubeconfig $d/admin.kubeconfig"
}

cmd_run() {
    local d="$1"
    mkdir -p "$d"
    d="$(cd "$d" && pwd -P)"
    trap 'cmd_stop "$d"; exit 0' TERM INT HUP
    trap 'cmd_stop "$d"' EXIT
    cmd_start "$d" fg
    echo ready
    # Stay the servers' parent; wake up for signals (wait returns on a trapped signal).
    while alive "$APISERVER_PID" && alive "$ETCD_PID"; do
        wait -n "$APISERVER_PID" "$ETCD_PID" 2>/dev/null || true
    done
    log "a server exited on its own (logs in $d)"
    exit 1
}

(($# >= 1)) || {
    usage
    exit 2
}
case "$1" in
    build) cmd_build ;;
    start | run | stop)
        (($# == 2)) || die "usage: $0 $1 DIR"
        case "$1" in
            start) cmd_start "$2" bg ;;
            run) cmd_run "$2" ;;
            stop) cmd_stop "$2" ;;
        esac
        ;;
    -h | --help) usage ;;
    *)
        usage
        exit 2
        ;;
esac
