"""Daily cost and scale of running the graph through Dagster, beside the one-shot pipeline (no Dagster).

    uv run python -m benchmarks ops [--symbols 500] [--years 10] [--skip-daily] [--skip-scale] [--repeat 3]

daily: one new partition of the demo manifest (all stages and checks) on a lake that holds the days before
    and an existing Dagster instance, through Dagster in a fresh process (wall time including imports, and
    the run alone), beside the one-shot pipeline computing the same partition; medians of --repeat runs of
    each, alternated. Target: <= 8 s end to end.
scale: the synthetic source at N symbols x Y years through the whole pipeline as one single-run backfill
    on a persistent SQLite instance: wall time and peak memory (RSS of the child process), beside the
    one-shot pipeline over the same range, with wall and CPU seconds per stage. Target <= 450 s wall,
    peak RSS < 3 GiB.
Every measurement runs in its own child process, so peak memory and imports are measured cleanly.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAILY_DATE = "2020-03-03"
DAILY_BACKTEST_START = "2020-01-02"


def _child(args: list[str], env: dict | None = None) -> dict:
    """Run ``python -m benchmarks ops _<phase> ...`` and return its JSON line plus wall time and peak RSS."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "benchmarks", "ops", *args], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"benchmark phase {args[0]} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(wall_with_imports=wall)
    return result


def _demo_copy(directory: Path, name: str) -> Path:
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = text.replace("name: sp500_demo", f"name: {name}").replace("start: 2019-01-02",
                                                                      f"start: {DAILY_BACKTEST_START}")
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def _synthetic(directory: Path, symbols: int, years: int) -> tuple[Path, str, str]:
    import pandas as pd

    end_year = 2020
    first_year = end_year - years + 1
    # the first and last weekdays: range ends must be partitions (1 January 2011 is a Saturday)
    start = pd.bdate_range(f"{first_year}-01-01", periods=1)[0].strftime("%Y-%m-%d")
    end = pd.bdate_range(end=f"{end_year}-12-31", periods=1)[0].strftime("%Y-%m-%d")
    text = f"""name: synthetic_scale
source: {{kind: synthetic, n_symbols: {symbols}, start: {first_year - 1}-01-01, end: {end_year}-12-31, seed: 7}}
calendar: weekdays
start: {start}
universe: {{min_history_days: 252, min_value_traded: 1000000.0}}
selection: {{top_n_per_cluster: 2, max_symbols: 20}}
rebalance: {{rule: monthly}}
"""
    path = directory / "synthetic_scale.yaml"
    path.write_text(text)
    return path, start, end


# phases (child processes) --------------------------------------------------------------------------

def _phase_prepare(manifest: str, lake: str, start: str, end: str, next_day: str = "") -> dict:
    """The days before: every stage for [start, end], plus catalog and prices history for ``next_day``'s
    trailing windows, so the measured day does only its own work."""
    import pandas as pd

    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import HISTORY_STAGES, missing_history, run_one_shot, run_stage, write

    m = load_manifest(manifest)
    ctx = RunContext(m, Lake(lake))
    t0 = time.perf_counter()
    run_one_shot(ctx, manifest_dates(m, pd.Timestamp(start), pd.Timestamp(end)))
    history = missing_history(ctx, pd.Timestamp(next_day)) if next_day else []
    for stage in HISTORY_STAGES if history else ():
        write(ctx, stage, run_stage(ctx, stage, history))
    return {"seconds": time.perf_counter() - t0}


def _stage_times(before: dict, after: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix):].split("/", 1)[-1]: round(v - before.get(k, 0.0), 2) for k, v in after.items()
            if k.startswith(prefix)}


def _phase_one_shot(manifest: str, lake: str, start: str, end: str) -> dict:
    import pandas as pd

    from tvquant_assets import progress
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import run_one_shot

    m = load_manifest(manifest)
    t0, c0 = time.perf_counter(), time.process_time()
    run_one_shot(RunContext(m, Lake(lake)), manifest_dates(m, pd.Timestamp(start), pd.Timestamp(end)))
    after = progress.timings.seconds
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "stages": _stage_times({}, after, "stage:"), "stages_cpu": _stage_times({}, after, "cpu:")}


def _phase_dagster(manifest: str, lake: str, start: str, end: str) -> dict:
    from tvquant_assets.runner import materialize_range

    t0, c0 = time.perf_counter(), time.process_time()
    report = materialize_range(manifest, start, end, lake_root=lake)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "partitions": report.partitions,
            "compute": report.compute_seconds, "lake_write": report.lake_write_seconds,
            "dagster": report.dagster_seconds,
            "stages": {k: round(v, 2) for k, v in report.stage_seconds.items()},
            "stages_cpu": {k: round(v, 2) for k, v in report.stage_cpu_seconds.items()}}


def _phase_instance() -> dict:
    """Create the Dagster instance under $DAGSTER_HOME (a deployment has one before its first daily run)."""
    from dagster import DagsterInstance

    from tvquant_assets.runner import ensure_dagster_home

    ensure_dagster_home()
    DagsterInstance.get()
    return {}


PHASES = {"_prepare": _phase_prepare, "_one_shot": _phase_one_shot, "_dagster": _phase_dagster,
          "_instance": _phase_instance}


# the benchmark -------------------------------------------------------------------------------------

def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def daily(tmp: Path, repeat: int) -> None:
    import statistics

    import pandas as pd

    manifest = _demo_copy(tmp, "sp500_daily")
    base, home = tmp / "daily_base", tmp / "daily_home"
    previous = (pd.bdate_range(end=pd.Timestamp(DAILY_DATE) - pd.Timedelta(days=1), periods=1)[0]).date()
    prep = _child(["_prepare", str(manifest), str(base), DAILY_BACKTEST_START, str(previous), DAILY_DATE])
    _child(["_instance"], env={"DAGSTER_HOME": str(home)})
    print(f"daily: prepared {DAILY_BACKTEST_START}..{previous} one-shot in {prep['seconds']:.1f} s; "
          "the Dagster instance exists (SQLite under DAGSTER_HOME), as in a deployment")
    dags, ones = [], []
    for i in range(repeat):  # alternate, so both see the same machine
        for kind in ("dagster", "one_shot"):
            lake, run_home = tmp / f"daily_{kind}_{i}", tmp / f"home_{i}"
            shutil.copytree(base, lake)
            if kind == "dagster":
                shutil.copytree(home, run_home)
                dags.append(_child(["_dagster", str(manifest), str(lake), DAILY_DATE, DAILY_DATE],
                                   env={"DAGSTER_HOME": str(run_home)}))
            else:
                ones.append(_child(["_one_shot", str(manifest), str(lake), DAILY_DATE, DAILY_DATE]))
            shutil.rmtree(lake, ignore_errors=True)
            shutil.rmtree(run_home, ignore_errors=True)
    med = statistics.median
    dag_wall, one_wall = med(d["wall_with_imports"] for d in dags), med(o["wall_with_imports"] for o in ones)
    print(f"daily partition {DAILY_DATE} of the demo (all stages + checks), median of {repeat}, load {_load()}:")
    print(f"  through Dagster, fresh process: {dag_wall:6.1f} s end to end "
          f"[{', '.join(f'{d['wall_with_imports']:.1f}' for d in dags)}] (run {med(d['seconds'] for d in dags):.1f} s: "
          f"compute {med(d['compute'] for d in dags):.1f}, lake {med(d['lake_write'] for d in dags):.1f}, "
          f"Dagster {med(d['dagster'] for d in dags):.1f}; process CPU {med(d['cpu'] for d in dags):.1f} s); "
          "target <= 8 s")
    print(f"  one-shot, fresh process:        {one_wall:6.1f} s end to end "
          f"[{', '.join(f'{o['wall_with_imports']:.1f}' for o in ones)}] (run {med(o['seconds'] for o in ones):.1f} s)")
    print(f"  ratio Dagster / one-shot: {dag_wall / one_wall:.2f} end to end, "
          f"{med(d['seconds'] for d in dags) / max(med(o['seconds'] for o in ones), 1e-9):.2f} run only")
    print("  stage bodies through Dagster (wall s): " + ", ".join(
        f"{k} {med(d['stages'].get(k, 0.0) for d in dags):.2f}" for k in dags[0]["stages"]))


def scale(tmp: Path, symbols: int, years: int) -> None:
    manifest, start, end = _synthetic(tmp, symbols, years)
    dag = _child(["_dagster", str(manifest), str(tmp / "scale_dagster"), start, end],
                 env={"DAGSTER_HOME": str(tmp / "home_scale")})
    one = _child(["_one_shot", str(manifest), str(tmp / "scale_one_shot"), start, end])
    print(f"synthetic {symbols} symbols x {years} year(s), {dag['partitions']} partitions as one run, load {_load()}:")
    print(f"  Dagster single-run backfill (SQLite instance): {dag['seconds']:8.1f} s "
          f"(compute {dag['compute']:.1f}, lake {dag['lake_write']:.1f}, Dagster {dag['dagster']:.1f}; "
          f"process CPU {dag['cpu']:.1f} s; target <= 450 s), peak RSS {dag['peak_rss_gib']:.2f} GiB (target < 3)")
    print(f"  one-shot pipeline:                             {one['seconds']:8.1f} s "
          f"(process CPU {one['cpu']:.1f} s), peak RSS {one['peak_rss_gib']:.2f} GiB")
    print(f"  ratio Dagster / one-shot: {dag['seconds'] / one['seconds']:.2f} wall, {dag['cpu'] / one['cpu']:.2f} CPU")
    print(f"  {'stage':15s} {'Dagster wall':>12s} {'CPU':>8s} {'one-shot wall':>14s} {'CPU':>8s}")
    for k in dag["stages"]:
        print(f"  {k:15s} {dag['stages'][k]:12.1f} {dag['stages_cpu'].get(k, 0.0):8.1f} "
              f"{one['stages'].get(k, 0.0):14.1f} {one['stages_cpu'].get(k, 0.0):8.1f}")


def main(argv: list[str]) -> int:
    if argv and argv[0] in PHASES:  # a child: its own peak RSS (KiB on Linux)
        result = PHASES[argv[0]](*argv[1:])
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks ops")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--skip-daily", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="daily: runs of each kind (medians printed)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tvquant-ops-"))
    try:
        if not args.skip_daily:
            daily(tmp, args.repeat)
        if not args.skip_scale:
            scale(tmp, args.symbols, args.years)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
