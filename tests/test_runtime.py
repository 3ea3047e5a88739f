import numpy as np
import pytest

from edgeseg.errors import ModelError, RuntimeUnavailable
from edgeseg.postprocess import OutputKind
from edgeseg.predictors.tflite import Segmenter, pick_runtime
from edgeseg.spec import ModelSpec
from tests.conftest import shared_path
from tests.toy import solid

RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)  # BGR


@pytest.mark.parametrize("name", ["scores_float", "scores_int8", "scores_uint8"])
def test_score_outputs_give_the_dominant_colour_class(toy_models, name):
    seg = Segmenter(toy_models[name], threads=1)
    assert seg.kind is OutputKind.SCORES and seg.spec.num_classes == 3
    for colour, cls in ((RED, 0), (GREEN, 1), (BLUE, 2)):
        mask = seg.segment(solid(colour))
        assert mask.shape == (30, 70) and mask.dtype == np.uint8
        assert (mask == cls).all(), f"{name}: {colour} should be class {cls}"


def test_index_map_output(toy_models):
    seg = Segmenter(toy_models["index_int64"])
    assert seg.kind is OutputKind.INDEX
    frame = solid(GREEN, (33, 51))
    frame[:, 30:] = BLUE
    mask = seg.segment(frame)
    assert mask.shape == (33, 51) and (mask[:, :25] == 1).all() and (mask[:, 35:] == 2).all()


@pytest.mark.parametrize("name", ["prob_float", "prob_int8"])
def test_probability_output_thresholds_to_two_classes(toy_models, name):
    seg = Segmenter(toy_models[name])
    assert seg.kind is OutputKind.PROBABILITY and seg.spec.classes == ("background", "foreground")
    frame = solid(GREEN, (20, 40))
    frame[5:15, 10:30] = RED
    mask = seg.segment(frame)
    assert mask[10, 20] == 1 and mask[0, 0] == 0 and mask.sum() == pytest.approx(200, abs=40)


def test_mask_matches_a_non_square_frame_and_timings_are_recorded(toy_models):
    seg = Segmenter(toy_models["scores_int8"])
    frame = solid(RED, (101, 37))
    frame[:, 20:] = BLUE
    mask = seg.segment(frame)
    assert mask.shape == (101, 37) and mask[50, 5] == 0 and mask[50, 30] == 2
    assert set(seg.timings) == {"preprocess", "invoke", "postprocess"} and seg.timings["invoke"] > 0


def test_default_spec_for_quantised_input_feeds_raw_pixels(toy_models):
    seg = Segmenter(toy_models["scores_uint8"])
    s, zp = seg.input.scale, seg.input.zero_point
    assert not seg.embedded_spec
    # q = (pixel - mean) / std / s + zp must equal the pixel itself
    assert seg.spec.mean[0] == pytest.approx(zp) and seg.spec.std[0] == pytest.approx(1 / s)


def test_models_that_are_not_image_segmenters_are_rejected(toy_models, tmp_path):
    with pytest.raises(ModelError, match=r"input has shape \[1, 24, 40, 1\], expected \[1, H, W, 3\]"):
        Segmenter(toy_models["grey_input"])
    with pytest.raises(ModelError, match="expected \\[1,H,W,C\\] scores"):
        Segmenter(toy_models["classifier"])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x01\x02" * 100)
    with pytest.raises(ModelError, match="junk.tflite: not a TFLite model"):
        Segmenter(junk)
    with pytest.raises(ModelError, match="no such file|cannot read"):
        Segmenter(tmp_path / "missing.tflite")
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(toy_models["scores_float"].read_bytes()[:300])
    with pytest.raises(ModelError):
        Segmenter(truncated)


def test_unknown_runtime_and_delegate(toy_models):
    with pytest.raises(RuntimeUnavailable, match="unknown TFLite runtime 'onnx': choose one of litert, tflite-runtime"):
        Segmenter(toy_models["scores_float"], runtime="onnx")
    from edgeseg.predictors import open_predictor

    with pytest.raises(RuntimeUnavailable, match="unknown runtime 'tvm'"):
        open_predictor(toy_models["scores_float"], runtime="tvm")
    with pytest.raises(ModelError, match="--runtime onnx runs .onnx models, not .tflite"):
        open_predictor(toy_models["scores_float"], runtime="onnx")
    with pytest.raises(RuntimeUnavailable, match="unknown delegate 'gpu'"):
        Segmenter(toy_models["scores_float"], delegate="gpu")
    with pytest.raises(RuntimeUnavailable, match="Edge TPU delegate"):
        Segmenter(toy_models["scores_float"], delegate="edgetpu")


def test_runtime_choice_order():
    rt = pick_runtime("auto")
    assert rt.name == "litert"  # the maintained runtime comes first when installed
    with pytest.raises(RuntimeUnavailable, match="tflite-runtime is not available"):
        pick_runtime("tflite-runtime")


def test_peer_deeplab_uint8_index_map():
    seg = Segmenter(shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant.tflite"), threads=2)
    assert seg.kind is OutputKind.INDEX and seg.input_hw == (513, 513)
    frame = np.full((240, 320, 3), 127, np.uint8)
    mask = seg.segment(frame)
    assert mask.shape == (240, 320) and mask.max() < 21


def test_peer_selfie_probability():
    seg = Segmenter(shared_path("models", "peers", "selfie_segmentation.tflite"))
    assert seg.kind is OutputKind.PROBABILITY and seg.input_hw == (256, 256)
    assert seg.segment(np.zeros((120, 200, 3), np.uint8)).shape == (120, 200)


def test_peer_edgetpu_model_without_the_edge_tpu_says_so():
    p = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant_edgetpu.tflite")
    with pytest.raises(
        RuntimeUnavailable, match="compiled for the Edge TPU, but the Edge TPU delegate .* does not load"
    ):
        Segmenter(p)  # auto picks the Edge TPU delegate for such a model
    with pytest.raises(RuntimeUnavailable, match="compiled for the Edge TPU: run it with --delegate edgetpu"):
        Segmenter(p, delegate="cpu")


def test_open_model_gives_a_predictor_that_says_where_its_spec_came_from(toy_models, tmp_path):
    from edgeseg.models import open_model as load_model
    from edgeseg.predictors import Predictor

    seg = load_model(toy_models["scores_int8"])
    assert isinstance(seg, Predictor) and seg.spec_source in ("embedded", "inferred")
    spec = tmp_path / "spec.json"
    ModelSpec(input_hw=(24, 40), classes=("red", "green", "blue")).save(spec)
    given = load_model(toy_models["scores_int8"], spec=spec)
    assert given.spec_source == "given" and given.embedded_spec and given.describe()["spec_source"] == "given"
    # invoke_only runs the input set last: what bench times
    x, _ = given.prepare(np.zeros((8, 8, 3), np.uint8))
    given.set_input(x)
    given.invoke_only()
    assert given.interpreter.get_tensor(given._out_idx).shape == given.output.shape


def test_standard_tflite_metadata_gives_normalisation_and_labels():
    """MediaPipe's selfie segmenter carries TFLite Metadata (NormalizationOptions mean 0, std 255) and a packed
    labels.txt ("selfie"): edgeseg reads both instead of guessing."""
    from edgeseg.tflite_file import read_model_bytes
    from edgeseg.tflite_metadata import read_standard_metadata

    path = shared_path("models", "peers", "selfie_segmentation.tflite")
    assert read_standard_metadata(read_model_bytes(path)) == {"mean": [0.0], "std": [255.0], "labels": ["selfie"]}
    seg = Segmenter(path)
    assert seg.spec_source == "metadata" and seg.spec.classes == ("background", "selfie")
    assert seg.spec.mean == (0.0, 0.0, 0.0) and seg.spec.std == (255.0, 255.0, 255.0)


def test_a_labels_file_names_a_models_classes(tmp_path, toy_models):
    from edgeseg.models import open_model as load_model
    from edgeseg.predictors.spec_source import read_labels

    f = tmp_path / "labels.txt"
    f.write_text("0 background\n1: person\n\nbicycle\n")
    assert read_labels(f) == ["background", "person", "bicycle"]  # Coral's "N name", "N: name" or bare names
    seg = load_model(toy_models["scores_int8"], labels=f)
    assert seg.spec.classes == ("background", "person", "bicycle") and len(seg.spec.colours) == 3
    f.write_text("a\nb\n")
    with pytest.raises(ModelError, match="2 labels for an output with 3 classes"):
        load_model(toy_models["scores_int8"], labels=f)
    f.write_text("\n\n")
    with pytest.raises(ModelError, match="no labels in it"):
        read_labels(f)
