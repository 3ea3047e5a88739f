#!/usr/bin/env bash
# The training tests on a Keras backend other than TensorFlow, in a venv of its own that has no TensorFlow
# (.venv-jax or .venv-torch): `edgeseg train` must not need it. Called by .ci/run for jax.
#     bash scripts/test-backend.sh jax|torch [pytest arguments]
# torch installs the CPU build pip finds on this machine's disk (torch==2.13.0); jax comes from PyPI. Fails when
# the install or a test fails; the tests that convert (TensorFlow's job) skip, saying so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BACKEND="${1:?usage: scripts/test-backend.sh jax|torch [pytest arguments]}"
shift
case "$BACKEND" in
    jax) EXTRA=(".[jax,dev]") ;;
    torch) EXTRA=(".[torch,dev]" "torch==2.13.0") ;;
    *) echo "unknown backend $BACKEND: jax or torch" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
VENV=".venv-$BACKEND"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "installing edgeseg[$BACKEND,dev] into $VENV (no TensorFlow)"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
if ! { "$VENV/bin/python" -m pip install --quiet --upgrade pip && "$VENV/bin/python" -m pip install --quiet -e "${EXTRA[@]}"; } >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "could not install edgeseg[$BACKEND,dev] into $VENV (pip's output above)" >&2
    exit 1
fi
if "$VENV/bin/python" -c 'import tensorflow' 2>/dev/null; then
    echo "$VENV has TensorFlow: this check is for training without it" >&2
    exit 1
fi
if [ $# -eq 0 ]; then
    set -- -m "not distributed" tests/test_backends.py tests/test_pack.py tests/test_training.py tests/test_dense_stem.py tests/test_protocol.py
fi
KERAS_BACKEND="$BACKEND" "$VENV/bin/python" -m pytest -p no:cacheprovider -q "$@"
