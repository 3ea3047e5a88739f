"""The house holds: imports point down the floors (counting imports inside functions), no circles, the device core
never reaches the workstation side, every list of choices has one source, and the library documents itself.

Floors, bottom up (docs/development.md draws them):
  core        edgeseg/ (spec, datasets, preprocess, predictors, postprocess, metrics, bench, info, the Edge TPU lint)
  camera      camera/ (installed as edgeseg.camera)
  workstation converters/ (edgeseg.converters) and edgeseg/training/: TensorFlow lives here
  entry       edgeseg/cli/, edgeseg/api.py, edgeseg/__main__.py, edgeseg/__init__.py
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

FOLDERS = {"edgeseg": ROOT / "edgeseg", "edgeseg.camera": ROOT / "camera", "edgeseg.converters": ROOT / "converters"}
WORKSTATION_LIBS = {"tensorflow", "keras", "tf2onnx", "onnx", "tf_keras"}
MAX_MODULE_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    out = {}
    for pkg, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if pkg == "edgeseg" and parts[:1] in (["camera"], ["converters"]):
                continue
            out[name] = path
    return out


def floor(name: str) -> str:
    """Which floor a module stands on."""
    if name.startswith(("edgeseg.cli", "edgeseg.api", "edgeseg.__main__")) or name == "edgeseg":
        return "entry"
    if name.startswith(("edgeseg.converters", "edgeseg.training")):
        return "workstation"
    if name.startswith("edgeseg.camera"):
        return "camera"
    return "core"


RANK = {"core": 0, "camera": 1, "workstation": 1, "entry": 2}


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement, inside functions too; `from a import b` counts as
    a.b when a.b is a module of ours, else as a."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours = modules()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.append((full if full in ours else node.module, node.lineno))
    return out


def owner(name: str, ours: dict) -> str | None:
    """The module of ours an import names (the longest dotted prefix that is one), or None."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in ours:
            return ".".join(parts[:k])
    return None


def test_every_package_folder_is_installed_inside_edgeseg():
    """camera/ and converters/ install as edgeseg.camera and edgeseg.converters; a package folder missing from
    pyproject's list would be missing from the wheel."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = {name for name, p in modules().items() if p.name == "__init__.py"}
    assert found == listed, f"pyproject packages {sorted(listed)} vs package folders {sorted(found)}"
    assert conf["package-dir"] == {"edgeseg.camera": "camera", "edgeseg.converters": "converters"}
    for top in ("camera", "converters"):  # nothing imports the generic top-level names
        for path in modules().values():
            bad = [(m, n) for m, n in imports(path) if m == top or m.startswith(top + ".")]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad} (use edgeseg.{top})"


def test_imports_point_down_the_floors_and_the_core_stays_on_the_device_side():
    ours = modules()
    wrong = []
    for name, path in ours.items():
        mine = floor(name)
        for imported, line in imports(path):
            target = owner(imported, ours)
            where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
            if target is not None:
                theirs = floor(target)
                if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine):
                    wrong.append(f"{where} ({mine} -> {theirs})")
            elif imported.split(".")[0] in WORKSTATION_LIBS and mine in ("core", "camera"):
                if name != "edgeseg.predictors.keras":  # the workstation's own runtime, opened for .keras files
                    wrong.append(f"{where} (TensorFlow's side, from the {mine})")
    assert not wrong, "\n".join(wrong)


def test_no_circle_of_imports():
    ours = modules()
    graph = {
        name: {t for m, _ in imports(path) if (t := owner(m, ours)) and t != name and not name.startswith(t + ".")}
        for name, path in ours.items()
    }
    # a package's __init__ importing its own submodules is not a circle in the house (the submodule is inside it)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            circle = visit(n)
            assert circle is None, " -> ".join(circle)


def test_every_runtime_is_a_predictor_module_and_every_choice_has_one_source():
    from edgeseg.choices import RUNTIME_TABLE, RUNTIMES, SUFFIXES, TARGETS
    from edgeseg.predictors import predictor_class
    from edgeseg.predictors.base import Predictor

    assert RUNTIMES == ("auto", *RUNTIME_TABLE)
    for name, entry in RUNTIME_TABLE.items():
        assert entry.module.startswith("edgeseg.predictors."), name
        assert set(entry.suffixes) <= set(SUFFIXES)
        cls = predictor_class(Path(f"m{entry.suffixes[0]}"), name)
        assert issubclass(cls, Predictor) and cls.suffix == entry.suffixes[0]
    from edgeseg.converters.targets import TABLE

    assert tuple(TABLE) == TARGETS
    for (fmt, precision), target in TABLE.items():
        assert (target.format, target.precision) == (fmt, precision)


@pytest.mark.slow
def test_the_network_tables_name_the_choices():
    from edgeseg.choices import BACKBONES, DECODERS
    from edgeseg.training.model import DECODERS as SHAPES
    from edgeseg.training.model import SKIP_LAYERS

    assert (*SKIP_LAYERS, "none") == BACKBONES and tuple(SHAPES) == DECODERS  # none: the classic U-Net


def test_a_choice_is_checked_before_any_data_is_read(tmp_path):
    """A typo in --backbone or --decoder is one line from the option parser, and TrainConfig (the API, a resumed
    config.json) refuses it when it is made: nothing is read first."""
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.errors import EdgesegError
    from edgeseg.training.config import TrainConfig

    r = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--decoder", "bsae"])
    assert r.exit_code == 2 and "bsae" in r.output
    with pytest.raises(EdgesegError, match="unknown backbone 'resnet'"):
        TrainConfig(data="nowhere", out="x", backbone="resnet")
    with pytest.raises(EdgesegError, match="unknown decoder 'bsae'"):
        TrainConfig(data="nowhere", out="x", decoder="bsae")
    for weights in ("nan,1,1", "inf,1", "-1,2", "0,0,0"):
        with pytest.raises(EdgesegError, match="class weights"):
            TrainConfig(data="nowhere", out="x", class_weights=weights)


def library_functions():
    """(module path, qualified name, node) for every public function, method and class of the library (the CLI's
    commands are documented by their options' help instead)."""
    for name, path in modules().items():
        if name.startswith("edgeseg.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                yield path, node.name, node
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for sub in node.body:
                    if isinstance(sub, ast.FunctionDef) and (not sub.name.startswith("_") or sub.name == "__init__"):
                        yield path, f"{node.name}.{sub.name}", sub


def test_entry_points_with_four_or_more_parameters_list_them():
    """pycoral's habit: a public function or constructor of four parameters or more says what each is (Args:, or
    Attributes: on the class)."""
    missing = []
    for path, qual, node in library_functions():
        if not isinstance(node, ast.FunctionDef):
            continue
        params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        params = [p for p in params if p not in ("self", "cls")]
        if len(params) < 4:
            continue
        doc = ast.get_docstring(node) or ""
        if node.name == "__init__":
            cls = next(
                c
                for c in ast.walk(ast.parse(path.read_text()))
                if isinstance(c, ast.ClassDef) and c.name == qual.split(".")[0]
            )
            doc += ast.get_docstring(cls) or ""
        if "Args:" not in doc and "Attributes:" not in doc:
            missing.append(f"{path.relative_to(ROOT)}: {qual} ({len(params)} parameters)")
    assert not missing, "\n".join(missing)


def test_every_public_function_and_class_says_what_it_is_for_and_no_module_is_over_400_lines():
    undocumented = [
        f"{path.relative_to(ROOT)}: {qual}"
        for path, qual, node in library_functions()
        if not qual.endswith("__init__") and not ast.get_docstring(node)
    ]
    assert not undocumented, "\n".join(undocumented)
    long = {str(p.relative_to(ROOT)): n for p in modules().values() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


# What may be committed: the product's own weights in edgeseg/assets/, small text and pictures elsewhere. Two
# wheels (17 MB) once sat at the root for a month with nothing referring to them.
BINARY_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tgz", ".npz", ".h5", ".keras", ".tflite", ".onnx", ".segpack")
MAX_TRACKED_BYTES = 1_000_000


def test_no_binary_is_committed_outside_the_assets():
    import subprocess

    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout ({e})")
    wrong = []
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if name.startswith("edgeseg/assets/") or not path.is_file():
            continue
        if name.endswith(BINARY_SUFFIXES) or path.stat().st_size > MAX_TRACKED_BYTES:
            wrong.append(name)
    assert not wrong, f"binary files committed outside edgeseg/assets/: {wrong}"
