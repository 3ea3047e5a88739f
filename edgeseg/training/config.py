"""TrainConfig: the settings of a training run, checked against edgeseg.choices before any data is read, and the
augmentation settings. No TensorFlow here: the CLI builds and checks a config before training imports it."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edgeseg.choices import (
    BACKBONES,
    BACKENDS,
    DECODERS,
    FORMATS,
    KD_MODES,
    KEEP,
    LOSSES,
    SPLITS,
    STRATEGIES,
    TEACHER_VIEWS,
    check_choice,
)
from edgeseg.errors import EdgesegError, first_sentence
from edgeseg.io import read_bounded
from edgeseg.limits import MAX_JSON_BYTES

CONFIG_FILE = "config.json"  # the settings a run started with, beside model.keras
PATH_FIELDS = ("data", "val_data", "weights", "init", "teacher")  # written relative to the run folder


@dataclass(frozen=True)
class Augment:
    """Training augmentation: a random scale range (then a crop to the input size), horizontal flips, and colour
    jitter (brightness, contrast, saturation; hue a tenth of it)."""

    scale: tuple[float, float] = (0.75, 1.5)
    flip: bool = True
    jitter: float = 0.2

    @classmethod
    def none(cls) -> Augment:
        """No augmentation at all."""
        return cls(scale=(1.0, 1.0), flip=False, jitter=0.0)

    def check(self) -> None:
        """EdgesegError unless the scale is two numbers 0 < low <= high <= 4, flip a bool and jitter in 0..1."""
        s = self.scale
        ok = isinstance(s, tuple | list) and len(s) == 2 and all(_positive(v) for v in s) and s[0] <= s[1] <= 4
        if not ok or not isinstance(self.flip, bool) or not (_positive(self.jitter) or self.jitter == 0):
            raise EdgesegError(f"augment {self!r}: scale LOW,HIGH with 0 < LOW <= HIGH <= 4, flip true or false")
        if self.jitter > 1:
            raise EdgesegError(f"augment jitter {self.jitter!r}: at most 1")


def parse_class_weights(text: str | None) -> str | tuple[float, ...]:
    """--class-weights: "none", "median" (median-frequency balancing) or comma-separated weights, each finite and
    >= 0 with at least one > 0 (a NaN, infinite or all-zero weight trains a model of NaNs)."""
    if text in (None, "", "none"):
        return "none"
    if text == "median":
        return "median"
    try:
        w = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise EdgesegError(f"class weights: expected none, median or numbers like 1,2.5,1, got {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in w) or not any(v > 0 for v in w):
        raise EdgesegError(f"class weights {text!r}: each must be a finite number >= 0, and one at least > 0")
    return w


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@dataclass
class TrainConfig:
    """Everything a training run is started with; saved as config.json in the run folder for --resume. Checked
    when made (check()), so a wrong choice is one line before any data is read."""

    data: str
    out: str
    format: str = "auto"
    input_hw: tuple[int, int] | str = (224, 224)  # (height, width), or "WxH" as the CLI's --size
    backbone: str = "mobilenet_v2"
    alpha: float = 1.0
    decoder: str = "base"
    weights: str | None = None
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    class_weights: str = "none"  # none | median | comma-separated list
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    val_data: str | None = None
    val_every: int = 1
    train_splits: tuple[str, ...] = ("train",)  # merged for training (the published CamVid protocol: train,val)
    hold_out: tuple[str, ...] = ()  # file-name prefixes (sequences) held out of training to validate on
    keep: str = "auto"  # auto | best | last (edgeseg.training.protocol)
    init: str | None = None  # a .keras model to start from (its weights where names and shapes match)
    loss: str = "ce"  # ce | ohem (edgeseg.training.objective)
    teacher: str | None = None  # a trained .keras model (or nano, small) to distil from
    kd_weight: float = 0.5  # the distillation term's share of the loss
    kd_temperature: float = 2.0
    kd_mode: str = "pixel"  # pixel | channel: what the distillation term matches (edgeseg.training.objective)
    teacher_view: str = "frame"  # frame | student: what a teacher sees (edgeseg.training.augment)
    aux_weight: float = 0.0  # an auxiliary head on the encoder's stride-16 feature, training only (0: none)
    ema: float = 0.0  # momentum of an exponential moving average of the weights, per step (0: none)
    backend: str | None = None  # tensorflow | jax | torch; None: the one this process's Keras runs on
    strategy: str = "auto"  # auto | none | mirrored | multiworker (edgeseg.training.backends)
    mixed_precision: bool | None = None  # None: bf16 or fp16 on GPUs that compute it fast, off on the CPU
    jit_compile: bool | None = None  # XLA; None: the backend's default (on for jax, off for tensorflow and torch)

    def __post_init__(self) -> None:
        if isinstance(self.input_hw, str):  # "WxH", as the CLI's --size writes it: (height, width) here
            from edgeseg.limits import parse_wh

            object.__setattr__(self, "input_hw", parse_wh(self.input_hw, "input_hw"))
        self.check()

    def check(self) -> None:
        """Every field within its choices and ranges (EdgesegError naming the field otherwise)."""
        check_choice(self.format, FORMATS, "dataset format")
        check_choice(self.backbone, BACKBONES, "backbone")
        check_choice(self.decoder, DECODERS, "decoder")
        check_choice(self.strategy, STRATEGIES, "strategy")
        if self.backend is not None:
            check_choice(self.backend, BACKENDS, "backend")
        check_choice(self.keep, KEEP, "keep")
        check_choice(self.loss, LOSSES, "loss")
        self._check_extras()
        if not self.train_splits:
            raise EdgesegError("train_splits: name at least one split")
        for split in self.train_splits:
            check_choice(split, SPLITS, "split")
        if not all(isinstance(p, str) and p.strip() for p in self.hold_out):
            raise EdgesegError(f"hold_out: {self.hold_out!r} must be non-empty file-name prefixes")
        h, w = self.input_hw
        if h % 32 or w % 32 or h < 32 or w < 32:
            raise EdgesegError(f"input size {w}x{h} (WxH): both sides must be multiples of 32")
        for name in ("epochs", "batch_size", "val_every"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise EdgesegError(f"{name}: {getattr(self, name)!r} is not a whole number >= 1")
        if not _positive(self.lr) or not (_positive(self.alpha) and self.alpha <= 4):
            raise EdgesegError(f"lr {self.lr!r} and alpha {self.alpha!r} must be finite, positive (alpha <= 4)")
        if not (_positive(self.weight_decay) or self.weight_decay == 0):
            raise EdgesegError(f"weight_decay {self.weight_decay!r}: a finite number >= 0")
        parse_class_weights(self.class_weights)
        if not isinstance(self.augment, Augment):
            raise EdgesegError(f"augment: {self.augment!r} is not augmentation settings")
        self.augment.check()
        for name in ("data", "out"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise EdgesegError(f"{name}: {getattr(self, name)!r} must be a path")

    def _check_extras(self) -> None:
        """The training extras: distillation, the auxiliary head, the weights' moving average."""
        if not (_positive(self.kd_temperature) and isinstance(self.kd_weight, int | float) and 0 <= self.kd_weight < 1):
            raise EdgesegError(f"kd_weight {self.kd_weight!r} must be in 0..1 (below 1), kd_temperature positive")
        check_choice(self.teacher_view, TEACHER_VIEWS, "teacher view")
        check_choice(self.kd_mode, KD_MODES, "kd mode")
        if not (isinstance(self.aux_weight, int | float) and 0 <= self.aux_weight <= 1):
            raise EdgesegError(f"aux_weight {self.aux_weight!r} must be in 0..1")
        if self.aux_weight and self.backbone == "none":
            raise EdgesegError("aux_weight: the classic U-Net (backbone none) has no encoder to put a head on")
        if not (_positive(self.ema) or self.ema == 0) or isinstance(self.ema, bool) or self.ema >= 1:
            raise EdgesegError(f"ema {self.ema!r}: a momentum in 0..1 (below 1; 0 is no average)")

    def to_dict(self, relative_to: Path | None = None) -> dict:
        """The settings as JSON values (config.json). With `relative_to` (the run folder), the paths that exist
        are written relative to it, so that --resume finds them from any working folder."""
        d = asdict(self)
        d["input_hw"] = list(self.input_hw)
        if relative_to is not None:
            for key in PATH_FIELDS:
                if d.get(key) and Path(d[key]).exists():
                    d[key] = os.path.relpath(Path(d[key]).resolve(), Path(relative_to).resolve())
            d["out"] = "."
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The inverse of to_dict (JSON lists back to tuples); unknown or missing keys are an EdgesegError."""
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) - known:
            extra = sorted(set(d) - known) if isinstance(d, dict) else []
            raise EdgesegError(
                f"training settings: unknown keys {extra}" if extra else "training settings: not a JSON object"
            )
        d = dict(d)
        d.setdefault("teacher_view", "student")  # a run from before the option: its teacher saw the student's crop
        try:
            if "input_hw" in d:
                d["input_hw"] = tuple(int(v) for v in d["input_hw"])
            for key in ("train_splits", "hold_out"):
                if isinstance(d.get(key), list):
                    d[key] = tuple(d[key])
            if isinstance(d.get("augment"), dict):
                d["augment"] = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["augment"].items()})
            return cls(**d)
        except (TypeError, ValueError, OverflowError) as e:
            raise EdgesegError(f"training settings: {type(e).__name__}: {first_sentence(str(e))}") from None

    @classmethod
    def load(cls, run_dir: Path) -> TrainConfig:
        """The settings a run in `run_dir` was started with (its config.json), for --resume."""
        path = Path(run_dir) / CONFIG_FILE
        if not path.is_file():
            raise EdgesegError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        try:
            d = json.loads(read_bounded(path, MAX_JSON_BYTES, "training settings"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise EdgesegError(f"{path}: unreadable ({type(e).__name__}: {str(e)[:120]})") from None
        if isinstance(d, dict):  # paths were written relative to the run folder (to_dict)
            d = dict(d, out=str(run_dir))
            for key in PATH_FIELDS:
                if isinstance(d.get(key), str) and not Path(d[key]).is_absolute():
                    joined = Path(run_dir) / d[key]
                    d[key] = os.path.normpath(joined) if joined.exists() else d[key]
        try:
            return cls.from_dict(d)
        except EdgesegError as e:
            raise EdgesegError(f"{path}: {e}") from None


def resolve_init(init: str) -> tuple[Path, dict]:
    """--init's model file (a shipped name, nano or small, or a .keras path) and the architecture its spec
    records: {"backbone", "alpha", "decoder", "input_hw"} (those it records; EdgesegError when there is no model
    or no spec)."""
    from edgeseg.assets import SHIPPED_KERAS, shipped_keras
    from edgeseg.spec import ModelSpec, spec_path_for

    if init in SHIPPED_KERAS and not Path(init).exists():
        path = shipped_keras(init)
        if path is None:
            raise EdgesegError(f"--init {init}: the shipped Keras model ({SHIPPED_KERAS[init]}) is not in this install")
    else:
        path = Path(init)
        if path.suffix != ".keras" or not path.is_file():
            raise EdgesegError(f"--init {init}: give a shipped model (nano, small) or a .keras file")
    spec_file = spec_path_for(path)
    if not spec_file.is_file():
        raise EdgesegError(f"--init {init}: no spec beside {path.name} ({spec_file.name})")
    spec = ModelSpec.load(spec_file)
    arch: dict = {"input_hw": tuple(spec.input_hw)}
    name, _, alpha = spec.backbone.rpartition("_")
    if name in BACKBONES:
        arch.update(backbone=name, alpha=float(alpha))
    if spec.decoder in DECODERS:
        arch["decoder"] = spec.decoder
    return path, arch
