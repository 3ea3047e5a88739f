"""What publishing costs the camera loop: its FPS with no sink, with a live MQTT broker, and with the broker killed
(issue 36: a dead broker must cost the loop no FPS: at least 0.95 of the FPS with no sink).

The loop runs flat out on generated 640x480 frames (a file-like source: every frame in order, nothing paced), so
any work publishing adds on the loop's threads shows; a camera at 30 FPS would hide it. The conditions are
interleaved round by round (the order turned each round), so drift in the machine's load hits them alike, and
medians are reported. "dead": the sink connects to a real mosquitto (tests/broker.py, the tests' own broker), then
the broker is stopped, and the round runs while paho reconnects with back-off and QoS 1 messages pile up in its
bounded queue (then dropped and counted).

    python benchmarks/publish_overhead.py [--model nano] [--frames 400] [--rounds 7]

Writes benchmarks/results/publish_overhead.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.assets import resolve_model  # noqa: E402
from edgeseg.camera.loop import LoopOptions, run_loop  # noqa: E402
from edgeseg.camera.sinks import SinkOptions, open_sinks  # noqa: E402
from edgeseg.camera.sources import SyntheticSource  # noqa: E402
from edgeseg.host import environment  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402
from edgeseg.models import open_model  # noqa: E402
from tests.broker import MOSQUITTO, Broker  # noqa: E402

CONDITIONS = ("none", "live", "dead")


def lscpu_model() -> str | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), None)


def one_round(model, condition: str, broker: Broker, frames: int) -> dict:
    sinks = []
    if condition != "none":
        broker.start()
        sinks = open_sinks(publish=broker.url(), opts=SinkOptions(qos=1, log=lambda *_: None))
        if condition == "dead":
            broker.stop()
    src = SyntheticSource((480, 640), frames=frames)
    try:
        stats = run_loop(model, src, LoopOptions(log=lambda *_: None, sinks=sinks)).to_dict()
    finally:
        broker.stop()
    sink = stats["sinks"][0] if stats["sinks"] else {}
    return {"fps": stats["fps"], "sent": sink.get("sent", 0), "dropped": stats["messages_dropped"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "publish_overhead")
    args = ap.parse_args()
    if MOSQUITTO is None:
        sys.exit("needs Debian's mosquitto (apt-get install mosquitto)")
    model = open_model(resolve_model(args.model))
    runs = {c: [] for c in CONDITIONS}
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker")
        one_round(model, "none", broker, 60)  # warm-up: the interpreter, the caches, the first-frame costs
        for r in range(args.rounds):
            order = CONDITIONS if r % 2 == 0 else CONDITIONS[::-1]
            for c in order:
                runs[c].append(one_round(model, c, broker, args.frames))
                print(f"round {r + 1} {c:<5} {runs[c][-1]['fps']:7.1f} FPS", flush=True)
    med = {c: float(np.median([x["fps"] for x in runs[c]])) for c in CONDITIONS}
    # each round's conditions ran back to back: their ratio within the round cancels the load's slow drift
    paired = {
        c: float(np.median([x["fps"] / n["fps"] for x, n in zip(runs[c], runs["none"], strict=True)]))
        for c in CONDITIONS
    }
    env = environment()
    result = {
        "model": args.model,
        "frames_per_round": args.frames,
        "rounds": args.rounds,
        "frame_hw": [480, 640],
        "cpu": lscpu_model() or env["cpu"],
        "environment": env,
        "median_fps": med,
        "ratio_dead_to_none": med["dead"] / med["none"],
        "ratio_live_to_none": med["live"] / med["none"],
        "paired_ratio_median": paired,
        "runs": runs,
        "command": "python benchmarks/publish_overhead.py " + " ".join(sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    md = [
        "# Publishing overhead: loop FPS with no sink, a live MQTT broker, and a killed one",
        "",
        f"{result['cpu']}, {env['cores']} cores; model {args.model}; {args.frames} generated 640x480 frames a round, "
        f"{args.rounds} interleaved rounds, QoS 1; medians. `{result['command'].strip()}`",
        "",
        "| condition | median FPS | ratio of medians | median of per-round ratios | FPS per round |",
        "|---|---:|---:|---:|---|",
    ]
    for c in CONDITIONS:
        per = ", ".join(f"{x['fps']:.0f}" for x in runs[c])
        md.append(f"| {c} | {med[c]:.1f} | {med[c] / med['none']:.3f} | {paired[c]:.3f} | {per} |")
    dead = runs["dead"]
    md += [
        "",
        f"Dead broker: {sum(x['sent'] for x in dead)} results published into paho's queue (it holds 1000 for the "
        f"reconnect), {sum(x['dropped'] for x in dead)} counted as dropped at the end of the rounds (no reconnect "
        "came). The ratio includes making each frame's result (class shares, JSON) on the loop's render thread.",
    ]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
