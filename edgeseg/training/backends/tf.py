"""The TensorFlow backend: one device, the GPUs of one machine, or several machines, through tf.distribute.

- none: the default strategy (one device).
- mirrored: MirroredStrategy over this machine's GPUs, or over its logical CPU devices when there are no GPUs and
  more than one logical CPU is configured (how the tests run it on 2 cores).
- multiworker: MultiWorkerMirroredStrategy; the cluster comes from the TF_CONFIG environment variable.
- auto: mirrored when more than one GPU is visible, none otherwise.

`--batch-size` is per replica: the global batch is batch_size x replicas, and the learning rate is used as
given (not scaled with the global batch; scale --lr yourself when you add replicas). Mixed precision follows the
GPUs (TrainingBackend.mixed_policy). XLA is off by default: on the CPUs measured here it made the first step 2x
and every later step 4x slower.
"""

from __future__ import annotations

import json
import os

from edgeseg.errors import EdgesegError
from edgeseg.training.backends.base import Distribution, TrainingBackend

MAX_TF_CONFIG = 64 * 1024  # characters: a cluster of a thousand workers fits


def read_tf_config(text: str | None) -> tuple[str, int, dict]:
    """(task type, task index, cluster) from TF_CONFIG's text; one clear EdgesegError when it does not fit."""
    if not text:
        raise EdgesegError(
            "--strategy multiworker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    if len(text) > MAX_TF_CONFIG:
        raise EdgesegError(f"TF_CONFIG is {len(text):,} characters: more than a cluster description needs")
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise EdgesegError(f"TF_CONFIG is not valid JSON ({e})") from None
    except RecursionError:
        raise EdgesegError("TF_CONFIG is nested too deeply to be a cluster description") from None
    cluster = cfg.get("cluster") if isinstance(cfg, dict) else None
    task = cfg.get("task") if isinstance(cfg, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise EdgesegError('TF_CONFIG: "cluster" must list the "worker" addresses (and optionally one "chief")')
    for kind, addresses in cluster.items():
        if kind not in ("chief", "worker") or not isinstance(addresses, list) or not addresses:
            raise EdgesegError(f'TF_CONFIG: cluster "{kind}" must be a non-empty list of host:port (chief, worker)')
        for a in addresses:
            host, _, port = str(a).rpartition(":")
            if not host or not port.isdigit():
                raise EdgesegError(f"TF_CONFIG: {a!r} is not host:port")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise EdgesegError(f'TF_CONFIG: "task" must name a type in the cluster ({", ".join(cluster)})')
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task["type"]]):
        raise EdgesegError(
            f'TF_CONFIG: task index {index!r} is not one of the {len(cluster[task["type"]])} "{task["type"]}" addresses'
        )
    return task["type"], index, cluster


def role_of(task_type: str, index: int, cluster: dict) -> tuple[str, bool]:
    """The chief writes the run's files: the "chief" task, or worker 0 when the cluster has no chief."""
    if task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster):
        return "chief", True
    return f"worker {index}", False


def gpus() -> list[dict]:
    """The GPUs TensorFlow sees: name and compute capability (memory from nvidia-smi where it is installed)."""
    import tensorflow as tf

    out = []
    for i, dev in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(dev)
        cc = details.get("compute_capability")
        out.append(
            {
                "index": i,
                "name": details.get("device_name", dev.name),
                "compute_capability": cc,
                "memory_mib": _nvidia_memory(i),
            }
        )
    return out


def _nvidia_memory(index: int) -> int | None:
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        text = subprocess.run(
            [exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", str(index)],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return int(text.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def fix_keras_multiworker(model) -> None:
    """Work around keras-team/keras#20585 (open since Keras 3.0), the two places where Keras 3's TensorFlow
    trainer breaks under MultiWorkerMirroredStrategy; the only calls into Keras' private code in edgeseg.

    1. fit() first averages one distributed batch across workers, eagerly, only to learn its shapes, and that
       eager cross-worker reduce fails ("Attempt to convert a value (PerReplica ...)"). The shapes of this
       worker's own replica serve as well: replaced on this model only.
    2. Each step's logs (the loss, scalars) are averaged across workers with axis=0, which a scalar does not
       have ("Invalid reduction dimension 0"). Scalars are averaged with axis=None instead; everything else is
       left to Keras. Patched once in Keras' trainer module (it only changes the multi-worker case)."""
    import types

    import tensorflow as tf
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not getattr(tf_trainer.reduce_per_replica, "edgeseg_fixed", False):
        keras_reduce = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):

                def mean(v):
                    if getattr(v, "shape", None) is not None and v.shape.rank == 0:
                        return strategy.reduce("MEAN", v, axis=None)
                    return keras_reduce(v, strategy, reduction)

                return tree.map_structure(mean, values)
            return keras_reduce(values, strategy, reduction)

        reduce_per_replica.edgeseg_fixed = True
        tf_trainer.reduce_per_replica = reduce_per_replica

    def symbolic_build_from_local_batch(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda x: (
                        self.distribute_strategy.experimental_local_results(x)[0]
                        if isinstance(x, tf.distribute.DistributedValues)
                        else x
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(symbolic_build_from_local_batch, model)


def _distributed(strategy, name: str, role: str = "single", chief: bool = True, index: int = 0) -> Distribution:
    return Distribution(name, strategy.num_replicas_in_sync, role, chief, index, strategy.scope, strategy)


class TensorFlowBackend(TrainingBackend):
    """Keras on TensorFlow: tf.distribute for several GPUs or machines."""

    name = "tensorflow"
    strategies = ("auto", "none", "mirrored", "multiworker")

    def distribution(self, strategy: str = "auto", log=print) -> Distribution:
        """The strategy for --strategy `strategy` (auto: mirrored over several GPUs, else the default);
        multiworker reads and checks TF_CONFIG, says that it waits for the other workers, and can be stopped
        while it does."""
        import tensorflow as tf

        from edgeseg import signals

        self.check_strategy(strategy)
        if strategy == "multiworker":
            task_type, index, cluster = read_tf_config(os.environ.get("TF_CONFIG"))
            n = sum(len(a) for a in cluster.values())
            log(
                f"multiworker: {task_type} {index} of {n} in TF_CONFIG; waiting until every worker has started "
                "(Ctrl-C or SIGTERM stops the wait)"
            )
            with signals.default_action():  # the wait is native code: a Python signal handler would never run
                found = tf.distribute.MultiWorkerMirroredStrategy()
            role, chief = role_of(task_type, index, cluster)
            return _distributed(found, "multiworker", role, chief, index)
        gpus = tf.config.list_logical_devices("GPU")
        if strategy == "auto":
            strategy = "mirrored" if len(gpus) > 1 else "none"
        if strategy == "none":
            return _distributed(tf.distribute.get_strategy(), "none")
        cpus = tf.config.list_logical_devices("CPU")
        devices = None if gpus or len(cpus) < 2 else [d.name for d in cpus]
        return _distributed(tf.distribute.MirroredStrategy(devices=devices), "mirrored")

    def accelerators(self) -> list[dict]:
        """The GPUs TensorFlow sees."""
        return gpus()

    def device_memory(self) -> tuple[str, int] | None:
        """The first GPU's peak memory, as TensorFlow's allocator counts it."""
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return None
        return "GPU", int(tf.config.experimental.get_memory_info("GPU:0")["peak"])

    def prepare(self, model, dist: Distribution) -> None:
        """The multi-worker fix (fix_keras_multiworker), under --strategy multiworker only."""
        if dist.name == "multiworker":
            fix_keras_multiworker(model)

    def is_cluster_error(self, e: BaseException) -> bool:
        """A collective op failed because a peer is gone (UnavailableError and its kin, as TensorFlow reports
        it)."""
        import tensorflow as tf

        return isinstance(e, tf.errors.OpError) and not isinstance(e, tf.errors.InvalidArgumentError)


BACKEND = TensorFlowBackend()
