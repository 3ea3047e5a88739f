"""Libraries' own log lines kept off the terminal: TensorFlow's and LiteRT's C++ logging, the converter's notes.
They write to the process's stderr file descriptor, past Python, so a block that may print them runs with fd 2
caught in a temporary file; afterwards every line that is not known noise is passed on, in order. `edgeseg -v`
(EDGESEG_VERBOSE=1) passes everything. Standard library only."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

VERBOSE_ENV = "EDGESEG_VERBOSE"

# Lines that say nothing a user can act on, by what they contain
NOISE = (
    # TensorFlow while it loads: absl's note that logging is not set up yet, oneDNN's numerics note, the
    # CPU-feature guard's build advice
    "WARNING: All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    # LiteRT and TensorFlow Lite at every interpreter
    "INFO: Created TensorFlow Lite XNNPACK delegate",
    "INFO: Initialized TensorFlow Lite runtime",
    # the TFLite converter
    "fully_quantize: 0, inference_type:",
    "W0000 00:00:",  # absl warnings the converter prints about its own passes
    "I0000 00:00:",
    "Estimated count of arithmetic ops",
)
# Python warnings from libraries that are notes, not problems: the converter's about int8 inputs it calibrates itself
QUIET_WARNINGS = (
    "Statistics for quantized inputs were expected",
    "tf.lite.Interpreter is deprecated",  # TensorFlow's, inside its own QuantizationDebugger
)


def verbose() -> bool:
    """Whether the user asked to see the libraries' own lines (edgeseg -v)."""
    return os.environ.get(VERBOSE_ENV) == "1"


@contextlib.contextmanager
def libraries_quiet(noise: tuple[str, ...] = NOISE):
    """Run the block with the libraries' known noise on stderr (C++ or Python) held back; other lines pass."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a daemon): nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as caught, warnings.catch_warnings():
        for text in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=f".*{text}")
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode("utf-8", "replace").splitlines()
            for line in lines:
                if line.strip() and not any(n in line for n in noise):
                    print(line, file=sys.stderr)
