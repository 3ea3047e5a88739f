"""The realtime loop: frames in, masks out, overlay shown / recorded, stats at the end."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from camera.sources import FrameSource
from edgeseg.bench import summarise
from edgeseg.errors import SourceError
from edgeseg.io import atomic_path
from edgeseg.overlay import blend, draw_hud, draw_legend, palette_bgr


@dataclass
class LoopOptions:
    show: bool = True
    record: Path | None = None
    max_frames: int | None = None
    alpha: float = 0.5
    legend: bool = True


@dataclass
class LoopStats:
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    stages_ms: dict = field(default_factory=lambda: {"capture": [], "preprocess": [], "invoke": [],
                                                      "postprocess": [], "render": []})

    def to_dict(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 3), "interrupted": self.interrupted,
                "fps": self.frames / self.seconds if self.seconds else None,
                "stages": {k: summarise(v) for k, v in self.stages_ms.items() if v}}


def run_loop(model, source: FrameSource, opts: LoopOptions) -> LoopStats:
    """Segment frames until the source ends, max_frames, a q/Esc key or Ctrl-C (stats.interrupted).

    A recording is written to a temp file and renamed when the loop ends, Ctrl-C included, so it is always
    a complete, playable file; on an error it is discarded.
    """
    lut = palette_bgr(model.spec)
    stats = LoopStats()
    window = "edgeseg" if opts.show else None
    fps_smooth = None
    with contextlib.ExitStack() as stack:
        tmp_record = stack.enter_context(atomic_path(opts.record)) if opts.record else None
        writer = None
        t_start = time.perf_counter()
        try:
            while opts.max_frames is None or stats.frames < opts.max_frames:
                t0 = time.perf_counter_ns()
                frame = source.read()
                t1 = time.perf_counter_ns()
                if frame is None:
                    break
                mask = model.predict(frame)
                t2 = time.perf_counter_ns()
                out = blend(frame, mask, lut, opts.alpha)
                if opts.legend:
                    draw_legend(out, model.spec, np.bincount(mask.ravel(), minlength=model.spec.num_classes) > 0)
                dt = max((t2 - t0) / 1e9, 1e-9)
                fps_smooth = 1 / dt if fps_smooth is None else 0.9 * fps_smooth + 0.1 / dt
                draw_hud(out, [f"{fps_smooth:5.1f} FPS", f"invoke {model.timings.get('invoke', 0):.1f} ms"])
                if tmp_record is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(str(tmp_record), cv2.VideoWriter_fourcc(*"mp4v"),
                                                 source.fps or 30.0, (out.shape[1], out.shape[0]))
                        if not writer.isOpened():
                            raise SourceError(f"{opts.record}: OpenCV cannot write mp4v video here")
                    writer.write(out)
                if window:
                    cv2.imshow(window, out)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
                t3 = time.perf_counter_ns()
                stats.frames += 1
                s = stats.stages_ms
                s["capture"].append((t1 - t0) / 1e6)
                for k in ("preprocess", "invoke", "postprocess"):
                    s[k].append(model.timings.get(k, float("nan")))
                s["render"].append((t3 - t2) / 1e6)
        except KeyboardInterrupt:
            stats.interrupted = True
        finally:
            stats.seconds = time.perf_counter() - t_start
            if writer is not None:
                writer.release()
            if window:
                cv2.destroyAllWindows()
        if stats.frames == 0:
            raise SourceError(f"{source.name}: no frame could be read")
    return stats
