"""The PyTorch backend: one device, the first CUDA GPU when there is one (Keras puts the model there), else
the CPU. Data parallelism is on the tensorflow and jax backends; Keras' torch trainer has none of its own.
No TensorFlow anywhere: a `pip install 'edgeseg[torch]'` environment trains.
"""

from __future__ import annotations

from edgeseg.training.backends.base import Distribution, TrainingBackend


class TorchBackend(TrainingBackend):
    """Keras on PyTorch."""

    name = "torch"
    strategies = ("auto", "none")

    def distribution(self, strategy: str = "auto", log=print) -> Distribution:
        """One device; with several GPUs, says that it uses the first."""
        self.check_strategy(strategy)
        found = self.accelerators()
        if len(found) > 1:
            log(f"torch trains on one GPU of the {len(found)}: --backend jax or tensorflow uses them all")
        return Distribution("none", 1)

    def accelerators(self) -> list[dict]:
        """The CUDA GPUs PyTorch sees."""
        import torch

        if not torch.cuda.is_available():
            return []
        return [
            {
                "index": i,
                "name": torch.cuda.get_device_name(i),
                "compute_capability": tuple(torch.cuda.get_device_capability(i)),
                "memory_mib": torch.cuda.get_device_properties(i).total_memory // 2**20,
            }
            for i in range(torch.cuda.device_count())
        ]

    def device_memory(self) -> tuple[str, int] | None:
        """The peak memory PyTorch's CUDA allocator has handed out."""
        import torch

        return ("GPU", int(torch.cuda.max_memory_allocated())) if torch.cuda.is_available() else None


BACKEND = TorchBackend()
