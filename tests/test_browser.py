"""The browser view in a real headless Chromium (Debian's chromium + chromium-driver; .ci/run installs
them): the page loads, the live image changes over time, the stats update."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def chromium_options(webdriver, tmp_path: Path, *extra: str):
    """Headless Chromium options for a test: no sandbox or GPU (containers), nothing fetched in the background,
    a profile of its own under tmp_path, and the test's `extra` flags."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *extra,
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(flag)
    return opts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)
def test_live_page_in_headless_chromium(toy_models, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeseg",
            "run",
            str(toy_models["scores_int8"]),
            "--source",
            "synthetic:160x120",
            "--realtime",
            "--no-show",
            "--serve",
            f"127.0.0.1:{port}",
            "--duration",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    opts = chromium_options(webdriver, tmp_path, "--disable-quic")
    driver = None
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
        driver.set_page_load_timeout(20)
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.title == "edgeseg"
        wait = WebDriverWait(driver, 15)
        wait.until(
            lambda d: d.execute_script(
                "const i = document.getElementById('stream'); return i.complete && i.naturalWidth > 0;"
            )
        )
        assert driver.execute_script("return document.getElementById('stream').naturalWidth") == 160

        def stat(d, name: str) -> str:  # read in one script: the page rebuilds the table every 500 ms, so an
            # element found first and read later can be gone (StaleElementReferenceException)
            return (
                d.execute_script(f"const e = document.getElementById('stat-{name}'); return e ? e.textContent : '';")
                or ""
            )

        frames = lambda d: int(stat(d, "frames") or 0)  # noqa: E731
        wait.until(lambda d: frames(d) > 0)
        img = driver.find_element(By.ID, "stream")
        first_shot, first_frames = img.screenshot_as_png, frames(driver)
        time.sleep(1.5)
        second_shot, second_frames = img.screenshot_as_png, frames(driver)
        assert second_frames > first_frames  # the stats update
        assert first_shot != second_shot  # the picture moves
        fps = float(stat(driver, "FPS") or 0)
        assert fps > 1
        Path(tmp_path / "page.png").write_bytes(driver.get_screenshot_as_png())
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        proc.communicate(timeout=20)


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
@pytest.mark.parametrize("suffix", [".webm", ".mp4"])
def test_a_recording_plays_in_headless_chromium(toy_models, tmp_path, suffix):
    """`run --record out.webm` (VP9) and `--record out.mp4` (H.264, by PyAV): Chromium's <video> element plays
    each: its time advances and its size is the recording's."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    if suffix == ".mp4":
        pytest.importorskip("av", reason="H.264 needs PyAV (the device extra)")
    video = tmp_path / f"o{suffix}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeseg",
            "run",
            str(toy_models["scores_int8"]),
            "--source",
            "synthetic:160x120",
            "--no-show",
            "--max-frames",
            "60",
            "--record",
            str(video),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (tmp_path / "play.html").write_text(f'<video id="v" src="o{suffix}" muted autoplay></video>')
    opts = chromium_options(webdriver, tmp_path, "--autoplay-policy=no-user-gesture-required")
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        driver.get((tmp_path / "play.html").as_uri())
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 15).until(
            lambda d: d.execute_script("return document.getElementById('v').currentTime > 0.5")
        )
        size = driver.execute_script("const v = document.getElementById('v'); return [v.videoWidth, v.videoHeight]")
        assert size == [160, 120]
        assert driver.execute_script("return document.getElementById('v').error") is None
    finally:
        driver.quit()
