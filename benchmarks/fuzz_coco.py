"""Fuzz the COCO reader: does every damaged COCO dataset end in one clean line (issue 35)?

    python benchmarks/fuzz_coco.py [--mutations 500] [--seed 0] [--workers 2]
                                   [--out benchmarks/results/fuzz_coco.json]

A small COCO dataset is written here: 4 synthetic images, 10 categories (so that with the background it has the
11 classes of the shipped nano model), polygons, uncompressed RLE, compressed RLE strings and a crowd region.
Each mutation is a copy of it, of one of three kinds, in turn:
- `value`: one value anywhere in the JSON tree replaced by a hostile one (a wrong type, a negative, zero or
  huge number, NaN, a long string, an empty list, a path that climbs out of the folder...), or a key deleted, or
  a list entry repeated;
- `bytes`: bytes of the JSON text flipped (mostly not JSON any more);
- `image`: a referenced image file truncated, replaced by noise or by another size than the JSON says.
Every copy goes through `edgeseg eval nano --data coco.json --split all` and `edgeseg pack coco.json`, in a
child process per mutation (fuzz_tflite.py's), so that a native crash is seen as a signal. Goal: zero tracebacks,
signals and hangs. Results: JSON and markdown beside --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fuzz_tflite import BAD, outcomes_of, write_results  # noqa: E402

COMMANDS = ("eval", "pack")
KINDS = ("value", "bytes", "image")
HOSTILE = [None, -1, 0, 1, 2**31, 2**63, 1e308, -1e308, math.nan, math.inf, "x", "", "9" * 5000, [], {}, [[]], [0],
           [-5, -5, 1e9, 1e9, 3], True, "../../../etc/passwd", "/etc/passwd", "a\x00b", [[1, 2, 3]], {"counts": "!!"},
           {"counts": [1e9], "size": [2, 2]}, {"counts": "0", "size": [65535, 65535]}]  # fmt: skip

CHILD = r"""
import json, sys
from typer.testing import CliRunner
from edgeseg.cli import app
data, out = sys.argv[1], sys.argv[2]
cmds = {
    "eval": ["eval", "nano", "--data", data, "--split", "all"],
    "pack": ["pack", data, "--out", out],
}
runner = CliRunner()
for name, args in cmds.items():
    print(json.dumps({"start": name}), flush=True)
    r = runner.invoke(app, args)
    tb = r.exception is not None and not isinstance(r.exception, SystemExit)
    text = r.output + ("".join(__import__("traceback").format_exception(r.exception)) if tb else "")
    lines = [l for l in r.output.strip().splitlines() if l.strip()]
    print(json.dumps({"cmd": name, "code": r.exit_code, "traceback": tb or "Traceback" in r.output,
                      "last": (lines[-1] if lines else "")[:300], "detail": text[-600:] if tb else ""}), flush=True)
"""


def write_coco(folder: Path) -> dict:
    """The seed dataset: images/ and coco.json (returned as a dict as well)."""
    import cv2
    from pycocotools import mask as mask_utils

    from edgeseg.synthetic import scene

    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    h, w = 48, 64
    for i in range(4):
        cv2.imwrite(str(folder / "images" / f"f{i}.png"), scene(i, (h, w))[0])
        images.append({"id": i + 1, "file_name": f"f{i}.png", "width": w, "height": h})
        poly = [[4 + i, 4, 30, 6 + i, 28, 30, 6, 26]]
        annotations.append({"id": 10 * i + 1, "image_id": i + 1, "category_id": 1 + i % 10, "segmentation": poly,
                            "iscrowd": 0, "area": 500.0, "bbox": [4, 4, 26, 26]})  # fmt: skip
        m = __import__("numpy").zeros((h, w), "uint8")
        m[30:44, 34:60] = 1
        rle = mask_utils.encode(__import__("numpy").asfortranarray(m))
        rle["counts"] = rle["counts"].decode()  # the compressed string form
        annotations.append({"id": 10 * i + 2, "image_id": i + 1, "category_id": 1 + (i + 3) % 10,
                            "segmentation": rle, "iscrowd": 0, "area": 364.0, "bbox": [34, 30, 26, 14]})  # fmt: skip
        counts = [h * 40, h * 4, h * (w - 44)]  # uncompressed RLE: columns 40..43
        annotations.append({"id": 10 * i + 3, "image_id": i + 1, "category_id": 1 + (i + 5) % 10,
                            "segmentation": {"counts": counts, "size": [h, w]}, "iscrowd": i % 2,
                            "area": float(h * 4), "bbox": [40, 0, 4, h]})  # fmt: skip
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": f"c{k + 1}", "supercategory": "x"} for k in range(10)],
    }
    (folder / "coco.json").write_text(json.dumps(coco))
    return coco


def paths(tree, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for k, v in enumerate(tree):
            yield from paths(v, (*prefix, k))


def mutate_value(coco: dict, rng: random.Random) -> tuple[str, str]:
    """(the damaged JSON text, what was done)."""
    tree = copy.deepcopy(coco)
    where = rng.choice([p for p, _ in paths(tree) if p])
    parent = tree
    for k in where[:-1]:
        parent = parent[k]
    key = where[-1]
    action = rng.choice(("replace", "replace", "replace", "delete", "repeat"))
    if action == "delete":
        del parent[key]
    elif action == "repeat" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:
        action = "replace"
        parent[key] = rng.choice(HOSTILE)
    return json.dumps(tree, allow_nan=True), f"{action} {'/'.join(map(str, where))}"


def mutate_bytes(text: str, rng: random.Random) -> tuple[str, str]:
    data = bytearray(text.encode())
    spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 4))]
    for s in spots:
        data[s] = rng.randrange(256)
    return data.decode("utf-8", "replace"), f"bytes at {spots}"


def mutate_image(folder: Path, coco: dict, rng: random.Random) -> str:
    import cv2

    victim = folder / "images" / rng.choice(coco["images"])["file_name"]
    how = rng.choice(("truncate", "noise", "resize", "empty"))
    if how == "truncate":
        victim.write_bytes(victim.read_bytes()[: rng.randrange(1, 200)])
    elif how == "noise":
        victim.write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    elif how == "resize":
        img = cv2.imread(str(victim))
        cv2.imwrite(str(victim), cv2.resize(img, (rng.randint(1, 200), rng.randint(1, 200))))
    else:
        victim.write_bytes(b"")
    return f"{how} {victim.name}"


def run_one(i: int, kind: str, folder: Path, timeout: float) -> dict:
    import subprocess

    t0 = time.time()
    hung = False
    try:
        p = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder / "coco.json"), str(folder / "out.segpack")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        stdout, code = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        stdout, code, hung = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), None, True
    stdout = stdout.replace(f"{folder}/", "")
    outcomes, records = outcomes_of(stdout, code, hung, COMMANDS)
    return {
        "mutation": i,
        "kind": kind,
        "exit": code,
        "outcomes": outcomes,
        "seconds": round(time.time() - t0, 2),
        "errors": {c: r["last"] for c, r in records.items() if r["code"] != 0},
        "tracebacks": {c: r["detail"] for c, r in records.items() if r["traceback"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutations", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per mutation (both commands)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz_coco.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-fuzz-coco-") as tmp:
        tmp = Path(tmp)
        coco = write_coco(tmp / "seed")
        text = (tmp / "seed" / "coco.json").read_text()
        jobs = []
        for i in range(args.mutations):
            kind = KINDS[i % len(KINDS)]
            folder = tmp / f"m{i:04d}"
            shutil.copytree(tmp / "seed", folder)
            if kind == "value":
                damaged, what = mutate_value(coco, rng)
                (folder / "coco.json").write_text(damaged)
            elif kind == "bytes":
                damaged, what = mutate_bytes(text, rng)
                (folder / "coco.json").write_text(damaged)
            else:
                what = mutate_image(folder, coco, rng)
            jobs.append((i, kind, folder, what))
        t0 = time.time()
        with ThreadPoolExecutor(args.workers) as pool:
            futures = [pool.submit(run_one, i, kind, folder, args.timeout) for i, kind, folder, _ in jobs]
            for n, (f, (_, _, folder, what)) in enumerate(zip(futures, jobs, strict=True), 1):
                r = f.result()
                r["what"] = what
                results.append(r)
                shutil.rmtree(folder, ignore_errors=True)
                bad = [c for c, o in r["outcomes"].items() if o in BAD]
                print(
                    f"[{n}/{len(jobs)}] {r['kind']:<6} {what[:60]:<60} "
                    + " ".join(f"{c}={o}" for c, o in r["outcomes"].items())
                    + (f"  <-- {bad}" if bad else ""),
                    flush=True,
                )
        seconds = time.time() - t0
    dataset = "4 images, 10 categories: polygons, uncompressed and compressed RLE, a crowd region"
    totals = write_results(
        args.out, results, {"dataset": dataset}, f"a COCO dataset ({dataset})", "`eval nano --data` and `pack`",
        args.seed, seconds, KINDS, COMMANDS, 120,
    )  # fmt: skip
    sys.exit(1 if totals["traceback"] or totals["signal"] or totals["hang"] else 0)


if __name__ == "__main__":
    main()
