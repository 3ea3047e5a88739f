"""bench: how fast models run here, side by side. Warm-up first, then timed runs with time.perf_counter_ns.

Two figures, reported apart: invoke-only (the interpreter's invoke() on a tensor set once beforehand, nothing
else, so it can be held against a bare invoke loop) and end-to-end (a BGR frame of a given size -> preprocess
-> invoke -> postprocess -> mask at the frame's size). Several models are interleaved in rounds, so drift of
the machine (heat, other processes) hits all of them alike. Percentiles, not only a mean, and the
environment with every result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeseg.host import environment, int8_dot_text, peak_rss_mb, rss_mb
from edgeseg.preprocess import preprocess
from edgeseg.stats import summarise


def synthetic_frame(frame_hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A synthetic BGR frame: image content matters little for timing, but not all-zero either."""
    from edgeseg.synthetic import scene

    return scene(seed, frame_hw)[0]


class _Timer:
    """invoke-only and end-to-end timing for one loaded model."""

    def __init__(self, model, frame: np.ndarray):
        self.model, self.frame = model, frame
        tensor, _ = preprocess(frame, model.spec, model.input)
        model.set_input(tensor)  # once: invoke-only times the model's work alone
        self.invoke = model.invoke_only
        self.invoke_ms: list[float] = []
        self.e2e_ms: list[float] = []
        self.stages: dict[str, list[float]] = {"preprocess": [], "invoke": [], "postprocess": []}

    def run_invoke(self, n: int, record: bool = True) -> None:
        inv = self.invoke
        for _ in range(n):
            t0 = time.perf_counter_ns()
            inv()
            t1 = time.perf_counter_ns()
            if record:
                self.invoke_ms.append((t1 - t0) / 1e6)

    def run_e2e(self, n: int, record: bool = True) -> None:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            self.model.segment(self.frame)
            t1 = time.perf_counter_ns()
            if record:
                self.e2e_ms.append((t1 - t0) / 1e6)
                for k in self.stages:
                    self.stages[k].append(self.model.timings.get(k, float("nan")))


def bench_models(
    paths: list[Path],
    load: Callable,
    threads: list[int | None],
    runs: int = 100,
    warmup: int = 10,
    frame_hw: tuple[int, int] = (480, 640),
    rounds: int = 5,
    data=None,
    progress: Callable[[int, int], None] | None = None,
    keep_samples: bool = False,
    roof: bool = True,
    profile: bool = False,
    profile_runs: int = 50,
) -> dict:
    """Benchmark every model at every thread count, interleaved in rounds so that the machine's drift hits all alike.

    Args:
        paths: the model files.
        load: (path, threads) -> a loaded predictor.
        threads: the thread counts to sweep (None: the runtime's default).
        runs: timed runs per model, each of invoke-only and end-to-end.
        warmup: untimed runs first.
        frame_hw: the end-to-end frame's (height, width).
        rounds: how many rounds the runs are spread over.
        data: a Dataset to score mIoU on as well (None: timing only).
        progress: called with (done, total).
        keep_samples: keep every sample (for plots), not only the summaries.
        roof: measure this CPU's int8 and float roofs at each thread count (edgeseg.roof), and give every row its
            share of the roof of its precision.
        profile: also profile every model op by op (edgeseg.profile), `profile_runs` runs each.

    Returns:
        {"environment", "peak_rss_mb", "runs", "warmup", "rounds", "frame_hw", "roofs", "results": one row per
        model and thread count, with its describe(), the invoke-only and end-to-end summaries, its roof share and
        its profile where asked}.
    """
    from edgeseg.profilers import profile_row
    from edgeseg.roof import roofs_at, row_roof

    frame = synthetic_frame(frame_hw)
    per_round = max(1, runs // rounds)
    results = []
    steps = len(threads) * len(paths) * (2 * warmup + 2 * per_round * rounds + (len(data) if data else 0))
    done = 0
    roofs: list[dict] = []

    def tick(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, steps)

    for th in threads:
        here = roofs_at(th) if roof else {}
        roofs.extend(here.values())
        timers = []
        for path in paths:
            before = rss_mb()
            model = load(path, th)
            timer = _Timer(model, frame)
            timer.run_invoke(warmup, record=False)
            timer.run_e2e(warmup, record=False)
            tick(2 * warmup)
            after = rss_mb()
            timer.rss_delta = None if before is None or after is None else after - before
            timers.append(timer)
        for _ in range(rounds):  # interleaved: every model gets a slice of each round
            for timer in timers:
                timer.run_invoke(per_round)
                tick(per_round)
            for timer in timers:
                timer.run_e2e(per_round)
                tick(per_round)
        for timer in timers:
            d = timer.model.describe()
            row = {
                **d,
                "threads": th,
                "frame_hw": list(frame_hw),
                "warmup": warmup,
                "rss_delta_mb": None if timer.rss_delta is None else round(timer.rss_delta, 1),
                "invoke": summarise(timer.invoke_ms),
                "end_to_end": summarise(timer.e2e_ms),
                "stages_p50_ms": {k: float(np.nanmedian(v)) for k, v in timer.stages.items()},
            }
            if roof:
                row |= row_roof(timer.model, d["gmacs"], row["invoke"].get("p50_ms"), here)
            if profile:
                row["profile"] = profile_row(timer.model, profile_runs)
            if keep_samples:
                row["samples_ms"] = {"invoke": timer.invoke_ms, "end_to_end": timer.e2e_ms}
            if data is not None:
                from edgeseg.evaluate import evaluate

                ev = evaluate(timer.model, data, progress=lambda i, n: tick())
                row["miou"], row["pixel_accuracy"], row["per_class_iou"] = (
                    ev["miou"],
                    ev["pixel_accuracy"],
                    ev["per_class_iou"],
                )
                row["predicted_outside_classes"] = ev["predicted_outside_classes"]
            results.append(row)
    env = environment()
    peak = peak_rss_mb()
    return {
        "environment": env,
        "peak_rss_mb": peak,
        "runs": runs,
        "warmup": warmup,
        "rounds": rounds,
        "frame_hw": list(frame_hw),
        "roofs": roofs,
        "results": results,
    }


def bench_model(
    model,
    runs: int = 100,
    warmup: int = 10,
    frame_hw: tuple[int, int] = (480, 640),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """One already-loaded model (used by the benchmarks scripts): its row of bench_models.

    Args:
        model: the predictor.
        runs: timed runs of each kind.
        warmup: untimed runs first.
        frame_hw: the end-to-end frame's (height, width).
        progress: called with (done, total).
    """
    res = bench_models(
        [model.path],
        lambda p, t: model,
        [model.describe().get("threads")],
        runs,
        warmup,
        frame_hw,
        rounds=1,
        progress=progress,
    )
    return res["results"][0]


# ------------------------------------------------------------------------------------------------ reports
COLUMNS = (
    "model",
    "gmacs",
    "params_m",
    "threads",
    "size_mb",
    "init_ms",
    "rss_mb",
    "invoke_p50",
    "invoke_p90",
    "invoke_p99",
    "invoke_mean",
    "invoke_fps",
    "e2e_p50",
    "e2e_p90",
    "e2e_p99",
    "e2e_fps",
    "miou",
    "gmacs_per_s",
    "roof_share",
    "precision",
    "runtime",
    "delegate",
    "fastest",
)


def rows(report: dict) -> list[dict]:
    """The report's results as table rows: the columns the terminal, CSV and markdown tables show."""
    out = []
    for r in report["results"]:
        inv, e2e = r["invoke"], r["end_to_end"]
        out.append(
            {
                "model": Path(r["model"]).name,
                "gmacs": r["gmacs"],
                "params_m": None if r["params"] is None else round(r["params"] / 1e6, 3),
                "threads": r["threads"] or "default",
                "size_mb": round(r["size_bytes"] / 1e6, 2),
                "init_ms": round(r["init_ms"], 1),
                "rss_mb": r.get("rss_delta_mb"),
                "invoke_p50": round(inv["p50_ms"], 3),
                "invoke_p90": round(inv["p90_ms"], 3),
                "invoke_p99": round(inv["p99_ms"], 3),
                "invoke_mean": round(inv["mean_ms"], 3),
                "invoke_fps": round(inv["fps"], 1),
                "e2e_p50": round(e2e["p50_ms"], 3),
                "e2e_p90": round(e2e["p90_ms"], 3),
                "e2e_p99": round(e2e["p99_ms"], 3),
                "e2e_fps": round(e2e["fps"], 1),
                "miou": None if r.get("miou") is None else round(100 * r["miou"], 2),
                "gmacs_per_s": None if not r["gmacs"] else round(r["gmacs"] / (inv["p50_ms"] / 1e3), 1),
                "roof_share": None if r.get("roof_share") is None else round(100 * r["roof_share"], 1),
                "precision": r.get("precision"),
                "runtime": f"{r['runtime']} {r['runtime_version']}",
                "delegate": r["delegate"],
            }
        )
    for row in out:  # the fastest end to end at each thread setting, marked when there is more than one row
        rivals = [o["e2e_p50"] for o in out if o["threads"] == row["threads"]]
        row["fastest"] = len(rivals) > 1 and row["e2e_p50"] == min(rivals)
    return out


def to_csv(report: dict) -> str:
    """The report's table as CSV."""
    import csv
    import io

    buf = io.StringIO()
    rs = rows(report)
    w = csv.DictWriter(buf, fieldnames=list(rs[0]) if rs else list(COLUMNS))
    w.writeheader()
    w.writerows(rs)
    return buf.getvalue()


def to_markdown(report: dict) -> str:
    """The report's table as markdown, under a line that names the machine and how it was measured."""
    from edgeseg.profile import profile_markdown
    from edgeseg.roof import roof_text

    env = report["environment"]
    lines = [
        f"Environment: {env['cpu']} ({env['cores']} cores, governor {env['governor'] or 'n/a'}, "
        f"{int8_dot_text(env)}), {env['os']}, "
        f"Python {env['python']}, numpy {env['numpy']}, OpenCV {env['opencv']}. {report['runs']} timed runs after "
        f"{report['warmup']} warm-up, interleaved in {report['rounds']} rounds; end-to-end on a "
        f"{report['frame_hw'][1]}x{report['frame_hw'][0]} frame.",
        "",
        *([roof_text(report["roofs"]), ""] if report.get("roofs") else []),
        "| model | GMACs | params (M) | runtime | threads | size (MB) | init (ms) | invoke p50 | p90 | p99 | FPS "
        "| end-to-end p50 | p90 | p99 | FPS | mIoU (%) | GMAC/s | roof share |",
        "| --- | ---: | ---: | --- |" + " ---: |" * 14,
    ]
    for r in rows(report):
        gm = "n/a" if r["gmacs"] is None else f"{r['gmacs']:.3f}"
        pm = "n/a" if r["params_m"] is None else f"{r['params_m']:.2f}"
        mark = " **(fastest)**" if r["fastest"] else ""
        lines.append(
            f"| {r['model']}{mark} | {gm} | {pm} | {r['runtime']} ({r['delegate']}) | {r['threads']} | "
            f"{r['size_mb']} | "
            f"{r['init_ms']} | {r['invoke_p50']} | {r['invoke_p90']} | {r['invoke_p99']} | {r['invoke_fps']} | "
            f"{r['e2e_p50']} | {r['e2e_p90']} | {r['e2e_p99']} | {r['e2e_fps']} | "
            f"{'' if r['miou'] is None else r['miou']} | {'' if r['gmacs_per_s'] is None else r['gmacs_per_s']} | "
            f"{'' if r['roof_share'] is None else str(r['roof_share']) + '% of ' + r['precision']} |"
        )
    for r in report["results"]:
        if r.get("profile"):
            lines += ["", profile_markdown(r["profile"])]
    return "\n".join(lines) + "\n"


def plots(report: dict, folder: Path) -> list[Path]:
    """latency.png (invoke and end-to-end distributions per model) and, with --data, iou.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from edgeseg.errors import missing_extra

        raise missing_extra("matplotlib (for --plots)", "plots") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    res = report["results"]
    labels = [f"{Path(r['model']).name}\n{r['threads'] or 'default'} thr" for r in res]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(res) + 4), 4.5))
    for ax, key, title in ((axes[0], "invoke", "invoke only"), (axes[1], "end_to_end", "end to end")):
        data = [r["samples_ms"][key] for r in res]
        ax.boxplot(data, whis=(1, 99), showfliers=False)
        ax.set_xticks(range(1, len(res) + 1), labels, fontsize=7, rotation=20, ha="right")
        scale = latency_scale(data)
        if scale == "log":  # models 30x apart: on a linear axis the fast ones are a flat line at zero
            from matplotlib.ticker import LogLocator, ScalarFormatter

            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(plt.NullFormatter())
        for i, d in enumerate(data, 1):  # the median written beside each box: readable on either scale
            if len(d):
                ax.annotate(f"{np.median(d):.3g}", (i + 0.28, np.median(d)), fontsize=7, va="center", ha="left")
        ax.set_ylabel(f"ms, {scale} scale (box: p25-p75, whiskers: p1-p99)")
        ax.set_title(title)
        ax.grid(axis="y", which="major", alpha=0.3)
    written.append(_save(plt, fig, folder / "latency.png"))
    scored = [r for r in res if r.get("per_class_iou")]
    if scored:
        names = list(scored[0]["per_class_iou"])
        fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names) * max(1, len(scored)) / 2 + 4), 4.5))
        width = 0.8 / len(scored)
        x = np.arange(len(names))
        for k, r in enumerate(scored):
            vals = [100 * (r["per_class_iou"].get(n) or 0) for n in names]
            ax.bar(x + k * width, vals, width, label=f"{Path(r['model']).name} ({100 * r['miou']:.1f})")
        ax.set_xticks(x + width * (len(scored) - 1) / 2, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("IoU (%)")
        ax.set_title("per-class IoU (legend: mIoU)")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        written.append(_save(plt, fig, folder / "iou.png"))
    return written


def latency_scale(samples: list) -> str:
    """ "log" when the models' medians are more than 5x apart (a linear axis would flatten the fast ones),
    "linear" otherwise."""
    medians = [float(np.median(s)) for s in samples if len(s)]
    if not medians or min(medians) <= 0:
        return "linear"
    return "log" if max(medians) / min(medians) > 5 else "linear"


def _save(plt, fig, path: Path) -> Path:
    from edgeseg.io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
