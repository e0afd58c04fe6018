#!/usr/bin/env bash
# Build the extension and package it with vsce: editors/vscode/build.sh [OUT.vsix]
# Needs Node >= 22 on PATH (tests/editors/setup.sh puts Node 24 there). Skips the work when
# the .vsix is newer than every source file.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/build/offpilot.vsix}")
cd "$HERE"
if [ -f "$OUT" ] && [ -z "$(find src package.json package-lock.json tsconfig.json README.md .vscodeignore -newer "$OUT" 2>/dev/null)" ]; then
    echo "[vscode] $OUT is up to date" >&2
    exit 0
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-fund --no-audit --loglevel=error
fi
npm run --silent typecheck
npm run --silent bundle -- --log-level=warning
mkdir -p "$(dirname "$OUT")"
./node_modules/.bin/vsce package --no-dependencies --skip-license --allow-missing-repository -o "$OUT" >&2
echo "[vscode] packaged $OUT" >&2
