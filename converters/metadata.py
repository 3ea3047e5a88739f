"""Embed named metadata (the model spec) in a TFLite flatbuffer, the schema's own way: a Metadata entry that
points at a Buffer. Every interpreter loads the result as before; edgeseg.tflite_file reads it back without
TensorFlow."""

from __future__ import annotations

from edgeseg.errors import ModelError
from edgeseg.tflite_file import read_metadata


def embed_metadata(model: bytes, name: str, data: bytes) -> bytes:
    """The model with a named Metadata entry (replacing one of that name), checked to read back."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    obj.metadata = [m for m in (obj.metadata or []) if m.name.decode() != name]
    buf = schema.BufferT()
    buf.data = list(data)
    obj.buffers.append(buf)
    md = schema.MetadataT()
    md.name = name.encode()
    md.buffer = len(obj.buffers) - 1
    obj.metadata.append(md)
    out = flatbuffer_utils.convert_object_to_bytearray(obj)
    if read_metadata(out).get(name) != data:
        raise ModelError(f"the {name} metadata did not survive the flatbuffer round trip")
    return out
