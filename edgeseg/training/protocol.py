"""Which frames a run trains on, which it validates on, and how the epoch it keeps is chosen.

A run trains on one or more splits (`--train-splits train,val`, the published CamVid protocol's train+val). Its
validation frames are, in order: whole sequences held out of training (`--hold-out 0006R0`: every frame whose
file name starts with the prefix, from every split, is removed from training and validates), a separate
dataset (`--val-data`), or the dataset's val split. The epoch kept is the best by validation mIoU only when no
validation frame was trained on; otherwise the run keeps its last epoch (a fixed schedule), since picking an
epoch on data the model trained on flatters it. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgeseg.choices import KEEP
from edgeseg.datasets import Dataset, open_dataset
from edgeseg.errors import DataError, EdgesegError


@dataclass(frozen=True)
class Protocol:
    """A run's train and validation frames, and which epoch it keeps.

    Attributes:
        train: the frames it trains on.
        val: the frames it validates on.
        keep: "best" (by validation mIoU) or "last".
        disjoint: no validation frame is a training frame.
        note: one line that says how validation was made and used, for the log and the spec.
    """

    train: Dataset
    val: Dataset
    keep: str
    disjoint: bool
    note: str
    hold_out: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """What the spec records of it (spec.extra["protocol"]): `convert` leaves the held-out frames out of its
        calibration, and `eval --hold-out` scores them."""
        return {
            "hold_out": list(self.hold_out),
            "train_splits": self.train.split,
            "train_frames": len(self.train),
            "val": self.val.split,
            "val_frames": len(self.val),
            "keep": self.keep,
            "disjoint": self.disjoint,
            "note": self.note,
        }


def _merged(root: Path, splits: tuple[str, ...], fmt: str) -> Dataset:
    parts = [open_dataset(root, s, fmt) for s in splits]
    seen: dict[Path, object] = {}
    for part in parts:
        for s in part.samples:
            seen.setdefault(s.image, s)
    return replace(parts[0], split="+".join(splits), samples=list(seen.values()))


def _held(ds: Dataset, prefixes: tuple[str, ...], inside: bool) -> list:
    return [s for s in ds.samples if s.image.name.startswith(prefixes) == inside]


def make_protocol(
    data: Path, fmt: str, train_splits: tuple[str, ...], hold_out: tuple[str, ...], val_data: Path | None, keep: str
) -> Protocol:
    """The run's frames and kept epoch (EdgesegError for a protocol that cannot be kept as asked).

    Args:
        data: the dataset.
        fmt: its layout.
        train_splits: the splits merged for training.
        hold_out: file-name prefixes (sequences) removed from training and used to validate.
        val_data: a separate validation dataset (its val split).
        keep: "auto", "best" or "last".
    """
    if keep not in KEEP:
        raise EdgesegError(f"unknown keep {keep!r}: choose one of {', '.join(KEEP)}")
    if hold_out and train_splits == ("train",):
        # the held-out sequences validate, so the val split is not needed for it and trains too (only a split
        # the dataset has): no frame is left in neither set without a word
        train_splits = tuple(s for s in ("train", "val") if _has_split(Path(data), s, fmt))
    train = _merged(Path(data), train_splits, fmt)
    unused = ""
    if hold_out:
        pool = open_dataset(Path(data), "all", fmt)
        val = replace(pool, split=f"held out {'+'.join(hold_out)}", samples=_held(pool, hold_out, True))
        train = replace(train, samples=_held(train, hold_out, False))
        if not len(val):
            raise EdgesegError(f"--hold-out {','.join(hold_out)}: no frame's file name starts with it")
        how = f"validates on the {len(val)} frames of {', '.join(hold_out)}, held out of training"
        used = {s.image for s in train.samples} | {s.image for s in val.samples}
        left = len(pool) - len(used & {s.image for s in pool.samples})
        if left:
            others = ", ".join(
                s for s in ("train", "val", "test") if s not in train_splits and _has_split(Path(data), s, fmt)
            )
            unused = f"; {left} frames of the splits it does not train on ({others}) are used by neither"
    elif val_data is not None:
        val = open_dataset(Path(val_data), "val", fmt)
        how = f"validates on {val_data}'s val split ({len(val)} frames)"
    else:
        val = open_dataset(Path(data), "val", fmt)
        how = f"validates on the val split ({len(val)} frames)"
    if not len(train):
        raise EdgesegError("no frames left to train on")
    if val.num_classes != train.num_classes:
        raise EdgesegError(f"train has {train.num_classes} classes but val has {val.num_classes}")
    disjoint = not ({s.image.resolve() for s in train.samples} & {s.image.resolve() for s in val.samples})
    if keep == "best" and not disjoint:
        raise EdgesegError(
            "--keep best would pick an epoch on frames the model trains on: hold a sequence out (--hold-out) or "
            "keep the last epoch (--keep last)"
        )
    chosen = keep if keep != "auto" else ("best" if disjoint else "last")
    if chosen == "best":
        how += "; keeps the best epoch by its mIoU"
    elif disjoint:
        how += "; keeps the last epoch (a fixed schedule)"
    else:
        how += ", which it also trains on: keeps the last epoch (a fixed schedule), its val mIoU is not a test"
    note = f"trains on {train.split} ({len(train)} frames), {how}{unused}"
    return Protocol(train, val, chosen, disjoint, note, tuple(hold_out))


def _has_split(root: Path, split: str, fmt: str) -> bool:
    try:
        return len(open_dataset(root, split, fmt)) > 0
    except DataError:
        return False
