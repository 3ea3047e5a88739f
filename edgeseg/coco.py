"""COCO-format segmentation datasets: what CVAT, Label Studio and Roboflow export, and COCO itself.

`--data` is a COCO JSON file, or a folder holding one the way the tools write it: CVAT and COCO keep
`annotations/instances_<subset>.json` beside the images (`images/`, or a folder named after the subset), Roboflow
keeps `_annotations.coco.json` beside the images, one folder per split (`train/`, `valid/`, `test/`). A file whose
name holds train, val or valid, test, or a split folder, is that split; a single file is split the way the
generic layout is (every 10th image, by file name, validates).

Each image's semantic mask is rasterised with pycocotools (the `coco` extra): class 0 is background (the pixels
no annotation covers), then the categories in the order of their ids; where annotations overlap, the one listed
later wins; crowd regions (`iscrowd: 1`) become the ignore index 255, ignored in training and scoring.
Everything read from the JSON is checked first: a broken file, a missing image, an annotation outside its image
is one DataError that names the file and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.errors import DataError, missing_extra
from edgeseg.samples import Dataset, Sample

COCO_IGNORE = 255
MAX_COCO_BYTES = 2**30  # COCO 2017's instances_train2017.json is 448 MB
VAL_EVERY = 10
TOLERANCE = 1.0  # pixels an annotation may reach past its image's border (tools round outwards)
ROBOFLOW = "_annotations.coco.json"
SPLIT_WORDS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def coco_files(root: Path) -> dict[str, Path] | None:
    """{split or "all": its COCO JSON} for a COCO file or a folder laid out as the tools write it; None when
    `root` is none of these."""
    root = Path(root)
    if root.is_file():
        return {"all": root} if root.suffix.lower() == ".json" else None
    if not root.is_dir():
        return None
    found: dict[str, Path] = {}
    for path in sorted((root / "annotations").glob("instances_*.json")) if (root / "annotations").is_dir() else []:
        found.setdefault(_split_of(path.stem.removeprefix("instances_")), path)
    if (root / ROBOFLOW).is_file():
        found.setdefault("all", root / ROBOFLOW)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / ROBOFLOW).is_file():
            found.setdefault(_split_of(sub.name), sub / ROBOFLOW)
    return found or None


def _split_of(name: str) -> str:
    low = name.lower()
    for split, words in SPLIT_WORDS.items():
        if any(w == low or low.startswith(w) for w in words):
            return split
    return "all"


@dataclass
class CocoDataset(Dataset):
    """A COCO split: samples are its images; masks are rasterised from the annotations when read."""

    annotations: dict = field(default_factory=dict)  # image path -> (height, width, [annotation, ...])
    category_index: dict = field(default_factory=dict)  # category id -> class index (1..)

    def read_mask(self, path: Path) -> np.ndarray:
        """The semantic mask of the image at `path`, rasterised from its annotations."""
        h, w, anns = self.annotations[Path(path)]
        return rasterise(h, w, anns, self.category_index)


def rasterise(h: int, w: int, anns: list[dict], category_index: dict[int, int]) -> np.ndarray:
    """An H x W uint8 mask: 0 background, each annotation's class where it covers (later ones win), 255 where a
    crowd annotation covers.

    Args:
        h: the image's height.
        w: its width.
        anns: its annotations, in the file's order.
        category_index: category id -> class index.
    """
    try:
        from pycocotools import mask as cocomask
    except ImportError:
        raise missing_extra("pycocotools (for COCO datasets)", "coco") from None
    out = np.zeros((h, w), np.uint8)
    for ann in anns:
        seg = ann["segmentation"]
        if isinstance(seg, list):
            rle = cocomask.merge(cocomask.frPyObjects(seg, h, w))
        elif isinstance(seg.get("counts"), list):
            rle = cocomask.frPyObjects(seg, h, w)
        else:
            rle = seg
        covered = cocomask.decode(rle).astype(bool)
        out[covered] = COCO_IGNORE if ann.get("iscrowd") else category_index[ann["category_id"]]
    return out


def open_coco(root: Path, split: str) -> CocoDataset:
    """One split of a COCO dataset (`all`: every file); DataError naming the file and field for what is wrong."""
    files = coco_files(root)
    if not files:
        raise DataError(f"{root}: no COCO JSON (a .json file, annotations/instances_*.json, or {ROBOFLOW})")
    wanted = list(files) if split == "all" else [split] if split in files else ["all"] if "all" in files else []
    if not wanted:
        raise DataError(f"{root}: no {split} split among its COCO files ({', '.join(sorted(files))})")
    parts = [_read(files[s]) for s in wanted]
    names = parts[0]["classes"]
    for part, s in zip(parts[1:], wanted[1:], strict=True):
        if part["classes"] != names:
            raise DataError(f"{files[s]}: its categories differ from {files[wanted[0]].name}'s")
    annotations = {k: v for part in parts for k, v in part["annotations"].items()}
    samples = [Sample(p, p) for part in parts for p in part["images"]]
    if split != "all" and wanted == ["all"]:  # one file: every 10th image validates, as the generic layout does
        samples.sort(key=lambda s: s.image.name)
        val = set(samples[VAL_EVERY - 1 :: VAL_EVERY] or samples[-1:])
        samples = [s for s in samples if (s in val) == (split == "val")] if split in ("train", "val") else []
        if split == "test":
            raise DataError(f"{root}: no test split (one COCO file: train and val only)")
    from edgeseg.spec import default_colours

    return CocoDataset(
        Path(root),
        "coco",
        split,
        samples,
        names,
        tuple(default_colours(len(names))),
        COCO_IGNORE,
        annotations=annotations,
        category_index=parts[0]["category_index"],
    )


def _read(path: Path) -> dict:
    """A COCO JSON, checked: its images (found on disk), categories and annotations."""
    try:
        if path.stat().st_size > MAX_COCO_BYTES:
            raise DataError(f"{path}: larger than {MAX_COCO_BYTES // 2**20} MiB")
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: a COCO file is a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{path}: {key} must be a list")
    categories = _categories(path, doc["categories"])
    images = _images(path, doc["images"])
    per_image: dict[int, list] = {i: [] for i in images}
    for k, ann in enumerate(doc["annotations"]):
        _check_annotation(path, k, ann, images, categories)
        per_image[ann["image_id"]].append(ann)
    order = sorted(categories)
    return {
        "classes": ("background", *(categories[c] for c in order)),
        "category_index": {c: i + 1 for i, c in enumerate(order)},
        "images": [images[i][0] for i in images],
        "annotations": {images[i][0]: (images[i][1], images[i][2], per_image[i]) for i in images},
    }


def _categories(path: Path, cats: list) -> dict[int, str]:
    out = {}
    for k, c in enumerate(cats):
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str) and c["name"]):
            raise DataError(f"{path}: categories[{k}] must have an integer id and a name")
        if c["id"] in out:
            raise DataError(f"{path}: categories[{k}]: id {c['id']} is listed twice")
        out[c["id"]] = c["name"]
    if not out:
        raise DataError(f"{path}: no categories")
    if len(out) > 254:
        raise DataError(f"{path}: {len(out)} categories; edgeseg's masks hold at most 254 besides background")
    return out


def _images(path: Path, images: list) -> dict[int, tuple[Path, int, int]]:
    out = {}
    for k, im in enumerate(images):
        ok = isinstance(im, dict) and _is_int(im.get("id")) and isinstance(im.get("file_name"), str)
        if not ok or not all(_is_int(im.get(d)) and 0 < im[d] <= 65535 for d in ("width", "height")):
            raise DataError(f"{path}: images[{k}] must have an integer id, a file_name, and a width and height")
        if im["id"] in out:
            raise DataError(f"{path}: images[{k}]: id {im['id']} is listed twice")
        found = _find_image(path, k, im["file_name"])
        _check_size(path, k, found, im["width"], im["height"])
        out[im["id"]] = (found, im["height"], im["width"])
    return out


def _find_image(path: Path, k: int, name: str) -> Path:
    """The image a file_name names, beside the JSON or in an images/ folder; a name that is absolute or climbs
    out (..) is refused: an export names files inside the dataset, and a hostile one could read any file."""
    from pathlib import PurePosixPath, PureWindowsPath

    if any(p.is_absolute() or p.drive or ".." in p.parts for p in (PurePosixPath(name), PureWindowsPath(name))):
        raise DataError(
            f"{path}: images[{k}].file_name {name!r:.80} must name a file inside the dataset (no absolute path, no ..)"
        )
    here = path.parent
    for folder in (here, here.parent / "images", here / "images", here.parent):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise DataError(f"{path}: images[{k}].file_name {name!r} is not beside it nor in images/")


def _check_size(path: Path, k: int, image: Path, width: int, height: int) -> None:
    """The width and height the export claims against the image file's own header, before a mask is drawn at that
    size (a claim of 65535x65535 drew 8.5 GB of masks before it was refused)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as im:
            real = im.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return  # unreadable here: the image reader says so, naming the file, when it is read
    if real not in ((width, height), (height, width)):  # turned: an EXIF orientation, which tools apply or not
        raise DataError(f"{path}: images[{k}] says {width}x{height} but {image.name} is {real[0]}x{real[1]}")


def _check_annotation(path: Path, k: int, ann, images: dict, categories: dict) -> None:
    where = f"{path}: annotations[{k}]"
    ids = (ann.get("image_id"), ann.get("category_id")) if isinstance(ann, dict) else (None, None)
    if not all(map(_is_int, ids)) or ids[0] not in images or ids[1] not in categories:  # ints first: a list is no key
        raise DataError(f"{where} must name an image_id and a category_id that the file lists")
    _, h, w = images[ann["image_id"]]
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not seg:
            raise DataError(f"{where}.segmentation is an empty list")
        for j, poly in enumerate(seg):
            if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(map(_finite, poly))):
                raise DataError(f"{where}.segmentation[{j}] must be a polygon: x, y pairs, at least three")
            xs, ys = poly[0::2], poly[1::2]
            if min(xs) < -TOLERANCE or min(ys) < -TOLERANCE or max(xs) > w + TOLERANCE or max(ys) > h + TOLERANCE:
                raise DataError(f"{where}.segmentation[{j}] reaches outside its image ({w}x{h})")
    elif isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if size != [h, w]:
            raise DataError(f"{where}.segmentation.size {size!r} is not its image's [height, width] [{h}, {w}]")
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts) or sum(counts) != h * w:
                raise DataError(f"{where}.segmentation.counts must be run lengths that sum to {h}x{w}")
        elif not isinstance(counts, str):
            raise DataError(f"{where}.segmentation.counts must be a list of run lengths or an RLE string")
        else:  # compressed: checked here, before pycocotools reads it (a bad one was its traceback)
            runs = _rle_string_runs(counts)
            if runs is None or any(r < 0 for r in runs) or sum(runs) != h * w:
                raise DataError(f"{where}.segmentation.counts is not a compressed RLE of {h}x{w} pixels")
    else:
        raise DataError(f"{where}.segmentation must be polygons or RLE")
    if ann.get("iscrowd") not in (None, 0, 1, False, True):
        raise DataError(f"{where}.iscrowd must be 0 or 1")


def _rle_string_runs(text: str) -> list[int] | None:
    """The run lengths of COCO's compressed RLE string (pycocotools' rleFrString, in Python), or None when the
    string is not one: characters outside its alphabet, or a number cut short."""
    runs: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                return None
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
