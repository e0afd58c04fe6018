#!/usr/bin/env bash
# Build and cache llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) for the
# `backend` tests and the backend replay; run again, it checks and does nothing.
#
#   llama-cpp-python[server] (the `llama` extra's pin) -> $CACHE/llama-server-$VERSION
#
# It goes into its OWN venv (not .venv): the server's dependencies (fastapi, uvicorn, ...)
# are no business of offpilot's. llama.cpp itself is the wheel `make setup` built for this
# CPU (scripts/llama-wheel.sh: its instruction sets read from /proc/cpuinfo, AMX off), so
# it is compiled once for both; the venv records that wheel's folder, and a venv built
# from another wheel (another CPU, older flags) is built again. The venv is built in a temporary
# folder and renamed into place when it imports, so an interrupted run leaves nothing that
# looks installed. CACHE is $OFFPILOT_E2E_CACHE, else ~/.cache/offpilot-e2e, shared with
# tests/editors/setup.sh. The tests find it there (tests/backend/conftest.py).
set -euo pipefail

CACHE=${OFFPILOT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/offpilot-e2e}
PYTHON=${PYTHON:-python3}
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
VERSION=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml")
DEST=$CACHE/llama-server-$VERSION
say() { printf '[backend-setup] %s\n' "$*" >&2; }
WHEELS=$("$ROOT/scripts/llama-wheel.sh" "$PYTHON")

ok() {
    [ -x "$1/bin/python" ] && [ "$(cat "$1/.offpilot-wheels" 2>/dev/null)" = "$WHEELS" ] &&
        "$1/bin/python" -c 'import llama_cpp.server, uvicorn' 2>/dev/null
}
if ok "$DEST"; then
    say "llama-cpp-python $VERSION ready ($DEST)"
    exit 0
fi

started=$(date +%s)
mkdir -p "$CACHE"
tmp="$DEST.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
say "installing llama-cpp-python[server]==$VERSION into $DEST (the wheel in $WHEELS)"
"$PYTHON" -m venv "$tmp"
"$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --find-links "$WHEELS" \
    --only-binary llama-cpp-python "llama-cpp-python[server]==$VERSION"
echo "$WHEELS" >"$tmp/.offpilot-wheels"
ok "$tmp" || { say "FATAL: llama_cpp.server does not import from $tmp"; exit 1; }
# A venv's scripts carry its absolute path: rewrite the temp path before the rename.
grep -rlI --null "$tmp" "$tmp/bin" | xargs -0 -r sed -i "s|$tmp|$DEST|g"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
ok "$DEST" || { say "FATAL: llama_cpp.server does not import from $DEST"; exit 1; }
say "ready in $(($(date +%s) - started)) s ($DEST)"
