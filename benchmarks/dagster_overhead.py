"""Backfill through Dagster vs the one-shot pipeline: our compute inside Dagster relative to the same compute
without it, and Dagster's bookkeeping per asset-partition.

Both runs start from an empty lake (temp dirs) and compute every stage for the range; the Dagster run is one
single-run backfill in process (``materialize_range``), on an ephemeral instance or a temp SQLite one.
The backtest hashes of both lakes are compared at the end (backfill equals walk-forward).

    uv run python -m benchmarks dagster_overhead [--manifest sp500_demo] [--start 2018-01-02] [--end 2022-12-30]
                                                 [--instance memory|sqlite]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks dagster_overhead", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="sp500_demo")
    p.add_argument("--start", default="2018-01-02")
    p.add_argument("--end", default="2022-12-30")
    p.add_argument("--instance", choices=("memory", "sqlite"), default="memory")
    args = p.parse_args(argv)

    from dagster import DagsterInstance

    from tvquant_assets import progress
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.enums import STAGES, Stage
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.pipeline import Pipeline, missing_history, plan_start, run_stage
    from tvquant_assets.runner import check_range, materialize_range

    path, manifest = resolve_manifest(args.manifest)
    start, end = check_range(manifest, args.start, args.end)
    with tempfile.TemporaryDirectory(prefix="tvq_bench_") as tmp:
        tmp = Path(tmp)
        # one-shot: the same work materialize_range plans (history first, then every stage over the range)
        lake = Lake(tmp / "oneshot")
        pipe = Pipeline(manifest, lake)
        first, _ = plan_start(manifest, lake, start)
        dates = manifest_dates(manifest, first, end)
        compute = writes = 0.0
        missing = missing_history(pipe, dates[0])
        jobs = []
        if missing:
            jobs += [(s, manifest_dates(manifest, missing[0], missing[-1])) for s in (Stage.CATALOG, Stage.PRICES)]
        jobs += [(s, dates) for s in STAGES]
        for stage, ds in jobs:
            t0 = time.perf_counter()
            res = run_stage(pipe, stage, ds, **({"run_id": "bench"} if stage is Stage.AUDIT else {}))
            t1 = time.perf_counter()
            lake.write_many([(lake.path(manifest.name, stage.value, d), f) for d, f in res.frames.items()])
            compute, writes = compute + t1 - t0, writes + time.perf_counter() - t1

        if args.instance == "sqlite":
            os.environ["DAGSTER_HOME"] = str(tmp / "dagster")
            (tmp / "dagster").mkdir()
            from tvquant_assets.runner import ensure_dagster_home

            ensure_dagster_home()
            instance = DagsterInstance.get()
        else:
            instance = DagsterInstance.ephemeral()
        before = dict(progress.timings.seconds)
        report = materialize_range(path, start, end, lake_root=str(tmp / "dagster_lake"), instance=instance)
        d_compute = progress.timings.seconds.get("compute", 0.0) - before.get("compute", 0.0)
        d_writes = progress.timings.seconds.get("lake_write", 0.0) - before.get("lake_write", 0.0)
        n_assets = len(STAGES)
        asset_partitions = report.partitions * n_assets + (len(missing) * 2 if missing else 0)
        bookkeeping = report.wall_seconds - d_compute - d_writes

        dagster_lake = Lake(tmp / "dagster_lake")
        same = all(lake.read_with_hash(manifest.name, "backtest", d)[1]
                   == dagster_lake.read_with_hash(manifest.name, "backtest", d)[1] for d in dates)

    print(f"dagster overhead: {manifest.name} {dates[0].date()}..{end.date()}, {len(dates)} partitions x {n_assets} "
          f"assets (+ history), instance {args.instance}")
    print(f"  one-shot (no Dagster): compute {compute:8.1f} s + lake writes {writes:6.1f} s = {compute + writes:8.1f} s")
    print(f"  Dagster single run   : compute {d_compute:8.1f} s + lake writes {d_writes:6.1f} s + bookkeeping "
          f"{bookkeeping:6.1f} s = {report.wall_seconds:8.1f} s")
    print(f"  our compute ratio    : {d_compute / compute:.2f}x the one-shot compute (target <= 1.2x)")
    print(f"  bookkeeping          : {bookkeeping / asset_partitions * 1e3:.1f} ms per asset-partition "
          f"({asset_partitions} asset-partitions); wall ratio {report.wall_seconds / (compute + writes):.2f}x")
    print(f"  backtest hashes equal on every date: {same}")
    return 0 if same else 1
