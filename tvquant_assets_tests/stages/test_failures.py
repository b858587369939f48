"""What "depends on a failed partition" means (stages/failures.py), and how a failing stage's dates are
located, without Dagster."""

import pandas as pd
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import ASSETS
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.failures import PartitionFailure, blocked, locate
from tvquant_assets_tests.scenarios.conftest import HERE


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    m = load_manifest(HERE / "sc_weekly.yaml")
    return RunContext(m, Lake(str(tmp_path_factory.mktemp("lake"))))


def test_a_failed_decision_blocks_its_carry_every_later_book_and_nothing_upstream(ctx):
    dates = manifest_dates(ctx.manifest, "2020-02-18", "2020-03-13")
    r = pd.Timestamp("2020-03-02")  # a Monday: a weekly rebalance date
    bad = blocked(ctx, [PartitionFailure("tournament", r, "check failed")], dates)
    later = [d for d in dates if d >= r]
    assert {d for s, d in bad if s == "tournament"} == set(later)  # carried, then the previous decision
    for stage in ("backtest", "drift", "audit", "regime_regret"):
        assert {d for s, d in bad if s == stage} == set(later), stage
    assert not any(s in ("catalog", "prices", "scan", "regime", "selection", "estimation") for s, _ in bad)
    assert all(f.blocked_by == ("tournament", r) for k, f in bad.items() if k != ("tournament", r))


def test_a_failed_price_partition_blocks_the_trailing_windows_that_hold_it(ctx):
    dates = manifest_dates(ctx.manifest, "2020-02-18", "2020-03-13")
    d0 = pd.Timestamp("2020-03-10")
    bad = blocked(ctx, [PartitionFailure("prices", d0, "NaN close")], dates)
    assert {d for s, d in bad if s == "scan"} == {d for d in dates if d >= d0}
    assert ("catalog", d0) not in bad and all(d >= d0 for _, d in bad)
    assert {s for s, _ in bad} == set(ASSETS) - {"catalog"}


def test_locate_splits_independent_dates_and_cuts_path_dependent_ones():
    dates = list(pd.bdate_range("2020-03-02", periods=10))
    poison = {dates[3], dates[7]}

    def compute(ds):
        hit = poison & set(ds)
        if hit:
            raise ValueError(f"bad day {min(hit).date()}")

    found = locate("selection", dates, compute, ValueError("first"))
    assert set(found) == poison and found[dates[3]] == "ValueError: bad day 2020-03-05"
    found = locate("tournament", dates, compute, ValueError("first"))
    assert list(found) == dates[3:]  # the range cannot be computed past its first failing date
    assert all(r == "ValueError: bad day 2020-03-05 (fails from 2020-03-05 on)" for r in found.values())
    assert set(locate("audit", dates, compute, ValueError("ledger"))) == set(dates)  # never re-run
