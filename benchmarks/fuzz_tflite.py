"""Fuzz the device commands with damaged models: does every bad .tflite or .onnx end in one clean line?

    python benchmarks/fuzz_tflite.py [--model edgeseg/assets/camvid_small_int8.tflite] [--mutations 500]
                                     [--seed 0] [--workers 2] [--out benchmarks/results/fuzz_tflite.json]
    python benchmarks/fuzz_tflite.py --onnx [--mutations 500]   # -> benchmarks/results/fuzz_onnx.json

With --onnx the model is a small ONNX segmentation network built here (two convolutions, a resize, 11 classes,
the edgeseg spec in its metadata: no TensorFlow needed), and `spec` mutations hit the metadata's JSON,
`structure` ones the protobuf outside the weights' raw data.

Each mutation is a copy of the model with a few bytes changed, of one of three kinds, in turn:
- `spec`: bytes inside the embedded edgeseg spec (JSON) flipped or replaced;
- `structure`: bytes outside the weight buffers (the flatbuffer's tables: tensors, shapes, operators, indices);
- `anywhere`: bytes anywhere in the file (mostly weights, which must not break anything).
Every copy goes through `edgeseg info`, `edgeseg bench` (1 run), `edgeseg eval` (1 frame of a generated
11-class dataset) and `edgeseg run` (2 synthetic frames), in a child process per mutation so that a native
crash is seen as a signal, not lost. Outcomes per command: success (exit 0), clean error (exit 1 or 2 and no
traceback), traceback, signal (the child died: segfault, abort), hang (over the time limit).
Goal: zero tracebacks, zero signals and zero hangs. Results: JSON and markdown beside --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.io import atomic_write_text  # noqa: E402

COMMANDS = ("info", "bench", "eval", "run")
KINDS = ("spec", "structure", "anywhere")

# The child: runs the four commands in-process through Typer's runner and prints one JSON line per command.
# A native crash kills it; the parent sees which command was running from the lines printed so far.
CHILD = r"""
import json, sys
from typer.testing import CliRunner
from edgeseg.cli import app
model, data = sys.argv[1], sys.argv[2]
cmds = {
    "info": ["info", model],
    "bench": ["bench", model, "--runs", "1", "--warmup", "0", "--rounds", "1", "--frame-size", "64x48"],
    "eval": ["eval", model, "--data", data, "--split", "all", "--limit", "1"],
    "run": ["run", model, "--source", "synthetic:64x48", "--no-show", "--max-frames", "2"],
}
runner = CliRunner()
for name, args in cmds.items():
    print(json.dumps({"start": name}), flush=True)
    r = runner.invoke(app, args)
    tb = r.exception is not None and not isinstance(r.exception, SystemExit)
    text = r.output + ("".join(__import__("traceback").format_exception(r.exception)) if tb else "")
    lines = [l for l in r.output.strip().splitlines() if l.strip() and not l.startswith("INFO:")]
    print(json.dumps({"cmd": name, "code": r.exit_code, "traceback": tb or "Traceback" in r.output,
                      "last": (lines[-1] if lines else "")[:300], "detail": text[-600:] if tb else ""}), flush=True)
"""


def weight_ranges(buf: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the buffers' data (weights): mutations of kind `structure` avoid them."""
    from edgeseg.tflite_file import buffer_data_ranges

    return buffer_data_ranges(buf, min_bytes=64)


def mutate(buf: bytes, kind: str, rng: random.Random, spec_range: tuple[int, int], weights) -> tuple[bytes, list]:
    data = bytearray(buf)
    n = rng.randint(1, 8)
    if kind == "spec":
        lo, hi = spec_range
        offsets = [rng.randrange(lo, hi) for _ in range(n)]
    elif kind == "structure":
        offsets = []
        while len(offsets) < n:
            o = rng.randrange(len(data))
            if not any(a <= o < b for a, b in weights):
                offsets.append(o)
    else:
        offsets = [rng.randrange(len(data)) for _ in range(n)]
    for o in offsets:
        if kind == "spec" and rng.random() < 0.6:  # JSON-shaped damage reaches the validation, not just UTF-8
            data[o] = rng.choice(b'0123456789[]{}",:-.eE nNaItrufl')
        else:
            data[o] = rng.choice((rng.randrange(256), data[o] ^ (1 << rng.randrange(8)), 0, 0xFF, 0x7F, 0x80))
    return bytes(data), offsets


def classify(code: int | None, record: dict | None, hung: bool) -> str:
    if hung:
        return "hang"
    if record is None:
        return "signal"
    if record["traceback"]:
        return "traceback"
    return "success" if record["code"] == 0 else "clean error" if record["code"] in (1, 2) else "odd exit"


def outcomes_of(stdout: str, code: int | None, hung: bool, commands) -> tuple[dict, dict]:
    """(outcome per command, its JSON record) from a child's output: a command that started and printed no record
    is the one that died (a signal) or hung; one that never started was not run."""
    records, running = {}, None
    for line in stdout.splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "start" in d:
            running = d["start"]
        elif "cmd" in d:
            records[d["cmd"]] = d
            running = None
    outcomes = {}
    for cmd in commands:
        if cmd in records:
            outcomes[cmd] = classify(code, records[cmd], False)
        else:
            outcomes[cmd] = classify(code, None, hung) if cmd == running else "not run"
    return outcomes, records


OUTCOMES = ("success", "clean error", "traceback", "signal", "hang", "odd exit", "not run")
BAD = ("traceback", "signal", "hang", "odd exit")


def tally(results: list[dict], kinds, commands) -> tuple[dict, dict, list[str]]:
    """(outcomes by kind and command, totals, the markdown table's lines) of a fuzz run's results."""
    table = {kind: {cmd: {o: 0 for o in OUTCOMES} for cmd in commands} for kind in kinds}
    for r in results:
        for cmd, o in r["outcomes"].items():
            table[r["kind"]][cmd][o] += 1
    totals = {o: sum(table[k][c][o] for k in kinds for c in commands) for o in OUTCOMES}
    lines = [
        "| kind | command | " + " | ".join(OUTCOMES[:-1]) + " |",
        "| --- | --- |" + " ---: |" * (len(OUTCOMES) - 1),
    ]
    for kind in kinds:
        for cmd in commands:
            lines.append(f"| {kind} | {cmd} | " + " | ".join(str(table[kind][cmd][o]) for o in OUTCOMES[:-1]) + " |")
    lines += ["", "Totals: " + ", ".join(f"{o} {v}" for o, v in totals.items() if v)]
    return table, totals, lines


def write_results(out: Path, results, about: dict, subject: str, through: str, seed, seconds, kinds, commands, cap):
    """The fuzz run's JSON (`about` first, then counts, the bad cases and the errors seen) and its markdown table
    beside it; returns the totals.

    Args:
        out: the JSON's path (the markdown goes beside it).
        results: one dict per mutation (run_one's).
        about: what was fuzzed, as the JSON's first keys.
        subject: what was fuzzed, as the markdown says it.
        through: the commands each mutation went through, as the markdown says them.
        seed: the random seed.
        seconds: how long the mutations took.
        kinds: the mutation kinds.
        commands: the commands.
        cap: how many distinct error lines the JSON keeps.
    """
    from edgeseg.host import environment

    table, totals, table_lines = tally(results, kinds, commands)
    summary = {
        **about,
        "mutations": len(results),
        "seed": seed,
        "seconds": round(seconds, 1),
        "totals": totals,
        "by_kind": table,
        "environment": {k: v for k, v in environment().items() if k in ("cpu", "machine", "os", "python")},
        "bad": [r for r in results if any(o in BAD for o in r["outcomes"].values())],
        "errors_seen": sorted({e.split(": ", 1)[-1][:120] for r in results for e in r["errors"].values()})[:cap],
    }
    atomic_write_text(out, json.dumps(summary, indent=2) + "\n")
    lines = [
        f"{len(results)} mutations of {subject} (seed {seed}), each through {through}; {seconds / 60:.1f} min. "
        "Outcomes per command run:",
        "",
        *table_lines,
    ]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(lines[-1])
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return totals


def run_one(i: int, kind: str, path: Path, data_dir: Path, timeout: float) -> dict:
    t0 = time.time()
    hung = False
    try:
        p = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(data_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        stdout, code = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        stdout, code, hung = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), None, True
    stdout = stdout.replace(f"{path.parent}{os.sep}", "")  # messages name the mutant, not this run's temp folder
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


def onnx_model(path: Path) -> Path:
    """A small ONNX segmentation model (float32 RGB 0..255 in, 11 class scores out, NHWC) with an edgeseg spec in
    its metadata, built with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeseg.spec import ModelSpec

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.1, (16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.1, (11, 16, 1, 1)).astype(np.float32), "w2")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"]),
        helper.make_node("Resize", ["c2", "", "scales"], ["up"], mode="linear"),
        helper.make_node("Transpose", ["up"], ["scores"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "fuzz",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 64, 96, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 64, 96, 11])],
        [w1, w2, scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec(input_hw=(64, 96), classes=tuple(f"c{k}" for k in range(11)), std=(255.0,) * 3)
    model.metadata_props.add(key="edgeseg_spec", value=spec.to_json())
    onnx.save(model, path)
    return path


def onnx_ranges(buf: bytes) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(the spec JSON's byte range, the weights' raw data ranges) of a serialised ONNX model."""
    import onnx

    proto = onnx.load_from_string(buf)
    spec = next(p.value for p in proto.metadata_props if p.key == "edgeseg_spec").encode()
    start = buf.index(spec)
    weights = []
    for t in proto.graph.initializer:
        if len(t.raw_data) >= 64:
            at = buf.index(t.raw_data)
            weights.append((at, at + len(t.raw_data)))
    return (start, start + len(spec)), weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "edgeseg" / "assets" / "camvid_small_int8.tflite")
    ap.add_argument("--onnx", action="store_true", help="fuzz an ONNX model (built here) instead")
    ap.add_argument("--mutations", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per mutation (all four commands)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/fuzz_tflite.json (or _onnx)")
    args = ap.parse_args()
    args.out = args.out or ROOT / "benchmarks" / "results" / f"fuzz_{'onnx' if args.onnx else 'tflite'}.json"

    from edgeseg.synthetic import write_dataset
    from edgeseg.tflite_file import read_spec_json

    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-fuzz-") as tmp:
        tmp = Path(tmp)
        if args.onnx:
            args.model = onnx_model(tmp / "fuzz.onnx")
            buf = args.model.read_bytes()
            spec_range, weights = onnx_ranges(buf)
        else:
            buf = args.model.read_bytes()
            spec = read_spec_json(buf)
            if not spec:
                sys.exit(f"{args.model}: carries no edgeseg spec to mutate")
            start = buf.index(spec)
            spec_range, weights = (start, start + len(spec)), weight_ranges(buf)
        data_dir = tmp / "data"  # 11 generated classes, as many as the model predicts
        write_dataset(data_dir, count=2, hw=(48, 64), seed=3)
        info = json.loads((data_dir / "classes.json").read_text())
        info["classes"] = [f"c{k}" for k in range(11)]
        info["colours"] = [[k * 20, 0, 0] for k in range(11)]
        (data_dir / "classes.json").write_text(json.dumps(info))
        jobs = []
        for i in range(args.mutations):
            kind = KINDS[i % len(KINDS)]
            data, offsets = mutate(buf, kind, rng, spec_range, weights)
            path = tmp / f"m{i:04d}{args.model.suffix}"
            path.write_bytes(data)
            jobs.append((i, kind, path, offsets))
        t0 = time.time()
        with ThreadPoolExecutor(args.workers) as pool:
            futures = [pool.submit(run_one, i, kind, path, data_dir, args.timeout) for i, kind, path, _ in jobs]
            for n, (f, (_, _, path, offsets)) in enumerate(zip(futures, jobs, strict=True), 1):
                r = f.result()
                r["offsets"] = offsets
                results.append(r)
                path.unlink(missing_ok=True)
                bad = [c for c, o in r["outcomes"].items() if o in BAD]
                print(
                    f"[{n}/{len(jobs)}] {r['kind']:<9} "
                    + " ".join(f"{c}={o}" for c, o in r["outcomes"].items())
                    + (f"  <-- {bad}" if bad else ""),
                    flush=True,
                )
        seconds = time.time() - t0

    what = "a small ONNX model built by onnx_model()" if args.onnx else os.path.relpath(args.model, ROOT)
    totals = write_results(
        args.out, results, {"model": what}, f"`{what}`", ", ".join(COMMANDS), args.seed, seconds, KINDS, COMMANDS, 80
    )
    sys.exit(1 if totals["traceback"] or totals["signal"] or totals["hang"] else 0)


if __name__ == "__main__":
    main()
