import json

import cv2
import numpy as np
import pytest

from edgeseg import synthetic
from edgeseg.datasets import open_dataset
from edgeseg.errors import ModelError
from edgeseg.spec import ModelSpec, default_colours
from edgeseg.tflite_file import read_metadata, read_opcodes


def test_spec_json_round_trip_and_defaults(tmp_path):
    s = ModelSpec(input_hw=(96, 128), classes=("a", "b", "c"), ignore_index=255, mean=127.5, std=(1, 2, 3))
    assert s.colours == tuple(default_colours(3)) and s.mean == (127.5,) * 3
    p = s.save(tmp_path / "spec.json")
    back = ModelSpec.load(p)
    assert back == s and json.loads(p.read_text())["format"] == "edgeseg-spec/1"


@pytest.mark.parametrize(
    "bad",
    [
        {"input_hw": [0, 5], "classes": ["a"]},
        {"input_hw": [5, 5], "classes": []},
        {"input_hw": [5, 5], "classes": ["a", "b"], "colours": [[0, 0, 0]]},
        {"input_hw": [5, 5], "classes": ["a"], "std": [0, 1, 1]},
        {"input_hw": [5, 5], "classes": ["a"], "format": "other/2"},
        {"classes": ["a"]},
    ],
)
def test_bad_specs_are_model_errors(bad):
    with pytest.raises(ModelError):
        ModelSpec.from_dict(bad)


def test_default_colours_are_distinct():
    c = default_colours(64)
    assert len(set(c)) == 64


def test_not_a_tflite_flatbuffer():
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_metadata(b"\x00" * 64, "x.tflite")
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_opcodes(b"TFL3", "x.tflite")


def test_synthetic_scenes_are_deterministic_and_varied():
    a, am = synthetic.scene(5, (60, 90))
    b, bm = synthetic.scene(5, (60, 90))
    c, _ = synthetic.scene(6, (60, 90))
    assert np.array_equal(a, b) and np.array_equal(am, bm) and not np.array_equal(a, c)
    assert a.shape == (60, 90, 3) and am.shape == (60, 90) and am.max() < len(synthetic.CLASSES)
    seen = set()
    for seed in range(30):
        seen |= set(np.unique(synthetic.scene(seed)[1]).tolist())
    assert seen == set(range(len(synthetic.CLASSES)))


def test_synthetic_dataset_layout_reads_back(tmp_path):
    root = synthetic.write_dataset(tmp_path / "d", count=12, hw=(40, 56), seed=1)
    ds = open_dataset(root, "all")
    assert ds.format == "generic" and len(ds) == 12 and ds.classes == synthetic.CLASSES
    image, mask = ds.read(3)
    ref_img, ref_mask = synthetic.scene(1 * 1_000_003 + 3, (40, 56))
    assert np.array_equal(mask, ref_mask) and np.array_equal(image, ref_img)  # PNG is lossless


def test_synthetic_video_has_its_frames(tmp_path):
    path = synthetic.write_video(tmp_path / "v.mp4", frames=25, hw=(48, 64))
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 25


def test_typed_spec_fields_round_trip_and_old_specs_still_load(tmp_path):
    spec = ModelSpec(
        input_hw=(32, 48),
        classes=("a", "b"),
        backbone="mobilenet_v2_0.35",
        decoder="tiny",
        train_data="data/x",
        dataset_format="generic",
        val_miou=0.5,
    )
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec and (back.decoder, back.train_data, back.val_miou) == ("tiny", "data/x", 0.5)
    # a spec as written before the typed fields (the shipped models carry this form)
    old = {
        "format": "edgeseg-spec/1",
        "input_hw": [32, 48],
        "classes": ["a", "b"],
        "backbone": "mobilenet_v2_1/dense",
        "extra": {"train_data": "/d", "dataset_format": "camvid", "val_miou": 0.68, "embedded": True, "note": "kept"},
    }
    s = ModelSpec.from_dict(old)
    assert (s.backbone, s.decoder, s.train_data, s.dataset_format, s.val_miou) == (
        "mobilenet_v2_1",
        "dense",
        "/d",
        "camvid",
        0.68,
    )
    assert s.extra == {"note": "kept"}  # nothing typed left in extra; "embedded" is not the spec's business
    with pytest.raises(ModelError, match="val_miou"):
        ModelSpec.from_dict({**old, "val_miou": 7})


def test_the_shipped_models_old_spec_loads_with_typed_fields():
    from edgeseg.assets import shipped_model
    from edgeseg.tflite_file import read_model_bytes, read_spec_json

    for name, decoder in (("small", "dense"), ("nano", "nano")):
        path = shipped_model(name)
        if path is None:
            pytest.skip("no shipped model in this checkout")
        spec = ModelSpec.from_json(read_spec_json(read_model_bytes(path)))
        assert spec.decoder == decoder and spec.backbone.startswith("mobilenet_v2")
        assert spec.dataset_format == "camvid" and 0.5 < spec.val_miou < 0.8 and "embedded" not in spec.extra


def test_the_demo_draws_a_picture_whose_overlay_colours_are_not_the_shapes_own(synthetic_data, tmp_path):
    """Issue 34: the demo's overlay looked like its input because the synthetic shapes were drawn in their class
    colours; now each class's display colour is far from its shapes' colour, and the demo writes input, truth and
    prediction side by side."""
    import cv2
    import numpy as np

    from edgeseg import synthetic
    from edgeseg.assets import default_model
    from edgeseg.demo import side_by_side

    for c, bgr in synthetic._BASE_BGR.items():
        drawn = np.array(bgr[::-1], float)
        assert np.abs(np.array(synthetic.COLOURS[c], float) - drawn).sum() > 250, (c, synthetic.COLOURS[c], bgr)
    if default_model() is None:
        pytest.skip("no shipped model in this checkout")
    out = side_by_side(default_model(), synthetic_data, tmp_path / "pic.png")
    pic = cv2.imread(str(out))
    h, w = 72, 96  # SCENE_HW
    assert pic.shape == (3 * 2 * h, 3 * 2 * w, 3) and pic.shape[1] >= 320
    row = pic[: 2 * h]
    inp, truth = row[:, : 2 * w], row[:, 2 * w : 4 * w]
    assert np.abs(inp.astype(int) - truth.astype(int)).mean() > 20  # the truth panel is not the input again
