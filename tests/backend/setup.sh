#!/usr/bin/env bash
# Build and cache llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) for the
# `backend` tests and the backend replay; run again, it checks and does nothing.
#
#   llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION, compiled from source -> $CACHE/llama-server-$VERSION
#
# It goes into its OWN venv (not .venv): the build takes 10+ minutes on 2 cores and the
# server's dependencies (fastapi, uvicorn, ...) are no business of offpilot's. AMX is off:
# llama.cpp's AMX kernels crash on the CI CPU; AVX2/AVX512 are on, native detection off,
# so the binary does not depend on the building machine. The venv is built in a temporary
# folder and renamed into place when it imports, so an interrupted run leaves nothing that
# looks installed. CACHE is $OFFPILOT_E2E_CACHE, else ~/.cache/offpilot-e2e, shared with
# tests/editors/setup.sh. The tests find it there (tests/backend/conftest.py).
set -euo pipefail

CACHE=${OFFPILOT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/offpilot-e2e}
PYTHON=${PYTHON:-python3}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
DEST=$CACHE/llama-server-$VERSION
say() { printf '[backend-setup] %s\n' "$*" >&2; }

ok() { [ -x "$1/bin/python" ] && "$1/bin/python" -c 'import llama_cpp.server, uvicorn' 2>/dev/null; }
if ok "$DEST"; then
    say "llama-cpp-python $VERSION ready ($DEST)"
    exit 0
fi

started=$(date +%s)
mkdir -p "$CACHE"
tmp="$DEST.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
say "building llama-cpp-python[server]==$VERSION into $DEST (10+ minutes on 2 cores, once)"
"$PYTHON" -m venv "$tmp"
"$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-2} \
    "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    "llama-cpp-python[server]==$VERSION"
ok "$tmp" || { say "FATAL: llama_cpp.server does not import from $tmp"; exit 1; }
# A venv's scripts carry its absolute path: rewrite the temp path before the rename.
grep -rlI --null "$tmp" "$tmp/bin" | xargs -0 -r sed -i "s|$tmp|$DEST|g"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
ok "$DEST" || { say "FATAL: llama_cpp.server does not import from $DEST"; exit 1; }
say "ready in $(($(date +%s) - started)) s ($DEST)"
