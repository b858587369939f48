"""The merge of a split tournament's candidate groups and the previous decision's weights: the fast paths
give what the per-date ``merge_frames`` and a pandas mask give, dtypes included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.tournament import _frame, merge_frames, merge_groups, previous_weights

DATES = list(pd.date_range("2020-01-01", periods=5, freq="B"))


def _rows(candidate: str, symbols: list[str], date, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    engine, profile = candidate.split("/")
    return [{"candidate": candidate, "engine": engine, "profile": profile, "symbol": s, "weight": float(w),
             "status": "optimal", "solve_ms": 1.0, "fallback": "", "max_weight": 0.3, "decision_date": date,
             "rebalanced": True, "picked": ""} for s, w in zip(symbols, rng.random(len(symbols)), strict=True)]


def _groups() -> list[dict]:
    """Two groups over the same dates; group b's names sort between group a's; one date holds nothing in a."""
    a, b = {}, {}
    for i, d in enumerate(DATES):
        a[d] = _frame([] if i == 2 else _rows("custom/min_variance", ["MSFT", "AAPL", "XOM"], d, i)
                      + _rows("skfolio/hrp", ["AAPL", "JPM"], d, 10 + i))
        b[d] = _frame(_rows("custom/max_sharpe", ["XOM", "AAPL"], d, 20 + i) + _rows("custom/equal_weight", [""], d, 0))
    return [a, b]


def test_merge_groups_equals_the_per_date_merge(monkeypatch):
    groups = _groups()
    import tvquant_assets.core.tournament as tournament

    def per_date(frames):
        raise AssertionError("the one-sort path falls back to the per-date merge")

    monkeypatch.setattr(tournament, "merge_frames", per_date)  # the fast path, not the fallback
    merged = merge_groups(groups)
    monkeypatch.undo()
    assert list(merged) == DATES
    for d in DATES:
        expected = merge_frames([g[d] for g in groups])
        pd.testing.assert_frame_equal(merged[d], expected)
        assert merged[d]["candidate"].tolist() == sorted(merged[d]["candidate"].tolist())
    assert merged[DATES[2]]["candidate"].unique().tolist() == ["custom/equal_weight", "custom/max_sharpe"]


def test_merge_groups_falls_back_when_layouts_differ():
    groups = _groups()
    groups[1][DATES[1]] = groups[1][DATES[1]].assign(score=1.0)  # a column only one frame has
    merged = merge_groups(groups)
    for d in DATES:
        pd.testing.assert_frame_equal(merged[d], merge_frames([g[d] for g in groups]))
    assert "score" in merged[DATES[1]].columns and "score" not in merged[DATES[0]].columns


def test_empty_date_is_the_empty_frame():
    groups = [{d: _frame([]) for d in DATES}, {d: _frame([]) for d in DATES}]
    for frame in merge_groups(groups).values():
        pd.testing.assert_frame_equal(frame, _frame([]))


@pytest.mark.parametrize("candidate", ["custom/min_variance", "skfolio/hrp", "custom/equal_weight", "none/x"])
def test_previous_weights_as_a_mask_selects_them(candidate):
    previous = merge_frames([g[DATES[0]] for g in _groups()])
    symbols = ["AAPL", "JPM", "MSFT", "NVDA"]
    rows = previous[(previous["candidate"] == candidate) & (previous["symbol"] != "")]
    got = previous_weights(previous, candidate, symbols)
    if rows.empty:
        assert got is None
    else:
        held = dict(zip(rows["symbol"], rows["weight"], strict=True))
        np.testing.assert_array_equal(got, [held.get(s, 0.0) for s in symbols])
        assert got.dtype == np.float64 and got.sum() > 0
