"""Shared fixtures: a tiny synthetic dataset, a tiny model trained once per session (and its float32 and
int8 .tflite), and toy .tflite files for each output convention. Everything is generated here; nothing is
downloaded. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A test run started in the background by a non-interactive shell (nohup, `&` in a script) inherits SIGINT as
# ignored, and so would every `edgeseg run` the tests start: the Ctrl-C tests would then wait forever. Ctrl-C is
# given back its default here, so that those tests test edgeseg and not how the suite was launched.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGESEG_SHARED", ROOT.parent / "shared"))
TINY_INPUT_HW = (64, 96)  # non-square on purpose
SCENE_HW = (72, 96)


# Training runs on whichever Keras backend KERAS_BACKEND names (CI runs the training tests on jax too, in an
# environment without TensorFlow); converting needs TensorFlow, and the tests that convert skip without it.
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
needs_tensorflow = pytest.mark.skipif(not HAS_TENSORFLOW, reason="converting needs TensorFlow (pip install '.[train]')")


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (../shared is not beside the repository)")
    return p


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    from edgeseg import synthetic

    return synthetic.write_dataset(tmp_path_factory.mktemp("synthetic") / "data", count=40, hw=SCENE_HW, seed=7)


@pytest.fixture(scope="session")
def sessions(tmp_path_factory) -> Path:
    """A generic dataset of 20 frames from two recording sessions, sessA_00..15 and sessB_00..03 (every 10th by
    name is the val split, as in the generic layout)."""
    from edgeseg import synthetic

    root = synthetic.write_dataset(tmp_path_factory.mktemp("sessions") / "data", count=20, hw=(72, 96), seed=3)
    images = sorted((root / "images").iterdir())
    for i, img in enumerate(images):
        name = f"sessA_{i:02d}" if i < 16 else f"sessB_{i - 16:02d}"
        mask = root / "masks" / f"{img.stem}.png"
        img.rename(img.with_name(name + img.suffix))
        mask.rename(mask.with_name(name + ".png"))
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, synthetic_data) -> Path:
    """A MobileNetV2-0.35 U-Net trained for 10 epochs on 36 synthetic scenes (about 30 s, most of it compiling).
    At 3 epochs its batch norms' moving statistics had not settled: it scored about 1% mIoU, near-uniform logits
    whose argmax any quantisation flips, and the conversions' agreement checks passed or failed by chance."""
    from edgeseg.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = TrainConfig(
        data=str(synthetic_data),
        out=str(out),
        input_hw=TINY_INPUT_HW,
        alpha=0.35,
        decoder="tiny",
        epochs=10,
        batch_size=6,
        lr=3e-3,
    )
    train(cfg, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def tiny_tflite(tiny_run, synthetic_data) -> dict[str, Path]:
    from edgeseg.converters.pipeline import convert

    out = {}
    for target, precision in (("float", "float32"), ("int8", "int8")):
        res = convert(
            tiny_run / "model.keras",
            precision=precision,
            calibration=synthetic_data,
            num_calibration=24,
            progress=False,
            log=lambda *_: None,
        )
        out[target] = res.path
        out[f"{target}_result"] = res
    return out


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory) -> dict[str, Path]:
    from tests import toy

    return toy.build_all(tmp_path_factory.mktemp("toy"))


@pytest.fixture
def frame_nonsquare() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (50, 130, 3), dtype=np.uint8)
