"""Facts about the machine, read in one place: CPU name and int8 dot-product features (from /proc/cpuinfo),
governor and clock, memory in use, the board model, whether a display is there. bench records them with every
result and doctor turns them into checks. Standard library, plus numpy and OpenCV's versions for environment()."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path


def installed_version(dist: str) -> str | None:
    """A distribution's installed version (pip's name for it), or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def rss_mb() -> float | None:
    """Memory this process holds now (MB), from /proc/self/statm."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


def peak_rss_mb() -> float | None:
    """The most memory this process has held (MB)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, AttributeError):
        return None


def read_sys(path: str) -> str | None:
    """A /proc or /sys file's text, stripped; None where it cannot be read."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


# CPU features that give int8 convolutions more multiply-accumulates per instruction than float32 FMA; XNNPACK
# picks kernels that use them. Without one (x86 with AVX2 only), XNNPACK's int8 kernels run about as fast as its
# float32 ones: measured on an AVX2 EPYC, int8 / float p50 0.98 for a MobileNetV2 U-Net (docs/benchmarks.md).
INT8_DOT_FLAGS = {"x86": ("avx512_vnni", "avx_vnni", "amx_int8"), "arm": ("asimddp", "i8mm", "sve2")}


def cpu_int8_features(cpuinfo: str) -> dict:
    """{'arch': 'x86'|'arm'|None, 'features': [...]} from the text of /proc/cpuinfo."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    arch = "x86" if "sse2" in flags or "avx2" in flags else "arm" if "asimd" in flags or "neon" in flags else None
    wanted = INT8_DOT_FLAGS.get(arch, ())
    return {"arch": arch, "features": [f for f in wanted if f in flags]}


def int8_dot_text(env: dict) -> str:
    """The environment's int8 dot-product features as a phrase for tables."""
    feats = env.get("cpu_int8_dot")
    return "int8 dot product " + ("n/a" if feats is None else ", ".join(feats) or "none")


def environment() -> dict:
    """What a number means depends on where it was taken: record that with it."""
    cpu = None
    info = read_sys("/proc/cpuinfo") or ""
    for line in info.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            cpu = line.split(":", 1)[1].strip()
            break
    import cv2
    import numpy as np

    env = {
        "cpu": cpu or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "governor": read_sys("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_mhz": None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "cpu_int8_dot": cpu_int8_features(info)["features"] if info else None,
    }
    khz = read_sys("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if khz and khz.isdigit():
        env["cpu_max_mhz"] = int(khz) // 1000
    return env


def board_model() -> str | None:
    """The board's name: /proc/device-tree/model (Raspberry Pi, Coral Dev Board), else cpuinfo's Model line."""
    model = (read_sys("/proc/device-tree/model") or "").replace("\x00", "").strip() or None
    if model is None:
        for line in (read_sys("/proc/cpuinfo") or "").splitlines():
            if line.startswith("Model") and ":" in line:
                model = line.split(":", 1)[1].strip()
    return model


def has_display() -> bool:
    """A window can open: on Linux, an X server or a Wayland compositor that answers (a DISPLAY left over from a
    closed session used to make Qt abort the process with exit 134); assumed elsewhere."""
    if not sys.platform.startswith("linux"):
        return True
    wayland = os.environ.get("WAYLAND_DISPLAY")
    if wayland:
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if _answers(wayland if wayland.startswith("/") else os.path.join(runtime, wayland)):
            return True
    display = os.environ.get("DISPLAY")
    return bool(display) and x_server_answers(display)


def x_server_answers(display: str) -> bool:
    """Whether the X server DISPLAY names accepts a connection (":N" a local socket, "host:N" TCP 6000+N)."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        return _answers(f"/tmp/.X11-unix/X{number}") or _answers(f"@/tmp/.X11-unix/X{number}")
    import socket

    try:
        with socket.create_connection((host, 6000 + int(number)), timeout=0.5):
            return True
    except OSError:
        return False


def _answers(path: str) -> bool:
    """A unix socket at `path` ("@..." an abstract one) accepts a connection."""
    import socket

    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(address)
            return True
        except OSError:
            return False
