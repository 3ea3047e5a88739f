"""Models shipped inside the package: the CamVid family (model cards in docs/models/).

`small` (the default: Pi-5-class CPUs, the Edge TPU, x86) and `nano` (Pi-4-class CPUs without int8 dot
products). `run`, `bench` and `eval` take these names wherever they take a model path.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.errors import ModelError

HERE = Path(__file__).parent
SHIPPED = {"nano": "camvid_nano_int8.tflite", "small": "camvid_small_int8.tflite"}
# The float Keras models the int8 ones were converted from (spec beside each, <stem>.spec.json): what
# `edgeseg train --init nano|small` fine-tunes from.
SHIPPED_KERAS = {"nano": "camvid_nano.keras", "small": "camvid_small.keras"}
DEFAULT_NAME = "small"
DEFAULT_MODEL = SHIPPED[DEFAULT_NAME]


def shipped_model(name: str) -> Path | None:
    """The file of a shipped model by name, or None when this install does not have it."""
    p = HERE / SHIPPED[name]
    return p if p.is_file() else None


def shipped_keras(name: str) -> Path | None:
    """The float Keras model a shipped model was converted from, or None when this install does not have it."""
    p = HERE / SHIPPED_KERAS[name]
    return p if p.is_file() else None


def default_model() -> Path | None:
    """The default shipped model's file (small), or None when this install does not have it."""
    return shipped_model(DEFAULT_NAME)


def resolve_model(text: str | Path) -> Path:
    """A shipped model's name (nano, small) or a path -> an existing model file; ModelError otherwise."""
    text = str(text)
    if text in SHIPPED and not Path(text).exists():
        p = shipped_model(text)
        if p is None:
            raise ModelError(f"the shipped model {text!r} ({SHIPPED[text]}) is not in this install")
        return p
    p = Path(text)
    if not p.is_file():
        names = ", ".join(SHIPPED)
        raise ModelError(
            f"{p}: no such model file ({'a folder, not a file' if p.is_dir() else 'give a path'}, "
            f"or a shipped model: {names})"
        )
    return p
