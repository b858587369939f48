"""Point in time, end to end: perturbing every price stamped after D leaves every stage's output for D
hash-identical (the audit's ledger position aside: see the last assertion)."""

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import parse_manifest
from tvquant_assets.sources.bundled import BundledSource
from tvquant_assets.stages import STAGES, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot

D = pd.Timestamp("2020-03-11")
START, END = "2020-02-24", "2020-03-27"


class FutureShockedSource(BundledSource):
    """The bundled data with every close after ``cutoff`` scrambled (random factors, some bars gone)."""

    def __init__(self, cutoff: pd.Timestamp, seed: int = 1) -> None:
        super().__init__()
        self.cutoff, self.seed = cutoff, seed

    def history(self, symbols, start, end):
        bars = super().history(symbols, start, end)
        future = bars["date"] > self.cutoff
        rng = np.random.default_rng(self.seed)
        bars.loc[future, "close"] = bars.loc[future, "close"] * rng.uniform(0.5, 1.8, future.sum())
        drop = future & (rng.random(len(bars)) < 0.05)
        return bars.loc[~drop].reset_index(drop=True)


@pytest.fixture(scope="module")
def manifest():
    text = open("manifests/sp500_demo.yaml").read()
    return parse_manifest(text.replace("name: sp500_demo", "name: pit").replace("start: 2019-01-02",
                                                                                f"start: {START}"))


def _run(manifest, root, source=None):
    pipe = RunContext(manifest, Lake(root))
    if source is not None:
        pipe.source = source
    run_one_shot(pipe, manifest_dates(manifest, START, END))
    return Lake(root)


def test_future_prices_do_not_change_any_stage_for_d(manifest, tmp_path):
    clean = _run(manifest, tmp_path / "clean")
    shocked = _run(manifest, tmp_path / "shocked", FutureShockedSource(D))
    # the shock is real: the last date differs
    assert clean.read_with_hash("pit", "prices", END)[1] != shocked.read_with_hash("pit", "prices", END)[1]
    assert clean.read_with_hash("pit", "backtest", END)[1] != shocked.read_with_hash("pit", "backtest", END)[1]
    for d in manifest_dates(manifest, START, D):
        for stage in STAGES:
            if stage is Stage.AUDIT:
                continue
            a, b = clean.read_with_hash("pit", stage.value, d)[1], shocked.read_with_hash("pit", stage.value, d)[1]
            assert a == b, f"{stage.value} {d.date()} changed when only prices after {D.date()} moved"
    a, b = clean.read("pit", "audit", D), shocked.read("pit", "audit", D)
    content = ["date", "manifest_hash", *[c for c in a.columns if c.startswith("hash_")]]
    assert a[content].equals(b[content])
