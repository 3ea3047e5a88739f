"""The boundary: with TensorFlow (and Keras) made unimportable, the device path still works.

Each check runs in a fresh interpreter where `sys.modules["tensorflow"] = None`, so any import of it raises
ImportError, then drives the CLI's own entry point on .tflite files."""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

BLOCK = """
import sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
sys.modules["tf_keras"] = None
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def cli(*args) -> str:
    return f"""
from edgeseg.cli import app
try:
    app({[str(a) for a in args]!r}, standalone_mode=True)
except SystemExit as e:
    assert e.code in (0, None), e.code
assert sys.modules["tensorflow"] is None and "tensorflow.lite" not in sys.modules
print("NO-TF-OK")
"""


def check(proc):
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "NO-TF-OK" in proc.stdout


def test_imports_and_help_without_tensorflow():
    check(
        run_blocked(
            textwrap.dedent("""
        import edgeseg, edgeseg.cli, edgeseg.api, edgeseg.models, edgeseg.info, edgeseg.doctor, edgeseg.edgetpu
        import edgeseg.predictors.tflite, edgeseg.predictors.onnx, edgeseg.predictors.keras
        import edgeseg.datasets, edgeseg.bench, edgeseg.evaluate
        import edgeseg.camera, edgeseg.camera.loop, edgeseg.camera.sources, edgeseg.camera.stream
        """)
            + cli("--help")
        )
    )


@pytest.mark.slow
def test_bench_eval_run_without_tensorflow(tiny_tflite, synthetic_data, tmp_path):
    from edgeseg.synthetic import write_video

    model = tiny_tflite["int8"]
    check(run_blocked(cli("bench", model, "--runs", 5, "--profile", "--json", tmp_path / "b.json")))
    row = json.loads((tmp_path / "b.json").read_text())["results"][0]
    assert row["runtime"] == "litert"
    # issue 37: the roof (a probe built in memory) and the per-op profile need no TensorFlow either
    assert row["precision"] == "int8" and row["roof_share"] > 0 and len(row["profile"]["ops"]) > 10
    check(run_blocked(cli("eval", model, "--data", synthetic_data, "--json", tmp_path / "e.json")))
    assert json.loads((tmp_path / "e.json").read_text())["miou"] > 0
    video = write_video(tmp_path / "v.mp4", frames=6, hw=(48, 64))
    check(run_blocked(cli("run", model, "--source", video, "--no-show", "--record", tmp_path / "o.mp4")))
    assert (tmp_path / "o.mp4").stat().st_size > 0


def test_keras_model_on_the_device_path_says_what_to_install(tmp_path):
    fake = tmp_path / "m.keras"
    fake.write_bytes(b"x")
    proc = run_blocked(
        textwrap.dedent(f"""
        from edgeseg.cli import app
        try:
            app(["bench", {str(fake)!r}])
        except SystemExit as e:
            print("EXIT", e.code)
        """)
    )
    assert "EXIT 1" in proc.stdout and "pip install 'edgeseg[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr
