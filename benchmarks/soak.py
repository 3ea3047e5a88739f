"""Soak: run the camera loop for many frames from a synthetic source and watch resident memory.

    python benchmarks/soak.py MODEL.tflite [--frames 12000] [--size 640x480]

RSS is read from /proc/self/statm every 500 frames; growth is measured from the sample after the first
1,000 frames (interpreter, threads and buffers warmed up) to the end. Target: < 10 MB.
Writes benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeseg.camera.loop import LoopOptions, run_loop  # noqa: E402
from edgeseg.camera.sources import SyntheticSource  # noqa: E402
from edgeseg.host import rss_mb  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402
from edgeseg.limits import parse_wh  # noqa: E402
from edgeseg.predictors.tflite import Segmenter  # noqa: E402


class Counting(SyntheticSource):
    def __init__(self, *a, samples: list, **k):
        super().__init__(*a, **k)
        self.samples = samples

    def read(self):
        if self.t % 500 == 0:
            self.samples.append((self.t, rss_mb(), threading.active_count()))
        return super().read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--frames", type=int, default=12000)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "soak.json")
    args = ap.parse_args()
    h, w = parse_wh(args.size, "--size")
    samples: list = []
    seg = Segmenter(args.model, threads=args.threads)
    src = Counting((h, w), frames=args.frames, samples=samples)
    t0 = time.perf_counter()
    stats = run_loop(seg, src, LoopOptions(log=lambda *_: None))
    wall = time.perf_counter() - t0
    samples.append((stats.frames, rss_mb(), threading.active_count()))
    base = next(s for s in samples if s[0] >= 1000)
    growth = samples[-1][1] - base[1]
    result = {
        "model": str(args.model),
        "frames": stats.frames,
        "frame_size": args.size,
        "seconds": round(wall, 1),
        "fps": stats.frames / wall,
        "rss_mb_after_1000": round(base[1], 2),
        "rss_mb_end": round(samples[-1][1], 2),
        "rss_growth_mb": round(growth, 2),
        "max_rss_mb": round(max(s[1] for s in samples), 2),
        "threads_at_end": samples[-1][2],
        "samples": [[f, round(r, 2), t] for f, r, t in samples],
        "target_growth_mb": 10,
        "passed": growth < 10,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(
        f"{stats.frames} frames in {wall:.1f} s ({stats.frames / wall:.0f} FPS); RSS {base[1]:.1f} MB after 1,000 "
        f"frames -> {samples[-1][1]:.1f} MB at the end: growth {growth:+.2f} MB (target < 10 MB)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
