"""TensorFlow imported with its load lines kept off the terminal (the workstation side: it imports TensorFlow)."""

from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Import TensorFlow (when installed, and Keras is to run on it) with its C++ log lines held back:
    TF_CPP_MIN_LOG_LEVEL does not silence what absl prints before its logging starts (edgeseg.quiet)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import importlib.util

    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    from edgeseg.quiet import libraries_quiet

    with libraries_quiet():
        import tensorflow  # noqa: F401
