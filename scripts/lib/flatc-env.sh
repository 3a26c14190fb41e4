# shellcheck shell=bash disable=SC2154  # repo_root and schema_dir come from the sourcing script
# Sourced by the FlatBuffers generators (gen-flatbuffers.sh, gen-fbs-reflection.sh).
# Needs: repo_root, schema_dir. Sets: flatc, python, flatc_version, schemas (sorted).
#
# flatc must be the same version as the installed Python `flatbuffers` runtime,
# or the generated code would not match the runtime it runs on.

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

# --- version check ----------------------------------------------------------

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
