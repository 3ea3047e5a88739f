"""Training on Keras' three backends: choosing one before Keras loads, what each refuses, the mixed-precision policy
per device, and the numpy input pipeline every backend trains from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from tests.conftest import ROOT


def test_a_backend_is_chosen_before_keras_loads_and_a_missing_one_is_one_line(monkeypatch):
    import importlib.util

    import keras

    from edgeseg.training import backends

    here = keras.backend.backend()
    monkeypatch.setenv("KERAS_BACKEND", here)  # select_backend sets it; put back whatever it was after the test
    assert backends.select_backend(here) == here and os.environ["KERAS_BACKEND"] == here
    other = next(b for b in backends.BACKEND_TABLE if b != here)
    with pytest.raises(EdgesegError, match=f"Keras already runs on {here} in this process; .*KERAS_BACKEND={other}"):
        backends.select_backend(other)
    with pytest.raises(EdgesegError, match="unknown backend 'mxnet'"):
        backends.select_backend("mxnet")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == here else real(name, *a))
    monkeypatch.setitem(sys.modules, "keras", None)  # as if Keras were not loaded yet
    monkeypatch.setattr(backends, "running_backend", lambda: None)
    extra = backends.BACKEND_TABLE[here].extra
    display = backends.BACKEND_TABLE[here].display
    with pytest.raises(EdgesegError, match=rf"needs {display}, .*pip install 'edgeseg\[{extra}\]'"):
        backends.select_backend(here)


def test_each_backend_refuses_the_strategies_it_does_not_have_naming_those_that_do():
    from edgeseg.training.backends import training_backend

    with pytest.raises(EdgesegError, match="multiworker is not on the jax backend .*; tensorflow has it"):
        training_backend("jax").check_strategy("multiworker")
    with pytest.raises(EdgesegError, match="mirrored is not on the torch backend .*; tensorflow and jax have it"):
        training_backend("torch").check_strategy("mirrored")
    training_backend("tensorflow").check_strategy("multiworker")  # no error


def test_mixed_precision_follows_the_gpus():
    from edgeseg.training.backends.base import TrainingBackend

    class Fake(TrainingBackend):
        def __init__(self, *ccs):
            self.found = [{"index": i, "name": "gpu", "compute_capability": cc} for i, cc in enumerate(ccs)]

        def accelerators(self):
            return self.found

    assert Fake((9, 0)).mixed_policy(None) == "mixed_bfloat16"  # H100: bf16, no loss scaling
    assert Fake((7, 0)).mixed_policy(None) == "mixed_float16"  # V100: fp16 tensor cores
    assert Fake((8, 6), (7, 5)).mixed_policy(None) == "mixed_float16"  # the weakest GPU decides
    assert Fake((6, 0)).mixed_policy(None) is None and Fake((6, 0)).mixed_policy(True) == "mixed_float16"
    assert Fake().mixed_policy(None) is None and Fake().mixed_policy(True) == "mixed_bfloat16"  # the CPU: asked
    assert Fake((9, 0)).mixed_policy(False) is None
    where, peak = Fake().peak_memory()
    assert where == "host" and peak > 50 * 2**20  # this process's own peak, in bytes


def _pairs(n=10, hw=(40, 60), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]
    masks = [rng.integers(0, classes, hw, dtype=np.uint8) for _ in range(n)]
    masks[0][:5] = 255  # some void
    return images, masks


def test_batches_are_a_function_of_seed_epoch_and_index_and_cover_every_frame_each_epoch():
    from edgeseg.training.config import Augment
    from edgeseg.training.data import TrainingBatches

    images, masks = _pairs()
    for i, img in enumerate(images):
        img[0, 0] = i  # each frame's first pixel says which frame it is (no augmentation below)
    plain = TrainingBatches(images, masks, (40, 60), 4, 3, Augment.none(), seed=5, workers=1)
    assert len(plain) == 3  # 10 frames at batch 3: the partial batch is dropped
    seen = []
    for _ in range(2):
        batches = [plain[i] for i in range(len(plain))]
        x, y, w = batches[0]
        assert x.shape == (3, 40, 60, 3) and x.dtype == np.float32 and y.dtype == np.int32 and w.shape == (3, 40, 60)
        seen.append([int(b[0][k, 0, 0, 0]) for b in batches for k in range(3)])
        plain.on_epoch_end()
    assert len(set(seen[0])) == 9 and seen[0] != seen[1]  # no frame twice in an epoch; a new order next epoch
    again = TrainingBatches(images, masks, (40, 60), 4, 3, Augment(), seed=5, epoch=1, workers=1)
    other = TrainingBatches(images, masks, (40, 60), 4, 3, Augment(), seed=5, epoch=1, workers=1)
    np.testing.assert_array_equal(again[2][0], other[2][0])  # same seed, epoch and index: the same batch
    assert not np.array_equal(again[2][0], again[1][0])
    with pytest.raises(IndexError):
        plain[3]


def test_augmentation_pads_with_ignore_weighs_classes_and_keeps_labels_on_their_pixels():
    from edgeseg.training.augment import IGNORE, PAD_PIXEL, augment_pair
    from edgeseg.training.config import Augment
    from edgeseg.training.data import TrainingBatches

    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = 200  # the right half bright, and labelled 1
    mask = np.zeros((40, 60), np.uint8)
    mask[:, 30:] = 1
    shrink = Augment(scale=(0.5, 0.5), flip=False, jitter=0.0)
    img, lab = augment_pair(rgb, mask, (40, 60), shrink, np.random.default_rng(0))
    assert img.shape == (40, 60, 3) and lab.shape == (40, 60)
    assert (lab[20:] == IGNORE).all() and (img[20:] == PAD_PIXEL).all()  # padding below the 20x30 content
    assert set(np.unique(lab[:20, :30])) == {0, 1} and (img[:20, :30][lab[:20, :30] == 1] == 200).all()
    flipped, lab_f = augment_pair(rgb, mask, (40, 60), Augment((1.0, 1.0), True, 0.0), np.random.default_rng(1))
    assert ((flipped[..., 0] == 200) == (lab_f == 1)).all()  # a flip moves labels with their pixels
    jittered, _ = augment_pair(rgb, mask, (40, 60), Augment((1.0, 1.0), False, 0.4), np.random.default_rng(2))
    assert 0 <= jittered.min() and jittered.max() <= 255 and not np.allclose(jittered, rgb)

    images, masks = [rgb] * 4, [mask.copy() for _ in range(4)]
    masks[0][:10] = IGNORE
    batches = TrainingBatches(images, masks, (40, 60), 2, 4, Augment.none(), np.array([0.5, 3.0]), workers=1)
    _, y, w = batches[0]
    assert set(np.unique(w)) == {0.0, 0.5, 3.0} and (y[w == 0] == 0).all()  # void weighs 0 and is labelled 0
    assert (w[y == 1] == 3.0).all()


def test_the_teachers_view_is_the_students_crop_from_the_full_frame():
    """--teacher-view frame: the teacher's view covers the student's crop (scale, crop, padding, flip, jitter
    alike; the same random choices), resampled from the frame at the teacher's size, so it holds detail the
    student's smaller crop lost; batches carry it as the images' second half."""
    import cv2

    from edgeseg.training.augment import PAD_PIXEL, augment_pair, crop_view
    from edgeseg.training.config import Augment
    from edgeseg.training.data import TrainingBatches

    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    smooth = np.stack([xx * 1.5, yy * 2.0, 128 + 60 * np.sin(xx / 9 + yy / 13)], -1).clip(0, 255).astype(np.uint8)
    mask = (xx // 40).astype(np.uint8)
    for seed, aug in enumerate([Augment((0.75, 1.5), True, 0.0), Augment((0.5, 0.5), False, 0.0)] * 3):
        aug = Augment(aug.scale, aug.flip, 0.3) if seed >= 4 else aug  # and the same jitter on both
        img, lab = augment_pair(smooth, mask, (48, 64), aug, np.random.default_rng(seed))
        img2, lab2, view = augment_pair(smooth, mask, (48, 64), aug, np.random.default_rng(seed), (96, 128))
        np.testing.assert_array_equal(img, img2)  # the student's crop does not change
        np.testing.assert_array_equal(lab, lab2)
        assert view.shape == (96, 128, 3) and view.dtype == np.float32
        down = cv2.resize(view, (64, 48), interpolation=cv2.INTER_AREA)
        assert np.abs(down - img).mean() < 3.0, seed  # the same region, to a resampling's difference
        if aug.scale == (0.5, 0.5) and not aug.jitter:  # the 24x32 content and the padding grey below and right of it
            assert (view[56:] == PAD_PIXEL).all() and (view[:, 72:] == PAD_PIXEL).all()

    grey_free = np.full((120, 160, 3), 200, np.uint8)  # crops at the frame's corners, no padding: no grey
    for corner in ((0.0, 0.0), (1 / 3, 1 / 3)):
        assert (crop_view(grey_free, (*corner, 2 / 3, 2 / 3), (96, 128)) == 200).all()
    poles = np.zeros((120, 160, 3), np.uint8)
    poles[:, 20::7] = 255  # thin poles: the 64-wide student's crop loses them, the frame still has them
    plain = Augment((1.0, 1.0), False, 0.0)
    img, _, view = augment_pair(poles, mask, (48, 64), plain, np.random.default_rng(0), (96, 128))
    frame_at_teacher = cv2.resize(poles, (128, 96), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    student_up = cv2.resize(img, (128, 96), interpolation=cv2.INTER_LINEAR)  # what --teacher-view student shows
    assert np.abs(view - frame_at_teacher).mean() < 1.0
    assert np.abs(student_up - frame_at_teacher).mean() > 20.0

    batches = TrainingBatches([smooth] * 4, [mask] * 4, (48, 64), 4, 2, plain, workers=1, teacher_hw=(96, 128))
    (x, views), y, _ = batches[0]
    assert x.shape == (2, 48, 64, 3) and views.shape == (2, 96, 128, 3) and y.shape == (2, 48, 64)


def test_the_pipeline_is_numpy_and_opencv_only():
    """No tf.data: the modules that make batches import no TensorFlow, so jax and torch environments train from
    them (the PyDataset module itself needs Keras on a backend that is installed)."""
    backend = _other_backend()
    modules = ["edgeseg.training.augment", "edgeseg.training.backends"] + ["edgeseg.training.data"] * bool(backend)
    code = "import sys; sys.modules['tensorflow'] = None\nimport " + ", ".join(modules)
    env = {**os.environ, "KERAS_BACKEND": backend or "tensorflow"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    source = (ROOT / "edgeseg/training/data.py").read_text() + (ROOT / "edgeseg/training/augment.py").read_text()
    assert "import tensorflow" not in source and "tf.data." not in source


def _other_backend() -> str | None:
    """A non-TensorFlow backend installed here (CI's .venv-jax has jax), else None."""
    import importlib.util

    return next((b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None), None)


@pytest.mark.slow
def test_train_on_a_backend_without_tensorflow_writes_a_model_that_loads(synthetic_data, tmp_path):
    """`edgeseg train --backend jax|torch` trains without importing TensorFlow (CI runs it where TensorFlow is not
    installed at all), logs the epoch's throughput, and writes model.keras, spec.json and config.json."""
    backend = _other_backend()
    if backend is None:
        pytest.skip("needs jax or torch installed (pip install '.[jax]'); CI runs it in .venv-jax")
    out = tmp_path / "run"
    code = (  # blocking the import through sys.modules would fool Keras' own check for TensorFlow: ask afterwards
        "import sys\nfrom edgeseg.cli import main\nsys.argv = sys.argv[1:]\n"
        "try:\n    main()\nfinally:\n    print('tensorflow imported:', 'tensorflow' in sys.modules)"
    )
    args = ["edgeseg", "train", "--backend", backend, "--data", str(synthetic_data), "--out", str(out)]
    args += ["--size", "96x64", "--alpha", "0.35", "--decoder", "tiny", "--epochs", "2", "--batch-size", "6"]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert f"backend {backend}" in r.stdout and "wrote" in r.stdout and "tensorflow imported: False" in r.stdout
    rows = (out / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"epoch_seconds", "images_per_second", "peak_memory_mib", "val_miou"} <= set(header) and len(rows) == 3
    assert float(rows[-1].split(",")[header.index("images_per_second")]) > 0
    import json

    assert json.loads((out / "config.json").read_text())["backend"] == backend
    assert Path(out / "model.keras").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.heavy
def test_the_gpu_script_trains_small_then_nano_from_it_and_skips_what_is_done(synthetic_data, tmp_path):
    """scripts/gpu-train.sh (recipe v3 on a lent GPU) run here at toy sizes on whichever backend this
    environment has: small, then nano distilled from small's model.keras, each run in $OUT/<name>/; a second
    run finds both done and trains nothing."""
    import json

    import keras

    from edgeseg.packing import pack_dataset

    pack = pack_dataset(synthetic_data, tmp_path / "data.segpack").path
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "DATA": str(pack),
        "WEIGHTS": "none",
        "EPOCHS": "1",
        "BATCH": "6",
        "SMALL_SIZE": "96x64",
        "NANO_SIZE": "96x64",
        "BACKEND": keras.backend.backend(),
        "PYTHON": sys.executable,
        "HOLD_OUT": "scene_0001",
    }
    r = subprocess.run(["bash", "scripts/gpu-train.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for name in ("small", "nano"):
        assert (out / name / "model.keras").is_file() and (out / name / "history.csv").is_file()
    nano = json.loads((out / "nano" / "config.json").read_text())
    assert nano["teacher"].endswith("small/model.keras") and nano["hold_out"] == ["scene_0001"]
    assert [ln.split(":")[0] for ln in (out / "times.txt").read_text().splitlines()] == ["small", "nano"]
    again = subprocess.run(["bash", "scripts/gpu-train.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("done before") == 2, again.stdout + again.stderr
