"""Run by tests/test_mediapipe.py in .venv-mediapipe (Google's mediapipe package; no edgeseg there): segment
images with MediaPipe's ImageSegmenter and save what it returns.

usage: python mediapipe_segment.py MODEL.tflite OUT.npz IMAGE...
OUT.npz holds labels, and for image i: mask_i (H x W class indices) and conf_i (H x W x C confidences)."""

import sys

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import core, vision


def main(model: str, out: str, images: list[str]) -> None:
    options = vision.ImageSegmenterOptions(
        base_options=core.base_options.BaseOptions(model_asset_path=model),
        output_category_mask=True,
        output_confidence_masks=True,
    )
    segmenter = vision.ImageSegmenter.create_from_options(options)
    arrays = {"labels": np.array(segmenter.labels)}
    for i, path in enumerate(images):
        rgb = np.ascontiguousarray(cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1])
        result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        arrays[f"mask_{i}"] = result.category_mask.numpy_view()[..., 0].copy()
        arrays[f"conf_{i}"] = np.stack([m.numpy_view().reshape(rgb.shape[:2]) for m in result.confidence_masks], -1)
    segmenter.close()
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
