"""doctor's camera lines: which camera indices open, and whether Picamera2 loads."""

from __future__ import annotations

from edgeseg.doctor import Check


def camera_checks() -> list[Check]:
    """The cameras that open (/dev/video0-9) and Picamera2's state."""
    return [_cameras(), _picamera()]


def _cameras() -> Check:
    from edgeseg.camera.sources import available_cameras

    found = available_cameras()
    if found:
        return Check("OK", "cameras", f"indices that open: {', '.join(map(str, found))}")
    return Check(
        "WARN",
        "cameras",
        "no camera opens (checked /dev/video0-9)",
        "plug one in, or use --source FILE|URL|synthetic; on a Pi's CSI camera use --picamera",
    )


def _picamera() -> Check:
    from edgeseg.camera.picamera import PICAMERA2_INSTALL, load_picamera2

    cls, problem = load_picamera2()
    if cls is not None:
        return Check("OK", "Picamera2", "importable (--picamera)")
    if "not installed" in problem:
        return Check("INFO", "Picamera2", "not installed", f"only for the Raspberry Pi camera: {PICAMERA2_INSTALL}")
    return Check("FAIL", "Picamera2", problem, "edgeseg run --picamera cannot work until it loads")
