"""Scenario: the shipped long/short variant of the demo (``manifests/sp500_long_short.yaml``) materialized
through real Dagster on the bundled S&P 500 closes over 2019-01-02..2022-12-28 (1,041 weekday partitions, 48
monthly decisions): 130/30 on both books by the custom engine (jointly) and skfolio max-Sharpe (jointly), a
dollar- and beta-neutral cvxportfolio candidate (jointly) and HRP per book; shorts pay borrow.

Each date: the book of each name fixes its sign, the net and gross limits and the per-name cap hold; on dates
with both books the short book holds negative weights; the library candidates solve the custom engine's
problem (recomputed from the lake's estimates); leaderboard rows, every check passed, the ledger verifies.
Runtime (one run, ephemeral instance, 2-core machine at load ~6): 281 s wall for the range (55 s our compute,
57 s parquet writes, the rest Dagster's bookkeeping of 12 x 1,041 asset-partitions and their checks;
docs/architecture.md, Performance of a range run), ~290 s for the test; ``-s`` prints the split."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.core.book_fit import book_sizes, fit_book
from tvquant_assets.core.engines import get_engine
from tvquant_assets.core.engines.base import EngineInputs, FitSpec, universe_beta
from tvquant_assets.core.estimation import unpack
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets_tests.scenarios.conftest import Ran, assert_complete_checked_sealed_replayed

pytestmark = pytest.mark.scenario
MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "sp500_long_short.yaml"
START, END = "2019-01-02", "2022-12-28"
TOL = 1e-6


def test_long_short_demo_variant_2019_2022_through_dagster(tmp_path):
    root, instance = str(tmp_path / "lake"), DagsterInstance.ephemeral()
    report = materialize_range(MANIFEST, START, END, lake_root=root, instance=instance)
    print(f"\nsp500_long_short {START}..{END}: {report.partitions} partitions, wall {report.wall_seconds:.1f} s, "
          f"compute {report.compute_seconds:.1f} s, lake writes {report.lake_write_seconds:.1f} s")
    m, lake = load_manifest(MANIFEST), Lake(root)
    dates = manifest_dates(m, START, END)
    assert report.partitions == len(dates) == 1041 and m.book == "long_short"
    assert_complete_checked_sealed_replayed(Ran(m.name, MANIFEST, m, report, root, instance, dates))
    c = m.tournament.constraints
    names = {x.name for x in m.tournament.candidates}
    assert {"skfolio/max_sharpe", "cvxportfolio/market_neutral"} <= names

    both_books, reduced, cap_of = [], 0, {}
    for d in dates:
        t = lake.read(m.name, "tournament", d)
        cap_of[d] = float(t["max_weight"].iloc[0])
        assert set(t["candidate"]) == names, d
        assert not t["status"].str.startswith("fallback:equal").any(), (d, t[["candidate", "fallback"]])
        for cand, g in t.groupby("candidate"):  # limits on every date (carried decisions included)
            w = g["weight"].to_numpy()
            net = 0.0 if cand.endswith("market_neutral") else c.net
            assert np.abs(w).max() <= g["max_weight"].iloc[0] + TOL and np.abs(w).sum() <= c.gross + TOL, (d, cand)
            assert abs(w.sum() - net) < TOL or (g["status"].iloc[0] == "one_book_empty" and abs(w.sum()) < TOL), \
                (d, cand, w.sum())
        if not t["rebalanced"].iloc[0]:
            continue
        est = lake.read(m.name, "estimation", d)
        side = dict(zip(est["symbol"], np.where(est["direction"] == "short", -1.0, 1.0)))
        for cand, g in t.groupby("candidate"):  # a sign per book, from that date's books
            s = g["symbol"].map(side).to_numpy()
            assert (g["weight"].to_numpy() * s >= -1e-9).all(), (d, cand)
        if {-1.0, 1.0} <= set(side.values()):
            both_books.append(d)
            by = t.pivot(index="symbol", columns="candidate", values="weight")
            shorts = [x for x in by.index if side[x] < 0]
            # 130/30: the short book at -0.3 in full, less when the cap leaves the books too little room
            _, size_short, note = book_sizes(len(by) - len(shorts), len(shorts), cap_of[d], c.net, c.gross)
            reduced += bool(note)
            for cand in names - {"cvxportfolio/market_neutral"}:
                held = by.loc[shorts, cand].sum()
                if cand.endswith("max_sharpe"):  # gross at most the limit
                    assert -size_short - TOL <= held < 0, (d, cand, held)
                else:  # min_variance and the per-book profiles use the gross in full
                    assert held == pytest.approx(-size_short, abs=TOL), (d, cand)
                assert (by.loc[shorts, cand] < -1e-9).any(), (d, cand)
                assert (note in t.loc[t["candidate"] == cand, "fallback"].iloc[0]), (d, cand)
            mn = by["cvxportfolio/market_neutral"]
            assert mn[shorts].sum() == pytest.approx(-mn.drop(shorts).sum(), abs=TOL)
    assert len(both_books) >= 10 and reduced < len(both_books), (both_books, reduced)  # of 48 monthly decisions

    # The library candidates solved the custom engine's joint problem on the same estimates (within 1e-4).
    d = both_books[len(both_books) // 2]
    est, t = lake.read(m.name, "estimation", d), lake.read(m.name, "tournament", d)
    e = unpack(est)
    sides = np.where(est["direction"].to_numpy() == "short", -1.0, 1.0)
    inputs = EngineInputs(e.symbols, e.mu, e.cov)
    spec = FitSpec(net=c.net, gross=c.gross, beta_band=c.beta_band)
    cap = float(t["max_weight"].iloc[0])
    for cand, profile in (("skfolio/max_sharpe", "max_sharpe"), ("cvxportfolio/market_neutral", "market_neutral")):
        ours = fit_book(get_engine("custom"), inputs, profile, cap, m.tournament.risk_free_rate, spec, "long_short",
                        sides)
        theirs = t[t["candidate"] == cand].set_index("symbol")["weight"].reindex(e.symbols).to_numpy()
        np.testing.assert_allclose(theirs, ours.weights, atol=1e-4, err_msg=f"{cand} {d.date()}")
        if profile == "market_neutral":
            assert abs(universe_beta(e.cov) @ theirs) <= c.beta_band + TOL

    board = lake.read(m.name, "backtest", END)
    assert set(board["candidate"]) == names and sorted(board["rank"]) == list(range(1, len(names) + 1))
    assert np.isfinite(board[["sharpe", "total_return", "max_drawdown"]].to_numpy()).all()
    assert (board["borrow"] > 0).all() and (board["short_contribution"] != 0).all()
    assert (board["n_days"] >= 1000).all()  # the backtest spans 2019-2022
    assert Ledger(lake.ledger_path(m.name)).verify().ok
    drift = lake.read(m.name, "drift", END)
    assert len(drift) and pd.api.types.is_numeric_dtype(drift["target"])
