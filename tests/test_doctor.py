import json

from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.doctor import run_checks

runner = CliRunner()


def test_doctor_reports_runtime_xnnpack_and_opencv(tmp_path):
    r = runner.invoke(app, ["doctor", "--json", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    checks = {c["name"]: c for c in json.loads((tmp_path / "d.json").read_text())["checks"]}
    assert checks["ai-edge-litert"]["status"] == "OK" and "runs a model" in checks["ai-edge-litert"]["detail"]
    assert checks["ai-edge-litert XNNPACK"]["status"] == "OK"
    assert checks["OpenCV FFMPEG"]["status"] == "OK"
    assert checks["Edge TPU"]["status"] in ("INFO", "OK") and "libedgetpu" in checks["Edge TPU"]["detail"]
    assert checks["cameras"]["status"] == "WARN" and "no camera opens" in checks["cameras"]["detail"]
    assert "OK   ai-edge-litert" in r.output


def test_tflite_runtime_built_for_numpy_1_is_a_fail_with_a_fix(monkeypatch):
    import edgeseg.doctor
    import edgeseg.runtime

    real = edgeseg.runtime.importlib.import_module

    def fake_import(name, *a, **k):
        if name == "tflite_runtime.interpreter":
            raise AttributeError("_ARRAY_API not found")  # what numpy 2 does to a module built for numpy 1
        return real(name, *a, **k)

    monkeypatch.setattr(edgeseg.runtime.importlib, "import_module", fake_import)
    real_version = edgeseg.doctor._version
    monkeypatch.setattr(edgeseg.doctor, "_version", lambda d: "2.14.0" if d == "tflite-runtime" else real_version(d))
    check = next(c for c in run_checks() if c.name == "tflite-runtime")
    assert check.status == "FAIL" and "needs numpy<2" in check.detail and "numpy<2" in check.hint
