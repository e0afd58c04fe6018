#!/usr/bin/env bash
# bubblewrap (Debian `bubblewrap`) for the eval sandbox's namespace mode (docs/eval.md, "The
# sandbox"), and the toolchains the HumanEval-X suites compile and run with (eval/toolchains.py):
# node, go (+ testify), javac/java, g++, rustc. Installed with apt-get when missing and run as
# root; run again, it does nothing. Not root or no apt-get: a note naming what is missing, and
# set-up goes on (`offpilot eval` then falls back to process limits, and reports samples of a
# missing toolchain as skipped). As root a failed bubblewrap install is fatal, so that CI never
# passes without the sandbox; a toolchain that fails to install is named, not fatal.
set -euo pipefail

say() { printf '[sandbox-setup] %s\n' "$*" >&2; }

# The sandbox empties /root and /home, so a toolchain found only there (rustup's
# ~/.cargo/bin) does not count: look on the system PATH.
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
has() { PATH=$SYSTEM_PATH command -v "$1" >/dev/null; }

# binary-or-path:package
NEEDS=(
    bwrap:bubblewrap
    node:nodejs
    go:golang-go
    /usr/share/gocode/src/github.com/stretchr/testify/assert:golang-github-stretchr-testify-dev
    javac:default-jdk-headless
    java:default-jdk-headless
    g++:g++
    rustc:rustc
)

missing() {
    local item name
    for item in "${NEEDS[@]}"; do
        name=${item%%:*}
        if [[ $name == /* ]]; then [ -e "$name" ] || echo "${item#*:}"; else has "$name" || echo "${item#*:}"; fi
    done | sort -u
}

mapfile -t packages < <(missing)
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "missing: ${packages[*]} (to install: apt-get install -y ${packages[*]})"
    say "without bubblewrap the eval sandbox falls back to process limits; without a toolchain its suites' samples are skipped"
    exit 0
fi
say "apt-get install ${packages[*]}"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
    say "apt-get install failed"
has bwrap || { say "FATAL: bubblewrap did not install"; exit 1; }
mapfile -t still < <(missing)
if [ ${#still[@]} -gt 0 ]; then
    say "still missing: ${still[*]}: the HumanEval-X suites of these languages are skipped"
fi
exit 0
