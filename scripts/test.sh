#!/usr/bin/env bash
# Set up .venv, then run the test suite (about 11 minutes on 2 cores; README.md has the figure). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/setup-mediapipe.sh  # for the MediaPipe ImageSegmenter test; it skips when this cannot install
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
