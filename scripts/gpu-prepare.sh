#!/usr/bin/env bash
# Makes .gpu/ (ignored by git): what a lent GPU machine needs to train the CamVid recipe with no registry and no
# TensorFlow there: CamVid packed (edgeseg pack, 17.5 MB), the ImageNet MobileNetV2 weights from ../shared, and
# wheels of what Keras needs beyond that machine's image (keras, namex, optree) for its Python (3.12 by default).
# Then the device tool runs scripts/gpu-train.sh with carry [".gpu"]. Needs .venv (scripts/setup.sh) and ../shared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHARED="${EDGESEG_SHARED:-../shared}"
PYVER="${GPU_PYTHON_VERSION:-3.12}"
mkdir -p .gpu/wheels
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
[ -f .gpu/camvid.segpack ] || .venv/bin/edgeseg pack "$SHARED/data/camvid" --out .gpu/camvid.segpack
cp "$SHARED/weights/mobilenet_v2_1.0_224_no_top_imagenet.weights.h5" .gpu/imagenet.weights.h5
KERAS_VERSION=$(.venv/bin/python -c 'import keras; print(keras.__version__)')
.venv/bin/python -m pip download --quiet --only-binary=:all: --no-deps --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d .gpu/wheels "keras==$KERAS_VERSION" namex optree
du -sh .gpu; ls .gpu .gpu/wheels
