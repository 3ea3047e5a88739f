import numpy as np
import pytest

from edgeseg.errors import ModelError
from edgeseg.postprocess import OutputKind, index_mask, output_kind
from edgeseg.tensors import TensorInfo


def detail(shape, dtype, q=(0.0, 0)):
    return TensorInfo("out", tuple(shape), dtype, *q)


def test_int8_scores_argmax_on_signed_integers():
    # -1 beats -100: casting int8 to uint8 first would make -1 into 255 and -100 into 156 (still -1 wins) but
    # 5 vs -1 shows the bug: uint8 casting would pick -1 (255) over 5.
    out = np.array([[[[5, -1, -100]], [[-3, -1, -2]]]], np.int8)  # 1 x 2 x 1 x 3
    d = detail([1, 2, 1, 3], np.int8, (0.1, -10))
    assert output_kind(d) is OutputKind.SCORES
    assert index_mask(out, d, OutputKind.SCORES).ravel().tolist() == [0, 1]
    assert out.astype(np.uint8).argmax(-1).ravel().tolist() != [0, 1]  # the pitfall the code avoids


def test_uint8_and_float_scores():
    out = np.array([[[[10, 200, 30]]]], np.uint8)
    assert index_mask(out, detail([1, 1, 1, 3], np.uint8, (0.1, 0)), OutputKind.SCORES).tolist() == [[1]]
    f = np.array([[[[0.1, -2.0, 0.3]]]], np.float32)
    assert index_mask(f, detail([1, 1, 1, 3], np.float32), OutputKind.SCORES).tolist() == [[2]]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("classes", [2, 11, 64, 65])
def test_8bit_argmax_matches_numpy_ties_and_all(dtype, classes):
    # 8-bit scores take a faster path up to 64 classes (one transpose, a comparison per class): it must give
    # numpy's answer everywhere, ties to the first class included, the extremes of the type, and odd shapes
    rng = np.random.default_rng(classes)
    info = np.iinfo(dtype)
    out = rng.integers(info.min, info.max, (1, 37, 53, classes), endpoint=True, dtype=dtype)
    out[0, :5] = rng.integers(0, 3, (5, 53, classes)).astype(dtype)  # few values: many ties
    out[0, 5, :, :] = info.min  # every class at the minimum: class 0
    out[0, 6, :, :-1], out[0, 6, :, -1] = info.min, info.max  # the last class alone at the maximum
    got = index_mask(out, detail(out.shape, dtype, (0.1, 0)), OutputKind.SCORES)
    assert got.dtype == np.uint8 and got.shape == (37, 53)
    assert np.array_equal(got, out[0].argmax(-1))
    assert (got[5] == 0).all() and (got[6] == classes - 1).all()
    view = out[:, :, ::2]  # a strided view in: the same answer
    assert np.array_equal(index_mask(view, detail(view.shape, dtype, (0.1, 0)), OutputKind.SCORES), view[0].argmax(-1))


@pytest.mark.parametrize("shape", [[1, 2, 3], [2, 3], [1, 2, 3, 1]])
def test_index_maps(shape):
    d = detail(shape, np.int64)
    assert output_kind(d) is OutputKind.INDEX
    out = np.arange(6, dtype=np.int64).reshape(shape)
    m = index_mask(out, d, OutputKind.INDEX)
    assert m.shape == (2, 3) and m.dtype == np.uint8 and m.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_probability_float_and_quantised_threshold():
    d = detail([1, 1, 3, 1], np.float32)
    assert output_kind(d) is OutputKind.PROBABILITY
    out = np.array([0.2, 0.5, 0.51], np.float32).reshape(1, 1, 3, 1)
    assert index_mask(out, d, OutputKind.PROBABILITY).tolist() == [[0, 0, 1]]
    dq = detail([1, 1, 3, 1], np.int8, (1 / 256, -128))  # real = (q + 128) / 256
    q = np.array([-1, 0, 1], np.int8).reshape(1, 1, 3, 1)  # 0.4961, 0.5, 0.5039
    assert output_kind(dq) is OutputKind.PROBABILITY
    assert index_mask(q, dq, OutputKind.PROBABILITY).tolist() == [[0, 0, 1]]
    assert index_mask(q, dq, OutputKind.PROBABILITY, threshold=0.49).tolist() == [[1, 1, 1]]


@pytest.mark.parametrize("shape,dtype", [([1, 10], np.float32), ([1, 4, 4, 4, 2], np.float32), ([2, 3], np.float32)])
def test_outputs_that_are_not_segmentation_are_rejected(shape, dtype):
    with pytest.raises(ModelError, match="expected"):
        output_kind(detail(shape, dtype))
