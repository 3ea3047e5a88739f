"""Checks on a converted model: which ops and tensors are not int8, and how often the converted model's
argmax agrees with the float Keras model's on real images."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# Integer types that belong in a fully-quantised graph: int8 activations and weights, int32 biases and
# shape/index tensors, int16 never (we do not use 16x8 quantisation).
_INT8_GRAPH_TYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int32)}


@dataclass
class OpReport:
    """A converted model's ops by name and count, with the ops and tensors that are not int8 where that was
    checked (TFLite; an ONNX graph keeps float between its QDQ pairs by design, so it is not)."""

    ops: Counter = field(default_factory=Counter)
    non_int8_ops: list[str] = field(default_factory=list)  # "OP_NAME #index (float32 in/out)"
    non_int8_tensors: list[str] = field(default_factory=list)
    checked: bool = True

    @property
    def fully_int8(self) -> bool | None:
        """No op or tensor outside int8 (None where this was not checked)."""
        if not self.checked:
            return None
        return not self.non_int8_ops and not self.non_int8_tensors

    def to_dict(self) -> dict:
        """The report as JSON values."""
        return {
            "ops": dict(self.ops),
            "non_int8_ops": self.non_int8_ops,
            "non_int8_tensors": self.non_int8_tensors[:50],
            "fully_int8": self.fully_int8,
        }


def op_report(interpreter) -> OpReport:
    """Every op and tensor of a loaded interpreter, with those that are not int8 listed."""
    rep = OpReport()
    from edgeseg.predictors.tflite import ops_details

    for op in ops_details(interpreter):
        name = op["op_name"]
        if name == "DELEGATE":
            continue
        rep.ops[name] += 1
        types = {np.dtype(t) for t in list(op.get("operand_types", [])) + list(op.get("result_types", []))}
        odd = sorted(t.name for t in types - _INT8_GRAPH_TYPES)
        if odd:
            rep.non_int8_ops.append(f"{name} #{op['index']} ({'/'.join(odd)})")
    for t in interpreter.get_tensor_details():
        dt = np.dtype(t["dtype"])
        if dt not in _INT8_GRAPH_TYPES:
            rep.non_int8_tensors.append(f"{t['name']} ({dt.name})")
    return rep


def argmax_agreement(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """Share of pixels where two lists of class maps agree."""
    same = sum(int((a == b).sum()) for a, b in zip(reference, candidate, strict=True))
    total = sum(a.size for a in reference)
    return same / total if total else float("nan")
