"""Linkage and selection cores: hand-computed cases, scipy agreement, point in time and determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from tvquant_assets.core import linkage as lk
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import compute_scan
from tvquant_assets.core.selection import DTYPES, percentile_rank, select
from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import LinkageConfig, SelectionConfig, UniverseConfig

# linkage ------------------------------------------------------------------------------------------------


def test_correlation_distance_formula():
    corr = np.array([[1.0, 0.5, -1.0], [0.5, 1.0, np.nan], [-1.0, np.nan, 1.0]])
    dist = lk.correlation_distance(corr)
    assert dist[0, 1] == dist[1, 0] == pytest.approx(0.5)  # sqrt(0.5 * 0.5)
    assert dist[0, 2] == pytest.approx(1.0)  # perfectly anti-correlated
    assert dist[1, 2] == pytest.approx(math.sqrt(0.5))  # NaN correlation counts as 0
    assert np.all(np.diag(dist) == 0.0)
    assert lk.correlation_distance(np.array([[1.0, 1.0 + 1e-12], [1.0 + 1e-12, 1.0]]))[0, 1] == 0.0  # clipped


def two_groups(n_rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f1, f2 = rng.normal(0, 0.01, n_rows), rng.normal(0, 0.01, n_rows)
    noise = rng.normal(0, 0.002, (n_rows, 5))
    return pd.DataFrame({"A1": f1 + noise[:, 0], "B1": f2 + noise[:, 1], "A2": f1 + noise[:, 2],
                         "B2": f2 + noise[:, 3], "C1": rng.normal(0, 0.01, n_rows)})


def test_cluster_groups_labels_and_order_invariance():
    rets = two_groups()
    labels = lk.cluster(rets, LinkageConfig(max_clusters=3))
    by_name = dict(zip(rets.columns, labels, strict=True))
    # renumbered by first appearance in sorted order: A1 -> 1, B1 -> 2, C1 -> 3
    assert by_name == {"A1": 1, "A2": 1, "B1": 2, "B2": 2, "C1": 3}
    shuffled = rets[["C1", "B2", "A1", "B1", "A2"]]
    assert dict(zip(shuffled.columns, lk.cluster(shuffled, LinkageConfig(max_clusters=3)), strict=True)) == by_name


def test_cluster_small_cases():
    rets = two_groups()
    assert lk.cluster(rets[["A1"]], LinkageConfig()).tolist() == [1]
    assert lk.cluster(rets.iloc[:, :0], LinkageConfig()).tolist() == []
    many = lk.cluster(rets, LinkageConfig(max_clusters=50))  # k never exceeds the number of columns
    assert sorted(many.tolist()) == [1, 2, 3, 4, 5]
    assert lk.cluster(rets, LinkageConfig(max_clusters=1)).tolist() == [1] * 5
    # a cut height between the within-group and between-group merges finds the two factors plus C1
    assert lk.cluster(rets, LinkageConfig(distance_threshold=0.5)).tolist() == [1, 2, 1, 2, 3]
    z = lk.linkage_matrix(rets, LinkageConfig(method="average"))
    assert z.shape == (4, 4) and z[-1, 3] == 5


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


@pytest.mark.parametrize("method", ["ward", "average", "complete", "single"])
def test_cut_matches_scipy_fcluster(method):
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(2, 12))
        rets = rng.normal(size=(40, n))
        if trial % 3 == 0:  # duplicated series: merges tied at height 0
            rets[:, 1] = rets[:, 0]
        dist = lk.correlation_distance(np.corrcoef(rets, rowvar=False))
        z = linkage(squareform(dist, checks=False), method=method)
        for k in range(1, n + 2):
            ours = lk.cut(z, LinkageConfig(method=method, max_clusters=k))
            assert same_partition(ours, fcluster(z, k, criterion="maxclust")), (trial, k)
        for t in (0.3, 0.6, 0.7, 0.9):
            ours = lk.cut(z, LinkageConfig(method=method, distance_threshold=t))
            assert same_partition(ours, fcluster(z, t, criterion="distance")), (trial, t)


# selection: tiny hand-made panels ------------------------------------------------------------------------

DAYS = pd.bdate_range("2024-01-01", periods=12)
LAST = DAYS[-1]
TINY = SelectionConfig(momentum_lookback=5, momentum_skip=2, correlation_lookback=20, top_n_per_cluster=2)


def scan_frame(eligible: dict[str, bool]) -> pd.DataFrame:
    symbols = sorted(eligible)
    return pd.DataFrame({"symbol": symbols, "eligible": [eligible[s] for s in symbols],
                         "reason": ["" if eligible[s] else "history 3 < 252" for s in symbols]})


def test_percentile_rank_ties_and_nan():
    pct = percentile_rank(np.array([0.3, 0.1, 0.3, np.nan, 0.5]))
    np.testing.assert_array_equal(pct, [0.5, 0.0, 0.5, np.nan, 1.0])  # ranks 2.5, 1, 2.5, -, 4 over n = 4
    assert percentile_rank(np.array([0.2])).tolist() == [1.0]
    assert np.isnan(percentile_rank(np.array([np.nan, np.nan]))).all()
    assert percentile_rank(np.array([])).size == 0


def test_momentum_percentile_and_reasons_by_hand():
    # t = row 11: momentum = close[row 9] / close[row 4] - 1
    close = pd.DataFrame(index=DAYS, dtype=float)
    close["QQQ"] = [100, 101, 102, 103, 100, 104, 105, 106, 108, 110, 111, 112]  # 110/100 - 1 = +10 %
    close["YYY"] = [50, 49, 51, 50, 40, 41, 39, 40, 39, 38, 37, 38]  # 38/40 - 1 = -5 %
    close["ZZZ"] = [np.nan] * 6 + [20, 21, 22, 21, 22, 23]  # no close at row 4
    close["WWW"] = [10, 10.5, 11, 10.5, 10, 12, 11, 12, 13, 12, 11, 12]  # +20 %, but ineligible
    scan = {LAST: scan_frame({"QQQ": True, "YYY": True, "ZZZ": True, "WWW": False})}
    frame = select(PricePanel(close), scan, [LAST], TINY)[LAST].set_index("symbol")

    assert frame.loc["QQQ", "momentum"] == pytest.approx(0.10)
    assert frame.loc["YYY", "momentum"] == pytest.approx(-0.05)
    assert frame.loc["WWW", "momentum"] == pytest.approx(0.20)  # reported, but not ranked
    assert math.isnan(frame.loc["ZZZ", "momentum"])
    assert frame.loc["QQQ", "momentum_pct"] == 1.0 and frame.loc["YYY", "momentum_pct"] == 0.0
    assert np.isnan(frame.loc[["ZZZ", "WWW"], "momentum_pct"]).all()
    assert frame.loc["ZZZ", "reason"] == "no momentum history"
    assert frame.loc["WWW", "reason"] == "not eligible: history 3 < 252"
    assert frame.loc[["ZZZ", "WWW"], "cluster"].tolist() == [0, 0]
    assert frame.loc[["ZZZ", "WWW"], "rank_in_cluster"].tolist() == [0, 0]
    # 11 returns >= ceil(0.5 * 20): QQQ and YYY are clustered; with max_clusters 5 each is its own cluster
    assert frame.loc[["QQQ", "YYY"], "selected"].all()
    assert frame.loc[["QQQ", "YYY"], "reason"].tolist() == ["selected", "selected"]
    assert frame.loc[["QQQ", "YYY"], "rank_in_cluster"].tolist() == [1, 1]
    assert frame["direction"].eq("long").all() and frame["sector"].eq("unknown").all()


def test_veto_below_min_percentile_and_sectors():
    close = pd.DataFrame({"AAA": np.linspace(10, 12, 12), "BBB": np.linspace(10, 11, 12),
                          "CCC": np.linspace(10, 9, 12)}, index=DAYS)
    scan = {LAST: scan_frame({"AAA": True, "BBB": True, "CCC": True})}
    cfg = TINY.model_copy(update={"min_momentum_percentile": 0.6})
    frame = select(PricePanel(close), scan, [LAST], cfg, sectors={"AAA": "Tech"})[LAST]
    assert frame["momentum_pct"].tolist() == [1.0, 0.5, 0.0]
    assert frame["reason"].tolist() == ["selected", "momentum pct 0.5 < 0.6", "momentum pct 0 < 0.6"]
    assert frame["cluster"].tolist() == [1, 0, 0]  # a cluster of one
    assert frame["sector"].tolist() == ["Tech", "unknown", "unknown"]


def factor_close(n_rows: int = 60) -> pd.DataFrame:
    """Two factor groups; within a group the later letter trends up more."""
    rets = two_groups(n_rows, seed=1)
    rets["A2"] += 0.003
    rets["B2"] += 0.002
    rets["C1"] -= 0.001
    days = pd.bdate_range("2024-01-01", periods=n_rows)
    return (1 + rets).cumprod().mul(100).set_axis(days)[sorted(rets.columns)]


def test_top_n_per_cluster_and_cap():
    close = factor_close()
    date = close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(close.columns, True))}
    cfg = SelectionConfig(momentum_lookback=20, momentum_skip=0, correlation_lookback=40, top_n_per_cluster=1,
                          linkage=LinkageConfig(max_clusters=3))
    frame = select(PricePanel(close), scan, [date], cfg)[date].set_index("symbol")
    assert frame["cluster"].to_dict() == {"A1": 1, "A2": 1, "B1": 2, "B2": 2, "C1": 3}
    assert frame.loc["A2", "selected"] and frame.loc["B2", "selected"] and frame.loc["C1", "selected"]
    assert frame.loc["A1", "reason"] == "rank 2 > top 1 in cluster 1"
    assert frame.loc["B1", "reason"] == "rank 2 > top 1 in cluster 2"

    capped = select(PricePanel(close), scan, [date], cfg.model_copy(update={"max_symbols": 2}))[date]
    picks = frame.loc[frame["rank_in_cluster"] == 1].sort_values("momentum_pct", ascending=False)
    assert capped.loc[capped["selected"], "symbol"].tolist() == sorted(picks.index[:2])
    assert capped.set_index("symbol").loc[picks.index[2], "reason"] == "overall rank 3 > max_symbols 2"


def test_ties_broken_by_symbol_name():
    base = np.linspace(10, 12, 12)
    close = pd.DataFrame({"CCC": base, "AAA": base, "BBB": base}, index=DAYS)[["AAA", "BBB", "CCC"]]
    scan = {LAST: scan_frame(dict.fromkeys(close.columns, True))}
    one = TINY.model_copy(update={"linkage": LinkageConfig(max_clusters=1)})
    frame = select(PricePanel(close), scan, [LAST], one)[LAST]
    assert frame["momentum_pct"].tolist() == [0.5, 0.5, 0.5]
    assert frame["cluster"].tolist() == [1, 1, 1]
    assert frame["rank_in_cluster"].tolist() == [1, 2, 3]
    assert frame["reason"].tolist() == ["selected", "selected", "rank 3 > top 2 in cluster 1"]
    # max_clusters >= n: every symbol is its own cluster, and the overall cap breaks the tie by name
    own = select(PricePanel(close), scan, [LAST], TINY.model_copy(update={"max_symbols": 2}))[LAST]
    assert own["cluster"].tolist() == [1, 2, 3]
    assert own["reason"].tolist() == ["selected", "selected", "overall rank 3 > max_symbols 2"]


def test_too_few_returns_all_nan_and_empty():
    close = pd.DataFrame({"AAA": np.linspace(10, 12, 12), "GAP": np.linspace(10, 13, 12), "NAN": np.nan},
                         index=DAYS)
    close.iloc[5:9, 1] = np.nan  # GAP: momentum defined (rows 9 and 4), 6 returns
    close.iloc[4, 1] = 10.0
    scan = {LAST: scan_frame({"AAA": True, "GAP": True, "NAN": True}), DAYS[0]: scan_frame({})}
    out = select(PricePanel(close), scan, [LAST, DAYS[0]], TINY)
    frame = out[LAST].set_index("symbol")
    assert frame.loc["GAP", "reason"] == "too few returns to cluster: 6 < 10"
    assert frame.loc["GAP", "cluster"] == 0 and not frame.loc["GAP", "selected"]
    assert frame.loc["NAN", "reason"] == "no momentum history"
    assert frame.loc["AAA", "cluster"] == 1 and frame.loc["AAA", "selected"]  # one series left: one cluster
    assert out[DAYS[0]].empty and {c: str(t) for c, t in out[DAYS[0]].dtypes.items()} == DTYPES
    with pytest.raises(LakeError):
        select(PricePanel(close), scan, [DAYS[3]], TINY)


# selection: real data -------------------------------------------------------------------------------------

REAL_DATES = [pd.Timestamp(d) for d in ("1990-09-28", "2008-10-10", "2015-06-30", "2020-03-14", "2022-12-30")]




def test_point_in_time(sp500_panel, sp500_close, perturbed_after):
    cfg = SelectionConfig(max_symbols=6)
    batch = select(sp500_panel, compute_scan(sp500_panel, REAL_DATES, UniverseConfig()), REAL_DATES, cfg)
    for i, date in enumerate(REAL_DATES):
        panel = PricePanel(perturbed_after(sp500_close, date, seed=10 + i))
        alone = select(panel, compute_scan(panel, [date], UniverseConfig()), [date], cfg)[date]
        assert df_hash(alone) == df_hash(batch[date]), date


def test_real_data_invariants_and_determinism(sp500_panel):
    cfg = SelectionConfig()
    scans = compute_scan(sp500_panel, REAL_DATES, UniverseConfig())
    first = select(sp500_panel, scans, REAL_DATES, cfg)
    second = select(sp500_panel, scans, REAL_DATES, cfg)
    assert [df_hash(first[d]) for d in REAL_DATES] == [df_hash(second[d]) for d in REAL_DATES]
    assert first[REAL_DATES[0]]["reason"].str.startswith("not eligible: history").all()  # < 252 bars yet
    for date in REAL_DATES[1:]:
        frame = first[date]
        assert list(frame.columns) == list(DTYPES) and frame["symbol"].is_monotonic_increasing
        chosen = frame[frame["selected"]]
        assert 1 <= len(chosen) <= cfg.max_symbols
        assert chosen.groupby("cluster").size().max() <= cfg.top_n_per_cluster
        assert frame["cluster"].between(1, cfg.linkage.max_clusters).all()
        assert frame["momentum_pct"].between(0, 1).all()
