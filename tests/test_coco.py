"""COCO-format datasets (CVAT, Label Studio, Roboflow exports): rasterised as pycocotools rasterises them, the
layouts the tools write, and one line for every broken file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import DataError
from tests.test_faults import one_line_error

pytest.importorskip("pycocotools", reason="needs the coco extra (pycocotools)")
runner = CliRunner()
HW = (24, 40)


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as cocomask

    rle = cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _counts(mask: np.ndarray) -> dict:
    """Uncompressed RLE (column-major run lengths starting with zeros), as COCO writes for crowds."""
    flat = mask.flatten(order="F").astype(np.uint8)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    return {"size": list(mask.shape), "counts": runs}


def coco_export(root: Path, layout: str = "cvat") -> Path:
    """Four images, three categories (ids 7, 3 and 12: class order is by id), polygons, RLE in both forms, a
    crowd region and two overlapping annotations (the later one wins)."""
    h, w = HW
    images, anns = [], []
    image_dir = root / "images" if layout == "cvat" else root
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : w // 2] = (0, 0, 255)  # red left half (BGR)
        frame[:, w // 2 :] = (0, 255, 0) if i % 2 else (255, 0, 0)
        name = f"f{i}.png"
        cv2.imwrite(str(image_dir / name), frame)
        images.append({"id": 10 + i, "file_name": name, "width": w, "height": h})
        anns.append(
            {
                "id": len(anns),
                "image_id": 10 + i,
                "category_id": 7,
                "iscrowd": 0,
                "segmentation": [[0, 0, 19.5, 0, 19.5, 23.5, 0, 23.5]],
            }
        )  # left half: category 7
        block = np.zeros((h, w), np.uint8)
        block[4:12, 16:30] = 1
        anns.append({"id": len(anns), "image_id": 10 + i, "category_id": 3, "iscrowd": 0, "segmentation": _rle(block)})
        crowd = np.zeros((h, w), np.uint8)
        crowd[18:22, 30:38] = 1
        anns.append(
            {"id": len(anns), "image_id": 10 + i, "category_id": 12, "iscrowd": 1, "segmentation": _counts(crowd)}
        )
    doc = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 7, "name": "road"}, {"id": 3, "name": "car"}, {"id": 12, "name": "crowd"}],
    }
    if layout == "cvat":
        (root / "annotations").mkdir(exist_ok=True)
        path = root / "annotations" / "instances_default.json"
    else:
        path = root / "_annotations.coco.json"
    path.write_text(json.dumps(doc))
    return path


def reference_masks(json_path: Path, out: Path) -> None:
    """pycocotools' own rasterisation (COCO.annToMask), the rules applied in the file's order, as a generic
    dataset: background 0, categories by id, later annotations over earlier ones, crowds ignored (255)."""
    from pycocotools.coco import COCO

    coco = COCO(str(json_path))
    order = sorted(coco.getCatIds())
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    for img in coco.loadImgs(coco.getImgIds()):
        mask = np.zeros((img["height"], img["width"]), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            mask[coco.annToMask(ann) > 0] = 255 if ann["iscrowd"] else order.index(ann["category_id"]) + 1
        src = json_path.parent.parent / "images" / img["file_name"]
        (out / "images" / img["file_name"]).write_bytes(src.read_bytes())
        cv2.imwrite(str(out / "masks" / img["file_name"]), mask)
    names = ["background", *(c["name"] for c in coco.loadCats(order))]
    (out / "classes.json").write_text(json.dumps({"classes": names, "ignore_index": 255}))


def test_a_cvat_export_reads_as_pycocotools_rasterises_it(tmp_path):
    from edgeseg.datasets import detect_format, open_dataset

    path = coco_export(tmp_path / "cvat")
    assert detect_format(tmp_path / "cvat") == detect_format(path) == "coco"
    ds = open_dataset(tmp_path / "cvat", "all")
    assert ds.classes == ("background", "car", "road", "crowd") and ds.ignore_index == 255 and len(ds) == 4
    reference_masks(path, tmp_path / "ref")
    ref = open_dataset(tmp_path / "ref", "all")
    for i in range(4):
        image, mask = ds.read(i)
        _, want = ref.read([s.image.name for s in ref.samples].index(ds.samples[i].image.name))
        assert np.array_equal(mask, want)
    _, mask = ds.read(0)
    assert mask[2, 2] == 2 and mask[8, 25] == 1 and mask[8, 20] == 1 and mask[20, 34] == 255  # car over road


def test_eval_on_a_coco_export_scores_what_it_scores_on_pycocotools_masks(toy_models, tmp_path):
    path = coco_export(tmp_path / "cvat")
    reference_masks(path, tmp_path / "ref")
    m = toy_models["scores_float"]  # three classes: the CLI checks a COCO dataset's four classes the same way
    for data in (tmp_path / "cvat", tmp_path / "ref"):
        r = runner.invoke(app, ["eval", str(m), "--data", str(data), "--split", "all"])
        assert r.exit_code == 1 and "predicts 3 classes but the dataset has 4" in r.output
    from edgeseg.spec import ModelSpec

    scores = {}
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate

    class Constant:  # predicts road on the left half, car on the right: a model of the dataset's four classes
        kind = None
        spec_source = "given"

        def __init__(self):
            from edgeseg.postprocess import OutputKind
            from edgeseg.tensors import TensorInfo

            self.kind, self.output = OutputKind.SCORES, TensorInfo("s", (1, 24, 40, 4), np.float32)
            self.spec = ModelSpec(input_hw=(24, 40), classes=("background", "car", "road", "crowd"))

        def segment(self, frame):
            out = np.full(frame.shape[:2], 1, np.uint8)
            out[:, : frame.shape[1] // 2] = 2
            return out

    for name, data in (("coco", tmp_path / "cvat"), ("ref", tmp_path / "ref")):
        scores[name] = evaluate(Constant(), open_dataset(data, "all"))["per_class_iou"]
    assert scores["coco"] == scores["ref"] and scores["coco"]["road"] > 0.5


def test_a_roboflow_export_has_its_splits(tmp_path):
    from edgeseg.datasets import open_dataset

    for split in ("train", "valid"):
        coco_export(tmp_path / "rf" / split, layout="roboflow")
    assert len(open_dataset(tmp_path / "rf", "train")) == 4 and len(open_dataset(tmp_path / "rf", "val")) == 4
    assert len(open_dataset(tmp_path / "rf", "all")) == 8
    single = coco_export(tmp_path / "one", layout="roboflow")
    assert len(open_dataset(single, "val")) == 1 and len(open_dataset(single, "train")) == 3  # every 10th, or last


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda d: "{not json", r"instances_default\.json: not valid JSON"),
        (lambda d: {**d, "images": {}}, r"images must be a list"),
        (
            lambda d: {**d, "images": [{**d["images"][0], "file_name": "gone.png"}, *d["images"][1:]]},
            r"images\[0\]\.file_name 'gone\.png' is not beside it nor in images/",
        ),
        (
            lambda d: {**d, "annotations": [{**d["annotations"][0], "segmentation": [[0, 0, 90, 0, 90, 5]]}]},
            r"annotations\[0\]\.segmentation\[0\] reaches outside its image \(40x24\)",
        ),
        (
            lambda d: {**d, "annotations": [{**d["annotations"][1], "segmentation": {"size": [5, 5], "counts": "x"}}]},
            r"annotations\[0\]\.segmentation\.size \[5, 5\] is not its image's",
        ),
        (
            lambda d: {**d, "annotations": [{**d["annotations"][0], "category_id": 99}]},
            r"annotations\[0\] must name an image_id and a category_id that the file lists",
        ),
        (
            lambda d: {**d, "annotations": [{**d["annotations"][0], "segmentation": [[0, 0, "a", 1, 2, 2]]}]},
            r"annotations\[0\]\.segmentation\[0\] must be a polygon",
        ),
        (lambda d: {**d, "categories": [{"id": 7}]}, r"categories\[0\] must have an integer id and a name"),
        # issue 35: RLE strings that are not one (a pycocotools traceback), names that leave the dataset, and sizes
        # the image does not have (masks were drawn at 65535x65535)
        (
            lambda d: {
                **d,
                "annotations": [{**d["annotations"][1], "segmentation": {"size": [24, 40], "counts": "~~"}}],
            },
            r"annotations\[0\]\.segmentation\.counts is not a compressed RLE of 24x40 pixels",
        ),
        (
            lambda d: {
                **d,
                "annotations": [{**d["annotations"][1], "segmentation": {"size": [24, 40], "counts": "0"}}],
            },
            r"annotations\[0\]\.segmentation\.counts is not a compressed RLE of 24x40 pixels",
        ),
        (
            lambda d: {**d, "images": [{**d["images"][0], "file_name": "/etc/hostname"}, *d["images"][1:]]},
            r"images\[0\]\.file_name '/etc/hostname' must name a file inside the dataset",
        ),
        (
            lambda d: {**d, "images": [{**d["images"][0], "file_name": "../../f0.png"}, *d["images"][1:]]},
            r"images\[0\]\.file_name '\.\./\.\./f0\.png' must name a file inside the dataset",
        ),
        (
            lambda d: {**d, "images": [{**d["images"][0], "width": 65535, "height": 65535}, *d["images"][1:]]},
            r"images\[0\] says 65535x65535 but f0\.png is 40x24",
        ),
        # found by benchmarks/fuzz_coco.py: an id that is a list or an object (unhashable) was a TypeError
        (
            lambda d: {**d, "annotations": [{**d["annotations"][0], "image_id": [1]}]},
            r"annotations\[0\] must name an image_id and a category_id that the file lists",
        ),
        (
            lambda d: {**d, "annotations": [{**d["annotations"][0], "category_id": {"id": 1}}]},
            r"annotations\[0\] must name an image_id and a category_id that the file lists",
        ),
    ],
)
def test_a_broken_coco_file_is_one_line_naming_the_file_and_field(toy_models, tmp_path, damage, said):
    path = coco_export(tmp_path / "cvat")
    doc = json.loads(path.read_text())
    bad = damage(doc)
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(DataError):
        from edgeseg.datasets import open_dataset

        open_dataset(tmp_path / "cvat", "all").read(0)
    r = runner.invoke(
        app, ["eval", str(toy_models["scores_float"]), "--data", str(tmp_path / "cvat"), "--split", "all"]
    )
    one_line_error(r, said)
