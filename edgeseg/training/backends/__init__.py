"""Which Keras backend trains: TensorFlow, JAX or PyTorch, one module each behind one small interface
(edgeseg.training.backends.base.TrainingBackend), as the predictors are one module per runtime.

The rest of training never asks which backend it runs on: it speaks keras.ops and Keras layers, takes its
batches from a numpy PyDataset, and asks the backend object for what differs (devices and their memory, mixed
precision, data parallelism, XLA). Keras reads its backend once, when it is first imported, so the choice is
made here before anything imports Keras: `select_backend` sets KERAS_BACKEND, or refuses in one line when this
process already runs Keras on another backend. Standard library only at import.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import NamedTuple

from edgeseg.choices import BACKENDS, check_choice
from edgeseg.errors import EdgesegError


class BackendEntry(NamedTuple):
    """One backend: the module that implements it, the library it needs (its import name and the name it goes
    by), and the pip extra that brings it."""

    module: str
    library: str
    extra: str
    display: str


BACKEND_TABLE = {
    "tensorflow": BackendEntry("edgeseg.training.backends.tf", "tensorflow", "train", "TensorFlow"),
    "jax": BackendEntry("edgeseg.training.backends.jax", "jax", "jax", "JAX"),
    "torch": BackendEntry("edgeseg.training.backends.torch", "torch", "torch", "PyTorch"),
}
assert tuple(BACKEND_TABLE) == BACKENDS


def default_backend() -> str:
    """KERAS_BACKEND when it names one of ours, else tensorflow."""
    env = os.environ.get("KERAS_BACKEND", "").strip().lower()
    return env if env in BACKEND_TABLE else "tensorflow"


def running_backend() -> str | None:
    """The backend this process's Keras already runs on (None while Keras is not imported)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    return keras.backend.backend()


def select_backend(name: str | None) -> str:
    """Make `name` (None: default_backend()) the backend Keras runs on in this process, before Keras is imported;
    EdgesegError when its library is not installed, or when Keras already runs here on another one."""
    name = name or default_backend()
    check_choice(name, BACKENDS, "backend")
    entry = BACKEND_TABLE[name]
    running = running_backend()
    if running is not None and running != name:
        raise EdgesegError(
            f"--backend {name}: Keras already runs on {running} in this process; start a new one with "
            f"KERAS_BACKEND={name}"
        )
    if importlib.util.find_spec(entry.library) is None:
        raise EdgesegError(
            f"--backend {name} needs {entry.display}, which this environment does not have: "
            f"pip install 'edgeseg[{entry.extra}]'"
        )
    os.environ["KERAS_BACKEND"] = name
    return name


def training_backend(name: str | None = None):
    """The TrainingBackend object for `name` (None: the one Keras runs on, else the default)."""
    name = name or running_backend() or default_backend()
    check_choice(name, BACKENDS, "backend")
    return importlib.import_module(BACKEND_TABLE[name].module).BACKEND
