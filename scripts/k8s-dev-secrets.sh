#!/usr/bin/env bash
# Print the dev Secret `edge-gateway-dev` (a Kubernetes manifest) for the Tiltfile.
#
#   scripts/k8s-dev-secrets.sh            # Secret YAML on stdout
#
# Keys: redis-password, response-signer.pem (PKCS#8 PEM Ed25519), hmac.secret,
# route-table.key (base64 text of 32 random bytes: edge-grpc and the edge-operator). They are
# generated once into .run/k8s-dev/ (git-ignored; EDGE_K8S_DEV_DIR overrides) and reused,
# so a Tiltfile reload does not roll the pods. .run/k8s-dev/server-public-key holds the
# base64 public key clients pin (edgectl --server-key).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DIR="${EDGE_K8S_DEV_DIR:-$ROOT/.run/k8s-dev}"
PY="$ROOT/.venv/bin/python"
if [[ ! -x "$PY" ]]; then
    echo "k8s-dev-secrets: no project venv at $ROOT/.venv (make setup)" >&2
    exit 1
fi
mkdir -p "$DIR"
chmod 700 "$DIR"
"$PY" - "$DIR" <<'PY'
import base64
import os
import secrets
import sys
from pathlib import Path

from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.signing import Signer

folder = Path(sys.argv[1])


def write(name: str, data: bytes) -> None:
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


if not (folder / "response-signer.pem").exists():
    signer = Signer.generate()
    write("response-signer.pem", encode_ed25519_pkcs8_pem(signer.seed()))
    write("server-public-key", base64.b64encode(signer.public_key) + b"\n")
if not (folder / "hmac.secret").exists():
    write("hmac.secret", secrets.token_hex(32).encode())
if not (folder / "redis-password").exists():
    write("redis-password", secrets.token_hex(16).encode())
if not (folder / "route-table.key").exists():
    write("route-table.key", base64.b64encode(secrets.token_bytes(32)) + b"\n")
PY

b64() { base64 -w0 <"$DIR/$1"; }
printf '%s\n' \
    "apiVersion: v1" \
    "kind: Secret" \
    "metadata:" \
    "  name: edge-gateway-dev" \
    "  labels:" \
    "    app.kubernetes.io/part-of: galaxy-edge-gateway-dev" \
    "type: Opaque" \
    "data:" \
    "  redis-password: $(b64 redis-password)" \
    "  response-signer.pem: $(b64 response-signer.pem)" \
    "  hmac.secret: $(b64 hmac.secret)" \
    "  route-table.key: $(b64 route-table.key)"
