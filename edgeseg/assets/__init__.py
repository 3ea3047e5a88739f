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
# What each shipped model scores on frames it never trained on: CamVid's test split (233 frames at 480x360, void
# ignored), scored independently of this repository, which does not hold that split (issue 33); `info` leads with it
SHIPPED_SCORES = {
    "nano": ("CamVid test", 54.49, "233 frames, scored independently"),
    "small": ("CamVid test", 58.69, "233 frames, scored independently"),
}
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


def resolve_keras(text: str | Path) -> Path:
    """A shipped model's name (nano, small) or a path -> an existing Keras model file (what `convert` and
    `train --init` start from); ModelError otherwise."""
    return _resolve(text, SHIPPED_KERAS, shipped_keras, "has no Keras weights ({file}) in this install")


def shipped_score(path: str | Path) -> tuple[str, float, str] | None:
    """(where, mIoU in %, how) of a shipped model's held-out score, when `path` is one of the shipped files."""
    for name in SHIPPED:
        if any(Path(path).resolve() == (HERE / f).resolve() for f in (SHIPPED[name], SHIPPED_KERAS[name])):
            return SHIPPED_SCORES[name]
    return None


def inside_package(path: str | Path) -> bool:
    """Whether `path` lies inside the installed edgeseg package (where no command writes its outputs)."""
    try:
        Path(path).resolve().relative_to(HERE.parent.resolve())
    except ValueError:
        return False
    return True


def default_model() -> Path | None:
    """The default shipped model's file (small), or None when this install does not have it."""
    return shipped_model(DEFAULT_NAME)


def resolve_model(text: str | Path) -> Path:
    """A shipped model's name (nano, small) or a path -> an existing model file; ModelError otherwise."""
    return _resolve(text, SHIPPED, shipped_model, "({file}) is not in this install")


def _resolve(text: str | Path, table: dict[str, str], shipped, missing: str) -> Path:
    """`text` as a name in `table` (whose file `shipped(name)` finds, `missing` saying so when it cannot) unless
    a file of that name exists, else as a path to an existing file; ModelError naming what was given."""
    text = str(text)
    if text in table and not Path(text).exists():
        p = shipped(text)
        if p is None:
            raise ModelError(f"the shipped model {text!r} " + missing.format(file=table[text]))
        return p
    p = Path(text)
    if not p.is_file():
        raise ModelError(
            f"{p}: no such model file ({'a folder, not a file' if p.is_dir() else 'give a path'}, "
            f"or a shipped model: {', '.join(table)})"
        )
    return p
