"""The front door and the manual: README stays short and its links resolve, the MkDocs site builds with
--strict (a broken link or a missing page fails) with a CLI reference generated from the app, and results files
name no machine's absolute paths."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_readme_is_a_short_front_door_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for heading in ("## Install", "## The two commands", "## The five verbs", "## The manual", "## Tests"):
        assert heading in text
    assert "bash scripts/demo.sh" in text and "bash scripts/test.sh" in text
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing


def test_results_files_name_no_absolute_paths_of_this_machine():
    bad = re.compile(r"(?<![\w.])/(work|tmp|home|root|Users)/")
    offenders = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in sorted((ROOT / "benchmarks" / "results").rglob("*"))
        if p.suffix in (".json", ".md", ".csv")
        for m in [bad.search(p.read_text(errors="replace"))]
        if m
    ]
    assert not offenders, offenders


def test_manual_builds_strictly_with_a_generated_cli_reference(tmp_path):
    pytest.importorskip("mkdocs", reason="needs the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="needs the docs extra: pip install -e '.[docs]'")
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    from typer.main import get_command

    from edgeseg.cli import app

    cli = (site / "cli" / "index.html").read_text()
    for name in get_command(app).commands:  # every command, and one of each command's options
        assert f"edgeseg {name}" in cli, name
    assert "--mediapipe" in cli and "--save-frames" in cli
    api = (site / "api" / "index.html").read_text()
    assert "load_model" in api and "stream" in api and "class_pixels" in api
    for page in ("getting-started", "datasets", "training", "converting", "running", "raspberry-pi", "benchmarks"):
        assert (site / page / "index.html").exists(), page
    assert (site / "models" / "nano" / "index.html").exists() and (site / "models" / "small" / "index.html").exists()
    shutil.rmtree(site)


def runnable_blocks(page) -> list[list[str]]:
    """The ```bash blocks that follow a `<!-- runnable` marker: their command lines, comments cut off."""
    blocks = re.findall(r"<!-- runnable[^>]*-->\s*```bash\n(.*?)```", page.read_text(), flags=re.S)
    return [[line.split("  #")[0].strip() for line in b.splitlines() if line.strip()] for b in blocks]


@pytest.mark.slow
def test_getting_started_runnable_block_runs(tmp_path):
    (lines,) = runnable_blocks(ROOT / "docs" / "getting-started.md")
    assert lines and all(line.startswith("edgeseg ") for line in lines)
    bin_dir = str(ROOT / ".venv" / "bin") if (ROOT / ".venv" / "bin" / "edgeseg").exists() else None
    env = {
        "PATH": f"{bin_dir or sys.prefix + '/bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    for line in lines:
        r = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, f"{line}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
        assert "Traceback" not in r.stderr, line
    assert len(list((tmp_path / "frames").glob("*.png"))) == 20
    assert (tmp_path / "overlay.webm").stat().st_size > 1000 and (tmp_path / "stats.json").exists()
    md = (tmp_path / "bench.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| camvid_")]
    gmacs = {cells[0].split()[0]: cells[1] for cells in rows}  # the fastest row's name carries a mark after it
    assert gmacs == {"camvid_nano_int8.tflite": "0.379", "camvid_small_int8.tflite": "2.077"}, md
