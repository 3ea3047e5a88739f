"""Standard TFLite Metadata (metadata_schema.fbs), as far as segmentation needs it: the input's normalisation and
the output's labels, read straight from the flatbuffer (no tflite-support, no TensorFlow), so that MediaPipe's
and Google's models describe themselves on a device."""

from __future__ import annotations

import struct

from edgeseg.errors import ModelError
from edgeseg.tflite_file import FlatTable, floats, read_metadata

# TFLite Metadata (metadata_schema.fbs): ModelMetadata{3 subgraph_metadata}, SubGraphMetadata{2 input_tensor_metadata,
# 3 output_tensor_metadata}, TensorMetadata{0 name, 4 process_units, 6 associated_files},
# ProcessUnit{0 options_type, 1 options}, NormalizationOptions (options type 1){0 mean, 1 std},
# AssociatedFile{0 name, 2 type}: type 2 is TENSOR_AXIS_LABELS (one label per line, packed in a zip appended to
# the .tflite), 4 is TENSOR_VALUE_LABELS.
TFLITE_METADATA_NAME = "TFLITE_METADATA"
_NORMALIZATION_OPTIONS = 1
_LABEL_FILE_TYPES = (2, 4)


def read_standard_metadata(buf: bytes, name: str = "model") -> dict:
    """What standard TFLite Metadata says about a model, as far as segmentation needs it:
    {"mean": [...], "std": [...]} from the input's NormalizationOptions, and "labels" (a list of names) from
    the output's label file. Empty when the model carries none; ModelError when it is malformed."""
    raw = read_metadata(buf, name).get(TFLITE_METADATA_NAME)
    if not raw:
        return {}
    try:
        meta = FlatTable(raw, struct.unpack_from("<I", raw, 0)[0])
        subgraphs = meta.tables(3)
        if not subgraphs:
            return {}
        out: dict = {}
        inputs, outputs = subgraphs[0].tables(2), subgraphs[0].tables(3)
        for unit in inputs[0].tables(4) if inputs else []:
            if unit.scalar(0, "B") == _NORMALIZATION_OPTIONS:
                p = unit.field(1)
                opts = FlatTable(raw, p + struct.unpack_from("<I", raw, p)[0])
                out["mean"], out["std"] = list(floats(opts, 0)), list(floats(opts, 1))
        for f in outputs[0].tables(6) if outputs else []:
            if f.scalar(2, "b") in _LABEL_FILE_TYPES:
                labels = _packed_file(buf, (f.bytes_(0) or b"").decode("utf-8", "replace"))
                if labels is not None:
                    out["labels"] = [line.strip() for line in labels.splitlines() if line.strip()]
                    break
        return out
    except (struct.error, IndexError):
        raise ModelError(f"{name}: corrupt TFLite Metadata") from None


def _packed_file(buf: bytes, filename: str) -> str | None:
    """A file packed into the .tflite (the metadata writer appends a zip archive) by name, as text."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as z:
            if filename in z.namelist() and z.getinfo(filename).file_size <= 1 << 20:
                return z.read(filename).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return None
