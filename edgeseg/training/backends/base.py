"""What every training backend answers: where a run's replicas are, which devices it has and how much memory
they used, which mixed-precision policy suits them, and whether XLA compiles the step by default."""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeseg.errors import EdgesegError

MIXED_FLOAT16_MIN_CC = (7, 0)  # tensor cores: Volta and later
BFLOAT16_MIN_CC = (8, 0)  # bfloat16 in hardware: Ampere and later, which then needs no loss scaling


@dataclass
class Distribution:
    """Where a run's replicas are, and this process's role among them (single, chief or a worker).

    Attributes:
        name: none, mirrored or multiworker.
        replicas: how many copies of the model each global batch is split over.
        role: "single", "chief" or "worker N".
        is_chief: this process writes the run's files.
        task_index: this worker's index in a multi-worker cluster.
        scope: a context in which the model is built (and, on JAX, trained): a tf.distribute strategy's scope,
            or a keras.distribution layout.
        strategy: the backend's own object (a tf.distribute.Strategy, a keras.distribution.Distribution), or None.
    """

    name: str
    replicas: int
    role: str = "single"
    is_chief: bool = True
    task_index: int = 0
    scope: Callable[[], contextlib.AbstractContextManager] = field(default=contextlib.nullcontext)
    strategy: object = None

    def describe(self) -> str:
        """One line for the log: the strategy, its replicas and this process's role."""
        return f"strategy {self.name}, {self.replicas} replica(s), role {self.role}"


class TrainingBackend:
    """One Keras backend, as training sees it. Subclasses set the names and fill in what their library knows."""

    name = ""
    strategies: tuple[str, ...] = ("auto", "none")  # the --strategy values it runs
    jit_default = False  # whether fit() compiles the step with XLA unless told otherwise
    scope_covers_fit = False  # the distribution's scope must also be active during fit() (keras.distribution)

    def check_strategy(self, strategy: str) -> None:
        """EdgesegError naming the backends that have `strategy`, when this one does not."""
        if strategy not in self.strategies:
            from edgeseg.training.backends import BACKEND_TABLE, training_backend

            others = [n for n in BACKEND_TABLE if n != self.name and strategy in training_backend(n).strategies]
            raise EdgesegError(
                f"--strategy {strategy} is not on the {self.name} backend (it runs {', '.join(self.strategies)}); "
                f"{' and '.join(others) or 'no backend'} {'has' if len(others) == 1 else 'have'} it"
            )

    def distribution(self, strategy: str, log: Callable[[str], None] = print) -> Distribution:
        """The run's replicas for --strategy `strategy` (auto: data parallel over several GPUs, else one device)."""
        self.check_strategy(strategy)
        return Distribution("none", 1)

    def accelerators(self) -> list[dict]:
        """The GPUs this backend trains on: index, name, compute_capability (major, minor) and memory_mib."""
        return []

    def mixed_policy(self, setting: bool | None) -> str | None:
        """The Keras dtype policy for --mixed-precision (True), --no-mixed-precision (False) or the default (None):
        mixed_bfloat16 where every GPU has bfloat16 (compute capability 8.0 and later), mixed_float16 with loss
        scaling on tensor-core GPUs before that, nothing on older GPUs or the CPU unless asked for (then
        bfloat16, which CPUs with AVX-512 BF16 or AMX compute natively)."""
        if setting is False:
            return None
        found = self.accelerators()
        if not found:
            return "mixed_bfloat16" if setting else None
        lowest = min(tuple(g.get("compute_capability") or (0, 0)) for g in found)
        if lowest >= BFLOAT16_MIN_CC:
            return "mixed_bfloat16"
        if lowest >= MIXED_FLOAT16_MIN_CC or setting:
            return "mixed_float16"
        return None

    def device_memory(self) -> tuple[str, int] | None:
        """("GPU", peak bytes in use) for the training device, or None when this backend cannot say."""
        return None

    def peak_memory(self) -> tuple[str, int]:
        """The peak memory of the training device: the GPU's where there is one, else this process's (host)."""
        found = self.device_memory()
        if found is not None:
            return found
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return "host", rss if sys.platform == "darwin" else rss * 1024  # Linux counts KiB, macOS bytes

    def prepare(self, model, dist: Distribution) -> None:
        """Anything the backend needs done to a built model before fit() (TensorFlow's multi-worker fix)."""

    def is_cluster_error(self, e: BaseException) -> bool:
        """Whether `e` is a collective operation failing because a peer worker is gone."""
        return False
