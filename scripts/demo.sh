#!/usr/bin/env bash
# The main job end to end on the built-in synthetic data: set up .venv, then train -> convert int8 ->
# eval float vs int8 -> bench -> run the camera loop on a synthetic video. Results land in runs/demo/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/edgeseg demo --out "${1:-runs/demo}" --overwrite
echo "edgeseg is installed in .venv: 'source .venv/bin/activate' to type edgeseg commands (or run .venv/bin/edgeseg)"
