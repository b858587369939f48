"""Linkage and selection cores: hand-computed cases, scipy agreement, point in time and determinism."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from tvquant_assets.core import linkage as lk
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import compute_scan
from tvquant_assets.core.selection import (
    DTYPES,
    FEATURE_COLUMNS,
    cluster_top_n,
    percentile_rank,
    preset_overrides,
    select,
    veto_reasons,
)
from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import (
    FeatureWindows,
    LinkageConfig,
    SelectionConfig,
    SelectionVetoes,
    ShortBookConfig,
    UniverseConfig,
)

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
SMALL_WINDOWS = FeatureWindows(volatility=5, entropy=10, efficiency=5, hurst=20, moments=10, cvar=20, liquidity=5,
                               rsi=5)
TINY = SelectionConfig(momentum_lookback=5, momentum_skip=2, correlation_lookback=20, top_n_per_cluster=2,
                       dynamic_top_n=False, windows=SMALL_WINDOWS)


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
    assert percentile_rank(np.array([7.0, 7.0, 7.0])).tolist() == [0.5, 0.5, 0.5]  # all tied: the middle


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
    assert frame.loc[["ZZZ", "WWW"], "rank"].tolist() == [0, 0]
    assert frame.loc[["QQQ", "YYY"], "selected"].all()
    assert frame.loc[["QQQ", "YYY"], "reason"].tolist() == ["selected", "selected"]
    assert frame.loc[["QQQ", "YYY"], "rank_in_cluster"].tolist() == [1, 1]
    assert frame.loc[["QQQ", "YYY"], "rank"].tolist() == [1, 2]
    assert frame["direction"].eq("long").all() and frame["sector"].eq("unknown").all()
    assert frame["relaxation"].eq("none").all()
    # volatility over the last 5 returns, by hand
    r = close["QQQ"].pct_change().iloc[-5:]
    assert frame.loc["QQQ", "volatility"] == pytest.approx(statistics.stdev(r) * math.sqrt(252))
    assert frame.loc["QQQ", "stability"] == pytest.approx(1 / frame.loc["QQQ", "volatility"])


def test_veto_below_min_percentile_and_sectors():
    close = pd.DataFrame({"AAA": np.linspace(10, 12, 12), "BBB": np.linspace(10, 11, 12),
                          "CCC": np.linspace(10, 9, 12)}, index=DAYS)
    scan = {LAST: scan_frame({"AAA": True, "BBB": True, "CCC": True})}
    cfg = TINY.model_copy(update={"min_momentum_percentile": 0.6})
    frame = select(PricePanel(close), scan, [LAST], cfg, sectors={"AAA": "Tech"})[LAST]
    assert frame["momentum_pct"].tolist() == [1.0, 0.5, 0.0]
    assert frame["reason"].tolist() == ["selected", "momentum pct 0.5 < 0.6", "momentum pct 0 < 0.6"]
    assert frame["cluster"].tolist() == [1, 2, 3]  # vetoed symbols are clustered too (the map stays whole)
    assert frame["cluster_size"].tolist() == [1, 1, 1]  # clusters of one
    assert frame["sector"].tolist() == ["Tech", "unknown", "unknown"]


def test_raw_feature_vetoes_and_the_scored_column_bug():
    """The re-imagined platform compared raw thresholds with 0..1 scored columns and vetoed everything."""
    raw = {
        "momentum": np.array([0.10, 0.20, -0.05, 0.30]),
        "volatility": np.array([0.15, 0.25, 0.35, 0.90]),
        "entropy": np.array([0.9, 0.95, 0.99, 0.97]),
        "efficiency": np.array([0.3, 0.2, 0.1, 0.4]),
        "kurtosis": np.array([1.0, 2.0, 3.0, 12.0]),
        "cvar": np.array([0.02, 0.03, 0.04, 0.08]),
        "liquidity": np.array([5e7, 2e7, 3e7, 4e7]),
    }
    vetoes = SelectionVetoes(max_volatility=0.6, max_cvar=0.05, min_liquidity=1e6, min_momentum=-0.1)
    assert veto_reasons(raw, vetoes).tolist() == ["", "", "", "veto: volatility 0.9 > max_volatility 0.6"]
    scored = {k: percentile_rank(v) for k, v in raw.items()}  # what the old code vetoed on
    assert all(veto_reasons(scored, vetoes) != "")  # every symbol rejected: the bug
    # a NaN feature with its rule set is vetoed by name; liquidity is skipped without volume
    raw["cvar"][0] = np.nan
    out = veto_reasons(raw, vetoes, volume_available=False)
    assert out[0] == "veto: cvar unknown (max_cvar set)"
    assert veto_reasons(raw, SelectionVetoes(min_liquidity=1e9), volume_available=False).tolist() == [""] * 4


def volume_panel(n_rows: int = 60, seed: int = 5) -> PricePanel:
    """Two groups; A1 trends up more than A2, but A2 trades ten times the value and is calmer."""
    rng = np.random.default_rng(seed)
    f1, f2 = rng.normal(0, 0.01, n_rows), rng.normal(0, 0.01, n_rows)
    rets = pd.DataFrame({"A1": f1 + 0.003 + rng.normal(0, 0.003, n_rows), "A2": f1 + rng.normal(0, 0.001, n_rows),
                         "B1": f2 + rng.normal(0, 0.001, n_rows)})
    days = pd.bdate_range("2024-01-01", periods=n_rows)
    close = (1 + rets).cumprod().mul(100).set_axis(days)
    volume = pd.DataFrame({"A1": 1e4, "A2": 1e5, "B1": 1e4}, index=days)
    return PricePanel(close, volume=volume)


def test_select_vetoes_read_raw_liquidity_and_execution_ranking():
    panel = volume_panel()
    date = panel.close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(panel.symbols, True))}
    cfg = SelectionConfig(momentum_lookback=20, momentum_skip=0, correlation_lookback=40, top_n_per_cluster=1,
                          dynamic_top_n=False, windows=SMALL_WINDOWS, execution_weight=0.0,
                          score_weights={"momentum": 1.0}, linkage=LinkageConfig(max_clusters=2),
                          vetoes=SelectionVetoes(min_liquidity=5e5))
    frame = select(panel, scan, [date], cfg)[date].set_index("symbol")
    # value traded ~1e6 (A1, B1) and ~1e7 (A2): nobody is below 5e5, nobody vetoed
    assert frame["liquidity"].gt(5e5).all()
    assert not frame["reason"].str.startswith("veto").any()
    liq = panel.close.iloc[-5:] * panel.volume.iloc[-5:]
    assert frame.loc["A2", "liquidity"] == pytest.approx(liq["A2"].mean())
    assert frame.loc["A1", "cluster"] == frame.loc["A2", "cluster"] != frame.loc["B1", "cluster"]
    assert frame.loc["A1", "score"] > frame.loc["A2", "score"]
    assert frame.loc["A1", "selected"] and frame.loc["A2", "reason"].startswith("rank 2 > top 1")
    # execution ranking: a heavy weight on liquidity / low vol puts the liquid A2 first in its cluster
    liquid = select(panel, scan, [date], cfg.model_copy(update={"execution_weight": 5.0}))[date].set_index("symbol")
    assert liquid.loc["A2", "execution_score"] > liquid.loc["A1", "execution_score"]
    assert liquid.loc["A2", "selected"] and liquid.loc["A2", "rank_in_cluster"] == 1
    assert not liquid.loc["A1", "selected"]


def factor_close(n_rows: int = 60) -> pd.DataFrame:
    """Two factor groups; within a group the later letter trends up more."""
    rets = two_groups(n_rows, seed=1)
    rets["A2"] += 0.003
    rets["B2"] += 0.002
    rets["C1"] -= 0.001
    days = pd.bdate_range("2024-01-01", periods=n_rows)
    return (1 + rets).cumprod().mul(100).set_axis(days)[sorted(rets.columns)]


FACTOR = SelectionConfig(momentum_lookback=20, momentum_skip=0, correlation_lookback=40, top_n_per_cluster=1,
                         dynamic_top_n=False, windows=SMALL_WINDOWS, score_weights={"momentum": 1.0},
                         linkage=LinkageConfig(max_clusters=3))


def test_top_n_per_cluster_and_cap():
    close = factor_close()
    date = close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(close.columns, True))}
    frame = select(PricePanel(close), scan, [date], FACTOR)[date].set_index("symbol")
    assert frame["cluster"].to_dict() == {"A1": 1, "A2": 1, "B1": 2, "B2": 2, "C1": 3}
    assert frame.loc["A2", "selected"] and frame.loc["B2", "selected"] and frame.loc["C1", "selected"]
    assert frame.loc["A1", "reason"] == "rank 2 > top 1 in cluster 1"
    assert frame.loc["B1", "reason"] == "rank 2 > top 1 in cluster 2"

    capped = select(PricePanel(close), scan, [date], FACTOR.model_copy(update={"max_symbols": 2}))[date]
    picks = frame.loc[frame["rank_in_cluster"] == 1].sort_values("score", ascending=False)
    assert capped.loc[capped["selected"], "symbol"].tolist() == sorted(picks.index[:2])
    assert capped.set_index("symbol").loc[picks.index[2], "reason"] == "overall rank 3 > max_symbols 2"
    # a regime preset overriding max_symbols on that date does the same
    over = select(PricePanel(close), scan, [date], FACTOR, overrides={date: {"max_symbols": 2}})[date]
    assert df_hash(over) == df_hash(capped)


def test_cluster_top_n_formula():
    def equi(n, rho):
        return np.full((n, n), rho) + (1 - rho) * np.eye(n)

    assert cluster_top_n(equi(3, 0.5), cap=5) == 2  # n_eff = 9 / (3 + 6 * 0.5) = 1.5 -> 2
    assert cluster_top_n(equi(3, 0.9), cap=5) == 1  # 9 / 8.4 = 1.07
    assert cluster_top_n(equi(4, 0.0), cap=3) == 3  # 4 independent names, capped
    assert cluster_top_n(equi(4, -0.2), cap=9) == 4  # never more than the cluster has
    assert cluster_top_n(np.ones((1, 1)), cap=3) == 1  # a cluster of one


def test_dynamic_top_n_keeps_fewer_from_tight_clusters():
    close = factor_close()
    date = close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(close.columns, True))}
    cfg = FACTOR.model_copy(update={"dynamic_top_n": True, "top_n_per_cluster": 2,
                                    "linkage": LinkageConfig(max_clusters=2)})
    frame = select(PricePanel(close), scan, [date], cfg)[date].set_index("symbol")
    # B1/B2 are one tight pair (rho 0.95): one name; A1/A2 with the unrelated C1 is a loose cluster
    # (n_eff = 9 / (3 + 2 * (0.978 - 0.081 - 0.114)) = 1.97): two names
    assert frame.loc["B1", "cluster_size"] == 2 and frame.loc["B1", "cluster_top_n"] == 1
    assert frame.loc["A1", "cluster_size"] == 3 and frame.loc["A1", "cluster_top_n"] == 2
    assert frame.groupby("cluster")["selected"].sum().to_dict() == {1: 2, 2: 1}


def test_relaxation_stages_are_recorded():
    close = factor_close()
    date = close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(close.columns, True))}
    base = FACTOR.model_copy(update={"linkage": LinkageConfig(max_clusters=1), "dynamic_top_n": True,
                                     "top_n_per_cluster": 3})
    tight = select(PricePanel(close), scan, [date], base.model_copy(update={"min_symbols": 1}))[date]
    assert tight["relaxation"].eq("none").all() and tight["selected"].sum() >= 1
    need = int(tight["cluster_top_n"].max()) + 1
    static = select(PricePanel(close), scan, [date], base.model_copy(update={"min_symbols": need}))[date]
    assert static["relaxation"].iloc[0].startswith("static_top_n")
    assert static["selected"].sum() >= min(need, 3)
    # One name more per cluster per step, every step recorded (one cluster here).
    lifted = select(PricePanel(close), scan, [date], base.model_copy(update={"min_symbols": 5}))[date]
    assert lifted["relaxation"].eq("static_top_n > top_n_4 > top_n_5").all() and lifted["selected"].sum() == 5
    # relax_top_n_max: the ladder stops at it and never lifts the per-cluster limit.
    held = select(PricePanel(close), scan, [date], base.model_copy(update={"min_symbols": 5,
                                                                            "relax_top_n_max": 4}))[date]
    assert held["relaxation"].eq("static_top_n > top_n_4 > vetoes_lifted").all() and held["selected"].sum() == 4
    vetoed = base.model_copy(update={"min_symbols": 4, "max_symbols": 4, "vetoes": SelectionVetoes(min_momentum=10.0)})  # noqa: E501
    out = select(PricePanel(close), scan, [date], vetoed)[date]
    assert out["relaxation"].str.endswith("cluster_cap_lifted > vetoes_lifted").all() and out["selected"].sum() == 4
    nothing = select(PricePanel(close), scan, [date], vetoed.model_copy(update={"min_symbols": 0}))[date]
    assert nothing["relaxation"].eq("none").all() and not nothing["selected"].any()
    assert nothing["reason"].str.startswith("veto: momentum").all()


def test_ties_broken_by_symbol_name_and_identical_series_are_one_bet():
    base = np.linspace(10, 12, 12)
    close = pd.DataFrame({"CCC": base, "AAA": base, "BBB": base}, index=DAYS)[["AAA", "BBB", "CCC"]]
    scan = {LAST: scan_frame(dict.fromkeys(close.columns, True))}
    one = TINY.model_copy(update={"linkage": LinkageConfig(max_clusters=1)})
    frame = select(PricePanel(close), scan, [LAST], one)[LAST]
    assert frame["momentum_pct"].tolist() == [0.5, 0.5, 0.5]
    assert frame["cluster"].tolist() == [1, 1, 1]
    assert frame["rank"].tolist() == [1, 2, 3] and frame["rank_in_cluster"].tolist() == [1, 2, 3]
    assert frame["reason"].tolist() == ["selected", "selected", "rank 3 > top 2 in cluster 1"]
    dynamic = select(PricePanel(close), scan, [LAST], one.model_copy(update={"dynamic_top_n": True}))[LAST]
    assert dynamic["cluster_top_n"].tolist() == [1, 1, 1]  # rho = 1: one effective bet
    assert dynamic["selected"].tolist() == [True, False, False]
    # max_clusters >= n: every symbol is its own cluster, and the overall cap breaks the tie by name
    own = select(PricePanel(close), scan, [LAST], TINY.model_copy(update={"max_symbols": 2}))[LAST]
    assert own["cluster"].tolist() == [1, 2, 3]
    assert own["reason"].tolist() == ["selected", "selected", "overall rank 3 > max_symbols 2"]


def test_fewer_symbols_than_n_all_nan_and_empty():
    close = pd.DataFrame({"AAA": np.linspace(10, 12, 12), "GAP": np.linspace(10, 13, 12), "NAN": np.nan},
                         index=DAYS)
    close.iloc[5:9, 1] = np.nan  # GAP: momentum defined (rows 9 and 4), 6 returns
    close.iloc[4, 1] = 10.0
    scan = {LAST: scan_frame({"AAA": True, "GAP": True, "NAN": True}), DAYS[0]: scan_frame({})}
    cfg = TINY.model_copy(update={"top_n_per_cluster": 5, "max_symbols": 12})
    out = select(PricePanel(close), scan, [LAST, DAYS[0]], cfg)
    frame = out[LAST].set_index("symbol")
    assert frame.loc["GAP", "reason"] == "too few returns to cluster: 6 < 10"
    assert frame.loc["GAP", "cluster"] == 0 and not frame.loc["GAP", "selected"]
    assert frame.loc["NAN", "reason"] == "no momentum history"
    assert frame.loc["NAN", list(FEATURE_COLUMNS)].isna().all()  # an all-NaN symbol: every feature NaN
    assert frame.loc["AAA", "cluster"] == 1 and frame.loc["AAA", "selected"]  # fewer symbols than N: all kept
    assert frame.loc["AAA", "cluster_size"] == 1 and frame.loc["AAA", "cluster_top_n"] == 1
    assert out[DAYS[0]].empty and {c: str(t) for c, t in out[DAYS[0]].dtypes.items()} == DTYPES
    with pytest.raises(LakeError):
        select(PricePanel(close), scan, [DAYS[3]], TINY)


def rip_close(n_rows: int = 80) -> pd.DataFrame:
    """DOWN falls steadily then bounces hard for 4 days (a rip in a downtrend); UP rises steadily."""
    days = pd.bdate_range("2024-01-01", periods=n_rows)
    down = 100 * np.cumprod(np.r_[1.0, np.where(np.arange(n_rows - 1) % 3 == 0, 1.004, 0.985)])
    down[-4:] = down[-5] * np.cumprod([1.01, 1.01, 1.01, 1.01])
    up = 50 * np.cumprod(np.r_[1.0, np.where(np.arange(n_rows - 1) % 3 == 0, 0.996, 1.01)])
    return pd.DataFrame({"DOWN": down, "UP": up}, index=days)


def test_short_book_sells_rips_in_a_confirmed_downtrend():
    close = rip_close()
    date = close.index[-1]
    scan = {date: scan_frame({"DOWN": True, "UP": True})}
    short = ShortBookConfig(enabled=True, rsi_overbought=70, trend_window=40, slope_window=5, max_symbols=2)
    cfg = TINY.model_copy(update={"short": short, "momentum_lookback": 30, "momentum_skip": 0,
                                  "correlation_lookback": 40, "min_momentum_percentile": 0.9})
    frame = select(PricePanel(close), scan, [date], cfg)[date].set_index("symbol")
    ma = close["DOWN"].iloc[-40:].mean()
    ma_before = close["DOWN"].iloc[-45:-5].mean()
    assert frame.loc["DOWN", "trend_gap"] == pytest.approx(close["DOWN"].iloc[-1] / ma - 1)
    assert frame.loc["DOWN", "trend_slope"] == pytest.approx(ma / ma_before - 1)
    rets = close["DOWN"].pct_change().iloc[-5:]
    gain, loss = rets.clip(lower=0).mean(), (-rets).clip(lower=0).mean()
    assert frame.loc["DOWN", "rsi"] == pytest.approx(100 - 100 / (1 + gain / loss))
    assert frame.loc["DOWN", "rsi"] >= 70 and frame.loc["DOWN", "trend_gap"] < 0
    # the long-side momentum-percentile veto does not apply to the short book
    assert frame.loc["DOWN", "direction"] == "short" and frame.loc["DOWN", "selected"]
    assert frame.loc["UP", "direction"] == "long" and frame.loc["UP", "selected"]
    off = select(PricePanel(close), scan, [date], cfg.model_copy(update={"short": ShortBookConfig()}))[date]
    assert off.set_index("symbol").loc["DOWN", "reason"].startswith("momentum pct 0 <")
    assert off["direction"].eq("long").all()


def test_sector_cap_and_sector_tilt():
    close = factor_close()
    date = close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(close.columns, True))}
    sectors = {"A1": "Tech", "A2": "Tech", "B1": "Energy", "B2": "Energy", "C1": "Tech"}
    cfg = FACTOR.model_copy(update={"linkage": LinkageConfig(max_clusters=5), "max_per_sector": 1})
    frame = select(PricePanel(close), scan, [date], cfg, sectors)[date].set_index("symbol")
    assert frame.loc[frame["selected"], "sector"].value_counts().max() == 1
    assert frame["reason"].str.startswith("sector Tech full").sum() == 2
    mom = frame["momentum"]
    assert frame.loc["A1", "sector_momentum"] == pytest.approx(mom[["A1", "A2", "C1"]].mean())
    tilted = select(PricePanel(close), scan, [date], FACTOR.model_copy(update={"sector_tilt": 0.5}),
                    sectors)[date].set_index("symbol")
    leader = "Tech" if frame.loc["A1", "sector_momentum"] > frame.loc["B1", "sector_momentum"] else "Energy"
    for s in close.columns:  # the leading sector gets +0.25, the other -0.25
        bump = 0.25 if sectors[s] == leader else -0.25
        assert tilted.loc[s, "score"] == pytest.approx(frame.loc[s, "score"] + bump)


def test_score_is_the_weighted_mean_of_oriented_percentiles():
    close = factor_close()
    date = close.index[-1]
    scan = {date: scan_frame(dict.fromkeys(close.columns, True))}
    weights = {"momentum": 2.0, "cvar": 1.0, "entropy": 1.0}
    frame = select(PricePanel(close), scan, [date], FACTOR.model_copy(update={"score_weights": weights}))[date]
    pct = {f: percentile_rank(sign * frame[f].to_numpy()) for f, sign in (("momentum", 1), ("cvar", -1),
                                                                          ("entropy", -1))}
    expected = (2 * pct["momentum"] + pct["cvar"] + pct["entropy"]) / 4
    np.testing.assert_allclose(frame["score"], expected)
    assert frame.sort_values("rank")["score"].is_monotonic_decreasing


def test_schema_rejects_unknown_score_features():
    with pytest.raises(ValueError, match="unknown feature"):
        SelectionConfig(score_weights={"magic": 1.0})
    with pytest.raises(ValueError, match="at least 20"):
        SelectionConfig(correlation_lookbacks=[10, 60])


# selection: real data -------------------------------------------------------------------------------------

REAL_DATES = [pd.Timestamp(d) for d in ("1990-09-28", "2008-10-10", "2015-06-30", "2020-03-14", "2022-12-30")]
REAL = SelectionConfig(max_symbols=6, correlation_lookbacks=[63, 126, 252],
                       short=ShortBookConfig(enabled=True, max_symbols=3))


def test_point_in_time(sp500_panel, sp500_close, perturbed_after):
    batch = select(sp500_panel, compute_scan(sp500_panel, REAL_DATES, UniverseConfig()), REAL_DATES, REAL)
    for i, date in enumerate(REAL_DATES):
        panel = PricePanel(perturbed_after(sp500_close, date, seed=10 + i))
        alone = select(panel, compute_scan(panel, [date], UniverseConfig()), [date], REAL)[date]
        assert df_hash(alone) == df_hash(batch[date]), date
    # independent of where the panel starts, once it holds the windows
    date = REAL_DATES[2]
    start = sp500_close.index[sp500_close.index.get_loc(date) - REAL.history_rows - 5]
    late = PricePanel(sp500_close.loc[start:])
    assert df_hash(select(late, compute_scan(late, [date], UniverseConfig()), [date], REAL)[date]) == \
        df_hash(batch[date])


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
        assert (chosen.groupby("cluster").size() <= chosen.groupby("cluster")["cluster_top_n"].first()).all()
        assert frame["cluster"].between(1, cfg.linkage.max_clusters).all()
        assert frame["momentum_pct"].between(0, 1).all()
        assert frame[list(FEATURE_COLUMNS[:10])].drop(columns="liquidity").notna().all().all()
        assert frame["liquidity"].isna().all()  # the bundled source has no volume: never invented


def test_preset_overrides_read_from_the_regime_frame():
    d1, d2, d3 = pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-04")
    regimes = {
        d1: pd.DataFrame({"preset": ["CRISIS"], "preset_top_n_per_cluster": [1.0], "preset_max_symbols": [np.nan]}),
        d2: pd.DataFrame({"preset": [""], "preset_top_n_per_cluster": [np.nan], "preset_max_symbols": [np.nan]}),
        d3: pd.DataFrame({"preset": ["NORMAL"]}),  # an older regime frame without the columns
    }
    assert preset_overrides(regimes) == {d1: {"top_n_per_cluster": 1}}
