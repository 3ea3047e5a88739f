"""The Raspberry Pi camera through Picamera2: loading it on Pi OS's own stack (any import failure explained),
and a frame source that takes the ISP's low-resolution YUV420 stream at the model's input size."""

from __future__ import annotations

import contextlib

import cv2
import numpy as np

from edgeseg.camera.frames import CorruptFrame, FrameSource, check_frame
from edgeseg.errors import SourceError


def yuv420_to_bgr(buffer: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A Picamera2 YUV420 (I420) lores array -> BGR at `size_wh`. The array is (height * 3 / 2, stride): each
    row is padded to the ISP's stride, which can exceed the width (a 300-wide stream has 320-byte rows: Y rows of
    `stride` bytes, then the U and V planes with rows of stride / 2). Converting the padded buffer as a whole
    keeps the planes aligned; the padding columns are then cropped off."""
    w, h = size_wh
    if buffer.ndim != 2 or buffer.shape[0] != h * 3 // 2 or buffer.shape[1] < w or buffer.shape[1] % 2:
        raise CorruptFrame(f"YUV420 buffer {buffer.shape} does not fit a {w}x{h} stream")
    return cv2.cvtColor(buffer, cv2.COLOR_YUV420p2BGR)[:h, :w]


PICAMERA2_INSTALL = (
    "on Raspberry Pi OS: sudo apt install python3-picamera2, and a venv made with "
    "python3 -m venv --system-site-packages"
)


def load_picamera2():
    """(the Picamera2 class, None), or (None, what went wrong and how to fix it). Any failure counts, not just
    ImportError: Pi OS installs Picamera2 from apt, built against its numpy 1.x, and a venv whose pip-installed
    numpy is 2.x makes its import fail with "ValueError: numpy.dtype size changed, may indicate binary
    incompatibility" (Picamera2 issues #1088, #1211)."""
    try:
        from picamera2 import Picamera2
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "picamera2":
            return None, f"Picamera2 is not installed ({PICAMERA2_INSTALL})"
        return None, f"Picamera2 is installed but needs a module that is missing ({e.name})"
    except Exception as e:  # noqa: BLE001 - whatever a system package raises on import is what we must explain
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "numpy" in text.lower() or "binary incompatib" in text.lower() or "_ARRAY_API" in text:
            return None, (
                f"Picamera2 does not load with numpy {np.__version__} in this environment ({text}): "
                "the apt Picamera2 is built for Pi OS's numpy 1.x: in this venv, pip install 'numpy<2' "
                "(and an opencv-python that accepts it)"
            )
        return None, f"Picamera2 does not load ({type(e).__name__}: {text})"
    return Picamera2, None


class Picamera2Source(FrameSource):
    """A Raspberry Pi camera through Picamera2, asking the ISP for a low-resolution stream at the model's
    input size so the CPU does not resize full frames."""

    live = True
    can_reconnect = True

    def __init__(self, size_wh: tuple[int, int] = (640, 480), lores_wh: tuple[int, int] | None = None):
        cls, problem = load_picamera2()
        if cls is None:
            raise SourceError(f"--picamera: {problem}")
        self._cls = cls
        # YUV420 needs even sizes (Picamera2's own segmentation example rounds them up the same way)
        self.size_wh, self.lores_wh = size_wh, tuple((v + 1) & ~1 for v in lores_wh) if lores_wh else None
        self.name = "picamera2"
        self._start()

    def _start(self) -> None:
        try:
            self.cam = self._cls()
            main = {"size": tuple(self.size_wh), "format": "RGB888"}  # RGB888 is BGR in memory order
            lores = {"size": tuple(self.lores_wh), "format": "YUV420"} if self.lores_wh else None
            config = (
                self.cam.create_video_configuration(main=main, lores=lores)
                if lores
                else self.cam.create_video_configuration(main=main)
            )
            self.cam.configure(config)
            self.cam.start()
        except Exception as e:  # libcamera raises its own kinds when no camera is attached
            raise SourceError(f"Picamera2 cannot start the camera ({e})") from None

    def read(self) -> np.ndarray | None:
        """The next lores frame as BGR (None if the camera stops); CorruptFrame for a buffer that does not fit."""
        try:
            if self.lores_wh:
                return check_frame(yuv420_to_bgr(self.cam.capture_array("lores"), self.lores_wh))
            return check_frame(self.cam.capture_array("main"))
        except CorruptFrame:
            raise
        except Exception:
            return None

    def reopen(self) -> None:
        """Close the camera and start it again."""
        self.close()
        self._start()

    def close(self) -> None:
        """Stop and close the camera."""
        with contextlib.suppress(Exception):
            self.cam.stop()
            self.cam.close()
