"""Date-parallel stage runs (``stages/parallel.py``) compute what one process computes, hash for hash.

Two worker processes (``TVQUANT_WORKERS=2``, parts of a few dates so a short range splits), forked or
spawned by loky: the one-shot pipeline over the first weeks of the demo variant's range gives every
partition its golden hash
(``golden/sp500_it.json``: catalog and prices history included), and
a Dagster range run of a synthetic manifest gives the hashes of the one-process one-shot run. Each split
stage is seen to reach a worker.
"""

import json

import pandas as pd
import pytest

from tvquant_assets import workers
from tvquant_assets.calendar import manifest_dates
from tvquant_assets.errors import ConfigurationError
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import ASSETS, SPECS, Stage, ahead, parallel
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot
from tvquant_assets_tests.conftest import SP500_IT_START, write_demo_variant
from tvquant_assets_tests.stages.test_golden_hashes import GOLDEN, partition_hashes

SPLIT = {n for n, s in SPECS.items() if s.parallel}
LOCAL_SOURCE_SPLIT = SPLIT | {"catalog", "prices"}  # with a source reading local data, these split by dates too
GOLDEN_END = "2020-03-06"  # the golden range's first five weeks, with the rebalance date 2020-03-02


@pytest.fixture
def two_workers(monkeypatch):
    """Two processes, parts of 4 dates or more; records the stages whose parts reached a worker."""
    monkeypatch.setenv(parallel.ENV, "2")
    monkeypatch.setattr(parallel, "MIN_DATES_PER_PART", 4)
    monkeypatch.setattr(parallel, "_starting", lambda: False)  # wait for the workers: every stage splits
    sent: set[str] = set()
    real = parallel._executor

    class Recording:
        def __init__(self, pool):
            self.pool = pool

        def submit(self, fn, *args):
            if fn is parallel._run_in_worker:
                sent.add(args[5])
            if fn is parallel._run_beside:  # stages computed beside the chain (one-shot)
                sent.update(f"beside:{s}" for s in args[5])
            if fn is ahead._run_ahead:  # stages computed ahead of their Dagster steps
                sent.add(f"ahead:{args[5]}")
            return self.pool.submit(fn, *args)

        def shutdown(self, **kwargs):
            self.pool.shutdown(**kwargs)

    monkeypatch.setattr(parallel, "_executor", lambda n: Recording(real(n)))
    return sent


def test_split_parts():
    dates = list(pd.bdate_range("2020-01-01", periods=10))
    assert [len(c) for c in parallel.chunks(dates, 3)] == [4, 3, 3]
    assert sum(parallel.chunks(dates, 3), []) == dates
    assert SPLIT == {"scan", "regime", "selection", "estimation", "tournament", "backtest", "drift",
                     "regime_regret", "verdict"}


def test_the_stages_calling_a_network_source_are_not_split(tmp_path):
    m = load_manifest(write_demo_variant(tmp_path, "sp500_split", SP500_IT_START))
    live = m.model_copy(update={"source": m.source.model_copy(update={"kind": "tradingview"})})
    assert {s: parallel.split_by_source(m, s) for s in ("catalog", "prices", "audit")} == \
        {"catalog": "dates", "prices": "dates", "audit": ""}
    assert {parallel.split_by_source(live, s) for s in ("catalog", "prices", "audit")} == {""}



def test_tournament_groups_balance_the_engines_fit_times(tmp_path):
    """The slow engine's candidate gets a group of its own; equal costs fall back to round robin."""
    from tvquant_assets.manifest.schema import Candidate
    from tvquant_assets.stages import MODULES

    m = load_manifest(write_demo_variant(tmp_path, "sp500_groups", SP500_IT_START))
    dates = manifest_dates(m, "2020-01-02", "2020-06-30")

    def groups(pairs, n=2):
        cands = [Candidate(engine=e, profile=p) for e, p in pairs]
        mm = m.model_copy(update={"tournament": m.tournament.model_copy(update={"candidates": cands})})
        return MODULES["tournament"].parts(RunContext(mm, Lake(str(tmp_path / "lake"))), dates, n)

    demo = [("custom", "min_variance"), ("custom", "max_sharpe"), ("skfolio", "hrp"), ("custom", "equal_weight")]
    assert groups(demo) == [("skfolio/hrp",), ("custom/min_variance", "custom/max_sharpe", "custom/equal_weight")]
    custom = [("custom", "min_variance"), ("custom", "max_sharpe"), ("custom", "hrp"), ("custom", "equal_weight")]
    assert groups(custom) == [("custom/min_variance", "custom/hrp"), ("custom/max_sharpe", "custom/equal_weight")]
    heavy = [("riskfolio", "hrp"), ("skfolio", "hrp"), ("cvxportfolio", "min_variance"), ("custom", "hrp")]
    assert groups(heavy) == [("riskfolio/hrp",), ("skfolio/hrp", "cvxportfolio/min_variance", "custom/hrp")]
    assert groups(demo, n=1) == [] and groups(demo[:1]) == []


def test_worker_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(parallel.ENV, "3")
    assert parallel.worker_count() == 3
    monkeypatch.setenv(parallel.ENV, "zero")
    with pytest.raises(ConfigurationError, match="TVQUANT_WORKERS='zero'"):
        parallel.worker_count()


def test_worker_start_method_from_the_environment(monkeypatch):
    monkeypatch.setenv(workers.START_ENV, "loky")
    assert workers.start_method() == "loky"
    monkeypatch.setenv(workers.START_ENV, "spawn")
    with pytest.raises(ConfigurationError, match="TVQUANT_WORKER_START='spawn'"):
        workers.start_method()
    monkeypatch.delenv(workers.START_ENV)
    assert workers.start_method() == "fork"  # Linux


@pytest.mark.parametrize("start", ["fork", "loky"])
def test_one_shot_with_two_workers_hashes_as_golden(tmp_path, monkeypatch, two_workers, start):
    """Both ways to start workers give the golden hashes; forked workers also write a share of what the
    caller computes alone (catalog, prices, the merged tournament, audit)."""
    from tvquant_assets.lake import store

    shares: list[int] = []
    real_forked = store.Lake._write_forked
    monkeypatch.setattr(store.Lake, "_write_forked",
                        lambda self, items, n: (shares.append(len(items)), real_forked(self, items, n))[1])
    monkeypatch.setattr(workers, "FORK_WRITE_MIN", 8)
    monkeypatch.setenv(workers.START_ENV, start)
    path = write_demo_variant(tmp_path, "sp500_it", SP500_IT_START)
    m = load_manifest(path)
    lake = Lake(str(tmp_path / "lake"))
    run_one_shot(RunContext(m, lake), manifest_dates(m, SP500_IT_START, GOLDEN_END))
    # forked: once the backtest is written, the threshold auditor and the verdict are computed in a lane beside
    # the drift and the audit, which run in the caller meanwhile (one worker fewer: the drift is not split)
    lane = {"regime_regret", "verdict"}
    assert two_workers == (LOCAL_SOURCE_SPLIT - lane - {"drift"} | {f"beside:{s}" for s in lane}
                           if start == "fork" else LOCAL_SOURCE_SPLIT)
    assert bool(shares) == (start == "fork")
    golden = json.loads(GOLDEN.read_text())
    now = partition_hashes(lake, m.name)
    for stage, hashes in golden.items():
        assert now[stage], stage
        moved = [d for d in now[stage] if hashes[d] != now[stage][d]]
        assert not moved, f"{stage}: {len(moved)} partitions differ with two workers, first {moved[0]}"



def test_the_caller_takes_the_lane_stages_its_worker_has_not_begun(tmp_path, monkeypatch, two_workers):
    """Once its chain is done the caller computes the lane's stages the worker has not claimed: here the
    worker holds its first stage until the caller has taken the second. Hashes stay golden."""
    import os
    import time

    from tvquant_assets.stages import plan

    caller, in_caller = os.getpid(), []
    real_compute, real_run_stage = parallel._compute, plan.run_stage

    def held(ctx, stage, dates, first_computed, part):
        if os.getpid() != caller and stage == "regime_regret":  # the lane's worker, on its first stage
            deadline = time.monotonic() + 60
            while parallel._LANE.value < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        return real_compute(ctx, stage, dates, first_computed, part)

    def recorded(ctx, stage, *args, **kwargs):
        in_caller.append(str(stage))
        return real_run_stage(ctx, stage, *args, **kwargs)

    monkeypatch.setattr(parallel, "_compute", held)
    monkeypatch.setattr(plan, "run_stage", recorded)
    m = load_manifest(write_demo_variant(tmp_path, "sp500_it", SP500_IT_START))
    lake = Lake(str(tmp_path / "lake"))
    run_one_shot(RunContext(m, lake), manifest_dates(m, SP500_IT_START, GOLDEN_END))
    assert {"beside:regime_regret", "beside:verdict"} <= two_workers
    assert "verdict" in in_caller and "regime_regret" not in in_caller
    assert in_caller.index("verdict") > in_caller.index("audit")  # taken once the chain was done
    golden, now = json.loads(GOLDEN.read_text()), partition_hashes(lake, m.name)
    for stage, hashes in golden.items():
        assert now[stage] and now[stage] == {d: hashes[d] for d in now[stage]}, stage


SYNTHETIC = """name: synth_workers
source: {kind: synthetic, n_symbols: 16, start: 2015-01-01, end: 2017-12-29, seed: 11, n_sectors: 4}
calendar: weekdays
start: 2016-09-01
universe: {min_history_days: 126, min_value_traded: 1000000.0}
selection: {top_n_per_cluster: 2, max_symbols: 6, momentum_lookback: 126, correlation_lookbacks: [63, 126]}
estimation: {lookback: 126}
tournament:
  candidates:
    - {engine: custom, profile: min_variance}
    - {engine: custom, profile: max_sharpe}
    - {engine: custom, profile: risk_parity}
  constraints: {max_weight: 0.4, turnover_penalty: 0.001}
rebalance: {rule: monthly}
backtest: {start: 2016-09-01}
"""


def test_dagster_range_with_two_workers_equals_one_process(tmp_path, monkeypatch, two_workers):
    from tvquant_assets.runner import materialize_range

    path = tmp_path / "synth_workers.yaml"
    path.write_text(SYNTHETIC)
    m = load_manifest(path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    materialize_range(path, "2016-09-01", "2016-10-07", lake_root=str(tmp_path / "parallel"))
    # the advisory stages computed ahead of their steps, by a worker beside the run's process
    lane = {"regime_regret", "verdict"}  # the run's drift then runs whole, beside the lane
    assert two_workers == LOCAL_SOURCE_SPLIT - lane - {"drift"} | {f"ahead:{s}" for s in lane}
    monkeypatch.setenv(parallel.ENV, "1")
    sequential = Lake(str(tmp_path / "sequential"))
    run_one_shot(RunContext(m, sequential), manifest_dates(m, "2016-09-01", "2016-10-07"))
    ours, reference = partition_hashes(Lake(str(tmp_path / "parallel")), m.name), partition_hashes(sequential, m.name)
    assert sorted(ours) == sorted(reference) == sorted(str(s) for s in ASSETS if s is not Stage.AUDIT)
    for stage in reference:
        assert ours[stage] == reference[stage], stage


def _materializations(instance, manifest) -> dict[tuple[str, str], dict]:
    from dagster import AssetKey

    out = {}
    for stage in ASSETS:
        records = instance.fetch_materializations(AssetKey([manifest.name, str(stage)]), limit=1000).records
        for r in records:
            mat = r.asset_materialization
            out[(str(stage), mat.partition)] = dict(mat.metadata)
    return out


def test_dagster_workers_record_the_metadata_one_process_records(tmp_path, monkeypatch, two_workers):
    """Each process of a date split hashes its own partitions and makes their UI metadata (``finish``): every
    materialization of a two-worker range carries what the one-process range records."""
    from dagster import DagsterInstance

    from tvquant_assets.defs import factory
    from tvquant_assets.runner import materialize_range

    path = tmp_path / "synth_workers.yaml"
    path.write_text(SYNTHETIC)
    m = load_manifest(path)
    in_caller = []
    real = factory.partition_metadata
    monkeypatch.setattr(factory, "partition_metadata", lambda df, *a, **k: (in_caller.append(1), real(df, *a, **k))[1])
    recorded = {}
    for n in ("2", "1"):
        monkeypatch.setenv(parallel.ENV, n)
        in_caller.clear()
        with DagsterInstance.ephemeral() as instance:
            materialize_range(path, "2016-09-01", "2016-10-07", lake_root=str(tmp_path / f"lake{n}"),
                              instance=instance)
            recorded[n] = _materializations(instance, m)
        if n == "2":
            by_workers = len(recorded[n]) - len(in_caller)
    assert recorded["2"].keys() == recorded["1"].keys()
    assert len(in_caller) == len(recorded["1"])  # one process: the run's process makes every partition's
    assert by_workers >= len(recorded["1"]) // 2  # two: the split stages' dates, each finished by its process
    sealed = {k for k in recorded["1"] if k[0] != "audit"}  # the audit's chain entries name their run

    def same_run_free(md: dict) -> dict:  # a preview showing solver timings (``*_ms``) differs run to run
        return {k: v for k, v in md.items() if not (k == "preview" and "_ms |" in v.value.splitlines()[0])}

    for key in sorted(sealed):
        assert same_run_free(recorded["2"][key]) == same_run_free(recorded["1"][key]), key


def test_a_stage_runs_in_process_while_the_workers_start(tmp_path, monkeypatch):
    class Importing:
        def done(self):
            return False

    monkeypatch.setenv(parallel.ENV, "2")
    monkeypatch.setenv(workers.START_ENV, "loky")  # forked workers start ready
    monkeypatch.setattr(workers, "_STARTING", [Importing()])
    monkeypatch.setattr(parallel, "_executor", lambda n: pytest.fail("a worker was asked while still starting"))
    ctx = type("Ctx", (), {"lake": Lake(str(tmp_path))})()
    dates = list(pd.bdate_range("2020-01-01", periods=200))
    assert parallel.run_parallel(ctx, "scan", dates, lambda: "in process") == "in process"


def _loaded(modules: list[str]) -> dict[str, bool]:
    import sys

    from numba.core.registry import cpu_target

    return {**{m: m in sys.modules for m in modules}, "numba registries": cpu_target.target_context._registries != {}}


def test_prepared_workers_hold_the_manifests_engines_and_simulators(tmp_path, monkeypatch):
    """While the caller runs catalog and prices, a worker imports what the stages would load on first use."""
    from tvquant_assets.core.engines import ENGINES
    from tvquant_assets.core.simulators import SIMULATORS

    monkeypatch.setenv(parallel.ENV, "2")
    monkeypatch.setenv(workers.START_ENV, "loky")  # a forked worker holds what the caller imported
    m = load_manifest(write_demo_variant(tmp_path, "sp500_prepared", SP500_IT_START))
    ctx = RunContext(m, Lake(str(tmp_path / "lake")))
    modules = sorted({ENGINES.module(c.engine) for c in m.tournament.candidates}
                     | {SIMULATORS.module(s) for s in ["vectorized", *m.backtest.simulators]})
    from joblib.externals.loky import get_reusable_executor

    pool = get_reusable_executor(max_workers=1, timeout=workers.IDLE_TIMEOUT, reuse=False,  # a fresh worker
                                 initializer=workers._allow_growth)
    assert parallel._executor(1) is pool
    assert pool.submit(_loaded, modules).result()["numba registries"] is False
    parallel.prepare(ctx)
    parallel.prepare(ctx)  # once per context
    assert pool.submit(_loaded, modules).result() == {**dict.fromkeys(modules, True), "numba registries": True}
    assert ctx._parallel_token == parallel._token(ctx)


def test_a_loky_worker_is_not_replaced_when_it_grows_by_design():
    """loky replaces a worker that grew 300 MB since its first task; ours grow by what they load (engines,
    the lake's read cache), and a replaced worker imports the stack again while the caller waits."""
    from joblib.externals.loky import get_reusable_executor

    pool = get_reusable_executor(max_workers=1, timeout=workers.IDLE_TIMEOUT, reuse=False,
                                 initializer=workers._allow_growth)
    first = pool.submit(_grow, 0).result()
    assert pool.submit(_grow, 400).result() == first  # 400 MB more, held: still the same process
    assert pool.submit(_grow, 0).result() == first


_HELD: list = []


def _grow(mb: int) -> int:
    import os
    import time

    _HELD.append(bytearray(mb * 2**20))
    time.sleep(1.1)  # loky checks memory at most once a second
    return os.getpid()


def test_forked_writers_only_while_the_other_cores_are_free(monkeypatch):
    monkeypatch.setenv(parallel.ENV, "2")
    monkeypatch.setenv(workers.START_ENV, "fork")
    assert workers.fork_writers(workers.FORK_WRITE_MIN) == 2
    assert workers.fork_writers(workers.FORK_WRITE_MIN - 1) == 1  # not worth a fork
    with workers.workers_busy():  # a split stage's caller writing its part while its workers compute
        assert workers.fork_writers(10 * workers.FORK_WRITE_MIN) == 1
    monkeypatch.setenv(workers.START_ENV, "loky")
    assert workers.fork_writers(10 * workers.FORK_WRITE_MIN) == 1
    assert workers.contiguous(10, 3) == [(0, 4), (4, 7), (7, 10)]
