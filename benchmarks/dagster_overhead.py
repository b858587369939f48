"""Backfill through Dagster vs the one-shot pipeline: our compute inside Dagster relative to the same compute
without it, and Dagster's bookkeeping per asset-partition.

Both runs start from an empty lake (temp dirs) and compute every stage for the range; the Dagster run is one
single-run backfill in process (``materialize_range``), once per instance asked: ephemeral (``memory``), a temp
SQLite one, or a throwaway PostgreSQL 15 server (initdb + pg_ctl on a loopback port, the tests' fixture,
stopped at the end). The backtest hashes of each Dagster lake and the one-shot lake are compared (backfill
equals walk-forward).

    uv run python -m benchmarks dagster_overhead [--manifest sp500_demo] [--start 2018-01-02] [--end 2022-12-28]
                                                 [--instance memory,sqlite,postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

INSTANCES = ("memory", "sqlite", "postgres")


@contextlib.contextmanager
def _instance(kind: str, home: Path):
    """A Dagster instance of this kind in ``home`` (a PostgreSQL server is stopped on exit)."""
    from dagster import DagsterInstance

    home.mkdir(parents=True)
    if kind == "memory":
        yield DagsterInstance.ephemeral()
        return
    if kind == "sqlite":  # the project's dagster.yaml (batched SQLite event log) in a temp DAGSTER_HOME
        from tvquant_assets.runner import PROJECT_ROOT

        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        before = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(home)
        try:
            with DagsterInstance.from_config(str(home)) as instance:
                yield instance
        finally:
            if before is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = before
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tvquant_assets_tests.postgres import instance_yaml, postgres_server  # the tests' throwaway server

    os.environ.setdefault("TVQUANT_BENCH_PG_PASSWORD", "trust")  # the server trusts loopback
    with postgres_server() as (host, port, user, db):
        (home / "dagster.yaml").write_text(instance_yaml(host, port, user, db, "TVQUANT_BENCH_PG_PASSWORD"))
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance


def _one_shot(manifest, lake, start, end) -> tuple[float, float, list, list]:
    """Every asset over the plan of [start, end] without Dagster (history first), as ``materialize_range``
    plans it: (compute s, lake write s, history dates, range dates)."""
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.stages import ASSETS
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import HISTORY_STAGES, plan_range, run_stage, write

    ctx = RunContext(manifest, lake, run_id="bench")
    plan = plan_range(manifest, lake, start, end)
    dates = manifest_dates(manifest, plan.start, plan.end)
    history = manifest_dates(manifest, *plan.history) if plan.history else []
    jobs = [(s, history) for s in HISTORY_STAGES if history] + [(s, dates) for s in ASSETS]
    compute = writes = 0.0
    for stage, ds in jobs:
        t0 = time.perf_counter()
        res = run_stage(ctx, stage, ds)
        t1 = time.perf_counter()
        write(ctx, stage, res)
        compute, writes = compute + t1 - t0, writes + time.perf_counter() - t1
    return compute, writes, history, dates


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks dagster_overhead", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="sp500_demo")
    p.add_argument("--start", default="2018-01-02")
    p.add_argument("--end", default="2022-12-28")
    p.add_argument("--instance", default="memory",
                   help=f"comma-separated, one Dagster run each: {', '.join(INSTANCES)}")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.instance.split(",") if k.strip()]
    if not kinds or any(k not in INSTANCES for k in kinds):
        p.error(f"--instance {args.instance!r}: choose from {', '.join(INSTANCES)}")

    from tvquant_assets import progress
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.runner import check_range, materialize_range
    from tvquant_assets.stages import ASSETS
    from tvquant_assets.stages.plan import plan_start

    path, manifest = resolve_manifest(args.manifest)
    start, end = check_range(manifest, args.start, args.end)
    with tempfile.TemporaryDirectory(prefix="tvq_bench_") as tmp:
        tmp = Path(tmp)
        # Warm-up (not timed): the first five partitions on a throwaway lake, so the timed one-shot does not
        # pay the process's first imports, dataset loads and numba cache loads that the Dagster runs after it
        # would not pay.
        warm_first, _ = plan_start(manifest, Lake(tmp / "warmup"), start)
        warm = manifest_dates(manifest, warm_first, end)[:5]
        _one_shot(manifest, Lake(tmp / "warmup"), warm[0], warm[-1])
        # one-shot: the same work materialize_range plans (history first, then every stage over the range)
        lake = Lake(tmp / "oneshot")
        compute, writes, missing, dates = _one_shot(manifest, lake, start, end)

        n_assets = len(ASSETS)
        asset_partitions = len(dates) * n_assets + (len(missing) * 2 if missing else 0)
        print(f"dagster overhead: {manifest.name} {dates[0].date()}..{end.date()}, {len(dates)} partitions x "
              f"{n_assets} assets (+ history)", flush=True)
        print(f"  one-shot (no Dagster): compute {compute:8.1f} s + lake writes {writes:6.1f} s = "
              f"{compute + writes:8.1f} s   (load {os.getloadavg()[0]:.1f})", flush=True)
        same = True
        for kind in kinds:
            root = tmp / f"lake_{kind}"
            with _instance(kind, tmp / f"dagster_{kind}") as instance:
                before = dict(progress.timings.seconds)
                report = materialize_range(path, start, end, lake_root=str(root), instance=instance)
            d_compute = progress.timings.seconds.get("compute", 0.0) - before.get("compute", 0.0)
            d_writes = progress.timings.seconds.get("lake_write", 0.0) - before.get("lake_write", 0.0)
            d_meta = progress.timings.seconds.get("metadata", 0.0) - before.get("metadata", 0.0)
            bookkeeping = report.wall_seconds - d_compute - d_writes - d_meta
            other = Lake(root)
            equal = all(lake.read_with_hash(manifest.name, "backtest", d)[1]
                        == other.read_with_hash(manifest.name, "backtest", d)[1] for d in dates)
            same &= equal
            print(f"  Dagster {kind:8s} run : compute {d_compute:8.1f} s + lake writes {d_writes:6.1f} s + our UI "
                  f"metadata {d_meta:6.1f} s + Dagster & checks {bookkeeping:6.1f} s = {report.wall_seconds:8.1f} s"
                  f"   (load {os.getloadavg()[0]:.1f})")
            print(f"    our compute ratio  : {d_compute / compute:.2f}x the one-shot compute (target <= 1.2x); "
                  f"with the UI metadata {(d_compute + d_meta) / compute:.2f}x")
            per_partition = bookkeeping / asset_partitions * 1e3
            print(f"    bookkeeping        : {per_partition:.1f} ms per asset-partition (Dagster "
                  f"+ asset checks) "
                  f"({asset_partitions} asset-partitions); wall ratio {report.wall_seconds / (compute + writes):.2f}x")
            print(f"    backtest hashes equal to the one-shot lake on every date: {equal}", flush=True)
    return 0 if same else 1
