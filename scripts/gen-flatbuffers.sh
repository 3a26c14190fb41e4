#!/usr/bin/env bash
# Generate the Python FlatBuffers bindings for every schema/*.fbs.
#
# Usage: scripts/gen-flatbuffers.sh OUT_SRC_DIR
#
# Writes OUT_SRC_DIR/edgecore/fbs/<namespace>/<Type>.py, e.g.
# `scripts/gen-flatbuffers.sh libs/edgecore/src` refreshes the committed code in
# libs/edgecore/src/edgecore/fbs/. OUT_SRC_DIR/edgecore/fbs is replaced as a
# whole, so stale modules of removed tables disappear.
#
# flatc's Python output imports sibling types by their bare FlatBuffers
# namespace (`from lobby.GameSummary import GameSummary`); those imports are
# rewritten to `from edgecore.fbs.lobby.GameSummary import GameSummary` so all
# generated code lives in the single package `edgecore.fbs`. Every generated
# directory gets a fixed-content `__init__.py`. The output depends only on the
# schemas and the flatc version, so two runs are byte-for-byte identical
# (`make gen-check` relies on that).
#
# Environment overrides: FLATC (flatc binary), PYTHON (interpreter that has the
# `flatbuffers` runtime installed). Defaults: the workspace .venv, then PATH.
set -euo pipefail

usage() {
    echo "usage: $0 OUT_SRC_DIR" >&2
    exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage

export LC_ALL=C

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
schema_dir="$repo_root/schema"

out_src_dir="$1"

# --- tools ----------------------------------------------------------------

if [[ -n "${FLATC:-}" ]]; then
    flatc="$FLATC"
elif [[ -x "$repo_root/.venv/bin/flatc" ]]; then
    flatc="$repo_root/.venv/bin/flatc"
elif command -v flatc >/dev/null 2>&1; then
    flatc="$(command -v flatc)"
else
    echo "error: flatc not found (run 'uv sync' or put flatc on PATH, or set FLATC)" >&2
    exit 1
fi

if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -x "$repo_root/.venv/bin/python" ]]; then
    python="$repo_root/.venv/bin/python"
elif command -v python3 >/dev/null 2>&1; then
    python="$(command -v python3)"
else
    python="python"
fi

# --- version check: generated code must match the runtime it runs on --------

flatc_version_line="$("$flatc" --version)"
flatc_version="${flatc_version_line##* }"
if ! runtime_version="$("$python" -c 'import importlib.metadata as m; print(m.version("flatbuffers"))')"; then
    echo "error: cannot read the installed 'flatbuffers' runtime version with $python" >&2
    exit 1
fi
if [[ "$flatc_version" != "$runtime_version" ]]; then
    echo "error: flatc version mismatch: $flatc reports '$flatc_version_line'," >&2
    echo "       but the installed Python 'flatbuffers' runtime is $runtime_version." >&2
    echo "       Install flatc $runtime_version (the 'flatc' dev dependency) or align the runtime pin." >&2
    exit 1
fi

# --- generate ---------------------------------------------------------------

shopt -s nullglob
schemas=("$schema_dir"/*.fbs)
shopt -u nullglob
if [[ ${#schemas[@]} -eq 0 ]]; then
    echo "error: no schemas found in $schema_dir" >&2
    exit 1
fi
# Deterministic input order.
mapfile -t schemas < <(printf '%s\n' "${schemas[@]}" | sort)

tmp_dir="$(mktemp -d)"
trap 'rm -rf "$tmp_dir"' EXIT
gen_dir="$tmp_dir/edgecore/fbs"
mkdir -p "$gen_dir"

"$flatc" --python --python-typing -o "$gen_dir" "${schemas[@]}"
# The .pyi stubs flatc 25.12 writes beside the modules are wrong (string
# accessors are typed `str` but return bytes; the short builder aliases such as
# `AddCode` are missing), so they would mislead mypy. The annotated .py modules
# are the only source of truth.
find "$gen_dir" -name '*.pyi' -delete

# --- post-process: package-qualify imports, add __init__.py files -----------

"$python" - "$gen_dir" <<'PY'
import os
import re
import sys

root = sys.argv[1]
pkg = "edgecore.fbs"

namespaces = sorted(
    name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))
)
if not namespaces:
    sys.exit("error: flatc produced no namespace directories")
ns_alt = "|".join(re.escape(ns) for ns in namespaces)
from_re = re.compile(rf"^(\s*)from ({ns_alt})([.\s])", re.MULTILINE)
bare_import_re = re.compile(rf"^\s*import ({ns_alt})\b", re.MULTILINE)

for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for filename in sorted(filenames):
        if not filename.endswith((".py", ".pyi")):
            continue
        path = os.path.join(dirpath, filename)
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        bad = bare_import_re.search(text)
        if bad:
            sys.exit(
                f"error: {path}: unsupported generated import form {bad.group(0).strip()!r}"
                " (only 'from <namespace>.X import Y' is rewritten)"
            )
        new = from_re.sub(rf"\1from {pkg}.\2\3", text)
        if new != text:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(new)

# Every directory of the package gets an __init__.py with fixed content.
for dirpath, dirnames, _ in os.walk(root):
    dirnames.sort()
    rel = os.path.relpath(dirpath, root)
    module = pkg if rel == "." else pkg + "." + rel.replace(os.sep, ".")
    if rel == ".":
        doc = (
            f'"""Generated FlatBuffers bindings ({module}).\n\n'
            "One subpackage per FlatBuffers namespace of schema/*.fbs.\n"
            "Generated by scripts/gen-flatbuffers.sh; do not edit.\n"
            '"""\n'
        )
    else:
        ns = rel.replace(os.sep, ".")
        doc = (
            f'"""Generated FlatBuffers bindings for namespace `{ns}` ({module}).\n\n'
            "Generated by scripts/gen-flatbuffers.sh; do not edit.\n"
            '"""\n'
        )
    with open(os.path.join(dirpath, "__init__.py"), "w", encoding="utf-8", newline="") as f:
        f.write(doc)

# Nothing may still import a bare namespace.
leftover = re.compile(rf"^\s*(from|import) ({ns_alt})[.\s]", re.MULTILINE)
for dirpath, _, filenames in os.walk(root):
    for filename in filenames:
        path = os.path.join(dirpath, filename)
        with open(path, encoding="utf-8") as f:
            if leftover.search(f.read()):
                sys.exit(f"error: {path}: bare namespace import left after rewrite")
PY

# --- install ----------------------------------------------------------------

target="$out_src_dir/edgecore/fbs"
mkdir -p "$out_src_dir/edgecore"
rm -rf "$target"
cp -R "$gen_dir" "$target"

echo "generated $(find "$target" -name '*.py' | wc -l | tr -d ' ') Python modules into $target (flatc $flatc_version)"
