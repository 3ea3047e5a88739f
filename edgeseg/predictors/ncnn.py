"""NcnnSegmenter: an ncnn model (.param with its .bin weights beside it) on ncnn's CPU path (the `ncnn` extra), so
`run`, `bench`, `eval` and load_model take .param files too. ncnn's format carries no metadata and no input
size: the spec is the `<stem>.spec.json` that `edgeseg convert --to ncnn` writes beside the model, or `--spec`.
ncnn holds images channels-first (C x H x W); the predictor takes and gives NHWC like every other runtime and
transposes at the edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError, first_sentence, missing_extra
from edgeseg.host import installed_version
from edgeseg.io import caught_stderr
from edgeseg.predictors.base import Predictor
from edgeseg.tensors import TensorInfo

NCNN_MAGIC = "7767517"  # the first line of every .param file
MAX_PARAM_BYTES = 16 * 1024 * 1024
MAX_LAYERS = 100_000
TRIAL_HW = (224, 224)  # the size of the one run that finds the class count when no spec says the size
WEIGHTS_BYTES = "ncnn_weights_bytes"  # the spec's extra entry that holds the .bin's size


def check_param(path: Path) -> None:
    """A .param file's frame before ncnn parses it (ncnn's parser trusts its input): the magic line, then the
    layer and blob counts, then as many layer lines as it says. ModelError naming what is wrong."""
    if path.stat().st_size > MAX_PARAM_BYTES:
        raise ModelError(f"{path.name}: {path.stat().st_size:,} bytes, larger than any ncnn .param")
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != NCNN_MAGIC:
        raise ModelError(f"{path.name}: not an ncnn .param file (its first line is not {NCNN_MAGIC})")
    counts = lines[1].split() if len(lines) > 1 else []
    if len(counts) != 2 or not all(c.isdigit() for c in counts) or not 0 < int(counts[0]) <= MAX_LAYERS:
        raise ModelError(f"{path.name}: its second line is not the layer and blob counts")
    layers = [ln for ln in lines[2:] if ln.strip()]
    if len(layers) != int(counts[0]):
        raise ModelError(f"{path.name}: it names {counts[0]} layers but holds {len(layers)} (a truncated file?)")
    for i, ln in enumerate(layers):
        f = ln.split()
        if len(f) < 4 or not (f[2].isdigit() and f[3].isdigit()) or len(f) < 4 + int(f[2]) + int(f[3]):
            raise ModelError(f"{path.name}: layer line {i + 1} is not 'type name inputs outputs blobs...'")


class NcnnSegmenter(Predictor):
    """One ncnn model (the .param's path) on ncnn's CPU path. See Predictor for the arguments; delegate can only
    be "auto" or "cpu"."""

    suffix = ".param"

    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        if delegate == "edgetpu":
            raise ModelError(f"{self.path.name}: the Edge TPU runs compiled .tflite models, not ncnn")
        if isinstance(model, bytes):
            raise ModelError("an ncnn model is two files (.param and .bin): give the .param file's path")
        try:
            import ncnn
        except ImportError:
            raise missing_extra("ncnn (for .param models)", "ncnn") from None
        path, weights = self._on_disk(model, ".bin")
        check_param(path)
        self._check_weights(weights)
        self.net = ncnn.Net()
        if self.threads:
            self.net.opt.num_threads = self.threads
        with caught_stderr() as said:  # ncnn prints its complaint: it goes into the one message
            param_rc = self.net.load_param(str(path))
            weights_rc = self.net.load_model(str(weights)) if param_rc == 0 else 0
        why = f" ({first_sentence(said[0])})" if said else ""
        if param_rc != 0:
            raise ModelError(f"{path.name}: ncnn rejects this .param{why}")
        if weights_rc != 0:
            raise ModelError(f"{path.name}: ncnn cannot read its weights from {weights.name}{why}: truncated?")
        ins, outs = self.net.input_names(), self.net.output_names()
        if len(ins) != 1 or not outs:
            raise ModelError(f"{path.name}: expected one input and an output, found {len(ins)} and {len(outs)}")
        self._in, self._out = ins[0], outs[0]
        self.runtime_name, self.delegate = "ncnn", "cpu"
        self.runtime_version = installed_version("ncnn") or "unknown"
        self.size_bytes = path.stat().st_size + weights.stat().st_size
        self.input = TensorInfo(self._in, (1, None, None, 3), np.dtype(np.float32))
        classes = self._trial(self._sidecar_hw() or TRIAL_HW).shape[-1]
        self.output = TensorInfo(self._out, (1, None, None, classes), np.dtype(np.float32))

    def _sidecar_hw(self) -> tuple[int, int] | None:
        spec = self._sidecar_parsed()
        return spec.input_hw if spec else None

    def _check_weights(self, weights: Path) -> None:
        """ncnn reads the .bin in order and does not notice one that is longer than its model (another model's
        weights): `convert --to ncnn` writes the size into the spec beside it, and it is held to that."""
        spec = self._sidecar_parsed()
        expected = spec.extra.get(WEIGHTS_BYTES) if spec else None
        size = weights.stat().st_size
        if isinstance(expected, int) and size != expected:
            raise ModelError(
                f"{self.path.name}: {weights.name} is {size:,} bytes but its spec says {expected:,}: "
                "not this model's weights (or truncated)"
            )

    def _trial(self, hw: tuple[int, int]) -> np.ndarray:
        """One run on a grey image: what the output looks like, and that the weights load into it."""
        try:
            return self.invoke(np.full((1, *hw, 3), 128, np.float32))
        except ModelError as e:
            raise ModelError(f"{self.path.name}: a trial run at {hw[1]}x{hw[0]} failed ({e})") from None

    def _fix_input_hw(self, hw: tuple[int, int]) -> None:
        out = self._trial(hw)
        self.output = self.output.with_shape(out.shape)

    def _embedded_spec(self) -> tuple[str | None, str]:
        return self._sidecar_spec()

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared NHWC input tensor; return the output as NHWC."""
        import ncnn

        chw = np.ascontiguousarray(tensor[0].transpose(2, 0, 1), dtype=np.float32)
        ex = self.net.create_extractor()
        ex.input(self._in, ncnn.Mat(chw).clone())  # ncnn's Mat only borrows a numpy array: it gets its own copy
        rc, out = ex.extract(self._out)
        if rc != 0:
            raise ModelError(f"ncnn could not compute {self._out} (error {rc})")
        arr = np.array(out)
        if arr.ndim == 2:  # one channel: ncnn drops it
            arr = arr[None]
        return np.ascontiguousarray(arr.transpose(1, 2, 0))[None]


PREDICTOR = NcnnSegmenter
