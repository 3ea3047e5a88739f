"""The JAX backend: XLA compiles every step (JAX has no fast path without it), and data parallelism over one
machine's GPUs goes through keras.distribution.DataParallel, whose layout is active while the model is built and
while it trains. No TensorFlow anywhere: a `pip install 'edgeseg[jax]'` environment trains.

On the CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=2` gives JAX two devices, which is how the tests
run --strategy mirrored without GPUs.
"""

from __future__ import annotations

from edgeseg.training.backends.base import Distribution, TrainingBackend


def _capability(device) -> tuple[int, int] | None:
    text = str(getattr(device, "compute_capability", "") or "")
    major, _, minor = text.partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() and (minor or "0").isdigit() else None


class JaxBackend(TrainingBackend):
    """Keras on JAX."""

    name = "jax"
    strategies = ("auto", "none", "mirrored")
    jit_default = True
    scope_covers_fit = True

    def distribution(self, strategy: str = "auto", log=print) -> Distribution:
        """auto: data parallel over every GPU when there are several, else one device; mirrored: over every
        device JAX has (GPUs, else the CPU devices XLA_FLAGS asks for)."""
        import jax
        import keras

        self.check_strategy(strategy)
        devices = jax.devices()
        if strategy == "auto":
            strategy = "mirrored" if len(devices) > 1 and devices[0].platform == "gpu" else "none"
        if strategy == "none" or len(devices) < 2:
            if strategy == "mirrored":
                log(f"--strategy mirrored: JAX has one device ({devices[0].platform}), so one replica")
            return Distribution("none", 1)
        layout = keras.distribution.DataParallel(devices=devices)
        return Distribution("mirrored", len(devices), scope=layout.scope, strategy=layout)

    def accelerators(self) -> list[dict]:
        """The GPUs JAX sees."""
        import jax

        out = []
        for i, d in enumerate(d for d in jax.devices() if d.platform == "gpu"):
            stats = d.memory_stats() or {}
            limit = stats.get("bytes_limit")
            out.append(
                {
                    "index": i,
                    "name": getattr(d, "device_kind", str(d)),
                    "compute_capability": _capability(d),
                    "memory_mib": int(limit) // 2**20 if limit else None,
                }
            )
        return out

    def device_memory(self) -> tuple[str, int] | None:
        """The first device's peak bytes in use, where XLA counts them (GPUs; the CPU says nothing)."""
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else ("GPU", int(peak))


BACKEND = JaxBackend()
