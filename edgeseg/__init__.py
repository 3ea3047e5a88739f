"""edgeseg: semantic segmentation from a dataset to a camera on a small device.

The package root stays light: importing it pulls in nothing heavier than the standard library, so
`edgeseg --help` is instant and the device path never touches TensorFlow.
"""

from edgeseg.errors import EdgesegError

__version__ = "0.1.0"
__all__ = ["EdgesegError", "__version__"]
