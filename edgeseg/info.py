"""info: what a .tflite is, without running it: spec, input and output, op histogram, MACs and parameters per
frame, how much of it is integer, and whether it is ready for the Edge TPU.

Read from the flatbuffer alone (no interpreter, no TensorFlow), so it works on any segmentation model, ours or
a third party's, on a workstation or a device.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.choices import SUFFIXES
from edgeseg.cost import graph_cost
from edgeseg.edgetpu import lint
from edgeseg.errors import EdgesegError, ModelError
from edgeseg.spec import ModelSpec
from edgeseg.tflite_checks import check_graph
from edgeseg.tflite_file import GraphTensor, read_model_bytes, read_spec_json
from edgeseg.tflite_metadata import read_standard_metadata


def _tensor(t: GraphTensor) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}


def model_info(path: Path) -> dict:
    """Everything `edgeseg info` prints, as a dict (ModelError for a file that is not a .tflite)."""
    path = Path(path)
    if path.suffix == ".keras":
        raise EdgesegError(
            f"{path.name}: info reads .tflite files; convert the .keras model first "
            "(edgeseg convert), or bench it, which counts a .keras model's MACs too"
        )
    if path.suffix.lower() in SUFFIXES and path.suffix.lower() != ".tflite":
        raise EdgesegError(
            f"{path.name}: info reads .tflite graphs; `edgeseg bench {path.name} --json FILE` describes a "
            f"{path.suffix} model (its input, output, spec, runtime and the cost its spec carries)"
        )
    buf = read_model_bytes(path)
    graph = check_graph(buf, path.name)  # what an interpreter would trust, checked: a damaged file is one line
    cost = graph_cost(graph)
    raw = read_spec_json(buf, str(path))
    spec = None
    if raw:
        try:
            spec = ModelSpec.from_json(raw).to_dict()
        except ModelError as e:
            raise ModelError(f"{path.name}: embedded {e}") from None
    rep = lint(path)
    return {
        "model": str(path),
        "size_bytes": len(buf),
        "spec": spec,
        "score": _score(path, spec),
        "standard_metadata": read_standard_metadata(buf, path.name),
        "inputs": [_tensor(graph.tensors[i]) for i in graph.inputs],
        "outputs": [_tensor(graph.tensors[i]) for i in graph.outputs],
        **cost.to_dict(),
        "edgetpu": {
            "ready": rep.ready,
            "cpu_findings": sum(f.severity in ("cpu", "error") for f in rep.findings),
            "warnings": sum(f.severity == "warn" for f in rep.findings),
            "first_cpu_op": rep.to_dict()["first_cpu_op"],
            "cpu_ops": rep.cpu_ops,
            "compiled": rep.compiled,
            "table": rep.source,
        },
    }


def _score(path: Path, spec: dict | None) -> dict | None:
    """The model's accuracy as far as it is known, the held-out figure first: a shipped model's score on
    CamVid's test split; else the val mIoU its spec records, said to be on frames it trained on when it was."""
    from edgeseg.assets import shipped_score

    trained_on_val = None
    if spec is not None:
        protocol = (spec.get("extra") or {}).get("protocol") or {}
        if isinstance(protocol.get("disjoint"), bool):
            trained_on_val = not protocol["disjoint"]
    val = None if spec is None or spec.get("val_miou") is None else 100 * spec["val_miou"]
    held = shipped_score(path)
    if held:
        where, miou, how = held
        return {"held_out": {"where": where, "miou": miou, "how": how}, "val_miou": val, "val_trained_on": True}
    if val is None:
        return None
    if trained_on_val is False:
        return {"held_out": {"where": spec["extra"]["protocol"].get("val", "val"), "miou": val, "how": "held out"}}
    return {"held_out": None, "val_miou": val, "val_trained_on": trained_on_val}


def _score_line(score: dict | None) -> str | None:
    if not score:
        return None
    parts = []
    if score.get("held_out"):
        h = score["held_out"]
        parts.append(f"mIoU {h['miou']:.2f} on {h['where']} ({h['how']})")
    if score.get("val_miou") is not None:
        said = {True: " (frames it trained on: not a test)", False: "", None: ""}[score.get("val_trained_on")]
        parts.append(f"val mIoU {score['val_miou']:.2f}{said}")
    return "  score   " + "; ".join(parts)


def format_info(d: dict) -> list[str]:
    """The terminal lines for `edgeseg info`."""
    lines = [f"{Path(d['model']).name}: {d['size_bytes'] / 1e6:.2f} MB"]
    for key in ("inputs", "outputs"):
        for t in d[key]:
            lines.append(f"  {key[:-1]:<7} {t['dtype']:<8} {'x'.join(map(str, t['shape'])):<16} {t['name']}")
    spec = d["spec"]
    if spec:
        h, w = spec["input_hw"]
        lines.append(
            f"  spec    {w}x{h} (WxH), {len(spec['classes'])} classes: {', '.join(spec['classes'][:12])}"
            + (" ..." if len(spec["classes"]) > 12 else "")
            + (f"; backbone {spec['backbone']}" if spec.get("backbone") else "")
            + (f", decoder {spec['decoder']}" if spec.get("decoder") else "")
        )
        if _score_line(d.get("score")):
            lines.append(_score_line(d["score"]))
    else:
        std = d.get("standard_metadata") or {}
        if std:
            said = [
                f"mean {std['mean']}, std {std['std']}" if std.get("mean") else "",
                f"labels {', '.join(std['labels'][:12])}" if std.get("labels") else "",
            ]
            lines.append("  spec    none embedded; TFLite Metadata: " + "; ".join(x for x in said if x))
        else:
            lines.append("  spec    none embedded (run, bench and eval read it off the tensors)")
    counted = f"{d['gmacs']:.3f} GMACs per frame"
    if d["uncounted"]:
        counted = (
            f"{d['gmacs']:.3f} GMACs counted outside {', '.join(d['uncounted'])} (compiled or custom ops: "
            "their work cannot be read from the graph)"
        )
    by_op = ", ".join(f"{k} {v / 1e9:.3f}" for k, v in sorted(d["macs_by_op"].items(), key=lambda kv: -kv[1]))
    lines.append(f"  cost    {counted}" + (f" ({by_op})" if by_op else ""))
    lines.append(f"  params  {d['params']:,} ({d['params'] / 1e6:.2f} M)")
    share = d["int8_op_share"]
    lines.append(
        f"  integer {d['integer_ops']} of {d['op_count']} ops"
        + ("" if share is None else f" ({100 * share:.0f}%) have no float tensor")
    )
    lines.append("  ops     " + ", ".join(f"{k} {v}" for k, v in d["ops"].items()))
    tpu = d["edgetpu"]
    if tpu["compiled"]:
        verdict = f"compiled for the Edge TPU; {len(tpu['cpu_ops'])} op(s) beside it run on the CPU" + (
            f": {', '.join(tpu['cpu_ops'])}" if tpu["cpu_ops"] else ""
        )
    elif tpu["ready"]:
        verdict = "ready: every op is on the supported list, 8-bit, static shapes"
        if tpu["warnings"]:
            verdict += f" ({tpu['warnings']} warning(s): edgeseg edgetpu MODEL for details)"
    else:
        verdict = (
            f"not ready: {tpu['cpu_findings']} finding(s); predicted on the CPU after compiling: "
            f"{', '.join(tpu['cpu_ops']) or 'none'} (edgeseg edgetpu MODEL for details)"
        )
    lines.append(f"  edgetpu {verdict}")
    return lines
