import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.spec import ModelSpec
from tests.conftest import needs_tensorflow

pytestmark = pytest.mark.slow


def history(run):
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_run_folder_holds_model_spec_and_history(tiny_run, synthetic_data):
    spec = ModelSpec.load(tiny_run / "spec.json")
    assert spec.input_hw == (64, 96) and spec.classes[0] == "background" and spec.num_classes == 5
    assert spec.val_miou > 0.1 and spec.decoder  # it learns enough that its conversions have a model to agree with
    # the data is recorded relative to the run folder (no machine's absolute path), and found again from it
    assert not Path(spec.train_data).is_absolute() and spec.train_data.startswith("..")
    assert spec.train_data_from(tiny_run).resolve() == synthetic_data.resolve()
    rows = history(tiny_run)
    assert [int(r["epoch"]) for r in rows] == list(range(10))
    assert max(float(r["val_miou"]) for r in rows) == pytest.approx(spec.val_miou)
    assert not (tiny_run / "backup").exists()  # removed once the run finished
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])  # it learns


def test_model_shapes_and_edge_tpu_friendly_layers():
    import keras

    from edgeseg.choices import BACKBONES
    from edgeseg.training.model import build_unet

    alphas = {"mobilenet_v2": 0.35, "resnet50": 1.0, "none": 0.25}
    for backbone in BACKBONES:
        m = build_unet(4, (64, 96), backbone, alpha=alphas.get(backbone, 0.75), decoder="tiny")
        assert tuple(m.output.shape) == (None, 64, 96, 4)
        for layer in m.layers:
            if backbone != "none":  # the classic U-Net upsamples by transposed convolutions, by design
                assert not isinstance(layer, keras.layers.Conv2DTranspose)
            if isinstance(layer, keras.layers.UpSampling2D):
                assert layer.interpolation == "bilinear"
    with pytest.raises(EdgesegError, match="multiples of 32"):
        build_unet(3, (60, 96))
    with pytest.raises(EdgesegError, match="unknown backbone"):
        build_unet(3, (64, 64), "resnet101")
    with pytest.raises(EdgesegError, match="resnet50 has no width multiplier"):
        build_unet(3, (64, 64), "resnet50", alpha=0.5)
    with pytest.raises(EdgesegError, match="nothing is downloaded"):
        build_unet(3, (64, 64), "resnet50", weights="imagenet")
    with pytest.raises(EdgesegError, match="no such backbone weights file"):
        build_unet(3, (64, 64), weights="/nonexistent.h5")


def test_dense_decoder_stops_at_stride_4_with_dense_blocks_on_projected_skips():
    import keras

    from edgeseg.training.model import DECODERS, Decoder, build_unet

    def decoder_layers(m, kind):
        return [ln for ln in m.layers if ln.name.startswith("decoder") and type(ln) is kind]

    dense = build_unet(4, (64, 96), alpha=0.35, decoder="dense")
    names = [ln.name for ln in dense.layers]
    assert tuple(dense.output.shape) == (None, 64, 96, 4)
    assert "decoder3_up" in names and "decoder4_up" not in names  # three stages: stride 4
    assert dense.get_layer("logits").size == (4, 4)  # logits upsampled x4 to the input size
    assert not decoder_layers(dense, keras.layers.DepthwiseConv2D)
    convs = {ln.name: ln for ln in decoder_layers(dense, keras.layers.Conv2D)}
    assert [convs[f"decoder{i}a_conv"].kernel_size for i in (1, 2, 3)] == [(3, 3)] * 3
    assert [convs[f"decoder{i}_skip"].filters for i in (1, 2, 3)] == list(DECODERS["dense"].skip_widths)
    assert convs["decoder_top"].filters == 256
    # The separable presets keep four stages of depthwise + pointwise pairs.
    base = build_unet(4, (64, 96), alpha=0.35, decoder="base")
    assert len(decoder_layers(base, keras.layers.DepthwiseConv2D)) == 8 and base.get_layer("logits").size == (2, 2)
    # Widths alone still work, with fewer stages too.
    two = build_unet(4, (64, 96), alpha=0.35, decoder=(32, 16))
    assert tuple(two.output.shape) == (None, 64, 96, 4) and two.get_layer("logits").size == (8, 8)
    for bad, msg in (
        ("huge", "unknown decoder"),
        ((8, 8, 8, 8, 8), "1 to 4 positive widths"),
        (Decoder((8,), block="sparse"), "separable or dense"),
        (Decoder((8, 8), skip_widths=(4,)), "one per stage"),
    ):
        with pytest.raises(EdgesegError, match=msg):
            build_unet(4, (64, 96), alpha=0.35, decoder=bad)


def test_nano_decoder_and_an_encoder_cut_at_stride_16():
    import keras

    from edgeseg.training.model import DECODERS, Decoder, build_unet

    nano = build_unet(11, (96, 128), alpha=0.35, decoder="nano")
    names = [ln.name for ln in nano.layers]
    assert tuple(nano.output.shape) == (None, 96, 128, 11)
    assert "decoder2_up" in names and "decoder3_up" not in names and nano.get_layer("logits").size == (8, 8)
    assert [nano.get_layer(f"decoder{i}_skip").filters for i in (1, 2)] == list(DECODERS["nano"].skip_widths)
    cut = build_unet(
        5, (64, 96), alpha=0.35, decoder=Decoder((16, 8), block="dense", top_width=24, encoder_stride=16, blocks=1)
    )
    encoder = cut.get_layer("encoder")
    assert [tuple(o.shape[1:3]) for o in encoder.outputs] == [(32, 48), (16, 24), (8, 12), (4, 6)]
    assert "block_16_project" not in [ln.name for ln in encoder.layers]  # the stride-32 stage is not built
    names = [ln.name for ln in cut.layers]
    assert "decoder1b_conv" not in names and "decoder1a_conv" in names  # one block per stage
    assert cut.get_layer("logits").size == (4, 4) and tuple(cut.output.shape) == (None, 64, 96, 5)
    full = build_unet(5, (64, 96), alpha=0.35, decoder=Decoder((16, 8), block="dense", top_width=24, blocks=1))
    assert cut.count_params() < full.count_params()
    for bad, msg in (
        (Decoder((8,), encoder_stride=8), "choose 16 or 32"),
        (Decoder((8, 8, 8, 8), encoder_stride=16), "1 to 3 positive widths"),
        (Decoder((8,), blocks=0), "at least one block"),
    ):
        with pytest.raises(EdgesegError, match=msg):
            build_unet(4, (64, 96), alpha=0.35, decoder=bad)
    assert isinstance(nano.get_layer("decoder1a_conv"), keras.layers.Conv2D)


def test_nano_fine_scores_at_stride_4_within_nanos_budget():
    # nano_fine: nano's two stages, then one narrow block at stride 4: logits x4 (not x8) to the input, one block
    # in the last stage (blocks per stage), and under the 0.4 GMACs nano is held to at 256x192
    import keras

    from edgeseg.predictors.keras import all_layers
    from edgeseg.training.model import Decoder, build_unet

    fine = build_unet(11, (192, 256), decoder="nano_fine")
    names = [ln.name for ln in fine.layers]
    assert tuple(fine.output.shape) == (None, 192, 256, 11) and fine.get_layer("logits").size == (4, 4)
    assert {"decoder1b_conv", "decoder2b_conv", "decoder3a_conv"} <= set(names) and "decoder3b_conv" not in names
    assert tuple(fine.get_layer("head_logits").input.shape[1:3]) == (48, 64)

    def gmacs(model):
        total = 0
        for ln in all_layers(model):
            if isinstance(ln, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
                _, h, w, c = ln.output.shape
                k = ln.kernel_size[0] * ln.kernel_size[1]
                total += h * w * k * (c if isinstance(ln, keras.layers.DepthwiseConv2D) else c * ln.input.shape[-1])
        return total / 1e9

    nano = build_unet(11, (192, 256), decoder="nano")
    assert 0.375 < gmacs(nano) < 0.38 and gmacs(nano) < gmacs(fine) <= 0.4
    with pytest.raises(EdgesegError, match="one per stage"):
        build_unet(4, (64, 96), alpha=0.35, decoder=Decoder((8, 8), blocks=(1, 1, 1)))
    with pytest.raises(EdgesegError, match="at least one block"):
        build_unet(4, (64, 96), alpha=0.35, decoder=Decoder((8, 8), blocks=(1, 0)))


@needs_tensorflow
def test_dense_decoder_converts_to_an_all_int8_edge_tpu_ready_graph(tmp_path, synthetic_data, tiny_run):
    from edgeseg.edgetpu import lint
    from edgeseg.training.model import Decoder, build_unet

    spec = ModelSpec.load(tiny_run / "spec.json")
    small = Decoder((16, 12, 8), block="dense", skip_widths=(8, 8, 8), top_width=16)
    build_unet(spec.num_classes, (64, 96), alpha=0.35, decoder=small).save(tmp_path / "dense.keras")
    res = convert_int8(tmp_path / "dense.keras", spec, synthetic_data)
    assert res.ops.fully_int8, res.ops.non_int8_ops
    assert res.ops.ops["RESIZE_BILINEAR"] == 4 and res.ops.ops["CONCATENATION"] == 3
    assert lint(tmp_path / "dense.tflite").ready


def convert_int8(keras_file: Path, spec: ModelSpec, calibration: Path):
    """keras_file converted to full-integer int8 beside itself (.tflite), calibrated on 8 frames: the result."""
    from edgeseg.converters.pipeline import convert

    return convert(
        keras_file,
        keras_file.with_suffix(".tflite"),
        precision="int8",
        spec=spec,
        calibration=calibration,
        num_calibration=8,
        verify_images=2,
        progress=False,
        log=lambda s: None,
    )


def test_layer_names_are_deterministic():
    from edgeseg.training.model import build_unet

    a = [ln.name for ln in build_unet(3, (64, 64), "mobilenet_v3_small", decoder="tiny").layers]
    b = [ln.name for ln in build_unet(3, (64, 64), "mobilenet_v3_small", decoder="tiny").layers]
    assert a == b and "decoder1_up" in a and "head_logits" in a


def test_shared_backbone_weights_load():
    h5py = pytest.importorskip("h5py")
    from edgeseg.training.model import build_unet
    from tests.conftest import shared_path

    w = shared_path("weights", "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5")
    m = build_unet(3, (96, 128), weights=w)
    enc = m.get_layer("encoder")
    kernel = enc.get_layer("Conv1").get_weights()[0]
    with h5py.File(w, "r") as f:  # the very first kernel in the file is Conv1's: equal, not a fresh init
        assert np.array_equal(kernel, f["layers/conv2d/vars/0"][()])
    with pytest.raises(EdgesegError, match="cannot load"):
        build_unet(3, (96, 128), alpha=0.35, weights=w)


def test_resume_continues_the_same_run(tmp_path, synthetic_data):
    import keras

    from edgeseg.training.train import TrainConfig, train

    class StopAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    cfg = TrainConfig(
        data=str(synthetic_data),
        out=str(tmp_path / "r"),
        input_hw=(32, 64),
        alpha=0.35,
        decoder="tiny",
        epochs=4,
        batch_size=12,
    )
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda *_: None, callbacks=[StopAfterSecondEpoch()])
    assert (tmp_path / "r" / "backup").exists()
    with pytest.raises(EdgesegError, match="--resume"):
        train(cfg, log=lambda *_: None)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((epoch, int(self.model.optimizer.iterations.numpy())))

    train(cfg, resume=True, log=lambda *_: None, callbacks=[Record()])
    steps = 36 // 12
    assert seen == [(2, 2 * steps), (3, 3 * steps)]  # the same epoch and optimizer state, not a new run
    rows = history(tmp_path / "r")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    with pytest.raises(EdgesegError, match="already finished"):
        train(cfg, resume=True, log=lambda *_: None)


@pytest.mark.heavy
def test_ema_scores_and_saves_the_average_and_resumes_with_both(tmp_path, synthetic_data):
    """`train --ema M`: each epoch is scored and model.keras saved with the weights' moving average, training goes
    on with its own weights, and an interrupted run resumes with both as they were (the backup holds both)."""
    import keras

    from edgeseg.training.callbacks import ValidationMIoU
    from edgeseg.training.train import TrainConfig, load_train_data, train

    def state(model):
        opt = model.optimizer
        raw = [keras.ops.convert_to_numpy(v) for v in opt._trainable_variables]
        avg = [keras.ops.convert_to_numpy(v) for v in opt._model_variables_moving_average]
        return raw, avg

    ends, begins, raw_scores = {}, {}, {}

    class Watch(keras.callbacks.Callback):  # runs after edgeseg's callbacks (and after the backup)
        def __init__(self, stop_after=None):
            super().__init__()
            self.stop_after = stop_after

        def on_epoch_begin(self, epoch, logs=None):
            if epoch:
                begins[epoch] = state(self.model)

        def on_epoch_end(self, epoch, logs=None):
            ends[epoch] = state(self.model)
            judge.set_model(self.model)  # the training weights are back in the model here
            raw_scores[epoch] = (logs["raw_val_miou"], judge.evaluate()["val_miou"])
            if epoch == self.stop_after:
                raise KeyboardInterrupt

    out = tmp_path / "r"
    cfg = TrainConfig(
        data=str(synthetic_data), out=str(out), input_hw=(32, 64), alpha=0.35, decoder="tiny", epochs=3,
        batch_size=12, ema=0.9, keep="last",
    )  # fmt: skip
    data = load_train_data(cfg, lambda *_: None)
    judge = ValidationMIoU(data.val_frames, data.val_masks, data.spec, data.val_ignore)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda *_: None, callbacks=[Watch(stop_after=1)])
    for logged, scored in raw_scores.values():  # raw_val_miou scores the training weights, not the average
        assert logged == pytest.approx(scored, abs=1e-9)
    raw, avg = ends[1]
    assert max(float(np.abs(r - a).max()) for r, a in zip(raw, avg, strict=True)) > 1e-4  # averaging, not a copy
    train(cfg, resume=True, log=lambda *_: None, callbacks=[Watch()])
    for got, want in zip(begins[2], ends[1], strict=True):  # resumed with the training weights and the average
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    saved = keras.saving.load_model(out / "model.keras", compile=False)
    judge.set_model(saved)  # val_miou scores the average, which is what model.keras holds
    assert float(history(out)[-1]["val_miou"]) == pytest.approx(judge.evaluate()["val_miou"], abs=1e-6)
    assert [int(r["epoch"]) for r in history(out)] == [0, 1, 2] and "raw_val_miou" in history(out)[0]
    by_name = {v.path: keras.ops.convert_to_numpy(v) for v in saved.trainable_variables}
    raw, avg = ends[2]
    names = [v.path for v in saved.trainable_variables]
    assert len(names) == len(avg)
    for name, a in zip(names, avg, strict=True):  # model.keras holds the average, not the last step
        np.testing.assert_allclose(by_name[name], a, rtol=0, atol=1e-6)
    assert any(float(np.abs(by_name[n] - r).max()) > 1e-4 for n, r in zip(names, raw, strict=True))
    for bad in (1, -0.1, float("nan"), True):
        with pytest.raises(EdgesegError, match="ema .*: a momentum"):
            TrainConfig(data="d", out="o", ema=bad)


def test_class_weights_median_frequency():
    from edgeseg.training.data import median_frequency_weights

    masks = [np.array([[0, 0, 0, 1]], np.uint8), np.array([[0, 0, 2, 255]], np.uint8)]
    w = median_frequency_weights(masks, 4)
    # frequencies 5/7, 1/7, 1/7 and 0: median of the present ones is 1/7
    np.testing.assert_allclose(w, [0.2, 1.0, 1.0, 1.0])


def test_train_config_round_trips_and_refuses_what_it_does_not_know(tmp_path):
    from edgeseg.training.data import Augment
    from edgeseg.training.train import TrainConfig

    cfg = TrainConfig(
        data="d", out=str(tmp_path), input_hw=(32, 64), decoder="tiny", augment=Augment.none(), val_data="v", epochs=7
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # through JSON, as on disk
    # issue 34: the size as the CLI writes it (--size WxH) is taken too, and becomes (height, width)
    assert TrainConfig(data="d", out=str(tmp_path), input_hw="64x32", decoder="tiny").input_hw == (32, 64)
    with pytest.raises(EdgesegError, match="input_hw"):
        TrainConfig(data="d", out=str(tmp_path), input_hw="64 by 32")
    (tmp_path / "config.json").write_text(json.dumps({**cfg.to_dict(), "epochz": 3}))
    with pytest.raises(EdgesegError, match="unknown keys \\['epochz'\\]"):
        TrainConfig.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EdgesegError, match="config.json: unreadable"):
        TrainConfig.load(tmp_path)
    with pytest.raises(EdgesegError, match="nothing to resume"):
        TrainConfig.load(tmp_path / "nowhere")


@pytest.mark.slow
def test_resume_through_the_cli_uses_the_saved_settings(tmp_path, synthetic_data):
    """An interrupted run resumed with `edgeseg train --out RUN --resume`: the CLI reads config.json (its data, and
    not its own defaults, which differ here in size and epochs) and finishes the run's epochs."""
    import keras
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.training.train import TrainConfig, train

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    out = tmp_path / "r"
    cfg = TrainConfig(
        data=str(synthetic_data), out=str(out), input_hw=(32, 64), alpha=0.35, decoder="tiny", epochs=2, batch_size=12
    )
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda *_: None, callbacks=[StopAfterFirstEpoch()])
    r = CliRunner().invoke(app, ["train", "--out", str(out), "--resume"])  # the run folder knows its data
    assert r.exit_code == 0, r.output
    assert f"resuming {out} with its saved settings" in r.output
    assert [int(row["epoch"]) for row in history(out)] == [0, 1]  # 2 epochs, not the CLI's default 30
    assert tuple(keras.saving.load_model(out / "model.keras", compile=False).inputs[0].shape[1:3]) == (32, 64)


@pytest.mark.slow
@needs_tensorflow
@pytest.mark.heavy
def test_fcn_lraspp_and_classic_unet_train_and_convert_to_strict_int8_edge_tpu_ready(synthetic_data, tmp_path):
    """train --decoder fcn (FCN-8s on MobileNetV2), --decoder lraspp (LR-ASPP) and --backbone none (the classic
    U-Net, alpha-scaled) each train and convert --int8 --strict, every op on the Edge TPU's list; info counts the
    U-Net's MACs as Keras does (its transposed convolutions included)."""
    import json as _json

    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.cost import model_cost
    from edgeseg.edgetpu import lint
    from edgeseg.predictors.keras import keras_cost

    runner = CliRunner()
    for name, extra in (
        ("fcn", ["--decoder", "fcn", "--alpha", "0.35"]),
        ("lraspp", ["--decoder", "lraspp", "--alpha", "0.35"]),
        ("classic", ["--backbone", "none", "--alpha", "0.25"]),
    ):
        out = tmp_path / name
        r = runner.invoke(
            app, ["train", "--data", str(synthetic_data), "--out", str(out), "--size", "96x64", "--epochs", "1", *extra]
        )
        assert r.exit_code == 0, r.output
        r = runner.invoke(
            app,
            [
                "convert",
                str(out / "model.keras"),
                "--int8",
                "--strict",
                "--num-calibration",
                "16",
                "--json",
                str(out / "c.json"),
            ],
        )
        assert r.exit_code == 0, r.output
        result = _json.loads((out / "c.json").read_text())
        assert result["ops"]["fully_int8"] and lint(out / "model_int8.tflite").ready
        ops = result["ops"]["ops"]
        if name == "fcn":
            assert ops["RESIZE_BILINEAR"] == 3 and "TRANSPOSE_CONV" not in ops
        elif name == "lraspp":  # the gate: global MEAN, sigmoid, a broadcast MUL; resizes to stride 8, then x8
            # (two MULs: the gate's and the in-graph pixel scaling's)
            assert ops["RESIZE_BILINEAR"] == 2 and ops["MEAN"] == 1 and ops["LOGISTIC"] == 1 and ops["MUL"] == 2
            spec = _json.loads((out / "spec.json").read_text())
            assert spec["decoder"] == "lraspp"
        else:
            assert ops["TRANSPOSE_CONV"] == 3 and ops["MAX_POOL_2D"] == 3
            import keras

            macs, _ = keras_cost(keras.saving.load_model(out / "model.keras", compile=False))
            assert model_cost(out / "model_int8.tflite").macs == macs


def test_resnet50_takes_its_weights_from_a_file_and_caffe_pixels(tmp_path):
    import keras
    import numpy as np

    from edgeseg.training.model import build_unet

    base = keras.applications.ResNet50(input_shape=(64, 64, 3), include_top=False, weights=None)
    base.save_weights(tmp_path / "r50.weights.h5")
    m = build_unet(3, (64, 96), "resnet50", decoder="tiny", weights=tmp_path / "r50.weights.h5")
    enc = m.get_layer("encoder")
    np.testing.assert_array_equal(
        enc.get_layer("conv1_conv").get_weights()[0], base.get_layer("conv1_conv").get_weights()[0]
    )
    caffe = m.get_layer("caffe_pixels")
    y = np.asarray(caffe(np.array([[[[10.0, 20.0, 30.0]]]], np.float32)))[0, 0, 0]
    np.testing.assert_allclose(y, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-5)  # BGR minus the mean
