"""Segment one image and save the overlay beside it, with the share of each class and the model's confidence.

python examples/segment_image.py photo.jpg [--model nano]
python examples/segment_image.py            # a synthetic frame, when no image is given
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from edgeseg import EdgesegError, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", type=Path)
    ap.add_argument("--model", default="small")
    ap.add_argument("--out", type=Path, default=None, help="where the overlay goes (default: beside the image)")
    args = ap.parse_args()

    if args.image is None:
        from edgeseg.synthetic import scene

        frame, out = scene(0, (360, 480))[0], args.out or Path("synthetic_overlay.png")
        print(
            "no image given: a synthetic frame (shapes, not a street), so the road model's classes below say "
            "nothing about it; give a photo of a street to see what the model is for"
        )
    else:
        from edgeseg.images import read_image  # edgeseg's reader: one clear error, EXIF orientation applied

        frame = read_image(args.image)
        out = args.out or args.image.with_name(args.image.stem + "_overlay.png")
    seg = load_model(args.model)
    result = seg.predict(frame, scores=True)
    total = result.mask.size
    for name, n in sorted(result.class_pixels().items(), key=lambda kv: -kv[1]):
        print(f"{name:<12} {100 * n / total:5.1f}% of pixels")
    if result.scores is not None:
        print(f"mean confidence of the chosen class: {result.scores.max(axis=-1).mean():.2f}")
    cv2.imwrite(str(out), result.overlay())
    print(f"wrote {out}")


if __name__ == "__main__":
    try:
        main()
    except EdgesegError as e:  # a missing or corrupt image, a bad model: one line
        raise SystemExit(f"error: {e}") from None
