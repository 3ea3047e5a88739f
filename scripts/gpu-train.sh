#!/usr/bin/env bash
# Recipe v3 on a lent GPU (issue 33), from .gpu/ (scripts/gpu-prepare.sh): small at the labels' resolution
# (480x352, 3.17 GMACs), then nano (256x192, 0.379 GMACs) distilled from it (the teacher sees each crop from the
# full frame: train's default --teacher-view frame), on Keras' torch (or jax) backend,
# mixed precision by the GPU. Each run goes to $OUT/<name>/ (model.keras, spec.json, history.csv come back).
#     EPOCHS=200 BACKEND=torch HOLD_OUT=0006R0 bash scripts/gpu-train.sh     # the proxy: 0006R0 held out
#     EPOCHS=200 BACKEND=torch bash scripts/gpu-train.sh                     # the shipped models' protocol
# MODELS=small or MODELS=nano (with TEACHER=path) runs one; BATCH (16) and LR (2e-3) as train's options.
# Tested on the CPU with EPOCHS=1 SMALL_SIZE=96x64 NANO_SIZE=96x64 (tests/test_backends.py runs it that way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:?set OUT to the folder the runs go to}"
EPOCHS="${EPOCHS:-200}"
BACKEND="${BACKEND:-torch}"
MODELS="${MODELS:-small,nano}"
BATCH="${BATCH:-16}"
LR="${LR:-2e-3}"
DATA="${DATA:-.gpu/camvid.segpack}"
WEIGHTS="${WEIGHTS:-.gpu/imagenet.weights.h5}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("keras") is None)'; then
    "$PY" -m pip install --quiet --no-index --no-deps .gpu/wheels/*.whl
fi
export KERAS_BACKEND="$BACKEND" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
common=(--backend "$BACKEND" --data "$DATA" --weights "$WEIGHTS" --backbone mobilenet_v2 --alpha 1.0
        --epochs "$EPOCHS" --batch-size "$BATCH" --lr "$LR" --class-weights median --keep last)
if [ -n "${HOLD_OUT:-}" ]; then common+=(--train-splits train,val --hold-out "$HOLD_OUT"); else common+=(--train-splits train,val); fi
"$PY" -m edgeseg doctor 2>&1 | grep -iE "gpu|cuda|mixed" || true
for model in ${MODELS//,/ }; do
    run="$OUT/$model"
    if [ -f "$run/model.keras" ]; then echo "$run: done before"; continue; fi
    resume=(); [ -d "$run/backup" ] && resume=(--resume)
    case "$model" in
        small) args=(--size "${SMALL_SIZE:-480x352}" --decoder dense) ;;
        nano) args=(--size "${NANO_SIZE:-256x192}" --decoder nano --teacher "${TEACHER:-$OUT/small/model.keras}") ;;
        *) echo "unknown model $model" >&2; exit 2 ;;
    esac
    start=$(date +%s)
    if [ ${#resume[@]} -gt 0 ]; then
        "$PY" -m edgeseg train --out "$run" --resume
    else
        "$PY" -m edgeseg train --out "$run" "${common[@]}" "${args[@]}"
    fi
    echo "$model: $(( $(date +%s) - start )) s on $BACKEND" | tee -a "$OUT/times.txt"
done
