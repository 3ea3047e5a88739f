#!/usr/bin/env bash
# The Raspberry Pi OS Bookworm stack on x86: numpy 1.24 (what apt ships) with the constraints file, the device
# install, and tflite-runtime 2.14. Runs eval, bench and run with --runtime tflite-runtime, and the same eval with
# ai-edge-litert, in a venv of its own (.venv-numpy1). Prints "SKIPPED: <why>" and exits 0 when the packages
# cannot be installed here; fails when they install but a command fails. Called by .ci/run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-numpy1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
skip() { echo "SKIPPED: numpy-1 + tflite-runtime check: $*"; exit 0; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || skip "needs Python 3.11 (Bookworm's), found $("$PYTHON" -V 2>&1)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || skip "cannot create $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >"$OUT/pip.log" 2>&1 || skip "pip upgrade failed (see below)"
"$VENV/bin/python" -m pip install --quiet -c constraints/pi-bookworm.txt -e ".[device,tflite]" "numpy==1.24.*" \
    >>"$OUT/pip.log" 2>&1 \
    || { tail -5 "$OUT/pip.log"; skip "could not install edgeseg[device,tflite] with the Bookworm constraints"; }
set -e
E="$VENV/bin/edgeseg"
"$VENV/bin/python" -c 'import numpy, cv2, tflite_runtime, ai_edge_litert; assert numpy.__version__.startswith("1."), numpy.__version__; print("numpy", numpy.__version__, "opencv", cv2.__version__)'
SHARED="${EDGESEG_SHARED:-../shared}"
if [ -d "$SHARED/data/camvid" ]; then
    "$E" eval small --data "$SHARED/data/camvid" --limit 4 --runtime tflite-runtime --json "$OUT/tfl.json" | tail -1
    "$E" eval small --data "$SHARED/data/camvid" --limit 4 --json "$OUT/litert.json" | tail -1
    "$VENV/bin/python" - "$OUT/tfl.json" "$OUT/litert.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert abs(a["miou"] - b["miou"]) < 0.01, (a["miou"], b["miou"])  # the two runtimes agree
assert a["miou"] > 0.45, a["miou"]
print(f"tflite-runtime mIoU {100 * a['miou']:.2f} vs ai-edge-litert {100 * b['miou']:.2f} on 4 CamVid val frames")
PY
else
    echo "no $SHARED/data/camvid: eval skipped"
fi
"$E" bench small --runtime tflite-runtime --runs 3 --warmup 1 --frame-size 160x120 --json "$OUT/b.json" | tail -2
"$E" run small --runtime tflite-runtime --source synthetic:160x120 --no-show --max-frames 5 --record "$OUT/o.mp4" \
    --stats "$OUT/s.json" >"$OUT/run.txt" 2>&1 || { cat "$OUT/run.txt"; exit 1; }
grep "frames in" "$OUT/run.txt"
"$VENV/bin/python" -c "import json; d = json.load(open('$OUT/b.json'))['results'][0]; assert d['runtime'] == 'tflite-runtime', d['runtime']; s = json.load(open('$OUT/s.json')); assert s['frames'] == 5, s"
echo "numpy-1 + tflite-runtime check: passed"
