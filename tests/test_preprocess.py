import numpy as np
import pytest

from edgeseg.preprocess import Geometry, dequantize, fit, preprocess, quantize, restore_mask, to_tensor
from edgeseg.spec import ModelSpec
from edgeseg.tensors import TensorInfo

INT8_RAW = TensorInfo("image", (1, 32, 64, 3), np.int8, 1.0, -128)
UINT8_RAW = TensorInfo("image", (1, 32, 64, 3), np.uint8, 1.0, 0)
FLOAT = TensorInfo("image", (1, 32, 64, 3), np.float32)


def spec(**kw):
    return ModelSpec(input_hw=(32, 64), classes=("a", "b"), **kw)


def reference_quantize(x, t):  # the formula, written out once more on purpose
    s, z = t.scale, t.zero_point
    info = np.iinfo(t.dtype)
    return np.clip(np.round(x / s + z), info.min, info.max).astype(t.dtype)


def test_stretch_non_square_frame_lands_in_numpy_order(frame_nonsquare):
    out, geom = fit(frame_nonsquare, (32, 64))
    assert out.shape == (32, 64, 3)
    assert geom.frame_hw == (50, 130) and geom.box == (0, 0, 32, 64)


def test_letterbox_keeps_aspect_and_pads_grey(frame_nonsquare):
    out, geom = fit(frame_nonsquare, (64, 64), "letterbox")
    y0, x0, h, w = geom.box
    assert (x0, w) == (0, 64) and h == round(50 * 64 / 130) and y0 == (64 - h) // 2
    assert (out[0] == 114).all() and (out[-1] == 114).all()


def test_restore_mask_inverts_letterbox_and_returns_frame_size():
    geom = Geometry(frame_hw=(50, 130), input_hw=(64, 64), box=(20, 0, 25, 64))
    mask = np.zeros((64, 64), np.uint8)
    mask[20:45, 32:] = 1  # right half of the content is class 1
    out = restore_mask(mask, geom)
    assert out.shape == (50, 130)
    assert (out[:, :64] == 0).all() and (out[:, 66:] == 1).all()


def test_restore_mask_from_a_smaller_output():
    geom = Geometry(frame_hw=(40, 80), input_hw=(32, 64), box=(0, 0, 32, 64))
    out = restore_mask(np.kron(np.array([[0, 1]], np.uint8), np.ones((16, 16), np.uint8)), geom)
    assert out.shape == (40, 80) and (out[:, :40] == 0).all() and (out[:, 40:] == 1).all()


@pytest.mark.parametrize("detail", [INT8_RAW, UINT8_RAW])
def test_fast_integer_path_equals_the_quantisation_formula(detail):
    img = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    fast = to_tensor(img, spec(), detail)
    slow = reference_quantize(img[..., ::-1].astype(np.float32), detail)[None]
    assert fast.dtype == detail.dtype and np.array_equal(fast, slow)


def test_general_quantisation_with_normalisation():
    # DeepLab-style input: real in [-1, 1], uint8 with scale 1/128 and zero point 128
    detail = TensorInfo("image", (1, 32, 64, 3), np.uint8, 1 / 128, 128)
    s = spec(mean=127.5, std=127.5)
    img = np.array([[[0, 128, 255]]], np.uint8)
    out = to_tensor(img, s, detail)
    real = (img[..., ::-1].astype(np.float32) - 127.5) / 127.5
    assert np.array_equal(out, reference_quantize(real, detail)[None])
    assert out[0, 0, 0].tolist() == [255, 129, 0]  # RGB order (blue 255 last); 128 -> 128.5 rounds up


def test_float_input_normalised_and_rgb_ordered():
    s = spec(mean=0.0, std=255.0)
    img = np.zeros((32, 64, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    x = to_tensor(img, s, FLOAT)
    assert x.dtype == np.float32 and x.shape == (1, 32, 64, 3)
    assert np.allclose(x[0, ..., 0], 1.0) and np.allclose(x[0, ..., 1:], 0.0)
    bgr = to_tensor(img, spec(std=255.0, channel_order="BGR"), FLOAT)
    assert np.allclose(bgr[0, ..., 2], 1.0)


def test_quantize_dequantize_round_trip_and_clipping():
    d = TensorInfo("x", (4,), np.int8, 0.5, 3)
    q = quantize(np.array([-100.0, 0.0, 1.0, 100.0]), d)
    assert q.tolist() == [-128, 3, 5, 127]
    assert dequantize(q, d).tolist() == [-65.5, 0.0, 1.0, 62.0]


def test_preprocess_accepts_grey_and_bgra_frames():
    s = spec()
    grey = np.full((10, 20), 200, np.uint8)
    bgra = np.full((10, 20, 4), 200, np.uint8)
    for f in (grey, bgra):
        t, g = preprocess(f, s, UINT8_RAW)
        assert t.shape == (1, 32, 64, 3) and (t == 200).all() and g.frame_hw == (10, 20)


@pytest.mark.parametrize("frame_hw", [(480, 640), (1080, 1920), (720, 1280), (481, 641)])
def test_a_big_shrink_averages_by_whole_factors_and_stays_close_to_one_step_area(frame_hw):
    """issue 37: 640x480 -> 256x192 by INTER_AREA cost 0.6 ms (OpenCV's fast path takes whole factors only);
    resize_to averages by the largest whole factor first, then finishes bilinear, within a grey level or two."""
    import cv2

    from edgeseg.preprocess import _whole_factor, resize_to
    from edgeseg.synthetic import scene

    frame = scene(3, frame_hw)[0]
    frame = cv2.GaussianBlur(frame, (0, 0), 1.0) + np.random.default_rng(0).integers(0, 20, frame.shape, np.uint8)
    out = resize_to(frame, 192, 256)
    assert out.shape == (192, 256, 3) and out.dtype == np.uint8
    area = cv2.resize(frame, (256, 192), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - area).mean() < 2.5
    assert _whole_factor(640, 256) == 2 and _whole_factor(1920, 256) == 6 and _whole_factor(1080, 192) == 5
    assert _whole_factor(641, 256) == 1  # a prime width: no whole factor, the one-step average
    # a shrink under 2x is bilinear, as training resizes
    small = resize_to(frame, frame_hw[0] * 2 // 3, frame_hw[1] * 2 // 3)
    lin = cv2.resize(frame, (frame_hw[1] * 2 // 3, frame_hw[0] * 2 // 3), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(small, lin)


def test_channel_swap_gives_the_same_tensor_as_the_reversed_view(frame_nonsquare):
    img = np.ascontiguousarray(frame_nonsquare[:32, :64])
    for t in (INT8_RAW, UINT8_RAW):
        out = to_tensor(img, spec(), t)
        want = reference_quantize(img[..., ::-1].astype(np.float32), t)[None]
        assert out.dtype == t.dtype and np.array_equal(out, want)
    assert np.array_equal(to_tensor(img[:, :, :], spec(channel_order="BGR"), UINT8_RAW)[0], img)
    view = frame_nonsquare[:32, 10:74]  # a strided view in: the same values
    assert np.array_equal(to_tensor(view, spec(), UINT8_RAW), to_tensor(np.ascontiguousarray(view), spec(), UINT8_RAW))


@pytest.mark.parametrize(
    "mask_hw, input_hw, frame_hw, box",
    [
        ((96, 128), (192, 256), (480, 640), (0, 0, 192, 256)),  # --output-size half, a VGA camera: whole factors
        ((96, 128), (192, 256), (360, 480), (0, 0, 192, 256)),  # CamVid's frames: 3.75x, not whole
        ((64, 64), (64, 64), (1080, 1920), (14, 0, 36, 64)),  # letterboxed, cropped first
        ((33, 47), (33, 47), (100, 47), (0, 0, 33, 47)),  # taller only: no horizontal step
        ((96, 128), (192, 256), (90, 600), (0, 0, 192, 256)),  # fewer rows, more columns: OpenCV alone
    ],
)
def test_restore_mask_enlarges_as_opencv_nearest_does(mask_hw, input_hw, frame_hw, box):
    # the enlarging path (OpenCV along rows, numpy repeating whole rows) must pick the very pixels one cv2.resize
    # with INTER_NEAREST picks, for whole and fractional factors alike
    import cv2

    from edgeseg.preprocess import _nearest_rows

    rng = np.random.default_rng(sum(frame_hw))
    mask = rng.integers(0, 12, mask_hw, dtype=np.uint8)
    geom = Geometry(frame_hw=frame_hw, input_hw=input_hw, box=box)
    got = restore_mask(mask, geom)
    sy, sx = mask_hw[0] / input_hw[0], mask_hw[1] / input_hw[1]
    y0, x0, h, w = int(box[0] * sy), int(box[1] * sx), max(1, round(box[2] * sy)), max(1, round(box[3] * sx))
    want = cv2.resize(mask[y0 : y0 + h, x0 : x0 + w], frame_hw[::-1], interpolation=cv2.INTER_NEAREST)
    assert got.shape == frame_hw and got.flags.c_contiguous and np.array_equal(got, want)
    wide = rng.integers(0, 65535, (7, 5), dtype=np.uint16)  # beyond 256 classes the mask is uint16
    big = restore_mask(wide, Geometry(frame_hw=(50, 23), input_hw=(7, 5), box=(0, 0, 7, 5)))
    assert big.dtype == np.uint16 and np.array_equal(big, cv2.resize(wide, (23, 50), interpolation=cv2.INTER_NEAREST))
    for src in range(1, 60):  # every row mapping up to 11x, against OpenCV's own
        col = np.arange(src, dtype=np.uint8)[:, None]
        for dst in range(src + 1, 11 * src, 3):
            assert np.array_equal(
                col[_nearest_rows(src, dst)], cv2.resize(col, (1, dst), interpolation=cv2.INTER_NEAREST)
            )


def test_quantisation_shortcut_is_decided_per_tensor_not_reused_wrongly():
    # the raw-pixel shortcut is cached per (mean, std, dtype, scale, zero point): a model whose input is not raw
    # pixels must still get its own formula after one that is
    img = np.random.default_rng(3).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    assert np.array_equal(to_tensor(img, spec(), INT8_RAW)[0], (img[..., ::-1].astype(np.int16) - 128).astype(np.int8))
    other = TensorInfo("image", (1, 32, 64, 3), np.int8, 1.0 / 128, 0)
    s = spec(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5))
    got = to_tensor(img, s, other)
    want = reference_quantize((img[..., ::-1].astype(np.float32) - 127.5) / 127.5, other)[None]
    assert np.array_equal(got, want)
    near = TensorInfo("image", (1, 32, 64, 3), np.int8, 1.0, -127)  # one zero point off: not the shortcut
    assert np.array_equal(
        to_tensor(img, spec(), near), reference_quantize(img[..., ::-1].astype(np.float32), near)[None]
    )
