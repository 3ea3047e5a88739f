#!/usr/bin/env bash
# Creates .venv-mediapipe with Google's mediapipe package, for the test that loads a `convert --mediapipe` model
# in MediaPipe's own ImageSegmenter. A venv of its own: mediapipe installs opencv-contrib-python, which would
# replace opencv-python's cv2 in .venv. Prints SKIPPED with the reason when the package cannot be had (the test
# then skips with that reason); safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
MEDIAPIPE_VERSION="${MEDIAPIPE_VERSION:-1.2.3}"
if .venv-mediapipe/bin/python -c "import mediapipe, sys; sys.exit(mediapipe.__version__ != '$MEDIAPIPE_VERSION')" \
    >/dev/null 2>&1; then
    exit 0
fi
echo "installing mediapipe $MEDIAPIPE_VERSION into .venv-mediapipe (for the MediaPipe ImageSegmenter test)"
rm -rf .venv-mediapipe
LOG=$(mktemp "${TMPDIR:-/tmp}/edgeseg-mediapipe.XXXXXX.log")
if ! { "$PYTHON" -m venv .venv-mediapipe && .venv-mediapipe/bin/python -m pip install --quiet --upgrade pip \
    && .venv-mediapipe/bin/python -m pip install --quiet "mediapipe==$MEDIAPIPE_VERSION"; } >"$LOG" 2>&1; then
    rm -rf .venv-mediapipe
    echo "SKIPPED: mediapipe $MEDIAPIPE_VERSION could not be installed (see $LOG)"
fi
