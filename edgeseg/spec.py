"""ModelSpec: the one contract between train, convert and run.

A spec says what a model is: its input size, its classes with names and colours, how pixels are normalised,
which backbone it was built on. It travels with every artifact: as `spec.json` beside a .keras model and
inside a .tflite as flatbuffer metadata, so `run`, `bench` and `eval` need no flags to know a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgeseg.errors import ModelError

SPEC_FORMAT = "edgeseg-spec/1"

# Distinct, saturated colours (RGB) for classes that come without colours of their own.
_DEFAULT_COLOURS = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0),
    (255, 215, 180), (0, 0, 128), (128, 128, 128),
]


def default_colours(n: int) -> list[tuple[int, int, int]]:
    """n RGB colours: a fixed table first, then a deterministic golden-ratio walk around the hue circle."""
    colours = list(_DEFAULT_COLOURS[:n])
    i = len(colours)
    while len(colours) < n:
        hue = (i * 0.618033988749895) % 1.0
        h6 = hue * 6
        c, x = 220, int(220 * (1 - abs(h6 % 2 - 1)))
        colours.append([(c, x, 40), (x, c, 40), (40, c, x), (40, x, c), (x, 40, c), (c, 40, x)][int(h6) % 6])
        i += 1
    return colours


@dataclass(frozen=True)
class ModelSpec:
    """What a segmentation model is. Sizes are (height, width): numpy order."""

    input_hw: tuple[int, int]
    classes: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...] = ()  # RGB, one per class
    ignore_index: int | None = None  # label value that is not a class (void); never predicted
    # real_input = (pixel - mean) / std, pixel in 0..255, per channel in `channel_order`.
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    resize: str = "stretch"  # or "letterbox"
    backbone: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.input_hw) != 2 or min(self.input_hw) <= 0:
            raise ModelError(f"spec: input_hw must be two positive sizes, got {self.input_hw}")
        if not self.classes:
            raise ModelError("spec: a model needs at least one class")
        if self.channel_order not in ("RGB", "BGR"):
            raise ModelError(f"spec: channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.resize not in ("stretch", "letterbox"):
            raise ModelError(f"spec: resize must be stretch or letterbox, got {self.resize!r}")
        object.__setattr__(self, "input_hw", tuple(int(v) for v in self.input_hw))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        colours = tuple(tuple(int(v) for v in c) for c in self.colours) or tuple(default_colours(len(self.classes)))
        if len(colours) != len(self.classes):
            raise ModelError(f"spec: {len(self.classes)} classes but {len(colours)} colours")
        object.__setattr__(self, "colours", colours)
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        object.__setattr__(self, "std", _triple(self.std, "std"))
        if any(s == 0 for s in self.std):
            raise ModelError("spec: std must not be zero")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_input_hw(self, input_hw: tuple[int, int]) -> ModelSpec:
        return replace(self, input_hw=tuple(input_hw))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["format"] = SPEC_FORMAT
        d["input_hw"] = list(self.input_hw)
        d["classes"] = list(self.classes)
        d["colours"] = [list(c) for c in self.colours]
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        fmt = d.get("format", SPEC_FORMAT)
        if not str(fmt).startswith("edgeseg-spec/"):
            raise ModelError(f"spec: unknown format {fmt!r}")
        try:
            return cls(
                input_hw=tuple(d["input_hw"]),
                classes=tuple(d["classes"]),
                colours=tuple(tuple(c) for c in d.get("colours", ())),
                ignore_index=d.get("ignore_index"),
                mean=tuple(d.get("mean", (0.0, 0.0, 0.0))),
                std=tuple(d.get("std", (1.0, 1.0, 1.0))),
                channel_order=d.get("channel_order", "RGB"),
                resize=d.get("resize", "stretch"),
                backbone=d.get("backbone", ""),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"spec: malformed ({e})") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ModelError(f"spec: not valid JSON ({e})") from None

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as e:
            raise ModelError(f"{path}: cannot read spec ({e.strerror})") from None

    def save(self, path: Path) -> Path:
        from edgeseg.io import atomic_write_text

        return atomic_write_text(Path(path), self.to_json() + "\n")


def _triple(v, name: str) -> tuple[float, float, float]:
    if isinstance(v, (int, float)):
        v = (v, v, v)
    v = tuple(float(x) for x in v)
    if len(v) == 1:
        v = v * 3
    if len(v) != 3:
        raise ModelError(f"spec: {name} needs 1 or 3 values, got {len(v)}")
    return v


def spec_path_for(model_path: Path) -> Path:
    """Where the spec of a .keras model lives: `spec.json` beside it, or `<stem>.spec.json`."""
    model_path = Path(model_path)
    named = model_path.with_name(model_path.stem + ".spec.json")
    return named if named.exists() else model_path.with_name("spec.json")
