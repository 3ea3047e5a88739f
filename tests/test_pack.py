"""`edgeseg pack`: one checksummed file that holds a dataset's frames, masks, classes and splits, read by every
command that reads a dataset, and refused in one line when it is damaged."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_INPUT_HW, needs_tensorflow
from tests.test_cli import assert_one_line_error as one_line
from tests.test_cli import invoke


@pytest.fixture(scope="module")
def packs(sessions, tmp_path_factory) -> dict[str, Path]:
    from edgeseg.packing import pack_dataset

    out = tmp_path_factory.mktemp("packs")
    return {
        "webp": pack_dataset(sessions, out / "webp.segpack").path,
        "png": pack_dataset(sessions, out / "png.segpack", quality=None).path,
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def test_a_pack_reads_back_as_the_dataset_it_was_made_from(sessions, packs):
    from edgeseg.datasets import detect_format, open_dataset

    for split in ("train", "val", "all"):
        source = open_dataset(sessions, split)
        for codec, pack in packs.items():
            assert detect_format(pack) == "pack"
            ds = open_dataset(pack, split)
            assert ds.format == "pack" and len(ds) == len(source) > 0
            assert ds.classes == source.classes and ds.colours == source.colours
            assert ds.ignore_index == source.ignore_index
            assert [s.image.stem for s in ds.samples] == [s.image.stem for s in source.samples]
            for i in range(len(ds)):
                img, mask = ds.read(i)
                want_img, want_mask = source.read(i)
                assert np.array_equal(mask, want_mask)  # masks are always lossless
                if codec == "png":
                    assert np.array_equal(img, want_img)
                else:  # WebP q85: close (the scenes' pixel noise is what it smooths), channels in the same order
                    assert img.shape == want_img.shape and psnr(img, want_img) > 25
                    assert psnr(img[..., ::-1], want_img) < psnr(img, want_img) - 3


def test_a_resized_pack_holds_every_frame_at_the_size_asked(sessions, tmp_path):
    from edgeseg.datasets import open_dataset
    from edgeseg.packfile import open_pack
    from edgeseg.packing import pack_dataset

    res = pack_dataset(sessions, tmp_path / "small.segpack", size_hw=(36, 48))
    assert open_pack(res.path).size_hw == (36, 48)
    ds = open_dataset(res.path, "all")
    img, mask = ds.read(0)
    assert img.shape == (36, 48, 3) and mask.shape == (36, 48)
    assert set(np.unique(mask)) <= set(range(len(ds.classes)))  # nearest-neighbour: no blended class indices


def test_hold_out_finds_the_same_frames_in_a_pack_as_in_the_folder(sessions, packs):
    from edgeseg.training.protocol import make_protocol

    folder = make_protocol(sessions, "auto", ("train",), ("sessB_",), None, "auto")
    packed = make_protocol(packs["webp"], "auto", ("train",), ("sessB_",), None, "auto")
    assert [s.image.name for s in packed.val.samples] == [f"sessB_{i:02d}.webp" for i in range(4)]
    assert [s.image.stem for s in packed.train.samples] == [s.image.stem for s in folder.train.samples]
    assert not any(s.image.stem.startswith("sessB_") for s in packed.train.samples)


def test_pack_cli_says_what_it_wrote_and_its_json_agrees(sessions, tmp_path):
    from edgeseg.cli import tools
    from edgeseg.packing import DEFAULT_QUALITY

    assert tools.DEFAULT_QUALITY == DEFAULT_QUALITY  # the CLI keeps its own copy, for a light --help
    out, report = tmp_path / "d.segpack", tmp_path / "pack.json"
    r = invoke("pack", sessions, "--out", out, "--json", report)
    assert r.exit_code == 0, r.output
    assert f"wrote {out}:" in r.output and "18 train, 2 val frames, images webp q85" in r.output
    assert "sequences (for --hold-out): sessA (16), sessB (4)" in r.output
    got = json.loads(report.read_text())
    assert got["bytes"] == out.stat().st_size and got["splits"] == {"train": 18, "val": 2}
    assert got["sequences"] == {"sessA": 16, "sessB": 4} and got["codec"] == "webp q85"
    one_line(invoke("pack", sessions, "--out", tmp_path, "--lossless"), "is a folder|directory")
    one_line(invoke("pack", sessions, "--out", out, "--size", "0x3"), "--size")
    assert invoke("pack", tmp_path / "nothing", "--out", out).exit_code == 2


def _damaged(good: Path, tmp: Path) -> dict[str, Path]:
    """The ways a pack arrives damaged: cut short, a byte flipped inside a member, a foreign file with the suffix,
    a manifest that is not ours, and one that names a member the archive lacks."""
    raw = good.read_bytes()
    out = {}
    out["truncated"] = tmp / "truncated.segpack"
    out["truncated"].write_bytes(raw[: len(raw) // 2])
    with zipfile.ZipFile(good) as z:
        first = z.infolist()[0]  # the first frame's image, stored uncompressed
        offset = first.header_offset + 30 + len(first.filename.encode()) + len(first.extra) + first.file_size // 2
        members = {i.filename: z.read(i) for i in z.infolist()}
    flipped = bytearray(raw)
    flipped[offset] ^= 0xFF
    out["flipped"] = tmp / "flipped.segpack"
    out["flipped"].write_bytes(bytes(flipped))
    out["foreign"] = tmp / "foreign.segpack"
    out["foreign"].write_bytes(np.random.default_rng(0).bytes(5000))
    manifest = json.loads(members["manifest.json"])
    for name, change in (
        ("not-ours", lambda m: m.update(format="something-else")),
        ("missing-member", lambda m: m["frames"][0].update(image="images/not-there.webp")),
        ("bad-split", lambda m: m["frames"][0].update(splits=["nonsense"])),
    ):
        m = json.loads(json.dumps(manifest))
        change(m)
        out[name] = tmp / f"{name}.segpack"
        with zipfile.ZipFile(out[name], "w") as z:
            for member, data in members.items():
                z.writestr(member, json.dumps(m) if member == "manifest.json" else data)
    return out


def test_a_damaged_pack_is_one_line_naming_it_in_every_command_that_reads_it(packs, tiny_run, tmp_path):
    expected = {
        "truncated": "not a readable pack, truncated or corrupt",
        "flipped": "damaged|does not match its SHA-256",
        "foreign": "not a readable pack",
        "not-ours": "not an edgeseg pack",
        "missing-member": r"images/not-there.webp is not in the pack",
        "bad-split": r"frames\[0\]: splits must list train, val or test",
    }
    for kind, pack in _damaged(packs["webp"], tmp_path).items():
        r = invoke("eval", tiny_run / "model.keras", "--data", pack, "--split", "all")
        one_line(r, rf"{pack.name}.*({expected[kind]})")
        run = tmp_path / f"run-{kind}"
        r = invoke("train", "--data", pack, "--out", run, "--epochs", "1", "--size", "96x64")
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        errors = [ln for ln in r.output.splitlines() if ln.startswith("error")]  # after train's set-up lines
        assert len(errors) == 1 and re.search(rf"{pack.name}.*({expected[kind]})", errors[0]), r.output
        assert not run.exists() or not any(run.iterdir()), sorted(run.iterdir())  # nothing half-made


@needs_tensorflow
def test_train_from_a_pack_then_convert_int8_calibrating_on_the_pack_the_spec_names(packs, tmp_path):
    """The remote-GPU path: a pack trains (it is the data the spec records), and convert --int8 with no
    --calibration calibrates on that pack's train split."""
    from edgeseg.spec import ModelSpec

    run = tmp_path / "run"
    h, w = TINY_INPUT_HW
    r = invoke(
        "train", "--data", packs["webp"], "--out", run, "--epochs", "2", "--size", f"{w}x{h}",
        "--alpha", "0.35", "--decoder", "tiny", "--batch-size", "6", "--hold-out", "sessB_", "--val-every", "2",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((run / "history.csv").open()))  # --val-every 2: epoch 1 unscored, 2 scored
    assert rows[0]["val_miou"] == "nan" and 0 <= float(rows[1]["val_miou"]) <= 1, rows
    spec = ModelSpec.load(run / "spec.json")
    assert spec.train_data_from(run).resolve() == packs["webp"].resolve()
    r = invoke("convert", run / "model.keras", "--int8", "--out", tmp_path / "m.tflite")
    assert r.exit_code == 0, r.output
    assert "calibrat" in r.output and "webp.segpack" in r.output
    agreement = float(re.search(r"argmax agreement with the Keras model: ([\d.]+)%", r.output).group(1))
    assert agreement >= 90
