"""Backfill through Dagster vs the one-shot pipeline: the range's wall time relative to the same work without
Dagster (target <= 1.2x), bookkeeping per asset-partition (target <= 3 ms) and lake writes per partition file
(target <= 1 ms), each printed beside its target.

Bookkeeping is what the Dagster run spends outside our stage compute and the lake writes: Dagster's events and
their storage, the asset checks (evaluated from the lake and recorded per partition) and our UI metadata. It is
printed as wall time and as CPU time of the run's thread (the run is in process; stage bodies and lake writes
measure their own CPU, ``progress``), the figure to trust on a busy machine.

The one-shot runs twice: stage by stage (compute and lake writes timed apart), and as ``plan.run_one_shot``
runs it (the advisory stages in a lane beside the chain); the ratio is to the faster. All runs start from an
empty lake (temp dirs) and compute every stage for the range; the Dagster run is one
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


def _spent(before: dict, after: dict) -> dict[str, float]:
    """Seconds per ``progress`` bucket between two snapshots; ``cpu:compute``: the stage bodies' CPU on the
    calling thread (their ``cpu:<stage>`` buckets)."""
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    out = {k: delta.get(k, 0.0) for k in ("compute", "lake_write", "metadata", "thread_cpu:lake_write",
                                          "thread_cpu:metadata")}
    out["cpu:compute"] = sum(v for k, v in delta.items() if k.startswith("cpu:"))
    return out


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

        # the one-shot pipeline as plan.run_one_shot runs it (the advisory stages in a lane beside the chain):
        # the range's reference when it is the faster of the two
        from tvquant_assets.stages.context import RunContext
        from tvquant_assets.stages.plan import run_one_shot

        t0 = time.perf_counter()
        run_one_shot(RunContext(manifest, Lake(tmp / "pipeline"), run_id="bench"), dates)
        pipeline = time.perf_counter() - t0
        reference = min(compute + writes, pipeline)

        n_assets = len(ASSETS)
        asset_partitions = len(dates) * n_assets + (len(missing) * 2 if missing else 0)
        print(f"dagster overhead: {manifest.name} {dates[0].date()}..{end.date()}, {len(dates)} partitions x "
              f"{n_assets} assets (+ history)", flush=True)
        print(f"  one-shot (no Dagster): compute {compute:8.1f} s + lake writes {writes:6.1f} s = "
              f"{compute + writes:8.1f} s   (load {os.getloadavg()[0]:.1f})")
        print(f"  one-shot pipeline (plan.run_one_shot, advisory stages in a lane): {pipeline:8.1f} s", flush=True)
        same = True
        for kind in kinds:
            root = tmp / f"lake_{kind}"
            with _instance(kind, tmp / f"dagster_{kind}") as instance:
                before = dict(progress.timings.seconds)
                cpu0 = time.thread_time()
                report = materialize_range(path, start, end, lake_root=str(root), instance=instance)
                cpu = time.thread_time() - cpu0  # this (the run's) thread: Dagster runs in process
            spent = _spent(before, progress.timings.seconds)
            # bookkeeping: everything of the run that is neither our stage compute nor the lake writes:
            # Dagster's events and storage, the asset checks (their evaluation and records), our UI metadata
            bookkeeping = report.wall_seconds - spent["compute"] - spent["lake_write"]
            bookkeeping_cpu = cpu - spent["cpu:compute"] - spent["thread_cpu:lake_write"]
            other = Lake(root)
            equal = all(lake.read_with_hash(manifest.name, "backtest", d)[1]
                        == other.read_with_hash(manifest.name, "backtest", d)[1] for d in dates)
            same &= equal
            print(f"  Dagster {kind:8s} run : compute {spent['compute']:8.1f} s + lake writes "
                  f"{spent['lake_write']:6.1f} s + bookkeeping {bookkeeping:6.1f} s (of which our UI metadata "
                  f"{spent['metadata']:.1f} s) = {report.wall_seconds:8.1f} s   (load {os.getloadavg()[0]:.1f})")
            print(f"    range / one-shot   : {report.wall_seconds / reference:.2f}x wall (target <= 1.2x; the faster "
                  f"one-shot, {reference:.1f} s); "
                  f"our compute {spent['compute'] / compute:.2f}x the one-shot compute")
            ms = 1e3 / asset_partitions
            print(f"    bookkeeping        : {bookkeeping * ms:.2f} ms wall, {bookkeeping_cpu * ms:.2f} ms CPU per "
                  f"asset-partition, checks and UI metadata included (target <= 3 ms; {asset_partitions} "
                  f"asset-partitions; UI metadata {spent['metadata'] * ms:.2f} ms wall, "
                  f"{spent['thread_cpu:metadata'] * ms:.2f} ms CPU)")
            print(f"    lake writes        : {spent['lake_write'] * ms:.2f} ms wall, "
                  f"{spent['thread_cpu:lake_write'] * ms:.2f} ms CPU of the run's thread per partition file, "
                  f"hashing included (target <= 1 ms; one-shot {writes * ms:.2f} ms wall)")
            print(f"    backtest hashes equal to the one-shot lake on every date: {equal}", flush=True)
    return 0 if same else 1
