#!/usr/bin/env bash
# Regenerate every generated artifact into OUT_ROOT (default: the repo itself).
#
#   scripts/gen.sh            -> refresh the committed files (make gen)
#   scripts/gen.sh --check    -> regenerate into a temp tree and fail on any
#                                difference from what is committed (make gen-check)
#
# Generated: protobuf/gRPC stubs (buf generate + grpcio-tools), FlatBuffers
# bindings and binary schemas (flatc), the signing test vectors, the backend
# OpenAPI contract and the TypeScript SDK's generated code
# (clients/typescript/src/gen, scripts/gen-ts.sh: protoc-gen-es from
# clients/typescript/node_modules, so `make ts-deps` must have run; make gen
# and make gen-check depend on it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generate() {
    local out_root="$1"
    if [[ "$out_root" == "." ]]; then
        rm -rf libs/edgecore/src/galaxy
        buf generate
    else
        buf generate -o "$out_root"
    fi
    scripts/gen-flatbuffers.sh "$out_root/libs/edgecore/src" >/dev/null
    scripts/gen-fbs-reflection.sh "$out_root/libs/edgecore/src" >/dev/null
    python scripts/gen_signing_vectors.py "$out_root/contracts/signing-vectors-v1.json"
    python scripts/gen_backend_openapi.py "$out_root/contracts/backend.openapi.yaml"
    # Publishers in other languages run the very script edgecore packages.
    cp libs/edgecore/src/edgecore/publish_client_event.lua "$out_root/contracts/publish-client-event.lua"
    scripts/gen-ts.sh "$out_root" >/dev/null
}

if [[ "${1:-}" != "--check" ]]; then
    generate .
    echo "gen: regenerated protobuf stubs, FlatBuffers bindings and schemas, signing vectors, backend OpenAPI, publishing script, TypeScript SDK code"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
generate "$tmp"
status=0
for path in libs/edgecore/src/galaxy libs/edgecore/src/edgecore/fbs libs/edgecore/src/edgecore/fbs_schema \
    contracts/signing-vectors-v1.json contracts/backend.openapi.yaml \
    contracts/publish-client-event.lua clients/typescript/src/gen; do
    if ! diff -r -x __pycache__ "$tmp/$path" "$path" >"$tmp/diff.txt" 2>&1; then
        echo "gen-check: $path differs from what its sources generate:" >&2
        head -n 40 "$tmp/diff.txt" >&2
        status=1
    fi
done
if [[ $status -ne 0 ]]; then
    echo "gen-check: FAILED; run 'make gen' and commit the result" >&2
    exit 1
fi
echo "gen-check: generated code matches its sources (proto/, schema/, edgecore.catalog, scripts/gen*)"
