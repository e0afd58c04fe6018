#!/usr/bin/env bash
# bubblewrap (Debian `bubblewrap`) for the eval sandbox's namespace mode (docs/eval.md, "The
# sandbox"). Installed with apt-get when missing and run as root; run again, it does nothing.
# Not root: a note, and set-up goes on; `offpilot eval` then falls back to process limits and
# says so. As root a failed install is fatal, so that CI never passes without the sandbox.
set -euo pipefail

say() { printf '[sandbox-setup] %s\n' "$*" >&2; }

command -v bwrap >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "bubblewrap is not installed: the eval sandbox falls back to process limits (to install: apt-get install -y bubblewrap)"
    exit 0
fi
say "apt-get install bubblewrap"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
command -v bwrap >/dev/null || { say "FATAL: bubblewrap did not install"; exit 1; }
