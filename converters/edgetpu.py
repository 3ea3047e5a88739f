"""The Edge TPU compiler step: run edgetpu_compiler on an int8 .tflite where it is installed (x86-64 Debian or
Ubuntu, from Coral's apt repository) and turn its log into JSON. The lint it follows is edgeseg.edgetpu's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

INSTALL_HINT = (
    "edgetpu_compiler is not installed: it runs on x86-64 Debian/Ubuntu from Coral's apt repository "
    "(package edgetpu-compiler), or in Coral's Colab notebook; edgeseg never installs it for you"
)


def parse_compiler_log(text: str) -> dict:
    """edgetpu_compiler's stdout (-s for the per-op table) -> JSON-able summary."""
    out: dict = {"compiled": False, "errors": [], "operators": []}
    m = re.search(r"Edge TPU Compiler version (\S+)", text)
    out["compiler_version"] = m.group(1) if m else None
    out["compiled"] = "Model compiled successfully" in text
    keys = {
        "Input model": "input_model",
        "Input size": "input_size",
        "Output model": "output_model",
        "Output size": "output_size",
        "On-chip memory used for caching model parameters": "on_chip_used",
        "On-chip memory remaining for caching model parameters": "on_chip_remaining",
        "Off-chip memory used for streaming uncached model parameters": "off_chip_used",
        "Number of Edge TPU subgraphs": "tpu_subgraphs",
        "Total number of operations": "total_ops",
        "Number of operations that will run on Edge TPU": "ops_on_tpu",
        "Number of operations that will run on CPU": "ops_on_cpu",
        "Operation log": "operation_log",
    }
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ERROR:"):
            out["errors"].append(line[6:].strip())
            continue
        key, sep, value = line.partition(":")
        if sep and key in keys:
            value = value.strip()
            field_name = keys[key]
            out[field_name] = int(value) if value.isdigit() else value
            if field_name in ("input_size", "output_size", "on_chip_used", "on_chip_remaining", "off_chip_used"):
                out[field_name + "_bytes"] = _bytes(value)
        row = re.match(r"^([A-Z][A-Z0-9_]+|edgetpu-custom-op)\s+(\d+)\s+(\S.*)$", line)
        if row and not line.startswith("Operator"):
            out["operators"].append(
                {
                    "operator": row.group(1),
                    "count": int(row.group(2)),
                    "status": row.group(3),
                    "on_tpu": row.group(3).startswith("Mapped to Edge TPU"),
                }
            )
    if "Invalid model" in text or "Model could not be parsed" in text:
        out["compiled"] = False
    if out["operators"] and "ops_on_tpu" not in out:
        out["ops_on_tpu"] = sum(r["count"] for r in out["operators"] if r["on_tpu"])
        out["ops_on_cpu"] = sum(r["count"] for r in out["operators"] if not r["on_tpu"])
    return out


def _bytes(text: str) -> int | None:
    m = re.match(r"([\d.]+)\s*(B|KiB|MiB|GiB)", text)
    if not m:
        return None
    return int(float(m.group(1)) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[m.group(2)])


def compile_model(model: Path, out_dir: Path | None = None, timeout: int = 600) -> dict:
    """Compile `model` with edgetpu_compiler into `out_dir` (default: beside it); the parsed log, or
    {"compiled": False, "skipped": why} when the compiler is not installed."""
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        return {"compiled": False, "skipped": INSTALL_HINT}
    out_dir = Path(out_dir or Path(model).parent)
    proc = subprocess.run([exe, "-s", "-o", str(out_dir), str(model)], capture_output=True, text=True, timeout=timeout)
    result = parse_compiler_log(proc.stdout + "\n" + proc.stderr)
    result["returncode"] = proc.returncode
    return result


def format_compiler(comp: dict) -> list[str]:
    """The terminal lines for compile_model's result."""
    if "skipped" in comp:
        return [f"  {comp['skipped']}"]
    if comp.get("compiled"):
        return [
            f"  compiled ({comp.get('compiler_version')}): {comp.get('ops_on_tpu')} ops on the Edge TPU, "
            f"{comp.get('ops_on_cpu', 0)} on the CPU; on-chip memory {comp.get('on_chip_used')}, "
            f"output {comp.get('output_model')}"
        ]
    return [f"  edgetpu_compiler refused the model: {'; '.join(comp['errors']) or 'see its log'}"]
