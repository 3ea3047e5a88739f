"""ModelSpec: the one contract between train, convert and run.

A spec says what a model is: its input size, its classes with names and colours, how pixels are normalised,
which backbone it was built on. It travels with every artifact: as `spec.json` beside a .keras model and
inside a .tflite as flatbuffer metadata, so `run`, `bench` and `eval` need no flags to know a model.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgeseg.errors import ModelError

SPEC_FORMAT = "edgeseg-spec/1"

# Distinct, saturated colours (RGB) for classes that come without colours of their own.
_DEFAULT_COLOURS = [
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
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
    backbone: str = ""  # the encoder and its width, e.g. mobilenet_v2_1
    decoder: str = ""  # the decoder preset, e.g. dense or nano
    # the dataset it was trained on (convert calibrates on it by default), relative to the folder of the model and
    # its spec.json so that a run folder can move with its data; train_data_from() resolves it
    train_data: str | None = None
    dataset_format: str | None = None  # that dataset's layout: generic, camvid or voc
    val_miou: float | None = None  # the best validation mIoU of its training run (0..1)
    extra: dict = field(default_factory=dict, compare=False)  # anything else a tool wants to carry

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
        """How many classes the model predicts."""
        return len(self.classes)

    def with_input_hw(self, input_hw: tuple[int, int]) -> ModelSpec:
        """The same spec at another input size."""
        return replace(self, input_hw=tuple(input_hw))

    def train_data_from(self, model_folder: Path | str) -> Path | None:
        """train_data as a path usable from here: joined to the model's folder when it is relative (an absolute
        one, as older specs recorded, is returned as it is)."""
        if not self.train_data:
            return None
        return Path(os.path.normpath(Path(model_folder) / self.train_data))

    def to_dict(self) -> dict:
        """The spec as JSON values, with its format tag."""
        d = asdict(self)
        d["format"] = SPEC_FORMAT
        d["input_hw"] = list(self.input_hw)
        d["classes"] = list(self.classes)
        d["colours"] = [list(c) for c in self.colours]
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def held_out(self) -> tuple[str, ...]:
        """The file-name prefixes the model's run held out of training (train --hold-out), from its protocol."""
        protocol = self.extra.get("protocol") if isinstance(self.extra, dict) else None
        prefixes = protocol.get("hold_out") if isinstance(protocol, dict) else None
        if not isinstance(prefixes, list):
            return ()
        return tuple(p for p in prefixes if isinstance(p, str) and p)

    def trained_on(self, prefixes: tuple[str, ...]) -> bool | None:
        """Whether the model's run may have trained on frames with these file-name prefixes: False when its run
        held every one of them out (train --hold-out), True otherwise, None where the spec records no run."""
        protocol = self.extra.get("protocol") if isinstance(self.extra, dict) else None
        if not isinstance(protocol, dict):
            return None
        held = self.held_out()
        return not all(any(p.startswith(h) for h in held) for p in prefixes)

    def to_json(self) -> str:
        """The spec as JSON text (what travels inside a model)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """A spec from untrusted JSON values: every field checked (ModelError naming the field), old formats
        upgraded.
        """
        validate_spec_dict(d)
        fmt = d.get("format", SPEC_FORMAT)
        if not str(fmt).startswith("edgeseg-spec/"):
            raise ModelError(f"spec: unknown format {fmt!r}")
        d = _upgrade(d)
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
                decoder=d.get("decoder", ""),
                train_data=d.get("train_data"),
                dataset_format=d.get("dataset_format"),
                val_miou=d.get("val_miou"),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"spec: malformed ({e})") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parse a spec from untrusted text (a file, or the metadata of a downloaded .tflite)."""
        if len(text) > MAX_SPEC_BYTES:
            raise ModelError(f"spec: {len(text):,} bytes, more than the {MAX_SPEC_BYTES:,} a spec may have")
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ModelError(f"spec: not UTF-8 text (byte {e.start})") from None
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as e:
            raise ModelError(f"spec: not valid JSON ({e})") from None
        except RecursionError:
            raise ModelError("spec: JSON nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        """A spec from a JSON file (ModelError when it cannot be read, is not a regular file of at most
        MAX_SPEC_BYTES, or is not a spec)."""
        from edgeseg.errors import EdgesegError
        from edgeseg.io import read_bounded

        try:
            text = read_bounded(Path(path), MAX_SPEC_BYTES, "spec")
        except EdgesegError as e:
            raise ModelError(str(e)) from None
        try:
            return cls.from_json(text)
        except ModelError as e:
            raise ModelError(f"{Path(path).name}: {e}") from None

    def save(self, path: Path) -> Path:
        """Write the spec as JSON, atomically; the path written."""
        from edgeseg.io import atomic_write_text

        return atomic_write_text(Path(path), self.to_json() + "\n")


# Limits for a spec read from a file: what a real segmentation model needs, with room to spare.
MAX_SPEC_BYTES = 256 * 1024
MAX_SIDE = 8192
MAX_CLASSES = 1024
MAX_TEXT = 200
MAX_DEPTH = 8


def _no_constant(name: str):
    raise ModelError(f"spec: {name} is not a number JSON allows")


def _depth(v, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(v, dict):
        return max((_depth(x, level + 1) for x in v.values()), default=level + 1)
    if isinstance(v, list):
        return max((_depth(x, level + 1) for x in v), default=level + 1)
    return level


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _bad(field: str, want: str, got) -> ModelError:
    text = repr(got)
    return ModelError(f"spec: {field} must be {want}, got {text[:80] + '...' if len(text) > 80 else text}")


def _text(limit: int):
    return lambda v: v is None or (isinstance(v, str) and len(v) <= limit)


MIN_STD = 1e-6  # a smaller std is 0 or subnormal in float32: the input would become infinite or all zeros

# Optional fields that are one value: (field, check, what it must be).
_SCALAR_FIELDS = (
    ("ignore_index", lambda v: v is None or (_is_int(v) and 0 <= v <= 65535), "null or an integer 0..65535"),
    ("channel_order", lambda v: v in ("RGB", "BGR"), "RGB or BGR"),
    ("resize", lambda v: v in ("stretch", "letterbox"), "stretch or letterbox"),
    ("backbone", _text(MAX_TEXT), f"text of at most {MAX_TEXT} characters"),
    ("format", _text(MAX_TEXT), f"text of at most {MAX_TEXT} characters"),
    ("decoder", _text(MAX_TEXT), f"text of at most {MAX_TEXT} characters"),
    ("dataset_format", _text(MAX_TEXT), f"text of at most {MAX_TEXT} characters"),
    ("train_data", _text(4096), "null or a path of at most 4096 characters"),
    ("val_miou", lambda v: v is None or (_is_number(v) and 0 <= v <= 1), "null or a number 0..1"),
    ("extra", lambda v: isinstance(v, dict), "a JSON object"),
)


def validate_spec_dict(d) -> None:
    """Check a spec's JSON value before use: types, sizes, ranges, finite numbers. ModelError names the field."""
    if not isinstance(d, dict):
        raise _bad("the spec", "a JSON object", type(d).__name__)
    if _depth(d) > MAX_DEPTH:
        raise ModelError(f"spec: nested more than {MAX_DEPTH} levels deep")
    for key in ("input_hw", "classes"):
        if key not in d:
            raise ModelError(f"spec: field {key!r} is missing")
    hw = d["input_hw"]
    if not (isinstance(hw, list | tuple) and len(hw) == 2 and all(_is_int(v) and 0 < v <= MAX_SIDE for v in hw)):
        raise _bad("input_hw", f"two integers 1..{MAX_SIDE}", hw)
    _check_list(d["classes"], "classes", f"a list of 1..{MAX_CLASSES} names", 1, MAX_CLASSES)
    for i, c in enumerate(d["classes"]):
        if not (isinstance(c, str) and 0 < len(c) <= MAX_TEXT and c.isprintable()):
            raise _bad(f"classes[{i}]", f"a printable name of 1..{MAX_TEXT} characters", c)
    _check_list(d.get("colours", []), "colours", "a list of [r, g, b]", 0, MAX_CLASSES)
    for i, c in enumerate(d.get("colours", [])):
        if not (isinstance(c, list | tuple) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c)):
            raise _bad(f"colours[{i}]", "three integers 0..255", c)
    for key, default in (("mean", [0.0]), ("std", [1.0])):
        v = d.get(key, default)
        values = v if isinstance(v, list | tuple) else [v]
        if not (len(values) in (1, 3) and all(_is_number(x) and abs(x) <= 1e6 for x in values)):
            raise _bad(key, "1 or 3 finite numbers", v)
        if key == "std" and any(abs(x) < MIN_STD for x in values):
            raise _bad("std", f"at least {MIN_STD:g} in size (smaller is 0 in float32)", v)
    for key, check, want in _SCALAR_FIELDS:
        if key in d and not check(d[key]):
            raise _bad(key, want, d[key])


def _check_list(v, field: str, want: str, least: int, most: int) -> None:
    if not (isinstance(v, list | tuple) and least <= len(v) <= most):
        raise _bad(field, want, v)


LEGACY_EXTRA = ("train_data", "dataset_format", "val_miou")


def _upgrade(d: dict) -> dict:
    """Specs written before the typed fields (the shipped models' among them) carried train_data,
    dataset_format and val_miou in `extra`, the decoder after a '/' in `backbone`, and `extra["embedded"]`:
    read them into today's fields."""
    d = dict(d)
    extra = dict(d.get("extra") or {})
    for key in LEGACY_EXTRA:
        if key in extra:
            d.setdefault(key, extra.pop(key))
    extra.pop("embedded", None)  # where a spec came from is the predictor's business (spec_source)
    backbone = d.get("backbone") or ""
    if "/" in backbone and not d.get("decoder"):
        d["backbone"], d["decoder"] = backbone.split("/", 1)
    d["extra"] = extra
    return d


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
