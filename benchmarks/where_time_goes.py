"""Where the time goes (issue 37): nano and small profiled op by op, their share of this CPU's roof, and the loop's
pre- and post-processing at 640x480 against the invoke, before and after the changes the profile led to.

    python benchmarks/where_time_goes.py [--before OLD_CHECKOUT] [--runs 300]

"after" is this checkout: the shipped models and the same weights converted with --output-size half (made with
`edgeseg convert NAME --int8 --output-size half` into ~/.cache/edgeseg-runs/ when missing; that needs TensorFlow).
"before" (optional) runs the same four models through an older checkout's own `edgeseg bench` (make one with
`git worktree add --detach /tmp/before 4dec020`), so its preprocessing is the old one. Threads 1 and 2; every
bench interleaves its models in rounds. Writes benchmarks/results/where_time_goes.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "edgeseg-runs"
OUT = ROOT / "benchmarks" / "results"


def bench(models: list[str], runs: int, tree: Path, profile: bool) -> dict:
    """One `edgeseg bench` of `models` at 1 and 2 threads, run by the checkout at `tree`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "b.json"
        cmd = [sys.executable, "-m", "edgeseg", "bench", *models, "--threads", "1,2", "--runs", str(runs)]
        cmd += ["--json", str(out)] + (["--profile"] if profile else [])
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def half_model(name: str) -> Path:
    path = CACHE / f"{name}_half_int8.tflite"
    if not path.exists():
        cmd = [sys.executable, "-m", "edgeseg", "convert", name, "--int8", "--output-size", "half", "--out", str(path)]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return path


def anonymous(text: str, before: Path | None = None) -> str:
    """Results name files as the repository and the run cache do, not by this machine's absolute paths."""
    if before is not None:
        text = text.replace(f"{before.resolve()}/", "OLD_CHECKOUT/")
    return text.replace(f"{ROOT}/", "").replace(str(CACHE), "~/.cache/edgeseg-runs")


def row_text(label: str, r: dict) -> str:
    st = r["stages_p50_ms"]
    inv = r["invoke"]["p50_ms"]
    pp = st["preprocess"] + st["postprocess"]
    share = "" if r.get("roof_share") is None else f"{100 * r['roof_share']:.0f}%"
    return (
        f"| {label} | {Path(r['model']).name} | {r['threads']} | {r['gmacs']:.3f} | {inv:.3f} | "
        f"{r['invoke']['p90_ms']:.3f} | {r['invoke']['p99_ms']:.3f} | {share} | {st['preprocess']:.3f} | "
        f"{st['postprocess']:.3f} | {100 * pp / inv:.0f}% | {r['end_to_end']['p50_ms']:.3f} |"
    )


def commit(tree: Path | None) -> str:
    """The short commit a checkout stands at (what "before" was), or "no before" without one."""
    if tree is None:
        return "no before"
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    return out.stdout.strip() or "an unknown commit"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="an older checkout to run the 'before' bench with")
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    after_models = ["nano", str(half_model("nano")), "small", str(half_model("small"))]
    report = {"after": bench(after_models, args.runs, ROOT, profile=True)}
    if args.before:
        report["before"] = bench(after_models, args.runs, args.before.resolve(), profile=False)
    env = report["after"]["environment"]
    roofs = report["after"]["roofs"]
    lines = [
        f"Measured on {env['cpu']} ({env['cores']} cores), LiteRT {report['after']['results'][0]['runtime_version']}, "
        f"{args.runs} runs per model in 5 interleaved rounds; end-to-end on a 640x480 frame. "
        f"Command: `python benchmarks/where_time_goes.py --before OLD_CHECKOUT` ({commit(args.before)}).",
        "",
        "Roof: "
        + "; ".join(f"{r['precision']} {r['gmacs_per_s']:.0f} GMAC/s at {r['threads']} thread(s)" for r in roofs),
        "",
        "| | model | threads | GMACs | invoke p50 | p90 | p99 | roof share | preprocess | postprocess "
        "| pre+post / invoke | end-to-end p50 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in ("before", "after"):
        for r in report.get(label, {}).get("results", []):
            lines.append(row_text(label, r))
    OUT.mkdir(parents=True, exist_ok=True)
    report = json.loads(anonymous(json.dumps(report), args.before))
    (OUT / "where_time_goes.json").write_text(json.dumps(report, indent=1))
    from edgeseg.profile import profile_markdown

    profiles = [r["profile"] for r in report["after"]["results"] if r.get("profile") and r["threads"] == 1]
    text = "\n".join(lines) + "\n\n" + "\n\n".join(map(profile_markdown, profiles))
    (OUT / "where_time_goes.md").write_text(anonymous(text, args.before))
    print("\n".join(lines))
    print(f"wrote {OUT / 'where_time_goes.json'} and {OUT / 'where_time_goes.md'}")


if __name__ == "__main__":
    main()
