"""Every list of choices a user can pick from, in one place: the library checks against these tuples and the
CLI builds its option types from them, so the two never drift. Standard library only (the CLI imports it for
`--help`)."""

from __future__ import annotations

from enum import Enum

RUNTIMES = ("auto", "litert", "tflite-runtime", "tensorflow", "onnx")  # onnx: ONNX Runtime, for .onnx files
DELEGATES = ("auto", "cpu", "edgetpu")
FORMATS = ("auto", "generic", "camvid", "voc")
SPLITS = ("train", "val", "test", "all")
IO_DTYPES = ("int8", "uint8")
VIEWS = ("overlay", "mask", "side-by-side")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")


def choice_enum(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum whose values are `values` (member names with '-' as '_'), for Typer's choice options."""
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)  # type: ignore[return-value]
