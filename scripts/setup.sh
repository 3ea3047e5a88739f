#!/usr/bin/env bash
# Creates .venv (if needed) with edgeseg and everything for training, the device runtime and the tests.
# Run by demo.sh, test.sh and .ci/run; safe to run again (it reinstalls only what changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "edgeseg needs Python >= 3.11 ($PYTHON is $("$PYTHON" -V 2>&1)); set PYTHON=python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PYTHON" -V)"
    "$PYTHON" -m venv .venv
fi
# pip's own notes (setuptools' editable-install warning, a pip.conf's missing find-links) go to a log that is
# shown only when an install fails
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
pip_quiet() {
    if ! .venv/bin/python -m pip install --quiet "$@" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        echo "pip install $* failed (its output above)" >&2
        exit 1
    fi
}
pip_quiet --upgrade pip
# the device extra brings paho-mqtt (run --publish) beside the runtime
echo "installing edgeseg[train,device,dev,onnx,openvino,ncnn,docs,coco] into .venv (TensorFlow is large: the first time takes a few minutes)"
pip_quiet -e ".[train,device,dev,onnx,openvino,ncnn,docs,coco]"
# ncnn's converter: pnnx's wheel declares PyTorch (2 GB with its CUDA libraries), which its converter binary
# does not use, so it is installed without its dependencies
pip_quiet --no-deps "pnnx>=20240410"
