"""doctor: what this machine can do for edgeseg, each line OK / WARN / FAIL with a hint.

The device core's checks live here (Python, the runtimes, the Edge TPU, OpenCV, the CPU, the board); the camera's
(edgeseg.camera.checks) and training's (edgeseg.training.checks) live with them and are handed to run_checks by
the command, so that this module imports neither."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeseg.host import installed_version, read_sys

PROBE = Path(__file__).parent / "assets" / "probe.tflite"


@dataclass
class Check:
    """One line of doctor's report."""

    status: str  # OK, WARN, FAIL, INFO
    name: str
    detail: str
    hint: str = ""


def _runtime(name: str, label: str, dist: str, hint: str) -> list[Check]:
    from edgeseg.predictors.tflite import import_runtime, ops_details

    if installed_version(dist) is None:
        return [Check("INFO", label, "not installed", hint)]
    try:
        rt = import_runtime(name)
    except ImportError as e:
        fix = "pip install 'numpy<2' in this environment, or use ai-edge-litert" if "numpy" in str(e) else hint
        return [Check("FAIL", label, f"{installed_version(dist)} installed but does not load: {e}", fix)]
    try:
        it = rt.interpreter_cls(model_path=str(PROBE), num_threads=1)
        it.allocate_tensors()
        it.invoke()
        ops = [op["op_name"] for op in ops_details(it)]
    except Exception as e:  # any interpreter failure is what doctor is here to say
        return [Check("FAIL", label, f"{rt.version} loads but cannot run a model: {e}", hint)]
    out = [Check("OK", label, f"{rt.version} runs a model")]
    xnn = "DELEGATE" in ops
    out.append(
        Check(
            "OK" if xnn else "WARN",
            f"{label} XNNPACK",
            "active (the CPU graph is delegated)"
            if xnn
            else "not applied: float and int8 run on the slower reference kernels",
            "" if xnn else "use ai-edge-litert, whose XNNPACK takes int8 graphs too",
        )
    )
    return out


# The runtimes beside the TFLite ones: (the distribution that brings it, the files it runs, the extra).
OTHER_RUNTIMES = (
    ("onnxruntime", ".onnx", "onnx"),
    ("openvino", ".xml", "openvino"),
    ("ncnn", ".param", "ncnn"),
    ("rknn-toolkit-lite2", ".rknn", "rknn"),  # Rockchip boards only (aarch64)
)


def other_runtimes() -> Check:
    """One line: which of ONNX Runtime, OpenVINO, ncnn and RKNN's runtime are installed (what `bench` can set
    side by side). RKNN's is suggested on aarch64 only: it has no other wheels."""
    import platform

    have = [f"{d} {installed_version(d)} ({s})" for d, s, _ in OTHER_RUNTIMES if installed_version(d)]
    arm = platform.machine() == "aarch64"
    missing = [(d, x) for d, _, x in OTHER_RUNTIMES if not installed_version(d) and (arm or d != "rknn-toolkit-lite2")]
    hint = "; ".join(f"{d}: pip install 'edgeseg[{extra}]'" for d, extra in missing)
    return Check("INFO", "other runtimes", ", ".join(have) or "none installed", hint)


def _edgetpu() -> Check:
    from edgeseg.errors import RuntimeUnavailable
    from edgeseg.predictors.tflite import edgetpu_library, load_delegate, pick_runtime

    lib = edgetpu_library()
    try:
        rt = pick_runtime("auto")
    except RuntimeUnavailable:
        return Check("WARN", "Edge TPU", "no TFLite runtime to load the delegate with")
    delegate, err = load_delegate(rt, lib)
    if delegate is not None:
        return Check("OK", "Edge TPU", f"{lib} loads (a Coral device is attached)")
    return Check(
        "INFO",
        "Edge TPU",
        f"{lib} does not load ({err})",
        "only needed for _edgetpu.tflite models: install the Edge TPU runtime (libedgetpu1-std) from "
        "Coral's package repository and attach the device",
    )


def opencv_checks(info: str | None = None) -> list[Check]:
    """OpenCV's version and the parts of its build edgeseg cares about, from cv2.getBuildInformation()'s text."""
    import cv2

    info = cv2.getBuildInformation() if info is None else info

    def has(key: str) -> str | None:
        for line in info.splitlines():
            if line.strip().startswith(key):
                return line.split(":", 1)[1].strip()
        return None

    gui = has("GUI")
    ffmpeg = has("FFMPEG")
    gst = has("GStreamer")
    v4l = has("v4l/v4l2") or has("V4L/V4L2") or has("V4L")
    out = [Check("OK", "OpenCV", f"{cv2.__version__} (GUI {gui or 'none'})")]
    out.append(
        Check(
            "OK" if ffmpeg and ffmpeg.startswith("YES") else "WARN",
            "OpenCV FFMPEG",
            ffmpeg or "NO",
            ""
            if ffmpeg and ffmpeg.startswith("YES")
            else "video files and rtsp:// streams need FFMPEG: pip install opencv-python",
        )
    )
    out.append(
        Check(
            "INFO",
            "OpenCV GStreamer",
            gst or "NO",
            ""
            if gst and gst.startswith("YES")
            else "not needed by edgeseg; a GStreamer build would allow pipeline strings as --source",
        )
    )
    if sys.platform.startswith("linux"):
        out.append(
            Check(
                "OK" if v4l and v4l.startswith("YES") else "WARN",
                "OpenCV V4L2",
                v4l or "NO",
                "" if v4l and v4l.startswith("YES") else "USB cameras need V4L2 support",
            )
        )
    return out


def _governor() -> Check:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        gov = p.read_text().strip()
    except OSError:
        return Check("INFO", "CPU governor", "not readable here")
    if gov == "performance":
        return Check("OK", "CPU governor", gov)
    return Check(
        "WARN",
        "CPU governor",
        gov,
        "benchmarks vary with the clock: for stable figures set the 'performance' governor while benchmarking",
    )


def int8_dot_check(info: str | None = None) -> Check:
    """Whether this CPU has int8 dot-product instructions (VNNI/AMX on x86, dotprod on ARM), from /proc/cpuinfo or
    `info`."""
    from edgeseg.host import INT8_DOT_FLAGS, cpu_int8_features

    info = read_sys("/proc/cpuinfo") if info is None else info
    if info is None:
        return Check("INFO", "CPU int8 dot product", "not readable here (no /proc/cpuinfo)")
    cpu = cpu_int8_features(info)
    if cpu["features"]:
        return Check(
            "OK",
            "CPU int8 dot product",
            f"{', '.join(cpu['features'])}: int8 models should run well ahead of float32 here",
        )
    if cpu["arch"] is None:
        return Check("INFO", "CPU int8 dot product", "unknown CPU flags")
    wanted = " / ".join(INT8_DOT_FLAGS[cpu["arch"]])
    if cpu["arch"] == "x86":
        return Check(
            "WARN",
            "CPU int8 dot product",
            f"none ({wanted} absent)",
            "XNNPACK's int8 kernels run about as "
            "fast as float32 on this CPU: int8 buys size, not speed, here (it still does on Edge TPU, "
            "NPUs and CPUs with VNNI, AMX or ARM dotprod)",
        )
    return Check(
        "INFO",
        "CPU int8 dot product",
        f"none ({wanted} absent)",
        "int8 still beats float32 on ARM NEON, by less than on a CPU with dotprod",
    )


def board_checks(model: str | None, machine: str, bits: int, has_libcamera: bool) -> list[Check]:
    """What matters on an ARM board: which board, whether the userland is 64-bit (ai-edge-litert has no armv7l
    wheels), and whether libcamera (what Picamera2 drives) is there. Nothing on other machines.

    Args:
        model: the board's model (/proc/device-tree/model), or None.
        machine: platform.machine().
        bits: the userland's pointer size in bits.
        has_libcamera: libcamera's tools or library were found.
    """
    is_arm = machine.lower().startswith(("arm", "aarch64"))
    if not is_arm and not (model and "raspberry pi" in model.lower()):
        return []
    out = [Check("INFO", "board", model or f"{machine} (no board model in /proc/device-tree/model)")]
    if bits == 64:
        out.append(Check("OK", "userland", f"64-bit ({machine})"))
    else:
        out.append(
            Check(
                "WARN",
                "userland",
                f"{bits}-bit ({machine})",
                "ai-edge-litert publishes no 32-bit ARM "
                "(armv7l) wheels: install 64-bit Raspberry Pi OS, or use tflite-runtime with numpy<2 where "
                "a wheel exists for this Python",
            )
        )
    if model and "raspberry pi" in model.lower():
        out.append(
            Check(
                "OK" if has_libcamera else "INFO",
                "libcamera",
                "present" if has_libcamera else "not found",
                ""
                if has_libcamera
                else "the Pi camera needs it: sudo apt install python3-picamera2 (brings libcamera)",
            )
        )
    return out


def _board() -> list[Check]:
    import shutil
    import struct

    from edgeseg.host import board_model

    model = board_model()
    libs = ("/usr/lib/aarch64-linux-gnu", "/usr/lib/arm-linux-gnueabihf")
    has_libcamera = any(shutil.which(c) for c in ("rpicam-hello", "libcamera-hello")) or any(
        next(Path(d).glob("libcamera.so*"), None) for d in libs if Path(d).is_dir()
    )
    return board_checks(model, platform.machine(), struct.calcsize("P") * 8, has_libcamera)


def recommend_model(info: str | None, cores: int | None) -> tuple[str, str]:
    """(shipped model name, why) for a CPU, from the text of /proc/cpuinfo and the core count.

    nano (0.38 GMACs) where a CPU has neither int8 dot products nor x86's width: ARM without dotprod (the Pi 4's
    Cortex-A72: about 7 GMAC/s at 4 threads in float, so small's 2.08 GMACs would be 3-5 FPS), or any ARM with
    fewer than 4 cores. small (2.08 GMACs) otherwise: ARM with dotprod (the Pi 5's A76) and x86."""
    from edgeseg.host import cpu_int8_features

    cpu = cpu_int8_features(info or "")
    cores = cores or 1
    if cpu["arch"] == "arm":
        if not cpu["features"]:
            return "nano", "ARM without int8 dot products (Pi-4 class): small would run at a few FPS"
        if cores < 4:
            return "nano", f"ARM with {cores} core(s): small needs 4 for realtime"
        return "small", f"ARM with int8 dot products ({', '.join(cpu['features'])}) and {cores} cores (Pi-5 class)"
    if cpu["arch"] == "x86":
        if cores < 2:
            return "nano", "a single x86 core"
        return "small", f"x86 with {cores} cores" + (
            "" if cpu["features"] else "; no int8 dot products, so int8 runs at float's speed here"
        )
    return "small", "unknown CPU: the default"


def roof_check(threads: tuple[int, ...] | None = None) -> Check:
    """This CPU's int8 and float roofs (edgeseg.roof's probe on LiteRT), at 1 thread and at all cores."""
    from edgeseg.errors import EdgesegError
    from edgeseg.roof import measure_roof

    cores = os.cpu_count() or 1
    threads = threads or tuple(sorted({1, cores}))
    parts = []
    try:
        for th in threads:
            int8, flt = measure_roof(th, "int8"), measure_roof(th, "float")
            parts.append(f"{th} thread(s): int8 {int8['gmacs_per_s']:.0f}, float {flt['gmacs_per_s']:.0f} GMAC/s")
    except EdgesegError as e:
        return Check("WARN", "roof", f"not measured: {e}")
    return Check(
        "INFO",
        "roof",
        "; ".join(parts),
        "what a model's GMACs can run at here: edgeseg bench shows each model's share",
    )


def _recommend(info: str | None = None, cores: int | None = None) -> Check:
    info = read_sys("/proc/cpuinfo") if info is None else info
    name, why = recommend_model(info, cores or os.cpu_count())
    return Check("INFO", "model for this CPU", f"{name} ({why})", f"edgeseg run {name} --camera 0")


def run_checks(
    gpus: Callable[[], list[Check]] | None = None, cameras: Callable[[], list[Check]] | None = None
) -> list[Check]:
    """Every check, in the order doctor prints them.

    Args:
        gpus: the training side's checks (GPUs), run after the TensorFlow line when TensorFlow is installed.
        cameras: the camera side's checks (cameras that open, Picamera2), run after OpenCV's.
    """
    import numpy as np

    checks = [
        Check("OK" if sys.version_info >= (3, 11) else "FAIL", "Python", platform.python_version()),
        Check("OK", "numpy", np.__version__),
        Check("INFO", "machine", f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"),
    ]
    checks += _runtime("litert", "ai-edge-litert", "ai-edge-litert", "pip install 'edgeseg[device]'")
    checks += _runtime(
        "tflite-runtime",
        "tflite-runtime",
        "tflite-runtime",
        "optional fallback; ai-edge-litert is the maintained runtime",
    )
    checks.append(other_runtimes())
    tf = installed_version("tensorflow") or installed_version("tensorflow-cpu")
    checks.append(
        Check(
            "INFO",
            "TensorFlow",
            f"{tf} (train and convert)"
            if tf
            else "not installed (only needed to train and convert: pip install 'edgeseg[train]')",
        )
    )
    if tf and gpus is not None:
        checks += gpus()
    if not any(c.status == "OK" and c.name in ("ai-edge-litert", "tflite-runtime") for c in checks) and not tf:
        checks.append(Check("FAIL", "runtime", "no TFLite runtime can run models", "pip install 'edgeseg[device]'"))
    checks.append(_edgetpu())
    checks += opencv_checks()
    if cameras is not None:
        checks += cameras()
    checks.append(_governor())
    checks.append(int8_dot_check())
    if any(c.status == "OK" and c.name in ("ai-edge-litert", "tflite-runtime") for c in checks):
        checks.append(roof_check())
    checks.append(_recommend())
    checks += _board()
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    checks.append(Check("INFO", "display", display or "none: use --no-show, --record or --serve PORT"))
    return checks


def as_dicts(checks: list[Check]) -> list[dict]:
    """The checks as JSON values (doctor --json)."""
    return [asdict(c) for c in checks]
