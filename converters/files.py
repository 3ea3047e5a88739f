"""ModelFiles: a converted model as the files it is made of. A .tflite or .onnx is one file; an OpenVINO model is
its .xml graph and the .bin weights beside it; an ncnn model is its .param, its .bin and, since the format has no
metadata, the edgeseg spec as `<stem>.spec.json`. The companions are named from the main file's stem, the way
each runtime looks for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.io import atomic_write_bytes


def companion(main: Path, suffix: str) -> Path:
    """The file beside `main` that a runtime looks for: model.xml -> model.bin, model.param -> model.spec.json."""
    main = Path(main)
    return main.with_name(main.stem + suffix)


@dataclass(frozen=True)
class ModelFiles:
    """The bytes of a converted model's main file and of the files that travel beside it (by suffix)."""

    main: bytes
    beside: dict[str, bytes] = field(default_factory=dict)
    # a predictor that runs the model here, for a format whose file no runtime on this machine opens (RKNN: the
    # simulator that holds the build); convert checks the conversion through it, then closes it
    live: object | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, built: bytes | ModelFiles) -> ModelFiles:
        """A target's result as ModelFiles (a one-file format returns its bytes)."""
        return built if isinstance(built, ModelFiles) else cls(bytes(built))

    @property
    def size(self) -> int:
        """All the files' bytes together."""
        return len(self.main) + sum(len(b) for b in self.beside.values())

    def paths(self, main: Path) -> list[Path]:
        """Where write(main) puts the files: the main file first."""
        return [Path(main), *(companion(main, s) for s in self.beside)]

    def write(self, main: Path) -> Path:
        """Write every file atomically, the companions before the main file, so that a main file on disk has
        its companions beside it; a failure removes the companions this call wrote (OutputError)."""
        written: list[Path] = []
        try:
            for suffix, data in self.beside.items():
                written.append(atomic_write_bytes(companion(main, suffix), data))
            atomic_write_bytes(main, self.main)
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            raise
        return Path(main)
