import json

import cv2
import numpy as np
import pytest
from PIL import Image

from edgeseg.datasets import CAMVID_CLASSES, detect_format, open_dataset, voc_colours
from edgeseg.errors import DataError
from edgeseg.images import list_images, read_image, read_mask


def write_pair(root, stem, img, mask, img_dir="images", mask_dir="masks"):
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / img_dir / f"{stem}.png"), img)
    Image.fromarray(mask).save(root / mask_dir / f"{stem}.png")


def img(h=6, w=8, v=100):
    return np.full((h, w, 3), v, np.uint8)


def test_generic_index_masks_infer_classes_and_split(tmp_path):
    for i in range(12):
        m = np.zeros((6, 8), np.uint8)
        m[:, : i % 4] = 2
        write_pair(tmp_path, f"a{i:02d}", img(), m)
    assert detect_format(tmp_path) == "generic"
    train, val = open_dataset(tmp_path, "train"), open_dataset(tmp_path, "val")
    assert len(train) == 11 and len(val) == 1 and val.samples[0].image.stem == "a09"
    assert train.classes == ("class_0", "class_1", "class_2")
    image, mask = val.read(0)
    assert image.shape == (6, 8, 3) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 2}


def test_generic_binary_0_255_masks_read_as_0_1(tmp_path):
    m = np.zeros((6, 8), np.uint8)
    m[2:4, 2:6] = 255
    write_pair(tmp_path, "x", img(), m)
    write_pair(tmp_path, "y", img(), np.zeros((6, 8), np.uint8))
    ds = open_dataset(tmp_path, "all")
    assert ds.classes == ("background", "foreground")
    _, mask = ds.read(0)
    assert mask.max() == 1 and mask.sum() == 8


def test_generic_split_folders(tmp_path):
    write_pair(tmp_path / "train", "t", img(), np.zeros((6, 8), np.uint8))
    write_pair(tmp_path / "val", "v", img(), np.ones((6, 8), np.uint8))
    assert [s.image.stem for s in open_dataset(tmp_path, "val").samples] == ["v"]
    assert open_dataset(tmp_path, "train").classes == ("class_0", "class_1")


def test_generic_rgb_colour_masks_map_through_classes_json(tmp_path):
    colours = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    (tmp_path / "classes.json").write_text(
        json.dumps({"classes": ["bg", "red", "green"], "colours": colours, "ignore_index": 255})
    )
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, 4:] = (0, 255, 0)
    rgb[0, 0] = (255, 0, 0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "c.jpg"), img())
    Image.fromarray(rgb, "RGB").save(tmp_path / "masks" / "c.png")
    ds = open_dataset(tmp_path, "all")
    _, mask = ds.read(0)
    assert ds.classes == ("bg", "red", "green") and ds.ignore_index == 255
    assert mask[0, 0] == 1 and (mask[:, 4:] == 2).all() and mask[3, 1] == 0
    rgb[5, 5] = (1, 2, 3)
    Image.fromarray(rgb, "RGB").save(tmp_path / "masks" / "c.png")
    with pytest.raises(DataError, match=r"c\.png: colour \(1, 2, 3\)"):
        ds.read(0)


def test_camvid_lists(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        lines = []
        for i in range(n):
            write_pair(
                tmp_path,
                f"{split}{i}",
                img(),
                np.full((6, 8), 11 if i == 0 else 3, np.uint8),
                img_dir=split,
                mask_dir=f"{split}annot",
            )
            lines.append(f"{split}/{split}{i}.png {split}annot/{split}{i}.png")
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    assert detect_format(tmp_path) == "camvid"
    ds = open_dataset(tmp_path, "val")
    assert len(ds) == 2 and ds.classes == CAMVID_CLASSES and ds.ignore_index == 11
    assert ds.read(0)[1].max() == 11  # void kept as the ignore value
    assert len(open_dataset(tmp_path, "all")) == 5
    with pytest.raises(DataError, match="no test.txt"):
        open_dataset(tmp_path, "test")


def test_camvid_absolute_segnet_paths_resolve_under_root(tmp_path):
    write_pair(tmp_path, "f", img(), np.zeros((6, 8), np.uint8), img_dir="train", mask_dir="trainannot")
    (tmp_path / "train.txt").write_text("/SegNet/CamVid/train/f.png /SegNet/CamVid/trainannot/f.png\n")
    assert open_dataset(tmp_path, "train").samples[0].image == tmp_path / "train" / "f.png"


def test_voc_palette_masks_and_ignore_255(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "JPEGImages" / "2007_000001.jpg"), img())
    idx = np.zeros((6, 8), np.uint8)
    idx[1:3, 1:3] = 15
    idx[0, :] = 255
    pal = Image.fromarray(idx, "P")
    flat = [v for c in voc_colours(256) for v in c]
    pal.putpalette(flat)
    pal.save(tmp_path / "SegmentationClass" / "2007_000001.png")
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000001\n")
    ds = open_dataset(tmp_path, "val")
    assert detect_format(tmp_path) == "voc" and ds.num_classes == 21 and ds.ignore_index == 255
    _, mask = ds.read(0)
    assert mask[1, 1] == 15 and (mask[0] == 255).all()  # palette indices, not colours
    assert voc_colours(16)[15] == (192, 128, 128)  # VOC's colour for person


def test_size_mismatch_names_the_file(tmp_path):
    write_pair(tmp_path, "s", img(6, 8), np.zeros((5, 8), np.uint8))
    with pytest.raises(DataError, match=r"s\.png: mask is 8x5 but its image s\.png is 8x6"):
        open_dataset(tmp_path, "all").read(0)


def test_mask_value_beyond_classes_names_the_file(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    write_pair(tmp_path, "v", img(), np.full((6, 8), 7, np.uint8))
    with pytest.raises(DataError, match=r"v\.png: mask value 7 is not a class \(0\.\.2\)"):
        open_dataset(tmp_path, "all").read(0)


def test_unreadable_files_and_missing_masks(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="bad.png: not a readable image"):
        read_image(bad)
    with pytest.raises(DataError, match="bad.png: not a readable mask"):
        read_mask(bad)
    with pytest.raises(DataError, match="no such image"):
        read_image(tmp_path / "nope.png")
    write_pair(tmp_path / "ds", "has", img(), np.zeros((6, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "ds" / "images" / "orphan.png"), img())
    with pytest.raises(DataError, match="1 image.s. have no mask.*orphan.png"):
        open_dataset(tmp_path / "ds", "all")


def test_unknown_layout_and_options(tmp_path):
    with pytest.raises(DataError, match="not a dataset layout"):
        detect_format(tmp_path)
    with pytest.raises(DataError, match="no such dataset folder"):
        detect_format(tmp_path / "missing")
    with pytest.raises(DataError, match="unknown dataset format"):
        open_dataset(tmp_path, format="cityscapes")
    with pytest.raises(DataError, match="no COCO JSON"):
        open_dataset(tmp_path, format="coco")
    with pytest.raises(DataError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_shared_camvid_reads_when_present():
    from tests.conftest import shared_path

    root = shared_path("data", "camvid")
    ds = open_dataset(root, "val")
    assert len(ds) == 101
    image, mask = ds.read(0)
    assert image.shape == (360, 480, 3) and mask.shape == (360, 480) and mask.max() <= 11
