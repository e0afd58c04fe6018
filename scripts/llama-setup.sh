#!/bin/sh
# llama-cpp-python (the default engine) into the venv, built for this CPU
# (scripts/llama-wheel.sh); `make setup` runs it, and goes on without it where it fails.
set -eu
PYTHON="${1:?usage: llama-setup.sh VENV_PYTHON}"
WHEELS=$(scripts/llama-wheel.sh "$PYTHON")
# the wheel itself, over any build already in the venv (which may be for another CPU)
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "$WHEELS"/llama_cpp_python-*.whl
"$PYTHON" -m pip install --quiet --disable-pip-version-check --find-links "$WHEELS" \
    --only-binary llama-cpp-python -e '.[llama]'
