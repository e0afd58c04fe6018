#!/bin/sh
# Build llama-cpp-python's wheel for this machine's CPU once; print the folder that holds it.
#
#   scripts/llama-wheel.sh PYTHON   (the version is the `llama` extra's pin in pyproject.toml)
#
# llama.cpp is compiled from source (5-10 minutes on 2 cores). Its instruction sets are
# read from /proc/cpuinfo, never assumed: a build with AVX-512 dies with SIGILL on a CPU
# without it (an AVX2-only AMD EPYC, 2026-12-07). AMX stays off (its kernels crash on the
# CI CPU), and so does -march=native, which would turn AMX on. The wheel is kept per flag
# set, in ~/.cache/offpilot/wheels, so a rebuilt venv (and the backend tests' server,
# tests/backend/setup.sh) reuses it, and a wheel built for another CPU is never picked up:
# pip's own cache does not key builds by their flags.
set -eu
PYTHON="${1:?usage: llama-wheel.sh PYTHON}"
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
VERSION=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml")

has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
on() { if has "$1"; then echo ON; else echo OFF; fi; }

if [ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ]; then
    AVX512=OFF
    if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd; then
        AVX512=ON
    fi
    VNNI=OFF
    if [ "$AVX512" = ON ] && has avx512_vnni; then VNNI=ON; fi
    FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=$(on avx) -DGGML_AVX2=$(on avx2) -DGGML_FMA=$(on fma)"
    # AVX-VNNI (the VEX form) stays off: older compilers lack -mavxvnni, and the AVX-512
    # CPUs that have it use AVX-512 VNNI
    FLAGS="$FLAGS -DGGML_F16C=$(on f16c) -DGGML_BMI2=$(on bmi2) -DGGML_AVX_VNNI=OFF"
    FLAGS="$FLAGS -DGGML_AVX512=$AVX512 -DGGML_AVX512_VNNI=$VNNI"
    FLAGS="$FLAGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else  # another architecture: the compiler's own detection
    FLAGS="-DGGML_NATIVE=ON"
fi
KEY=$(printf '%s %s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/offpilot/wheels/llama-cpp-python-$VERSION-$KEY"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "[setup] building llama-cpp-python $VERSION for this CPU ($FLAGS), once" >&2
    mkdir -p "$WHEELS.tmp.$$"
    trap 'rm -rf "$WHEELS.tmp.$$"' EXIT
    CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-2}" "$PYTHON" -m pip wheel --quiet \
        --disable-pip-version-check --no-cache-dir --no-deps -w "$WHEELS.tmp.$$" \
        "llama-cpp-python==$VERSION"
    rm -rf "$WHEELS"
    mv "$WHEELS.tmp.$$" "$WHEELS"
    trap - EXIT
fi
echo "$WHEELS"
