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
.venv/bin/python -m pip install --quiet --upgrade pip
echo "installing edgeseg[train,device,dev,onnx,openvino,ncnn,docs,coco] into .venv (TensorFlow is large: the first time takes a few minutes)"
.venv/bin/python -m pip install --quiet -e ".[train,device,dev,onnx,openvino,ncnn,docs,coco]"
# ncnn's converter: pnnx's wheel declares PyTorch (2 GB with its CUDA libraries), which its converter binary
# does not use, so it is installed without its dependencies
.venv/bin/python -m pip install --quiet --no-deps "pnnx>=20240410"
