"""Where one inference spends its time: the profile's data (each op's time, MACs and block), its groupings, and
its tables in text and markdown. edgeseg.profilers asks each runtime for one (bench --profile).

Every op carries its MACs where the graph gives them (LiteRT: edgeseg.cost, the same count as `info`), and a block:
the part of the network it belongs to by its name (input, encoder, decoder, head, output) and the resolution it
works at (1/4 = a quarter of the input's height), so a profile reads as the network does.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeseg.errors import EdgesegError


class ProfileUnavailable(EdgesegError):
    """This runtime (or delegate) has no profiler edgeseg can read."""


@dataclass
class OpTime:
    """One op (or layer, or node) of one inference: its time is the median over the profiled runs."""

    index: int
    name: str
    type: str
    ms: float
    macs: int | None = None
    block: str = "other"

    @property
    def gmacs_per_s(self) -> float | None:
        """The op's arithmetic rate (None where its MACs are not counted)."""
        return None if not self.macs or self.ms <= 0 else self.macs / 1e9 / (self.ms / 1e3)


@dataclass
class Profile:
    """Where one inference of one model spends its time."""

    model: str
    runtime: str
    threads: int | None
    method: str
    runs: int
    invoke_ms: float  # the whole model's invoke, median, measured in the same run without the profiler
    model_macs: int | None
    ops: list[OpTime] = field(default_factory=list)
    profiled_ms: float | None = None  # the whole run under the runtime's profiler, where it has one (median)

    @property
    def ops_ms(self) -> float:
        """The op times added up."""
        return float(sum(op.ms for op in self.ops))

    @property
    def coverage(self) -> float | None:
        """The op times' sum over the whole run they were measured in (the profiled run where the runtime profiles
        itself, else the plain invoke): how much of the whole the profile accounts for."""
        whole = self.profiled_ms or self.invoke_ms
        return self.ops_ms / whole if whole > 0 else None

    def grouped(self, key: str) -> list[dict]:
        """Rows by op type ("type") or by block ("block"), the costliest first: count, ms, share, GMACs, GMAC/s."""
        groups: dict[str, list[OpTime]] = {}
        for op in self.ops:
            groups.setdefault(getattr(op, key), []).append(op)
        total = self.ops_ms or 1.0
        out = []
        for name, ops in groups.items():
            ms = sum(o.ms for o in ops)
            counted = [o.macs for o in ops if o.macs is not None]
            macs = sum(counted) if counted else None
            out.append(
                {
                    key: name,
                    "count": len(ops),
                    "ms": ms,
                    "share": ms / total,
                    "gmacs": None if macs is None else macs / 1e9,
                    "gmacs_per_s": None if not macs or ms <= 0 else macs / 1e9 / (ms / 1e3),
                }
            )
        return sorted(out, key=lambda r: -r["ms"])

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        """A profile back from to_dict()'s JSON values."""
        ops = [
            OpTime(o["index"], o["name"], o["type"], o["ms"], o.get("macs"), o.get("block", "other")) for o in d["ops"]
        ]
        macs = None if d.get("model_gmacs") is None else round(d["model_gmacs"] * 1e9)
        return cls(
            d["model"], d["runtime"], d["threads"], d["method"], d["runs"], d["invoke_p50_ms"], macs, ops,
            d.get("profiled_p50_ms"),
        )  # fmt: skip

    def to_dict(self) -> dict:
        """The profile as JSON values: every op, and the two groupings."""
        total = self.ops_ms or 1.0
        return {
            "model": self.model,
            "runtime": self.runtime,
            "threads": self.threads,
            "method": self.method,
            "runs": self.runs,
            "invoke_p50_ms": self.invoke_ms,
            "profiled_p50_ms": self.profiled_ms,
            "ops_ms": self.ops_ms,
            "coverage": self.coverage,
            "model_gmacs": None if self.model_macs is None else self.model_macs / 1e9,
            "by_type": self.grouped("type"),
            "by_block": self.grouped("block"),
            "ops": [
                {**asdict(op), "share": op.ms / total, "gmacs": None if op.macs is None else op.macs / 1e9}
                for op in self.ops
            ],
        }


# --------------------------------------------------------------------------------------------------- blocks
_PARTS = (
    ("input", re.compile(r"scale_pixels|normali[sz]|rescal|preprocess", re.I)),
    ("head", re.compile(r"head|logits|classifier|segmentation_head", re.I)),
    ("decoder", re.compile(r"decoder|aspp|lraspp|upsampl|fcn_|skip", re.I)),
    ("encoder", re.compile(r"encoder|backbone|block_\d|expanded_conv", re.I)),
)


def block_of(name: str, out_h: int | None, in_h: int | None, is_output: bool = False) -> str:
    """The part of the network an op belongs to, by its name, and the resolution it works at:
    "encoder 1/8" is an encoder op whose output is an eighth of the input's height.

    Args:
        name: the op's (or node's) name; a fused TFLite op's names are joined by ';', the first is its own.
        out_h: its output's height (None where unknown: the block is the part alone).
        in_h: the model input's height.
        is_output: the op writes a graph output (an unnamed one is the "output" block).
    """
    layer = name.split(";")[0]  # a fused TFLite op names each of the layers it holds: the first is its own
    part = next((p for p, rx in _PARTS if rx.search(layer)), "output" if is_output else "other")
    if not out_h or not in_h or out_h <= 0:
        return part
    ratio = in_h / out_h
    return f"{part} 1/{round(ratio)}" if ratio >= 1.5 else f"{part} 1/1" if ratio > 0.75 else f"{part} x{1 / ratio:.0f}"


def median(values: list[float]) -> float:
    """The median of some times (0 for none)."""
    return float(np.median(values)) if values else 0.0


# --------------------------------------------------------------------------------------------------- reports
def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def profile_tables(p: Profile, top: int = 15) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the three views: by op type, by block, and the costliest ops."""

    def row(name, kind, count, ms, share, gmacs, rate):
        return [name, kind, str(count), f"{ms:.3f}", f"{100 * share:.1f}%", _num(gmacs, ".4f"), _num(rate, ".1f")]

    header = ["", "type", "count", "ms", "share", "GMACs", "GMAC/s"]
    by_type = [
        row(r["type"], "", r["count"], r["ms"], r["share"], r["gmacs"], r["gmacs_per_s"]) for r in p.grouped("type")
    ]
    by_block = [
        row(r["block"], "", r["count"], r["ms"], r["share"], r["gmacs"], r["gmacs_per_s"]) for r in p.grouped("block")
    ]
    total = p.ops_ms or 1.0
    costly = sorted(p.ops, key=lambda o: -o.ms)[:top]
    by_op = [
        row(
            f"#{o.index} {_short(o.name)}",
            o.type,
            1,
            o.ms,
            o.ms / total,
            None if o.macs is None else o.macs / 1e9,
            o.gmacs_per_s,
        )
        for o in costly
    ]
    return [
        ("by op type", ["op type", *header[2:]], [[r[0], *r[2:]] for r in by_type]),
        ("by block", ["block", *header[2:]], [[r[0], *r[2:]] for r in by_block]),
        (
            f"the {len(costly)} costliest ops",
            ["op", "type", "ms", "share", "GMACs", "GMAC/s"],
            [[r[0], r[1], *r[3:]] for r in by_op],
        ),
    ]


def _short(name: str, width: int = 48) -> str:
    parts = name.split("/")
    name = "/".join(parts[1:]) if len(parts) > 2 else name  # without the model's own name
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def summary_line(p: Profile) -> str:
    """One line: the model, its runtime, the method, and how much of the measured run the ops account for."""
    if p.profiled_ms:
        cov = (
            f" ({100 * (p.coverage or 0):.0f}% of the profiled run, {p.profiled_ms:.3f} ms; "
            f"{p.invoke_ms:.3f} ms without the profiler)"
        )
    else:
        cov = f" ({100 * (p.coverage or 0):.0f}% of the whole model's invoke, {p.invoke_ms:.3f} ms)"
    return (
        f"{p.model} on {p.runtime}, {p.threads or 'default'} thread(s): {len(p.ops)} ops, {p.ops_ms:.3f} ms in all"
        f"{cov}; {p.method}, median of {p.runs} runs"
    )


def _left(header: list[str], k: int) -> bool:
    """Names are left-aligned (the first column, and an op table's type), figures right-aligned."""
    return k == 0 or header[k] == "type"


def _text_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
    return [
        "    "
        + "  ".join(
            c.ljust(w) if _left(header, k) else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]


def to_text(p: Profile) -> str:
    """The profile as plain text tables."""
    lines = [summary_line(p)]
    for title, header, rows in profile_tables(p):
        lines += [f"  {title}:", *_text_rows(header, rows)]
    return "\n".join(lines)


def to_markdown(p: Profile) -> str:
    """The profile as markdown tables."""
    out = [f"**{summary_line(p)}**", ""]
    for title, header, rows in profile_tables(p):
        out += [
            f"*{title}*",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(" --- " if _left(header, k) else " ---: " for k in range(len(header))) + "|",
        ]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def profile_text(d: dict) -> str:
    """A bench row's profile (its JSON values) as text, or the one line saying why there is none."""
    return d["unavailable"] if "unavailable" in d else to_text(Profile.from_dict(d))


def profile_markdown(d: dict) -> str:
    """A bench row's profile (its JSON values) as markdown, or the one line saying why there is none."""
    return d["unavailable"] if "unavailable" in d else to_markdown(Profile.from_dict(d))
