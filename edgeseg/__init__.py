"""edgeseg: semantic segmentation from a dataset to a camera on a small device.

The package root stays light: importing it pulls in nothing heavier than the standard library, so
`edgeseg --help` is instant and the device path never touches TensorFlow.
"""

from edgeseg.errors import EdgesegError

__version__ = "0.1.0"
__all__ = ["EdgesegError", "Model", "Predictor", "Result", "Segmenter", "__version__", "load_model"]

_LAZY = {
    "load_model": "edgeseg.api",
    "Model": "edgeseg.api",
    "Predictor": "edgeseg.predictors.base",
    "Segmenter": "edgeseg.predictors.tflite",
    "Result": "edgeseg.result",
}


def __getattr__(name: str):
    """`from edgeseg import load_model, Result` imports numpy and the runtime only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeseg' has no attribute {name!r}")
