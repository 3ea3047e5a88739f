"""Ranges for every number a user can hand edgeseg, checked by the CLI before native code sees them.

Values outside them used to reach OpenCV, LiteRT or numpy unchecked: an absurd --threads crashed the
interpreter with a segfault, and synthetic:20000x20000 took 23.6 GB before it made a frame.
"""

MAX_THREADS = 64  # interpreter threads; LiteRT segfaults on absurd counts
MAX_CAMERA_INDEX = 63  # V4L2 /dev/videoN
MAX_FRAME_SIDE = 7680  # pixels, either side of any frame, camera request or generated source (8K UHD)
MAX_FPS = 1000.0
MAX_RUNS = 1_000_000
MAX_IMAGE_PIXELS = 7680 * 7680  # an image or mask file larger than this is refused before it is decoded
MAX_JSON_BYTES = 1 * 2**20  # classes.json and other small JSON inputs
MAX_IMAGES = 1_000_000  # synthetic scenes, calibration and verification images, video frames


def check_threads(n: int | None, what: str = "--threads") -> int | None:
    """`n` if it is None or within 1..MAX_THREADS; EdgesegError naming `what` otherwise."""
    from edgeseg.errors import EdgesegError

    if n is not None and not 1 <= n <= MAX_THREADS:
        raise EdgesegError(f"{what}: {n} is outside 1..{MAX_THREADS}")
    return n


def check_frame_hw(hw: tuple[int, int], what: str = "size") -> tuple[int, int]:
    """`hw` (height, width) if both sides are within 1..MAX_FRAME_SIDE; EdgesegError naming `what` otherwise."""
    from edgeseg.errors import EdgesegError

    h, w = hw
    if not (0 < w <= MAX_FRAME_SIDE and 0 < h <= MAX_FRAME_SIDE):
        raise EdgesegError(f"{what}: {w}x{h} is outside 1..{MAX_FRAME_SIDE} pixels a side")
    return hw


def parse_wh(text: str, what: str = "size", example: str = "640x480") -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (height, width), checked against the limits; EdgesegError names `what` otherwise."""
    from edgeseg.errors import EdgesegError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise EdgesegError(f"{what}: expected WIDTHxHEIGHT like {example}, got {text!r}") from None
    return check_frame_hw((h, w), what)
