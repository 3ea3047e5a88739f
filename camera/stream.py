"""stream: Results for the frames of a source, from the same pipelined capture as `edgeseg run` (a thread reads
and prepares the next frame while this one runs), for programs that use edgeseg as a library."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from edgeseg.camera.reader import CaptureThread
from edgeseg.camera.sources import open_source
from edgeseg.errors import SourceError
from edgeseg.predictors import Predictor
from edgeseg.result import Result
from edgeseg.zones import Zones


def source_kind(source: int | str | Path) -> dict:
    """open_source's keywords for what a program passes as a source: a camera index, "picamera", or a
    file, folder, glob, URL or "synthetic[:WxH]" (SourceError for anything else, an array included)."""
    if isinstance(source, bool) or not isinstance(source, int | str | Path):
        raise SourceError(
            f"a source is a camera index (int), a file, folder, glob or URL (str or Path), 'picamera' or "
            f"'synthetic[:WxH]', not {type(source).__name__}; for frames you hold, call predict(frame) on each"
        )
    if isinstance(source, int):
        return {"camera": source}
    if source == "picamera":
        return {"picamera": True}
    return {"source": str(source)}


def stream(
    model: Predictor,
    source: int | str | Path,
    *,
    max_frames: int | None = None,
    reconnect: bool = True,
    size_wh: tuple[int, int] | None = None,
    zones: Zones | None = None,
) -> Iterator[Result]:
    """Results for the frames of `source`. A live source yields its newest frame (stale ones are dropped); a
    file yields every frame in order. Stopping the iteration stops the capture thread.

    Args:
        model: the predictor to run.
        source: a camera index (int), a video file, an image folder or glob, an rtsp:// or http:// URL,
            "picamera" (the Raspberry Pi camera), or "synthetic[:WxH]".
        max_frames: stop after this many frames (default: when the source ends).
        reconnect: reopen a live source that stops delivering.
        size_wh: ask a camera for this (width, height).
        zones: zones whose class shares each Result's to_dict() carries (edgeseg.zones.load_zones).
    """
    kind = source_kind(source)
    lores = (model.spec.input_hw[1], model.spec.input_hw[0]) if "picamera" in kind else None
    with open_source(size_wh=size_wh, lores_wh=lores, **kind) as src:
        capture = CaptureThread(src, model.prepare, reconnect, log=lambda *_: None).start()
        try:
            n = 0
            while max_frames is None or n < max_frames:
                item = capture.get(timeout=0.25)
                if item is None:
                    if capture.finished:
                        if capture.error is not None:
                            raise capture.error
                        return
                    continue
                t0 = time.perf_counter_ns()
                out = model.invoke(item.prepared[0])
                t1 = time.perf_counter_ns()
                mask = model.finish(out, item.prepared[1])
                t2 = time.perf_counter_ns()
                wall = time.time() - (t2 - item.t_capture) / 1e9
                timings = {
                    "capture": item.capture_ms,
                    "preprocess": item.prepare_ms,
                    "invoke": (t1 - t0) / 1e6,
                    "postprocess": (t2 - t1) / 1e6,
                }
                yield Result(
                    mask=mask,
                    frame=item.frame,
                    spec=model.spec,
                    timings=timings,
                    index=n,
                    time=wall,
                    source=src.name,
                    model=Path(model.path).name,
                    latency_ms=(t2 - item.t_capture) / 1e6,
                    zones=zones,
                )
                n += 1
        finally:
            capture.stop()
