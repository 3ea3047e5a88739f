"""(image, mask) pairs for the layouts users have. numpy, OpenCV and Pillow only, so `eval` runs on a device.

- generic: `images/` and `masks/` with the same file stem (or `train/` and `val/` folders that each hold
  both). Masks are single-channel PNGs of class indices; a binary mask stored as 0/255 reads as 0/1; an
  optional `classes.json` gives names, RGB colours and an ignore index; RGB colour masks map through those
  colours.
- camvid: SegNet's lists `train.txt` / `val.txt` / `test.txt`, one `image mask` pair a line.
- voc: Pascal VOC: `JPEGImages/`, `SegmentationClass/` palette PNGs, `ImageSets/Segmentation/{split}.txt`;
  255 is ignored.
- pack: one file written by `edgeseg pack` (edgeseg.packfile): frames, masks, classes and splits together.

Every failure (unreadable file, sizes that differ, a mask value that is not a class) is a DataError that
names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeseg.choices import FORMATS, SPLITS
from edgeseg.errors import DataError
from edgeseg.images import IMAGE_EXTS, list_images, read_mask
from edgeseg.limits import MAX_JSON_BYTES
from edgeseg.samples import Dataset, Sample

__all__ = ["Dataset", "Sample", "detect_format", "open_dataset"]

CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_COLOURS = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)
CAMVID_VOID = 11

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_colours(n: int = 21) -> tuple[tuple[int, int, int], ...]:
    """Pascal VOC's bit-interleaved colour map."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return tuple(out)


def detect_format(root: Path) -> str:
    """Which layout a dataset has (voc, camvid, coco or generic); DataError when it is none of them."""
    from edgeseg.coco import coco_files
    from edgeseg.packfile import is_pack

    root = Path(root)
    if is_pack(root):
        return "pack"
    if root.is_file() and coco_files(root):
        return "coco"
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder")
    if coco_files(root):
        return "coco"
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        return "voc"
    if any((root / f"{s}.txt").is_file() for s in ("train", "val", "test")):
        return "camvid"
    if (root / "images").is_dir() or (root / "train" / "images").is_dir():
        return "generic"
    raise DataError(
        f"{root}: not a dataset layout edgeseg knows (images/ + masks/, CamVid train.txt/val.txt, Pascal VOC, or "
        "a COCO JSON)"
    )


def open_dataset(root: Path, split: str = "val", format: str = "auto") -> Dataset:
    """The samples of one split of a dataset, with its classes. `split` is train, val, test or all."""
    root = Path(root)
    if format not in FORMATS:
        raise DataError(f"unknown dataset format {format!r}: choose one of {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    fmt = detect_format(root) if format == "auto" else format
    if fmt == "coco":
        from edgeseg.coco import open_coco

        ds = open_coco(root, split)
    else:
        ds = {"generic": _open_generic, "camvid": _open_camvid, "voc": _open_voc, "pack": _open_pack}[fmt](root, split)
    if not ds.samples:
        raise DataError(f"{root}: the {split} split has no samples")
    return ds


def _open_camvid(root: Path, split: str) -> Dataset:
    splits = ("train", "val", "test") if split == "all" else (split,)
    samples = []
    found = False
    for s in splits:
        lst = root / f"{s}.txt"
        if not lst.is_file():
            continue
        found = True
        for n, line in enumerate(lst.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataError(f"{lst}:{n}: expected 'image mask', got {line.strip()!r}")
            samples.append(Sample(_resolve(root, parts[0]), _resolve(root, parts[1])))
    if not found:
        raise DataError(f"{root}: no {split}.txt list")
    return Dataset(root, "camvid", split, samples, CAMVID_CLASSES, CAMVID_COLOURS, CAMVID_VOID)


def _open_pack(root: Path, split: str) -> Dataset:
    """A packed dataset's split: its frames are paths inside the pack (PACK/images/NAME), which
    edgeseg.images reads from it; their names are the source's, so --hold-out's prefixes find the same frames."""
    from edgeseg.packfile import open_pack

    info = open_pack(root)
    samples = [Sample(root / f.image, root / f.mask) for f in info.split(split)]
    return Dataset(root, "pack", split, samples, info.classes, info.colours, info.ignore_index)


def _resolve(root: Path, entry: str) -> Path:
    p = Path(entry)
    if p.is_absolute() and not p.exists():  # SegNet's lists name /SegNet/CamVid/...: keep the part after it
        for k in range(len(p.parts) - 1, 0, -1):
            cand = root.joinpath(*p.parts[k - 1 :])
            if cand.exists():
                return cand
        return root / p.name
    return p if p.is_absolute() else root / p


def _open_voc(root: Path, split: str) -> Dataset:
    sets = root / "ImageSets" / "Segmentation"
    splits = ("train", "val") if split == "all" else (split,)
    samples = []
    for s in splits:
        lst = sets / f"{s}.txt"
        if not lst.is_file():
            raise DataError(f"{root}: no ImageSets/Segmentation/{s}.txt")
        for stem in lst.read_text().split():
            samples.append(Sample(root / "JPEGImages" / f"{stem}.jpg", root / "SegmentationClass" / f"{stem}.png"))
    return Dataset(root, "voc", split, samples, VOC_CLASSES, voc_colours(21), 255)


def _load_classes_json(path: Path) -> dict:
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_JSON_BYTES:
            raise DataError(f"{path}: {len(raw):,} bytes; a classes file may have at most {MAX_JSON_BYTES:,}")
        info = json.loads(raw.decode("utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if isinstance(info, list):
        info = {"classes": info}
    shape = '{"classes": [names...], "colours": [[r,g,b]...], "ignore_index": N}'
    if not isinstance(info, dict) or not isinstance(info.get("classes"), list) or not info["classes"]:
        raise DataError(f"{path}: expected {shape}")
    for i, c in enumerate(info["classes"]):
        if not isinstance(c, str) or not c:
            raise DataError(f"{path}: classes[{i}] must be a name (text), got {c!r:.60}")
    _check_colours(path, info["classes"], info.get("colours") or info.get("colors"))
    ignore = info.get("ignore_index")
    if ignore is not None and not (isinstance(ignore, int) and not isinstance(ignore, bool) and 0 <= ignore <= 255):
        raise DataError(f"{path}: ignore_index must be null or an integer 0..255, got {ignore!r:.60}")
    return info


def _check_colours(path: Path, classes: list, colours) -> None:
    """classes.json's colours: one [r, g, b] (0..255) per class, no two alike (an RGB mask maps colours to
    classes: two classes with one colour would be merged without a word)."""
    if colours is None:
        return
    if not isinstance(colours, list) or len(colours) != len(classes):
        raise DataError(f"{path}: {len(classes)} classes but colours is not a list of as many")
    first: dict[tuple, int] = {}
    for i, c in enumerate(colours):
        if not (isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)):
            raise DataError(f"{path}: colours[{i}] must be three integers 0..255, got {c!r:.60}")
        j = first.setdefault(tuple(c), i)
        if j != i:
            raise DataError(
                f"{path}: classes {classes[j]!r} and {classes[i]!r} share the colour {c}: "
                "a colour mask could not tell them apart"
            )


def _generic_pairs(images_dir: Path, masks_dir: Path) -> list[Sample]:
    if not masks_dir.is_dir():
        raise DataError(f"{masks_dir}: no masks folder beside {images_dir.name}/")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    samples = []
    missing = []
    for img in list_images(images_dir):
        m = masks.get(img.stem)
        if m is None:
            missing.append(img.name)
        else:
            samples.append(Sample(img, m))
    if missing:
        raise DataError(f"{images_dir}: {len(missing)} image(s) have no mask in {masks_dir.name}/, e.g. {missing[0]}")
    return samples


VAL_EVERY = 10  # generic layout without split folders: every 10th image (sorted by name) is validation


def _open_generic(root: Path, split: str) -> Dataset:
    if (root / "train" / "images").is_dir():
        parts = ("train", "val", "test") if split == "all" else (split,)
        samples = []
        for s in parts:
            if (root / s / "images").is_dir():
                samples += _generic_pairs(root / s / "images", root / s / "masks")
            elif split != "all":
                raise DataError(f"{root}: no {s}/images folder")
    else:
        all_samples = _generic_pairs(root / "images", root / "masks")
        if split == "all" or len(all_samples) < 2:
            samples = all_samples
        elif split == "val":
            samples = all_samples[VAL_EVERY - 1 :: VAL_EVERY] or all_samples[-1:]
        elif split == "train":
            val = set(all_samples[VAL_EVERY - 1 :: VAL_EVERY] or all_samples[-1:])
            samples = [s for s in all_samples if s not in val]
        else:
            raise DataError(f"{root}: no test split (use train/, val/ and test/ folders)")
    cj = root / "classes.json"
    if cj.is_file():
        info = _load_classes_json(cj)
        classes = tuple(str(c) for c in info["classes"])
        colours = tuple(tuple(int(v) for v in c) for c in (info.get("colours") or info.get("colors") or ()))
        ignore = info.get("ignore_index")
        colour_masks = bool(colours)
        binary = len(classes) == 2 and ignore != 255
    else:  # inferred from every mask of the dataset, so that all splits agree
        everything = samples if split == "all" else _open_generic(root, "all").samples
        classes, colours, ignore, colour_masks, binary = _infer_classes(everything)
    return Dataset(
        root,
        "generic",
        split,
        samples,
        classes,
        colours,
        ignore,
        binary_255=binary,
        extra={"colour_masks": colour_masks},
    )


def _infer_classes(samples: list[Sample]):
    """No classes.json: count the classes from the masks (0/255 only -> binary background/foreground)."""
    seen = np.zeros(256, dtype=bool)
    for s in samples[:2000]:
        m = read_mask(s.mask)
        seen[np.unique(m)] = True
    values = np.flatnonzero(seen)
    if set(values.tolist()) <= {0, 255}:
        return ("background", "foreground"), (), None, False, True
    n = int(values.max()) + 1
    return tuple(f"class_{i}" for i in range(n)), (), None, False, False
