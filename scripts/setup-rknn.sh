#!/usr/bin/env bash
# Creates .venv-rknn: Rockchip's rknn-toolkit2, which `edgeseg convert --to rknn` runs in a Python of its own
# (it pins numpy <= 1.26.4, protobuf <= 4.25.4 and PyTorch <= 2.4, which TensorFlow 2.21 cannot live with).
# edgeseg finds this venv by itself; a toolkit installed elsewhere is named with EDGESEG_RKNN_PYTHON.
# About 5.5 GB (PyTorch 2.4 with its CUDA libraries, which the toolkit imports but does not use for ONNX) and
# a few minutes. x86-64 Linux only: the toolkit has no other wheels. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VERSION="${RKNN_TOOLKIT_VERSION:-2.5.0}"
[ "$(uname -m)" = x86_64 ] || { echo "rknn-toolkit2 has wheels for x86-64 Linux only (this is $(uname -m))" >&2; exit 1; }
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 12))'; then
    echo "rknn-toolkit2 $VERSION has wheels for Python 3.8 to 3.12 ($PYTHON is $("$PYTHON" -V 2>&1)); set PYTHON" >&2
    exit 1
fi
[ -x .venv-rknn/bin/python ] || "$PYTHON" -m venv .venv-rknn
.venv-rknn/bin/python -m pip install --quiet --upgrade pip
echo "installing rknn-toolkit2 $VERSION into .venv-rknn (with PyTorch 2.4: the first time takes a few minutes)"
.venv-rknn/bin/python -m pip install --quiet "rknn-toolkit2==$VERSION"
.venv-rknn/bin/python -c "import rknn.api" 2>/dev/null || { echo "rknn-toolkit2 installed but does not import" >&2; exit 1; }
echo "rknn-toolkit2 $VERSION is in .venv-rknn: edgeseg convert MODEL.keras --to rknn --int8 finds it"
