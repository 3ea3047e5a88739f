"""Models shipped inside the package (see README: the CamVid model card)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
DEFAULT_MODEL = "camvid_mnv2_int8.tflite"


def default_model() -> Path | None:
    p = HERE / DEFAULT_MODEL
    return p if p.is_file() else None
