"""Per-partition cost by universe size, for sizing a chunked backfill (docs/operations.md, "Scale-out").

    uv run python -m benchmarks scaleout [--symbols 100,300,1000] [--dates 10]

For each universe size, the synthetic source's manifest (``benchmarks.ops._synthetic``: selection caps the
book at 20 symbols) runs one-shot over ``--dates`` partitions in a fresh child process: CPU seconds per
partition of each stage, and peak RSS. Stages are split into the parallel part (dates independent: any
chunk runs on any machine) and the ordered part (tournament and backtest: one chunk after another,
``defs/chunks.py``), beside the wall seconds per partition of the whole child (imports excluded; source
reads, trailing windows and lake writes included). The last line fits each figure linearly in N (the
stages scale with the universe up to the selection's cap; the clustering's N^2 part is still small at
these sizes) and prints it at 5,000 symbols. Each size runs in its own child, like ``benchmarks ops``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ORDERED = ("tournament", "backtest")


def _child(manifest: str, lake: str, dates: str) -> dict:
    import time

    import pandas as pd

    from tvquant_assets import progress
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import run_one_shot

    m = load_manifest(manifest)
    keys = manifest_dates(m, pd.Timestamp(m.start), pd.Timestamp(m.start) + pd.Timedelta(days=40))[: int(dates)]
    t0 = time.perf_counter()
    run_one_shot(RunContext(m, Lake(lake)), keys)
    timings = progress.timings.seconds
    cpu = {k.split("/", 1)[-1]: v for k, v in timings.items() if k.startswith("cpu:")}
    return {"dates": len(keys), "seconds": time.perf_counter() - t0, "cpu": cpu,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _measure(tmp: Path, symbols: int, dates: int) -> dict:
    from benchmarks.ops import _synthetic

    directory = tmp / f"n{symbols}"
    directory.mkdir()
    manifest, _, _ = _synthetic(directory, symbols, 1)
    out = subprocess.run([sys.executable, "-m", "benchmarks.scaleout", "_child", str(manifest),
                          str(directory / "lake"), str(dates)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode:
        raise SystemExit(f"child for {symbols} symbols failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fit(points: list[tuple[int, float]], at: int) -> float:
    """a + b*N through the points (least squares), evaluated at ``at``."""
    import numpy as np

    n = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    return float(np.polyval(np.polyfit(n, y, 1), at))


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_child":
        print(json.dumps(_child(*argv[1:])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks scaleout")
    parser.add_argument("--symbols", default="100,300,1000", help="universe sizes, comma-separated")
    parser.add_argument("--dates", type=int, default=10, help="partitions per size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.symbols.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="tvquant-scaleout-"))
    rows = []
    try:
        for n in sizes:
            r = _measure(tmp, n, args.dates)
            per = {k: v / r["dates"] for k, v in r["cpu"].items()}
            ordered = sum(v for k, v in per.items() if k in ORDERED)
            rows.append((n, sum(per.values()) - ordered, ordered, r["peak_rss_gib"], per, r["seconds"] / r["dates"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"CPU seconds per partition (one-shot, {args.dates} partitions per size, load {load:.1f}):")
    print(f"  {'symbols':>7s} {'parallel':>9s} {'ordered':>8s} {'wall':>6s} {'peak RSS GiB':>13s}  per stage")
    for n, par, ordd, rss, per, wall in rows:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        print(f"  {n:7d} {par:9.2f} {ordd:8.2f} {wall:6.2f} {rss:13.2f}  {stages}")
    if len(rows) >= 2:
        par5k = _fit([(n, p) for n, p, *_ in rows], 5000)
        ord5k = _fit([(n, o) for n, _, o, *_ in rows], 5000)
        rss5k = _fit([(n, r) for n, _, _, r, *_ in rows], 5000)
        wall5k = _fit([(n, w) for n, *_, w in rows], 5000)
        print(f"  linear fit at 5000 symbols: CPU parallel {par5k:.2f} s, ordered {ord5k:.2f} s, wall {wall5k:.2f} s "
              f"per partition; peak RSS {rss5k:.2f} GiB per process")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
