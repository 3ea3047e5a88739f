"""Activation equalisation: give every channel of a per-tensor int8 activation the use of the tensor's range.

An int8 activation has one scale for all its channels. After BatchNorm -> ReLU6 the range is set by the
channels that reach 6, and a channel that never passes 0.5 is left a dozen of the 255 steps. MobileNetV2's
early depthwise layers are like this, and on CamVid frames the model never saw they cost small most of its
int8 loss (see docs/benchmarks.md). The fix changes no result in float: ReLU is positively homogeneous, so a
channel scaled by s > 0 before it (BatchNorm's gamma and beta times s) and divided by s after it (the next
convolution's input weights over s) computes the same function, up to ReLU6's cap, which a channel scaled so
its largest calibration value stays below `margin` x 6 does not reach on the calibration frames. This is the
activation side of cross-layer equalisation (Nagel et al., "Data-Free Quantization", 2019); the weight side is
not done: TFLite quantises convolution weights per output channel, though the next layer's weights for a lifted
channel do shrink within that channel's range. It is `convert --int8 --equalize on` (or `auto`, which builds
with and without it and keeps the build closer to float), not the default: on CamVid's unseen frames it took
small's int8 loss from 0.63 to 0.17 and made a distilled nano's worse (0.16 to 0.52).

The pattern, found in the Keras graph (nested functional models included): BatchNormalization -> ReLU (or
ReLU6) -> [ZeroPadding2D] -> Conv2D or DepthwiseConv2D, each tensor on the way read by exactly one layer and
none of them a model output (a U-Net's skip features are read by the decoder too, and are left alone).
`equalized(model, tensors)` changes the weights for the length of a `with` block and puts them back after.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

MARGIN = 0.8  # a scaled channel's calibration maximum stays at or below 0.8 x the ReLU's cap
MAX_SCALE = 16.0  # no channel scaled up more than this (a near-dead channel would otherwise blow up its weights)


@dataclass
class Pair:
    """One equalisable spot: BatchNorm `bn` -> ReLU `relu` (cap None or 6) -> convolution `conv`, in `model`."""

    model: object  # the functional model whose graph holds the three layers
    bn: object
    relu: object
    conv: object
    cap: float | None
    channel_max: np.ndarray | None = None  # the BatchNorm output's per-channel maximum on the calibration frames


@dataclass
class Summary:
    """What equalisation did: spots found, spots changed, channels scaled (and by how much at most)."""

    pairs: int = 0
    changed: int = 0
    channels: int = 0
    largest_scale: float = 1.0

    def to_dict(self) -> dict:
        """As JSON values (convert --json)."""
        return {
            "pairs": self.pairs,
            "changed": self.changed,
            "channels": self.channels,
            "largest_scale": round(self.largest_scale, 2),
        }


def _nodes(layer) -> list:
    """The layer's calls in the graphs it belongs to (Keras' private `_inbound_nodes`, the one call into it here:
    a nested model's outer inputs have no public accessor). A test fails at once if Keras changes it."""
    return list(getattr(layer, "_inbound_nodes", []))


def _relu_cap(layer) -> tuple[bool, float | None]:
    """(is a plain ReLU, its cap): keras ReLU with no slope and no threshold, or Activation relu / relu6."""
    import keras

    if isinstance(layer, keras.layers.ReLU):
        plain = not float(layer.negative_slope) and not float(layer.threshold)
        cap = None if layer.max_value is None else float(layer.max_value)
        return plain and cap in (None, 6.0), cap
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", "")
        if name in ("relu", "relu6"):
            return True, 6.0 if name == "relu6" else None
    return False, None


def find_pairs(model) -> list[Pair]:
    """Every BatchNorm -> ReLU -> convolution spot in `model` and in the functional models nested in it (none in
    a subclassed model: it has no graph to read)."""
    import keras

    if not getattr(model, "inputs", None) or not getattr(model, "outputs", None):
        return []
    pairs: list[Pair] = []
    next_layer = _reader_of(model)
    for layer in model.layers:
        if isinstance(layer, keras.Model) and hasattr(layer, "outputs") and len(_nodes(layer)) == 1:
            pairs += find_pairs(layer)
        if not isinstance(layer, keras.layers.BatchNormalization) or not (layer.center and layer.scale):
            continue
        if layer.axis not in (-1, len(layer.output.shape) - 1):
            continue
        relu = next_layer(layer)
        plain, cap = _relu_cap(relu) if relu is not None else (False, None)
        conv = next_layer(relu) if plain else None
        if isinstance(conv, keras.layers.ZeroPadding2D):
            conv = next_layer(conv)
        depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
        dense = isinstance(conv, keras.layers.Conv2D) and not depthwise and conv.groups == 1
        if (depthwise or dense) and conv.data_format == "channels_last":
            pairs.append(Pair(model, layer, relu, conv, cap))
    return pairs


def _reader_of(model):
    """A function: layer -> the one layer of `model`'s graph that reads its output, or None when the layer is
    called more than once, has several outputs, or its output is read by more than one layer or is a model
    output."""
    readers: dict[int, list] = defaultdict(list)  # tensor id -> the layers that read it (None: a model output)
    shared = set()
    for layer in model.layers:
        nodes = _nodes(layer)
        if len(nodes) != 1:
            shared.add(id(layer))
        for node in nodes:
            for t in node.input_tensors:
                readers[id(t)].append(layer)
    for t in model.outputs:
        readers[id(t)].append(None)

    def next_layer(layer):
        if id(layer) in shared:
            return None
        outs = _nodes(layer)[0].output_tensors
        if len(outs) != 1 or len(readers[id(outs[0])]) != 1:
            return None
        nxt = readers[id(outs[0])][0]
        return None if nxt is None or id(nxt) in shared else nxt

    return next_layer


class _Probe:
    """Reads each pair's per-channel maximum of its BatchNorm output, one frame at a time (the calibration set is
    never held in memory): a probe model per functional model that holds pairs, and for each nested model that
    holds some, a feeder from this model's inputs to the nested model's own."""

    def __init__(self, model, pairs: list[Pair]):
        import keras

        self.here = [p for p in pairs if p.model is model]
        self.probe = keras.Model(model.inputs, [p.bn.output for p in self.here]) if self.here else None
        self.children = [
            (keras.Model(model.inputs, list(_nodes(layer)[0].input_tensors)), _Probe(layer, pairs))
            for layer in model.layers
            if any(p.model is not model and _inside(layer, p.model) for p in pairs)
        ]

    def update(self, x) -> None:
        """Take one input (an array, or a list for a model of several inputs) into the maxima."""
        if self.probe is not None:
            outs = self.probe(x, training=False)
            outs = outs if isinstance(outs, list | tuple) else [outs]
            for p, o in zip(self.here, outs, strict=True):
                m = np.asarray(o).reshape(-1, o.shape[-1]).max(axis=0)
                p.channel_max = m if p.channel_max is None else np.maximum(p.channel_max, m)
        for feeder, child in self.children:
            y = feeder(x, training=False)
            y = list(y) if isinstance(y, list | tuple) else [y]
            child.update(y if len(y) > 1 else y[0])


def _inside(layer, model) -> bool:
    """Whether functional `model` is `layer` or nested anywhere inside it."""
    import keras

    if layer is model:
        return True
    return isinstance(layer, keras.Model) and any(_inside(sub, model) for sub in getattr(layer, "layers", []))


def _scales(p: Pair, margin: float, max_scale: float) -> np.ndarray:
    """Per-channel factors >= 1: each channel's calibration maximum lifted towards the cap (ReLU6) or towards
    the tensor's largest channel (plain ReLU), no further than max_scale. A channel that never passed 0 (the ReLU
    gives 0 for it on every calibration frame) gets max_scale: its output stays 0 and the next layer's weights
    for it shrink, so they no longer set that layer's per-channel weight range for the live inputs."""
    m = p.channel_max.astype(np.float64)
    top = margin * p.cap if p.cap is not None else float(m.max())
    s = np.full_like(m, max_scale)  # a channel never above 0 is 0 after the ReLU at any scale: shrink its weights
    live = m > 0
    s[live] = np.clip(top / m[live], 1.0, max_scale)
    return s.astype(np.float32)


def _apply(p: Pair, s: np.ndarray) -> None:
    gamma, beta, *stats = p.bn.get_weights()
    p.bn.set_weights([gamma * s, beta * s, *stats])
    w = p.conv.get_weights()
    w[0] = w[0] / s.reshape(1, 1, -1, 1)  # Conv2D (kh, kw, in, out) and DepthwiseConv2D (kh, kw, in, mult)
    p.conv.set_weights(w)


@contextmanager
def equalized(model, tensors: Iterable, margin: float = MARGIN, max_scale: float = MAX_SCALE) -> Iterator[Summary]:
    """Within the block, `model`'s weights are equalised; after it, they are what they were. Yields the Summary.

    Args:
        model: the Keras model (functional; nested functional models are searched too).
        tensors: the calibration inputs, float32 [1, H, W, C] arrays, one per frame, read once.
        margin: a scaled channel's calibration maximum ends at margin x the ReLU's cap (ReLU6).
        max_scale: no channel is scaled by more than this.
    """
    pairs = find_pairs(model)
    summary = Summary(pairs=len(pairs))
    saved = []
    try:
        if pairs:
            probe = _Probe(model, pairs)
            for t in tensors:
                probe.update(np.asarray(t, dtype=np.float32))
            for p in pairs:
                if p.channel_max is None:
                    continue
                scale = _scales(p, margin, max_scale)
                lifted = scale > 1.0
                if not lifted.any():
                    continue
                saved.append((p.bn, p.bn.get_weights()))
                saved.append((p.conv, p.conv.get_weights()))
                _apply(p, scale)
                summary.changed += 1
                summary.channels += int(lifted.sum())
                summary.largest_scale = max(summary.largest_scale, float(scale.max()))
        yield summary
    finally:
        for layer, weights in reversed(saved):
            layer.set_weights(weights)
