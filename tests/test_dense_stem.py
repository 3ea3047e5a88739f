"""The dense stem (train --backbone mobilenet_v2_dense_stem): MobileNetV2's stem to stride 4 as two dense strided
convolutions, fitted to the ImageNet stem's features before training."""

import numpy as np

from edgeseg.spec import ModelSpec
from tests.conftest import needs_tensorflow
from tests.test_training import convert_int8


@needs_tensorflow
def test_dense_stem_replaces_the_depthwise_stem_and_keeps_the_pretrained_rest(tmp_path, synthetic_data, tiny_run):
    """mobilenet_v2_dense_stem: MobileNetV2's stride-2/4 stem (Conv1, expanded_conv, block_1: depthwise on wide
    high-resolution maps) becomes two dense strided 3x3 convolutions; every later layer is MobileNetV2's, with its
    ImageNet weights; the model has fewer MACs, saves and loads, and converts to an all-int8 graph with no depthwise
    convolution above stride 4."""
    import keras

    from edgeseg.cost import model_cost
    from edgeseg.predictors.keras import all_layers
    from edgeseg.tflite_file import read_model_graph
    from edgeseg.training.model import build_unet
    from tests.conftest import shared_path

    w = shared_path("weights", "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5")
    plain = build_unet(3, (96, 128), "mobilenet_v2", decoder="nano", weights=w)
    stem = build_unet(3, (96, 128), "mobilenet_v2_dense_stem", decoder="nano", weights=w)
    names = {layer.name for layer in all_layers(stem)}
    assert not names & {"Conv1", "expanded_conv_depthwise", "block_1_expand", "block_1_depthwise"}
    convs = [stem.get_layer(f"encoder_stem{i}") for i in (1, 2)]
    assert [(c.strides, c.kernel_size, c.filters) for c in convs] == [((2, 2), (3, 3), 16), ((2, 2), (3, 3), 24)]
    for name in ("block_2_expand", "block_9_depthwise", "out_relu"):  # the pretrained rest, weights and all
        a, b = (m.get_layer("encoder").get_layer(name).get_weights() for m in (plain, stem))
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # the nano decoder's skips are the same features; a 4-stage decoder takes the stem's stride-2 one
    assert build_unet(3, (96, 128), "mobilenet_v2_dense_stem", decoder="tiny").output.shape[1:] == (96, 128, 3)
    spec = ModelSpec.load(tiny_run / "spec.json")
    small = build_unet(spec.num_classes, (64, 96), "mobilenet_v2_dense_stem", alpha=0.35, decoder="nano")
    small.save(tmp_path / "ds.keras")
    build_unet(spec.num_classes, (64, 96), "mobilenet_v2", alpha=0.35, decoder="nano").save(tmp_path / "plain.keras")
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    again = keras.models.load_model(tmp_path / "ds.keras")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(small(x)), atol=1e-5)
    costs = {}
    for name in ("ds", "plain"):
        res = convert_int8(tmp_path / f"{name}.keras", spec, synthetic_data)
        assert res.ops.fully_int8, res.ops.non_int8_ops
        costs[name] = model_cost(tmp_path / f"{name}.tflite").macs
    assert costs["ds"] < 0.95 * costs["plain"], costs
    graph = read_model_graph((tmp_path / "ds.tflite").read_bytes())
    dw_heights = [graph.tensors[op.outputs[0]].shape[1] for op in graph.ops if op.name == "DEPTHWISE_CONV_2D"]
    assert dw_heights and max(dw_heights) <= 64 // 4


def test_the_dense_stem_is_fitted_to_the_imagenet_stem_before_training(synthetic_data):
    """fit_dense_stem: the two new convolutions learn to hand the pretrained rest what MobileNetV2's own stem
    hands it (on the run's frames, no labels): on other crops of them, the fitted stem explains most of the
    ImageNet stem's features, where a fresh one explains none; build_unet takes its weights."""
    import keras

    from edgeseg.datasets import open_dataset
    from edgeseg.training.data import load_all
    from edgeseg.training.model import build_unet
    from edgeseg.training.stem import _crop, fit_dense_stem, imagenet_stem, stem_layer_names
    from tests.conftest import shared_path

    w = shared_path("weights", "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5")
    hw = (64, 96)
    images, _ = load_all(open_dataset(synthetic_data, "train"))
    said = []
    fitted = fit_dense_stem(images, hw, 1.0, w, seed=0, steps=300, log=said.append)
    assert set(fitted) == set(stem_layer_names()) and len(said) == 1 and "explains" in said[0]
    teacher = imagenet_stem(hw, 1.0, w)
    rng = np.random.default_rng(7)
    x = np.stack([_crop(images[i], hw, rng) for i in range(len(images))])
    target = np.asarray(teacher(x))

    def explained(weights):
        model = build_unet(3, hw, "mobilenet_v2_dense_stem", decoder="nano", weights=w)
        for name, values in (weights or {}).items():
            model.get_layer(name).set_weights(values)
        stem = keras.Model(model.input, model.get_layer("encoder_stem2_bn").output)
        return 1 - np.mean((np.asarray(stem(x)) - target) ** 2) / np.var(target)

    assert explained(fitted) > 0.3 and explained(None) < 0.1, (explained(fitted), explained(None))
