"""Reruns are bit-for-bit: two worker processes computing halves of a range (appending to one ledger
at the same time) give the same hashes as the one-process Dagster run, with BLAS pinned to one thread."""

import multiprocessing as mp
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import HMAC_ENV, Ledger
from tvquant_assets.stages import STAGES, Stage
from tvquant_assets.stages.lineage import output_hashes
from tvquant_assets.stages.plan import GC_THRESHOLD

FIRST, SPLIT, LAST = "2020-02-24", "2020-03-02", "2020-03-06"  # SPLIT is a rebalance date
PRELOAD = ["tvquant_assets.stages.plan", "tvquant_assets.core.scan", "tvquant_assets.core.selection",
           "tvquant_assets.core.regime", "tvquant_assets.core.estimation", "tvquant_assets.core.tournament",
           "tvquant_assets.core.backtest", "tvquant_assets.core.engines.custom",
           "tvquant_assets.core.engines.skfolio_engine"]


_PIPES: dict = {}


def _compute(manifest_path: str, lake_root: str, stage: str, dates: list[str]) -> tuple[dict[str, str], int, tuple]:
    """In a worker: compute and write one stage for some dates; return their hashes, BLAS threads and the
    garbage collector's state."""
    import gc

    from tvquant_assets.determinism import blas_threads
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import run_stage

    key = (manifest_path, lake_root)
    if key not in _PIPES:  # one pipeline per worker: its source and lake cache serve every stage
        _PIPES[key] = RunContext(load_manifest(manifest_path), Lake(lake_root))
    pipe = _PIPES[key]
    pipe.run_id = f"worker-{dates[0]}"
    frames = run_stage(pipe, Stage(stage), [pd.Timestamp(d) for d in dates]).frames
    hashes = {f"{d:%Y-%m-%d}": pipe.lake.write(pipe.name, stage, d, f.reset_index(drop=True))
              for d, f in frames.items()}
    return hashes, blas_threads(), (gc.isenabled(), gc.get_threshold()[0])


def test_two_workers_equal_one_process(sp500_it_run, tmp_path, monkeypatch):
    monkeypatch.delenv(HMAC_ENV, raising=False)
    m = sp500_it_run["manifest"]
    reference = Lake(sp500_it_run["lake_root"])
    dates = manifest_dates(m, FIRST, LAST)
    halves = [[f"{d:%Y-%m-%d}" for d in dates if d < pd.Timestamp(SPLIT)],
              [f"{d:%Y-%m-%d}" for d in dates if d >= pd.Timestamp(SPLIT)]]
    root = str(tmp_path / "lake")
    # what the range reads from before it, as the reference had it: trailing windows' bars, decisions
    for stage in (Stage.CATALOG, Stage.PRICES, Stage.TOURNAMENT):
        for d in reference.partitions(m.name, stage.value):
            if d < pd.Timestamp(FIRST):
                target = Path(Lake(root).path(m.name, stage.value, d))
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(reference.path(m.name, stage.value, d), target)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # imported once; both workers fork from it
    got: dict[tuple[str, str], str] = {}
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        for stage in STAGES:  # each stage's halves run at the same time, in two processes
            futures = [pool.submit(_compute, str(sp500_it_run["manifest_path"]), root, stage.value, h)
                       for h in halves]
            for f in futures:
                hashes, threads, collector = f.result(timeout=600)
                assert threads == 1, "BLAS/OpenMP pools must be pinned to one thread"
                assert collector == (True, GC_THRESHOLD), "stages run with a relaxed collector, still on"
                got.update({(stage.value, d): h for d, h in hashes.items()})
    for stage in STAGES:
        if stage is Stage.AUDIT:
            continue
        for d in dates:
            expect = reference.read_with_hash(m.name, stage.value, d)[1]
            assert got[(stage.value, f"{d:%Y-%m-%d}")] == expect, f"{stage.value} {d.date()} differs with 2 workers"
    ledger = Ledger(Lake(root).ledger_path(m.name))
    assert ledger.verify().ok and len(ledger.entries()) == len(dates)  # both workers appended, none lost
    ref = {e["payload"]["date"]: e["payload"] for e in Ledger(reference.ledger_path(m.name)).entries()}
    for e in ledger.entries():
        p = e["payload"]
        assert output_hashes(p) == output_hashes(ref[p["date"]]) and p["stages"] == ref[p["date"]]["stages"]


def test_openblas_runs_one_kernel_family_on_every_avx2_machine():
    """The golden hashes were sealed with Haswell kernels; an AVX-512 machine's own pick (SkylakeX) rounds
    the backtest's products differently in the last bit (seen: every backtest partition's hash moved)."""
    import numpy as np

    from tvquant_assets.determinism import BLAS_CORETYPE, _has_avx2, blas_coretype

    np.ones((2, 2)) @ np.ones((2, 2))  # OpenBLAS loaded
    if _has_avx2():
        assert blas_coretype() == BLAS_CORETYPE
