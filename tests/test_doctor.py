import json

from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.doctor import run_checks

runner = CliRunner()


def test_doctor_reports_runtime_xnnpack_and_opencv(tmp_path, monkeypatch):
    import edgeseg.camera.sources as sources

    monkeypatch.setattr(sources, "available_cameras", lambda: [])  # whatever this machine has
    r = runner.invoke(app, ["doctor", "--json", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    checks = {c["name"]: c for c in json.loads((tmp_path / "d.json").read_text())["checks"]}
    assert checks["ai-edge-litert"]["status"] == "OK" and "runs a model" in checks["ai-edge-litert"]["detail"]
    assert checks["ai-edge-litert XNNPACK"]["status"] == "OK"
    assert checks["OpenCV FFMPEG"]["status"] in ("OK", "WARN")
    assert checks["Edge TPU"]["status"] in ("INFO", "OK") and "libedgetpu" in checks["Edge TPU"]["detail"]
    assert checks["cameras"]["status"] == "WARN" and "no camera opens" in checks["cameras"]["detail"]
    assert "OK   ai-edge-litert" in r.output
    # issue 37: this CPU's roofs at 1 thread (and at all cores), from the probe
    assert checks["roof"]["status"] == "INFO" and "1 thread(s): int8 " in checks["roof"]["detail"]
    assert "GMAC/s" in checks["roof"]["detail"]
    monkeypatch.setattr(sources, "available_cameras", lambda: [0, 2])
    r = runner.invoke(app, ["doctor", "--json", str(tmp_path / "d.json")])
    checks = {c["name"]: c for c in json.loads((tmp_path / "d.json").read_text())["checks"]}
    assert checks["cameras"]["status"] == "OK" and checks["cameras"]["detail"] == "indices that open: 0, 2"


def test_doctor_reads_opencvs_build_for_ffmpeg_and_v4l2():
    from edgeseg.doctor import opencv_checks

    with_all = (
        "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   NO\n"
        "    v4l/v4l2:                    YES (linux/videodev2.h)\n  GUI:                           NONE\n"
    )
    checks = {c.name: c for c in opencv_checks(with_all)}
    assert checks["OpenCV FFMPEG"].status == "OK" and checks["OpenCV GStreamer"].status == "INFO"
    without = with_all.replace("FFMPEG:                      YES", "FFMPEG:                      NO")
    ffmpeg = {c.name: c for c in opencv_checks(without)}["OpenCV FFMPEG"]
    assert ffmpeg.status == "WARN" and "need FFMPEG" in ffmpeg.hint


def test_tflite_runtime_built_for_numpy_1_is_a_fail_with_a_fix(monkeypatch):
    import edgeseg.doctor
    import edgeseg.predictors.tflite as tflite

    real = tflite.importlib.import_module

    def fake_import(name, *a, **k):
        if name == "tflite_runtime.interpreter":
            raise AttributeError("_ARRAY_API not found")  # what numpy 2 does to a module built for numpy 1
        return real(name, *a, **k)

    monkeypatch.setattr(tflite.importlib, "import_module", fake_import)
    real_version = edgeseg.doctor.installed_version
    monkeypatch.setattr(
        edgeseg.doctor, "installed_version", lambda d: "2.14.0" if d == "tflite-runtime" else real_version(d)
    )
    check = next(c for c in run_checks() if c.name == "tflite-runtime")
    assert check.status == "FAIL" and "needs numpy<2" in check.detail and "numpy<2" in check.hint


EPYC_AVX2 = "model name\t: AMD EPYC\nflags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2\n"
XEON_SPR = "model name\t: Intel Xeon\nflags\t\t: sse2 avx2 avx512f avx512_vnni avx_vnni amx_bf16 amx_int8 amx_tile\n"
CORTEX_A76 = (
    "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp\n"
)
CORTEX_A72 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"


def test_cpu_int8_dot_product_features_from_cpuinfo():
    from edgeseg.host import cpu_int8_features

    assert cpu_int8_features(EPYC_AVX2) == {"arch": "x86", "features": []}
    assert cpu_int8_features(XEON_SPR) == {"arch": "x86", "features": ["avx512_vnni", "avx_vnni", "amx_int8"]}
    assert cpu_int8_features(CORTEX_A76) == {"arch": "arm", "features": ["asimddp"]}
    assert cpu_int8_features(CORTEX_A72) == {"arch": "arm", "features": []}
    assert cpu_int8_features("") == {"arch": None, "features": []}


def test_doctor_warns_when_int8_cannot_beat_float_on_this_cpu():
    from edgeseg.doctor import int8_dot_check

    warn = int8_dot_check(EPYC_AVX2)
    assert warn.status == "WARN" and "avx512_vnni" in warn.detail and "size, not speed" in warn.hint
    assert int8_dot_check(XEON_SPR).status == "OK" and "amx_int8" in int8_dot_check(XEON_SPR).detail
    assert int8_dot_check(CORTEX_A72).status == "INFO" and int8_dot_check(CORTEX_A76).status == "OK"
    from pathlib import Path

    from edgeseg.host import cpu_int8_features

    here = next(c for c in run_checks() if c.name == "CPU int8 dot product")  # and the real machine's line
    cpu = cpu_int8_features(Path("/proc/cpuinfo").read_text())
    expected = "OK" if cpu["features"] else {"x86": "WARN", "arm": "INFO"}.get(cpu["arch"], "INFO")
    assert here.status == expected, (here, cpu)


def test_doctor_recommends_a_shipped_model_by_cpu_class():
    from edgeseg.doctor import recommend_model

    assert recommend_model(CORTEX_A72, 4)[0] == "nano"  # Pi 4: no dotprod
    assert recommend_model(CORTEX_A76, 4)[0] == "small"  # Pi 5
    assert recommend_model(CORTEX_A76, 2)[0] == "nano"  # dotprod but two cores
    assert recommend_model(EPYC_AVX2, 2) == (
        "small",
        "x86 with 2 cores; no int8 dot products, so int8 runs at float's speed here",
    )
    assert recommend_model(XEON_SPR, 8) == ("small", "x86 with 8 cores")
    assert recommend_model(EPYC_AVX2, 1)[0] == "nano"
    assert recommend_model("", None)[0] == "small"
    line = next(c for c in run_checks() if c.name == "model for this CPU")
    name = line.detail.split()[0]
    assert name in ("nano", "small") and line.hint.startswith(f"edgeseg run {name} ")


def test_a_picamera2_that_fails_to_import_is_explained_not_a_traceback(tmp_path):
    """Pi OS's apt Picamera2 is built for numpy 1; under numpy 2 its import raises ValueError, not ImportError."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    fake = tmp_path / "picamera2"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise ValueError("numpy.dtype size changed, may indicate binary '
        'incompatibility. Expected 96 from C header, got 88 from PyObject")\n'
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    doctor = subprocess.run(
        [sys.executable, "-m", "edgeseg", "doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in doctor.stderr + doctor.stdout
    line = next(ln for ln in doctor.stdout.splitlines() if "Picamera2" in ln)
    assert line.startswith("FAIL") and "numpy" in line and "pip install 'numpy<2'" in line
    run = subprocess.run(
        [sys.executable, "-m", "edgeseg", "run", "--picamera", "--no-show"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert run.returncode == 1 and "Traceback" not in run.stderr and len(errors) == 1
    assert "--picamera: Picamera2 does not load with numpy" in errors[0]
    (fake / "__init__.py").write_text("import picamera2_missing_dependency\n")  # any other failure: said too
    doctor = subprocess.run(
        [sys.executable, "-m", "edgeseg", "doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in doctor.stderr + doctor.stdout and "needs a module that is missing" in doctor.stdout


def test_board_checks_on_a_pi_and_on_32_bit_arm():
    from edgeseg.doctor import board_checks

    assert board_checks(None, "x86_64", 64, False) == []  # nothing on a workstation
    pi5 = {c.name: c for c in board_checks("Raspberry Pi 5 Model B Rev 1.0", "aarch64", 64, True)}
    assert pi5["board"].detail == "Raspberry Pi 5 Model B Rev 1.0" and pi5["userland"].status == "OK"
    assert pi5["libcamera"].status == "OK"
    pi4_32 = {c.name: c for c in board_checks("Raspberry Pi 4 Model B Rev 1.4", "armv7l", 32, False)}
    assert pi4_32["userland"].status == "WARN" and "armv7l" in pi4_32["userland"].hint
    assert pi4_32["libcamera"].status == "INFO" and "python3-picamera2" in pi4_32["libcamera"].hint
    other = {c.name: c for c in board_checks(None, "aarch64", 64, False)}
    assert "no board model" in other["board"].detail and "libcamera" not in other


def test_doctor_lists_gpus_and_what_training_does_with_them():
    from edgeseg.training.checks import gpu_checks

    two = [
        {"index": 0, "name": "NVIDIA H100", "compute_capability": (9, 0), "memory_mib": 81559},
        {"index": 1, "name": "Tesla P100", "compute_capability": (6, 0), "memory_mib": None},
    ]
    checks = gpu_checks(two)
    assert checks[0].detail == "NVIDIA H100, 80 GiB, compute capability 9.0: mixed_bfloat16 by default"
    assert checks[1].detail == "Tesla P100, compute capability 6.0: float32 (no tensor cores)"
    assert checks[2].name == "training strategy" and "mirrored over the 2 GPUs" in checks[2].detail
    assert gpu_checks([])[0].detail.startswith("none that TensorFlow sees")
