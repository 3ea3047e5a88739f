#!/usr/bin/env bash
# The device path on aarch64, under qemu-user emulation, as a Raspberry Pi 4 (Cortex-A72, no int8 dot product)
# and a Raspberry Pi 5 (Cortex-A76, asimddp). Called by .ci/run; about 4 minutes on 2 cores.
#
# It assembles an arm64 userland in a folder (no chroot, no root filesystem): Debian Bookworm's python3.11 and
# the libraries it needs (apt-get download + dpkg -x), and the aarch64 wheels of the device stack (pip install
# --target --platform ...) at the same versions as .venv. Each board's /proc/cpuinfo (tests/fixtures/cpuinfo) is
# bind-mounted inside `unshare -m`: LiteRT reads it, and with the host's x86 cpuinfo every invoke segfaults.
#
# Under both CPUs it runs doctor, bench, eval (masks compared with x86's, pixel by pixel) and run --record.
# Emulated time is not speed: the timings these commands print here mean nothing and are never reported.
# Prints "SKIPPED: <why>" and exits 0 when qemu, the arm64 packages or the wheels cannot be had; fails when they
# can but a command fails or the masks disagree.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
DIR="${EDGESEG_AARCH64_DIR:-$REPO/.aarch64}"
SHARED="${EDGESEG_SHARED:-../shared}"
X86=.venv/bin/python
skip() { echo "SKIPPED: aarch64 check: $*"; exit 0; }

[ "$(uname -m)" = x86_64 ] || skip "runs on an x86-64 host (this is $(uname -m))"
[ -x "$X86" ] || skip "no .venv (run scripts/setup.sh first)"
mkdir -p "$DIR/debs" "$DIR/root" "$DIR/out" || skip "cannot create $DIR"
LOG="$DIR/install.log"
: >"$LOG"

# 1. qemu-user and Bookworm's arm64 python3.11
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi; }
if ! command -v qemu-aarch64-static >/dev/null; then
    command -v apt-get >/dev/null || skip "no qemu-aarch64-static and no apt-get to install it"
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static; } \
        >>"$LOG" 2>&1 || skip "cannot install Debian's qemu-user-static (see $LOG)"
fi
PKGS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libffi8 libssl3 libbz2-1.0
      liblzma5 libsqlite3-0 libstdc++6 libgcc-s1 libncursesw6 libtinfo6 libuuid1 libcrypt1 libnsl2 libtirpc3 libzstd1
      libdb5.3 libreadline8 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1"
if [ ! -x "$DIR/root/usr/bin/python3.11" ]; then
    command -v apt-get >/dev/null || skip "no apt-get to fetch arm64 python3.11"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        as_root dpkg --add-architecture arm64 >>"$LOG" 2>&1 || skip "cannot add the arm64 architecture to dpkg"
    fi
    as_root apt-get update -qq >>"$LOG" 2>&1 || skip "apt-get update failed (see $LOG)"
    # shellcheck disable=SC2086
    (cd "$DIR/debs" && apt-get download $(for p in $PKGS; do echo "$p:arm64"; done)) >>"$LOG" 2>&1 \
        || skip "cannot download Bookworm's arm64 python3.11 (see $LOG)"
    for f in "$DIR"/debs/*.deb; do dpkg -x "$f" "$DIR/root" || skip "cannot unpack $f"; done
fi

# 2. the device stack's aarch64 wheels, at the versions the x86 .venv has (so both sides run the same code)
ver() { "$X86" -c "import importlib.metadata as m; print(m.version('$1'))"; }
WHEELS="ai-edge-litert==$(ver ai-edge-litert) numpy==$(ver numpy) opencv-python-headless==$(ver opencv-python)
        pillow==$(ver pillow) typer==$(ver typer) av==$(ver av)"
# OpenVINO and ncnn too, where .venv has them (the x86 side converts the model they run)
for extra in openvino ncnn; do
    v=$("$X86" -c "import importlib.metadata as m; print(m.version('$extra'))" 2>/dev/null) && WHEELS="$WHEELS $extra==$v"
done
WHEELS=$(echo $WHEELS)  # one line: the marker below records the list, so a changed list installs afresh
if [ "$(cat "$DIR/site/.done" 2>/dev/null)" != "$WHEELS" ]; then
    rm -rf "$DIR/site"
    # shellcheck disable=SC2086
    "$X86" -m pip install --quiet --target "$DIR/site" --platform manylinux2014_aarch64 \
        --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
        --platform manylinux_2_31_aarch64 --platform manylinux_2_35_aarch64 \
        --python-version 3.11 --implementation cp --only-binary=:all: $WHEELS >>"$LOG" 2>&1 \
        || skip "cannot install the aarch64 wheels (see $LOG)"
    echo "$WHEELS" >"$DIR/site/.done"
fi
# edgeseg itself as its wheel installs it (pure Python: camera/ and converters/ become edgeseg.camera and
# edgeseg.converters), built afresh each run so the check runs this tree's code
# (from a copy of the sources, so that no stale build/ folder of an earlier build can add files that are gone)
rm -rf "$DIR/app" "$DIR/src"
mkdir -p "$DIR/src"
cp -r pyproject.toml README.md edgeseg camera converters "$DIR/src/"
find "$DIR/src" -name __pycache__ -prune -exec rm -rf {} +
"$X86" -m pip install --quiet --no-deps --target "$DIR/app" "$DIR/src" >>"$LOG" 2>&1 \
    || { tail -5 "$LOG" >&2; echo "aarch64 check FAILED: edgeseg's wheel does not build (see $LOG)" >&2; exit 1; }
unshare -m true 2>/dev/null || skip "unshare -m is not allowed here (it bind-mounts the Pi's /proc/cpuinfo)"

set -e
trap 'echo "aarch64 check FAILED (line $LINENO); outputs in $OUT" >&2' ERR
need() {  # need PATTERN FILE: the file holds a line matching PATTERN, or the check fails and shows the file
    grep -q -- "$1" "$2" || { echo "expected a line matching '$1' in $2:" >&2; cat "$2" >&2; return 1; }
}
OUT="$DIR/out"
rm -rf "${OUT:?}"/*
# arm BOARD ARGS...: python3.11 on aarch64 with the board's cpuinfo and CPU model
arm() {
    local board=$1 cpu
    shift
    case $board in pi4) cpu=cortex-a72 ;; pi5) cpu=cortex-a76 ;; esac
    unshare -m sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$REPO/tests/fixtures/cpuinfo/$board.txt" \
        env PYTHONPATH="$DIR/app:$DIR/site" PYTHONSAFEPATH=1 PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \
        qemu-aarch64-static -cpu "$cpu" -L "$DIR/root" "$DIR/root/usr/bin/python3.11" "$@"
}
echo "aarch64 under qemu-user ($(qemu-aarch64-static --version | head -1)); emulated time is not speed"

# The same val frames, also pre-resized on x86 to the model's input size: with identical input tensors the
# masks compare the runtimes alone (OpenCV's INTER_AREA rounds differently on NEON and on x86 by one level).
# resize_frames DEST COUNT WxH: COUNT val frames spread evenly over the split, resized to WxH
resize_frames() {
    "$X86" - "$SHARED/data/camvid" "$@" <<'PY'
import sys
from pathlib import Path
import cv2
from edgeseg.datasets import open_dataset
ds, out, count = open_dataset(sys.argv[1], "val", "auto"), Path(sys.argv[2]), int(sys.argv[3])
w, h = (int(v) for v in sys.argv[4].split("x"))
(out / "images").mkdir(parents=True); (out / "masks").mkdir()
for i in range(0, len(ds), max(1, len(ds) // count))[:count]:
    image, mask = ds.read(i)
    name = ds.samples[i].image.stem + ".png"
    cv2.imwrite(str(out / "images" / name), cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(out / "masks" / name), cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST))
(out / "classes.json").write_text(__import__("json").dumps({"classes": list(ds.classes), "ignore_index": 11}))
PY
}
HAVE_DATA=0
if [ -d "$SHARED/data/camvid" ]; then
    HAVE_DATA=1
    "$X86" -m edgeseg eval small --data "$SHARED/data/camvid" --limit 3 --save-masks "$OUT/x86" >/dev/null 2>&1
    resize_frames "$OUT/resized" 3 384x288
    # OpenVINO and ncnn are compared by score, and a score on 3 frames swings by more than a point with a few
    # hundred pixels of Pedestrian or Bicyclist: 12 frames spread over val, at nano's input size
    resize_frames "$OUT/resized-nano" 12 256x192
    "$X86" -m edgeseg eval small --data "$OUT/resized" --split all --save-masks "$OUT/x86-resized" >/dev/null 2>&1
else
    echo "no $SHARED/data/camvid: the mask comparison is skipped (doctor, bench and run still run)"
fi

# OpenVINO and ncnn: the shipped nano Keras model converted on x86 (as a user would, on the workstation), then
# run on aarch64 below and compared with x86's masks of the same files
OTHER=()
NANO_KERAS=edgeseg/assets/camvid_nano.keras
if [ "$HAVE_DATA" = 0 ]; then
    echo "OpenVINO and ncnn on aarch64: skipped (no CamVid to compare masks on)"
elif [ ! -f "$NANO_KERAS" ]; then
    echo "OpenVINO and ncnn on aarch64: skipped (no $NANO_KERAS in this checkout)"
else
    for target in "openvino --int8:nano_openvino_int8.xml" "ncnn:nano_ncnn.param"; do
        flags=${target%%:*} file=$OUT/${target##*:}
        if [[ " $WHEELS " != *" ${flags%% *}=="* ]]; then
            echo "${flags%% *} on aarch64: skipped (not installed in .venv)"
        # shellcheck disable=SC2086
        elif "$X86" -m edgeseg convert "$NANO_KERAS" --to $flags --calibration "$SHARED/data/camvid" \
            --num-calibration 50 --out "$file" >"$file.convert.txt" 2>&1; then
            "$X86" -m edgeseg eval "$file" --data "$OUT/resized-nano" --split all --save-masks "$file.x86" \
                >"$file.eval-x86.txt" 2>&1
            OTHER+=("$file")
        else
            echo "${flags%% *} on aarch64: skipped (the x86 conversion failed: $(tail -1 "$file.convert.txt"))"
        fi
    done
fi

agree() {  # agree A B MIN: the share of equal pixels over the PNGs in folder A and their twins in B
    "$X86" - "$@" <<'PY'
import sys
from pathlib import Path
import cv2
import numpy as np
a, b, least = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
files = sorted(a.glob("*.png"))
assert files, f"no masks in {a}"
same = total = 0
for f in files:
    x, y = cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.imread(str(b / f.name), cv2.IMREAD_UNCHANGED)
    assert y is not None and x.shape == y.shape, f"{b / f.name}: missing or another size"
    same += int((x == y).sum()); total += x.size
share = 100 * same / total
print(f"{share:.2f}% of {total} pixels equal ({len(files)} masks)")
sys.exit(0 if share >= least else f"masks agree on {share:.2f}% of pixels, below {least}%")
PY
}

for board in pi4 pi5; do
    echo "== $board ($(grep -m1 '^Model' "tests/fixtures/cpuinfo/$board.txt" | cut -d: -f2- | xargs))"
    arm "$board" -m edgeseg doctor >"$OUT/doctor-$board.txt" 2>&1 || true  # WARN/FAIL lines (no camera) are fine
    grep -E "^(OK|INFO|WARN|FAIL) +(machine|ai-edge-litert|board|userland|CPU int8 dot product|model for this CPU) " \
        "$OUT/doctor-$board.txt" | cut -c1-110
    need "machine *aarch64" "$OUT/doctor-$board.txt"
    need "^OK   ai-edge-litert  *[0-9.]* runs a model" "$OUT/doctor-$board.txt"
    need "board *Raspberry Pi" "$OUT/doctor-$board.txt"
    need "^OK   userland *64-bit" "$OUT/doctor-$board.txt"
    if [ "$board" = pi4 ]; then
        need "CPU int8 dot product *none" "$OUT/doctor-$board.txt"
        need "model for this CPU *nano" "$OUT/doctor-$board.txt"
    else
        need "CPU int8 dot product *asimddp" "$OUT/doctor-$board.txt"
    fi

    arm "$board" -m edgeseg bench small nano --runs 2 --warmup 1 --frame-size 160x120 --json "$OUT/bench-$board.json" \
        >"$OUT/bench-$board.txt" 2>&1 || { cat "$OUT/bench-$board.txt"; exit 1; }
    "$X86" -c "
import json, sys
d = json.load(open(sys.argv[1])); env = d['environment']
assert env['machine'] == 'aarch64', env
assert env['cpu_int8_dot'] == (['asimddp'] if sys.argv[2] == 'pi5' else []), env['cpu_int8_dot']
assert [round(r['gmacs'], 3) for r in d['results']] == [2.077, 0.379], [r['gmacs'] for r in d['results']]
print('bench: small and nano ran,', env['machine'], 'int8 dot', env['cpu_int8_dot'] or 'none', '(times not reported: emulated)')
" "$OUT/bench-$board.json" "$board"

    arm "$board" -m edgeseg run small --source synthetic:160x120 --no-show --max-frames 5 --record "$OUT/run-$board.mp4" \
        --stats "$OUT/run-$board.json" >"$OUT/run-$board.txt" 2>&1 || { cat "$OUT/run-$board.txt"; exit 1; }
    "$X86" -c "
import json, sys, av, cv2
s = json.load(open(sys.argv[1])); assert s['frames'] == 5, s
cap = cv2.VideoCapture(sys.argv[2]); n = 0
while cap.read()[0]: n += 1
assert n == 5, f'the recording has {n} frames'
with av.open(sys.argv[2]) as f:
    codec = f.streams.video[0].codec_context.name
assert codec == 'h264', f'the recording is {codec}, not H.264 (PyAV on aarch64 did not encode it)'
print('run: 5 frames, H.264 by PyAV on aarch64, read back on x86')
" "$OUT/run-$board.json" "$OUT/run-$board.mp4"

    if [ "$HAVE_DATA" = 1 ]; then
        arm "$board" -m edgeseg eval small --data "$OUT/resized" --split all --save-masks "$OUT/$board-resized" \
            >"$OUT/eval-$board.txt" 2>&1 || { cat "$OUT/eval-$board.txt"; exit 1; }
        echo -n "eval, same input tensors as x86 (the runtime alone): "
        agree "$OUT/x86-resized" "$OUT/$board-resized" 99.5
        arm "$board" -m edgeseg eval small --data "$SHARED/data/camvid" --limit 3 --save-masks "$OUT/$board" \
            >"$OUT/eval-$board.txt" 2>&1 || { cat "$OUT/eval-$board.txt"; exit 1; }
        echo -n "eval, CamVid frames end to end (OpenCV's resize included): "
        agree "$OUT/x86" "$OUT/$board" 99.0
    fi
    if [ "$board" = pi5 ]; then
        for file in "${OTHER[@]}"; do
            arm "$board" -m edgeseg eval "$file" --data "$OUT/resized-nano" --split all --save-masks "$file.$board" \
                >"$file.eval-$board.txt" 2>&1 || { cat "$file.eval-$board.txt"; exit 1; }
            # Not bit-exact like LiteRT: on a core with fp16 arithmetic (the A76) OpenVINO's ARM plugin and ncnn
            # compute in fp16 by default, x86 in fp32/int8. So the check is the score (within a point, the
            # issue's bar for a runtime) and most of the pixels, not every pixel.
            echo -n "eval $(basename "$file") (nano) on aarch64, same input tensors as x86: "
            agree "$file.x86" "$file.$board" 97.0
            "$X86" - "$file.eval-x86.txt" "$file.eval-$board.txt" <<'PY'
import re, sys
x86, arm = (float(re.findall(r"mIoU ([0-9.]+)", open(f).read())[-1]) for f in sys.argv[1:3])
print(f"  mIoU on the 12 frames: x86 {x86:.2f}, aarch64 {arm:.2f} ({arm - x86:+.2f})")
sys.exit(0 if abs(arm - x86) <= 1.0 else f"aarch64 scores {arm - x86:+.2f} points from x86, more than 1")
PY
        done
    fi
done
echo "aarch64 check (emulated: correctness only): passed"
