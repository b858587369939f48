"""Backtest metrics against a benchmark: references by hand, identities, point in time, range == per date.

Data: skfolio's bundled S&P 500 stocks and its S&P 500 index (real, offline)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import walk_forward
from tvquant_assets.core.metrics import relative
from tvquant_assets.hashing import df_hash
from tvquant_assets.sources.benchmark import sp500_index

START = pd.Timestamp("2018-03-01")


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().loc["2017-10":"2019-12"].iloc[:, :8]


@pytest.fixture(scope="module")
def index() -> pd.Series:
    return sp500_index()


def _monthly(close: pd.DataFrame) -> dict[str, pd.DataFrame]:
    dates = pd.date_range("2018-01-01", "2019-12-01", freq="MS")
    return {"ew": pd.DataFrame(1.0 / close.shape[1], index=dates, columns=close.columns)}


def test_relative_metrics_match_their_definitions(index):
    b = index.loc["2019"].pct_change().dropna().to_numpy()
    rng = np.random.default_rng(3)
    r = 0.0002 + 1.3 * b + 0.004 * rng.standard_normal(b.size)
    got = relative(r, b, 252)
    beta = np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1)
    assert got["beta"] == pytest.approx(beta, rel=1e-12)
    assert got["beta"] == pytest.approx(1.3, abs=0.05)
    assert got["alpha"] == pytest.approx((r.mean() - beta * b.mean()) * 252, rel=1e-12)
    active = r - b
    assert got["tracking_error"] == pytest.approx(active.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert got["information_ratio"] == pytest.approx(active.mean() / active.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert got["up_capture"] == pytest.approx(r[b > 0].mean() / b[b > 0].mean(), rel=1e-12)
    assert got["down_capture"] == pytest.approx(r[b < 0].mean() / b[b < 0].mean(), rel=1e-12)
    assert got["excess_return"] == pytest.approx(np.prod(1 + r) - np.prod(1 + b), rel=1e-12)
    same = relative(b, b, 252)  # the benchmark against itself
    assert (same["beta"], same["up_capture"], same["down_capture"]) == pytest.approx((1.0, 1.0, 1.0), rel=1e-12)
    assert same["alpha"] == pytest.approx(0.0, abs=1e-15) and same["tracking_error"] == 0.0
    assert same["excess_return"] == 0.0 and np.isnan(same["information_ratio"])
    double = relative(2 * b, b, 252)
    assert (double["beta"], double["up_capture"], double["down_capture"]) == pytest.approx((2.0, 2.0, 2.0))


def test_walk_forward_against_the_index_is_point_in_time(close, index):
    d = pd.Timestamp("2019-06-14")
    decisions = _monthly(close)
    base = walk_forward(close, decisions, START, [d], 0.0006, 252, benchmark=index)[d]
    row = base.iloc[0]
    days = close.loc[START:d].index
    bench = index.reindex(days).to_numpy()
    b = np.r_[0.0, bench[1:] / bench[:-1] - 1.0]
    assert row["bench_equity"] == pytest.approx(bench[-1] / bench[0], rel=1e-12)
    assert row["bench_day_return"] == pytest.approx(b[-1], rel=1e-12)
    plain = walk_forward(close, decisions, START, [d], 0.0006, 252)[d]
    assert row["excess_return"] == pytest.approx(plain.iloc[0]["total_return"] - (bench[-1] / bench[0] - 1), rel=1e-12)
    assert 0.5 < row["beta"] < 1.5
    assert df_hash(base[plain.columns]) == df_hash(plain)  # the candidates' own metrics do not move
    noisy = index.copy()
    later = noisy.index > d
    noisy[later] = noisy[later] * np.random.default_rng(1).uniform(0.5, 1.5, later.sum())
    assert df_hash(walk_forward(close, decisions, START, [d], 0.0006, 252, benchmark=noisy)[d]) == df_hash(base)
    dates = list(pd.bdate_range("2019-06-10", "2019-06-21"))
    whole = walk_forward(close, decisions, START, dates, 0.0006, 252, benchmark=index)
    for x in dates:
        assert df_hash(whole[x]) == df_hash(walk_forward(close, decisions, START, [x], 0.0006, 252,
                                                         benchmark=index)[x])
    short = index.loc[:"2019-06-12"]  # a benchmark that ends before D: no metrics rather than a flat line
    assert np.isnan(walk_forward(close, decisions, START, [d], 0.0006, 252, benchmark=short)[d]["beta"]).all()


def test_manifest_benchmark_is_one_of_symbol_file_bundled():
    from tvquant_assets.errors import ManifestError
    from tvquant_assets.manifest.load import parse_manifest

    base = "name: m\nstart: 2020-01-02\n"
    assert parse_manifest(base + "benchmark: {bundled: sp500_index}\n").benchmark.label == "S&P 500"
    with pytest.raises(ManifestError, match="benchmark: .*exactly one of symbol, file, bundled"):
        parse_manifest(base + "benchmark: {symbol: AAPL, bundled: sp500_index}\n")
    with pytest.raises(ManifestError, match="benchmark.symbol 'SPY' is not in universe.symbols"):
        parse_manifest(base + "universe: {symbols: [AAPL, MSFT]}\nbenchmark: {symbol: SPY}\n")
