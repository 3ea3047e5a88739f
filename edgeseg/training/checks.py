"""doctor's training lines: the GPUs TensorFlow sees and what `train` does with them."""

from __future__ import annotations

from edgeseg.doctor import Check


def gpu_checks(found: list[dict] | None = None) -> list[Check]:
    """The GPUs TensorFlow sees (for training): name, memory, compute capability, and what train does there."""
    if found is None:
        try:
            from edgeseg.training.backends.tf import gpus

            found = gpus()
        except Exception as e:  # a broken CUDA install must not stop the other checks
            return [Check("WARN", "GPUs", f"TensorFlow cannot list them ({type(e).__name__}: {e})")]
    if not found:
        return [Check("INFO", "GPUs", "none that TensorFlow sees: train runs on the CPU")]
    from edgeseg.training.backends.base import BFLOAT16_MIN_CC, MIXED_FLOAT16_MIN_CC

    out = []
    for g in found:
        cc = tuple(g["compute_capability"] or (0, 0))
        memory = f", {g['memory_mib'] / 1024:.0f} GiB" if g.get("memory_mib") else ""
        mixed = (
            "mixed_bfloat16 by default"
            if cc >= BFLOAT16_MIN_CC
            else "mixed_float16 by default"
            if cc >= MIXED_FLOAT16_MIN_CC
            else "float32 (no tensor cores)"
        )
        out.append(
            Check("OK", f"GPU {g['index']}", f"{g['name']}{memory}, compute capability {cc[0]}.{cc[1]}: {mixed}")
        )
    if len(found) > 1:
        out.append(Check("INFO", "training strategy", f"auto picks mirrored over the {len(found)} GPUs"))
    return out
