"""The training protocol (which frames train, which validate, which epoch is kept) and fine-tuning with --init."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.datasets import open_dataset
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


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ce(logits, labels):
    """Per-pixel cross-entropy of softmax(logits) against integer labels, in numpy."""
    return -np.take_along_axis(_log_softmax(logits), labels[..., None], -1)[..., 0]


def test_distillation_and_aux_terms_add_up_as_documented():
    """The Objective's loss, by hand: (1 - kd) * weighted CE + kd * T^2 * KL(teacher || student) + aux * the
    auxiliary head's weighted CE (its stride-16 logits resized to the labels); a teacher that agrees adds 0."""
    import keras
    import keras.ops as ops

    from edgeseg.training.model import build_unet
    from edgeseg.training.objective import Objective

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    y = rng.integers(0, 3, (2, 64, 96))
    w = rng.choice([0.0, 0.5, 2.0], (2, 64, 96)).astype(np.float32)
    student = build_unet(3, (64, 96), "mobilenet_v2", 0.35, "tiny", None)
    # a teacher at its own input size, with confident logits (an untrained U-Net's are near uniform)
    init = keras.initializers.RandomNormal(stddev=0.02, seed=1)
    teacher = keras.Sequential([keras.Input((96, 128, 3)), keras.layers.Conv2D(3, 1, kernel_initializer=init)])
    logits = ops.convert_to_numpy(student(x, training=False))
    ce = float((_ce(logits, y) * w).mean())

    plain = Objective(student)
    assert float(plain.compute_loss(x, y, logits, w)) == pytest.approx(ce, rel=1e-5)

    kd = Objective(student, teacher=teacher, kd_weight=0.25, temperature=2.0)
    t_in = ops.image.resize(x, (96, 128), interpolation="bilinear")
    t = ops.convert_to_numpy(ops.image.resize(teacher(t_in, training=False), (64, 96), interpolation="bilinear"))
    lt, ls = _log_softmax(t / 2.0), _log_softmax(logits / 2.0)
    kl = float((np.exp(lt) * (lt - ls)).sum(-1).mean()) * 2.0**2
    assert kl > 0.1
    assert float(kd.compute_loss(x, y, logits, w)) == pytest.approx(0.75 * ce + 0.25 * kl, rel=1e-4)
    # --teacher-view frame: the batch brings the teacher's own view, which it sees as it is
    view = rng.uniform(0, 255, (2, 96, 128, 3)).astype(np.float32)
    t = ops.convert_to_numpy(ops.image.resize(teacher(view, training=False), (64, 96), interpolation="bilinear"))
    lt = _log_softmax(t / 2.0)
    kl_view = float((np.exp(lt) * (lt - ls)).sum(-1).mean()) * 2.0**2
    assert abs(kl_view - kl) > 1e-3
    assert float(kd.compute_loss((x, view), y, logits, w)) == pytest.approx(0.75 * ce + 0.25 * kl_view, rel=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(kd((x, view))), logits, atol=1e-5)  # the student sees x
    # --kd-mode channel: per image and class, the KL between the distributions over the pixels (numpy's reading
    # of Shu et al.'s formula, in float64: a float32 sum over 6144 pixels is off by 1e-4), not over the classes
    cwd = Objective(student, teacher=teacher, kd_weight=0.25, temperature=4.0, kd_mode="channel")
    tc, sc = (np.moveaxis(v, -1, 1).reshape(2, 3, -1).astype(np.float64) / 4.0 for v in (t, logits))
    lt, ls = _log_softmax(tc), _log_softmax(sc)
    kl_channel = float((np.exp(lt) * (lt - ls)).sum(-1).mean()) * 4.0**2
    kl_pixel_t4 = (
        float((np.exp(_log_softmax(t / 4.0)) * (_log_softmax(t / 4.0) - _log_softmax(logits / 4.0))).sum(-1).mean())
        * 16
    )
    assert kl_channel > 0.01 and abs(kl_channel - kl_pixel_t4) > 0.1 * kl_channel  # a different quantity
    got = float(cwd.compute_loss((x, view), y, logits, w))
    assert got == pytest.approx(0.75 * ce + 0.25 * kl_channel, rel=1e-4)
    agree = Objective(student, teacher=student, kd_weight=0.5, kd_mode="channel")  # KL 0 in this mode too
    assert float(agree.compute_loss(x, y, logits, w)) == pytest.approx(0.5 * ce, rel=1e-4, abs=1e-6)
    same = Objective(student, teacher=student, kd_weight=0.5)  # a teacher that agrees: KL 0, half the CE
    assert float(same.compute_loss(x, y, logits, w)) == pytest.approx(0.5 * ce, rel=1e-4, abs=1e-6)
    # (training=True moves the batch norms' statistics: the checks above come first)
    assert plain(x, training=True).shape == (2, 64, 96, 3)  # one output when nothing needs more

    aux = Objective(student, aux_weight=0.4)
    main, side = aux(x, training=True)
    assert tuple(side.shape) == (2, 4, 6, 3)  # stride 16
    assert aux(x, training=False).shape == (2, 64, 96, 3)  # inference: the network alone
    side_up = ops.convert_to_numpy(ops.image.resize(side, (64, 96), interpolation="bilinear"))
    main = ops.convert_to_numpy(main)
    want = float((_ce(main, y) * w).mean()) + 0.4 * float((_ce(side_up, y) * w).mean())
    assert float(aux.compute_loss(x, y, (main, side), w)) == pytest.approx(want, rel=1e-4)
    assert not any("aux" in layer.name for layer in student.layers)  # the head hangs off the encoder, outside
    assert len(aux.trainable_variables) == len(student.trainable_variables) + 5  # shared layers counted once
    # the dense stem's encoder has no stride-2 output: the head still reads the stride-16 feature (it took the
    # stride-32 one by its place in the list)
    stem = build_unet(3, (64, 96), "mobilenet_v2_dense_stem", alpha=0.35, decoder="tiny")
    assert tuple(Objective(stem, aux_weight=0.4)(x, training=True)[1].shape) == (2, 4, 6, 3)
    keras.backend.clear_session()


@pytest.mark.slow
def test_train_with_a_teacher_and_an_aux_head_saves_the_student_alone(tiny_run, synthetic_data, tmp_path):
    """`train --teacher MODEL --aux-weight W --ema M`: the student learns, the saved model is the student's network
    alone (the layers a plain run saves), the settings are in config.json; a teacher of other classes is one line,
    and so is a momentum of 1 or more."""
    import keras
    from typer.testing import CliRunner

    from edgeseg.cli import app

    out = tmp_path / "kd"
    base = ["train", "--data", str(synthetic_data), "--size", "96x64", "--alpha", "0.35", "--decoder", "tiny"]
    args = [*base, "--out", str(out), "--teacher", str(tiny_run / "model.keras"), "--aux-weight", "0.4"]
    args += ["--ema", "0.9"]  # the averages cover the aux head too; the student's are what is saved
    args += ["--teacher-view", "frame"]  # batches of (student crops, the teacher's views) through fit
    args += ["--kd-mode", "channel"]  # the per-class term traces inside fit (static shapes, unknown batch)
    r = CliRunner().invoke(app, [*args, "--epochs", "1", "--batch-size", "6", "--lr", "3e-3"])
    assert r.exit_code == 0, r.output
    assert "distilling from model.keras (96x64" in r.output
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 2  # a header and one epoch
    saved = keras.saving.load_model(out / "model.keras", compile=False)
    plain = keras.saving.load_model(tiny_run / "model.keras", compile=False)
    assert [layer.name for layer in saved.layers] == [layer.name for layer in plain.layers]
    assert saved.count_params() == plain.count_params() and len(saved.outputs) == 1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["aux_weight"] == 0.4 and cfg["teacher"].endswith("model.keras") and cfg["kd_weight"] == 0.5
    assert cfg["ema"] == 0.9 and cfg["teacher_view"] == "frame" and cfg["kd_mode"] == "channel"
    alone = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "v"), "--teacher-view", "student"])
    assert alone.exit_code == 1 and "there is no teacher" in alone.output and not (tmp_path / "v").exists()
    for flag, value in (("--kd-mode", "channel"), ("--kd-weight", "0.3"), ("--kd-temperature", "4")):
        r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "k"), flag, value])
        assert r.exit_code == 1 and f"{flag}: there is no teacher" in r.output and not (tmp_path / "k").exists()
    high = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "e"), "--ema", "1"])
    assert high.exit_code == 2 and "--ema" in high.output and not (tmp_path / "e").exists()

    two = _two_class_copy(synthetic_data, tmp_path / "two", count=8)
    bad = CliRunner().invoke(
        app, ["train", "--data", str(two), "--out", str(tmp_path / "x"), "--teacher", str(tiny_run / "model.keras")]
    )
    assert bad.exit_code == 1 and "it predicts 5 classes, this dataset has 2" in bad.output
    assert "Traceback" not in bad.output
    none = CliRunner().invoke(
        app, [*base, "--out", str(tmp_path / "y"), "--backbone", "none", "--aux-weight", "0.4", "--epochs", "1"]
    )
    assert none.exit_code == 1 and "has no encoder" in none.output


def test_the_ablations_proxy_folder_holds_the_frames_the_hold_out_trained_and_validated_on(tmp_path):
    """benchmarks/camvid_ablation.py --int8 converts and scores the proxy model on a folder of links: it must hold
    exactly the frames `train --hold-out` trained on (train, also the calibration set) and validated on (val)."""
    import importlib.util

    import cv2

    from edgeseg.training.protocol import make_protocol

    spec = importlib.util.spec_from_file_location("camvid_ablation", "benchmarks/camvid_ablation.py")
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    camvid = tmp_path / "camvid"
    names = {"train": ["0001TP_1", "0006R0_1", "0006R0_2", "Seq05VD_1"], "val": ["0006R0_3", "0016E5_1"]}
    for split, stems in names.items():
        for folder in (split, f"{split}annot"):
            (camvid / folder).mkdir(parents=True)
        for i, stem in enumerate(stems):
            cv2.imwrite(str(camvid / split / f"{stem}.png"), np.full((6, 8, 3), 10 * i, np.uint8))
            cv2.imwrite(str(camvid / f"{split}annot" / f"{stem}.png"), np.full((6, 8), i % 12, np.uint8))
        lines = [f"{split}/{s}.png {split}annot/{s}.png" for s in stems]
        (camvid / f"{split}.txt").write_text("\n".join(lines) + "\n")
    dest = tmp_path / "proxy"
    assert ablation.proxy_dataset(camvid, "0006R0", dest) == 3
    protocol = make_protocol(camvid, "auto", ("train", "val"), ("0006R0",), None, "last")
    train, val = (open_dataset(dest, split, "camvid") for split in ("train", "val"))
    assert _stems(val) == _stems(protocol.val) == {"0006R0_1", "0006R0_2", "0006R0_3"}
    assert _stems(train) == _stems(protocol.train) == {"0001TP_1", "Seq05VD_1", "0016E5_1"}
    image, mask = val.read(2)  # a link to the frame it names, image and labels alike
    assert val.samples[2].image.name == "0006R0_3.png" and mask.max() == 0 and image.shape[:2] == (6, 8)
    assert ablation.proxy_dataset(camvid, "0006R0", dest) == 3  # made again from scratch, not on top


def test_held_out_means_one_set_for_train_eval_and_calibration(sessions, tiny_run):
    """Issue 34: `train --hold-out sessB_` trains on every other frame (the val split's too, none left in neither
    set), `eval --hold-out sessB_` scores exactly the held-out frames, and calibration leaves them out."""
    from typer.testing import CliRunner

    from converters.calibration import calibration_set
    from edgeseg.cli import app
    from edgeseg.datasets import open_dataset
    from edgeseg.spec import ModelSpec
    from edgeseg.training.protocol import make_protocol

    p = make_protocol(sessions, "auto", ("train",), ("sessB_",), None, "auto")
    assert _stems(p.val) == {f"sessB_{i:02d}" for i in range(4)}
    assert _stems(p.train) == {f"sessA_{i:02d}" for i in range(16)}  # the val split's sessA frame trains too
    assert "used by neither" not in p.note and p.to_dict()["hold_out"] == ["sessB_"]
    explicit = make_protocol(sessions, "auto", ("val",), ("sessB_",), None, "auto")  # a split asked for is kept
    val_split = {s.image.stem for s in open_dataset(sessions, "val").samples}
    assert _stems(explicit.train) == {n for n in val_split if not n.startswith("sessB_")}
    unused = 20 - len(explicit.train) - 4
    assert f"{unused} frames of the splits it does not train on (train) are used by neither" in explicit.note

    r = CliRunner().invoke(
        app, ["eval", str(tiny_run / "model.keras"), "--data", str(sessions), "--hold-out", "sessB_"]
    )
    assert r.exit_code == 0, r.output
    assert "(held out sessB_, 4 images)" in r.output
    # the tiny run held nothing out: eval --hold-out says its score may be no check (a new user reused a run
    # folder and read a score on frames the model trained on as a held-out one)
    assert "warning: model.keras may have trained on these frames (its run held out nothing" in r.output
    r = CliRunner().invoke(app, ["eval", str(tiny_run / "model.keras"), "--data", str(sessions), "--hold-out", "x9"])
    assert r.exit_code == 1 and "--hold-out x9: no frame's file name starts with it" in r.output

    spec = ModelSpec.load(tiny_run / "spec.json")
    spec.extra["protocol"] = p.to_dict()
    assert spec.held_out() == ("sessB_",)
    assert spec.trained_on(("sessB_",)) is False and spec.trained_on(("sessB_0",)) is False
    assert spec.trained_on(("sessA_",)) is True and spec.trained_on(("sessB_", "sessA_")) is True
    assert ModelSpec(input_hw=(8, 8), classes=("a", "b")).trained_on(("sessB_",)) is None  # no run recorded
    cal = calibration_set(sessions, spec, 200, hold_out=spec.held_out())
    names = {Path(f).stem for f in cal.images}
    assert names and not any(n.startswith("sessB_") for n in names)
    assert len(calibration_set(sessions, spec, 200).images) > len(cal.images)  # without it, they were drawn


def test_calibrating_on_a_dataset_of_other_classes_says_so_instead_of_missing_classes(sessions):
    """Issue 34: the CamVid model calibrated on a 5-class dataset said it 'never shows Pole, Road, ...', reading
    the dataset's mask values as CamVid's classes; it now says that the classes differ."""
    from dataclasses import replace

    from converters.calibration import calibration_set
    from edgeseg.assets import HERE
    from edgeseg.spec import ModelSpec

    camvid = ModelSpec.load(HERE / "camvid_nano.spec.json")
    cal = calibration_set(sessions, camvid, 8)
    assert any("are not the model's (Sky, Building, Pole, Road, ... 11 in all)" in w for w in cal.warnings)
    assert not any("never show" in w for w in cal.warnings) and cal.class_pixels is None
    ds = open_dataset(sessions, "train")
    own = replace(camvid, classes=tuple(ds.classes), colours=tuple(ds.colours))
    assert not any("are not the model's" in w for w in calibration_set(sessions, own, 8).warnings)
