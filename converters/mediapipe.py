"""Standard TFLite Metadata for MediaPipe's ImageSegmenter (and other readers of the TFLite Metadata schema, such
as the TFLite Task Library and Android Studio's model viewer).

What the ImageSegmenter reads:
- the input tensor's ImageProperties (RGB) and NormalizationOptions (mean and std in pixel units: a float input
  is fed (pixel - mean) / std; a uint8 input is fed the pixels);
- the output tensor's label file (TENSOR_AXIS_LABELS, one class name a line), packed into the .tflite as a zip
  archive appended to the flatbuffer, as the metadata populator packs it;
- the "SEGMENTER_METADATA" custom metadata: the activation that turns the output into confidences (SOFTMAX for
  logits, NONE for probabilities).

The flatbuffers are built here with the `flatbuffers` package (which TensorFlow already needs), field by field
after tflite-support's metadata_schema.fbs, because the writers that ship with tflite-support and MediaPipe
cannot be used beside TensorFlow 2.21: tflite-support 0.4.4 pins protobuf 3.20, and MediaPipe replaces
opencv-python with its own OpenCV build (and its writer needs a native module that the 1.2 wheel lacks)."""

from __future__ import annotations

import io
import zipfile

from edgeseg.converters.metadata import embed_metadata
from edgeseg.spec import ModelSpec
from edgeseg.tflite_metadata import TFLITE_METADATA_NAME

ACTIVATIONS = {"none": 0, "sigmoid": 1, "softmax": 2}
LABELS_FILE = "labels.txt"
# metadata_schema.fbs: the fields used here are 1.0.0 but custom_metadata, added in 1.5.0
MIN_PARSER_VERSION = "1.5.0"
_METADATA_ID, _SEGMENTER_ID = b"M001", b"V001"
_IMAGE_PROPERTIES, _NORMALIZATION_OPTIONS = 2, 1  # ContentProperties / ProcessUnitOptions union tags
_RGB, _GRAYSCALE = 1, 2  # ColorSpaceType
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def segmenter_metadata(spec: ModelSpec, activation: str = "softmax") -> bytes:
    """A ModelMetadata flatbuffer (file identifier M001) for a segmenter with one image input of spec.input_hw and
    one [1,H,W,C] output, described by `spec`: its normalisation, its class names as the output's label file, and
    `activation` (one of ACTIVATIONS) in the segmenter's custom metadata."""
    import flatbuffers
    import numpy as np

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    b = flatbuffers.Builder(1024)

    def string(s: str) -> int:
        return b.CreateString(s)

    def table(*fields: tuple[str, int, int]) -> int:
        """fields: (kind, slot, value) with kind "off" (an offset made before), "u8" or "i32" or "u32"."""
        b.StartObject(max(slot for _, slot, _ in fields) + 1)
        for kind, slot, value in fields:
            if kind == "off":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "u8":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "i32":
                b.PrependInt32Slot(slot, value, 0)
            else:
                b.PrependUint32Slot(slot, value, 0)
        return b.EndObject()

    def tables(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values) -> int:
        return b.CreateNumpyVector(np.asarray(values, np.float32))

    h, w = spec.input_hw
    mean, std = list(spec.mean), list(spec.std)
    lo = [(0.0 - m) / s for m, s in zip(mean, std, strict=True)]
    hi = [(255.0 - m) / s for m, s in zip(mean, std, strict=True)]

    # input: an RGB image of the model's size, normalised by the spec's mean and std
    norm = table(("off", 0, floats(mean)), ("off", 1, floats(std)))
    unit = table(("u8", 0, _NORMALIZATION_OPTIONS), ("off", 1, norm))
    size = table(("u32", 0, w), ("u32", 1, h))
    image = table(("u8", 0, _RGB), ("off", 1, size))
    content = table(("u8", 0, _IMAGE_PROPERTIES), ("off", 1, image))
    stats = table(("off", 0, floats(hi)), ("off", 1, floats(lo)))
    tin = table(
        ("off", 0, string("image")),
        ("off", 1, string(f"Input image to be segmented, {w}x{h} RGB, fed (pixel - mean) / std.")),
        ("off", 3, content),
        ("off", 4, tables([unit])),
        ("off", 5, stats),
    )
    # output: one score a class a pixel; its channel axis is named by the label file
    labels = table(
        ("off", 0, string(LABELS_FILE)),
        ("off", 1, string("Labels for categories that the model can recognize.")),
        ("u8", 2, _TENSOR_AXIS_LABELS),
    )
    dims = table(("i32", 0, 1), ("i32", 1, 2))  # the image's dimensions are the tensor's 1st and 2nd
    mask = table(("u8", 0, _GRAYSCALE))
    out_content = table(("u8", 0, _IMAGE_PROPERTIES), ("off", 1, mask), ("off", 2, dims))
    tout = table(
        ("off", 0, string("segmentation_masks")),
        ("off", 1, string(f"Scores for {len(spec.classes)} classes per pixel: {', '.join(spec.classes)}.")),
        ("off", 3, out_content),
        ("off", 6, tables([labels])),
    )
    custom = table(
        ("off", 0, string("SEGMENTER_METADATA")),
        ("off", 1, b.CreateByteVector(_segmenter_options(ACTIVATIONS[activation]))),
    )
    subgraph = table(
        ("off", 2, tables([tin])),
        ("off", 3, tables([tout])),
        ("off", 9, tables([custom])),
    )
    root = table(
        ("off", 0, string("ImageSegmenter")),
        ("off", 1, string("Semantic segmentation made by edgeseg: a class for every pixel of an image.")),
        ("off", 2, string(spec.backbone or "edgeseg")),
        ("off", 3, tables([subgraph])),
        ("off", 4, string("edgeseg")),
        ("off", 7, string(MIN_PARSER_VERSION)),
    )
    b.Finish(root, file_identifier=_METADATA_ID)
    return bytes(b.Output())


def _segmenter_options(activation: int) -> bytes:
    """MediaPipe's ImageSegmenterOptions flatbuffer (file identifier V001)."""
    import flatbuffers

    b = flatbuffers.Builder(64)
    version = b.CreateString("1.0.0")
    b.StartObject(2)
    b.PrependInt8Slot(0, activation, 0)
    b.PrependUOffsetTRelativeSlot(1, version, 0)
    b.Finish(b.EndObject(), file_identifier=_SEGMENTER_ID)
    return bytes(b.Output())


def add_segmenter_metadata(model: bytes, spec: ModelSpec, activation: str = "softmax") -> bytes:
    """The .tflite `model` with segmenter_metadata embedded (replacing any TFLITE_METADATA it had) and the class
    names packed as labels.txt. Any zip archive that followed the flatbuffer is dropped with the rewrite."""
    out = embed_metadata(model, TFLITE_METADATA_NAME, segmenter_metadata(spec, activation))
    buf = io.BytesIO(bytes(out))
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as z:  # appended after the flatbuffer
        z.writestr(LABELS_FILE, "".join(f"{name}\n" for name in spec.classes))
    return buf.getvalue()
