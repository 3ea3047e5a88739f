"""The training protocol (which frames train, which validate, which epoch is kept) and fine-tuning with --init."""

import json

import numpy as np
import pytest

from edgeseg.errors import EdgesegError


def _stems(ds) -> set[str]:
    return {s.image.stem for s in ds.samples}


def test_a_held_out_sequence_leaves_training_and_validates(synthetic_data):
    from edgeseg.training.protocol import make_protocol

    p = make_protocol(synthetic_data, "auto", ("train", "val"), ("scene_0001",), None, "auto")
    held = {f"scene_{i:05d}" for i in range(10, 20)}  # scene_00010 .. scene_00019 start with scene_0001
    assert _stems(p.val) == held and not (_stems(p.train) & held)
    assert len(p.train) == 30 and p.disjoint and p.keep == "best"  # 40 scenes, train+val, 10 held out
    assert "held out of training" in p.note and p.to_dict()["val_frames"] == 10
    with pytest.raises(EdgesegError, match="no frame's file name starts with it"):
        make_protocol(synthetic_data, "auto", ("train",), ("0006R0",), None, "auto")


def test_validating_on_trained_frames_keeps_the_last_epoch_and_refuses_best(synthetic_data):
    from edgeseg.training.protocol import make_protocol

    p = make_protocol(synthetic_data, "auto", ("train", "val"), (), None, "auto")
    assert not p.disjoint and p.keep == "last" and "its val mIoU is not a test" in p.note
    with pytest.raises(EdgesegError, match="would pick an epoch on frames the model trains on"):
        make_protocol(synthetic_data, "auto", ("train", "val"), (), None, "best")
    fixed = make_protocol(synthetic_data, "auto", ("train",), (), None, "last")
    assert fixed.disjoint and fixed.keep == "last" and "a fixed schedule" in fixed.note


def _two_class_copy(synthetic_data, dest, count=16):
    """A 2-class dataset the shipped models never saw: the synthetic scenes with every labelled class as 'thing'."""
    import cv2

    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    for p in sorted((synthetic_data / "images").iterdir())[:count]:
        (dest / "images" / p.name).write_bytes(p.read_bytes())
        m = cv2.imread(str(synthetic_data / "masks" / p.name), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(dest / "masks" / p.name), (m > 0).astype(np.uint8))
    (dest / "classes.json").write_text(json.dumps({"classes": ["background", "thing"]}))
    return dest


@pytest.mark.slow
def test_init_fine_tunes_onto_a_two_class_dataset_it_never_saw(tiny_run, synthetic_data, tmp_path):
    """--init copies every layer that fits (the encoder, the decoder) and builds a head for the new class count;
    the network and input size come from the model it starts from; keep last keeps the last epoch."""
    import keras
    from typer.testing import CliRunner

    from edgeseg.cli import app

    two = _two_class_copy(synthetic_data, tmp_path / "two", count=20)
    out = tmp_path / "ft"
    args = ["train", "--data", str(two), "--out", str(out), "--init", str(tiny_run / "model.keras")]
    r = CliRunner().invoke(app, [*args, "--epochs", "1", "--lr", "1e-8", "--keep", "last"])
    assert r.exit_code == 0, r.output
    assert "built afresh: head_logits" in r.output and "kept the last epoch" in r.output
    start = keras.saving.load_model(tiny_run / "model.keras", compile=False)
    tuned = keras.saving.load_model(out / "model.keras", compile=False)
    assert tuple(tuned.inputs[0].shape[1:3]) == (64, 96) and tuned.outputs[0].shape[-1] == 2
    a, b = (m.get_layer("encoder").get_layer("Conv1").get_weights()[0] for m in (start, tuned))
    np.testing.assert_allclose(a, b, atol=1e-5)  # the encoder came across (a learning rate of 1e-8 barely moves it)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["decoder"] == "tiny" and cfg["alpha"] == 0.35 and cfg["keep"] == "last"
    bad = CliRunner().invoke(app, ["train", "--data", str(two), "--out", str(tmp_path / "x"), "--init", "large"])
    assert bad.exit_code == 1 and "give a shipped model (nano, small) or a .keras file" in bad.output


@pytest.mark.slow
def test_init_nano_fine_tunes_the_shipped_road_model_onto_two_classes(synthetic_data, tmp_path):
    """`train --init nano` as the fine-tuning page has it: the shipped Keras model, its input size and network,
    a new 2-class head; the encoder starts from the shipped weights."""
    import keras
    from typer.testing import CliRunner

    from edgeseg.assets import shipped_keras
    from edgeseg.cli import app

    shipped = shipped_keras("nano")
    if shipped is None:
        pytest.skip("the shipped nano Keras model (edgeseg/assets/camvid_nano.keras) is not in this checkout")
    two = _two_class_copy(synthetic_data, tmp_path / "two")
    out = tmp_path / "ft"
    args = ["train", "--data", str(two), "--out", str(out), "--init", "nano", "--epochs", "1", "--lr", "1e-8"]
    r = CliRunner().invoke(app, [*args, "--batch-size", "4"])
    assert r.exit_code == 0, r.output
    assert "built afresh: head_logits" in r.output
    start = keras.saving.load_model(shipped, compile=False)
    tuned = keras.saving.load_model(out / "model.keras", compile=False)
    assert start.outputs[0].shape[-1] == 11 and tuned.outputs[0].shape[-1] == 2
    assert tuple(tuned.inputs[0].shape[1:3]) == tuple(start.inputs[0].shape[1:3]) == (192, 256)
    a, b = (m.get_layer("encoder").get_layer("Conv1").get_weights()[0] for m in (start, tuned))
    np.testing.assert_allclose(a, b, atol=1e-5)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["decoder"] == "nano" and cfg["alpha"] == 1.0


def test_ohem_keeps_the_hard_labelled_pixels_or_at_least_the_hardest_share():
    import keras.ops as ops

    from edgeseg.training.objective import OHEM_THRESHOLD, ohem

    # 32 labelled pixels and 4 ignored ones (weight 0) whose loss is the largest of all
    ce = np.array([0.1] * 28 + [1.0, 2.0, 3.0, 4.0] + [9.0] * 4, np.float32)
    w = np.array([1.0] * 32 + [0.0] * 4, np.float32)
    got = float(ops.convert_to_numpy(ohem(ops.convert_to_tensor(ce), ops.convert_to_tensor(w))))
    assert got == pytest.approx(np.mean([1.0, 2.0, 3.0, 4.0]))  # the 4 above the threshold, not the ignored 9s
    easy = np.full(32, 0.1, np.float32)
    easy[:3] = [0.2, 0.3, 0.25]  # none is hard: the hardest 1/16 of 32 (2 pixels) are kept
    got = float(ops.convert_to_numpy(ohem(ops.convert_to_tensor(easy), ops.convert_to_tensor(np.ones(32, np.float32)))))
    assert got == pytest.approx((0.3 + 0.25) / 2) and 0.3 < OHEM_THRESHOLD
